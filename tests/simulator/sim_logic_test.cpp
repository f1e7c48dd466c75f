#include "tests/simulator/sim_logic.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "metering/event_stream.hpp"
#include "tests/simulator/sim_bodies.hpp"
#include "tests/simulator/sim_codec.hpp"

namespace bedrock_meter::simulator {
namespace {

TEST(SimRoute, ModelOperations) {
  auto r = parse_route("POST", "/model/us.anthropic.claude-3-haiku-20240307-v1%3A0/invoke");
  EXPECT_EQ(r.op, sim_op::invoke_model);
  EXPECT_EQ(r.model_id, "us.anthropic.claude-3-haiku-20240307-v1:0");
  EXPECT_EQ(parse_route("POST", "/model/m/converse-stream").op, sim_op::converse_stream);
  EXPECT_EQ(parse_route("POST", "/model/m/invoke-with-response-stream?x=1").op,
            sim_op::invoke_model_with_response_stream);
  EXPECT_EQ(parse_route("POST", "/model/m/count-tokens").op, sim_op::count_tokens);
  // A raw '/' inside an ARN still routes: the id runs to the last '/'.
  r = parse_route("POST", "/model/arn:aws:bedrock:us-east-1:1:inference-profile/us.x.y/converse");
  EXPECT_EQ(r.op, sim_op::converse);
  EXPECT_EQ(r.model_id, "arn:aws:bedrock:us-east-1:1:inference-profile/us.x.y");
  EXPECT_TRUE(parse_route("POST", "/model/a%zz/converse").bad_encoding);
}

TEST(SimRoute, UnknownAndWrongMethod) {
  EXPECT_EQ(parse_route("GET", "/model/m/converse").op, sim_op::unknown);
  EXPECT_EQ(parse_route("POST", "/model/m/chat").op, sim_op::unknown);
  EXPECT_EQ(parse_route("POST", "/model//converse").op, sim_op::unknown);
  EXPECT_EQ(parse_route("POST", "/").op, sim_op::unknown);
  EXPECT_EQ(parse_route("POST", "/__sim/stats").op, sim_op::unknown);
}

TEST(SimRoute, GuardrailAndAsync) {
  auto r = parse_route("POST", "/guardrail/gr-1/version/DRAFT/apply");
  EXPECT_EQ(r.op, sim_op::apply_guardrail);
  EXPECT_EQ(r.model_id, "gr-1");
  EXPECT_EQ(r.resource, "DRAFT");
  EXPECT_EQ(parse_route("POST", "/guardrail-checks/invoke").op, sim_op::invoke_guardrail_checks);
  EXPECT_EQ(parse_route("POST", "/async-invoke").op, sim_op::start_async_invoke);
  EXPECT_EQ(parse_route("GET", "/async-invoke?maxResults=2").op, sim_op::list_async_invokes);
  r = parse_route("GET", "/async-invoke/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aasync-invoke%2Fabc");
  EXPECT_EQ(r.op, sim_op::get_async_invoke);
  EXPECT_EQ(r.resource, "arn:aws:bedrock:us-east-1:1:async-invoke/abc");
}

TEST(SimModel, FamilyIgnoresProfilePrefixesAndArns) {
  EXPECT_EQ(base_model_id("global.anthropic.claude-sonnet-4-v1:0"),
            "anthropic.claude-sonnet-4-v1:0");
  EXPECT_EQ(
      base_model_id("arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-8b-instruct-v1:0"),
      "meta.llama3-8b-instruct-v1:0");
  EXPECT_EQ(base_model_id("amazon.nova-lite-v1:0"), "amazon.nova-lite-v1:0");
  EXPECT_EQ(family_of("us-gov.anthropic.claude-3-haiku-20240307-v1:0"), model_family::anthropic);
  EXPECT_EQ(family_of("apac.amazon.nova-pro-v1:0"), model_family::nova);
  EXPECT_EQ(family_of("amazon.titan-text-express-v1"), model_family::titan_text);
  EXPECT_EQ(family_of("amazon.titan-embed-text-v2:0"), model_family::titan_embed);
  EXPECT_EQ(family_of("eu.meta.llama3-2-3b-instruct-v1:0"), model_family::llama);
  EXPECT_EQ(family_of("mistral.mistral-large-2402-v1:0"), model_family::mistral);
  EXPECT_EQ(family_of("cohere.command-r-v1:0"), model_family::generic);
  EXPECT_EQ(family_of("arn:aws:bedrock:us-east-1:1:application-inference-profile/abc"),
            model_family::generic);
}

TEST(SimDirective, ParsesEveryKey) {
  auto r = parse_directive(
      R"({"text":"hi SIM{input=100, output=20,cache_read=5,cache_write=7,events=5,pace_ms=50,)"
      R"(first_byte_ms=3,after=2,fault=stream_exception,exception_type=throttlingException,)"
      R"(status=503,error=X,tier=flex,stop=stop_sequence,guardrail=intervene} there"})");
  ASSERT_TRUE(r) << r.error().message;
  const directive& d = *r;
  EXPECT_EQ(d.input, 100u);
  EXPECT_EQ(d.output, 20u);
  EXPECT_EQ(d.cache_read, 5u);
  EXPECT_EQ(d.cache_write, 7u);
  EXPECT_EQ(d.events, 5u);
  EXPECT_EQ(d.pace_ms, 50u);
  EXPECT_EQ(d.first_byte_ms, 3u);
  EXPECT_EQ(d.after, 2u);
  EXPECT_EQ(d.status, 503u);
  EXPECT_EQ(d.fault_kind, fault::stream_exception);
  EXPECT_EQ(d.exception_type, "throttlingException");
  EXPECT_EQ(d.error_name, "X");
  EXPECT_EQ(d.tier, "flex");
  EXPECT_EQ(d.stop, "stop_sequence");
  EXPECT_TRUE(d.intervene);
}

// A refusal carries a message (answered as the 400 ValidationException's message).
bool refused(std::string_view body) {
  const auto r = parse_directive(body);
  return !r && !r.error().message.empty();
}

TEST(SimDirective, RejectsTyposAndBadValues) {
  EXPECT_TRUE(refused("SIM{outptu=3}"));
  EXPECT_TRUE(refused("SIM{output=-3}"));
  EXPECT_TRUE(refused("SIM{output=3"));
  EXPECT_TRUE(refused("SIM{fault=boom}"));
  EXPECT_TRUE(refused("SIM{status=99}"));
  EXPECT_TRUE(refused("SIM{output}"));
  const auto none = parse_directive("no directive here");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->output.has_value());
}

