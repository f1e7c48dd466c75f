#include "metering/usage.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "metering/event_stream.hpp"

namespace bedrock_meter::metering {
namespace {

// ---------------------------------------------------------------------------------------------
// Fixtures

std::string read_fixture(std::string_view name) {
  const std::string path = std::string(BM_TEST_DATA_DIR) + "/usage/" + std::string(name);
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string base64(std::string_view in) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const auto v = (static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16) |
                   (static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8) |
                   static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 2]));
    out += alphabet[(v >> 18) & 63u];
    out += alphabet[(v >> 12) & 63u];
    out += alphabet[(v >> 6) & 63u];
    out += alphabet[v & 63u];
  }
  const std::size_t rest = in.size() - i;
  if (rest > 0) {
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16;
    if (rest == 2) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
    out += alphabet[(v >> 18) & 63u];
    out += alphabet[(v >> 12) & 63u];
    out += rest == 2 ? alphabet[(v >> 6) & 63u] : '=';
    out += '=';
  }
  return out;
}

/// The `chunk` event payload Bedrock sends for InvokeModelWithResponseStream.
std::string wrap_chunk(std::string_view model_json) {
  return R"({"bytes":")" + base64(model_json) + R"(","p":"abcdefghijklmnopqrstu"})";
}

struct stream_line {
  std::string type;  // event type, or exception type when `exception`
  std::string json;
  bool exception = false;
};

/// Reads an `.events` fixture (format in tests/data/usage/README.md).
std::vector<stream_line> read_events(std::string_view name) {
  std::vector<stream_line> out;
  std::istringstream in(read_fixture(name));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t space = line.find(' ');
    stream_line l;
    l.type = line.substr(0, space);
    l.json = line.substr(space + 1);
    if (l.type[0] == '!') {
      l.exception = true;
      l.type.erase(0, 1);
    }
    out.push_back(std::move(l));
  }
  EXPECT_FALSE(out.empty()) << name;
  return out;
}

/// Encodes the first `count` lines as event-stream frames; `chunk` lines are wrapped as Bedrock
/// wraps InvokeModelWithResponseStream model output.
std::string encode_stream(const std::vector<stream_line>& lines,
                          std::size_t count = static_cast<std::size_t>(-1)) {
  std::string out;
  for (std::size_t i = 0; i < lines.size() && i < count; ++i) {
    const stream_line& l = lines[i];
    if (l.exception) {
      out += encode_exception(l.type, l.json);
    } else if (l.type == "chunk") {
      out += encode_event("chunk", wrap_chunk(l.json));
    } else {
      out += encode_event(l.type, l.json);
    }
  }
  return out;
}

