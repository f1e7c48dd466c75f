#pragma once
// The running proxy: shared immutable state, N workers (one io_context, one acceptor per listener
// with SO_REUSEPORT, one upstream pool each), and designed shutdown (STYLE.md 9).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "config/config.hpp"
#include "metering/rate_table.hpp"
#include "proxy/auth.hpp"
#include "proxy/budgets.hpp"
#include "proxy/net.hpp"
#include "proxy/published.hpp"
#include "proxy/sigv4.hpp"
#include "proxy/metrics.hpp"
#include "proxy/upstream.hpp"

namespace spdlog {
class logger;
}

namespace bedrock_meter::proxy {

/// Everything derived from one config: swapped whole, read through a shared_ptr per request.
struct runtime_snapshot {
  runtime_snapshot(std::shared_ptr<const config::config> c, std::shared_ptr<budget_engine> b);
  std::shared_ptr<const config::config> cfg;
  auth_index auth;
  /// Budgets of this config (never null; empty without a `budgets` section). Accounts whose
  /// definition survives a reload are shared with the previous snapshot's engine.
  std::shared_ptr<budget_engine> budgets;
  upstream_target default_target;
  std::vector<upstream_target> client_region_targets;  // for allowed_client_regions
  /// The target for a request: the client's signed region when allowed, else the default.
  const upstream_target& target_for(std::string_view signed_region) const noexcept;
};

/// Counters for every outcome (STYLE.md 13). Lock-free; the metrics adapter reads them.
struct proxy_stats {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> responses_2xx{0};
  std::atomic<std::uint64_t> responses_4xx{0};
  std::atomic<std::uint64_t> responses_5xx{0};
  std::atomic<std::uint64_t> auth_failures{0};
  std::atomic<std::uint64_t> unknown_routes{0};
  std::atomic<std::uint64_t> client_aborts{0};
  std::atomic<std::uint64_t> upstream_errors[7]{};  // by upstream_failure
  std::atomic<std::uint64_t> stream_decode_errors{0};
  std::atomic<std::uint64_t> bad_requests{0};       // malformed HTTP, limits exceeded
  std::atomic<std::uint64_t> connections_refused{0};  // over max_connections
  std::atomic<std::uint64_t> timeouts{0};           // client header/body/idle timeouts
  std::atomic<std::uint64_t> unpriced_requests{0};  // tokens with no matching rate (never $0)
  std::atomic<std::uint64_t> estimated_requests{0}; // usage estimated (stream ended without it)
  std::atomic<std::uint64_t> drains{0};             // client gone: upstream read on for usage
  std::atomic<std::uint64_t> drains_refused{0};     // over max_concurrent_drains: estimated
  std::atomic<std::int64_t> draining{0};
  std::atomic<std::uint64_t> rate_table_reloads_ok{0};
  std::atomic<std::uint64_t> rate_table_reloads_failed{0};
  std::atomic<std::uint64_t> ledger_append_failures{0};
  std::atomic<std::int64_t> inflight{0};
  std::atomic<std::int64_t> connections{0};
  std::atomic<std::uint64_t> h2_rapid_resets{0};  // HTTP/2 rapid reset tripped: GOAWAY(CALM)
  std::atomic<std::uint64_t> h2_floods{0};        // SETTINGS/PING/empty-frame/ACK floods
  // h2_floods by kind (bedrock_http2_defence_trips_total{defence}); each trip counts in one.
  std::atomic<std::uint64_t> h2_settings_floods{0};     // SETTINGS over max_settings_per_window
  std::atomic<std::uint64_t> h2_ping_floods{0};         // PING over max_pings_per_window
  std::atomic<std::uint64_t> h2_empty_frame_floods{0};  // empty DATA over max_empty_frames_per_window
  std::atomic<std::uint64_t> h2_ack_floods{0};          // nghttp2: ACKs queued for a non-reader
  std::atomic<std::uint64_t> h2_header_lists_refused{0};  // header list over max_header_list_bytes
  std::atomic<std::uint64_t> h2_stream_timeouts{0};     // stream reset: header/body timeout
  std::atomic<std::uint64_t> budget_blocked{0};     // refused by a block budget
  std::atomic<std::uint64_t> model_denied{0};       // identity not allowed this model
  std::atomic<std::uint64_t> budget_store_fail_open{0};    // admitted without the shared store
  std::atomic<std::uint64_t> budget_store_fail_closed{0};  // refused: shared store unreachable
  std::atomic<std::uint64_t> budget_store_settle_errors{0};  // settlements the store missed
};

/// Upstream AWS credentials as published by the credential provider's refresh (empty snapshot
/// when the upstream uses a bearer key instead).
using published_credentials = published<sigv4::credentials>;

class ledger;

class shared_state {
 public:
  /// `restore_budgets` reads period-to-date spend from the ledger for new budget accounts (at
  /// start and when a reload adds or changes a budget); empty: budgets start at zero.
  shared_state(std::shared_ptr<const config::config> cfg,
               std::shared_ptr<const published_credentials> creds, std::string upstream_bearer_token,
               budget_restore_fn restore_budgets = {});

