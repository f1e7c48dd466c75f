// AWS Price List import: usage-type classification (both offers, both Marketplace naming
// generations), unit normalisation, and whole offer files (tests/data/price_list, written from
// the documented shapes) imported, loaded by the rate-table loader and priced.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "billing/price_list.hpp"
#include "config/price_list_models.hpp"
#include "config/rate_table_loader.hpp"
#include "metering/rate_table.hpp"

namespace bedrock_meter::billing {
namespace {

namespace fs = std::filesystem;
namespace m = metering;

const fs::path data_dir = fs::path(BM_TEST_DATA_DIR) / "price_list";
const fs::path shipped_mapping =
    fs::path(BM_TEST_DATA_DIR) / ".." / ".." / "config" / "rates" / "price-list-models.yaml";

constexpr std::string_view ab = "AmazonBedrock";
constexpr std::string_view fm = "AmazonBedrockFoundationModels";

meter classify_ok(std::string_view offer, std::string_view usage_type) {
  const auto c = classify_usage_type(offer, usage_type);
  EXPECT_TRUE(c.m.has_value()) << usage_type << ": " << c.why_not;
  return c.m.value_or(meter{});
}

std::string refused(std::string_view offer, std::string_view usage_type) {
  const auto c = classify_usage_type(offer, usage_type);
  EXPECT_FALSE(c.m.has_value()) << usage_type << " was classified as " << to_string(c.m->kind);
  return c.why_not;
}

// ------------------------------------------------------------------------ classification

TEST(ClassifyUsageType, AmazonBedrockMetersAndQualifiers) {
  EXPECT_EQ(classify_ok(ab, "USE1-NovaPro-input-tokens").kind, meter_kind::input);
  EXPECT_EQ(classify_ok(ab, "USE1-NovaPro-output-tokens").kind, meter_kind::output);
  EXPECT_EQ(classify_ok(ab, "USE1-NovaPro-cache-read-input-token-count").kind,
            meter_kind::cache_read);
  EXPECT_EQ(classify_ok(ab, "USE1-NovaPro-input-tokens-priority").tier, m::service_tier::priority);
  EXPECT_EQ(classify_ok(ab, "USE1-Gemma-3-4B-IT-input-tokens-flex").tier, m::service_tier::flex);
  EXPECT_TRUE(classify_ok(ab, "USE1-Llama4-Maverick-17B-input-tokens-batch").batch);
  EXPECT_EQ(classify_ok(ab, "USE1-Claude3-5Haiku-input-tokens-latency-optimized").latency,
            m::latency_mode::optimized);
  const meter g = classify_ok(ab, "USE1-Nova2.0Lite-input-tokens-cross-region-global-batch");
  EXPECT_EQ(g.scope, m::inference_scope::global);
  EXPECT_TRUE(g.batch);
  const meter t = classify_ok(ab, "USE1-Nova2.0Pro-text-input-tokens-priority-cross-region-global");
  EXPECT_EQ(t.kind, meter_kind::input);
  EXPECT_EQ(t.tier, m::service_tier::priority);
  EXPECT_EQ(t.scope, m::inference_scope::global);
  // A model key with dashes of its own: the meter is the first whole meter head.
  EXPECT_EQ(classify_ok(ab, "USE1-Llama3-2-1B-output-tokens").kind, meter_kind::output);
  EXPECT_EQ(classify_ok(ab, "USE1-GPT-OSS-Safeguard-120B-output-tokens-batch").kind,
            meter_kind::output);
  EXPECT_FALSE(classify_ok(ab, "USE1-NovaPro-input-tokens").scope.has_value());
}

TEST(ClassifyUsageType, NovaSonicSpeechTokensAreTheirOwnMetersAndItsTextTokensAreInputAndOutput) {
  const classification speech = classify_usage_type(ab, "USE1-NovaSonic-speech-input-tokens");
  ASSERT_TRUE(speech.m.has_value()) << speech.why_not;
  EXPECT_EQ(speech.m->kind, meter_kind::speech_input);
  EXPECT_EQ(speech.model_key, "NovaSonic");
  EXPECT_EQ(classify_ok(ab, "USE1-NovaSonic-speech-output-tokens").kind, meter_kind::speech_output);
  EXPECT_EQ(classify_ok(ab, "USE1-NovaSonic-text-input-tokens").kind, meter_kind::input);
  EXPECT_EQ(classify_ok(ab, "USE1-NovaSonic-text-output-tokens").kind, meter_kind::output);
  EXPECT_EQ(to_string(meter_kind::speech_input), "speech_input");
  EXPECT_EQ(normalise_price(meter_kind::speech_output, "1K tokens", "", "0.0136").micro,
            13'600'000);
}

TEST(ClassifyUsageType, ProvisionedThroughputTerms) {
  const meter nc = classify_ok(ab, "USE1-Nova2.0Lite-ProvisionedThroughput-NoCommit-ModelUnits");
  EXPECT_EQ(nc.kind, meter_kind::model_unit_hour);
  EXPECT_EQ(nc.term, m::commitment_term::no_commit);
  EXPECT_EQ(classify_ok(ab, "USE1-Nova2.0Lite-ProvisionedThroughput-1month-ModelUnits").term,
            m::commitment_term::one_month);
  EXPECT_EQ(classify_ok(ab, "USW2-Llama3-1-70B-ProvisionedThroughput-6months-ModelUnits").term,
            m::commitment_term::six_months);
  EXPECT_NE(refused(ab, "USE1-TitanText-Premier-ProvisionedThroughput-Custom-NoCommit-ModelUnits")
                .find("custom"),
            std::string::npos);
  EXPECT_EQ(
      classify_ok(fm, "USE1-MP:USE1_ProvisionedThroughput_1MonthCommit_ModelUnits_Usage-Units")
          .term,
      m::commitment_term::one_month);
  EXPECT_EQ(
      classify_ok(fm, "USW2-MP:USW2_ProvisionedThroughput_6MonthsCommit_ModelUnits_Usage").term,
      m::commitment_term::six_months);
}

TEST(ClassifyUsageType, MarketplaceLegacyGeneration) {
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_InputTokenCount-Units").kind, meter_kind::input);
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_OutputTokenCount_Global-Units").scope,
            m::inference_scope::global);
  const meter gb = classify_ok(fm, "USE1-MP:USE1_InputTokenCount_Global_Batch-Units");
  EXPECT_TRUE(gb.batch);
  EXPECT_EQ(gb.scope, m::inference_scope::global);
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_InputTokenCount_LatencyOptimized-Units").latency,
            m::latency_mode::optimized);
  EXPECT_TRUE(classify_ok(fm, "USE1-MP:USE1_InputTokenCount_LCtx-Units").long_context);
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_CacheWriteInputTokenCount-Units").kind,
            meter_kind::cache_write_5m);
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_CacheWrite5mInputTokenCount-Units").kind,
            meter_kind::cache_write_5m);
  const meter batch = classify_ok(fm, "APN1-MP:APN1_MillionBatchInputTokens-Units");
  EXPECT_EQ(batch.kind, meter_kind::input);
  EXPECT_TRUE(batch.batch);
}

