#pragma once
/// Budgets, the pure core: scopes, periods aligned to a time zone, thresholds, and admission by
/// reservation so a burst of concurrent requests cannot push spend past a `block` budget's limit.
/// No I/O, no clock: every call takes `now`, so tests and the proxy inject time.
///
/// Thread safety: none inside. A `budget_account` is a plain value; the proxy serialises access
/// to each account itself (a mutex or a strand per budget). That keeps this code deterministic.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "metering/money.hpp"
#include "metering/tz.hpp"

namespace bedrock_meter::metering {

/// Instants are UTC with nanosecond resolution (int64 ns covers 1677-2262).
using instant = std::chrono::sys_time<std::chrono::nanoseconds>;

/// Who a request is attributed to.
struct request_attribution {
  std::string_view team;
  std::string_view app;
  std::string_view identity;
  std::string_view model;  // base model id
};

/// Which requests a budget counts: every set field must equal; no field set means everything.
struct budget_scope {
  std::optional<std::string> team;
  std::optional<std::string> app;
  std::optional<std::string> identity;
  std::optional<std::string> model;

  bool matches(const request_attribution& who) const noexcept;
  bool operator==(const budget_scope&) const = default;
};

enum class period_kind { daily, weekly, monthly, custom };

/// A budget period in the budget's time zone. Weeks start on Monday. A custom period is
/// `custom_days` long, repeating from `custom_start` (and backwards before it).
struct budget_period {
  period_kind kind = period_kind::monthly;
  std::chrono::year_month_day custom_start{};
  int custom_days = 0;
  bool operator==(const budget_period&) const = default;
};

/// [start, end) in UTC.
struct period_window {
  instant start;
  instant end;
  friend bool operator==(const period_window&, const period_window&) = default;
};

/// The period containing `now`: boundaries are local midnights converted to UTC exactly, so a
/// New York day on a DST switch lasts 23 or 25 hours, and a month is its true length. Where
/// midnight was skipped the period starts when the gap ends. A custom period with
/// `custom_days < 1` is treated as 1 day (`validate_budget` rejects it first).
period_window period_bounds(const budget_period& period, const time_zone& zone, instant now);

enum class budget_action { alert, block };

struct budget_def {
  std::string name;
  budget_scope scope;
  budget_period period;
  pico_usd limit = 0;
  std::vector<int> warning_percents;  // e.g. 50, 80, 100; ascending, each 1..1000
  budget_action action = budget_action::alert;
  bool operator==(const budget_def&) const = default;
};

/// Empty when the definition is usable, else why not.
std::string validate_budget(const budget_def& def);

/// Warning percents crossed when period spend goes from `before` to `after`: p is crossed when
/// before < p% of limit <= after (exact integer arithmetic). Spend only grows within a period,
/// so each threshold is reported once per period.
std::vector<int> thresholds_crossed(const std::vector<int>& percents, pico_usd limit,
                                    money_total before, money_total after);

/// A held reservation: what the request may at most cost.
struct reservation {
  std::uint64_t id = 0;
  pico_usd amount = 0;
};

enum class reserve_status {
  reserved,  // admitted; settle or release the reservation when the request ends
  blocked,   // spent + reserved + worst case would exceed the limit
  invalid,   // negative worst case
};

struct reserve_result {
  reserve_status status = reserve_status::invalid;
  reservation held;
};

struct settle_result {
  bool ok = false;              // false: unknown (or already settled) reservation
  pico_usd overrun = 0;         // actual - reserved when the estimate was too low, else 0
  std::vector<int> thresholds;  // warning percents this charge crossed
};

/// One budget's period-to-date state.
///
/// Admission without overshoot: `try_reserve` admits a request only if
/// spent + reserved + worst_case <= limit, so a request whose worst case alone exceeds what is
/// left is blocked, and however many requests are in flight at once their worst cases together
/// fit in the limit. Spend can pass the limit only when an estimate was wrong (actual >
/// reserved); `settle` reports and counts such overruns.
///
/// Rollover: spend belongs to the period in which the request *arrived*, as the ledger records
/// it (`time_ms` is the arrival time), so a restart that reloads period-to-date spend from the
/// ledger agrees with what was counted live. `settle`/`charge` take the arrival instant: a
/// request that arrived before the current period began releases its reservation but books
/// nothing here (its cost belongs to the ended period). Without an arrival instant, spend is
/// booked to the current period.
class budget_account {
 public:
  budget_account(budget_def def, std::shared_ptr<const time_zone> zone, instant now);