  /// For code off the request path (startup, reload, admin). Workers read through their own
  /// snapshot_reader (worker::snapshot()).
  std::shared_ptr<const runtime_snapshot> snapshot() const { return snapshot_.load(); }
  /// Validated config -> new snapshot, published to every worker. Throws if the snapshot cannot
  /// be built (the old one stays).
  void replace(std::shared_ptr<const config::config> cfg);
  const published<runtime_snapshot>& snapshots() const noexcept { return snapshot_; }
  const published_credentials* credentials() const noexcept { return creds_.get(); }

  /// The rate table every request is priced with (one snapshot per request). Replaced by
  /// `reload_rate_table` or a config reload; null when no `pricing` section.
  const published<metering::rate_table>& rates() const noexcept { return rates_; }
  /// Re-reads and validates the rate table file; the old table stays unless the new one is
  /// valid. Returns the errors (empty on success). Thread-safe; counted in stats.
  std::vector<std::string> reload_rate_table();

  /// The durable ledger (nullptr when `ledger.path` is empty). Owned by the caller of serve.
  ledger* ledger_sink = nullptr;
  /// The Prometheus adapter (nullptr: no metrics). Owned by the caller of serve; set before the
  /// server is constructed, since each worker takes its own recorder from it.
  metrics* metrics_sink = nullptr;
  const std::string& upstream_bearer_token() const noexcept { return bearer_; }
  net::ssl::context* upstream_tls() noexcept { return upstream_tls_.get(); }

  proxy_stats stats;
  std::atomic<bool> stopping{false};
  std::shared_ptr<spdlog::logger> log;     // "proxy"
  std::shared_ptr<spdlog::logger> access;  // "access" (may be null: access log off)

 private:
  published<runtime_snapshot> snapshot_;
  published<metering::rate_table> rates_;
  std::mutex reload_mutex_;  // serializes reloads (SIGHUP, file watch, admin), never requests
  std::shared_ptr<budget_engine> make_budgets(const config::config& cfg,
                                              const budget_engine* previous);
  budget_restore_fn restore_budgets_;
  std::shared_ptr<const published_credentials> creds_;
  std::string bearer_;
  std::unique_ptr<net::ssl::context> upstream_tls_;
};

class worker;

/// Bookkeeping for one client connection, owned by the worker thread (no locks): lets shutdown
/// close connections idling between requests without touching ones mid-exchange.
struct session_entry {
  std::uint64_t id = 0;
  tcp_stream* stream = nullptr;
  bool in_exchange = false;
  /// Set by multiplexed sessions (HTTP/2): shutdown calls it instead of cancelling the stream,
  /// so the session can send GOAWAY and let its in-flight streams finish.
  std::function<void()> on_shutdown;
};

class worker {
 public:
  worker(shared_state& state, unsigned index);
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  executor get_executor() noexcept { return ioc_.get_executor(); }
  net::io_context& io_context() noexcept { return ioc_; }
  shared_state& state() noexcept { return state_; }
  upstream_pool& pool() noexcept { return pool_; }
  unsigned index() const noexcept { return index_; }

