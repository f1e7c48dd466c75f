#pragma once
// Shared budget accumulators in Redis: several replicas, one budget.
//
// Each call is one round trip running a Lua script, so admission (spent + reserved + worst case
// <= limit) is atomic across every proxy sharing the Redis. Amounts are int64 pico-USD kept as
// Redis integers; the scripts compare them exactly in two base-1e9 limbs because Lua numbers are
// doubles and lose precision above 2^53 pico-USD (about 9007 USD). Reservations live in a ZSET
// scored by their expiry on Redis's own clock (TIME), so a proxy that dies mid-request leaks
// nothing for longer than the reservation TTL, and proxies' clocks do not matter.
//
// Key layout (see docs/budgets-redis.md):
//   <prefix>:budget:<budget>:<period_start>               HASH spent, reserved, seeded
//   <prefix>:budget:<budget>:<period_start>:reservations  ZSET id -> expiry (Redis ms)
//   <prefix>:budget:<budget>:<period_start>:amounts       HASH id -> reserved pico-USD
//
// Failure: every call returns a `redis_result`; any connect, I/O, timeout or unexpected error reply
// is a `redis_error`, counts in errors(), and drops the connection. The next call reconnects, but
// connection attempts are at least `reconnect_interval` apart, so a dead Redis costs each worker
// one timeout per interval, not one per request. The password is never logged or put in a
// message.
//
// Synchronous (hiredis) with a short timeout; no Asio here so the library stays cheap to build.
// hiredis writes with write(2): the process must ignore SIGPIPE (main does), or a Redis that
// closes the connection kills it.
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

struct redisContext;  // hiredis; kept out of this header
struct redisReply;

namespace bedrock_meter::accounting {

enum class budget_script : std::uint8_t;  // accounting/redis_budget_scripts.hpp

struct redis_endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string unix_socket;                // wins over host/port when set
  std::string password;                   // AUTH when set; never logged
  std::uint32_t db = 0;                   // SELECT when non-zero
  std::chrono::milliseconds timeout{50};  // connect, and each command's send + receive
  std::string key_prefix = "bedrock-meter";
  // Minimum time between two connection attempts after a failure.
  std::chrono::milliseconds reconnect_interval{1000};
};

/// Why a call has no answer. Whatever the kind, the caller applies its fallback.
struct redis_error {
  enum class kind : std::uint8_t {
    not_connected,  ///< no connection, and the last attempt is under reconnect_interval ago
    connect,        ///< connecting, AUTH or SELECT failed
    io,             ///< sending or receiving failed or timed out
    error_reply,    ///< Redis answered an error (NOAUTH, WRONGTYPE, READONLY, OOM, ...)
    bad_reply,      ///< an answer of an unexpected shape
  };
  kind what = kind::io;
  std::string message;  ///< one line naming the endpoint; never the password
};

/// For `result::value()` on an error (boost::system::result finds it by ADL): throws
/// std::runtime_error with the message.
[[noreturn]] void throw_exception_from_error(const redis_error& e,
                                             const boost::source_location& loc);

/// A value, or the Redis error that prevented it.
template <typename T>
using redis_result = boost::system::result<T, redis_error>;

/// A budget period's shared state, pico-USD.
struct redis_budget_state {
  std::int64_t spent = 0;
  std::int64_t reserved = 0;
  // Whether some proxy has seeded this period from its ledger. False on a fresh Redis, or one that
  // lost its data (restart without persistence): call seed() so spend before it is not forgotten.
  bool seeded = false;
};

struct redis_reserve_reply {
  bool admitted = false;       // false: spent + reserved + worst_case would pass the limit
  std::string reservation_id;  // set when admitted; pass to settle()
  redis_budget_state state;    // after the call
};

struct redis_settle_reply {
  redis_budget_state before;
  redis_budget_state after;
  // settle: true when this call released the reservation; false when it was already settled or
  // had expired (then only `actual` was booked). Always false for charge().
  bool released = false;
};

enum class redis_seed_outcome : std::uint8_t {
  applied,         // this call's spend was added
  already_seeded,  // some proxy seeded the period before; nothing changed
};

