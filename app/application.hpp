#pragma once
// `bedrock-meter serve`: every module wired together.
//
// The members are declared in the order the pieces start, so their destruction, in reverse, is
// the shutdown: the rate-table watch stops, the workers join (after run() has drained them within
// limits.shutdown_grace), the admin listener stops (after the workers, so a last scrape sees every
// settled request), the ledger commits what the settled requests appended, the credential refresh
// thread joins, and the loggers flush last.
#include <csignal>
#include <memory>
#include <string>

#include <boost/system/result.hpp>

#include "accounting/inflight_journal.hpp"
#include "accounting/ledger.hpp"
#include "admin/server.hpp"
#include "app/advice_refresh.hpp"
#include "app/rate_table_watch.hpp"
#include "aws/credentials.hpp"
#include "fleet/shipper.hpp"
#include "proxy/errors.hpp"
#include "proxy/server.hpp"
#include "proxy/state.hpp"
#include "telemetry/logging.hpp"
#include "telemetry/metrics.hpp"

namespace bedrock_meter::app {

class application {
 public:
  /// Reads the config, opens the ledger, fetches upstream credentials, binds the listeners and
  /// starts the workers. An error is one line for the operator (startup fails fast).
  static boost::system::result<std::unique_ptr<application>, proxy::startup_error> start(
      std::string config_path, const std::string& ready_file);

  /// Serves until SIGTERM or SIGINT (SIGHUP reloads the config), then stops accepting and lets
  /// in-flight requests finish within limits.shutdown_grace. Returns the exit code.
  int run();

  /// Re-reads the config file (and the rate table it names) and publishes it; invalid files are
  /// rejected with their errors and the running config stays. SIGHUP and POST /-/reload.
  admin::reload_result reload();

  ~application();
  application(const application&) = delete;
  application& operator=(const application&) = delete;

 private:
  application() = default;
  boost::system::result<void, proxy::startup_error> start_upstream_auth(const config::config& cfg);
  boost::system::result<void, proxy::startup_error> open_ledger(const config::config& cfg);
  /// Writes what the journal of requests in flight says a previous process died with, then
  /// starts the journal afresh for this one.
  boost::system::result<void, proxy::startup_error> recover_inflight(const config::config& cfg);
  /// `ledger.store: postgres`: the shipper and the fleet reader budgets restore from.
  void start_fleet(const config::config& cfg);
  /// Loads (or creates) the prompt-fingerprint key into the shared state.
  boost::system::result<void, proxy::startup_error> load_fingerprint_key(const config::config& cfg);
  boost::system::result<void, proxy::startup_error> start_admin(const config::config& cfg);
  void write_ready_file(const std::string& path) const;

  /// spdlog's registry: flushed and dropped last.
  struct logging_session {
    telemetry::loggers loggers;
    ~logging_session();
  };
  /// The handled signals, blocked in every thread so only run()'s sigwait sees them.
  struct blocked_signals {
    blocked_signals();
    sigset_t set;
  };
  /// Closes the ledger (committing what is queued) and says what became of the records.
  /// With `ledger.store: postgres`, the shipper then gets a few seconds to ship the last rows
  /// (what it cannot stays in the journal for the next start).
  struct closing_ledger {
    /// Declared first so it is destroyed last: closing `book` frees the start records of the
    /// rows it commits.
    std::unique_ptr<accounting::inflight_journal> journal;
    std::unique_ptr<accounting::ledger> book;
    std::unique_ptr<fleet::shipper> shipper;
    /// Budgets' period-to-date spend: the fleet's (PostgreSQL) or, without it, the local file's.
    std::unique_ptr<accounting::ledger_reader> fleet_reader;
    std::shared_ptr<spdlog::logger> log;
    ~closing_ledger();
  };

  std::string config_path_;
  logging_session logging_;
  std::shared_ptr<spdlog::logger> log_;
  blocked_signals signals_;
  // Upstream AWS credentials: the provider refreshes them and republishes to the workers (a
  // bearer upstream has neither, only the key).
  std::shared_ptr<proxy::published_credentials> creds_;
  std::unique_ptr<aws::credential_provider> provider_;
  std::string upstream_bearer_;
  closing_ledger ledger_;
  std::unique_ptr<telemetry::metrics> metrics_;
  std::shared_ptr<proxy::shared_state> state_;
  std::unique_ptr<advice_refresh> advice_;  // before admin_: its routes read the reports
  std::unique_ptr<admin::server> admin_;
  std::unique_ptr<proxy::server> server_;
  std::unique_ptr<rate_table_watch> watch_;
};

}  // namespace bedrock_meter::app
