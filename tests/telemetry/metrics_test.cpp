#include "telemetry/metrics.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "accounting/ledger.hpp"

namespace bedrock_meter::telemetry {
namespace {

/// The exposition text parsed into "name{a=\"x\",b=\"y\"}" -> value, labels sorted by name, so
/// tests compare series regardless of the serializer's label order.
struct exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;  // family name -> TYPE

  static exposition parse(const std::string& text) {
    exposition e;
    std::size_t pos = 0;
    while (pos < text.size()) {
      auto end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      const std::string line = text.substr(pos, end - pos);
      pos = end + 1;
      if (line.empty()) continue;
      if (line.rfind("# TYPE ", 0) == 0) {
        const auto rest = line.substr(7);
        const auto sp = rest.find(' ');
        e.types[rest.substr(0, sp)] = rest.substr(sp + 1);
        continue;
      }
      if (line[0] == '#') continue;
      std::size_t i = 0;
      std::string name;
      while (i < line.size() && line[i] != '{' && line[i] != ' ') name += line[i++];
      std::map<std::string, std::string> labels;
      if (i < line.size() && line[i] == '{') {
        ++i;
        while (line[i] != '}') {
          std::string k;
          while (line[i] != '=') k += line[i++];
          i += 2;  // ="
          std::string v;
          while (line[i] != '"') {
            if (line[i] == '\\') {
              ++i;
              v += line[i] == 'n' ? '\n' : line[i];
            } else {
              v += line[i];
            }
            ++i;
          }
          ++i;  // closing quote
          if (line[i] == ',') ++i;
          labels[k] = v;
        }
        ++i;
      }
      const double value = std::stod(line.substr(i + 1));
      std::string key = name + "{";
      bool first = true;
      for (const auto& [k, v] : labels) {
        if (!first) key += ',';
        first = false;
        key += k + "=\"" + v + "\"";
      }
      key += "}";
      EXPECT_TRUE(e.samples.emplace(key, value).second) << "duplicate series " << key;
    }
    return e;
  }

