#include "advice/buying_mode.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

// Formulas (docs/finops.md): a commitment over the window costs units x hourly x window hours;
// what it does not carry is billed on demand ("spill"). Every amount is exact pico-USD in
// 128-bit integers, rounded half up once where a division is unavoidable; doubles only for
// ratios shown to people (utilisation, tokens per minute).

namespace bedrock_meter::advice {
namespace {

namespace m = metering;

constexpr std::int64_t ms_per_minute = 60'000;
constexpr std::int64_t ms_per_hour = 3'600'000;
constexpr std::size_t hours_per_week = 168;
constexpr std::int64_t tpm_per_reserved_block = 1'000;  ///< Reserved tier prices per 1,000 TPM
constexpr double scale_down_below = 0.5;       ///< Umbrella's rule: under half used, buy less
constexpr double unit_match_tolerance = 0.01;  ///< hourly_usd within 1% of N unit prices

// ---- small helpers -------------------------------------------------------------------------

/// num / den rounded half up; num >= 0, den > 0.
money_total div_round(money_total num, money_total den) { return (num + den / 2) / den; }

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/// Hour of the week of a unix-ms instant, Monday 00:00 UTC = 0 (1970-01-01 was a Thursday).
std::size_t hour_of_week_at(std::int64_t t_ms) {
  const std::int64_t hours = floor_div(t_ms, ms_per_hour);
  const std::int64_t days = floor_div(hours, 24);
  const std::int64_t weekday = ((days + 3) % 7 + 7) % 7;
  return static_cast<std::size_t>(weekday * 24 + (hours - days * 24));
}

std::string usd(money_total pico) { return "$" + m::format_usd(pico, 2); }

std::string fixed(double x, int decimals) {
  std::array<char, 64> buf{};
  const auto r =
      std::to_chars(buf.data(), buf.data() + buf.size(), x, std::chars_format::fixed, decimals);
  return std::string(buf.data(), r.ptr);
}

std::string percent(double ratio) { return fixed(ratio * 100, 1) + "%"; }

m::inference_scope scope_of(std::string_view s) {
  if (s == "geo") return m::inference_scope::geo;
  if (s == "global") return m::inference_scope::global;
  return m::inference_scope::in_region;
}

double ratio(money_total a, money_total b) {
  return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b);
}

// ---- the window ----------------------------------------------------------------------------

struct window {
  std::int64_t since = 0;
  std::int64_t length_ms = 0;
  std::size_t minutes = 0;
  money_total month_ms = 0;                                     ///< options::hours_per_month in ms
  std::array<std::uint64_t, hours_per_week> minutes_in_hour{};  ///< window minutes per bucket

  explicit window(const options& o) : since(o.since_ms) {
    length_ms = std::max<std::int64_t>(0, o.until_ms - o.since_ms);
    minutes = static_cast<std::size_t>((length_ms + ms_per_minute - 1) / ms_per_minute);
    month_ms = static_cast<money_total>(std::llround(o.hours_per_month * ms_per_hour));
    for (std::size_t i = 0; i < minutes; ++i) {
      ++minutes_in_hour[hour_of_week_at(since + static_cast<std::int64_t>(i) * ms_per_minute)];
    }
  }
  /// An amount over the window scaled to a month.
  money_total per_month(money_total x) const {
    return length_ms == 0 ? 0 : div_round(x * month_ms, length_ms);
  }
  /// A price per hour (pico) over the window, and over a month.
  money_total hourly_over_window(money_total h) const {
    return div_round(h * length_ms, ms_per_hour);
  }
  money_total hourly_per_month(money_total h) const { return div_round(h * month_ms, ms_per_hour); }
  bool contains(std::int64_t t) const { return t >= since && t - since < length_ms; }
  std::size_t minute_of(std::int64_t t) const {
    return static_cast<std::size_t>((t - since) / ms_per_minute);
  }
};

// ---- traffic of one group ------------------------------------------------------------------

/// Token load per minute of the window and per hour of the week; arrays allocated on first use.
struct traffic {
  std::uint64_t requests = 0;
  std::uint64_t in_tokens = 0, out_tokens = 0;
  std::vector<std::uint64_t> in, out;  ///< per minute
  std::array<std::uint64_t, hours_per_week> week{};

