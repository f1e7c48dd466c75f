// Google Benchmark micro-benchmarks of the hot pure functions on the proxy's data path.
// Targets: event-stream decoding >= 1 GB/s; SigV4-signing a 1 KiB request <= 5 us.
// Inputs are recorded Bedrock bytes from tests/data and the shipped rate table, so the figures
// describe real traffic, not synthetic best cases.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>

#include "aws/sigv4.hpp"
#include "config/rate_table_loader.hpp"
#include "metering/event_stream.hpp"
#include "metering/rate_table.hpp"
#include "metering/request_body.hpp"
#include "metering/route.hpp"
#include "metering/siphash.hpp"
#include "metering/usage.hpp"

namespace {

using namespace bedrock_meter;

std::string read_file(const std::string& relative) {
  std::ifstream in(std::string(BM_SOURCE_DIR) + "/" + relative, std::ios::binary);
  if (!in) {
    std::cerr << "bm_micro_bench: cannot read " << relative << "\n";
    std::exit(1);
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A long stream made of a recorded ConverseStream repeated: the decoder's steady state.
std::string long_stream() {
  const std::string one = read_file("tests/data/eventstream/converse_stream.bin");
  std::string out;
  while (out.size() < 256 * 1024) out += one;
  return out;
}

// Decoding fed in `chunk`-byte pieces, as socket reads deliver it (chunk 0: one feed).
void bm_event_stream_decode(benchmark::State& state) {
  const std::string bytes = long_stream();
  const auto chunk = static_cast<std::size_t>(state.range(0));
  std::uint64_t messages = 0;
  const metering::event_stream_decoder::callback count =
      [&messages](const metering::event_message& m) { messages += m.payload.empty() ? 0 : 1; };
  for (auto _ : state) {
    metering::event_stream_decoder decoder;
    const std::string_view all = bytes;
    if (chunk == 0) {
      decoder.feed(all, count);
    } else {
      for (std::size_t i = 0; i < all.size(); i += chunk) decoder.feed(all.substr(i, chunk), count);
    }
    if (decoder.error() != metering::event_stream_error::none) state.SkipWithError("decode error");
  }
  benchmark::DoNotOptimize(messages);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(bytes.size()));
}
BENCHMARK(bm_event_stream_decode)->Arg(0)->Arg(16384)->Arg(1460)->Arg(100);

std::string_view no_headers(std::string_view) { return {}; }

// Usage extraction from a non-streaming Converse body (Boost.JSON parse of the answer).
void bm_usage_converse(benchmark::State& state) {
  const std::string body = read_file("tests/data/usage/converse_cache.json");
  const metering::header_lookup headers = no_headers;
  for (auto _ : state) {
    metering::usage_observer obs(metering::operation::converse,
                                 "anthropic.claude-3-5-sonnet-20240620-v1:0");
    obs.on_head(200, headers);
    obs.on_body(body);
    obs.finish(true);
    if (obs.usage().input != 12) state.SkipWithError("wrong usage");
    benchmark::DoNotOptimize(obs.usage());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(body.size()));
}
BENCHMARK(bm_usage_converse);

// Usage extraction from a recorded ConverseStream (event-stream decode + per-event JSON).
void bm_usage_converse_stream(benchmark::State& state) {
  const std::string body = read_file("tests/data/eventstream/converse_stream.bin");
  const metering::header_lookup headers = no_headers;
  for (auto _ : state) {
    metering::usage_observer obs(metering::operation::converse_stream,
                                 "anthropic.claude-3-5-sonnet-20240620-v1:0");
    obs.on_head(200, headers);
    obs.on_body(body);
    obs.finish(true);
    if (!obs.usage_seen()) state.SkipWithError("no usage seen");
    benchmark::DoNotOptimize(obs.usage());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(body.size()));
}
BENCHMARK(bm_usage_converse_stream);

// What the proxy signs upstream: boto3's header set for a Converse call.
aws::sigv4::header_list request_headers(std::size_t body_bytes) {
  return {{"host", "bedrock-runtime.us-east-1.amazonaws.com"},
          {"content-type", "application/json"},
          {"content-length", std::to_string(body_bytes)},
          {"user-agent", "Boto3/1.43.0 md/Botocore#1.43.0 ua/2.1 os/linux lang/python#3.11.2"},
          {"x-amz-date", "20260726T120000Z"}};
}

const std::string kilobyte_body(1024, 'x');
constexpr std::string_view target = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse";

// Signing a 1 KiB request, payload hash included (the whole per-request signing cost).
void bm_sigv4_sign_1kib(benchmark::State& state) {
  const aws::sigv4::credentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                      ""};
  aws::sigv4::signing_options opt;
  opt.region = "us-east-1";
  opt.now = std::chrono::system_clock::now();
  for (auto _ : state) {
    auto headers = request_headers(kilobyte_body.size());
    const std::string hash = aws::sigv4::sha256_hex(kilobyte_body);
    auto parts = aws::sigv4::sign("POST", target, headers, hash, creds, opt);
    benchmark::DoNotOptimize(parts.authorization);
  }
}
BENCHMARK(bm_sigv4_sign_1kib);

// Verifying a client's signature on a 1 KiB request (what every request through the proxy costs).
void bm_sigv4_verify_1kib(benchmark::State& state) {
  const aws::sigv4::credentials creds{"BMAKBENCHCLIENT001", "bench-client-secret-0001", ""};
  const auto now = std::chrono::system_clock::now();
  aws::sigv4::signing_options opt;
  opt.region = "us-east-1";
  opt.now = now;
  auto headers = request_headers(kilobyte_body.size());
  headers.pop_back();  // sign() adds x-amz-date for `now`
  aws::sigv4::sign("POST", target, headers, aws::sigv4::sha256_hex(kilobyte_body), creds, opt);
  const aws::sigv4::issued_key key{creds.secret_access_key, ""};
  const aws::sigv4::key_lookup lookup =
      [&key](std::string_view id) -> const aws::sigv4::issued_key* {
    return id == "BMAKBENCHCLIENT001" ? &key : nullptr;
  };
  aws::sigv4::verify_options vopt;
  vopt.now = now;
  for (auto _ : state) {
    const std::string hash = aws::sigv4::sha256_hex(kilobyte_body);
    auto v = aws::sigv4::verify("POST", target, headers, hash, lookup, vopt);
    if (!v) state.SkipWithError(std::string(aws::sigv4::to_string(v.error)).c_str());
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(bm_sigv4_verify_1kib);

// Price lookup and cost for one answer, against the shipped rate table.
void bm_price(benchmark::State& state) {
  const auto loaded =
      config::load_rate_table_file(std::string(BM_SOURCE_DIR) + "/config/rates/bedrock.yaml");
  if (!loaded.table) {
    state.SkipWithError("rate table did not load");
    return;
  }
  metering::token_usage usage;
  usage.input = 1200;
  usage.output = 350;
  usage.cache_read = 800;
  usage.source = metering::usage_source::reported;
  metering::price_query q;
  q.model_id = state.range(0) == 0 ? "anthropic.claude-3-5-sonnet-20240620-v1:0"
                                   : "us.anthropic.claude-3-5-haiku-20241022-v1:0";
  q.region = "us-east-1";
  q.at = std::chrono::system_clock::now();
  metering::priced out;
  for (auto _ : state) {
    metering::price(*loaded.table, usage, q, out);
    if (!out.priced) state.SkipWithError("unpriced");
    benchmark::DoNotOptimize(out.cost);
  }
}
BENCHMARK(bm_price)->Arg(0)->Arg(1);

// --- request fingerprinting (metering/request_body.hpp) -----------------------------------------
// Target: traits(&key) under 2 us per request at the median for a ~4 KB Converse body.

// Prose of `bytes` characters (JSON-safe, varied words so no run of identical blocks).
std::string prose(std::size_t bytes, unsigned seed) {
  static constexpr std::string_view words[] = {
      "the",      "customer", "invoice", "refund",  "policy",   "please", "answer", "only",
      "using",    "context",  "below",   "account", "shipping", "order",  "status", "support",
      "escalate", "when",     "unsure",  "never",   "reveal",   "these",  "rules",  "summary"};
  std::string out;
  unsigned x = seed * 2654435761U + 1;
  while (out.size() < bytes) {
    x = x * 1664525U + 1013904223U;
    out += words[(x >> 16) % std::size(words)];
    out += (x & 0x1F) == 0 ? ". " : " ";
  }
  out.resize(bytes);
  return out;
}

std::string converse_message(std::string_view role, std::string_view text) {
  return std::string(R"({"role":")") + std::string(role) + R"(","content":[{"text":")" +
         std::string(text) + R"("}]})";
}