  /// Every series of `name` (exact metric name, e.g. "x_bucket").
  std::map<std::string, double> series(const std::string& name) const {
    std::map<std::string, double> out;
    const std::string prefix = name + "{";
    for (const auto& [k, v] : samples)
      if (k.rfind(prefix, 0) == 0) out.emplace(k, v);
    return out;
  }
  double value(const std::string& key) const {
    const auto it = samples.find(key);
    if (it == samples.end()) {
      ADD_FAILURE() << "missing series " << key;
      return -1;
    }
    return it->second;
  }
  bool has(const std::string& key) const { return samples.count(key) != 0; }
};

exposition scrape(const metrics& m, const scrape_inputs& in = {}) {
  return exposition::parse(m.serialize(in));
}

metering::settlement converse() {
  metering::settlement r;
  r.operation = "Converse";
  r.model_label = "anthropic.claude-3-haiku";
  r.region = "us-east-1";
  r.team = "search";
  r.app = "ranker";
  r.status = 200;
  r.usage_source = metering::usage_source::reported;
  r.input_tokens = 100;
  r.output_tokens = 50;
  r.cache_read_tokens = 10;
  r.priced = true;
  r.input_cost = 25'000'000;  // 100 x 0.25 USD / 1M tokens
  r.output_cost = 62'500'000;
  r.cache_read_cost = 250'000;
  r.duration_us = 500'000;
  return r;
}

metering::settlement stream_estimated() {
  metering::settlement r;
  r.operation = "InvokeModelWithResponseStream";
  r.model_label = "anthropic.claude-3-haiku";
  r.region = "us-east-1";
  r.service_tier = "priority";
  r.team = "search";
  r.app = "chat";
  r.status = 200;
  r.usage_source = metering::usage_source::estimated;
  r.input_tokens = 2000;
  r.output_tokens = 300;
  r.priced = true;
  r.input_cost = 500'000'000;
  r.output_cost = 375'000'000;
  r.duration_us = 3'000'000;
  r.first_byte_us = 150'000;  // a stream: time to the first chunk
  return r;
}

metering::settlement unpriced_throttled() {
  metering::settlement r;
  r.operation = "Converse";
  r.model_label = "other";
  r.region = "eu-west-1";
  r.team = "search";
  r.app = "ranker";
  r.status = 429;
  r.priced = false;
  r.duration_us = 30'000;
  return r;
}

TEST(MetricsRecord, ProducesExactlyTheExpectedFinOpsSeries) {
  metrics m;
  auto rec = m.make_recorder();
  rec->record(converse());
  rec->record(converse());
  rec->record(stream_estimated());
  rec->record(unpriced_throttled());
  const auto e = scrape(m);

  EXPECT_EQ(e.types.at("bedrock_requests_total"), "counter");
  const std::map<std::string, double> requests = {
      {R"(bedrock_requests_total{app="chat",code="200",model="anthropic.claude-3-haiku",operation="InvokeModelWithResponseStream",region="us-east-1",team="search"})",
       1},
      {R"(bedrock_requests_total{app="ranker",code="200",model="anthropic.claude-3-haiku",operation="Converse",region="us-east-1",team="search"})",
       2},
      {R"(bedrock_requests_total{app="ranker",code="429",model="other",operation="Converse",region="eu-west-1",team="search"})",
       1},
  };
  EXPECT_EQ(e.series("bedrock_requests_total"), requests);

  const std::string conv =
      R"(model="anthropic.claude-3-haiku",operation="Converse",region="us-east-1",team="search",tier="default")";
  const std::string strm =
      R"(model="anthropic.claude-3-haiku",operation="InvokeModelWithResponseStream",region="us-east-1",team="search",tier="priority")";
  const std::map<std::string, double> tokens = {
      {R"(bedrock_tokens_total{app="ranker",)" + conv + R"(,type="input"})", 200},
      {R"(bedrock_tokens_total{app="ranker",)" + conv + R"(,type="output"})", 100},
      {R"(bedrock_tokens_total{app="ranker",)" + conv + R"(,type="cache_read"})", 20},
      {R"(bedrock_tokens_total{app="chat",)" + strm + R"(,type="input"})", 2000},
      {R"(bedrock_tokens_total{app="chat",)" + strm + R"(,type="output"})", 300},
  };
  EXPECT_EQ(e.series("bedrock_tokens_total"), tokens);

  const auto spend = e.series("bedrock_spend_usd_total");
  ASSERT_EQ(spend.size(), 5u);
  const std::string sconv =
      R"(model="anthropic.claude-3-haiku",region="us-east-1",team="search",tier="default")";
  EXPECT_DOUBLE_EQ(
      e.value(R"(bedrock_spend_usd_total{app="ranker",)" + sconv + R"(,type="input"})"), 50e-6);
  EXPECT_DOUBLE_EQ(
      e.value(R"(bedrock_spend_usd_total{app="ranker",)" + sconv + R"(,type="output"})"), 125e-6);
  EXPECT_DOUBLE_EQ(
      e.value(R"(bedrock_spend_usd_total{app="ranker",)" + sconv + R"(,type="cache_read"})"),
      0.5e-6);
  EXPECT_DOUBLE_EQ(
      e.value(
          R"(bedrock_spend_usd_total{app="chat",model="anthropic.claude-3-haiku",region="us-east-1",team="search",tier="priority",type="output"})"),
      375e-6);

  const std::map<std::string, double> unpriced = {
      {R"(bedrock_unpriced_requests_total{model="other",region="eu-west-1"})", 1}};
  EXPECT_EQ(e.series("bedrock_unpriced_requests_total"), unpriced);
  const std::map<std::string, double> estimated = {
      {R"(bedrock_estimated_tokens_total{model="anthropic.claude-3-haiku",type="input"})", 2000},
      {R"(bedrock_estimated_tokens_total{model="anthropic.claude-3-haiku",type="output"})", 300}};
  EXPECT_EQ(e.series("bedrock_estimated_tokens_total"), estimated);
  EXPECT_EQ(e.value(R"(bedrock_build_info{version="dev"})"), 1);
}

TEST(MetricsRecord, GenAiHistogramsFollowTheSemanticConventions) {
  metrics m;
  auto rec = m.make_recorder();
  rec->record(converse());            // input 110 (cache read included), output 50, 0.5 s
  rec->record(stream_estimated());    // input 2000, output 300, 3 s, first chunk 0.15 s
  rec->record(unpriced_throttled());  // no usage, 0.03 s, error
  auto cr = converse();
  cr.operation = "CountTokens";  // not a GenAI client call
  rec->record(cr);
  const auto e = scrape(m);
  EXPECT_EQ(e.types.at("gen_ai_client_token_usage"), "histogram");

  const std::string chat_in =
      R"(gen_ai_operation_name="chat",gen_ai_provider_name="aws.bedrock",gen_ai_request_model="anthropic.claude-3-haiku",gen_ai_token_type="input")";
  // Both requests are "chat" with the same model: one series, two observations (110, 2000).
  EXPECT_EQ(e.value("gen_ai_client_token_usage_count{" + chat_in + "}"), 2);
  EXPECT_EQ(e.value("gen_ai_client_token_usage_sum{" + chat_in + "}"), 2110);
  const auto bucket = [&](const std::string& labels, const std::string& le) {
    return e.value("gen_ai_client_token_usage_bucket{" + labels + ",le=\"" + le + "\"}");
  };
  EXPECT_EQ(bucket(chat_in, "64"), 0);
  EXPECT_EQ(bucket(chat_in, "256"), 1);
  EXPECT_EQ(bucket(chat_in, "1024"), 1);
  EXPECT_EQ(bucket(chat_in, "4096"), 2);
  EXPECT_EQ(bucket(chat_in, "67108864"), 2);
  EXPECT_EQ(bucket(chat_in, "+Inf"), 2);
  EXPECT_EQ(e.series("gen_ai_client_token_usage_bucket").size(), 2u * 15u);  // input, output

  const std::string ok =
      R"(gen_ai_operation_name="chat",gen_ai_provider_name="aws.bedrock",gen_ai_request_model="anthropic.claude-3-haiku")";
  EXPECT_EQ(e.value("gen_ai_client_operation_duration_seconds_count{" + ok + "}"), 2);
  EXPECT_DOUBLE_EQ(e.value("gen_ai_client_operation_duration_seconds_sum{" + ok + "}"), 3.5);
  EXPECT_EQ(e.value("gen_ai_client_operation_duration_seconds_bucket{" + ok + ",le=\"0.64\"}"), 1);
  EXPECT_EQ(e.value("gen_ai_client_operation_duration_seconds_bucket{" + ok + ",le=\"2.56\"}"), 1);
  EXPECT_EQ(e.value("gen_ai_client_operation_duration_seconds_bucket{" + ok + ",le=\"5.12\"}"), 2);
  // The failure carries error_type (the status code when no error name was given).
  const std::string failed =
      R"(error_type="429",gen_ai_operation_name="chat",gen_ai_provider_name="aws.bedrock",gen_ai_request_model="other")";
  EXPECT_EQ(e.value("gen_ai_client_operation_duration_seconds_count{" + failed + "}"), 1);
  EXPECT_EQ(e.series("gen_ai_client_operation_duration_seconds_count").size(),
            2u);  // CountTokens excluded

  // Time to first chunk: the streaming request only.
  const auto ttfc = e.series("gen_ai_client_operation_time_to_first_chunk_seconds_count");
  ASSERT_EQ(ttfc.size(), 1u);
  EXPECT_EQ(ttfc.begin()->second, 1);
  EXPECT_EQ(
      e.value("gen_ai_client_operation_time_to_first_chunk_seconds_bucket{" + ok + ",le=\"0.16\"}"),
      1);
  EXPECT_EQ(
      e.value("gen_ai_client_operation_time_to_first_chunk_seconds_bucket{" + ok + ",le=\"0.08\"}"),
      0);
}

TEST(MetricsRecord, ErrorNameWinsOverStatusAndEmbeddingsHaveNoOutput) {
  metrics m;
  auto rec = m.make_recorder();
  auto r = converse();
  r.status = 200;
  r.outcome = metering::request_outcome::upstream_cut;  // the stream broke after a 200
  rec->record(r);
  metering::settlement emb;
  emb.operation = "InvokeModel";
  emb.model_label = "amazon.titan-embed-text-v2";
  emb.status = 200;
  emb.usage_source = metering::usage_source::reported;
  emb.input_tokens = 12;
  rec->record(emb);
  const auto e = scrape(m);
  EXPECT_EQ(
      e.value(
          R"(gen_ai_client_operation_duration_seconds_count{error_type="upstream_cut",gen_ai_operation_name="chat",gen_ai_provider_name="aws.bedrock",gen_ai_request_model="anthropic.claude-3-haiku"})"),
      1);
  const std::string emb_labels =
      R"(gen_ai_operation_name="embeddings",gen_ai_provider_name="aws.bedrock",gen_ai_request_model="amazon.titan-embed-text-v2")";
  EXPECT_EQ(
      e.value("gen_ai_client_token_usage_sum{" + emb_labels + R"(,gen_ai_token_type="input"})"),
      12);
  EXPECT_FALSE(
      e.has("gen_ai_client_token_usage_count{" + emb_labels + R"(,gen_ai_token_type="output"})"));
}

TEST(MetricsGenAi, OperationNames) {
  EXPECT_EQ(gen_ai_operation_name("Converse", "x"), "chat");
  EXPECT_EQ(gen_ai_operation_name("ConverseStream", "x"), "chat");
  EXPECT_EQ(gen_ai_operation_name("InvokeModel", "anthropic.claude-3-haiku"), "chat");
  EXPECT_EQ(gen_ai_operation_name("InvokeModel", "cohere.embed-english-v3"), "embeddings");
  EXPECT_EQ(gen_ai_operation_name("InvokeModelWithResponseStream", "other"), "chat");
  EXPECT_EQ(gen_ai_operation_name("CountTokens", "x"), std::nullopt);
  EXPECT_EQ(gen_ai_operation_name("ApplyGuardrail", "x"), std::nullopt);
  EXPECT_EQ(gen_ai_operation_name("-", ""), std::nullopt);
}

accounting::ledger_totals_row totals_row(unsigned status, metering::money_total input_cost) {
  accounting::ledger_totals_row row;
  row.operation = "Converse";
  row.model_label = "anthropic.claude-3-haiku";
  row.region = "us-east-1";
  row.service_tier = "default";
  row.team = "search";
  row.app = "ranker";
  row.status = status;
  row.requests = 1000;
  row.unpriced_requests = 3;
  row.input_tokens = 1'000'000;
  row.output_tokens = 20'000;
  row.estimated_output_tokens = 7;
  row.input_cost = input_cost;
  row.total_cost = input_cost;
  return row;
}

TEST(MetricsRestore, CountersContinueFromTheLedgerTotals) {
  metrics m;
  // Three groups of one spend series, 0.1 USD each: summed as doubles that would be
  // 0.30000000000000004; summed exactly in pico-USD first it is 0.3.
  m.restore({totals_row(200, 100'000'000'000), totals_row(400, 100'000'000'000),
             totals_row(500, 100'000'000'000)});
  auto e = scrape(m);
  const std::string spend_input =
      R"(bedrock_spend_usd_total{app="ranker",model="anthropic.claude-3-haiku",region="us-east-1",team="search",tier="default",type="input"})";
  EXPECT_EQ(e.value(spend_input), 0.3);
  const std::string req200 =
      R"(bedrock_requests_total{app="ranker",code="200",model="anthropic.claude-3-haiku",operation="Converse",region="us-east-1",team="search"})";
  EXPECT_EQ(e.value(req200), 1000);
  EXPECT_EQ(e.series("bedrock_requests_total").size(), 3u);
  const std::string tok_in =
      R"(bedrock_tokens_total{app="ranker",model="anthropic.claude-3-haiku",operation="Converse",region="us-east-1",team="search",tier="default",type="input"})";
  EXPECT_EQ(e.value(tok_in), 3'000'000);
  EXPECT_EQ(
      e.value(
          R"(bedrock_unpriced_requests_total{model="anthropic.claude-3-haiku",region="us-east-1"})"),
      9);
  EXPECT_EQ(
      e.value(R"(bedrock_estimated_tokens_total{model="anthropic.claude-3-haiku",type="output"})"),
      21);

  // New traffic adds to the restored series (same label vocabulary as the ledger's).
  auto rec = m.make_recorder();
  rec->record(converse());
  e = scrape(m);
  EXPECT_EQ(e.value(req200), 1001);
  EXPECT_EQ(e.value(tok_in), 3'000'100);
  EXPECT_DOUBLE_EQ(e.value(spend_input), 0.3 + 25e-6);
}

TEST(MetricsNetSpend, NetIsTheSpendLessTheSettlementsDiscountAndIsRestoredLessTheLedgers) {
  metrics m;
  auto discounted = totals_row(200, 100'000'000'000);  // $0.10 of input
  m.restore({discounted}, {{"anthropic.claude-3-haiku",
                            "us-east-1",
                            "default",
                            "search",
                            "ranker",
                            {10'000'000'000, 0, 0, 0}}});  // $0.01 of it was discounted
  const std::string series =
      R"({app="ranker",model="anthropic.claude-3-haiku",region="us-east-1",team="search",tier="default",type="input"})";
  auto e = scrape(m);
  EXPECT_EQ(e.types.at("bedrock_net_spend_usd_total"), "counter");
  EXPECT_DOUBLE_EQ(e.value("bedrock_spend_usd_total" + series), 0.1);
  EXPECT_DOUBLE_EQ(e.value("bedrock_net_spend_usd_total" + series), 0.09);

  auto rec = m.make_recorder();
  auto r = converse();  // $25e-6 input, $62.5e-6 output, $0.25e-6 cache read
  r.discount_ppm = 200'000;
  rec->record(r);
  r.discount_ppm = 0;  // outside the term
  rec->record(r);
  e = scrape(m);
  EXPECT_DOUBLE_EQ(e.value("bedrock_spend_usd_total" + series), 0.1 + 2 * 25e-6);
  EXPECT_DOUBLE_EQ(e.value("bedrock_net_spend_usd_total" + series), 0.09 + 25e-6 * 0.8 + 25e-6);
  const std::string output =
      R"(bedrock_net_spend_usd_total{app="ranker",model="anthropic.claude-3-haiku",region="us-east-1",team="search",tier="default",type="output"})";
  EXPECT_DOUBLE_EQ(e.value(output), 62.5e-6 * 0.8 + 62.5e-6);
}

TEST(MetricsCardinality, RandomModelLabelsFoldIntoOtherAtTheCap) {
  metrics_options o;
  o.max_series_per_family = 50;
  metrics m(o);
  auto rec = m.make_recorder();
  std::mt19937_64 rng(42);
  for (int i = 0; i < 1000; ++i) {
    const std::string model = "random-model-" + std::to_string(rng());
    auto r = converse();
    r.model_label = model;
    rec->record(r);
  }
  const auto e = scrape(m);
  const auto requests = e.series("bedrock_requests_total");
  EXPECT_EQ(requests.size(), 50u);  // 49 admitted + the folded series
  double total = 0;
  for (const auto& [k, v] : requests) total += v;
  EXPECT_EQ(total, 1000);  // nothing lost, only folded
  // Folding replaces every open-ended label and keeps the closed ones.
  EXPECT_EQ(
      e.value(
          R"(bedrock_requests_total{app="other",code="200",model="other",operation="Converse",region="other",team="other"})"),
      951);
  EXPECT_EQ(e.value(R"(bedrock_metrics_folded_samples_total{metric="bedrock_requests_total"})"),
            951);
  for (const char* family :
       {"bedrock_tokens_total", "bedrock_spend_usd_total", "gen_ai_client_token_usage_count",
        "gen_ai_client_operation_duration_seconds_count"})
    EXPECT_LE(e.series(family).size(), 50u) << family;
  EXPECT_LE(e.series("bedrock_estimated_tokens_total").size(), 50u);
}

TEST(MetricsCardinality, OverflowBeyondTheFoldedSeriesIsDroppedAndCounted) {
  metrics_options o;
  o.max_series_per_family = 4;  // 3 admitted, 1 reserved for folded tuples
  metrics m(o);
  auto rec = m.make_recorder();
  for (int i = 0; i < 10; ++i) {
    auto r = converse();
    const std::string model = "m" + std::to_string(i);
    r.model_label = model;
    r.status = 200 + static_cast<unsigned>(i);  // closed label: folded tuples differ too
    rec->record(r);
  }
  const auto e = scrape(m);
  EXPECT_EQ(e.series("bedrock_requests_total").size(), 4u);
  const double folded =
      e.value(R"(bedrock_metrics_folded_samples_total{metric="bedrock_requests_total"})");
  const double dropped =
      e.value(R"(bedrock_metrics_dropped_samples_total{metric="bedrock_requests_total"})");
  EXPECT_EQ(folded, 1);  // the first folded tuple took the reserved slot
  EXPECT_EQ(dropped, 6);
  double total = 0;
  for (const auto& [k, v] : e.series("bedrock_requests_total")) total += v;
  EXPECT_EQ(total + dropped, 10);
}

TEST(MetricsConcurrency, TwoRecordersOnTwoThreadsCountExactly) {
  metrics_options o;
  o.recorder_cache_entries = 3;  // forces cache resets mid-run as well
  metrics m(o);
  constexpr int per_thread = 20000;
  const auto work = [&m](int seed) {
    auto rec = m.make_recorder();
    for (int i = 0; i < per_thread; ++i) {
      auto r = (i + seed) % 3 == 0 ? stream_estimated() : converse();
      if (i % 5 == 0) r.team = "ads";
      rec->record(r);
      if (i % 100 == 0) rec->budget_blocked("monthly");
    }
  };
  std::thread a(work, 0);
  std::thread b(work, 1);
  // A scrape during recording must be safe too.
  for (int i = 0; i < 3; ++i) (void)m.serialize({});
  a.join();
  b.join();
  const auto e = scrape(m);
  double requests = 0;
  for (const auto& [k, v] : e.series("bedrock_requests_total")) requests += v;
  EXPECT_EQ(requests, 2 * per_thread);
  double output = 0;
  for (const auto& [k, v] : e.series("bedrock_tokens_total"))
    if (k.find("type=\"output\"") != std::string::npos) output += v;
  double streams = 0;
  for (int seed = 0; seed < 2; ++seed)
    for (int i = 0; i < per_thread; ++i) streams += (i + seed) % 3 == 0 ? 1 : 0;
  EXPECT_EQ(output, streams * 300 + (2 * per_thread - streams) * 50);
  EXPECT_EQ(e.value(R"(bedrock_budget_blocked_requests_total{budget="monthly"})"),
            2 * per_thread / 100);
}

TEST(MetricsScrape, EveryOutcomeCounterKeepsItsContractName) {
  // The label values dashboards, alert rules and docs/metrics.md use; one per counter, none
  // missing, none renamed (tests/dashboards/contract.py lists the same values).
  metrics m;
  proxy_counters none;
  const auto e = scrape(m, scrape_inputs_from(none, nullptr, ""));
  const std::map<std::string, std::vector<std::string>> contract = {
      {"bedrock_upstream_errors_total",
       {"kind=\"connect\"", "kind=\"protocol\"", "kind=\"reset\"", "kind=\"resolve\"",
        "kind=\"timeout\"", "kind=\"tls\""}},
      {"bedrock_proxy_events_total",
       {"event=\"auth_failure\"", "event=\"bad_request\"", "event=\"connection_refused\"",
        "event=\"connection_refused_per_client\"", "event=\"drain\"", "event=\"drain_refused\"",
        "event=\"estimated_request\"", "event=\"ledger_append_failure\"",
        "event=\"ledger_spool_full\"", "event=\"model_denied\"", "event=\"stream_decode_error\"",
        "event=\"timeout\"", "event=\"unknown_route\""}},
      {"bedrock_budget_store_errors_total",
       {"result=\"fail_closed\"", "result=\"fail_open\"", "result=\"settle\""}},
      {"bedrock_http2_defence_trips_total",
       {"defence=\"ack_flood\"", "defence=\"empty_frame_flood\"", "defence=\"header_list_size\"",
        "defence=\"ping_flood\"", "defence=\"rapid_reset\"", "defence=\"settings_flood\"",
        "defence=\"stream_timeout\""}},
      {"bedrock_rate_table_reloads_total", {"result=\"failure\"", "result=\"success\""}},
      {"bedrock_client_aborts_total", {""}},
  };
  for (const auto& [family, labels] : contract) {
    std::vector<std::string> seen;
    for (const auto& [key, value] : e.series(family)) {
      EXPECT_EQ(value, 0) << key;
      seen.push_back(key.substr(family.size() + 1, key.size() - family.size() - 2));
    }
    EXPECT_EQ(seen, labels) << family;
  }
}

TEST(MetricsScrape, AtomicsAreReadAtScrapeTime) {
  metrics m;
  proxy_counters stats;
  stats.inflight = 3;
  stats.client_aborts = 2;
  stats.upstream_timeout = 5;
  stats.rate_table_reloads_ok = 4;
  stats.rate_table_reloads_failed = 1;
  stats.auth_failures = 7;
  auto in = scrape_inputs_from(stats, nullptr, "2025-06-01");
  auto e = scrape(m, in);
  EXPECT_EQ(e.types.at("bedrock_inflight_requests"), "gauge");
  EXPECT_EQ(e.value("bedrock_inflight_requests{}"), 3);
  EXPECT_EQ(e.value("bedrock_client_aborts_total{}"), 2);
  EXPECT_EQ(e.value(R"(bedrock_upstream_errors_total{kind="timeout"})"), 5);
  EXPECT_EQ(e.series("bedrock_upstream_errors_total").size(), 6u);  // every kind
  EXPECT_EQ(e.value(R"(bedrock_rate_table_reloads_total{result="success"})"), 4);
  EXPECT_EQ(e.value(R"(bedrock_rate_table_reloads_total{result="failure"})"), 1);
  EXPECT_EQ(e.value(R"(bedrock_rate_table_info{version="2025-06-01"})"), 1);
  EXPECT_EQ(e.value(R"(bedrock_proxy_events_total{event="auth_failure"})"), 7);
  EXPECT_TRUE(e.series("bedrock_ledger_queue_depth").empty());  // no ledger configured

  // A new rate table: only the current version has a series.
  stats.inflight = 0;
  in = scrape_inputs_from(stats, nullptr, "2025-07-01");
  in.ledger = scrape_inputs::ledger_snapshot{12, 3400, 2};
  e = scrape(m, in);
  EXPECT_EQ(e.series("bedrock_rate_table_info").size(), 1u);
  EXPECT_EQ(e.value(R"(bedrock_rate_table_info{version="2025-07-01"})"), 1);
  EXPECT_EQ(e.value("bedrock_inflight_requests{}"), 0);
  EXPECT_EQ(e.value("bedrock_ledger_queue_depth{}"), 12);
  EXPECT_EQ(e.value(R"(bedrock_ledger_records_total{result="committed"})"), 3400);
  EXPECT_EQ(e.value(R"(bedrock_ledger_records_total{result="failed"})"), 2);
}

TEST(MetricsBudgets, GaugesSetAndRemoved) {
  metrics m;
  m.set_budget("team-search", 1000, 123.5, 1767225600);
  m.set_budget("team-ads", 50, 0, 1767225600);
  m.budget_blocked("team-ads");
  auto rec = m.make_recorder();
  rec->budget_blocked("team-ads");
  auto e = scrape(m);
  EXPECT_EQ(e.value(R"(bedrock_budget_limit_usd{budget="team-search"})"), 1000);
  EXPECT_EQ(e.value(R"(bedrock_budget_spend_usd{budget="team-search"})"), 123.5);
  EXPECT_EQ(e.value(R"(bedrock_budget_period_end_timestamp_seconds{budget="team-ads"})"),
            1767225600);
  EXPECT_EQ(e.value(R"(bedrock_budget_blocked_requests_total{budget="team-ads"})"), 2);
  m.set_budget("team-search", 1000, 200, 1767225600);
  m.remove_budget("team-ads");
  e = scrape(m);
  EXPECT_EQ(e.value(R"(bedrock_budget_spend_usd{budget="team-search"})"), 200);
  EXPECT_EQ(e.series("bedrock_budget_limit_usd").size(), 1u);
  EXPECT_FALSE(e.has(R"(bedrock_budget_limit_usd{budget="team-ads"})"));
}

// Before: bedrock_unpriced_requests_total and bedrock_budget_blocked_requests_total had no series
// until the first unpriced or blocked request, so a dashboard showed "No data" and increase()
// missed that first event. Series whose labels are known before traffic now start at 0.
TEST(MetricsKnownSeries, StartAtZeroAndCountOnFromThere) {
  metrics m;
  auto e = scrape(m);
  EXPECT_FALSE(e.has(R"(bedrock_unpriced_requests_total{model="other",region="us-east-1"})"));
  m.declare_known_series({"search-daily"}, {"us-east-1", "us-west-2"});
  m.declare_known_series({"search-daily"}, {"us-east-1", "us-west-2"});  // idempotent
  e = scrape(m);
  EXPECT_EQ(e.value(R"(bedrock_budget_blocked_requests_total{budget="search-daily"})"), 0);
  EXPECT_EQ(e.series("bedrock_budget_blocked_requests_total").size(), 1u);
  EXPECT_EQ(e.value(R"(bedrock_unpriced_requests_total{model="other",region="us-east-1"})"), 0);
  EXPECT_EQ(e.value(R"(bedrock_unpriced_requests_total{model="other",region="us-west-2"})"), 0);
  EXPECT_EQ(e.series("bedrock_unpriced_requests_total").size(), 2u);
  for (const char* type : {"input", "output", "cache_read", "cache_write"})
    EXPECT_EQ(e.value(std::string(R"(bedrock_estimated_tokens_total{model="other",type=")") + type +
                      "\"}"),
              0)
        << type;
  auto rec = m.make_recorder();
  rec->budget_blocked("search-daily");
  e = scrape(m);
  EXPECT_EQ(e.value(R"(bedrock_budget_blocked_requests_total{budget="search-daily"})"), 1);
}

TEST(MetricsBenchmark, RecordAfterWarmup) {
  metrics m;
  auto rec = m.make_recorder();
  const auto a = converse();
  const auto b = stream_estimated();
  rec->record(a);
  rec->record(b);
  constexpr int n = 200000;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) rec->record(i % 2 ? a : b);
  const auto t1 = std::chrono::steady_clock::now();
  const double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / n;
  std::printf("[ bench    ] metrics::recorder::record: %.0f ns per call after warm-up\n", ns);
  const auto e = scrape(m);
  double requests = 0;
  for (const auto& [k, v] : e.series("bedrock_requests_total")) requests += v;
  EXPECT_EQ(requests, n + 2);
}

}  // namespace
}  // namespace bedrock_meter::telemetry
