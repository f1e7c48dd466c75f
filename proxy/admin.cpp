#include "proxy/admin.hpp"

#include <array>
#include <cstdlib>
#include <exception>
#include <list>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "proxy/metrics.hpp"
#include "proxy/net.hpp"

namespace bedrock_meter::proxy {

namespace http = beast::http;

namespace {

using digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

digest sha256(std::string_view s) {
  digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

/// Accept errors such as EMFILE repeat at once; wait this long before the next accept.
constexpr std::chrono::milliseconds accept_backoff{100};

boost::json::array to_json(const std::vector<std::string>& v) {
  boost::json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

response make_response(const request& req, http::status status, std::string_view content_type,
                       std::string body) {
  response res(status, 11);
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

response json_response(const request& req, http::status status, const boost::json::object& o) {
  return make_response(req, status, "application/json", boost::json::serialize(o));
}

response message(const request& req, http::status status, std::string_view text) {
  return json_response(req, status, {{"message", text}});
}

}  // namespace

struct admin_server::impl {
  impl(admin_options o, admin_handlers h) : opt(std::move(o)), handlers(std::move(h)) {
    if (!opt.token.empty()) token_digest = sha256(opt.token);
  }

  admin_options opt;
  admin_handlers handlers;
  std::optional<digest> token_digest;

  net::io_context ioc{1};
  std::optional<tcp_acceptor> acceptor;
  std::uint16_t bound_port = 0;
  std::thread thread;
  std::mutex lifecycle_mu;  // start/stop from the owner's threads

  // Admin thread only.
  std::list<tcp_stream*> connections;
  bool stopping = false;

  bool authorized(const request& req) const {
    if (!token_digest) return true;
    const auto it = req.find(http::field::authorization);
    if (it == req.end()) return false;
    const std::string_view value = it->value();
    constexpr std::string_view scheme = "bearer ";
    if (value.size() < scheme.size() || !beast::iequals(value.substr(0, scheme.size()), scheme))
      return false;
    const digest given = sha256(value.substr(scheme.size()));
    return CRYPTO_memcmp(given.data(), token_digest->data(), given.size()) == 0;
  }

  response unauthorized(const request& req) const {
    auto res = message(req, http::status::unauthorized,
                       "admin endpoints need Authorization: Bearer <token>");
    res.set(http::field::www_authenticate, "Bearer realm=\"bedrock-meter admin\"");
    return res;
  }

  static response method_not_allowed(const request& req, std::string_view allow) {
    auto res = message(req, http::status::method_not_allowed, "method not allowed");
    res.set(http::field::allow, allow);
    return res;
  }

  response handle(const request& req) {
    std::string_view path = req.target();
    if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
    const auto method = req.method();

    if (path == "/healthz") {
      if (method != http::verb::get) return method_not_allowed(req, "GET");
      return make_response(req, http::status::ok, "text/plain; charset=utf-8", "ok\n");
    }
    const bool known = path == "/readyz" || path == "/metrics" ||
                       (path == "/-/reload" && handlers.reload) ||
                       (path == "/api/budgets" && handlers.budgets);
    if (!known) return message(req, http::status::not_found, "not found");
    // Authenticate before telling anything about the route, methods included.
    if (!authorized(req)) return unauthorized(req);

    try {
      if (path == "/metrics") {
        if (method != http::verb::get) return method_not_allowed(req, "GET");
        return make_response(req, http::status::ok, metrics::content_type,
                             handlers.metrics ? handlers.metrics() : std::string());
      }
      if (path == "/api/budgets") {
        if (method != http::verb::get) return method_not_allowed(req, "GET");
        return make_response(req, http::status::ok, "application/json", handlers.budgets());
      }
      if (path == "/readyz") {
        if (method != http::verb::get) return method_not_allowed(req, "GET");
        const readiness r = handlers.ready ? handlers.ready() : readiness{};
        if (r.ready()) return json_response(req, http::status::ok, {{"ready", true}});
        return json_response(req, http::status::service_unavailable,
                             {{"ready", false}, {"reasons", to_json(r.reasons)}});
      }
      // /-/reload
      if (method != http::verb::post) return method_not_allowed(req, "POST");
      const reload_result r = handlers.reload();
      switch (r.result) {
        case reload_result::status::ok:
          return json_response(req, http::status::ok, {{"reloaded", to_json(r.reloaded)}});
        case reload_result::status::invalid:
          return json_response(req, http::status::bad_request, {{"errors", to_json(r.errors)}});
        case reload_result::status::failed:
          break;
      }
      return json_response(req, http::status::internal_server_error,
                           {{"errors", to_json(r.errors)}});
    } catch (const std::exception& e) {
      return message(req, http::status::internal_server_error, e.what());
    }
  }

  awaitable<void> session(tcp_socket socket) {
    tcp_stream stream(std::move(socket));
    connections.push_front(&stream);
    const auto self = connections.begin();
    beast::flat_buffer buffer;
    for (bool first = true; !stopping; first = false) {
      // Keep-alive idle: wait for the next request's first byte within idle_timeout, then the
      // whole request within read_timeout, so a client trickling bytes cannot hold a slot.
      if (!first && buffer.size() == 0) {
        stream.expires_after(opt.idle_timeout);
        auto [ec, n] = co_await stream.async_read_some(buffer.prepare(1024), use_ec);
        if (ec) break;
        buffer.commit(n);
      }
      http::request_parser<http::string_body> parser;
      parser.header_limit(opt.max_header_bytes);
      parser.body_limit(opt.max_body_bytes);
      stream.expires_after(opt.read_timeout);
      auto [rec, rn] = co_await http::async_read(stream, buffer, parser, use_ec);
      if (rec) {
        if (rec == http::error::header_limit || rec == http::error::body_limit) {
          request dummy;
          dummy.keep_alive(false);
          auto res = message(dummy, http::status::payload_too_large, "request too large");
          stream.expires_after(opt.write_timeout);
          co_await http::async_write(stream, res, use_ec);
        }
        break;
      }
      if (stopping) break;
      const request& req = parser.get();
      response res = handle(req);
      if (stopping) break;  // stop() closed the stream while the callback ran
      stream.expires_after(opt.write_timeout);
      auto [wec, wn] = co_await http::async_write(stream, res, use_ec);
      if (wec || !res.keep_alive()) break;
    }
    connections.erase(self);
    error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.close();
  }

  awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor->async_accept(use_ec);
      if (stopping || !acceptor->is_open()) co_return;
      if (ec) {
        steady_timer t(ioc.get_executor(), accept_backoff);
        co_await t.async_wait(use_ec);
        continue;
      }
      if (connections.size() >= opt.max_connections) {
        error_code ignored;
        socket.close(ignored);
        continue;
      }
      net::co_spawn(ioc.get_executor(), session(std::move(socket)), [](std::exception_ptr) {});
    }
  }

  void begin_stop() {
    stopping = true;
    error_code ignored;
    if (acceptor) acceptor->close(ignored);
    for (auto* c : connections) c->close();
  }
};

admin_options_result admin_options_from(const config::admin_config& cfg) {
  admin_options_result r;
  r.options.address = cfg.address;
  r.options.port = cfg.port;
  if (!cfg.token_env.empty()) {
    const char* token = std::getenv(cfg.token_env.c_str());
    if (token == nullptr || *token == '\0') {
      r.error = "admin.token_env names " + cfg.token_env +
                ", which is unset or empty: set it or remove admin.token_env";
      return r;
    }
    r.options.token = token;
  }
  return r;
}

admin_server::admin_server(admin_options options, admin_handlers handlers)
    : impl_(std::make_unique<impl>(std::move(options), std::move(handlers))) {}

admin_server::~admin_server() { stop(); }

void admin_server::start() {
  std::lock_guard lock(impl_->lifecycle_mu);
  auto& s = *impl_;
  if (s.thread.joinable()) return;
  const std::string where = s.opt.address + ":" + std::to_string(s.opt.port);
  error_code ec;
  const auto addr = net::ip::make_address(s.opt.address, ec);
  if (ec) throw std::runtime_error("admin listener: bad address " + s.opt.address);
  const tcp::endpoint ep(addr, s.opt.port);
  s.acceptor.emplace(s.ioc.get_executor());
  const auto fail = [&](const char* what) {
    throw std::runtime_error("admin listener: cannot " + std::string(what) + " " + where + ": " +
                             ec.message());
  };
  s.acceptor->open(ep.protocol(), ec);
  if (ec) fail("open");
  s.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (ec) fail("configure");
  s.acceptor->bind(ep, ec);
  if (ec) fail("bind");
  s.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) fail("listen on");
  s.bound_port = s.acceptor->local_endpoint().port();
  net::co_spawn(s.ioc.get_executor(), s.accept_loop(), [](std::exception_ptr) {});
  s.thread = std::thread([&s] { s.ioc.run(); });
}

std::uint16_t admin_server::port() const noexcept { return impl_->bound_port; }

void admin_server::stop() {
  std::lock_guard lock(impl_->lifecycle_mu);
  auto& s = *impl_;
  if (!s.thread.joinable()) return;
  net::post(s.ioc, [&s] { s.begin_stop(); });
  // Every connection and the acceptor are closed, so their coroutines end and run() returns.
  s.thread.join();
}

}  // namespace bedrock_meter::proxy