  void add(const window& w, const request_row& row) {
    if (in.empty()) {
      in.assign(w.minutes, 0);
      out.assign(w.minutes, 0);
    }
    const std::uint64_t i = row.input_tokens + row.cache_read_tokens + row.cache_write_tokens;
    const std::size_t minute = w.minute_of(row.time_ms);
    ++requests;
    in_tokens += i;
    out_tokens += row.output_tokens;
    in[minute] += i;
    out[minute] += row.output_tokens;
    week[hour_of_week_at(row.time_ms)] += i + row.output_tokens;
  }
};

/// Nearest-rank percentiles over every minute of the window (idle minutes count as zero).
load_summary summarise(const std::vector<std::uint64_t>& per_minute, std::size_t minutes) {
  load_summary s;
  if (minutes == 0) return s;
  std::vector<std::uint64_t> v = per_minute;
  v.resize(minutes, 0);
  std::sort(v.begin(), v.end());
  const auto rank = [&](std::size_t pct) {
    const std::size_t r = (pct * minutes + 99) / 100;  // ceil(pct/100 x n)
    return static_cast<double>(v[std::max<std::size_t>(r, 1) - 1]);
  };
  s.p50 = rank(50);
  s.p95 = rank(95);
  s.p99 = rank(99);
  s.max = static_cast<double>(v.back());
  std::uint64_t sum = 0;
  for (const std::uint64_t x : v) sum += x;
  s.mean = static_cast<double>(sum) / static_cast<double>(minutes);
  return s;
}

std::vector<double> week_means(const traffic& t, const window& w) {
  std::vector<double> out(hours_per_week, 0.0);
  for (std::size_t h = 0; h < hours_per_week; ++h) {
    if (w.minutes_in_hour[h] == 0) continue;
    out[h] = static_cast<double>(t.week[h]) / static_cast<double>(w.minutes_in_hour[h]);
  }
  return out;
}

/// On-demand traffic of one (model, region, scope).
struct od_group {
  std::string model, region, scope;
  traffic load;
  std::vector<money_total> cost;  ///< on-demand cost per minute, as metered
  money_total on_demand = 0;

