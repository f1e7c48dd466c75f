#pragma once
/// The Bedrock simulator's pure half, request side: routing, model families, the `SIM{...}`
/// directive, the request facts it reads and the token-count plan. The answers built from a plan
/// are in sim_bodies.hpp, the encodings both use in sim_codec.hpp. No sockets, no Asio, no
/// exceptions on request input.
///
/// The simulator routes requests with its own small router, deliberately not the proxy's
/// `metering::parse_route`: a shared parser would hide a routing bug in both.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

namespace bedrock_meter::simulator {

/// Every route the simulator answers. `stats`/`reset` are the simulator's own `/__sim/` routes.
enum class sim_op : std::uint8_t {
  converse,
  converse_stream,
  invoke_model,
  invoke_model_with_response_stream,
  invoke_model_with_bidirectional_stream,
  count_tokens,
  apply_guardrail,
  invoke_guardrail_checks,
  start_async_invoke,
  get_async_invoke,
  list_async_invokes,
  unknown,
  stats,
  reset,
};
inline constexpr std::size_t sim_op_count = static_cast<std::size_t>(sim_op::reset) + 1;

/// AWS operation name ("InvokeModelWithResponseStream"), "UnknownOperation" for unknown routes.
std::string_view op_name(sim_op op) noexcept;
/// True when the operation answers with an event stream.
bool is_stream(sim_op op) noexcept;

struct sim_route {
  sim_op op = sim_op::unknown;
  std::string model_id;  ///< decoded; guardrail id for ApplyGuardrail; empty otherwise
  std::string resource;  ///< guardrail version, or the decoded async invocation ARN
  bool bad_encoding = false;
};

/// Routes `method` + target (path plus optional query). Unknown paths and wrong methods give
/// `sim_op::unknown`, as Bedrock answers both with 404 UnknownOperationException.
sim_route parse_route(std::string_view method, std::string_view target);

/// Percent-decodes a path segment; nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view in);

enum class model_family : std::uint8_t {
  anthropic,
  nova,
  titan_text,
  titan_embed,
  llama,
  mistral,
  generic,  ///< any other model id (and application inference profiles): Anthropic shapes
};

/// The base model id: the resource part of an ARN, without a geographic / global inference
/// profile prefix (`us.`, `eu.`, `apac.`, `global.` ...).
std::string_view base_model_id(std::string_view model_id) noexcept;
model_family family_of(std::string_view model_id) noexcept;

enum class fault : std::uint8_t {
  none,
  throttle,          ///< 429 ThrottlingException
  error500,          ///< 500 InternalServerException
  unavailable,       ///< 503 ServiceUnavailableException
  model_timeout,     ///< 408 ModelTimeoutException
  model_error,       ///< 424 ModelErrorException
  validation,        ///< 400 ValidationException
  access_denied,     ///< 403 AccessDeniedException
  not_found,         ///< 404 ResourceNotFoundException
  stream_exception,  ///< streams: `after` deltas, then an exception frame
  cut,               ///< streams: `after` deltas, then close; plain bodies: half the body, close
  slow_first_byte,   ///< wait first_byte_ms (default 1000) before the response head
  drop,              ///< close the connection without answering
};

/// A parsed `SIM{k=v,...}` directive. Unset fields fall back to the request-derived defaults.
struct directive {
  std::optional<std::uint64_t> input, output, cache_read, cache_write, events, pace_ms,
      first_byte_ms, after;
  std::optional<unsigned> status;
  fault fault_kind = fault::none;
  std::string exception_type;  ///< stream exception event type (default modelStreamErrorException)
  std::string error_name;      ///< error name for `status=` (default: by status)
  std::string tier;            ///< served service tier
  std::string stop;            ///< stop reason override, passed through verbatim
  bool intervene = false;      ///< ApplyGuardrail answers GUARDRAIL_INTERVENED
};

/// A malformed request part the simulator refuses (answered with 400 ValidationException).
struct sim_error {
  std::string message;  ///< e.g. "SIM directive: unknown key 'outptu'"
};

/// For `result::value()` on an error (boost::system::result finds it by ADL): throws
/// std::runtime_error with the message.
[[noreturn]] void throw_exception_from_error(const sim_error& e, const boost::source_location& loc);

/// Finds the first `SIM{` in the raw body and parses it. No directive is not an error (all fields
/// unset); a malformed one is.
boost::system::result<directive, sim_error> parse_directive(std::string_view body);

/// The model body of a CountTokens request: for `{"input":{"invokeModel":{"body":B64}}}` the
/// decoded body, where a raw `SIM{` scan could not see a directive; otherwise the body itself.
std::string count_tokens_model_body(std::string_view body);

/// What the simulator needs from the request body, found by a fast key scan with a Boost.JSON
/// parse only when the scan is ambiguous.
struct request_facts {
  std::optional<std::uint64_t> max_tokens;  ///< max_tokens / maxTokens / max_new_tokens / ...
  std::string tier;                         ///< Converse `serviceTier.type`
  std::string latency;                      ///< Converse `performanceConfig.latency`
  std::optional<std::uint64_t> dimensions;  ///< Titan embeddings `dimensions`
};
request_facts scan_request(std::string_view body);

/// Default output tokens when the request sets no limit (and the cap when it sets a larger one).
inline constexpr std::uint64_t default_output_tokens = 64;
/// Default number of content deltas in a stream is min(output, this), at least 1.
inline constexpr std::uint64_t default_stream_events = 16;

/// The answer to give, fixed before any byte is written.
struct plan {
  std::uint64_t input = 0, output = 0, cache_read = 0, cache_write = 0;
  std::uint64_t events = 1;  ///< content deltas in a stream
  bool hit_max_tokens = false;
  std::string stop;  ///< explicit stop reason override, empty for the family default
};

/// Token counts: input = directive, else max(1, body bytes / 4); output = directive, else
/// min(request limit, 64) (64 with no limit); 0 output for embeddings.
plan make_plan(std::string_view body, const directive& d, const request_facts& facts,
               model_family family, sim_op op);

/// Error name for a status when `status=` has no `error=`.
std::string_view default_error_name(unsigned status) noexcept;

}  // namespace bedrock_meter::simulator
