#include "accounting/budgets.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "metering/tz.hpp"

namespace bedrock_meter::accounting {

namespace bm = metering;

namespace {

std::shared_ptr<const bm::time_zone> load_or_utc(const std::string& name,
                                                 std::vector<std::string>* warnings) {
  auto z = bm::load_zone(name);
  if (z) return std::make_shared<const bm::time_zone>(std::move(*z));
  if (warnings != nullptr)
    warnings->push_back("time zone '" + name + "' could not be loaded (" + z.error().message +
                        "); using UTC");
  return std::make_shared<const bm::time_zone>();
}

std::int64_t unix_seconds(bm::instant t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string format_utc(bm::instant t) {
  const auto secs = std::chrono::floor<std::chrono::seconds>(t);
  const auto day = std::chrono::floor<std::chrono::days>(secs);
  const std::chrono::year_month_day ymd(day);
  const std::chrono::hh_mm_ss hms(secs - day);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

namespace {

/// What a refused client reads: which budget, why, until when, and what would help.
std::string refusal_message(const bm::budget_def& d, bm::instant period_end, bool exhausted,
                            bm::pico_usd worst_case) {
  if (exhausted)
    return "Budget '" + d.name + "' has reached its limit of $" + bm::format_usd(d.limit, 2) +
           " for the period ending " + format_utc(period_end) +
           "; this request was not sent to Bedrock.";
  return "Budget '" + d.name + "' does not have room for this request: its worst-case cost of $" +
         bm::format_usd(worst_case, 6) +
         " (from max_tokens and the input size), with the requests in flight, would pass the "
         "limit of $" + bm::format_usd(d.limit, 2) + " for the period ending " +
         format_utc(period_end) + ". Lower max_tokens or raise the budget.";
}

/// Pico-USD that fit the store's int64 (money_total sums never come near, but be exact).
std::int64_t clamp64(bm::money_total v) {
  constexpr auto max = std::numeric_limits<std::int64_t>::max();
  return v > max ? max : v < 0 ? 0 : static_cast<std::int64_t>(v);
}

}  // namespace

std::string describe_scope(const bm::budget_scope& scope) {
  std::string out;
  auto add = [&](std::string_view k, const std::optional<std::string>& v) {
    if (!v) return;
    if (!out.empty()) out += ',';
    out += k;
    out += '=';
    out += *v;
  };
  add("team", scope.team);
  add("app", scope.app);
  add("identity", scope.identity);
  add("model", scope.model);
  return out.empty() ? "everything" : out;
}

std::string describe_period(const bm::budget_period& period) {
  switch (period.kind) {
    case bm::period_kind::daily: return "daily";
    case bm::period_kind::weekly: return "weekly";
    case bm::period_kind::monthly: return "monthly";
    case bm::period_kind::custom: break;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "custom(%dd from %04d-%02u-%02u)", period.custom_days,
                static_cast<int>(period.custom_start.year()),
                static_cast<unsigned>(period.custom_start.month()),
                static_cast<unsigned>(period.custom_start.day()));
  return buf;
}

std::string budgets_json(const std::vector<budget_status>& budgets, bm::instant now) {
  auto percent = [](bm::money_total part, bm::pico_usd whole) {
    return whole > 0 ? std::round(bm::to_usd_double(part) / bm::to_usd_double(whole) * 10000.0) / 100.0
                     : 0.0;
  };
  boost::json::array list;
  for (const auto& b : budgets) {
    boost::json::array warn;
    for (int p : b.warning_percents) warn.push_back(p);
    list.push_back(boost::json::object{
        {"name", b.name},
        {"action", b.action == bm::budget_action::block ? "block" : "alert"},
        {"scope", b.scope},
        {"period", b.period},
        {"time_zone", b.time_zone},
        {"period_start", format_utc(b.window.start)},
        {"period_end", format_utc(b.window.end)},
        {"limit_usd", bm::format_usd(b.limit, 6)},
        {"spend_usd", bm::format_usd(b.spent, 6)},
        {"reserved_usd", bm::format_usd(b.reserved, 6)},
        {"used_percent", percent(b.spent, b.limit)},
        {"forecast_usd", bm::format_usd(b.forecast, 6)},
        {"forecast_percent", percent(b.forecast, b.limit)},
        {"blocked_requests", b.blocked},
        {"warn_at", std::move(warn)},
        {"source", b.source},
    });
  }
  return boost::json::serialize(
      boost::json::object{{"as_of", format_utc(now)}, {"budgets", std::move(list)}});
}

budget_engine::budget_engine(const config::budgets_config& cfg, const budget_engine* previous,
                             const budget_restore_fn& restore, bm::instant now,
                             std::vector<std::string>* warnings)
    : cfg_(cfg) {
  accounts_.reserve(cfg.definitions.size());
  for (const auto& e : cfg.definitions) {
    std::shared_ptr<account> carried;
    if (previous != nullptr) {
      for (const auto& old : previous->accounts_) {
        if (old->acct.def() == e.def && old->zone == e.time_zone) carried = old;
      }
    }
    if (carried) {
      accounts_.push_back(std::move(carried));
      continue;
    }
    auto a = std::make_shared<account>(bm::budget_account(e.def, load_or_utc(e.time_zone, warnings), now),
                                       e.time_zone);
    if (restore) {
      if (const auto spent = restore(e.def, a->acct.window().start)) {
        a->acct.restore_spent(now, *spent);
      } else if (warnings != nullptr) {
        warnings->push_back("budget '" + e.def.name +
                            "': period-to-date spend could not be read from the ledger; it "
                            "starts at zero");
      }
    }
    accounts_.push_back(std::move(a));
  }
}

bool budget_engine::needs_admission(const bm::request_attribution& who) const noexcept {
  for (const auto& a : accounts_) {
    const auto& d = a->acct.def();
    if (d.action == bm::budget_action::block && d.scope.matches(who)) return true;
  }
  return false;
}

std::int64_t budget_engine::period_start_s(account& a, bm::instant now) {
  a.acct.roll(now);
  return unix_seconds(a.acct.window().start);
}

std::chrono::seconds budget_engine::key_ttl(account& a) const {
  // Long enough for the period plus a day, so late settlements still find the key and
  // `budgets` can show a just-ended period; then Redis forgets it by itself.
  const auto w = a.acct.window();
  return std::chrono::duration_cast<std::chrono::seconds>(w.end - w.start) +
         std::chrono::hours(24);
}

budget_admission budget_engine::admit(const bm::request_attribution& who, bm::pico_usd worst_case,
                                      bm::instant now, shared_budget_store* store,
                                      std::chrono::seconds reservation_ttl) {
  budget_admission out;
  auto release = [&] {
    for (const auto& h : out.holds) {
      auto& a = *accounts_[h.index];
      if (!h.remote_id.empty() && store != nullptr)
        store->settle(a.acct.def().name, h.period_start, h.remote_id, 0, key_ttl(a));
      if (h.local.id != 0) {
        std::lock_guard lock(a.mu);
        a.acct.settle(now, h.local, 0);
      }
    }
    out.holds.clear();
  };
  auto refuse = [&](account& a, budget_admission::verdict v, std::string message) {
    release();
    {
      std::lock_guard lock(a.mu);
      ++a.blocked;
    }
    out.result = v;
    out.budget = a.acct.def().name;
    out.message = std::move(message);
  };

  if (store != nullptr) reseed_if_recovering(now, *store);
  for (std::size_t i = 0; i < accounts_.size(); ++i) {
    auto& a = *accounts_[i];
    const auto& d = a.acct.def();
    if (d.action != bm::budget_action::block || !d.scope.matches(who)) continue;
    budget_hold h;
    h.index = i;
    bool use_local = true;
    bm::period_window window;
    {
      std::lock_guard lock(a.mu);
      h.period_start = period_start_s(a, now);
      window = a.acct.window();
    }
    if (store != nullptr) {
      const auto r = store->reserve(d.name, h.period_start, d.limit, worst_case, reservation_ttl,
                                    key_ttl(a));
      if (r.result == shared_budget_store::outcome::ok) {
        h.remote_id = r.reservation_id;
        use_local = false;
        std::lock_guard lock(a.mu);  // mirror locally so a later outage starts from here
        if (const auto lr = a.acct.try_reserve(now, 0); lr.status == bm::reserve_status::reserved)
          h.local = lr.held;
      } else if (r.result == shared_budget_store::outcome::blocked) {
        refuse(a, budget_admission::verdict::blocked,
               refusal_message(d, window.end, r.after.spent >= d.limit, worst_case));
        return out;
      } else {
        out.store_failed = true;
        store_down_.store(true, std::memory_order_relaxed);
        std::lock_guard lock(counters_mu_);
        ++counters_.store_errors;
        if (cfg_.on_store_unavailable == config::budget_store_fallback::closed) {
          ++counters_.fail_closed;
        } else {
          ++counters_.fail_open;
        }
      }
      if (out.store_failed &&
          cfg_.on_store_unavailable == config::budget_store_fallback::closed) {
        refuse(a, budget_admission::verdict::unavailable,
               "Budget '" + d.name + "' cannot be checked: the shared budget store is "
               "unreachable and the proxy is configured to fail closed. Retry later.");
        return out;
      }
    }
    if (use_local) {
      bm::reserve_status status;
      bool exhausted = false;
      {
        std::lock_guard lock(a.mu);
        const auto lr = a.acct.try_reserve(now, worst_case);
        status = lr.status;
        if (status == bm::reserve_status::reserved) h.local = lr.held;
        exhausted = a.acct.spent() >= d.limit;
      }
      // With a failed store and fallback `open`, the request is admitted even when the local
      // view (this replica's share only) says no.
      if (status != bm::reserve_status::reserved && store == nullptr) {
        refuse(a, budget_admission::verdict::blocked,
               refusal_message(d, window.end, exhausted, worst_case));
        return out;
      }
    }
    out.holds.push_back(std::move(h));
  }
  return out;
}

std::vector<threshold_event> budget_engine::settle(const budget_admission& admission,
                                                   const bm::request_attribution& who,
                                                   bm::pico_usd actual, bm::instant arrived,
                                                   bm::instant now, shared_budget_store* store,
                                                   bool* store_failed) {
  std::vector<threshold_event> events;
  if (actual < 0) actual = 0;
  // Admission may have found the store back but its old connection stale (the seed failed, the
  // reservation then reconnected): seed before this settlement adds to the fresh counts.
  if (store != nullptr) reseed_if_recovering(now, *store);
  for (std::size_t i = 0; i < accounts_.size(); ++i) {
    auto& a = *accounts_[i];
    const auto& d = a.acct.def();
    const budget_hold* h = nullptr;
    for (const auto& x : admission.holds)
      if (x.index == i) h = &x;
    if (h == nullptr && (actual == 0 || !d.scope.matches(who))) continue;

    std::vector<int> crossed;
    bm::money_total spent_after = 0;
    bool remote_done = false;
    if (store != nullptr) {
      // The period the request arrived in, as the ledger books it.
      std::int64_t current;
      {
        std::lock_guard lock(a.mu);
        current = period_start_s(a, now);
      }
      // A reservation settles in the period it was made in (the request's arrival).
      const std::int64_t period = h != nullptr ? h->period_start : current;
      // Without a reservation the charge goes to the current period; a request that arrived
      // before it began belongs to the ended one (as in the ledger) and is not counted here.
      const std::int64_t amount = h == nullptr && unix_seconds(arrived) < current ? 0 : actual;
      shared_budget_store::settle_reply r;
      if (h != nullptr && !h->remote_id.empty())
        r = store->settle(d.name, period, h->remote_id, amount, key_ttl(a));
      else if (amount > 0)
        r = store->charge(d.name, period, amount, key_ttl(a));
      else
        r.result = shared_budget_store::outcome::ok;
      if (r.result == shared_budget_store::outcome::ok) {
        remote_done = true;
        if (period == current && amount > 0) {
          crossed = bm::thresholds_crossed(d.warning_percents, d.limit, r.before.spent,
                                           r.after.spent);
          spent_after = r.after.spent;
        }
      } else {
        store_down_.store(true, std::memory_order_relaxed);
        if (store_failed != nullptr) *store_failed = true;
        std::lock_guard lock(counters_mu_);
        ++counters_.store_errors;
      }
    }
    {
      std::lock_guard lock(a.mu);
      std::vector<int> local;
      if (h != nullptr && h->local.id != 0) {
        const auto r = a.acct.settle(now, h->local, actual, arrived);
        local = r.thresholds;
        if (r.overrun > 0 && h->remote_id.empty()) {
          std::lock_guard c(counters_mu_);
          ++counters_.overruns;
        }
      } else {
        local = a.acct.charge(now, actual, arrived);
      }
      if (!remote_done) {
        crossed = std::move(local);
        spent_after = a.acct.spent();
      }
    }
    for (int p : crossed) events.push_back({d.name, p, spent_after, d.limit});
  }
  return events;
}

std::vector<budget_status> budget_engine::status(bm::instant now, shared_budget_store* store) {
  std::vector<budget_status> out;
  out.reserve(accounts_.size());
  for (auto& ap : accounts_) {
    auto& a = *ap;
    budget_status s;
    {
      std::lock_guard lock(a.mu);
      a.acct.roll(now);
      const auto& d = a.acct.def();
      s.name = d.name;
      s.action = d.action;
      s.scope = describe_scope(d.scope);
      s.period = describe_period(d.period);
      s.time_zone = a.zone;
      s.window = a.acct.window();
      s.limit = d.limit;
      s.spent = a.acct.spent();
      s.reserved = a.acct.reserved();
      s.blocked = a.blocked;
      s.warning_percents = d.warning_percents;
      s.source = "local";
    }
    if (store != nullptr) {
      if (const auto st = store->read(s.name, unix_seconds(s.window.start))) {
        s.spent = st->spent;
        s.reserved = st->reserved;
        s.source = "redis";
      } else {
        s.source = "local (redis unavailable)";
      }
    }
    const auto length = (s.window.end - s.window.start).count();
    const auto elapsed = std::max<std::int64_t>(1, (now - s.window.start).count());
    // spent * length / elapsed in 128 bits: a month in ns is ~2.7e15, spend far below 1e20.
    s.forecast = elapsed >= length ? s.spent
                                   : s.spent * static_cast<bm::money_total>(length) / elapsed;
    out.push_back(std::move(s));
  }
  return out;
}

void budget_engine::reseed_if_recovering(bm::instant now, shared_budget_store& store) {
  if (!store_down_.load(std::memory_order_relaxed)) return;
  if (seed_store(now, store)) store_down_.store(false, std::memory_order_relaxed);
}

bool budget_engine::seed_store(bm::instant now, shared_budget_store& store) {
  for (auto& ap : accounts_) {
    auto& a = *ap;
    std::int64_t period;
    bm::money_total spent;
    {
      std::lock_guard lock(a.mu);
      period = period_start_s(a, now);
      spent = a.acct.spent();
    }
    if (store.seed(a.acct.def().name, period, clamp64(spent), key_ttl(a)) ==
        shared_budget_store::outcome::unavailable)
      return false;
  }
  return true;
}

shared_budget_store* budget_store_handle::get(const config::budgets_config& cfg) {
  if (cfg.store != config::budget_store_kind::redis) return nullptr;
  if (!store_ || cfg_ != cfg.redis) {
    store_ = make_shared_budget_store(cfg.redis);
    cfg_ = cfg.redis;
  }
  return store_.get();
}

budget_engine::counters budget_engine::totals() const {
  std::lock_guard lock(counters_mu_);
  return counters_;
}

}  // namespace bedrock_meter::accounting
