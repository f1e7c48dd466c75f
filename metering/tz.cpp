#include "metering/tz.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <iterator>
#include <sstream>

namespace bedrock_meter::metering {
namespace {

namespace chr = std::chrono;

constexpr std::int64_t seconds_per_day = 86400;

std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
  const std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

std::int64_t days_from_civil(int y, int m, int d) noexcept {
  const chr::sys_days days{chr::year{y} / chr::month{static_cast<unsigned>(m)} /
                           chr::day{static_cast<unsigned>(d)}};
  return days.time_since_epoch().count();
}

bool is_leap(int y) noexcept { return chr::year{y}.is_leap(); }

/// Local midnight (days since epoch) of the day a rule names in `year`.
std::int64_t rule_day(const tz_rule& r, int year) noexcept {
  const std::int64_t jan1 = days_from_civil(year, 1, 1);
  switch (r.form) {
    case tz_rule::kind::julian_no_leap:
      // Jn counts 1..365 and never names Feb 29, so days from March on shift in leap years.
      return jan1 + r.day - 1 + ((is_leap(year) && r.day >= 60) ? 1 : 0);
    case tz_rule::kind::julian_zero: return jan1 + r.day;
    case tz_rule::kind::month_week_day: break;
  }
  const std::int64_t first = days_from_civil(year, r.month, 1);
  const unsigned first_wd = chr::weekday{chr::sys_days{chr::days{first}}}.c_encoding();
  std::int64_t day =
      first + (r.day - static_cast<int>(first_wd) + 7) % 7 + std::int64_t{r.week - 1} * 7;
  const auto last = static_cast<unsigned>(chr::year_month_day_last{
      chr::year{year} / chr::month{static_cast<unsigned>(r.month)} / chr::last}
                                              .day());
  const std::int64_t last_day = first + static_cast<std::int64_t>(last) - 1;
  while (day > last_day) day -= 7;  // week 5 means "last"
  return day;
}

// --- POSIX TZ string scanning --------------------------------------------------------------

struct scanner {
  std::string_view s;
  std::size_t i = 0;
  bool at_end() const noexcept { return i >= s.size(); }
  char peek() const noexcept { return at_end() ? '\0' : s[i]; }
  bool eat(char c) noexcept {
    if (peek() != c) return false;
    ++i;
    return true;
  }
  std::optional<int> number() noexcept {
    if (at_end() || peek() < '0' || peek() > '9') return std::nullopt;
    int v = 0;
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      v = v * 10 + (peek() - '0');
      if (v > 100000) return std::nullopt;
      ++i;
    }
    return v;
  }
  bool name() noexcept {
    if (eat('<')) {
      while (!at_end() && peek() != '>') ++i;
      return eat('>');
    }
    const std::size_t start = i;
    while (!at_end() && ((peek() >= 'A' && peek() <= 'Z') || (peek() >= 'a' && peek() <= 'z'))) ++i;
    return i - start >= 3;
  }
  /// [+-]hh[:mm[:ss]] as seconds, sign as written.
  std::optional<std::int32_t> time() noexcept {
    int sign = 1;
    if (eat('-')) {
      sign = -1;
    } else {
      eat('+');
    }
    auto h = number();
    if (!h || *h > 167) return std::nullopt;
    std::int32_t total = *h * 3600;
    if (eat(':')) {
      auto m = number();
      if (!m || *m > 59) return std::nullopt;
      total += *m * 60;
      if (eat(':')) {
        auto sec = number();
        if (!sec || *sec > 59) return std::nullopt;
        total += *sec;
      }
    }
    return sign * total;
  }
  std::optional<tz_rule> rule() noexcept {
    tz_rule r;
    if (eat('J')) {
      auto n = number();
      if (!n || *n < 1 || *n > 365) return std::nullopt;
      r.form = tz_rule::kind::julian_no_leap;
      r.day = *n;
    } else if (eat('M')) {
      auto m = number();
      if (!m || *m < 1 || *m > 12 || !eat('.')) return std::nullopt;
      auto w = number();
      if (!w || *w < 1 || *w > 5 || !eat('.')) return std::nullopt;
      auto d = number();
      if (!d || *d > 6) return std::nullopt;
      r.form = tz_rule::kind::month_week_day;
      r.month = *m;
      r.week = *w;
      r.day = *d;
    } else {
      auto n = number();
      if (!n || *n > 365) return std::nullopt;
      r.form = tz_rule::kind::julian_zero;
      r.day = *n;
    }
    if (eat('/')) {
      auto t = time();
      if (!t) return std::nullopt;
      r.time = *t;
    }
    return r;
  }
};

// --- TZif reading ---------------------------------------------------------------------------

struct reader {
  std::string_view b;
  std::size_t i = 0;
  bool has(std::size_t n) const noexcept { return i <= b.size() && b.size() - i >= n; }
  std::uint64_t be(std::size_t n) noexcept {
    std::uint64_t v = 0;
    for (std::size_t k = 0; k < n; ++k) v = (v << 8) | static_cast<unsigned char>(b[i + k]);
    i += n;
    return v;
  }
};

struct tzif_counts {
  std::uint32_t isut = 0, isstd = 0, leap = 0, time = 0, type = 0, chars = 0;
};

std::optional<tzif_counts> read_header(reader& r, char& version) {
  if (!r.has(44) || r.b.substr(r.i, 4) != "TZif") return std::nullopt;
  version = r.b[r.i + 4];
  r.i += 20;
  tzif_counts c;
  c.isut = static_cast<std::uint32_t>(r.be(4));
  c.isstd = static_cast<std::uint32_t>(r.be(4));
  c.leap = static_cast<std::uint32_t>(r.be(4));
  c.time = static_cast<std::uint32_t>(r.be(4));
  c.type = static_cast<std::uint32_t>(r.be(4));
  c.chars = static_cast<std::uint32_t>(r.be(4));
  return c;
}

std::size_t data_size(const tzif_counts& c, std::size_t time_size) {
  return std::size_t{c.time} * time_size + c.time + std::size_t{c.type} * 6 + c.chars +
         std::size_t{c.leap} * (time_size + 4) + c.isstd + c.isut;
}

error bad_tzif(std::string why) { return error{error::kind::bad_data, std::move(why)}; }

/// The POSIX TZ footer after the v2 data at `r.i`: absent (nothing follows, or an empty line), a
/// rule, or an error.
boost::system::result<std::optional<posix_tz>, error> read_footer(std::string_view bytes,
                                                                  const reader& r) {
  if (r.i >= bytes.size()) return std::optional<posix_tz>{};
  if (bytes[r.i] != '\n') return bad_tzif("footer does not start with a newline");
  const auto end = bytes.find('\n', r.i + 1);
  if (end == std::string_view::npos) return bad_tzif("unterminated footer");
  const auto text = bytes.substr(r.i + 1, end - r.i - 1);
  if (text.empty()) return std::optional<posix_tz>{};
  std::optional<posix_tz> footer = parse_posix_tz(text);
  if (!footer) return bad_tzif("unsupported TZ footer: " + std::string(text));
  return footer;
}

}  // namespace

