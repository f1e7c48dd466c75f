// The budget engine: accounts per budget, admission by reservation, settlement, status, and the
// shared store's seeding. How budgets read to people (JSON, scopes in words) is budgets_text.cpp.
#include "accounting/budgets.hpp"

#include <algorithm>
#include <limits>
#include <utility>

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

// Whether `d` may refuse this request: a blocking budget that counts it.
bool blocks(const bm::budget_def& d, const bm::request_attribution& who) {
  return d.action == bm::budget_action::block && d.scope.matches(who);
}

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
         "limit of $" +
         bm::format_usd(d.limit, 2) + " for the period ending " + format_utc(period_end) +
         ". Lower max_tokens or raise the budget.";
}

std::string store_unavailable_message(const bm::budget_def& d) {
  return "Budget '" + d.name +
         "' cannot be checked: the shared budget store is "
         "unreachable and the proxy is configured to fail closed. Retry later.";
}

/// Pico-USD that fit the store's int64 (money_total sums never come near, but be exact).
std::int64_t clamp64(bm::money_total v) {
  constexpr auto max = std::numeric_limits<std::int64_t>::max();
  return v > max ? max : v < 0 ? 0 : static_cast<std::int64_t>(v);
}

const budget_hold* find_hold(const budget_admission& admission, std::size_t index) {
  const auto it = std::find_if(admission.holds.begin(), admission.holds.end(),
                               [&](const budget_hold& h) { return h.index == index; });
  return it == admission.holds.end() ? nullptr : &*it;
}

// The shared figures replace this replica's own when the store answers.
void read_shared(budget_status& s, shared_budget_store& store) {
  if (const auto st = store.read(s.name, unix_seconds(s.window.start))) {
    s.spent = st->spent;
    s.reserved = st->reserved;
    s.source = "redis";
  } else {
    s.source = "local (redis unavailable)";
  }
}

// Spend at period end if the pace so far continues.
bm::money_total forecast(const budget_status& s, bm::instant now) {
  const auto length = (s.window.end - s.window.start).count();
  const auto elapsed = std::max<std::int64_t>(1, (now - s.window.start).count());
  // spent * length / elapsed in 128 bits: a month in ns is ~2.7e15, spend far below 1e20.
  return elapsed >= length ? s.spent : s.spent * static_cast<bm::money_total>(length) / elapsed;
}

}  // namespace

template <class F>
decltype(auto) budget_engine::with_live(account& a, F&& f) {
  account* p = &a;
  for (;;) {
    std::unique_lock lock(p->mu);
    if (!p->successor || !p->successor_holds) return f(*p);
    // Kept alive by p->successor, and p by its own predecessor (or the caller).
    account* next = p->successor.get();
    lock.unlock();
    p = next;
  }
}

budget_engine::budget_engine(const config::budgets_config& cfg, const budget_engine* previous,
                             const budget_restore_fn& restore, bm::instant now,
                             std::vector<std::string>* warnings)
    : cfg_(cfg) {
  accounts_.reserve(cfg.definitions.size());
  for (const auto& e : cfg.definitions) {
    std::shared_ptr<account> carried;
    std::shared_ptr<account> prior;  // same name, changed definition
    if (previous != nullptr) {
      for (const auto& old : previous->accounts_) {
        if (old->acct.def() == e.def && old->zone == e.time_zone) carried = old;
        if (old->acct.def().name == e.def.name) prior = old;
      }
    }
    if (carried) {
      accounts_.push_back(std::move(carried));
      continue;
    }
    if (prior && prior->zone == e.time_zone && prior->acct.def().scope == e.def.scope &&
        prior->acct.def().period == e.def.period) {
      // Only the limit, action or warnings changed: continue the account. Under the old one's
      // lock, so nothing booked there is missed; from then on it forwards here.
      std::lock_guard lock(prior->mu);
      auto a = std::make_shared<account>(prior->acct, e.time_zone);
      a->acct.redefine(e.def);
      a->blocked = prior->blocked;
      prior->successor = a;
      prior->successor_holds = true;
      accounts_.push_back(std::move(a));
      continue;
    }
    auto a = std::make_shared<account>(
        bm::budget_account(e.def, load_or_utc(e.time_zone, warnings), now), e.time_zone);
    if (restore) {
      if (const auto spent = restore(e.def, a->acct.window().start)) {
        a->acct.restore_spent(now, *spent);
      } else if (warnings != nullptr) {
        warnings->push_back("budget '" + e.def.name +
                            "': period-to-date spend could not be read from the ledger; it "
                            "starts at zero");
      }
    }
    if (prior) {
      // After the restore: what settles on the old account from here on is charged here too
      // (its ledger row was not in what the restore read). One that settled between the read
      // and this link is in neither; the restore flushes the ledger first to keep that short.
      std::lock_guard lock(prior->mu);
      prior->successor = a;
      prior->successor_holds = false;
    }
    accounts_.push_back(std::move(a));
  }
}

