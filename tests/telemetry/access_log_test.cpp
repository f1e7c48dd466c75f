// The access-log line: one JSON object per settled request, derived from the settlement alone.
#include "telemetry/access_log.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace bedrock_meter::telemetry {
namespace {

metering::settlement answered() {
  metering::settlement s;
  s.request_id = "req-1";
  s.principal = "BMAKTEST";
  s.team = "search";
  s.app = "ranker";
  s.operation = "ConverseStream";
  s.model_requested = "us.anthropic.claude-3-5-haiku-20241022-v1:0";
  s.region = "us-east-1";
  s.service_tier = "default";
  s.latency_mode = "standard";
  s.status = 200;
  s.input_tokens = 31;
  s.output_tokens = 9;
  s.cache_read_tokens = 128;
  s.usage_source = metering::usage_source::reported;
  s.priced = true;
  s.total_cost = 123'456'789;  // $0.000123456789
  s.rate_table_version = "2026-07-24.1";
  s.duration_us = 842'000;
  s.first_byte_us = 95'000;
  s.bytes_in = 120;
  s.bytes_out = 2'048;
  return s;
}

boost::json::object parse(const std::string& line) {
  boost::system::error_code ec;
  auto v = boost::json::parse(line, ec);
  EXPECT_FALSE(ec) << line;
  return v.is_object() ? v.as_object() : boost::json::object{};
}

TEST(AccessLog, AnsweredRequestCarriesLabelsCountsAndCost) {
  const auto o = parse(access_log_line(answered(), {7, "HTTP/2", "127.0.0.1:5000"}));
  EXPECT_EQ(o.at("request_id").as_string(), "req-1");
  EXPECT_EQ(o.at("conn").as_int64(), 7);
  EXPECT_EQ(o.at("protocol").as_string(), "HTTP/2");
  EXPECT_EQ(o.at("principal").as_string(), "BMAKTEST");
  EXPECT_EQ(o.at("team").as_string(), "search");
  EXPECT_EQ(o.at("operation").as_string(), "ConverseStream");
  EXPECT_EQ(o.at("model").as_string(), "us.anthropic.claude-3-5-haiku-20241022-v1:0");
  EXPECT_EQ(o.at("status").as_int64(), 200);
  EXPECT_EQ(o.at("outcome").as_string(), "ok");
  EXPECT_EQ(o.at("first_byte_us").as_int64(), 95'000);
  EXPECT_EQ(o.at("cache_read_tokens").as_int64(), 128);
  EXPECT_EQ(o.at("usage_source").as_string(), "reported");
  EXPECT_EQ(o.at("priced"), boost::json::value(true)) << "a JSON boolean, not a string";
  EXPECT_EQ(o.at("cost_usd").as_string(), "0.000123457");
  EXPECT_EQ(o.at("rate_table_version").as_string(), "2026-07-24.1");
  // Defaults are left out: the tier Bedrock did not name, standard latency, no note.
  EXPECT_FALSE(o.contains("service_tier"));
  EXPECT_FALSE(o.contains("latency"));
  EXPECT_FALSE(o.contains("pricing_note"));
}

TEST(AccessLog, SpeechTokensAreShownOnlyWhenThereAreSome) {
  const auto text = parse(access_log_line(answered(), {7, "HTTP/2", "127.0.0.1:5000"}));
  EXPECT_FALSE(text.contains("speech_input_tokens"));
  EXPECT_FALSE(text.contains("speech_output_tokens"));
  metering::settlement s = answered();
  s.operation = "InvokeModelWithBidirectionalStream";
  s.input_tokens = 1'545;
  s.speech_input_tokens = 1'500;
  s.output_tokens = 2'480;
  s.speech_output_tokens = 2'400;
  const auto o = parse(access_log_line(s, {7, "HTTP/2", "127.0.0.1:5000"}));
  EXPECT_EQ(o.at("input_tokens").as_int64(), 1'545) << "input still counts speech and text";
  EXPECT_EQ(o.at("speech_input_tokens").as_int64(), 1'500);
  EXPECT_EQ(o.at("output_tokens").as_int64(), 2'480);
  EXPECT_EQ(o.at("speech_output_tokens").as_int64(), 2'400);
}

TEST(AccessLog, ARefusalBeforeAuthenticationNamesNobody) {
  metering::settlement s;
  s.request_id = "req-2";
  s.operation = "-";
  s.team = "would-be-ignored";
  s.status = 403;
  s.outcome = metering::request_outcome::refused;
  const auto o = parse(access_log_line(s, {1, "HTTP/1.1", "10.0.0.1:1"}));
  EXPECT_EQ(o.at("principal").as_string(), "-");
  EXPECT_EQ(o.at("team").as_string(), "-");
  EXPECT_EQ(o.at("app").as_string(), "-");
  EXPECT_EQ(o.at("model").as_string(), "-");
  EXPECT_EQ(o.at("outcome").as_string(), "refused");
  EXPECT_FALSE(o.contains("first_byte_us"));  // no byte came from upstream
}

TEST(AccessLog, NamedTierLatencyAndNotesAreShown) {
  auto s = answered();
  s.service_tier = "flex";
  s.latency_mode = "optimized";
  s.priced = false;
  s.unpriced_reason = "no rate for acme.mystery in us-east-1";
  const auto o = parse(access_log_line(s, {}));
  EXPECT_EQ(o.at("service_tier").as_string(), "flex");
  EXPECT_EQ(o.at("latency").as_string(), "optimized");
  EXPECT_EQ(o.at("priced"), boost::json::value(false));
  EXPECT_EQ(o.at("pricing_note").as_string(), "no rate for acme.mystery in us-east-1");
}

TEST(AccessLog, ClientControlledTextIsEscaped) {
  auto s = answered();
  s.model_requested = "evil\"model\n\x01";
  s.request_id = "id\"with\\quote";
  const std::string line = access_log_line(s, {});
  EXPECT_EQ(line.find('\n'), std::string::npos);  // one line, always
  const auto o = parse(line);
  EXPECT_EQ(o.at("model").as_string(), "evil\"model\n\x01");
  EXPECT_EQ(o.at("request_id").as_string(), "id\"with\\quote");
}

}  // namespace
}  // namespace bedrock_meter::telemetry
