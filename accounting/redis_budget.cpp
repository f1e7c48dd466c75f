#include "accounting/redis_budget.hpp"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <random>
#include <utility>

namespace bedrock_meter::accounting {

namespace {

// Shared by every script. Lua numbers are doubles (exact only below 2^53), so amounts stay
// decimal strings end to end: Redis stores them as integers and changes them with HINCRBY (exact
// int64), and comparisons split each string into base-1e9 limbs, each far below 2^53.
// HINCRBY's reply is converted to a Lua number, so results are re-read with HMGET, as strings.
constexpr std::string_view lua_prelude = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local B = 1000000000
local MAX = '9223372036854775807'
local function limbs(s)
  local neg = string.sub(s, 1, 1) == '-'
  if neg then s = string.sub(s, 2) end
  local n = string.len(s)
  local hi, lo = 0, tonumber(s)
  if n > 9 then
    hi = tonumber(string.sub(s, 1, n - 9))
    lo = tonumber(string.sub(s, n - 8))
  end
  if neg then return -hi, -lo end
  return hi, lo
end
local function total(...)
  local hi, lo = 0, 0
  for i = 1, select('#', ...) do
    local h, l = limbs(select(i, ...))
    hi = hi + h
    lo = lo + l
  end
  local carry = math.floor(lo / B)
  return hi + carry, lo - carry * B
end
local function fits(a, b, c, limit)
  local h, l = total(a, b, c)
  local lh, ll = total(limit)
  return h < lh or (h == lh and l <= ll)
end
local function negate(s)
  if s == '0' then return '0' end
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function state()
  local s = redis.call('HMGET', KEYS[1], 'spent', 'reserved', 'seeded')
  return s[1] or '0', s[2] or '0', s[3] and '1' or '0'
end
local function add_spent(amount)
  local cur = redis.call('HGET', KEYS[1], 'spent') or '0'
  if fits(cur, amount, '0', MAX) then
    redis.call('HINCRBY', KEYS[1], 'spent', amount)
  else
    redis.call('HSET', KEYS[1], 'spent', MAX)
  end
end
local function sweep(now)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
  for _, id in ipairs(ids) do
    local amount = redis.call('HGET', KEYS[3], id)
    if amount then
      redis.call('HDEL', KEYS[3], id)
      redis.call('HINCRBY', KEYS[1], 'reserved', negate(amount))
    end
  end
  if #ids > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
end
local function touch(ttl)
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
end
)lua";

// KEYS: state, reservations, amounts. ARGV: limit, worst_case, id, reservation_ttl_ms, key_ttl_ms.
// Returns {'ok'|'blocked', spent, reserved, seeded}.
constexpr std::string_view lua_reserve = R"lua(
local now = now_ms()
sweep(now)
local spent, reserved = state()
local status = 'blocked'
if fits(spent, reserved, ARGV[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[3])
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[2])
  status = 'ok'
end
touch(ARGV[5])
local s, r, seeded = state()
return {status, s, r, seeded}
)lua";

// ARGV: reservation id ('' for a charge), actual, key_ttl_ms.
// Returns {released, spent0, reserved0, seeded0, spent1, reserved1, seeded1}.
constexpr std::string_view lua_settle = R"lua(
local now = now_ms()
sweep(now)
local s0, r0, seeded0 = state()
local released = '0'
if ARGV[1] ~= '' then
  local amount = redis.call('HGET', KEYS[3], ARGV[1])
  if amount then
    redis.call('HDEL', KEYS[3], ARGV[1])
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('HINCRBY', KEYS[1], 'reserved', negate(amount))
    released = '1'
  end
end
add_spent(ARGV[2])
touch(ARGV[3])
local s1, r1, seeded1 = state()
return {released, s0, r0, seeded0, s1, r1, seeded1}
)lua";

// No ARGV. Returns {spent, reserved, seeded}.
constexpr std::string_view lua_read = R"lua(
sweep(now_ms())
local s, r, seeded = state()
return {s, r, seeded}
)lua";

// ARGV: spent, key_ttl_ms. Returns {'ok'} when applied, {'exists'} when already seeded.
constexpr std::string_view lua_seed = R"lua(
if redis.call('HSETNX', KEYS[1], 'seeded', '1') == 0 then return {'exists'} end
add_spent(ARGV[1])
touch(ARGV[2])
return {'ok'}
)lua";

enum script_index : std::size_t { reserve_script, settle_script, read_script, seed_script };

