#include "aws/credentials.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
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

namespace bedrock_meter::aws {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

// --- helpers ---------------------------------------------------------------------------------------

// An injected environment: only what the test puts in it exists.
struct fake_env {
  std::map<std::string, std::string> vars;
  env_fn fn() const {
    return [vars = vars](const std::string& name) -> std::optional<std::string> {
      auto it = vars.find(name);
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
  }
};

// A wall clock the test moves by hand. Atomic: the refresh thread reads it too.
struct fake_clock {
  std::atomic<clock_time::rep> ticks{clock_time{std::chrono::sys_days{std::chrono::year{2026} /
                                                                      11 / 26}}
                                          .time_since_epoch()
                                          .count()};
  clock_time now() const { return clock_time{clock_time::duration{ticks.load()}}; }
  void advance(clock_time::duration d) { ticks += d.count(); }
  clock_fn fn() {
    return [this] { return now(); };
  }
};

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

// A temporary directory, removed at the end of the test.
class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bm-creds-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string write(const std::string& rel, std::string_view content) const {
    const auto p = path_ / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

std::string header_value(const request& req, std::string_view name) {
  const auto it = req.find(name);
  return it == req.end() ? std::string() : std::string(it->value());
}

// --- ISO 8601 --------------------------------------------------------------------------------------

TEST(CredentialIso8601, ParsesUtcAndOffsets) {
  const clock_time expected = std::chrono::sys_days{std::chrono::year{2026} / 11 / 26} + 12h;
  EXPECT_EQ(parse_iso8601("2026-11-26T12:00:00Z"), expected);
  EXPECT_EQ(parse_iso8601("2026-11-26t12:00:00z"), expected);
  EXPECT_EQ(parse_iso8601("2026-11-26T13:30:00+01:30"), expected);
  EXPECT_EQ(parse_iso8601("2026-11-26T07:00:00-0500"), expected);
  EXPECT_EQ(parse_iso8601("2026-11-26T12:00:00.250Z"), expected + 250ms);
  EXPECT_EQ(parse_iso8601("2026-11-26T12:00:00.000000001Z"), expected + 1ns);
  EXPECT_EQ(parse_iso8601("2024-02-29T00:00:00Z"),
            clock_time{std::chrono::sys_days{std::chrono::year{2024} / 2 / 29}});
  EXPECT_EQ(parse_iso8601("1970-01-01T00:00:00Z"), clock_time{});
}

TEST(CredentialIso8601, RejectsMalformed) {
  for (const char* bad : {"", "2026-11-26", "2026-11-26T12:00:00", "2026-11-26T12:00:00ZZ",
                          "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-11-26T24:00:00Z",
                          "2026-11-26T12:60:00Z", "2026-11-26T12:00:00.Z", "2026/11/26T12:00:00Z",
                          "2026-11-26T12:00:00+1", "2026-11-26T12:00:00+01:00x",
                          "20x6-11-26T12:00:00Z"}) {
    EXPECT_FALSE(parse_iso8601(bad).has_value()) << bad;
  }
}

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

// --- shared files ----------------------------------------------------------------------------------

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
  dir_.write(".aws/credentials", "[default]\naws_access_key_id=AKIDHOME\naws_secret_access_key=s\n");
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

// --- container -------------------------------------------------------------------------------------

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
  auto r = from_container(
      {.getenv = env.fn(), .container_timeout = 200ms, .container_attempts = 2});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::http);
  EXPECT_NE(r.error().message.find("timed out"), std::string::npos) << r.error().message;
  EXPECT_GE(elapsed, 400ms);
  EXPECT_LT(elapsed, 5s);
}

// --- IMDSv2 ----------------------------------------------------------------------------------------

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
  fake_env env() const {
    return fake_env{{{"AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url()}}};
  }
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

// --- the default chain -----------------------------------------------------------------------------

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
    dir_.write("credentials", "[default]\naws_access_key_id=AKIDFILE\naws_secret_access_key=s\n"
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
    EXPECT_NE(r.error().message.find(part), std::string::npos) << part << " in " << r.error().message;
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

// --- refresh ---------------------------------------------------------------------------------------

// A scripted source: each fetch returns the next key id with the expiration the test chose, or
// fails while `failing` is set.
struct scripted_source {
  fake_clock* clock = nullptr;
  std::chrono::minutes lifetime{60};
  std::atomic<bool> failing{false};
  std::atomic<int> fetches{0};
  fetch_fn fn() {
    return [this]() -> credential_result<aws_credentials> {
      const int n = ++fetches;
      if (failing) return credential_error{credential_errc::http, "imds: connect timed out"};
      aws_credentials c;
      c.creds = {"AKID" + std::to_string(n), "secret" + std::to_string(n), "token"};
      c.expiration = clock->now() + lifetime;
      c.source = "scripted";
      return c;
    };
  }
};

class CredentialRefresh : public ::testing::Test {
 protected:
  provider_options options(bool background = false) {
    provider_options opt;
    opt.now = clock_.fn();
    opt.background_refresh = background;
    opt.policy.refresh_before = 5min;
    opt.policy.min_interval = 10s;
    opt.policy.retry_initial = 1s;
    opt.policy.retry_max = 8s;
    return opt;
  }
  std::unique_ptr<credential_provider> make(bool background = false) {
    auto r = credential_provider::create(source_.fn(), options(background));
    EXPECT_TRUE(r) << r.error().message;
    return r ? std::move(*r) : nullptr;
  }

  fake_clock clock_;
  scripted_source source_{.clock = &clock_};
};

TEST_F(CredentialRefresh, RefreshesRefreshBeforeExpiry) {
  auto p = make();
  ASSERT_TRUE(p);
  const auto first = p->current();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->creds.access_key_id, "AKID1");
  const auto expiry = *first->expiration;

  clock_.advance(54min);
  EXPECT_EQ(p->refresh_if_due(), refresh_result::not_due);
  EXPECT_EQ(source_.fetches, 1);

  clock_.advance(1min);  // exactly expiry - refresh_before
  EXPECT_EQ(p->refresh_if_due(), refresh_result::refreshed);
  EXPECT_EQ(source_.fetches, 2);
  const auto second = p->current();
  EXPECT_EQ(second->creds.access_key_id, "AKID2");
  EXPECT_LT(clock_.now(), expiry);  // refreshed while the old ones were still valid
  EXPECT_EQ(p->status().next_attempt, *second->expiration - 5min);
  EXPECT_EQ(p->status().refreshes, 1u);
}

TEST_F(CredentialRefresh, FailureKeepsOldSnapshotAndBacksOff) {
  auto p = make();
  ASSERT_TRUE(p);
  const auto held = p->current();  // a request in flight holds this
  clock_.advance(55min);
  source_.failing = true;

  // Failures: the published snapshot does not change; retries at +1s, +2s, +4s, +8s, +8s.
  std::vector<std::chrono::seconds> delays;
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(p->refresh_if_due(), refresh_result::failed);
    EXPECT_EQ(p->current(), held);
    const auto st = p->status();
    ASSERT_TRUE(st.next_attempt);
    delays.push_back(std::chrono::duration_cast<std::chrono::seconds>(*st.next_attempt -
                                                                      clock_.now()));
    EXPECT_EQ(p->refresh_if_due(), refresh_result::not_due);  // not before the backoff
    clock_.advance(*st.next_attempt - clock_.now());
  }
  EXPECT_EQ(delays, (std::vector<std::chrono::seconds>{1s, 2s, 4s, 8s, 8s}));
  auto st = p->status();
  EXPECT_EQ(st.consecutive_failures, 5u);
  EXPECT_EQ(st.refresh_failures, 5u);
  ASSERT_TRUE(st.last_error);
  EXPECT_EQ(st.last_error->code, credential_errc::http);

  source_.failing = false;
  ASSERT_EQ(p->refresh_if_due(), refresh_result::refreshed);
  EXPECT_EQ(p->current()->creds.access_key_id, "AKID7");
  st = p->status();
  EXPECT_EQ(st.consecutive_failures, 0u);
  EXPECT_FALSE(st.last_error);
  // The reader's snapshot was never touched.
  EXPECT_EQ(held->creds.access_key_id, "AKID1");
  EXPECT_EQ(held->creds.secret_access_key, "secret1");
}

TEST_F(CredentialRefresh, ShortLivedCredentialsRespectMinInterval) {
  source_.lifetime = 2min;  // already inside the 5-minute window when fetched
  auto p = make();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->refresh_if_due(), refresh_result::not_due);
  clock_.advance(9s);
  EXPECT_EQ(p->refresh_if_due(), refresh_result::not_due);
  clock_.advance(1s);
  EXPECT_EQ(p->refresh_if_due(), refresh_result::refreshed);
  EXPECT_EQ(source_.fetches, 2);
}

TEST_F(CredentialRefresh, LongTermKeysAreNotRefreshed) {
  int fetches = 0;
  auto r = credential_provider::create(
      [&]() -> credential_result<aws_credentials> {
        ++fetches;
        return aws_credentials{{"AKIDSTATIC", "s", ""}, std::nullopt, "environment"};
      },
      options());
  ASSERT_TRUE(r);
  auto& p = *r;
  clock_.advance(24h * 365);
  EXPECT_EQ(p->refresh_if_due(), refresh_result::not_due);
  EXPECT_EQ(fetches, 1);
  EXPECT_FALSE(p->status().next_attempt);
  EXPECT_EQ(p->refresh_now(), refresh_result::refreshed);  // forced
  EXPECT_EQ(fetches, 2);
}

TEST_F(CredentialRefresh, StartupFailureIsAnError) {
  source_.failing = true;
  auto r = credential_provider::create(source_.fn(), options(true));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::http);
}

TEST_F(CredentialRefresh, BackgroundThreadRefreshesWhenDue) {
  std::mutex mu;
  std::vector<refresh_event> events;
  std::promise<void> refreshed;
  auto opt = options(true);
  opt.on_refresh = [&](const refresh_event& ev) {
    const std::lock_guard lock(mu);
    events.push_back(ev);
    if (ev.result == refresh_result::refreshed) refreshed.set_value();
  };
  auto r = credential_provider::create(source_.fn(), opt);
  ASSERT_TRUE(r);
  auto& p = *r;
  auto done = refreshed.get_future();

  clock_.advance(56min);
  p->wake();
  ASSERT_EQ(done.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(p->current()->creds.access_key_id, "AKID2");
  p->stop();
  const std::lock_guard lock(mu);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].source, "scripted");
  EXPECT_EQ(events[0].expiration, clock_.now() + 60min);
  EXPECT_EQ(events[0].next_attempt, clock_.now() + 55min);
}

TEST_F(CredentialRefresh, ReadersNeverSeeNullOrTornSnapshots) {
  auto p = make();
  ASSERT_TRUE(p);
  std::atomic<bool> done{false};
  std::atomic<long> reads{0};
  std::atomic<long> bad{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&] {
      while (!done) {
        const auto c = p->current();
        // Each snapshot is self-consistent: key n goes with secret n.
        if (!c || "secret" + c->creds.access_key_id.substr(4) != c->creds.secret_access_key) ++bad;
        ++reads;
      }
    });
  }
  while (reads == 0) std::this_thread::yield();  // readers are running before we swap
  for (int i = 0; i < 200; ++i) EXPECT_EQ(p->refresh_now(), refresh_result::refreshed);
  const long reads_during = reads;
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad, 0);
  EXPECT_GT(reads_during, 0);
  EXPECT_EQ(p->current()->creds.access_key_id, "AKID201");
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
