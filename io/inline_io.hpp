#pragma once
// HTTP/1.1 reads and writes that can finish at once, without a trip through the scheduler.
//
// Beast's http::async_read_header / async_read / async_read_some parse what the buffer already
// holds first, and when that is enough they still *post* their completion (no I/O happened, and a
// completion must not run inside the initiating call). On a keep-alive connection that is the
// common case: a small request's body arrives with its head, and so does a small response's. Each
// post is one more scheduler round (queue the handler, a non-blocking epoll_wait, resume the
// coroutine), three per small request. These helpers run the same parse inline and say whether
// the read is settled; only when it is not does the caller co_await Beast's read, which goes on
// from the parser's state with whatever is still buffered (docs/performance.md, third round).
// Writes are alike: Asio posts the completion of an async write that the socket took at once.
#include <type_traits>

#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include "io/net.hpp"

namespace bedrock_meter::io {

/// What http::async_read_header would do with `buffer` alone. True when that settles it: the
/// header is complete, or the parser failed and `ec` holds the error the async read would have
/// returned. False when the socket must be read; nothing the async read needs has been consumed.
template <bool isRequest, class DynamicBuffer>
bool header_from_buffer(beast::http::basic_parser<isRequest>& parser, DynamicBuffer& buffer,
                        error_code& ec) {
  ec = {};
  if (parser.is_header_done()) return true;
  if (buffer.size() == 0) return false;
  parser.eager(false);  // as async_read_header: stop after the header
  buffer.consume(parser.put(buffer.data(), ec));
  if (ec == beast::http::error::need_more) {
    ec = {};
    return false;
  }
  return ec || parser.is_header_done();
}

/// What http::async_read (the rest of the message) would do with `buffer` alone; same contract.
template <bool isRequest, class DynamicBuffer>
bool message_from_buffer(beast::http::basic_parser<isRequest>& parser, DynamicBuffer& buffer,
                         error_code& ec) {
  ec = {};
  parser.eager(true);  // as async_read: parse the body along with the header
  while (!parser.is_done()) {
    if (buffer.size() == 0) return false;
    const std::size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == beast::http::error::need_more) {
      ec = {};
      return false;
    }
    if (ec) return true;
    if (used == 0) return false;  // no progress without more bytes: let the async read decide
  }
  return true;
}

/// What one http::async_read_some would do with `buffer` alone: one parse step. True when it
/// made one (`ec` as the async read would report it, need_buffer included); false when the
/// socket must be read first. Bytes a partial step moved into the body stay there: the async
/// read that follows adds to them, as it would have.
template <bool isRequest, class DynamicBuffer>
bool some_from_buffer(beast::http::basic_parser<isRequest>& parser, DynamicBuffer& buffer,
                      error_code& ec) {
  ec = {};
  if (buffer.size() == 0) return false;
  const std::size_t used = parser.put(buffer.data(), ec);
  buffer.consume(used);
  if (ec == beast::http::error::need_more || (!ec && used == 0)) {
    ec = {};
    return false;  // no step without more bytes: never loop here without yielding
  }
  return true;
}

/// Writes all of `buffers`. On a plain TCP stream it first writes what the socket takes at once
/// (for a small answer, all of it): no suspension, no timer armed, no posted completion. Only a
/// remainder goes through an async write, under the expiry the caller set on the stream. An error
/// on the first try is left for that async write to meet and report. TLS streams write async.
template <class Stream, class ConstBufferSequence>
awaitable<error_code> write_all(Stream& stream, const ConstBufferSequence& buffers) {
  if constexpr (std::is_same_v<Stream, tcp_stream>) {
    auto& socket = stream.socket();
    error_code ec;
    // Only the synchronous write_some below looks at this flag: with it, it answers would_block
    // instead of blocking. Async operations are unaffected.
    if (!socket.non_blocking()) socket.non_blocking(true, ec);
    std::size_t n = 0;
    if (!ec) n = socket.write_some(buffers, ec);
    if (ec) n = 0;
    beast::buffers_suffix<ConstBufferSequence> rest(buffers);
    rest.consume(n);
    if (beast::buffer_bytes(rest) == 0) co_return error_code{};
    auto [wec, wn] = co_await net::async_write(stream, rest, use_ec);
    co_return wec;
  } else {
    auto [wec, wn] = co_await net::async_write(stream, buffers, use_ec);
    co_return wec;
  }
}

}  // namespace bedrock_meter::io
