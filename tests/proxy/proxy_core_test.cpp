// Unit tests for the proxy's pure pieces: header filtering, upstream endpoint parsing, client
// authentication (SigV4, bearer, anonymous) and the Bedrock error shape.
#include <gtest/gtest.h>

#include <chrono>

#include "aws/sigv4.hpp"
#include "config/config.hpp"
#include "proxy/auth.hpp"
#include "proxy/headers.hpp"
#include "proxy/upstream.hpp"

namespace bm = bedrock_meter;
using namespace bm::proxy;
namespace sigv4 = bm::aws::sigv4;

TEST(Headers, HopByHopIsCaseInsensitiveAndNeverForwarded) {
  for (auto h : {"Connection", "keep-alive", "TRANSFER-ENCODING", "Upgrade", "TE", "Trailer",
                 "Proxy-Authorization", "Content-Length", "Expect", "HTTP2-Settings"}) {
    EXPECT_TRUE(is_hop_by_hop(h)) << h;
    EXPECT_FALSE(forward_request_header(h)) << h;
    EXPECT_FALSE(forward_response_header(h)) << h;
  }
}

TEST(Headers, ClientAuthIsDroppedFromRequestsOnly) {
  for (auto h :
       {"Authorization", "X-Amz-Date", "x-amz-security-token", "X-Amz-Content-SHA256", "Host"}) {
    EXPECT_FALSE(forward_request_header(h)) << h;
    EXPECT_TRUE(forward_response_header(h)) << h;
  }
}

TEST(Headers, BedrockHeadersPassThrough) {
  for (auto h : {"Content-Type", "Accept", "X-Amzn-Bedrock-Trace", "X-Amzn-Bedrock-Service-Tier",
                 "X-Amzn-Bedrock-PerformanceConfig-Latency", "X-Amzn-Bedrock-GuardrailIdentifier",
                 "User-Agent", "amz-sdk-invocation-id", "X-Amzn-Bedrock-Input-Token-Count",
                 "x-amzn-RequestId"}) {
    EXPECT_TRUE(forward_request_header(h)) << h;
    EXPECT_TRUE(forward_response_header(h)) << h;
  }
  EXPECT_FALSE(iequals("content-type", "content-typ"));
  EXPECT_TRUE(iequals("X-AMZN-requestid", "x-amzn-RequestId"));
}

TEST(UpstreamTarget, DefaultIsAwsRegionalEndpointOverTls) {
  bm::config::upstream_config cfg;
  auto t = make_upstream_target(cfg, "eu-central-1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "bedrock-runtime.eu-central-1.amazonaws.com");
  EXPECT_EQ(t->port, "443");
  EXPECT_TRUE(t->tls);
  EXPECT_EQ(t->host_header, "bedrock-runtime.eu-central-1.amazonaws.com");
  EXPECT_EQ(t->region, "eu-central-1");
}

TEST(UpstreamTarget, OverrideWithRegionPlaceholderAndPort) {
  bm::config::upstream_config cfg;
  cfg.endpoint = "https://vpce-123.bedrock-runtime.{region}.vpce.amazonaws.com:8443";
  auto t = make_upstream_target(cfg, "us-west-2");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "vpce-123.bedrock-runtime.us-west-2.vpce.amazonaws.com");
  EXPECT_EQ(t->port, "8443");
  EXPECT_EQ(t->host_header, "vpce-123.bedrock-runtime.us-west-2.vpce.amazonaws.com:8443");
}

TEST(UpstreamTarget, PlainHttpForTestsKeepsPortInHostHeader) {
  bm::config::upstream_config cfg;
  cfg.endpoint = "http://127.0.0.1:9000";
  auto t = make_upstream_target(cfg, "us-east-1");
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->tls);
  EXPECT_EQ(t->host_header, "127.0.0.1:9000");
  cfg.endpoint = "https://example.com:443/";
  t = make_upstream_target(cfg, "us-east-1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host_header, "example.com");  // default port is not written, as SDKs sign it
}