bool budget_engine::needs_admission(const bm::request_attribution& who) const noexcept {
  return std::any_of(accounts_.begin(), accounts_.end(),
                     [&](const auto& a) { return blocks(a->acct.def(), who); });
}

std::int64_t budget_engine::period_start_s(account& a, bm::instant now) {
  a.acct.roll(now);
  return unix_seconds(a.acct.window().start);
}

std::chrono::seconds budget_engine::key_ttl(account& a) const {
  // Long enough for the period plus a day, so late settlements still find the key and
  // `budgets` can show a just-ended period; then Redis forgets it by itself.
  const auto w = a.acct.window();
  return std::chrono::duration_cast<std::chrono::seconds>(w.end - w.start) + std::chrono::hours(24);
}

// --- admission ----------------------------------------------------------------------------------

budget_admission budget_engine::admit(const bm::request_attribution& who, bm::pico_usd worst_case,
                                      bm::instant now, shared_budget_store* store,
                                      std::chrono::seconds reservation_ttl) {
  const admission_request req{worst_case, now, store, reservation_ttl};
  budget_admission out;
  if (store != nullptr) reseed_if_recovering(now, *store);
  for (std::size_t i = 0; i < accounts_.size(); ++i) {
    auto& a = *accounts_[i];
    if (!blocks(a.acct.def(), who)) continue;
    budget_hold h;
    h.index = i;
    if (auto refused = reserve(a, h, req, out.store_failed)) {
      // All or nothing: a refused request holds nothing in the budgets that had room.
      release(out.holds, now, store);
      out.holds.clear();
      refuse(a, std::move(*refused), out);
      return out;
    }
    out.holds.push_back(std::move(h));
  }
  return out;
}

std::optional<budget_engine::refusal> budget_engine::reserve(account& a, budget_hold& h,
                                                             const admission_request& req,
                                                             bool& store_failed) {
  bm::period_window window;
  // The definition in force: a reload that changed the limit applies to requests admitted
  // through the old snapshot too.
  const bm::budget_def& d = with_live(a, [&](account& live) -> const bm::budget_def& {
    h.period_start = period_start_s(live, req.now);
    window = live.acct.window();
    return live.acct.def();
  });
  if (req.store != nullptr) {
    const auto r = req.store->reserve(d.name, h.period_start, d.limit, req.worst_case,
                                      req.reservation_ttl, key_ttl(a));
    switch (r.result) {
      case shared_budget_store::outcome::ok:
        h.remote_id = r.reservation_id;
        mirror_shared_hold(a, h, req.now);
        return std::nullopt;
      case shared_budget_store::outcome::blocked:
        return refusal{budget_admission::verdict::blocked,
                       refusal_message(d, window.end, r.after.spent >= d.limit, req.worst_case)};
      case shared_budget_store::outcome::unavailable:
        store_failed = true;
        if (count_store_failure_at_admission()) {
          return refusal{budget_admission::verdict::unavailable, store_unavailable_message(d)};
        }
        break;
    }
  }
  return reserve_locally(a, h, window, req);
}

