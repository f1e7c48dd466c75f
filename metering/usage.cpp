#include "metering/usage.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <string>
#include <utility>

#include "metering/base64.hpp"
#include "metering/event_stream.hpp"
#include "metering/usage_json.hpp"

namespace bedrock_meter::metering {
namespace {

namespace json = boost::json;
using detail::counts;
using detail::doc_kind;
using detail::extractor;
using detail::field;
using detail::field_count;
using detail::index_of;
using detail::max_tier_bytes;
using detail::shape;

// ---------------------------------------------------------------------------------------------
// Limits: every bound on what an upstream body can make us parse or keep is named here (the
// JSON path limits are in usage_json.hpp).

/// Non-streaming bodies are parsed as they pass without being held, so memory is bounded either
/// way; the cap bounds CPU on absurd bodies. A Converse answer of 128k output tokens is ~1 MiB.
/// Past the cap body parsing stops and whatever it captured is dropped (InvokeModel still has its
/// headers; otherwise the request is settled as estimated).
constexpr std::uint64_t max_parsed_body_bytes = std::uint64_t{8} * 1024 * 1024;
/// Estimation: about four UTF-8 bytes of generated text per token (English; other scripts have
/// fewer bytes per token, so this errs low for them).
constexpr std::uint64_t estimate_bytes_per_token = 4;

// ---------------------------------------------------------------------------------------------
// Which shapes to believe, in order: the family's own first, then every other one, so that an
// application inference profile (family unknown) or a new model of a known provider still meters.

constexpr std::array canonical_shapes{shape::anthropic, shape::nova,  shape::openai,
                                      shape::cohere,    shape::llama, shape::titan};

struct shape_order {
  std::array<shape, canonical_shapes.size()> items{};
  std::size_t size = 0;
};

shape_order shapes_for(model_family f) noexcept {
  shape_order out;
  auto add = [&out](shape s) {
    for (std::size_t i = 0; i < out.size; ++i) {
      if (out.items[i] == s) return;
    }
    out.items[out.size++] = s;
  };
  switch (f) {
    case model_family::anthropic: add(shape::anthropic); break;
    case model_family::amazon_nova: add(shape::nova); break;
    case model_family::amazon_titan: add(shape::titan); break;
    case model_family::meta_llama: add(shape::llama); break;
    case model_family::cohere: add(shape::cohere); break;
    case model_family::mistral:
    case model_family::deepseek:
    case model_family::openai:
    case model_family::ai21: add(shape::openai); break;
    case model_family::unknown: break;
  }
  for (shape s : canonical_shapes) add(s);
  return out;
}

std::uint64_t min_u64(std::uint64_t a, std::uint64_t b) noexcept { return a < b ? a : b; }

/// a + b, saturating: counts come from the network.
std::uint64_t sat_add(std::uint64_t a, std::uint64_t b) noexcept {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/// The counts of one shape as a token_usage (source left to the caller).
token_usage usage_of(const counts& c, shape s, const extractor& ex) noexcept {
  token_usage u;
  u.input = c.get(field::input);
  u.output = c.get(field::output);
  u.cache_read = c.get(field::cache_read);
  u.cache_write = c.get(field::cache_write);
  switch (s) {
    case shape::converse:
      if (!c.has(field::cache_write) && ex.details_seen) u.cache_write = ex.details_total;
      u.cache_write_1h = min_u64(ex.details_1h, u.cache_write);
      break;
    case shape::anthropic:
    case shape::anthropic_start:
      u.cache_write_1h = min_u64(c.get(field::cache_write_1h), u.cache_write);
      break;
    case shape::openai:
      // OpenAI's prompt_tokens includes the cached prompt tokens; ours excludes them.
      u.input -= min_u64(u.cache_read, u.input);
      break;
    default: break;
  }
  return u;
}

/// Anthropic streams report input and cache counts in message_start and the final output count
/// in message_delta (newer versions repeat the input counts there). Latest wins, field by field.
counts merged_anthropic(const extractor& ex) noexcept {
  counts out = ex.shapes[index_of(shape::anthropic_start)];
  const counts& last = ex.shapes[index_of(shape::anthropic)];
  for (std::size_t i = 0; i < field_count; ++i) {
    const auto f = static_cast<field>(i);
    if (last.has(f)) out.put(f, last.get(f));
  }
  return out;
}

std::optional<std::uint64_t> header_count(const header_lookup& headers, std::string_view name) {
  std::string_view v = headers(name);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty()) return std::nullopt;
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc{} || end != v.data() + v.size()) return std::nullopt;
  return n;
}

model_family provider_family(std::string_view provider, std::string_view rest) noexcept {
  if (provider == "anthropic") return model_family::anthropic;
  if (provider == "amazon") {
    if (rest.starts_with("nova")) return model_family::amazon_nova;
    if (rest.starts_with("titan")) return model_family::amazon_titan;
    return model_family::unknown;
  }
  if (provider == "meta") return model_family::meta_llama;
  if (provider == "mistral") return model_family::mistral;
  if (provider == "cohere") return model_family::cohere;
  if (provider == "deepseek") return model_family::deepseek;
  if (provider == "openai") return model_family::openai;
  if (provider == "ai21") return model_family::ai21;
  return model_family::unknown;
}

}  // namespace