TEST(ClassifyUsageType, CacheMetersAreNeverTakenForInput) {
  // The peer bug: CacheReadInputTokenCount and CacheWrite1hInputTokenCount both end in
  // InputTokenCount; a suffix match priced input at the 1-hour cache-write rate.
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_CacheReadInputTokenCount-Units").kind,
            meter_kind::cache_read);
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_CacheReadInputTokenCount_Global-Units").kind,
            meter_kind::cache_read);
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_CacheWrite1hInputTokenCount-Units").kind,
            meter_kind::cache_write_1h);
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_CacheWrite1hInputTokenCount_Global-Units").kind,
            meter_kind::cache_write_1h);
  // cache-read-input-token-count contains "input-token": still a cache read.
  EXPECT_EQ(
      classify_ok(ab, "USE1-Nova2.0Lite-cache-read-input-token-count-cross-region-global").kind,
      meter_kind::cache_read);
}

TEST(ClassifyUsageType, MarketplaceCurrentGeneration) {
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_input_tokens_standard-Units").kind, meter_kind::input);
  const meter g = classify_ok(fm, "USE1-MP:USE1_input_tokens_global_standard-Units");
  EXPECT_EQ(g.scope, m::inference_scope::global);
  EXPECT_EQ(g.tier, m::service_tier::standard);
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_cache_read_tokens_standard-Units").kind,
            meter_kind::cache_read);
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_cache_write_tokens_1h_global_standard-Units").kind,
            meter_kind::cache_write_1h);
  EXPECT_TRUE(
      classify_ok(fm, "USE1-MP:USE1_input_tokens_long_ctx_global_standard-Units").long_context);
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_input_tokens_global_flex-Units").tier,
            m::service_tier::flex);
  EXPECT_EQ(classify_ok(fm, "USE1-MP:USE1_input_tokens_priority").tier, m::service_tier::priority);
  EXPECT_TRUE(classify_ok(fm, "USE1-MP:USE1_input_tokens_batch").batch);
}

