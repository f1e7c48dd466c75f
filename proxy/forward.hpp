#pragma once
// The forward stage: the signed request goes upstream and the answer streams back to the client
// while the usage observer reads it (Beast's relay(): read a piece, show it to the meter, write
// it, repeat; the loop is the back-pressure). Templates, because the upstream stream is a TCP or
// TLS stream in production and a Beast test stream in tests/proxy/exchange_test.cpp; only
// exchange.cpp and that test include this header (it pulls in Beast's HTTP parser).
//
// An upstream connector hands out connections and takes back reusable ones:
//   awaitable<acquired> acquire(const upstream_target&, std::chrono::milliseconds timeout);
//   void release(std::unique_ptr<Connection>);
// where `acquired` has `failure`, `ec` and `conn`, and a Connection has a `requests` count and
// `with_stream(f)`, which calls f with its stream and returns what f returns (upstream_pool and
// upstream_connection in proxy/upstream.hpp).
#include <algorithm>
#include <array>
#include <chrono>
#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include "io/inline_io.hpp"
#include "proxy/bidi.hpp"
#include "proxy/exchange_stages.hpp"
#include "proxy/upstream.hpp"
#include "proxy/worker.hpp"

namespace bedrock_meter::proxy {

namespace detail {

/// Bytes read from upstream per step: one event-stream chunk usually fits, and the stack buffer
/// is the only copy between the two sockets.
inline constexpr std::size_t relay_chunk_bytes = 16 * 1024;
inline constexpr std::uint32_t max_upstream_header_bytes = 64 * 1024;

using response_parser = io::beast::http::response_parser<io::beast::http::buffer_body>;

/// Remaining time before the exchange's overall deadline, capped by a per-step timeout.
std::chrono::milliseconds step(steady_clock::time_point deadline, std::chrono::milliseconds cap);

/// Arms the stream's timer, where it has one (a Beast test stream has none).
template <class Stream>
void expire_after(Stream& stream, std::chrono::milliseconds d) {
  auto& lowest = io::beast::get_lowest_layer(stream);
  if constexpr (requires { lowest.expires_after(d); }) lowest.expires_after(d);
}

/// The upstream request, serialized once: HTTP/1.1 head and body. Small requests travel as one
/// buffer (one TLS record, one send); large bodies are written after the head without a copy.
struct upstream_request {
  std::string head;
  std::string body;
  static constexpr std::size_t coalesce_limit = 64 * 1024;

  upstream_request(std::string_view method, std::string_view target,
                   const aws::sigv4::header_list& headers, std::string&& b);
  std::array<io::net::const_buffer, 2> buffers() const noexcept {
    return {io::net::buffer(head), io::net::buffer(body)};
  }
};

struct relay_result {
  upstream_failure failure = upstream_failure::none;
  io::error_code ec;
  bool reusable = false;       // the upstream connection may go back to the pool
  bool wrote_request = false;  // false: Bedrock never saw it, so one retry cannot bill twice
};

/// A write to the upstream failed: timeout or reset.
upstream_failure write_failure(const io::error_code& ec) noexcept;
/// Reading the upstream's response head failed: timeout, reset (the connection closed) or
/// protocol (it did not speak HTTP/1.1).
upstream_failure head_failure(const io::error_code& ec) noexcept;

/// After the client goes away mid-answer, the upstream is read on (bounded in time and in how
/// many at once) until the usage arrives: Bedrock bills the whole generation either way.
class drain {
 public:
  explicit drain(exchange_context& ctx) : ctx_(ctx) {}
  ~drain();
  drain(const drain&) = delete;
  drain& operator=(const drain&) = delete;
  /// Starts draining; false when draining is off, not needed (usage seen) or over
  /// max_concurrent_drains (the usage is then estimated from what was seen).
  bool start();
  steady_clock::time_point deadline() const noexcept { return deadline_; }

