// Rendering tests: a hand-built report rendered as JSON (parsed back with Boost.JSON and checked
// key by key), as terminal text and as Markdown. Amounts are pico-USD: $1 = 1e12.
#include "advice/advice.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

namespace bedrock_meter::advice {
namespace {

namespace json = boost::json;

constexpr std::int64_t monday = 1'704'067'200'000;  // 2024-01-01T00:00:00Z
constexpr std::int64_t week_ms = 7 * 24 * 3'600'000LL;
constexpr money_total usd = 1'000'000'000'000;

buying_mode_advice sample_buying() {
  buying_mode_advice a;
  a.model = "anthropic.claude-sonnet-4-6";
  a.region = "us-east-1";
  a.scope = "geo";
  a.requests = 42;
  a.on_demand = 1'500'000'000'000;  // $1.50
  a.on_demand_monthly = 2 * usd;
  a.input_tpm = {1, 2, 3, 4, 2.5};
  a.output_tpm = {0, 0, 1, 1, 0.25};
  a.hour_of_week.assign(168, 0.0);
  a.hour_of_week[61] = 11;
  buying_option od{"on_demand",  "none",       std::nullopt,
                   std::nullopt, 2 * usd,      std::nullopt,
                   std::nullopt, "the ledger", ""};
  buying_option pt{"provisioned", "no_commit",       std::nullopt,
                   std::nullopt,  29'200 * usd,      std::nullopt,
                   std::nullopt,  "test unit price", "a unit's throughput is unknown"};
  buying_option res{"reserved",          "1_month", 1'000u,          2'000u, 1'445'400'000'000'000,
                    578'160'000'000'000, 0.75,      "test reserved", ""};
  a.options = {od, pt, res};
  a.breakeven.tokens_per_minute = {{"no_commit", 1234.5}};
  a.recommendation = "Stay on demand: because of the numbers.";
  return a;
}

report sample() {
  report r;
  r.since_ms = monday;
  r.until_ms = monday + week_ms;
  r.requests = 42;
  r.spend = 12'345'678'900'000;  // $12.3456789 -> "12.345679"
  r.rate_table_version = "test-1";
  r.buying_mode = {sample_buying()};
  provisioned_usage u;
  u.arn = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/big";
  u.model = "anthropic.claude-sonnet-4-6";
  u.region = "us-east-1";
  u.requests = 60;
  u.committed = 80 * usd;
  u.on_demand_equivalent = 1'485'000'000'000;
  u.input_tpm = {0, 10'000, 10'000, 10'000, 5'000};
  u.recommendation = "Drop it: the numbers say so.";
  r.provisioned = {u};
  lever l;
  l.name = "prompt_caching";
  l.team = "search";
  l.app = "bot";
  l.model = "anthropic.claude-sonnet-4-6";
  l.savings = 3 * usd;
  l.monthly_savings = 9 * usd;
  l.evidence_json = R"({"requests":12,"hit_rate":0.5,"saved_usd":"1.500000"})";
  l.caveat = "Only if the prefixes repeat.";
  r.levers = {l};
  r.notes = {"rows without traits: 3"};
  return r;
}

TEST(Render, JsonShape) {
  const json::value doc = json::parse(to_json(sample()));
  const json::object& o = doc.as_object();
  const json::object& w = o.at("window").as_object();
  EXPECT_EQ(w.at("since").as_string(), "2024-01-01T00:00:00Z");
  EXPECT_EQ(w.at("until").as_string(), "2024-01-08T00:00:00Z");
  EXPECT_EQ(w.at("requests").to_number<std::uint64_t>(), 42u);
  EXPECT_EQ(w.at("spend_usd").as_string(), "12.345679");
  EXPECT_EQ(o.at("rate_table_version").as_string(), "test-1");

  const json::object& b = o.at("buying_mode").as_array().at(0).as_object();
  EXPECT_EQ(b.at("model").as_string(), "anthropic.claude-sonnet-4-6");
  EXPECT_EQ(b.at("region").as_string(), "us-east-1");
  EXPECT_EQ(b.at("scope").as_string(), "geo");
  EXPECT_EQ(b.at("requests").to_number<std::uint64_t>(), 42u);
  EXPECT_EQ(b.at("on_demand_usd").as_string(), "1.500000");
  EXPECT_EQ(b.at("on_demand_monthly_usd").as_string(), "2.000000");
  const json::object& load = b.at("load").as_object();
  EXPECT_EQ(load.at("input_tpm").at("p50").to_number<double>(), 1.0);
  EXPECT_EQ(load.at("input_tpm").at("mean").to_number<double>(), 2.5);
  EXPECT_EQ(load.at("output_tpm").at("max").to_number<double>(), 1.0);
  const json::array& week = load.at("hour_of_week").as_array();
  ASSERT_EQ(week.size(), 168u);
  EXPECT_EQ(week.at(61).to_number<double>(), 11.0);
  // Whole numbers are written as JSON integers, fractions as doubles.
  EXPECT_TRUE(week.at(0).is_int64());
  EXPECT_TRUE(load.at("input_tpm").at("p50").is_int64());
  EXPECT_TRUE(load.at("input_tpm").at("mean").is_double());

  EXPECT_EQ(b.at("recommendation").as_string(), "Stay on demand: because of the numbers.");
}

TEST(Render, JsonOptionsAndBreakEven) {
  const json::value doc = json::parse(to_json(sample()));
  const json::object& b = doc.at("buying_mode").as_array().at(0).as_object();
  const json::array& opts = b.at("options").as_array();
  ASSERT_EQ(opts.size(), 3u);
  const json::object& od = opts.at(0).as_object();
  EXPECT_EQ(od.at("mode").as_string(), "on_demand");
  EXPECT_EQ(od.at("term").as_string(), "none");
  EXPECT_TRUE(od.at("units").is_null());
  EXPECT_FALSE(od.contains("reserved_output_tpm"));  // reserved only
  EXPECT_EQ(od.at("monthly_usd").as_string(), "2.000000");
  EXPECT_TRUE(od.at("spill_usd").is_null());
  EXPECT_TRUE(od.at("utilisation").is_null());
  EXPECT_EQ(od.at("source").as_string(), "the ledger");
  const json::object& pt = opts.at(1).as_object();
  EXPECT_TRUE(pt.at("units").is_null());
  EXPECT_EQ(pt.at("monthly_usd").as_string(), "29200.000000");
  EXPECT_EQ(pt.at("note").as_string(), "a unit's throughput is unknown");
  const json::object& res = opts.at(2).as_object();
  EXPECT_EQ(res.at("units").to_number<std::uint64_t>(), 1'000u);
  EXPECT_EQ(res.at("reserved_output_tpm").to_number<std::uint64_t>(), 2'000u);
  EXPECT_EQ(res.at("monthly_usd").as_string(), "1445.400000");
  EXPECT_EQ(res.at("spill_usd").as_string(), "578.160000");
  EXPECT_EQ(res.at("utilisation").to_number<double>(), 0.75);

  const json::object& be = b.at("break_even").as_object();
  EXPECT_EQ(be.at("tokens_per_minute").at("no_commit").to_number<double>(), 1234.5);
  EXPECT_TRUE(be.at("utilisation").as_object().empty());
}

TEST(Render, JsonProvisionedLeversAndNotes) {
  const json::value doc = json::parse(to_json(sample()));
  const json::object& o = doc.as_object();
  const json::object& p = o.at("provisioned").as_array().at(0).as_object();
  EXPECT_EQ(p.at("arn").as_string(),
            "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/big");
  EXPECT_EQ(p.at("requests").to_number<std::uint64_t>(), 60u);
  EXPECT_EQ(p.at("committed_usd").as_string(), "80.000000");
  EXPECT_EQ(p.at("on_demand_equivalent_usd").as_string(), "1.485000");
  EXPECT_TRUE(p.at("utilisation").is_null());
  EXPECT_EQ(p.at("input_tpm").at("p95").to_number<double>(), 10'000.0);
  EXPECT_TRUE(p.at("output_tpm").is_object());
  EXPECT_EQ(p.at("recommendation").as_string(), "Drop it: the numbers say so.");

  const json::object& l = o.at("levers").as_array().at(0).as_object();
  EXPECT_EQ(l.at("lever").as_string(), "prompt_caching");
  EXPECT_EQ(l.at("team").as_string(), "search");
  EXPECT_EQ(l.at("app").as_string(), "bot");
  EXPECT_EQ(l.at("savings_usd").as_string(), "3.000000");
  EXPECT_EQ(l.at("monthly_savings_usd").as_string(), "9.000000");
  // The evidence is embedded as JSON, not as a string.
  EXPECT_EQ(l.at("evidence").at("requests").to_number<std::uint64_t>(), 12u);
  EXPECT_EQ(l.at("evidence").at("saved_usd").as_string(), "1.500000");
  EXPECT_EQ(l.at("caveat").as_string(), "Only if the prefixes repeat.");
  EXPECT_EQ(o.at("notes").as_array().at(0).as_string(), "rows without traits: 3");
}

TEST(Render, JsonTimesWithMillisecondsAndBadEvidence) {
  report r = sample();
  r.since_ms = monday + 1'500;
  r.levers[0].evidence_json = "{not json";
  const json::value doc = json::parse(to_json(r));
  EXPECT_EQ(doc.at("window").at("since").as_string(), "2024-01-01T00:00:01.500Z");
  // Kept as text rather than lost.
  EXPECT_EQ(doc.at("levers").at(0).at("evidence").as_string(), "{not json");
}

TEST(Render, JsonOfAnEmptyReport) {
  const json::value doc = json::parse(to_json(report{}));
  EXPECT_EQ(doc.at("window").at("since").as_string(), "1970-01-01T00:00:00Z");
  EXPECT_EQ(doc.at("window").at("spend_usd").as_string(), "0.000000");
  EXPECT_TRUE(doc.at("buying_mode").as_array().empty());
  EXPECT_TRUE(doc.at("provisioned").as_array().empty());
  EXPECT_TRUE(doc.at("levers").as_array().empty());
  EXPECT_TRUE(doc.at("notes").as_array().empty());
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(Render, TextIsAlignedAndCarriesTheAdvice) {
  const std::string text = to_text(sample());
  EXPECT_NE(text.find("2024-01-01T00:00:00Z .. 2024-01-08T00:00:00Z"), std::string::npos);
  EXPECT_NE(text.find("42 requests, $12.35 spent (rate table test-1)"), std::string::npos);
  EXPECT_NE(text.find("anthropic.claude-sonnet-4-6 in us-east-1 (geo)"), std::string::npos);
  EXPECT_NE(text.find("Stay on demand: because of the numbers."), std::string::npos) << text;
  EXPECT_NE(text.find("Drop it: the numbers say so."), std::string::npos) << text;
  EXPECT_NE(text.find("rows without traits: 3"), std::string::npos) << text;
  EXPECT_NE(text.find("1000 in + 2000 out TPM"), std::string::npos) << text;
  // Hour 61 of the week is Wednesday 13:00 (2 x 24 + 13).
  EXPECT_NE(text.find("busiest hour of the week: Wed 13:00-14:00 UTC, 11.0 tokens/min"),
            std::string::npos)
      << text;

  // The options table: "monthly" is right-aligned over its amounts.
  const std::vector<std::string> lines = lines_of(text);
  std::size_t header = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find("spill/month") != std::string::npos) header = i;
  }
  ASSERT_LT(header + 3, lines.size()) << text;
  const std::size_t end = lines[header].find("monthly") + std::string_view("monthly").size();
  const std::string& od = lines[header + 2];  // after the rule
  EXPECT_EQ(od.find("on_demand"), 2u) << text;
  EXPECT_EQ(od.find("$2.00") + std::string_view("$2.00").size(), end) << text;
  const std::string& res = lines[header + 4];
  EXPECT_EQ(res.find("$1445.40") + std::string_view("$1445.40").size(), end) << text;

  // The lever row, its caveat on the line under it.
  std::size_t lever = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find("prompt_caching") != std::string::npos) lever = i;
  }
  ASSERT_LT(lever + 1, lines.size()) << text;
  EXPECT_NE(lines[lever].find("$3.00"), std::string::npos);
  EXPECT_NE(lines[lever].find("$9.00"), std::string::npos);
  EXPECT_NE(lines[lever + 1].find("Only if the prefixes repeat."), std::string::npos) << text;
}

TEST(Render, MarkdownHasHeadingsTablesAndTheAdvice) {
  const std::string md = to_markdown(sample());
  EXPECT_EQ(md.rfind("# Bedrock advice\n", 0), 0u) << md;
  EXPECT_NE(md.find("\n## Buying mode\n"), std::string::npos) << md;
  EXPECT_NE(md.find("\n### anthropic.claude-sonnet-4-6 in us-east-1 (geo)\n"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| mode | term | units | monthly | spill/month | used | source |\n"
                    "| --- | --- | ---: | ---: | ---: | ---: | --- |\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| on_demand | none | - | $2.00 | - | - | the ledger |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("**Recommendation:** Stay on demand: because of the numbers."),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("\n## Provisioned models\n"), std::string::npos) << md;
  EXPECT_NE(md.find("Drop it: the numbers say so."), std::string::npos) << md;
  EXPECT_NE(md.find("| prompt_caching | search | bot | anthropic.claude-sonnet-4-6 | $3.00 | "
                    "$9.00 | Only if the prefixes repeat. |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("\n## Notes\n\n- rows without traits: 3\n"), std::string::npos) << md;
}

TEST(Render, MarkdownEscapesPipes) {
  report r = sample();
  r.levers[0].caveat = "a | b";
  EXPECT_NE(to_markdown(r).find("a \\| b"), std::string::npos);
}

TEST(Net, EveryAmountLosesItsModelsDiscountAndTheLeversAreReordered) {
  auto r = sample();
  lever cheap = r.levers[0];
  cheap.name = "batch";
  cheap.model = "amazon.nova-pro-v1:0";
  cheap.savings = 4 * usd;  // above the caching lever at list, below it at net
  cheap.monthly_savings = 12 * usd;
  r.levers.push_back(cheap);
  std::sort(r.levers.begin(), r.levers.end(),
            [](const lever& a, const lever& b) { return a.savings > b.savings; });
  ASSERT_EQ(r.levers[0].name, "batch");
  to_net(r, 11 * usd, [](std::string_view model) -> std::int64_t {
    return model.starts_with("amazon.") ? 500'000 : 100'000;
  });
  EXPECT_EQ(r.basis, "net");
  EXPECT_EQ(r.spend, 11 * usd) << "the caller's exact per-row sum";
  EXPECT_EQ(r.buying_mode[0].on_demand, 1'350'000'000'000);
  EXPECT_EQ(*r.buying_mode[0].options[1].monthly, 29'200 * usd * 9 / 10);
  EXPECT_FALSE(r.buying_mode[0].options[1].spill) << "unknown stays unknown";
  EXPECT_EQ(r.provisioned[0].committed, 72 * usd);
  ASSERT_EQ(r.levers.size(), 2U);
  EXPECT_EQ(r.levers[0].name, "prompt_caching");
  EXPECT_EQ(r.levers[0].savings, 3 * usd * 9 / 10);
  EXPECT_EQ(r.levers[1].monthly_savings, 6 * usd);
  EXPECT_NE(r.notes.back().find("Net basis"), std::string::npos);
  EXPECT_NE(to_json(r).find(R"("basis":"net")"), std::string::npos);
  EXPECT_NE(to_text(r).find("spent at net prices"), std::string::npos);
}

}  // namespace
}  // namespace bedrock_meter::advice
