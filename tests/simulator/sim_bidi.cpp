#include "tests/simulator/sim_bidi.hpp"

#include <algorithm>
#include <array>
#include <ctime>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "aws/sigv4.hpp"
#include "metering/event_stream.hpp"

namespace bedrock_meter::simulator {
namespace {

std::uint32_t be32(std::string_view b, std::size_t at) noexcept {
  return (std::uint32_t{static_cast<unsigned char>(b[at])} << 24) |
         (std::uint32_t{static_cast<unsigned char>(b[at + 1])} << 16) |
         (std::uint32_t{static_cast<unsigned char>(b[at + 2])} << 8) |
         std::uint32_t{static_cast<unsigned char>(b[at + 3])};
}

std::uint64_t be64(std::string_view b) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(b[i]);
  return v;
}

std::string_view as_view(const std::array<unsigned char, 32>& a) noexcept {
  return {reinterpret_cast<const char*>(a.data()), a.size()};
}

std::string to_hex(std::string_view bytes) {
  static constexpr std::string_view digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(digits[u >> 4]);
    out.push_back(digits[u & 0x0f]);
  }
  return out;
}

// "YYYYMMDDTHHMMSSZ" of a millisecond timestamp, UTC, whole seconds.
std::string long_date(std::int64_t ms) {
  std::int64_t secs = ms / 1000;
  if (ms % 1000 < 0) --secs;  // floor for dates before 1970
  const auto t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 20> buf{};
  const std::size_t n = std::strftime(buf.data(), buf.size(), "%Y%m%dT%H%M%SZ", &tm);
  return {buf.data(), n};
}

std::size_t fixed_size(es_type t) noexcept {
  switch (t) {
    case es_type::bool_true:
    case es_type::bool_false: return 0;
    case es_type::byte: return 1;
    case es_type::int16: return 2;
    case es_type::int32: return 4;
    case es_type::int64:
    case es_type::timestamp: return 8;
    case es_type::uuid: return 16;
    default: return 0;
  }
}

}  // namespace

void sonic_session::append(step& into, step from) {
  for (auto& f : from.frames) into.frames.push_back(std::move(f));
  into.end = into.end || from.end;
  into.reset = into.reset || from.reset;
}

const es_header* es_frame::find(std::string_view name) const noexcept {
  for (const auto& h : headers) {
    if (h.name == name) return &h;
  }
  return nullptr;
}

std::string_view es_frame::string_header(std::string_view name) const noexcept {
  const es_header* h = find(name);
  return h != nullptr && h->type == es_type::string ? h->value : std::string_view{};
}

boost::system::result<es_frame, sim_error> parse_es_frame(std::string_view whole) {
  if (whole.size() < 16) return sim_error{"event frame shorter than 16 bytes"};
  const std::uint32_t total = be32(whole, 0);
  const std::uint32_t headers_len = be32(whole, 4);
  if (total != whole.size() || std::size_t{headers_len} + 16 > total) {
    return sim_error{"event frame lengths do not add up"};
  }
  if (metering::crc32(whole.substr(0, 8)) != be32(whole, 8)) {
    return sim_error{"event frame prelude CRC mismatch"};
  }
  if (metering::crc32(whole.substr(0, total - 4)) != be32(whole, total - 4)) {
    return sim_error{"event frame message CRC mismatch"};
  }
  es_frame f;
  std::string_view h = whole.substr(12, headers_len);
  while (!h.empty()) {
    const auto name_len = static_cast<unsigned char>(h[0]);
    if (name_len == 0 || h.size() < std::size_t{name_len} + 2) {
      return sim_error{"malformed event header block"};
    }
    es_header out;
    out.name = h.substr(1, name_len);
    const auto type_byte = static_cast<unsigned char>(h[1 + name_len]);
    if (type_byte > static_cast<unsigned char>(es_type::uuid)) {
      return sim_error{"unknown event header type " + std::to_string(type_byte)};
    }
    out.type = static_cast<es_type>(type_byte);
    h.remove_prefix(std::size_t{name_len} + 2);
    std::size_t len = fixed_size(out.type);
    if (out.type == es_type::bytes || out.type == es_type::string) {
      if (h.size() < 2) return sim_error{"malformed event header block"};
      len = (std::size_t{static_cast<unsigned char>(h[0])} << 8) | static_cast<unsigned char>(h[1]);
      h.remove_prefix(2);
    }
    if (h.size() < len) return sim_error{"malformed event header block"};
    out.value = h.substr(0, len);
    h.remove_prefix(len);
    f.headers.push_back(out);
  }
  f.payload = whole.substr(12 + std::size_t{headers_len}, total - 16 - std::size_t{headers_len});
  return f;
}

