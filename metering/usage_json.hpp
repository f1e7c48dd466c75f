#pragma once
/// Internal to metering, used by the usage observer (usage.cpp); not for other modules.
///
/// What one JSON document of a Bedrock response says about token usage (and why the model
/// stopped), read as it streams past.
/// Each response shape names its usage fields by path ("usage.input_tokens"; array elements as
/// "[]"), listed per family in usage_json.cpp and docs/usage-sources.md. Documents are never
/// built: boost::json's SAX parser walks them and `path_handler` keeps the path of the current
/// value in a fixed buffer, so nothing is allocated per document or per value. Shapes are
/// captured side by side (their paths do not collide); the observer decides afterwards, by
/// family, which one to believe.
///
/// Not thread-safe: one extractor and one reader per response.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/basic_parser.hpp>

namespace bedrock_meter::metering::detail {

/// JSON nesting tracked by path. Every usage field sits at depth <= 6 (Nova Sonic's
/// `event.usageEvent.details.total.input.speechTokens`); deeper containers (tool
/// input documents) are walked but not named, so the path buffer never grows.
constexpr std::size_t max_tracked_depth = 16;
/// Key bytes kept per path segment; longer keys cannot name a usage field and are marked
/// unmatchable.
constexpr std::size_t max_key_bytes = 64;
/// Longest service tier name kept (from a header or the body).
constexpr std::size_t max_tier_bytes = 32;
/// Longest Converse `cacheDetails[].ttl` kept ("5m", "1h").
constexpr std::size_t max_ttl_bytes = 4;
/// Longest raw stop reason kept for matching. The longest known one is Converse's
/// "model_context_window_exceeded" (29); a longer value is unknown ("other") anyway.
constexpr std::size_t max_stop_bytes = 32;

// ---------------------------------------------------------------------------------------------
// Stop reason

/// Why the model stopped, normalised across families (docs/usage-sources.md, "Stop reason").
enum class stop_code : std::uint8_t {
  none,  ///< the response did not say (yet)
  end_turn,
  max_tokens,
  tool_use,
  stop_sequence,
  content_filtered,
  guardrail_intervened,
  other,  ///< a value we do not know, or one that maps to none of the above
};

/// "end_turn", "max_tokens", ...; empty for `none`.
std::string_view to_string(stop_code c) noexcept;
/// The normalised code of a provider's raw stop reason, ASCII case-insensitive ("FINISH",
/// "length", "tool_calls", ...); `other` when unknown, `none` when empty.
stop_code normalise_stop_reason(std::string_view raw) noexcept;

// ---------------------------------------------------------------------------------------------
// Counts per response shape.

enum class shape : std::uint8_t {
  converse,            ///< Converse body / ConverseStream metadata `usage`
  anthropic,           ///< Messages body `usage`; in streams: message_delta `usage`
  anthropic_start,     ///< stream only: message_start `message.usage`
  nova,                ///< Nova InvokeModel `usage`; stream `metadata.usage`
  titan,               ///< Titan text / embeddings
  llama,               ///< Meta Llama
  openai,              ///< OpenAI chat completions (gpt-oss, DeepSeek, Mistral chat, Jamba)
  cohere,              ///< Cohere `meta.billed_units`
  invocation_metrics,  ///< stream only: `amazon-bedrock-invocationMetrics`
  /// InvokeModelWithBidirectionalStream `usageEvent.details.total`: input / output are the text
  /// tokens, speech_input / speech_output the speech tokens (running totals of the session)
  sonic_details,
  /// InvokeModelWithBidirectionalStream `usageEvent.totalInputTokens` / `totalOutputTokens`
  sonic_totals,
  count_,
};
constexpr std::size_t shape_count = static_cast<std::size_t>(shape::count_);

enum class field : std::uint8_t {
  input,
  output,
  cache_read,
  cache_write,
  cache_write_1h,
  speech_input,   ///< sonic_details only: speech input tokens
  speech_output,  ///< sonic_details only: speech output tokens
  count_
};
constexpr std::size_t field_count = static_cast<std::size_t>(field::count_);

constexpr std::size_t index_of(shape s) noexcept { return static_cast<std::size_t>(s); }
constexpr std::size_t index_of(field f) noexcept { return static_cast<std::size_t>(f); }

struct counts {
  std::array<std::uint64_t, field_count> value{};
  std::uint8_t set = 0;  // bit per field: present in the document (a reported zero is present)

  void put(field f, std::uint64_t v) noexcept {
    value[index_of(f)] = v;
    set = static_cast<std::uint8_t>(set | (1u << index_of(f)));
  }
  void add(field f, std::uint64_t v) noexcept {
    value[index_of(f)] += v;
    set = static_cast<std::uint8_t>(set | (1u << index_of(f)));
  }
  [[nodiscard]] bool has(field f) const noexcept { return (set & (1u << index_of(f))) != 0; }
  [[nodiscard]] std::uint64_t get(field f) const noexcept { return value[index_of(f)]; }
  [[nodiscard]] bool any_tokens() const noexcept { return has(field::input) || has(field::output); }
};

/// Which kind of document is being read: it selects the paths that count.
enum class doc_kind : std::uint8_t {
  converse_body,   ///< Converse response body
  converse_event,  ///< one ConverseStream event payload
  invoke_body,     ///< InvokeModel response body (model-native JSON)
  invoke_chunk,    ///< one InvokeModelWithResponseStream chunk, base64-decoded
  chunk_wrapper,   ///< the `{"bytes": ..., "p": ...}` payload of a `chunk` event
  bidi_event,      ///< one InvokeModelWithBidirectionalStream chunk, base64-decoded
};

struct rule;

/// Receives the values of one JSON document at a time, by path, and keeps what matters. The
/// observer sets `kind` before each document and reads the captures afterwards.
struct extractor {
  doc_kind kind = doc_kind::invoke_body;
  std::array<counts, shape_count> shapes{};

