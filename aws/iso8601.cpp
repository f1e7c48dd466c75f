// ISO 8601 / RFC 3339 timestamps as AWS sends them in credential expirations.
#include "aws/credentials.hpp"

#include <cstddef>
#include <utility>

namespace bedrock_meter::aws {
namespace {

// `YYYY-MM-DDTHH:MM:SS` is this long; the fraction and the zone follow.
constexpr std::size_t date_time_len = 19;
// Digits of a fraction beyond nanoseconds are read but ignored.
constexpr int max_fraction_digits = 9;

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// The `n` decimal digits at `pos`; nullopt when the text is shorter or one is not a digit.
std::optional<int> digits_at(std::string_view s, std::size_t pos, std::size_t n) noexcept {
  if (pos + n > s.size()) return std::nullopt;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (!is_digit(s[i])) return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

// `YYYY-MM-DDTHH:MM:SS` (a `t` or a space may stand for the `T`), exactly; a real calendar day.
std::optional<std::chrono::sys_seconds> parse_date_time(std::string_view s) noexcept {
  if (s.size() != date_time_len || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
  const auto year = digits_at(s, 0, 4);
  const auto month = digits_at(s, 5, 2);
  const auto day = digits_at(s, 8, 2);
  const auto hour = digits_at(s, 11, 2);
  const auto minute = digits_at(s, 14, 2);
  const auto second = digits_at(s, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  if (*hour > 23 || *minute > 59 || *second > 59) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year{*year},
                                        std::chrono::month{static_cast<unsigned>(*month)},
                                        std::chrono::day{static_cast<unsigned>(*day)}};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days{ymd} + std::chrono::hours{*hour} + std::chrono::minutes{*minute} +
         std::chrono::seconds{*second};
}

// The digits of a fraction of a second at the start of `s` (after the `.`): their value and how
// many characters they took. nullopt when there is not at least one digit.
std::optional<std::pair<std::chrono::nanoseconds, std::size_t>> parse_fraction(
    std::string_view s) noexcept {
  std::size_t pos = 0;
  long long ns = 0;
  int kept = 0;
  while (pos < s.size() && is_digit(s[pos])) {
    if (kept < max_fraction_digits) {
      ns = ns * 10 + (s[pos] - '0');
      ++kept;
    }
    ++pos;
  }
  if (pos == 0) return std::nullopt;
  for (; kept < max_fraction_digits; ++kept) ns *= 10;
  return std::pair{std::chrono::nanoseconds{ns}, pos};
}

// The zone, which must be all of `s`: `Z`, or `+hh:mm` / `-hh:mm` / `+hhmm` / `-hhmm`. The
// offset is what local time is ahead of UTC.
std::optional<std::chrono::minutes> parse_zone(std::string_view s) noexcept {
  if (s == "Z" || s == "z") return std::chrono::minutes{0};
  if (s.empty() || (s.front() != '+' && s.front() != '-')) return std::nullopt;
  const int sign = s.front() == '-' ? -1 : 1;
  const auto hours = digits_at(s, 1, 2);
  if (!hours) return std::nullopt;
  std::size_t minutes_at = 3;
  if (minutes_at < s.size() && s[minutes_at] == ':') ++minutes_at;
  const auto minutes = digits_at(s, minutes_at, 2);
  if (!minutes || *hours > 23 || *minutes > 59) return std::nullopt;
  if (minutes_at + 2 != s.size()) return std::nullopt;
  return std::chrono::minutes{sign * (*hours * 60 + *minutes)};
}

}  // namespace

std::optional<clock_time> parse_iso8601(std::string_view s) noexcept {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm|+hhmm|-hhmm)
  const auto date_time = parse_date_time(s.substr(0, date_time_len));
  if (!date_time) return std::nullopt;
  std::string_view rest = s.substr(date_time_len);
  std::chrono::nanoseconds fraction{0};
  if (!rest.empty() && rest.front() == '.') {
    const auto parsed = parse_fraction(rest.substr(1));
    if (!parsed) return std::nullopt;
    fraction = parsed->first;
    rest.remove_prefix(1 + parsed->second);
  }
  const auto offset = parse_zone(rest);  // a zone is required
  if (!offset) return std::nullopt;
  return std::chrono::time_point_cast<clock_time::duration>(*date_time + fraction - *offset);
}

}  // namespace bedrock_meter::aws
