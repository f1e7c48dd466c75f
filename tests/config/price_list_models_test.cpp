// The Price List model mapping that `rates import` reads (config/price_list_models.hpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "config/price_list_models.hpp"

namespace bedrock_meter::config {
namespace {

std::string errors_of(const price_list_models_result& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.to_string() + "\n";
  return out;
}

TEST(PriceListModels, ReadsNamesOffersIdsAndThresholds) {
  const auto r = load_price_list_models_string(R"(models:
  - price_list: "Claude Sonnet 4.5"
    model: anthropic.claude-sonnet-4-5-20250929-v1:0
    long_context_above: 200000
  - price_list: "Nova Lite"
    offer: AmazonBedrock
    models: [amazon.nova-lite-v1:0, amazon.nova-lite-v1:1]
)",
                                               "m.yaml");
  ASSERT_EQ(r.errors.size(), 0U) << errors_of(r);
  ASSERT_EQ(r.models.size(), 2U);
  EXPECT_EQ(r.models[0].name, "Claude Sonnet 4.5");
  EXPECT_EQ(r.models[0].offer, "");
  EXPECT_EQ(r.models[0].long_context_above, 200000U);
  EXPECT_EQ(r.models[0].location, "m.yaml:2");
  EXPECT_EQ(r.models[1].offer, "AmazonBedrock");
  EXPECT_EQ(r.models[1].models,
            (std::vector<std::string>{"amazon.nova-lite-v1:0", "amazon.nova-lite-v1:1"}));
  EXPECT_FALSE(r.models[1].long_context_above.has_value());
}

TEST(PriceListModels, EveryProblemIsReportedWithItsPlace) {
  const auto r = load_price_list_models_string(R"(models:
  - price_list: "A"
    model: us.anthropic.claude-haiku-4-5-20251001-v1:0
  - price_list: "B"
    offer: AmazonBedrockService
    model: amazon.nova-pro-v1:0
  - price_list: "C"
  - price_list: "D"
    model: amazon.nova-pro-v1:0
    models: [amazon.nova-lite-v1:0]
  - price_list: "E"
    model: amazon.nova-pro-v1:0
    long_context: 5
  - price_list: "F"
    model: amazon.nova-pro-v1:0
  - price_list: "F"
    model: amazon.nova-lite-v1:0
)",
                                               "m.yaml");
  const std::string e = errors_of(r);
  EXPECT_TRUE(r.models.empty());
  EXPECT_NE(e.find("m.yaml:3:12: models[0].model: 'us.anthropic.claude-haiku-4-5-20251001-v1:0' "
                   "is an inference-profile id"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("unknown offer 'AmazonBedrockService'"), std::string::npos) << e;
  EXPECT_NE(e.find("models[2]: missing required key 'model'"), std::string::npos) << e;
  EXPECT_NE(e.find("give 'model' or 'models', not both"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'long_context'; did you mean 'long_context_above'?"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("'F' is mapped twice (first at m.yaml:14)"), std::string::npos) << e;
}

TEST(PriceListModels, TheShippedMappingLoads) {
  const auto path = std::filesystem::path(BM_TEST_DATA_DIR) / ".." / ".." / "config" / "rates" /
                    "price-list-models.yaml";
  const auto r = load_price_list_models_file(path.string());
  EXPECT_EQ(r.errors.size(), 0U) << errors_of(r);
  EXPECT_GT(r.models.size(), 40U);
}

TEST(PriceListModels, TheBuiltInCopyIsTheShippedFile) {
  const auto path = std::filesystem::path(BM_TEST_DATA_DIR) / ".." / ".." / "config" / "rates" /
                    "price-list-models.yaml";
  std::ifstream in(path);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(shipped_price_list_models(), file);
  const auto r =
      load_price_list_models_string(shipped_price_list_models(), shipped_price_list_models_name);
  EXPECT_EQ(r.errors.size(), 0U) << errors_of(r);
}

TEST(PriceListModels, AMissingFileIsAnError) {
  const auto r = load_price_list_models_file("/nonexistent/models.yaml");
  ASSERT_EQ(r.errors.size(), 1U);
  EXPECT_NE(r.errors[0].message.find("does not exist"), std::string::npos) << errors_of(r);
}

}  // namespace
}  // namespace bedrock_meter::config