model_family family_of(std::string_view id) noexcept {
  if (id.starts_with("arn:")) {
    // arn:PARTITION:bedrock:REGION:ACCOUNT:TYPE/ID — the id itself may contain ':' (`v1:0`).
    for (int i = 0; i < 5; ++i) {
      const std::size_t colon = id.find(':');
      if (colon == std::string_view::npos) return model_family::unknown;
      id.remove_prefix(colon + 1);
    }
    const std::size_t slash = id.find('/');
    if (slash == std::string_view::npos) return model_family::unknown;
    const std::string_view type = id.substr(0, slash);
    id.remove_prefix(slash + 1);
    if (type == "custom-model") {
      id = id.substr(0, id.find('/'));  // custom-model/BASE_MODEL_ID/SUFFIX
    } else if (type != "foundation-model" && type != "inference-profile" &&
               type != "default-prompt-router") {
      // application-inference-profile, provisioned-model, imported-model, prompt-router: opaque.
      return model_family::unknown;
    }
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    const std::size_t dot = id.find('.');
    if (dot == std::string_view::npos) return model_family::unknown;
    const model_family f = provider_family(id.substr(0, dot), id.substr(dot + 1));
    if (f != model_family::unknown) return f;
    // A geographic or global profile prefix (`us.`, `eu.`, `apac.`, `jp.`, `au.`, `us-gov.`,
    // `global.`, ...): the provider is the next segment.
    id.remove_prefix(dot + 1);
  }
  return model_family::unknown;
}

struct usage_observer::impl {
  enum class mode : std::uint8_t {
    none,
    converse_body,
    invoke_body,
    converse_stream,
    invoke_stream,
    bidi_stream,  ///< InvokeModelWithBidirectionalStream (Nova Sonic)
  };

  impl(operation op, std::string_view model_id)
      : op_(op), family_(family_of(model_id)), parser_(ex_) {
    on_frame_ = [this](const event_message& m) { frame(m); };
  }

  void on_head(unsigned status, const header_lookup& lookup) {
    status_ = status;
    // An empty lookup means "no headers", not a call through an empty std::function.
    const header_lookup none = [](std::string_view) { return std::string_view{}; };
    const header_lookup& headers = lookup ? lookup : none;
    tier_ = headers("x-amzn-bedrock-service-tier").substr(0, max_tier_bytes);
    // InvokeModelWithBidirectionalStream is metered here but is not `billed_by_tokens`: that
    // says which requests the proxy may estimate from the request body's size, and a session's
    // body is audio, not text.
    const bool metered =
        billed_by_tokens(op_) || op_ == operation::invoke_model_with_bidirectional_stream;
    if (status < 200 || status > 299 || !metered) {
      mode_ = mode::none;
      return;
    }
    switch (op_) {
      case operation::converse:
        mode_ = mode::converse_body;
        ex_.kind = doc_kind::converse_body;
        break;
      case operation::converse_stream: mode_ = mode::converse_stream; break;
      case operation::invoke_model_with_response_stream: mode_ = mode::invoke_stream; break;
      case operation::invoke_model_with_bidirectional_stream: mode_ = mode::bidi_stream; break;
      case operation::invoke_model: {
        mode_ = mode::invoke_body;
        ex_.kind = doc_kind::invoke_body;
        h_input_ = header_count(headers, "x-amzn-bedrock-input-token-count");
        h_output_ = header_count(headers, "x-amzn-bedrock-output-token-count");
        h_cache_read_ = header_count(headers, "x-amzn-bedrock-cache-read-input-token-count");
        h_cache_write_ = header_count(headers, "x-amzn-bedrock-cache-write-input-token-count");
        // The body is parsed even when the headers carry every count: only the body says why
        // the model stopped (and, for Anthropic, how the cache writes split by TTL).
        if (h_input_ || h_output_) usage_seen_ = true;
        break;
      }
      default: mode_ = mode::none; break;
    }
  }