const std::array<std::string, 4>& scripts() {
  static const std::array<std::string, 4> all = [] {
    std::array<std::string, 4> s;
    const std::array<std::string_view, 4> bodies = {lua_reserve, lua_settle, lua_read, lua_seed};
    for (std::size_t i = 0; i < bodies.size(); ++i) {
      s[i] = std::string(lua_prelude) + std::string(bodies[i]);
    }
    return s;
  }();
  return all;
}

// EVALSHA names a script by the hex SHA-1 of its text, the digest Redis computes itself.
const std::array<std::string, 4>& script_shas() {
  static const std::array<std::string, 4> all = [] {
    std::array<std::string, 4> out;
    for (std::size_t i = 0; i < out.size(); ++i) {
      const std::string& text = scripts()[i];
      std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
      unsigned int len = 0;
      EVP_Digest(text.data(), text.size(), md.data(), &len, EVP_sha1(), nullptr);
      static constexpr char hex[] = "0123456789abcdef";
      for (unsigned int j = 0; j < len; ++j) {
        out[i] += hex[md[j] >> 4];
        out[i] += hex[md[j] & 0x0f];
      }
    }
    return out;
  }();
  return all;
}

struct reply_deleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

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
  for (int i = 0; i < 4; ++i) {
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

void redis_budget_client::fail(std::string what) {
  ++errors_;
  last_error_ = std::move(what);
  ctx_.reset();
}

bool redis_budget_client::ensure_connected() {
  if (ctx_) return true;
  const auto now = std::chrono::steady_clock::now();
  // A dead Redis costs one timeout per interval per client, not one per request.
  if (attempted_ && now - last_attempt_ < ep_.reconnect_interval) return false;
  attempted_ = true;
  last_attempt_ = now;
  ++connect_attempts_;

  const timeval tv = to_timeval(ep_.timeout);
  redisContext* c = ep_.unix_socket.empty()
                        ? redisConnectWithTimeout(ep_.host.c_str(), ep_.port, tv)
                        : redisConnectUnixWithTimeout(ep_.unix_socket.c_str(), tv);
  if (c == nullptr) {
    fail(where_ + ": cannot allocate a context");
    return false;
  }
  ctx_.reset(c);
  if (c->err != 0) {
    fail(where_ + ": connect: " + c->errstr);
    return false;
  }
  if (redisSetTimeout(c, tv) != REDIS_OK) {
    fail(where_ + ": cannot set the timeout");
    return false;
  }

  // One command with a status reply, e.g. AUTH or SELECT; its text goes to the log, its
  // arguments never do (AUTH's is the password).
  auto simple = [&](std::initializer_list<std::string_view> args, const char* name) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (auto a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    reply_ptr r(static_cast<redisReply*>(
        redisCommandArgv(ctx_.get(), static_cast<int>(argv.size()), argv.data(), lens.data())));
    if (!r) {
      fail(where_ + ": " + name + ": " + ctx_->errstr);
      return false;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      fail(where_ + ": " + name + ": " + reply_text(r.get()));
      return false;
    }
    return true;
  };
  if (!ep_.password.empty() && !simple({"AUTH", ep_.password}, "AUTH")) return false;
  if (ep_.db != 0) {
    const std::string db = std::to_string(ep_.db);
    if (!simple({"SELECT", db}, "SELECT")) return false;
  }
  return true;
}

std::optional<std::vector<std::string>> redis_budget_client::run(
    std::size_t index, std::string_view budget, std::int64_t period_start,
    std::initializer_list<std::string_view> args) {
  if (!ensure_connected()) return std::nullopt;

  const std::string state = state_key(budget, period_start);
  const std::string reservations = state + ":reservations";
  const std::string amounts = state + ":amounts";
  const std::string& body = scripts()[index];

  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  auto push = [&](std::string_view a) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  };
  push("EVALSHA");
  push(script_shas()[index]);
  push("3");
  push(state);
  push(reservations);
  push(amounts);
  for (auto a : args) push(a);

  reply_ptr r;
  // EVALSHA saves sending the script every time; a Redis that has not seen it (fresh, restarted,
  // SCRIPT FLUSH) answers NOSCRIPT and gets the full text once, which also caches it there.
  for (int attempt = 0; attempt < 2; ++attempt) {
    r.reset(static_cast<redisReply*>(
        redisCommandArgv(ctx_.get(), static_cast<int>(argv.size()), argv.data(), lens.data())));
    if (!r) {
      fail(where_ + ": " + ctx_->errstr);
      return std::nullopt;
    }
    if (attempt == 0 && r->type == REDIS_REPLY_ERROR &&
        reply_text(r.get()).starts_with("NOSCRIPT")) {
      argv[0] = "EVAL";
      lens[0] = 4;
      argv[1] = body.data();
      lens[1] = body.size();
      continue;
    }
    break;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    // Dropping the connection also recovers from NOAUTH, READONLY (a failed-over replica) and
    // LOADING once the cause is gone.
    fail(where_ + ": " + reply_text(r.get()));
    return std::nullopt;
  }
  if (r->type != REDIS_REPLY_ARRAY) {
    fail(where_ + ": unexpected reply type " + std::to_string(r->type));
    return std::nullopt;
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
      fail(where_ + ": unexpected element type " + std::to_string(e->type));
      return std::nullopt;
    }
  }
  return out;
}

