#include "tests/simulator/sim_bidi.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "metering/event_stream.hpp"
#include "tests/simulator/sim_codec.hpp"

namespace bedrock_meter::simulator {
namespace {

void put_be32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

// A frame around a ready-made header block (any header types), as the JS SDK's codec writes it.
std::string raw_frame(std::string_view header_block, std::string_view payload) {
  std::string out;
  put_be32(out, static_cast<std::uint32_t>(16 + header_block.size() + payload.size()));
  put_be32(out, static_cast<std::uint32_t>(header_block.size()));
  put_be32(out, metering::crc32(out));
  out.append(header_block).append(payload);
  put_be32(out, metering::crc32(out));
  return out;
}

std::string unhex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// An envelope: :date and :chunk-signature headers around the inner message.
std::string envelope(std::int64_t ms, std::string_view signature_hex, std::string_view inner) {
  std::string h = event_date_header_block(ms);
  h.push_back(16);
  h.append(":chunk-signature");
  h.push_back(static_cast<char>(es_type::bytes));
  h.push_back(0);
  h.push_back(32);
  h.append(unhex(signature_hex));
  return raw_frame(h, inner);
}

// An inner Nova Sonic input message: {"bytes": base64({"event":{name:body}})}.
std::string input(std::string_view name, std::string_view body) {
  const std::string json = "{\"event\":{\"" + std::string(name) + "\":" + std::string(body) + "}}";
  std::string payload = "{\"bytes\":\"";
  append_base64(payload, json);
  payload.append("\"}");
  return metering::encode_event("chunk", payload);
}

// The decoded {"event":{...}} of an output frame.
boost::json::value output_json(std::string_view frame) {
  auto f = parse_es_frame(frame);
  EXPECT_TRUE(f.has_value());
  if (!f) return {};
  EXPECT_EQ(f->string_header(":event-type"), "chunk");
  const auto outer = boost::json::parse(f->payload);
  const auto inner = decode_base64(outer.at("bytes").as_string());
  EXPECT_TRUE(inner.has_value());
  return boost::json::parse(*inner);
}

std::string event_name(std::string_view frame) {
  const auto v = output_json(frame);
  return std::string(v.at("event").as_object().begin()->key());
}

constexpr std::string_view secret = "sim/secret+key0001";
constexpr std::int64_t date_ms = 1700000000123;  // 2023-11-14T22:13:20.123Z
// sha256("seed"), standing in for the request's Authorization signature.
constexpr std::string_view seed =
    "19b25856e1c150ca834cffc8b59b23adbd0ec0389e58eb22b3b64768098d002b";

TEST(SimBidiSignature, MatchesAnIndependentComputation) {
  // Computed by hand with Python:
  //   hb = bytes([5]) + b":date" + bytes([8]) + struct.pack(">q", 1700000000123)
  //   sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", "20231114T221320Z",
  //                    "20231114/us-east-1/bedrock/aws4_request", seed,
  //                    sha256(hb).hexdigest(), sha256(b"hello").hexdigest()])
  //   k = HMAC("AWS4" + secret, "20231114") -> "us-east-1" -> "bedrock" -> "aws4_request"
  //   hmac.new(k, sts.encode(), sha256).hexdigest()
  const std::string sts = event_string_to_sign(date_ms, "us-east-1", seed, "hello");
  EXPECT_EQ(
      sts, "AWS4-HMAC-SHA256-PAYLOAD\n20231114T221320Z\n20231114/us-east-1/bedrock/aws4_request\n" +
               std::string(seed) +
               "\neb3891061f247b352638ef4e9caf6943269d6523387b87c2a4d2a436842a243b\n"
               "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  EXPECT_EQ(event_signature_hex(secret, "us-east-1", date_ms, seed, "hello"),
            "0957d2520593958b33999d9badb07154d1b511c458afe9a5aa56bc534cda6e16");
}

TEST(SimBidiSignature, AuthorizationSignature) {
  EXPECT_EQ(
      authorization_signature("AWS4-HMAC-SHA256 Credential=A/20231114/us-east-1/bedrock/"
                              "aws4_request, SignedHeaders=host;x-amz-date, Signature=abc123"),
      "abc123");
  EXPECT_EQ(authorization_signature("AWS4-HMAC-SHA256 Signature=ff, SignedHeaders=host"), "ff");
  EXPECT_FALSE(authorization_signature("Bearer x").has_value());
}

TEST(SimBidiEnvelope, VerifiesTheChainAndRefusesABreak) {
  const std::string e1 = input("sessionStart", "{}");
  const std::string e2 = input("promptStart", R"({"promptName":"p"})");
  const std::string s1 = event_signature_hex(secret, "us-east-1", date_ms, seed, e1);
  const std::string s2 = event_signature_hex(secret, "us-east-1", date_ms + 40, s1, e2);
  auto opener = envelope_opener::verifying(std::string(secret), "us-east-1", std::string(seed));
  auto o1 = opener.open(envelope(date_ms, s1, e1));
  ASSERT_TRUE(o1.has_value()) << o1.error().message;
  EXPECT_TRUE(o1->verified);
  EXPECT_EQ(o1->inner, e1);
  auto o2 = opener.open(envelope(date_ms + 40, s2, e2));
  ASSERT_TRUE(o2.has_value()) << o2.error().message;
  EXPECT_EQ(o2->inner, e2);
  // Replaying the first event breaks the chain (its prior is no longer the seed).
  auto again = opener.open(envelope(date_ms, s1, e1));
  ASSERT_FALSE(again.has_value());
  EXPECT_NE(again.error().message.find("event 3: the event signature does not match"),
            std::string::npos);
}

TEST(SimBidiEnvelope, RefusesUnsignedAndTamperedEvents) {
  const std::string e1 = input("sessionStart", "{}");
  auto opener = envelope_opener::verifying(std::string(secret), "us-east-1", std::string(seed));
  auto bare = opener.open(e1);
  ASSERT_FALSE(bare.has_value());
  EXPECT_NE(bare.error().message.find(":chunk-signature"), std::string::npos);
  const std::string s1 = event_signature_hex(secret, "us-east-1", date_ms, seed, e1);
  auto late = envelope_opener::verifying(std::string(secret), "us-east-1", std::string(seed))
                  .open(envelope(date_ms + 1000, s1, e1));  // :date differs from what was signed
  EXPECT_FALSE(late.has_value());
  std::string broken = envelope(date_ms, s1, e1);
  broken[broken.size() - 10] ^= 1;
  EXPECT_FALSE(envelope_opener::verifying(std::string(secret), "us-east-1", std::string(seed))
                   .open(broken)
                   .has_value());  // message CRC
}

TEST(SimBidiEnvelope, AcceptingUnwrapsOrPassesBareEvents) {
  const std::string e1 = input("sessionStart", "{}");
  auto opener = envelope_opener::accepting();
  auto wrapped = opener.open(envelope(date_ms, std::string(64, '0'), e1));
  ASSERT_TRUE(wrapped.has_value());
  EXPECT_FALSE(wrapped->verified);
  EXPECT_EQ(wrapped->inner, e1);
  auto bare = opener.open(e1);
  ASSERT_TRUE(bare.has_value());
  EXPECT_EQ(bare->inner, e1);
}

TEST(SimBidiFrames, SplitterYieldsWholeFramesFromOneByteChunks) {
  const std::string a = input("sessionStart", "{}");
  const std::string b = input("promptStart", R"({"promptName":"p"})");
  const std::string both = a + b;
  frame_splitter sp(max_bidi_envelope_bytes);
  std::vector<std::string> got;
  for (const char c : both) {
    sp.append(std::string_view(&c, 1));
    for (;;) {
      auto f = sp.next();
      ASSERT_TRUE(f.has_value());
      if (!*f) break;
      got.push_back(std::move(**f));
    }
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], a);
  EXPECT_EQ(got[1], b);
  EXPECT_EQ(sp.buffered(), 0u);
}

TEST(SimBidiFrames, SplitterRefusesAnOversizeEvent) {
  std::string big;
  put_be32(big, static_cast<std::uint32_t>(max_bidi_envelope_bytes + 1));
  put_be32(big, 0);
  put_be32(big, metering::crc32(big));
  frame_splitter sp(max_bidi_envelope_bytes);
  sp.append(big);
  auto f = sp.next();
  ASSERT_FALSE(f.has_value());
  EXPECT_NE(f.error().message.find("exceeds the limit"), std::string::npos);
}

TEST(SimBidiInput, ParsesNovaSonicEvents) {
  auto e = parse_input_event(
      input("textInput", R"({"promptName":"p1","contentName":"c1","content":"hello there"})"));
  ASSERT_TRUE(e.has_value()) << e.error().message;
  EXPECT_EQ(e->name, "textInput");
  EXPECT_EQ(e->prompt_name, "p1");
  EXPECT_EQ(e->content_name, "c1");
  EXPECT_EQ(e->content, "hello there");
  auto cs = parse_input_event(
      input("contentStart",
            R"({"promptName":"p1","contentName":"c2","type":"AUDIO","role":"USER",)"
            R"("interactive":true,"audioInputConfiguration":{"mediaType":"audio/lpcm"}})"));
  ASSERT_TRUE(cs.has_value());
  EXPECT_EQ(cs->type, "AUDIO");
  EXPECT_EQ(cs->role, "USER");
  EXPECT_FALSE(parse_input_event(metering::encode_event("other", "{}")).has_value());
  EXPECT_FALSE(parse_input_event(metering::encode_event("chunk", R"({"bytes":"!!"})")).has_value());
}

TEST(SimBidiTokens, Rules) {
  EXPECT_EQ(speech_tokens_for_audio(0), 0u);
  EXPECT_EQ(speech_tokens_for_audio(1), 1u);
  EXPECT_EQ(speech_tokens_for_audio(1000), 1u);
  EXPECT_EQ(speech_tokens_for_audio(3200), 4u);
  EXPECT_EQ(text_tokens_for_text(0), 1u);
  EXPECT_EQ(text_tokens_for_text(11), 3u);  // "hello there"
  EXPECT_EQ(text_tokens_for_text(12), 3u);
  EXPECT_EQ(text_tokens_for_text(13), 4u);
  EXPECT_TRUE(is_sonic_model("amazon.nova-sonic-v1:0"));
  EXPECT_TRUE(is_sonic_model("us.amazon.nova-2-sonic-v1:0"));
  EXPECT_FALSE(is_sonic_model("amazon.nova-lite-v1:0"));
}

input_event ev(std::string name, std::string content_name = {}, std::string type = {},
               std::string role = {}, std::string content = {}) {
  input_event e;
  e.name = std::move(name);
  e.prompt_name = "p1";
  e.content_name = std::move(content_name);
  e.type = std::move(type);
  e.role = std::move(role);
  e.content = std::move(content);
  return e;
}

std::string audio_b64(std::size_t bytes) {
  std::string out;
  append_base64(out, std::string(bytes, '\x01'));
  return out;
}

TEST(SimBidiSession, AnswersEachUserTurnWithRunningUsage) {
  sonic_session s(id_source(7));
  EXPECT_TRUE(s.on_event(ev("sessionStart")).frames.empty());
  auto ps = s.on_event(ev("promptStart"));
  ASSERT_EQ(ps.frames.size(), 1u);
  EXPECT_EQ(event_name(ps.frames[0]), "completionStart");
  // A system prompt is input, but no turn.
  s.on_event(ev("contentStart", "sys", "TEXT", "SYSTEM"));
  s.on_event(ev("textInput", "sys", {}, {}, "You are brief."));  // 14 bytes: 4 tokens
  EXPECT_TRUE(s.on_event(ev("contentEnd", "sys")).frames.empty());
  s.on_event(ev("contentStart", "a1", "AUDIO", "USER"));
  for (int i = 0; i < 3; ++i) s.on_event(ev("audioInput", "a1", {}, {}, audio_b64(3200)));
  auto t1 = s.on_event(ev("contentEnd", "a1"));
  ASSERT_EQ(t1.frames.size(), 7u);
  const char* names[] = {"contentStart", "textOutput", "contentEnd", "contentStart",
                         "audioOutput",  "contentEnd", "usageEvent"};
  for (std::size_t i = 0; i < 7; ++i) EXPECT_EQ(event_name(t1.frames[i]), names[i]) << i;
  const auto u1 = output_json(t1.frames[6]).at("event").at("usageEvent");
  EXPECT_EQ(u1.at("details").at("total").at("input").at("speechTokens").as_int64(), 12);
  EXPECT_EQ(u1.at("details").at("total").at("input").at("textTokens").as_int64(), 4);
  EXPECT_EQ(u1.at("details").at("total").at("output").at("speechTokens").as_int64(), 4);
  EXPECT_EQ(u1.at("details").at("total").at("output").at("textTokens").as_int64(), 8);
  EXPECT_EQ(u1.at("totalTokens").as_int64(), 28);
  EXPECT_EQ(u1.at("promptName").as_string(), "p1");
  const auto text = output_json(t1.frames[1]).at("event").at("textOutput");
  EXPECT_EQ(text.at("content").as_string(), "Simulated reply 1.");
  EXPECT_EQ(text.at("role").as_string(), "ASSISTANT");
  const auto audio = output_json(t1.frames[4]).at("event").at("audioOutput");
  EXPECT_EQ(decode_base64(audio.at("content").as_string())->size(), sonic_turn_audio_bytes);

  s.on_event(ev("contentStart", "t2", "TEXT", "USER"));
  s.on_event(ev("textInput", "t2", {}, {}, "hello there"));
  auto t2 = s.on_event(ev("contentEnd", "t2"));
  const auto u2 = output_json(t2.frames.back()).at("event").at("usageEvent");
  EXPECT_EQ(u2.at("details").at("delta").at("input").at("textTokens").as_int64(), 3);
  EXPECT_EQ(u2.at("details").at("delta").at("input").at("speechTokens").as_int64(), 0);
  EXPECT_EQ(u2.at("details").at("delta").at("output").at("textTokens").as_int64(), 8);
  EXPECT_EQ(u2.at("totalInputTokens").as_int64(), 19);
  EXPECT_EQ(u2.at("totalOutputTokens").as_int64(), 24);

  s.on_event(ev("promptEnd"));
  auto end = s.on_event(ev("sessionEnd"));
  EXPECT_TRUE(end.end);
  ASSERT_EQ(end.frames.size(), 2u);
  EXPECT_EQ(event_name(end.frames[0]), "completionEnd");
  EXPECT_EQ(output_json(end.frames[0]).at("event").at("completionEnd").at("stopReason").as_string(),
            "END_TURN");
  const auto last = output_json(end.frames[1]).at("event").at("usageEvent");
  EXPECT_EQ(last.at("details").at("delta").at("output").at("textTokens").as_int64(), 0);
  EXPECT_EQ(last.at("totalTokens").as_int64(), 43);
  EXPECT_TRUE(s.finished());
  EXPECT_TRUE(s.on_event(ev("textInput", "x", {}, {}, "late")).frames.empty());
}

TEST(SimBidiSession, StreamExceptionAfterUsageEvents) {
  sonic_session s(id_source(1));
  s.on_event(ev("promptStart"));
  s.on_event(ev("contentStart", "t", "TEXT", "USER"));
  auto d = s.on_event(ev("textInput", "t", {}, {},
                         "SIM{fault=stream_exception,after=1,exception_type=throttlingException}"));
  EXPECT_TRUE(d.frames.empty());
  auto t = s.on_event(ev("contentEnd", "t"));
  EXPECT_TRUE(t.end);
  ASSERT_EQ(t.frames.size(), 8u);  // the turn, its usageEvent, the exception
  auto f = parse_es_frame(t.frames.back());
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->string_header(":message-type"), "exception");
  EXPECT_EQ(f->string_header(":exception-type"), "throttlingException");
  EXPECT_EQ(f->string_header(":content-type"), "application/json");
  EXPECT_TRUE(s.finished());
}

TEST(SimBidiSession, CutResetsAndPaceIsKept) {
  sonic_session s(id_source(1));
  s.on_event(ev("contentStart", "t", "TEXT", "USER"));
  s.on_event(ev("textInput", "t", {}, {}, "SIM{fault=cut,after=1,pace_ms=5}"));
  EXPECT_EQ(s.pace_ms(), 5u);
  auto t = s.on_event(ev("contentEnd", "t"));
  EXPECT_TRUE(t.reset);
  EXPECT_FALSE(t.end);
  EXPECT_EQ(event_name(t.frames.back()), "usageEvent");
}

TEST(SimBidiSession, RefusesBadAndUnsupportedDirectives) {
  sonic_session a(id_source(1));
  auto bad = a.on_event(ev("textInput", "t", {}, {}, "SIM{outptu=3}"));
  EXPECT_TRUE(bad.end);
  ASSERT_EQ(bad.frames.size(), 1u);
  EXPECT_EQ(parse_es_frame(bad.frames[0])->string_header(":exception-type"), "validationException");
  sonic_session b(id_source(1));
  EXPECT_TRUE(b.on_event(ev("textInput", "t", {}, {}, "SIM{status=429}")).end);
}

}  // namespace
}  // namespace bedrock_meter::simulator