/// Byte offset where frame `index` (0-based) starts in an encoded stream.
std::size_t frame_offset(std::string_view stream, std::size_t index) {
  std::size_t at = 0;
  for (std::size_t i = 0; i < index; ++i) {
    const auto* p = reinterpret_cast<const unsigned char*>(stream.data() + at);
    at += (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
  }
  return at;
}

// ---------------------------------------------------------------------------------------------
// Running an observer, three ways

using header_map = std::map<std::string, std::string, std::less<>>;

struct request {
  operation op = operation::converse;
  std::string model = "anthropic.claude-3-5-sonnet-20240620-v1:0";
  unsigned status = 200;
  header_map headers;
  std::string body;
  bool complete = true;
};

struct outcome {
  token_usage usage;
  std::string tier;
  bool seen = false;
  std::uint64_t decode_errors = 0;
  std::string stop;
  std::string exception;
  std::uint64_t text_bytes = 0;
};

std::string describe(const outcome& o) {
  std::ostringstream s;
  s << "input=" << o.usage.input << " output=" << o.usage.output
    << " cache_read=" << o.usage.cache_read << " cache_write=" << o.usage.cache_write
    << " cache_write_1h=" << o.usage.cache_write_1h << " speech_input=" << o.usage.speech_input
    << " speech_output=" << o.usage.speech_output << " source=" << static_cast<int>(o.usage.source)
    << " tier=" << o.tier << " seen=" << o.seen << " decode_errors=" << o.decode_errors
    << " stop=" << o.stop << " exception=" << o.exception << " text_bytes=" << o.text_bytes;
  return s.str();
}

enum class chunking { whole, one_byte, random, two_pieces };

/// `split` is where the body is cut in two (chunking::two_pieces only).
outcome observe(const request& r, chunking how, std::uint32_t seed = 0, std::size_t split = 0) {
  usage_observer obs(r.op, r.model);
  const header_lookup lookup = [&r](std::string_view name) -> std::string_view {
    const auto it = r.headers.find(name);
    return it == r.headers.end() ? std::string_view{} : std::string_view(it->second);
  };
  obs.on_head(r.status, lookup);
  const std::string_view body = r.body;
  switch (how) {
    case chunking::whole: obs.on_body(body); break;
    case chunking::one_byte:
      for (std::size_t i = 0; i < body.size(); ++i) obs.on_body(body.substr(i, 1));
      break;
    case chunking::random: {
      std::mt19937 rng(seed);
      std::uniform_int_distribution<std::size_t> size(1, 97);
      for (std::size_t i = 0; i < body.size();) {
        const std::size_t n = size(rng);
        obs.on_body(body.substr(i, n));
        i += n;
      }
      break;
    }
    case chunking::two_pieces:
      obs.on_body(body.substr(0, split));
      obs.on_body(body.substr(split));
      break;
  }
  obs.finish(r.complete);
  return outcome{
      obs.usage(),         std::string(obs.service_tier()), obs.usage_seen(),
      obs.decode_errors(), std::string(obs.stop_reason()),  std::string(obs.stream_exception()),
      obs.text_bytes()};
}

/// Runs the request whole, in 1-byte chunks and at seeded random boundaries; all must agree.
outcome observe_all_ways(const request& r) {
  const outcome whole = observe(r, chunking::whole);
  EXPECT_EQ(describe(observe(r, chunking::one_byte)), describe(whole)) << "1-byte chunks";
  for (const std::uint32_t seed : {1u, 7u, 2024u}) {
    EXPECT_EQ(describe(observe(r, chunking::random, seed)), describe(whole))
        << "random chunks, seed " << seed;
  }
  return whole;
}

token_usage tokens(std::uint64_t input, std::uint64_t output, std::uint64_t cache_read,
                   std::uint64_t cache_write, std::uint64_t cache_write_1h, usage_source source) {
  token_usage u;
  u.input = input;
  u.output = output;
  u.cache_read = cache_read;
  u.cache_write = cache_write;
  u.cache_write_1h = cache_write_1h;
  u.source = source;
  return u;
}

void expect_usage(const token_usage& got, const token_usage& want) {
  EXPECT_EQ(got.input, want.input);
  EXPECT_EQ(got.output, want.output);
  EXPECT_EQ(got.cache_read, want.cache_read);
  EXPECT_EQ(got.cache_write, want.cache_write);
  EXPECT_EQ(got.cache_write_1h, want.cache_write_1h);
  EXPECT_EQ(got.speech_input, want.speech_input);
  EXPECT_EQ(got.speech_output, want.speech_output);
  EXPECT_EQ(static_cast<int>(got.source), static_cast<int>(want.source));
}

constexpr auto reported = usage_source::reported;
constexpr auto estimated = usage_source::estimated;
constexpr auto none = usage_source::none;

/// The documented estimate for generated text: ceil(bytes / 4).
std::uint64_t text_estimate(std::string_view text) { return (text.size() + 3) / 4; }

const char* const app_profile_arn =
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6";

// ---------------------------------------------------------------------------------------------
// Model family

TEST(usage_family, detects_family_from_ids_profiles_and_arns) {
  EXPECT_EQ(family_of("anthropic.claude-3-haiku-20240307-v1:0"), model_family::anthropic);
  EXPECT_EQ(family_of("us.anthropic.claude-sonnet-4-20250514-v1:0"), model_family::anthropic);
  EXPECT_EQ(family_of("global.anthropic.claude-sonnet-4-5-20250929-v1:0"), model_family::anthropic);
  EXPECT_EQ(family_of("us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0"), model_family::anthropic);
  EXPECT_EQ(family_of("apac.amazon.nova-pro-v1:0"), model_family::amazon_nova);
  EXPECT_EQ(family_of("jp.amazon.nova-lite-v1:0"), model_family::amazon_nova);
  EXPECT_EQ(family_of("amazon.titan-text-express-v1"), model_family::amazon_titan);
  EXPECT_EQ(family_of("amazon.titan-embed-text-v2:0"), model_family::amazon_titan);
  EXPECT_EQ(family_of("eu.meta.llama3-2-3b-instruct-v1:0"), model_family::meta_llama);
  EXPECT_EQ(family_of("mistral.mistral-large-2407-v1:0"), model_family::mistral);
  EXPECT_EQ(family_of("cohere.command-r-plus-v1:0"), model_family::cohere);
  EXPECT_EQ(family_of("au.deepseek.r1-v1:0"), model_family::deepseek);
  EXPECT_EQ(family_of("openai.gpt-oss-120b-1:0"), model_family::openai);
  EXPECT_EQ(family_of("ai21.jamba-1-5-large-v1:0"), model_family::ai21);
  EXPECT_EQ(family_of("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2"),
            model_family::anthropic);
  EXPECT_EQ(family_of("arn:aws:bedrock:eu-west-1:123456789012:inference-profile/"
                      "eu.amazon.nova-micro-v1:0"),
            model_family::amazon_nova);
  EXPECT_EQ(family_of("arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:inference-profile/"
                      "us-gov.meta.llama3-8b-instruct-v1:0"),
            model_family::meta_llama);
  EXPECT_EQ(family_of("arn:aws:bedrock:us-east-1:123456789012:custom-model/"
                      "amazon.titan-text-express-v1:0:8k/abcd1234"),
            model_family::amazon_titan);
  EXPECT_EQ(family_of(app_profile_arn), model_family::unknown);
  EXPECT_EQ(family_of("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/xyz"),
            model_family::unknown);
  EXPECT_EQ(family_of("arn:aws:bedrock:us-east-1:123456789012:imported-model/llama-ft"),
            model_family::unknown);
  EXPECT_EQ(family_of("amazon.rerank-v1:0"), model_family::unknown);
  EXPECT_EQ(family_of("stability.sd3-large-v1:0"), model_family::unknown);
  EXPECT_EQ(family_of(""), model_family::unknown);
  EXPECT_EQ(family_of("arn:aws:bedrock"), model_family::unknown);
}

// ---------------------------------------------------------------------------------------------
// Converse

TEST(usage_converse, cache_reads_and_writes_with_ttl_split) {
  request r;
  r.body = read_fixture("converse_cache.json");
  const outcome o = observe_all_ways(r);
  expect_usage(o.usage, tokens(12, 14, 1500, 2000, 1200, reported));
  EXPECT_EQ(o.tier, "priority");  // from the body's serviceTier when no header
  EXPECT_TRUE(o.seen);
  EXPECT_EQ(o.decode_errors, 0u);
}

TEST(usage_converse, service_tier_header_wins_over_body) {
  request r;
  r.body = read_fixture("converse_cache.json");
  r.headers["x-amzn-bedrock-service-tier"] = "flex";
  EXPECT_EQ(observe_all_ways(r).tier, "flex");
}

TEST(usage_converse, cache_details_alone_give_the_cache_write_total) {
  request r;
  r.body = R"({"output":{"message":{"role":"assistant","content":[{"text":"ok"}]}},)"
           R"("usage":{"inputTokens":3,"outputTokens":1,"totalTokens":904,)"
           R"("cacheDetails":[{"ttl":"1h","inputTokens":600},{"ttl":"5m","inputTokens":300}]}})";
  expect_usage(observe_all_ways(r).usage, tokens(3, 1, 0, 900, 600, reported));
}

TEST(usage_converse, reported_zero_output_stays_zero) {
  request r;
  r.body = read_fixture("converse_zero_output.json");
  const outcome o = observe_all_ways(r);
  // The body has generated text an estimate would count; the provider said 0, so 0 it is.
  expect_usage(o.usage, tokens(31, 0, 0, 0, 0, reported));
  EXPECT_TRUE(o.seen);
}

TEST(usage_converse, body_cut_before_usage_is_estimated_from_text) {
  request r;
  const std::string full = read_fixture("converse_cache.json");
  r.body = full.substr(0, full.find("\"stopReason\""));
  r.complete = false;
  const outcome o = observe_all_ways(r);
  expect_usage(o.usage,
               tokens(0, text_estimate("Paris is the capital of France. It sits on the Seine."), 0,
                      0, 0, estimated));
  EXPECT_FALSE(o.seen);
}

TEST(usage_converse, client_abort_after_usage_stays_reported) {
  request r;
  const std::string full = read_fixture("converse_cache.json");
  r.body = full.substr(0, full.find("\"metrics\""));  // usage object closed, body not finished
  r.complete = false;
  const outcome o = observe_all_ways(r);
  expect_usage(o.usage, tokens(12, 14, 1500, 2000, 1200, reported));
  EXPECT_TRUE(o.seen);
}

TEST(usage_converse, body_over_the_parse_cap_is_not_trusted) {
  // The usage comes after more than the parse cap (8 MiB) of text: the observer stops parsing and
  // settles as estimated, never as a usage it could not read.
  request r;
  const std::string text(9u * 1024u * 1024u, 'a');
  r.body = R"({"output":{"message":{"role":"assistant","content":[{"text":")" + text +
           R"("}]}},"usage":{"inputTokens":5,"outputTokens":6,"totalTokens":11}})";
  const outcome whole = observe(r, chunking::whole);
  EXPECT_EQ(static_cast<int>(whole.usage.source), static_cast<int>(estimated));
  EXPECT_EQ(whole.usage.input, 0u);
  EXPECT_GT(whole.usage.output, 1000000u);  // text up to the cap
  EXPECT_LT(whole.usage.output, text.size() / 4);
  EXPECT_FALSE(whole.seen);
  EXPECT_EQ(describe(observe(r, chunking::random, 3)), describe(whole));
  // 1-byte chunks over 9 MiB: only the first and last bytes matter; cover the split at the cap.
  usage_observer obs(r.op, r.model);
  obs.on_head(200, {});
  const std::size_t cut = 8u * 1024u * 1024u - 3;
  obs.on_body(std::string_view(r.body).substr(0, cut));
  for (std::size_t i = cut; i < cut + 8; ++i) obs.on_body(std::string_view(r.body).substr(i, 1));
  obs.on_body(std::string_view(r.body).substr(cut + 8));
  obs.finish(true);
  EXPECT_EQ(obs.usage().output, whole.usage.output);
  EXPECT_FALSE(obs.usage_seen());
}