  // Converse `usage.cacheDetails[]`: one element at a time, committed when its object closes
  // (the service model does not fix the order of `ttl` and `inputTokens` inside it).
  std::array<char, max_ttl_bytes> ttl{};
  std::size_t ttl_len = 0;
  std::uint64_t detail_tokens = 0;
  bool detail_has_tokens = false;
  std::uint64_t details_1h = 0;
  std::uint64_t details_total = 0;
  bool details_seen = false;

  bool usage_closed = false;  ///< a body's usage object (or the whole body) has closed
  bool stop_seen = false;     ///< stream: a top-level stop / completion reason string arrived
  /// The latest complete stop reason read (streams: the last one wins).
  stop_code stop = stop_code::none;
  // The stop reason string being parsed, normalised only once it completes, so that a value cut
  // by a syntax error is dropped whatever the chunk boundaries were. Fixed size: no allocation.
  std::array<char, max_stop_bytes> stop_raw{};
  std::size_t stop_len = 0;  // bytes of the value so far (may exceed stop_raw.size())
  std::uint64_t text_bytes = 0;
  std::uint64_t pending_text_bytes = 0;  // of a string still being parsed
  bool text_in_doc = false;              ///< the current document carried generated text
  /// bidi_event: the current document closed a `usageEvent` / a `completionEnd` object.
  bool usage_event_in_doc = false;
  bool completion_end_in_doc = false;
  std::string tier;  ///< `serviceTier.type` (Converse body, ConverseStream metadata)
  std::string* bytes_out = nullptr;  ///< chunk_wrapper: where the `bytes` string goes

  /// Forgets what a body captured (the body went past the parse cap).
  void clear_body_captures() noexcept {
    shapes = {};
    details_1h = details_total = 0;
    details_seen = false;
    usage_closed = false;
    stop = stop_code::none;
  }

  // Called by path_handler with the path of the value. Declared inline (defined in
  // usage_json.cpp, the only caller) so the parser's per-value calls are inlined into it.
  inline void number(std::string_view path, std::uint64_t v) noexcept;
  inline void string_part(std::string_view path, std::string_view s, bool first, bool last);
  inline void object_end(std::string_view path) noexcept;
  inline void document_end() noexcept;

 private:
  inline void apply(const rule* r, std::uint64_t v) noexcept;
  inline void count_text(std::string_view s, bool first, bool last) noexcept;
  inline void stop_part(std::string_view s, bool first, bool last) noexcept;
};

/// SAX handler for boost::json::basic_parser: keeps the path of the current value in a fixed
/// buffer and reports scalars to the extractor. Nothing here allocates after construction. The
/// callbacks are inline and defined in usage_json.cpp, where the parser is instantiated.
class path_handler {
 public:
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);

  explicit path_handler(extractor* ex);

  inline bool on_document_begin(boost::json::error_code&);
  inline bool on_document_end(boost::json::error_code&);
  inline bool on_object_begin(boost::json::error_code&);
  inline bool on_object_end(std::size_t, boost::json::error_code&);
  inline bool on_array_begin(boost::json::error_code&);
  inline bool on_array_end(std::size_t, boost::json::error_code&);
  inline bool on_key_part(boost::json::string_view s, std::size_t n, boost::json::error_code&);
  inline bool on_key(boost::json::string_view s, std::size_t n, boost::json::error_code&);
  inline bool on_string_part(boost::json::string_view s, std::size_t n, boost::json::error_code&);
  inline bool on_string(boost::json::string_view s, std::size_t n, boost::json::error_code&);
  bool on_number_part(boost::json::string_view, boost::json::error_code&) { return true; }
  inline bool on_int64(std::int64_t v, boost::json::string_view, boost::json::error_code&);
  inline bool on_uint64(std::uint64_t v, boost::json::string_view, boost::json::error_code&);
  inline bool on_double(double v, boost::json::string_view, boost::json::error_code&);
  bool on_bool(bool, boost::json::error_code&) { return true; }
  // Llama's later `prompt_token_count: null` is no count.
  bool on_null(boost::json::error_code&) { return true; }
  bool on_comment_part(boost::json::string_view, boost::json::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::json::error_code&) { return true; }

 private:
  struct frame {
    std::size_t base;  // path length where this container's own path ends
  };

  inline void push(bool array);
  inline bool pop();
  inline void key(boost::json::string_view s, std::size_t n, bool last);
  inline void number(std::uint64_t v);

  extractor* ex_;
  std::string path_;
  std::vector<frame> frames_;
  std::size_t untracked_ = 0;
  std::size_t key_len_ = 0;
};

/// boost::json's SAX parser over a path_handler, compiled in usage_json.cpp only (its member
/// templates are instantiated there, once). The handler points at `ex`, which must outlive the
/// reader and stay where it is; the reader is neither copyable nor movable.
class json_reader {
 public:
  explicit json_reader(extractor& ex);
  json_reader(const json_reader&) = delete;
  json_reader& operator=(const json_reader&) = delete;

  /// As boost::json::basic_parser::write_some: `more` when more bytes of the document follow.
  std::size_t write_some(bool more, const char* data, std::size_t size,
                         boost::json::error_code& ec);
  /// Starts a new document (keeps the parser's memory).
  void reset() noexcept;
  [[nodiscard]] bool done() const noexcept { return parser_.done(); }

 private:
  boost::json::basic_parser<path_handler> parser_;
};

}  // namespace bedrock_meter::metering::detail
