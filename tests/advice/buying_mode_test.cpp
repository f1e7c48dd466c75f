// Buying-mode tests: on demand versus Provisioned Throughput and the Reserved tier, and ARNs
// already mapped as provisioned. Every expected number is worked out by hand in the comment (or
// the arithmetic) beside it, from the prices of the hand-built rate table; never copied from the
// output. Units: a rate of $X per 1M tokens is X * 1e6 pico-USD per token; $1 = 1e12 pico-USD.
#include "advice/buying_mode.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "advice/advice.hpp"
#include "metering/money.hpp"
#include "metering/rate_table.hpp"

namespace bedrock_meter::advice {
namespace {

namespace m = metering;
using m::commitment_term;

constexpr std::string_view sonnet = "anthropic.claude-sonnet-4-6";
constexpr std::int64_t monday = 1'704'067'200'000;  // 2024-01-01T00:00:00Z, a Monday
constexpr std::int64_t minute = 60'000;
constexpr std::int64_t hour = 3'600'000;
constexpr money_total usd = 1'000'000'000'000;  // pico-USD per dollar

// $3 per 1M input tokens = 3,000,000 pico-USD a token; $15 per 1M output = 15,000,000.
constexpr m::rate_micro_per_m in_rate = 3'000'000;
constexpr m::rate_micro_per_m out_rate = 15'000'000;

m::rate_entry on_demand_rate(m::rate_micro_per_m in = in_rate, m::rate_micro_per_m out = out_rate) {
  m::rate_entry e;
  e.model = sonnet;
  e.regions = {"us-east-1"};
  e.rates.input = in;
  e.rates.output = out;
  e.rates.cache_read = in / 10;         // $0.30 / 1M
  e.rates.cache_write_5m = in * 5 / 4;  // $3.75 / 1M
  e.source = "test on-demand";
  return e;
}

m::model_unit_price unit(commitment_term t, money_total hourly) {
  return {t, static_cast<m::pico_usd>(hourly), "test unit price"};
}

m::provisioned_entry provisioned(std::optional<std::uint64_t> in_tpm,
                                 std::optional<std::uint64_t> out_tpm,
                                 std::vector<m::model_unit_price> units) {
  m::provisioned_entry p;
  p.model = sonnet;
  p.regions = {"us-east-1"};
  p.unit_input_tpm = in_tpm;
  p.unit_output_tpm = out_tpm;
  p.capacity_source = "test capacity";
  p.model_units = std::move(units);
  return p;
}

m::rate_table table_of(std::vector<m::rate_entry> entries,
                       std::vector<m::provisioned_entry> prov = {}) {
  m::rate_table t;
  t.version = "test-1";
  t.entries = std::move(entries);
  t.provisioned = std::move(prov);
  t.index();
  return t;
}

options window(const m::rate_table& t, std::int64_t since, std::int64_t until) {
  options o;
  o.since_ms = since;
  o.until_ms = until;
  o.rates = &t;
  return o;
}

/// An on-demand row as the meter would have priced it at the test rates.
request_row row(std::int64_t t, std::uint64_t in, std::uint64_t out,
                std::string_view scope = "in_region") {
  request_row r;
  r.time_ms = t;
  r.model_requested = sonnet;
  r.model_base = sonnet;
  r.region = "us-east-1";
  r.scope = scope;
  r.service_tier = "default";
  r.latency_mode = "standard";
  r.outcome = "ok";
  r.priced = true;
  r.input_tokens = in;
  r.output_tokens = out;
  r.total_cost = static_cast<m::pico_usd>(in) * in_rate + static_cast<m::pico_usd>(out) * out_rate;
  return r;
}

report analyse(const options& o, const std::vector<request_row>& rows) {
  buying_mode_analysis a(o);
  for (const request_row& r : rows) a.add(r);
  report out;
  a.finish(out);
  return out;
}

const buying_option& option(const buying_mode_advice& a, std::string_view mode,
                            std::string_view term) {
  for (const buying_option& o : a.options) {
    if (o.mode == mode && o.term == term) return o;
  }
  ADD_FAILURE() << "no option " << mode << " " << term;
  return a.options.front();
}

double term_value(const std::vector<std::pair<std::string, double>>& v, std::string_view term) {
  for (const auto& [t, x] : v) {
    if (t == term) return x;
  }
  ADD_FAILURE() << "no term " << term;
  return -1;
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

TEST(BuyingMode, IdleProvisionedLosesToOnDemandWhateverAUnitCarries) {
  // One unit costs $20/h on the 1-month term; the unit's throughput is known.
  const m::rate_table t =
      table_of({on_demand_rate()},
               {provisioned(10'000, 1'000, {unit(commitment_term::one_month, 20 * usd)})});
  const options o = window(t, monday, monday + hour);
  // One request in the hour: 1000 x $3/1M + 100 x $15/1M = $0.003 + $0.0015 = $0.0045.
  const report r = analyse(o, {row(monday + 5 * minute, 1'000, 100)});
  ASSERT_EQ(r.buying_mode.size(), 1u);
  const buying_mode_advice& a = r.buying_mode[0];
  EXPECT_EQ(a.model, sonnet);
  EXPECT_EQ(a.scope, "in_region");
  EXPECT_EQ(a.requests, 1u);
  EXPECT_EQ(a.on_demand, 4'500'000'000);  // $0.0045
  // A month is 730 window-hours: $0.0045 x 730 = $3.285.
  EXPECT_EQ(a.on_demand_monthly, 3'285'000'000'000);
  ASSERT_FALSE(a.options.empty());
  EXPECT_EQ(a.options[0].mode, "on_demand");
  EXPECT_EQ(a.options[0].monthly, a.on_demand_monthly);
  // One unit ($20 x 730 = $14,600 a month) carries the whole load.
  const buying_option& pt = option(a, "provisioned", "1_month");
  EXPECT_EQ(pt.units, 1u);
  EXPECT_EQ(pt.monthly, 14'600 * usd);
  EXPECT_EQ(pt.spill, 0);
  // $0.0045 an hour on average is below one unit's $20 an hour: on demand wins, whatever a unit
  // carries.
  EXPECT_TRUE(contains(a.recommendation, "Stay on demand")) << a.recommendation;
  EXPECT_TRUE(contains(a.recommendation, "$20.00/h")) << a.recommendation;
  EXPECT_TRUE(contains(a.recommendation, "costs more than all your traffic at $0.0045/h"))
      << a.recommendation;
}

TEST(BuyingMode, ProvisionedPaysUnderSteadyLoadNearCapacity) {
  // A unit carries 10,000 input + 1,000 output TPM; $3/h with no commitment, $2/h for a month.
  const m::rate_table t =
      table_of({on_demand_rate()}, {provisioned(10'000, 1'000,
                                                {unit(commitment_term::no_commit, 3 * usd),
                                                 unit(commitment_term::one_month, 2 * usd)})});
  const options o = window(t, monday, monday + hour);
  // Every minute of the hour: 19,000 input + 1,900 output tokens, costing
  // 19,000 x $3/1M + 1,900 x $15/1M = $0.057 + $0.0285 = $0.0855 a minute, $5.13 an hour.
  std::vector<request_row> rows;
  for (int i = 0; i < 60; ++i) rows.push_back(row(monday + i * minute, 19'000, 1'900));
  const report r = analyse(o, rows);
  ASSERT_EQ(r.buying_mode.size(), 1u);
  const buying_mode_advice& a = r.buying_mode[0];
  EXPECT_EQ(a.on_demand, 5'130'000'000'000);              // $5.13
  EXPECT_EQ(a.on_demand_monthly, 3'744'900'000'000'000);  // $5.13 x 730 = $3,744.90

  // 1 month: one unit is 1.9x overloaded every minute (19,000/10,000 = 1,900/1,000), so
  // 1 - 1/1.9 = 9/19 of each minute spills: $0.0855 x 9/19 = $0.0405 a minute, $2.43 an hour;
  // one unit costs $2 + $2.43 = $4.43/h, two units $4/h and no spill: two units.
  const buying_option& month = option(a, "provisioned", "1_month");
  EXPECT_EQ(month.units, 2u);
  EXPECT_EQ(month.spill, 0);
  EXPECT_EQ(month.monthly, 2'920 * usd);  // 2 x $2 x 730
  // Carried 20,900 tokens a minute out of 2 x 11,000.
  ASSERT_TRUE(month.utilisation.has_value());
  EXPECT_NEAR(*month.utilisation, 20'900.0 / 22'000.0, 1e-12);

  // No commitment: one unit is $3 + $2.43 = $5.43/h; two units $6/h: one unit, with spill.
  const buying_option& none = option(a, "provisioned", "no_commit");
  EXPECT_EQ(none.units, 1u);
  EXPECT_EQ(none.spill, 1'773'900'000'000'000);                    // $2.43 x 730 = $1,773.90
  EXPECT_EQ(none.monthly, (2'190 * usd) + 1'773'900'000'000'000);  // $3 x 730 + spill
  EXPECT_NEAR(*none.utilisation, 1.0, 1e-12);  // 11,000 carried of 11,000 every minute

  // Break-even of one unit at the observed mix: the load costs $0.0855 per 20,900 tokens; a
  // $2/h unit costs $2/60 a minute: (2/60) x 20,900 / 0.0855 = 8,148.148... tokens a minute.
  EXPECT_NEAR(term_value(a.breakeven.tokens_per_minute, "1_month"), 2.0 / 60 * 20'900 / 0.0855,
              1e-6);
  EXPECT_NEAR(term_value(a.breakeven.tokens_per_minute, "no_commit"), 3.0 / 60 * 20'900 / 0.0855,
              1e-6);
  // A full unit is worth 10,000 x $3/1M + 1,000 x $15/1M = $0.045 a minute, $2.70 an hour:
  // break-even at 2/2.7 of a unit.
  EXPECT_NEAR(term_value(a.breakeven.utilisation, "1_month"), 2.0 / 2.7, 1e-12);
  EXPECT_NEAR(term_value(a.breakeven.utilisation, "no_commit"), 3.0 / 2.7, 1e-12);

  EXPECT_TRUE(contains(a.recommendation, "Buy 2 model units on the 1_month term"))
      << a.recommendation;
  EXPECT_TRUE(contains(a.recommendation, "$2920.00/month")) << a.recommendation;
  EXPECT_TRUE(contains(a.recommendation, "$3744.90/month on demand")) << a.recommendation;
  EXPECT_TRUE(contains(a.recommendation, "95.0% used")) << a.recommendation;
  EXPECT_FALSE(contains(a.recommendation, "scale-down")) << a.recommendation;
}

TEST(BuyingMode, SpikeSpillsAboveTheChosenUnits) {
  // A unit carries 1,000 input + 100 output TPM, $0.18/h for a month.
  const m::rate_table t =
      table_of({on_demand_rate()},
               {provisioned(1'000, 100, {unit(commitment_term::one_month, 180'000'000'000)})});
  const options o = window(t, monday, monday + 10 * minute);
  // Ten minutes: eight at exactly one unit (1,000 in + 100 out: $0.003 + $0.0015 = $0.0045),
  // minute 8 idle, minute 9 a spike of 3,000 in + 100 out ($0.009 + $0.0015 = $0.0105).
  std::vector<request_row> rows;
  for (int i = 0; i < 8; ++i) rows.push_back(row(monday + i * minute, 1'000, 100));
  rows.push_back(row(monday + 9 * minute + 30'000, 3'000, 100));
  const report r = analyse(o, rows);
  ASSERT_EQ(r.buying_mode.size(), 1u);
  const buying_mode_advice& a = r.buying_mode[0];
  EXPECT_EQ(a.on_demand, 46'500'000'000);  // 8 x $0.0045 + $0.0105 = $0.0465

  // One unit for ten minutes: $0.18 / 6 = $0.03. In the spike the input is 3x the unit
  // (3,000/1,000 beats 100/100), so 1 - 1/3 of that minute's $0.0105 spills: $0.007.
  // Total $0.037. Two units cost $0.06 before any spill: more. One unit it is.
  const buying_option& pt = option(a, "provisioned", "1_month");
  EXPECT_EQ(pt.units, 1u);
  // A month is 730 h / (10 min) = 4,380 windows: spill $0.007 x 4,380 = $30.66.
  EXPECT_EQ(pt.spill, 7'000'000'000 * 4'380);
  EXPECT_EQ(pt.spill, 30'660'000'000'000);
  // Commitment $0.18 x 730 = $131.40; with the spill $162.06.
  EXPECT_EQ(pt.monthly, 131'400'000'000'000 + 30'660'000'000'000);
  // Carried: nine busy minutes x 1,100 (the spike is cut to 1,000 + 100) of 10 x 1,100.
  EXPECT_NEAR(*pt.utilisation, 9'900.0 / 11'000.0, 1e-12);
  // On demand: $0.0465 x 4,380 = $203.67 a month, more than $162.06.
  EXPECT_EQ(a.on_demand_monthly, 203'670'000'000'000);
  EXPECT_TRUE(contains(a.recommendation, "Buy 1 model unit on the 1_month term"))
      << a.recommendation;
  EXPECT_TRUE(contains(a.recommendation, "$30.66 of it billed on demand")) << a.recommendation;
}

TEST(BuyingMode, MissingUnitCapacityGivesAFloorAndBreakEvenOnly) {
  // The unit's throughput is not in the table: $40/h with no commitment, $30/h for a month.
  const m::rate_table t =
      table_of({on_demand_rate()}, {provisioned(std::nullopt, std::nullopt,
                                                {unit(commitment_term::no_commit, 40 * usd),
                                                 unit(commitment_term::one_month, 30 * usd)})});
  const options o = window(t, monday, monday + hour);
  // Every minute: 200,000 in + 20,000 out = $0.60 + $0.30 = $0.90; $54 an hour, more than a
  // unit's price, so the robust "a unit costs more than all your traffic" does not apply.
  std::vector<request_row> rows;
  for (int i = 0; i < 60; ++i) rows.push_back(row(monday + i * minute, 200'000, 20'000));
  const report r = analyse(o, rows);
  ASSERT_EQ(r.buying_mode.size(), 1u);
  const buying_mode_advice& a = r.buying_mode[0];
  EXPECT_EQ(a.on_demand_monthly, 54 * 730 * usd);  // $39,420

  const buying_option& none = option(a, "provisioned", "no_commit");
  EXPECT_FALSE(none.units.has_value());
  EXPECT_FALSE(none.spill.has_value());
  EXPECT_FALSE(none.utilisation.has_value());
  EXPECT_EQ(none.monthly, 40 * 730 * usd);  // one unit: $29,200, a floor
  EXPECT_TRUE(contains(none.note, "a model unit's throughput is not in the rate table"))
      << none.note;
  EXPECT_TRUE(contains(none.note, "at least one unit costs $29200.00/month")) << none.note;
  EXPECT_TRUE(contains(none.note, "model_unit.input_tpm/output_tpm")) << none.note;
  // The 1-month floor ($21,900) is below on demand ($39,420), but its true cost is unknown.
  EXPECT_EQ(option(a, "provisioned", "1_month").monthly, 30 * 730 * usd);

  // Break-even at the mix: $0.90 per 220,000 tokens; a $30/h unit costs $0.50 a minute:
  // 0.5 x 220,000 / 0.9 = 122,222.2 tokens a minute. No utilisation without a capacity.
  EXPECT_NEAR(term_value(a.breakeven.tokens_per_minute, "1_month"), 0.5 * 220'000 / 0.9, 1e-6);
  EXPECT_NEAR(term_value(a.breakeven.tokens_per_minute, "no_commit"), 40.0 / 60 * 220'000 / 0.9,
              1e-6);
  EXPECT_TRUE(a.breakeven.utilisation.empty());

  // Never a commitment whose cost is unknown: stay on demand, the average 220,000 tokens/min
  // against the cheapest term's break-even.
  EXPECT_TRUE(contains(a.recommendation, "Stay on demand until a model unit's throughput is known"))
      << a.recommendation;
  EXPECT_TRUE(contains(a.recommendation, "220000 tokens/min is above")) << a.recommendation;
  EXPECT_TRUE(contains(a.recommendation, "122222 tokens/min on the 1_month term"))
      << a.recommendation;
}

/// Sonnet 4.6 in a US geographic profile: $3.30 / 1M input, $16.50 / 1M output; the Reserved
/// tier at $0.198 per 1,000 input TPM per hour = 60,000 tokens x $3.30/1M, i.e. the on-demand
/// price at 100% use, and $0.99 per 1,000 output TPM per hour (60,000 x $16.50/1M).
m::rate_table reserved_table() {
  m::provisioned_entry p = provisioned(std::nullopt, std::nullopt, {});
  m::reserved_tier_price price;
  price.term = commitment_term::one_month;
  price.scope = m::inference_scope::geo;
  price.input_per_1k_tpm_hour = 198'000'000'000;
  price.output_per_1k_tpm_hour = 990'000'000'000;
  price.min_input_tpm = 1'000;
  price.min_output_tpm = 1'000;
  price.source = "test reserved";
  p.reserved = {price};
  return table_of({on_demand_rate(3'300'000, 16'500'000)}, {p});
}

request_row geo_row(std::int64_t t, std::uint64_t in, std::uint64_t out) {
  request_row r = row(t, in, out, "geo");
  r.model_requested = "us.anthropic.claude-sonnet-4-6";
  r.total_cost =
      static_cast<m::pico_usd>(in) * 3'300'000 + static_cast<m::pico_usd>(out) * 16'500'000;
  return r;
}

TEST(BuyingMode, ReservedAtTheOnDemandEqualPriceBuysCapacityNotADiscount) {
  const m::rate_table t = reserved_table();
  const options o = window(t, monday, monday + hour);
  // Steady: every minute 5,000 in + 1,000 out = $0.0165 + $0.0165 = $0.033; $1.98 an hour.
  std::vector<request_row> rows;
  for (int i = 0; i < 60; ++i) rows.push_back(geo_row(monday + i * minute, 5'000, 1'000));
  const report r = analyse(o, rows);
  ASSERT_EQ(r.buying_mode.size(), 1u);
  const buying_mode_advice& a = r.buying_mode[0];
  EXPECT_EQ(a.scope, "geo");
  EXPECT_EQ(a.on_demand_monthly, 1'445'400'000'000'000);  // $1.98 x 730 = $1,445.40
  const buying_option& res = option(a, "reserved", "1_month");
  // Reserving R input TPM costs R/1000 x $0.198 an hour and leaves (5,000 - R) x 60 tokens at
  // $3.30/1M = (5,000 - R) x $0.000198 an hour: $0.99 an hour for every R. The first (smallest)
  // candidate, the 1,000 TPM minimum, is kept. Output: 1,000 TPM at $0.99 an hour, the minimum.
  EXPECT_EQ(res.units, 1'000u);
  EXPECT_EQ(res.reserved_output_tpm, 1'000u);
  // $0.99 + $0.99 = $1.98 an hour: exactly on demand, never below.
  EXPECT_EQ(res.monthly, a.on_demand_monthly);
  // Overflow: 4,000 input TPM x 60 x $3.30/1M = $0.792 an hour, x 730 = $578.16.
  EXPECT_EQ(res.spill, 578'160'000'000'000);
  EXPECT_NEAR(*res.utilisation, 1.0, 1e-12);  // both reservations full every minute
  // A tie is no reason to commit.
  EXPECT_TRUE(contains(a.recommendation, "Stay on demand")) << a.recommendation;
}

TEST(BuyingMode, ReservedAtTheOnDemandEqualPriceIsNeverCheaper) {
  const m::rate_table t = reserved_table();
  const options o = window(t, monday, monday + hour);
  // Uneven loads: whatever R, an hour of R reserved costs what R TPM used all hour would cost
  // on demand, so any minute below R is paid for twice over nothing.
  const std::vector<std::vector<std::uint64_t>> shapes = {
      {5'000, 0}, {100, 20'000, 300}, {1'000, 2'000, 3'000, 4'000}, {50}};
  for (const auto& shape : shapes) {
    std::vector<request_row> rows;
    for (int i = 0; i < 60; ++i) {
      const std::uint64_t in = shape[static_cast<std::size_t>(i) % shape.size()];
      rows.push_back(geo_row(monday + i * minute, in, in / 5));
    }
    const report r = analyse(o, rows);
    ASSERT_EQ(r.buying_mode.size(), 1u);
    const buying_mode_advice& a = r.buying_mode[0];
    EXPECT_GE(*option(a, "reserved", "1_month").monthly, a.on_demand_monthly);
    EXPECT_TRUE(contains(a.recommendation, "Stay on demand")) << a.recommendation;
  }
}

TEST(BuyingMode, ReservedPriceForAnotherScopeIsNotOffered) {
  const m::rate_table t = reserved_table();  // geo only
  const options o = window(t, monday, monday + hour);
  const report r = analyse(o, {row(monday, 5'000, 1'000)});  // in-region traffic
  ASSERT_EQ(r.buying_mode.size(), 1u);
  for (const buying_option& opt : r.buying_mode[0].options) EXPECT_NE(opt.mode, "reserved");
}

TEST(BuyingMode, MappedProvisionedModelKeepOrDrop) {
  m::rate_table t =
      table_of({on_demand_rate()},
               {provisioned(10'000, 1'000, {unit(commitment_term::one_month, 20 * usd)})});
  const std::string big = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/big";
  const std::string small = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/small";
  std::vector<m::model_mapping> maps = {{big, std::string(sonnet), 40.0, "", ""},
                                        {small, std::string(sonnet), 0.4, "", ""}};
  options o = window(t, monday, monday + 2 * hour);
  o.mappings = &maps;
  // The first hour, every minute, one request through each ARN: 4,000 input, 5,000 cache read,
  // 1,000 cache write (5m), 500 output. On demand that is 4,000 x $3 + 5,000 x $0.30 +
  // 1,000 x $3.75 + 500 x $15 per 1M = $0.012 + $0.0015 + $0.00375 + $0.0075 = $0.02475.
  std::vector<request_row> rows;
  for (int i = 0; i < 60; ++i) {
    for (const std::string* arn : {&big, &small}) {
      request_row x = row(monday + i * minute, 4'000, 500);
      x.model_requested = *arn;
      x.cache_read_tokens = 5'000;
      x.cache_write_tokens = 1'000;
      x.total_cost = 0;  // billed hourly: the meter prices the tokens at 0
      rows.push_back(x);
    }
  }
  const report r = analyse(o, rows);
  EXPECT_TRUE(r.buying_mode.empty());  // mapped traffic is not on-demand traffic
  ASSERT_EQ(r.provisioned.size(), 2u);
  const provisioned_usage& b = r.provisioned[0];  // largest commitment first
  EXPECT_EQ(b.arn, big);
  EXPECT_EQ(b.model, sonnet);
  EXPECT_EQ(b.region, "us-east-1");
  EXPECT_EQ(b.requests, 60u);
  EXPECT_EQ(b.committed, 80 * usd);                      // $40 x 2 h
  EXPECT_EQ(b.on_demand_equivalent, 1'485'000'000'000);  // 60 x $0.02475 = $1.485
  // $40/h is 2 units at the $20 1-month price: capacity 2 x (10,000 + 1,000) a minute over 120
  // minutes = 2,640,000; carried 60 x (10,000 input + 500 output) = 630,000.
  ASSERT_TRUE(b.utilisation.has_value());
  EXPECT_NEAR(*b.utilisation, 630'000.0 / 2'640'000.0, 1e-12);
  EXPECT_EQ(b.input_tpm.max, 10'000);
  EXPECT_TRUE(contains(b.recommendation, "Drop it: the $80.00 committed is 53.87x the $1.49"))
      << b.recommendation;  // 80 / 1.485 = 53.872
  EXPECT_TRUE(contains(b.recommendation, "2 units on the 1_month term")) << b.recommendation;
  EXPECT_TRUE(contains(b.recommendation, "below 50%")) << b.recommendation;

  const provisioned_usage& s = r.provisioned[1];
  EXPECT_EQ(s.committed, 800'000'000'000);  // $0.40 x 2 h
  EXPECT_EQ(s.on_demand_equivalent, 1'485'000'000'000);
  // $0.40/h is no whole number of $20 units: utilisation unknown, and said so.
  EXPECT_FALSE(s.utilisation.has_value());
  // 1.485 / 0.80 = 1.856
  EXPECT_TRUE(contains(s.recommendation,
                       "Keep it: the same traffic would have cost $1.49 on "
                       "demand, 1.86x the $0.80 committed"))
      << s.recommendation;
  EXPECT_TRUE(contains(s.recommendation, "utilisation unknown")) << s.recommendation;
}

TEST(BuyingMode, PercentilesCountIdleMinutes) {
  const m::rate_table t = table_of({on_demand_rate()});
  const options o = window(t, monday, monday + 100 * minute);
  // 100 minutes, three busy: input 100, 200, 300; output 10 each. Sorted input: 97 zeros, 100,
  // 200, 300. Nearest rank: p50 is the 50th value (0), p95 the 95th (0), p99 the 99th (200).
  const report r = analyse(o, {row(monday, 100, 10), row(monday + minute, 200, 10),
                               row(monday + 2 * minute + 59'999, 300, 10)});
  ASSERT_EQ(r.buying_mode.size(), 1u);
  const load_summary& in = r.buying_mode[0].input_tpm;
  EXPECT_EQ(in.p50, 0);
  EXPECT_EQ(in.p95, 0);
  EXPECT_EQ(in.p99, 200);
  EXPECT_EQ(in.max, 300);
  EXPECT_DOUBLE_EQ(in.mean, 6.0);  // 600 / 100
  const load_summary& out = r.buying_mode[0].output_tpm;
  EXPECT_EQ(out.p99, 10);  // 97 zeros then three 10s: the 99th value is 10
  EXPECT_EQ(out.p50, 0);
  EXPECT_DOUBLE_EQ(out.mean, 0.3);  // 30 / 100
  // No provisioned entry: on demand, and why.
  EXPECT_TRUE(contains(r.buying_mode[0].recommendation, "no Provisioned Throughput or Reserved"))
      << r.buying_mode[0].recommendation;
}

TEST(BuyingMode, HourOfWeekBucketOfAKnownTime) {
  const m::rate_table t = table_of({on_demand_rate()});
  const options o = window(t, monday, monday + 7 * 24 * hour);
  // Wednesday 2024-01-03 13:30 UTC: day 2 (Monday is 0) hour 13 -> bucket 2 x 24 + 13 = 61.
  const std::int64_t wednesday_1330 = monday + 2 * 24 * hour + 13 * hour + 30 * minute;
  const report r = analyse(o, {row(wednesday_1330, 600, 60)});
  ASSERT_EQ(r.buying_mode.size(), 1u);
  const std::vector<double>& week = r.buying_mode[0].hour_of_week;
  ASSERT_EQ(week.size(), 168u);
  // The window holds that hour once: 60 minutes; 660 tokens / 60 = 11 a minute.
  EXPECT_DOUBLE_EQ(week[61], 11.0);
  double others = 0;
  for (std::size_t h = 0; h < week.size(); ++h) others += h == 61 ? 0 : week[h];
  EXPECT_EQ(others, 0);
}

TEST(BuyingMode, SkipsRefusedBatchUnpricedAndUnknownRows) {
  const m::rate_table t = table_of({on_demand_rate()});
  const options o = window(t, monday, monday + hour);
  request_row refused = row(monday, 100, 10);
  refused.outcome = "refused";
  request_row batch = row(monday, 100, 10);
  batch.batch = true;
  request_row unpriced = row(monday, 100, 10);
  unpriced.priced = false;
  request_row unknown = row(monday, 100, 10);
  unknown.model_base = "";
  request_row outside = row(monday + hour, 100, 10);  // the window's end is exclusive
  const report r = analyse(o, {refused, batch, unpriced, unknown, outside, row(monday, 100, 10)});
  ASSERT_EQ(r.buying_mode.size(), 1u);
  EXPECT_EQ(r.buying_mode[0].requests, 1u);
}

TEST(BuyingMode, GroupsByScopeAndSortsBySpend) {
  const m::rate_table t = table_of({on_demand_rate()});
  const options o = window(t, monday, monday + hour);
  const report r = analyse(o, {row(monday, 100, 10, "in_region"), row(monday, 1'000, 10, "geo")});
  ASSERT_EQ(r.buying_mode.size(), 2u);
  EXPECT_EQ(r.buying_mode[0].scope, "geo");  // $0.00315 before $0.00045
  EXPECT_EQ(r.buying_mode[1].scope, "in_region");
}

TEST(BuyingMode, NoOnDemandRateIsANote) {
  m::rate_entry other = on_demand_rate();
  other.regions = {"eu-west-1"};
  const m::rate_table t =
      table_of({other}, {provisioned(10'000, 1'000, {unit(commitment_term::one_month, 20 * usd)})});
  const options o = window(t, monday, monday + hour);
  const report r = analyse(o, {row(monday, 100, 10)});
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_TRUE(
      contains(r.notes[0], "no on-demand rate for anthropic.claude-sonnet-4-6 in us-east-1"))
      << r.notes[0];
  ASSERT_EQ(r.buying_mode.size(), 1u);
  EXPECT_TRUE(r.buying_mode[0].breakeven.tokens_per_minute.empty());
}

// ---- the analyzer --------------------------------------------------------------------------

TEST(Analyzer, CountsOnlyRowsInsideTheWindow) {
  const m::rate_table t = table_of({on_demand_rate()});
  analyzer a(window(t, monday, monday + hour));
  // [since, until): the row 1 ms before and the row at `until` are out.
  a.add(row(monday - 1, 1'000'000, 0));
  a.add(row(monday, 1'000, 100));           // $0.003 + $0.0015 = $0.0045
  a.add(row(monday + hour - 1, 2'000, 0));  // $0.006
  a.add(row(monday + hour, 1'000'000, 0));
  const report r = a.finish();
  EXPECT_EQ(r.since_ms, monday);
  EXPECT_EQ(r.until_ms, monday + hour);
  EXPECT_EQ(r.requests, 2u);
  EXPECT_EQ(r.spend, 10'500'000'000);  // $0.0105
  EXPECT_EQ(r.rate_table_version, "test-1");
  ASSERT_EQ(r.buying_mode.size(), 1u);
  EXPECT_EQ(r.buying_mode[0].requests, 2u);
  EXPECT_EQ(r.buying_mode[0].input_tpm.max, 2'000);
}

TEST(Analyzer, SortsBuyingModeBySpend) {
  m::rate_entry haiku = on_demand_rate();
  haiku.model = "anthropic.claude-haiku-4-5";
  const m::rate_table t = table_of({on_demand_rate(), haiku});
  analyzer a(window(t, monday, monday + hour));
  request_row small = row(monday, 100, 0);  // $0.0003
  small.model_base = "anthropic.claude-haiku-4-5";
  small.model_requested = "anthropic.claude-haiku-4-5";
  a.add(small);
  a.add(row(monday + minute, 1'000, 0));  // $0.003
  const report r = a.finish();
  ASSERT_EQ(r.buying_mode.size(), 2u);
  EXPECT_EQ(r.buying_mode[0].model, sonnet);
  EXPECT_EQ(r.buying_mode[1].model, "anthropic.claude-haiku-4-5");
}

}  // namespace
}  // namespace bedrock_meter::advice
