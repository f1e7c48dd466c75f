#include "proxy/cli.hpp"

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/rand.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "config/config.hpp"
#include "proxy/credentials.hpp"
#include "proxy/server.hpp"
#include "proxy/sigv4.hpp"

namespace bedrock_meter::proxy {

namespace {

constexpr std::string_view usage_text = R"(bedrock-meter — a metering proxy for Amazon Bedrock Runtime

Usage:
  bedrock-meter serve --config FILE [--ready-file PATH]
      Run the proxy. SIGTERM/SIGINT: stop accepting, finish in-flight requests within
      limits.shutdown_grace, exit 0. SIGHUP: reload the config file (kept if invalid).
      --ready-file writes the bound ports as JSON once listening (for scripts using port 0).
  bedrock-meter check-config --config FILE
      Validate a config file; print each problem with file:line:column. Exit 1 if any.
  bedrock-meter keys create --team TEAM --app APP [--type sigv4|bearer]
      Mint a client credential. It is printed once, with the config lines to add.
  bedrock-meter --version
)";

struct args {
  std::vector<std::string_view> positional;
  std::vector<std::pair<std::string_view, std::string_view>> options;
  std::string_view get(std::string_view name, std::string_view fallback = {}) const {
    for (const auto& [k, v] : options)
      if (k == name) return v;
    return fallback;
  }
};

bool parse_args(int argc, char** argv, args& out, std::string& error) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a.starts_with("--")) {
      const auto eq = a.find('=');
      if (eq != std::string_view::npos) {
        out.options.emplace_back(a.substr(2, eq - 2), a.substr(eq + 1));
      } else if (a == "--help" || a == "--version") {
        out.options.emplace_back(a.substr(2), "1");
      } else if (i + 1 < argc) {
        out.options.emplace_back(a.substr(2), argv[++i]);
      } else {
        error = "option " + std::string(a) + " needs a value";
        return false;
      }
    } else {
      out.positional.push_back(a);
    }
  }
  return true;
}

/// Loads and validates; prints every error (and warning) as `file:line:col: path: message`.
std::shared_ptr<const config::config> load_or_report(std::string_view path) {
  auto r = config::load_file(std::string(path));
  for (const auto& w : r.warnings) std::cerr << "warning: " << w.to_string() << '\n';
  if (!r.value) {
    for (const auto& e : r.errors) std::cerr << e.to_string() << '\n';
    std::cerr << "bedrock-meter: " << r.errors.size() << " problem(s) in " << path << '\n';
    return nullptr;
  }
  return std::make_shared<const config::config>(std::move(*r.value));
}

int check_config(const args& a) {
  const auto path = a.get("config");
  if (path.empty()) {
    std::cerr << "check-config: --config FILE is required\n";
    return 2;
  }
  const auto cfg = load_or_report(path);
  if (!cfg) return 1;
  std::cout << path << ": OK (" << cfg->listeners.size() << " listener(s), "
            << cfg->auth.access_keys.size() << " access key(s), " << cfg->auth.bearer_keys.size()
            << " bearer key(s), upstream region " << cfg->upstream.region << ")\n";
  return 0;
}

std::string random_chars(std::size_t n, std::string_view alphabet) {
  std::string out;
  out.reserve(n);
  // Rejection sampling keeps every character equally likely.
  const unsigned limit = 256 - (256 % static_cast<unsigned>(alphabet.size()));
  while (out.size() < n) {
    unsigned char buf[64];
    if (RAND_bytes(buf, sizeof buf) != 1) throw std::runtime_error("RAND_bytes failed");
    for (unsigned char b : buf) {
      if (b >= limit) continue;
      out += alphabet[b % alphabet.size()];
      if (out.size() == n) break;
    }
  }
  return out;
}

