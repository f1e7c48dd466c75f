#pragma once
// What `report` and `ledger export` read: which ledger file, and which time window of it.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "accounting/ledger.hpp"
#include "app/args.hpp"

namespace bedrock_meter::app {

/// The ledger the reporting commands read: the fleet's PostgreSQL database with
/// `ledger.store: postgres` (every replica's rows), else the local file `ledger.path`.
accounting::ledger_result<std::unique_ptr<accounting::ledger_reader>> open_ledger_reader(
    const config::config& cfg);

struct ledger_window {
  std::string ledger_path;
  std::int64_t since_ms = 0;                  ///< inclusive, unix ms
  std::int64_t until_ms = 0;                  ///< exclusive, unix ms
  std::shared_ptr<const config::config> cfg;  ///< the `--config` file's, null with `--ledger`

  /// The reader for this window: `cfg`'s ledger (the fleet's with store postgres) or the file.
  [[nodiscard]] accounting::ledger_result<std::unique_ptr<accounting::ledger_reader>> open() const;

  /// From `--ledger PATH` or the `ledger.path` of `--config FILE`, and `--since` (default
  /// `default_since`) / `--until` (default now). nullopt after printing a usage error that names
  /// `command`.
  static std::optional<ledger_window> from(const args& a, std::string_view command,
                                           std::string_view default_since);
};

}  // namespace bedrock_meter::app
