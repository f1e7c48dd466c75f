#include "tests/simulator/sim_bodies.hpp"

#include <algorithm>
#include <array>
#include <unordered_map>
#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "metering/event_stream.hpp"
#include "tests/simulator/sim_codec.hpp"

namespace bedrock_meter::simulator {

namespace {

// Words the simulated model "says"; one word is one output token.
constexpr std::array<std::string_view, 16> k_words = {
    "lorem", "ipsum", "dolor",   "sit",    "amet",       "consectetur", "adipiscing", "elit",
    "sed",   "do",    "eiusmod", "tempor", "incididunt", "ut",          "labore",     "magna"};

// Text of output tokens [from, to): words joined by single spaces, no leading space for token 0.
void append_tokens_text(std::string& out, std::uint64_t from, std::uint64_t to) {
  for (std::uint64_t k = from; k < to; ++k) {
    if (k != 0) out.push_back(' ');
    out.append(k_words[k % k_words.size()]);
  }
}

std::string full_text(const plan& p) {
  std::string s;
  s.reserve(p.output * 7);
  append_tokens_text(s, 0, p.output);
  return s;
}

// Anthropic bodies name the model without the `anthropic.` provider and `-v1:0` version suffix.
std::string anthropic_model_name(std::string_view model_id) {
  std::string_view base = base_model_id(model_id);
  if (base.starts_with("anthropic.")) base.remove_prefix(10);
  if (auto v = base.rfind("-v"); v != std::string_view::npos && v + 2 < base.size() &&
                                 base[v + 2] >= '0' && base[v + 2] <= '9') {
    base = base.substr(0, v);
  }
  return std::string(base);
}

// `"id":...,"type":"message","role":"assistant","model":...` of an Anthropic message, whole or
// in a stream's message_start.
void append_anthropic_identity(std::string& out, std::string_view message_id,
                               std::string_view model_id) {
  out.append("\"id\":");
  append_json_string(out, message_id);
  out.append(R"(,"type":"message","role":"assistant","model":)");
  append_json_string(out, anthropic_model_name(model_id));
}

// An Anthropic message's `"usage":{...}`; a stream's message_start reports 1 output token.
void append_anthropic_usage(std::string& out, const plan& p, std::uint64_t output_tokens) {
  out.append(R"("usage":{"input_tokens":)");
  append_uint(out, p.input);
  out.append(",\"cache_creation_input_tokens\":");
  append_uint(out, p.cache_write);
  out.append(",\"cache_read_input_tokens\":");
  append_uint(out, p.cache_read);
  out.append(",\"output_tokens\":");
  append_uint(out, output_tokens);
  out.push_back('}');
}

// Converse's usage, metrics and served configuration, as the whole body and the stream's
// metadata event both carry them. Cache counts appear only when non-zero.
void append_converse_usage(std::string& out, const plan& p, const timing& t,
                           const served_config& s) {
  out.append(R"("usage":{"inputTokens":)");
  append_uint(out, p.input);
  out.append(",\"outputTokens\":");
  append_uint(out, p.output);
  out.append(",\"totalTokens\":");
  append_uint(out, p.input + p.output + p.cache_read + p.cache_write);
  if (p.cache_read != 0) {
    out.append(",\"cacheReadInputTokens\":");
    append_uint(out, p.cache_read);
  }
  if (p.cache_write != 0) {
    out.append(",\"cacheWriteInputTokens\":");
    append_uint(out, p.cache_write);
  }
  out.append(R"(},"metrics":{"latencyMs":)");
  append_uint(out, t.latency_ms);
  out.push_back('}');
  if (!s.tier.empty()) {
    out.append(R"(,"serviceTier":{"type":)");
    append_json_string(out, s.tier);
    out.push_back('}');
  }
  if (!s.latency.empty()) {
    out.append(R"(,"performanceConfig":{"latency":)");
    append_json_string(out, s.latency);
    out.push_back('}');
  }
}

void append_embedding(std::string& out, std::uint64_t dims) {
  // Cached per dimension count: embeddings are the largest bodies and identical per size.
  thread_local std::unordered_map<std::uint64_t, std::string> cache;
  auto it = cache.find(dims);
  if (it == cache.end()) {
    std::string s = "[";
    for (std::uint64_t k = 0; k < dims; ++k) {
      if (k != 0) s.push_back(',');
      const std::int64_t m = static_cast<std::int64_t>((k * 2654435761u) % 2001u) - 1000;
      if (m < 0) s.push_back('-');
      const std::uint64_t a = static_cast<std::uint64_t>(m < 0 ? -m : m);
      s.append("0.");
      s.push_back(static_cast<char>('0' + (a / 1000) % 10));
      s.push_back(static_cast<char>('0' + (a / 100) % 10));
      s.push_back(static_cast<char>('0' + (a / 10) % 10));
      s.push_back(static_cast<char>('0' + a % 10));
    }
    s.push_back(']');
    it = cache.emplace(dims, std::move(s)).first;
  }
  out.append(it->second);
}

// InvokeModel bodies, one per family.

void append_nova_invoke(std::string& out, const plan& p, std::string_view stop) {
  out.append(R"({"output":{"message":{"content":[{"text":)");
  append_json_string(out, full_text(p));
  out.append(R"(}],"role":"assistant"}},"stopReason":)");
  append_json_string(out, stop);
  out.append(R"(,"usage":{"inputTokens":)");
  append_uint(out, p.input);
  out.append(",\"outputTokens\":");
  append_uint(out, p.output);
  out.append(",\"totalTokens\":");
  append_uint(out, p.input + p.output + p.cache_read + p.cache_write);
  out.append(",\"cacheReadInputTokenCount\":");
  append_uint(out, p.cache_read);
  out.append(",\"cacheWriteInputTokenCount\":");
  append_uint(out, p.cache_write);
  out.append("}}");
}

void append_titan_text_invoke(std::string& out, const plan& p, std::string_view stop) {
  out.append("{\"inputTextTokenCount\":");
  append_uint(out, p.input);
  out.append(",\"results\":[{\"tokenCount\":");
  append_uint(out, p.output);
  out.append(",\"outputText\":");
  append_json_string(out, full_text(p));
  out.append(",\"completionReason\":");
  append_json_string(out, stop);
  out.append("}]}");
}

void append_titan_embed_invoke(std::string& out, std::string_view model_id, const plan& p,
                               const request_facts& facts) {
  const std::string_view base = base_model_id(model_id);
  const std::uint64_t def = base.find("-v2") != std::string_view::npos ? 1024 : 1536;
  const std::uint64_t dims = std::clamp<std::uint64_t>(facts.dimensions.value_or(def), 1, 8192);
  out.append("{\"embedding\":");
  append_embedding(out, dims);
  out.append(",\"inputTextTokenCount\":");
  append_uint(out, p.input);
  out.push_back('}');
}

void append_llama_invoke(std::string& out, const plan& p, std::string_view stop) {
  out.append("{\"generation\":");
  append_json_string(out, full_text(p));
  out.append(",\"prompt_token_count\":");
  append_uint(out, p.input);
  out.append(",\"generation_token_count\":");
  append_uint(out, p.output);
  out.append(",\"stop_reason\":");
  append_json_string(out, stop);
  out.push_back('}');
}

void append_mistral_invoke(std::string& out, const plan& p, std::string_view stop) {
  out.append("{\"outputs\":[{\"text\":");
  append_json_string(out, full_text(p));
  out.append(",\"stop_reason\":");
  append_json_string(out, stop);
  out.append("}]}");
}

void append_anthropic_invoke(std::string& out, std::string_view model_id, const plan& p,
                             std::string_view stop, std::string_view message_id) {
  out.push_back('{');
  append_anthropic_identity(out, message_id, model_id);
  out.append(R"(,"content":[{"type":"text","text":)");
  append_json_string(out, full_text(p));
  out.append(R"(}],"stop_reason":)");
  append_json_string(out, stop);
  out.append(R"(,"stop_sequence":null,)");
  append_anthropic_usage(out, p, p.output);
  out.push_back('}');
}

}  // namespace

std::string_view stop_reason_for(model_family fam, sim_op op, const plan& p) {
  if (!p.stop.empty()) return p.stop;
  if (op == sim_op::converse || op == sim_op::converse_stream) {
    return p.hit_max_tokens ? "max_tokens" : "end_turn";
  }
  switch (fam) {
    case model_family::titan_text:
    case model_family::titan_embed: return p.hit_max_tokens ? "LENGTH" : "FINISH";
    case model_family::llama:
    case model_family::mistral: return p.hit_max_tokens ? "length" : "stop";
    default: return p.hit_max_tokens ? "max_tokens" : "end_turn";
  }
}

std::string error_body(std::string_view message) {
  std::string out = "{\"message\":";
  append_json_string(out, message);
  out.push_back('}');
  return out;
}

std::string converse_body(const plan& p, const timing& t, const served_config& s) {
  std::string out;
  out.reserve(256 + p.output * 8);
  out.append(R"({"output":{"message":{"role":"assistant","content":[{"text":)");
  append_json_string(out, full_text(p));
  out.append(R"(}]}},"stopReason":)");
  append_json_string(out, stop_reason_for(model_family::generic, sim_op::converse, p));
  out.push_back(',');
  append_converse_usage(out, p, t, s);
  out.push_back('}');
  return out;
}

std::string invoke_body(model_family fam, std::string_view model_id, const plan& p,
                        const request_facts& facts, std::string_view message_id) {
  std::string out;
  out.reserve(256 + p.output * 8);
  const std::string_view stop = stop_reason_for(fam, sim_op::invoke_model, p);
  switch (fam) {
    case model_family::nova: append_nova_invoke(out, p, stop); break;
    case model_family::titan_text: append_titan_text_invoke(out, p, stop); break;
    case model_family::titan_embed: append_titan_embed_invoke(out, model_id, p, facts); break;
    case model_family::llama: append_llama_invoke(out, p, stop); break;
    case model_family::mistral: append_mistral_invoke(out, p, stop); break;
    case model_family::anthropic:
    case model_family::generic: append_anthropic_invoke(out, model_id, p, stop, message_id); break;
  }
  return out;
}

std::string count_tokens_body(const plan& p) {
  std::string out = "{\"inputTokens\":";
  append_uint(out, p.input);
  out.push_back('}');
  return out;
}

std::string apply_guardrail_body(const directive& d) {
  std::string out =
      R"({"usage":{"topicPolicyUnits":1,"contentPolicyUnits":1,"wordPolicyUnits":1,)"
      R"("sensitiveInformationPolicyUnits":0,"sensitiveInformationPolicyFreeUnits":0,)"
      R"("contextualGroundingPolicyUnits":0},)";
  if (d.intervene) {
    out.append(R"("action":"GUARDRAIL_INTERVENED","actionReason":"Guardrail blocked.",)"
               R"("outputs":[{"text":"Sorry, the model cannot answer this question."}],)"
               R"("assessments":[{"topicPolicy":{"topics":[{"name":"Simulated","type":"DENY",)"
               R"("action":"BLOCKED","detected":true}]}}]})");
  } else {
    out.append(R"("action":"NONE","outputs":[],"assessments":[]})");
  }
  return out;
}

std::string invoke_guardrail_checks_body(std::string_view request_body) {
  // One empty result list and one text unit per configured check: nothing is ever flagged.
  std::string results = "{";
  std::string usage = "{";
  boost::system::error_code ec;
  const boost::json::value root = boost::json::parse(request_body, ec);
  const boost::json::object* checks = nullptr;
  if (!ec) {
    if (const auto* c = json_at(root, {"checks"}); c != nullptr) checks = c->if_object();
  }
  bool first = true;
  for (std::string_view name : {"contentFilter", "promptAttack", "sensitiveInformation"}) {
    if (checks == nullptr || !checks->contains(name)) continue;
    if (!first) {
      results.push_back(',');
      usage.push_back(',');
    }
    first = false;
    append_json_string(results, name);
    results.append(":{\"results\":[]}");
    append_json_string(usage, name);
    usage.append(":{\"textUnits\":1}");
  }
  results.push_back('}');
  usage.push_back('}');
  return "{\"results\":" + results + ",\"usage\":" + usage + "}";
}

stream_script::stream_script(sim_op op, model_family fam, std::string model_id, plan p,
                             served_config served, std::string message_id)
    : op_(op),
      fam_(fam),
      model_id_(std::move(model_id)),
      plan_(std::move(p)),
      served_(std::move(served)),
      message_id_(std::move(message_id)) {
  deltas_ = static_cast<std::size_t>(plan_.events);
  if (op_ == sim_op::converse_stream) {
    prefix_ = 1;  // messageStart
    suffix_ = 3;  // contentBlockStop, messageStop, metadata
    return;
  }
  switch (fam_) {
    case model_family::nova:
      prefix_ = 1;
      suffix_ = 3;
      break;
    case model_family::titan_text:
    case model_family::titan_embed:
    case model_family::llama:
    case model_family::mistral:
      // These families finish on their last content chunk, so there must be one.
      deltas_ = std::max<std::size_t>(deltas_, 1);
      break;
    case model_family::anthropic:
    case model_family::generic:
      prefix_ = 2;  // message_start, content_block_start
      suffix_ = 3;  // content_block_stop, message_delta, message_stop
      break;
  }
}

stream_script::part stream_script::part_of(std::size_t i) const noexcept {
  if (i == 0 && prefix_ > 0) return part::message_start;
  if (i < prefix_) return part::block_start;
  if (i < prefix_ + deltas_) return part::delta;
  if (i == prefix_ + deltas_) return part::block_stop;
  if (i + 1 < size()) return part::stop;
  return part::finish;
}

std::uint64_t stream_script::tokens_through(std::size_t delta) const noexcept {
  if (deltas_ == 0) return plan_.output;
  return (static_cast<std::uint64_t>(delta) + 1) * plan_.output / deltas_;
}

void stream_script::append_delta_text(std::size_t delta, std::string& json) const {
  const std::uint64_t from = delta == 0 ? 0 : tokens_through(delta - 1);
  std::string text;
  append_tokens_text(text, from, tokens_through(delta));
  append_json_string(json, text);
}

std::string_view stream_script::stop_reason() const { return stop_reason_for(fam_, op_, plan_); }

// The chunk families give the stop reason on the last chunk only, null before it.
void stream_script::append_stop_or_null(bool last, std::string& json) const {
  if (last)
    append_json_string(json, stop_reason());
  else
    json.append("null");
}

void stream_script::append_metrics(const timing& t, std::string& json) const {
  json.append(R"("amazon-bedrock-invocationMetrics":{"inputTokenCount":)");
  append_uint(json, plan_.input);
  json.append(",\"outputTokenCount\":");
  append_uint(json, plan_.output);
  json.append(",\"invocationLatency\":");
  append_uint(json, t.latency_ms);
  json.append(",\"firstByteLatency\":");
  append_uint(json, t.first_byte_ms);
  if (plan_.cache_read != 0) {
    json.append(",\"cacheReadInputTokenCount\":");
    append_uint(json, plan_.cache_read);
  }
  if (plan_.cache_write != 0) {
    json.append(",\"cacheWriteInputTokenCount\":");
    append_uint(json, plan_.cache_write);
  }
  json.push_back('}');
}

std::string_view stream_script::render_converse(std::size_t i, const timing& t,
                                                std::string& json) const {
  std::string_view type;
  switch (part_of(i)) {
    case part::message_start:
    case part::block_start:
      type = "messageStart";
      json.append(R"({"role":"assistant")");
      break;
    case part::delta:
      type = "contentBlockDelta";
      json.append(R"({"contentBlockIndex":0,"delta":{"text":)");
      append_delta_text(i - prefix_, json);
      json.push_back('}');
      break;
    case part::block_stop:
      type = "contentBlockStop";
      json.append(R"({"contentBlockIndex":0)");
      break;
    case part::stop:
      type = "messageStop";
      json.append("{\"stopReason\":");
      append_json_string(json, stop_reason());
      break;
    case part::finish:
      type = "metadata";
      json.push_back('{');
      append_converse_usage(json, plan_, t, served_);
      break;
  }
  json.append(R"(,"p":")").append(padding(i)).append("\"}");
  return type;
}

