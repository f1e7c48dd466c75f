#include "config/config.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace bedrock_meter::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// env_lookup is a plain function pointer (no captures), so the fake environment is a global that
// each test resets.
std::map<std::string, std::string>& fake_env_vars() {
  static std::map<std::string, std::string> vars;
  return vars;
}
const char* fake_env(const char* name) {
  const auto it = fake_env_vars().find(name);
  return it == fake_env_vars().end() ? nullptr : it->second.c_str();
}

const fs::path examples_dir = fs::path(BM_TEST_DATA_DIR) / ".." / ".." / "config" / "examples";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const fs::path& p, std::string_view text) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << text;
}

std::string all_errors(const load_result& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.to_string() + "\n";
  return out;
}

/// The only error at `path`; fails the test when there is none or several.
const config_error* error_at(const load_result& r, std::string_view path) {
  const config_error* found = nullptr;
  int count = 0;
  for (const auto& e : r.errors) {
    if (e.path == path) {
      found = &e;
      ++count;
    }
  }
  EXPECT_EQ(count, 1) << "errors at '" << path << "':\n" << all_errors(r);
  return count == 1 ? found : nullptr;
}

class config_test : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_env_vars().clear();
    static std::atomic<int> counter{0};
    dir_ = fs::temp_directory_path() /
           ("bm_config_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  /// Loads `yaml` as if read from `<temp dir>/config.yaml`, with the fake environment.
  load_result load(std::string_view yaml) {
    return load_string(yaml, (dir_ / "config.yaml").string(), fake_env);
  }

  /// Creates the PEM files a TLS listener names (contents do not matter to the loader).
  void make_certs(const fs::path& sub = "certs") {
    write_text(dir_ / sub / "server.pem", "-----BEGIN CERTIFICATE-----\n");
    write_text(dir_ / sub / "server.key", "-----BEGIN PRIVATE KEY-----\n");
  }

  fs::path dir_;
};

// ---------------------------------------------------------------- budgets and attribution