void frame_splitter::append(std::string_view bytes) {
  if (off_ > 0 && off_ == buf_.size()) {
    buf_.clear();
    off_ = 0;
  }
  buf_.append(bytes);
}

boost::system::result<std::optional<std::string>, sim_error> frame_splitter::next() {
  const std::string_view rest = std::string_view(buf_).substr(off_);
  if (rest.size() < 12) return std::optional<std::string>{};
  if (metering::crc32(rest.substr(0, 8)) != be32(rest, 8)) {
    return sim_error{"event frame prelude CRC mismatch"};
  }
  const std::uint32_t total = be32(rest, 0);
  if (total < 16) return sim_error{"event frame shorter than 16 bytes"};
  if (total > max_frame_) {
    return sim_error{"event of " + std::to_string(total) + " bytes exceeds the limit of " +
                     std::to_string(max_bidi_event_bytes) + " bytes"};
  }
  if (rest.size() < total) return std::optional<std::string>{};
  std::optional<std::string> frame(std::in_place, rest.substr(0, total));
  off_ += total;
  if (off_ == buf_.size()) {
    buf_.clear();
    off_ = 0;
  } else if (off_ > max_frame_) {
    buf_.erase(0, off_);
    off_ = 0;
  }
  return frame;
}

std::string event_date_header_block(std::int64_t date_ms) {
  std::string out;
  out.push_back(static_cast<char>(5));
  out.append(":date");
  out.push_back(static_cast<char>(es_type::timestamp));
  const auto v = static_cast<std::uint64_t>(date_ms);
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
  return out;
}

std::string event_string_to_sign(std::int64_t date_ms, std::string_view region,
                                 std::string_view prior_signature_hex, std::string_view payload) {
  const std::string longdate = long_date(date_ms);
  std::string s = "AWS4-HMAC-SHA256-PAYLOAD\n";
  s.append(longdate).push_back('\n');
  s.append(longdate, 0, 8).append("/").append(region).append("/bedrock/aws4_request\n");
  s.append(prior_signature_hex).push_back('\n');
  s.append(aws::sigv4::sha256_hex(event_date_header_block(date_ms))).push_back('\n');
  s.append(aws::sigv4::sha256_hex(payload));
  return s;
}

std::string event_signature_hex(std::string_view secret, std::string_view region,
                                std::int64_t date_ms, std::string_view prior_signature_hex,
                                std::string_view payload) {
  using aws::sigv4::hmac_sha256;
  const std::string day = long_date(date_ms).substr(0, 8);
  const std::string k_secret = "AWS4" + std::string(secret);
  const auto k_date = hmac_sha256(k_secret, day);
  const auto k_region = hmac_sha256(as_view(k_date), region);
  const auto k_service = hmac_sha256(as_view(k_region), "bedrock");
  const auto k_signing = hmac_sha256(as_view(k_service), "aws4_request");
  const auto sig = hmac_sha256(as_view(k_signing),
                               event_string_to_sign(date_ms, region, prior_signature_hex, payload));
  return to_hex(as_view(sig));
}

std::optional<std::string> authorization_signature(std::string_view authorization) {
  const auto at = authorization.find("Signature=");
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view sig = authorization.substr(at + 10);
  const auto end = sig.find_first_of(", ");
  if (end != std::string_view::npos) sig = sig.substr(0, end);
  if (sig.empty()) return std::nullopt;
  return std::string(sig);
}

envelope_opener envelope_opener::verifying(std::string secret, std::string region,
                                           std::string seed_signature_hex) {
  envelope_opener o;
  o.verify_ = true;
  o.secret_ = std::move(secret);
  o.region_ = std::move(region);
  o.prior_ = std::move(seed_signature_hex);
  return o;
}