void stream_script::render_titan_chunk(std::size_t delta, bool last, std::string& json) const {
  json.append("{\"outputText\":");
  append_delta_text(delta, json);
  json.append(",\"index\":0,\"totalOutputTextTokenCount\":");
  append_uint(json, tokens_through(delta));
  json.append(",\"completionReason\":");
  append_stop_or_null(last, json);
  json.append(",\"inputTextTokenCount\":");
  append_uint(json, plan_.input);
}

void stream_script::render_llama_chunk(std::size_t delta, bool last, std::string& json) const {
  json.append("{\"generation\":");
  append_delta_text(delta, json);
  json.append(",\"prompt_token_count\":");
  if (delta == 0 || last)
    append_uint(json, plan_.input);
  else
    json.append("null");
  json.append(",\"generation_token_count\":");
  append_uint(json, tokens_through(delta));
  json.append(",\"stop_reason\":");
  append_stop_or_null(last, json);
}

void stream_script::render_mistral_chunk(std::size_t delta, bool last, std::string& json) const {
  json.append("{\"outputs\":[{\"text\":");
  append_delta_text(delta, json);
  json.append(",\"stop_reason\":");
  append_stop_or_null(last, json);
  json.append("}]");
}

void stream_script::render_nova_chunk(std::size_t i, std::string& json) const {
  switch (part_of(i)) {
    case part::message_start:
    case part::block_start: json.append(R"({"messageStart":{"role":"assistant"})"); return;
    case part::delta:
      json.append(R"({"contentBlockDelta":{"delta":{"text":)");
      append_delta_text(i - prefix_, json);
      json.append(R"(},"contentBlockIndex":0})");
      return;
    case part::block_stop: json.append(R"({"contentBlockStop":{"contentBlockIndex":0})"); return;
    case part::stop:
      json.append(R"({"messageStop":{"stopReason":)");
      append_json_string(json, stop_reason());
      json.push_back('}');
      return;
    case part::finish:
      json.append(R"({"metadata":{"usage":{"inputTokens":)");
      append_uint(json, plan_.input);
      json.append(",\"outputTokens\":");
      append_uint(json, plan_.output);
      json.append(",\"cacheReadInputTokenCount\":");
      append_uint(json, plan_.cache_read);
      json.append(",\"cacheWriteInputTokenCount\":");
      append_uint(json, plan_.cache_write);
      json.append(R"(},"metrics":{},"trace":{}})");
      return;
  }
}