TEST(UpstreamTarget, Ipv6AndGarbage) {
  bm::config::upstream_config cfg;
  cfg.endpoint = "http://[::1]:9000";
  auto t = make_upstream_target(cfg, "us-east-1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "::1");
  EXPECT_EQ(t->host_header, "[::1]:9000");
  for (auto bad : {"ftp://x", "bedrock.example.com", "http://", "https://host:"}) {
    cfg.endpoint = bad;
    EXPECT_FALSE(make_upstream_target(cfg, "us-east-1")) << bad;
  }
}

namespace {

bm::config::auth_config auth_cfg() {
  bm::config::auth_config a;
  bm::config::access_key k;
  k.access_key_id = "BMAKUNITTEST000001";
  k.secret_access_key = "unit-secret";
  k.team = "search";
  k.app = "web";
  a.access_keys.push_back(k);
  bm::config::bearer_key b;
  b.sha256 = sigv4::sha256_hex("bmk-unit-token");
  b.team = "billing";
  b.app = "inv";
  b.name = "billing-bot";
  a.bearer_keys.push_back(b);
  return a;
}

sigv4::header_list signed_headers(std::string_view body, std::string_view secret,
                                  std::chrono::system_clock::time_point now) {
  sigv4::header_list h{{"host", "proxy.local:8080"}, {"content-type", "application/json"}};
  sigv4::credentials c{"BMAKUNITTEST000001", std::string(secret), ""};
  sigv4::signing_options opt;
  opt.region = "us-west-2";
  opt.now = now;
  sigv4::sign("POST", "/model/m%3A0/converse", h, sigv4::sha256_hex(body), c, opt);
  return h;
}

}  // namespace

TEST(Auth, SigV4IdentityAndSignedRegion) {
  auth_index idx(auth_cfg());
  const auto now = std::chrono::system_clock::now();
  const std::string body = R"({"messages":[]})";
  auto h = signed_headers(body, "unit-secret", now);
  auto r = idx.authenticate("POST", "/model/m%3A0/converse", h, sigv4::sha256_hex(body), now);
  ASSERT_FALSE(r.error) << r.error->message;
  ASSERT_NE(r.who, nullptr);
  EXPECT_EQ(r.who->team, "search");
  EXPECT_EQ(r.who->principal, "BMAKUNITTEST000001");
  EXPECT_EQ(r.signed_region, "us-west-2");
}

TEST(Auth, WrongSecretAndTamperedBodyAreInvalidSignature) {
  auth_index idx(auth_cfg());
  const auto now = std::chrono::system_clock::now();
  const std::string body = "{}";
  auto h = signed_headers(body, "not-the-secret", now);
  auto r = idx.authenticate("POST", "/model/m%3A0/converse", h, sigv4::sha256_hex(body), now);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->status, 403u);
  EXPECT_EQ(r.error->type, "InvalidSignatureException");
  EXPECT_EQ(r.error->message.find("unit-secret"), std::string::npos);

  h = signed_headers(body, "unit-secret", now);
  r = idx.authenticate("POST", "/model/m%3A0/converse", h, sigv4::sha256_hex("{ }"), now);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->type, "InvalidSignatureException");
}

TEST(Auth, StaleRequestIsRefused) {
  auth_index idx(auth_cfg());
  const auto now = std::chrono::system_clock::now();
  auto h = signed_headers("{}", "unit-secret", now - std::chrono::minutes(6));
  auto r = idx.authenticate("POST", "/model/m%3A0/converse", h, sigv4::sha256_hex("{}"), now);
  ASSERT_TRUE(r.error);
  EXPECT_NE(r.error->message.find("expired"), std::string::npos);
}

TEST(Auth, BearerKeyIsLookedUpByHash) {
  auth_index idx(auth_cfg());
  const auto now = std::chrono::system_clock::now();
  sigv4::header_list h{{"authorization", "Bearer bmk-unit-token"}};
  auto r = idx.authenticate("POST", "/model/m/converse", h, "", now);
  ASSERT_FALSE(r.error);
  EXPECT_EQ(r.who->team, "billing");
  EXPECT_EQ(r.who->principal, "billing-bot");
  h = {{"authorization", "bearer bmk-unit-token"}};  // scheme is case-insensitive
  EXPECT_FALSE(idx.authenticate("POST", "/", h, "", now).error);
  h = {{"authorization", "Bearer bmk-other"}};
  r = idx.authenticate("POST", "/", h, "", now);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->type, "AccessDeniedException");
  EXPECT_EQ(r.error->message.find("bmk-other"), std::string::npos);
}

TEST(Auth, AnonymousOnlyWhenEnabled) {
  auto cfg = auth_cfg();
  const auto now = std::chrono::system_clock::now();
  sigv4::header_list none;
  auto r = auth_index(cfg).authenticate("POST", "/", none, "", now);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message, "Missing Authentication Token");
  cfg.anonymous.enabled = true;
  cfg.anonymous.team = "demo";
  auth_index idx(cfg);
  r = idx.authenticate("POST", "/", none, "", now);
  ASSERT_FALSE(r.error);
  EXPECT_EQ(r.who->team, "demo");
  EXPECT_EQ(r.who->how, identity::kind::anonymous);
  // A request that does carry credentials is still checked, never downgraded to anonymous.
  sigv4::header_list bad{{"authorization", "Bearer nope"}};
  EXPECT_TRUE(idx.authenticate("POST", "/", bad, "", now).error);
}

TEST(Identity, ModelAllowListMatchesBaseIdAndPrefixes) {
  identity anyone;
  EXPECT_TRUE(anyone.may_use("anything", "anything"));
  identity limited;
  limited.attributes.allowed_models = {"anthropic.claude-3-5-haiku-20241022-v1:0", "amazon.nova-*"};
  EXPECT_TRUE(limited.may_use("anthropic.claude-3-5-haiku-20241022-v1:0",
                              "us.anthropic.claude-3-5-haiku-20241022-v1:0"));
  EXPECT_TRUE(limited.may_use("amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0"));
  EXPECT_FALSE(limited.may_use("anthropic.claude-3-5-sonnet-20240620-v1:0",
                               "anthropic.claude-3-5-sonnet-20240620-v1:0"));
  EXPECT_FALSE(limited.may_use("", "amazon.titan-text-express-v1"));
}