TEST(ClassifyUsageType, ReservedTier) {
  const meter in = classify_ok(fm, "USE1-MP:USE1_Reserved_1Month_InputTPM_Geo-Units");
  EXPECT_EQ(in.kind, meter_kind::reserved_input);
  EXPECT_EQ(in.term, m::commitment_term::one_month);
  EXPECT_EQ(in.scope, m::inference_scope::geo);
  const meter out = classify_ok(fm, "USE1-MP:USE1_Reserved_3Month_OutputTPM_Global-Units");
  EXPECT_EQ(out.kind, meter_kind::reserved_output);
  EXPECT_EQ(out.term, m::commitment_term::three_months);
  EXPECT_EQ(out.scope, m::inference_scope::global);
}

TEST(ClassifyUsageType, WhatIsNotATextTokenPriceIsRefusedWithAReason) {
  EXPECT_NE(refused(fm, "USE1-MP:USE1_CacheWrite30mInputTokenCount-Units").find("30-minute"),
            std::string::npos);
  EXPECT_NE(refused(fm, "USE1-MP:USE1_cache_write_tokens_30m_standard-Units").find("30-minute"),
            std::string::npos);
  for (const auto* ut :
       {"USE1-MP:USE1_CacheStorage-Units", "USE1-MP:USE1_CacheValidationCount-Units",
        "USE1-MP:USE1_InputImageCount-Units", "USE1-MP:USE1_created_image-Units",
        "USE1-MP:USE1_search_units-Units", "USE1-MP:USE1_Cohere_Embed_V4-Units"}) {
    EXPECT_FALSE(refused(fm, ut).empty()) << ut;
  }
  for (const auto* ut : {"USE1-cohere.rerank-english-v3-search-units",
                         "USE1-Guardrail-AutomatedReasoningPolicyUnitsConsumed",
                         "USE1-Nova2.0Pro-input-image-token-count-cross-region-global",
                         "USE1-Nova2.0Lite-Customization-Training"}) {
    EXPECT_FALSE(refused(ab, ut).empty()) << ut;
  }
  EXPECT_NE(refused(ab, "USE1-NovaPro-cache-write-input-token-count-custom-model").find("custom"),
            std::string::npos);
  EXPECT_NE(refused(ab, "USE1-NovaPro-input-tokens-turbo").find("'turbo'"), std::string::npos);
  EXPECT_NE(refused(fm, "USE1-MP:USE1_InputTokenCount_Turbo-Units").find("'Turbo'"),
            std::string::npos);
  EXPECT_NE(refused("AmazonBedrockService", "USE1-Guardrail-TextUnits").find("no model token"),
            std::string::npos);
}

// ------------------------------------------------------------------------ units