 private:
  exchange_context& ctx_;
  bool on_ = false;
  steady_clock::time_point deadline_ = steady_clock::time_point::max();
};

/// The upstream's response head has arrived: record it, show it to the meter and pass it on to
/// the client. Returns whether the client is still there to take the body.
io::awaitable<bool> answer_head(exchange_context& ctx, response_sink& out, response_parser& parser);

/// The body has ended (complete or not) or the client left: settle the meter, end the client's
/// response, record the outcome, and decide whether the upstream connection can be reused.
io::awaitable<void> end_relay(exchange_context& ctx, response_sink& out, bool complete,
                              bool keep_alive, bool client_alive, relay_result& r);

/// Streams the response body from upstream to the client until it ends.
template <class Stream>
io::awaitable<void> relay_body(exchange_context& ctx, Stream& stream, io::beast::flat_buffer& buf,
                               response_parser& parser, response_sink& out, bool client_alive,
                               relay_result& r) {
  namespace http = io::beast::http;
  std::array<char, relay_chunk_bytes> chunk;
  drain draining(ctx);
  // A client gone before the head reached it is drained like one gone mid-body.
  const bool reading = client_alive || draining.start();
  while (reading && !parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    io::error_code rec;
    if (!io::some_from_buffer(parser, buf, rec)) {
      const auto until = client_alive ? ctx.deadline : std::min(ctx.deadline, draining.deadline());
      expire_after(stream, step(until, ctx.cfg.upstream.idle_timeout));
      auto [ec, n] = co_await http::async_read_some(stream, buf, parser, io::use_ec);
      rec = ec;
    }
    if (rec == http::error::need_buffer) rec = {};
    const std::size_t got = chunk.size() - parser.get().body().size;
    if (got > 0) {
      const std::string_view bytes(chunk.data(), got);
      ctx.meter->on_body(bytes);
      journal_progress(ctx);
      if (client_alive) {
        if (auto ec = co_await out.write_body(bytes); ec) {
          client_alive = false;
          if (!draining.start()) break;  // estimate from what was seen
        } else {
          ctx.bytes_out += got;
        }
      }
    }
    if (rec) {
      r.failure =
          rec == io::beast::error::timeout ? upstream_failure::timeout : upstream_failure::reset;
      r.ec = rec;
      break;
    }
    if (!client_alive && ctx.meter->usage_seen()) break;  // the exact count is in hand: stop
  }
  co_await end_relay(ctx, out, parser.is_done(), parser.is_done() && parser.keep_alive(),
                     client_alive, r);
}

/// Sends one signed request on `stream` and streams its answer to `out`.
template <class Stream>
io::awaitable<relay_result> relay(exchange_context& ctx, Stream& stream,
                                  const upstream_request& ureq, response_sink& out) {
  namespace http = io::beast::http;
  relay_result r;
  expire_after(stream, step(ctx.deadline, ctx.cfg.upstream.first_byte_timeout));
  if (const io::error_code wec = co_await io::write_all(stream, ureq.buffers())) {
    r.failure = write_failure(wec);
    r.ec = wec;
    co_return r;
  }
  r.wrote_request = true;
  io::beast::flat_buffer buf;
  response_parser parser;
  parser.header_limit(max_upstream_header_bytes);
  parser.body_limit(boost::none);
  auto [hec, hn] = co_await http::async_read_header(stream, buf, parser, io::use_ec);
  if (hec) {
    r.failure = head_failure(hec);
    r.ec = hec;
    // Bedrock has the whole request and bills it whether or not it answers in time. The timeout
    // closed the socket, so nothing more can be read: the usage is estimated at settlement.
    if (r.failure == upstream_failure::timeout) ctx.abandoned_at_first_byte = true;
    co_return r;
  }
  const bool client_alive = co_await answer_head(ctx, out, parser);
  co_await relay_body(ctx, stream, buf, parser, out, client_alive, r);
  co_return r;
}

/// The upstream could not be reached or did not answer before the response started: counted,
/// logged, and answered 503.
io::awaitable<void> upstream_failed(exchange_context& ctx, response_sink& out,
                                    upstream_failure failure, const io::error_code& ec,
                                    bool acquiring);

}  // namespace detail

/// The forward stage: acquires an upstream connection from `upstream`, relays, and returns the
/// connection when it can be reused. One retry, only when a pooled connection turns out dead
/// before the request was written: Bedrock never saw the request, so it cannot be billed twice.
template <class Connector>
io::awaitable<void> forward(exchange_context& ctx, response_sink& out, Connector& upstream) {
  const detail::upstream_request ureq(ctx.req.method, ctx.req.target, ctx.upstream_headers,
                                      std::move(ctx.req.body));
  ctx.meter.emplace(ctx.route->op, ctx.route->model_id);
  journal_start(ctx);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto acq = co_await upstream.acquire(
        *ctx.target, detail::step(ctx.deadline, ctx.cfg.upstream.connect_timeout));
    if (!acq.conn) {
      co_await detail::upstream_failed(ctx, out, acq.failure, acq.ec, true);
      co_return;
    }
    const bool reused = acq.conn->requests > 0;
    const auto rr = co_await acq.conn->with_stream(
        [&](auto& stream) { return detail::relay(ctx, stream, ureq, out); });
    if (rr.failure != upstream_failure::none && !ctx.result.response_started) {
      if (reused && !rr.wrote_request && attempt == 0) continue;
      co_await detail::upstream_failed(ctx, out, rr.failure, rr.ec, false);
      co_return;
    }
    if (rr.failure != upstream_failure::none)  // broke off after the answer started
      telemetry::bump(error_counter(ctx.w.counters(), rr.failure));
    if (rr.reusable) {
      ++acq.conn->requests;
      upstream.release(std::move(acq.conn));
    }
    co_return;
  }
}

/// One exchange through `upstream`: the stages, then forward, then settle (once).
template <class Connector>
io::awaitable<exchange_result> run_exchange_with(worker& w, inbound_request& req,
                                                 response_sink& out, Connector& upstream) {
  exchange_context ctx(w, req);
  auto refused = run_stages(ctx);
  if (!refused && ctx.admission_pending) refused = co_await admit(ctx);  // no frame otherwise
  if (!refused) refused = finish_stages(ctx);
  if (refused)
    co_await refuse(ctx, out, *refused);
  else if (ctx.req.body_stream != nullptr)
    co_await forward_bidirectional(ctx, out);  // its own HTTP/2 connection (proxy/bidi.hpp)
  else
    co_await forward(ctx, out, upstream);
  settle(ctx);
  co_return ctx.result;
}

}  // namespace bedrock_meter::proxy