std::int32_t posix_tz::offset_at(std::int64_t utc_seconds) const noexcept {
  if (!has_dst) return std_offset;
  // The year as seen in standard local time; rule instants of neighbouring years cover the
  // edges (southern-hemisphere DST spans New Year).
  const auto local_days = floor_div(utc_seconds + std_offset, seconds_per_day);
  const int year =
      static_cast<int>(chr::year_month_day{chr::sys_days{chr::days{local_days}}}.year());
  auto start_utc = [&](int y) {
    return rule_day(start, y) * seconds_per_day + start.time - std_offset;
  };
  auto end_utc = [&](int y) { return rule_day(end, y) * seconds_per_day + end.time - dst_offset; };
  const bool same_year = start_utc(year) < end_utc(year);
  for (int y = year - 1; y <= year + 1; ++y) {
    const std::int64_t s = start_utc(y);
    const std::int64_t e = same_year ? end_utc(y) : end_utc(y + 1);
    if (s <= utc_seconds && utc_seconds < e) return dst_offset;
  }
  return std_offset;
}

std::optional<posix_tz> parse_posix_tz(std::string_view text) noexcept {
  scanner sc{text};
  posix_tz tz;
  if (!sc.name()) return std::nullopt;
  auto std_off = sc.time();
  if (!std_off) return std::nullopt;
  tz.std_offset = -*std_off;
  if (sc.at_end()) return tz;
  if (!sc.name()) return std::nullopt;
  tz.has_dst = true;
  tz.dst_offset = tz.std_offset + 3600;
  if (sc.peek() != ',') {
    auto dst_off = sc.time();
    if (!dst_off) return std::nullopt;
    tz.dst_offset = -*dst_off;
  }
  // Rules are required: the TZif footer always carries them when DST is named.
  if (!sc.eat(',')) return std::nullopt;
  auto start = sc.rule();
  if (!start || !sc.eat(',')) return std::nullopt;
  auto end = sc.rule();
  if (!end || !sc.at_end()) return std::nullopt;
  tz.start = *start;
  tz.end = *end;
  return tz;
}

