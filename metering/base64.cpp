#include "metering/base64.hpp"

#include <array>
#include <cstddef>
#include <cstdint>

namespace bedrock_meter::metering {
namespace {

constexpr std::uint8_t b64_invalid = 0xFF;

constexpr std::array<std::uint8_t, 256> make_b64_table() noexcept {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = b64_invalid;
  std::uint8_t i = 0;
  for (char c = 'A'; c <= 'Z'; ++c) t[static_cast<unsigned char>(c)] = i++;
  for (char c = 'a'; c <= 'z'; ++c) t[static_cast<unsigned char>(c)] = i++;
  for (char c = '0'; c <= '9'; ++c) t[static_cast<unsigned char>(c)] = i++;
  t[static_cast<unsigned char>('+')] = 62;
  t[static_cast<unsigned char>('/')] = 63;
  return t;
}

constexpr std::array<std::uint8_t, 256> b64_table = make_b64_table();

}  // namespace

bool base64_decode(std::string_view in, std::string& out) {
  if (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (!in.empty() && in.back() == '=') in.remove_suffix(1);
  const std::size_t full = in.size() / 4;
  const std::size_t rest = in.size() % 4;
  if (rest == 1) return false;
  out.resize(full * 3 + (rest == 0 ? 0 : rest - 1));
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  for (std::size_t g = 0; g < full; ++g, p += 4, o += 3) {
    const std::uint32_t a = b64_table[p[0]];
    const std::uint32_t b = b64_table[p[1]];
    const std::uint32_t c = b64_table[p[2]];
    const std::uint32_t d = b64_table[p[3]];
    if (((a | b | c | d) & 0x80u) != 0) return false;
    const std::uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
    o[0] = static_cast<unsigned char>(v >> 16);
    o[1] = static_cast<unsigned char>(v >> 8);
    o[2] = static_cast<unsigned char>(v);
  }
  if (rest >= 2) {
    const std::uint32_t a = b64_table[p[0]];
    const std::uint32_t b = b64_table[p[1]];
    const std::uint32_t c = rest == 3 ? b64_table[p[2]] : 0;
    if (((a | b | c) & 0x80u) != 0) return false;
    const std::uint32_t v = (a << 18) | (b << 12) | (c << 6);
    o[0] = static_cast<unsigned char>(v >> 16);
    if (rest == 3) o[1] = static_cast<unsigned char>(v >> 8);
  }
  return true;
}

}  // namespace bedrock_meter::metering