/// One client per worker thread: not thread-safe. Movable, not copyable.
class redis_budget_client {
 public:
  explicit redis_budget_client(redis_endpoint ep);
  ~redis_budget_client();
  redis_budget_client(redis_budget_client&&) noexcept;
  redis_budget_client& operator=(redis_budget_client&&) noexcept;
  redis_budget_client(const redis_budget_client&) = delete;
  redis_budget_client& operator=(const redis_budget_client&) = delete;

  /// Admits iff spent + reserved + worst_case <= limit (exact), holding `worst_case` as a
  /// reservation that expires after `reservation_ttl` unless settled. Expired reservations of this
  /// budget period are reclaimed first. `key_ttl` (period length plus a margin) is set on every
  /// write. A negative worst_case or limit is refused (not admitted) without asking Redis.
  redis_result<redis_reserve_reply> reserve(std::string_view budget, std::int64_t period_start,
                                            std::int64_t limit, std::int64_t worst_case,
                                            std::chrono::milliseconds reservation_ttl,
                                            std::chrono::milliseconds key_ttl);

  /// Releases the reservation if still held (idempotent: a second settle of the same id releases
  /// nothing) and books `actual` (negative is booked as 0). `before`/`after` give spent on either
  /// side for threshold crossing.
  redis_result<redis_settle_reply> settle(std::string_view budget, std::int64_t period_start,
                                          std::string_view reservation_id, std::int64_t actual,
                                          std::chrono::milliseconds key_ttl);

  /// Books `actual` without a reservation (alert budgets, fail-open admission).
  redis_result<redis_settle_reply> charge(std::string_view budget, std::int64_t period_start,
                                          std::int64_t actual, std::chrono::milliseconds key_ttl);

  /// Current state (after reclaiming expired reservations); zeros when the period has no key.
  redis_result<redis_budget_state> read(std::string_view budget, std::int64_t period_start);

  /// Adds a proxy's ledger spend once per budget period: applied only when no proxy has seeded
  /// this period yet, else nothing changes. Spend booked by other calls before the seed is kept
  /// (added to, never overwritten).
  redis_result<redis_seed_outcome> seed(std::string_view budget, std::int64_t period_start,
                                        std::int64_t spent, std::chrono::milliseconds key_ttl);

  bool connected() const noexcept;
  /// Transport/protocol failures so far (connect, I/O, timeout, error replies); calls answered
  /// `not_connected` while waiting to reconnect are not counted again.
  std::uint64_t errors() const noexcept { return errors_; }
  /// Connection attempts so far (successful or not); shows the reconnect rate limit at work.
  std::uint64_t connect_attempts() const noexcept { return connect_attempts_; }

  /// "<prefix>:budget:<budget>:<period_start>", the state hash's key.
  std::string state_key(std::string_view budget, std::int64_t period_start) const;

 private:
  struct context_deleter {
    void operator()(redisContext* c) const noexcept;
  };
  redis_result<void> ensure_connected();
  redis_result<void> open_context();
  /// One command with a status reply during connection setup (AUTH, SELECT); `name` goes into
  /// the message, the arguments never do (AUTH's is the password).
  redis_result<void> setup_command(std::initializer_list<std::string_view> args, const char* name);
  /// Runs `script` with the budget period's keys and `args`; its array of strings.
  redis_result<std::vector<std::string>> run(budget_script script, std::string_view budget,
                                             std::int64_t period_start,
                                             std::initializer_list<std::string_view> args);
  /// The reply's array of strings (integers in decimal).
  redis_result<std::vector<std::string>> read_strings(const redisReply* r);
  /// Counts the failure, drops the connection (the next call reconnects) and returns the error.
  redis_error fail(redis_error::kind what, std::string message);

  redis_endpoint ep_;
  std::string where_;  // "redis <host:port|unix:path>", for error texts
  std::unique_ptr<redisContext, context_deleter> ctx_;
  std::chrono::steady_clock::time_point last_attempt_{};
  bool attempted_ = false;
  std::uint64_t errors_ = 0;
  std::uint64_t connect_attempts_ = 0;
};

}  // namespace bedrock_meter::accounting