  void on_body(std::string_view bytes) {
    switch (mode_) {
      case mode::none: return;
      case mode::converse_body:
      case mode::invoke_body: body(bytes); return;
      case mode::converse_stream:
      case mode::invoke_stream:
      case mode::bidi_stream:
        if (decoder_.error() != event_stream_error::none) return;
        if (decoder_.feed(bytes, on_frame_) != event_stream_error::none) ++decode_errors_;
        return;
    }
  }

  void body(std::string_view bytes) {
    if (!parse_body_ || parser_.done() || bytes.empty()) return;
    // Parse exactly up to the cap, so that what was counted does not depend on chunking.
    const std::uint64_t room = max_parsed_body_bytes - body_bytes_;
    const bool over = bytes.size() > room;
    if (over) bytes = bytes.substr(0, static_cast<std::size_t>(room));
    body_bytes_ += bytes.size();
    json::error_code ec;
    parser_.write_some(true, bytes.data(), bytes.size(), ec);
    if (over && !parser_.done()) {
      parse_body_ = false;
      ex_.clear_body_captures();
      return;
    }
    if (ec) {
      parse_body_ = false;  // not JSON we understand; headers (if any) still stand
      // How much of a malformed string the parser handed over before failing depends on the
      // chunk boundaries: count none of it.
      ex_.pending_text_bytes = 0;
      return;
    }
    if (!usage_seen_ && ex_.usage_closed) {
      usage_seen_ = mode_ == mode::converse_body
                        ? ex_.shapes[index_of(shape::converse)].any_tokens()
                        : pick_shape(true).has_value();
    }
  }

  void frame(const event_message& m) {
    if (m.message_type == "exception" || m.message_type == "error") {
      if (!exception_seen_) {
        exception_seen_ = true;
        exception_ = m.event_type.empty() ? std::string(m.message_type)
                                          : std::string(m.event_type.substr(0, 64));
      }
      return;
    }
    if (m.message_type != "event") return;
    if (mode_ == mode::bidi_stream) {
      bidi_frame(m);
      return;
    }
    if (mode_ == mode::converse_stream) {
      // Deltas carry the text, messageStop the stop reason, metadata the usage.
      const bool delta = m.event_type == "contentBlockDelta";
      if (!delta && m.event_type != "metadata" && m.event_type != "messageStop") return;
      if (delta) ++delta_events_;
      if (!parse_whole(doc_kind::converse_event, m.payload)) ++decode_errors_;
      if (ex_.shapes[index_of(shape::converse)].any_tokens()) usage_seen_ = true;
      return;
    }
    if (!chunk_document(m)) return;
    ex_.text_in_doc = false;
    if (!parse_whole(doc_kind::invoke_chunk, model_json_)) ++decode_errors_;
    if (ex_.text_in_doc) ++delta_events_;
    if (!usage_seen_ && stream_terminal()) usage_seen_ = true;
  }

  /// A `chunk` event's model document (`{"bytes": "<base64>"}` decoded) into model_json_. False
  /// for other events, and for a chunk that does not decode (counted in decode_errors_).
  bool chunk_document(const event_message& m) {
    if (m.event_type != "chunk") return false;
    ex_.bytes_out = &b64_;
    b64_.clear();
    if (!parse_whole(doc_kind::chunk_wrapper, m.payload) || b64_.empty() ||
        !base64_decode(b64_, model_json_)) {
      ++decode_errors_;
      return false;
    }
    return true;
  }