TEST_F(config_test, budgets_and_identity_attributes_load) {
  fake_env_vars()["REDIS_PW"] = "s3cret";
  const auto r = load(R"(listeners: [{port: 8080}]
auth:
  access_keys:
    - access_key_id: BMAKSEARCH00000001
      secret_access_key: x
      team: search
      app: web
      tags: {cost_center: CC-1234, env: prod}
      allowed_models: [anthropic.claude-*, amazon.nova-lite-v1:0]
budgets:
  time_zone: Europe/Berlin
  store: redis
  redis: {host: 10.0.0.5, port: 6380, password_env: REDIS_PW, timeout: 20ms, key_prefix: bm}
  on_store_unavailable: closed
  default_max_output_tokens: 4096
  max_output_tokens: {anthropic.claude-3-5-sonnet-20240620-v1:0: 8192}
  definitions:
    - name: search-monthly
      scope: {team: search, model: us.anthropic.claude-3-5-sonnet-20240620-v1:0}
      limit_usd: "1250.50"
      warn_at: [80, 50, 80]
      action: block
    - name: sprint
      period: custom
      period_start: 2026-11-02
      period_days: 14
      time_zone: America/New_York
      limit_usd: 100
)");
  ASSERT_TRUE(r.value) << all_errors(r);
  const auto& k = r.value->auth.access_keys.at(0);
  EXPECT_EQ(k.attributes.tags.at("cost_center"), "CC-1234");
  EXPECT_EQ(k.attributes.allowed_models,
            (std::vector<std::string>{"anthropic.claude-*", "amazon.nova-lite-v1:0"}));
  const auto& b = r.value->budgets;
  EXPECT_EQ(b.store, budget_store_kind::redis);
  EXPECT_EQ(b.redis.host, "10.0.0.5");
  EXPECT_EQ(b.redis.port, 6380);
  EXPECT_EQ(b.redis.password, "s3cret");
  EXPECT_EQ(b.redis.timeout, 20ms);
  EXPECT_EQ(b.on_store_unavailable, budget_store_fallback::closed);
  EXPECT_EQ(b.default_max_output_tokens, 4096u);
  EXPECT_EQ(b.max_output_tokens.at("anthropic.claude-3-5-sonnet-20240620-v1:0"), 8192u);
  ASSERT_EQ(b.definitions.size(), 2u);
  const auto& d0 = b.definitions[0];
  EXPECT_EQ(d0.def.limit, 1'250'500'000'000'000);  // $1250.50 in pico-USD, exactly
  EXPECT_EQ(d0.def.scope.team, "search");
  EXPECT_EQ(d0.def.scope.model, "anthropic.claude-3-5-sonnet-20240620-v1:0");  // profile -> base
  EXPECT_EQ(d0.def.warning_percents, (std::vector<int>{50, 80}));  // sorted, deduplicated
  EXPECT_EQ(d0.def.action, metering::budget_action::block);
  EXPECT_EQ(d0.def.period.kind, metering::period_kind::monthly);
  EXPECT_EQ(d0.time_zone, "Europe/Berlin");  // the section's default
  const auto& d1 = b.definitions[1];
  EXPECT_EQ(d1.def.action, metering::budget_action::alert);
  EXPECT_EQ(d1.def.period.kind, metering::period_kind::custom);
  EXPECT_EQ(d1.def.period.custom_days, 14);
  EXPECT_EQ(d1.def.period.custom_start,
            std::chrono::year_month_day(std::chrono::year(2026), std::chrono::November,
                                        std::chrono::day(2)));
  EXPECT_EQ(d1.time_zone, "America/New_York");
  EXPECT_EQ(d1.def.warning_percents, (std::vector<int>{50, 80, 100}));
}

TEST_F(config_test, budget_mistakes_are_reported_with_their_path) {
  const auto r = load(R"(listeners: [{port: 8080}]
auth:
  bearer_keys:
    - sha256: 0000000000000000000000000000000000000000000000000000000000000000
      team: a
      app: b
      allowed_models: ["anthropic.*claude"]
budgets:
  time_zone: Mars/Olympus
  store: memcached
  definitions:
    - name: a
      period: montly
      limit_usd: "10"
    - name: a
      limit_usd: "-3"
    - name: c
      period: custom
      limit_usd: "5"
    - name: d
      period: daily
      period_days: 3
      limit_usd: "5"
      action: throttle
)");
  EXPECT_FALSE(r.value);
  const auto* zone = error_at(r, "budgets.time_zone");
  ASSERT_NE(zone, nullptr);
  EXPECT_NE(zone->message.find("unknown time zone 'Mars/Olympus'"), std::string::npos);
  EXPECT_NE(error_at(r, "budgets.store"), nullptr);
  const auto* period = error_at(r, "budgets.definitions[0].period");
  ASSERT_NE(period, nullptr);
  EXPECT_NE(period->message.find("did you mean 'monthly'"), std::string::npos);
  EXPECT_NE(error_at(r, "budgets.definitions[1].limit_usd"), nullptr);
  EXPECT_NE(error_at(r, "budgets.definitions[2].period_start"), nullptr);
  EXPECT_NE(error_at(r, "budgets.definitions[2].period_days"), nullptr);
  EXPECT_NE(error_at(r, "budgets.definitions[3].period_days"), nullptr);
  EXPECT_NE(error_at(r, "budgets.definitions[3].action"), nullptr);
  EXPECT_NE(error_at(r, "auth.bearer_keys[0].allowed_models[0]"), nullptr);
}

// Before: "18446745" ran as a $0.93 limit and "20000000" as $1,553,255.93 (pico-USD wrapped).
TEST_F(config_test, budget_limits_beyond_what_an_account_holds_are_refused_naming_the_maximum) {
  for (const char* limit : {"18446745", "20000000", "4000000.000001", "99999999999999"}) {
    const auto r = load(std::string("listeners: [{port: 8080}]\nledger: {path: l.db}\n"
                                    "budgets:\n  definitions:\n    - {name: x, limit_usd: \"") +
                        limit + "\"}\n");
    const auto* e = error_at(r, "budgets.definitions[0].limit_usd");
    ASSERT_NE(e, nullptr) << limit << ": " << all_errors(r);
    EXPECT_NE(e->message.find("4000000"), std::string::npos) << e->message;
  }
  const auto top = load(
      "listeners: [{port: 8080}]\nledger: {path: l.db}\n"
      "budgets:\n  definitions:\n    - {name: x, limit_usd: \"4000000\"}\n");
  ASSERT_TRUE(top.value) << all_errors(top);
  EXPECT_EQ(top.value->budgets.definitions.at(0).def.limit,
            std::int64_t{4'000'000} * 1'000'000'000'000);
}

// Every other money value names its maximum too, including text too long to hold at all (which
// used to get the "expected a positive amount" message, as if it were not a number).
TEST_F(config_test, money_beyond_its_maximum_is_refused_naming_the_maximum) {
  for (const char* hourly : {"1000000.000001", "99999999999999999999999", "0001000001"}) {
    const auto r = load(std::string("listeners: [{port: 8080}]\nmodels:\n  mappings:\n"
                                    "    - arn: arn:aws:bedrock:us-east-1:123456789012:"
                                    "provisioned-model/xyz\n"
                                    "      base_model: amazon.nova-micro-v1:0\n"
                                    "      hourly_usd: \"") +
                        hourly + "\"\n");
    const auto* e = error_at(r, "models.mappings[0].hourly_usd");
    ASSERT_NE(e, nullptr) << hourly << ": " << all_errors(r);
    EXPECT_EQ(e->message, "'" + std::string(hourly) +
                              "' is more than the largest amount accepted, 1000000 USD per hour");
  }
  for (const char* yearly : {"1000000000000.5", "99999999999999999999999"}) {
    const auto r = load(std::string("listeners: [{port: 8080}]\ncommitments:\n"
                                    "  - {name: a, start: 2026-01-01, end: 2027-01-01, "
                                    "per_year_usd: \"") +
                        yearly + "\"}\n");
    const auto* e = error_at(r, "commitments[0].per_year_usd");
    ASSERT_NE(e, nullptr) << yearly << ": " << all_errors(r);
    EXPECT_NE(e->message.find("is more than the largest amount accepted, 1000000000000 USD per "
                              "year"),
              std::string::npos)
        << e->message;
  }
  // Too many decimals is still that, not "too large".
  const auto r = load(
      "listeners: [{port: 8080}]\nmodels:\n  mappings:\n"
      "    - arn: arn:aws:bedrock:us-east-1:123456789012:provisioned-model/xyz\n"
      "      base_model: amazon.nova-micro-v1:0\n      hourly_usd: \"44.0000001\"\n");
  const auto* e = error_at(r, "models.mappings[0].hourly_usd");
  ASSERT_NE(e, nullptr) << all_errors(r);
  EXPECT_NE(e->message.find("at most 6 decimals"), std::string::npos) << e->message;
}

TEST_F(config_test, duplicate_budget_names_and_budgets_without_ledger) {
  const auto dup = load(R"(listeners: [{port: 8080}]
budgets:
  definitions:
    - {name: x, limit_usd: "1"}
    - {name: x, limit_usd: "2"}
)");
  const auto* e = error_at(dup, "budgets.definitions[1].name");
  ASSERT_NE(e, nullptr);
  EXPECT_NE(e->message.find("duplicate budget name 'x' (already used on line 4)"),
            std::string::npos);
  const auto ok = load(R"(listeners: [{port: 8080}]
budgets:
  definitions: [{name: x, limit_usd: "1"}]
)");
  ASSERT_TRUE(ok.value) << all_errors(ok);
  bool warned = false;
  for (const auto& w : ok.warnings)
    warned |= w.path == "budgets" && w.message.find("without a ledger") != std::string::npos;
  EXPECT_TRUE(warned);
}

// ---------------------------------------------------------------- values

TEST_F(config_test, full_config_round_trips_into_the_structs) {
  make_certs();
  write_text(dir_ / "ca" / "private-ca.pem", "-----BEGIN CERTIFICATE-----\n");
  fs::create_directories(dir_ / "logs");
  fake_env_vars()["BM_SECRET_SUPPORT"] = "support-secret-from-env";
  fake_env_vars()["BM_ADMIN_TOKEN"] = "admin-token";
  write_text(dir_ / "config.yaml", R"(listeners:
  - address: 127.0.0.1
    port: 8443
    tls: { cert_file: certs/server.pem, key_file: certs/server.key }
  - address: "::1"
    port: 8080
workers: 3
busy_poll_us: 50
upstream:
  region: eu-west-3
  allowed_client_regions: [us-west-2, us-gov-west-1]
  endpoint: "https://bedrock-runtime.{region}.example.internal:8443/"
  ca_file: ca/private-ca.pem
  verify_tls: false
  credentials: { source: profile, profile: finops, bearer_token_env: MY_TOKEN, refresh_before: 2m }
  connect_timeout: 250ms
  first_byte_timeout: 90s
  idle_timeout: 1m30s
  max_idle_connections: 8
  pool_idle_time: 20s
auth:
  access_keys:
    - { access_key_id: BMAKSEARCH00000001, secret_access_key: "inline-secret", team: search, app: web }
    - { access_key_id: BMAKSUPPORT0000001, secret_env: BM_SECRET_SUPPORT, team: support, app: bot }
  bearer_keys:
    - { sha256: 3a91c3309f6867c9d1710cc1e0f92d2eee08cb9a64ce7c83075370c1da334352, team: platform, app: ci, name: ci-bot }
  anonymous: { enabled: true, team: guests, app: playground }
  max_clock_skew: 2m
limits: { max_header_bytes: 8KiB, max_body_bytes: 2MiB, max_connections: 500, header_timeout: 3s, body_timeout: 20s, idle_timeout: 45s, exchange_timeout: 1h, shutdown_grace: 10s }
logging: { level: debug, access_log: logs/access.log }
admin: { enabled: true, address: 0.0.0.0, port: 9100, token_env: BM_ADMIN_TOKEN }
)");
  const auto r = load_file((dir_ / "config.yaml").string(), fake_env);
  ASSERT_TRUE(r.errors.empty()) << all_errors(r);
  ASSERT_TRUE(r.value.has_value());
  const config& c = *r.value;
  EXPECT_EQ(c.source_path, (dir_ / "config.yaml").string());

  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].port, 8443);
  ASSERT_TRUE(c.listeners[0].tls.has_value());
  EXPECT_EQ(c.listeners[0].tls->cert_file, (dir_ / "certs" / "server.pem").string());
  EXPECT_EQ(c.listeners[0].tls->key_file, (dir_ / "certs" / "server.key").string());
  EXPECT_EQ(c.listeners[1].address, "::1");
  EXPECT_EQ(c.listeners[1].port, 8080);
  EXPECT_FALSE(c.listeners[1].tls.has_value());
  EXPECT_EQ(c.workers, 3u);
  EXPECT_EQ(c.busy_poll_us, 50u);

  EXPECT_EQ(c.upstream.region, "eu-west-3");
  EXPECT_EQ(c.upstream.allowed_client_regions,
            (std::vector<std::string>{"us-west-2", "us-gov-west-1"}));
  // The trailing slash is dropped so the proxy sees one spelling.
  EXPECT_EQ(c.upstream.endpoint, "https://bedrock-runtime.{region}.example.internal:8443");
  EXPECT_EQ(c.upstream.ca_file, (dir_ / "ca" / "private-ca.pem").string());
  EXPECT_FALSE(c.upstream.verify_tls);
  EXPECT_EQ(c.upstream.credentials.source, credential_source::profile);
  EXPECT_EQ(c.upstream.credentials.profile, "finops");
  EXPECT_EQ(c.upstream.credentials.bearer_token_env, "MY_TOKEN");
  EXPECT_EQ(c.upstream.credentials.refresh_before, 2min);
  EXPECT_EQ(c.upstream.connect_timeout, 250ms);
  EXPECT_EQ(c.upstream.first_byte_timeout, 90s);
  EXPECT_EQ(c.upstream.idle_timeout, 90s);
  EXPECT_EQ(c.upstream.max_idle_connections, 8u);
  EXPECT_EQ(c.upstream.pool_idle_time, 20s);

  ASSERT_EQ(c.auth.access_keys.size(), 2u);
  EXPECT_EQ(c.auth.access_keys[0].access_key_id, "BMAKSEARCH00000001");
  EXPECT_EQ(c.auth.access_keys[0].secret_access_key, "inline-secret");
  EXPECT_EQ(c.auth.access_keys[0].secret_env, "");
  EXPECT_EQ(c.auth.access_keys[0].team, "search");
  EXPECT_EQ(c.auth.access_keys[0].app, "web");
  EXPECT_EQ(c.auth.access_keys[1].secret_access_key, "support-secret-from-env");
  EXPECT_EQ(c.auth.access_keys[1].secret_env, "BM_SECRET_SUPPORT");
  EXPECT_EQ(c.auth.access_keys[1].team, "support");
  ASSERT_EQ(c.auth.bearer_keys.size(), 1u);
  EXPECT_EQ(c.auth.bearer_keys[0].sha256,
            "3a91c3309f6867c9d1710cc1e0f92d2eee08cb9a64ce7c83075370c1da334352");
  EXPECT_EQ(c.auth.bearer_keys[0].team, "platform");
  EXPECT_EQ(c.auth.bearer_keys[0].app, "ci");
  EXPECT_EQ(c.auth.bearer_keys[0].name, "ci-bot");
  EXPECT_TRUE(c.auth.anonymous.enabled);
  EXPECT_EQ(c.auth.anonymous.team, "guests");
  EXPECT_EQ(c.auth.anonymous.app, "playground");
  EXPECT_EQ(c.auth.max_clock_skew, 120s);

  EXPECT_EQ(c.limits.max_header_bytes, 8u * 1024);
  EXPECT_EQ(c.limits.max_body_bytes, 2u * 1024 * 1024);
  EXPECT_EQ(c.limits.max_connections, 500u);
  EXPECT_EQ(c.limits.header_timeout, 3s);
  EXPECT_EQ(c.limits.body_timeout, 20s);
  EXPECT_EQ(c.limits.idle_timeout, 45s);
  EXPECT_EQ(c.limits.exchange_timeout, 1h);
  EXPECT_EQ(c.limits.shutdown_grace, 10s);

  EXPECT_EQ(c.logging.level, "debug");
  EXPECT_EQ(c.logging.access_log, (dir_ / "logs" / "access.log").string());
  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.address, "0.0.0.0");
  EXPECT_EQ(c.admin.port, 9100);
  EXPECT_EQ(c.admin.token_env, "BM_ADMIN_TOKEN");

  // Risky-but-legal settings are warnings, not errors.
  bool warned_anonymous = false;
  bool warned_verify = false;
  for (const auto& w : r.warnings) {
    warned_anonymous |= w.path == "auth.anonymous.enabled" && w.line == 27;
    warned_verify |= w.path == "upstream.verify_tls" && w.line == 14;
  }
  EXPECT_TRUE(warned_anonymous);
  EXPECT_TRUE(warned_verify);
}