  void add(const window& w, const request_row& row) {
    load.add(w, row);
    if (cost.empty()) cost.assign(w.minutes, 0);
    cost[w.minute_of(row.time_ms)] += row.total_cost;
    on_demand += row.total_cost;
  }
};

/// Traffic through one ARN mapped as provisioned, in one region.
struct pt_group {
  std::string arn, model, region;
  m::inference_scope scope = m::inference_scope::in_region;
  double hourly_usd = 0;
  const m::rate_entry* entry = nullptr;  ///< on-demand rates of the mapping's base model
  traffic load;
  m::token_usage normal, long_context;  ///< token sums, split by the entry's long-context rule
};

void add_tokens(m::token_usage& sum, const request_row& row) {
  sum.input += row.input_tokens;
  sum.output += row.output_tokens;
  sum.cache_read += row.cache_read_tokens;
  sum.cache_write += row.cache_write_tokens;
  sum.cache_write_1h += row.cache_write_1h_tokens;
}

bool is_long_context(const m::rate_entry* e, const request_row& row) {
  if (e == nullptr || !e->long_context_threshold) return false;
  return row.input_tokens + row.cache_read_tokens + row.cache_write_tokens >
         *e->long_context_threshold;
}

// ---- rates ---------------------------------------------------------------------------------

/// The standard on-demand entry (standard tier and latency, not batch) at the window's end.
const m::rate_entry* on_demand_entry(const options& o, std::string_view model,
                                     std::string_view region, m::inference_scope scope) {
  m::price_query q;
  q.region = region;
  const std::int64_t at_ms = std::max(o.since_ms, o.until_ms - 1);
  q.at = std::chrono::system_clock::time_point(std::chrono::milliseconds(at_ms));
  return m::find_rate(*o.rates, model, scope, q);
}

std::string term_name(m::commitment_term t) { return std::string(m::to_string(t)); }

struct capacity {
  std::uint64_t in = 0, out = 0;
};

std::optional<capacity> capacity_of(const m::provisioned_entry& pe) {
  if (!pe.unit_input_tpm || !pe.unit_output_tpm) return std::nullopt;
  if (*pe.unit_input_tpm == 0 || *pe.unit_output_tpm == 0) return std::nullopt;
  return capacity{*pe.unit_input_tpm, *pe.unit_output_tpm};
}

// ---- Provisioned Throughput ----------------------------------------------------------------

/// Share of `c_in` + `c_out` tokens per minute used over the window (carried = the load up to
/// the capacity, per dimension and minute).
std::optional<double> used_share(const traffic& t, std::size_t minutes, money_total c_in,
                                 money_total c_out) {
  const money_total capacity_total = (c_in + c_out) * static_cast<money_total>(minutes);
  if (capacity_total == 0) return std::nullopt;
  money_total carried = 0;
  for (std::size_t i = 0; i < t.in.size(); ++i) {
    carried += std::min<money_total>(t.in[i], c_in) + std::min<money_total>(t.out[i], c_out);
  }
  return ratio(carried, capacity_total);
}

/// What `units` leave to on demand over the window: per minute, that minute's metered cost x
/// (1 - 1/r), r = the load over capacity of the fuller dimension, when r > 1.
money_total spill_of(const od_group& g, std::uint64_t units, capacity cap) {
  const money_total c_in = static_cast<money_total>(units) * cap.in;
  const money_total c_out = static_cast<money_total>(units) * cap.out;
  money_total spill = 0;
  for (std::size_t i = 0; i < g.cost.size(); ++i) {
    const money_total in = g.load.in[i], out = g.load.out[i];
    const bool by_input = in * c_out >= out * c_in;  // in/c_in >= out/c_out, without division
    const money_total load = by_input ? in : out, carried = by_input ? c_in : c_out;
    if (load > carried) spill += div_round(g.cost[i] * (load - carried), load);
  }
  return spill;
}

struct fit {
  std::uint64_t units = 0;
  money_total spill = 0;  ///< over the window
};

/// The unit count N in 1..Nmax (Nmax carries the busiest minute whole) minimising N x hourly x
/// window hours + spill(N). Commitment grows with N, so the search stops once it alone costs
/// more than the best total found: at most 1 + on-demand spend / (hourly x window hours) + 1
/// counts are priced, each in one pass over the minutes.
fit best_fit(const od_group& g, const window& w, m::pico_usd hourly, capacity cap) {
  std::uint64_t max_in = 0, max_out = 0;
  for (const std::uint64_t x : g.load.in) max_in = std::max(max_in, x);
  for (const std::uint64_t x : g.load.out) max_out = std::max(max_out, x);
  const std::uint64_t n_max = std::max<std::uint64_t>(
      {(max_in + cap.in - 1) / cap.in, (max_out + cap.out - 1) / cap.out, 1});
  if (hourly <= 0) return {n_max, 0};  // free units: enough to carry everything
  fit best;
  money_total best_total = std::numeric_limits<money_total>::max();
  for (std::uint64_t n = 1; n <= n_max; ++n) {
    const money_total commitment = w.hourly_over_window(static_cast<money_total>(n) * hourly);
    if (commitment >= best_total) break;
    const money_total spill = spill_of(g, n, cap);
    if (commitment + spill < best_total) {
      best_total = commitment + spill;
      best = {n, spill};
    }
  }
  return best;
}

std::string capacity_note(const m::provisioned_entry& pe, capacity cap, const od_group& g) {
  std::string note = "a unit carries " + std::to_string(cap.in) + " input + " +
                     std::to_string(cap.out) + " output TPM";
  if (!pe.capacity_source.empty()) note += " (" + pe.capacity_source + ")";
  if (scope_of(g.scope) != m::inference_scope::in_region) {
    note +=
        "; Provisioned Throughput serves no cross-region inference profile: this traffic "
        "would call the provisioned model in " +
        g.region;
  }
  return note;
}

buying_option provisioned_option(const od_group& g, const window& w, const m::provisioned_entry& pe,
                                 const m::model_unit_price& p) {
  buying_option o;
  o.mode = "provisioned";
  o.term = term_name(p.term);
  o.source = p.source;
  const std::optional<capacity> cap = capacity_of(pe);
  if (!cap) {
    const money_total one_unit = w.hourly_per_month(p.hourly);
    o.monthly = one_unit;  // a floor; the recommendation never picks it
    o.note =
        "a model unit's throughput is not in the rate table (AWS does not publish it): at "
        "least one unit costs " +
        usd(one_unit) +
        "/month; add model_unit.input_tpm/"
        "output_tpm from your account team to size it";
    return o;
  }
  const fit f = best_fit(g, w, p.hourly, *cap);
  o.units = f.units;
  o.spill = w.per_month(f.spill);
  o.monthly = w.hourly_per_month(static_cast<money_total>(f.units) * p.hourly) + *o.spill;
  o.utilisation = used_share(g.load, w.minutes, static_cast<money_total>(f.units) * cap->in,
                             static_cast<money_total>(f.units) * cap->out);
  o.note = capacity_note(pe, *cap, g);
  return o;
}

// ---- Reserved tier -------------------------------------------------------------------------

struct reservation {
  std::uint64_t tpm = 0;
  money_total overflow = 0;  ///< over the window, billed on demand
  money_total used = 0;      ///< token-minutes of the reservation used
};

/// The reservation R >= `minimum` minimising R/1000 x price x window hours + overflow x rate.
/// That cost is convex and piecewise linear in R with its breaks at the minute loads, so the
/// optimum is the minimum or one of the loads above it. Costs are compared scaled by
/// 1000 x ms/hour, so exactly.
reservation reserve(std::vector<std::uint64_t> loads, std::uint64_t minimum, m::pico_usd price,
                    m::rate_micro_per_m rate, const window& w) {
  loads.resize(w.minutes, 0);
  std::sort(loads.begin(), loads.end());
  std::vector<money_total> prefix(loads.size() + 1, 0);
  for (std::size_t i = 0; i < loads.size(); ++i) prefix[i + 1] = prefix[i] + loads[i];
  const money_total scale = money_total{tpm_per_reserved_block} * ms_per_hour;
  const auto at = [&](std::uint64_t r) {
    const auto j =
        static_cast<std::size_t>(std::upper_bound(loads.begin(), loads.end(), r) - loads.begin());
    const money_total above = static_cast<money_total>(loads.size() - j);
    const money_total excess = prefix.back() - prefix[j] - above * r;
    const money_total cost =
        static_cast<money_total>(r) * price * w.length_ms + excess * rate * scale;
    return std::pair{cost, reservation{r, excess * rate, prefix[j] + above * r}};
  };
  auto best = at(minimum);
  for (std::size_t i = 0; i < loads.size(); ++i) {
    if (loads[i] <= minimum || (i > 0 && loads[i] == loads[i - 1])) continue;
    const auto candidate = at(loads[i]);
    if (candidate.first < best.first) best = candidate;
  }
  return best.second;
}

money_total reserved_monthly(std::uint64_t tpm, m::pico_usd price, const window& w) {
  return div_round(static_cast<money_total>(tpm) * price * w.month_ms,
                   money_total{tpm_per_reserved_block} * ms_per_hour);
}

buying_option reserved_option(const od_group& g, const window& w, const m::reserved_tier_price& p,
                              const m::rate_entry& od) {
  buying_option o;
  o.mode = "reserved";
  o.term = term_name(p.term);
  o.source = p.source;
  const reservation in =
      reserve(g.load.in, p.min_input_tpm, p.input_per_1k_tpm_hour, od.rates.input, w);
  money_total commitment = reserved_monthly(in.tpm, p.input_per_1k_tpm_hour, w);
  money_total overflow = in.overflow, used = in.used, reserved_tpm = in.tpm;
  o.note = "overflow priced at the standard rates (cached tokens at the input rate)";
  if (p.output_per_1k_tpm_hour) {
    const reservation out =
        reserve(g.load.out, p.min_output_tpm, *p.output_per_1k_tpm_hour, od.rates.output, w);
    o.reserved_output_tpm = out.tpm;
    commitment += reserved_monthly(out.tpm, *p.output_per_1k_tpm_hour, w);
    overflow += out.overflow;
    used += out.used;
    reserved_tpm += out.tpm;
  } else {
    overflow += static_cast<money_total>(g.load.out_tokens) * od.rates.output;
    o.note += "; no output reservation price in the rate table: output billed on demand";
  }
  o.units = in.tpm;
  o.spill = w.per_month(overflow);
  o.monthly = commitment + *o.spill;
  const money_total capacity_total = reserved_tpm * static_cast<money_total>(w.minutes);
  if (capacity_total > 0) o.utilisation = ratio(used, capacity_total);
  return o;
}

// ---- break-even and the recommendation -----------------------------------------------------

/// Per term: the tokens per minute (at the group's input/output mix, at the on-demand rates) at
/// which one unit costs what on demand does; and, with a unit's capacity, the utilisation.
break_even break_even_of(const od_group& g, const m::provisioned_entry& pe,
                         const m::rate_entry& od) {
  break_even b;
  const auto in = static_cast<double>(g.load.in_tokens);
  const auto out = static_cast<double>(g.load.out_tokens);
  const auto rate_in = static_cast<double>(od.rates.input);  // pico-USD per token
  const auto rate_out = static_cast<double>(od.rates.output);
  if (in + out <= 0) return b;
  const double per_token = (in * rate_in + out * rate_out) / (in + out);
  const std::optional<capacity> cap = capacity_of(pe);
  for (const m::model_unit_price& p : pe.model_units) {
    const auto hourly = static_cast<double>(p.hourly);
    if (per_token > 0) b.tokens_per_minute.emplace_back(term_name(p.term), hourly / 60 / per_token);
    if (!cap) continue;
    const double full =
        60 * (static_cast<double>(cap->in) * rate_in + static_cast<double>(cap->out) * rate_out);
    if (full > 0) b.utilisation.emplace_back(term_name(p.term), hourly / full);
  }
  return b;
}

/// The cheapest option whose cost is known: a provisioned option without units is a floor.
const buying_option& cheapest(const std::vector<buying_option>& opts, bool commitments_only) {
  const buying_option* best = commitments_only ? nullptr : &opts.front();
  for (const buying_option& o : opts) {
    if (o.mode == "on_demand" || !o.monthly || (o.mode == "provisioned" && !o.units)) continue;
    if (best == nullptr || *o.monthly < *best->monthly) best = &o;
  }
  return best != nullptr ? *best : opts.front();
}

std::string usd_rate(money_total pico) {
  return "$" + m::format_usd(pico, pico < m::pico_per_usd ? 4 : 2);
}

double average_tpm(const od_group& g, const window& w) {
  if (w.minutes == 0) return 0;
  return static_cast<double>(g.load.in_tokens + g.load.out_tokens) / static_cast<double>(w.minutes);
}

std::optional<double> term_value(const std::vector<std::pair<std::string, double>>& v,
                                 std::string_view term) {
  for (const auto& [t, x] : v) {
    if (t == term) return x;
  }
  return std::nullopt;
}

/// "N model units on the 1_month term" / "R input TPM (+ O output TPM) reserved on ...".
std::string describe(const buying_option& o) {
  if (o.mode == "provisioned") {
    return std::to_string(o.units.value_or(0)) + " model unit" + (o.units == 1u ? "" : "s") +
           " on the " + o.term + " term";
  }
  std::string s = std::to_string(o.units.value_or(0)) + " input TPM";
  if (o.reserved_output_tpm) s += " + " + std::to_string(*o.reserved_output_tpm) + " output TPM";
  return s + " reserved on the " + o.term + " term";
}

std::string used_clause(const buying_option& o) {
  if (!o.utilisation) return "";
  std::string s = ", " + percent(*o.utilisation) + " used";
  if (*o.utilisation < scale_down_below) s += " (below 50%: a scale-down flag)";
  return s;
}

std::string commit_sentence(const buying_mode_advice& a, const buying_option& best,
                            const od_group& g, const window& w) {
  std::string s = "Buy " + describe(best) + ": " + usd(*best.monthly) + "/month";
  if (best.spill && *best.spill > 0) s += " (" + usd(*best.spill) + " of it billed on demand)";
  s += " against " + usd(a.on_demand_monthly) + "/month on demand" + used_clause(best);
  const auto be = term_value(a.breakeven.tokens_per_minute, best.term);
  if (best.mode == "provisioned" && be) {
    const double avg = average_tpm(g, w);
    s += "; your average " + fixed(avg, 0) + " tokens/min is " + (avg < *be ? "below" : "above") +
         " one unit's break-even of " + fixed(*be, 0) + " tokens/min";
  }
  return s + ".";
}

const m::model_unit_price* cheapest_unit(const m::provisioned_entry* pe) {
  const m::model_unit_price* best = nullptr;
  if (pe == nullptr) return best;
  for (const m::model_unit_price& p : pe->model_units) {
    if (best == nullptr || p.hourly < best->hourly) best = &p;
  }
  return best;
}

/// Against a unit whose throughput is unknown: the average load against its break-even.
std::string break_even_clause(const buying_mode_advice& a, const od_group& g, const window& w,
                              const m::model_unit_price& unit) {
  const auto be = term_value(a.breakeven.tokens_per_minute, term_name(unit.term));
  if (!be) return "";
  const double avg = average_tpm(g, w);
  return "your average " + fixed(avg, 0) + " tokens/min is " + (avg < *be ? "below" : "above") +
         " one unit's break-even of " + fixed(*be, 0) + " tokens/min on the " +
         term_name(unit.term) + " term" +
         (avg < *be ? "" : ", so ask your account team what a unit carries");
}

bool unit_size_unknown(const buying_mode_advice& a) {
  return std::any_of(a.options.begin(), a.options.end(),
                     [](const buying_option& o) { return o.mode == "provisioned" && !o.units; });
}

/// On demand is cheapest (or no commitment's cost is known): say why, in numbers.
std::string stay_sentence(const buying_mode_advice& a, const od_group& g, const window& w,
                          const m::provisioned_entry* pe) {
  if (pe == nullptr || (pe->model_units.empty() && pe->reserved.empty())) {
    return "Stay on demand: the rate table has no Provisioned Throughput or Reserved tier price "
           "for " +
           g.model + " in " + g.region + ".";
  }
  const money_total per_hour =
      w.length_ms == 0 ? 0 : div_round(g.on_demand * ms_per_hour, w.length_ms);
  const m::model_unit_price* unit = cheapest_unit(pe);
  if (unit != nullptr && per_hour < unit->hourly) {
    return "Stay on demand: one model unit at " + usd_rate(unit->hourly) + "/h (" +
           term_name(unit->term) + " term) costs more than all your traffic at " +
           usd_rate(per_hour) + "/h on average, whatever a unit carries.";
  }
  std::string s = "Stay on demand";
  const buying_option& commit = cheapest(a.options, true);
  if (commit.mode != "on_demand") {
    s += ": " + usd(a.on_demand_monthly) + "/month against " + usd(*commit.monthly) +
         "/month for the cheapest commitment, " + describe(commit) + used_clause(commit);
  }
  const std::string be = unit != nullptr ? break_even_clause(a, g, w, *unit) : "";
  if (unit_size_unknown(a) && !be.empty()) {
    s += (commit.mode != "on_demand" ? "; until a model unit's throughput is known, "
                                     : " until a model unit's throughput is known: ") +
         be;
  } else if (commit.mode == "on_demand") {
    s += ": no commitment's cost can be computed from the rate table";
  }
  return s + ".";
}

std::string recommend(const buying_mode_advice& a, const od_group& g, const window& w,
                      const m::provisioned_entry* pe) {
  const buying_option& best = cheapest(a.options, false);
  if (best.mode != "on_demand") return commit_sentence(a, best, g, w);
  return stay_sentence(a, g, w, pe);
}

buying_option on_demand_option(const buying_mode_advice& a) {
  buying_option o;
  o.mode = "on_demand";
  o.term = "none";
  o.monthly = a.on_demand_monthly;
  o.source = "the ledger (as metered)";
  return o;
}

void add_commitments(buying_mode_advice& a, const od_group& g, const window& w,
                     const m::provisioned_entry& pe, const m::rate_entry* od) {
  for (const m::model_unit_price& p : pe.model_units) {
    a.options.push_back(provisioned_option(g, w, pe, p));
  }
  if (od == nullptr) return;
  for (const m::reserved_tier_price& p : pe.reserved) {
    if (p.scope && *p.scope != scope_of(g.scope)) continue;
    a.options.push_back(reserved_option(g, w, p, *od));
  }
  a.breakeven = break_even_of(g, pe, *od);
}

buying_mode_advice advise(const od_group& g, const options& o, const window& w, report& r) {
  buying_mode_advice a;
  a.model = g.model;
  a.region = g.region;
  a.scope = g.scope;
  a.requests = g.load.requests;
  a.on_demand = g.on_demand;
  a.on_demand_monthly = w.per_month(g.on_demand);
  a.input_tpm = summarise(g.load.in, w.minutes);
  a.output_tpm = summarise(g.load.out, w.minutes);
  a.hour_of_week = week_means(g.load, w);
  a.options.push_back(on_demand_option(a));
  const m::rate_entry* od = on_demand_entry(o, g.model, g.region, scope_of(g.scope));
  if (od == nullptr) {
    r.notes.push_back("no on-demand rate for " + g.model + " in " + g.region + " (" + g.scope +
                      ") in the rate table: its Reserved tier and break-even are not computed");
  }
  const m::provisioned_entry* pe = m::find_provisioned(*o.rates, g.model, g.region);
  if (pe != nullptr) add_commitments(a, g, w, *pe, od);
  a.recommendation = recommend(a, g, w, pe);
  return a;
}

// ---- ARNs mapped as provisioned ------------------------------------------------------------

/// hourly_usd x window hours in pico-USD, rounded once.
money_total committed_of(double hourly_usd, const window& w) {
  const long double pico = static_cast<long double>(hourly_usd) * m::pico_per_usd *
                           static_cast<long double>(w.length_ms) / ms_per_hour;
  return static_cast<money_total>(std::roundl(pico));
}

struct unit_guess {
  std::uint64_t units = 0;  ///< 0: unknown
  std::string term;
  std::optional<capacity> cap;
};

/// The mapping has no unit count: hourly_usd / a term's unit price, when it divides within 1%.
unit_guess guess_units(const pt_group& g, const options& o) {
  unit_guess guess;
  const m::provisioned_entry* pe = m::find_provisioned(*o.rates, g.model, g.region);
  if (pe == nullptr) return guess;
  guess.cap = capacity_of(*pe);
  const long double hourly = static_cast<long double>(g.hourly_usd) * m::pico_per_usd;
  for (const m::model_unit_price& p : pe->model_units) {
    if (p.hourly <= 0) continue;
    const long double n = std::roundl(hourly / static_cast<long double>(p.hourly));
    if (n < 1 || std::fabs(n * static_cast<long double>(p.hourly) - hourly) >
                     unit_match_tolerance * hourly) {
      continue;
    }
    guess.units = static_cast<std::uint64_t>(n);
    guess.term = term_name(p.term);
    break;
  }
  return guess;
}

std::string utilisation_clause(const provisioned_usage& u, const unit_guess& guess) {
  if (u.utilisation) {
    std::string s = "; taking its price as " + std::to_string(guess.units) + " unit" +
                    (guess.units == 1 ? "" : "s") + " on the " + guess.term + " term, " +
                    percent(*u.utilisation) + " of them was used";
    if (*u.utilisation < scale_down_below) s += " (below 50%: scale down)";
    return s;
  }
  if (guess.units != 0) {
    return "; its price matches " + std::to_string(guess.units) + " unit(s) on the " + guess.term +
           " term, but a unit's throughput is not in the rate table, so its "
           "utilisation is unknown";
  }
  return "; utilisation unknown: the mapping has no unit count and its hourly price matches no "
         "model-unit price in the rate table";
}

std::string keep_or_drop(const provisioned_usage& u, const pt_group& g, const unit_guess& guess) {
  std::string s;
  const money_total eq = u.on_demand_equivalent;
  if (g.entry == nullptr) {
    s = "Cannot compare: no on-demand rate for " + g.model + " in " + g.region + " against the " +
        usd(u.committed) + " committed";
  } else if (eq > u.committed) {
    s = "Keep it: the same traffic would have cost " + usd(eq) + " on demand";
    if (u.committed > 0) s += ", " + fixed(ratio(eq, u.committed), 2) + "x";
    s += " the " + usd(u.committed) + " committed";
  } else if (eq == 0) {
    s = "Drop it: " + usd(u.committed) + " committed carried no billable tokens";
  } else {
    s = "Drop it: the " + usd(u.committed) + " committed is " + fixed(ratio(u.committed, eq), 2) +
        "x the " + usd(eq) + " the same traffic would have cost on demand";
  }
  return s + utilisation_clause(u, guess) + ".";
}

provisioned_usage usage_of(const pt_group& g, const options& o, const window& w, report& r) {
  provisioned_usage u;
  u.arn = g.arn;
  u.model = g.model;
  u.region = g.region;
  u.requests = g.load.requests;
  u.committed = committed_of(g.hourly_usd, w);
  u.input_tpm = summarise(g.load.in, w.minutes);
  u.output_tpm = summarise(g.load.out, w.minutes);
  if (g.entry != nullptr) {
    u.on_demand_equivalent =
        m::cost_at(*g.entry, g.normal, false) + m::cost_at(*g.entry, g.long_context, true);
  } else {
    r.notes.push_back("no on-demand rate for " + g.model + " in " + g.region +
                      ": the provisioned model " + g.arn + " is not compared with on demand");
  }
  const unit_guess guess = guess_units(g, o);
  if (guess.units != 0 && guess.cap) {
    const auto n = static_cast<money_total>(guess.units);
    u.utilisation = used_share(g.load, w.minutes, n * guess.cap->in, n * guess.cap->out);
  }
  u.recommendation = keep_or_drop(u, g, guess);
  return u;
}

}  // namespace