  /// Moves to the period containing `now` if the current one has ended (end is exclusive: at
  /// exactly `end` the new period has begun). Returns true when it rolled.
  bool roll(instant now);

  /// Period-to-date spend loaded from the ledger at start (replaces current spend).
  void restore_spent(instant now, money_total spent);
  /// The same account under a new definition that counts the same requests over the same
  /// periods (only the limit, action or warnings differ): spend, reservations and their ids
  /// carry over, so a reservation made under the old definition settles here.
  void redefine(budget_def def);

  reserve_result try_reserve(instant now, pico_usd worst_case);
  /// Releases `r` and books `actual`. A failed request settles with actual 0.
  settle_result settle(instant now, const reservation& r, pico_usd actual,
                       std::optional<instant> arrived = std::nullopt);
  /// Books spend without a reservation (alert budgets, or requests admitted elsewhere).
  std::vector<int> charge(instant now, pico_usd actual,
                          std::optional<instant> arrived = std::nullopt);

  /// True when the budget blocks and spend has reached its limit: new requests are refused
  /// regardless of their estimate.
  bool exhausted(instant now);

  const budget_def& def() const noexcept { return def_; }
  money_total spent() const noexcept { return spent_; }
  money_total reserved() const noexcept { return reserved_; }
  std::size_t outstanding() const noexcept { return held_.size(); }
  const period_window& window() const noexcept { return window_; }
  std::uint64_t blocked_count() const noexcept { return blocked_; }
  std::uint64_t overrun_count() const noexcept { return overruns_; }
  money_total overrun_total() const noexcept { return overrun_total_; }

 private:
  std::vector<int> book(money_total amount);

  budget_def def_;
  std::shared_ptr<const time_zone> zone_;
  period_window window_;
  money_total spent_ = 0;
  money_total reserved_ = 0;
  std::unordered_map<std::uint64_t, pico_usd> held_;
  std::uint64_t next_id_ = 1;
  std::uint64_t blocked_ = 0;
  std::uint64_t overruns_ = 0;
  money_total overrun_total_ = 0;
};

/// Input tokens are estimated from the request body size at this many bytes per token. English
/// text averages about 4 bytes per token, and the JSON envelope adds bytes that are not tokens,
/// so 2 over-estimates typical requests about twofold: conservative for admission, and wrong
/// only for bodies denser than 2 bytes per token (those show up as counted overruns).
inline constexpr std::uint64_t input_bytes_per_token = 2;

/// ceil(body_bytes / bytes_per_token); bytes_per_token 0 is treated as 1.
std::uint64_t estimate_input_tokens(std::uint64_t body_bytes,
                                    std::uint64_t bytes_per_token = input_bytes_per_token) noexcept;

/// Output tokens: the request's max_tokens / maxTokens when given (capped by the model's cap,
/// which Bedrock enforces anyway), else the model's cap.
std::uint64_t estimate_output_tokens(std::optional<std::uint64_t> max_tokens,
                                     std::uint64_t model_output_cap) noexcept;

/// Worst-case cost at the given rates; saturates at the largest pico_usd instead of overflowing
/// (a saturated estimate simply blocks).
pico_usd worst_case_cost(std::uint64_t input_tokens, std::uint64_t output_tokens,
                         rate_micro_per_m input_rate, rate_micro_per_m output_rate) noexcept;

}  // namespace bedrock_meter::metering