TEST(SimDirective, RefusalMessages) {
  const auto message = [](std::string_view body) { return parse_directive(body).error().message; };
  EXPECT_EQ(message("SIM{output=3"), "SIM directive: missing '}'");
  EXPECT_EQ(message("SIM{ output }"), "SIM directive: expected key=value, got 'output'");
  EXPECT_EQ(message("SIM{output=-3}"), "SIM directive: 'output' needs a non-negative integer");
  EXPECT_EQ(message("SIM{status=x}"), "SIM directive: 'status' needs a non-negative integer");
  EXPECT_EQ(message("SIM{status=600}"), "SIM directive: status must be 100..599");
  EXPECT_EQ(message("SIM{guardrail=maybe}"), "SIM directive: guardrail must be intervene or none");
  EXPECT_EQ(message("SIM{fault=boom}"), "SIM directive: unknown fault 'boom'");
  EXPECT_EQ(message("SIM{ outptu = 3 }"), "SIM directive: unknown key 'outptu'");
  // The first bad item wins; items before it do not matter.
  EXPECT_EQ(message("SIM{output=2,fault=boom,status=1}"), "SIM directive: unknown fault 'boom'");
}

TEST(SimDirective, TextKeysAreVerbatimAfterTrimming) {
  const auto r = parse_directive("SIM{ tier =  flex , stop= , guardrail=none,,}");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->tier, "flex");
  EXPECT_EQ(r->stop, "");
  EXPECT_FALSE(r->intervene);
}

