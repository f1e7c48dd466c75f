// The bill side of reconciliation: CSV split anywhere, CUR 2.0 and legacy CUR headers, Bedrock
// lines summed into the ledger's keys, and the comparison (billing/cur.hpp, billing/reconcile.hpp).
#include <gtest/gtest.h>

#include "billing/cur.hpp"
#include "billing/reconcile.hpp"
#include "config/rate_table_loader.hpp"

namespace bedrock_meter::billing {
namespace {

using records = std::vector<std::vector<std::string>>;

records parse_in_pieces(std::string_view text, std::size_t piece) {
  records out;
  csv_reader r([&](const std::vector<std::string>& rec) { out.push_back(rec); });
  for (std::size_t i = 0; i < text.size(); i += piece) r.feed(text.substr(i, piece));
  r.finish();
  return out;
}

TEST(CsvReader, QuotesCommasNewlinesAndAnySplit) {
  const std::string text =
      "a,\"b,c\",\"say \"\"hi\"\"\"\r\n"
      "\"two\nlines\",,x\n"
      "\n"
      "last,row";  // no final newline
  const records want{{"a", "b,c", "say \"hi\""}, {"two\nlines", "", "x"}, {"last", "row"}};
  for (std::size_t piece = 1; piece <= text.size(); ++piece) {
    EXPECT_EQ(parse_in_pieces(text, piece), want) << "pieces of " << piece;
  }
}

std::vector<config::price_list_model> mapping() {
  return {
      {"Claude Sonnet 4.6", "", {"anthropic.claude-sonnet-4-6"}, std::nullopt, "m:1"},
      {"Claude Haiku 4.5", "", {"anthropic.claude-haiku-4-5-20251001-v1:0"}, std::nullopt, "m:2"},
      {"Nova Pro", "", {"amazon.nova-pro-v1:0"}, std::nullopt, "m:3"},
      {"Nova 2.0 Lite", "", {"amazon.nova-2-lite-v1:0"}, std::nullopt, "m:4"},
      {"Llama 3.1 405B", "", {"meta.llama3-1-405b-instruct-v1:0"}, std::nullopt, "m:5"},
      {"gpt-oss-120b", "", {"openai.gpt-oss-120b-1:0"}, std::nullopt, "m:6"},
      {"Nova Sonic", "", {"amazon.nova-sonic-v1:0"}, std::nullopt, "m:8"}};
}

TEST(BillNames, UsageTypeKeysAndProductNamesFindTheMappedModel) {
  const auto m = mapping();
  EXPECT_EQ(model_for_bill_name("Claude4.6Sonnet", m), "anthropic.claude-sonnet-4-6");
  EXPECT_EQ(model_for_bill_name("Claude Haiku 4.5 (Amazon Bedrock Edition)", m),
            "anthropic.claude-haiku-4-5-20251001-v1:0");
  EXPECT_EQ(model_for_bill_name("Claude4.5Haiku", m), "anthropic.claude-haiku-4-5-20251001-v1:0");
  EXPECT_EQ(model_for_bill_name("NovaPro", m), "amazon.nova-pro-v1:0");
  EXPECT_EQ(model_for_bill_name("Nova2.0Lite", m), "amazon.nova-2-lite-v1:0");
  EXPECT_EQ(model_for_bill_name("Llama3-1-405B", m), "meta.llama3-1-405b-instruct-v1:0");
  EXPECT_EQ(model_for_bill_name("gpt-oss-120b", m), "openai.gpt-oss-120b-1:0");
  EXPECT_EQ(model_for_bill_name("NovaLite", m), "") << "Nova Lite is not Nova 2.0 Lite";
  EXPECT_EQ(model_for_bill_name("Claude4.6Opus", m), "");
  auto twice = m;
  twice.push_back({"Sonnet Claude 4.6", "", {"anthropic.other"}, std::nullopt, "m:7"});
  EXPECT_EQ(model_for_bill_name("Claude4.6Sonnet", twice), "") << "ambiguous: never a guess";
}

TEST(BillNames, RegionCodes) {
  EXPECT_EQ(region_of_billing_code("USE1"), "us-east-1");
  EXPECT_EQ(region_of_billing_code("UGW1"), "us-gov-west-1");
  EXPECT_EQ(region_of_billing_code("APS3"), "") << "two sources disagree; the column decides";
  EXPECT_EQ(region_of_billing_code("XYZ9"), "");
}

cur_result sum(const std::vector<std::pair<std::string, std::string>>& files) {
  const auto m = mapping();
  cur_summer s(m);
  for (const auto& [name, text] : files) {
    s.begin(name);
    s.feed(text);
    s.end();
  }
  return s.take();
}

const std::string legacy_header =
    "lineItem/LineItemType,lineItem/ProductCode,bill/BillingEntity,lineItem/UsageType,"
    "lineItem/UsageStartDate,lineItem/UsageAmount,pricing/unit,lineItem/LineItemDescription,"
    "lineItem/UnblendedRate,lineItem/UnblendedCost,product/ProductName\n";

TEST(CurSummer, LegacyMarketplaceAndFirstPartyLines) {
  const std::string text =
      legacy_header +
      "Usage,prod-x,AWS Marketplace,USE1-MP:USE1_InputTokenCount_Global-Units,"
      "2026-11-02T00:00:00Z,0.0123456,Units,\"AWS Marketplace software usage|us-east-1|Million "
      "Input Tokens Global\",1.0,0.0123456,Claude Haiku 4.5 (Amazon Bedrock Edition)\n"
      "Usage,AmazonBedrock,AWS,USE1-NovaPro-output-tokens-batch,2026-11-02T00:00:00Z,1.2345,"
      "1K tokens,batch output,0.0016,0.0019752,Amazon Bedrock\n"
      "DiscountedUsage,AmazonBedrock,AWS,USW2-Claude4.6Sonnet-cache-read-input-token-count,"
      "2026-11-03T05:00:00Z,2,1K tokens,cache read,0.0003,0.0006,Amazon Bedrock\n"
      "EdpDiscount,AmazonBedrock,AWS,USE1-NovaPro-output-tokens-batch,2026-11-02T00:00:00Z,0,"
      "1K tokens,discount,0,-0.0001,Amazon Bedrock\n"
      "Usage,AmazonBedrockService,AWS,USE1-Guardrail-TextUnits,2026-11-02T00:00:00Z,3,Units,x,"
      "0.15,0.45,Amazon Bedrock Service\n"
      "Usage,AmazonBedrock,AWS,USE1-Nova2.0Lite-ProvisionedThroughput-NoCommit-ModelUnits,"
      "2026-11-02T00:00:00Z,24,Hrs,pt,60.5,1452,Amazon Bedrock\n"
      "Usage,AmazonBedrock,AWS,USE1-Qwen3-32B-input-tokens,2026-11-02T00:00:00Z,1,1K tokens,x,"
      "0.00015,0.00015,Amazon Bedrock\n"
      "Usage,AmazonEC2,AWS,USE1-BoxUsage:m5.large,2026-11-02T00:00:00Z,1,Hrs,x,0.096,0.096,EC2\n";
  const cur_result r = sum({{"legacy.csv", text}});
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_EQ(r.rows, 8U);
  EXPECT_EQ(r.bedrock_rows, 6U) << "EC2 and the EDP discount line are not Bedrock usage";
  EXPECT_EQ(r.used_rows, 3U);
  ASSERT_EQ(r.bill.size(), 3U);
  const usage_key haiku{"2026-11-02", "us-east-1", "anthropic.claude-haiku-4-5-20251001-v1:0",
                        "global",     "standard",  false,
                        false};
  ASSERT_TRUE(r.bill.contains(haiku));
  EXPECT_EQ(r.bill.at(haiku).tokens[0], 12346U) << "0.0123456 million, rounded half up";
  EXPECT_EQ(r.bill.at(haiku).cost, 12'345'600'000);
  const usage_key nova{"2026-11-02", "us-east-1", "amazon.nova-pro-v1:0", "regional", "standard",
                       true,         false};
  ASSERT_TRUE(r.bill.contains(nova));
  EXPECT_EQ(r.bill.at(nova).tokens[1], 1235U) << "1.2345 thousand, rounded half up";
  const usage_key sonnet{"2026-11-03", "us-west-2", "anthropic.claude-sonnet-4-6",
                         "regional",   "standard",  false,
                         false};
  ASSERT_TRUE(r.bill.contains(sonnet));
  EXPECT_EQ(r.bill.at(sonnet).tokens[2], 2000U);
  EXPECT_EQ(r.first_day, "2026-11-02");
  EXPECT_EQ(r.last_day, "2026-11-03");
  ASSERT_EQ(r.skipped.size(), 3U);
  EXPECT_TRUE(r.skipped.contains("not model inference (AmazonBedrockService)"));
  EXPECT_TRUE(
      r.skipped.contains("capacity (Provisioned Throughput, Reserved tier): billed by the "
                         "hour"));
  EXPECT_TRUE(
      r.skipped.contains("model 'Qwen3-32B' matches no name of the model mapping (or "
                         "several)"));
  ASSERT_EQ(r.rates.size(), 3U);
  EXPECT_EQ(r.rates[1].micro_per_m, 1'600'000) << "0.0016 per 1K = 1.60 per 1M";
}

TEST(CurSummer, NovaSonicSpeechAndTextLinesAreCountedApart) {
  // Nova Sonic bills speech and text tokens under their own usage types; text is input/output.
  const std::string text =
      legacy_header +
      "Usage,AmazonBedrock,AWS,USE1-NovaSonic-speech-input-tokens,2026-11-02T00:00:00Z,0.6,"
      "1K tokens,speech in,0.0034,0.00204,Amazon Bedrock\n"
      "Usage,AmazonBedrock,AWS,USE1-NovaSonic-text-input-tokens,2026-11-02T00:00:00Z,0.4,"
      "1K tokens,text in,0.00006,0.000024,Amazon Bedrock\n"
      "Usage,AmazonBedrock,AWS,USE1-NovaSonic-speech-output-tokens,2026-11-02T00:00:00Z,0.3,"
      "1K tokens,speech out,0.0136,0.00408,Amazon Bedrock\n"
      "Usage,AmazonBedrock,AWS,USE1-NovaSonic-text-output-tokens,2026-11-02T00:00:00Z,0.2,"
      "1K tokens,text out,0.00024,0.000048,Amazon Bedrock\n";
  const cur_result r = sum({{"sonic.csv", text}});
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_EQ(r.used_rows, 4U);
  EXPECT_TRUE(r.skipped.empty());
  const usage_key k{"2026-11-02", "us-east-1", "amazon.nova-sonic-v1:0", "regional", "standard"};
  ASSERT_TRUE(r.bill.contains(k));
  const auto& t = r.bill.at(k);
  EXPECT_EQ(t.tokens[static_cast<std::size_t>(token_class::speech_input)], 600U);
  EXPECT_EQ(t.tokens[static_cast<std::size_t>(token_class::input)], 400U);
  EXPECT_EQ(t.tokens[static_cast<std::size_t>(token_class::speech_output)], 300U);
  EXPECT_EQ(t.tokens[static_cast<std::size_t>(token_class::output)], 200U);
  EXPECT_EQ(t.cost, 6'192'000'000) << "$0.006192";
  ASSERT_EQ(r.rates.size(), 4U);
  EXPECT_EQ(r.rates[0].cls, token_class::speech_input);
  EXPECT_EQ(r.rates[0].micro_per_m, 3'400'000);

  // Against a table with Sonic's four prices: no stale rate; one with another speech output
  // price: that one is named, with the table's speech rate, not its text rate.
  const auto table = config::load_rate_table_string(
      "version: t\ncurrency: USD\nunit: per_million_tokens\nentries:\n"
      "  - {model: amazon.nova-sonic-v1:0, regions: ['*'], input: '0.06', output: '0.24', "
      "speech_input: '3.40', speech_output: '13.60', source: s}\n",
      "t.yaml");
  ASSERT_NE(table.table, nullptr);
  usage_totals ledger = t;
  const auto same = reconcile({{k, ledger}}, r, table.table.get(), 0.0);
  EXPECT_TRUE(same.within_tolerance);
  EXPECT_TRUE(same.stale.empty());
  const auto dearer = config::load_rate_table_string(
      "version: t\ncurrency: USD\nunit: per_million_tokens\nentries:\n"
      "  - {model: amazon.nova-sonic-v1:0, regions: ['*'], input: '0.06', output: '0.24', "
      "speech_input: '3.40', speech_output: '12.00', source: s}\n",
      "t.yaml");
  ASSERT_NE(dearer.table, nullptr);
  const auto stale = reconcile({{k, ledger}}, r, dearer.table.get(), 0.0);
  ASSERT_EQ(stale.stale.size(), 1U);
  EXPECT_EQ(stale.stale[0].billed.cls, token_class::speech_output);
  EXPECT_EQ(stale.stale[0].table_micro_per_m, 12'000'000);
  // Speech tokens the ledger counted as text would differ, never match silently.
  ledger.tokens[static_cast<std::size_t>(token_class::input)] += 600;
  ledger.tokens[static_cast<std::size_t>(token_class::speech_input)] = 0;
  EXPECT_EQ(reconcile({{k, ledger}}, r, nullptr, 0.01).rows[0].status, match_status::differs);
}

TEST(CurSummer, Cur2ProductMapAndRegionColumn) {
  const std::string text =
      "line_item_line_item_type,line_item_product_code,line_item_usage_type,"
      "line_item_usage_start_date,line_item_usage_amount,pricing_unit,line_item_unblended_cost,"
      "product_region_code,product\n"
      "Usage,AmazonBedrock,APS3-NovaPro-input-tokens,2026-11-02 00:00:00,3,1K tokens,0.0024,"
      "ap-south-1,\"{\"\"product_name\"\":\"\"Amazon Bedrock\"\"}\"\n"
      "Usage,AmazonBedrock,APS3-NovaPro-output-tokens,2026-11-02 00:00:00,3,1K tokens,0.0096,,"
      "\"{}\"\n";
  const cur_result r = sum({{"cur2.csv", text}});
  ASSERT_TRUE(r.errors.empty());
  EXPECT_EQ(r.used_rows, 1U);
  EXPECT_TRUE(r.bill.contains(
      {"2026-11-02", "ap-south-1", "amazon.nova-pro-v1:0", "regional", "standard", false, false}));
  EXPECT_TRUE(r.skipped.contains("no region (no region column, unknown prefix)"));
  EXPECT_TRUE(r.rates.empty()) << "no rate column";
}

TEST(CurSummer, FilesThatAreNotACurAreNamed) {
  const cur_result r = sum({{"offer.json", "{\"products\": {}}\n"},
                            {"short.csv", "line_item_usage_type,line_item_product_code\nx,y\n"},
                            {"empty.csv", ""}});
  ASSERT_EQ(r.errors.size(), 7U) << "one per missing column";
  EXPECT_EQ(r.errors[0],
            "offer.json: not a CUR file (no line_item_usage_type or lineItem/UsageType column)");
  EXPECT_EQ(r.errors[1],
            "short.csv: missing column line_item_line_item_type (legacy CUR: "
            "lineItem/LineItemType)");
  EXPECT_EQ(r.errors[6], "empty.csv: empty, not a CUR file");
}

// ------------------------------------------------------------------------ reconcile

usage_totals totals(std::uint64_t input, std::uint64_t output, metering::money_total cost) {
  usage_totals t;
  t.tokens[0] = input;
  t.tokens[1] = output;
  t.cost = cost;
  return t;
}

TEST(Reconcile, EachKeyGetsItsStatusAndTheToleranceIsRelative) {
  const usage_key a{"2026-11-02", "us-east-1", "amazon.nova-pro-v1:0", "regional", "standard"};
  usage_key b = a, c = a, d = a;
  b.day = "2026-11-01";
  c.scope = "global";
  d.batch = true;
  const std::map<usage_key, usage_totals> ledger{{a, totals(1000, 100, 1'120'000'000)},
                                                 {c, totals(500, 50, 560'000'000)},
                                                 {d, totals(990, 100, 1'000'000'000)}};
  cur_result bill;
  bill.bill = {{a, totals(1000, 100, 1'120'000'000)},
               {b, totals(7000, 900, 8'480'000'000)},
               {d, totals(1000, 100, 1'000'000'000)}};
  const auto strict = reconcile(ledger, bill, nullptr, 0.005);
  ASSERT_EQ(strict.rows.size(), 4U);
  // Key order: day, region, model, scope ("global" before "regional"), tier, batch.
  EXPECT_EQ(strict.rows[0].status, match_status::bill_only);    // b: the day before
  EXPECT_EQ(strict.rows[1].status, match_status::ledger_only);  // c: global
  EXPECT_EQ(strict.rows[2].status, match_status::match);        // a
  EXPECT_EQ(strict.rows[3].status, match_status::differs);      // d: 990 vs 1000 input, 1% off
  EXPECT_FALSE(strict.within_tolerance);
  EXPECT_EQ(strict.ledger_total.tokens[0], 2490U);
  EXPECT_EQ(strict.bill_total.tokens[0], 9000U);
  const auto loose = reconcile(ledger, bill, nullptr, 0.01);
  EXPECT_EQ(loose.rows[3].status, match_status::match) << "10 of 1000 is within 1%";
}

TEST(Reconcile, BilledUnitPricesAreCheckedAgainstTheTable) {
  const auto table = config::load_rate_table_string(
      "version: t\ncurrency: USD\nunit: per_million_tokens\nentries:\n"
      "  - {model: amazon.nova-pro-v1:0, regions: ['*'], input: '0.80', output: '3.20', source: "
      "s}\n",
      "t.yaml");
  ASSERT_NE(table.table, nullptr);
  cur_result bill;
  const usage_key k{"", "us-east-1", "amazon.nova-pro-v1:0", "regional", "standard"};
  usage_key global = k;
  global.scope = "global";
  bill.rates = {{k, token_class::input, 800'000, "USE1-NovaPro-input-tokens"},
                {k, token_class::output, 3'500'000, "USE1-NovaPro-output-tokens"},
                {k, token_class::cache_read, 200'000, "USE1-NovaPro-cache-read-input-token-count"},
                {global, token_class::input, 720'000, "USE1-NovaPro-input-tokens-global"}};
  const auto r = reconcile({}, bill, table.table.get(), 0.01);
  ASSERT_EQ(r.stale.size(), 3U);
  EXPECT_EQ(r.stale[0].billed.usage_type, "USE1-NovaPro-output-tokens");
  EXPECT_EQ(r.stale[0].table_micro_per_m, 3'200'000);
  EXPECT_EQ(r.stale[0].table_entry, "t.yaml:5");
  EXPECT_EQ(r.stale[1].billed.cls, token_class::cache_read);
  EXPECT_FALSE(r.stale[1].table_micro_per_m.has_value()) << "no cache price in the table";
  EXPECT_EQ(r.stale[2].billed.key.scope, "global");
  EXPECT_EQ(r.stale[2].table_micro_per_m, 800'000) << "the any-scope row answers for global";
}

}  // namespace
}  // namespace bedrock_meter::billing
