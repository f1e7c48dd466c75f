#include "config/loader.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <system_error>

#include "config/text.hpp"

namespace bedrock_meter::config {
namespace {

// Known keys per section, in the order docs/configuration.md lists them.
constexpr std::array<std::string_view, 16> top_keys = {
    "listeners", "workers", "busy_poll_us", "upstream",   "auth",   "limits",
    "http2",     "logging", "admin",        "pricing",    "models", "ledger",
    "metering",  "advice",  "budgets",      "commitments"};

env_lookup effective(env_lookup getenv) {
  if (getenv != nullptr) return getenv;
  return [](const char* name) -> const char* { return std::getenv(name); };
}

void load_sections(load_context& ctx, std::string_view yaml, config& cfg) {
  const YAML::Node root = YAML::Load(std::string(yaml));
  if (root.IsNull()) {
    ctx.diag().error(YAML::Mark::null_mark(), "",
                     "the config is empty; it needs at least a 'listeners' section");
    return;
  }
  const map_reader top(ctx.diag(), root, "", top_keys, root.Mark(), "section");
  if (!top.is_map()) return;

  load_listeners(ctx, top, cfg.listeners);
  top.read_uint("workers", cfg.workers, 0, 1024,
                "use 0 (one worker per core) or a number up to 1024");
  top.read_uint("busy_poll_us", cfg.busy_poll_us, 0, 10000,
                "use 0 (off) or microseconds up to 10000");
  if (const map_entry* e = top.get("upstream")) load_upstream(ctx, *e, cfg.upstream);
  if (const map_entry* e = top.get("auth")) load_auth(ctx, *e, cfg.auth);
  if (const map_entry* e = top.get("limits")) load_limits(ctx, *e, cfg.limits);
  if (const map_entry* e = top.get("http2")) load_http2(ctx, *e, cfg.http2);
  if (const map_entry* e = top.get("logging")) load_logging(ctx, *e, cfg.logging);
  if (const map_entry* e = top.get("admin")) load_admin(ctx, *e, cfg.admin);
  if (const map_entry* e = top.get("pricing")) load_pricing(ctx, *e, cfg);
  if (const map_entry* e = top.get("models")) load_models(ctx, *e, cfg.models);
  if (const map_entry* e = top.get("ledger")) load_ledger(ctx, *e, cfg.ledger);
  if (const map_entry* e = top.get("metering")) load_metering(ctx, *e, cfg.metering);
  if (const map_entry* e = top.get("advice")) load_advice(ctx, *e, cfg.advice);
  if (const map_entry* e = top.get("budgets")) load_budgets(ctx, *e, cfg.budgets);
  if (const map_entry* e = top.get("commitments")) load_commitments(ctx, *e, cfg.commitments);
  cross_checks(ctx, top, cfg);
}

}  // namespace

load_result load_config(std::string_view yaml, std::string file, std::filesystem::path base_dir,
                        env_lookup getenv, std::string source_path) {
  diagnostics diag(std::move(file));
  load_context ctx(diag, std::move(base_dir), effective(getenv));
  config cfg;
  cfg.source_path = std::move(source_path);
  diag.guard([&] { load_sections(ctx, yaml, cfg); },
             "YAML nested too deeply; a config never needs more than a few levels");
  load_result result;
  if (!diag.has_errors()) result.value = std::move(cfg);
  result.errors = diag.take_errors();
  result.warnings = diag.take_warnings();
  return result;
}

// ---------------------------------------------------------------- load_context

std::string load_context::resolve(const std::string& value) const {
  std::filesystem::path p(value);
  if (p.is_relative()) p = base_dir_ / p;
  return p.lexically_normal().string();
}

std::string load_context::readable_file(const map_entry& e, const std::string& path,
                                        const std::string& value) const {
  std::string resolved = resolve(value);
  const std::string origin =
      std::filesystem::path(value).is_relative()
          ? " (resolved from '" + value + "' relative to the config file's directory)"
          : "";
  std::error_code ec;
  const auto status = std::filesystem::status(resolved, ec);
  std::string problem;
  if (ec || !std::filesystem::exists(status)) {
    problem = "file '" + resolved + "' does not exist";
  } else if (!std::filesystem::is_regular_file(status)) {
    problem = "'" + resolved + "' is not a regular file";
  } else if (!std::ifstream(resolved, std::ios::binary)) {
    problem = "file '" + resolved + "' cannot be read; check its permissions";
  } else {
    return resolved;
  }
  diag_.error(e.mark(), path, problem + origin);
  return {};
}

std::optional<std::string> load_context::env(const std::string& name) const {
  const char* v = getenv_(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

void load_context::require_env_set(const map_entry& e, const std::string& path,
                                   const std::string& name, std::string_view purpose) const {
  const auto v = env(name);
  if (!v) {
    diag_.error(e.mark(), path,
                "environment variable '" + name +
                    "' is not set; export it before starting the proxy (" + std::string(purpose) +
                    ")");
  } else if (v->empty()) {
    diag_.error(
        e.mark(), path,
        "environment variable '" + name + "' is set but empty (" + std::string(purpose) + ")");
  }
}

std::optional<int> first_seen::earlier_line(const std::string& value, const YAML::Mark& mark) {
  const auto [it, inserted] = lines_.try_emplace(value, mark.line + 1);
  if (inserted) return std::nullopt;
  return it->second;
}

// ---------------------------------------------------------------- validated strings

bool read_label(const map_reader& s, std::string_view key, std::string& out, text_rule rule) {
  std::string v;
  if (!s.read_string(key, v, rule)) return false;
  if (!is_valid_label_value(v)) {
    s.error(*s.get(key),
            "'" + v + "' is not a valid " + std::string(key) + "; " + std::string(label_hint));
    return false;
  }
  out = std::move(v);
  return true;
}

bool read_env_name(const map_reader& s, std::string_view key, std::string& out, text_rule rule) {
  std::string v;
  if (!s.read_string(key, v, rule)) return false;
  if (!v.empty() && !is_env_name(v)) {
    s.error(*s.get(key), "'" + v + "' is not an environment variable name; use letters, digits " +
                             "and _ (not starting with a digit), without a leading $");
    return false;
  }
  out = std::move(v);
  return true;
}

bool is_env_name(std::string_view s) {
  if (s.empty() || is_digit(s.front())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_upper(c) || is_lower(c) || is_digit(c) || c == '_'; });
}

bool is_ip_literal(const std::string& s) {
  std::array<unsigned char, 16> buf{};
  return inet_pton(AF_INET, s.c_str(), buf.data()) == 1 ||
         inet_pton(AF_INET6, s.c_str(), buf.data()) == 1;
}

}  // namespace bedrock_meter::config