TEST_F(config_test, minimal_config_gets_documented_defaults) {
  const auto r = load("listeners:\n  - port: 8080\n");
  ASSERT_TRUE(r.errors.empty()) << all_errors(r);
  const config& c = *r.value;
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].address, "127.0.0.1");
  EXPECT_FALSE(c.listeners[0].tls.has_value());
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.busy_poll_us, 0u);
  EXPECT_EQ(c.upstream.region, "us-east-1");
  EXPECT_TRUE(c.upstream.allowed_client_regions.empty());
  EXPECT_EQ(c.upstream.endpoint, "");
  EXPECT_EQ(c.upstream.ca_file, "");
  EXPECT_TRUE(c.upstream.verify_tls);
  EXPECT_EQ(c.upstream.credentials.source, credential_source::default_chain);
  EXPECT_EQ(c.upstream.credentials.bearer_token_env, "AWS_BEARER_TOKEN_BEDROCK");
  EXPECT_EQ(c.upstream.credentials.refresh_before, 5min);
  EXPECT_EQ(c.upstream.connect_timeout, 5s);
  EXPECT_EQ(c.upstream.first_byte_timeout, 60s);
  EXPECT_EQ(c.upstream.idle_timeout, 60s);
  EXPECT_EQ(c.upstream.max_idle_connections, 64u);
  EXPECT_EQ(c.upstream.pool_idle_time, 50s);
  EXPECT_TRUE(c.auth.access_keys.empty());
  EXPECT_TRUE(c.auth.bearer_keys.empty());
  EXPECT_FALSE(c.auth.anonymous.enabled);
  EXPECT_EQ(c.auth.max_clock_skew, 300s);
  EXPECT_EQ(c.limits.max_header_bytes, 16384u);
  EXPECT_EQ(c.limits.max_body_bytes, 33554432u);
  EXPECT_EQ(c.limits.max_connections, 10000u);
  EXPECT_EQ(c.limits.header_timeout, 10s);
  EXPECT_EQ(c.limits.body_timeout, 60s);
  EXPECT_EQ(c.limits.idle_timeout, 60s);
  EXPECT_EQ(c.limits.exchange_timeout, 15min);
  EXPECT_EQ(c.limits.shutdown_grace, 30s);
  EXPECT_EQ(c.logging.level, "info");
  EXPECT_EQ(c.logging.access_log, "stdout");
  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.address, "127.0.0.1");
  EXPECT_EQ(c.admin.port, 9464);
  EXPECT_EQ(c.admin.token_env, "");
  EXPECT_TRUE(c.pricing.rate_table.empty());
  EXPECT_EQ(c.rate_table, nullptr);
  EXPECT_TRUE(c.pricing.reload.watch);
  EXPECT_EQ(c.pricing.reload.poll_interval, 2s);
  EXPECT_TRUE(c.models.mappings.empty());
  EXPECT_EQ(c.ledger.path, "");
  EXPECT_EQ(c.ledger.queue_capacity, 65536u);
  EXPECT_EQ(c.ledger.batch_max, 512u);
  EXPECT_EQ(c.ledger.flush_interval, 50ms);
  EXPECT_TRUE(c.metering.drain_on_client_abort);
  EXPECT_EQ(c.metering.drain_timeout, 30s);
  EXPECT_EQ(c.metering.max_concurrent_drains, 256u);
  // Nobody can authenticate, nothing is priced, nothing is durable: legal, but worth warnings.
  ASSERT_EQ(r.warnings.size(), 3u);
  EXPECT_EQ(r.warnings[0].path, "pricing");
  EXPECT_EQ(r.warnings[1].path, "ledger.path");
  EXPECT_EQ(r.warnings[2].path, "auth");
}

TEST_F(config_test, documented_defaults_match_the_loader) {
  // docs/configuration.md ends with every field at its default; loading it must give exactly what
  // omitting everything gives, and what the structs default to.
  const std::string doc =
      read_text(fs::path(BM_TEST_DATA_DIR) / ".." / ".." / "docs" / "configuration.md");
  const std::size_t section = doc.find("## Complete reference with defaults");
  ASSERT_NE(section, std::string::npos);
  const std::size_t begin = doc.find("```yaml\n", section);
  ASSERT_NE(begin, std::string::npos);
  const std::size_t end = doc.find("```", begin + 8);
  ASSERT_NE(end, std::string::npos);
  const auto documented = load(doc.substr(begin + 8, end - begin - 8));
  ASSERT_TRUE(documented.errors.empty()) << all_errors(documented);
  const auto omitted = load("listeners: [{}]\n");
  ASSERT_TRUE(omitted.errors.empty()) << all_errors(omitted);
  config expected;
  expected.source_path = (dir_ / "config.yaml").string();
  expected.listeners.emplace_back();
  EXPECT_TRUE(*documented.value == expected);
  EXPECT_TRUE(*omitted.value == expected);
  // Guard the comparison itself: one changed field must make it fail.
  const auto changed = load("listeners: [{}]\nlimits: {idle_timeout: 61s}\n");
  EXPECT_FALSE(*changed.value == expected);
}

TEST_F(config_test, empty_sections_take_defaults) {
  const auto r = load("listeners: [{port: 1}]\nupstream:\nauth:\nlimits:\nlogging:\nadmin:\n");
  ASSERT_TRUE(r.errors.empty()) << all_errors(r);
  EXPECT_EQ(r.value->upstream.region, "us-east-1");
  EXPECT_EQ(r.value->limits.max_connections, 10000u);
}

TEST(parse_duration, accepts_units_and_combinations) {
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("5s"), 5s);
  EXPECT_EQ(parse_duration("15m"), 15min);
  EXPECT_EQ(parse_duration("2h"), 2h);
  EXPECT_EQ(parse_duration("1m30s"), 90s);
  EXPECT_EQ(parse_duration("1h0m5s250ms"), 3605250ms);
  EXPECT_EQ(parse_duration("0s"), 0ms);
  EXPECT_EQ(parse_duration("168h"), 168h);
}

TEST(parse_duration, rejects_malformed_and_unitless) {
  for (const char* bad : {"", "5", "1.5s", "5 s", "-1s", "+5s", "5d", "5S", "s", "ms5", "5sec",
                          "169h", "99999999999999h"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  }
}

TEST(parse_size, accepts_plain_and_binary_units) {
  EXPECT_EQ(parse_size("16384"), 16384u);
  EXPECT_EQ(parse_size("512B"), 512u);
  EXPECT_EQ(parse_size("16KiB"), 16384u);
  EXPECT_EQ(parse_size("32MiB"), 33554432u);
  EXPECT_EQ(parse_size("2GiB"), 2147483648u);
  for (const char* bad :
       {"", "KiB", "16KB", "16k", "1.5MiB", "-1", "16 KiB", "99999999999999999999GiB"}) {
    EXPECT_FALSE(parse_size(bad).has_value()) << bad;
  }
}

TEST(is_valid_region, follows_aws_naming) {
  for (const char* good : {"us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1",
                           "us-iso-east-1", "us-isob-east-1", "eu-isoe-west-1", "us-gov-1"}) {
    EXPECT_TRUE(is_valid_region(good)) << good;
  }
  for (const char* bad : {"", "us-east", "US-EAST-1", "useast1", "usa-east-1", "us-east-1a",
                          "us--1", "us-east-1-", "us-fed-west-1", "us-gov-west-x"}) {
    EXPECT_FALSE(is_valid_region(bad)) << bad;
  }
}

TEST(is_valid_label_value, restricts_to_prometheus_safe_values) {
  EXPECT_TRUE(is_valid_label_value("team-a_1.x"));
  EXPECT_TRUE(is_valid_label_value(std::string(64, 'a')));
  EXPECT_FALSE(is_valid_label_value(std::string(65, 'a')));
  EXPECT_FALSE(is_valid_label_value(""));
  EXPECT_FALSE(is_valid_label_value("team a"));
  EXPECT_FALSE(is_valid_label_value("team\"}"));
}

TEST(credential_source_names, round_trip) {
  for (const auto s : {credential_source::default_chain, credential_source::environment,
                       credential_source::profile, credential_source::container,
                       credential_source::imds, credential_source::bearer}) {
    EXPECT_EQ(parse_credential_source(to_string(s)), s);
  }
  EXPECT_EQ(to_string(credential_source::imds), "imds");
  EXPECT_FALSE(parse_credential_source("IMDS").has_value());
}

// ---------------------------------------------------------------- errors, one class each

TEST_F(config_test, error_to_string_is_file_line_col_path_message) {
  config_error e{"cfg.yaml", 3, 7, "upstream.region", "bad region"};
  EXPECT_EQ(e.to_string(), "cfg.yaml:3:7: upstream.region: bad region");
  config_error no_path{"cfg.yaml", 1, 1, "", "syntax"};
  EXPECT_EQ(no_path.to_string(), "cfg.yaml:1:1: syntax");
}

TEST_F(config_test, yaml_syntax_error_is_one_error_with_position) {
  const auto r = load("listeners:\n  - port: 8080\nupstream: {region: [us-east-1\nworkers: 2\n");
  ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
  EXPECT_FALSE(r.value.has_value());
  EXPECT_EQ(r.errors[0].file, (dir_ / "config.yaml").string());
  EXPECT_GE(r.errors[0].line, 3);
  EXPECT_GT(r.errors[0].column, 0);
  EXPECT_EQ(r.errors[0].path, "");
  EXPECT_TRUE(r.errors[0].message.starts_with("YAML syntax error: ")) << r.errors[0].message;

  // yaml-cpp's recursion guard throws with the message "bad file"; say what is wrong instead.
  const auto deep = load(std::string(5000, '['));
  ASSERT_EQ(deep.errors.size(), 1u);
  EXPECT_NE(deep.errors[0].message.find("nested too deeply"), std::string::npos);

  const auto indent = load("listeners:\n  - port: 8080\nupstream: x\n  region: y\n");
  ASSERT_EQ(indent.errors.size(), 1u) << all_errors(indent);
  EXPECT_EQ(indent.errors[0].line, 4);
}

TEST_F(config_test, empty_document_and_non_map_root) {
  const auto empty = load("# nothing here\n");
  ASSERT_EQ(empty.errors.size(), 1u);
  EXPECT_NE(empty.errors[0].message.find("listeners"), std::string::npos);
  const auto list = load("- port: 8080\n");
  ASSERT_EQ(list.errors.size(), 1u);
  EXPECT_EQ(list.errors[0].line, 1);
  EXPECT_NE(list.errors[0].message.find("expected a map"), std::string::npos);
}

TEST_F(config_test, unknown_key_suggests_the_nearest_name) {
  const auto r = load(R"(listeners:
  - port: 8080
upstream:
  regoin: us-east-1
)");
  const auto* e = error_at(r, "upstream.regoin");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 4);
  EXPECT_EQ(e->column, 3);
  EXPECT_EQ(e->message, "unknown key 'regoin'; did you mean 'region'?");
}

