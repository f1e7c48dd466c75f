// The settlement of one request: what each kind of ending prices to, and the labels the sinks
// derive from. Amounts are computed by hand in the comments beside them: a rate of $X per 1M
// tokens is X * 1e6 pico-USD per token.
#include "metering/settlement.hpp"

#include <gtest/gtest.h>

namespace bedrock_meter::metering {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view haiku = "anthropic.claude-3-5-haiku-20241022-v1:0";

rate_table haiku_table() {
  rate_entry e;
  e.model = haiku;
  e.regions = {"*"};
  e.rates.input = 800'000;     // $0.80 / 1M
  e.rates.output = 4'000'000;  // $4.00 / 1M
  e.rates.cache_read = 80'000;
  e.rates.cache_write_5m = 1'000'000;
  e.location = "rates.yaml:12";
  rate_table t;
  t.version = "test-1";
  t.entries = {e};
  t.index();
  return t;
}

route converse_route(std::string_view model) {
  return route{operation::converse, std::string(model), {}};
}

/// A Converse that Bedrock answered, with the usage it reported.
exchange_facts answered(const route& r, token_usage u) {
  exchange_facts f;
  f.request_id = "req-1";
  f.arrived =
      std::chrono::system_clock::time_point(1'767'225'600'123ms);  // 2026-01-01T00:00:00.123Z
  f.duration = 2500us;
  f.first_byte = 900us;
  f.route = &r;
  f.principal = "BMAKTEST";
  f.team = "search";
  f.app = "ranker";
  f.region = "us-east-1";
  u.source = usage_source::reported;
  f.usage = u;
  f.status = 200;
  f.bytes_in = 120;
  f.bytes_out = 480;
  return f;
}

TEST(Settlement, AnsweredRequestIsPricedFromTheTableWithItsLabels) {
  const auto table = haiku_table();
  const auto r = converse_route(std::string("us.") + std::string(haiku));
  const auto s = settle(answered(r, {1000, 200, 5000, 0, 0, {}}), &table, {});
  // 1000 x 0.8e6 + 200 x 4e6 + 5000 x 0.08e6 = 800e6 + 800e6 + 400e6 pico-USD
  EXPECT_EQ(s.input_cost, 800'000'000);
  EXPECT_EQ(s.output_cost, 800'000'000);
  EXPECT_EQ(s.cache_read_cost, 400'000'000);
  EXPECT_EQ(s.total_cost, 2'000'000'000);
  EXPECT_TRUE(s.priced);
  EXPECT_EQ(s.operation, "Converse");
  EXPECT_EQ(s.model_requested, "us." + std::string(haiku));
  EXPECT_EQ(s.model_base, haiku);
  EXPECT_EQ(s.model_label, haiku);
  EXPECT_EQ(s.scope, "geo");
  EXPECT_EQ(s.service_tier, "default");
  EXPECT_EQ(s.latency_mode, "standard");
  EXPECT_EQ(s.rate_table_version, "test-1");
  EXPECT_EQ(s.rate_entry, "rates.yaml:12");
  EXPECT_EQ(s.time_ms, 1'767'225'600'123);
  EXPECT_EQ(s.duration_us, 2500);
  EXPECT_EQ(s.first_byte_us, 900);
  EXPECT_EQ(s.usage_source, usage_source::reported);
  EXPECT_EQ(s.outcome, request_outcome::ok);
  EXPECT_EQ(s.team, "search");
  EXPECT_EQ(s.bytes_out, 480u);
  EXPECT_FALSE(s.streaming());
}

TEST(Settlement, ASonicSessionKeepsItsSpeechSplitAndPricesItApart) {
  rate_entry e;
  e.model = "amazon.nova-sonic-v1:0";
  e.regions = {"*"};
  e.rates.input = 60'000;              // text $0.06 / 1M
  e.rates.output = 240'000;            // text $0.24 / 1M
  e.rates.speech_input = 3'400'000;    // $3.40 / 1M
  e.rates.speech_output = 13'600'000;  // $13.60 / 1M
  rate_table t;
  t.version = "test-1";
  t.entries = {e};
  t.index();
  const route r{operation::invoke_model_with_bidirectional_stream, "amazon.nova-sonic-v1:0", {}};
  token_usage u;
  u.input = 1'545;
  u.speech_input = 1'500;
  u.output = 2'480;
  u.speech_output = 2'400;
  const auto s = settle(answered(r, u), &t, {});
  EXPECT_EQ(s.speech_input_tokens, 1'500u);
  EXPECT_EQ(s.speech_output_tokens, 2'400u);
  EXPECT_EQ(s.input_tokens, 1'545u);
  // 1,500 x 3.4e6 + 45 x 0.06e6 = 5,102,700,000; 2,400 x 13.6e6 + 80 x 0.24e6 = 32,659,200,000
  EXPECT_EQ(s.input_cost, 5'102'700'000);
  EXPECT_EQ(s.output_cost, 32'659'200'000);
  EXPECT_EQ(s.total_cost, 37'761'900'000);
  EXPECT_TRUE(s.priced);
  EXPECT_TRUE(s.streaming());
  // The same session against an entry without speech rates: unpriced, never the text price.
  t.entries[0].rates.speech_input.reset();
  t.entries[0].rates.speech_output.reset();
  const auto u2 = settle(answered(r, u), &t, {});
  EXPECT_FALSE(u2.priced);
  EXPECT_EQ(u2.total_cost, 0);
  EXPECT_TRUE(u2.unpriced_reason.starts_with(speech_unpriced_note)) << u2.unpriced_reason;
  EXPECT_EQ(u2.model_label, "amazon.nova-sonic-v1:0");
  EXPECT_EQ(u2.speech_input_tokens, 1'500u);
}

TEST(Settlement, CarriesTheRequestTraitsAndTheStopReason) {
  const auto table = haiku_table();
  const auto r = converse_route(std::string(haiku));
  auto f = answered(r, {10, 20, 0, 0, 0, {}});
  request_traits t;
  t.max_tokens = 20;
  t.structured_output = true;
  t.system = {7, 300};
  f.traits = &t;
  f.stop_reason = "max_tokens";
  const auto s = settle(f, &table, {});
  EXPECT_TRUE(s.has_traits);
  EXPECT_EQ(s.traits, t);
  EXPECT_EQ(s.stop_reason, "max_tokens");
  const auto without = settle(answered(r, {10, 20, 0, 0, 0, {}}), &table, {});
  EXPECT_FALSE(without.has_traits) << "a body never read has no traits";
  EXPECT_EQ(without.stop_reason, "");
}

TEST(Settlement, RefusedBeforeRoutingCostsNothingAndNamesNoOperation) {
  exchange_facts f;
  f.request_id = "req-2";
  f.status = 404;
  f.outcome = request_outcome::refused;
  const auto table = haiku_table();
  const auto s = settle(f, &table, {});
  EXPECT_EQ(s.operation, "-");
  EXPECT_TRUE(s.priced);  // nothing reached Bedrock: exactly $0, not "unpriced"
  EXPECT_EQ(s.total_cost, 0);
  EXPECT_EQ(s.model_label, "other");
  EXPECT_EQ(s.principal, "");
  EXPECT_EQ(s.first_byte_us, -1);
  EXPECT_EQ(s.usage_source, usage_source::none);
  EXPECT_EQ(to_string(s.outcome), "refused");
}

TEST(Settlement, UnknownModelIsUnpricedNeverZero) {
  const auto table = haiku_table();
  const auto r = converse_route("acme.mystery-model-v9:0");
  const auto s = settle(answered(r, {10, 10, 0, 0, 0, {}}), &table, {});
  EXPECT_FALSE(s.priced);
  EXPECT_NE(s.unpriced_reason.find("acme.mystery-model-v9:0"), std::string::npos);
  EXPECT_EQ(s.model_label, "other");  // bounded: a random id is not a series of its own
  EXPECT_EQ(s.input_tokens, 10u);     // the tokens are still counted
}

TEST(Settlement, OperationsNotBilledByTokensSayWhy) {
  const auto table = haiku_table();
  const route guardrail{operation::apply_guardrail, "gr-1", "1"};
  const auto g = settle(answered(guardrail, {}), &table, {});
  EXPECT_FALSE(g.priced);
  EXPECT_EQ(g.unpriced_reason, "not billed by tokens (ApplyGuardrail)");
  const route count{operation::count_tokens, std::string(haiku), {}};
  const auto c = settle(answered(count, {}), &table, {});
  EXPECT_TRUE(c.priced);  // a free read
  EXPECT_EQ(c.total_cost, 0);
}

TEST(Settlement, NoRateTableIsUnpricedWithTheSettingToFix) {
  const auto r = converse_route(haiku);
  const auto s = settle(answered(r, {10, 10, 0, 0, 0, {}}), nullptr, {});
  EXPECT_FALSE(s.priced);
  EXPECT_EQ(s.unpriced_reason, "no rate table configured (pricing.rate_table)");
  EXPECT_EQ(s.model_base, haiku);
  EXPECT_EQ(s.rate_table_version, "");
}

TEST(Settlement, ReportedTierAndLatencyArePricedAndRecorded) {
  auto table = haiku_table();
  rate_entry flex = table.entries.front();
  flex.tier = service_tier::flex;
  flex.rates.input = 400'000;  // half price
  flex.location = "rates.yaml:20";
  table.entries.push_back(flex);
  table.index();
  const auto r = converse_route(haiku);
  auto f = answered(r, {1000, 0, 0, 0, 0, {}});
  f.service_tier = "flex";
  const auto s = settle(f, &table, {});
  EXPECT_EQ(s.service_tier, "flex");
  EXPECT_EQ(s.input_cost, 400'000'000);  // 1000 x 0.4e6
  EXPECT_EQ(s.rate_entry, "rates.yaml:20");
}

TEST(Settlement, StreamingOperationsAreKnownByName) {
  settlement s;
  s.operation = "ConverseStream";
  EXPECT_TRUE(s.streaming());
  s.operation = "InvokeModelWithResponseStream";
  EXPECT_TRUE(s.streaming());
  s.operation = "InvokeModel";
  EXPECT_FALSE(s.streaming());
}

TEST(Settlement, OutcomesRoundTripThroughTheirNames) {
  for (auto o : {request_outcome::ok, request_outcome::refused, request_outcome::upstream_error,
                 request_outcome::upstream_cut, request_outcome::client_abort})
    EXPECT_EQ(parse_outcome(to_string(o)), o);
  EXPECT_FALSE(parse_outcome("exploded"));
}

}  // namespace
}  // namespace bedrock_meter::metering
