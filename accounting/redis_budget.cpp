// redis_budget_client: the connection, its reconnect policy and the calls. The Lua the calls run
// is in redis_budget_scripts.cpp.
#include "accounting/redis_budget.hpp"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <optional>
#include <random>
#include <stdexcept>
#include <utility>

#include "accounting/redis_budget_scripts.hpp"

namespace bedrock_meter::accounting {

namespace {

using error_kind = redis_error::kind;

struct reply_deleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

// A command's arguments as hiredis takes them. Holds views: the strings must outlive the call.
struct command_args {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;

  command_args() = default;
  command_args(std::initializer_list<std::string_view> args) {
    for (auto a : args) push(a);
  }
  void push(std::string_view a) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  void replace(std::size_t i, std::string_view a) {
    argv[i] = a.data();
    lens[i] = a.size();
  }
};

// Sends `cmd` and waits for the reply; null on an I/O failure or timeout (c->errstr says which).
reply_ptr send(redisContext* c, command_args& cmd) {
  return reply_ptr(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(cmd.argv.size()), cmd.argv.data(), cmd.lens.data())));
}

timeval to_timeval(std::chrono::milliseconds ms) {
  if (ms.count() < 1) ms = std::chrono::milliseconds{1};  // hiredis treats 0 as "block forever"
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms.count() / 1000);
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms.count() % 1000) * 1000);
  return tv;
}

std::optional<std::int64_t> parse_int(std::string_view s) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string reply_text(const redisReply* r) {
  if (r->str == nullptr) return {};
  return std::string(r->str, r->len);
}

// 128 random bits as hex: unique across proxies without a shared counter, and unlike a counter
// cannot repeat after Redis loses its data (a late settle would release someone else's hold).
std::string new_reservation_id() {
  static thread_local std::random_device rd;  // clients are per thread; opened once per thread
  std::array<char, 33> out{};
  for (std::size_t i = 0; i < 4; ++i) {
    std::snprintf(out.data() + i * 8, 9, "%08x", static_cast<unsigned>(rd()));
  }
  return std::string(out.data(), 32);
}

std::optional<redis_budget_state> parse_state(const std::vector<std::string>& v, std::size_t at) {
  if (v.size() < at + 3) return std::nullopt;
  const auto spent = parse_int(v[at]);
  const auto reserved = parse_int(v[at + 1]);
  if (!spent || !reserved) return std::nullopt;
  return redis_budget_state{*spent, *reserved, v[at + 2] == "1"};
}

std::int64_t ttl_ms(std::chrono::milliseconds t) { return t.count() < 1 ? 1 : t.count(); }

}  // namespace