TEST_F(config_test, unknown_top_level_section) {
  const auto r = load(R"(listeners:
  - port: 8080
loging: {level: info}
metrics: {}
)");
  const auto* typo = error_at(r, "loging");
  ASSERT_NE(typo, nullptr);
  EXPECT_EQ(typo->line, 3);
  EXPECT_NE(typo->message.find("did you mean 'logging'?"), std::string::npos);
  const auto* unknown = error_at(r, "metrics");
  ASSERT_NE(unknown, nullptr);
  EXPECT_EQ(unknown->line, 4);
  // Nothing close: list what is valid instead.
  EXPECT_NE(unknown->message.find("listeners, workers, busy_poll_us, upstream"), std::string::npos);
}

TEST_F(config_test, duplicate_key_is_an_error) {
  const auto r = load("listeners: [{port: 8080}]\nworkers: 2\nworkers: 4\n");
  const auto* e = error_at(r, "workers");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 3);
  EXPECT_NE(e->message.find("first on line 2"), std::string::npos);
}

TEST_F(config_test, busy_poll_is_off_or_a_bounded_number_of_microseconds) {
  const auto r = load("listeners: [{port: 8080}]\nbusy_poll_us: 20000\n");
  const auto* e = error_at(r, "busy_poll_us");
  ASSERT_NE(e, nullptr) << all_errors(r);
  EXPECT_EQ(e->line, 2);
  EXPECT_NE(e->message.find("up to 10000"), std::string::npos) << e->message;
  EXPECT_FALSE(r.value.has_value());
}

TEST_F(config_test, wrong_types_name_what_was_expected) {
  const auto r = load(R"(listeners:
  - port: [8080]
workers: many
upstream:
  verify_tls: maybe
  allowed_client_regions: us-west-2
auth: [1, 2]
)");
  EXPECT_EQ(r.errors.size(), 5u) << all_errors(r);
  const auto* port = error_at(r, "listeners[0].port");
  ASSERT_NE(port, nullptr);
  EXPECT_EQ(port->line, 2);
  EXPECT_NE(port->message.find("expected a whole number, got a list"), std::string::npos);
  const auto* workers = error_at(r, "workers");
  ASSERT_NE(workers, nullptr);
  EXPECT_EQ(workers->line, 3);
  const auto* verify = error_at(r, "upstream.verify_tls");
  ASSERT_NE(verify, nullptr);
  EXPECT_EQ(verify->line, 5);
  EXPECT_NE(verify->message.find("true or false"), std::string::npos);
  const auto* regions = error_at(r, "upstream.allowed_client_regions");
  ASSERT_NE(regions, nullptr);
  EXPECT_EQ(regions->line, 6);
  const auto* auth = error_at(r, "auth");
  ASSERT_NE(auth, nullptr);
  EXPECT_EQ(auth->line, 7);
}

TEST_F(config_test, listeners_missing_or_empty) {
  const auto missing = load("workers: 1\n");
  const auto* e = error_at(missing, "listeners");
  ASSERT_NE(e, nullptr);
  EXPECT_NE(e->message.find("no listeners"), std::string::npos);

  const auto empty = load("workers: 1\nlisteners: []\n");
  const auto* e2 = error_at(empty, "listeners");
  ASSERT_NE(e2, nullptr);
  EXPECT_EQ(e2->line, 2);
}

TEST_F(config_test, port_out_of_range) {
  const auto r = load(R"(listeners:
  - port: 8080
  - port: 70000
admin: {port: -1}
)");
  const auto* l = error_at(r, "listeners[1].port");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->line, 3);
  EXPECT_EQ(l->column, 11);
  EXPECT_NE(l->message.find("1 to 65535"), std::string::npos);
  const auto* a = error_at(r, "admin.port");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->line, 4);
}

TEST_F(config_test, listener_address_must_be_an_ip) {
  const auto r = load("listeners:\n  - address: localhost\n    port: 1\n");
  const auto* e = error_at(r, "listeners[0].address");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 2);
}

TEST_F(config_test, duplicate_listener_address_and_port) {
  const auto r = load(R"(listeners:
  - {address: 127.0.0.1, port: 8080}
  - {address: 127.0.0.1, port: 8081}
  - {address: 127.0.0.1, port: 8080}
  - {address: 127.0.0.1, port: 0}
  - {address: 127.0.0.1, port: 0}
)");
  ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);  // port 0 twice is two different free ports
  const auto* e = error_at(r, "listeners[2]");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 4);
  EXPECT_NE(e->message.find("127.0.0.1:8080"), std::string::npos);
  EXPECT_NE(e->message.find("line 2"), std::string::npos);
}

TEST_F(config_test, admin_port_colliding_with_a_listener) {
  const auto r = load("listeners: [{port: 9464}]\nadmin:\n  port: 9464\n");
  const auto* e = error_at(r, "admin.port");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 3);
}

TEST_F(config_test, tls_files_must_exist_relative_to_the_config_dir) {
  make_certs("tls");
  const auto r = load(R"(listeners:
  - port: 8443
    tls:
      cert_file: tls/server.pem
      key_file: tls/missing.key
  - port: 8444
    tls:
      cert_file: tls/server.pem
  - port: 8445
    tls:
)");
  EXPECT_EQ(r.errors.size(), 3u) << all_errors(r);
  const auto* missing_file = error_at(r, "listeners[0].tls.key_file");
  ASSERT_NE(missing_file, nullptr);
  EXPECT_EQ(missing_file->line, 5);
  EXPECT_EQ(missing_file->column, 17);
  // The message names the resolved path so the user sees where it looked.
  EXPECT_NE(missing_file->message.find((dir_ / "tls" / "missing.key").string()), std::string::npos);
  const auto* missing_key = error_at(r, "listeners[1].tls.key_file");
  ASSERT_NE(missing_key, nullptr);
  EXPECT_EQ(missing_key->line, 8);  // the tls map starts at cert_file
  EXPECT_NE(missing_key->message.find("missing required key 'key_file'"), std::string::npos);
  const auto* empty_tls = error_at(r, "listeners[2].tls");
  ASSERT_NE(empty_tls, nullptr);
  EXPECT_EQ(empty_tls->line, 10);
}

TEST_F(config_test, tls_paths_that_are_directories_or_absolute) {
  make_certs();
  const std::string abs_cert = (dir_ / "certs" / "server.pem").string();
  const auto r =
      load("listeners:\n  - port: 8443\n    tls: {cert_file: " + abs_cert + ", key_file: certs}\n");
  ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
  EXPECT_EQ(r.errors[0].path, "listeners[0].tls.key_file");
  EXPECT_NE(r.errors[0].message.find("not a regular file"), std::string::npos);
}

