// `rates diff`: prices compared region by region as the pricer resolves rows.
#include <gtest/gtest.h>

#include "billing/rates_diff.hpp"
#include "config/rate_table_loader.hpp"

namespace bedrock_meter::billing {
namespace {

std::shared_ptr<const metering::rate_table> table(const std::string& entries,
                                                  const std::string& rest = "") {
  auto r = config::load_rate_table_string(
      "version: t\ncurrency: USD\nunit: per_million_tokens\nentries:\n" + entries + rest, "t.yaml");
  for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
  return r.table;
}

std::string text(const std::vector<price_change>& changes) {
  constexpr const char* words[] = {"added", "removed", "changed"};
  std::string out;
  for (const auto& c : changes) {
    out += std::string(words[static_cast<int>(c.what)]) + " " + c.row + " " + c.field + " " +
           (c.before ? std::to_string(*c.before) : "-") + " " +
           (c.after ? std::to_string(*c.after) : "-") + "\n";
  }
  return out;
}

const std::string nova_star =
    "  - {model: amazon.nova-pro-v1:0, regions: ['*'], input: '0.80', output: '3.20', "
    "source: s}\n";

TEST(RatesDiff, TheSameTableHasNoChanges) {
  const auto a = table(nova_star);
  EXPECT_TRUE(diff_rate_tables(*a, *a).empty());
}

TEST(RatesDiff, AChangedPriceNamesTheRowTheFieldAndBothValues) {
  const auto a = table(nova_star);
  const auto b = table(
      "  - {model: amazon.nova-pro-v1:0, regions: ['*'], input: '0.88', output: '3.20', "
      "cache_read: '0.20', source: s}\n");
  EXPECT_EQ(text(diff_rate_tables(*a, *b)),
            "added amazon.nova-pro-v1:0 * cache_read - 200000\n"
            "changed amazon.nova-pro-v1:0 * input 800000 880000\n");
}

TEST(RatesDiff, SpeechRatesAreComparedToo) {
  const auto a = table(
      "  - {model: amazon.nova-sonic-v1:0, regions: ['*'], input: '0.06', output: '0.24', "
      "speech_input: '3.40', speech_output: '13.60', source: s}\n");
  const auto b = table(
      "  - {model: amazon.nova-sonic-v1:0, regions: ['*'], input: '0.06', output: '0.24', "
      "speech_input: '3.40', speech_output: '12.00', source: s}\n");
  EXPECT_EQ(text(diff_rate_tables(*a, *b)),
            "changed amazon.nova-sonic-v1:0 * speech_output 13600000 12000000\n");
}

TEST(RatesDiff, ARegionRowIsComparedWithTheStarRowItOverrides) {
  // The shipped table prices every region with "*"; an import names us-east-1. In us-east-1
  // the new row replaces the "*" price; elsewhere the "*" row is gone.
  const auto a = table(nova_star);
  const auto b = table(
      "  - {model: amazon.nova-pro-v1:0, regions: [us-east-1], input: '0.80', output: '3.60', "
      "source: s}\n");
  EXPECT_EQ(text(diff_rate_tables(*a, *b)),
            "removed amazon.nova-pro-v1:0 * input 800000 -\n"
            "removed amazon.nova-pro-v1:0 * output 3200000 -\n"
            "changed amazon.nova-pro-v1:0 us-east-1 output 3200000 3600000\n");
}

TEST(RatesDiff, SelectorsKeepRowsApart) {
  const auto a = table(nova_star);
  const auto b = table(nova_star +
                       "  - {model: amazon.nova-pro-v1:0, regions: ['*'], tier: priority, "
                       "input: '1.40', output: '5.60', source: s}\n");
  EXPECT_EQ(text(diff_rate_tables(*a, *b)),
            "added amazon.nova-pro-v1:0 * tier=priority input - 1400000\n"
            "added amazon.nova-pro-v1:0 * tier=priority output - 5600000\n");
}

TEST(RatesDiff, CapacityPricesAreCompared) {
  const std::string pt_a =
      "provisioned:\n  - model: amazon.nova-pro-v1:0\n    regions: [us-east-1]\n"
      "    model_units:\n      - {term: no_commit, hourly: '60.50', source: s}\n";
  const std::string pt_b =
      "provisioned:\n  - model: amazon.nova-pro-v1:0\n    regions: [us-east-1]\n"
      "    model_units:\n      - {term: no_commit, hourly: '58.00', source: s}\n"
      "      - {term: 1_month, hourly: '55.00', source: s}\n";
  const auto a = table(nova_star, pt_a);
  const auto b = table(nova_star, pt_b);
  EXPECT_EQ(text(diff_rate_tables(*a, *b)),
            "added amazon.nova-pro-v1:0 us-east-1 provisioned model_units.1_month.hourly - "
            "55000000\n"
            "changed amazon.nova-pro-v1:0 us-east-1 provisioned model_units.no_commit.hourly "
            "60500000 58000000\n");
}

}  // namespace
}  // namespace bedrock_meter::billing