void throw_exception_from_error(const redis_error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

void redis_budget_client::context_deleter::operator()(redisContext* c) const noexcept {
  redisFree(c);
}

redis_budget_client::redis_budget_client(redis_endpoint ep)
    : ep_(std::move(ep)),
      where_("redis " + (ep_.unix_socket.empty() ? ep_.host + ":" + std::to_string(ep_.port)
                                                 : "unix:" + ep_.unix_socket)) {}
redis_budget_client::~redis_budget_client() = default;
redis_budget_client::redis_budget_client(redis_budget_client&&) noexcept = default;
redis_budget_client& redis_budget_client::operator=(redis_budget_client&&) noexcept = default;

bool redis_budget_client::connected() const noexcept { return ctx_ != nullptr; }

std::string redis_budget_client::state_key(std::string_view budget,
                                           std::int64_t period_start) const {
  std::string key = ep_.key_prefix;
  key += ":budget:";
  key += budget;
  key += ':';
  key += std::to_string(period_start);
  return key;
}

redis_error redis_budget_client::fail(redis_error::kind what, std::string message) {
  ++errors_;
  ctx_.reset();
  return redis_error{what, std::move(message)};
}

// --- connection ---------------------------------------------------------------------------------

redis_result<void> redis_budget_client::ensure_connected() {
  if (ctx_) return {};
  const auto now = std::chrono::steady_clock::now();
  // A dead Redis costs one timeout per interval per client, not one per request.
  if (attempted_ && now - last_attempt_ < ep_.reconnect_interval) {
    return redis_error{error_kind::not_connected,
                       where_ + ": not connected (connection attempts are at least " +
                           std::to_string(ep_.reconnect_interval.count()) + " ms apart)"};
  }
  attempted_ = true;
  last_attempt_ = now;
  ++connect_attempts_;

  if (auto opened = open_context(); !opened) return opened;
  if (!ep_.password.empty()) {
    if (auto authed = setup_command({"AUTH", ep_.password}, "AUTH"); !authed) return authed;
  }
  if (ep_.db != 0) {
    const std::string db = std::to_string(ep_.db);
    if (auto selected = setup_command({"SELECT", db}, "SELECT"); !selected) return selected;
  }
  return {};
}

redis_result<void> redis_budget_client::open_context() {
  const timeval tv = to_timeval(ep_.timeout);
  redisContext* c = ep_.unix_socket.empty()
                        ? redisConnectWithTimeout(ep_.host.c_str(), ep_.port, tv)
                        : redisConnectUnixWithTimeout(ep_.unix_socket.c_str(), tv);
  if (c == nullptr) return fail(error_kind::connect, where_ + ": cannot allocate a context");
  ctx_.reset(c);
  if (c->err != 0) return fail(error_kind::connect, where_ + ": connect: " + c->errstr);
  if (redisSetTimeout(c, tv) != REDIS_OK) {
    return fail(error_kind::connect, where_ + ": cannot set the timeout");
  }
  return {};
}

redis_result<void> redis_budget_client::setup_command(std::initializer_list<std::string_view> args,
                                                      const char* name) {
  command_args cmd(args);
  const reply_ptr r = send(ctx_.get(), cmd);
  if (!r) return fail(error_kind::connect, where_ + ": " + name + ": " + ctx_->errstr);
  if (r->type == REDIS_REPLY_ERROR) {
    return fail(error_kind::connect, where_ + ": " + name + ": " + reply_text(r.get()));
  }
  return {};
}

// --- scripts ------------------------------------------------------------------------------------

redis_result<std::vector<std::string>> redis_budget_client::run(
    budget_script script, std::string_view budget, std::int64_t period_start,
    std::initializer_list<std::string_view> args) {
  if (auto connected = ensure_connected(); !connected) return connected.error();

  const std::string state = state_key(budget, period_start);
  const std::string reservations = state + ":reservations";
  const std::string amounts = state + ":amounts";
  command_args cmd{"EVALSHA", script_sha1(script), "3", state, reservations, amounts};
  for (auto a : args) cmd.push(a);

  reply_ptr r = send(ctx_.get(), cmd);
  // EVALSHA saves sending the script every time; a Redis that has not seen it (fresh, restarted,
  // SCRIPT FLUSH) answers NOSCRIPT and gets the full text once, which also caches it there.
  if (r && r->type == REDIS_REPLY_ERROR && reply_text(r.get()).starts_with("NOSCRIPT")) {
    cmd.replace(0, "EVAL");
    cmd.replace(1, script_text(script));
    r = send(ctx_.get(), cmd);
  }
  if (!r) return fail(error_kind::io, where_ + ": " + ctx_->errstr);
  if (r->type == REDIS_REPLY_ERROR) {
    // Dropping the connection also recovers from NOAUTH, READONLY (a failed-over replica) and
    // LOADING once the cause is gone.
    return fail(error_kind::error_reply, where_ + ": " + reply_text(r.get()));
  }
  return read_strings(r.get());
}

redis_result<std::vector<std::string>> redis_budget_client::read_strings(const redisReply* r) {
  if (r->type != REDIS_REPLY_ARRAY) {
    return fail(error_kind::bad_reply,
                where_ + ": unexpected reply type " + std::to_string(r->type));
  }
  std::vector<std::string> out;
  out.reserve(r->elements);
  for (std::size_t i = 0; i < r->elements; ++i) {
    const redisReply* e = r->element[i];
    if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) {
      out.push_back(reply_text(e));
    } else if (e->type == REDIS_REPLY_INTEGER) {
      out.push_back(std::to_string(e->integer));
    } else {
      return fail(error_kind::bad_reply,
                  where_ + ": unexpected element type " + std::to_string(e->type));
    }
  }
  return out;
}