  /// One InvokeModelWithBidirectionalStream event: a `chunk` whose `bytes` is base64 JSON
  /// `{"event": {NAME: {...}}}`. A `usageEvent` replaces the session's usage (its counts are
  /// running totals); one that arrives after `completionEnd` is the final count.
  void bidi_frame(const event_message& m) {
    if (!chunk_document(m)) return;
    ex_.text_in_doc = false;
    ex_.usage_event_in_doc = false;
    ex_.completion_end_in_doc = false;
    ex_.shapes[index_of(shape::sonic_details)] = counts{};
    ex_.shapes[index_of(shape::sonic_totals)] = counts{};
    if (!parse_whole(doc_kind::bidi_event, model_json_)) {
      ++decode_errors_;  // a usageEvent in a malformed document is not believed
      return;
    }
    if (ex_.text_in_doc) ++delta_events_;
    if (ex_.completion_end_in_doc) completion_end_seen_ = true;
    if (!ex_.usage_event_in_doc) return;
    if (const auto u = sonic_usage()) {
      sonic_last_ = *u;
      ++sonic_usage_events_;
      if (completion_end_seen_) usage_seen_ = true;
    }
  }

  /// The usage one `usageEvent` carries. `details.total` splits each direction into speech and
  /// text tokens; a direction without it falls back to `totalInputTokens` /
  /// `totalOutputTokens`, counted as speech (docs/usage-sources.md: the dearer rate, so a
  /// session is never priced 50x too low for want of the split). nullopt: no count at all.
  [[nodiscard]] std::optional<token_usage> sonic_usage() const noexcept {
    const counts& d = ex_.shapes[index_of(shape::sonic_details)];
    const counts& t = ex_.shapes[index_of(shape::sonic_totals)];
    token_usage u;
    bool any = false;
    const auto direction = [&](field text, field speech, std::uint64_t& all,
                               std::uint64_t& speech_part) {
      if (d.has(text) || d.has(speech)) {
        speech_part = d.get(speech);
        all = sat_add(d.get(text), speech_part);
        any = true;
      } else if (t.has(text)) {
        all = speech_part = t.get(text);
        any = true;
      }
    };
    direction(field::input, field::speech_input, u.input, u.speech_input);
    direction(field::output, field::speech_output, u.output, u.speech_output);
    if (!any) return std::nullopt;
    return u;
  }

  bool parse_whole(doc_kind kind, std::string_view doc) {
    ex_.kind = kind;
    parser_.reset();
    json::error_code ec;
    parser_.write_some(false, doc.data(), doc.size(), ec);
    return !ec;
  }

  /// InvokeModelWithResponseStream: has a final count arrived? Invocation metrics always are;
  /// a family's own events only when they are its last (Anthropic message_delta, Nova
  /// metadata, the OpenAI usage chunk, Cohere stream-end; Titan and Llama repeat running counts
  /// on every chunk, so theirs are final only with a stop reason).
  [[nodiscard]] bool stream_terminal() const noexcept {
    const auto& s = ex_.shapes;
    if (s[index_of(shape::invocation_metrics)].any_tokens()) return true;
    if (s[index_of(shape::anthropic)].has(field::output)) return true;
    if (s[index_of(shape::nova)].has(field::output)) return true;
    if (s[index_of(shape::openai)].has(field::output)) return true;
    if (s[index_of(shape::cohere)].has(field::output)) return true;
    if (ex_.stop_seen && (s[index_of(shape::titan)].has(field::output) ||
                          s[index_of(shape::llama)].has(field::output))) {
      return true;
    }
    return false;
  }

  [[nodiscard]] counts shape_counts(shape s) const noexcept {
    return s == shape::anthropic && mode_ == mode::invoke_stream ? merged_anthropic(ex_)
                                                                 : ex_.shapes[index_of(s)];
  }