void stream_script::render_anthropic_chunk(std::size_t i, std::string& json) const {
  switch (part_of(i)) {
    case part::message_start:
      json.append(R"({"type":"message_start","message":{)");
      append_anthropic_identity(json, message_id_, model_id_);
      json.append(R"(,"content":[],"stop_reason":null,"stop_sequence":null,)");
      append_anthropic_usage(json, plan_, 1);
      json.push_back('}');
      return;
    case part::block_start:
      json.append(
          R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""})");
      return;
    case part::delta:
      json.append(R"({"type":"content_block_delta","index":0,)"
                  R"("delta":{"type":"text_delta","text":)");
      append_delta_text(i - prefix_, json);
      json.push_back('}');
      return;
    case part::block_stop: json.append(R"({"type":"content_block_stop","index":0)"); return;
    case part::stop:
      json.append(R"({"type":"message_delta","delta":{"stop_reason":)");
      append_json_string(json, stop_reason());
      json.append(R"(,"stop_sequence":null},"usage":{"output_tokens":)");
      append_uint(json, plan_.output);
      json.push_back('}');
      return;
    case part::finish: json.append(R"({"type":"message_stop")"); return;
  }
}

void stream_script::render_chunk(std::size_t i, const timing& t, std::string& json) const {
  // Titan, Llama and Mistral scripts have no prefix: event i is delta i.
  const bool last = i + 1 == size();
  switch (fam_) {
    case model_family::titan_text:
    case model_family::titan_embed: render_titan_chunk(i, last, json); break;
    case model_family::llama: render_llama_chunk(i, last, json); break;
    case model_family::mistral: render_mistral_chunk(i, last, json); break;
    case model_family::nova: render_nova_chunk(i, json); break;
    case model_family::anthropic:
    case model_family::generic: render_anthropic_chunk(i, json); break;
  }
  if (last) {
    json.push_back(',');
    append_metrics(t, json);
  }
  json.push_back('}');
}

