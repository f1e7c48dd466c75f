#pragma once
/// Small pieces of scalar syntax shared by the config and rate-table loaders (whole numbers,
/// durations, lists of names in messages). Internal to bm_config: the rest of the program uses
/// config/config.hpp (parse_duration, parse_size, ...), which is built on these.
///
/// Pure functions on string_views; no YAML, no I/O, no state.
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace bedrock_meter::config {

// Not <cctype>: those depend on the C locale and take int.
constexpr bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
constexpr bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// `s` without leading and trailing spaces and tabs (a quoted YAML scalar keeps them).
std::string_view trim(std::string_view s);

/// Digits only (no sign, no spaces, no `0x`), within uint64; empty optional otherwise.
std::optional<std::uint64_t> parse_uint(std::string_view s);

/// Timers add durations to steady_clock::now(); a week is far beyond any sensible setting and far
/// from overflow. parse_duration refuses anything longer.
inline constexpr std::chrono::milliseconds max_duration{std::chrono::hours(168)};

/// parse_duration's syntax (`250ms`, `5s`, `15m`, `1h`, `1m30s`) without its 168h cap, so a caller
/// can say "too long" rather than "malformed". Empty optional when malformed or beyond a million
/// hours (twelve digits per term bound every term well inside int64 milliseconds).
std::optional<std::chrono::milliseconds> parse_duration_uncapped(std::string_view text);

/// The shortest exact spelling of `d` in that syntax (`1h`, `90s`, `250ms`), for messages.
std::string format_duration(std::chrono::milliseconds d);

/// `a, b, c`: the valid names or keys a message lists.
std::string join(std::span<const std::string_view> items);

}  // namespace bedrock_meter::config