// ---- the analysis --------------------------------------------------------------------------

struct buying_mode_analysis::impl {
  const options& opts;
  window w;
  std::map<std::tuple<std::string, std::string, std::string>, od_group, std::less<>> groups;
  std::map<std::tuple<std::string, std::string>, pt_group, std::less<>> mapped;

  explicit impl(const options& o) : opts(o), w(o) {}

  void add_mapped(const request_row& row, const m::resolved_model_view& v) {
    auto it = mapped.find(std::tuple{std::string_view(v.mapping->arn), row.region});
    if (it == mapped.end()) {
      pt_group g;
      g.arn = v.mapping->arn;
      g.model = v.base_model;
      g.region = row.region;
      g.scope = v.scope;
      g.hourly_usd = *v.mapping->hourly_usd;
      g.entry = on_demand_entry(opts, g.model, g.region, g.scope);
      it = mapped.emplace(std::tuple{g.arn, g.region}, std::move(g)).first;
    }
    pt_group& g = it->second;
    g.load.add(w, row);
    add_tokens(is_long_context(g.entry, row) ? g.long_context : g.normal, row);
  }

  void add_on_demand(const request_row& row) {
    auto it = groups.find(std::tuple{row.model_base, row.region, row.scope});
    if (it == groups.end()) {
      od_group g;
      g.model = row.model_base;
      g.region = row.region;
      g.scope = row.scope;
      it = groups.emplace(std::tuple{g.model, g.region, g.scope}, std::move(g)).first;
    }
    it->second.add(w, row);
  }
};