TEST(NormalisePrice, TokenUnitsBecomeUsdPerMillionExactly) {
  EXPECT_EQ(normalise_price(meter_kind::input, "1K tokens", "", "0.0008000000").micro, 800'000);
  EXPECT_EQ(normalise_price(meter_kind::cache_read, "1K tokens", "", "0.00000875").micro, 8'750);
  EXPECT_EQ(normalise_price(meter_kind::input, "1M tokens", "", "3.00").micro, 3'000'000);
  EXPECT_EQ(normalise_price(meter_kind::output, "Units",
                            "AWS Marketplace software usage|us-east-1|Million Response Tokens "
                            "Regional",
                            "16.5000000000")
                .micro,
            16'500'000);
  EXPECT_EQ(normalise_price(meter_kind::cache_write_5m, "Units",
                            "Million Cache Write Input Tokens Regional", "1.3750000000")
                .micro,
            1'375'000);
}

TEST(NormalisePrice, UnknownUnitsAndPricesAreRefused) {
  EXPECT_NE(normalise_price(meter_kind::input, "Units", "Priority units", "1.8")
                .why_not.find("unit 'Units'"),
            std::string::npos);
  EXPECT_FALSE(normalise_price(meter_kind::input, "1K characters", "", "0.1").micro);
  EXPECT_FALSE(normalise_price(meter_kind::input, "1K tokens", "", "0.0000000001").micro);
  EXPECT_NE(
      normalise_price(meter_kind::input, "1K tokens", "", "0.0000000000").why_not.find("price 0"),
      std::string::npos);
  EXPECT_FALSE(normalise_price(meter_kind::input, "1K tokens", "", "-0.001").micro);
  EXPECT_FALSE(normalise_price(meter_kind::input, "1K tokens", "", "1e-3").micro);
  EXPECT_FALSE(normalise_price(meter_kind::input, "1K tokens", "", "").micro);
}

TEST(NormalisePrice, CapacityUnits) {
  EXPECT_EQ(normalise_price(meter_kind::model_unit_hour, "Hrs", "", "60.5000000000").micro,
            60'500'000);
  EXPECT_EQ(
      normalise_price(meter_kind::model_unit_hour, "Units", "per model unit per hour", "24").micro,
      24'000'000);
  EXPECT_FALSE(normalise_price(meter_kind::model_unit_hour, "1K tokens", "", "24").micro);
  EXPECT_EQ(normalise_price(meter_kind::reserved_input, "1K TPM Hour", "", "0.198").micro, 198'000);
  EXPECT_FALSE(normalise_price(meter_kind::reserved_input, "1M TPM Hour", "", "0.198").micro);
  EXPECT_FALSE(normalise_price(meter_kind::reserved_output, "Units", "", "0.99").micro);
}

// ------------------------------------------------------------------------ whole offers

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return std::move(s).str();
}

std::vector<offer_text> fixture_offers() {
  std::vector<offer_text> out;
  for (const char* f : {"amazonbedrock-us-east-1.json", "foundationmodels-us-east-1-page1.json",
                        "foundationmodels-us-east-1-page2.json"}) {
    out.push_back({f, read(data_dir / f)});
  }
  return out;
}

std::vector<config::price_list_model> shipped_models() {
  auto r = config::load_price_list_models_file(shipped_mapping.string());
  EXPECT_TRUE(r.errors.empty()) << r.errors.front().to_string();
  return r.models;
}

class ImportedFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    result_ = new import_result(import_price_list(fixture_offers(), shipped_models(), {}));
    auto loaded = config::load_rate_table_string(result_->yaml, "imported.yaml");
    for (const auto& e : loaded.errors) ADD_FAILURE() << e.to_string();
    table_ = new std::shared_ptr<const m::rate_table>(loaded.table);
  }
  static void TearDownTestSuite() {
    delete result_;
    delete table_;
  }
  static const m::rate_table& table() { return **table_; }

  /// The reasons the import gave for the rows of `usage_type`.
  static std::string reason_for(std::string_view usage_type) {
    std::string out;
    for (const auto& s : result_->skipped) {
      if (s.usage_type == usage_type) out += s.reason + "\n";
    }
    return out;
  }

  /// The in-region us-east-1 entry the pricer would use for `model_id`, or null.
  static const m::rate_entry* us_east_1_entry(std::string_view model_id) {
    m::price_query q;
    q.model_id = model_id;
    q.region = "us-east-1";
    return m::find_rate(table(), model_id, m::inference_scope::in_region, q);
  }

  /// The cost of one request, in pico-USD; -1 when unpriced.
  static m::pico_usd cost(std::string_view model_id, m::token_usage u,
                          m::service_tier tier = m::service_tier::standard, bool batch = false) {
    u.source = m::usage_source::reported;
    m::price_query q;
    q.model_id = model_id;
    q.region = "us-east-1";
    q.tier = tier;
    q.batch = batch;
    q.at = std::chrono::system_clock::now();
    const auto p = m::price(table(), u, q);
    return p.priced ? p.cost.total() : -1;
  }

  static import_result* result_;
  static std::shared_ptr<const m::rate_table>* table_;
};
import_result* ImportedFixture::result_ = nullptr;
std::shared_ptr<const m::rate_table>* ImportedFixture::table_ = nullptr;

TEST_F(ImportedFixture, WritesATableTheLoaderAccepts) {
  ASSERT_TRUE(result_->errors.empty());
  ASSERT_NE(*table_, nullptr);
  EXPECT_EQ(table().version, "price-list-20260901183649");
  // 60 rows in the selected region: 45 priced, 2 legacy-Claude duplicates of the same price
  // (AmazonBedrock and AmazonBedrockFoundationModels), 13 reported.
  EXPECT_EQ(result_->rows_read, 60U);
  EXPECT_EQ(result_->rows_priced, 45U);
  EXPECT_EQ(result_->skipped.size(), 13U);
  EXPECT_EQ(result_->entries, 15U);
  EXPECT_EQ(result_->provisioned, 2U);
}

