#pragma once
/// The config loader's insides, shared by its section files; not part of the public API (that is
/// config/config.hpp). loader.cpp reads the top level and hands each section to its file:
///
///   load_listeners.cpp  listeners (and their tls)
///   load_upstream.cpp   upstream (regions, endpoint, credentials)
///   load_auth.cpp       auth (access keys, bearer keys, anonymous, identity attributes)
///   load_limits.cpp     limits, http2, logging, admin
///   load_pricing.cpp    pricing (loads the rate table), models
///   load_ledger.cpp     ledger, metering
///   load_budgets.cpp    budgets
///   load_commitments.cpp commitments (EDP / private pricing contracts)
///   cross_checks.cpp    what needs several sections (ports, warnings about missing pieces)
///
/// Each section loader reads its YAML with config/yaml_reader.hpp, reports every problem to the
/// context's diagnostics and fills its part of `config`; a section with errors may be left partly
/// filled, since load_config discards the whole config when there is any error.
#include <yaml-cpp/yaml.h>

#include <array>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace bedrock_meter::config {

/// Parses and validates `yaml`, read from `file` (the name used in messages); relative paths in it
/// are resolved against `base_dir` and `*_env` names with `getenv` (nullptr: the process's).
/// `source_path` becomes config::source_path.
load_result load_config(std::string_view yaml, std::string file, std::filesystem::path base_dir,
                        env_lookup getenv, std::string source_path);

/// A model mapping's base model, kept until the rate table is known to check it is priced.
struct mapping_mark {
  std::string written;  ///< base_model as written
  std::string base;     ///< resolved base model
  YAML::Mark mark;
  std::string path;
};

/// What the cross-checks need from the sections once all of them are read.
struct cross_check_marks {
  std::vector<YAML::Mark> listeners;  ///< parallel to config::listeners
  YAML::Mark admin_port = YAML::Mark::null_mark();
  std::vector<mapping_mark> mappings;
};

/// What every section loader needs besides its YAML: where problems go, how relative paths and
/// `*_env` names are resolved, and where to leave what the cross-checks need.
class load_context {
 public:
  load_context(diagnostics& diag, std::filesystem::path base_dir, env_lookup getenv)
      : diag_(diag), base_dir_(std::move(base_dir)), getenv_(getenv) {}

  diagnostics& diag() const { return diag_; }
  cross_check_marks& marks() { return marks_; }
  const cross_check_marks& marks() const { return marks_; }

  /// `value` against the config file's directory when relative; lexically normal.
  std::string resolve(const std::string& value) const;
  /// Resolves `value` and checks it names a readable regular file. The resolved path, or empty
  /// after reporting at `e` (with `path`) what is wrong and where it looked.
  std::string readable_file(const map_entry& e, const std::string& path,
                            const std::string& value) const;
  /// Value of `name` in the (injected) environment; empty optional when unset.
  std::optional<std::string> env(const std::string& name) const;
  /// Reports at `e` when the variable `name` is unset or empty; `purpose` says what it holds.
  void require_env_set(const map_entry& e, const std::string& path, const std::string& name,
                       std::string_view purpose) const;

 private:
  diagnostics& diag_;
  std::filesystem::path base_dir_;
  env_lookup getenv_;
  cross_check_marks marks_;
};

/// Values already seen in a list, with the line of each, for "already defined on line N".
class first_seen {
 public:
  /// The 1-based line `value` was first noted on; or empty after noting it at `mark`.
  std::optional<int> earlier_line(const std::string& value, const YAML::Mark& mark);

 private:
  std::map<std::string, int, std::less<>> lines_;
};

// ---- validated strings that several sections read ----

inline constexpr std::string_view label_hint =
    "use 1 to 64 characters from A-Z a-z 0-9 _ . - (it becomes a Prometheus label value)";
/// A team, app or other name that becomes a Prometheus label value (is_valid_label_value).
bool read_label(const map_reader& s, std::string_view key, std::string& out, text_rule rule);
/// The name of an environment variable (`BM_SECRET`, not `$BM_SECRET`); empty when `rule` allows.
bool read_env_name(const map_reader& s, std::string_view key, std::string& out, text_rule rule);
bool is_env_name(std::string_view s);
/// An IPv4 or IPv6 address literal (no brackets, no host names).
bool is_ip_literal(const std::string& s);

inline constexpr enum_table<credential_source, 6> credential_sources{
    "credentials source",
    {"default_chain", "environment", "profile", "container", "imds", "bearer"},
    {credential_source::default_chain, credential_source::environment, credential_source::profile,
     credential_source::container, credential_source::imds, credential_source::bearer}};

// ---- the sections, in the order load_config reads them ----

void load_listeners(load_context& ctx, const map_reader& top, std::vector<listener_config>& out);
void load_upstream(load_context& ctx, const map_entry& e, upstream_config& out);
void load_auth(load_context& ctx, const map_entry& e, auth_config& out);
void load_limits(load_context& ctx, const map_entry& e, limits_config& out);
void load_http2(load_context& ctx, const map_entry& e, http2_config& out);
void load_logging(load_context& ctx, const map_entry& e, logging_config& out);
void load_admin(load_context& ctx, const map_entry& e, admin_config& out);
/// Also loads the rate table the section names into config::rate_table.
void load_pricing(load_context& ctx, const map_entry& e, config& out);
void load_models(load_context& ctx, const map_entry& e, models_config& out);
void load_ledger(load_context& ctx, const map_entry& e, ledger_config& out);
void load_metering(load_context& ctx, const map_entry& e, metering_config& out);
void load_advice(load_context& ctx, const map_entry& e, advice_config& out);
void load_budgets(load_context& ctx, const map_entry& e, budgets_config& out);
void load_commitments(load_context& ctx, const map_entry& e, std::vector<commitment_config>& out);
/// Checks and warnings that look at several sections; runs after all of them.
void cross_checks(load_context& ctx, const map_reader& top, const config& cfg);

}  // namespace bedrock_meter::config
