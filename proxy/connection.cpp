#include "proxy/connection.hpp"

#include <utility>

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include "proxy/http1_session.hpp"
#include "proxy/http2_session.hpp"
#include "proxy/worker.hpp"

namespace bedrock_meter::proxy {

using namespace io;

namespace {

/// Keeps bedrock_connections right however the connection ends.
struct connection_count {
  explicit connection_count(telemetry::proxy_counters& c) : c_(c) {
    c_.connections.fetch_add(1, std::memory_order_relaxed);
  }
  ~connection_count() { c_.connections.fetch_sub(1, std::memory_order_relaxed); }
  connection_count(const connection_count&) = delete;
  connection_count& operator=(const connection_count&) = delete;

 private:
  telemetry::proxy_counters& c_;
};

/// Cleartext carries both protocols on one port: the HTTP/2 preface (prior knowledge) picks
/// HTTP/2; the first byte that differs from it picks HTTP/1.1.
awaitable<void> serve_plain(worker& w, tcp_socket socket, std::uint64_t conn_id, std::string remote,
                            std::optional<aws::bedrock_error> refusal) {
  tcp_stream stream(std::move(socket));
  auto reg = w.register_session(conn_id, &stream);
  reg->refusal = std::move(refusal);
  std::string first;
  preface_match m = preface_match::need_more;
  stream.expires_after(w.snapshot()->cfg->limits.header_timeout);
  while (m == preface_match::need_more) {
    char buf[h2_preface.size()];
    auto [rec, n] =
        co_await stream.async_read_some(net::buffer(buf, h2_preface.size() - first.size()), use_ec);
    if (rec) {
      if (rec == beast::error::timeout) telemetry::bump(w.counters().timeouts);
      w.unregister_session(reg);
      co_return;
    }
    first.append(buf, n);
    m = match_h2_preface(first);
  }
  stream.expires_never();
  if (m == preface_match::http2)
    co_await serve_http2(w, stream, *reg, std::move(remote), std::move(first));
  else
    co_await serve_http1(w, stream, *reg, std::move(remote), first);
  w.unregister_session(reg);
  error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

/// ALPN picks the protocol: `h2` (the JS SDK's default) or HTTP/1.1.
awaitable<void> serve_tls(worker& w, tcp_socket socket, net::ssl::context& tls,
                          std::uint64_t conn_id, std::string remote,
                          std::optional<aws::bedrock_error> refusal) {
  beast::ssl_stream<tcp_stream> stream(tcp_stream(std::move(socket)), tls);
  auto reg = w.register_session(conn_id, &beast::get_lowest_layer(stream));
  reg->refusal = std::move(refusal);
  beast::get_lowest_layer(stream).expires_after(w.snapshot()->cfg->limits.header_timeout);
  auto [hec] = co_await stream.async_handshake(net::ssl::stream_base::server, use_ec);
  if (hec) {
    telemetry::bump(w.counters().bad_requests);
    w.state().log->debug("conn {} TLS handshake failed: {}", conn_id, hec.message());
    w.unregister_session(reg);
    co_return;
  }
  const unsigned char* alpn = nullptr;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(stream.native_handle(), &alpn, &alpn_len);
  if (alpn_len == 2 && alpn[0] == 'h' && alpn[1] == '2')
    co_await serve_http2(w, stream, *reg, std::move(remote), {});
  else
    co_await serve_http1(w, stream, *reg, std::move(remote));
  w.unregister_session(reg);
  // A close_notify exchange bounded in time: a peer that never answers must not hold us.
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
  co_await stream.async_shutdown(use_ec);
}

}  // namespace

admitted_connection::admitted_connection(worker& w, net::ip::address peer, bool counted,
                                         std::optional<aws::bedrock_error> r, bool refusing)
    : refusal(std::move(r)), w_(&w), peer_(peer), counted_(counted), refusing_(refusing) {
  if (refusing_) w_->counters().refusing.fetch_add(1, std::memory_order_relaxed);
}

admitted_connection::admitted_connection(admitted_connection&& o) noexcept
    : refusal(std::move(o.refusal)),
      w_(o.w_),
      peer_(o.peer_),
      counted_(std::exchange(o.counted_, false)),
      refusing_(std::exchange(o.refusing_, false)) {}

admitted_connection::~admitted_connection() {
  if (counted_) w_->state().clients.remove(peer_);
  if (refusing_) w_->counters().refusing.fetch_sub(1, std::memory_order_relaxed);
}

awaitable<void> run_connection(worker& w, tcp_socket socket, std::shared_ptr<net::ssl::context> tls,
                               admitted_connection admitted) {
  const connection_count counted(w.counters());
  const auto conn_id = w.next_connection_id();
  error_code ec;
  const auto ep = socket.remote_endpoint(ec);
  std::string remote =
      ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  socket.set_option(tcp::no_delay(true), ec);
  if (tls)
    co_await serve_tls(w, std::move(socket), *tls, conn_id, std::move(remote),
                       std::move(admitted.refusal));
  else
    co_await serve_plain(w, std::move(socket), conn_id, std::move(remote),
                         std::move(admitted.refusal));
}

}  // namespace bedrock_meter::proxy