TEST(usage_converse, malformed_body_is_estimated_without_crashing) {
  request r;
  r.body = R"({"output":{"message":{"content":[{"text":"abcdefgh"}]}},"usage":{"inputTokens":5,)"
           R"("outputTokens":x})";
  const outcome o = observe_all_ways(r);
  expect_usage(o.usage, tokens(0, 2, 0, 0, 0, estimated));
}

// ---------------------------------------------------------------------------------------------
// ConverseStream

TEST(usage_converse_stream, metadata_usage_with_ttl_split) {
  request r;
  r.op = operation::converse_stream;
  r.body = encode_stream(read_events("converse_stream.events"));
  const outcome o = observe_all_ways(r);
  expect_usage(o.usage, tokens(12, 14, 1500, 2000, 1200, reported));
  EXPECT_EQ(o.tier, "flex");
  EXPECT_TRUE(o.seen);
  EXPECT_EQ(o.decode_errors, 0u);
}

TEST(usage_converse_stream, aborted_before_metadata_is_estimated) {
  request r;
  r.op = operation::converse_stream;
  r.body = encode_stream(read_events("converse_stream.events"), 5);  // three deltas, no metadata
  r.complete = false;
  const outcome o = observe_all_ways(r);
  const std::string text = "Paris is the capital of France. It sits on the Seine.";
  expect_usage(o.usage, tokens(0, text_estimate(text), 0, 0, 0, estimated));
  EXPECT_FALSE(o.seen);
}

TEST(usage_converse_stream, clean_end_without_metadata_is_still_estimated) {
  request r;
  r.op = operation::converse_stream;
  r.body = encode_stream(read_events("converse_stream.events"), 7);
  const outcome o = observe_all_ways(r);  // complete = true
  EXPECT_EQ(static_cast<int>(o.usage.source), static_cast<int>(estimated));
  EXPECT_GE(o.usage.output, 3u);
}

TEST(usage_converse_stream, each_delta_counts_at_least_one_token) {
  request r;
  r.op = operation::converse_stream;
  for (int i = 0; i < 6; ++i) {
    r.body += encode_event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"a"}})");
  }
  r.complete = false;
  expect_usage(observe_all_ways(r).usage, tokens(0, 6, 0, 0, 0, estimated));
}

TEST(usage_converse_stream, exception_mid_stream_is_estimated) {
  request r;
  r.op = operation::converse_stream;
  r.body = encode_stream(read_events("converse_stream_exception.events"));
  const outcome o = observe_all_ways(r);
  const std::string text = "The first part of a long answer that the model never finished";
  expect_usage(o.usage, tokens(0, text_estimate(text), 0, 0, 0, estimated));
  EXPECT_EQ(o.decode_errors, 0u);
}

TEST(usage_converse_stream, corrupt_frame_counts_a_decode_error) {
  request r;
  r.op = operation::converse_stream;
  const auto lines = read_events("converse_stream.events");
  r.body = encode_stream(lines);
  // Flip one byte inside frame 5 (contentBlockStop, after the three deltas).
  const std::size_t at = frame_offset(r.body, 5) + 40;
  r.body[at] = static_cast<char>(r.body[at] ^ 0x5A);
  const outcome o = observe_all_ways(r);
  EXPECT_GT(o.decode_errors, 0u);
  EXPECT_FALSE(o.seen);  // the metadata frame after the corruption is never trusted
  const std::string text = "Paris is the capital of France. It sits on the Seine.";
  expect_usage(o.usage, tokens(0, text_estimate(text), 0, 0, 0, estimated));
}

TEST(usage_converse_stream, garbage_bytes_do_not_crash) {
  request r;
  r.op = operation::converse_stream;
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int i = 0; i < 4096; ++i) r.body += static_cast<char>(byte(rng));
  const outcome o = observe_all_ways(r);
  EXPECT_GT(o.decode_errors, 0u);
  EXPECT_EQ(static_cast<int>(o.usage.source), static_cast<int>(estimated));
}

// ---------------------------------------------------------------------------------------------
// InvokeModel

TEST(usage_invoke, headers_win_over_body) {
  request r;
  r.op = operation::invoke_model;
  r.body = read_fixture("invoke_anthropic.json");
  r.headers["x-amzn-bedrock-input-token-count"] = "30";
  r.headers["x-amzn-bedrock-output-token-count"] = "60";
  r.headers["x-amzn-bedrock-cache-read-input-token-count"] = "4100";
  r.headers["x-amzn-bedrock-cache-write-input-token-count"] = "3000";
  const outcome o = observe_all_ways(r);
  // Counts from the headers; only the 1-hour share of the cache write comes from the body.
  expect_usage(o.usage, tokens(30, 60, 4100, 3000, 2000, reported));
  EXPECT_TRUE(o.seen);
}

TEST(usage_invoke, cache_counts_missing_from_headers_come_from_body) {
  request r;
  r.op = operation::invoke_model;
  r.body = read_fixture("invoke_anthropic.json");
  r.headers["x-amzn-bedrock-input-token-count"] = "25";
  r.headers["x-amzn-bedrock-output-token-count"] = "57";
  expect_usage(observe_all_ways(r).usage, tokens(25, 57, 4000, 3000, 2000, reported));
}

TEST(usage_invoke, headers_alone_when_the_body_has_no_usage) {
  request r;
  r.op = operation::invoke_model;
  r.model = "mistral.mistral-7b-instruct-v0:2";
  r.body = read_fixture("invoke_mistral_text.json");
  r.headers["x-amzn-bedrock-input-token-count"] = " 19 ";
  r.headers["x-amzn-bedrock-output-token-count"] = "0";  // a reported zero stays zero
  r.headers["x-amzn-bedrock-cache-read-input-token-count"] = "0";
  r.headers["x-amzn-bedrock-cache-write-input-token-count"] = "0";
  r.headers["x-amzn-bedrock-service-tier"] = "default";
  const outcome o = observe_all_ways(r);
  expect_usage(o.usage, tokens(19, 0, 0, 0, 0, reported));
  EXPECT_EQ(o.tier, "default");
}

TEST(usage_invoke, malformed_count_header_is_ignored) {
  request r;
  r.op = operation::invoke_model;
  r.model = "meta.llama3-8b-instruct-v1:0";
  r.body = read_fixture("invoke_llama.json");
  r.headers["x-amzn-bedrock-input-token-count"] = "12abc";
  expect_usage(observe_all_ways(r).usage, tokens(20, 35, 0, 0, 0, reported));
}

struct family_case {
  const char* model;
  const char* fixture;
  token_usage want;
};