void budget_engine::mirror_shared_hold(account& a, budget_hold& h, bm::instant now) {
  // A zero local reservation, so a later outage starts from here.
  with_live(a, [&](account& live) {
    if (const auto lr = live.acct.try_reserve(now, 0); lr.status == bm::reserve_status::reserved)
      h.local = lr.held;
  });
}

std::optional<budget_engine::refusal> budget_engine::reserve_locally(
    account& a, budget_hold& h, const bm::period_window& window, const admission_request& req) {
  bool reserved = false;
  bool exhausted = false;
  const bm::budget_def& d = with_live(a, [&](account& live) -> const bm::budget_def& {
    const auto lr = live.acct.try_reserve(req.now, req.worst_case);
    reserved = lr.status == bm::reserve_status::reserved;
    if (reserved) h.local = lr.held;
    exhausted = live.acct.spent() >= live.acct.def().limit;
    return live.acct.def();
  });
  // With a failed store and fallback `open`, the request is admitted even when the local view
  // (this replica's share only) says no.
  if (reserved || req.store != nullptr) return std::nullopt;
  return refusal{budget_admission::verdict::blocked,
                 refusal_message(d, window.end, exhausted, req.worst_case)};
}

bool budget_engine::count_store_failure_at_admission() {
  store_down_.store(true, std::memory_order_relaxed);
  const bool closed = cfg_.on_store_unavailable == config::budget_store_fallback::closed;
  std::lock_guard lock(counters_mu_);
  ++counters_.store_errors;
  if (closed) {
    ++counters_.fail_closed;
  } else {
    ++counters_.fail_open;
  }
  return closed;
}

void budget_engine::release(const std::vector<budget_hold>& holds, bm::instant now,
                            shared_budget_store* store) {
  for (const auto& h : holds) {
    auto& a = *accounts_[h.index];
    if (!h.remote_id.empty() && store != nullptr)
      store->settle(a.acct.def().name, h.period_start, h.remote_id, 0, key_ttl(a));
    if (h.local.id != 0) with_live(a, [&](account& live) { live.acct.settle(now, h.local, 0); });
  }
}

void budget_engine::refuse(account& a, refusal why, budget_admission& out) {
  with_live(a, [](account& live) { ++live.blocked; });
  out.result = why.verdict;
  out.budget = a.acct.def().name;
  out.message = std::move(why.message);
}

// --- settlement ---------------------------------------------------------------------------------

std::vector<threshold_event> budget_engine::settle(const budget_admission& admission,
                                                   const bm::request_attribution& who,
                                                   bm::pico_usd actual, bm::instant arrived,
                                                   bm::instant now, shared_budget_store* store,
                                                   bool* store_failed) {
  const settle_request req{std::max<bm::pico_usd>(actual, 0), arrived, now};
  std::vector<threshold_event> events;
  // Admission may have found the store back but its old connection stale (the seed failed, the
  // reservation then reconnected): seed before this settlement adds to the fresh counts.
  if (store != nullptr) reseed_if_recovering(now, *store);
  for (std::size_t i = 0; i < accounts_.size(); ++i) {
    auto& a = *accounts_[i];
    const auto& d = a.acct.def();
    const budget_hold* h = find_hold(admission, i);
    if (h == nullptr && (req.actual == 0 || !d.scope.matches(who))) continue;

    std::optional<booking> shared;
    if (store != nullptr) {
      shared = book_shared(a, h, req, *store);
      if (!shared) count_store_failure_at_settlement(store_failed);
    }
    const booking local = book_locally(a, h, req, who);
    // Thresholds follow the shared figures when the store booked it: they count every replica.
    const booking& booked = shared ? *shared : local;
    for (int p : booked.crossed) events.push_back({d.name, p, booked.spent_after, d.limit});
  }
  return events;
}

