// HTTP/1.1 sessions on Beast, over plain TCP or TLS. Parses each request (with limits on header
// size, body size and time), hands it to the protocol-neutral exchange, and writes the response
// through an http1_sink that streams: fixed-length bodies as they come, everything else chunked,
// one chunk per upstream read so stream events are never held back.
#include <array>
#include <string>

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "aws/bedrock_error.hpp"
#include "io/inline_io.hpp"
#include "proxy/exchange.hpp"
#include "proxy/http1_session.hpp"
#include "proxy/worker.hpp"

namespace bedrock_meter::proxy {

using namespace io;
using namespace aws;
namespace http = beast::http;

namespace {

template <class Stream>
class http1_sink final : public response_sink {
 public:
  http1_sink(Stream& stream, worker& w, bool keep_alive, std::chrono::milliseconds write_timeout)
      : stream_(stream), worker_(w), keep_alive_(keep_alive), write_timeout_(write_timeout) {}

  awaitable<error_code> write_head(unsigned status, const sigv4::header_list& headers,
                                   std::optional<std::uint64_t> content_length) override {
    http::response<http::empty_body> res;
    res.version(11);
    res.result(status);
    for (const auto& [k, v] : headers) res.insert(k, v);
    if (content_length) {
      res.content_length(*content_length);
    } else {
      res.chunked(true);
      chunked_ = true;
    }
    // During shutdown, tell the client this connection ends after this response.
    if (worker_.state().stopping.load(std::memory_order_relaxed)) keep_alive_ = false;
    res.keep_alive(keep_alive_);
    serialize_head(res);
    // A fixed-length head waits for the body's first bytes so both leave in one write (one
    // sendmsg per small answer instead of two: the profile in docs/performance.md). A chunked
    // head (streams) goes at once: the client's time to first byte must not wait for an event.
    if (!chunked_ && content_length.value_or(0) > 0) co_return error_code{};
    co_return co_await flush_head();
  }

  awaitable<error_code> write_body(std::string_view bytes) override {
    beast::get_lowest_layer(stream_).expires_after(write_timeout_);
    if (chunked_) {
      auto [ec, n] =
          co_await net::async_write(stream_, http::make_chunk(net::buffer(bytes)), use_ec);
      co_return ec;
    }
    if (!head_.empty()) {
      const std::array<net::const_buffer, 2> both{net::buffer(head_), net::buffer(bytes)};
      const error_code ec = co_await write_all(stream_, both);
      head_.clear();
      co_return ec;
    }
    co_return co_await write_all(stream_, net::buffer(bytes));
  }

  awaitable<error_code> finish(bool complete) override {
    // A head still held back (the body never came) goes now, so a cut answer still reaches the
    // client as a truncated response rather than a silently closed connection.
    if (!head_.empty()) {
      if (const error_code ec = co_await flush_head()) co_return ec;
    }
    if (!complete) {
      // Without the last chunk (or short of Content-Length) the client sees a truncated body
      // and raises, which is what it must see when the upstream broke mid-response.
      keep_alive_ = false;
      co_return error_code{};
    }
    if (chunked_) {
      beast::get_lowest_layer(stream_).expires_after(write_timeout_);
      auto [ec, n] = co_await net::async_write(stream_, http::make_chunk_last(), use_ec);
      co_return ec;
    }
    co_return error_code{};
  }

  bool keep_alive() const noexcept { return keep_alive_; }

 private:
  // The status line and fields as Beast's serializer writes them (same order, same bytes).
  void serialize_head(const http::response<http::empty_body>& res) {
    head_.clear();
    head_.reserve(256);
    head_.append("HTTP/1.1 ");
    const unsigned code = res.result_int();
    head_.push_back(static_cast<char>('0' + code / 100 % 10));
    head_.push_back(static_cast<char>('0' + code / 10 % 10));
    head_.push_back(static_cast<char>('0' + code % 10));
    head_.push_back(' ');
    const auto reason = res.reason();
    head_.append(reason.data(), reason.size());
    head_.append("\r\n");
    for (const auto& f : res) {
      const auto name = f.name_string();
      const auto value = f.value();
      head_.append(name.data(), name.size()).append(": ");
      head_.append(value.data(), value.size()).append("\r\n");
    }
    head_.append("\r\n");
  }