TEST(usage_invoke, family_body_usage) {
  const family_case cases[] = {
      {"us.anthropic.claude-sonnet-4-20250514-v1:0", "invoke_anthropic.json",
       tokens(25, 57, 4000, 3000, 2000, reported)},
      {"amazon.nova-pro-v1:0", "invoke_nova.json", tokens(17, 42, 100, 200, 0, reported)},
      {"amazon.titan-text-express-v1", "invoke_titan_text.json", tokens(8, 42, 0, 0, 0, reported)},
      {"amazon.titan-embed-text-v2:0", "invoke_titan_embed.json", tokens(7, 0, 0, 0, 0, reported)},
      {"meta.llama3-1-70b-instruct-v1:0", "invoke_llama.json", tokens(20, 35, 0, 0, 0, reported)},
      {"mistral.mistral-large-2407-v1:0", "invoke_mistral_chat.json",
       tokens(30, 11, 0, 0, 0, reported)},
      {"cohere.command-r-v1:0", "invoke_cohere_command_r.json", tokens(40, 12, 0, 0, 0, reported)},
      {"cohere.embed-english-v3", "invoke_cohere_embed.json", tokens(6, 0, 0, 0, 0, reported)},
      // prompt_tokens (120) includes the 100 cached; ours excludes them.
      {"openai.gpt-oss-120b-1:0", "invoke_openai.json", tokens(20, 33, 100, 0, 0, reported)},
      {"ai21.jamba-1-5-mini-v1:0", "invoke_jamba.json", tokens(22, 7, 0, 0, 0, reported)},
  };
  for (const family_case& c : cases) {
    SCOPED_TRACE(c.fixture);
    request r;
    r.op = operation::invoke_model;
    r.model = c.model;
    r.body = read_fixture(c.fixture);
    const outcome o = observe_all_ways(r);
    expect_usage(o.usage, c.want);
    EXPECT_TRUE(o.seen);
    // An application inference profile hides the family: every shape is tried, same answer.
    r.model = app_profile_arn;
    expect_usage(observe_all_ways(r).usage, c.want);
  }
}

TEST(usage_invoke, application_inference_profile_arn_with_anthropic_body) {
  request r;
  r.op = operation::invoke_model;
  r.model = app_profile_arn;
  r.body = read_fixture("invoke_anthropic.json");
  const outcome o = observe_all_ways(r);
  expect_usage(o.usage, tokens(25, 57, 4000, 3000, 2000, reported));
  EXPECT_TRUE(o.seen);
}

TEST(usage_invoke, body_without_usage_and_no_headers_is_estimated) {
  {
    request r;
    r.op = operation::invoke_model;
    r.model = "mistral.mistral-7b-instruct-v0:2";
    r.body = read_fixture("invoke_mistral_text.json");
    const outcome o = observe_all_ways(r);
    expect_usage(o.usage,
                 tokens(0, text_estimate(" The answer is forty-two, according to the guide."), 0, 0,
                        0, estimated));
    EXPECT_FALSE(o.seen);
  }
  {
    request r;
    r.op = operation::invoke_model;
    r.model = "us.deepseek.r1-v1:0";
    r.body = read_fixture("invoke_deepseek_r1.json");
    expect_usage(observe_all_ways(r).usage,
                 tokens(0, text_estimate("<think>Short reasoning.</think> The answer is 7."), 0, 0,
                        0, estimated));
  }
}

// ---------------------------------------------------------------------------------------------
// InvokeModelWithResponseStream

request invoke_stream(std::string model, std::string body, bool complete = true) {
  request r;
  r.op = operation::invoke_model_with_response_stream;
  r.model = std::move(model);
  r.body = std::move(body);
  r.complete = complete;
  return r;
}

TEST(usage_invoke_stream, anthropic_invocation_metrics) {
  const auto r = invoke_stream("anthropic.claude-3-5-haiku-20241022-v1:0",
                               encode_stream(read_events("invoke_stream_anthropic.events")));
  const outcome o = observe_all_ways(r);
  // Counts from the invocation metrics; the 1h share from message_start.
  expect_usage(o.usage, tokens(25, 57, 4000, 3000, 2000, reported));
  EXPECT_TRUE(o.seen);
  EXPECT_EQ(o.decode_errors, 0u);
}

TEST(usage_invoke_stream, invocation_metrics_are_authoritative) {
  std::vector<stream_line> lines = read_events("invoke_stream_anthropic.events");
  lines[6].json = R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},)"
                  R"("usage":{"output_tokens":10}})";
  const auto r = invoke_stream("anthropic.claude-3-5-haiku-20241022-v1:0", encode_stream(lines));
  expect_usage(observe_all_ways(r).usage, tokens(25, 57, 4000, 3000, 2000, reported));
}

TEST(usage_invoke_stream, anthropic_events_without_metrics) {
  const auto lines = read_events("invoke_stream_anthropic.events");
  const auto r = invoke_stream("anthropic.claude-3-5-haiku-20241022-v1:0",
                               encode_stream(lines, lines.size() - 1));
  const outcome o = observe_all_ways(r);
  expect_usage(o.usage, tokens(25, 57, 4000, 3000, 2000, reported));
  EXPECT_TRUE(o.seen);
}

TEST(usage_invoke_stream, aborted_before_metrics_keeps_reported_input_and_estimates_output) {
  const auto r = invoke_stream("anthropic.claude-3-5-haiku-20241022-v1:0",
                               encode_stream(read_events("invoke_stream_anthropic.events"), 4),
                               /*complete=*/false);
  const outcome o = observe_all_ways(r);
  // message_start reported input and cache counts: kept. Output from the two deltas' text.
  const std::uint64_t out = text_estimate("Here is the summary you asked for, in three");
  expect_usage(o.usage, tokens(25, out, 4000, 3000, 2000, estimated));
  EXPECT_FALSE(o.seen);
}

TEST(usage_invoke_stream, reported_then_client_abort_stays_reported) {
  const auto r = invoke_stream("anthropic.claude-3-5-haiku-20241022-v1:0",
                               encode_stream(read_events("invoke_stream_anthropic.events")),
                               /*complete=*/false);
  expect_usage(observe_all_ways(r).usage, tokens(25, 57, 4000, 3000, 2000, reported));
}

TEST(usage_invoke_stream, exception_mid_stream_is_estimated) {
  const auto r =
      invoke_stream("us.anthropic.claude-3-7-sonnet-20250219-v1:0",
                    encode_stream(read_events("invoke_stream_anthropic_exception.events")));
  const outcome o = observe_all_ways(r);
  const std::uint64_t out = text_estimate("An answer that is cut off in the middle of a");
  expect_usage(o.usage, tokens(310, out, 0, 0, 0, estimated));
  EXPECT_EQ(o.decode_errors, 0u);
}

TEST(usage_invoke_stream, nova_metadata_event) {
  const auto r = invoke_stream("us.amazon.nova-lite-v1:0",
                               encode_stream(read_events("invoke_stream_nova.events")));
  const outcome o = observe_all_ways(r);
  expect_usage(o.usage, tokens(17, 42, 100, 200, 0, reported));
  EXPECT_TRUE(o.seen);
}

TEST(usage_invoke_stream, titan_running_counts_final_with_completion_reason) {
  const auto lines = read_events("invoke_stream_titan.events");
  const auto full = invoke_stream("amazon.titan-text-premier-v1:0", encode_stream(lines));
  expect_usage(observe_all_ways(full).usage, tokens(8, 7, 0, 0, 0, reported));
  // Cut before the last chunk: the running count (5) is a floor for the estimate.
  const auto cut = invoke_stream("amazon.titan-text-premier-v1:0", encode_stream(lines, 2), false);
  const std::uint64_t from_text = text_estimate("The first completion is");
  expect_usage(observe_all_ways(cut).usage,
               tokens(8, std::max<std::uint64_t>(5, from_text), 0, 0, 0, estimated));
}

TEST(usage_invoke_stream, llama_invocation_metrics) {
  const auto r = invoke_stream("meta.llama3-1-8b-instruct-v1:0",
                               encode_stream(read_events("invoke_stream_llama.events")));
  expect_usage(observe_all_ways(r).usage, tokens(20, 35, 0, 0, 0, reported));
}

