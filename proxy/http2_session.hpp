#pragma once
// HTTP/2 server sessions on nghttp2, driven by the worker's io_context like HTTP/1.1 and feeding
// the same protocol-neutral exchange (proxy/exchange.hpp). Reached from run_connection: on a
// plain connection when the client opens with the HTTP/2 preface (prior knowledge), on TLS when
// ALPN selected "h2".
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/beast/ssl/ssl_stream.hpp>

#include "io/net.hpp"

namespace bedrock_meter::proxy {

class worker;
struct session_entry;

/// The client connection preface (RFC 9113 3.4).
inline constexpr std::string_view h2_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum class preface_match { http2, http1, need_more };

/// Classifies the first bytes of a plain connection: the full preface means HTTP/2 with prior
/// knowledge, a proper prefix of it needs more bytes, anything else is HTTP/1.x.
[[nodiscard]] preface_match match_h2_preface(std::string_view first_bytes) noexcept;

/// True for hop-by-hop headers HTTP/2 forbids (RFC 9113 8.2.2); dropped from responses.
[[nodiscard]] bool is_connection_specific_header(std::string_view lowercase_name) noexcept;

/// Counts events in fixed windows: `hit` returns true once more than `max` events fall in one
/// window of `window` length (flood and rapid-reset detection).
class rate_window {
 public:
  rate_window(std::uint32_t max, std::chrono::milliseconds window) noexcept
      : max_(max), window_(window) {}
  bool hit(std::chrono::steady_clock::time_point now) noexcept;

 private:
  std::uint32_t max_;
  std::chrono::milliseconds window_;
  std::chrono::steady_clock::time_point start_{};
  std::uint32_t count_ = 0;
};

/// Serves HTTP/2 on an established stream until the client leaves, the session fails or the
/// server stops (GOAWAY, then in-flight streams finish). `initial` holds bytes already read
/// (the preface, when it was peeked on a plain connection).
io::awaitable<void> serve_http2(worker& w, io::tcp_stream& stream, session_entry& entry,
                                std::string remote, std::string initial);
io::awaitable<void> serve_http2(worker& w, io::beast::ssl_stream<io::tcp_stream>& stream,
                                session_entry& entry, std::string remote, std::string initial);

}  // namespace bedrock_meter::proxy
