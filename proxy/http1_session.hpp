#pragma once
// HTTP/1.1 sessions on Beast, over plain TCP or TLS: each request parsed under the configured
// limits, handed to the protocol-neutral exchange (proxy/exchange.hpp), and its answer streamed
// back (fixed-length bodies as they come, everything else chunked, one chunk per upstream read).
#include <string>
#include <string_view>

#include <boost/beast/ssl/ssl_stream.hpp>

#include "io/net.hpp"

namespace bedrock_meter::proxy {

class worker;
struct session_entry;

/// Serves requests on one connection until the client leaves, a request fails, keep-alive ends
/// or the server stops. `initial` holds bytes already read (the peeked protocol preface).
io::awaitable<void> serve_http1(worker& w, io::tcp_stream& stream, session_entry& entry,
                                std::string remote, std::string_view initial);
io::awaitable<void> serve_http1(worker& w, io::beast::ssl_stream<io::tcp_stream>& stream,
                                session_entry& entry, std::string remote);

}  // namespace bedrock_meter::proxy