TEST(usage_invoke_stream, llama_cut_keeps_prompt_count) {
  const auto r = invoke_stream("meta.llama3-1-8b-instruct-v1:0",
                               encode_stream(read_events("invoke_stream_llama.events"), 2), false);
  // The running generation_token_count (5) and the text estimate: the larger wins.
  const std::uint64_t from_text = text_estimate("Llamas are domesticated");
  expect_usage(observe_all_ways(r).usage,
               tokens(20, std::max<std::uint64_t>(5, from_text), 0, 0, 0, estimated));
}

TEST(usage_invoke_stream, openai_usage_chunk) {
  const auto r = invoke_stream("openai.gpt-oss-20b-1:0",
                               encode_stream(read_events("invoke_stream_openai.events")));
  expect_usage(observe_all_ways(r).usage, tokens(20, 33, 100, 0, 0, reported));
}

TEST(usage_invoke_stream, application_inference_profile_with_anthropic_stream) {
  const auto lines = read_events("invoke_stream_anthropic.events");
  const auto r = invoke_stream(app_profile_arn, encode_stream(lines, lines.size() - 1));
  expect_usage(observe_all_ways(r).usage, tokens(25, 57, 4000, 3000, 2000, reported));
}

TEST(usage_invoke_stream, bad_chunk_payload_is_counted_and_skipped) {
  const auto lines = read_events("invoke_stream_anthropic.events");
  std::string body = encode_stream(lines, 3);
  body += encode_event("chunk", R"({"bytes":"@@not base64@@","p":"x"})");
  body += encode_event("chunk", R"({"bytes":"e30=","p":"x"})");  // "{}": valid, no usage
  body += encode_event("chunk", "not json at all");
  for (std::size_t i = 3; i < lines.size(); ++i) {
    body += encode_event("chunk", wrap_chunk(lines[i].json));
  }
  const outcome o =
      observe_all_ways(invoke_stream("anthropic.claude-3-5-haiku-20241022-v1:0", body));
  EXPECT_EQ(o.decode_errors, 2u);
  expect_usage(o.usage, tokens(25, 57, 4000, 3000, 2000, reported));
}

TEST(usage_invoke_stream, corrupt_frame_stops_metering_without_crashing) {
  std::string body = encode_stream(read_events("invoke_stream_anthropic.events"));
  const std::size_t at = frame_offset(body, 4) + 60;  // inside the third delta's frame
  body[at] = static_cast<char>(body[at] ^ 0x01);
  const outcome o =
      observe_all_ways(invoke_stream("anthropic.claude-3-5-haiku-20241022-v1:0", body));
  EXPECT_EQ(o.decode_errors, 1u);
  EXPECT_FALSE(o.seen);
  const std::uint64_t out = text_estimate("Here is the summary you asked for, in three");
  expect_usage(o.usage, tokens(25, out, 4000, 3000, 2000, estimated));
}

TEST(usage_invoke_stream, usage_seen_turns_true_when_the_final_count_arrives) {
  const auto lines = read_events("invoke_stream_anthropic.events");
  usage_observer obs(operation::invoke_model_with_response_stream,
                     "anthropic.claude-3-5-haiku-20241022-v1:0");
  obs.on_head(200, {});
  for (std::size_t i = 0; i < lines.size(); ++i) {
    obs.on_body(encode_event("chunk", wrap_chunk(lines[i].json)));
    // message_delta (index 6) is the first final count; message_start's input alone is not.
    EXPECT_EQ(obs.usage_seen(), i >= 6) << "after chunk " << i;
  }
  EXPECT_EQ(static_cast<int>(obs.usage().source), static_cast<int>(none));  // not settled yet
  obs.finish(true);
  expect_usage(obs.usage(), tokens(25, 57, 4000, 3000, 2000, reported));
  obs.finish(false);  // idempotent
  EXPECT_EQ(static_cast<int>(obs.usage().source), static_cast<int>(reported));
}

// ---------------------------------------------------------------------------------------------
// InvokeModelWithBidirectionalStream (Nova Sonic)

/// A Nova Sonic answer: `chunk` lines wrapped as `{"bytes":"<base64>"}`, exception lines as
/// exception frames; the first `count` lines only.
std::string encode_bidi(const std::vector<stream_line>& lines,
                        std::size_t count = static_cast<std::size_t>(-1)) {
  std::string out;
  for (std::size_t i = 0; i < lines.size() && i < count; ++i) {
    const stream_line& l = lines[i];
    out += l.exception ? encode_exception(l.type, l.json)
                       : encode_event(l.type, R"({"bytes":")" + base64(l.json) + R"("})");
  }
  return out;
}

request bidi(std::string body, bool complete = true) {
  request r;
  r.op = operation::invoke_model_with_bidirectional_stream;
  r.model = "amazon.nova-sonic-v1:0";
  r.body = std::move(body);
  r.complete = complete;
  return r;
}

token_usage sonic(std::uint64_t speech_in, std::uint64_t text_in, std::uint64_t speech_out,
                  std::uint64_t text_out, usage_source source) {
  token_usage u = tokens(speech_in + text_in, speech_out + text_out, 0, 0, 0, source);
  u.speech_input = speech_in;
  u.speech_output = speech_out;
  return u;
}

/// Observes `r` whole, in 1-byte and random chunks, and cut in two at every byte: all agree.
outcome observe_every_split(const request& r) {
  const outcome whole = observe_all_ways(r);
  for (std::size_t i = 1; i < r.body.size(); ++i) {
    const outcome o = observe(r, chunking::two_pieces, 0, i);
    if (describe(o) != describe(whole)) {
      ADD_FAILURE() << "cut at byte " << i << ": " << describe(o) << "; whole: " << describe(whole);
      break;
    }
  }
  return whole;
}

// The fixture's text: a USER transcript and the assistant's answer (textOutput counts both).
constexpr std::string_view sonic_text = "What is the weather like today?It is sunny and warm.";

TEST(usage_bidi, last_usage_event_is_the_session_usage_split_by_speech_and_text) {
  const auto r = bidi(encode_bidi(read_events("bidi_nova_sonic.events")));
  const outcome o = observe_every_split(r);
  // The last usageEvent's details.total (the earlier two are running totals).
  expect_usage(o.usage, sonic(1500, 45, 2400, 80, reported));
  EXPECT_TRUE(o.seen);
  EXPECT_EQ(o.stop, "end_turn");  // completionEnd's END_TURN, not a contentEnd's PARTIAL_TURN
  EXPECT_EQ(o.decode_errors, 0u);
  EXPECT_EQ(o.exception, "");
  EXPECT_EQ(o.text_bytes, sonic_text.size());
}

TEST(usage_bidi, usage_seen_only_once_a_usage_event_follows_completion_end) {
  const auto lines = read_events("bidi_nova_sonic.events");
  usage_observer obs(operation::invoke_model_with_bidirectional_stream, "amazon.nova-sonic-v1:0");
  obs.on_head(200, {});
  for (std::size_t i = 0; i < lines.size(); ++i) {
    obs.on_body(encode_bidi({lines[i]}));
    // usageEvents at 4 and 11 are running totals; completionEnd is 12; the final count 13.
    EXPECT_EQ(obs.usage_seen(), i >= 13) << "after event " << i;
  }
  obs.finish(true);
  expect_usage(obs.usage(), sonic(1500, 45, 2400, 80, reported));
}

