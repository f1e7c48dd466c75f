#pragma once
/// The rate table (data) and the pricer (a pure function of a usage record and a table).
///
/// A table is immutable once built; the proxy holds it as `shared_ptr<const rate_table>` and
/// swaps it on reload; each request is priced against one snapshot and records its version.
/// Loading and validating the YAML file is in config/rate_table_loader.hpp.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "metering/model_id.hpp"
#include "metering/money.hpp"
#include "metering/usage.hpp"

namespace bedrock_meter::metering {

/// `X-Amzn-Bedrock-Service-Tier` (the tier served, from the response).
enum class service_tier : std::uint8_t { standard, priority, flex, reserved };
std::string_view to_string(service_tier t) noexcept;
/// "default"/"standard"/"" -> standard; unknown -> nullopt.
std::optional<service_tier> parse_service_tier(std::string_view s) noexcept;

/// `X-Amzn-Bedrock-PerformanceConfig-Latency` (requested): standard or optimized.
enum class latency_mode : std::uint8_t { standard, optimized };
std::string_view to_string(latency_mode m) noexcept;

/// Per-token rates of one tier of one entry, micro-USD per 1M tokens. A missing cache rate means
/// the model has no such price; cached tokens on such a model are priced at the input rate and
/// the quote says so (a missing `cache_write_1h` falls back to `cache_write_5m` first, then to
/// the input rate). Pricing cached tokens as plain input is what they would have cost uncached:
/// it never invents a discount and never leaves tokens unpriced.
///
/// Speech rates (Nova Sonic) are the other way round: speech tokens cost some 50x their text
/// counterpart, so speech tokens on an entry without the matching speech rate make the request
/// unpriced rather than priced at the text rate (see `price`).
struct token_rates {
  rate_micro_per_m input = 0;
  rate_micro_per_m output = 0;
  std::optional<rate_micro_per_m> cache_read;
  std::optional<rate_micro_per_m> cache_write_5m;
  std::optional<rate_micro_per_m> cache_write_1h;
  std::optional<rate_micro_per_m> speech_input;   ///< speech (audio) input tokens
  std::optional<rate_micro_per_m> speech_output;  ///< speech (audio) output tokens
};

/// One row of the table: who it applies to, from when, at what rates.
struct rate_entry {
  std::string model;  ///< base model id ("anthropic.claude-3-5-sonnet-20240620-v1:0")
  std::vector<std::string> regions;      ///< billed regions; {"*"} = any region
  std::optional<inference_scope> scope;  ///< nullopt = any scope
  service_tier tier = service_tier::standard;
  latency_mode latency = latency_mode::standard;
  bool batch = false;
  std::optional<std::chrono::sys_days> effective_from;  ///< inclusive; nullopt = always
  std::optional<std::chrono::sys_days> effective_to;    ///< exclusive; nullopt = open
  token_rates rates;
  /// Long-context tier: when a request's total input (input + cache read + cache write) is
  /// above `threshold` tokens (strictly greater), `rates` are replaced by `long_context_rates`
  /// for the whole request. A type the long-context rates leave unset (input/output 0, a cache
  /// rate nullopt) keeps this entry's normal rate for that type, and the quote's note says so:
  /// an under-specified table shows up instead of pricing at 0.
  std::optional<std::uint64_t> long_context_threshold;
  token_rates long_context_rates;
  std::string source;    ///< where the price came from (free text; shown by `price`)
  std::string location;  ///< "file:line" of the entry, for quotes and errors
};

/// Transparent hashing so `by_model` is searched with a `string_view` without building a string.
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

/// Commitment terms of Provisioned Throughput (no commitment, 1 month, 6 months) and of the
/// Reserved tier (1 month, 3 months). Spelled "no_commit", "1_month", "3_months", "6_months".
enum class commitment_term : std::uint8_t { no_commit, one_month, three_months, six_months };
std::string_view to_string(commitment_term t) noexcept;
std::optional<commitment_term> parse_commitment_term(std::string_view s) noexcept;

/// The price of one Provisioned Throughput model unit for one term.
struct model_unit_price {
  commitment_term term = commitment_term::no_commit;
  pico_usd hourly = 0;  ///< per model unit per hour
  std::string source;   ///< where this price came from
};

/// The Reserved tier (service tiers): input and output tokens-per-minute reserved separately,
/// priced per 1,000 TPM per hour; traffic above the reservation is billed at the standard rates.
struct reserved_tier_price {
  commitment_term term = commitment_term::one_month;
  std::optional<inference_scope> scope;            ///< geo or global; nullopt = any
  pico_usd input_per_1k_tpm_hour = 0;              ///< per 1,000 reserved input TPM per hour
  std::optional<pico_usd> output_per_1k_tpm_hour;  ///< nullopt: not published
  std::uint64_t min_input_tpm = 0;                 ///< the smallest reservation AWS sells
  std::uint64_t min_output_tpm = 0;
  std::string source;
};

/// What buying capacity for one model costs in some regions (the table's `provisioned` section).
/// A model unit's throughput is not published by AWS ("contact your account team"): the
/// capacity is optional, and the advisor says so when it is missing.
struct provisioned_entry {
  std::string model;                             ///< base model id
  std::vector<std::string> regions;              ///< {"*"} = any region
  std::optional<std::uint64_t> unit_input_tpm;   ///< input tokens per minute one unit carries
  std::optional<std::uint64_t> unit_output_tpm;  ///< output tokens per minute one unit carries
  std::string capacity_source;  ///< where the capacity came from (account team, a test)
  std::vector<model_unit_price> model_units;  ///< by term, at most one per term
  std::vector<reserved_tier_price> reserved;  ///< by term and scope
  std::string location;                       ///< "file:line"
};

/// Prompt-caching facts of one model (the table's `caching` section): the smallest prefix
/// Bedrock caches, and whether the 1-hour TTL is offered.
struct caching_rule {
  std::string model;  ///< base model id
  std::uint64_t min_prefix_tokens = 0;
  bool ttl_1h = false;
  std::string source;
  std::string location;
};

struct rate_table {
  std::string version;  ///< e.g. "2026-07-24.1"
  std::string source_path;
  std::vector<rate_entry> entries;
  std::vector<provisioned_entry> provisioned;
  std::vector<caching_rule> caching;
  /// Index: base model -> entry indexes in `entries` order (built by `index()`; lookups use it).
  std::unordered_map<std::string, std::vector<std::uint32_t>, string_hash, std::equal_to<>>
      by_model;
  /// Rebuilds `by_model` from `entries`. Call after the last change to `entries`, before the
  /// table is shared; lookups on a table that was never indexed find nothing.
  void index();
};

/// What the pricer needs to know about a request besides its usage.
struct price_query {
  std::string_view model_id;  ///< as requested (decoded)
  std::string_view region;    ///< billed region: the region of the endpoint called
  service_tier tier = service_tier::standard;
  latency_mode latency = latency_mode::standard;
  bool batch = false;
  std::chrono::system_clock::time_point at;  ///< when the request was made (effective dates)
  const std::vector<model_mapping>* mappings = nullptr;
};

struct cost_breakdown {
  pico_usd input = 0;   ///< text and speech input
  pico_usd output = 0;  ///< text and speech output
  pico_usd cache_read = 0;
  pico_usd cache_write = 0;  ///< 5m + 1h
  pico_usd total() const noexcept { return input + output + cache_read + cache_write; }
};

struct priced {
  bool priced = false;     ///< false: unpriced (no entry matched) — never a silent $0
  resolved_model model;    ///< resolution of the requested id
  std::string base_model;  ///< the rate-table model that matched (or the resolved base)
  cost_breakdown cost;
  const rate_entry* entry = nullptr;  ///< the entry used (valid while the table is alive)
  bool long_context = false;          ///< the long-context rates applied
  std::string table_version;
  std::string note;  ///< why unpriced, or a caveat (e.g. cache priced at input rate)
};

/// Finds the entry for a request. Candidates are tried in `base_model_candidates` order; the
/// first candidate with any matching entry decides. An entry matches when its tier, latency and
/// batch equal the query's, `q.region` is one of its regions or it lists "*", its scope equals
/// `scope` or is unspecified, and `effective_from <= day(at) < effective_to` (day in UTC).
/// Among matches the best is, in order: region exact before "*", then scope exact before
/// unspecified, then the latest effective_from (unset = earliest), then the first in the table.
/// Region comes first because the bill follows the source region (a GovCloud row must beat a
/// "*" geographic-profile row). No allocation. nullptr when nothing matches.
const rate_entry* find_rate(const rate_table& table, std::string_view base_model,
                            inference_scope scope, const price_query& q) noexcept;

/// As above with the scope of `q.model_id` resolved with `q.mappings` (in_region when
/// `q.model_id` is empty). For quotes and tools; the pricer uses the overload above.
const rate_entry* find_rate(const rate_table& table, std::string_view base_model,
                            const price_query& q) noexcept;

/// The `provisioned` entry for a base model (tried as `base_model_candidates`) in `region`: an
/// exact region before "*", then the first in the table. nullptr when there is none.
const provisioned_entry* find_provisioned(const rate_table& table, std::string_view base_model,
                                          std::string_view region) noexcept;

/// The `caching` rule for a base model (tried as `base_model_candidates`); nullptr when none.
const caching_rule* find_caching(const rate_table& table, std::string_view base_model) noexcept;

/// The cost of `usage` at entry `e`, with its long-context rates when `long_context`: rule 5 of
/// `price` (missing cache rates fall back the same way) without its range check, in 128-bit
/// pico-USD so that the token sums of many requests fit. The advisor reprices sums with it; the
/// long-context choice is made per request, so it is passed in rather than derived from a sum.
money_total cost_at(const rate_entry& e, const token_usage& usage, bool long_context);

/// Prices one request. Billable input = input + cache read + cache write, each at its own rate;
/// cache writes split into `cache_write_1h` tokens at the 1h rate and the rest at the 5m rate.
/// Speech tokens (`speech_input`, a part of `input`; `speech_output`, a part of `output`) are
/// priced at the speech rates and the rest at the text rates; both land in the input and output
/// costs.
///
/// Rules, first that applies:
///  1. No tokens at all (every count zero: CountTokens, errors, usage source none, a
///     provider-reported zero): priced, cost 0, whatever the model. Such requests are requests,
///     not unpriced spend. Non-zero counts are priced whatever their source says.
///  2. A mapping with `hourly_usd` (provisioned throughput): priced, per-token cost 0, note
///     "provisioned: billed hourly".
///  3. No base model (unknown id, or an ARN without a mapping): unpriced, with a note.
///  4. No matching entry (`find_rate`): unpriced, with a note naming model, region and dimensions.
///  5. Otherwise priced from the entry (long-context rates when the threshold is exceeded).
///     Speech tokens on an entry without the matching speech rate are unpriced, with the note
///     `speech_unpriced_note` starts with: never priced at the text rate, ~50x too low.
///     Token counts whose cost would not fit in int64 pico-USD (~9.2M USD) are unpriced.
/// `table_version` is always recorded; `base_model` is the matched table model (candidate) or,
/// when nothing matched, the resolved base model.
priced price(const rate_table& table, const token_usage& usage, const price_query& q);

/// How the note of a request unpriced for want of a speech rate begins (rule 5).
inline constexpr std::string_view speech_unpriced_note = "unpriced: no speech rate";

/// Same as above, into `out` (every field overwritten). Reusing one `priced` per worker makes
/// the common path allocation-free once its strings have grown to size.
void price(const rate_table& table, const token_usage& usage, const price_query& q, priced& out);

}  // namespace bedrock_meter::metering