TEST_F(config_test, tls_paths_resolve_against_the_config_file_not_the_cwd) {
  make_certs("sub/certs");
  write_text(dir_ / "sub" / "config.yaml",
             "listeners:\n  - port: 8443\n    tls: {cert_file: certs/server.pem, key_file: "
             "./certs/../certs/server.key}\n");
  const auto r = load_file((dir_ / "sub" / "config.yaml").string(), fake_env);
  ASSERT_TRUE(r.errors.empty()) << all_errors(r);
  EXPECT_EQ(r.value->listeners[0].tls->cert_file, (dir_ / "sub" / "certs" / "server.pem").string());
  EXPECT_EQ(r.value->listeners[0].tls->key_file, (dir_ / "sub" / "certs" / "server.key").string());
}

TEST_F(config_test, region_syntax) {
  const auto r = load(R"(listeners: [{port: 1}]
upstream:
  region: US-East-1
  allowed_client_regions:
    - us-west-2
    - europe
)");
  EXPECT_EQ(r.errors.size(), 2u) << all_errors(r);
  const auto* region = error_at(r, "upstream.region");
  ASSERT_NE(region, nullptr);
  EXPECT_EQ(region->line, 3);
  const auto* allowed = error_at(r, "upstream.allowed_client_regions[1]");
  ASSERT_NE(allowed, nullptr);
  EXPECT_EQ(allowed->line, 6);
  EXPECT_EQ(allowed->column, 7);
}

TEST_F(config_test, unlisted_client_regions_are_refused_unless_rerouted_by_choice) {
  const auto def = load("listeners: [{port: 1}]\n");
  ASSERT_TRUE(def.errors.empty()) << all_errors(def);
  EXPECT_FALSE(def.value->upstream.reroute_unlisted_client_regions);
  const auto reroute =
      load("listeners: [{port: 1}]\nupstream: {unlisted_client_regions: reroute}\n");
  ASSERT_TRUE(reroute.errors.empty()) << all_errors(reroute);
  EXPECT_TRUE(reroute.value->upstream.reroute_unlisted_client_regions);
  const auto bad = load("listeners: [{port: 1}]\nupstream: {unlisted_client_regions: allow}\n");
  const auto* e = error_at(bad, "upstream.unlisted_client_regions");
  ASSERT_NE(e, nullptr) << all_errors(bad);
  EXPECT_NE(e->message.find("use refuse"), std::string::npos) << e->message;
}

TEST_F(config_test, endpoint_must_be_an_http_origin) {
  struct endpoint_case {
    const char* endpoint;
    bool ok;
  };
  for (const auto& [endpoint, ok] : std::initializer_list<endpoint_case>{
           {"http://127.0.0.1:9000", true},
           {"https://bedrock-runtime.{region}.amazonaws.com", true},
           {"https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com/", true},
           {"http://[::1]:9000", true},
           {"ftp://example.com", false},
           {"example.com", false},
           {"https://example.com/prefix", false},
           {"https://example.com?x=1", false},
           {"https://example.com:0", false},
           {"https://example.com:99999", false},
           {"https://example.com:", false},
           {"https://{account}.example.com", false},
           {"https://user@example.com", false},
           {"https://", false},
           {"http://[::1", false},
       }) {
    const auto r =
        load(std::string("listeners: [{port: 1}]\nupstream:\n  endpoint: \"") + endpoint + "\"\n");
    if (ok) {
      EXPECT_TRUE(r.errors.empty()) << endpoint << "\n" << all_errors(r);
    } else {
      ASSERT_EQ(r.errors.size(), 1u) << endpoint << "\n" << all_errors(r);
      EXPECT_EQ(r.errors[0].path, "upstream.endpoint");
      EXPECT_EQ(r.errors[0].line, 3);
      EXPECT_EQ(r.errors[0].column, 13);
    }
  }
}

TEST_F(config_test, credentials_source_must_be_known) {
  const auto r = load(R"(listeners: [{port: 1}]
upstream:
  credentials:
    source: imdsv2
)");
  const auto* e = error_at(r, "upstream.credentials.source");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 4);
  EXPECT_NE(e->message.find("did you mean 'imds'?"), std::string::npos);
  EXPECT_NE(e->message.find("default_chain, environment, profile, container, imds, bearer"),
            std::string::npos);
}

TEST_F(config_test, profile_only_with_profile_source) {
  const auto r = load(R"(listeners: [{port: 1}]
upstream:
  credentials: {source: default_chain, profile: finops}
)");
  const auto* e = error_at(r, "upstream.credentials.profile");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 3);
}

TEST_F(config_test, bearer_source_needs_its_variable_set) {
  const std::string yaml = R"(listeners: [{port: 1}]
upstream:
  credentials:
    source: bearer
)";
  const auto unset = load(yaml);
  const auto* e = error_at(unset, "upstream.credentials.bearer_token_env");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 4);
  EXPECT_NE(e->message.find("AWS_BEARER_TOKEN_BEDROCK"), std::string::npos);

  fake_env_vars()["AWS_BEARER_TOKEN_BEDROCK"] = "upstream-key";
  const auto set = load(yaml);
  EXPECT_TRUE(set.errors.empty()) << all_errors(set);
  EXPECT_EQ(set.value->upstream.credentials.source, credential_source::bearer);
}

TEST_F(config_test, access_key_id_format_and_duplicates) {
  const auto r = load(R"(listeners: [{port: 1}]
auth:
  access_keys:
    - access_key_id: bmak-lowercase-0001
      secret_access_key: s
      team: t
      app: a
    - access_key_id: BMAKSHORT
      secret_access_key: s
      team: t
      app: a
    - access_key_id: BMAKDUPLICATE00001
      secret_access_key: s
      team: t
      app: a
    - access_key_id: BMAKDUPLICATE00001
      secret_access_key: s
      team: t
      app: a
)");
  EXPECT_EQ(r.errors.size(), 3u) << all_errors(r);
  const auto* lower = error_at(r, "auth.access_keys[0].access_key_id");
  ASSERT_NE(lower, nullptr);
  EXPECT_EQ(lower->line, 4);
  EXPECT_EQ(lower->column, 22);
  const auto* shorter = error_at(r, "auth.access_keys[1].access_key_id");
  ASSERT_NE(shorter, nullptr);
  EXPECT_EQ(shorter->line, 8);
  const auto* dup = error_at(r, "auth.access_keys[3].access_key_id");
  ASSERT_NE(dup, nullptr);
  EXPECT_EQ(dup->line, 16);
  EXPECT_NE(dup->message.find("line 12"), std::string::npos);
}

TEST_F(config_test, access_key_secret_missing_both_or_unset_env) {
  fake_env_vars()["EMPTY_SECRET"] = "";
  const auto r = load(R"(listeners: [{port: 1}]
auth:
  access_keys:
    - access_key_id: BMAKNOSECRET000001
      team: t
      app: a
    - access_key_id: BMAKBOTHSECRETS001
      secret_access_key: inline
      secret_env: ALSO_ENV
      team: t
      app: a
    - access_key_id: BMAKUNSETENV000001
      secret_env: NOT_SET_ANYWHERE
      team: t
      app: a
    - access_key_id: BMAKEMPTYENV000001
      secret_env: EMPTY_SECRET
      team: t
      app: a
)");
  EXPECT_EQ(r.errors.size(), 4u) << all_errors(r);
  const auto* none = error_at(r, "auth.access_keys[0].secret_access_key");
  ASSERT_NE(none, nullptr);
  EXPECT_EQ(none->line, 4);
  const auto* both = error_at(r, "auth.access_keys[1].secret_env");
  ASSERT_NE(both, nullptr);
  EXPECT_EQ(both->line, 9);
  EXPECT_NE(both->message.find("not both"), std::string::npos);
  const auto* unset = error_at(r, "auth.access_keys[2].secret_env");
  ASSERT_NE(unset, nullptr);
  EXPECT_EQ(unset->line, 13);
  EXPECT_NE(unset->message.find("'NOT_SET_ANYWHERE' is not set"), std::string::npos);
  const auto* empty = error_at(r, "auth.access_keys[3].secret_env");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->line, 17);
  EXPECT_NE(empty->message.find("empty"), std::string::npos);
}

TEST_F(config_test, secret_env_is_resolved_through_the_injected_lookup) {
  const std::string yaml = R"(listeners: [{port: 1}]
auth:
  access_keys:
    - {access_key_id: BMAKFROMENV0000001, secret_env: BM_TEST_SECRET, team: t, app: a}
)";
  fake_env_vars()["BM_TEST_SECRET"] = "first-secret";
  const auto r1 = load(yaml);
  ASSERT_TRUE(r1.errors.empty()) << all_errors(r1);
  EXPECT_EQ(r1.value->auth.access_keys[0].secret_access_key, "first-secret");
  fake_env_vars()["BM_TEST_SECRET"] = "rotated-secret";
  const auto r2 = load(yaml);
  ASSERT_TRUE(r2.errors.empty()) << all_errors(r2);
  EXPECT_EQ(r2.value->auth.access_keys[0].secret_access_key, "rotated-secret");
}

TEST_F(config_test, secret_env_must_be_a_variable_name) {
  const auto r = load(R"(listeners: [{port: 1}]
auth:
  access_keys:
    - {access_key_id: BMAKDOLLAR00000001, secret_env: $SECRET, team: t, app: a}
)");
  const auto* e = error_at(r, "auth.access_keys[0].secret_env");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 4);
  EXPECT_NE(e->message.find("leading $"), std::string::npos);
}

