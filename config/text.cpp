#include "config/text.hpp"

#include <charconv>
#include <system_error>

namespace bedrock_meter::config {

using std::chrono::milliseconds;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<std::uint64_t> parse_uint(std::string_view s) {
  if (s.empty() || !is_digit(s.front())) return std::nullopt;
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

namespace {

/// Milliseconds per unit at the front of `text`, which loses the unit; 0 when there is none.
std::int64_t take_unit(std::string_view& text) {
  // `ms` before `m`: `5ms` is not five minutes followed by garbage.
  for (const auto& [unit, ms] : {std::pair<std::string_view, std::int64_t>{"ms", 1},
                                 {"s", 1000},
                                 {"m", 60'000},
                                 {"h", 3'600'000}}) {
    if (text.starts_with(unit)) {
      text.remove_prefix(unit.size());
      return ms;
    }
  }
  return 0;
}

}  // namespace

std::optional<milliseconds> parse_duration_uncapped(std::string_view text) {
  if (text.empty()) return std::nullopt;
  milliseconds total{0};
  while (!text.empty()) {
    std::size_t digits = 0;
    while (digits < text.size() && is_digit(text[digits])) ++digits;
    if (digits == 0 || digits > 12) return std::nullopt;
    const auto n = parse_uint(text.substr(0, digits));
    text.remove_prefix(digits);
    const std::int64_t unit_ms = take_unit(text);
    if (unit_ms == 0) return std::nullopt;
    total += milliseconds(static_cast<std::int64_t>(*n) * unit_ms);
    if (total > std::chrono::hours(1'000'000)) return std::nullopt;
  }
  return total;
}

std::string format_duration(milliseconds d) {
  const auto count = d.count();
  if (count != 0 && count % 3'600'000 == 0) return std::to_string(count / 3'600'000) + "h";
  if (count != 0 && count % 60'000 == 0) return std::to_string(count / 60'000) + "m";
  if (count % 1000 == 0) return std::to_string(count / 1000) + "s";
  return std::to_string(count) + "ms";
}

std::string join(std::span<const std::string_view> items) {
  std::string out;
  for (const auto item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

}  // namespace bedrock_meter::config