  /// The first shape in family order with any token count, or nullopt.
  [[nodiscard]] std::optional<shape> pick_shape(bool need_tokens) const noexcept {
    const shape_order order = shapes_for(family_);
    for (std::size_t i = 0; i < order.size; ++i) {
      const counts c = shape_counts(order.items[i]);
      if (need_tokens ? c.any_tokens() : c.set != 0) return order.items[i];
    }
    return std::nullopt;
  }

  /// What the rules in docs/usage-sources.md "Estimation" say: keep any input and cache counts
  /// the provider already reported; output is the largest of a reported running count, the
  /// generated text bytes / 4 (rounded up), and the number of text-carrying events.
  [[nodiscard]] token_usage estimate(const std::optional<shape>& partial) const noexcept {
    token_usage u;
    std::uint64_t reported_output = 0;
    if (partial) {
      u = usage_of(shape_counts(*partial), *partial, ex_);
      reported_output = u.output;
    }
    // A string cut off by the end of the body or the parse cap still counts (the same bytes
    // arrive whatever the chunking); one cut off by a syntax error was dropped in body().
    const std::uint64_t from_text =
        (ex_.text_bytes + ex_.pending_text_bytes + estimate_bytes_per_token - 1) /
        estimate_bytes_per_token;
    u.output = std::max({reported_output, from_text, delta_events_});
    u.source = usage_source::estimated;
    return u;
  }

  void finish(bool complete) {
    if (finished_) return;
    finished_ = true;
    switch (mode_) {
      case mode::none: usage_ = token_usage{}; return;
      case mode::converse_body:
        flush_body();
        settle_converse();
        return;
      case mode::converse_stream: settle_converse(); return;
      case mode::invoke_body:
        flush_body();
        settle_invoke_body();
        return;
      case mode::invoke_stream: settle_invoke_stream(); return;
      case mode::bidi_stream: settle_bidi(complete); return;
    }
  }

  /// The last usageEvent's running totals: `reported` when they are the session's final count
  /// (the stream ended cleanly, or the usageEvent after completionEnd arrived, as when the proxy
  /// drains a session whose client left) with no exception event and nothing undecodable that
  /// could have hidden a later usageEvent; else `estimated` (Bedrock billed at least that much).
  /// Without any usageEvent: estimated from the text seen, as for the other streams (speech tokens
  /// cannot be estimated from it).
  void settle_bidi(bool complete) {
    if (sonic_usage_events_ == 0) {
      usage_ = estimate(std::nullopt);
      return;
    }
    usage_ = sonic_last_;
    const bool clean = (complete || usage_seen_) && !exception_seen_ && decode_errors_ == 0;
    usage_.source = clean ? usage_source::reported : usage_source::estimated;
  }

  void flush_body() {
    if (!parse_body_ || parser_.done() || body_bytes_ == 0) return;
    json::error_code ec;
    parser_.write_some(false, "", 0, ec);  // completes a top-level scalar; else incomplete
  }

  void settle_converse() {
    const counts& c = ex_.shapes[index_of(shape::converse)];
    // A stream's metadata frame arrives whole; a body's usage counts once its object closed.
    const bool final_counts =
        c.any_tokens() && (mode_ == mode::converse_stream || ex_.usage_closed);
    if (final_counts) {
      usage_ = usage_of(c, shape::converse, ex_);
      usage_.source = usage_source::reported;
      usage_seen_ = true;
    } else {
      usage_ = estimate(std::nullopt);
    }
  }

  void settle_invoke_body() {
    std::optional<token_usage> from_body;
    if (parse_body_ && ex_.usage_closed) {
      if (const auto s = pick_shape(true)) from_body = usage_of(ex_.shapes[index_of(*s)], *s, ex_);
    }
    if (h_input_ || h_output_) {
      // Headers are authoritative; a count they lack comes from the body when it has one.
      const token_usage b = from_body.value_or(token_usage{});
      usage_.input = h_input_.value_or(b.input);
      usage_.output = h_output_.value_or(b.output);
      usage_.cache_read = h_cache_read_.value_or(b.cache_read);
      usage_.cache_write = h_cache_write_.value_or(b.cache_write);
      usage_.cache_write_1h = min_u64(b.cache_write_1h, usage_.cache_write);
      usage_.source = usage_source::reported;
    } else if (from_body) {
      usage_ = *from_body;
      usage_.source = usage_source::reported;
      usage_seen_ = true;
    } else {
      usage_ = estimate(std::nullopt);
    }
  }