TEST_F(config_test, bearer_hash_format_and_duplicates) {
  const auto r = load(R"(listeners: [{port: 1}]
auth:
  bearer_keys:
    - sha256: 3A91C3309F6867C9D1710CC1E0F92D2EEE08CB9A64CE7C83075370C1DA334352
      team: t
      app: a
    - sha256: not-a-hash
      team: t
      app: a
    - sha256: 393d24413f9bf3485d353a632145ddd5e5065b9164a8101dd02c35c6a863c32b
      team: t
      app: a
    - sha256: 393d24413f9bf3485d353a632145ddd5e5065b9164a8101dd02c35c6a863c32b
      team: t
      app: b
)");
  EXPECT_EQ(r.errors.size(), 3u) << all_errors(r);
  const auto* upper = error_at(r, "auth.bearer_keys[0].sha256");
  ASSERT_NE(upper, nullptr);
  EXPECT_EQ(upper->line, 4);
  EXPECT_NE(upper->message.find("lowercase"), std::string::npos);
  const auto* bad = error_at(r, "auth.bearer_keys[1].sha256");
  ASSERT_NE(bad, nullptr);
  EXPECT_EQ(bad->line, 7);
  EXPECT_NE(bad->message.find("sha256sum"), std::string::npos);
  const auto* dup = error_at(r, "auth.bearer_keys[3].sha256");
  ASSERT_NE(dup, nullptr);
  EXPECT_EQ(dup->line, 13);
  EXPECT_NE(dup->message.find("line 10"), std::string::npos);
}

TEST_F(config_test, team_and_app_are_required_and_label_safe) {
  const auto r = load(R"(listeners: [{port: 1}]
auth:
  access_keys:
    - access_key_id: BMAKLABELS00000001
      secret_access_key: s
      team: search
      app: web
    - access_key_id: BMAKLABELS00000002
      secret_access_key: s
      app: "web app"
  bearer_keys:
    - {sha256: 393d24413f9bf3485d353a632145ddd5e5065b9164a8101dd02c35c6a863c32b, team: "", app: ok, name: "ci bot"}
  anonymous: {enabled: false, team: "a{b}"}
)");
  EXPECT_EQ(r.errors.size(), 5u) << all_errors(r);
  const auto* missing_team = error_at(r, "auth.access_keys[1].team");
  ASSERT_NE(missing_team, nullptr);
  EXPECT_EQ(missing_team->line, 8);  // the key's map starts here
  EXPECT_NE(missing_team->message.find("missing required key 'team'"), std::string::npos);
  const auto* bad_app = error_at(r, "auth.access_keys[1].app");
  ASSERT_NE(bad_app, nullptr);
  EXPECT_EQ(bad_app->line, 10);
  EXPECT_NE(bad_app->message.find("Prometheus label"), std::string::npos);
  const auto* empty_team = error_at(r, "auth.bearer_keys[0].team");
  ASSERT_NE(empty_team, nullptr);
  EXPECT_EQ(empty_team->line, 12);
  const auto* bad_name = error_at(r, "auth.bearer_keys[0].name");
  ASSERT_NE(bad_name, nullptr);
  EXPECT_EQ(bad_name->line, 12);
  const auto* anon = error_at(r, "auth.anonymous.team");
  ASSERT_NE(anon, nullptr);
  EXPECT_EQ(anon->line, 13);
}

TEST_F(config_test, logging_level_must_be_known) {
  const auto r = load("listeners: [{port: 1}]\nlogging:\n  level: warning\n");
  const auto* e = error_at(r, "logging.level");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 3);
  EXPECT_NE(e->message.find("did you mean 'warn'?"), std::string::npos);
}

TEST_F(config_test, access_log_directory_must_exist) {
  const auto r = load("listeners: [{port: 1}]\nlogging:\n  access_log: no/such/dir/access.log\n");
  const auto* e = error_at(r, "logging.access_log");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 3);
}

TEST_F(config_test, limits_must_be_positive_and_durations_need_units) {
  const auto r = load(R"(listeners: [{port: 1}]
limits:
  max_header_bytes: 0
  max_body_bytes: 32MB
  max_connections: 0
  header_timeout: 10
  body_timeout: 0s
  exchange_timeout: 1.5m
  shutdown_grace: 200h
auth:
  max_clock_skew: 1500ms
)");
  EXPECT_EQ(r.errors.size(), 8u) << all_errors(r);
  const auto* header = error_at(r, "limits.max_header_bytes");
  ASSERT_NE(header, nullptr);
  EXPECT_EQ(header->line, 3);
  const auto* body = error_at(r, "limits.max_body_bytes");
  ASSERT_NE(body, nullptr);
  EXPECT_EQ(body->line, 4);
  EXPECT_NE(body->message.find("KiB, MiB, GiB"), std::string::npos);
  const auto* conns = error_at(r, "limits.max_connections");
  ASSERT_NE(conns, nullptr);
  EXPECT_EQ(conns->line, 5);
  const auto* unitless = error_at(r, "limits.header_timeout");
  ASSERT_NE(unitless, nullptr);
  EXPECT_EQ(unitless->line, 6);
  EXPECT_NE(unitless->message.find("'10s'"), std::string::npos);
  EXPECT_NE(unitless->message.find("'10ms'"), std::string::npos);
  const auto* zero = error_at(r, "limits.body_timeout");
  ASSERT_NE(zero, nullptr);
  EXPECT_EQ(zero->line, 7);
  const auto* fraction = error_at(r, "limits.exchange_timeout");
  ASSERT_NE(fraction, nullptr);
  EXPECT_EQ(fraction->line, 8);
  const auto* too_long = error_at(r, "limits.shutdown_grace");
  ASSERT_NE(too_long, nullptr);
  EXPECT_EQ(too_long->line, 9);
  const auto* skew = error_at(r, "auth.max_clock_skew");
  ASSERT_NE(skew, nullptr);
  EXPECT_EQ(skew->line, 11);
  EXPECT_NE(skew->message.find("whole number of seconds"), std::string::npos);
}

TEST_F(config_test, anonymous_enabled_is_allowed_with_a_warning) {
  const auto r = load("listeners: [{port: 1}]\nauth:\n  anonymous: {enabled: true}\n");
  ASSERT_TRUE(r.errors.empty()) << all_errors(r);
  EXPECT_TRUE(r.value->auth.anonymous.enabled);
  EXPECT_EQ(r.value->auth.anonymous.team, "anonymous");
  const auto anonymous = std::find_if(r.warnings.begin(), r.warnings.end(), [](const auto& w) {
    return w.path == "auth.anonymous.enabled";
  });
  ASSERT_NE(anonymous, r.warnings.end());
  EXPECT_EQ(anonymous->line, 3);
  EXPECT_EQ(std::count_if(r.warnings.begin(), r.warnings.end(),
                          [](const auto& w) { return w.path == "auth"; }),
            0);
}

TEST_F(config_test, admin_token_env_must_be_set_when_admin_is_enabled) {
  const std::string yaml = "listeners: [{port: 1}]\nadmin:\n  token_env: BM_ADMIN\n";
  const auto unset = load(yaml);
  const auto* e = error_at(unset, "admin.token_env");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 3);
  fake_env_vars()["BM_ADMIN"] = "t";
  EXPECT_TRUE(load(yaml).errors.empty());
}

TEST_F(config_test, several_errors_are_all_reported_in_file_order) {
  const auto r = load(R"(listeners:
  - port: 99999
upstream:
  regoin: us-east-1
  credentials: {source: magic}
auth:
  access_keys:
    - {access_key_id: short, secret_access_key: s, team: "bad team", app: a}
logging: {level: loud}
limits: {idle_timeout: 60}
)");
  ASSERT_FALSE(r.value.has_value());
  ASSERT_EQ(r.errors.size(), 7u) << all_errors(r);
  const std::vector<std::pair<std::string, int>> expected = {
      {"listeners[0].port", 2},           {"upstream.regoin", 4},
      {"upstream.credentials.source", 5}, {"auth.access_keys[0].access_key_id", 8},
      {"auth.access_keys[0].team", 8},    {"logging.level", 9},
      {"limits.idle_timeout", 10},
  };
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(r.errors[i].path, expected[i].first) << i;
    EXPECT_EQ(r.errors[i].line, expected[i].second) << i;
    EXPECT_EQ(r.errors[i].file, (dir_ / "config.yaml").string());
  }
}

TEST_F(config_test, load_file_reports_an_unreadable_path) {
  const auto r = load_file((dir_ / "nope.yaml").string(), fake_env);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 0);
  EXPECT_NE(r.errors[0].message.find("does not exist"), std::string::npos);
  const auto d = load_file(dir_.string(), fake_env);
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_NE(d.errors[0].message.find("not a regular file"), std::string::npos);
}

// ---------------------------------------------------------------- pricing, models, ledger,
// metering

constexpr std::string_view small_table = R"(version: "t-1"
currency: USD
unit: per_million_tokens
entries:
  - model: anthropic.claude-3-5-sonnet-20240620-v1:0
    regions: ["*"]
    input: "3.00"
    output: "15.00"
    source: test
)";

