#pragma once
// One accepted client connection: TLS handshake when the listener has TLS, then the protocol
// (ALPN `h2` or, on plain TCP, the HTTP/2 preface picks HTTP/2; anything else is HTTP/1.1) and
// the session that serves it. Counts the connection for bedrock_connections while it lives.
#include <memory>
#include <optional>

#include <boost/asio/ssl/context.hpp>

#include "aws/bedrock_error.hpp"
#include "io/net.hpp"

namespace bedrock_meter::proxy {

class worker;

/// How an accepted connection stands against the connection limits, decided by the accept loop.
/// Owns the connection's place in the per-client count (released when the connection ends).
class admitted_connection {
 public:
  admitted_connection(worker& w, io::net::ip::address peer, bool counted,
                      std::optional<aws::bedrock_error> refusal, bool refusing);
  ~admitted_connection();
  admitted_connection(admitted_connection&& o) noexcept;
  admitted_connection(const admitted_connection&) = delete;
  admitted_connection& operator=(const admitted_connection&) = delete;
  admitted_connection& operator=(admitted_connection&&) = delete;

  /// Set: over a limit, so every request on the connection gets this answer.
  std::optional<aws::bedrock_error> refusal;

 private:
  worker* w_;
  io::net::ip::address peer_;
  bool counted_;   // holds a place in the per-client count
  bool refusing_;  // holds a place among the refusals being answered
};

/// Serves one accepted connection to its end. Spawned by the worker's accept loop.
io::awaitable<void> run_connection(worker& w, io::tcp_socket socket,
                                   std::shared_ptr<io::net::ssl::context> tls,
                                   admitted_connection admitted);

}  // namespace bedrock_meter::proxy