  awaitable<error_code> flush_head() {
    beast::get_lowest_layer(stream_).expires_after(write_timeout_);
    const error_code ec = co_await write_all(stream_, net::buffer(head_));
    head_.clear();
    co_return ec;
  }

  Stream& stream_;
  worker& worker_;
  bool keep_alive_;
  bool chunked_ = false;
  std::string head_;  // serialized head not yet written (held back for the body's first bytes)
  std::chrono::milliseconds write_timeout_;
};

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return out;
}

using request_parser = http::request_parser<http::string_body>;

/// Writes a refusal for a request that never became an exchange (malformed, too large).
template <class Stream>
awaitable<void> refuse_raw(Stream& stream, worker& w, const bedrock_error& err,
                           std::chrono::milliseconds timeout) {
  http1_sink<Stream> sink(stream, w, false, timeout);
  co_await write_error(sink, err, w.new_request_id());
}

/// One HTTP/1.1 connection: reads requests one after another under the configured limits and
/// hands each to the exchange. Lives in the frame of serve_http1.
template <class Stream>
class http1_session {
 public:
  http1_session(worker& w, Stream& stream, session_entry& entry, std::string remote,
                std::string_view initial)
      : w_(w), stream_(stream), entry_(entry), remote_(std::move(remote)) {
    buffer_.commit(net::buffer_copy(buffer_.prepare(initial.size()), net::buffer(initial)));
  }

  /// Until the client leaves, a request fails, keep-alive ends or the server stops.
  awaitable<void> run() {
    for (bool first = true; !w_.state().stopping.load(std::memory_order_relaxed); first = false) {
      const auto snap = w_.snapshot();  // this request's limits
      const auto& lim = snap->cfg->limits;
      if (!first && !co_await wait_for_request(lim)) co_return;
      request_parser parser;
      parser.header_limit(lim.max_header_bytes);
      parser.body_limit(lim.max_body_bytes);
      if (!co_await read_head(parser, lim) || !co_await read_body(parser, lim)) co_return;
      if (entry_.refusal) {  // over a connection limit: answered, then closed
        co_await refuse_raw(stream_, w_, *entry_.refusal, lim.header_timeout);
        co_return;
      }
      lowest().expires_never();
      inbound_request req = to_inbound(parser.get());
      http1_sink<Stream> sink(stream_, w_, parser.get().keep_alive(), lim.idle_timeout);
      entry_.in_exchange = true;
      const auto result = co_await run_exchange(w_, req, sink);
      entry_.in_exchange = false;
      if (!result.keep_alive || !sink.keep_alive()) co_return;
    }
  }

 private:
  tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  /// Keep-alive idle: the first byte of the next request must come within idle_timeout; the
  /// whole head then has header_timeout (a client trickling a byte a second is cut off).
  awaitable<bool> wait_for_request(const config::limits_config& lim) {
    if (buffer_.size() > 0) co_return true;  // pipelined: already here
    lowest().expires_after(lim.idle_timeout);
    auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(4096), use_ec);
    if (ec) {
      if (ec == beast::error::timeout) telemetry::bump(w_.counters().timeouts);
      co_return false;
    }
    buffer_.commit(n);
    co_return true;
  }

