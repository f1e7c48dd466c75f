#pragma once
// The protocol-neutral exchange: one request from a client, routed, authenticated, authorized,
// admitted against budgets, forwarded to Bedrock with its answer streamed back while the usage
// observer reads it, then settled once (ledger, metrics, access log, budgets).
// HTTP/1.1 sessions (Beast) and HTTP/2 streams (nghttp2) both parse their protocol into an
// `inbound_request` and implement `response_sink`; everything after that is this one path
// (proxy/exchange_stages.hpp has the stages, proxy/forward.hpp the relay).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "aws/sigv4.hpp"
#include "io/net.hpp"

namespace bedrock_meter::aws {
struct bedrock_error;
}  // namespace bedrock_meter::aws

namespace bedrock_meter::proxy {

class worker;

/// A request body that is still arriving while the exchange runs: the input event stream of
/// InvokeModelWithBidirectionalStream (HTTP/2 only). Bytes are acknowledged to the client (flow
/// control) only as they are read, so an exchange that stops reading stops the client.
class request_body_stream {
 public:
  virtual ~request_body_stream() = default;
  /// Moves the next bytes of the body into `out` (replacing its contents), waiting until some
  /// arrive. `out` empty with no error: the body ended. An error: the client reset the stream or
  /// left (connection_reset), nothing arrived until `deadline` (timed_out), or cancel() was
  /// called (operation_aborted).
  virtual io::awaitable<io::error_code> read(std::string& out,
                                             std::chrono::steady_clock::time_point deadline) = 0;
  /// Wakes a pending read with operation_aborted; later reads fail the same way.
  virtual void cancel() = 0;
};

/// A fully received client request. Header names are lowercase (HTTP/2 requires it; for
/// HTTP/1.1 the session lowercases them, since header names are case-insensitive).
struct inbound_request {
  std::string method;
  std::string target;  // path and query exactly as received: forwarded and re-signed as is
  aws::sigv4::header_list headers;
  std::string body;
  /// Set instead of `body` for a body that streams in while the exchange runs (see above).
  request_body_stream* body_stream = nullptr;
  std::uint64_t connection_id = 0;
  std::string_view protocol;  // "HTTP/1.1" or "HTTP/2"
  std::string remote;         // client address, for the access log

  /// First header with this lowercase name, or empty.
  [[nodiscard]] std::string_view header(std::string_view lowercase_name) const noexcept;
};

/// Where the response goes. Implemented once per protocol. Each call resolves when the bytes are
/// handed to the transport, so a slow client slows the upstream read loop (back-pressure).
class response_sink {
 public:
  virtual ~response_sink() = default;
  /// `content_length` set: a fixed-length body follows; unset: length unknown (chunked / DATA
  /// frames).
  virtual io::awaitable<io::error_code> write_head(unsigned status,
                                                   const aws::sigv4::header_list& headers,
                                                   std::optional<std::uint64_t> content_length) = 0;
  virtual io::awaitable<io::error_code> write_body(std::string_view bytes) = 0;
  /// Ends the body. `complete` false: the upstream broke mid-body, so the client must see an
  /// incomplete response (HTTP/1.1: close without the last chunk; HTTP/2: RST_STREAM).
  virtual io::awaitable<io::error_code> finish(bool complete) = 0;
};

/// What the session needs to know afterwards.
struct exchange_result {
  unsigned status = 0;
  bool response_started = false;  // head written: an error can no longer be sent cleanly
  bool keep_alive = true;         // false when the connection is no longer in a known state
};

/// Runs one exchange to the end, forwarding through the worker's upstream pool. Never throws;
/// every failure is answered (Bedrock-shaped) or, once the response has started, ends the body
/// early. Settles exactly once.
io::awaitable<exchange_result> run_exchange(worker& w, inbound_request& req, response_sink& out);

/// Writes a Bedrock-shaped error response (used by sessions for protocol-level refusals too).
io::awaitable<io::error_code> write_error(response_sink& out, const aws::bedrock_error& err,
                                          std::string_view request_id);

}  // namespace bedrock_meter::proxy
