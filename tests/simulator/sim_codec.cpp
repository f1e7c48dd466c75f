#include "tests/simulator/sim_codec.hpp"

#include <array>
#include <charconv>

#include <boost/json/value.hpp>

namespace bedrock_meter::simulator {

namespace {

constexpr std::string_view k_alnum =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

}  // namespace

void append_uint(std::string& out, std::uint64_t v) {
  std::array<char, 24> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  (void)ec;  // 24 bytes always fit a uint64
  out.append(buf.data(), end);
}

std::optional<std::uint64_t> parse_uint(std::string_view s) {
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      constexpr std::string_view hex = "0123456789abcdef";
      out.append("\\u00");
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

const boost::json::value* json_at(const boost::json::value& root,
                                  std::initializer_list<std::string_view> path) noexcept {
  const boost::json::value* v = &root;
  for (auto key : path) {
    const auto* obj = v->if_object();
    if (obj == nullptr) return nullptr;
    v = obj->if_contains(key);
    if (v == nullptr) return nullptr;
  }
  return v;
}

void append_base64(std::string& out, std::string_view bytes) {
  constexpr std::string_view tbl =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out.reserve(out.size() + (bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto at = [&bytes](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k]));
  };
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out.push_back(tbl[(n >> 18) & 63]);
    out.push_back(tbl[(n >> 12) & 63]);
    out.push_back(tbl[(n >> 6) & 63]);
    out.push_back(tbl[n & 63]);
  }
  const std::size_t rem = bytes.size() - i;
  if (rem == 1) {
    const std::uint32_t n = at(i) << 16;
    out.push_back(tbl[(n >> 18) & 63]);
    out.push_back(tbl[(n >> 12) & 63]);
    out.append("==");
  } else if (rem == 2) {
    const std::uint32_t n = (at(i) << 16) | (at(i + 1) << 8);
    out.push_back(tbl[(n >> 18) & 63]);
    out.push_back(tbl[(n >> 12) & 63]);
    out.push_back(tbl[(n >> 6) & 63]);
    out.push_back('=');
  }
}

std::optional<std::string> decode_base64(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() / 4 * 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const int v = val(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::uint64_t id_source::next() noexcept {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string id_source::uuid() {
  constexpr std::string_view hex = "0123456789abcdef";
  const std::uint64_t a = next();
  const std::uint64_t b = next();
  std::array<unsigned, 32> nib{};
  for (std::size_t k = 0; k < 16; ++k) {
    nib[k] = static_cast<unsigned>((a >> (60 - 4 * k)) & 15);
    nib[16 + k] = static_cast<unsigned>((b >> (60 - 4 * k)) & 15);
  }
  nib[12] = 4;                  // version 4
  nib[16] = 8 | (nib[16] & 3);  // RFC 4122 variant
  std::string s;
  s.reserve(36);
  for (std::size_t k = 0; k < 32; ++k) {
    if (k == 8 || k == 12 || k == 16 || k == 20) s.push_back('-');
    s.push_back(hex[nib[k]]);
  }
  return s;
}

std::string id_source::base62(std::size_t length) {
  std::string s;
  s.reserve(length);
  for (std::size_t k = 0; k < length; ++k) s.push_back(k_alnum[next() % 62]);
  return s;
}

std::string id_source::lower_alnum(std::size_t length) {
  constexpr std::string_view chars = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  s.reserve(length);
  for (std::size_t k = 0; k < length; ++k) s.push_back(chars[next() % chars.size()]);
  return s;
}

std::string_view padding(std::size_t seed) noexcept {
  return k_alnum.substr(0, 1 + (seed * 7 + 3) % 48);
}

}  // namespace bedrock_meter::simulator
