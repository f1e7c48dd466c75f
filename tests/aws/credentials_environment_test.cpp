#include "aws/credentials.hpp"

#include <gtest/gtest.h>

#include <string>

#include "tests/aws/credentials_test_support.hpp"

namespace bedrock_meter::aws {
namespace {

using test_support::fake_env;

// --- environment ---------------------------------------------------------------------------------

TEST(CredentialEnvironment, ReadsKeysAndSessionToken) {
  fake_env env{{{"AWS_ACCESS_KEY_ID", "AKIDENV"},
                {"AWS_SECRET_ACCESS_KEY", "secretenv"},
                {"AWS_SESSION_TOKEN", "tokenenv"},
                {"AWS_SECURITY_TOKEN", "legacy"}}};
  auto r = from_environment({.getenv = env.fn()});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->creds.access_key_id, "AKIDENV");
  EXPECT_EQ(r->creds.secret_access_key, "secretenv");
  EXPECT_EQ(r->creds.session_token, "tokenenv");
  EXPECT_FALSE(r->expiration.has_value());
  EXPECT_EQ(r->source, "environment");
}

TEST(CredentialEnvironment, LegacySecurityTokenAndExpiration) {
  fake_env env{{{"AWS_ACCESS_KEY_ID", "AKIDENV"},
                {"AWS_SECRET_ACCESS_KEY", "secretenv"},
                {"AWS_SECURITY_TOKEN", "legacy"},
                {"AWS_CREDENTIAL_EXPIRATION", "2026-11-26T12:00:00Z"}}};
  auto r = from_environment({.getenv = env.fn()});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->creds.session_token, "legacy");
  EXPECT_EQ(r->expiration, parse_iso8601("2026-11-26T12:00:00Z"));

  env.vars["AWS_CREDENTIAL_EXPIRATION"] = "tomorrow";
  auto bad = from_environment({.getenv = env.fn()});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, credential_errc::bad_response);
}

TEST(CredentialEnvironment, UnsetOrEmptyIsNotFound) {
  auto r = from_environment({.getenv = fake_env{}.fn()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::not_found);
  fake_env empty{{{"AWS_ACCESS_KEY_ID", ""}, {"AWS_SECRET_ACCESS_KEY", ""}}};
  r = from_environment({.getenv = empty.fn()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::not_found);
}

TEST(CredentialEnvironment, PartialIsAnErrorWithoutTheSecret) {
  fake_env only_secret{{{"AWS_SECRET_ACCESS_KEY", "s3cr3t-value"}}};
  auto r = from_environment({.getenv = only_secret.fn()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::partial);
  EXPECT_NE(r.error().message.find("AWS_ACCESS_KEY_ID"), std::string::npos);
  EXPECT_EQ(r.error().message.find("s3cr3t-value"), std::string::npos);

  fake_env only_id{{{"AWS_ACCESS_KEY_ID", "AKID"}}};
  r = from_environment({.getenv = only_id.fn()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::partial);
}

// --- bearer --------------------------------------------------------------------------------------

TEST(CredentialBearer, ReadsConfiguredVariable) {
  config::upstream_credentials cfg;
  cfg.source = config::credential_source::bearer;
  fake_env env{{{"AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-abc"}}};
  auto r = bearer_token(cfg, env.fn());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "bedrock-api-key-abc");

  cfg.bearer_token_env = "OTHER_VAR";
  r = bearer_token(cfg, env.fn());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::not_found);
  EXPECT_NE(r.error().message.find("OTHER_VAR"), std::string::npos);
}

}  // namespace
}  // namespace bedrock_meter::aws