TEST(usage_bidi, cut_stream_is_estimated_at_the_last_running_totals) {
  const auto lines = read_events("bidi_nova_sonic.events");
  // Cut after the second usageEvent, before completionEnd: Bedrock billed at least that much.
  const outcome o = observe_every_split(bidi(encode_bidi(lines, 12), /*complete=*/false));
  expect_usage(o.usage, sonic(1200, 40, 2000, 70, estimated));
  EXPECT_FALSE(o.seen);
  EXPECT_EQ(o.stop, "");
  // The client went away, but the proxy drained the session to its final usageEvent (after
  // completionEnd): Bedrock's own final count, reported as for any drained stream.
  expect_usage(observe_all_ways(bidi(encode_bidi(lines), false)).usage,
               sonic(1500, 45, 2400, 80, reported));
}

TEST(usage_bidi, cut_before_any_usage_event_is_estimated_from_text) {
  const auto lines = read_events("bidi_nova_sonic.events");
  const outcome o = observe_every_split(bidi(encode_bidi(lines, 4), /*complete=*/false));
  // Output from the one transcript seen (31 bytes / 4, rounded up); no speech can be estimated.
  expect_usage(o.usage,
               sonic(0, 0, 0, text_estimate("What is the weather like today?"), estimated));
  EXPECT_EQ(o.text_bytes, 31u);
}

TEST(usage_bidi, exception_event_ends_the_stream_estimated_and_surfaces) {
  auto lines = read_events("bidi_nova_sonic.events");
  lines.resize(12);
  lines.push_back({"modelStreamErrorException", R"({"message":"The model failed."})", true});
  const outcome o = observe_every_split(bidi(encode_bidi(lines)));
  expect_usage(o.usage, sonic(1200, 40, 2000, 70, estimated));
  EXPECT_EQ(o.exception, "modelStreamErrorException");
  EXPECT_FALSE(o.seen);
  EXPECT_EQ(o.decode_errors, 0u);
}

TEST(usage_bidi, totals_without_details_are_counted_as_speech) {
  std::vector<stream_line> lines{
      {"chunk", R"({"event":{"completionEnd":{"stopReason":"INTERRUPTED"}}})"},
      {"chunk", R"({"event":{"usageEvent":{"totalInputTokens":900,"totalOutputTokens":300,)"
                R"("totalTokens":1200}}})"}};
  const outcome o = observe_all_ways(bidi(encode_bidi(lines)));
  expect_usage(o.usage, sonic(900, 0, 300, 0, reported));
  EXPECT_EQ(o.stop, "other");
  // details for one direction only: the other falls back to its total.
  lines[1].json = R"({"event":{"usageEvent":{"details":{"total":{"output":{"speechTokens":250,)"
                  R"("textTokens":50}}},"totalInputTokens":900,"totalOutputTokens":300}}})";
  expect_usage(observe_all_ways(bidi(encode_bidi(lines))).usage, sonic(900, 0, 250, 50, reported));
}

TEST(usage_bidi, malformed_bytes_are_counted_and_skipped) {
  auto lines = read_events("bidi_nova_sonic.events");
  std::string body = encode_bidi(lines, 12);
  body += encode_event("chunk", R"({"bytes":"%%% not base64 %%%"})");
  body += encode_event("chunk",
                       R"({"bytes":")" + base64(R"({"event":{"usageEvent":{"total)") + R"("})");
  body += encode_bidi({lines[12], lines[13]});
  const outcome o = observe_every_split(bidi(body));
  // The later usageEvent still counts, but what was skipped might have been one: estimated.
  expect_usage(o.usage, sonic(1500, 45, 2400, 80, estimated));
  EXPECT_EQ(o.decode_errors, 2u);
  EXPECT_TRUE(o.seen);
  // Garbage instead of frames stops metering without a crash.
  const outcome g = observe_all_ways(bidi(std::string(64, '\x7f')));
  EXPECT_EQ(g.decode_errors, 1u);
  EXPECT_EQ(static_cast<int>(g.usage.source), static_cast<int>(estimated));
}

TEST(usage_bidi, non_2xx_bills_nothing) {
  request r = bidi(encode_bidi(read_events("bidi_nova_sonic.events")));
  r.status = 400;
  expect_usage(observe_all_ways(r).usage, sonic(0, 0, 0, 0, none));
}

// ---------------------------------------------------------------------------------------------
// Stop reason

/// `text` with the first `from` replaced by `to` (the fixture must contain `from`).
std::string replaced(std::string text, std::string_view from, std::string_view to) {
  const std::size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "fixture lacks " << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

/// The normalised stop reason of `r`. Everything the observer reports must agree whole, in 1-byte
/// and random chunks, and with the body cut in two at every byte.
std::string stop_of(const request& r) {
  const outcome whole = observe_all_ways(r);
  for (std::size_t i = 1; i < r.body.size(); ++i) {
    const outcome o = observe(r, chunking::two_pieces, 0, i);
    if (describe(o) != describe(whole)) {
      ADD_FAILURE() << "cut at byte " << i << ": " << describe(o) << "; whole: " << describe(whole);
      break;
    }
  }
  return whole.stop;
}

request invoke_body(std::string model, std::string body) {
  request r;
  r.op = operation::invoke_model;
  r.model = std::move(model);
  r.body = std::move(body);
  return r;
}

/// A raw value and the normalised one it must give.
struct stop_case {
  const char* raw;
  const char* want;
};

/// For each case: the fixture with `from` replaced by `"<raw>"` must give `want`.
void expect_stops(request r, std::string_view from, std::initializer_list<stop_case> cases) {
  const std::string original = r.body;
  for (const stop_case& c : cases) {
    SCOPED_TRACE(c.raw);
    r.body = replaced(original, from, "\"" + std::string(c.raw) + "\"");
    EXPECT_EQ(stop_of(r), c.want);
  }
}

TEST(usage_stop_reason, converse_body) {
  request r;
  r.body = read_fixture("converse_cache.json");
  EXPECT_EQ(stop_of(r), "end_turn");
  r.body = read_fixture("converse_zero_output.json");
  EXPECT_EQ(stop_of(r), "guardrail_intervened");
  // Every value of the StopReason enum in botocore's model (tests/data/bedrock/).
  r.body = read_fixture("converse_cache.json");
  expect_stops(r, "\"end_turn\"",
               {{"end_turn", "end_turn"},
                {"tool_use", "tool_use"},
                {"max_tokens", "max_tokens"},
                {"stop_sequence", "stop_sequence"},
                {"guardrail_intervened", "guardrail_intervened"},
                {"content_filtered", "content_filtered"},
                {"malformed_model_output", "other"},
                {"malformed_tool_use", "other"},
                {"model_context_window_exceeded", "other"}});
}

TEST(usage_stop_reason, converse_stream_message_stop_event) {
  request r;
  r.op = operation::converse_stream;
  std::vector<stream_line> lines = read_events("converse_stream.events");
  r.body = encode_stream(lines);
  EXPECT_EQ(stop_of(r), "end_turn");
  r.body = encode_stream(lines, 7);  // messageStop, then cut before metadata
  r.complete = false;
  EXPECT_EQ(stop_of(r), "end_turn");
  r.body = encode_stream(lines, 6);  // cut before messageStop
  EXPECT_EQ(stop_of(r), "");
  r.complete = true;
  lines[6].json = R"({"stopReason":"tool_use","additionalModelResponseFields":{}})";
  r.body = encode_stream(lines);
  EXPECT_EQ(stop_of(r), "tool_use");
  r.body = encode_stream(read_events("converse_stream_exception.events"));
  EXPECT_EQ(stop_of(r), "");
}

TEST(usage_stop_reason, anthropic_invoke_model) {
  request r = invoke_body("anthropic.claude-3-5-sonnet-20240620-v1:0",
                          read_fixture("invoke_anthropic.json"));
  EXPECT_EQ(stop_of(r), "end_turn");
  expect_stops(r, "\"end_turn\"",
               {{"max_tokens", "max_tokens"},
                {"stop_sequence", "stop_sequence"},
                {"tool_use", "tool_use"},
                {"refusal", "content_filtered"},
                {"pause_turn", "other"}});
  r.model = app_profile_arn;  // family unknown: every path is still read
  EXPECT_EQ(stop_of(r), "end_turn");
}

TEST(usage_stop_reason, anthropic_stream_message_delta) {
  const std::string model = "anthropic.claude-3-5-haiku-20241022-v1:0";
  std::vector<stream_line> lines = read_events("invoke_stream_anthropic.events");
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines))), "end_turn");
  // message_start's `stop_reason: null` says nothing; cut before message_delta: empty.
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines, 6), false)), "");
  lines[6].json = R"({"type":"message_delta","delta":{"stop_reason":"max_tokens",)"
                  R"("stop_sequence":null},"usage":{"output_tokens":57}})";
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines))), "max_tokens");
  lines[6].json = R"({"type":"message_delta","delta":{"stop_reason":"refusal"}})";
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines))), "content_filtered");
  const auto cut = read_events("invoke_stream_anthropic_exception.events");
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(cut))), "");
}