TEST(SimCountTokens, ModelBodyFromInvokeModelInput) {
  EXPECT_EQ(count_tokens_model_body(R"({"input":{"invokeModel":{"body":"U0lNe2lucHV0PTV9"}}})"),
            "SIM{input=5}");
  // Anything else is the body itself.
  for (std::string_view body :
       {R"({"input":{"converse":{"messages":[]}}})", R"({"input":{"invokeModel":{"body":3}}})",
        R"({"input":{"invokeModel":{"body":"*"}}})", R"(["invokeModel"])", R"("invokeModel" x)"}) {
    EXPECT_EQ(count_tokens_model_body(body), body);
  }
}

TEST(SimScan, MaxTokensFromEachFamily) {
  EXPECT_EQ(scan_request(R"({"max_tokens": 12,"messages":[]})").max_tokens, 12u);
  EXPECT_EQ(scan_request(R"({"inferenceConfig":{"maxTokens":9}})").max_tokens, 9u);
  EXPECT_EQ(scan_request(R"({"inferenceConfig":{"max_new_tokens":7}})").max_tokens, 7u);
  EXPECT_EQ(scan_request(R"({"textGenerationConfig":{"maxTokenCount":5}})").max_tokens, 5u);
  EXPECT_EQ(scan_request(R"({"prompt":"x","max_gen_len":4})").max_tokens, 4u);
  EXPECT_FALSE(scan_request(R"({"messages":[]})").max_tokens.has_value());
}