TEST_F(config_test, pricing_models_ledger_and_metering_parse) {
  write_text(dir_ / "rates" / "t.yaml", small_table);
  fs::create_directories(dir_ / "data");
  const auto r = load(R"(listeners: [{port: 1}]
auth: {anonymous: {enabled: true}}
pricing:
  rate_table: rates/t.yaml
  reload: { watch: false, poll_interval: 500ms }
models:
  mappings:
    - arn: arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123
      base_model: us.anthropic.claude-3-5-sonnet-20240620-v1:0
      team: search
      app: web
    - arn: arn:aws:bedrock:us-east-1:123456789012:provisioned-model/xyz
      base_model: anthropic.claude-3-5-sonnet-20240620-v1:0
      hourly_usd: "44.00"
ledger:
  path: data/ledger.db
  queue_capacity: 1024
  batch_max: 64
  flush_interval: 100ms
metering:
  drain_on_client_abort: false
  drain_timeout: 5s
  max_concurrent_drains: 8
)");
  ASSERT_TRUE(r.errors.empty()) << all_errors(r);
  const config& c = *r.value;
  EXPECT_EQ(c.pricing.rate_table, (dir_ / "rates" / "t.yaml").string());
  EXPECT_FALSE(c.pricing.reload.watch);
  EXPECT_EQ(c.pricing.reload.poll_interval, 500ms);
  ASSERT_NE(c.rate_table, nullptr);
  EXPECT_EQ(c.rate_table->version, "t-1");
  EXPECT_EQ(c.rate_table->entries.at(0).rates.output, 15'000'000);
  EXPECT_EQ(c.rate_table->entries.at(0).location, (dir_ / "rates" / "t.yaml").string() + ":5");
  ASSERT_EQ(c.models.mappings.size(), 2u);
  EXPECT_EQ(c.models.mappings[0].arn,
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123");
  EXPECT_EQ(c.models.mappings[0].base_model, "us.anthropic.claude-3-5-sonnet-20240620-v1:0");
  EXPECT_EQ(c.models.mappings[0].team, "search");
  EXPECT_EQ(c.models.mappings[0].app, "web");
  EXPECT_FALSE(c.models.mappings[0].hourly_usd.has_value());
  EXPECT_EQ(c.models.mappings[1].hourly_usd, 44.0);
  EXPECT_EQ(c.ledger.path, (dir_ / "data" / "ledger.db").string());
  EXPECT_EQ(c.ledger.queue_capacity, 1024u);
  EXPECT_EQ(c.ledger.batch_max, 64u);
  EXPECT_EQ(c.ledger.flush_interval, 100ms);
  EXPECT_FALSE(c.metering.drain_on_client_abort);
  EXPECT_EQ(c.metering.drain_timeout, 5s);
  EXPECT_EQ(c.metering.max_concurrent_drains, 8u);
  // Only the anonymous warning: pricing and a ledger are configured, every mapping is priced.
  ASSERT_EQ(r.warnings.size(), 1u) << r.warnings[0].to_string();
  EXPECT_EQ(r.warnings[0].path, "auth.anonymous.enabled");
}

TEST_F(config_test, new_sections_report_errors_with_locations) {
  write_text(dir_ / "rates" / "t.yaml", small_table);
  const auto r = load(R"(listeners: [{port: 1}]
pricing:
  reload: { poll_interval: 2 }
models:
  mappings:
    - arn: arn:aws:s3:::bucket
      base_model: anthropic.claude-3-5-sonnet-20240620-v1:0
    - arn: arn:aws:bedrock:us-east-1:123456789012:provisioned-modle/xyz
      base_model: "not a model"
      hourly_usd: "-44"
      team: "bad team"
    - arn: arn:aws:bedrock:us-east-1:123456789012:imported-model/m1
      base_model: meta.llama3-1-8b-instruct-v1:0
    - arn: arn:aws:bedrock:us-east-1:123456789012:imported-model/m1
ledger:
  path: missing-dir/ledger.db
  queue_capacity: 10
  batch_max: 20
  flush_intervall: 1s
metering:
  drain_timeout: 30
  max_concurrent_drains: 0
)");
  EXPECT_FALSE(r.value.has_value());
  const std::vector<std::pair<std::string, int>> expected = {
      {"pricing.rate_table", 3},  // where the pricing map starts
      {"pricing.reload.poll_interval", 3},
      {"models.mappings[0].arn", 6},
      {"models.mappings[1].arn", 8},
      {"models.mappings[1].base_model", 9},
      {"models.mappings[1].hourly_usd", 10},
      {"models.mappings[1].team", 11},
      {"models.mappings[3].arn", 14},
      {"models.mappings[3].base_model", 14},
      {"ledger.path", 16},
      {"ledger.batch_max", 18},
      {"ledger.flush_intervall", 19},
      {"metering.drain_timeout", 21},
      {"metering.max_concurrent_drains", 22},
  };
  for (const auto& [path, line] : expected) {
    const auto* e = error_at(r, path);
    if (e != nullptr) {
      EXPECT_EQ(e->line, line) << path;
    }
  }
  EXPECT_EQ(r.errors.size(), expected.size()) << all_errors(r);
  EXPECT_NE(error_at(r, "models.mappings[1].arn")->message.find("did you mean 'provisioned-model'"),
            std::string::npos);
  EXPECT_NE(error_at(r, "models.mappings[3].arn")->message.find("already mapped on line 12"),
            std::string::npos);
  EXPECT_NE(error_at(r, "ledger.flush_intervall")->message.find("did you mean 'flush_interval'"),
            std::string::npos);
  EXPECT_NE(error_at(r, "ledger.batch_max")->message.find("larger than queue_capacity"),
            std::string::npos);
  EXPECT_NE(error_at(r, "metering.drain_timeout")->message.find("has no unit"), std::string::npos);
}

TEST_F(config_test, rate_table_errors_surface_through_load_file_with_their_own_location) {
  write_text(dir_ / "rates" / "bad.yaml", R"(version: "t-2"
entries:
  - model: anthropic.claude-3-5-sonnet-20240620-v1:0
    regions: [us-east1]
    input: "3.00"
    output: "1.5.0"
    source: test
)");
  write_text(dir_ / "config.yaml",
             "listeners: [{port: 1}]\npricing:\n  rate_table: rates/bad.yaml\n");
  const auto r = load_file((dir_ / "config.yaml").string(), fake_env);
  EXPECT_FALSE(r.value.has_value());
  ASSERT_EQ(r.errors.size(), 3u) << all_errors(r);
  // The config's own error first, pointing at the reference...
  EXPECT_EQ(r.errors[0].file, (dir_ / "config.yaml").string());
  EXPECT_EQ(r.errors[0].path, "pricing.rate_table");
  EXPECT_EQ(r.errors[0].line, 3);
  EXPECT_NE(r.errors[0].message.find("has 2 errors"), std::string::npos);
  // ...then the table's, at the table's file:line.
  const std::string table = (dir_ / "rates" / "bad.yaml").string();
  EXPECT_EQ(r.errors[1].file, table);
  EXPECT_EQ(r.errors[1].path, "entries[0].regions[0]");
  EXPECT_EQ(r.errors[1].line, 4);
  EXPECT_EQ(r.errors[2].file, table);
  EXPECT_EQ(r.errors[2].path, "entries[0].output");
  EXPECT_EQ(r.errors[2].line, 6);
  EXPECT_EQ(r.errors[2].to_string().rfind(table + ":6:13: entries[0].output: ", 0), 0u)
      << r.errors[2].to_string();

  const auto missing = load("listeners: [{port: 1}]\npricing: {rate_table: rates/none.yaml}\n");
  const auto* e = error_at(missing, "pricing.rate_table");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 2);
  EXPECT_NE(e->message.find("does not exist"), std::string::npos);
}

TEST_F(config_test, mapping_to_a_model_the_table_does_not_price_warns) {
  write_text(dir_ / "rates" / "t.yaml", small_table);
  const auto r = load(R"(listeners: [{port: 1}]
pricing: {rate_table: rates/t.yaml}
ledger: {path: ledger.db}
auth: {anonymous: {enabled: true}}
models:
  mappings:
    - arn: arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/p1
      base_model: eu.amazon.nova-pro-v1:0
)");
  ASSERT_TRUE(r.errors.empty()) << all_errors(r);
  const auto w = std::find_if(r.warnings.begin(), r.warnings.end(), [](const auto& x) {
    return x.path == "models.mappings[0].base_model";
  });
  ASSERT_NE(w, r.warnings.end());
  EXPECT_EQ(w->line, 8);
  EXPECT_NE(w->message.find("'amazon.nova-pro-v1:0'"), std::string::npos) << w->message;
}

// ---------------------------------------------------------------- shipped examples

TEST_F(config_test, demo_example_loads_cleanly) {
  const auto r = load_file((examples_dir / "demo.yaml").string(), fake_env);
  ASSERT_TRUE(r.errors.empty()) << all_errors(r);
  const config& c = *r.value;
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].port, 8080);
  EXPECT_FALSE(c.listeners[0].tls.has_value());
  EXPECT_EQ(c.upstream.endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(c.upstream.credentials.source, credential_source::environment);
  ASSERT_EQ(c.auth.access_keys.size(), 1u);
  EXPECT_EQ(c.auth.access_keys[0].team, "search");
  ASSERT_EQ(c.auth.bearer_keys.size(), 1u);
  EXPECT_EQ(c.auth.bearer_keys[0].team, "support");
  EXPECT_FALSE(c.auth.anonymous.enabled);
  ASSERT_NE(c.rate_table, nullptr);
  EXPECT_EQ(
      c.pricing.rate_table,
      fs::absolute(examples_dir / ".." / "rates" / "bedrock.yaml").lexically_normal().string());
  EXPECT_EQ(c.ledger.path, fs::absolute(examples_dir / "ledger.db").lexically_normal().string());
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front().to_string();
}

