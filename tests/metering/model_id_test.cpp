#include "metering/model_id.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace bedrock_meter::metering {
namespace {

struct row {
  std::string_view id;
  model_id_kind kind;
  std::string_view base;
  inference_scope scope;
  std::string_view geo;
  std::string_view arn_region;
};

void expect_resolves(const row& r, const std::vector<model_mapping>& mappings = {}) {
  SCOPED_TRACE(std::string(r.id));
  const resolved_model m = resolve_model(r.id, mappings);
  EXPECT_EQ(to_string(m.kind), to_string(r.kind));
  EXPECT_EQ(m.base_model, r.base);
  EXPECT_EQ(to_string(m.scope), to_string(r.scope));
  EXPECT_EQ(m.geo, r.geo);
  EXPECT_EQ(m.arn_region, r.arn_region);
  // The allocation-free form agrees field by field.
  const resolved_model_view v = resolve_model_view(r.id, mappings);
  EXPECT_EQ(v.kind, m.kind);
  EXPECT_EQ(v.base_model, m.base_model);
  EXPECT_EQ(v.scope, m.scope);
  EXPECT_EQ(v.geo, m.geo);
  EXPECT_EQ(v.arn_region, m.arn_region);
  EXPECT_EQ(v.mapping, m.mapping);
}

constexpr auto base = model_id_kind::base;
constexpr auto profile = model_id_kind::inference_profile;
constexpr auto fm_arn = model_id_kind::foundation_model_arn;
constexpr auto in_region = inference_scope::in_region;
constexpr auto geo = inference_scope::geo;
constexpr auto global = inference_scope::global;

TEST(ModelId, BaseIdsIncludingColonVariants) {
  for (const row& r : {
           row{"anthropic.claude-3-5-sonnet-20240620-v1:0", base,
               "anthropic.claude-3-5-sonnet-20240620-v1:0", in_region, "", ""},
           row{"anthropic.claude-3-sonnet-20240229-v1:0:200k", base,
               "anthropic.claude-3-sonnet-20240229-v1:0:200k", in_region, "", ""},
           row{"amazon.titan-embed-text-v2:0", base, "amazon.titan-embed-text-v2:0", in_region, "",
               ""},
           row{"amazon.titan-text-express-v1", base, "amazon.titan-text-express-v1", in_region, "",
               ""},
           // Base ids with more than one dot are not profiles.
           row{"deepseek.v3.2", base, "deepseek.v3.2", in_region, "", ""},
           row{"openai.gpt-5.4", base, "openai.gpt-5.4", in_region, "", ""},
           row{"mistral.mistral-7b-instruct-v0:2", base, "mistral.mistral-7b-instruct-v0:2",
               in_region, "", ""},
       }) {
    expect_resolves(r);
  }
}

TEST(ModelId, GeographicAndGlobalProfiles) {
  constexpr std::string_view sonnet45 = "anthropic.claude-sonnet-4-5-20250929-v1:0";
  for (const row& r : {
           row{"us.anthropic.claude-sonnet-4-5-20250929-v1:0", profile, sonnet45, geo, "us", ""},
           row{"eu.anthropic.claude-sonnet-4-5-20250929-v1:0", profile, sonnet45, geo, "eu", ""},
           row{"apac.anthropic.claude-sonnet-4-5-20250929-v1:0", profile, sonnet45, geo, "apac",
               ""},
           row{"jp.anthropic.claude-sonnet-4-5-20250929-v1:0", profile, sonnet45, geo, "jp", ""},
           row{"au.anthropic.claude-sonnet-4-5-20250929-v1:0", profile, sonnet45, geo, "au", ""},
           row{"ca.anthropic.claude-sonnet-4-5-20250929-v1:0", profile, sonnet45, geo, "ca", ""},
           row{"us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0", profile, sonnet45, geo, "us-gov",
               ""},
           row{"global.anthropic.claude-sonnet-4-5-20250929-v1:0", profile, sonnet45, global,
               "global", ""},
           row{"us.amazon.nova-pro-v1:0", profile, "amazon.nova-pro-v1:0", geo, "us", ""},
           row{"us.deepseek.v3.2", profile, "deepseek.v3.2", geo, "us", ""},
           // A geography AWS adds later still resolves when a known provider follows it.
           row{"mx.anthropic.claude-sonnet-4-5-20250929-v1:0", profile, sonnet45, geo, "mx", ""},
       }) {
    expect_resolves(r);
  }
  EXPECT_TRUE(is_known_profile_prefix("us-gov"));
  EXPECT_FALSE(is_known_profile_prefix("anthropic"));
}

TEST(ModelId, FoundationModelAndInferenceProfileArnsInEveryPartition) {
  for (const row& r : {
           row{"arn:aws:bedrock:us-east-1::foundation-model/"
               "anthropic.claude-3-5-sonnet-20240620-v1:0",
               fm_arn, "anthropic.claude-3-5-sonnet-20240620-v1:0", in_region, "", "us-east-1"},
           row{"arn:aws:bedrock:us-west-2::foundation-model/"
               "anthropic.claude-3-sonnet-20240229-v1:0:200k",
               fm_arn, "anthropic.claude-3-sonnet-20240229-v1:0:200k", in_region, "", "us-west-2"},
           row{"arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/amazon.nova-pro-v1:0",
               fm_arn, "amazon.nova-pro-v1:0", in_region, "", "us-gov-west-1"},
           row{"arn:aws-cn:bedrock:cn-north-1::foundation-model/amazon.titan-embed-text-v2:0",
               fm_arn, "amazon.titan-embed-text-v2:0", in_region, "", "cn-north-1"},
           row{"arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
               "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
               profile, "anthropic.claude-3-5-sonnet-20241022-v2:0", geo, "us", "us-east-1"},
           row{"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/"
               "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
               profile, "anthropic.claude-sonnet-4-5-20250929-v1:0", global, "global", "eu-west-1"},
           row{"arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:inference-profile/"
               "us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0",
               profile, "anthropic.claude-3-5-sonnet-20240620-v1:0", geo, "us-gov",
               "us-gov-west-1"},
       }) {
    expect_resolves(r);
  }
}

TEST(ModelId, OpaqueArnsWithoutAMappingHaveNoBaseModel) {
  for (const row& r : {
           row{"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abcd1234efgh",
               model_id_kind::application_profile, "", in_region, "", "us-east-1"},
           row{"arn:aws:bedrock:us-east-1:123456789012:provisioned-model/pm0123456789",
               model_id_kind::provisioned, "", in_region, "", "us-east-1"},
           row{"arn:aws:bedrock:us-west-2:123456789012:imported-model/im0123456789",
               model_id_kind::imported, "", in_region, "", "us-west-2"},
           // The middle segment is the *source* model; a custom model is not billed at its rates.
           row{"arn:aws:bedrock:us-east-1:123456789012:custom-model/"
               "amazon.titan-text-express-v1:0:8k/x1y2z3",
               model_id_kind::custom, "", in_region, "", "us-east-1"},
           row{"arn:aws:bedrock:us-east-1:123456789012:prompt-router/router1",
               model_id_kind::unknown, "", in_region, "", "us-east-1"},
       }) {
    expect_resolves(r);
  }
}

TEST(ModelId, JunkIsUnknownWithAnEmptyBaseModel) {
  for (const std::string_view junk :
       {"", "arn:aws:bedrock", "arn:aws:bedrock:us-east-1::foundation-model/", "us.", "global.",
        "claude", ".anthropic", "anthropic.", "anthropic.claude 3", "arn:aws:s3:::bucket/key",
        "arn:aws:bedrock:us-east-1::foundation-model", "us.anthropic.", "../../etc/passwd",
        "arn:aws:bedrock:us-east-1:123:inference-profile/us."}) {
    SCOPED_TRACE(std::string(junk));
    const resolved_model m = resolve_model(junk);
    EXPECT_EQ(m.kind, model_id_kind::unknown);
    EXPECT_EQ(m.base_model, "");
    EXPECT_EQ(m.mapping, nullptr);
  }
}

TEST(ModelId, MappingsMatchExactArnThenTrailingIdAndResolveTheirBaseOnce) {
  const std::string app_arn =
      "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abcd1234efgh";
  const std::vector<model_mapping> mappings{
      {"abcd1234efgh", "anthropic.claude-3-haiku-20240307-v1:0", std::nullopt, "t-id", ""},
      {app_arn, "us.anthropic.claude-sonnet-4-5-20250929-v1:0", std::nullopt, "t-arn", "a"},
      {"pm0123456789", "anthropic.claude-instant-v1", 44.0, "", ""},
      {"arn:aws:bedrock:us-west-2:123456789012:imported-model/im1",
       "meta.llama3-1-8b-instruct-v1:0", std::nullopt, "", ""},
      {"my-alias", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", std::nullopt, "", ""},
  };

  // Exact ARN beats a trailing-id match, and its geo-prefixed base resolves to scope geo.
  const resolved_model app = resolve_model(app_arn, mappings);
  EXPECT_EQ(app.kind, model_id_kind::application_profile);
  ASSERT_EQ(app.mapping, &mappings[1]);
  EXPECT_EQ(app.base_model, "anthropic.claude-sonnet-4-5-20250929-v1:0");
  EXPECT_EQ(app.scope, inference_scope::geo);
  EXPECT_EQ(app.geo, "us");
  EXPECT_EQ(app.arn_region, "us-east-1");

  // Same profile id in another region/account: only the trailing id matches.
  const resolved_model other = resolve_model(
      "arn:aws:bedrock:us-west-2:999999999999:application-inference-profile/abcd1234efgh",
      mappings);
  ASSERT_EQ(other.mapping, &mappings[0]);
  EXPECT_EQ(other.base_model, "anthropic.claude-3-haiku-20240307-v1:0");
  EXPECT_EQ(other.scope, inference_scope::in_region);
  EXPECT_EQ(other.arn_region, "us-west-2");

  const resolved_model pm = resolve_model(
      "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/pm0123456789", mappings);
  EXPECT_EQ(pm.kind, model_id_kind::provisioned);
  ASSERT_EQ(pm.mapping, &mappings[2]);
  EXPECT_EQ(pm.base_model, "anthropic.claude-instant-v1");

  const resolved_model imported =
      resolve_model("arn:aws:bedrock:us-west-2:123456789012:imported-model/im1", mappings);
  ASSERT_EQ(imported.mapping, &mappings[3]);
  EXPECT_EQ(imported.base_model, "meta.llama3-1-8b-instruct-v1:0");

  // A bare alias is matched exactly; its global prefix gives scope global.
  const resolved_model alias = resolve_model("my-alias", mappings);
  ASSERT_EQ(alias.mapping, &mappings[4]);
  EXPECT_EQ(alias.scope, inference_scope::global);
  EXPECT_EQ(alias.base_model, "anthropic.claude-sonnet-4-5-20250929-v1:0");

  // Ids that name their model are mapped only by an exact key, never by their trailing id: a
  // mapping keyed by a bare base id remaps that id, not a foundation-model ARN ending in it.
  const std::vector<model_mapping> by_base{
      {"amazon.nova-lite-v1:0", "amazon.nova-pro-v1:0", std::nullopt, "", ""}};
  EXPECT_EQ(resolve_model("amazon.nova-lite-v1:0", by_base).base_model, "amazon.nova-pro-v1:0");
  const resolved_model fm =
      resolve_model("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0", by_base);
  EXPECT_EQ(fm.mapping, nullptr);
  EXPECT_EQ(fm.base_model, "amazon.nova-lite-v1:0");
  EXPECT_EQ(fm.kind, model_id_kind::foundation_model_arn);
}

TEST(ModelId, CandidatesDropContextWindowThenVersion) {
  EXPECT_EQ(base_model_candidates("anthropic.claude-3-sonnet-20240229-v1:0:200k"),
            (std::vector<std::string>{"anthropic.claude-3-sonnet-20240229-v1:0:200k",
                                      "anthropic.claude-3-sonnet-20240229-v1:0",
                                      "anthropic.claude-3-sonnet-20240229-v1"}));
  EXPECT_EQ(
      base_model_candidates("amazon.titan-embed-text-v2:0"),
      (std::vector<std::string>{"amazon.titan-embed-text-v2:0", "amazon.titan-embed-text-v2"}));
  EXPECT_EQ(base_model_candidates("deepseek.v3.2"), (std::vector<std::string>{"deepseek.v3.2"}));
  EXPECT_TRUE(base_model_candidates("").empty());
}

}  // namespace
}  // namespace bedrock_meter::metering
