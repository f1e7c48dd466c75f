#pragma once
/// The FinOps advisor: what to change to cut the Bedrock bill, computed from the traffic itself.
///
/// Pure code (no I/O, no clocks): ledger rows go in, in time order, one at a time; a `report`
/// comes out. Memory is bounded by the window's minutes and the number of groups
/// (team x app x model x region), never by the number of rows: the rows are folded into per-minute
/// load arrays, token sums, log-linear histograms and a prompt-cache simulation whose state is
/// evicted once a prefix is older than the longest cache TTL. Every price comes from the rate
/// table; nothing is hard-coded here. docs/finops.md gives every formula and a worked example.
///
///   analyzer a{opts};
///   for (each ledger row in the window, by time) a.add(row);
///   report r = a.finish();
///   std::string json = to_json(r);
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "metering/model_id.hpp"
#include "metering/money.hpp"
#include "metering/rate_table.hpp"

namespace bedrock_meter::advice {

using metering::money_total;
using metering::pico_usd;

/// A keyed fingerprint of a prompt prefix and its size. `hash` 0 means "no such prefix".
struct prefix_print {
  std::uint64_t hash = 0;
  std::uint64_t bytes = 0;  ///< bytes of the request body the prefix spans
};

/// One ledger row, as the advisor needs it. Views are valid only during `analyzer::add`.
struct request_row {
  std::int64_t time_ms = 0;  ///< unix ms UTC; rows arrive in non-decreasing order
  std::string_view team;
  std::string_view app;
  std::string_view operation;        ///< AWS operation name ("Converse", "InvokeModel", ...)
  std::string_view model_requested;  ///< as sent
  std::string_view model_base;       ///< the priced base model; empty when unknown
  std::string_view region;
  std::string_view scope;         ///< in_region / geo / global
  std::string_view service_tier;  ///< default / priority / flex / reserved
  std::string_view latency_mode;  ///< standard / optimized
  std::string_view outcome;       ///< metering::request_outcome's name (ok, refused, ...)
  bool batch = false;
  bool streaming = false;
  unsigned status = 0;

  std::uint64_t input_tokens = 0;  ///< uncached input
  std::uint64_t output_tokens = 0;
  std::uint64_t cache_read_tokens = 0;
  std::uint64_t cache_write_tokens = 0;  ///< 5m + 1h
  std::uint64_t cache_write_1h_tokens = 0;
  pico_usd total_cost = 0;  ///< what the meter priced it at
  bool priced = false;
  std::uint64_t bytes_in = 0;  ///< request body size