TEST(SimScan, KeysInsideStringsAndSchemasDoNotCount) {
  // Escaped inside a string: not a key.
  EXPECT_FALSE(scan_request(R"({"text":"{\"max_tokens\": 3}"})").max_tokens.has_value());
  // Ambiguous (a tool schema property with a numeric default): the JSON parse picks the
  // inferenceConfig limit.
  const auto f = scan_request(
      R"({"toolConfig":{"tools":[{"toolSpec":{"inputSchema":{"json":{"max_tokens":100}}}}]},)"
      R"("inferenceConfig":{"maxTokens":25}})");
  EXPECT_EQ(f.max_tokens, 25u);
}

TEST(SimScan, TierLatencyDimensions) {
  const auto f = scan_request(
      R"({"serviceTier":{"type":"priority"},"performanceConfig":{"latency":"optimized"},"dimensions":256})");
  EXPECT_EQ(f.tier, "priority");
  EXPECT_EQ(f.latency, "optimized");
  EXPECT_EQ(f.dimensions, 256u);
}

TEST(SimPlan, Defaults) {
  const std::string body(400, 'x');
  directive d;
  request_facts facts;
  auto p = make_plan(body, d, facts, model_family::anthropic, sim_op::converse);
  EXPECT_EQ(p.input, 100u);
  EXPECT_EQ(p.output, default_output_tokens);
  EXPECT_FALSE(p.hit_max_tokens);
  EXPECT_EQ(p.events, default_stream_events);
  facts.max_tokens = 3;
  p = make_plan("{}", d, facts, model_family::anthropic, sim_op::converse);
  EXPECT_EQ(p.input, 1u);
  EXPECT_EQ(p.output, 3u);
  EXPECT_EQ(p.events, 3u);
  EXPECT_TRUE(p.hit_max_tokens);
  EXPECT_EQ(stop_reason_for(model_family::llama, sim_op::invoke_model, p), "length");
  EXPECT_EQ(stop_reason_for(model_family::titan_text, sim_op::invoke_model, p), "LENGTH");
  p = make_plan(body, d, facts, model_family::titan_embed, sim_op::invoke_model);
  EXPECT_EQ(p.output, 0u);
}

TEST(SimBodies, ConverseUsageOmitsZeroCacheCounts) {
  plan p;
  p.input = 10;
  p.output = 2;
  auto v = boost::json::parse(converse_body(p, timing{5, 1}, served_config{}));
  EXPECT_EQ(v.at("usage").as_object().size(), 3u);
  EXPECT_EQ(v.at("usage").at("totalTokens").as_int64(), 12);
  EXPECT_EQ(v.at("metrics").at("latencyMs").as_int64(), 5);
  EXPECT_EQ(v.at("output").at("message").at("content").at(0).at("text").as_string(), "lorem ipsum");
  p.cache_read = 3;
  v = boost::json::parse(converse_body(p, timing{}, served_config{"flex", ""}));
  EXPECT_EQ(v.at("usage").at("cacheReadInputTokens").as_int64(), 3);
  EXPECT_EQ(v.at("usage").at("totalTokens").as_int64(), 15);
  EXPECT_EQ(v.at("serviceTier").at("type").as_string(), "flex");
}

// Decodes a rendered script back and checks the frames and the metrics on the last one only.
TEST(SimStream, ChunkScriptRoundTrips) {
  plan p;
  p.input = 30;
  p.output = 10;
  p.events = 3;
  p.cache_write = 4;
  for (auto fam : {model_family::anthropic, model_family::nova, model_family::titan_text,
                   model_family::llama, model_family::mistral}) {
    stream_script script(sim_op::invoke_model_with_response_stream, fam, "m", p, {}, "msg_bdrk_1");
    std::string bytes;
    for (std::size_t i = 0; i < script.size(); ++i) script.render(i, timing{7, 2}, bytes);
    metering::event_stream_decoder dec;
    std::vector<boost::json::value> models;
    ASSERT_EQ(dec.feed(bytes,
                       [&](const metering::event_message& m) {
                         EXPECT_EQ(m.message_type, "event");
                         EXPECT_EQ(m.event_type, "chunk");
                         const auto env = boost::json::parse(m.payload);
                         const auto decoded = decode_base64(env.at("bytes").as_string());
                         ASSERT_TRUE(decoded.has_value());
                         models.push_back(boost::json::parse(*decoded));
                       }),
              metering::event_stream_error::none);
    ASSERT_EQ(models.size(), script.size());
    for (std::size_t i = 0; i + 1 < models.size(); ++i) {
      EXPECT_FALSE(models[i].as_object().contains("amazon-bedrock-invocationMetrics"));
    }
    const auto& m = models.back().at("amazon-bedrock-invocationMetrics");
    EXPECT_EQ(m.at("inputTokenCount").as_int64(), 30);
    EXPECT_EQ(m.at("outputTokenCount").as_int64(), 10);
    EXPECT_EQ(m.at("invocationLatency").as_int64(), 7);
    EXPECT_EQ(m.at("firstByteLatency").as_int64(), 2);
    EXPECT_EQ(m.at("cacheWriteInputTokenCount").as_int64(), 4);
    EXPECT_FALSE(m.as_object().contains("cacheReadInputTokenCount"));
  }
}

TEST(SimStream, ConverseEventTypesAndDeltaText) {
  plan p;
  p.output = 5;
  p.events = 2;
  stream_script script(sim_op::converse_stream, model_family::nova, "m", p, {}, "");
  std::string bytes;
  for (std::size_t i = 0; i < script.size(); ++i) script.render(i, timing{}, bytes);
  std::vector<std::string> types;
  std::string text;
  metering::event_stream_decoder dec;
  dec.feed(bytes, [&](const metering::event_message& m) {
    types.emplace_back(m.event_type);
    const auto v = boost::json::parse(m.payload);
    EXPECT_TRUE(v.as_object().contains("p"));
    if (m.event_type == "contentBlockDelta") text += v.at("delta").at("text").as_string().c_str();
  });
  EXPECT_EQ(types,
            (std::vector<std::string>{"messageStart", "contentBlockDelta", "contentBlockDelta",
                                      "contentBlockStop", "messageStop", "metadata"}));
  EXPECT_EQ(text, "lorem ipsum dolor sit amet");
}

TEST(SimCodec, Base64RoundTripAndIds) {
  for (const std::string& s :
       {std::string(), std::string("a"), std::string("ab"), std::string("abc"), std::string("abcd"),
        std::string("\xff\x00\x10 b", 5)}) {
    std::string enc;
    append_base64(enc, s);
    EXPECT_EQ(decode_base64(enc), s);
  }
  EXPECT_FALSE(decode_base64("a*b").has_value());
  id_source a(7), b(7);
  EXPECT_EQ(a.uuid(), b.uuid());  // deterministic per seed
  const std::string u = a.uuid();
  EXPECT_EQ(u.size(), 36u);
  EXPECT_EQ(u[14], '4');
}

}  // namespace
}  // namespace bedrock_meter::simulator
