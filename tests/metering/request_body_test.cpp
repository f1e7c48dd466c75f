// The one parse of a request body: output caps of every family, the Converse latency mode, and
// the promise that a body nobody asks about is never parsed.
#include "metering/request_body.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// --- request traits and prompt fingerprints -----------------------------------------------------

namespace traits_test {

const siphash_key key_a = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
const siphash_key key_b = {16, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 1};

request_traits traits(std::string_view body, const siphash_key* key = &key_a,
                      operation op = operation::converse) {
  return request_body(op, body).traits(key);
}

/// A Converse body with the given system prompt and turns (user, assistant, user, ...).
std::string converse(std::string_view system, const std::vector<std::string>& turns,
                     bool tools = false) {
  std::string b = R"({"modelId":"x","system":[{"text":")" + std::string(system) + R"("}],)";
  if (tools) b += R"("toolConfig":{"tools":[{"toolSpec":{"name":"t"}}]},)";
  b += R"("messages":[)";
  for (std::size_t i = 0; i < turns.size(); ++i) {
    if (i > 0) b += ',';
    b += R"({"role":")";
    b += i % 2 == 0 ? "user" : "assistant";
    b += R"(","content":[{"text":")" + turns[i] + R"("}]})";
  }
  return b + R"(],"inferenceConfig":{"maxTokens":256}})";
}

}  // namespace traits_test

TEST(RequestTraits, ReadsTheCapToolsAndStructuredOutput) {
  using namespace traits_test;
  const auto t = traits(converse("be brief", {"hi"}, true));
  EXPECT_EQ(t.max_tokens, 256u);
  EXPECT_TRUE(t.tools);
  EXPECT_FALSE(t.structured_output);
  const auto o = traits(R"({"messages":[{"role":"user","content":"x"}],"tools":[],)"
                        R"("response_format":{"type":"json_schema"}})",
                        &key_a, operation::invoke_model);
  EXPECT_FALSE(o.tools) << "an empty tools list defines no tool";
  EXPECT_TRUE(o.structured_output);
  EXPECT_FALSE(o.max_tokens);
  EXPECT_FALSE(traits(R"({"messages":[],"response_format":null})").structured_output);
}

TEST(RequestTraits, TheSameSystemPromptGivesTheSameFingerprintAndSize) {
  using namespace traits_test;
  const std::string system(3000, 's');
  const auto a = traits(converse(system, {"first question"}));
  const auto b = traits(converse(system, {"a different question"}));
  ASSERT_NE(a.system.hash, 0u);
  EXPECT_EQ(a.system, b.system);
  // The system part spans the `system` value: [{"text":"sss..."}] is 3000 + 13 bytes.
  EXPECT_EQ(a.system.bytes, 3000u + 13u);
  EXPECT_NE(a.full.hash, b.full.hash);
  EXPECT_NE(traits(converse(system + "!", {"first question"})).system.hash, a.system.hash);
}

TEST(RequestTraits, TheKeyChangesEveryFingerprint) {
  using namespace traits_test;
  const std::string body = converse("same text", {"q"});
  EXPECT_NE(traits(body, &key_a).system.hash, traits(body, &key_b).system.hash);
  EXPECT_NE(traits(body, &key_a).full.hash, traits(body, &key_b).full.hash);
  const auto off = traits(body, nullptr);
  EXPECT_EQ(off.system, prompt_prefix{});
  EXPECT_EQ(off.full, prompt_prefix{});
  EXPECT_EQ(off.max_tokens, 256u) << "fingerprints off still records the cap";
}

