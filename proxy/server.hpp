#pragma once
// The running proxy: N workers (one io_context, one acceptor per listener with SO_REUSEPORT, one
// upstream pool each) and designed shutdown: stop accepting, let in-flight exchanges finish and
// settle within a grace period, then force.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/ssl/context.hpp>
#include <boost/system/result.hpp>

#include "proxy/state.hpp"
#include "proxy/worker.hpp"

namespace bedrock_meter::proxy {

/// Binds the listeners, runs the workers, and stops gracefully.
class server {
 public:
  explicit server(std::shared_ptr<shared_state> state);
  ~server();

  /// Binds every listener on every worker (SO_REUSEPORT). An error names the address when a port
  /// cannot be bound or a certificate cannot be loaded (startup: fail fast).
  [[nodiscard]] boost::system::result<void, startup_error> bind();
  /// The ports actually bound, in listener order (useful with port 0).
  std::vector<std::uint16_t> bound_ports() const { return ports_; }
  /// Starts the worker threads. Returns immediately.
  void start();
  /// Stop accepting, close idle connections, let exchanges finish within `grace`, then force.
  /// Returns true when everything finished inside the grace period.
  bool shutdown(std::chrono::milliseconds grace);

  shared_state& state() noexcept { return *state_; }

 private:
  boost::system::result<std::uint16_t, startup_error> bind_listener(
      const config::listener_config& l);

  std::shared_ptr<shared_state> state_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::vector<std::thread> threads_;
  std::vector<std::uint16_t> ports_;
  std::vector<std::shared_ptr<io::net::ssl::context>> server_tls_;  // per listener (null = plain)
};

}  // namespace bedrock_meter::proxy
