// The `budgets` section (docs/budgets.md): where accumulators live (local or Redis), worst-case
// output per request, and the budget definitions (scope, period, zone, limit, warnings, action).
#include "config/loader.hpp"

#include <algorithm>
#include <cstdio>

#include "config/text.hpp"
#include "metering/tz.hpp"

namespace bedrock_meter::config {
namespace {

namespace m = metering;

constexpr std::array<std::string_view, 7> budgets_keys = {
    "time_zone",         "store",      "redis", "on_store_unavailable", "default_max_output_tokens",
    "max_output_tokens", "definitions"};
constexpr std::array<std::string_view, 7> redis_keys = {
    "host", "port", "unix_socket", "password_env", "db", "timeout", "key_prefix"};
constexpr std::array<std::string_view, 9> budget_keys = {"name",         "scope",       "period",
                                                         "period_start", "period_days", "time_zone",
                                                         "limit_usd",    "warn_at",     "action"};
constexpr std::array<std::string_view, 4> scope_keys = {"team", "app", "identity", "model"};

constexpr enum_table<budget_store_kind, 2> stores{
    "store",
    {"local", "redis"},
    {budget_store_kind::local, budget_store_kind::redis},
    [](std::string_view word, std::span<const std::string_view>) {
      return "'" + std::string(word) + "' is not a store; use local or redis";
    }};
constexpr enum_table<budget_store_fallback, 2> fallbacks{
    "fallback",
    {"open", "closed"},
    {budget_store_fallback::open, budget_store_fallback::closed},
    [](std::string_view word, std::span<const std::string_view>) {
      return "'" + std::string(word) + "' is not a fallback; use open (admit, count the failure) " +
             "or closed (refuse requests under block budgets)";
    }};
constexpr enum_table<m::period_kind, 4> periods{
    "period",
    {"daily", "weekly", "monthly", "custom"},
    {m::period_kind::daily, m::period_kind::weekly, m::period_kind::monthly,
     m::period_kind::custom},
    [](std::string_view word, std::span<const std::string_view> valid) {
      const auto hint = closest_match(word, valid);
      return "'" + std::string(word) + "' is not a period; use daily, weekly, monthly or custom" +
             (hint.empty() ? std::string() : " (did you mean '" + std::string(hint) + "'?)");
    }};
constexpr enum_table<m::budget_action, 2> actions{
    "action",
    {"alert", "block"},
    {m::budget_action::alert, m::budget_action::block},
    [](std::string_view word, std::span<const std::string_view>) {
      return "'" + std::string(word) + "' is not an action; use alert (metrics and log only) or " +
             "block (refuse new requests once the limit is reached)";
    }};

bool check_zone(const map_reader& s, std::string_view key, const std::string& name) {
  const auto z = m::load_zone(name);
  if (z) return true;
  s.error(*s.get(key), "unknown time zone '" + name + "' (" + z.error().message +
                           "); use an IANA name such as UTC, Europe/Berlin or America/New_York");
  return false;
}

void load_redis(const load_context& ctx, const map_entry& r, budget_redis_config& redis) {
  const map_reader rs(ctx.diag(), r.value, "budgets.redis", redis_keys, r.mark());
  if (!rs.is_map()) return;
  rs.read_string("host", redis.host, text_rule::optional);
  rs.read_port("port", redis.port);
  if (rs.read_string("unix_socket", redis.unix_socket, text_rule::optional) &&
      !redis.unix_socket.empty()) {
    redis.unix_socket = ctx.resolve(redis.unix_socket);
  }
  if (read_env_name(rs, "password_env", redis.password_env, text_rule::optional) &&
      !redis.password_env.empty()) {
    ctx.require_env_set(*rs.get("password_env"), "budgets.redis.password_env", redis.password_env,
                        "it holds the Redis password");
    if (const auto v = ctx.env(redis.password_env)) redis.password = *v;
  }
  rs.read_uint("db", redis.db, 0, 1'000'000, "use a Redis database number (0-15 usually)");
  rs.read_duration("timeout", redis.timeout, false, std::chrono::seconds(10));
  rs.read_string("key_prefix", redis.key_prefix, text_rule::optional);
}

/// `max_output_tokens`: base model id -> output token cap.
void load_output_caps(const map_reader& s, std::map<std::string, std::uint64_t>& out) {
  const std::string path = s.path_of("max_output_tokens");
  const auto cap = [&](const YAML::Node& key_node, const YAML::Node& value) {
    const std::string model = key_node.IsScalar() ? key_node.Scalar() : std::string();
    const auto v = value.IsScalar() ? parse_uint(trim(value.Scalar())) : std::nullopt;
    if (!v || *v == 0 || *v > 10'000'000) {
      s.diag().error(value.Mark(), child_path(path, model),
                     "expected a token count from 1 to 10000000");
      return;
    }
    out[model] = *v;
  };
  s.for_each_pair("max_output_tokens", "base model id to output token cap", cap);
}

// ---- one definition ----

bool load_scope(const map_reader& bs, m::budget_scope& scope) {
  const map_entry* sc = bs.get("scope");
  if (sc == nullptr || sc->value.IsNull()) return true;
  const map_reader ss(bs.diag(), sc->value, bs.path_of("scope"), scope_keys, sc->mark());
  if (!ss.is_map()) return false;
  std::string v;
  if (read_label(ss, "team", v, text_rule::optional)) scope.team = v;
  if (read_label(ss, "app", v, text_rule::optional)) scope.app = v;
  if (ss.read_string("identity", v, text_rule::optional)) scope.identity = v;
  if (ss.read_string("model", v, text_rule::optional)) {
    const auto resolved = m::resolve_model(v);
    scope.model = resolved.base_model.empty() ? v : resolved.base_model;
  }
  return true;
}

/// `period: custom` needs `period_start` (a date) and `period_days`.
bool load_custom_period(const map_reader& bs, m::budget_period& period) {
  bool ok = true;
  if (std::string start; bs.read_string("period_start", start, text_rule::required)) {
    unsigned y = 0, mo = 0, d = 0;
    char tail = 0;
    const std::chrono::year_month_day ymd =
        std::sscanf(start.c_str(), "%4u-%2u-%2u%c", &y, &mo, &d, &tail) == 3
            ? std::chrono::year_month_day(std::chrono::year(static_cast<int>(y)),
                                          std::chrono::month(mo), std::chrono::day(d))
            : std::chrono::year_month_day{};
    if (!ymd.ok()) {
      bs.error(*bs.get("period_start"), "'" + start + "' is not a date; write YYYY-MM-DD " +
                                            "(local midnight in the budget's zone)");
      ok = false;
    } else {
      period.custom_start = ymd;
    }
  } else {
    ok = false;
  }
  if (bs.get("period_days") == nullptr) {
    bs.missing("period_days");
    return false;
  }
  ok &= bs.read_uint("period_days", period.custom_days, 1, 3660,
                     "use a number of days from 1 to 3660");
  return ok;
}

bool load_period(const map_reader& bs, m::budget_period& period) {
  bool ok = true;
  // A period of the wrong type is reported by read_string; only an unknown name fails the budget.
  if (std::string name; bs.read_string("period", name, text_rule::optional)) {
    ok &= bs.match_enum("period", name, periods, period.kind);
  }
  if (period.kind == m::period_kind::custom) {
    ok &= load_custom_period(bs, period);
    return ok;
  }
  for (const std::string_view key : {"period_start", "period_days"}) {
    if (const map_entry* extra = bs.get(key)) {
      bs.error(*extra, "'" + extra->key + "' only applies to 'period: custom'");
      ok = false;
    }
  }
  return ok;
}

/// The largest `limit_usd`: half of what a 64-bit pico-USD account holds.
constexpr std::int64_t max_budget_limit_usd = 4'000'000;

bool load_limit(const map_reader& bs, m::pico_usd& limit) {
  if (bs.get("limit_usd") == nullptr) {
    bs.missing("limit_usd");
    return false;
  }
  const auto micro = bs.read_positive_decimal(
      "limit_usd",
      "expected a positive USD amount up to 4000000 such as 500 or \"1250.50\" (at most 6 "
      "decimals)");
  if (!micro) return false;
  // Accounts hold pico-USD in 64 bits (at most ~9.2 million USD); a larger limit used to wrap into
  // another number ("18446745" ran as $0.93). Half that range leaves room for what is in flight.
  constexpr std::int64_t max_micro = max_budget_limit_usd * 1'000'000;
  if (*micro > max_micro) {
    bs.error(*bs.get("limit_usd"), "the largest limit a budget holds exactly is " +
                                       std::to_string(max_budget_limit_usd) +
                                       " USD per period; split the budget by team or app");
    return false;
  }
  limit = static_cast<m::pico_usd>(*micro) * 1'000'000;
  return true;
}

/// `warn_at`: percentages of the limit, kept sorted and unique; `warn_at:` turns warnings off.
bool load_warn_at(const map_reader& bs, std::vector<int>& percents) {
  percents = {50, 80, 100};
  const map_entry* w = bs.get("warn_at");
  if (w == nullptr) return true;
  percents.clear();
  if (w->value.IsNull()) return true;
  if (!w->value.IsSequence()) {
    bs.error(*w, "expected a list of percentages such as [50, 80, 100]");
    return false;
  }
  bool ok = true;
  for (const auto& item : w->value) {
    const auto v = item.IsScalar() ? parse_uint(trim(item.Scalar())) : std::nullopt;
    if (!v || *v < 1 || *v > 1000) {
      bs.diag().error(item.Mark(), bs.path_of("warn_at"),
                      "a threshold is a whole percentage from 1 to 1000");
      ok = false;
      continue;
    }
    percents.push_back(static_cast<int>(*v));
  }
  std::sort(percents.begin(), percents.end());
  percents.erase(std::unique(percents.begin(), percents.end()), percents.end());
  return ok;
}

/// One definition; false when it has a problem (reported) and must not be used.
bool load_budget(const map_reader& bs, const budgets_config& b, budget_entry& be) {
  bool ok = read_label(bs, "name", be.def.name, text_rule::required);
  ok &= load_scope(bs, be.def.scope);
  ok &= load_period(bs, be.def.period);
  be.time_zone = b.time_zone;
  if (bs.read_string("time_zone", be.time_zone, text_rule::optional)) {
    ok &= check_zone(bs, "time_zone", be.time_zone);
  }
  ok &= load_limit(bs, be.def.limit);
  ok &= load_warn_at(bs, be.def.warning_percents);
  // Like the period: a wrong type is reported, only an unknown action fails the budget.
  if (std::string action; bs.read_string("action", action, text_rule::optional)) {
    ok &= bs.match_enum("action", action, actions, be.def.action);
  }
  if (ok) {
    if (const auto why = m::validate_budget(be.def); !why.empty()) {
      bs.diag().error(bs.mark(), bs.path(), why);
      ok = false;
    }
  }
  return ok;
}

void load_definitions(const map_reader& s, budgets_config& b) {
  first_seen names;
  s.for_each_map("definitions", budget_keys, "budgets", [&](const map_reader& bs) {
    budget_entry be;
    if (!load_budget(bs, b, be)) return;
    const map_entry& name = *bs.get("name");
    if (const auto line = names.earlier_line(be.def.name, name.mark())) {
      bs.error(name, "duplicate budget name '" + be.def.name + "' (already used on line " +
                         std::to_string(*line) + ")");
      return;
    }
    b.definitions.push_back(std::move(be));
  });
}

}  // namespace

void load_budgets(load_context& ctx, const map_entry& e, budgets_config& b) {
  if (e.value.IsNull()) return;
  const map_reader s(ctx.diag(), e.value, "budgets", budgets_keys, e.mark());
  if (!s.is_map()) return;
  if (s.read_string("time_zone", b.time_zone, text_rule::optional)) {
    check_zone(s, "time_zone", b.time_zone);
  }
  s.read_enum("store", stores, b.store, text_rule::non_empty);
  s.read_enum("on_store_unavailable", fallbacks, b.on_store_unavailable, text_rule::non_empty);
  const map_entry* r = s.get("redis");
  if (r != nullptr && !r->value.IsNull()) load_redis(ctx, *r, b.redis);
  if (b.store == budget_store_kind::redis && r == nullptr) {
    ctx.diag().warn(s.get("store")->mark(), "budgets.store",
                    "store is redis without a 'redis' section: using 127.0.0.1:6379");
  }
  s.read_uint("default_max_output_tokens", b.default_max_output_tokens, 1, 10'000'000,
              "use a token count from 1 to 10000000");
  load_output_caps(s, b.max_output_tokens);
  load_definitions(s, b);
}

}  // namespace bedrock_meter::config
