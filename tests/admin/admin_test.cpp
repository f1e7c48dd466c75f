#include "admin/server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>

#include "io/net.hpp"

namespace bedrock_meter::admin {
namespace {

using namespace io;

struct reply {
  int status = 0;
  std::string headers;  // raw header block, lower-cased names as sent
  std::string body;
};

/// A blocking HTTP/1.1 client on one connection, so tests can also exercise keep-alive.
class client {
 public:
  explicit client(std::uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }

  reply send(const std::string& method, const std::string& target,
             const std::string& extra_headers = "", bool close = false) {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n" + extra_headers;
    if (method == "POST") req += "Content-Length: 0\r\n";
    if (close) req += "Connection: close\r\n";
    req += "\r\n";
    net::write(socket_, net::buffer(req));
    return read_reply();
  }

  /// Reads one response with a Content-Length body.
  reply read_reply() {
    reply r;
    const auto n = net::read_until(socket_, buf_, "\r\n\r\n");
    std::string head(net::buffers_begin(buf_.data()),
                     net::buffers_begin(buf_.data()) + static_cast<std::ptrdiff_t>(n));
    buf_.consume(n);
    r.status = std::stoi(head.substr(9, 3));
    r.headers = head;
    std::size_t length = 0;
    for (std::size_t pos = 0; pos < head.size();) {
      const auto end = head.find("\r\n", pos);
      std::string line = head.substr(pos, end - pos);
      for (auto& c : line) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (line.rfind("content-length:", 0) == 0) length = std::stoul(line.substr(15));
      pos = end + 2;
    }
    if (buf_.size() < length) net::read(socket_, buf_, net::transfer_exactly(length - buf_.size()));
    r.body.assign(net::buffers_begin(buf_.data()),
                  net::buffers_begin(buf_.data()) + static_cast<std::ptrdiff_t>(length));
    buf_.consume(length);
    return r;
  }

  /// True when the server closed the connection (read hits EOF).
  bool closed_by_peer() {
    error_code ec;
    char c;
    socket_.read_some(net::buffer(&c, 1), ec);
    return ec == net::error::eof || ec == net::error::connection_reset;
  }

  net::ip::tcp::socket& socket() { return socket_; }

 private:
  net::io_context ioc_;
  net::ip::tcp::socket socket_;
  net::streambuf buf_;
};

reply get(std::uint16_t port, const std::string& target, const std::string& headers = "") {
  return client(port).send("GET", target, headers, true);
}
reply post(std::uint16_t port, const std::string& target, const std::string& headers = "") {
  return client(port).send("POST", target, headers, true);
}

/// A server with the routes the application registers, answered from test state.
struct fixture {
  std::atomic<bool> ready{false};
  std::atomic<int> reloads{0};
  std::atomic<int> scrapes{0};
  reload_result next_reload;