std::optional<budget_engine::booking> budget_engine::book_shared(account& a, const budget_hold* h,
                                                                 const settle_request& req,
                                                                 shared_budget_store& store) {
  std::int64_t current = 0;
  const bm::budget_def& d = with_live(a, [&](account& live) -> const bm::budget_def& {
    current = period_start_s(live, req.now);
    return live.acct.def();
  });
  // A reservation settles in the period it was made in (the request's arrival).
  const std::int64_t period = h != nullptr ? h->period_start : current;
  // Without a reservation the charge goes to the current period; a request that arrived before
  // it began belongs to the ended one (as in the ledger) and is not counted here.
  const std::int64_t amount = h == nullptr && unix_seconds(req.arrived) < current ? 0 : req.actual;
  shared_budget_store::settle_reply r;
  if (h != nullptr && !h->remote_id.empty())
    r = store.settle(d.name, period, h->remote_id, amount, key_ttl(a));
  else if (amount > 0)
    r = store.charge(d.name, period, amount, key_ttl(a));
  else
    r.result = shared_budget_store::outcome::ok;
  if (r.result != shared_budget_store::outcome::ok) return std::nullopt;
  booking b;
  if (period == current && amount > 0) {
    b.crossed = bm::thresholds_crossed(d.warning_percents, d.limit, r.before.spent, r.after.spent);
    b.spent_after = r.after.spent;
  }
  return b;
}

budget_engine::booking budget_engine::book_locally(account& a, const budget_hold* h,
                                                   const settle_request& req,
                                                   const bm::request_attribution& who) {
  booking b;
  std::shared_ptr<account> restored;  // a reload's fresh account for this budget's name
  with_live(a, [&](account& live) {
    if (h != nullptr && h->local.id != 0) {
      const auto r = live.acct.settle(req.now, h->local, req.actual, req.arrived);
      b.crossed = r.thresholds;
      // A hold mirrored from the shared store reserved nothing here: only local holds overrun.
      if (r.overrun > 0 && h->remote_id.empty()) {
        std::lock_guard c(counters_mu_);
        ++counters_.overruns;
      }
    } else {
      b.crossed = live.acct.charge(req.now, req.actual, req.arrived);
    }
    b.spent_after = live.acct.spent();
    restored = live.successor;
  });
  // Admitted before a reload that redefined the budget's scope, period or zone: the new account
  // was restored from the ledger without this request, so it is charged there as well (when the
  // new scope counts it).
  if (restored && req.actual > 0 && restored->acct.def().scope.matches(who)) {
    with_live(*restored, [&](account& live) {
      b.crossed = live.acct.charge(req.now, req.actual, req.arrived);
      b.spent_after = live.acct.spent();
    });
  }
  return b;
}

void budget_engine::count_store_failure_at_settlement(bool* store_failed) {
  store_down_.store(true, std::memory_order_relaxed);
  if (store_failed != nullptr) *store_failed = true;
  std::lock_guard lock(counters_mu_);
  ++counters_.store_errors;
}

// --- status and the shared store ----------------------------------------------------------------

std::vector<budget_status> budget_engine::status(bm::instant now, shared_budget_store* store) {
  std::vector<budget_status> out;
  out.reserve(accounts_.size());
  for (auto& a : accounts_) {
    budget_status s = local_status(*a, now);
    if (store != nullptr) read_shared(s, *store);
    s.forecast = forecast(s, now);
    out.push_back(std::move(s));
  }
  return out;
}

budget_status budget_engine::local_status(account& a, bm::instant now) {
  std::lock_guard lock(a.mu);
  a.acct.roll(now);
  const auto& d = a.acct.def();
  budget_status s;
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
  return s;
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