envelope_opener envelope_opener::accepting() { return envelope_opener{}; }

boost::system::result<opened_event, sim_error> envelope_opener::open(std::string_view frame_bytes) {
  ++index_;
  auto frame = parse_es_frame(frame_bytes);
  if (!frame) return frame.error();
  const std::string n = "event " + std::to_string(index_) + ": ";
  const es_header* sig = frame->find(":chunk-signature");
  const es_header* date = frame->find(":date");
  opened_event out;
  if (!verify_) {
    // Unchecked: an envelope is unwrapped, a bare inner message is the event itself.
    out.inner = std::string(sig != nullptr ? frame->payload : frame_bytes);
    return out;
  }
  if (sig == nullptr) return sim_error{n + "missing the :chunk-signature header (unsigned event)"};
  if (sig->type != es_type::bytes || sig->value.size() != 32) {
    return sim_error{n + ":chunk-signature is not a 32-byte byte array"};
  }
  if (date == nullptr || date->type != es_type::timestamp) {
    return sim_error{n + "missing the :date timestamp header"};
  }
  const auto ms = static_cast<std::int64_t>(be64(date->value));
  const std::string expected = event_signature_hex(secret_, region_, ms, prior_, frame->payload);
  const std::string got = to_hex(sig->value);
  if (!aws::sigv4::constant_time_equal(expected, got)) {
    return sim_error{n +
                     "the event signature does not match (chain from the request signature, "
                     ":date " +
                     long_date(ms) + ")"};
  }
  prior_ = got;
  out.inner = std::string(frame->payload);
  out.verified = true;
  return out;
}

boost::system::result<input_event, sim_error> parse_input_event(std::string_view inner) {
  auto frame = parse_es_frame(inner);
  if (!frame) return sim_error{"inner " + frame.error().message};
  const std::string_view mt = frame->string_header(":message-type");
  const std::string_view et = frame->string_header(":event-type");
  if (mt != "event" || et != "chunk") {
    return sim_error{"expected an event of type chunk, got :message-type '" + std::string(mt) +
                     "' :event-type '" + std::string(et) + "'"};
  }
  boost::system::error_code ec;
  const boost::json::value outer = boost::json::parse(frame->payload, ec);
  const boost::json::value* b64 = ec ? nullptr : json_at(outer, {"bytes"});
  if (b64 == nullptr || !b64->is_string()) return sim_error{"chunk payload has no \"bytes\""};
  const auto decoded = decode_base64(b64->get_string());
  if (!decoded) return sim_error{"chunk \"bytes\" is not base64"};
  const boost::json::value doc = boost::json::parse(*decoded, ec);
  const boost::json::value* ev = ec ? nullptr : json_at(doc, {"event"});
  if (ev == nullptr || !ev->is_object() || ev->get_object().size() != 1) {
    return sim_error{"chunk bytes are not {\"event\":{<name>:{...}}}"};
  }
  const auto& [key, body] = *ev->get_object().begin();
  input_event out;
  out.name = std::string(key);
  const auto str = [&body](std::string_view k) -> std::string {
    const boost::json::value* v = json_at(body, {k});
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
  };
  out.prompt_name = str("promptName");
  out.content_name = str("contentName");
  out.type = str("type");
  out.role = str("role");
  out.content = str("content");
  return out;
}

std::uint64_t speech_tokens_for_audio(std::size_t audio_bytes) noexcept {
  return (std::uint64_t{audio_bytes} + 999) / 1000;
}

std::uint64_t text_tokens_for_text(std::size_t text_bytes) noexcept {
  return std::max<std::uint64_t>(1, (std::uint64_t{text_bytes} + 3) / 4);
}

bool is_sonic_model(std::string_view model_id) noexcept {
  const std::string_view b = base_model_id(model_id);
  return b == "amazon.nova-sonic-v1:0" || b == "amazon.nova-2-sonic-v1:0";
}

sonic_session::sonic_session(id_source ids) : ids_(ids) {
  session_id_ = ids_.uuid();
  completion_id_ = ids_.uuid();
}

