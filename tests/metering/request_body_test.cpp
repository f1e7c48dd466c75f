// The one parse of a request body: output caps of every family, the Converse latency mode, and
// the promise that a body nobody asks about is never parsed.
#include "metering/request_body.hpp"

#include <gtest/gtest.h>

namespace bedrock_meter::metering {
namespace {

std::optional<std::uint64_t> max_tokens(std::string_view body) {
  return request_body(operation::invoke_model, body).max_tokens();
}

TEST(RequestBody, MaxTokensFromEveryFamilyShape) {
  EXPECT_EQ(max_tokens(R"({"messages":[],"inferenceConfig":{"maxTokens":512}})"), 512u);
  EXPECT_EQ(max_tokens(R"({"anthropic_version":"bedrock-2023-05-31","max_tokens":300})"), 300u);
  EXPECT_EQ(max_tokens(R"({"inferenceConfig":{"max_new_tokens":77}})"), 77u);
  EXPECT_EQ(max_tokens(R"({"prompt":"x","max_gen_len":128})"), 128u);
  EXPECT_EQ(max_tokens(R"({"inputText":"x","textGenerationConfig":{"maxTokenCount":99}})"), 99u);
  EXPECT_EQ(max_tokens(R"({"messages":[],"max_completion_tokens":64})"), 64u);
  EXPECT_EQ(max_tokens(R"({"max_tokens":2.0e3})"), 2000u);
  EXPECT_FALSE(max_tokens(R"({"messages":[]})"));
  EXPECT_FALSE(max_tokens("not json"));
  EXPECT_FALSE(max_tokens(R"({"max_tokens":-5})"));
  EXPECT_FALSE(max_tokens(R"({"max_tokens":3)"));  // truncated
  EXPECT_FALSE(max_tokens(""));
}

TEST(RequestBody, LatencyFromTheHeaderOrTheConverseBody) {
  const std::string converse = R"({"messages":[],"performanceConfig":{"latency":"optimized"}})";
  EXPECT_EQ(request_body(operation::converse, converse).latency(""), latency_mode::optimized);
  EXPECT_EQ(request_body(operation::converse_stream, converse).latency(""),
            latency_mode::optimized);
  // InvokeModel says it in a header; the body's field means nothing to Bedrock there.
  EXPECT_EQ(request_body(operation::invoke_model, converse).latency(""), latency_mode::standard);
  EXPECT_EQ(request_body(operation::invoke_model, "{}").latency("Optimized"),
            latency_mode::optimized);
  EXPECT_EQ(request_body(operation::converse, R"({"performanceConfig":{"latency":"standard"}})")
                .latency(""),
            latency_mode::standard);
  // The word elsewhere (a prompt) is not the setting.
  EXPECT_EQ(request_body(operation::converse, R"({"messages":[{"content":"\"optimized\""}]})")
                .latency(""),
            latency_mode::standard);
}

TEST(RequestBody, ABodyNobodyNeedsIsNeverParsed) {
  const std::string body = R"({"inferenceConfig":{"maxTokens":42},"messages":[]})";
  request_body converse(operation::converse, body);
  EXPECT_EQ(converse.latency(""), latency_mode::standard);  // no "optimized" anywhere
  EXPECT_FALSE(converse.parsed());
  request_body invoke(operation::invoke_model, body);
  EXPECT_EQ(invoke.latency("optimized"), latency_mode::optimized);  // the header decides
  EXPECT_FALSE(invoke.parsed());
  EXPECT_EQ(invoke.max_tokens(), 42u);
  EXPECT_TRUE(invoke.parsed());
}

TEST(RequestBody, OneParseServesEveryQuestion) {
  const std::string body =
      R"({"inferenceConfig":{"maxTokens":42},"performanceConfig":{"latency":"optimized"}})";
  request_body b(operation::converse, body);
  EXPECT_EQ(b.latency(""), latency_mode::optimized);
  EXPECT_TRUE(b.parsed());
  EXPECT_EQ(b.max_tokens(), 42u);
}

}  // namespace
}  // namespace bedrock_meter::metering
