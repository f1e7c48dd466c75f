#pragma once
/// The Bedrock simulator's pure half: routing, the `SIM{...}` directive, token-count planning and
/// the response bodies and stream scripts for every operation and model family. No sockets, no
/// Asio, no exceptions on request input: the server feeds it the raw request and gets bytes back.
///
/// The simulator routes requests with its own small router, deliberately not the proxy's
/// `metering::parse_route`: a shared parser would hide a routing bug in both.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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

struct directive_result {
  directive value;
  std::string error;  ///< non-empty: malformed directive (answered with 400 ValidationException)
};

/// Finds the first `SIM{` in the raw body and parses it. No directive is not an error.
directive_result parse_directive(std::string_view body);

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

/// The `{"message":...}` error body.
std::string error_body(std::string_view message);

/// Appends `s` as a JSON string literal (quoted, escaped).
void append_json_string(std::string& out, std::string_view s);
/// Standard base64 (with padding).
void append_base64(std::string& out, std::string_view bytes);
/// Decodes standard or URL-safe base64 (padding optional); nullopt on a foreign character.
std::optional<std::string> decode_base64(std::string_view in);

/// Deterministic per-thread id source (splitmix64).
class id_source {
 public:
  explicit id_source(std::uint64_t seed) noexcept : state_(seed) {}
  std::uint64_t next() noexcept;
  std::string uuid();                       ///< 8-4-4-4-12 lowercase hex, version 4 bits set
  std::string base62(std::size_t length);  ///< [0-9A-Za-z]{length}
  std::string lower_alnum(std::size_t length);

 private:
  std::uint64_t state_;
};

/// Values known only when the answer is sent.
struct timing {
  std::uint64_t latency_ms = 0;
  std::uint64_t first_byte_ms = 0;
};

/// Served service tier and latency mode, echoed into bodies where Bedrock puts them.
struct served_config {
  std::string tier;     ///< empty: none
  std::string latency;  ///< empty: none
};

/// Whole-body answers (`application/json`).
std::string converse_body(const plan& p, const timing& t, const served_config& s);
std::string invoke_body(model_family fam, std::string_view model_id, const plan& p,
                        const request_facts& facts, std::string_view message_id);
std::string count_tokens_body(const plan& p);
std::string apply_guardrail_body(const directive& d);
std::string invoke_guardrail_checks_body(std::string_view request_body);

/// The events of a streamed answer. Index space: [0, size()); events [prefix, prefix + deltas)
/// carry the content. `render` appends the encoded event-stream frame of event `i`.
class stream_script {
 public:
  stream_script(sim_op op, model_family fam, std::string model_id, plan p,
                served_config served, std::string message_id);

  [[nodiscard]] std::size_t size() const noexcept { return prefix_ + deltas_ + suffix_; }
  [[nodiscard]] std::size_t prefix() const noexcept { return prefix_; }
  [[nodiscard]] std::size_t deltas() const noexcept { return deltas_; }

  void render(std::size_t i, const timing& t, std::string& out) const;

 private:
  void render_converse(std::size_t i, const timing& t, std::string& json) const;
  void render_chunk(std::size_t i, const timing& t, std::string& json) const;
  void append_metrics(const timing& t, std::string& json) const;
  void append_delta_text(std::size_t delta, std::string& json) const;
  [[nodiscard]] std::uint64_t tokens_through(std::size_t delta) const noexcept;
  [[nodiscard]] std::string_view stop_reason() const;

  sim_op op_;
  model_family fam_;
  std::string model_id_;
  plan plan_;
  served_config served_;
  std::string message_id_;
  std::size_t prefix_ = 0, deltas_ = 0, suffix_ = 0;
};

/// Encodes an exception frame (`:message-type exception`) with a Bedrock-shaped payload.
std::string stream_exception_frame(std::string_view exception_type, std::string_view message);

/// Family-specific stop reason for a plan (e.g. "end_turn", "FINISH", "stop", "length").
std::string_view stop_reason_for(model_family fam, sim_op op, const plan& p);

/// Bedrock's `"p"` padding: a run of [a-zA-Z0-9] whose length varies with `seed`.
std::string_view padding(std::size_t seed) noexcept;

}  // namespace bedrock_meter::simulator
