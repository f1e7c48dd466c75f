#pragma once
// Budgets in the proxy: which budgets a request falls under, admission by reservation before it
// is forwarded, settlement to its actual cost afterwards, and what `bedrock-meter budgets` and
// GET /api/budgets report. The arithmetic lives in metering/budget.hpp (pure, unit-tested); this
// adds the locking, the durable restore from the ledger, the optional shared store (Redis) and
// its fallback.
//
// One engine per config snapshot, shared by every worker. Each budget's account sits behind its
// own mutex (a few hundred nanoseconds per request in scope); accounts whose definition did not
// change carry over to the next snapshot on reload, with their spend and reservations.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "metering/budget.hpp"
#include "metering/money.hpp"

namespace bedrock_meter::accounting {

/// Budget accumulators shared by several replicas. Synchronous, short calls; one instance per
/// worker thread (not thread-safe). Amounts are pico-USD. The key of a budget's period is
/// (budget name, period start in UTC seconds), so a new period starts from zero by itself.
class shared_budget_store {
 public:
  enum class outcome : std::uint8_t { ok, blocked, unavailable };
  struct state {
    std::int64_t spent = 0;
    std::int64_t reserved = 0;
  };
  struct reserve_reply {
    outcome result = outcome::unavailable;
    std::string reservation_id;
    state after;
  };
  struct settle_reply {
    outcome result = outcome::unavailable;
    state before;
    state after;
  };

  virtual ~shared_budget_store() = default;
  /// Admits iff spent + reserved + worst_case <= limit, atomically across replicas.
  virtual reserve_reply reserve(std::string_view budget, std::int64_t period_start,
                                std::int64_t limit, std::int64_t worst_case,
                                std::chrono::seconds reservation_ttl,
                                std::chrono::seconds key_ttl) = 0;
  virtual settle_reply settle(std::string_view budget, std::int64_t period_start,
                              std::string_view reservation_id, std::int64_t actual,
                              std::chrono::seconds key_ttl) = 0;
  virtual settle_reply charge(std::string_view budget, std::int64_t period_start,
                              std::int64_t actual, std::chrono::seconds key_ttl) = 0;
  virtual std::optional<state> read(std::string_view budget, std::int64_t period_start) = 0;
  /// Sets spent only when the period's key does not exist yet (a fresh Redis learns the spend
  /// a replica's ledger knows; an existing count is never overwritten or added to).
  virtual outcome seed(std::string_view budget, std::int64_t period_start, std::int64_t spent,
                       std::chrono::seconds key_ttl) = 0;
};

/// Period-to-date spend of the requests a budget counts, from the ledger (`from` = period start).
/// nullopt when the ledger cannot answer (the budget then starts at zero, and a warning says so).
using budget_restore_fn = std::function<std::optional<metering::money_total>(
    const metering::budget_def& def, metering::instant from)>;

struct budget_hold {
  std::size_t index = 0;          // budget index in the engine
  metering::reservation local;    // id 0: no local reservation
  std::string remote_id;          // shared store reservation; empty: none
  std::int64_t period_start = 0;  // UTC seconds, the period the reservation was made in
};

struct budget_admission {
  enum class verdict : std::uint8_t {
    admitted,
    blocked,      // a block budget is exhausted or the worst case does not fit
    unavailable,  // shared store unreachable and the fallback is `closed`
  };
  verdict result = verdict::admitted;
  std::string budget;   // the budget that refused
  std::string message;  // what the client is told
  std::vector<budget_hold> holds;
  bool store_failed = false;  // the shared store failed during admission (fail-open admitted)
};

/// A warning threshold a settlement crossed (for the log line and the alert).
struct threshold_event {
  std::string budget;
  int percent = 0;
  metering::money_total spent = 0;
  metering::pico_usd limit = 0;
};

struct budget_status {
  std::string name;
  metering::budget_action action = metering::budget_action::alert;
  std::string scope;   // "team=research,app=chat" or "everything"
  std::string period;  // daily / weekly / monthly / custom(14d from 2026-01-05)
  std::string time_zone;
  metering::period_window window;
  metering::pico_usd limit = 0;
  metering::money_total spent = 0;
  metering::money_total reserved = 0;
  /// Spend at period end if the pace so far continues: spent / elapsed * length.
  metering::money_total forecast = 0;
  std::uint64_t blocked = 0;  // requests refused this process lifetime
  std::vector<int> warning_percents;
  std::string source;  // "local" or "redis" (or "local (redis unavailable)")
};

class budget_engine {
 public:
  struct counters {
    std::uint64_t store_errors = 0;  // shared store calls that failed
    std::uint64_t fail_open = 0;     // requests admitted because the store failed (fallback open)
    std::uint64_t fail_closed = 0;   // requests refused because the store failed (fallback closed)
    std::uint64_t overruns = 0;      // settlements above their reservation
  };

