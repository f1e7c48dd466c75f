#pragma once
// The Prometheus adapter: the one place that owns prometheus-cpp's families, built
// once in the constructor. Everything outside this file speaks snake_case: settled requests go in
// through a per-worker `recorder`, budgets through setters, and `serialize` turns the lot into
// the text exposition format for the admin listener's GET /metrics.
//
// Thread safety:
// - `metrics`: every member function may be called from any thread at any time.
// - `metrics::recorder`: one per worker, used by one thread at a time (it is not locked). It keeps
//   per-series handles cached by label tuple, so after warm-up `record` does one hash lookup and a
//   few atomic adds: no Family::Add (which locks), no lock shared with other workers. Histogram
//   observations take the series' own short mutex inside prometheus-cpp, contended only when two
//   workers observe the very same series at the same instant.
// - Counters are atomic doubles in prometheus-cpp; a scrape may run beside `record`.
//
// Cardinality (docs/metrics.md, "Label values are bounded"): the caller already bounds its labels,
// but the adapter does not trust that. Each capped family admits at most `max_series_per_family`
// label combinations. Past `max_series_per_family - reserve` (reserve = 1% of the cap, at least
// 1) a new combination is folded: its open-ended labels (model, region, tier, team, app,
// gen_ai_request_model, error_type) become "other" while the closed ones (operation, type, code,
// token type, operation name) are kept. Folded samples are counted in
// `bedrock_metrics_folded_samples_total{metric}`. A folded combination that would itself pass
// the cap is dropped and counted in `bedrock_metrics_dropped_samples_total{metric}`: memory stays
// bounded whatever a bug upstream sends.
//
// Label values: empty values are left out of the series (Prometheus treats `x=""` as no label),
// except `tier`, where empty means the default tier and is written "default" as the ledger does.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metering/money.hpp"
#include "metering/settlement.hpp"
#include "telemetry/counters.hpp"

namespace bedrock_meter::accounting {
struct ledger_totals_row;
class ledger;
}  // namespace bedrock_meter::accounting

namespace bedrock_meter::telemetry {

/// Values the adapter reads at scrape time from the proxy's own atomics, so the request path
/// never counts the same event twice. Built by `scrape_inputs_from` or by hand in tests.
struct scrape_inputs {
  std::int64_t inflight = 0;
  std::int64_t connections = 0;
  struct counter_value {
    outcome_family family;
    std::string_view label;  ///< the label value (static storage: the counters list)
    std::uint64_t value = 0;
  };
  /// Every outcome counter, grouped by family in declaration order (proxy_counters::for_each).
  std::vector<counter_value> counters;
  /// bedrock_rate_table_info{version}; empty: no rate table loaded (no series).
  std::string rate_table_version;

  struct ledger_snapshot {
    std::uint64_t queue_depth = 0;
    std::uint64_t committed = 0;
    std::uint64_t failed = 0;  ///< refused after close + given up at the close deadline
  };
  std::optional<ledger_snapshot> ledger;  ///< nullopt: no ledger configured (no series)

  /// The shipper to the fleet's PostgreSQL ledger (`ledger.store: postgres`).
  struct fleet_snapshot {
    std::uint64_t spool_rows = 0;
    double lag_seconds = 0;
    std::uint64_t shipped = 0;
    std::uint64_t failures = 0;
    bool connected = false;
    std::uint64_t spool_max_rows = 0;
  };
  std::optional<fleet_snapshot> fleet;  ///< nullopt: store sqlite (no series)
};

/// Reads every atomic the adapter exports. `l` may be null (no ledger). Any thread.
scrape_inputs scrape_inputs_from(const proxy_counters& counters, const accounting::ledger* l,
                                 std::string rate_table_version);

/// semconv gen_ai.operation.name for a Bedrock operation and model label: "chat" for Converse*,
/// "embeddings" for InvokeModel* on an embedding model (its id names "embed"), "chat" for other
/// InvokeModel* (Bedrock's text models are chat models; semconv has no better fit), nullopt for
/// operations that are not GenAI client calls (CountTokens, ApplyGuardrail, async jobs, refused).
std::optional<std::string_view> gen_ai_operation_name(std::string_view operation,
                                                      std::string_view model_label) noexcept;

struct metrics_options {
  std::size_t max_series_per_family = 10'000;
  /// Label tuples each recorder remembers before it starts afresh (memory bound per worker).
  std::size_t recorder_cache_entries = 4096;
  std::string build_version = "dev";  ///< bedrock_build_info{version}
};

class metrics {
 public:
  explicit metrics(metrics_options options = {});
  ~metrics();
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  class recorder {
   public:
    ~recorder();
    recorder(const recorder&) = delete;
    recorder& operator=(const recorder&) = delete;

    /// Counts one settled request in every family it belongs to: requests by status code,
    /// tokens and spend by type (the settlement's `service_tier`, "default" when Bedrock named
    /// none), unpriced requests, estimated tokens (usage_source estimated), and the GenAI
    /// histograms with `gen_ai_request_model` = the bounded model label, error_type = the outcome
    /// for upstream_error / upstream_cut else the status code of a failure, and time to first
    /// chunk for streaming operations. No exceptions, no lock shared with other recorders once
    /// the request's label tuple has been seen.
    void record(const metering::settlement& r) noexcept;
    /// bedrock_budget_blocked_requests_total{budget} += 1 (a request refused by a budget).
    void budget_blocked(std::string_view budget) noexcept;

   private:
    friend class metrics;
    struct state;

    explicit recorder(std::unique_ptr<state> s);
    std::unique_ptr<state> state_;
  };