  void settle_invoke_stream() {
    const counts& metrics = ex_.shapes[index_of(shape::invocation_metrics)];
    if (metrics.any_tokens()) {
      usage_ = usage_of(metrics, shape::invocation_metrics, ex_);
      // Invocation metrics carry no TTL split; Anthropic's message_start does.
      const counts a = merged_anthropic(ex_);
      usage_.cache_write_1h = min_u64(a.get(field::cache_write_1h), usage_.cache_write);
      usage_.source = usage_source::reported;
      usage_seen_ = true;
      return;
    }
    if (stream_terminal()) {
      if (const auto s = pick_shape(true)) {
        usage_ = usage_of(shape_counts(*s), *s, ex_);
        usage_.source = usage_source::reported;
        usage_seen_ = true;
        return;
      }
    }
    usage_ = estimate(pick_shape(false));
  }

  [[nodiscard]] std::string_view service_tier() const noexcept {
    return tier_.empty() ? std::string_view(ex_.tier) : std::string_view(tier_);
  }

  operation op_;
  model_family family_;
  mode mode_ = mode::none;
  unsigned status_ = 0;
  extractor ex_;
  detail::json_reader parser_;
  event_stream_decoder decoder_;
  event_stream_decoder::callback on_frame_;
  std::string b64_;         // reused: the current chunk's base64 text
  std::string model_json_;  // reused: the current chunk's decoded model JSON
  std::string tier_;
  std::optional<std::uint64_t> h_input_, h_output_, h_cache_read_, h_cache_write_;
  bool parse_body_ = true;
  std::uint64_t body_bytes_ = 0;
  std::uint64_t delta_events_ = 0;
  std::uint64_t decode_errors_ = 0;
  bool exception_seen_ = false;
  std::string exception_;
  bool usage_seen_ = false;
  bool finished_ = false;
  // InvokeModelWithBidirectionalStream: the last usageEvent's counts, how many were read, and
  // whether completionEnd has passed.
  token_usage sonic_last_;
  std::uint64_t sonic_usage_events_ = 0;
  bool completion_end_seen_ = false;
  token_usage usage_;
};

usage_observer::usage_observer(operation op, std::string_view model_id)
    : impl_(std::make_unique<impl>(op, model_id)) {}
usage_observer::~usage_observer() = default;
usage_observer::usage_observer(usage_observer&&) noexcept = default;
usage_observer& usage_observer::operator=(usage_observer&&) noexcept = default;

void usage_observer::on_head(unsigned status, const header_lookup& headers) {
  impl_->on_head(status, headers);
}
void usage_observer::on_body(std::string_view bytes) { impl_->on_body(bytes); }
void usage_observer::finish(bool complete) { impl_->finish(complete); }
const token_usage& usage_observer::usage() const noexcept { return impl_->usage_; }
std::string_view usage_observer::service_tier() const noexcept { return impl_->service_tier(); }
bool usage_observer::usage_seen() const noexcept { return impl_->usage_seen_; }
std::string_view usage_observer::stop_reason() const noexcept {
  return detail::to_string(impl_->ex_.stop);
}
std::uint64_t usage_observer::decode_errors() const noexcept { return impl_->decode_errors_; }
std::string_view usage_observer::stream_exception() const noexcept { return impl_->exception_; }
std::uint64_t usage_observer::text_bytes() const noexcept {
  return impl_->ex_.text_bytes + impl_->ex_.pending_text_bytes;
}

std::string_view to_string(usage_source s) noexcept {
  switch (s) {
    case usage_source::none: return "none";
    case usage_source::reported: return "reported";
    case usage_source::estimated: return "estimated";
  }
  return "none";
}

std::optional<usage_source> parse_usage_source(std::string_view s) noexcept {
  for (auto u : {usage_source::none, usage_source::reported, usage_source::estimated}) {
    if (to_string(u) == s) return u;
  }
  return std::nullopt;
}

}  // namespace bedrock_meter::metering