TEST(usage_stop_reason, nova_invoke_model_and_stream) {
  const std::string model = "us.amazon.nova-lite-v1:0";
  const request r = invoke_body(model, read_fixture("invoke_nova.json"));
  EXPECT_EQ(stop_of(r), "end_turn");
  expect_stops(r, "\"end_turn\"",
               {{"max_tokens", "max_tokens"},
                {"tool_use", "tool_use"},
                {"content_filtered", "content_filtered"},
                {"guardrail_intervened", "guardrail_intervened"}});
  std::vector<stream_line> lines = read_events("invoke_stream_nova.events");
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines))), "end_turn");
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines, 4), false)), "");
  lines[4].json = R"({"messageStop":{"stopReason":"max_tokens"}})";
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines))), "max_tokens");
}

TEST(usage_stop_reason, titan_invoke_model_and_stream) {
  const std::string model = "amazon.titan-text-express-v1";
  // Two results: FINISH, then LENGTH. The last one wins.
  const request r = invoke_body(model, read_fixture("invoke_titan_text.json"));
  EXPECT_EQ(stop_of(r), "max_tokens");
  expect_stops(r, "\"LENGTH\"",
               {{"FINISH", "end_turn"},
                {"STOP_CRITERIA_MET", "stop_sequence"},
                {"CONTENT_FILTERED", "content_filtered"},
                {"RAG_QUERY_WHEN_RAG_DISABLED", "other"}});
  EXPECT_EQ(
      stop_of(invoke_body("amazon.titan-embed-text-v2:0", read_fixture("invoke_titan_embed.json"))),
      "");
  const std::vector<stream_line> lines = read_events("invoke_stream_titan.events");
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines))), "end_turn");
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines, 2), false)), "");  // all null
  for (const stop_case c :
       {stop_case{"LENGTH", "max_tokens"}, stop_case{"STOP_CRITERIA_MET", "stop_sequence"},
        stop_case{"CONTENT_FILTERED", "content_filtered"}}) {
    SCOPED_TRACE(c.raw);
    std::vector<stream_line> changed = lines;
    changed[2].json = replaced(lines[2].json, "\"FINISH\"", "\"" + std::string(c.raw) + "\"");
    EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(changed))), c.want);
  }
}

TEST(usage_stop_reason, llama_invoke_model_and_stream) {
  const std::string model = "meta.llama3-1-70b-instruct-v1:0";
  const request r = invoke_body(model, read_fixture("invoke_llama.json"));
  EXPECT_EQ(stop_of(r), "end_turn");
  expect_stops(r, "\"stop\"", {{"length", "max_tokens"}, {"stop", "end_turn"}});
  std::vector<stream_line> lines = read_events("invoke_stream_llama.events");
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines))), "end_turn");
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines, 2), false)), "");  // all null
  lines[2].json = replaced(lines[2].json, "\"stop\"", "\"length\"");
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines))), "max_tokens");
}

TEST(usage_stop_reason, mistral_text_chat_and_stream) {
  const std::string model = "mistral.mistral-large-2407-v1:0";
  const request text = invoke_body(model, read_fixture("invoke_mistral_text.json"));
  EXPECT_EQ(stop_of(text), "end_turn");
  expect_stops(text, "\"stop\"", {{"length", "max_tokens"}, {"tool_calls", "tool_use"}});
  // Bedrock's Mistral chat body says `stop_reason`; the chat-completions spelling is read too.
  const request chat = invoke_body(model, read_fixture("invoke_mistral_chat.json"));
  EXPECT_EQ(stop_of(chat), "end_turn");
  expect_stops(
      chat, "\"stop_reason\": \"stop\"",
      {{"finish_reason\": \"length", "max_tokens"}, {"finish_reason\": \"tool_calls", "tool_use"}});
  std::vector<stream_line> lines{
      {"chunk", R"({"outputs":[{"text":"Bonjour","stop_reason":null}]})"},
      {"chunk", R"({"outputs":[{"text":" !","stop_reason":"length"}]})"},
  };
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines))), "max_tokens");
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines, 1), false)), "");
}

TEST(usage_stop_reason, cohere_command_r_and_stream) {
  const std::string model = "cohere.command-r-v1:0";
  const request r = invoke_body(model, read_fixture("invoke_cohere_command_r.json"));
  EXPECT_EQ(stop_of(r), "end_turn");
  expect_stops(r, "\"COMPLETE\"",
               {{"MAX_TOKENS", "max_tokens"},
                {"ERROR_TOXIC", "content_filtered"},
                {"STOP_SEQUENCE", "stop_sequence"},
                {"ERROR_LIMIT", "other"},
                {"USER_CANCEL", "other"},
                {"ERROR", "other"}});
  EXPECT_EQ(
      stop_of(invoke_body("cohere.embed-english-v3", read_fixture("invoke_cohere_embed.json"))),
      "");
  const std::vector<stream_line> lines{
      {"chunk", R"({"is_finished":false,"event_type":"text-generation","text":"Hi."})"},
      {"chunk", R"({"is_finished":true,"event_type":"stream-end","finish_reason":"MAX_TOKENS",)"
                R"("response":{"text":"Hi.","meta":{"billed_units":{"input_tokens":4,)"
                R"("output_tokens":2}}}})"},
  };
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines))), "max_tokens");
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines, 1), false)), "");
}

