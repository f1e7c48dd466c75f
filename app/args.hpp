#pragma once
// The command line as the commands see it, and the parsers they share.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/system/result.hpp>

#include "config/config.hpp"
#include "config/price_list_models.hpp"

namespace bedrock_meter::app {

/// A command line that cannot be understood (exit code 2, with the usage text).
struct usage_error {
  std::string message;
};
[[noreturn]] void throw_exception_from_error(const usage_error& e,
                                             const boost::source_location& loc);

/// `bedrock-meter WORD... --name value --flag`: positional words and options in order.
struct args {
  std::vector<std::string_view> positional;
  std::vector<std::pair<std::string_view, std::string_view>> options;

  /// The value of `--name`, or `fallback` when absent.
  std::string_view get(std::string_view name, std::string_view fallback = {}) const;
  /// Every value of `--name` (it may be repeated), each split at commas; empty items dropped.
  std::vector<std::string> get_list(std::string_view name) const;

  /// Splits argv. `--name=value` and `--name value`; the flags `--help`, `--version`,
  /// `--strict`, `--verbose`, `--plan`, `--net`, `--journal` and `--dry-run` take no value.
  /// The error names the option that lacks its value.
  static boost::system::result<args, usage_error> parse(int argc, char** argv);
};

/// Loads and validates a config file; prints every error and warning to stderr as
/// `file:line:col: path: message`. Null when the file has errors.
std::shared_ptr<const config::config> load_or_report(std::string_view path);

/// The Price List model mapping (`rates import`, `reconcile`): `path`, or the built-in copy of
/// config/rates/price-list-models.yaml when empty. Prints every error; nullopt when any.
std::optional<std::vector<config::price_list_model>> load_models_or_report(std::string_view path);

/// A whole number of tokens ("" is 0); nullopt when not a number.
std::optional<std::uint64_t> parse_count(std::string_view s);
/// "24h", "7d", "30m" (before `now_ms`), or a UTC date "2026-11-01" -> unix ms.
std::optional<std::int64_t> parse_when(std::string_view s, std::int64_t now_ms);
/// A UTC date "2026-11-01" (as the ledger's `day` key) as a day; nullopt when malformed.
std::optional<std::chrono::sys_days> parse_day(std::string_view s);
/// A day as "2026-11-01" (the inverse of parse_day).
std::string format_day(std::chrono::sys_days d);
/// The UTC day holding unix ms `ms`, as "2026-11-01".
std::string format_day(std::int64_t ms);
/// The wall clock in unix ms.
std::int64_t now_ms();

}  // namespace bedrock_meter::app
