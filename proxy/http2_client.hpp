#pragma once
// One HTTP/2 request to Bedrock on a connection of its own, full duplex: the request body is
// written while the response is read (InvokeModelWithBidirectionalStream, which Bedrock serves
// on HTTP/2 only). nghttp2 as a client session, driven like the server sessions
// (proxy/http2_session.cpp): a reader feeding nghttp2_session_mem_recv and a writer draining
// nghttp2_session_mem_send on the worker's io_context.
//
// Flow control both ways: `write` resolves only once nghttp2 has framed the bytes, so Bedrock's
// window holds the caller there; response bytes are acknowledged (WINDOW_UPDATE) only as `read`
// hands them out, so a slow client holds Bedrock back instead of the proxy buffering.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "aws/sigv4.hpp"
#include "io/net.hpp"
#include "proxy/upstream.hpp"

struct nghttp2_session;  // nghttp2.h stays out of the header

namespace bedrock_meter::proxy {

class h2_upstream : public std::enable_shared_from_this<h2_upstream> {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  explicit h2_upstream(std::unique_ptr<upstream_connection> conn);
  ~h2_upstream();
  h2_upstream(const h2_upstream&) = delete;
  h2_upstream& operator=(const h2_upstream&) = delete;

  /// Starts the session (preface and SETTINGS), its reader and writer, and submits the request:
  /// `headers` must not hold pseudo-headers; `host` becomes `:authority`. False when nghttp2
  /// refused (out of memory, bad header): nothing was sent.
  bool start(std::string_view method, std::string_view path, const upstream_target& t,
             const aws::sigv4::header_list& headers);

  /// Queues request body bytes and resolves once every one is in a DATA frame, or fails
  /// (connection_reset: the stream or connection is gone; timed_out: Bedrock's window stayed
  /// shut until `deadline`).
  io::awaitable<io::error_code> write(std::string_view bytes, time_point deadline);
  /// Ends the request body (END_STREAM after what was queued).
  void end();
  /// Abandons the request: RST_STREAM(CANCEL), then the connection closes.
  void cancel();
  /// Stops both loops and closes the connection; pending waits fail. Idempotent.
  void close();

  /// Waits for the response head: timed_out at `deadline`, connection_reset when the stream or
  /// connection ended first.
  io::awaitable<io::error_code> read_head(time_point deadline);
  [[nodiscard]] unsigned status() const noexcept { return status_; }
  [[nodiscard]] const aws::sigv4::header_list& headers() const noexcept { return headers_; }
  /// Moves the next response body bytes into `out` (replacing its contents). `out` empty with no
  /// error: the body ended (END_STREAM). connection_reset: Bedrock reset the stream or the
  /// connection broke before the end; timed_out: nothing came until `deadline`.
  io::awaitable<io::error_code> read(std::string& out, time_point deadline);

  // nghttp2 callbacks reach the object through these (C ABI; public for the callbacks only).
  struct callbacks;
  friend struct callbacks;

 private:
  template <class Stream>
  io::awaitable<void> read_loop(Stream& s);
  template <class Stream>
  io::awaitable<void> write_loop(Stream& s);
  void signal_write();
  void wake_all();
  void fail();
  io::awaitable<bool> wait(io::steady_timer& t, time_point deadline);

  std::unique_ptr<upstream_connection> conn_;
  ::nghttp2_session* session_ = nullptr;
  std::int32_t stream_id_ = -1;
  io::steady_timer writer_wake_;
  io::steady_timer read_wake_;   // the response reader waits here
  io::steady_timer write_wake_;  // the request writer waits here
  // request body
  std::string out_;
  std::size_t out_off_ = 0;
  bool out_eof_ = false;
  bool deferred_ = false;
  // response
  unsigned status_ = 0;
  aws::sigv4::header_list headers_;
  bool head_done_ = false;
  std::string in_;
  bool in_eof_ = false;
  bool closed_ = false;  // nghttp2 closed the stream
  bool dead_ = false;    // the connection is gone or closing
  bool write_pending_ = false;
};

}  // namespace bedrock_meter::proxy
