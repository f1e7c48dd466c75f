#pragma once
/// The admin listener: a small HTTP/1.1 server on its own thread and io_context, apart from the
/// workers, so a slow scrape or a reload never sits on the request path and a saturated data plane
/// still answers probes.
///
/// It is a router and nothing more: the application registers a handler per method and path
/// (app/serve.cpp registers /metrics, /readyz, /-/reload, /api/budgets); only `GET /healthz` is
/// built in. An unknown path is 404; a known path with another method is 405 with `Allow`.
/// Errors are JSON `{"message": ...}`.
///
/// Authentication: when a token is configured, every route but /healthz and the routes
/// registered as `access::open` needs `Authorization: Bearer <token>`; anything else is 401 with
/// WWW-Authenticate, before the route's existence or methods are revealed. The token is compared
/// in constant time (SHA-256 of both sides, then CRYPTO_memcmp, so neither its content nor its
/// length leaks through timing).
///
/// Handlers run on the admin thread, one request at a time: they may block (a reload reads
/// files) without holding up the workers, and need no locking against each other. An exception
/// escaping a handler is answered 500 with its message; it never ends the listener.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/system/result.hpp>

#include "config/config.hpp"

namespace bedrock_meter::admin {

/// What a handler sees of a request. Views into the request, valid during the call.
struct request {
  std::string_view method;  ///< "GET", "POST"...
  std::string_view path;    ///< without the query
  std::string_view query;   ///< after '?', undecoded; empty when none
  std::string_view body;
};

struct response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra headers
};

using handler = std::function<response(const request&)>;

/// Who may call a route when a token is configured.
enum class access : std::uint8_t {
  token,  ///< needs the bearer token (the default)
  open,   ///< liveness-style probes that must work without a token
};

/// `{"message": text}` with `status`: the shape of every admin error.
response message(unsigned status, std::string_view text);
/// A JSON document (already serialized) with `status`.
response json(unsigned status, std::string body);

/// What /readyz reports. Ready when there is no reason not to be.
struct readiness {
  std::vector<std::string> reasons;  ///< e.g. "rate table not loaded", "no upstream credentials"
  bool ready() const noexcept { return reasons.empty(); }
};
/// 200 `{"ready":true}`, or 503 `{"ready":false,"reasons":[...]}`.
response to_response(const readiness& r);

/// What a reload did.
struct reload_result {
  enum class status : std::uint8_t {
    ok,       ///< 200: `reloaded` names what changed (e.g. "config", "rate_table")
    invalid,  ///< 400: the files on disk are invalid; the old ones stay in use
    failed,   ///< 500: the reload could not be carried out
  };
  status result = status::ok;
  std::vector<std::string> reloaded;
  std::vector<std::string> errors;
};
/// 200 `{"reloaded":[...]}`, 400 or 500 `{"errors":[...]}`.
response to_response(const reload_result& r);

struct options {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: any free port (see server::port())
  std::string token;       ///< empty: no authentication
  std::uint32_t max_header_bytes = 8 * 1024;
  std::uint32_t max_body_bytes = 4 * 1024;          ///< admin requests carry no meaningful body
  std::chrono::milliseconds read_timeout{10'000};   ///< one whole request, head and body
  std::chrono::milliseconds idle_timeout{60'000};   ///< keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{30'000};  ///< one whole response
  std::size_t max_connections = 64;  ///< more are closed at once (Prometheus needs one or two)
};

/// Why the admin listener could not start, or its options could not be made.
struct error {
  std::string message;  ///< one line: the setting or address and what to do
};
[[noreturn]] void throw_exception_from_error(const error& e, const boost::source_location& loc);

/// Options from config, with the token read from the environment variable `admin.token_env`
/// names. An error when that variable is unset or empty: a configured but missing token must
/// fail startup, not open the endpoints.
boost::system::result<options, error> options_from(const config::admin_config& cfg);

class server {
 public:
  explicit server(options opts);
  ~server();  ///< stop()
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Registers `h` for `method` and `path` (exact match). Before start() only.
  void route(std::string method, std::string path, handler h, access who = access::token);

  /// Binds address:port and starts the admin thread. The error names the address when it cannot
  /// bind (startup: fail fast).
  [[nodiscard]] boost::system::result<void, error> start();
  /// The bound port (after start), useful with port 0.
  std::uint16_t port() const noexcept;
  /// Stops accepting, closes open admin connections (a response still being written is cut
  /// off; a handler already running finishes first), and joins the thread. Idempotent; any
  /// thread but the admin thread (so never from inside a handler).
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace bedrock_meter::admin