TEST(RequestTraits, TheNextTurnsConversationIsThisTurnsFullPrompt) {
  using namespace traits_test;
  const auto turn1 = traits(converse("sys", {"q1"}));
  const auto turn2 = traits(converse("sys", {"q1", "a1", "q2"}));
  const auto turn3 = traits(converse("sys", {"q1", "a1", "q2", "a2", "q3"}));
  EXPECT_EQ(turn1.conversation, prompt_prefix{}) << "one message: no earlier turn";
  ASSERT_NE(turn2.conversation.hash, 0u);
  EXPECT_EQ(turn2.conversation, turn1.full);
  EXPECT_EQ(turn3.conversation, turn2.full);
  EXPECT_GT(turn3.full.bytes, turn3.conversation.bytes);
  EXPECT_GT(turn2.conversation.bytes, turn2.system.bytes);
}

TEST(RequestTraits, ToolsAreHashedBeforeTheSystemPrompt) {
  using namespace traits_test;
  const auto without = traits(converse("sys", {"q"}, false));
  const auto with = traits(converse("sys", {"q"}, true));
  EXPECT_NE(without.system.hash, with.system.hash);
  EXPECT_GT(with.system.bytes, without.system.bytes);
}

TEST(RequestTraits, OpenAiLeadingSystemMessagesArePartOfTheSystemPrefix) {
  using namespace traits_test;
  const auto a = traits(R"({"messages":[{"role":"system","content":"rules"},)"
                        R"({"role":"user","content":"one"}]})",
                        &key_a, operation::invoke_model);
  const auto b = traits(R"({"messages":[{"role":"system","content":"rules"},)"
                        R"({"role":"user","content":"two"}]})",
                        &key_a, operation::invoke_model);
  ASSERT_NE(a.system.hash, 0u);
  EXPECT_EQ(a.system, b.system);
  EXPECT_EQ(a.system.bytes, std::string_view(R"({"role":"system","content":"rules"})").size());
  EXPECT_NE(a.full.hash, b.full.hash);
}

TEST(RequestTraits, CohereChatHistoryAndMessageAreTheTurns) {
  using namespace traits_test;
  const auto t = traits(R"({"preamble":"p","chat_history":[{"role":"USER","message":"a"},)"
                        R"({"role":"CHATBOT","message":"b"}],"message":"c"})",
                        &key_a, operation::invoke_model);
  EXPECT_NE(t.system.hash, 0u);
  EXPECT_NE(t.conversation.hash, 0u) << "three turns: the first is the earlier conversation";
  EXPECT_NE(t.full.hash, 0u);
}

TEST(RequestTraits, PlainPromptsAndBrokenBodiesHaveNoPrefixes) {
  using namespace traits_test;
  const auto llama =
      traits(R"({"prompt":"hello","max_gen_len":64})", &key_a, operation::invoke_model);
  EXPECT_EQ(llama.max_tokens, 64u);
  EXPECT_EQ(llama.system, prompt_prefix{});
  EXPECT_EQ(llama.full, prompt_prefix{});
  EXPECT_EQ(traits(R"({"system":"x","messages":[)"), request_traits{});
  EXPECT_EQ(traits(R"({"system":"x"} trailing)"), request_traits{});
  EXPECT_EQ(traits("[1,2]"), request_traits{});
}

TEST(RequestTraits, OneScanServesTheCapTheLatencyAndTheTraits) {
  using namespace traits_test;
  request_body b(operation::converse,
                 R"({"messages":[],"performanceConfig":{"latency":"optimized"},)"
                 R"("inferenceConfig":{"maxTokens":9}})");
  EXPECT_EQ(b.latency(""), latency_mode::optimized);
  EXPECT_TRUE(b.parsed());
  EXPECT_EQ(b.max_tokens(), 9u);
  EXPECT_EQ(b.traits(&key_a).max_tokens, 9u);
}

TEST(RequestTraits, EscapedKeysAreReadAsBedrockReadsThem) {
  EXPECT_EQ(max_tokens(R"({"max\u005ftokens":42})"), 42u);
  EXPECT_EQ(max_tokens(R"({"max_tokens":1,"max_tokens":7})"), 7u) << "the last repeat wins";
}

}  // namespace
}  // namespace bedrock_meter::metering