  /// This worker's view of the current config snapshot (no lock, no shared refcount traffic).
  const std::shared_ptr<const runtime_snapshot>& snapshot() { return snapshot_.get(); }
  /// Current upstream AWS credentials, or nullptr (bearer upstream, or none yet).
  std::shared_ptr<const sigv4::credentials> upstream_credentials() {
    return creds_ ? creds_->get() : nullptr;
  }
  /// This worker's view of the current rate table (may be null: no pricing configured).
  std::shared_ptr<const metering::rate_table> rates() { return rates_.get(); }
  /// This worker's metrics recorder (cached series handles; nullptr without metrics).
  metrics::recorder* recorder() noexcept { return recorder_.get(); }
  /// This worker's connection to the shared budget store, or nullptr when budgets are local.
  /// Re-created when a reload changes the store settings.
  shared_budget_store* budget_store(const config::budgets_config& cfg) {
    return budget_store_.get(cfg);
  }

  std::uint64_t next_connection_id() noexcept;
  std::string new_request_id();  // UUID v4, from a per-worker generator

  std::list<session_entry>::iterator register_session(std::uint64_t id, tcp_stream* s);
  void unregister_session(std::list<session_entry>::iterator it);
  /// On the worker thread: close every session not inside an exchange and stop acceptors.
  void begin_shutdown();
  std::vector<std::unique_ptr<tcp_acceptor>>& acceptors() noexcept { return acceptors_; }

 private:
  // Declared first so it is destroyed last: every I/O object below belongs to it. One thread
  // runs it and only that thread touches its sockets and timers (other threads only post), so
  // the reactor's per-descriptor locks are skipped (UNSAFE_IO); the scheduler stays locked for
  // those posts.
  net::io_context ioc_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::vector<std::unique_ptr<tcp_acceptor>> acceptors_;
  shared_state& state_;
  unsigned index_;
  upstream_pool pool_;
  snapshot_reader<runtime_snapshot> snapshot_;
  snapshot_reader<metering::rate_table> rates_;
  std::optional<snapshot_reader<sigv4::credentials>> creds_;
  std::unique_ptr<metrics::recorder> recorder_;
  budget_store_handle budget_store_;
  std::uint64_t next_conn_ = 0;
  std::mt19937_64 rng_;
  std::list<session_entry> sessions_;
};

/// Binds the listeners, runs the workers, and stops gracefully.
class server {
 public:
  explicit server(std::shared_ptr<shared_state> state);
  ~server();

  /// Binds every listener on every worker (SO_REUSEPORT). Throws with a clear message when a
  /// port cannot be bound or a certificate cannot be loaded (startup: fail fast).
  void bind();
  /// The ports actually bound, in listener order (useful with port 0).
  std::vector<std::uint16_t> bound_ports() const { return ports_; }
  /// Starts the worker threads. Returns immediately.
  void start();
  /// Stop accepting, close idle connections, let exchanges finish within `grace`, then force.
  /// Returns true when everything finished inside the grace period.
  bool shutdown(std::chrono::milliseconds grace);

  shared_state& state() noexcept { return *state_; }

 private:
  std::shared_ptr<shared_state> state_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::vector<std::thread> threads_;
  std::vector<std::uint16_t> ports_;
  std::vector<std::shared_ptr<net::ssl::context>> server_tls_;  // per listener (null = plain)
};

/// Serves one accepted connection (HTTP/1.1 or HTTP/2, over plain TCP or TLS). Defined in
/// http1_session.cpp.
awaitable<void> run_connection(worker& w, tcp_socket socket,
                               std::shared_ptr<net::ssl::context> tls);

}  // namespace bedrock_meter::proxy
