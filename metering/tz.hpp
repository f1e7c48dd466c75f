#pragma once
/// Time zones for budget periods. libstdc++ 12 has no std::chrono::locate_zone, so we read the
/// system's TZif files (RFC 8536, Debian's tzdata) ourselves: the 64-bit (v2+) transition table
/// plus the POSIX TZ footer that extends it past the last transition. Pure except `load_zone`.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "metering/error.hpp"

namespace bedrock_meter::metering {

/// One rule of a POSIX TZ string: when DST starts or ends, in local wall time of the offset in
/// force just before the change.
struct tz_rule {
  enum class kind { julian_no_leap, julian_zero, month_week_day };  // Jn, n, Mm.w.d
  kind form = kind::month_week_day;
  int day = 0;                   // Jn: 1..365, n: 0..365, Mm.w.d: weekday 0 (Sunday)..6
  int week = 0;                  // 1..5 (5 = last)
  int month = 0;                 // 1..12
  std::int32_t time = 2 * 3600;  // seconds after local midnight, may be negative or >24h
};

/// A parsed POSIX TZ string such as "EST5EDT,M3.2.0,M11.1.0". Offsets are seconds east of UTC
/// (the string itself counts west, we flip the sign once here).
struct posix_tz {
  std::int32_t std_offset = 0;
  bool has_dst = false;
  std::int32_t dst_offset = 0;
  tz_rule start;
  tz_rule end;

  /// Offset from UTC (seconds east) in force at `utc_seconds`.
  std::int32_t offset_at(std::int64_t utc_seconds) const noexcept;
};

/// Parses a POSIX TZ string; nullopt when malformed or when DST is named without rules.
std::optional<posix_tz> parse_posix_tz(std::string_view text) noexcept;

/// A zone: UTC transition instants with the offset in force from each one, the offset before
/// the first, and the footer rule after the last.
class time_zone {
 public:
  time_zone() = default;  // UTC
  time_zone(std::vector<std::int64_t> transitions, std::vector<std::int32_t> offsets,
            std::int32_t initial_offset, std::optional<posix_tz> footer);

  /// Offset from UTC in seconds east at a UTC instant (seconds since the epoch).
  std::int32_t offset_at(std::int64_t utc_seconds) const noexcept;

  /// The first UTC instant whose local wall time is at or after `local_seconds` (seconds since
  /// the local epoch). For an ambiguous time (clocks went back) that is its first occurrence;
  /// for a skipped time (clocks went forward) it is the instant the gap ends. This is what
  /// "start of the local day" means on DST-switch days.
  std::int64_t first_instant_at_or_after_local(std::int64_t local_seconds) const noexcept;

  std::chrono::sys_seconds to_utc(std::chrono::local_seconds local) const noexcept {
    return std::chrono::sys_seconds{
        std::chrono::seconds{first_instant_at_or_after_local(local.time_since_epoch().count())}};
  }
  std::chrono::local_seconds to_local(std::chrono::sys_seconds utc) const noexcept {
    const auto s = utc.time_since_epoch().count();
    return std::chrono::local_seconds{std::chrono::seconds{s + offset_at(s)}};
  }

 private:
  std::vector<std::int64_t> transitions_;
  std::vector<std::int32_t> offsets_;  // offsets_[i] applies from transitions_[i]
  std::int32_t initial_offset_ = 0;
  std::optional<posix_tz> footer_;
};

/// A parsed or loaded zone, or why not (`error().message` is one line for an operator).
using zone_result = boost::system::result<time_zone, error>;

/// Parses the bytes of a TZif file (v2 or later; v1-only files are rejected since their 32-bit
/// table ends in 2038 and they carry no footer). Errors are `error::kind::bad_data`.
zone_result parse_tzif(std::string_view bytes);

/// Reads /usr/share/zoneinfo/NAME and parses it. "UTC" (or "") needs no file. Rejects names that
/// could escape the directory ("..", absolute paths) as `invalid_argument`; a missing file is
/// `not_found`; a file that does not parse is `bad_data`, its message prefixed with "NAME: ".
zone_result load_zone(std::string_view name);

}  // namespace bedrock_meter::metering