TEST_F(config_test, production_example_loads_with_its_certs_in_place) {
  // The example's layout: examples/production.yaml next to rates/bedrock.yaml.
  make_certs("examples/certs");
  fs::create_directories(dir_ / "rates");
  fs::copy_file(examples_dir / ".." / "rates" / "bedrock.yaml", dir_ / "rates" / "bedrock.yaml");
  fake_env_vars()["BM_SECRET_SEARCH"] = "search-secret";
  fake_env_vars()["BM_SECRET_SUPPORT"] = "support-secret";
  fake_env_vars()["BM_ADMIN_TOKEN"] = "admin-token";
  const auto r = load_string(read_text(examples_dir / "production.yaml"),
                             (dir_ / "examples" / "production.yaml").string(), fake_env);
  ASSERT_TRUE(r.errors.empty()) << all_errors(r);
  const config& c = *r.value;
  ASSERT_EQ(c.listeners.size(), 1u);
  ASSERT_TRUE(c.listeners[0].tls.has_value());
  EXPECT_EQ(c.listeners[0].tls->cert_file, (dir_ / "examples" / "certs" / "server.pem").string());
  EXPECT_EQ(c.pricing.rate_table, (dir_ / "rates" / "bedrock.yaml").string());
  ASSERT_NE(c.rate_table, nullptr);
  EXPECT_EQ(c.rate_table->version, "2026-07-24.1");
  ASSERT_EQ(c.models.mappings.size(), 1u);
  EXPECT_EQ(c.models.mappings[0].team, "search");
  EXPECT_EQ(c.ledger.path, (dir_ / "examples" / "ledger.db").string());
  EXPECT_EQ(c.upstream.credentials.source, credential_source::default_chain);
  EXPECT_EQ(c.auth.access_keys.size(), 2u);
  EXPECT_EQ(c.auth.access_keys[1].secret_access_key, "support-secret");
  EXPECT_EQ(c.limits.max_body_bytes, 32u * 1024 * 1024);
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front().to_string();
}

TEST_F(config_test, production_example_in_place_misses_only_its_cert_files) {
  fake_env_vars()["BM_SECRET_SEARCH"] = "x";
  fake_env_vars()["BM_SECRET_SUPPORT"] = "y";
  fake_env_vars()["BM_ADMIN_TOKEN"] = "z";
  const auto r = load_file((examples_dir / "production.yaml").string(), fake_env);
  ASSERT_EQ(r.errors.size(), 2u) << all_errors(r);
  EXPECT_EQ(r.errors[0].path, "listeners[0].tls.cert_file");
  EXPECT_EQ(r.errors[1].path, "listeners[0].tls.key_file");
  for (const auto& e : r.errors) EXPECT_NE(e.message.find("does not exist"), std::string::npos);
}

// ---------------------------------------------------------------- commitments

TEST_F(config_test, commitments_load_with_their_contract_rules) {
  const auto r = load(R"(listeners: [{port: 8080}]
commitments:
  - name: edp-2026
    start: 2026-01-01
    end: 2029-01-01
    per_year_usd: "1200000"
    discount_percent: 7.5
    marketplace_discounted: true
    marketplace_counts_percent: 100
    other_spend_per_year_usd: 5000000.50
  - name: small
    start: 2029-01-01
    end: 2029-07-01
    per_year_usd: 10000
)");
  ASSERT_TRUE(r.value) << all_errors(r);
  ASSERT_EQ(r.value->commitments.size(), 2U);
  const auto& c = r.value->commitments[0];
  EXPECT_EQ(c.start, std::chrono::year_month_day(std::chrono::year(2026), std::chrono::January,
                                                 std::chrono::day(1)));
  EXPECT_EQ(c.per_year_micro_usd, 1'200'000'000'000);
  EXPECT_EQ(c.discount_ppm, 75'000);
  EXPECT_TRUE(c.marketplace_discounted);
  EXPECT_EQ(c.marketplace_counts_ppm, 1'000'000);
  EXPECT_EQ(c.other_spend_per_year_micro_usd, 5'000'000'500'000);
  const auto& d = r.value->commitments[1];
  EXPECT_EQ(d.discount_ppm, 0);
  EXPECT_FALSE(d.marketplace_discounted);
  EXPECT_EQ(d.marketplace_counts_ppm, 250'000) << "the 'up to 25%' reading by default";
  EXPECT_EQ(d.marketplace_providers.front(), "anthropic");
}

TEST_F(config_test, commitment_mistakes_are_named) {
  const auto r = load(R"(listeners: [{port: 8080}]
commitments:
  - name: a
    start: 2026-13-01
    end: 2027-01-01
    per_year_usd: 100
  - name: b
    start: 2027-01-01
    end: 2026-01-01
    per_year_usd: 2000000000000
    discount_percent: 120
  - name: c
    start: 2026-01-01
    end: 2027-01-01
    per_year_usd: -5
    discount: 10
  - name: d
    start: 2026-01-01
    end: 2027-01-01
  - name: d
    start: 2026-01-01
    end: 2027-01-01
    per_year_usd: 1
  - name: d
    start: 2026-01-01
    end: 2027-01-01
    per_year_usd: 1
)");
  ASSERT_FALSE(r.value);
  EXPECT_NE(error_at(r, "commitments[0].start")->message.find("'2026-13-01' is not a date"),
            std::string::npos);
  EXPECT_NE(error_at(r, "commitments[1].per_year_usd")->message.find("1000000000000"),
            std::string::npos);
  EXPECT_NE(error_at(r, "commitments[1].discount_percent")->message.find("from 0 to 100"),
            std::string::npos);
  EXPECT_NE(error_at(r, "commitments[2].per_year_usd")->message.find("greater than 0"),
            std::string::npos);
  EXPECT_NE(error_at(r, "commitments[2].discount")->message.find("did you mean"),
            std::string::npos);
  EXPECT_NE(error_at(r, "commitments[3].per_year_usd")->message.find("missing required key"),
            std::string::npos);
  EXPECT_NE(error_at(r, "commitments[5].name")->message.find("defined twice"), std::string::npos);
  const auto bad_order = load(R"(listeners: [{port: 8080}]
commitments:
  - {name: x, start: 2027-01-01, end: 2026-01-01, per_year_usd: 1}
)");
  EXPECT_NE(error_at(bad_order, "commitments[0].end")->message.find("end must be after start"),
            std::string::npos);
  const auto overlapping = load(R"(listeners: [{port: 8080}]
commitments:
  - {name: x, start: 2026-01-01, end: 2027-01-01, per_year_usd: 1}
  - {name: y, start: 2026-12-31, end: 2028-01-01, per_year_usd: 1}
)");
  EXPECT_NE(error_at(overlapping, "commitments[1].start")
                ->message.find("overlaps that of commitment 'x'"),
            std::string::npos);
}

TEST(commitment_rules, the_discount_applies_within_the_term_and_to_marketplace_only_if_agreed) {
  using namespace std::chrono;
  commitment_config edp;
  edp.name = "edp";
  edp.start = year(2026) / January / 1;
  edp.end = year(2027) / January / 1;
  edp.discount_ppm = 100'000;
  commitment_config next = edp;
  next.name = "next";
  next.start = year(2027) / January / 1;
  next.end = year(2028) / January / 1;
  next.discount_ppm = 150'000;
  next.marketplace_discounted = true;
  const std::vector<commitment_config> all = {edp, next};
  const auto day = [](int y, unsigned m, unsigned d) {
    return sys_days(year(y) / month(m) / std::chrono::day(d));
  };
  EXPECT_EQ(discount_ppm_on(all, "amazon.nova-pro-v1:0", day(2026, 6, 1)), 100'000);
  EXPECT_EQ(discount_ppm_on(all, "anthropic.claude-sonnet-4-5", day(2026, 6, 1)), 0)
      << "Marketplace-billed and not discounted under 'edp'";
  EXPECT_EQ(discount_ppm_on(all, "anthropic.claude-sonnet-4-5", day(2027, 1, 1)), 150'000);
  EXPECT_EQ(discount_ppm_on(all, "amazon.nova-pro-v1:0", day(2025, 12, 31)), 0) << "before";
  EXPECT_EQ(discount_ppm_on(all, "amazon.nova-pro-v1:0", day(2028, 1, 1)), 0) << "end excluded";
  EXPECT_EQ(discount_ppm_on({}, "amazon.nova-pro-v1:0", day(2026, 6, 1)), 0);
  EXPECT_TRUE(is_marketplace(edp, "cohere.command-r-v1:0"));
  EXPECT_FALSE(is_marketplace(edp, "meta.llama3-70b-instruct-v1:0"));
}

}  // namespace
}  // namespace bedrock_meter::config
