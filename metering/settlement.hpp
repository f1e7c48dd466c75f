#pragma once
/// The settlement of one request: everything known about it once it ended, priced once against
/// one rate-table snapshot. It is a plain value; the ledger row (accounting/ledger.cpp), the
/// metric increments (telemetry/metrics.cpp) and the access-log line (telemetry/access_log.cpp)
/// are each derived from it in one place, so the three can never disagree.
///
/// Pure code: no I/O, no clocks (the proxy passes the times it measured).
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "metering/model_id.hpp"
#include "metering/money.hpp"
#include "metering/rate_table.hpp"
#include "metering/request_body.hpp"
#include "metering/route.hpp"
#include "metering/usage.hpp"

namespace bedrock_meter::metering {

/// How a request ended, as far as billing is concerned.
enum class request_outcome : std::uint8_t {
  ok,              ///< answered by Bedrock (any status it chose)
  refused,         ///< refused by the proxy (auth, budget, route, limits): never reached Bedrock
  upstream_error,  ///< Bedrock unreachable or failed before answering
  upstream_cut,    ///< the answer started and broke off mid-body
  client_abort,    ///< the client went away before the answer ended
  /// the answer's event stream ended in an exception or error event (modelStreamErrorException,
  /// throttlingException, ...): the client saw an error, and the usage is estimated
  stream_error,
  /// the proxy died (kill -9, OOM) while the request was in flight; written at the next start
  /// from its start record, with estimated usage (accounting/inflight_journal.hpp)
  interrupted,
};
/// "ok", "refused", "upstream_error", "upstream_cut", "client_abort", "stream_error",
/// "interrupted".
std::string_view to_string(request_outcome o) noexcept;
std::optional<request_outcome> parse_outcome(std::string_view s) noexcept;

/// What the proxy observed about one request, handed to `settle`. Views need only stay valid
/// during the call.
struct exchange_facts {
  std::string_view request_id;
  std::chrono::system_clock::time_point arrived;  ///< wall clock: period, effective dates, time_ms
  std::chrono::microseconds duration{0};          ///< arrival to the last byte sent
  std::optional<std::chrono::microseconds> first_byte;  ///< arrival to the upstream's first byte
  const metering::route* route = nullptr;               ///< null: refused before it was routed
  /// Who: empty principal when the request was refused before authentication.
  std::string_view principal;
  std::string_view team;
  std::string_view app;
  const std::map<std::string, std::string>* tags = nullptr;
  std::string_view region;  ///< the billed region (the upstream endpoint's)
  metering::latency_mode latency = metering::latency_mode::standard;
  /// The usage the observer settled on; nullopt when nothing was forwarded (refused).
  std::optional<token_usage> usage;
  std::string_view service_tier;  ///< as Bedrock reported it; empty: it did not say
  unsigned status = 0;            ///< HTTP status sent to the client
  request_outcome outcome = request_outcome::ok;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  /// What the request asked for (null: not read, e.g. refused before routing).
  const request_traits* traits = nullptr;
  std::string_view stop_reason;  ///< the observer's normalised stop reason; empty: not said
};

/// One settled request. Also what a ledger row holds (accounting::ledger_record is this type).
/// Tokens and bytes above INT64_MAX cannot be stored in the ledger and are clamped there.
struct settlement {
  std::int64_t time_ms = 0;  ///< unix ms, UTC: when the request arrived
  std::string request_id;
  std::string team;
  std::string app;
  std::string principal;  ///< key id or name; never a secret; empty before authentication
  std::map<std::string, std::string> tags;
  std::string operation;        ///< AWS operation name; "-" when refused before routing
  std::string model_requested;  ///< as sent, percent-decoded
  std::string model_base;       ///< the priced base model; empty when unknown
  std::string model_label;      ///< the bounded Prometheus `model` label (a known model or "other")
  std::string region;
  std::string scope;         ///< in_region / geo / global
  std::string service_tier;  ///< "default" when Bedrock did not name one
  std::string latency_mode;  ///< standard / optimized
  bool batch = false;
  unsigned status = 0;  ///< HTTP status sent to the client
  metering::request_outcome outcome = metering::request_outcome::ok;

  std::uint64_t input_tokens = 0;  ///< uncached input
  std::uint64_t output_tokens = 0;
  std::uint64_t cache_read_tokens = 0;
  std::uint64_t cache_write_tokens = 0;     ///< all cache writes (5m + 1h)
  std::uint64_t cache_write_1h_tokens = 0;  ///< the part of cache_write_tokens with a 1-hour TTL
  std::uint64_t speech_input_tokens = 0;   ///< the part of input_tokens that is speech (Nova Sonic)
  std::uint64_t speech_output_tokens = 0;  ///< the part of output_tokens that is speech
  metering::usage_source usage_source = metering::usage_source::none;

  pico_usd input_cost = 0;
  pico_usd output_cost = 0;
  pico_usd cache_read_cost = 0;
  pico_usd cache_write_cost = 0;
  pico_usd total_cost = 0;
  bool priced = false;          ///< false: counted as unpriced, never as $0
  std::string unpriced_reason;  ///< why unpriced, or the pricer's caveat when priced
  std::string rate_table_version;
  std::string rate_entry;  ///< file:line of the rate-table entry used
  /// The commitment discount the request's spend gets (config::discount_ppm_on), parts per
  /// million; set by the proxy from its configuration, not stored in the ledger (net figures are
  /// derived from the row's day and model), 0 without commitments.
  std::int64_t discount_ppm = 0;

  std::int64_t duration_us = 0;
  std::int64_t first_byte_us = -1;  ///< -1: the upstream sent no byte
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;

  /// The request's traits for the advisor (ledger schema v2): the output cap asked for, tools,
  /// structured output and the prompt-prefix fingerprints. `has_traits` is false for requests
  /// whose body was never read (refused before routing) and rows written before v2.
  bool has_traits = false;
  request_traits traits;
  std::string stop_reason;  ///< normalised (end_turn, max_tokens, tool_use, ...); empty: unknown

  /// The request's start record (accounting/inflight_journal.hpp), freed once the ledger has
  /// committed this row; -1: none. Not stored in the ledger.
  std::int32_t journal_slot = -1;

  bool operator==(const settlement&) const = default;

  /// An event-stream operation (ConverseStream, InvokeModelWithResponseStream...).
  [[nodiscard]] bool streaming() const noexcept;
};

/// Prices and labels one request. Model operations are priced with `table` (null: unpriced,
/// "no rate table configured"); free reads (CountTokens, GetAsyncInvoke, ListAsyncInvokes) and
/// requests that never reached Bedrock cost exactly 0 and count as priced; ApplyGuardrail (text
/// units) and StartAsyncInvoke (per-second / per-image outputs) are not billed by tokens and are
/// unpriced with that reason rather than $0. `mappings` resolve ARNs (models.mappings).
settlement settle(const exchange_facts& facts, const rate_table* table,
                  const std::vector<model_mapping>& mappings);

/// The bounded `model` label of a priced request: the rate-table model that priced it, else a
/// rate-table model the resolved base model names, else "other" (a client sending random model
/// ids cannot grow the series count).
std::string model_label(const priced& p, const rate_table* table);

}  // namespace bedrock_meter::metering
