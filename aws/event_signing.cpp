#include "aws/event_signing.hpp"

#include <openssl/crypto.h>

#include <array>

#include "metering/event_stream.hpp"

namespace bedrock_meter::aws::sigv4 {

namespace {

constexpr std::uint8_t type_bytes = 6;
constexpr std::uint8_t type_timestamp = 8;
constexpr std::size_t signature_bytes = 32;

std::string_view as_view(const std::array<unsigned char, 32>& d) noexcept {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

std::int64_t load_be64(std::string_view b) noexcept {
  std::uint64_t v = 0;
  for (const char c : b) v = (v << 8U) | static_cast<unsigned char>(c);
  return static_cast<std::int64_t>(v);
}

/// The encoded `:date` header alone: what the signature hashes as the event's headers.
std::array<char, 15> date_header(std::int64_t ms) noexcept {
  std::array<char, 15> h{5, ':', 'd', 'a', 't', 'e', static_cast<char>(type_timestamp)};
  const auto v = static_cast<std::uint64_t>(ms);
  for (std::size_t i = 0; i < 8; ++i) h[7 + i] = static_cast<char>(v >> (56U - 8U * i));
  return h;
}

std::string hex_of(std::string_view raw) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(raw.size() * 2, '0');
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const auto b = static_cast<unsigned char>(raw[i]);
    out[2 * i] = digits[b >> 4U];
    out[2 * i + 1] = digits[b & 0x0fU];
  }
  return out;
}

std::optional<std::string> raw_of(std::string_view hex) {
  if (hex.size() != 2 * signature_bytes) return std::nullopt;
  std::string out(signature_bytes, '\0');
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < signature_bytes; ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return out;
}

}  // namespace

std::optional<signed_event> read_signed_event(std::string_view header_block,
                                              std::string_view payload) noexcept {
  const auto sig = metering::find_event_header(header_block, ":chunk-signature");
  if (!sig || sig->type != type_bytes || sig->value.size() != signature_bytes) return std::nullopt;
  const auto date = metering::find_event_header(header_block, ":date");
  if (!date || date->type != type_timestamp || date->value.size() != 8) return std::nullopt;
  signed_event e;
  e.date = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::milliseconds(load_be64(date->value))));
  e.signature = sig->value;
  e.payload = payload;
  return e;
}

event_chain::event_chain(std::string secret, std::string region, std::string seed_signature_hex,
                         std::string service)
    : secret_(std::move(secret)),
      region_(std::move(region)),
      service_(std::move(service)),
      prior_(std::move(seed_signature_hex)) {}

event_chain::~event_chain() {
  if (!secret_.empty()) OPENSSL_cleanse(secret_.data(), secret_.size());
  OPENSSL_cleanse(key_.data(), key_.size());
}

std::string event_chain::signature_hex(std::int64_t date_ms, std::string_view payload) {
  const auto at = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::milliseconds(date_ms)));
  const std::string long_date = amz_date(at);
  const std::string_view day = std::string_view(long_date).substr(0, 8);
  if (key_day_ != day) {
    std::string k = "AWS4" + secret_;
    auto d = hmac_sha256(k, day);
    OPENSSL_cleanse(k.data(), k.size());
    d = hmac_sha256(as_view(d), region_);
    d = hmac_sha256(as_view(d), service_);
    key_ = hmac_sha256(as_view(d), "aws4_request");
    OPENSSL_cleanse(d.data(), d.size());
    key_day_ = day;
  }
  const auto header = date_header(date_ms);
  std::string to_sign;
  to_sign.reserve(256);
  to_sign.append("AWS4-HMAC-SHA256-PAYLOAD\n")
      .append(long_date)
      .append("\n")
      .append(day)
      .append("/")
      .append(region_)
      .append("/")
      .append(service_)
      .append("/aws4_request\n")
      .append(prior_)
      .append("\n")
      .append(sha256_hex(std::string_view(header.data(), header.size())))
      .append("\n")
      .append(sha256_hex(payload));
  return hex_of(as_view(hmac_sha256(as_view(key_), to_sign)));
}

bool event_chain::verify(const signed_event& e) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(e.date.time_since_epoch()).count();
  std::string expected = signature_hex(ms, e.payload);
  if (!constant_time_equal(expected, hex_of(e.signature))) return false;
  prior_ = std::move(expected);
  return true;
}

void event_chain::sign(std::string& out, std::string_view event,
                       std::chrono::system_clock::time_point at) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  std::string sig = signature_hex(ms, event);
  const auto raw = raw_of(sig);
  const auto date = date_header(ms);
  // :date, then :chunk-signature (type 6, 2-byte length, 32 bytes), as the JS SDK orders them.
  std::string headers(date.data(), date.size());
  headers.push_back(16);
  headers.append(":chunk-signature");
  headers.push_back(static_cast<char>(type_bytes));
  headers.push_back(0);
  headers.push_back(static_cast<char>(signature_bytes));
  headers.append(*raw);
  metering::encode_event_frame_raw(out, headers, event);
  prior_ = std::move(sig);
}

}  // namespace bedrock_meter::aws::sigv4