time_zone::time_zone(std::vector<std::int64_t> transitions, std::vector<std::int32_t> offsets,
                     std::int32_t initial_offset, std::optional<posix_tz> footer)
    : transitions_(std::move(transitions)),
      offsets_(std::move(offsets)),
      initial_offset_(initial_offset),
      footer_(footer) {}

std::int32_t time_zone::offset_at(std::int64_t utc_seconds) const noexcept {
  if (transitions_.empty() || utc_seconds >= transitions_.back()) {
    if (footer_) return footer_->offset_at(utc_seconds);
    return transitions_.empty() ? initial_offset_ : offsets_.back();
  }
  const auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utc_seconds);
  if (it == transitions_.begin()) return initial_offset_;
  return offsets_[static_cast<std::size_t>(std::distance(transitions_.begin(), it) - 1)];
}

std::int64_t time_zone::first_instant_at_or_after_local(std::int64_t local) const noexcept {
  // Offsets in force a day either side bracket every offset that can apply to `local` (zones
  // change offset at most once a day).
  const std::int64_t c1 = local - offset_at(local - seconds_per_day);
  const std::int64_t c2 = local - offset_at(local + seconds_per_day);
  const std::int64_t lo = std::min(c1, c2);
  const std::int64_t hi = std::max(c1, c2);
  if (lo + offset_at(lo) == local) return lo;
  if (hi + offset_at(hi) == local) return hi;
  // A gap: the local time was skipped. Local time runs forward across a gap, so the first
  // instant reaching it is found by bisection between the two candidates.
  std::int64_t a = lo, b = hi;  // local(a) < local, local(b) >= local
  while (b - a > 1) {
    const std::int64_t m = a + (b - a) / 2;
    if (m + offset_at(m) >= local) {
      b = m;
    } else {
      a = m;
    }
  }
  return b;
}

zone_result parse_tzif(std::string_view bytes) {
  reader r{bytes};
  char version = 0;
  auto v1 = read_header(r, version);
  if (!v1) return bad_tzif("not a TZif file");
  if (version < '2') return bad_tzif("TZif version 1 has no 64-bit data");
  const std::size_t v1_size = data_size(*v1, 4);
  if (!r.has(v1_size)) return bad_tzif("truncated v1 data");
  r.i += v1_size;
  char version2 = 0;
  auto c = read_header(r, version2);
  if (!c) return bad_tzif("missing v2 header");
  if (c->type == 0 || c->chars == 0) return bad_tzif("no local time types");
  if (!r.has(data_size(*c, 8))) return bad_tzif("truncated v2 data");

  std::vector<std::int64_t> times(c->time);
  for (auto& t : times) {
    t = static_cast<std::int64_t>(r.be(8));
  }
  std::vector<std::uint8_t> idx(c->time);
  for (auto& x : idx) {
    x = static_cast<std::uint8_t>(r.be(1));
    if (x >= c->type) return bad_tzif("transition names an unknown type");
  }
  std::vector<std::int32_t> type_offsets(c->type);
  for (auto& off : type_offsets) {
    off = static_cast<std::int32_t>(static_cast<std::uint32_t>(r.be(4)));
    r.i += 2;  // isdst, desigidx: not needed for offsets
  }
  r.i += c->chars + std::size_t{c->leap} * 12 + c->isstd + c->isut;
  for (std::size_t k = 1; k < times.size(); ++k) {
    if (times[k] <= times[k - 1]) return bad_tzif("transitions not ascending");
  }
  std::vector<std::int32_t> offsets(times.size());
  for (std::size_t k = 0; k < times.size(); ++k) offsets[k] = type_offsets[idx[k]];

  auto footer = read_footer(bytes, r);
  if (!footer) return footer.error();
  // RFC 8536: local time type 0 applies before the first transition.
  return time_zone(std::move(times), std::move(offsets), type_offsets[0], *footer);
}

zone_result load_zone(std::string_view name) {
  if (name.empty() || name == "UTC") return time_zone{};
  if (name.front() == '/' || name.find("..") != std::string_view::npos) {
    return error{error::kind::invalid_argument, "invalid zone name"};
  }
  std::ifstream in("/usr/share/zoneinfo/" + std::string(name), std::ios::binary);
  if (!in) return error{error::kind::not_found, "unknown time zone: " + std::string(name)};
  std::ostringstream buf;
  buf << in.rdbuf();
  zone_result zone = parse_tzif(buf.str());
  if (!zone) return error{zone.error().what, std::string(name) + ": " + zone.error().message};
  return zone;
}

}  // namespace bedrock_meter::metering
