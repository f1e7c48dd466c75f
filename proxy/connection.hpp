#pragma once
// One accepted client connection: TLS handshake when the listener has TLS, then the protocol
// (ALPN `h2` or, on plain TCP, the HTTP/2 preface picks HTTP/2; anything else is HTTP/1.1) and
// the session that serves it. Counts the connection for bedrock_connections while it lives.
#include <memory>

#include <boost/asio/ssl/context.hpp>

#include "io/net.hpp"

namespace bedrock_meter::proxy {

class worker;

/// Serves one accepted connection to its end. Spawned by the worker's accept loop.
io::awaitable<void> run_connection(worker& w, io::tcp_socket socket,
                                   std::shared_ptr<io::net::ssl::context> tls);

}  // namespace bedrock_meter::proxy
