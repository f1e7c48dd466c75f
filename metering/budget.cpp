#include "metering/budget.hpp"

#include <limits>

namespace bedrock_meter::metering {
namespace {

namespace chr = std::chrono;

bool field_matches(const std::optional<std::string>& want, std::string_view have) noexcept {
  return !want || *want == have;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
  const std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

instant local_midnight_to_utc(const time_zone& zone, chr::days day) {
  const chr::local_seconds local{chr::duration_cast<chr::seconds>(day)};
  return instant{zone.to_utc(local).time_since_epoch()};
}

}  // namespace

bool budget_scope::matches(const request_attribution& who) const noexcept {
  return field_matches(team, who.team) && field_matches(app, who.app) &&
         field_matches(identity, who.identity) && field_matches(model, who.model);
}

period_window period_bounds(const budget_period& period, const time_zone& zone, instant now) {
  const auto utc_s = chr::floor<chr::seconds>(now);
  const auto local = zone.to_local(utc_s);
  const chr::days today = chr::floor<chr::days>(local).time_since_epoch();
  chr::days start{};
  chr::days end{};
  switch (period.kind) {
    case period_kind::daily:
      start = today;
      end = today + chr::days{1};
      break;
    case period_kind::weekly: {
      const unsigned from_monday =
          chr::weekday{chr::sys_days{today}}.iso_encoding() - 1;  // Monday 0 .. Sunday 6
      start = today - chr::days{from_monday};
      end = start + chr::days{7};
      break;
    }
    case period_kind::monthly: {
      const chr::year_month_day ymd{chr::sys_days{today}};
      const auto first = ymd.year() / ymd.month() / chr::day{1};
      start = chr::sys_days{first}.time_since_epoch();
      end = chr::sys_days{first + chr::months{1}}.time_since_epoch();
      break;
    }
    case period_kind::custom: {
      const std::int64_t len = period.custom_days < 1 ? 1 : period.custom_days;
      const auto origin = chr::sys_days{period.custom_start}.time_since_epoch().count();
      const std::int64_t k = floor_div(today.count() - origin, len);
      start = chr::days{origin + k * len};
      end = start + chr::days{len};
      break;
    }
  }
  return period_window{local_midnight_to_utc(zone, start), local_midnight_to_utc(zone, end)};
}

std::string validate_budget(const budget_def& def) {
  if (def.name.empty()) return "budget needs a name";
  if (def.limit <= 0) return "budget " + def.name + ": limit must be positive";
  if (def.period.kind == period_kind::custom) {
    if (!def.period.custom_start.ok()) return "budget " + def.name + ": invalid custom start";
    if (def.period.custom_days < 1) return "budget " + def.name + ": custom period needs days";
  }
  int previous = 0;
  for (const int p : def.warning_percents) {
    if (p < 1 || p > 1000 || p <= previous) {
      return "budget " + def.name + ": thresholds must be ascending percents in 1..1000";
    }
    previous = p;
  }
  return {};
}

std::vector<int> thresholds_crossed(const std::vector<int>& percents, pico_usd limit,
                                    money_total before, money_total after) {
  std::vector<int> crossed;
  for (const int p : percents) {
    // spend >= p% of limit  <=>  spend * 100 >= p * limit, exact in 128 bits.
    const money_total mark = static_cast<money_total>(p) * limit;
    if (before * 100 < mark && after * 100 >= mark) crossed.push_back(p);
  }
  return crossed;
}

budget_account::budget_account(budget_def def, std::shared_ptr<const time_zone> zone, instant now)
    : def_(std::move(def)),
      zone_(zone ? std::move(zone) : std::make_shared<const time_zone>()),
      window_(period_bounds(def_.period, *zone_, now)) {}

bool budget_account::roll(instant now) {
  // Only forward: a clock stepping back must not wipe the period's spend.
  if (now < window_.end) return false;
  window_ = period_bounds(def_.period, *zone_, now);
  spent_ = 0;  // outstanding reservations carry over: their cost lands in this period
  return true;
}

void budget_account::redefine(budget_def def) { def_ = std::move(def); }

void budget_account::restore_spent(instant now, money_total spent) {
  roll(now);
  spent_ = spent;
}

reserve_result budget_account::try_reserve(instant now, pico_usd worst_case) {
  if (worst_case < 0) return reserve_result{reserve_status::invalid, {}};
  roll(now);
  if (spent_ >= def_.limit || spent_ + reserved_ + worst_case > def_.limit) {
    ++blocked_;
    return reserve_result{reserve_status::blocked, {}};
  }
  const reservation r{next_id_++, worst_case};
  held_.emplace(r.id, r.amount);
  reserved_ += r.amount;
  return reserve_result{reserve_status::reserved, r};
}

settle_result budget_account::settle(instant now, const reservation& r, pico_usd actual,
                                     std::optional<instant> arrived) {
  roll(now);
  const auto it = held_.find(r.id);
  if (it == held_.end() || actual < 0) return settle_result{};
  const pico_usd held = it->second;
  held_.erase(it);
  reserved_ -= held;
  settle_result result;
  result.ok = true;
  if (actual > held) {
    result.overrun = actual - held;
    ++overruns_;
    overrun_total_ += result.overrun;
  }
  if (arrived && *arrived < window_.start) return result;  // belongs to the ended period
  result.thresholds = book(actual);
  return result;
}

std::vector<int> budget_account::charge(instant now, pico_usd actual,
                                        std::optional<instant> arrived) {
  roll(now);
  if (actual <= 0) return {};
  if (arrived && *arrived < window_.start) return {};
  return book(actual);
}

bool budget_account::exhausted(instant now) {
  roll(now);
  return def_.action == budget_action::block && spent_ >= def_.limit;
}

std::vector<int> budget_account::book(money_total amount) {
  const money_total before = spent_;
  spent_ += amount;
  return thresholds_crossed(def_.warning_percents, def_.limit, before, spent_);
}

std::uint64_t estimate_input_tokens(std::uint64_t body_bytes,
                                    std::uint64_t bytes_per_token) noexcept {
  if (bytes_per_token == 0) bytes_per_token = 1;
  return body_bytes / bytes_per_token + (body_bytes % bytes_per_token != 0 ? 1 : 0);
}

std::uint64_t estimate_output_tokens(std::optional<std::uint64_t> max_tokens,
                                     std::uint64_t model_output_cap) noexcept {
  if (!max_tokens) return model_output_cap;
  if (model_output_cap != 0 && *max_tokens > model_output_cap) return model_output_cap;
  return *max_tokens;
}

pico_usd worst_case_cost(std::uint64_t input_tokens, std::uint64_t output_tokens,
                         rate_micro_per_m input_rate, rate_micro_per_m output_rate) noexcept {
  const money_total total =
      static_cast<money_total>(input_tokens) * (input_rate < 0 ? 0 : input_rate) +
      static_cast<money_total>(output_tokens) * (output_rate < 0 ? 0 : output_rate);
  constexpr pico_usd cap = std::numeric_limits<pico_usd>::max();
  return total > cap ? cap : static_cast<pico_usd>(total);
}

}  // namespace bedrock_meter::metering