  /// One per worker. The recorder must not outlive this object.
  std::unique_ptr<recorder> make_recorder();

  /// What the commitment discounts took off one spend series' ledger totals, per token type
  /// (input, output, cache_read, cache_write), pico-USD.
  struct net_discount_row {
    std::string model_label, region, service_tier, team, app;
    std::array<metering::money_total, 4> discount{};
  };

  /// Startup: the FinOps counters continue from the ledger's totals instead of restarting at 0.
  /// Spend is summed exactly per series in pico-USD first and converted to a double once; the
  /// net spend is that less `discounts`. Call it once, before traffic (calling it again would add
  /// the totals twice).
  void restore(const std::vector<accounting::ledger_totals_row>& totals,
               const std::vector<net_discount_row>& discounts = {});

  /// Budgets (filled by the budget accounting): one series per budget name from config.
  void set_budget(std::string_view budget, double limit_usd, double spend_usd,
                  double period_end_unix_s);
  /// bedrock_budget_warning_ratio{budget,percent}: one series per warn_at threshold (p / 100).
  /// Thresholds no longer configured are dropped.
  void set_budget_warnings(std::string_view budget, const std::vector<int>& percents);
  /// Drops a budget's gauges (removed from config on reload). Its blocked counter stays.
  void remove_budget(std::string_view budget);
  void budget_blocked(std::string_view budget);
  /// Counter series whose label sets are known before traffic, exported at 0 so sums and
  /// increase() read 0 instead of "No data" and the first event counts: the blocked counter of
  /// each blocking budget, and the unpriced and estimated counters' `model="other"` series in
  /// each region served (`model` is open-ended; "other" is its catch-all value). Idempotent.
  void declare_known_series(const std::vector<std::string>& blocking_budgets,
                            const std::vector<std::string>& regions);

  /// The current contract year of each configured commitment (the burn-down panel), from the
  /// same background run as the advisor's gauges.
  struct commitment_gauges {
    std::string name;
    double year_usd = 0;         ///< bedrock_commitment_year_usd
    double counted_usd = 0;      ///< bedrock_commitment_counted_usd
    double forecast_usd = 0;     ///< bedrock_commitment_forecast_usd
    double year_end_unix_s = 0;  ///< bedrock_commitment_year_end_timestamp_seconds
  };
  /// Sets every commitment's gauges; commitments no longer configured are dropped.
  void set_commitments(const std::vector<commitment_gauges>& all);

  /// The FinOps advisor's background run (app/advice_refresh.cpp).
  struct advice_gauges {
    /// bedrock_advice_monthly_savings_usd{lever}: every lever name, 0 when it found nothing (so
    /// a lever that stops saving drops to 0 instead of vanishing).
    std::vector<std::pair<std::string, double>> monthly_savings_usd;
    double window_spend_usd = 0;  ///< bedrock_advice_window_spend_usd
    double finished_unix_s = 0;   ///< bedrock_advice_last_run_timestamp_seconds
    double duration_s = 0;        ///< bedrock_advice_run_duration_seconds
  };
  void set_advice(const advice_gauges& a);

  /// The text exposition format 0.0.4 of every family, plus the families derived from `in`.
  std::string serialize(const scrape_inputs& in) const;

  /// The Content-Type of `serialize`'s output.
  static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace bedrock_meter::telemetry
