#include "aws/credentials.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "tests/aws/credentials_test_support.hpp"

namespace bedrock_meter::aws {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using test_support::fake_clock;
using test_support::fake_env;
using test_support::temp_dir;

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

// --- local stand-ins for the metadata endpoints --------------------------------------------------

std::string iso8601(clock_time t) {
  const auto secs = std::chrono::floor<std::chrono::seconds>(t);
  const auto day = std::chrono::floor<std::chrono::days>(secs);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss hms{secs - day};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

std::string credentials_json(std::string_view id, std::string_view secret, std::string_view token,
                             clock_time expiration, std::string_view code = {}) {
  std::string out = "{";
  if (!code.empty()) out += "\"Code\":\"" + std::string(code) + "\",";
  out += "\"AccessKeyId\":\"" + std::string(id) + "\",\"SecretAccessKey\":\"" +
         std::string(secret) + "\",\"Token\":\"" + std::string(token) + "\",\"Expiration\":\"" +
         iso8601(expiration) + "\"}";
  return out;
}

response reply(unsigned status, std::string body = {}) {
  response res{static_cast<http::status>(status), 11};
  res.body() = std::move(body);
  res.keep_alive(false);
  res.prepare_payload();
  return res;
}

// A tiny HTTP/1.1 server on 127.0.0.1:0, one request per connection, served on its own thread.
// Requests are recorded for assertions.
class test_http_server {
 public:
  using handler = std::function<response(const request&)>;

  explicit test_http_server(handler h) : handler_(std::move(h)) {
    acceptor_.open(tcp::v4());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }

  ~test_http_server() {
    stopping_ = true;
    // Unblock accept() with one throwaway connection.
    boost::system::error_code ec;
    net::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_), ec);
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::uint16_t port() const { return port_; }
  std::vector<request> requests() const {
    const std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void serve() {
    while (!stopping_) {
      boost::system::error_code ec;
      tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      if (ec || stopping_) continue;
      beast::flat_buffer buffer;
      request req;
      http::read(socket, buffer, req, ec);
      if (ec) continue;
      {
        const std::lock_guard lock(mu_);
        requests_.push_back(req);
      }
      auto res = handler_(req);
      http::write(socket, res, ec);
      socket.shutdown(tcp::socket::shutdown_both, ec);
    }
  }

  handler handler_;
  net::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<request> requests_;
  std::thread thread_;
};

std::string header_value(const request& req, std::string_view name) {
  const auto it = req.find(name);
  return it == req.end() ? std::string() : std::string(it->value());
}

// --- container -----------------------------------------------------------------------------------

// A stand-in for the ECS agent / EKS Pod Identity agent: answers `path` only with the right
// Authorization header (when `token` is set), 401 otherwise.
struct container_agent {
  std::string path{};
  std::string token{};
  clock_time expiration{};
  std::atomic<int> served{0};
  test_http_server server{[this](const request& req) {
    if (req.method() != http::verb::get || req.target() != path) return reply(404);
    if (!token.empty() && header_value(req, "Authorization") != token) return reply(401);
    const int n = ++served;
    return reply(200, credentials_json("AKIDCONTAINER" + std::to_string(n), "secretcontainer",
                                       "tokencontainer", expiration));
  }};
};

TEST(CredentialContainer, RelativeUriWithAuthorizationToken) {
  container_agent agent{.path = "/v2/credentials/abc-123", .token = "Bearer tok"};
  agent.expiration = parse_iso8601("2026-11-26T12:00:00Z").value();
  fake_env env{{{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc-123"},
                {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer tok"}}};
  auto r = from_container({.getenv = env.fn(), .container_base_uri = agent.server.url()});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->creds.access_key_id, "AKIDCONTAINER1");
  EXPECT_EQ(r->creds.secret_access_key, "secretcontainer");
  EXPECT_EQ(r->creds.session_token, "tokencontainer");
  EXPECT_EQ(r->expiration, agent.expiration);
  EXPECT_EQ(r->source, "container");
  const auto reqs = agent.server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(header_value(reqs[0], "Authorization"), "Bearer tok");
  EXPECT_EQ(header_value(reqs[0], "Host"), "127.0.0.1:" + std::to_string(agent.server.port()));
}

TEST(CredentialContainer, FullUriWithTokenFileReReadEachFetch) {
  temp_dir dir;
  container_agent agent{.path = "/creds", .token = "token-a"};
  agent.expiration = parse_iso8601("2026-11-26T12:00:00Z").value();
  const auto token_file = dir.write("token", "token-a\n");
  fake_env env{{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.server.url() + "/creds"},
                {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file},
                {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored-when-file-set"}}};
  const fetch_options opt{.getenv = env.fn()};
  auto r = from_container(opt);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->creds.access_key_id, "AKIDCONTAINER1");

  // The agent rotates its token; the file follows; the next fetch must send the new one.
  agent.token = "token-b";
  dir.write("token", "token-b");
  r = from_container(opt);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->creds.access_key_id, "AKIDCONTAINER2");
  const auto reqs = agent.server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(header_value(reqs[0], "Authorization"), "token-a");
  EXPECT_EQ(header_value(reqs[1], "Authorization"), "token-b");
}

TEST(CredentialContainer, WrongTokenIsAnHttpError) {
  container_agent agent{.path = "/creds", .token = "right"};
  fake_env env{{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.server.url() + "/creds"},
                {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong"}}};
  auto r = from_container({.getenv = env.fn(), .container_attempts = 1});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::http);
  EXPECT_NE(r.error().message.find("401"), std::string::npos);
  EXPECT_EQ(r.error().message.find("wrong"), std::string::npos);
}

TEST(CredentialContainer, FullUriHostRestrictions) {
  for (const char* uri : {"http://example.com/creds", "http://10.0.0.1/creds",
                          "http://169.254.169.254/creds", "ftp://127.0.0.1/x", "not a url"}) {
    fake_env env{{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", uri}}};
    auto r = from_container({.getenv = env.fn()});
    ASSERT_FALSE(r) << uri;
    EXPECT_EQ(r.error().code, credential_errc::invalid_endpoint) << uri;
  }
  fake_env https{{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://127.0.0.1/creds"}}};
  auto r = from_container({.getenv = https.fn()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::unsupported);

  auto none = from_container({.getenv = fake_env{}.fn()});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, credential_errc::not_found);
}

TEST(CredentialContainer, BadJsonIsBadResponse) {
  test_http_server server{[](const request&) { return reply(200, "{\"AccessKeyId\":\"A\"}"); }};
  fake_env env{{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/"}}};
  auto r = from_container({.getenv = env.fn()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::bad_response);

  test_http_server garbage{[](const request&) { return reply(200, "<html>"); }};
  env.vars["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = garbage.url() + "/";
  r = from_container({.getenv = env.fn()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::bad_response);
}

TEST(CredentialContainer, SilentEndpointTimesOut) {
  // Listening but never accepting: the connect succeeds (kernel backlog), the answer never comes.
  net::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  fake_env env{{{"AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/"}}};
  const auto start = std::chrono::steady_clock::now();
  auto r =
      from_container({.getenv = env.fn(), .container_timeout = 200ms, .container_attempts = 2});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::http);
  EXPECT_NE(r.error().message.find("timed out"), std::string::npos) << r.error().message;
  EXPECT_GE(elapsed, 400ms);
  EXPECT_LT(elapsed, 5s);
}

// --- IMDSv2 --------------------------------------------------------------------------------------

// A stand-in for the EC2 instance metadata service that only speaks IMDSv2.
struct imds_stand_in {
  std::string session_token = "imds-session-token";
  std::string role = "bedrock-proxy-role";
  std::string code = "Success";
  bool refuse_put = false;
  clock_time expiration = parse_iso8601("2026-11-26T18:00:00Z").value();
  test_http_server server{[this](const request& req) {
    const std::string target(req.target());
    if (req.method() == http::verb::put && target == "/latest/api/token") {
      if (refuse_put) return reply(403);
      if (header_value(req, "X-aws-ec2-metadata-token-ttl-seconds") != "21600") return reply(400);
      return reply(200, session_token);
    }
    if (req.method() != http::verb::get) return reply(405);
    if (header_value(req, "X-aws-ec2-metadata-token") != session_token) return reply(401);
    if (target == "/latest/meta-data/iam/security-credentials/") {
      return role.empty() ? reply(404) : reply(200, role + "\n");
    }
    if (target == "/latest/meta-data/iam/security-credentials/" + role) {
      return reply(200, credentials_json("AKIDIMDS", "secretimds", "tokenimds", expiration, code));
    }
    return reply(404);
  }};
  fake_env env() const { return fake_env{{{"AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url()}}}; }
};

TEST(CredentialImds, FetchesWithSessionToken) {
  imds_stand_in imds;
  auto r = from_imds({.getenv = imds.env().fn()});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->creds.access_key_id, "AKIDIMDS");
  EXPECT_EQ(r->creds.secret_access_key, "secretimds");
  EXPECT_EQ(r->creds.session_token, "tokenimds");
  EXPECT_EQ(r->expiration, imds.expiration);
  EXPECT_EQ(r->source, "imds");

  const auto reqs = imds.server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].method(), http::verb::put);
  EXPECT_EQ(reqs[0].target(), "/latest/api/token");
  EXPECT_EQ(reqs[1].target(), "/latest/meta-data/iam/security-credentials/");
  EXPECT_EQ(reqs[2].target(), "/latest/meta-data/iam/security-credentials/bedrock-proxy-role");
  EXPECT_EQ(header_value(reqs[2], "X-aws-ec2-metadata-token"), "imds-session-token");
}

TEST(CredentialImds, TrailingSlashEndpointAndRetryAttemptsFromEnv) {
  imds_stand_in imds;
  auto env = imds.env();
  env.vars["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.server.url() + "/";
  env.vars["AWS_METADATA_SERVICE_NUM_ATTEMPTS"] = "2";
  auto r = from_imds({.getenv = env.fn()});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(imds.server.requests().at(0).target(), "/latest/api/token");
}

TEST(CredentialImds, StaleSessionTokenGets401) {
  imds_stand_in imds;
  // The client always sends the token it just got; make the stand-in disagree with it to prove
  // a 401 is reported as an error rather than parsed.
  test_http_server liar{[&](const request& req) {
    if (req.method() == http::verb::put) return reply(200, "not-the-token");
    return reply(header_value(req, "X-aws-ec2-metadata-token") == imds.session_token ? 200 : 401);
  }};
  fake_env env{{{"AWS_EC2_METADATA_SERVICE_ENDPOINT", liar.url()}}};
  auto r = from_imds({.getenv = env.fn()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::http);
  EXPECT_NE(r.error().message.find("401"), std::string::npos);
}

TEST(CredentialImds, RefusedTokenNoRoleAndFailureCode) {
  imds_stand_in imds;
  imds.refuse_put = true;
  auto r = from_imds({.getenv = imds.env().fn()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::http);
  EXPECT_NE(r.error().message.find("403"), std::string::npos);

  imds.refuse_put = false;
  imds.role.clear();
  r = from_imds({.getenv = imds.env().fn()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::not_found);

  imds.role = "bedrock-proxy-role";
  imds.code = "AssumeRoleUnauthorizedAccess";
  r = from_imds({.getenv = imds.env().fn()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::bad_response);
  EXPECT_NE(r.error().message.find("AssumeRoleUnauthorizedAccess"), std::string::npos);
}

TEST(CredentialImds, DisabledMakesNoRequest) {
  imds_stand_in imds;
  auto env = imds.env();
  env.vars["AWS_EC2_METADATA_DISABLED"] = "TRUE";
  auto r = from_imds({.getenv = env.fn()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::disabled);
  EXPECT_TRUE(imds.server.requests().empty());
}

// --- the default chain ---------------------------------------------------------------------------

class CredentialChain : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.vars["HOME"] = dir_.path();
    env_.vars["AWS_SHARED_CREDENTIALS_FILE"] = dir_.path() + "/credentials";
    env_.vars["AWS_CONFIG_FILE"] = dir_.path() + "/config";
    env_.vars["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds_.server.url();
    agent_.expiration = parse_iso8601("2026-11-26T12:00:00Z").value();
  }
  void with_env_keys() {
    env_.vars["AWS_ACCESS_KEY_ID"] = "AKIDENV";
    env_.vars["AWS_SECRET_ACCESS_KEY"] = "secretenv";
  }
  void with_files() {
    dir_.write("credentials",
               "[default]\naws_access_key_id=AKIDFILE\naws_secret_access_key=s\n"
               "[dev]\naws_access_key_id=AKIDDEV\naws_secret_access_key=s\n");
  }
  void with_container() {
    env_.vars["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = agent_.server.url() + "/creds";
  }
  credential_result<resolved_source> resolve_chain(config::upstream_credentials cfg = {}) {
    return resolve(cfg, {.getenv = env_.fn()});
  }

  temp_dir dir_;
  fake_env env_;
  container_agent agent_{.path = "/creds"};
  imds_stand_in imds_;
};

TEST_F(CredentialChain, EnvironmentWinsOverFiles) {
  with_env_keys();
  with_files();
  with_container();
  auto r = resolve_chain();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->first.source, "environment");
  EXPECT_EQ(r->first.creds.access_key_id, "AKIDENV");
  EXPECT_TRUE(agent_.server.requests().empty());
  EXPECT_TRUE(imds_.server.requests().empty());
}

TEST_F(CredentialChain, FilesWinOverContainer) {
  with_files();
  with_container();
  auto r = resolve_chain();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->first.source, "profile:default");
  EXPECT_TRUE(agent_.server.requests().empty());
}

TEST_F(CredentialChain, ContainerWinsOverImds) {
  with_container();
  auto r = resolve_chain();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->first.source, "container");
  EXPECT_EQ(agent_.server.requests().size(), 1u);
  EXPECT_TRUE(imds_.server.requests().empty());

  // The refetch goes back to the same source.
  auto again = r->refetch();
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->creds.access_key_id, "AKIDCONTAINER2");
  EXPECT_TRUE(imds_.server.requests().empty());
}

TEST_F(CredentialChain, ImdsIsTheLastResort) {
  auto r = resolve_chain();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->first.source, "imds");
}

TEST_F(CredentialChain, NothingFoundNamesEverySource) {
  env_.vars["AWS_EC2_METADATA_DISABLED"] = "true";
  auto r = resolve_chain();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::not_found);
  for (const char* part : {"AWS_ACCESS_KEY_ID", "profile 'default'", "AWS_CONTAINER_CREDENTIALS",
                           "AWS_EC2_METADATA_DISABLED"}) {
    EXPECT_NE(r.error().message.find(part), std::string::npos)
        << part << " in " << r.error().message;
  }
}

TEST_F(CredentialChain, BrokenSourcesStopTheChain) {
  with_container();
  env_.vars["AWS_ACCESS_KEY_ID"] = "AKIDENV";  // no secret
  auto r = resolve_chain();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::partial);

  env_.vars.erase("AWS_ACCESS_KEY_ID");
  env_.vars["AWS_PROFILE"] = "nope";
  r = resolve_chain();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::profile_not_found);
  EXPECT_TRUE(agent_.server.requests().empty());
  EXPECT_TRUE(imds_.server.requests().empty());
}

TEST_F(CredentialChain, ConfiguredProfileSkipsEnvironment) {
  with_env_keys();
  with_files();
  config::upstream_credentials cfg;
  cfg.profile = "dev";
  auto r = resolve_chain(cfg);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->first.source, "profile:dev");
}

TEST_F(CredentialChain, SingleSourceIsTriedAlone) {
  with_env_keys();
  with_files();
  with_container();
  config::upstream_credentials cfg;
  cfg.source = config::credential_source::imds;
  auto r = resolve_chain(cfg);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->first.source, "imds");
  EXPECT_TRUE(agent_.server.requests().empty());

  cfg.source = config::credential_source::environment;
  env_.vars.erase("AWS_ACCESS_KEY_ID");
  env_.vars.erase("AWS_SECRET_ACCESS_KEY");
  r = resolve_chain(cfg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::not_found);

  cfg.source = config::credential_source::bearer;
  r = resolve_chain(cfg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::unsupported);
}
TEST(CredentialProviderEndToEnd, ContainerSourceRefreshesFromTheAgent) {
  fake_clock clock;
  container_agent agent{.path = "/creds", .token = "tok"};
  agent.expiration = clock.now() + 10min;
  fake_env env{{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.server.url() + "/creds"},
                {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok"},
                {"AWS_EC2_METADATA_DISABLED", "true"}}};
  config::upstream_credentials cfg;  // default chain, refresh_before 5 min
  provider_options opt;
  opt.fetch.getenv = env.fn();
  opt.now = clock.fn();
  opt.background_refresh = false;
  auto r = credential_provider::create(cfg, opt);
  ASSERT_TRUE(r) << r.error().message;
  auto& p = *r;
  EXPECT_EQ(p->current()->source, "container");
  EXPECT_EQ(p->current()->creds.access_key_id, "AKIDCONTAINER1");

  clock.advance(4min);
  EXPECT_EQ(p->refresh_if_due(), refresh_result::not_due);
  agent.expiration = clock.now() + 1h;
  clock.advance(1min);
  EXPECT_EQ(p->refresh_if_due(), refresh_result::refreshed);
  EXPECT_EQ(p->current()->creds.access_key_id, "AKIDCONTAINER2");
  EXPECT_EQ(p->current()->expiration, agent.expiration);
  EXPECT_EQ(agent.server.requests().size(), 2u);
}

}  // namespace
}  // namespace bedrock_meter::aws