  // Request traits (schema v2; absent in rows written before it: has_traits false).
  bool has_traits = false;
  std::optional<std::uint64_t> max_tokens;  ///< the output cap the request asked for
  std::string_view stop_reason;    ///< normalised: end_turn, max_tokens, tool_use, stop_sequence,
                                   ///< content_filtered, guardrail_intervened, other; "" = unknown
  bool tools = false;              ///< tool definitions were sent
  bool structured_output = false;  ///< a JSON schema / response format was requested
  prefix_print system_prefix;      ///< system prompt + tool definitions
  prefix_print conversation_prefix;  ///< system + tools + every message before the last turn
  prefix_print full_prompt;          ///< system + tools + every message (what the next turn reads)
};

/// What the advisor is asked.
struct options {
  std::int64_t since_ms = 0;                                       ///< window start, inclusive
  std::int64_t until_ms = 0;                                       ///< window end, exclusive
  const metering::rate_table* rates = nullptr;                     ///< required
  const std::vector<metering::model_mapping>* mappings = nullptr;  ///< models.mappings, may be null
  /// Extra models to reprice every group on (`--reprice-as`), beside the cheaper models of the
  /// same provider the advisor finds itself.
  std::vector<std::string> reprice_as;
  double hours_per_month = 730;  ///< AWS's convention for monthly figures (24 x 365 / 12)
  /// Levers worth less than this per month are left out (nOps hides < $25/month).
  money_total min_monthly_savings = 0;
};

/// A percentile summary of per-minute token load over every minute of the window (idle minutes
/// count as zero).
struct load_summary {
  double p50 = 0, p95 = 0, p99 = 0, max = 0, mean = 0;
};

struct buying_option {
  std::string mode;  ///< "on_demand", "provisioned", "reserved"
  std::string term;  ///< "none" (on demand), "no_commit", "1_month", "3_months", "6_months"
  /// Model units (provisioned) or reserved input TPM (reserved); nullopt when it cannot be
  /// computed (a model unit's capacity is not in the rate table).
  std::optional<std::uint64_t> units;
  std::optional<std::uint64_t> reserved_output_tpm;  ///< reserved only
  std::optional<money_total> monthly;  ///< commitment + spill, per month; nullopt: unknown
  std::optional<money_total> spill;    ///< per month, the load above capacity billed on demand
  std::optional<double> utilisation;   ///< 0..1 of the bought capacity used
  std::string source;                  ///< the rate-table source of the price
  std::string note;                    ///< why a figure is missing, or a caveat
};

struct break_even {
  /// Per term: the average tokens per minute (at the observed input/output mix) at which one
  /// model unit costs the same as on-demand. Always computable from prices alone.
  std::vector<std::pair<std::string, double>> tokens_per_minute;
  /// Per term: the utilisation of one unit at which it breaks even (needs the unit's capacity).
  std::vector<std::pair<std::string, double>> utilisation;
};

struct buying_mode_advice {
  std::string model;  ///< base model
  std::string region;
  /// in_region / geo / global: the rows' inference scope (Reserved tier prices are per scope,
  /// and Provisioned Throughput serves no cross-region profile), so groups are keyed by it too.
  std::string scope;
  std::uint64_t requests = 0;
  money_total on_demand = 0;          ///< over the window, as the meter priced it
  money_total on_demand_monthly = 0;  ///< scaled to a month
  load_summary input_tpm;             ///< input + cache read + cache write tokens per minute
  load_summary output_tpm;
  /// 168 values, Monday 00:00 UTC first: mean tokens per minute (input + output) in that hour.
  std::vector<double> hour_of_week;
  std::vector<buying_option> options;  ///< on demand first
  break_even breakeven;
  std::string recommendation;  ///< one sentence, with its reasoning
};

/// An ARN mapped as provisioned (`models.mappings[].hourly_usd`): what it carried and what the
/// same traffic would have cost on demand.
struct provisioned_usage {
  std::string arn;
  std::string model;  ///< the mapping's base model
  std::string region;
  std::uint64_t requests = 0;
  money_total committed = 0;             ///< hourly_usd x the window's hours
  money_total on_demand_equivalent = 0;  ///< the same tokens at the on-demand rates
  std::optional<double> utilisation;     ///< needs the unit's capacity (and model_units)
  load_summary input_tpm;
  load_summary output_tpm;
  std::string recommendation;
};

struct lever {
  std::string name;  ///< prompt_caching, output_cap, prompt_trimming, model_substitution, batch,
                     ///< global_profile, flex_tier, priority_tier
  std::string team, app, model;
  money_total savings = 0;          ///< over the window
  money_total monthly_savings = 0;  ///< scaled to a month
  /// Facts behind the figure, as a JSON object text (each lever documents its keys in
  /// docs/finops.md). Counts as numbers, money as decimal strings.
  std::string evidence_json;
  std::string caveat;
};

struct report {
  std::int64_t since_ms = 0, until_ms = 0;
  std::uint64_t requests = 0;
  money_total spend = 0;
  /// "list" (the rate table's prices) or "net" (after commitment discounts: `to_net`).
  std::string basis = "list";
  std::string rate_table_version;
  std::vector<buying_mode_advice> buying_mode;  ///< largest on-demand spend first
  std::vector<provisioned_usage> provisioned;
  std::vector<lever> levers;       ///< largest savings first
  std::vector<std::string> notes;  ///< what the advisor could not see (rows without traits, ...)
};

/// Folds rows into the report. Not thread-safe; one per analysis.
class analyzer {
 public:
  explicit analyzer(options opts);
  ~analyzer();
  analyzer(const analyzer&) = delete;
  analyzer& operator=(const analyzer&) = delete;

  /// Rows outside the window are ignored; rows must come in non-decreasing time_ms order.
  void add(const request_row& row);
  /// The report; call once, after the last row.
  report finish();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The JSON document (`advise --format json`, `GET /api/advice`); money as decimal strings.
/// The report at net prices: `spend` becomes `net_spend` (summed exactly per row by the caller)
/// and every other amount (on-demand and buying-option costs, provisioned commitments, lever
/// savings) is reduced by `discount_ppm(model)` of its model, the discount in force at the
/// window's end, since advice looks forward. Levers are re-ordered by their net savings; the
/// evidence stays at list prices. A note says so.
void to_net(report& r, money_total net_spend,
            const std::function<std::int64_t(std::string_view model)>& discount_ppm);

std::string to_json(const report& r);
/// A terminal report.
std::string to_text(const report& r);
/// The same as a Markdown document (for tickets and wikis).
std::string to_markdown(const report& r);

}  // namespace bedrock_meter::advice