TEST(usage_stop_reason, openai_deepseek_and_jamba) {
  const request r = invoke_body("openai.gpt-oss-120b-1:0", read_fixture("invoke_openai.json"));
  EXPECT_EQ(stop_of(r), "end_turn");
  expect_stops(r, "\"stop\"",
               {{"length", "max_tokens"},
                {"tool_calls", "tool_use"},
                {"function_call", "tool_use"},
                {"content_filter", "content_filtered"}});
  const request jamba = invoke_body("ai21.jamba-1-5-mini-v1:0", read_fixture("invoke_jamba.json"));
  EXPECT_EQ(stop_of(jamba), "end_turn");
  expect_stops(jamba, "\"stop\"", {{"length", "max_tokens"}});
  // DeepSeek R1 text completion: `choices[].stop_reason`.
  const request r1 = invoke_body("us.deepseek.r1-v1:0", read_fixture("invoke_deepseek_r1.json"));
  EXPECT_EQ(stop_of(r1), "end_turn");
  expect_stops(r1, "\"stop\"", {{"length", "max_tokens"}});
  const std::string model = "openai.gpt-oss-20b-1:0";
  const std::vector<stream_line> lines = read_events("invoke_stream_openai.events");
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines))), "end_turn");
  EXPECT_EQ(stop_of(invoke_stream(model, encode_stream(lines, 2), false)), "");
}

TEST(usage_stop_reason, ai21_jurassic_finish_reason) {
  const request r = invoke_body("ai21.j2-ultra-v1", read_fixture("invoke_ai21_jurassic.json"));
  EXPECT_EQ(stop_of(r), "end_turn");
  expect_stops(r, "\"endoftext\"", {{"length", "max_tokens"}, {"stop", "end_turn"}});
}

TEST(usage_stop_reason, unknown_values_are_other_and_case_is_ignored) {
  request r;
  r.body = read_fixture("converse_cache.json");
  expect_stops(r, "\"end_turn\"",
               {{"END_TURN", "end_turn"},
                {"Tool_Use", "tool_use"},
                {"end\\u005fturn", "end_turn"},  // an escaped value is read unescaped
                {"a_reason_added_next_year", "other"},
                {"end_turn_and_a_value_longer_than_any_we_keep", "other"},
                {"end turn", "other"},
                {"", ""}});  // an empty value says nothing
}

TEST(usage_stop_reason, non_2xx_says_nothing) {
  request r;
  r.status = 400;
  r.body = read_fixture("converse_cache.json");
  EXPECT_EQ(stop_of(r), "");
  r = invoke_body("anthropic.claude-3-5-sonnet-20240620-v1:0",
                  read_fixture("invoke_anthropic.json"));
  r.status = 500;
  EXPECT_EQ(stop_of(r), "");
  request s = invoke_stream("anthropic.claude-3-5-haiku-20241022-v1:0",
                            encode_stream(read_events("invoke_stream_anthropic.events")));
  s.status = 429;
  EXPECT_EQ(stop_of(s), "");
  r.op = operation::count_tokens;
  r.status = 200;
  EXPECT_EQ(stop_of(r), "");
}

TEST(usage_stop_reason, invoke_model_body_is_read_even_when_headers_have_every_count) {
  request r = invoke_body("meta.llama3-8b-instruct-v1:0", read_fixture("invoke_llama.json"));
  r.headers["x-amzn-bedrock-input-token-count"] = "21";
  r.headers["x-amzn-bedrock-output-token-count"] = "36";
  r.headers["x-amzn-bedrock-cache-read-input-token-count"] = "0";
  r.headers["x-amzn-bedrock-cache-write-input-token-count"] = "0";
  EXPECT_EQ(stop_of(r), "end_turn");
  expect_usage(observe(r, chunking::whole).usage, tokens(21, 36, 0, 0, 0, reported));
}

TEST(usage_stop_reason, malformed_cut_and_oversized_bodies) {
  request r;
  // A syntax error inside the value: never completed, whatever the chunking.
  r.body = "{\"stopReason\":\"end_\x01turn\",\"usage\":{\"inputTokens\":1,\"outputTokens\":2}}";
  EXPECT_EQ(stop_of(r), "");
  // A syntax error after it: what was read stands.
  r.body = R"({"stopReason":"max_tokens","usage":{"inputTokens":x}})";
  EXPECT_EQ(stop_of(r), "max_tokens");
  // A body cut inside the value.
  const std::string full = read_fixture("converse_cache.json");
  r.body = full.substr(0, full.find("end_turn") + 5);
  r.complete = false;
  EXPECT_EQ(stop_of(r), "");
  // Past the parse cap whatever the body said is dropped, as its usage is.
  r.complete = true;
  r.body = R"({"stopReason":"end_turn","output":{"message":{"content":[{"text":")" +
           std::string(9u * 1024u * 1024u, 'a') + R"("}]}}})";
  const outcome whole = observe(r, chunking::whole);
  EXPECT_EQ(whole.stop, "");
  EXPECT_EQ(describe(observe(r, chunking::random, 5)), describe(whole));
}

TEST(usage_stop_reason, live_while_the_stream_passes) {
  const auto lines = read_events("invoke_stream_anthropic.events");
  usage_observer obs(operation::invoke_model_with_response_stream,
                     "anthropic.claude-3-5-haiku-20241022-v1:0");
  obs.on_head(200, {});
  for (std::size_t i = 0; i < lines.size(); ++i) {
    obs.on_body(encode_event("chunk", wrap_chunk(lines[i].json)));
    EXPECT_EQ(obs.stop_reason(), i >= 6 ? "end_turn" : "") << "after chunk " << i;
  }
  obs.finish(true);
  EXPECT_EQ(obs.stop_reason(), "end_turn");
}

// ---------------------------------------------------------------------------------------------
// Not billed

TEST(usage_not_billed, non_2xx_bills_nothing) {
  {
    request r;
    r.status = 400;
    r.body = read_fixture("converse_cache.json");  // even if it looked like usage
    const outcome o = observe_all_ways(r);
    expect_usage(o.usage, tokens(0, 0, 0, 0, 0, none));
    EXPECT_FALSE(o.seen);
  }
  {
    request r;
    r.op = operation::invoke_model;
    r.status = 500;
    r.headers["x-amzn-bedrock-input-token-count"] = "10";
    r.headers["x-amzn-bedrock-output-token-count"] = "10";
    r.body = R"({"message":"Internal server error"})";
    const outcome o = observe_all_ways(r);
    expect_usage(o.usage, tokens(0, 0, 0, 0, 0, none));
    EXPECT_FALSE(o.seen);
  }
  {
    const auto lines = read_events("invoke_stream_anthropic.events");
    request r = invoke_stream("anthropic.claude-3-5-haiku-20241022-v1:0", encode_stream(lines));
    r.status = 429;
    expect_usage(observe_all_ways(r).usage, tokens(0, 0, 0, 0, 0, none));
  }
}

TEST(usage_not_billed, count_tokens_is_not_billed) {
  request r;
  r.op = operation::count_tokens;
  r.body = R"({"inputTokens":1234})";
  const outcome o = observe_all_ways(r);
  expect_usage(o.usage, tokens(0, 0, 0, 0, 0, none));
  EXPECT_FALSE(o.seen);
}

TEST(usage_not_billed, nothing_fed_but_finish) {
  usage_observer obs(operation::converse, "amazon.nova-micro-v1:0");
  obs.finish(false);
  expect_usage(obs.usage(), tokens(0, 0, 0, 0, 0, none));
  EXPECT_EQ(obs.service_tier(), "");
}

TEST(usage_observer, moves_keep_state) {
  usage_observer a(operation::converse, "amazon.nova-micro-v1:0");
  a.on_head(200, {});
  const std::string body = read_fixture("converse_cache.json");
  a.on_body(std::string_view(body).substr(0, 100));
  usage_observer b(std::move(a));
  b.on_body(std::string_view(body).substr(100));
  b.finish(true);
  expect_usage(b.usage(), tokens(12, 14, 1500, 2000, 1200, reported));
}

}  // namespace
}  // namespace bedrock_meter::metering
