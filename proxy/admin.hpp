#pragma once
// The admin listener: a small HTTP/1.1 server on its own thread and io_context, apart from the
// workers, so a slow scrape or a reload never sits on the request path and a saturated data
// plane still answers probes.
//
// Routes:
//   GET  /healthz   200 "ok" while the process runs. Always open (liveness probes carry no token).
//   GET  /readyz    200 when the owner's readiness check passes, else 503 {"ready":false,"reasons":[...]}.
//   GET  /metrics   Prometheus text format 0.0.4 from the owner's callback.
//   GET  /api/budgets  each budget's limit, spend, % used and forecast (JSON, docs/budgets.md).
//   POST /-/reload  the owner's reload callback: 200 {"reloaded":[...]}, 400 (the new files are
//                   invalid and were rejected) or 500 (the reload itself failed), with {"errors":[...]}.
// Unknown path: 404. Known path, wrong method: 405 with Allow. Errors are JSON {"message": ...}.
//
// Authentication: when a token is configured, every route but /healthz needs
// `Authorization: Bearer <token>`; anything else is 401 with WWW-Authenticate. The token is
// compared in constant time (SHA-256 of both sides, then CRYPTO_memcmp, so neither its content
// nor its length leaks through timing).
//
// The callbacks run on the admin thread, one request at a time: they may block (a reload reads
// files) without holding up the workers, and need no locking against each other. An exception
// escaping a callback is answered 500 with its message; it never ends the listener.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace bedrock_meter::proxy {

/// What /readyz reports. Ready when there is no reason not to be.
struct readiness {
  std::vector<std::string> reasons;  ///< e.g. "rate table not loaded", "no upstream credentials"
  bool ready() const noexcept { return reasons.empty(); }
};

/// What POST /-/reload did.
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

struct admin_handlers {
  std::function<std::string()> metrics;  ///< the exposition text (metrics::serialize)
  std::function<readiness()> ready;      ///< empty: always ready
  std::function<reload_result()> reload; ///< empty: 404 on /-/reload
  std::function<std::string()> budgets;  ///< JSON for /api/budgets; empty: 404
};

struct admin_options {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: any free port (see admin_server::port())
  std::string token;       ///< empty: no authentication
  std::uint32_t max_header_bytes = 8 * 1024;
  std::uint32_t max_body_bytes = 4 * 1024;  ///< admin requests carry no meaningful body
  std::chrono::milliseconds read_timeout{10'000};   ///< one whole request, head and body
  std::chrono::milliseconds idle_timeout{60'000};   ///< keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{30'000};  ///< one whole response
  std::size_t max_connections = 64;  ///< more are closed at once (Prometheus needs one or two)
};

/// Admin options from config, with the token read from the environment variable
/// `admin.token_env` names. Returns an error message (empty on success) when that variable is
/// unset or empty: a configured but missing token must fail startup, not open the endpoints.
struct admin_options_result {
  admin_options options;
  std::string error;
};
admin_options_result admin_options_from(const config::admin_config& cfg);

class admin_server {
 public:
  admin_server(admin_options options, admin_handlers handlers);
  ~admin_server();  ///< stop()
  admin_server(const admin_server&) = delete;
  admin_server& operator=(const admin_server&) = delete;

  /// Binds address:port and starts the admin thread. Throws std::runtime_error naming the
  /// address when it cannot bind (startup: fail fast).
  void start();
  /// The bound port (after start), useful with port 0.
  std::uint16_t port() const noexcept;
  /// Stops accepting, closes open admin connections (a response still being written is cut
  /// off; a callback already running finishes first), and joins the thread. Idempotent; any
  /// thread but the admin thread (so never from inside a callback).
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace bedrock_meter::proxy