std::string sonic_session::ids_json(bool with_content, const std::string& content_id) const {
  std::string s = "\"sessionId\":";
  append_json_string(s, session_id_);
  s.append(",\"promptName\":");
  append_json_string(s, prompt_name_);
  s.append(",\"completionId\":");
  append_json_string(s, completion_id_);
  if (with_content) {
    s.append(",\"contentId\":");
    append_json_string(s, content_id);
  }
  return s;
}

// One output event: {"event":{<name>:{<fields>}}}, base64 in a chunk's "bytes".
void sonic_session::emit(step& s, std::string_view event_name, const std::string& body_fields) {
  if (finished_) return;
  std::string json = "{\"event\":{";
  append_json_string(json, event_name);
  json.append(":{").append(body_fields).append("}}}");
  std::string payload = "{\"bytes\":\"";
  append_base64(payload, json);
  payload.append("\"}");
  s.frames.push_back(metering::encode_event("chunk", payload));
}

void sonic_session::completion_start(step& s) {
  if (started_) return;
  started_ = true;
  emit(s, "completionStart", ids_json(false, {}));
}

void sonic_session::usage(step& s) {
  if (finished_) return;
  const auto io = [](std::string& out, std::uint64_t speech, std::uint64_t text) {
    out.append("{\"speechTokens\":");
    append_uint(out, speech);
    out.append(",\"textTokens\":");
    append_uint(out, text);
    out.push_back('}');
  };
  const sonic_tokens& t = total_;
  std::string f = "\"completionId\":";
  append_json_string(f, completion_id_);
  f.append(",\"details\":{\"delta\":{\"input\":");
  io(f, t.speech_in - reported_.speech_in, t.text_in - reported_.text_in);
  f.append(",\"output\":");
  io(f, t.speech_out - reported_.speech_out, t.text_out - reported_.text_out);
  f.append("},\"total\":{\"input\":");
  io(f, t.speech_in, t.text_in);
  f.append(",\"output\":");
  io(f, t.speech_out, t.text_out);
  f.append("}},\"promptName\":");
  append_json_string(f, prompt_name_);
  f.append(",\"sessionId\":");
  append_json_string(f, session_id_);
  const std::uint64_t in = t.speech_in + t.text_in;
  const std::uint64_t out = t.speech_out + t.text_out;
  f.append(",\"totalInputTokens\":");
  append_uint(f, in);
  f.append(",\"totalOutputTokens\":");
  append_uint(f, out);
  f.append(",\"totalTokens\":");
  append_uint(f, in + out);
  emit(s, "usageEvent", f);
  reported_ = total_;
  ++usage_events_;
  maybe_fault(s);
}

void sonic_session::maybe_fault(step& s) {
  if (finished_ || fault_ == fault::none || usage_events_ < fault_after_) return;
  if (fault_ == fault::cut) {
    s.reset = true;
    finished_ = true;
    return;
  }
  const std::string type =
      exception_type_.empty() ? std::string("modelStreamErrorException") : exception_type_;
  append(s, fail(type, "Simulated " + type + " mid-stream."));
}

// A `SIM{...}` in a textInput steers the rest of the session.
void sonic_session::apply_directive(std::string_view text, step& s) {
  if (text.find("SIM{") == std::string_view::npos) return;
  auto parsed = parse_directive(text);
  if (!parsed) {
    append(s, fail("validationException", parsed.error().message));
    return;
  }
  const directive& d = *parsed;
  const bool unsupported = d.input || d.output || d.cache_read || d.cache_write || d.events ||
                           d.first_byte_ms || d.status || !d.tier.empty() || !d.stop.empty() ||
                           !d.error_name.empty() || d.intervene ||
                           (d.fault_kind != fault::none &&
                            d.fault_kind != fault::stream_exception && d.fault_kind != fault::cut);
  if (unsupported) {
    append(s, fail("validationException",
                   "SIM directive: bidirectional streams support only fault=stream_exception|cut, "
                   "after, exception_type and pace_ms"));
    return;
  }
  if (d.pace_ms) pace_ms_ = *d.pace_ms;
  if (d.fault_kind != fault::none) fault_ = d.fault_kind;
  if (d.after) fault_after_ = *d.after;
  if (!d.exception_type.empty()) exception_type_ = d.exception_type;
  maybe_fault(s);
}

