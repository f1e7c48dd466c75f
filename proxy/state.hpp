#pragma once
// What every worker shares: the current config snapshot (with what is derived from it), the rate
// table, the upstream credentials, the outcome counters, and where settled requests go. Snapshots
// are replaced whole on reload and read through `published<T>` (proxy/published.hpp), so the
// request path takes no lock.
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/system/result.hpp>

#include "accounting/budgets.hpp"
#include "aws/sigv4.hpp"
#include "config/config.hpp"
#include "io/net.hpp"
#include "metering/rate_table.hpp"
#include "metering/siphash.hpp"
#include "proxy/auth.hpp"
#include "proxy/errors.hpp"
#include "proxy/published.hpp"
#include "proxy/upstream.hpp"
#include "telemetry/counters.hpp"

namespace spdlog {
class logger;
}  // namespace spdlog

namespace bedrock_meter::accounting {
class ledger;
class inflight_journal;
}  // namespace bedrock_meter::accounting
namespace bedrock_meter::telemetry {
class metrics;
}  // namespace bedrock_meter::telemetry

namespace bedrock_meter::proxy {

/// Everything derived from one config: swapped whole, read through a shared_ptr per request.
struct runtime_snapshot {
  /// Builds the snapshot of a validated config. An error when the upstream endpoint does not
  /// parse (the config loader checks it first, so this is a second line of defence).
  static boost::system::result<std::shared_ptr<const runtime_snapshot>, startup_error> make(
      const std::shared_ptr<const config::config>& c, std::shared_ptr<accounting::budget_engine> b);

  std::shared_ptr<const config::config> cfg;
  auth_index auth;
  /// Budgets of this config (never null; empty without a `budgets` section). Accounts whose
  /// definition survives a reload are shared with the previous snapshot's engine.
  std::shared_ptr<accounting::budget_engine> budgets;
  upstream_target default_target;
  std::vector<upstream_target> client_region_targets;  // for allowed_client_regions
  /// The target for a request: the client's signed region when allowed, else the default.
  /// Where a request signed for `signed_region` goes: its own region when allowed, else
  /// `upstream.region` when the signature names none (bearer keys) or that region, or when
  /// unlisted regions are rerouted; null when it must be refused.
  const upstream_target* target_for(std::string_view signed_region) const noexcept;
};

/// Open connections per client address, shared by every worker (taken at accept and at close,
/// never on the request path), for `limits.max_connections_per_client`.
class client_connections {
 public:
  /// Counts one more connection from `a`; false, counting nothing, when `a` already holds
  /// `limit` (0: no limit).
  bool try_add(const io::net::ip::address& a, std::uint32_t limit);
  void remove(const io::net::ip::address& a);
  std::uint32_t count(const io::net::ip::address& a) const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<io::net::ip::address, std::uint32_t> open_;
};

/// Upstream AWS credentials as published by the credential provider's refresh (empty snapshot
/// when the upstream uses a bearer key instead).
using published_credentials = published<aws::sigv4::credentials>;

/// Where settled requests go besides the counters. Both owned by the application, which sets
/// them before the server is built (each worker takes its own metrics recorder).
struct settlement_sinks {
  accounting::ledger* ledger = nullptr;   ///< null: `ledger.path` is empty
  telemetry::metrics* metrics = nullptr;  ///< null: no metrics (tests)
  /// Set while the fleet ledger's spool is over its bound (fleet::shipper): admission refuses
  /// new requests. Null: `ledger.store: sqlite`.
  const std::atomic<bool>* spool_full = nullptr;
  /// Start records of the requests in flight, for a process that dies mid-request; null
  /// without a ledger.
  accounting::inflight_journal* journal = nullptr;
};

class shared_state {
 public:
  /// The state for a validated config. `creds`: upstream AWS credentials (null with a bearer
  /// upstream); `restore_budgets` reads period-to-date spend from the ledger for new budget
  /// accounts (at start and when a reload adds or changes a budget); empty: they start at zero.
  /// An error when the upstream TLS context (ca_file) or endpoint cannot be set up.
  static boost::system::result<std::shared_ptr<shared_state>, startup_error> create(
      const std::shared_ptr<const config::config>& cfg,
      std::shared_ptr<const published_credentials> creds, std::string upstream_bearer_token,
      accounting::budget_restore_fn restore_budgets = {});

  /// For code off the request path (startup, reload, admin). Workers read through their own
  /// snapshot_reader (worker::snapshot()).
  std::shared_ptr<const runtime_snapshot> snapshot() const { return snapshot_.load(); }
  /// Validated config -> new snapshot, published to every worker. On error the old one stays.
  boost::system::result<void, startup_error> replace(
      const std::shared_ptr<const config::config>& cfg);
  const published<runtime_snapshot>& snapshots() const noexcept { return snapshot_; }
  const published_credentials* credentials() const noexcept { return creds_.get(); }

  /// The rate table every request is priced with (one snapshot per request). Replaced by
  /// `reload_rate_table` or a config reload; null when no `pricing` section.
  const published<metering::rate_table>& rates() const noexcept { return rates_; }
  /// Re-reads and validates the rate table file; the old table stays unless the new one is
  /// valid. Returns the new table's version. Thread-safe; counted in rate_table_reloads.
  boost::system::result<std::string, reload_error> reload_rate_table();

  const std::string& upstream_bearer_token() const noexcept { return bearer_; }

  /// Where the shared budget store's calls run (hiredis blocks for up to `budgets.redis.timeout`
  /// per call): on these threads, never on a worker. An admission that needs the store waits
  /// for its answer without holding its worker; settlements are queued here and the exchange
  /// goes on. Each thread keeps its own store connection.
  io::executor budget_store_executor() noexcept { return store_ioc_.get_executor(); }
  /// Lets the queued store calls finish, then stops the store threads (at shutdown, once no
  /// worker can queue more). Idempotent.
  void drain_budget_store();
  ~shared_state();
  io::net::ssl::context* upstream_tls() noexcept { return upstream_tls_.get(); }

  settlement_sinks sinks;
  /// The installation's prompt-fingerprint key (`ledger.fingerprint_key_file`), loaded once at
  /// start by the application; nullopt: fingerprints are not recorded.
  std::optional<metering::siphash_key> fingerprint_key;
  telemetry::proxy_counters counters;
  client_connections clients;
  std::atomic<bool> stopping{false};
  std::shared_ptr<spdlog::logger> log;     // "proxy"
  std::shared_ptr<spdlog::logger> access;  // "access" (may be null: access log off)

 private:
  shared_state(std::shared_ptr<const published_credentials> creds, std::string bearer,
               accounting::budget_restore_fn restore_budgets);
  std::shared_ptr<accounting::budget_engine> make_budgets(
      const config::config& cfg, const accounting::budget_engine* previous);

  published<runtime_snapshot> snapshot_;
  published<metering::rate_table> rates_;
  std::mutex reload_mutex_;  // serializes reloads (SIGHUP, file watch, admin), never requests
  accounting::budget_restore_fn restore_budgets_;
  std::shared_ptr<const published_credentials> creds_;
  std::string bearer_;
  std::unique_ptr<io::net::ssl::context> upstream_tls_;
  io::net::io_context store_ioc_;
  std::optional<io::net::executor_work_guard<io::executor>> store_work_;
  std::vector<std::thread> store_threads_;
};

}  // namespace bedrock_meter::proxy