  /// Builds the accounts for `cfg`. An account whose definition and zone are unchanged from
  /// `previous` is carried over (spend, reservations). One whose limit, action or warnings
  /// changed (same name, scope, period and zone) continues the old one's spend and reservations
  /// under the new definition, and the old one forwards to it: requests admitted under the old
  /// snapshot reserve and settle there. Others (new, or a new scope, period or zone) are
  /// restored through `restore`; requests in flight on a budget of the same name are charged to
  /// them when they settle.
  /// Zones that fail to load (checked by the config loader already) fall back to UTC and are
  /// reported in `warnings`.
  budget_engine(const config::budgets_config& cfg, const budget_engine* previous,
                const budget_restore_fn& restore, metering::instant now,
                std::vector<std::string>* warnings = nullptr);

  bool empty() const noexcept { return accounts_.empty(); }
  const config::budgets_config& config() const noexcept { return cfg_; }
  /// True when a block budget counts this request, so admission needs a worst-case estimate.
  bool needs_admission(const metering::request_attribution& who) const noexcept;
  /// Reserves `worst_case` on every block budget counting the request. Blocked or unavailable
  /// releases whatever it reserved first. `store` null: local accounting only.
  budget_admission admit(const metering::request_attribution& who, metering::pico_usd worst_case,
                         metering::instant now, shared_budget_store* store,
                         std::chrono::seconds reservation_ttl);
  /// Books `actual` on every budget counting the request: held ones settle their reservation,
  /// the rest are charged. `arrived` decides the period (as the ledger does). Returns the
  /// thresholds crossed.
  std::vector<threshold_event> settle(const budget_admission& admission,
                                      const metering::request_attribution& who,
                                      metering::pico_usd actual, metering::instant arrived,
                                      metering::instant now, shared_budget_store* store,
                                      bool* store_failed = nullptr);
  /// Every budget, in config order. With a store, spend is the shared figure when reachable.
  std::vector<budget_status> status(metering::instant now, shared_budget_store* store);
  /// Seeds the shared store from the local (ledger-restored) spend of the current periods.
  /// Returns false when the store could not be reached.
  bool seed_store(metering::instant now, shared_budget_store& store);
  counters totals() const;

 private:
  struct account {
    explicit account(metering::budget_account a, std::string zone_name)
        : acct(std::move(a)), zone(std::move(zone_name)) {}
    std::mutex mu;
    metering::budget_account acct;
    std::string zone;
    std::uint64_t blocked = 0;
    /// Set (under `mu`) when a reload replaced this account. `holds`: the successor continues
    /// this account (same reservations), so every operation goes there instead; else it was
    /// restored afresh and only settlements are charged to it as well.
    std::shared_ptr<account> successor;
    bool successor_holds = false;
  };
  /// Runs `f` on the account that stands for `a` now (`a`, or the account a reload continued
  /// it in, followed to the newest) under that account's lock.
  template <class F>
  static decltype(auto) with_live(account& a, F&& f);
  /// Why a budget refused a request at admission: the verdict and what the client is told.
  struct refusal {
    budget_admission::verdict verdict = budget_admission::verdict::blocked;
    std::string message;
  };
  /// `admit`'s arguments, passed on to each budget's reservation.
  struct admission_request {
    metering::pico_usd worst_case = 0;
    metering::instant now;
    shared_budget_store* store = nullptr;
    std::chrono::seconds reservation_ttl{0};
  };
  /// `settle`'s arguments, passed on to each budget's booking (`actual` is never negative).
  struct settle_request {
    metering::pico_usd actual = 0;
    metering::instant arrived;
    metering::instant now;
  };
  /// What booking a settlement in one place (the shared store or this replica) crossed.
  struct booking {
    std::vector<int> crossed;  // warning percents
    metering::money_total spent_after = 0;
  };