// One assistant turn: a TEXT content with the reply, an AUDIO content with silence, usage.
void sonic_session::turn(const std::string& prompt_name, step& s) {
  if (!prompt_name.empty()) prompt_name_ = prompt_name;
  completion_start(s);
  ++turns_;
  const std::string text_id = ids_.uuid();
  std::string f = ids_json(true, text_id);
  f.append(
      R"(,"type":"TEXT","role":"ASSISTANT","additionalModelFields":)"
      R"("{\"generationStage\":\"FINAL\"}","textOutputConfiguration":{"mediaType":"text/plain"})");
  emit(s, "contentStart", f);
  f = ids_json(true, text_id);
  f.append(",\"content\":");
  append_json_string(f, "Simulated reply " + std::to_string(turns_) + ".");
  f.append(",\"role\":\"ASSISTANT\"");
  emit(s, "textOutput", f);
  f = ids_json(true, text_id);
  f.append(R"(,"stopReason":"PARTIAL_TURN","type":"TEXT")");
  emit(s, "contentEnd", f);

  const std::string audio_id = ids_.uuid();
  f = ids_json(true, audio_id);
  f.append(
      R"(,"type":"AUDIO","role":"ASSISTANT","audioOutputConfiguration":{"mediaType":"audio/lpcm",)"
      R"("sampleRateHertz":24000,"sampleSizeBits":16,"channelCount":1,"encoding":"base64",)"
      R"("audioType":"SPEECH"})");
  emit(s, "contentStart", f);
  f = ids_json(true, audio_id);
  f.append(",\"content\":\"");
  append_base64(f, std::string(sonic_turn_audio_bytes, '\0'));
  f.append("\"");
  emit(s, "audioOutput", f);
  f = ids_json(true, audio_id);
  f.append(R"(,"stopReason":"END_TURN","type":"AUDIO")");
  emit(s, "contentEnd", f);
  total_.text_out += sonic_turn_text_tokens;
  total_.speech_out += sonic_turn_speech_tokens;
  usage(s);
}

sonic_session::step sonic_session::on_event(const input_event& e) {
  step s;
  if (finished_) return s;
  if (e.name == "promptStart") {
    prompt_name_ = e.prompt_name;
    completion_start(s);
  } else if (e.name == "contentStart") {
    contents_[e.content_name] = content_info{e.type, e.role};
  } else if (e.name == "textInput") {
    total_.text_in += text_tokens_for_text(e.content.size());
    apply_directive(e.content, s);
  } else if (e.name == "audioInput") {
    const auto audio = decode_base64(e.content);
    if (!audio) return fail("validationException", "audioInput content is not base64");
    total_.speech_in += speech_tokens_for_audio(audio->size());
  } else if (e.name == "contentEnd") {
    const auto it = contents_.find(e.content_name);
    if (it != contents_.end()) {
      const content_info c = it->second;
      contents_.erase(it);
      if (c.role == "USER" && (c.type == "TEXT" || c.type == "AUDIO")) turn(e.prompt_name, s);
    }
  } else if (e.name == "sessionEnd") {
    append(s, on_input_end());
  }
  // sessionStart, promptEnd, toolResult and others: accepted, nothing to answer.
  return s;
}

sonic_session::step sonic_session::on_input_end() {
  step s;
  if (finished_) return s;
  completion_start(s);
  std::string f = ids_json(false, {});
  f.append(R"(,"stopReason":"END_TURN")");
  emit(s, "completionEnd", f);
  usage(s);
  if (!finished_) {
    finished_ = true;
    s.end = true;
  }
  return s;
}

sonic_session::step sonic_session::fail(std::string_view exception_type, std::string_view message) {
  step s;
  if (finished_) return s;
  std::string payload = "{\"message\":";
  append_json_string(payload, message);
  payload.push_back('}');
  s.frames.push_back(metering::encode_exception(exception_type, payload));
  s.end = true;
  finished_ = true;
  return s;
}

}  // namespace bedrock_meter::simulator