buying_mode_analysis::buying_mode_analysis(const options& opts)
    : impl_(std::make_unique<impl>(opts)) {}
buying_mode_analysis::~buying_mode_analysis() = default;

void buying_mode_analysis::add(const request_row& row) {
  impl& s = *impl_;
  if (s.opts.rates == nullptr || !s.w.contains(row.time_ms)) return;
  if (row.outcome == "refused" || row.batch) return;  // batch never runs on provisioned capacity
  if (s.opts.mappings != nullptr) {
    const m::resolved_model_view v = m::resolve_model_view(row.model_requested, *s.opts.mappings);
    if (v.mapping != nullptr && v.mapping->hourly_usd) {
      s.add_mapped(row, v);
      return;
    }
  }
  if (row.model_base.empty() || !row.priced) return;
  s.add_on_demand(row);
}

void buying_mode_analysis::finish(report& r) {
  const impl& s = *impl_;
  if (s.opts.rates == nullptr) return;
  for (const auto& [key, g] : s.groups) r.buying_mode.push_back(advise(g, s.opts, s.w, r));
  std::stable_sort(r.buying_mode.begin(), r.buying_mode.end(),
                   [](const auto& a, const auto& b) { return a.on_demand > b.on_demand; });
  for (const auto& [key, g] : s.mapped) r.provisioned.push_back(usage_of(g, s.opts, s.w, r));
  std::stable_sort(r.provisioned.begin(), r.provisioned.end(),
                   [](const auto& a, const auto& b) { return a.committed > b.committed; });
}

}  // namespace bedrock_meter::advice