  std::int64_t period_start_s(account& a, metering::instant now);
  std::chrono::seconds key_ttl(account& a) const;

  // Admission, one block budget at a time.
  /// Holds `req.worst_case` on `a` (in the shared store when there is one, else locally); fills
  /// `h`. nullopt when held, or admitted without a hold by the `open` fallback.
  std::optional<refusal> reserve(account& a, budget_hold& h, const admission_request& req,
                                 bool& store_failed);
  void mirror_shared_hold(account& a, budget_hold& h, metering::instant now);
  std::optional<refusal> reserve_locally(account& a, budget_hold& h,
                                         const metering::period_window& window,
                                         const admission_request& req);
  /// Counts a store failure during admission; true when the fallback refuses the request.
  bool count_store_failure_at_admission();
  /// Gives back every hold of a refused admission.
  void release(const std::vector<budget_hold>& holds, metering::instant now,
               shared_budget_store* store);
  void refuse(account& a, refusal why, budget_admission& out);

  // Settlement, one budget at a time: booked in the shared store (nullopt when it failed) and
  // always locally, so a later outage starts from the right figures.
  std::optional<booking> book_shared(account& a, const budget_hold* h, const settle_request& req,
                                     shared_budget_store& store);
  booking book_locally(account& a, const budget_hold* h, const settle_request& req,
                       const metering::request_attribution& who);
  void count_store_failure_at_settlement(bool* store_failed);

  budget_status local_status(account& a, metering::instant now);

  /// After an outage the store may have restarted empty: re-seed it (once per period key) from
  /// the local counts, at the next admission or settlement that reaches it. Requests settled on
  /// the fresh store by other workers before the seed are in both, so spend can be over-counted
  /// (never under-counted) for that short window; AOF persistence avoids the question.
  void reseed_if_recovering(metering::instant now, shared_budget_store& store);

  config::budgets_config cfg_;
  std::vector<std::shared_ptr<account>> accounts_;  // config order
  std::atomic<bool> store_down_{false};
  mutable std::mutex counters_mu_;
  counters counters_;
};

/// A connection to the shared store the config names (Redis). Defined in
/// accounting/redis_budget_store.cpp; never null (an unreachable Redis answers `unavailable`).
std::unique_ptr<shared_budget_store> make_shared_budget_store(
    const config::budget_redis_config& cfg);

/// One thread's connection to the shared store the config names: nullptr for a local store,
/// re-made when a reload changes the store settings. Not thread-safe (one per thread).
class budget_store_handle {
 public:
  shared_budget_store* get(const config::budgets_config& cfg);

 private:
  std::unique_ptr<shared_budget_store> store_;
  config::budget_redis_config cfg_;
};

/// The /api/budgets and `budgets --json` document: {"budgets":[{name, action, scope, period,
/// time_zone, period_start, period_end (RFC 3339 UTC), limit_usd, spend_usd, reserved_usd,
/// used_percent, forecast_usd, forecast_percent, blocked_requests, warn_at, source}], "as_of"}.
std::string budgets_json(const std::vector<budget_status>& budgets, metering::instant now);
/// RFC 3339 UTC with seconds, e.g. 2026-12-01T00:00:00Z.
std::string format_utc(metering::instant t);

/// Human text for scopes and periods (also used by the CLI).
std::string describe_scope(const metering::budget_scope& scope);
std::string describe_period(const metering::budget_period& period);

}  // namespace bedrock_meter::accounting