TEST_F(ImportedFixture, EachPriceIsTheOffersInUsdPerMillion) {
  // Nova Pro, us-east-1: $0.0008 / $0.0032 per 1K -> 0.80 / 3.20 per 1M; cache read 0.0002.
  const auto* nova = us_east_1_entry("amazon.nova-pro-v1:0");
  ASSERT_NE(nova, nullptr);
  EXPECT_EQ(nova->rates.input, 800'000);
  EXPECT_EQ(nova->rates.output, 3'200'000);
  EXPECT_EQ(nova->rates.cache_read, 200'000);
  EXPECT_FALSE(nova->rates.cache_write_5m.has_value()) << "the custom-model write is not a price";
  EXPECT_NE(nova->source.find("SKU ABNOVAPROIN0001"), std::string::npos);
  EXPECT_NE(nova->source.find("rate code ABNOVAPROIN0001.JRTCKXETXF.6YS6EN2CT7"),
            std::string::npos);
  EXPECT_NE(nova->source.find("AmazonBedrock 20260901183649"), std::string::npos);
  EXPECT_NE(nova->source.find("effective 2026-09-01"), std::string::npos);
}

TEST_F(ImportedFixture, NovaSonicGetsItsSpeechAndTextRatesInOneEntry) {
  // $0.0034 / $0.0136 per 1K speech tokens, $0.00006 / $0.00024 per 1K text tokens.
  const auto* sonic = us_east_1_entry("amazon.nova-sonic-v1:0");
  ASSERT_NE(sonic, nullptr);
  EXPECT_EQ(sonic->rates.speech_input, 3'400'000);
  EXPECT_EQ(sonic->rates.speech_output, 13'600'000);
  EXPECT_EQ(sonic->rates.input, 60'000);
  EXPECT_EQ(sonic->rates.output, 240'000);
  EXPECT_NE(sonic->source.find("speech_input AmazonBedrock 20260901183649 "
                               "USE1-NovaSonic-speech-input-tokens SKU ABSONICSP000001"),
            std::string::npos)
      << sonic->source;
  EXPECT_EQ(reason_for("USE1-NovaSonic-speech-input-tokens"), "");
  // A session of 1,000 input tokens (600 speech) and 500 output tokens (300 speech):
  // (600 x 3.40 + 400 x 0.06 + 300 x 13.60 + 200 x 0.24) / 1M = $0.006192.
  EXPECT_EQ(cost("amazon.nova-sonic-v1:0",
                 {.input = 1000, .output = 500, .speech_input = 600, .speech_output = 300}),
            6'192'000'000);
}

TEST_F(ImportedFixture, RoundTripPricesARequestAtTheOffersDollars) {
  // Claude Haiku 4.5 through a global profile: 1,000 input x $1.00/M + 200 output x $5.00/M
  // + 2,000 cache reads x $0.10/M + 400 5-minute writes x $1.25/M = $0.0027.
  EXPECT_EQ(cost("global.anthropic.claude-haiku-4-5-20251001-v1:0",
                 {.input = 1000, .output = 200, .cache_read = 2000, .cache_write = 400}),
            2'700'000'000);
  // Through a US geographic profile: the regional row, 10% above global:
  // 1,000 x 1.10 + 200 x 5.50 + 2,000 x 0.11 + 400 x 1.375 = $0.00297.
  EXPECT_EQ(cost("us.anthropic.claude-haiku-4-5-20251001-v1:0",
                 {.input = 1000, .output = 200, .cache_read = 2000, .cache_write = 400}),
            2'970'000'000);
  // 1-hour writes at the 1h rate: 400 x $2.20/M = $0.00088.
  EXPECT_EQ(
      cost("anthropic.claude-haiku-4-5-20251001-v1:0", {.cache_write = 400, .cache_write_1h = 400}),
      880'000'000);
  // Batch: 1,000 x 0.55 + 200 x 2.75 = $0.0011.
  EXPECT_EQ(cost("anthropic.claude-haiku-4-5-20251001-v1:0", {.input = 1000, .output = 200},
                 m::service_tier::standard, true),
            1'100'000'000);
  // Nova Pro priority and flex: 1,000 x 1.40 + 100 x 5.60 = $0.00196; 1,000 x 0.40 + 100 x 1.60.
  EXPECT_EQ(cost("amazon.nova-pro-v1:0", {.input = 1000, .output = 100}, m::service_tier::priority),
            1'960'000'000);
  EXPECT_EQ(cost("amazon.nova-pro-v1:0", {.input = 1000, .output = 100}, m::service_tier::flex),
            560'000'000);
  // Sonnet 4.5 above its 200k threshold: 250,000 x 6.60 + 1,000 x 24.75 = $1.67475.
  EXPECT_EQ(cost("anthropic.claude-sonnet-4-5-20250929-v1:0", {.input = 250'000, .output = 1000}),
            1'674'750'000'000);
  // Nova 2 Lite has only global prices in the offer: in-region requests stay unpriced.
  EXPECT_EQ(cost("amazon.nova-2-lite-v1:0", {.input = 10, .output = 10}), -1);
  EXPECT_EQ(cost("global.amazon.nova-2-lite-v1:0", {.input = 1000, .output = 1000}), 2'800'000'000);
}

TEST_F(ImportedFixture, CapacityRowsGoToTheProvisionedSection) {
  const auto* pt = m::find_provisioned(table(), "amazon.nova-2-lite-v1:0", "us-east-1");
  ASSERT_NE(pt, nullptr);
  ASSERT_EQ(pt->model_units.size(), 2U);
  EXPECT_EQ(pt->model_units[0].term, m::commitment_term::no_commit);
  EXPECT_EQ(pt->model_units[0].hourly, 60'500'000'000'000);
  EXPECT_EQ(pt->model_units[1].term, m::commitment_term::one_month);
  EXPECT_EQ(pt->model_units[1].hourly, 55'000'000'000'000);
  const auto* reserved = m::find_provisioned(table(), "anthropic.claude-sonnet-4-6", "us-east-1");
  ASSERT_NE(reserved, nullptr);
  ASSERT_EQ(reserved->reserved.size(), 1U) << "the 3-month row's unit is unknown";
  EXPECT_EQ(reserved->reserved[0].scope, m::inference_scope::geo);
  EXPECT_EQ(reserved->reserved[0].input_per_1k_tpm_hour, 198'000'000'000);
  EXPECT_EQ(reserved->reserved[0].output_per_1k_tpm_hour, 990'000'000'000);
}

TEST_F(ImportedFixture, EveryRowLeftOutSaysWhy) {
  EXPECT_NE(reason_for("USE1-MP:USE1_InputTokenCount-Units")
                .find("'Palmyra Vision 7' is not in "
                      "the model mapping"),
            std::string::npos);
  EXPECT_NE(reason_for("USE1-Qwen3-32B-input-tokens").find("unit '1K characters'"),
            std::string::npos);
  EXPECT_NE(reason_for("USE1-Qwen3-32B-output-tokens").find("no input price"), std::string::npos);
  EXPECT_NE(reason_for("USE1-Llama3-1-8B-input-tokens").find("tiered"), std::string::npos);
  EXPECT_NE(reason_for("USE1-MP:USE1_Reserved_3Month_InputTPM_Global-Units").find("1M TPM Hour"),
            std::string::npos);
  EXPECT_NE(reason_for("USE1-MP:USE1_InputTokenCount_Priority-Units").find("unit 'Units'"),
            std::string::npos);
  EXPECT_NE(reason_for("USE1-MP:USE1_CacheWrite30mInputTokenCount-Units").find("30-minute"),
            std::string::npos);
  EXPECT_NE(reason_for("USE1-TitanEmbeddingV2-Text-input-tokens").find("not in the model mapping"),
            std::string::npos);
  // Claude 3 Haiku is in both offers at the same price: one row, nothing reported.
  EXPECT_EQ(reason_for("USE1-Claude3Haiku-input-tokens"), "");
}

TEST(ImportPriceList, RegionsSelectRows) {
  import_options only_west;
  only_west.regions = {"us-west-2"};
  const auto r = import_price_list(fixture_offers(), shipped_models(), only_west);
  EXPECT_EQ(r.rows_read, 1U);
  EXPECT_EQ(r.entries, 0U) << "Nova Pro us-west-2 has an input price only";
  EXPECT_TRUE(r.yaml.empty());
}

TEST(ImportPriceList, OneNameMayPriceSeveralIdsAndTwoPricesForOneMeterAreNeverGuessed) {
  const std::string page = R"({"PriceList": [
    {"product": {"sku": "A1", "attributes": {"usagetype": "USE1-NovaPro-input-tokens",
       "regionCode": "us-east-1", "model": "Nova Pro"}}, "serviceCode": "AmazonBedrock",
     "version": "v1", "terms": {"OnDemand": {"A1.T": {"effectiveDate": "2026-01-01",
       "priceDimensions": {"A1.T.R": {"unit": "1K tokens", "pricePerUnit": {"USD": "0.001"}}}}}}},
    {"product": {"sku": "A2", "attributes": {"usagetype": "USE1-NovaPro-output-tokens",
       "regionCode": "us-east-1", "model": "Nova Pro"}}, "serviceCode": "AmazonBedrock",
     "version": "v1", "terms": {"OnDemand": {"A2.T": {
       "priceDimensions": {"A2.T.R": {"unit": "1K tokens", "pricePerUnit": {"USD": "0.004"}}}}}}},
    {"product": {"sku": "A3", "attributes": {"usagetype": "USE1-NovaPro-output-tokens",
       "regionCode": "us-east-1", "model": "Nova Pro"}}, "serviceCode": "AmazonBedrock",
     "version": "v1", "terms": {"OnDemand": {"A3.T": {
       "priceDimensions": {"A3.T.R": {"unit": "1K tokens", "pricePerUnit": {"USD": "0.005"}}}}}}},
    {"product": {"sku": "B1", "attributes": {"usagetype": "USE1-NovaLite-input-tokens",
       "regionCode": "us-east-1", "model": "Nova Lite"}}, "serviceCode": "AmazonBedrock",
     "version": "v1", "terms": {"OnDemand": {"B1.T": {
       "priceDimensions": {"B1.T.R": {"unit": "1K tokens", "pricePerUnit": {"USD": "0.00006"}}}}}}},
    {"product": {"sku": "B2", "attributes": {"usagetype": "USE1-NovaLite-output-tokens",
       "regionCode": "us-east-1", "model": "Nova Lite"}}, "serviceCode": "AmazonBedrock",
     "version": "v1", "terms": {"OnDemand": {"B2.T": {
       "priceDimensions": {"B2.T.R": {"unit": "1K tokens", "pricePerUnit": {"USD": "0.00024"}}}}}}}
  ]})";
  const std::vector<config::price_list_model> mapping{
      {"Nova Pro", "", {"amazon.nova-pro-v1:0"}, std::nullopt, "m:1"},
      {"Nova Lite",
       "AmazonBedrock",
       {"amazon.nova-lite-v1:0", "amazon.nova-lite-v1:1"},
       std::nullopt,
       "m:2"}};
  const std::vector<offer_text> offers{{"page.json", page}};
  const auto r = import_price_list(offers, mapping, {});
  EXPECT_EQ(r.entries, 2U) << r.yaml;
  EXPECT_EQ(r.yaml.find("amazon.nova-pro-v1:0"), std::string::npos) << "conflicting output";
  EXPECT_NE(r.yaml.find("\"amazon.nova-lite-v1:1\""), std::string::npos);
  bool conflict = false;
  for (const auto& s : r.skipped) conflict |= s.reason.find("conflicts with") != std::string::npos;
  EXPECT_TRUE(conflict);
}

TEST(ImportPriceList, AFileThatIsNotAnOfferFailsNamingIt) {
  const std::vector<offer_text> offers{{"bill.csv", "identity/LineItemId,bill/PayerAccountId\n"},
                                       {"other.json", R"({"Items": []})"},
                                       {"bad-item.json", R"({"PriceList": ["{not json"]})"}};
  const auto r = import_price_list(offers, {}, {});
  ASSERT_EQ(r.errors.size(), 3U);
  EXPECT_NE(r.errors[0].find("bill.csv: not JSON"), std::string::npos);
  EXPECT_NE(r.errors[1].find("other.json: not an AWS Price List offer"), std::string::npos);
  EXPECT_NE(r.errors[2].find("bad-item.json: a PriceList item is not JSON"), std::string::npos);
  EXPECT_TRUE(r.yaml.empty());
}

}  // namespace
}  // namespace bedrock_meter::billing
