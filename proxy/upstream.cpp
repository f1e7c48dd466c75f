#include "proxy/upstream.hpp"

#include <sys/socket.h>

#include <openssl/ssl.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/verify_mode.hpp>

namespace bedrock_meter::proxy {

using namespace io;

namespace {

constexpr std::chrono::seconds dns_cache_ttl{30};

// A connection back in the pool for less than this is reused without the liveness peek: a
// server closes keep-alive connections after seconds of idleness (or says `Connection: close`,
// and then it is never pooled), not within a millisecond of answering. Under load a worker
// reuses its warmest connection within microseconds, and the peek was one extra syscall per
// request (bench/run profile, docs/performance.md). The peek has the same race anyway (a FIN
// still in flight passes it); skipping it widens that window by at most this long.
constexpr std::chrono::milliseconds liveness_check_after{1};

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

// A pooled connection is reusable only if the server has not closed it (EOF readable) and has
// not sent anything unsolicited. Peeking without blocking tells us both.
bool still_open(tcp_stream& s) {
  char byte;
  const auto fd = s.socket().native_handle();
  const auto n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;  // orderly close
  if (n > 0) return false;   // unexpected bytes: the stream is not in a known state
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

}  // namespace

std::optional<upstream_target> make_upstream_target(const config::upstream_config& cfg,
                                                    std::string_view region) {
  upstream_target t;
  t.region = std::string(region);
  const std::string url = replace_all(
      cfg.endpoint.empty() ? "https://bedrock-runtime.{region}.amazonaws.com" : cfg.endpoint,
      "{region}", region);
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    t.tls = true;
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    t.tls = false;
    rest.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  rest = rest.substr(0, rest.find('/'));
  if (rest.empty()) return std::nullopt;
  std::string_view host = rest;
  std::string_view port = t.tls ? "443" : "80";
  bool explicit_port = false;
  if (rest.front() == '[') {  // IPv6 literal
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') {
      port = rest.substr(close + 2);
      explicit_port = true;
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    explicit_port = true;
  }
  if (host.empty() || port.empty()) return std::nullopt;
  t.host = std::string(host);
  t.port = std::string(port);
  const bool default_port = (t.tls && port == "443") || (!t.tls && port == "80");
  t.host_header = std::string(rest.front() == '[' ? rest.substr(0, rest.find(']') + 1) : host);
  if (explicit_port && !default_port) t.host_header += ":" + t.port;
  t.pool_key = (t.tls ? "https://" : "http://") + t.host + ":" + t.port;
  return t;
}

boost::system::result<std::unique_ptr<net::ssl::context>, startup_error> make_upstream_tls_context(
    const config::upstream_config& cfg) {
  auto ctx = std::make_unique<net::ssl::context>(net::ssl::context::tls_client);
  error_code ec;
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                       net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                       net::ssl::context::no_tlsv1_1,
                   ec);
  ctx->set_default_verify_paths(ec);  // an empty system store leaves ca_file as the only anchor
  if (!cfg.ca_file.empty()) {
    ctx->load_verify_file(cfg.ca_file, ec);
    if (ec) return startup_error{"upstream.ca_file " + cfg.ca_file + ": " + ec.message()};
  }
  ctx->set_verify_mode(cfg.verify_tls ? net::ssl::verify_peer : net::ssl::verify_none, ec);
  // HTTP/1.1 upstream: advertise it so an h2-capable endpoint does not pick h2.
  static const unsigned char alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx->native_handle(), alpn, sizeof(alpn));
  return ctx;
}

upstream_connection::upstream_connection(executor ex, const upstream_target& t,
                                         net::ssl::context* tls)
    : pool_key_(t.pool_key) {
  if (t.tls && tls != nullptr) {
    ssl_ = std::make_unique<beast::ssl_stream<tcp_stream>>(ex, *tls);
  } else {
    tcp_ = std::make_unique<tcp_stream>(ex);
  }
}

tcp_stream& upstream_connection::tcp() noexcept {
  return ssl_ ? beast::get_lowest_layer(*ssl_) : *tcp_;
}

std::string_view to_string(upstream_failure f) noexcept {
  switch (f) {
    case upstream_failure::none: return "none";
    case upstream_failure::resolve: return "resolve";
    case upstream_failure::connect: return "connect";
    case upstream_failure::tls_handshake: return "tls";
    case upstream_failure::timeout: return "timeout";
    case upstream_failure::reset: return "reset";
    case upstream_failure::protocol: return "protocol";
  }
  return "unknown";
}

std::atomic<std::uint64_t>& error_counter(telemetry::proxy_counters& c,
                                          upstream_failure f) noexcept {
  switch (f) {
    case upstream_failure::resolve: return c.upstream_resolve;
    case upstream_failure::connect: return c.upstream_connect;
    case upstream_failure::tls_handshake: return c.upstream_tls_handshake;
    case upstream_failure::timeout: return c.upstream_timeout;
    case upstream_failure::reset: return c.upstream_reset;
    case upstream_failure::none:
    case upstream_failure::protocol: break;
  }
  return c.upstream_protocol;
}

upstream_pool::upstream_pool(executor ex, net::ssl::context* tls, std::uint32_t max_idle,
                             std::chrono::milliseconds max_idle_time)
    : ex_(std::move(ex)), tls_(tls), max_idle_(max_idle), max_idle_time_(max_idle_time) {}