void stream_script::render(std::size_t i, const timing& t, std::string& out) const {
  std::string json;
  json.reserve(256);
  std::array<metering::event_header, 3> headers{};
  if (op_ == sim_op::converse_stream) {
    const std::string_view type = render_converse(i, t, json);
    headers = {
        {{":event-type", type}, {":content-type", "application/json"}, {":message-type", "event"}}};
    metering::encode_event_frame(out, headers, json);
    return;
  }
  render_chunk(i, t, json);
  std::string payload;
  payload.reserve(json.size() * 4 / 3 + 64);
  payload.append("{\"bytes\":\"");
  append_base64(payload, json);
  payload.append("\",\"p\":\"").append(padding(i)).append("\"}");
  headers = {{{":event-type", "chunk"},
              {":content-type", "application/json"},
              {":message-type", "event"}}};
  metering::encode_event_frame(out, headers, payload);
}

std::string stream_exception_frame(std::string_view exception_type, std::string_view message) {
  std::string payload = "{\"message\":";
  append_json_string(payload, message);
  if (exception_type == "modelStreamErrorException") {
    payload.append(R"(,"originalStatusCode":500,"originalMessage":"simulated model failure")");
  }
  payload.push_back('}');
  return metering::encode_exception(exception_type, payload);
}

}  // namespace bedrock_meter::simulator
