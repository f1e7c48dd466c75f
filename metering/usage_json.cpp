#include "metering/usage_json.hpp"

#include <algorithm>
#include <span>

// basic_parser's member templates live in this header; this is the only translation unit that
// instantiates basic_parser<path_handler>.
#include <boost/json/basic_parser_impl.hpp>

namespace bedrock_meter::metering::detail {

namespace json = boost::json;

struct rule {
  std::string_view path;  ///< keys joined by '.', array elements as "[]"
  shape target;
  field slot;
  bool accumulate = false;  ///< sum every occurrence (Titan `results[].tokenCount`)
};

namespace {

/// Nesting the parser accepts at all (model-generated tool input can be deep).
constexpr std::size_t max_json_depth = 1024;

// ---------------------------------------------------------------------------------------------
// Where each shape keeps its counts, per kind of document.

constexpr std::array converse_rules{
    rule{"usage.inputTokens", shape::converse, field::input},
    rule{"usage.outputTokens", shape::converse, field::output},
    rule{"usage.cacheReadInputTokens", shape::converse, field::cache_read},
    rule{"usage.cacheWriteInputTokens", shape::converse, field::cache_write},
};

constexpr std::array invoke_body_rules{
    rule{"usage.input_tokens", shape::anthropic, field::input},
    rule{"usage.output_tokens", shape::anthropic, field::output},
    rule{"usage.cache_read_input_tokens", shape::anthropic, field::cache_read},
    rule{"usage.cache_creation_input_tokens", shape::anthropic, field::cache_write},
    rule{"usage.cache_creation.ephemeral_1h_input_tokens", shape::anthropic, field::cache_write_1h},
    rule{"usage.inputTokens", shape::nova, field::input},
    rule{"usage.outputTokens", shape::nova, field::output},
    rule{"usage.cacheReadInputTokenCount", shape::nova, field::cache_read},
    rule{"usage.cacheWriteInputTokenCount", shape::nova, field::cache_write},
    rule{"inputTextTokenCount", shape::titan, field::input},
    rule{"results[].tokenCount", shape::titan, field::output, true},
    rule{"prompt_token_count", shape::llama, field::input},
    rule{"generation_token_count", shape::llama, field::output},
    rule{"usage.prompt_tokens", shape::openai, field::input},
    rule{"usage.completion_tokens", shape::openai, field::output},
    rule{"usage.prompt_tokens_details.cached_tokens", shape::openai, field::cache_read},
    rule{"meta.billed_units.input_tokens", shape::cohere, field::input},
    rule{"meta.billed_units.output_tokens", shape::cohere, field::output},
};

constexpr std::array invoke_chunk_rules{
    rule{"amazon-bedrock-invocationMetrics.inputTokenCount", shape::invocation_metrics,
         field::input},
    rule{"amazon-bedrock-invocationMetrics.outputTokenCount", shape::invocation_metrics,
         field::output},
    rule{"amazon-bedrock-invocationMetrics.cacheReadInputTokenCount", shape::invocation_metrics,
         field::cache_read},
    rule{"amazon-bedrock-invocationMetrics.cacheWriteInputTokenCount", shape::invocation_metrics,
         field::cache_write},
    rule{"message.usage.input_tokens", shape::anthropic_start, field::input},
    rule{"message.usage.output_tokens", shape::anthropic_start, field::output},
    rule{"message.usage.cache_read_input_tokens", shape::anthropic_start, field::cache_read},
    rule{"message.usage.cache_creation_input_tokens", shape::anthropic_start, field::cache_write},
    rule{"message.usage.cache_creation.ephemeral_1h_input_tokens", shape::anthropic_start,
         field::cache_write_1h},
    rule{"usage.input_tokens", shape::anthropic, field::input},
    rule{"usage.output_tokens", shape::anthropic, field::output},
    rule{"usage.cache_read_input_tokens", shape::anthropic, field::cache_read},
    rule{"usage.cache_creation_input_tokens", shape::anthropic, field::cache_write},
    rule{"usage.cache_creation.ephemeral_1h_input_tokens", shape::anthropic, field::cache_write_1h},
    rule{"metadata.usage.inputTokens", shape::nova, field::input},
    rule{"metadata.usage.outputTokens", shape::nova, field::output},
    rule{"metadata.usage.cacheReadInputTokenCount", shape::nova, field::cache_read},
    rule{"metadata.usage.cacheWriteInputTokenCount", shape::nova, field::cache_write},
    rule{"inputTextTokenCount", shape::titan, field::input},
    rule{"totalOutputTextTokenCount", shape::titan, field::output},
    rule{"prompt_token_count", shape::llama, field::input},
    rule{"generation_token_count", shape::llama, field::output},
    rule{"usage.prompt_tokens", shape::openai, field::input},
    rule{"usage.completion_tokens", shape::openai, field::output},
    rule{"usage.prompt_tokens_details.cached_tokens", shape::openai, field::cache_read},
    rule{"response.meta.billed_units.input_tokens", shape::cohere, field::input},
    rule{"response.meta.billed_units.output_tokens", shape::cohere, field::output},
};

// InvokeModelWithBidirectionalStream (Nova Sonic): `usageEvent` carries running totals for the
// session, split by speech and text in `details.total`; `totalInputTokens` / `totalOutputTokens`
// are the same sums without the split. `details.delta` (the change since the last event) is not
// read: the last total is the session's usage.
constexpr std::array bidi_rules{
    rule{"event.usageEvent.details.total.input.textTokens", shape::sonic_details, field::input},
    rule{"event.usageEvent.details.total.input.speechTokens", shape::sonic_details,
         field::speech_input},
    rule{"event.usageEvent.details.total.output.textTokens", shape::sonic_details, field::output},
    rule{"event.usageEvent.details.total.output.speechTokens", shape::sonic_details,
         field::speech_output},
    rule{"event.usageEvent.totalInputTokens", shape::sonic_totals, field::input},
    rule{"event.usageEvent.totalOutputTokens", shape::sonic_totals, field::output},
};

// Generated text, counted only to estimate output when usage never arrives.
constexpr std::array<std::string_view, 2> converse_body_text{
    "output.message.content[].text",
    "output.message.content[].reasoningContent.reasoningText.text",
};
constexpr std::array<std::string_view, 3> converse_event_text{
    "delta.text",
    "delta.toolUse.input",
    "delta.reasoningContent.text",
};
constexpr std::array<std::string_view, 9> invoke_body_text{
    "content[].text",                 // Anthropic
    "content[].thinking",             // Anthropic extended thinking
    "output.message.content[].text",  // Nova
    "results[].outputText",           // Titan
    "generation",                     // Llama
    "outputs[].text",                 // Mistral text completion
    "choices[].message.content",      // OpenAI-compatible chat, Mistral chat, Jamba
    "choices[].text",                 // DeepSeek text completion
    "text",                           // Cohere Command R
};
constexpr std::array<std::string_view, 11> invoke_chunk_text{
    "delta.text",                    // Anthropic content_block_delta
    "delta.partial_json",            // Anthropic tool input
    "delta.thinking",                // Anthropic extended thinking
    "contentBlockDelta.delta.text",  // Nova
    "outputText",                    // Titan
    "generation",                    // Llama
    "outputs[].text",                // Mistral text completion
    "choices[].delta.content",       // OpenAI-compatible
    "choices[].message.content",     // Mistral chat
    "choices[].text",                // DeepSeek
    "text",                          // Cohere
};

// Where each shape says why the model stopped (normalised by normalise_stop_reason). Shapes do
// not share a path with a different meaning, so every path is read whatever the family.
constexpr std::array<std::string_view, 1> converse_stop{
    "stopReason",  // Converse body, ConverseStream messageStop event
};
constexpr std::array<std::string_view, 8> invoke_body_stop{
    "stop_reason",                        // Anthropic, Llama
    "stopReason",                         // Nova
    "results[].completionReason",         // Titan text
    "outputs[].stop_reason",              // Mistral text completion
    "choices[].finish_reason",            // OpenAI-compatible chat, DeepSeek chat, Jamba
    "choices[].stop_reason",              // Mistral chat, DeepSeek text completion
    "finish_reason",                      // Cohere Command R
    "completions[].finishReason.reason",  // AI21 Jurassic
};
constexpr std::array<std::string_view, 8> invoke_chunk_stop{
    "delta.stop_reason",        // Anthropic message_delta
    "messageStop.stopReason",   // Nova
    "completionReason",         // Titan
    "stop_reason",              // Llama
    "outputs[].stop_reason",    // Mistral text completion
    "choices[].finish_reason",  // OpenAI-compatible
    "choices[].stop_reason",    // Mistral chat, DeepSeek text completion
    "finish_reason",            // Cohere stream-end
};

struct stop_alias {
  std::string_view raw;  ///< lowercase
  stop_code code;
};

// Raw values of every family, lowercase; matching ignores ASCII case. Anything else is `other`
// (Converse's malformed_model_output, malformed_tool_use, model_context_window_exceeded;
// Anthropic's pause_turn; Titan's RAG_QUERY_WHEN_RAG_DISABLED; Cohere's ERROR, ERROR_LIMIT,
// USER_CANCEL).
constexpr std::array stop_aliases{
    stop_alias{"end_turn", stop_code::end_turn},
    stop_alias{"stop", stop_code::end_turn},       // Llama, Mistral, OpenAI-compatible, AI21
    stop_alias{"finish", stop_code::end_turn},     // Titan
    stop_alias{"complete", stop_code::end_turn},   // Cohere
    stop_alias{"endoftext", stop_code::end_turn},  // AI21 Jurassic
    stop_alias{"max_tokens", stop_code::max_tokens},
    stop_alias{"length", stop_code::max_tokens},  // Titan, Llama, Mistral, OpenAI, AI21
    stop_alias{"tool_use", stop_code::tool_use},
    stop_alias{"tool_calls", stop_code::tool_use},     // Mistral, OpenAI-compatible
    stop_alias{"function_call", stop_code::tool_use},  // OpenAI (legacy)
    stop_alias{"stop_sequence", stop_code::stop_sequence},
    stop_alias{"stop_criteria_met", stop_code::stop_sequence},  // Titan
    stop_alias{"content_filtered", stop_code::content_filtered},
    stop_alias{"content_filter", stop_code::content_filtered},  // OpenAI-compatible
    stop_alias{"refusal", stop_code::content_filtered},         // Anthropic
    stop_alias{"error_toxic", stop_code::content_filtered},     // Cohere
    stop_alias{"guardrail_intervened", stop_code::guardrail_intervened},
};

bool equals_lowercase(std::string_view raw, std::string_view lower) noexcept {
  if (raw.size() != lower.size()) return false;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

template <std::size_t N>
const rule* find_rule(const std::array<rule, N>& rules, std::string_view path) noexcept {
  for (const rule& r : rules) {
    if (r.path == path) return &r;
  }
  return nullptr;
}

bool path_in(std::span<const std::string_view> paths, std::string_view path) noexcept {
  return std::find(paths.begin(), paths.end(), path) != paths.end();
}

json::parse_options scanner_options() noexcept {
  json::parse_options o;
  o.max_depth = max_json_depth;
  o.allow_invalid_utf8 = true;  // metering only reads numbers; never reject a body over text
  return o;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Stop reason

std::string_view to_string(stop_code c) noexcept {
  switch (c) {
    case stop_code::none: return {};
    case stop_code::end_turn: return "end_turn";
    case stop_code::max_tokens: return "max_tokens";
    case stop_code::tool_use: return "tool_use";
    case stop_code::stop_sequence: return "stop_sequence";
    case stop_code::content_filtered: return "content_filtered";
    case stop_code::guardrail_intervened: return "guardrail_intervened";
    case stop_code::other: return "other";
  }
  return {};
}

stop_code normalise_stop_reason(std::string_view raw) noexcept {
  if (raw.empty()) return stop_code::none;
  for (const stop_alias& a : stop_aliases) {
    if (equals_lowercase(raw, a.raw)) return a.code;
  }
  return stop_code::other;
}

// ---------------------------------------------------------------------------------------------
// extractor

void extractor::number(std::string_view path, std::uint64_t v) noexcept {
  switch (kind) {
    case doc_kind::converse_body:
    case doc_kind::converse_event:
      if (path == "usage.cacheDetails[].inputTokens") {
        detail_tokens = v;
        detail_has_tokens = true;
        return;
      }
      apply(find_rule(converse_rules, path), v);
      return;
    case doc_kind::invoke_body: apply(find_rule(invoke_body_rules, path), v); return;
    case doc_kind::invoke_chunk: apply(find_rule(invoke_chunk_rules, path), v); return;
    case doc_kind::bidi_event: apply(find_rule(bidi_rules, path), v); return;
    case doc_kind::chunk_wrapper: return;
  }
}

void extractor::apply(const rule* r, std::uint64_t v) noexcept {
  if (r == nullptr) return;
  counts& c = shapes[index_of(r->target)];
  if (r->accumulate) {
    c.add(r->slot, v);
  } else {
    c.put(r->slot, v);
  }
}

void extractor::string_part(std::string_view path, std::string_view s, bool first, bool last) {
  switch (kind) {
    case doc_kind::chunk_wrapper:
      if (path == "bytes" && bytes_out != nullptr) {
        if (first) bytes_out->clear();
        bytes_out->append(s);
      }
      return;
    case doc_kind::converse_body:
    case doc_kind::converse_event:
      if (path_in(kind == doc_kind::converse_body
                      ? std::span<const std::string_view>(converse_body_text)
                      : std::span<const std::string_view>(converse_event_text),
                  path)) {
        count_text(s, first, last);
      } else if (path_in(converse_stop, path)) {
        stop_part(s, first, last);
      } else if (path == "usage.cacheDetails[].ttl") {
        if (first) ttl_len = 0;
        const std::size_t n = std::min(s.size(), ttl.size() - ttl_len);
        std::copy_n(s.data(), n, ttl.data() + ttl_len);
        ttl_len += n;
      } else if (path == "serviceTier.type") {
        if (first) tier.clear();
        tier.append(s.substr(0, max_tier_bytes - std::min(tier.size(), max_tier_bytes)));
      }
      return;
    case doc_kind::invoke_body:
      if (path_in(invoke_body_text, path)) {
        count_text(s, first, last);
      } else if (path_in(invoke_body_stop, path)) {
        stop_part(s, first, last);
      }
      return;
    case doc_kind::invoke_chunk:
      if (path_in(invoke_chunk_text, path)) {
        count_text(s, first, last);
      } else if (path_in(invoke_chunk_stop, path)) {
        stop_part(s, first, last);
        // Llama / Titan: a non-null reason marks the last chunk (their counts run on every one).
        if (path == "stop_reason" || path == "completionReason") stop_seen = true;
      }
      return;
    case doc_kind::bidi_event:
      // textOutput carries the transcript of what the user said as well as the assistant's
      // text (its `role` may come after `content`, so the two are not told apart): counted as
      // generated text, an estimate that errs high.
      if (path == "event.textOutput.content") {
        count_text(s, first, last);
      } else if (path == "event.completionEnd.stopReason") {
        stop_part(s, first, last);
      }
      return;
  }
}

// Text of a string still being parsed is held apart until the string completes, so that a
// body malformed mid-string estimates the same whatever the chunk boundaries were (the
// fuzzer checks that whole and chunked feeding agree).
void extractor::count_text(std::string_view s, bool first, bool last) noexcept {
  if (first) pending_text_bytes = 0;
  pending_text_bytes += s.size();
  if (!last) return;
  text_bytes += pending_text_bytes;
  pending_text_bytes = 0;
  text_in_doc = true;
}

// The raw value is kept in a fixed buffer until the string completes; one longer than the
// buffer is no value we know. An empty string says nothing and keeps the previous reason.
void extractor::stop_part(std::string_view s, bool first, bool last) noexcept {
  if (first) stop_len = 0;
  if (stop_len < stop_raw.size()) {
    const std::size_t n = std::min(s.size(), stop_raw.size() - stop_len);
    std::copy_n(s.data(), n, stop_raw.data() + stop_len);
  }
  stop_len += s.size();
  if (!last || stop_len == 0) return;
  stop = stop_len > stop_raw.size()
             ? stop_code::other
             : normalise_stop_reason(std::string_view(stop_raw.data(), stop_len));
}

void extractor::object_end(std::string_view path) noexcept {
  switch (kind) {
    case doc_kind::converse_body:
    case doc_kind::converse_event:
      if (path == "usage.cacheDetails[]") {
        if (detail_has_tokens) {
          details_total += detail_tokens;
          if (std::string_view(ttl.data(), ttl_len) == "1h") details_1h += detail_tokens;
          details_seen = true;
        }
        detail_has_tokens = false;
        detail_tokens = 0;
        ttl_len = 0;
      } else if (path == "usage") {
        usage_closed = true;
      }
      return;
    case doc_kind::invoke_body:
      if (path == "usage" || path == "meta") usage_closed = true;
      return;
    case doc_kind::bidi_event:
      if (path == "event.usageEvent") {
        usage_event_in_doc = true;
      } else if (path == "event.completionEnd") {
        completion_end_in_doc = true;
      }
      return;
    case doc_kind::invoke_chunk:
    case doc_kind::chunk_wrapper: return;
  }
}

void extractor::document_end() noexcept {
  if (kind == doc_kind::converse_body || kind == doc_kind::invoke_body) usage_closed = true;
}

// ---------------------------------------------------------------------------------------------
// path_handler

path_handler::path_handler(extractor* ex) : ex_(ex) {
  // Worst case: every tracked level is a truncated key plus '.', marker and "[]".
  path_.reserve(max_tracked_depth * (max_key_bytes + 4));
  frames_.reserve(max_tracked_depth);
}

bool path_handler::on_document_begin(json::error_code&) {
  path_.clear();
  frames_.clear();
  untracked_ = 0;
  return true;
}

bool path_handler::on_document_end(json::error_code&) {
  ex_->document_end();
  return true;
}

bool path_handler::on_object_begin(json::error_code&) {
  push(false);
  return true;
}

bool path_handler::on_object_end(std::size_t, json::error_code&) {
  if (pop()) ex_->object_end(path_);
  return true;
}

bool path_handler::on_array_begin(json::error_code&) {
  push(true);
  return true;
}

bool path_handler::on_array_end(std::size_t, json::error_code&) {
  pop();
  return true;
}

bool path_handler::on_key_part(json::string_view s, std::size_t n, json::error_code&) {
  key(s, n, false);
  return true;
}

bool path_handler::on_key(json::string_view s, std::size_t n, json::error_code&) {
  key(s, n, true);
  return true;
}

bool path_handler::on_string_part(json::string_view s, std::size_t n, json::error_code&) {
  if (untracked_ == 0)
    ex_->string_part(path_, std::string_view(s.data(), s.size()), n == s.size(), false);
  return true;
}

bool path_handler::on_string(json::string_view s, std::size_t n, json::error_code&) {
  if (untracked_ == 0)
    ex_->string_part(path_, std::string_view(s.data(), s.size()), n == s.size(), true);
  return true;
}

bool path_handler::on_int64(std::int64_t v, json::string_view, json::error_code&) {
  if (v >= 0) number(static_cast<std::uint64_t>(v));
  return true;
}

bool path_handler::on_uint64(std::uint64_t v, json::string_view, json::error_code&) {
  number(v);
  return true;
}

bool path_handler::on_double(double v, json::string_view, json::error_code&) {
  // Counts are integers; a provider writing `12.0` still means 12. Negative, NaN and
  // out-of-range values are not counts.
  if (v >= 0.0 && v < 1.8e19) number(static_cast<std::uint64_t>(v));
  return true;
}

void path_handler::push(bool array) {
  if (untracked_ > 0 || frames_.size() == max_tracked_depth) {
    ++untracked_;
    return;
  }
  frames_.push_back(frame{path_.size()});
  if (array) path_ += "[]";
}

// Returns true when a tracked container closed; path_ is then that container's path.
bool path_handler::pop() {
  if (untracked_ > 0) {
    --untracked_;
    return false;
  }
  if (frames_.empty()) return false;
  path_.resize(frames_.back().base);
  frames_.pop_back();
  return true;
}

void path_handler::key(json::string_view s, std::size_t n, bool last) {
  if (untracked_ > 0 || frames_.empty()) return;
  if (n == s.size()) {  // first part of this key
    // An object's frame base is its own path; an array element object's base ends in "[]".
    path_.resize(frames_.back().base);
    if (!path_.empty()) path_ += '.';
    key_len_ = 0;
  }
  const std::size_t room = max_key_bytes - std::min(key_len_, max_key_bytes);
  path_.append(s.data(), std::min(room, s.size()));
  key_len_ += s.size();
  if (last && key_len_ > max_key_bytes) path_ += '\x01';  // matches no rule
}

void path_handler::number(std::uint64_t v) {
  if (untracked_ == 0) ex_->number(path_, v);
}

// ---------------------------------------------------------------------------------------------
// json_reader

json_reader::json_reader(extractor& ex) : parser_(scanner_options(), &ex) {}

std::size_t json_reader::write_some(bool more, const char* data, std::size_t size,
                                    json::error_code& ec) {
  return parser_.write_some(more, data, size, ec);
}

void json_reader::reset() noexcept { parser_.reset(); }

}  // namespace bedrock_meter::metering::detail