  void add_routes(server& s) {
    s.route("GET", "/metrics", [this](const request&) {
      ++scrapes;
      response r;
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = "# TYPE bedrock_build_info gauge\nbedrock_build_info{version=\"test\"} 1\n";
      return r;
    });
    s.route("GET", "/readyz", [this](const request&) {
      readiness r;
      if (!ready) r.reasons = {"rate table not loaded", "no upstream credentials"};
      return to_response(r);
    });
    s.route("POST", "/-/reload", [this](const request&) {
      ++reloads;
      return to_response(next_reload);
    });
  }
};

/// A started server with the fixture's routes.
std::unique_ptr<server> started(fixture& f, options o = {}) {
  auto s = std::make_unique<server>(std::move(o));
  f.add_routes(*s);
  EXPECT_TRUE(s->start());
  return s;
}

TEST(AdminRoutes, ServesEveryRouteOnAnEphemeralPort) {
  fixture f;
  auto s = started(f);
  const auto port = s->port();
  ASSERT_NE(port, 0);

  auto r = get(port, "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");

  r = get(port, "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.headers.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(r.body.find("# TYPE bedrock_build_info gauge"), std::string::npos);
  EXPECT_EQ(f.scrapes, 1);

  r = get(port, "/readyz");
  EXPECT_EQ(r.status, 503);
  const auto why = boost::json::parse(r.body).as_object();
  EXPECT_EQ(why.at("ready").as_bool(), false);
  ASSERT_EQ(why.at("reasons").as_array().size(), 2u);
  EXPECT_EQ(why.at("reasons").as_array()[0].as_string(), "rate table not loaded");
  f.ready = true;
  r = get(port, "/readyz");
  EXPECT_EQ(r.status, 200);

  r = get(port, "/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(boost::json::parse(r.body).as_object().at("message").as_string(), "not found");
  r = post(port, "/metrics");
  EXPECT_EQ(r.status, 405);
  EXPECT_NE(r.headers.find("Allow: GET"), std::string::npos);
  EXPECT_EQ(f.scrapes, 1);

  // Reload only on POST.
  r = get(port, "/-/reload");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(f.reloads, 0);
  f.next_reload.reloaded = {"config", "rate_table"};
  r = post(port, "/-/reload");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(f.reloads, 1);
  const auto done = boost::json::parse(r.body).as_object();
  EXPECT_EQ(done.at("reloaded").as_array().size(), 2u);
  s->stop();
}

TEST(AdminRoutes, ReloadFailuresAreJsonErrors) {
  fixture f;
  auto s = started(f);
  f.next_reload.result = reload_result::status::invalid;
  f.next_reload.errors = {"rates.yaml:12: unknown field 'prise'"};
  auto r = post(s->port(), "/-/reload");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(boost::json::parse(r.body).as_object().at("errors").as_array()[0].as_string(),
            "rates.yaml:12: unknown field 'prise'");
  f.next_reload.result = reload_result::status::failed;
  r = post(s->port(), "/-/reload");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(f.reloads, 2);
}

TEST(AdminRoutes, AHandlerThatThrowsIsA500AndTheListenerLivesOn) {
  server s({});
  s.route("GET", "/metrics", [](const request&) -> response { throw std::runtime_error("boom"); });
  ASSERT_TRUE(s.start());
  auto r = get(s.port(), "/metrics");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(boost::json::parse(r.body).as_object().at("message").as_string(), "boom");
  EXPECT_EQ(get(s.port(), "/healthz").status, 200);
  // No reload handler: the route does not exist.
  EXPECT_EQ(post(s.port(), "/-/reload").status, 404);
}

TEST(AdminAuth, TokenRequiredEverywhereButHealthz) {
  fixture f;
  f.ready = true;
  options o;
  o.token = "s3cret-token";
  auto s = started(f, o);
  const auto port = s->port();

  EXPECT_EQ(get(port, "/healthz").status, 200);
  auto r = get(port, "/metrics");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.headers.find("WWW-Authenticate: Bearer"), std::string::npos);
  EXPECT_FALSE(boost::json::parse(r.body).as_object().at("message").as_string().empty());
  EXPECT_EQ(get(port, "/readyz").status, 401);
  EXPECT_EQ(post(port, "/-/reload").status, 401);
  EXPECT_EQ(get(port, "/metrics", "Authorization: Bearer s3cret-toke\r\n").status, 401);
  EXPECT_EQ(get(port, "/metrics", "Authorization: Bearer s3cret-token-and-more\r\n").status, 401);
  EXPECT_EQ(get(port, "/metrics", "Authorization: Basic s3cret-token\r\n").status, 401);
  EXPECT_EQ(f.scrapes, 0);
  EXPECT_EQ(f.reloads, 0);

  EXPECT_EQ(get(port, "/metrics", "Authorization: Bearer s3cret-token\r\n").status, 200);
  EXPECT_EQ(get(port, "/readyz", "authorization: bearer s3cret-token\r\n").status, 200);
  EXPECT_EQ(post(port, "/-/reload", "Authorization: Bearer s3cret-token\r\n").status, 200);
  EXPECT_EQ(f.scrapes, 1);
  EXPECT_EQ(f.reloads, 1);
}

TEST(AdminConnections, KeepAliveServesSeveralRequestsOnOneConnection) {
  fixture f;
  auto s = started(f);
  client c(s->port());
  EXPECT_EQ(c.send("GET", "/healthz").status, 200);
  EXPECT_EQ(c.send("GET", "/metrics").status, 200);
  EXPECT_EQ(c.send("GET", "/healthz", "", true).status, 200);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(AdminConnections, OversizedHeadersAreRefusedAndClosed) {
  fixture f;
  options o;
  o.max_header_bytes = 1024;
  auto s = started(f, o);
  client c(s->port());
  const auto r = c.send("GET", "/healthz", "X-Padding: " + std::string(4096, 'a') + "\r\n");
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(get(s->port(), "/healthz").status, 200);
}

TEST(AdminConnections, StopClosesIdleConnectionsAndIsIdempotent) {
  fixture f;
  auto s = started(f);
  client c(s->port());
  EXPECT_EQ(c.send("GET", "/healthz").status, 200);  // keep-alive: the session waits idle
  s->stop();
  EXPECT_TRUE(c.closed_by_peer());
  s->stop();
}

TEST(AdminOptions, TokenComesFromTheNamedEnvironmentVariable) {
  config::admin_config cfg;
  cfg.address = "127.0.0.1";
  cfg.port = 0;
  auto r = options_from(cfg);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->token.empty());

  cfg.token_env = "BM_ADMIN_TEST_TOKEN_UNSET";
  ::unsetenv("BM_ADMIN_TEST_TOKEN_UNSET");
  r = options_from(cfg);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("BM_ADMIN_TEST_TOKEN_UNSET"), std::string::npos);

  ::setenv("BM_ADMIN_TEST_TOKEN_SET", "abc", 1);
  cfg.token_env = "BM_ADMIN_TEST_TOKEN_SET";
  r = options_from(cfg);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->token, "abc");
}

TEST(AdminOptions, BindFailureIsAnErrorNamingTheAddress) {
  fixture f;
  auto first = started(f);
  options o;
  o.port = first->port();
  server second(o);
  f.add_routes(second);
  const auto r = second.start();
  ASSERT_FALSE(r) << "bound a port already in use";
  EXPECT_NE(r.error().message.find("127.0.0.1:" + std::to_string(first->port())),
            std::string::npos);
}

}  // namespace
}  // namespace bedrock_meter::admin