  /// The request head, then what it asks before the body: a Content-Length within the limit
  /// and, for `Expect: 100-continue`, the interim answer.
  awaitable<bool> read_head(request_parser& parser, const config::limits_config& lim) {
    error_code ec;
    if (!header_from_buffer(parser, buffer_, ec)) {
      lowest().expires_after(lim.header_timeout);
      auto [rec, n] = co_await http::async_read_header(stream_, buffer_, parser, use_ec);
      ec = rec;
    }
    if (ec) {
      co_await refuse_head(ec, lim);
      co_return false;
    }
    if (parser.content_length() && *parser.content_length() > lim.max_body_bytes) {
      telemetry::bump(w_.counters().bad_requests);
      co_await refuse_raw(stream_, w_, payload_too_large(lim.max_body_bytes), lim.header_timeout);
      co_return false;
    }
    if (const auto it = parser.get().find(http::field::expect);
        it != parser.get().end() && beast::iequals(it->value(), "100-continue")) {
      static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      // The head may have come from the buffer, so no deadline is set yet.
      lowest().expires_after(lim.header_timeout);
      if (co_await write_all(stream_, net::buffer(cont))) co_return false;
    }
    co_return true;
  }

  /// A head that could not be read: the client left (nothing to say), was too slow (counted) or
  /// sent something we refuse, Bedrock-shaped, before closing.
  awaitable<void> refuse_head(const error_code& ec, const config::limits_config& lim) {
    if (ec == http::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::operation_aborted)
      co_return;
    if (ec == beast::error::timeout) {
      telemetry::bump(w_.counters().timeouts);
      co_return;
    }
    telemetry::bump(w_.counters().bad_requests);
    if (ec == http::error::body_limit)  // Content-Length over the limit: known from the head
      co_await refuse_raw(stream_, w_, payload_too_large(lim.max_body_bytes), lim.header_timeout);
    else if (ec == http::error::header_limit)
      co_await refuse_raw(stream_, w_,
                          validation_error("Request headers exceed the proxy's limit of " +
                                           std::to_string(lim.max_header_bytes) + " bytes"),
                          lim.header_timeout);
    else
      co_await refuse_raw(stream_, w_, validation_error("Malformed HTTP request"),
                          lim.header_timeout);
  }

  awaitable<bool> read_body(request_parser& parser, const config::limits_config& lim) {
    error_code ec;
    if (!message_from_buffer(parser, buffer_, ec)) {
      lowest().expires_after(lim.body_timeout);
      auto [rec, n] = co_await http::async_read(stream_, buffer_, parser, use_ec);
      ec = rec;
    }
    if (!ec) co_return true;
    if (ec == beast::error::timeout) {
      telemetry::bump(w_.counters().timeouts);
      co_return false;
    }
    telemetry::bump(w_.counters().bad_requests);
    if (ec == http::error::body_limit) {
      co_await refuse_raw(stream_, w_, payload_too_large(lim.max_body_bytes), lim.header_timeout);
    } else if (ec != http::error::partial_message && ec != http::error::end_of_stream &&
               ec != net::error::eof && ec != net::error::operation_aborted &&
               ec != net::error::connection_reset) {
      // A body the parser refused (a bad chunk size or chunk extension, a missing CRLF): say so
      // before closing, as for a malformed head, instead of just dropping the connection.
      co_await refuse_raw(stream_, w_,
                          validation_error("Malformed HTTP request body: " + ec.message()),
                          lim.header_timeout);
    }
    co_return false;
  }

  inbound_request to_inbound(http::request<http::string_body>& msg) {
    inbound_request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.headers.reserve(16);
    for (const auto& f : msg)
      req.headers.emplace_back(to_lower(f.name_string()), std::string(f.value()));
    req.body = std::move(msg.body());
    req.connection_id = entry_.id;
    req.protocol = "HTTP/1.1";
    req.remote = remote_;
    return req;
  }

  worker& w_;
  Stream& stream_;
  session_entry& entry_;
  std::string remote_;
  beast::flat_buffer buffer_;
};

}  // namespace

awaitable<void> serve_http1(worker& w, tcp_stream& stream, session_entry& entry, std::string remote,
                            std::string_view initial) {
  http1_session<tcp_stream> session(w, stream, entry, std::move(remote), initial);
  co_await session.run();
}

awaitable<void> serve_http1(worker& w, beast::ssl_stream<tcp_stream>& stream, session_entry& entry,
                            std::string remote) {
  http1_session<beast::ssl_stream<tcp_stream>> session(w, stream, entry, std::move(remote), {});
  co_await session.run();
}

}  // namespace bedrock_meter::proxy