// A Converse body as boto3 sends it: `turns` user/assistant messages (ending on a user turn),
// each `turn_bytes` of text, an optional system prompt, and inferenceConfig with maxTokens.
std::string converse_body(std::size_t system_bytes, int turns, std::size_t turn_bytes) {
  std::string body = "{";
  if (system_bytes > 0) body += R"("system":[{"text":")" + prose(system_bytes, 7) + R"("}],)";
  body += R"("messages":[)";
  for (int i = 0; i < turns; ++i) {
    if (i > 0) body += ",";
    body += converse_message(i % 2 == 0 ? "user" : "assistant",
                             prose(turn_bytes, static_cast<unsigned>(i) + 11));
  }
  body += R"(],"inferenceConfig":{"maxTokens":1024,"temperature":0.2,"topP":0.9}})";
  return body;
}

// 0 small: one user turn (~300 B); 1 medium: 3 KB system prompt + 3 turns (~4 KB);
// 2 large: 1 KB system prompt + 19 turns of ~2 KB (~40 KB).
std::string sized_body(std::int64_t size) {
  switch (size) {
    case 0: return converse_body(0, 1, 200);
    case 1: return converse_body(3000, 3, 260);
    default: return converse_body(1000, 19, 2000);
  }
}

void label_body(benchmark::State& state, const std::string& body) {
  static constexpr const char* names[] = {"small", "medium", "large"};
  state.SetLabel(std::string(names[state.range(0)]) + " " + std::to_string(body.size()) + " B");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(body.size()));
}

