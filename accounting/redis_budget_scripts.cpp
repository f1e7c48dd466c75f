#include "accounting/redis_budget_scripts.hpp"

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <string_view>

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

constexpr std::size_t script_count = 4;

// Indexed by budget_script.
const std::array<std::string, script_count>& texts() {
  static const std::array<std::string, script_count> all = [] {
    const std::array<std::string_view, script_count> bodies = {lua_reserve, lua_settle, lua_read,
                                                               lua_seed};
    std::array<std::string, script_count> out;
    for (std::size_t i = 0; i < bodies.size(); ++i) {
      out[i] = std::string(lua_prelude) + std::string(bodies[i]);
    }
    return out;
  }();
  return all;
}

std::string sha1_hex(const std::string& text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), md.data(), &len, EVP_sha1(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int j = 0; j < len; ++j) {
    out += hex[md[j] >> 4];
    out += hex[md[j] & 0x0f];
  }
  return out;
}

const std::array<std::string, script_count>& sha1s() {
  static const std::array<std::string, script_count> all = [] {
    std::array<std::string, script_count> out;
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = sha1_hex(texts()[i]);
    return out;
  }();
  return all;
}

}  // namespace

const std::string& script_text(budget_script s) { return texts()[static_cast<std::size_t>(s)]; }

const std::string& script_sha1(budget_script s) { return sha1s()[static_cast<std::size_t>(s)]; }

}  // namespace bedrock_meter::accounting