awaitable<upstream_pool::acquired> upstream_pool::acquire(
    const upstream_target& t, std::chrono::milliseconds connect_timeout) {
  if (auto pooled = take_idle(t)) {
    acquired out;
    out.conn = std::move(pooled);
    co_return out;
  }
  co_return co_await connect_new(t, connect_timeout, false);
}

awaitable<upstream_pool::acquired> upstream_pool::connect_h2(
    const upstream_target& t, std::chrono::milliseconds connect_timeout) {
  return connect_new(t, connect_timeout, true);
}

awaitable<upstream_pool::acquired> upstream_pool::connect_new(
    const upstream_target& t, std::chrono::milliseconds connect_timeout, bool h2) {
  acquired out;
  std::vector<tcp::endpoint> endpoints;
  if (auto ec = co_await resolve(t, endpoints)) {
    out.failure = upstream_failure::resolve;
    out.ec = ec;
    co_return out;
  }
  auto conn = std::make_unique<upstream_connection>(ex_, t, t.tls ? tls_ : nullptr);
  auto& stream = conn->tcp();
  stream.expires_after(connect_timeout);
  auto [cec, ep] = co_await stream.async_connect(endpoints, use_ec);
  if (cec) {
    dns_.erase(t.pool_key);  // the address may have moved
    out.failure =
        cec == beast::error::timeout ? upstream_failure::timeout : upstream_failure::connect;
    out.ec = cec;
    co_return out;
  }
  error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);
  if (conn->tls()) {
    if (auto [failure, ec] = co_await handshake(*conn, t, h2); failure != upstream_failure::none) {
      out.failure = failure;
      out.ec = ec;
      co_return out;
    }
  }
  stream.expires_never();
  out.conn = std::move(conn);
  co_return out;
}

std::unique_ptr<upstream_connection> upstream_pool::take_idle(const upstream_target& t) {
  const auto it = idle_.find(t.pool_key);
  if (it == idle_.end()) return nullptr;
  const auto now = std::chrono::steady_clock::now();
  auto& list = it->second;
  while (!list.empty()) {
    auto c = std::move(list.back());  // most recently used first: warmest, least likely closed
    list.pop_back();
    const auto idle = now - c->idle_since;
    if (idle < max_idle_time_ && (idle < liveness_check_after || still_open(c->tcp()))) return c;
  }
  return nullptr;
}

awaitable<error_code> upstream_pool::resolve(const upstream_target& t,
                                             std::vector<tcp::endpoint>& endpoints) {
  const auto now = std::chrono::steady_clock::now();
  if (auto it = dns_.find(t.pool_key); it != dns_.end() && it->second.expires > now) {
    endpoints = it->second.endpoints;
    co_return error_code{};
  }
  tcp_resolver resolver(ex_);
  auto [ec, results] = co_await resolver.async_resolve(t.host, t.port, use_ec);
  if (ec) co_return ec;
  for (const auto& r : results) endpoints.push_back(r.endpoint());
  dns_[t.pool_key] = cached_endpoints{endpoints, now + dns_cache_ttl};
  co_return error_code{};
}

awaitable<std::pair<upstream_failure, error_code>> upstream_pool::handshake(
    upstream_connection& conn, const upstream_target& t, bool h2) {
  auto& ssl = conn.ssl();
  if (h2) {
    // This connection offers h2 alone (the context offers http/1.1 for the pooled ones).
    static const unsigned char alpn[] = {2, 'h', '2'};
    SSL_set_alpn_protos(ssl.native_handle(), alpn, sizeof(alpn));
  }
  // SNI and hostname verification: without them a valid certificate for any name would pass.
  // (SSL_set_tlsext_host_name is a macro with a C cast; this is what it expands to.)
  if (SSL_ctrl(ssl.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(t.host.c_str())) != 1)
    co_return std::pair{
        upstream_failure::tls_handshake,
        error_code(static_cast<int>(::ERR_get_error()), net::error::get_ssl_category())};
  ssl.set_verify_callback(net::ssl::host_name_verification(t.host));
  auto [hec] = co_await ssl.async_handshake(net::ssl::stream_base::client, use_ec);
  if (!hec && h2) {
    const unsigned char* proto = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(ssl.native_handle(), &proto, &len);
    if (len != 2 || proto[0] != 'h' || proto[1] != '2')
      co_return std::pair{upstream_failure::protocol,
                          error_code(net::error::operation_not_supported)};
  }
  if (!hec) co_return std::pair{upstream_failure::none, error_code{}};
  co_return std::pair{
      hec == beast::error::timeout ? upstream_failure::timeout : upstream_failure::tls_handshake,
      hec};
}

void upstream_pool::release(std::unique_ptr<upstream_connection> c) {
  auto& list = idle_[c->pool_key()];
  if (list.size() >= max_idle_) return;  // dropping closes it
  c->tcp().expires_never();
  c->idle_since = std::chrono::steady_clock::now();
  list.push_back(std::move(c));
}

void upstream_pool::clear() { idle_.clear(); }

std::size_t upstream_pool::idle_count() const noexcept {
  std::size_t n = 0;
  for (const auto& [k, v] : idle_) n += v.size();
  return n;
}

}  // namespace bedrock_meter::proxy
