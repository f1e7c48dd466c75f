#include "aws/credentials.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "tests/aws/credentials_test_support.hpp"

namespace bedrock_meter::aws {
namespace {

using test_support::fake_env;
using test_support::temp_dir;

// --- shared files --------------------------------------------------------------------------------

class CredentialProfile : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.vars["HOME"] = dir_.path();
    env_.vars["AWS_SHARED_CREDENTIALS_FILE"] = dir_.path() + "/credentials";
    env_.vars["AWS_CONFIG_FILE"] = dir_.path() + "/config";
    dir_.write("credentials",
               "# leading comment\n"
               "; another\n"
               "[default]\n"
               "  aws_access_key_id = AKIDDEFAULT\r\n"
               "  aws_secret_access_key=secretdefault   \n"
               "\n"
               "[ dev ]\n"
               "AWS_ACCESS_KEY_ID = AKIDDEV ; inline comment\n"
               "aws_secret_access_key = secret#dev  # inline comment\n"
               "aws_session_token = tokendev\n"
               "[both]\n"
               "aws_access_key_id = AKIDBOTHCREDS\n"
               "aws_secret_access_key = secretbothcreds\n"
               "[half]\n"
               "aws_access_key_id = AKIDHALF\n");
    dir_.write("config",
               "[default]\n"
               "region = us-east-1\n"
               "[profile cfgonly]\n"
               "region = eu-west-1\n"
               "s3 =\n"
               "  aws_access_key_id = NESTEDWRONG\n"
               "aws_access_key_id = AKIDCFG\n"
               "aws_secret_access_key = secretcfg\n"
               "[profile  both ]\n"
               "aws_access_key_id = AKIDBOTHCONFIG\n"
               "aws_secret_access_key = secretbothconfig\n"
               "[bare]\n"
               "aws_access_key_id = AKIDBARE\n"
               "aws_secret_access_key = secretbare\n"
               "[profile proc]\n"
               "credential_process = /usr/bin/get-creds --secret hunter2\n"
               "[profile sso]\n"
               "sso_session = corp\n"
               "sso_account_id = 123456789012\n"
               "[profile regiononly]\n"
               "region = us-west-2\n");
  }
  credential_result<aws_credentials> fetch(std::string_view profile = {}) {
    return from_profile(profile, {.getenv = env_.fn()});
  }

  temp_dir dir_;
  fake_env env_;
};

TEST_F(CredentialProfile, DefaultProfileWithCommentsAndWhitespace) {
  auto r = fetch();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->creds.access_key_id, "AKIDDEFAULT");
  EXPECT_EQ(r->creds.secret_access_key, "secretdefault");
  EXPECT_EQ(r->creds.session_token, "");
  EXPECT_FALSE(r->expiration.has_value());
  EXPECT_EQ(r->source, "profile:default");
}

TEST_F(CredentialProfile, AwsProfileSelectsAndArgumentWins) {
  env_.vars["AWS_PROFILE"] = "dev";
  auto r = fetch();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->creds.access_key_id, "AKIDDEV");
  EXPECT_EQ(r->creds.secret_access_key, "secret#dev");  // '#' inside a value is kept
  EXPECT_EQ(r->creds.session_token, "tokendev");
  EXPECT_EQ(r->source, "profile:dev");

  r = fetch("default");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->creds.access_key_id, "AKIDDEFAULT");
}

TEST_F(CredentialProfile, ConfigFileUsesProfilePrefixAndSkipsNestedKeys) {
  auto r = fetch("cfgonly");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->creds.access_key_id, "AKIDCFG");
  EXPECT_EQ(r->creds.secret_access_key, "secretcfg");
  EXPECT_EQ(r->source, "profile:cfgonly");

  // `[bare]` in the config file is not a profile (it would need `[profile bare]`).
  r = fetch("bare");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::profile_not_found);
}

TEST_F(CredentialProfile, CredentialsFileWinsOverConfigFile) {
  auto r = fetch("both");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->creds.access_key_id, "AKIDBOTHCREDS");
}

TEST_F(CredentialProfile, MissingProfile) {
  auto r = fetch("nope");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::profile_not_found);
  EXPECT_NE(r.error().message.find("'nope'"), std::string::npos);
  EXPECT_NE(r.error().message.find(dir_.path() + "/credentials"), std::string::npos);

  env_.vars["AWS_PROFILE"] = "nope";
  r = fetch();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::profile_not_found);
}

TEST_F(CredentialProfile, MissingFilesAreNotFound) {
  env_.vars["AWS_SHARED_CREDENTIALS_FILE"] = dir_.path() + "/absent1";
  env_.vars["AWS_CONFIG_FILE"] = dir_.path() + "/absent2";
  auto r = fetch();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::not_found);
}

TEST_F(CredentialProfile, HomeDefaultsAndTildeExpansion) {
  env_.vars.erase("AWS_SHARED_CREDENTIALS_FILE");
  env_.vars.erase("AWS_CONFIG_FILE");
  dir_.write(".aws/credentials",
             "[default]\naws_access_key_id=AKIDHOME\naws_secret_access_key=s\n");
  auto r = fetch();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->creds.access_key_id, "AKIDHOME");

  env_.vars["AWS_CONFIG_FILE"] = "~/alt/config";
  dir_.write("alt/config", "[profile alt]\naws_access_key_id=AKIDALT\naws_secret_access_key=s\n");
  r = fetch("alt");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->creds.access_key_id, "AKIDALT");
}

TEST_F(CredentialProfile, UnsupportedKeysAreNamedNotEchoed) {
  auto r = fetch("proc");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::unsupported);
  EXPECT_NE(r.error().message.find("credential_process"), std::string::npos);
  EXPECT_EQ(r.error().message.find("hunter2"), std::string::npos);

  r = fetch("sso");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::unsupported);
  EXPECT_NE(r.error().message.find("sso_"), std::string::npos);
}

TEST_F(CredentialProfile, PartialAndKeylessProfiles) {
  auto r = fetch("half");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::partial);
  EXPECT_EQ(r.error().message.find("AKIDHALF"), std::string::npos);

  r = fetch("regiononly");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::not_found);
}

}  // namespace
}  // namespace bedrock_meter::aws
