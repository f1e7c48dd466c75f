#pragma once
// The Asio/Beast vocabulary every module with sockets shares (proxy, admin, aws). Each proxy
// worker runs one single-threaded io_context, so the concrete executor is the io_context's own: no
// strand is needed and, unlike `any_io_executor`, nothing is type-erased on the hot path (a strand
// behind the type-erased executor cost 11-25% throughput when measured on Boost 1.81).
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace bedrock_meter::io {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

using executor = net::io_context::executor_type;
template <class T = void>
using awaitable = net::awaitable<T, executor>;

/// Completion token: resume the coroutine with (error_code, results...) instead of throwing (no
/// exceptions on the data plane). Boost 1.81 has no default completion token: spelled once here.
inline constexpr auto use_ec = net::as_tuple(net::use_awaitable_t<executor>{});
inline constexpr net::use_awaitable_t<executor> use_aw{};

using tcp_socket = net::basic_stream_socket<tcp, executor>;
using tcp_acceptor = net::basic_socket_acceptor<tcp, executor>;
using tcp_resolver = net::ip::basic_resolver<tcp, executor>;
using steady_timer =
    net::basic_waitable_timer<std::chrono::steady_clock,
                              net::wait_traits<std::chrono::steady_clock>, executor>;
using tcp_stream = beast::basic_stream<tcp, executor, beast::unlimited_rate_policy>;

}  // namespace bedrock_meter::io