// --- calls --------------------------------------------------------------------------------------

redis_result<redis_reserve_reply> redis_budget_client::reserve(
    std::string_view budget, std::int64_t period_start, std::int64_t limit, std::int64_t worst_case,
    std::chrono::milliseconds reservation_ttl, std::chrono::milliseconds key_ttl) {
  if (worst_case < 0 || limit < 0) return redis_reserve_reply{};
  std::string id = new_reservation_id();
  const std::string limit_s = std::to_string(limit);
  const std::string worst_s = std::to_string(worst_case);
  const std::string resv_ttl_s = std::to_string(std::max<std::int64_t>(reservation_ttl.count(), 0));
  const std::string key_ttl_s = std::to_string(ttl_ms(key_ttl));
  const auto v = run(budget_script::reserve, budget, period_start,
                     {limit_s, worst_s, id, resv_ttl_s, key_ttl_s});
  if (!v) return v.error();
  const auto st = parse_state(*v, 1);
  if (v->size() != 4 || !st || ((*v)[0] != "ok" && (*v)[0] != "blocked")) {
    return fail(error_kind::bad_reply, where_ + ": malformed reserve reply");
  }
  redis_reserve_reply out;
  out.state = *st;
  out.admitted = (*v)[0] == "ok";
  if (out.admitted) out.reservation_id = std::move(id);
  return out;
}

redis_result<redis_settle_reply> redis_budget_client::settle(std::string_view budget,
                                                             std::int64_t period_start,
                                                             std::string_view reservation_id,
                                                             std::int64_t actual,
                                                             std::chrono::milliseconds key_ttl) {
  const std::string actual_s = std::to_string(std::max<std::int64_t>(actual, 0));
  const std::string key_ttl_s = std::to_string(ttl_ms(key_ttl));
  const auto v =
      run(budget_script::settle, budget, period_start, {reservation_id, actual_s, key_ttl_s});
  if (!v) return v.error();
  const auto before = parse_state(*v, 1);
  const auto after = parse_state(*v, 4);
  if (v->size() != 7 || !before || !after) {
    return fail(error_kind::bad_reply, where_ + ": malformed settle reply");
  }
  return redis_settle_reply{*before, *after, (*v)[0] == "1"};
}

redis_result<redis_settle_reply> redis_budget_client::charge(std::string_view budget,
                                                             std::int64_t period_start,
                                                             std::int64_t actual,
                                                             std::chrono::milliseconds key_ttl) {
  // The settle script with no reservation id: one script, one definition of booking.
  return settle(budget, period_start, {}, actual, key_ttl);
}

redis_result<redis_budget_state> redis_budget_client::read(std::string_view budget,
                                                           std::int64_t period_start) {
  const auto v = run(budget_script::read, budget, period_start, {});
  if (!v) return v.error();
  const auto st = parse_state(*v, 0);
  if (v->size() != 3 || !st) return fail(error_kind::bad_reply, where_ + ": malformed read reply");
  return *st;
}

redis_result<redis_seed_outcome> redis_budget_client::seed(std::string_view budget,
                                                           std::int64_t period_start,
                                                           std::int64_t spent,
                                                           std::chrono::milliseconds key_ttl) {
  const std::string spent_s = std::to_string(std::max<std::int64_t>(spent, 0));
  const std::string key_ttl_s = std::to_string(ttl_ms(key_ttl));
  const auto v = run(budget_script::seed, budget, period_start, {spent_s, key_ttl_s});
  if (!v) return v.error();
  if (v->size() == 1 && (*v)[0] == "ok") return redis_seed_outcome::applied;
  if (v->size() == 1 && (*v)[0] == "exists") return redis_seed_outcome::already_seeded;
  return fail(error_kind::bad_reply, where_ + ": malformed seed reply");
}

}  // namespace bedrock_meter::accounting
