// EDP commitments against ledger spend, and the plan (billing/commitment.hpp). Every expected
// figure is worked out by hand in the comment beside it.
#include <gtest/gtest.h>

#include "billing/commitment.hpp"

namespace bedrock_meter::billing {
namespace {

using namespace std::chrono;
using metering::money_total;

constexpr money_total usd(long long dollars) {
  return static_cast<money_total>(dollars) * 1'000'000'000'000;
}

config::commitment_config contract() {
  config::commitment_config c;
  c.name = "edp-2026";
  c.start = 2026y / January / 1;
  c.end = 2028y / January / 1;             // two contract years
  c.per_year_micro_usd = 365'000'000'000;  // $365,000 a year: $1,000 a day
  c.discount_ppm = 100'000;                // 10%
  c.marketplace_counts_ppm = 250'000;      // a quarter of Marketplace spend counts
  return c;
}

TEST(Commitment, CountsNetSpendAndForecastsTheYearsRunRate) {
  const auto c = contract();
  const sys_days today = sys_days(2026y / January / 10);  // day 10 of 365
  const std::vector<day_model_spend> spend{
      {sys_days(2026y / January / 2), "amazon.nova-pro-v1:0", usd(500)},
      {sys_days(2026y / January / 5), "amazon.nova-pro-v1:0", usd(500)},
      {sys_days(2026y / January / 7), "anthropic.claude-haiku-4-5-20251001-v1:0", usd(1000)},
      {sys_days(2025y / December / 31), "amazon.nova-pro-v1:0", usd(999)},  // before the term
      {sys_days(2026y / January / 11), "amazon.nova-pro-v1:0", usd(999)},   // after today
  };
  const auto r = evaluate_commitment(c, spend, today);
  ASSERT_EQ(r.years.size(), 1U) << "year 2 has not begun";
  const auto& y = r.years[0];
  EXPECT_EQ(y.days, 365);
  EXPECT_EQ(y.days_elapsed, 10);
  EXPECT_EQ(y.list_aws, usd(1000));
  EXPECT_EQ(y.list_marketplace, usd(1000));
  EXPECT_EQ(y.net_aws, usd(900));           // 10% off
  EXPECT_EQ(y.net_marketplace, usd(1000));  // Marketplace not discounted
  EXPECT_EQ(y.counted_bedrock, usd(1150));  // 900 + 25% of 1000
  // Run rate: 1150 over 10 days -> 115/day x 365 = 41,975.
  EXPECT_EQ(y.forecast, usd(41'975));
  EXPECT_EQ(y.commitment, usd(365'000));
  EXPECT_EQ(y.shortfall, usd(365'000 - 41'975));
  EXPECT_EQ(y.surplus, 0);
  ASSERT_EQ(r.models.size(), 2U);
  EXPECT_EQ(r.models[0].model, "amazon.nova-pro-v1:0");  // list 1000 ties; stable by name
  EXPECT_FALSE(r.models[0].marketplace);
  EXPECT_EQ(r.models[0].net, usd(900));
  EXPECT_EQ(r.models[0].discount_ppm, 100'000);
  EXPECT_TRUE(r.models[1].marketplace);
  EXPECT_EQ(r.models[1].discount_ppm, 0);
}

TEST(Commitment, MarketplaceRulesAndOtherSpendAreTheContracts) {
  auto c = contract();
  c.marketplace_discounted = true;
  c.marketplace_counts_ppm = 1'000'000;                // the "100% counts" reading
  c.other_spend_per_year_micro_usd = 730'000'000'000;  // $730,000 a year of EC2 etc.
  const std::vector<day_model_spend> spend{
      {sys_days(2026y / March / 1), "anthropic.claude-haiku-4-5-20251001-v1:0", usd(3650)}};
  // Day 73 of the year: 31 + 28 + 1 + 13 = 73 days elapsed on March 14.
  const auto r = evaluate_commitment(c, spend, sys_days(2026y / March / 14));
  const auto& y = r.years.at(0);
  EXPECT_EQ(y.days_elapsed, 73);
  EXPECT_EQ(y.net_marketplace, usd(3285));   // 10% off 3650
  EXPECT_EQ(y.counted_bedrock, usd(3285));   // all of it counts
  EXPECT_EQ(y.counted_other, usd(146'000));  // 730,000 x 73/365
  // 3285 / 73 days x 365 = 16,425; + 730,000 other = 746,425 > 365,000.
  EXPECT_EQ(y.forecast, usd(746'425));
  EXPECT_EQ(y.surplus, usd(746'425 - 365'000));
}

TEST(Commitment, ContractYearsAndAShortLastYear) {
  auto c = contract();
  c.end = 2027y / July / 2;  // 1.5 years: the second contract year is 182 days
  const auto r = evaluate_commitment(c, {}, sys_days(2027y / March / 1));
  ASSERT_EQ(r.years.size(), 2U);
  EXPECT_EQ(r.years[0].days_elapsed, 365) << "a past year is whole";
  EXPECT_EQ(r.years[1].start, sys_days(2027y / January / 1));
  EXPECT_EQ(r.years[1].days, 182);
  EXPECT_EQ(r.years[1].commitment, usd(182'000)) << "prorated: $1,000 a day";
  EXPECT_EQ(r.years[1].forecast, 0);
  EXPECT_EQ(r.years[1].shortfall, usd(182'000));
  EXPECT_TRUE(evaluate_commitment(c, {}, sys_days(2025y / December / 1)).years.empty());
}

TEST(CommitmentPlan, ProjectsTheTrailingMonthWithCompoundingGrowth) {
  plan_options o;
  o.years = 2;
  o.discount_ppm = 100'000;
  // $30,000 over 30 days = $1,000/day -> $30,416.666667 a month (365/12 days).
  auto flat = plan_commitment(usd(30'000), 0, o);
  ASSERT_EQ(flat.size(), 2U);
  EXPECT_EQ(flat[0].list, usd(365'000));
  EXPECT_EQ(flat[0].net, usd(328'500));
  EXPECT_EQ(flat[1].list, usd(365'000));
  o.growth_per_month = 0.05;
  auto growing = plan_commitment(usd(30'000), usd(30'000), o);
  // Year 1: month x sum(1.05^m, m=0..11) = 30,416.666667 x 15.917127 = 484,146.24 per side.
  EXPECT_NEAR(static_cast<double>(growing[0].list) / 1e12, 2 * 484'146.24, 1.0);
  // Year 2 is 1.05^12 = 1.795856 times year 1.
  EXPECT_NEAR(static_cast<double>(growing[1].list) / static_cast<double>(growing[0].list), 1.795856,
              1e-5);
  // Counted: AWS net (90%) + a quarter of undiscounted Marketplace.
  EXPECT_NEAR(static_cast<double>(growing[0].counted) / 1e12, 484'146.24 * (0.9 + 0.25), 1.0);
}

}  // namespace
}  // namespace bedrock_meter::billing
