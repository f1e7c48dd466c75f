#pragma once
// Upstream side: where a request goes (endpoint per region) and a per-worker keep-alive pool of
// connections to it. One pool per worker, used only from that worker's thread: no locks.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "config/config.hpp"
#include "io/net.hpp"
#include "proxy/errors.hpp"
#include "telemetry/counters.hpp"

namespace bedrock_meter::proxy {

/// A resolved upstream endpoint for one region.
struct upstream_target {
  std::string host;  // DNS name or address literal
  std::string port;  // service as text, for the resolver
  bool tls = true;
  std::string host_header;  // `host` or `host:port` when the port is not the scheme's default
  std::string region;       // region signed for
  std::string pool_key;     // "https://host:port"
};

/// Builds the target for a region from the config: the endpoint override (with `{region}`
/// substituted) or AWS's `https://bedrock-runtime.{region}.amazonaws.com`. nullopt when the
/// endpoint does not parse (config validation prevents this at startup).
std::optional<upstream_target> make_upstream_target(const config::upstream_config& cfg,
                                                    std::string_view region);

/// Builds the client TLS context: system trust store plus the optional `ca_file`, peer
/// verification on (unless `verify_tls: false`), TLS 1.2 minimum. An error names a `ca_file` that
/// cannot be loaded (startup and reload).
boost::system::result<std::unique_ptr<io::net::ssl::context>, startup_error>
make_upstream_tls_context(const config::upstream_config& cfg);

class upstream_connection {
 public:
  upstream_connection(io::executor ex, const upstream_target& t, io::net::ssl::context* tls);

  io::tcp_stream& tcp() noexcept;
  bool tls() const noexcept { return ssl_ != nullptr; }
  io::beast::ssl_stream<io::tcp_stream>& ssl() noexcept { return *ssl_; }
  const std::string& pool_key() const noexcept { return pool_key_; }
  /// Calls `f` with the connection's stream (TLS or plain TCP); `f` must return the same type
  /// for both.
  template <class F>
  auto with_stream(F&& f) {
    return ssl_ ? f(*ssl_) : f(*tcp_);
  }

  std::chrono::steady_clock::time_point idle_since{};
  std::uint32_t requests = 0;  // served on this connection (0: fresh)

 private:
  std::string pool_key_;
  std::unique_ptr<io::tcp_stream> tcp_;
  std::unique_ptr<io::beast::ssl_stream<io::tcp_stream>> ssl_;
};

enum class upstream_failure : std::uint8_t {
  none,
  resolve,
  connect,
  tls_handshake,
  timeout,
  reset,
  protocol,
};
std::string_view to_string(upstream_failure f) noexcept;
/// The bedrock_upstream_errors_total{kind} counter of a failure (`none` has none: not called).
std::atomic<std::uint64_t>& error_counter(telemetry::proxy_counters& c,
                                          upstream_failure f) noexcept;

class upstream_pool {
 public:
  upstream_pool(io::executor ex, io::net::ssl::context* tls, std::uint32_t max_idle,
                std::chrono::milliseconds max_idle_time);

  struct acquired {
    upstream_failure failure = upstream_failure::none;
    io::error_code ec;
    std::unique_ptr<upstream_connection> conn;
  };
  /// A pooled idle connection to `t` if one is alive, else a new one (resolve, connect, TLS
  /// handshake with SNI and host verification), all within `connect_timeout`.
  io::awaitable<acquired> acquire(const upstream_target& t,
                                  std::chrono::milliseconds connect_timeout);
  /// A new connection for one HTTP/2 request (never pooled): TLS offers only `h2` in ALPN and
  /// fails as `protocol` when the server does not select it; a plain target speaks HTTP/2 with
  /// prior knowledge. For InvokeModelWithBidirectionalStream, which Bedrock serves on HTTP/2 only.
  io::awaitable<acquired> connect_h2(const upstream_target& t,
                                     std::chrono::milliseconds connect_timeout);
  /// Returns a connection whose last response was read completely and was keep-alive.
  void release(std::unique_ptr<upstream_connection> c);
  /// Drops every idle connection (shutdown).
  void clear();
  std::size_t idle_count() const noexcept;

 private:
  /// Resolves, connects and (for TLS targets) handshakes a new connection.
  io::awaitable<acquired> connect_new(const upstream_target& t,
                                      std::chrono::milliseconds connect_timeout, bool h2);
  /// A pooled idle connection to `t` that is still open, or null.
  std::unique_ptr<upstream_connection> take_idle(const upstream_target& t);
  /// The target's addresses, from the DNS cache or a fresh lookup (then cached).
  io::awaitable<io::error_code> resolve(const upstream_target& t,
                                        std::vector<io::tcp::endpoint>& endpoints);
  /// TLS handshake with SNI and host-name verification.
  io::awaitable<std::pair<upstream_failure, io::error_code>> handshake(upstream_connection& conn,
                                                                       const upstream_target& t,
                                                                       bool h2);

  io::executor ex_;
  io::net::ssl::context* tls_;
  std::uint32_t max_idle_;
  std::chrono::milliseconds max_idle_time_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<upstream_connection>>> idle_;
  struct cached_endpoints {
    std::vector<io::tcp::endpoint> endpoints;
    std::chrono::steady_clock::time_point expires;
  };
  std::unordered_map<std::string, cached_endpoints> dns_;
};

}  // namespace bedrock_meter::proxy
