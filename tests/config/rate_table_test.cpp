#include "config/rate_table_loader.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace bedrock_meter::config {
namespace {

namespace fs = std::filesystem;
namespace m = metering;
using namespace std::chrono_literals;

const fs::path repo_dir = fs::path(BM_TEST_DATA_DIR) / ".." / "..";
const fs::path shipped_table = repo_dir / "config" / "rates" / "bedrock.yaml";
const fs::path shipped_csv = repo_dir / "config" / "rates" / "source" / "bedrock_rates.csv";

std::string all(const std::vector<config_error>& v) {
  std::string out;
  for (const auto& e : v) out += e.to_string() + "\n";
  return out;
}

rate_table_result load(std::string_view yaml) { return load_rate_table_string(yaml, "rates.yaml"); }

/// The only error at `path`; fails the test when there is none or several.
const config_error* error_at(const rate_table_result& r, std::string_view path) {
  const config_error* found = nullptr;
  int count = 0;
  for (const auto& e : r.errors) {
    if (e.path == path) {
      found = &e;
      ++count;
    }
  }
  EXPECT_EQ(count, 1) << "errors at '" << path << "':\n" << all(r.errors);
  return count == 1 ? found : nullptr;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

constexpr std::string_view header =
    "version: \"2026-07-24.1\"\ncurrency: USD\nunit: per_million_tokens\n";

// ---------------------------------------------------------------- a good table

TEST(rate_table_loader, good_table_loads_with_exact_micro_usd_values) {
  const auto r = load(std::string(header) + R"(entries:
  - model: anthropic.claude-3-5-sonnet-20240620-v1:0
    regions: ["*"]
    input: "3.00"
    output: 15
    cache_read: 0.30
    cache_write_5m: "3.75"
    cache_write_1h: "6"
    long_context: { above_input_tokens: 200000, input: "6.00", output: "22.50", cache_read: "0.60" }
    source: "AWS pricing page transcript; CSV row 12"
  - model: amazon.nova-micro-v1:0
    regions: [us-east-1, us-west-2]
    scope: geo
    tier: priority
    latency: optimized
    batch: true
    effective_from: 2024-06-20
    effective_to: 2026-01-01
    input: "0.035"
    output: "0.14"
    cache_read: "0.00875"
    source: test
)");
  ASSERT_TRUE(r.errors.empty()) << all(r.errors);
  EXPECT_TRUE(r.warnings.empty()) << all(r.warnings);
  ASSERT_NE(r.table, nullptr);
  const m::rate_table& t = *r.table;
  EXPECT_EQ(t.version, "2026-07-24.1");
  EXPECT_EQ(t.source_path, "rates.yaml");
  ASSERT_EQ(t.entries.size(), 2u);

  const m::rate_entry& a = t.entries[0];
  EXPECT_EQ(a.model, "anthropic.claude-3-5-sonnet-20240620-v1:0");
  EXPECT_EQ(a.regions, std::vector<std::string>{"*"});
  EXPECT_FALSE(a.scope.has_value());
  EXPECT_EQ(a.tier, m::service_tier::standard);
  EXPECT_EQ(a.latency, m::latency_mode::standard);
  EXPECT_FALSE(a.batch);
  EXPECT_EQ(a.rates.input, 3'000'000);
  EXPECT_EQ(a.rates.output, 15'000'000);
  EXPECT_EQ(a.rates.cache_read, 300'000);  // a bare 0.30: taken from the text, not a double
  EXPECT_EQ(a.rates.cache_write_5m, 3'750'000);
  EXPECT_EQ(a.rates.cache_write_1h, 6'000'000);
  EXPECT_EQ(a.long_context_threshold, 200000u);
  EXPECT_EQ(a.long_context_rates.input, 6'000'000);
  EXPECT_EQ(a.long_context_rates.output, 22'500'000);
  EXPECT_EQ(a.long_context_rates.cache_read, 600'000);
  EXPECT_FALSE(a.long_context_rates.cache_write_5m.has_value());
  EXPECT_EQ(a.source, "AWS pricing page transcript; CSV row 12");
  EXPECT_EQ(a.location, "rates.yaml:5");

  const m::rate_entry& b = t.entries[1];
  EXPECT_EQ(b.regions, (std::vector<std::string>{"us-east-1", "us-west-2"}));
  EXPECT_EQ(b.scope, m::inference_scope::geo);
  EXPECT_EQ(b.tier, m::service_tier::priority);
  EXPECT_EQ(b.latency, m::latency_mode::optimized);
  EXPECT_TRUE(b.batch);
  EXPECT_EQ(b.effective_from, std::chrono::sys_days(2024y / 6 / 20));
  EXPECT_EQ(b.effective_to, std::chrono::sys_days(2026y / 1 / 1));
  EXPECT_EQ(b.rates.input, 35'000);
  EXPECT_EQ(b.rates.cache_read, 8'750);
  EXPECT_FALSE(b.long_context_threshold.has_value());
  EXPECT_EQ(b.location, "rates.yaml:14");

  // index() was called.
  ASSERT_EQ(t.by_model.size(), 2u);
  EXPECT_EQ(t.by_model.at("amazon.nova-micro-v1:0"), std::vector<std::uint32_t>{1});
}

TEST(rate_table_loader, prices_are_exact_for_values_a_double_cannot_hold) {
  const auto r = load(std::string(header) + R"(entries:
  - { model: a.one, regions: ["*"], input: 0.1, output: 0.7, source: s }
  - { model: a.two, regions: ["*"], input: "0.000001", output: "99999.654321", source: s }
  - { model: a.three, regions: ["*"], input: 0, output: "0.29", source: s }
)");
  ASSERT_TRUE(r.errors.empty()) << all(r.errors);
  EXPECT_EQ(r.table->entries[0].rates.input, 100'000);
  EXPECT_EQ(r.table->entries[0].rates.output, 700'000);
  EXPECT_EQ(r.table->entries[1].rates.input, 1);
  EXPECT_EQ(r.table->entries[1].rates.output, 99'999'654'321);
  EXPECT_EQ(r.table->entries[2].rates.output, 290'000);  // 0.29 is 0.28999... as a double
}

// ---------------------------------------------------------------- variants

TEST(rate_table_loader, variants_expand_into_rows_with_their_own_location) {
  const auto r = load(std::string(header) + R"(entries:
  - model: meta.llama4-maverick-17b-instruct-v1:0
    regions: [us-east-1]
    scope: geo
    effective_from: 2025-01-01
    input: "0.24"
    output: "0.97"
    source: "CSV line 277"
    variants:
      - batch: true
        input: "0.12"
        output: "0.485"
      - tier: priority
        latency: optimized
        input: "0.42"
        output: "1.6975"
        cache_read: "0.042"
        source: "priority price list"
      - tier: flex
        input: "0.12"
        output: "0.485"
        long_context: { above_input_tokens: 100000, input: "0.24", output: "0.97" }
)");
  ASSERT_TRUE(r.errors.empty()) << all(r.errors);
  const auto& e = r.table->entries;
  ASSERT_EQ(e.size(), 4u);
  for (const auto& row : e) {
    EXPECT_EQ(row.model, "meta.llama4-maverick-17b-instruct-v1:0");
    EXPECT_EQ(row.regions, std::vector<std::string>{"us-east-1"});
    EXPECT_EQ(row.scope, m::inference_scope::geo);
    EXPECT_EQ(row.effective_from, std::chrono::sys_days(2025y / 1 / 1));
  }
  EXPECT_EQ(e[0].location, "rates.yaml:5");
  EXPECT_FALSE(e[0].batch);

  EXPECT_EQ(e[1].location, "rates.yaml:13");
  EXPECT_TRUE(e[1].batch);
  EXPECT_EQ(e[1].tier, m::service_tier::standard);
  EXPECT_EQ(e[1].rates.input, 120'000);
  EXPECT_EQ(e[1].rates.output, 485'000);
  EXPECT_EQ(e[1].source, "CSV line 277");  // inherited

  EXPECT_EQ(e[2].location, "rates.yaml:16");
  EXPECT_FALSE(e[2].batch);
  EXPECT_EQ(e[2].tier, m::service_tier::priority);
  EXPECT_EQ(e[2].latency, m::latency_mode::optimized);
  EXPECT_EQ(e[2].rates.output, 1'697'500);
  EXPECT_EQ(e[2].rates.cache_read, 42'000);
  EXPECT_EQ(e[2].source, "priority price list");

  EXPECT_EQ(e[3].tier, m::service_tier::flex);
  EXPECT_EQ(e[3].long_context_threshold, 100000u);
  EXPECT_EQ(e[3].long_context_rates.output, 970'000);
  // Rates are not inherited: the flex row has no cache price although nobody said so.
  EXPECT_FALSE(e[3].rates.cache_read.has_value());
  EXPECT_EQ(r.table->by_model.at("meta.llama4-maverick-17b-instruct-v1:0").size(), 4u);
}

TEST(rate_table_loader, variant_errors_point_into_the_variant) {
  const auto r = load(std::string(header) + R"(entries:
  - model: a.b
    regions: ["*"]
    input: "1"
    output: "2"
    source: s
    variants:
      - input: "1"
        output: "2"
      - batch: true
        input: "0.5"
        source: s
      - batch: true
        input: "0.5"
        output: "1"
)");
  const auto* no_selector = error_at(r, "entries[0].variants[0]");
  ASSERT_NE(no_selector, nullptr);
  EXPECT_EQ(no_selector->line, 11);
  EXPECT_TRUE(contains(no_selector->message, "must set 'tier', 'latency' or 'batch'"));
  const auto* no_output = error_at(r, "entries[0].variants[1].output");
  ASSERT_NE(no_output, nullptr);
  EXPECT_EQ(no_output->line, 13);
  // The third variant is valid: with the second one rejected, nothing is a duplicate.
  EXPECT_EQ(r.errors.size(), 2u) << all(r.errors);
  EXPECT_EQ(r.table, nullptr);
}

// ---------------------------------------------------------------- validation errors

TEST(rate_table_loader, each_entry_error_has_its_line_path_and_fix) {
  const auto r = load(std::string(header) + R"(entries:
  - model: us.anthropic.claude-3-5-haiku-20241022-v1:0
    regions: [us-east1, "*"]
    scope: cross_region
    tier: priorty
    latency: fast
    input: "-1.00"
    output: "1.0000001"
    cache_read: "6e-05"
    cache_write_5m: "abc"
    outptu: "2"
    source: s
  - model: global.anthropic.claude-sonnet-4-5-20250929-v1:0
    regions: ["*", cn-north-1]
    input: "1"
    output: "1"
    effective_from: 2026-01-01
    effective_to: 2025-12-31
    long_context: { above_input_tokens: 0, input: "1", output: "1" }
    source: s
  - regions: ["*"]
    batch: maybe
)");
  EXPECT_EQ(r.table, nullptr);
  struct want {
    std::string path;
    int line;
    std::string fragment;
  };
  const std::vector<want> expected = {
      {"entries[0].model", 5, "write the base model 'anthropic.claude-3-5-haiku-20241022-v1:0'"},
      {"entries[0].regions[0]", 6, "did you mean 'us-east-1'?"},
      {"entries[0].regions", 6, "do not combine it with named regions"},
      {"entries[0].scope", 7, "unknown scope 'cross_region'"},
      {"entries[0].tier", 8, "did you mean 'priority'?"},
      {"entries[0].latency", 9, "unknown latency mode 'fast'"},
      {"entries[0].input", 10, "negative price"},
      {"entries[0].output", 11, "more than 6 decimals"},
      {"entries[0].cache_read", 12, "exponent notation"},
      {"entries[0].cache_write_5m", 13, "not a decimal price"},
      {"entries[0].outptu", 14, "did you mean 'output'?"},
      {"entries[1].model", 16, "'scope: global'"},
      {"entries[1].regions[1]", 17, "China partition"},
      {"entries[1].regions", 17, "do not combine it with named regions"},
      {"entries[1].effective_to", 21, "must be after effective_from"},
      {"entries[1].long_context.above_input_tokens", 22, "greater than 0"},
      {"entries[2].model", 24, "missing required key 'model'"},
      {"entries[2].input", 24, "missing required price 'input'"},
      {"entries[2].output", 24, "missing required price 'output'"},
      {"entries[2].source", 24, "missing required key 'source'"},
      {"entries[2].batch", 25, "not a boolean"},
  };
  for (const auto& w : expected) {
    const auto* e = error_at(r, w.path);
    if (e == nullptr) continue;
    EXPECT_EQ(e->line, w.line) << w.path;
    EXPECT_EQ(e->file, "rates.yaml");
    EXPECT_TRUE(contains(e->message, w.fragment)) << w.path << ": " << e->message;
  }
  EXPECT_EQ(r.errors.size(), expected.size()) << all(r.errors);
  // Sorted by position.
  for (std::size_t i = 1; i < r.errors.size(); ++i) {
    EXPECT_LE(r.errors[i - 1].line, r.errors[i].line);
  }
  EXPECT_EQ(r.errors[0].to_string().rfind("rates.yaml:5:12: entries[0].model: ", 0), 0u)
      << r.errors[0].to_string();
}

TEST(rate_table_loader, missing_regions_and_top_level_problems) {
  const auto r = load(R"(currency: EUR
unit: per_thousand_tokens
verison: "x"
entries:
  - { model: a.b, input: "1", output: "1", source: s }
)");
  EXPECT_EQ(r.table, nullptr);
  const auto* version = error_at(r, "version");
  ASSERT_NE(version, nullptr);
  EXPECT_EQ(version->line, 1);
  EXPECT_TRUE(contains(version->message, "missing required key 'version'"));
  const auto* typo = error_at(r, "verison");
  ASSERT_NE(typo, nullptr);
  EXPECT_EQ(typo->line, 3);
  EXPECT_TRUE(contains(typo->message, "did you mean 'version'?"));
  const auto* currency = error_at(r, "currency");
  ASSERT_NE(currency, nullptr);
  EXPECT_TRUE(contains(currency->message, "must be in USD"));
  const auto* unit = error_at(r, "unit");
  ASSERT_NE(unit, nullptr);
  EXPECT_EQ(unit->line, 2);
  const auto* regions = error_at(r, "entries[0].regions");
  ASSERT_NE(regions, nullptr);
  EXPECT_EQ(regions->line, 5);
  EXPECT_TRUE(contains(regions->message, "regions: [\"*\"]"));
  EXPECT_EQ(r.errors.size(), 5u) << all(r.errors);
}

TEST(rate_table_loader, duplicates_report_both_locations) {
  const auto r = load(std::string(header) + R"(entries:
  - { model: a.b, regions: [us-east-1, eu-west-1], input: "1", output: "1", source: s }
  - { model: a.b, regions: [eu-west-1], input: "2", output: "2", source: s }
  - { model: a.b, regions: [eu-west-1], scope: geo, input: "2", output: "2", source: s }
  - { model: a.b, regions: ["*"], input: "1", output: "1", source: s }
  - { model: a.b, regions: ["*"], effective_to: 2025-01-01, input: "1", output: "1", source: "old" }
  - { model: a.b, regions: ["*"], tier: flex, input: "1", output: "1", source: s }
  - { model: a.b, regions: ["*"], tier: default, input: "1", output: "1", source: s }
  - { model: a.b, regions: [us-west-2], effective_to: 2025-01-01, input: "1", output: "1", source: s }
  - { model: a.b, regions: [us-west-2], effective_from: 2025-01-01, input: "1", output: "1", source: s }
)");
  // Row 1 repeats eu-west-1 of row 0; row 4 overlaps row 3 (open windows); row 6 says `default`,
  // which is the standard tier of row 3. Rows 7 and 8 meet at 2025-01-01 without overlapping;
  // other scopes and tiers are separate keys.
  ASSERT_EQ(r.errors.size(), 3u) << all(r.errors);
  EXPECT_EQ(r.errors[0].path, "entries[1]");
  EXPECT_EQ(r.errors[0].line, 6);
  EXPECT_TRUE(contains(r.errors[0].message, "entries[0] at rates.yaml:5"));
  EXPECT_TRUE(contains(r.errors[0].message, "region eu-west-1"));
  EXPECT_EQ(r.errors[1].path, "entries[4]");
  EXPECT_EQ(r.errors[1].line, 9);
  EXPECT_TRUE(contains(r.errors[1].message, "entries[3] at rates.yaml:8"));
  EXPECT_EQ(r.errors[2].path, "entries[6]");
  EXPECT_TRUE(contains(r.errors[2].message, "entries[3] at rates.yaml:8"));
  EXPECT_TRUE(contains(r.errors[2].message, "tier standard"));
}

TEST(rate_table_loader, structural_and_syntax_errors) {
  EXPECT_TRUE(contains(load("").errors.at(0).message, "empty"));
  const auto syntax = load("version: [unclosed\n");
  ASSERT_EQ(syntax.errors.size(), 1u);
  EXPECT_TRUE(contains(syntax.errors[0].message, "YAML syntax error"));
  const auto not_list = load(std::string(header) + "entries: {model: a.b}\n");
  ASSERT_EQ(not_list.errors.size(), 1u);
  EXPECT_EQ(not_list.errors[0].path, "entries");
  const auto arn = load(std::string(header) +
                        "entries:\n  - {model: \"arn:aws:bedrock:us-east-1:1:provisioned-model/x\","
                        " regions: [\"*\"], input: \"1\", output: \"1\", source: s}\n");
  ASSERT_EQ(arn.errors.size(), 1u);
  EXPECT_TRUE(contains(arn.errors[0].message, "models.mappings"));
  const auto bad_lc =
      load(std::string(header) +
           "entries:\n  - {model: a.b, regions: [\"*\"], input: \"1\", output: \"1\","
           " source: s, long_context: {above_input_tokens: lots, input: \"1\"}}\n");
  EXPECT_EQ(bad_lc.errors.size(), 2u) << all(bad_lc.errors);  // threshold, missing output
  const auto version = load("version: \"2026 07 24\"\nentries: []\n");
  ASSERT_EQ(version.errors.size(), 1u);
  EXPECT_TRUE(contains(version.errors[0].message, "Prometheus label"));
}

TEST(rate_table_loader, file_errors_and_file_locations) {
  const auto missing = load_rate_table_file("/nonexistent/rates.yaml");
  ASSERT_EQ(missing.errors.size(), 1u);
  EXPECT_TRUE(contains(missing.errors[0].message, "does not exist"));
  const fs::path dir = fs::temp_directory_path() / ("bm_rates_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream(dir / "t.yaml") << header
                                  << "entries:\n  - {model: a.b, regions: [\"*\"], "
                                     "input: \"1\", output: \"x\", source: s}\n";
  }
  const auto r = load_rate_table_file((dir / "t.yaml").string());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, (dir / "t.yaml").string());
  EXPECT_EQ(r.errors[0].line, 5);
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- warnings

TEST(rate_table_loader, suspicious_rows_warn_but_load) {
  const auto r = load(std::string(header) + R"(entries:
  - { model: a.swapped, regions: ["*"], input: "15", output: "1", source: s }
  - { model: a.free, regions: ["*"], input: "0", output: "0", source: s }
  - { model: a.cache, regions: ["*"], input: "1", output: "2", cache_read: "3", source: s }
  - { model: a.embed, regions: ["*"], input: "0.1", output: "0", source: s }
)");
  ASSERT_TRUE(r.errors.empty()) << all(r.errors);
  ASSERT_NE(r.table, nullptr);
  ASSERT_EQ(r.warnings.size(), 3u) << all(r.warnings);
  EXPECT_EQ(r.warnings[0].line, 5);
  EXPECT_TRUE(contains(r.warnings[0].message, "more than 10x below input"));
  EXPECT_EQ(r.warnings[1].line, 6);
  EXPECT_TRUE(contains(r.warnings[1].message, "both 0"));
  EXPECT_EQ(r.warnings[2].line, 7);
  EXPECT_TRUE(contains(r.warnings[2].message, "cache_read is dearer"));

  const auto empty = load(std::string(header) + "entries: []\n");
  EXPECT_TRUE(empty.errors.empty());
  ASSERT_EQ(empty.warnings.size(), 1u);
  EXPECT_TRUE(contains(empty.warnings[0].message, "unpriced"));
}

TEST(rate_table_loader, region_list_covers_bedrock_partitions) {
  EXPECT_TRUE(is_bedrock_region("us-east-1"));
  EXPECT_TRUE(is_bedrock_region("us-gov-west-1"));
  EXPECT_TRUE(is_bedrock_region("ap-southeast-3"));
  EXPECT_FALSE(is_bedrock_region("cn-north-1"));
  EXPECT_FALSE(is_bedrock_region("us-east1"));
  for (const auto region : bedrock_regions()) EXPECT_TRUE(is_valid_region(region)) << region;
}

// ---------------------------------------------------------------- the shipped table

class shipped_table_test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    result_ = new rate_table_result(load_rate_table_file(shipped_table.string()));
  }
  static void TearDownTestSuite() {
    delete result_;
    result_ = nullptr;
  }
  static const m::rate_table& table() { return *result_->table; }

  /// The entry the pricer would use.
  static const m::rate_entry* at(std::string_view model, std::string_view region,
                                 m::inference_scope scope = m::inference_scope::in_region,
                                 m::latency_mode latency = m::latency_mode::standard,
                                 bool batch = false) {
    m::price_query q;
    q.region = region;
    q.latency = latency;
    q.batch = batch;
    q.at = std::chrono::sys_days(2026y / 7 / 24);
    return m::find_rate(table(), model, scope, q);
  }

  static rate_table_result* result_;
};
rate_table_result* shipped_table_test::result_ = nullptr;

constexpr m::rate_micro_per_m micro(std::int64_t v) { return v; }

TEST_F(shipped_table_test, loads_with_zero_errors_and_warnings) {
  ASSERT_TRUE(result_->errors.empty()) << all(result_->errors);
  EXPECT_TRUE(result_->warnings.empty()) << all(result_->warnings);
  ASSERT_NE(result_->table, nullptr);
  EXPECT_EQ(table().version, "2026-07-24.1");
  EXPECT_GT(table().entries.size(), 150u);
  for (const auto& e : table().entries) {
    EXPECT_FALSE(e.source.empty()) << e.location;
    EXPECT_TRUE(contains(e.location, "bedrock.yaml:")) << e.location;
  }
}

TEST_F(shipped_table_test, notes_corrections_are_applied) {
  ASSERT_NE(result_->table, nullptr);
  struct want {
    std::string model;
    std::string region;
    m::inference_scope scope;
    m::rate_micro_per_m input;
    m::rate_micro_per_m output;
  };
  const std::vector<want> expected = {
      {"amazon.titan-text-express-v1", "us-east-1", m::inference_scope::in_region, 200'000,
       600'000},
      {"amazon.titan-text-express-v1", "us-gov-west-1", m::inference_scope::in_region, 200'000,
       600'000},
      {"amazon.titan-text-lite-v1", "us-east-1", m::inference_scope::in_region, 150'000, 200'000},
      {"meta.llama3-1-405b-instruct-v1:0", "us-west-2", m::inference_scope::in_region, 2'400'000,
       2'400'000},
      {"meta.llama3-1-405b-instruct-v1:0", "us-east-2", m::inference_scope::geo, 2'400'000,
       2'400'000},
      {"meta.llama3-1-70b-instruct-v1:0", "us-east-1", m::inference_scope::geo, 720'000, 720'000},
      {"meta.llama3-2-11b-instruct-v1:0", "us-east-1", m::inference_scope::in_region, 160'000,
       160'000},
      {"meta.llama3-2-90b-instruct-v1:0", "us-east-1", m::inference_scope::in_region, 720'000,
       720'000},
      {"mistral.mistral-large-2402-v1:0", "us-east-1", m::inference_scope::in_region, 4'000'000,
       12'000'000},
      {"anthropic.claude-3-5-haiku-20241022-v1:0", "eu-west-1", m::inference_scope::geo, 800'000,
       4'000'000},
      {"anthropic.claude-3-5-haiku-20241022-v1:0", "eu-central-1", m::inference_scope::geo, 800'000,
       4'000'000},
      {"qwen.qwen3-coder-480b-a35b-v1:0", "us-west-2", m::inference_scope::in_region, 450'000,
       1'800'000},
  };
  for (const auto& w : expected) {
    const auto* e = at(w.model, w.region, w.scope);
    ASSERT_NE(e, nullptr) << w.model << " " << w.region;
    EXPECT_EQ(e->rates.input, w.input) << w.model << " " << w.region << " " << e->location;
    EXPECT_EQ(e->rates.output, w.output) << w.model << " " << w.region << " " << e->location;
  }
  // eu. Claude 3.5 Haiku carried Claude 3 Haiku's cache prices too.
  const auto* haiku =
      at("anthropic.claude-3-5-haiku-20241022-v1:0", "eu-west-1", m::inference_scope::geo);
  ASSERT_NE(haiku, nullptr);
  EXPECT_EQ(haiku->rates.cache_read, micro(80'000));
  EXPECT_EQ(haiku->rates.cache_write_5m, micro(1'000'000));
}

TEST_F(shipped_table_test, nova_cache_reads_from_notes) {
  ASSERT_NE(result_->table, nullptr);
  EXPECT_EQ(at("amazon.nova-micro-v1:0", "us-east-1")->rates.cache_read, micro(8'750));
  EXPECT_EQ(at("amazon.nova-lite-v1:0", "us-east-1")->rates.cache_read, micro(15'000));
  EXPECT_EQ(at("amazon.nova-pro-v1:0", "us-east-1")->rates.cache_read, micro(200'000));
  const auto* premier = at("amazon.nova-premier-v1:0", "us-east-1", m::inference_scope::geo);
  ASSERT_NE(premier, nullptr);
  EXPECT_EQ(premier->rates.cache_read, micro(625'000));
  // Nova's 0.25x rule also on the regional profile prices.
  EXPECT_EQ(at("amazon.nova-pro-v1:0", "eu-west-1", m::inference_scope::geo)->rates.cache_read,
            micro(262'500));
  EXPECT_EQ(at("amazon.nova-pro-v1:0", "us-gov-west-1")->rates.cache_read, micro(240'000));
}

TEST_F(shipped_table_test, nova_sonic_prices_speech_and_text_apart) {
  ASSERT_NE(result_->table, nullptr);
  // AWS per 1K: speech in 0.0034 / out 0.0136, text in 0.00006 / out 0.00024 (x 1000 per 1M).
  const auto* v1 = at("amazon.nova-sonic-v1:0", "us-east-1");
  ASSERT_NE(v1, nullptr);
  EXPECT_EQ(v1->rates.input, micro(60'000));
  EXPECT_EQ(v1->rates.output, micro(240'000));
  EXPECT_EQ(v1->rates.speech_input, micro(3'400'000));
  EXPECT_EQ(v1->rates.speech_output, micro(13'600'000));
  // Nova 2 Sonic per 1K: speech in 0.003 / out 0.012, text in 0.00033 / out 0.00275.
  const auto* v2 = at("amazon.nova-2-sonic-v1:0", "us-east-1");
  ASSERT_NE(v2, nullptr);
  EXPECT_EQ(v2->rates.input, micro(330'000));
  EXPECT_EQ(v2->rates.output, micro(2'750'000));
  EXPECT_EQ(v2->rates.speech_input, micro(3'000'000));
  EXPECT_EQ(v2->rates.speech_output, micro(12'000'000));
  // No other shipped entry has a speech rate.
  for (const auto& e : table().entries) {
    if (e.model.find("sonic") != std::string::npos) continue;
    EXPECT_FALSE(e.rates.speech_input || e.rates.speech_output) << e.location;
  }
}

TEST_F(shipped_table_test, claude_cache_rates_follow_the_input_price) {
  ASSERT_NE(result_->table, nullptr);
  const auto* sonnet = at("anthropic.claude-3-5-sonnet-20241022-v2:0", "us-east-1");
  ASSERT_NE(sonnet, nullptr);
  EXPECT_EQ(sonnet->rates.cache_write_5m, micro(3'750'000));
  EXPECT_EQ(sonnet->rates.cache_write_1h, micro(6'000'000));
  EXPECT_EQ(sonnet->rates.cache_read, micro(300'000));
  int checked = 0;
  for (const auto& e : table().entries) {
    if (!e.model.starts_with("anthropic.claude-") || e.latency != m::latency_mode::standard ||
        !e.rates.cache_write_5m) {
      continue;
    }
    // 1.25x, 2x and 0.1x, in exact integers.
    EXPECT_EQ(*e.rates.cache_write_5m * 4, e.rates.input * 5) << e.location;
    ASSERT_TRUE(e.rates.cache_write_1h.has_value()) << e.location;
    EXPECT_EQ(*e.rates.cache_write_1h, e.rates.input * 2) << e.location;
    EXPECT_EQ(*e.rates.cache_read * 10, e.rates.input) << e.location;
    ++checked;
  }
  EXPECT_GT(checked, 30);
}

TEST_F(shipped_table_test, long_context_batch_and_latency_optimized_rows) {
  ASSERT_NE(result_->table, nullptr);
  const auto* sonnet4 = at("anthropic.claude-sonnet-4-20250514-v1:0", "us-east-1");
  ASSERT_NE(sonnet4, nullptr);
  EXPECT_EQ(sonnet4->long_context_threshold, 200000u);
  EXPECT_EQ(sonnet4->long_context_rates.input, sonnet4->rates.input * 2);
  EXPECT_EQ(sonnet4->long_context_rates.output * 2, sonnet4->rates.output * 3);
  EXPECT_EQ(sonnet4->long_context_rates.input, 6'000'000);
  EXPECT_EQ(sonnet4->long_context_rates.output, 22'500'000);

  const auto* haiku_fast = at("anthropic.claude-3-5-haiku-20241022-v1:0", "us-east-2",
                              m::inference_scope::geo, m::latency_mode::optimized);
  ASSERT_NE(haiku_fast, nullptr);
  EXPECT_EQ(haiku_fast->rates.input, 1'000'000);
  EXPECT_EQ(haiku_fast->rates.output, 5'000'000);
  const auto* nova_fast = at("amazon.nova-pro-v1:0", "us-east-2", m::inference_scope::in_region,
                             m::latency_mode::optimized);
  ASSERT_NE(nova_fast, nullptr);
  EXPECT_EQ(nova_fast->rates.output, 4'000'000);
  const auto* llama_fast = at("meta.llama3-1-70b-instruct-v1:0", "us-east-2",
                              m::inference_scope::in_region, m::latency_mode::optimized);
  ASSERT_NE(llama_fast, nullptr);
  EXPECT_EQ(llama_fast->rates.input, 900'000);
  EXPECT_EQ(at("anthropic.claude-sonnet-4-20250514-v1:0", "us-east-1",
               m::inference_scope::in_region, m::latency_mode::optimized),
            nullptr);  // not offered: unpriced, never the standard price

  const auto* batch = at("meta.llama4-maverick-17b-instruct-v1:0", "us-east-1",
                         m::inference_scope::in_region, m::latency_mode::standard, true);
  ASSERT_NE(batch, nullptr);
  EXPECT_EQ(batch->rates.input, 120'000);
  EXPECT_EQ(batch->rates.output, 485'000);
}

/// A minimal CSV reader for the committed price file (quoted fields may contain commas).
std::vector<std::vector<std::string>> read_csv(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.ends_with('\r')) line.pop_back();  // the CSV has CRLF line ends
    std::vector<std::string> fields(1);
    bool quoted = false;
    for (const char c : line) {
      if (c == '"') {
        quoted = !quoted;
      } else if (c == ',' && !quoted) {
        fields.emplace_back();
      } else {
        fields.back() += c;
      }
    }
    rows.push_back(std::move(fields));
  }
  return rows;
}

/// Every CSV row with a per-token price is priced by the shipped table, at the CSV's price
/// unless NOTES.md corrects it. Token-priced: a chat/responses/embedding row with an input
/// price, not provisioned, not an alias key, not an all-zero placeholder.
TEST_F(shipped_table_test, every_token_priced_csv_row_has_its_price) {
  ASSERT_NE(result_->table, nullptr);
  const auto rows = read_csv(shipped_csv);
  ASSERT_GT(rows.size(), 400u);
  std::map<std::string, std::size_t> col;
  for (std::size_t i = 0; i < rows[0].size(); ++i) col[rows[0][i]] = i;
  const auto get = [&](const std::vector<std::string>& r, const char* name) {
    return r.at(col.at(name));
  };
  const auto price = [](const std::string& text) -> std::optional<m::rate_micro_per_m> {
    if (text.empty()) return std::nullopt;
    return m::parse_rate_per_million(text);
  };
  // Regions with their own CSV rows, per base model: a "*" row is checked from another region.
  std::map<std::string, std::set<std::string>> regional;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    if (get(rows[i], "region") != "*")
      regional[get(rows[i], "base_model_id")].insert(get(rows[i], "region"));
  }
  const std::map<std::string, std::vector<std::string>> geo_regions = {
      {"us", {"us-east-1", "us-east-2", "us-west-1", "us-west-2"}},
      {"eu", {"eu-central-1", "eu-west-1", "eu-west-2", "eu-west-3", "eu-north-1", "eu-south-1"}},
      {"apac", {"ap-southeast-1", "ap-northeast-2", "ap-south-1", "ap-northeast-1"}},
      {"jp", {"ap-northeast-1", "ap-northeast-3"}},
      {"au", {"ap-southeast-2", "ap-southeast-4"}},
      {"us-gov", {"us-gov-east-1", "us-gov-west-1"}},
      {"", {"us-east-1", "us-west-2", "ca-central-1", "eu-west-3", "me-central-1"}},
  };
  // NOTES.md corrections and resolved CSV conflicts: checked by the tests above instead.
  const std::set<std::string> corrected = {
      "amazon.titan-text-express-v1",
      "amazon.titan-text-lite-v1",
      "meta.llama3-1-70b-instruct-v1:0",
      "meta.llama3-1-405b-instruct-v1:0",
      "meta.llama3-2-11b-instruct-v1:0",
      "meta.llama3-2-90b-instruct-v1:0",
      "mistral.mistral-large-2402-v1:0",
      "eu.anthropic.claude-3-5-haiku-20241022-v1:0",
      "qwen.qwen3-coder-480b-a35b-v1:0",
      "bedrock/moonshotai.kimi-k2.5",                  // 3.03 loses to the AWS-page row
      "bedrock_mantle/openai.gpt-oss-safeguard-20b"};  // mantle loses to the Runtime row
  int checked = 0;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const std::string mode = get(r, "mode");
    const std::string scope_text = get(r, "inference_scope");
    const auto in = price(get(r, "input_per_1m_usd"));
    const auto out = price(get(r, "output_per_1m_usd"));
    if ((mode != "chat" && mode != "responses" && mode != "embedding") ||
        scope_text == "provisioned" || get(r, "notes").starts_with("alias key") || !in ||
        (*in == 0 && out.value_or(0) == 0)) {
      continue;
    }
    const std::string base = get(r, "base_model_id");
    const std::string where = "CSV line " + std::to_string(i + 1) + " " + get(r, "model_id");
    m::inference_scope scope = m::inference_scope::in_region;
    std::string geo;
    if (scope_text == "global") {
      scope = m::inference_scope::global;
    } else if (scope_text.starts_with("geo:")) {
      scope = m::inference_scope::geo;
      geo = scope_text.substr(4);
    }
    std::string region = get(r, "region");
    if (region == "*") {
      const auto& candidates = geo_regions.at(geo);
      region = candidates.front();
      for (const auto& c : candidates) {
        if (!regional[base].contains(c)) {
          region = c;
          break;
        }
      }
    }
    const auto* e = at(base, region, scope);
    ASSERT_NE(e, nullptr) << where << " from " << region << " has no entry";
    ++checked;
    if (corrected.contains(base) || corrected.contains(get(r, "model_id")) ||
        corrected.contains(get(r, "source_key"))) {
      continue;
    }
    EXPECT_EQ(e->rates.input, *in) << where << " -> " << e->location;
    EXPECT_EQ(e->rates.output, out.value_or(0)) << where << " -> " << e->location;
    if (const auto cr = price(get(r, "cache_read_per_1m_usd"))) {
      EXPECT_EQ(e->rates.cache_read, cr) << where << " -> " << e->location;
    }
    if (const auto cw = price(get(r, "cache_write_per_1m_usd"))) {
      EXPECT_EQ(e->rates.cache_write_5m, cw) << where << " -> " << e->location;
    }
    const std::string other = get(r, "other");
    if (const auto p = other.find("input_above_200k_per_1m="); p != std::string::npos) {
      const std::string v = other.substr(p + 24, other.find(';', p) - p - 24);
      EXPECT_EQ(e->long_context_threshold, 200000u) << where;
      EXPECT_EQ(e->long_context_rates.input, price(v)) << where << " -> " << e->location;
    }
  }
  EXPECT_GT(checked, 300);
}

// ---------------------------------------------------------------- capacity and caching sections

/// One entry that keeps `entries` valid, so each capacity test sees only its own errors.
constexpr std::string_view one_entry =
    "entries:\n  - { model: a.b, regions: [\"*\"], input: \"1\", output: \"2\", source: s }\n";

rate_table_result load_capacity(std::string_view sections) {
  return load(std::string(header) + std::string(one_entry) + std::string(sections));
}

/// `e` is at `line` of rates.yaml, and its message contains every fragment.
void expect_error(const config_error* e, int line, std::initializer_list<std::string_view> parts) {
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->file, "rates.yaml");
  EXPECT_EQ(e->line, line) << e->to_string();
  for (const auto part : parts) EXPECT_TRUE(contains(e->message, part)) << e->to_string();
}

constexpr m::pico_usd usd = m::pico_per_usd;

TEST(rate_table_loader, capacity_and_caching_sections_load_into_the_structs) {
  const auto r = load_capacity(R"(provisioned:
  - model: anthropic.claude-instant-v1
    regions: [us-east-1, us-west-2]
    model_unit:
      input_tpm: 100000
      output_tpm: 20000
      source: "account team quote, 2026-05"
    model_units:
      - term: no_commit
        hourly: "44.00"
        source: "AWS pricing page"
      - term: 1_month
        hourly: 39.6
        source: "AWS pricing page, 1 month"
      - term: 6_months
        hourly: "0.000001"
        source: "tiny"
    reserved:
      - term: 1_month
        scope: geo
        input_per_1k_tpm_hour: "0.198"
        output_per_1k_tpm_hour: "0.99"
        min_input_tpm: 100000
        min_output_tpm: 10000
        source: "price list"
      - term: 3_months
        input_per_1k_tpm_hour: "0.15"
        source: "price list, 3 months"
  - model: cohere.command-text-v14
    regions: ["*"]
    model_units:
      - { term: 1_month, hourly: "39.60", source: p }
caching:
  - model: anthropic.claude-sonnet-4-5-20250929-v1:0
    min_prefix_tokens: 1024
    ttl_1h: true
    source: "Bedrock prompt caching documentation"
  - { model: amazon.nova-lite-v1:0, min_prefix_tokens: 1536, source: docs }
)");
  ASSERT_TRUE(r.errors.empty()) << all(r.errors);
  EXPECT_TRUE(r.warnings.empty()) << all(r.warnings);
  ASSERT_NE(r.table, nullptr);
  const m::rate_table& t = *r.table;
  EXPECT_EQ(t.entries.size(), 1u);
  ASSERT_EQ(t.provisioned.size(), 2u);

  const m::provisioned_entry& a = t.provisioned[0];
  EXPECT_EQ(a.model, "anthropic.claude-instant-v1");
  EXPECT_EQ(a.regions, (std::vector<std::string>{"us-east-1", "us-west-2"}));
  EXPECT_EQ(a.unit_input_tpm, 100000u);
  EXPECT_EQ(a.unit_output_tpm, 20000u);
  EXPECT_EQ(a.capacity_source, "account team quote, 2026-05");
  EXPECT_EQ(a.location, "rates.yaml:7");
  ASSERT_EQ(a.model_units.size(), 3u);
  EXPECT_EQ(a.model_units[0].term, m::commitment_term::no_commit);
  EXPECT_EQ(a.model_units[0].hourly, 44 * usd);
  EXPECT_EQ(a.model_units[0].source, "AWS pricing page");
  EXPECT_EQ(a.model_units[1].term, m::commitment_term::one_month);
  EXPECT_EQ(a.model_units[1].hourly, 39'600'000'000'000);  // a bare 39.6: from the text
  EXPECT_EQ(a.model_units[1].source, "AWS pricing page, 1 month");
  EXPECT_EQ(a.model_units[2].term, m::commitment_term::six_months);
  EXPECT_EQ(a.model_units[2].hourly, 1'000'000);  // 1 micro-USD = 1e6 pico-USD
  ASSERT_EQ(a.reserved.size(), 2u);
  const m::reserved_tier_price& geo = a.reserved[0];
  EXPECT_EQ(geo.term, m::commitment_term::one_month);
  EXPECT_EQ(geo.scope, m::inference_scope::geo);
  EXPECT_EQ(geo.input_per_1k_tpm_hour, 198'000'000'000);
  EXPECT_EQ(geo.output_per_1k_tpm_hour, 990'000'000'000);
  EXPECT_EQ(geo.min_input_tpm, 100000u);
  EXPECT_EQ(geo.min_output_tpm, 10000u);
  EXPECT_EQ(geo.source, "price list");
  const m::reserved_tier_price& any = a.reserved[1];
  EXPECT_EQ(any.term, m::commitment_term::three_months);
  EXPECT_FALSE(any.scope.has_value());
  EXPECT_EQ(any.input_per_1k_tpm_hour, 150'000'000'000);
  EXPECT_FALSE(any.output_per_1k_tpm_hour.has_value());
  EXPECT_EQ(any.min_input_tpm, 0u);
  EXPECT_EQ(any.min_output_tpm, 0u);

  const m::provisioned_entry& b = t.provisioned[1];
  EXPECT_EQ(b.regions, std::vector<std::string>{"*"});
  EXPECT_FALSE(b.unit_input_tpm.has_value());  // capacity is optional
  EXPECT_FALSE(b.unit_output_tpm.has_value());
  EXPECT_TRUE(b.capacity_source.empty());
  ASSERT_EQ(b.model_units.size(), 1u);
  EXPECT_EQ(b.model_units[0].hourly, 39'600'000'000'000);
  EXPECT_TRUE(b.reserved.empty());
  EXPECT_EQ(b.location, "rates.yaml:34");

  ASSERT_EQ(t.caching.size(), 2u);
  EXPECT_EQ(t.caching[0].model, "anthropic.claude-sonnet-4-5-20250929-v1:0");
  EXPECT_EQ(t.caching[0].min_prefix_tokens, 1024u);
  EXPECT_TRUE(t.caching[0].ttl_1h);
  EXPECT_EQ(t.caching[0].source, "Bedrock prompt caching documentation");
  EXPECT_EQ(t.caching[0].location, "rates.yaml:39");
  EXPECT_EQ(t.caching[1].min_prefix_tokens, 1536u);
  EXPECT_FALSE(t.caching[1].ttl_1h);  // default
  EXPECT_EQ(t.caching[1].location, "rates.yaml:43");

  // The lookups see the loaded sections. Claude Instant is in no `entries` row: capacity prices
  // do not need a token price.
  EXPECT_EQ(m::find_provisioned(t, "anthropic.claude-instant-v1", "us-west-2"), &a);
  EXPECT_EQ(m::find_provisioned(t, "cohere.command-text-v14", "eu-west-1"), &b);
  EXPECT_EQ(m::find_caching(t, "amazon.nova-lite-v1:0"), &t.caching[1]);
}

TEST(rate_table_loader, tables_without_capacity_sections_stay_valid) {
  const auto r = load(std::string(header) + std::string(one_entry));
  ASSERT_TRUE(r.errors.empty()) << all(r.errors);
  EXPECT_TRUE(r.table->provisioned.empty());
  EXPECT_TRUE(r.table->caching.empty());
  const auto empty = load_capacity("provisioned:\ncaching: []\n");
  ASSERT_TRUE(empty.errors.empty()) << all(empty.errors);
  EXPECT_TRUE(empty.table->provisioned.empty());
  const auto wrong_type = load_capacity("provisioned: {model: a.b}\ncaching: lots\n");
  expect_error(error_at(wrong_type, "provisioned"), 6, {"expected a list of provisioned entries"});
  expect_error(error_at(wrong_type, "caching"), 7, {"expected a list of caching rules"});
  EXPECT_EQ(wrong_type.errors.size(), 2u) << all(wrong_type.errors);
}

TEST(rate_table_loader, capacity_amounts_are_exact_positive_decimals) {
  const auto r = load_capacity(R"(provisioned:
  - model: a.b
    regions: ["*"]
    model_units:
      - { term: no_commit, hourly: "-44.00", source: s }
      - { term: 1_month, hourly: "44.0000001", source: s }
      - { term: 6_months, hourly: "forty", source: s }
    reserved:
      - { term: 1_month, input_per_1k_tpm_hour: "0", output_per_1k_tpm_hour: "1e-3", source: s }
      - { term: 3_months, input_per_1k_tpm_hour: "$0.19", source: s }
  - model: a.c
    regions: ["*"]
    model_units:
      - { term: no_commit, hourly: "9999999", source: s }
      - { term: 1_month, hourly: [1], source: s }
      - { term: 6_months, source: s }
)");
  EXPECT_EQ(r.table, nullptr);
  const std::string p0 = "provisioned[0].";
  expect_error(error_at(r, p0 + "model_units[0].hourly"), 10,
               {"negative price '-44.00'", "more than 0 USD per model unit per hour"});
  expect_error(error_at(r, p0 + "model_units[1].hourly"), 11, {"more than 6 decimals"});
  expect_error(error_at(r, p0 + "model_units[2].hourly"), 12,
               {"'forty' is not a decimal price", "per model unit per hour"});
  expect_error(error_at(r, p0 + "reserved[0].input_per_1k_tpm_hour"), 14,
               {"must be greater than 0", "USD per 1,000 TPM per hour"});
  expect_error(error_at(r, p0 + "reserved[0].output_per_1k_tpm_hour"), 14, {"exponent notation"});
  expect_error(error_at(r, p0 + "reserved[1].input_per_1k_tpm_hour"), 15, {"drop the '$'"});
  const std::string p1 = "provisioned[1].";
  expect_error(error_at(r, p1 + "model_units[0].hourly"), 19,
               {"'9999999' is more than the largest price accepted, 1000000 USD per model unit "
                "per hour"});
  expect_error(error_at(r, p1 + "model_units[1].hourly"), 20, {"expected a price, got a list"});
  expect_error(error_at(r, p1 + "model_units[2].hourly"), 21, {"missing required price 'hourly'"});
  EXPECT_EQ(r.errors.size(), 9u) << all(r.errors);
}

// Prices beyond any Bedrock price are unit mistakes and must never wrap: "9223372036855" (one
// past what a 64-bit micro-USD rate holds) used to be "not a decimal price", and anything up to
// it was accepted, so one request of a few tokens could exceed a 64-bit pico-USD cost.
TEST(rate_table_loader, prices_above_the_largest_accepted_are_refused_naming_it) {
  const auto r = load(std::string(header) + R"(entries:
  - model: amazon.nova-micro-v1:0
    regions: ["*"]
    input: "100000.000001"
    output: "9223372036855"
    cache_read: "99999999999999999999999"
    source: s
  - model: amazon.nova-lite-v1:0
    regions: ["*"]
    input: "100000"
    output: "99999.999999"
    source: s
)");
  EXPECT_EQ(r.table, nullptr);
  for (const auto* key : {"input", "output", "cache_read"}) {
    const auto* e = error_at(r, std::string("entries[0].") + key);
    ASSERT_NE(e, nullptr) << key;
    EXPECT_NE(e->message.find("is more than the largest price accepted, 100000 USD per 1M tokens"),
              std::string::npos)
        << e->message;
  }
  EXPECT_EQ(r.errors.size(), 3u) << all(r.errors);  // 100000 itself is accepted
}

TEST(rate_table_loader, speech_rates_load_in_entries_variants_and_long_context) {
  const auto r = load(std::string(header) + R"(entries:
  - model: amazon.nova-sonic-v1:0
    regions: ["*"]
    input: "0.06"
    output: "0.24"
    speech_input: "3.40"
    speech_output: 13.6
    long_context: { above_input_tokens: 1000, input: "0.12", output: "0.48", speech_input: "6.8" }
    source: s
    variants:
      - batch: true
        input: "0.03"
        output: "0.12"
        speech_output: "6.80"
  - model: amazon.nova-lite-v1:0
    regions: ["*"]
    input: "0.06"
    output: "0.24"
    source: s
)");
  ASSERT_NE(r.table, nullptr) << all(r.errors);
  EXPECT_TRUE(r.warnings.empty()) << all(r.warnings);
  const auto& e = r.table->entries;
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].rates.speech_input, micro(3'400'000));
  EXPECT_EQ(e[0].rates.speech_output, micro(13'600'000));
  EXPECT_EQ(e[0].long_context_rates.speech_input, micro(6'800'000));
  EXPECT_EQ(e[0].long_context_rates.speech_output, std::nullopt);
  // A variant inherits no rate: its own speech_output only.
  EXPECT_EQ(e[1].rates.speech_input, std::nullopt);
  EXPECT_EQ(e[1].rates.speech_output, micro(6'800'000));
  EXPECT_EQ(e[2].rates.speech_input, std::nullopt);
  EXPECT_EQ(e[2].rates.speech_output, std::nullopt);
}

TEST(rate_table_loader, speech_rates_are_checked_like_other_prices) {
  const auto r = load(std::string(header) + R"(entries:
  - model: amazon.nova-sonic-v1:0
    regions: ["*"]
    input: "0.06"
    output: "0.24"
    speech_input: "-3.40"
    speech_output: "100000.000001"
    long_context: { above_input_tokens: 1000, input: "1", output: "1", speech_output: 3.4e0 }
    source: s
    variants:
      - batch: true
        input: "0.03"
        output: "0.12"
        speech_inptu: "1.70"
)");
  EXPECT_EQ(r.table, nullptr);
  EXPECT_NE(error_at(r, "entries[0].speech_input"), nullptr);
  const auto* big = error_at(r, "entries[0].speech_output");
  ASSERT_NE(big, nullptr);
  EXPECT_TRUE(contains(big->message, "largest price accepted, 100000 USD per 1M tokens"))
      << big->message;
  EXPECT_NE(error_at(r, "entries[0].long_context.speech_output"), nullptr);
  const auto* typo = error_at(r, "entries[0].variants[0].speech_inptu");
  ASSERT_NE(typo, nullptr);
  EXPECT_TRUE(contains(typo->message, "speech_input")) << typo->message;  // did you mean
  EXPECT_EQ(r.errors.size(), 4u) << all(r.errors);
}

TEST(rate_table_loader, capacity_unknown_and_duplicate_keys_are_reported) {
  const auto r = load_capacity(R"(provisoned: []
provisioned:
  - model: a.b
    region: ["*"]
    model_unit: { input_tpm: 1, output_tpm: 1, source: s, througput: 3 }
    model_units:
      - { term: no_commit, hourly: "1", source: s, hourley: "2" }
    reserved:
      - { term: 1_month, input_per_1k_tpm_hour: "1", source: s, min_input: 5 }
caching:
  - model: a.b
    min_prefix_tokens: 1024
    ttl: true
    source: s
    source: t
)");
  EXPECT_EQ(r.table, nullptr);
  expect_error(error_at(r, "provisoned"), 6, {"did you mean 'provisioned'?"});
  expect_error(error_at(r, "provisioned[0].region"), 9, {"did you mean 'regions'?"});
  expect_error(error_at(r, "provisioned[0].regions"), 8, {"missing required key 'regions'"});
  expect_error(error_at(r, "provisioned[0].model_unit.througput"), 10, {"unknown key"});
  expect_error(error_at(r, "provisioned[0].model_units[0].hourley"), 12,
               {"did you mean 'hourly'?"});
  expect_error(error_at(r, "provisioned[0].reserved[0].min_input"), 14,
               {"did you mean 'min_input_tpm'?"});
  expect_error(error_at(r, "caching[0].ttl"), 18, {"did you mean 'ttl_1h'?"});
  expect_error(error_at(r, "caching[0].source"), 20, {"duplicate key 'source'"});
  EXPECT_EQ(r.errors.size(), 8u) << all(r.errors);
}

TEST(rate_table_loader, capacity_required_keys_and_ranges) {
  const auto r = load_capacity(R"(provisioned:
  - model: us.anthropic.claude-instant-v1
    regions: [us-east1]
    model_unit: { input_tpm: 0, source: s }
    model_units:
      - { hourly: "1" }
    reserved:
      - { term: 1_month, min_input_tpm: lots }
  - regions: ["*"]
    model_unit:
    model_units: [{ term: no_commit, hourly: "1", source: s }]
caching:
  - { model: a.b, min_prefix_tokens: 0, ttl_1h: sometimes, source: s }
  - { model: a.c }
)");
  EXPECT_EQ(r.table, nullptr);
  const std::string p0 = "provisioned[0].";
  expect_error(error_at(r, p0 + "model"), 7, {"inference-profile id"});
  expect_error(error_at(r, p0 + "regions[0]"), 8, {"did you mean 'us-east-1'?"});
  expect_error(error_at(r, p0 + "model_unit.input_tpm"), 9, {"out of range", "greater than 0"});
  expect_error(error_at(r, p0 + "model_unit.output_tpm"), 9, {"missing required key"});
  expect_error(error_at(r, p0 + "model_units[0].term"), 11, {"missing required key 'term'"});
  expect_error(error_at(r, p0 + "model_units[0].source"), 11, {"missing required key 'source'"});
  expect_error(error_at(r, p0 + "reserved[0].input_per_1k_tpm_hour"), 13,
               {"missing required price 'input_per_1k_tpm_hour'"});
  expect_error(error_at(r, p0 + "reserved[0].min_input_tpm"), 13, {"'lots' is not a whole number"});
  expect_error(error_at(r, p0 + "reserved[0].source"), 13, {"missing required key 'source'"});
  expect_error(error_at(r, "provisioned[1].model"), 14, {"missing required key 'model'"});
  expect_error(error_at(r, "provisioned[1].model_unit"), 15, {"'model_unit' is empty"});
  expect_error(error_at(r, "caching[0].min_prefix_tokens"), 18, {"out of range"});
  expect_error(error_at(r, "caching[0].ttl_1h"), 18, {"not a boolean"});
  expect_error(error_at(r, "caching[1].min_prefix_tokens"), 19, {"missing required key"});
  expect_error(error_at(r, "caching[1].source"), 19, {"missing required key 'source'"});
  EXPECT_EQ(r.errors.size(), 15u) << all(r.errors);
}

TEST(rate_table_loader, capacity_terms_are_checked_by_product) {
  const auto r = load_capacity(R"(provisioned:
  - model: a.b
    regions: ["*"]
    model_units:
      - { term: 1_mnth, hourly: "1", source: s }
      - { term: 3_months, hourly: "1", source: s }
    reserved:
      - { term: 6_months, input_per_1k_tpm_hour: "1", source: s }
      - { term: no_commit, input_per_1k_tpm_hour: "1", source: s }
      - { term: 3_monts, input_per_1k_tpm_hour: "1", source: s }
      - { term: 1_month, scope: everywhere, input_per_1k_tpm_hour: "1", source: s }
)");
  EXPECT_EQ(r.table, nullptr);
  const std::string p = "provisioned[0].";
  expect_error(error_at(r, p + "model_units[0].term"), 10,
               {"unknown term '1_mnth'", "did you mean '1_month'?"});
  expect_error(error_at(r, p + "model_units[1].term"), 11,
               {"'3_months' is a Reserved-tier term", "no_commit, 1_month, 6_months"});
  expect_error(error_at(r, p + "reserved[0].term"), 13,
               {"'6_months' is a Provisioned Throughput term", "1_month, 3_months"});
  expect_error(error_at(r, p + "reserved[1].term"), 14, {"Provisioned Throughput term"});
  expect_error(error_at(r, p + "reserved[2].term"), 15, {"did you mean '3_months'?"});
  expect_error(error_at(r, p + "reserved[3].scope"), 16, {"unknown scope 'everywhere'"});
  EXPECT_EQ(r.errors.size(), 6u) << all(r.errors);
}

TEST(rate_table_loader, capacity_duplicate_terms_in_one_entry) {
  const auto r = load_capacity(R"(provisioned:
  - model: a.b
    regions: ["*"]
    model_units:
      - { term: 1_month, hourly: "1", source: s }
      - { term: 6_months, hourly: "1", source: s }
      - { term: 1_month, hourly: "2", source: s }
    reserved:
      - { term: 1_month, scope: geo, input_per_1k_tpm_hour: "1", source: s }
      - { term: 1_month, scope: global, input_per_1k_tpm_hour: "1", source: s }
      - { term: 3_months, input_per_1k_tpm_hour: "1", source: s }
      - { term: 1_month, scope: geo, input_per_1k_tpm_hour: "2", source: s }
      - { term: 3_months, scope: in_region, input_per_1k_tpm_hour: "2", source: s }
  - model: a.c
    regions: ["*"]
    model_units:
      - { term: 1_month, hourly: "1", source: s }
)");
  EXPECT_EQ(r.table, nullptr);
  const std::string p = "provisioned[0].";
  expect_error(error_at(r, p + "model_units[2].term"), 12,
               {"term 1_month is listed twice", "first at rates.yaml:10"});
  // geo and global are different reservations; a scope-less one overlaps every scope.
  expect_error(error_at(r, p + "reserved[3].term"), 17,
               {"term 1_month (scope geo)", "at rates.yaml:14 (scope geo)"});
  expect_error(error_at(r, p + "reserved[4].term"), 18,
               {"term 3_months (scope in_region)", "at rates.yaml:16 (scope any)"});
  EXPECT_EQ(r.errors.size(), 3u) << all(r.errors);  // the same term in another entry is fine
}

TEST(rate_table_loader, capacity_duplicate_model_and_region) {
  const auto r = load_capacity(R"(provisioned:
  - { model: a.b, regions: [us-east-1, us-west-2], model_units: [{ term: no_commit, hourly: "1", source: s }] }
  - { model: a.b, regions: [eu-west-1, us-west-2], model_units: [{ term: no_commit, hourly: "2", source: s }] }
  - { model: a.b, regions: ["*"], model_units: [{ term: no_commit, hourly: "3", source: s }] }
  - { model: a.b, regions: ["*"], reserved: [{ term: 1_month, input_per_1k_tpm_hour: "1", source: s }] }
  - { model: a.b:1, regions: ["*"], model_units: [{ term: no_commit, hourly: "3", source: s }] }
  - { model: a.c, regions: [us-east-1], model_units: [{ term: no_commit, hourly: "3", source: s }] }
caching:
  - { model: a.b, min_prefix_tokens: 1024, source: s }
  - { model: a.b:1, min_prefix_tokens: 1024, source: s }
  - { model: a.b, min_prefix_tokens: 2048, source: t }
)");
  EXPECT_EQ(r.table, nullptr);
  // A named region next to "*" is not a duplicate (the exact region wins); other models are not.
  expect_error(error_at(r, "provisioned[1]"), 8,
               {"provisioned[0] at rates.yaml:7", "a.b in region us-west-2"});
  expect_error(error_at(r, "provisioned[3]"), 10, {"provisioned[2] at rates.yaml:9", "region *"});
  expect_error(error_at(r, "caching[2]"), 16, {"caching[0] at rates.yaml:14", "a.b"});
  EXPECT_EQ(r.errors.size(), 3u) << all(r.errors);
}

TEST(rate_table_loader, provisioned_entry_needs_a_price) {
  const auto r = load_capacity(R"(provisioned:
  - model: a.b
    regions: ["*"]
    model_unit: { input_tpm: 1000, output_tpm: 100, source: s }
  - { model: a.c, regions: ["*"], model_units: [], reserved: }
)");
  EXPECT_EQ(r.table, nullptr);
  expect_error(error_at(r, "provisioned[0]"), 7, {"needs 'model_units' or 'reserved'"});
  expect_error(error_at(r, "provisioned[1]"), 10, {"needs 'model_units' or 'reserved'"});
  EXPECT_EQ(r.errors.size(), 2u) << all(r.errors);
}

TEST_F(shipped_table_test, capacity_and_caching_sections) {
  ASSERT_NE(result_->table, nullptr);
  const auto unit_price = [](const m::provisioned_entry* p, m::commitment_term term) {
    for (const auto& u : p->model_units) {
      if (u.term == term) return u.hourly;
    }
    return m::pico_usd{-1};
  };
  const auto* instant = m::find_provisioned(table(), "anthropic.claude-instant-v1", "us-west-2");
  ASSERT_NE(instant, nullptr);
  EXPECT_EQ(unit_price(instant, m::commitment_term::no_commit), 44 * usd);
  EXPECT_EQ(unit_price(instant, m::commitment_term::one_month), 39'600'000'000'000);
  EXPECT_EQ(unit_price(instant, m::commitment_term::six_months), 22 * usd);
  const auto* tokyo = m::find_provisioned(table(), "anthropic.claude-v2:1", "ap-northeast-1");
  ASSERT_NE(tokyo, nullptr);
  EXPECT_EQ(tokyo->model, "anthropic.claude-v2:1");
  EXPECT_EQ(unit_price(tokyo, m::commitment_term::no_commit), -1);  // none published there
  EXPECT_EQ(unit_price(tokyo, m::commitment_term::one_month), 86 * usd);
  const auto* embed = m::find_provisioned(table(), "cohere.embed-english-v3", "eu-west-1");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(unit_price(embed, m::commitment_term::six_months), 6'410'000'000'000);
  const auto* sonnet46 = m::find_provisioned(table(), "anthropic.claude-sonnet-4-6", "us-east-1");
  ASSERT_NE(sonnet46, nullptr);
  ASSERT_EQ(sonnet46->reserved.size(), 1u);
  EXPECT_EQ(sonnet46->reserved[0].input_per_1k_tpm_hour, 198'000'000'000);
  EXPECT_EQ(sonnet46->reserved[0].scope, m::inference_scope::geo);
  EXPECT_EQ(sonnet46->reserved[0].min_input_tpm, 100000u);
  EXPECT_EQ(sonnet46->reserved[0].min_output_tpm, 10000u);
  EXPECT_EQ(m::find_provisioned(table(), "anthropic.claude-sonnet-4-6", "us-west-2"), nullptr);
  for (const auto& p : table().provisioned) {
    // AWS publishes no model-unit throughput: the shipped table claims none.
    EXPECT_FALSE(p.unit_input_tpm.has_value()) << p.location;
    EXPECT_TRUE(contains(p.location, "bedrock.yaml:")) << p.location;
    for (const auto& u : p.model_units) EXPECT_FALSE(u.source.empty()) << p.location;
    for (const auto& v : p.reserved) EXPECT_FALSE(v.source.empty()) << p.location;
  }
  // Every caching rule names a model the table prices per token.
  ASSERT_GE(table().caching.size(), 10u);
  for (const auto& c : table().caching) {
    EXPECT_TRUE(table().by_model.contains(c.model)) << c.model;
    EXPECT_FALSE(c.source.empty()) << c.location;
  }
  const auto* haiku45 = m::find_caching(table(), "anthropic.claude-haiku-4-5-20251001-v1:0");
  ASSERT_NE(haiku45, nullptr);
  EXPECT_EQ(haiku45->min_prefix_tokens, 4096u);
  EXPECT_TRUE(haiku45->ttl_1h);
  const auto* nova_micro = m::find_caching(table(), "amazon.nova-micro-v1:0");
  ASSERT_NE(nova_micro, nullptr);
  EXPECT_EQ(nova_micro->min_prefix_tokens, 1536u);
  EXPECT_FALSE(nova_micro->ttl_1h);
}

}  // namespace
}  // namespace bedrock_meter::config
