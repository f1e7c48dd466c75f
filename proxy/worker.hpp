#pragma once
// One worker: a thread running its own io_context, with its own acceptors, upstream pool, metrics
// recorder and views of the shared snapshots. Everything here is touched by that one thread only
// (others just post to it), so the request path takes no lock.
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "accounting/budgets.hpp"
#include "aws/bedrock_error.hpp"
#include "io/net.hpp"
#include "metering/input_estimate.hpp"
#include "proxy/state.hpp"
#include "proxy/upstream.hpp"
#include "telemetry/metrics.hpp"

namespace bedrock_meter::proxy {

/// Bookkeeping for one client connection, owned by the worker thread (no locks): lets shutdown
/// close connections idling between requests without touching ones mid-exchange.
struct session_entry {
  std::uint64_t id = 0;
  io::tcp_stream* stream = nullptr;
  bool in_exchange = false;
  /// Set by multiplexed sessions (HTTP/2): shutdown calls it instead of cancelling the stream,
  /// so the session can send GOAWAY and let its in-flight streams finish.
  std::function<void()> on_shutdown;
  /// Set when the connection came in over a connection limit: every request on it is answered
  /// with this error (after its head and body are read, so the client sees the answer rather
  /// than a reset) and the connection then closes.
  std::optional<aws::bedrock_error> refusal;
};

class worker {
 public:
  worker(shared_state& state, unsigned index);
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  io::executor get_executor() noexcept { return ioc_.get_executor(); }
  io::net::io_context& io_context() noexcept { return ioc_; }
  shared_state& state() noexcept { return state_; }
  telemetry::proxy_counters& counters() noexcept { return state_.counters; }
  upstream_pool& pool() noexcept { return pool_; }
  unsigned index() const noexcept { return index_; }

  /// This worker's view of the current config snapshot (no lock, no shared refcount traffic).
  const std::shared_ptr<const runtime_snapshot>& snapshot() { return snapshot_.get(); }
  /// Current upstream AWS credentials, or nullptr (bearer upstream, or none yet).
  std::shared_ptr<const aws::sigv4::credentials> upstream_credentials() {
    return creds_ ? creds_->get() : nullptr;
  }
  /// This worker's view of the current rate table (may be null: no pricing configured).
  std::shared_ptr<const metering::rate_table> rates() { return rates_.get(); }
  /// Learns each model's body bytes per input token, to estimate the input of requests whose
  /// usage never came back (this worker's traffic only: no lock).
  metering::input_estimator& inputs() noexcept { return inputs_; }
  /// This worker's metrics recorder (cached series handles; nullptr without metrics).
  telemetry::metrics::recorder* recorder() noexcept { return recorder_.get(); }

  std::uint64_t next_connection_id() noexcept;
  std::string new_request_id();  // UUID v4, from a per-worker generator

  std::list<session_entry>::iterator register_session(std::uint64_t id, io::tcp_stream* s);
  void unregister_session(std::list<session_entry>::iterator it);
  /// On the worker thread: close every session not inside an exchange and stop acceptors.
  void begin_shutdown();
  std::vector<std::unique_ptr<io::tcp_acceptor>>& acceptors() noexcept { return acceptors_; }

 private:
  // Declared first so it is destroyed last: every I/O object below belongs to it. One thread
  // runs it and only that thread touches its sockets and timers (other threads only post), so
  // the reactor's per-descriptor locks are skipped (UNSAFE_IO); the scheduler stays locked for
  // those posts.
  io::net::io_context ioc_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::vector<std::unique_ptr<io::tcp_acceptor>> acceptors_;
  shared_state& state_;
  unsigned index_;
  upstream_pool pool_;
  snapshot_reader<runtime_snapshot> snapshot_;
  snapshot_reader<metering::rate_table> rates_;
  std::optional<snapshot_reader<aws::sigv4::credentials>> creds_;
  std::unique_ptr<telemetry::metrics::recorder> recorder_;
  metering::input_estimator inputs_;
  std::uint64_t next_conn_ = 0;
  std::mt19937_64 rng_;
  std::list<session_entry> sessions_;
};

}  // namespace bedrock_meter::proxy
