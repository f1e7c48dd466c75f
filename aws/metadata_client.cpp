#include "aws/metadata_client.hpp"

#include <algorithm>
#include <charconv>
#include <exception>
#include <system_error>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "aws/credentials_detail.hpp"
#include "io/net.hpp"

namespace bedrock_meter::aws::detail {
namespace {

namespace net = io::net;
namespace beast = io::beast;
namespace http = beast::http;
using io::awaitable;
using io::error_code;
using io::tcp;
using io::use_ec;

// Metadata answers are a few hundred bytes; anything much larger is not a credentials endpoint.
constexpr std::size_t max_metadata_body_bytes = std::size_t{64} * 1024;

// --- URLs ----------------------------------------------------------------------------------------

struct host_and_port {
  std::string_view host;
  std::string_view port;  // empty when not written
};

// `host`, `host:port`, `[v6]` or `[v6]:port`.
std::optional<host_and_port> split_authority(std::string_view authority) {
  host_and_port out;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      out.port = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    out.host = authority.substr(0, colon);
    if (colon != std::string_view::npos) out.port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return std::nullopt;
  return out;
}

// The port as written, else the scheme's default; nullopt when not 1..65535 or no default.
std::optional<std::uint16_t> port_of(std::string_view port, std::string_view scheme) {
  if (port.empty()) {
    if (scheme == "http") return std::uint16_t{80};
    if (scheme == "https") return std::uint16_t{443};
    return std::nullopt;
  }
  unsigned value = 0;
  const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || p != port.data() + port.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

// --- one exchange --------------------------------------------------------------------------------

// Where an exchange stopped and why; `ec` is clear when that stage succeeded.
struct exchange_error {
  error_code ec;
  std::string_view stage;  // "resolve", "connect", "write", "read" (static strings)
};

struct exchange_outcome {
  exchange_error error;
  metadata_response response;
};

// Connects to the URL's host: a literal address directly, a name through the resolver.
awaitable<exchange_error> connect_to(io::tcp_stream& stream, const parsed_url& url) {
  error_code addr_ec;
  const auto addr = net::ip::make_address(url.host, addr_ec);
  if (!addr_ec) {
    auto [ec] = co_await stream.async_connect(tcp::endpoint(addr, url.port), use_ec);
    co_return exchange_error{ec, "connect"};
  }
  // Only names the user configured reach here (e.g. `localhost`); the resolver is not covered
  // by the stream's deadline, but such names resolve locally.
  io::tcp_resolver resolver(stream.get_executor());
  auto [rec, results] = co_await resolver.async_resolve(url.host, std::to_string(url.port), use_ec);
  if (rec) co_return exchange_error{rec, "resolve"};
  auto [ec, ep] = co_await stream.async_connect(results, use_ec);
  co_return exchange_error{ec, "connect"};
}

http::request<http::empty_body> make_request(const metadata_request& x) {
  const auto verb = x.method == http_method::put ? http::verb::put : http::verb::get;
  http::request<http::empty_body> req{verb, x.target, 11};
  req.set(http::field::host, x.url.authority);
  req.set(http::field::user_agent, "bedrock-meter");
  req.set(http::field::accept, "*/*");
  for (const auto& [name, value] : x.headers) req.set(name, value);
  if (x.method == http_method::put) req.content_length(0);  // IMDS wants a length on PUT
  return req;
}

// One HTTP/1.1 request on a fresh connection. The whole exchange shares one deadline: tcp_stream
// keeps the expiry across operations until it is changed. The request is taken by value because
// the coroutine outlives the caller's expression.
awaitable<exchange_outcome> run_exchange(metadata_request x) {
  exchange_outcome out;
  io::tcp_stream stream(co_await net::this_coro::executor);
  stream.expires_after(x.timeout);
  out.error = co_await connect_to(stream, x.url);
  if (out.error.ec) co_return out;

  const auto req = make_request(x);
  if (auto [ec, n] = co_await http::async_write(stream, req, use_ec); ec) {
    out.error = {ec, "write"};
    co_return out;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_metadata_body_bytes);
  if (auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_ec); ec) {
    out.error = {ec, "read"};
    co_return out;
  }
  out.response.status = parser.get().result_int();
  out.response.body = std::move(parser.get().body());
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return out;
}

// Runs one exchange to completion on a private io_context. nullopt if the coroutine threw
// (nothing in it should: every operation reports through its error code).
std::optional<exchange_outcome> run_once(const metadata_request& x) {
  net::io_context ioc(1);
  std::optional<exchange_outcome> result;
  net::co_spawn(ioc, run_exchange(x), [&result](const std::exception_ptr& ep, exchange_outcome o) {
    if (!ep) result = std::move(o);
  });
  ioc.run();
  return result;
}

std::string describe(const exchange_error& e, const parsed_url& url) {
  return std::string(e.stage) + " " + where(url) + ": " +
         (e.ec == beast::error::timeout ? std::string("timed out") : e.ec.message());
}

}  // namespace

std::optional<parsed_url> parse_url(std::string_view u) {
  const auto sep = u.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  parsed_url out;
  out.scheme = lower(u.substr(0, sep));
  const std::string_view rest = u.substr(sep + 3);
  const auto path_start = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, path_start);
  std::string_view path =
      path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
  if (const auto hash = path.find('#'); hash != std::string_view::npos) path = path.substr(0, hash);
  if (path.empty()) {
    out.path = "/";
  } else {
    out.path = path.front() == '?' ? "/" + std::string(path) : std::string(path);
  }
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  out.authority = std::string(authority);

  const auto split = split_authority(authority);
  if (!split) return std::nullopt;
  out.host = std::string(split->host);
  const auto port = port_of(split->port, out.scheme);
  if (!port) return std::nullopt;
  out.port = *port;
  return out;
}

std::string where(const parsed_url& u) { return u.scheme + "://" + u.authority; }

credential_result<metadata_response> fetch_metadata(const metadata_request& req, unsigned attempts,
                                                    std::string_view what) {
  std::string last_error;
  for (unsigned i = 0; i < std::max(attempts, 1u); ++i) {
    auto outcome = run_once(req);
    if (!outcome) {
      last_error = "internal error";
      continue;
    }
    if (!outcome->error.ec) return std::move(outcome->response);
    last_error = describe(outcome->error, req.url);
  }
  return credential_error{credential_errc::http, std::string(what) + ": " + last_error};
}

}  // namespace bedrock_meter::aws::detail
