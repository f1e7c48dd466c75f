#pragma once
/// The simulator's text encodings: JSON writing and lookup, base64, numbers, deterministic ids and
/// Bedrock's event padding. Shared by the request half (sim_logic), the answer half (sim_bodies)
/// and the server. No exceptions on request input.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/fwd.hpp>

namespace bedrock_meter::simulator {

/// Appends `v` in decimal.
void append_uint(std::string& out, std::uint64_t v);
/// A whole string of decimal digits as a number; nullopt on anything else (sign, space, overflow).
std::optional<std::uint64_t> parse_uint(std::string_view s);

/// Appends `s` as a JSON string literal (quoted, escaped).
void append_json_string(std::string& out, std::string_view s);
/// The value at `path` (object keys, outermost first), or null when a step is not an object or
/// lacks the key.
const boost::json::value* json_at(const boost::json::value& root,
                                  std::initializer_list<std::string_view> path) noexcept;

/// Standard base64 (with padding).
void append_base64(std::string& out, std::string_view bytes);
/// Decodes standard or URL-safe base64 (padding optional); nullopt on a foreign character.
std::optional<std::string> decode_base64(std::string_view in);

/// Deterministic per-thread id source (splitmix64).
class id_source {
 public:
  explicit id_source(std::uint64_t seed) noexcept : state_(seed) {}
  std::uint64_t next() noexcept;
  std::string uuid();                      ///< 8-4-4-4-12 lowercase hex, version 4 bits set
  std::string base62(std::size_t length);  ///< [0-9A-Za-z]{length}
  std::string lower_alnum(std::size_t length);

 private:
  std::uint64_t state_;
};

/// Bedrock's `"p"` padding: a run of [a-zA-Z0-9] whose length varies with `seed`.
std::string_view padding(std::size_t seed) noexcept;

}  // namespace bedrock_meter::simulator