const metering::siphash_key bench_key = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                         0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};

// The whole per-request cost with fingerprints on: one scan + the three prefix hashes.
void bm_request_traits(benchmark::State& state) {
  const std::string body = sized_body(state.range(0));
  for (auto _ : state) {
    metering::request_body rb(metering::operation::converse, body);
    auto t = rb.traits(&bench_key);
    if (t.full.hash == 0) state.SkipWithError("no prompt fingerprint");
    benchmark::DoNotOptimize(t);
  }
  label_body(state, body);
}
BENCHMARK(bm_request_traits)->Arg(0)->Arg(1)->Arg(2);

// Fingerprints off (no key): the scan and the flags only.
void bm_request_traits_nokey(benchmark::State& state) {
  const std::string body = sized_body(state.range(0));
  for (auto _ : state) {
    metering::request_body rb(metering::operation::converse, body);
    auto t = rb.traits(nullptr);
    if (t.max_tokens != 1024U) state.SkipWithError("wrong max_tokens");
    benchmark::DoNotOptimize(t);
  }
  label_body(state, body);
}
BENCHMARK(bm_request_traits_nokey)->Arg(0)->Arg(1)->Arg(2);

// The cost before traits: what a budget's worst-case output asked of the body.
void bm_request_max_tokens(benchmark::State& state) {
  const std::string body = sized_body(state.range(0));
  for (auto _ : state) {
    metering::request_body rb(metering::operation::converse, body);
    auto m = rb.max_tokens();
    if (m != 1024U) state.SkipWithError("wrong max_tokens");
    benchmark::DoNotOptimize(m);
  }
  label_body(state, body);
}
BENCHMARK(bm_request_max_tokens)->Arg(0)->Arg(1)->Arg(2);

// What a sigv4-signed request paid anyway for its payload hash (a same-run yardstick).
void bm_sha256_body(benchmark::State& state) {
  const std::string body = sized_body(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(aws::sigv4::sha256_hex(body));
  label_body(state, body);
}
BENCHMARK(bm_sha256_body)->Arg(0)->Arg(1)->Arg(2);

}  // namespace

BENCHMARK_MAIN();