redis_reserve_result redis_budget_client::reserve(std::string_view budget,
                                                  std::int64_t period_start, std::int64_t limit,
                                                  std::int64_t worst_case,
                                                  std::chrono::milliseconds reservation_ttl,
                                                  std::chrono::milliseconds key_ttl) {
  redis_reserve_result out;
  if (worst_case < 0 || limit < 0) {
    out.outcome = redis_outcome::blocked;
    return out;
  }
  std::string id = new_reservation_id();
  const std::string limit_s = std::to_string(limit);
  const std::string worst_s = std::to_string(worst_case);
  const std::string resv_ttl_s = std::to_string(std::max<std::int64_t>(reservation_ttl.count(), 0));
  const std::string key_ttl_s = std::to_string(ttl_ms(key_ttl));
  const auto v = run(reserve_script, budget, period_start,
                     {limit_s, worst_s, id, resv_ttl_s, key_ttl_s});
  if (!v) return out;
  const auto st = parse_state(*v, 1);
  if (v->size() != 4 || !st || ((*v)[0] != "ok" && (*v)[0] != "blocked")) {
    fail(where_ + ": malformed reserve reply");
    return out;
  }
  out.state = *st;
  if ((*v)[0] == "ok") {
    out.outcome = redis_outcome::ok;
    out.reservation_id = std::move(id);
  } else {
    out.outcome = redis_outcome::blocked;
  }
  return out;
}

redis_settle_result redis_budget_client::settle(std::string_view budget,
                                                std::int64_t period_start,
                                                std::string_view reservation_id,
                                                std::int64_t actual,
                                                std::chrono::milliseconds key_ttl) {
  redis_settle_result out;
  const std::string actual_s = std::to_string(std::max<std::int64_t>(actual, 0));
  const std::string key_ttl_s = std::to_string(ttl_ms(key_ttl));
  const auto v = run(settle_script, budget, period_start, {reservation_id, actual_s, key_ttl_s});
  if (!v) return out;
  const auto before = parse_state(*v, 1);
  const auto after = parse_state(*v, 4);
  if (v->size() != 7 || !before || !after) {
    fail(where_ + ": malformed settle reply");
    return out;
  }
  out.outcome = redis_outcome::ok;
  out.before = *before;
  out.after = *after;
  out.released = (*v)[0] == "1";
  return out;
}

redis_settle_result redis_budget_client::charge(std::string_view budget,
                                                std::int64_t period_start, std::int64_t actual,
                                                std::chrono::milliseconds key_ttl) {
  // The settle script with no reservation id: one script, one definition of booking.
  return settle(budget, period_start, {}, actual, key_ttl);
}

std::optional<redis_budget_state> redis_budget_client::read(std::string_view budget,
                                                            std::int64_t period_start) {
  const auto v = run(read_script, budget, period_start, {});
  if (!v) return std::nullopt;
  const auto st = parse_state(*v, 0);
  if (v->size() != 3 || !st) {
    fail(where_ + ": malformed read reply");
    return std::nullopt;
  }
  return st;
}

redis_outcome redis_budget_client::seed(std::string_view budget, std::int64_t period_start,
                                        std::int64_t spent, std::chrono::milliseconds key_ttl) {
  const std::string spent_s = std::to_string(std::max<std::int64_t>(spent, 0));
  const std::string key_ttl_s = std::to_string(ttl_ms(key_ttl));
  const auto v = run(seed_script, budget, period_start, {spent_s, key_ttl_s});
  if (!v) return redis_outcome::unavailable;
  if (v->size() == 1 && (*v)[0] == "ok") return redis_outcome::ok;
  if (v->size() == 1 && (*v)[0] == "exists") return redis_outcome::blocked;
  fail(where_ + ": malformed seed reply");
  return redis_outcome::unavailable;
}

}  // namespace bedrock_meter::accounting