bool valid_label(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

int keys_create(const args& a) {
  const auto team = a.get("team");
  const auto app = a.get("app");
  const auto type = a.get("type", "sigv4");
  if (!valid_label(team) || !valid_label(app)) {
    std::cerr << "keys create: --team and --app are required ([A-Za-z0-9_.-], 1-64 chars)\n";
    return 2;
  }
  if (type == "sigv4") {
    const std::string id = "BMAK" + random_chars(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    const std::string secret = random_chars(
        40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    std::cout << "New SigV4 client key for team '" << team << "', app '" << app
              << "'. The secret is shown only now.\n\n"
              << "  AWS_ACCESS_KEY_ID=" << id << "\n  AWS_SECRET_ACCESS_KEY=" << secret
              << "\n\nAdd to the proxy config under auth.access_keys (better: keep the secret in "
                 "an environment variable and use secret_env):\n\n"
              << "    - access_key_id: " << id << "\n      secret_access_key: \"" << secret
              << "\"\n      team: " << team << "\n      app: " << app << "\n";
    return 0;
  }
  if (type == "bearer") {
    const std::string token =
        "bmk-" + random_chars(43, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    std::cout << "New bearer key for team '" << team << "', app '" << app
              << "'. The key is shown only now; the proxy stores only its SHA-256.\n\n"
              << "  AWS_BEARER_TOKEN_BEDROCK=" << token
              << "\n\nAdd to the proxy config under auth.bearer_keys:\n\n"
              << "    - sha256: " << sigv4::sha256_hex(token) << "\n      team: " << team
              << "\n      app: " << app << "\n      name: " << team << "-" << app << "\n";
    return 0;
  }
  std::cerr << "keys create: --type must be sigv4 or bearer\n";
  return 2;
}

void setup_logging(const config::config& cfg) {
  auto level = spdlog::level::from_str(cfg.logging.level);
  auto proxy_log = spdlog::stderr_logger_mt("proxy");
  auto config_log = spdlog::stderr_logger_mt("config");
  for (auto& l : {proxy_log, config_log}) {
    l->set_level(level);
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%n] %v");
  }
  spdlog::set_default_logger(proxy_log);
  if (cfg.logging.access_log == "off") return;
  std::shared_ptr<spdlog::logger> access;
  if (cfg.logging.access_log == "stdout")
    access = spdlog::stdout_logger_mt("access");
  else
    access = spdlog::basic_logger_mt("access", cfg.logging.access_log);
  access->set_pattern("%v");  // the line is already JSON
  access->set_level(spdlog::level::info);
  access->flush_on(spdlog::level::info);
}

int serve(const args& a) {
  const auto path = a.get("config");
  if (path.empty()) {
    std::cerr << "serve: --config FILE is required\n";
    return 2;
  }
  auto cfg = load_or_report(path);
  if (!cfg) return 1;
  setup_logging(*cfg);
  auto log = spdlog::get("proxy");

  // Block the signals we handle before any thread starts, so only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<credential_provider> provider;
  std::shared_ptr<published_credentials> creds;  // what workers read; refreshed below
  std::string bearer;
  if (cfg->upstream.credentials.source == config::credential_source::bearer) {
    auto t = bearer_token(cfg->upstream.credentials, {});
    if (!t) {
      log->critical("upstream credentials: {}", t.error.message);
      return 1;
    }
    bearer = std::move(*t.value);
    log->info("upstream auth: bearer key from ${}", cfg->upstream.credentials.bearer_token_env);
  } else {
    creds = std::make_shared<published_credentials>();
    // The refresh callback runs on the provider's thread after each refresh; it republishes the
    // new keys for the workers. It may fire only once `create` has returned and set `live`.
    auto live = std::make_shared<std::atomic<credential_provider*>>(nullptr);
    provider_options opt;
    opt.policy.refresh_before = cfg->upstream.credentials.refresh_before;
    opt.on_refresh = [log, live, creds](const refresh_event& e) {
      if (e.result == refresh_result::failed) {
        log->warn("upstream credentials refresh from {} failed ({} in a row): {}", e.source,
                  e.consecutive_failures, e.error.message);
        return;
      }
      if (auto* p = live->load()) {
        auto snap = p->current();
        creds->publish(std::shared_ptr<const sigv4::credentials>(snap, &snap->creds));
      }
      log->info("upstream credentials refreshed from {}", e.source);
    };
    auto p = credential_provider::create(cfg->upstream.credentials, std::move(opt));
    if (!p) {
      log->critical("upstream credentials: {}", p.error.message);
      return 1;
    }
    provider = std::move(*p.value);
    live->store(provider.get());  // first, so no refresh from now on is missed
    auto snap = provider->current();
    creds->publish(std::shared_ptr<const sigv4::credentials>(snap, &snap->creds));
    log->info("upstream credentials from {}", snap->source);
  }

  std::shared_ptr<shared_state> state;
  std::unique_ptr<server> srv;
  try {
    state = std::make_shared<shared_state>(cfg, creds, bearer);
    srv = std::make_unique<server>(state);
    srv->bind();
  } catch (const std::exception& e) {
    log->critical("startup failed: {}", e.what());
    return 1;
  }
  const auto ports = srv->bound_ports();
  std::string ports_json = "[";
  for (std::size_t i = 0; i < cfg->listeners.size(); ++i) {
    const auto& l = cfg->listeners[i];
    log->info("listening on {}://{}:{}", l.tls ? "https" : "http", l.address, ports[i]);
    ports_json += (i ? "," : "") + std::to_string(ports[i]);
  }
  ports_json += "]";
  srv->start();
  if (const auto rf = a.get("ready-file"); !rf.empty()) {
    const std::string tmp = std::string(rf) + ".tmp";
    std::ofstream(tmp) << "{\"ports\":" << ports_json << "}\n";
    std::rename(tmp.c_str(), std::string(rf).c_str());  // atomic: readers never see half a file
  }

  for (;;) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      auto r = config::load_file(std::string(path));
      if (!r.value) {
        for (const auto& e : r.errors) log->error("reload rejected: {}", e.to_string());
        continue;
      }
      try {
        state->replace(std::make_shared<const config::config>(std::move(*r.value)));
        log->info("config reloaded from {} (listeners and workers change only on restart)", path);
      } catch (const std::exception& e) {
        log->error("reload rejected: {}", e.what());
      }
      continue;
    }
    break;
  }
  const auto grace = state->snapshot()->cfg->limits.shutdown_grace;
  log->info("shutting down: finishing in-flight requests (up to {} ms)", grace.count());
  const bool clean = srv->shutdown(grace);
  if (!clean)
    log->warn("shutdown grace period ended with {} request(s) still in flight",
              state->stats.inflight.load());
  srv.reset();
  if (provider) provider->stop();  // joins the refresh thread before `creds` goes away
  log->info("stopped");
  spdlog::shutdown();
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  args a;
  std::string error;
  if (!parse_args(argc, argv, a, error)) {
    std::cerr << error << "\n\n" << usage_text;
    return 2;
  }
  if (!a.get("version").empty()) {
    std::cout << "bedrock-meter 0.1.0\n";
    return 0;
  }
  if (a.positional.empty() || !a.get("help").empty()) {
    std::cout << usage_text;
    return a.positional.empty() && a.get("help").empty() ? 2 : 0;
  }
  const auto cmd = a.positional[0];
  try {
    if (cmd == "serve") return serve(a);
    if (cmd == "check-config") return check_config(a);
    if (cmd == "keys" && a.positional.size() > 1 && a.positional[1] == "create")
      return keys_create(a);
  } catch (const std::exception& e) {
    std::cerr << "bedrock-meter: " << e.what() << '\n';
    return 1;
  }
  std::cerr << "unknown command '" << cmd << "'\n\n" << usage_text;
  return 2;
}

}  // namespace bedrock_meter::proxy
