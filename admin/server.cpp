#include "admin/server.hpp"

#include <array>
#include <cstdlib>
#include <exception>
#include <list>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <openssl/crypto.h>
#include <openssl/sha.h>
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

#include "io/net.hpp"

namespace bedrock_meter::admin {

using namespace io;
namespace http = beast::http;

namespace {

using digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;
using http_request = http::request<http::string_body>;
using http_response = http::response<http::string_body>;

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

http_response to_http(const response& r, bool keep_alive) {
  http_response res(static_cast<http::status>(r.status), 11);
  res.set(http::field::content_type, r.content_type);
  res.set(http::field::cache_control, "no-store");
  for (const auto& [k, v] : r.headers) res.set(k, v);
  res.keep_alive(keep_alive);
  res.body() = r.body;
  res.prepare_payload();
  return res;
}

struct route_entry {
  std::string method;
  std::string path;
  handler h;
  access who;
};

}  // namespace

void throw_exception_from_error(const error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

response message(unsigned status, std::string_view text) {
  return json(status, boost::json::serialize(boost::json::object{{"message", text}}));
}

response json(unsigned status, std::string body) {
  response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

response to_response(const readiness& r) {
  if (r.ready()) return json(200, R"({"ready":true})");
  return json(503, boost::json::serialize(
                       boost::json::object{{"ready", false}, {"reasons", to_json(r.reasons)}}));
}

response to_response(const reload_result& r) {
  switch (r.result) {
    case reload_result::status::ok:
      return json(200,
                  boost::json::serialize(boost::json::object{{"reloaded", to_json(r.reloaded)}}));
    case reload_result::status::invalid:
      return json(400, boost::json::serialize(boost::json::object{{"errors", to_json(r.errors)}}));
    case reload_result::status::failed: break;
  }
  return json(500, boost::json::serialize(boost::json::object{{"errors", to_json(r.errors)}}));
}

boost::system::result<options, error> options_from(const config::admin_config& cfg) {
  options o;
  o.address = cfg.address;
  o.port = cfg.port;
  if (!cfg.token_env.empty()) {
    const char* token = std::getenv(cfg.token_env.c_str());
    if (token == nullptr || *token == '\0')
      return error{"admin.token_env names " + cfg.token_env +
                   ", which is unset or empty: set it or remove admin.token_env"};
    o.token = token;
  }
  return o;
}

struct server::impl {
  explicit impl(options o) : opt(std::move(o)) {
    if (!opt.token.empty()) token_digest = sha256(opt.token);
  }

  options opt;
  std::vector<route_entry> routes;
  std::optional<digest> token_digest;

  net::io_context ioc{1};
  std::optional<tcp_acceptor> acceptor;
  std::uint16_t bound_port = 0;
  std::thread thread;
  std::mutex lifecycle_mu;  // start/stop from the owner's threads

  // Admin thread only.
  std::list<tcp_stream*> connections;
  bool stopping = false;

  bool authorized(const http_request& req) const {
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

  static response unauthorized() {
    auto res = message(401, "admin endpoints need Authorization: Bearer <token>");
    res.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"bedrock-meter admin\"");
    return res;
  }

  /// The routes registered for `path`, and whether any of them is open without a token.
  std::vector<const route_entry*> routes_for(std::string_view path, bool& open) const {
    std::vector<const route_entry*> found;
    open = path == "/healthz";
    for (const auto& r : routes) {
      if (r.path != path) continue;
      found.push_back(&r);
      open = open || r.who == access::open;
    }
    return found;
  }

  response handle(const http_request& req) {
    request view;
    view.method = req.method_string();
    view.path = req.target();
    if (const auto q = view.path.find('?'); q != std::string_view::npos) {
      view.query = view.path.substr(q + 1);
      view.path = view.path.substr(0, q);
    }
    view.body = req.body();
    bool open = false;
    const auto candidates = routes_for(view.path, open);
    if (view.path == "/healthz") {
      if (view.method != "GET") return method_not_allowed("GET");
      response ok;
      ok.content_type = "text/plain; charset=utf-8";
      ok.body = "ok\n";
      return ok;
    }
    if (candidates.empty()) return message(404, "not found");
    // Authenticate before telling anything about the route, methods included.
    if (!open && !authorized(req)) return unauthorized();
    std::string allow;
    for (const auto* r : candidates) {
      if (r->method != view.method) {
        allow += allow.empty() ? r->method : ", " + r->method;
        continue;
      }
      try {
        return r->h(view);
      } catch (const std::exception& e) {
        return message(500, e.what());
      }
    }
    return method_not_allowed(allow);
  }

  static response method_not_allowed(std::string_view allow) {
    auto res = message(405, "method not allowed");
    res.headers.emplace_back("Allow", std::string(allow));
    return res;
  }

  /// Reads the next request within the idle and read timeouts. nullopt: the connection ends.
  awaitable<std::optional<http_request>> read_request(tcp_stream& stream,
                                                      beast::flat_buffer& buffer, bool first) {
    // Keep-alive idle: wait for the next request's first byte within idle_timeout, then the
    // whole request within read_timeout, so a client trickling bytes cannot hold a slot.
    if (!first && buffer.size() == 0) {
      stream.expires_after(opt.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(1024), use_ec);
      if (ec) co_return std::nullopt;
      buffer.commit(n);
    }
    http::request_parser<http::string_body> parser;
    parser.header_limit(opt.max_header_bytes);
    parser.body_limit(opt.max_body_bytes);
    stream.expires_after(opt.read_timeout);
    auto [rec, rn] = co_await http::async_read(stream, buffer, parser, use_ec);
    if (rec) {
      if (rec == http::error::header_limit || rec == http::error::body_limit) {
        auto res = to_http(message(413, "request too large"), false);
        stream.expires_after(opt.write_timeout);
        co_await http::async_write(stream, res, use_ec);
      }
      co_return std::nullopt;
    }
    co_return parser.release();
  }

  awaitable<void> session(tcp_socket socket) {
    tcp_stream stream(std::move(socket));
    connections.push_front(&stream);
    const auto self = connections.begin();
    beast::flat_buffer buffer;
    for (bool first = true; !stopping; first = false) {
      auto req = co_await read_request(stream, buffer, first);
      if (!req || stopping) break;
      auto res = to_http(handle(*req), req->keep_alive());
      if (stopping) break;  // stop() closed the stream while the handler ran
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
      net::co_spawn(ioc.get_executor(), session(std::move(socket)),
                    [](const std::exception_ptr&) {});
    }
  }

  boost::system::result<void, error> listen() {
    const std::string where = opt.address + ":" + std::to_string(opt.port);
    error_code ec;
    const auto addr = net::ip::make_address(opt.address, ec);
    if (ec) return error{"admin listener: bad address " + opt.address};
    const tcp::endpoint ep(addr, opt.port);
    acceptor.emplace(ioc.get_executor());
    const auto cannot = [&](const char* what) {
      return error{"admin listener: cannot " + std::string(what) + " " + where + ": " +
                   ec.message()};
    };
    acceptor->open(ep.protocol(), ec);
    if (ec) return cannot("open");
    acceptor->set_option(net::socket_base::reuse_address(true), ec);
    if (ec) return cannot("configure");
    acceptor->bind(ep, ec);
    if (ec) return cannot("bind");
    acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec) return cannot("listen on");
    bound_port = acceptor->local_endpoint(ec).port();
    return {};
  }

  void begin_stop() {
    stopping = true;
    error_code ignored;
    if (acceptor) acceptor->close(ignored);
    for (auto* c : connections) c->close();
  }
};

server::server(options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}

server::~server() { stop(); }

void server::route(std::string method, std::string path, handler h, access who) {
  impl_->routes.push_back({std::move(method), std::move(path), std::move(h), who});
}

boost::system::result<void, error> server::start() {
  std::lock_guard lock(impl_->lifecycle_mu);
  auto& s = *impl_;
  if (s.thread.joinable()) return {};
  if (auto listening = s.listen(); !listening) return listening;
  net::co_spawn(s.ioc.get_executor(), s.accept_loop(), [](const std::exception_ptr&) {});
  s.thread = std::thread([&s] { s.ioc.run(); });
  return {};
}

std::uint16_t server::port() const noexcept { return impl_->bound_port; }

void server::stop() {
  std::lock_guard lock(impl_->lifecycle_mu);
  auto& s = *impl_;
  if (!s.thread.joinable()) return;
  net::post(s.ioc, [&s] { s.begin_stop(); });
  // Every connection and the acceptor are closed, so their coroutines end and run() returns.
  s.thread.join();
}

}  // namespace bedrock_meter::admin
