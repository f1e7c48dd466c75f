// The proxy's budget engine: admission across several budgets, settlement, reload carry-over,
// restore from the ledger, the fail-open/closed fallback, and the request helpers. The shared
// store here is an in-memory stand-in with the same contract as the Redis one (whose own tests,
// redis_budget_test.cpp, run against a real redis-server).
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <map>
#include <thread>

#include "accounting/budgets.hpp"

namespace bm = bedrock_meter::metering;
namespace cfg = bedrock_meter::config;
using namespace bedrock_meter::accounting;
namespace chr = std::chrono;

namespace {

constexpr bm::pico_usd usd = 1'000'000'000'000;

bm::instant utc(int y, unsigned m, unsigned d, int h = 0, int min = 0) {
  return bm::instant{chr::sys_days{chr::year{y} / m / d} + chr::hours{h} + chr::minutes{min}};
}

cfg::budget_entry budget(std::string name, bm::pico_usd limit, bm::budget_action action,
                         std::optional<std::string> team = std::nullopt,
                         bm::period_kind period = bm::period_kind::daily) {
  cfg::budget_entry e;
  e.def.name = std::move(name);
  e.def.limit = limit;
  e.def.action = action;
  e.def.scope.team = std::move(team);
  e.def.period.kind = period;
  e.def.warning_percents = {50, 80, 100};
  e.time_zone = "UTC";
  return e;
}

bm::request_attribution who(std::string_view team, std::string_view app = "chat") {
  return {team, app, "KEY1", "anthropic.claude-3-5-haiku-20241022-v1:0"};
}

/// In-memory shared store with the Redis store's contract; `down` makes it unreachable.
class memory_store final : public shared_budget_store {
 public:
  bool down = false;
  std::map<std::pair<std::string, std::int64_t>, state> keys;
  std::map<std::string, std::int64_t> holds;
  int next = 0;

  reserve_reply reserve(std::string_view b, std::int64_t p, std::int64_t limit, std::int64_t worst,
                        chr::seconds, chr::seconds) override {
    if (down) return {};
    auto& s = keys[{std::string(b), p}];
    if (s.spent >= limit || s.spent + s.reserved + worst > limit) return {outcome::blocked, {}, s};
    s.reserved += worst;
    const auto id = "r" + std::to_string(++next);
    holds[id] = worst;
    return {outcome::ok, id, s};
  }
  settle_reply settle(std::string_view b, std::int64_t p, std::string_view id, std::int64_t actual,
                      chr::seconds) override {
    if (down) return {};
    auto& s = keys[{std::string(b), p}];
    settle_reply r{outcome::ok, s, s};
    if (auto it = holds.find(std::string(id)); it != holds.end()) {
      s.reserved -= it->second;
      holds.erase(it);
    }
    s.spent += actual;
    r.after = s;
    return r;
  }
  settle_reply charge(std::string_view b, std::int64_t p, std::int64_t actual,
                      chr::seconds) override {
    if (down) return {};
    auto& s = keys[{std::string(b), p}];
    settle_reply r{outcome::ok, s, s};
    s.spent += actual;
    r.after = s;
    return r;
  }
  std::optional<state> read(std::string_view b, std::int64_t p) override {
    if (down) return std::nullopt;
    return keys[{std::string(b), p}];
  }
  outcome seed(std::string_view b, std::int64_t p, std::int64_t spent, chr::seconds) override {
    if (down) return outcome::unavailable;
    keys.try_emplace({std::string(b), p}, state{spent, 0});
    return outcome::ok;
  }
};

}  // namespace

TEST(BudgetEngine, BlocksOnlyRequestsInScopeAndNamesTheBudget) {
  cfg::budgets_config c;
  c.definitions.push_back(budget("research-daily", 1 * usd, bm::budget_action::block, "research"));
  c.definitions.push_back(budget("all-alert", 1 * usd, bm::budget_action::alert));
  const auto now = utc(2026, 11, 26, 12);
  budget_engine e(c, nullptr, {}, now);
  EXPECT_TRUE(e.needs_admission(who("research")));
  EXPECT_FALSE(e.needs_admission(who("search")));  // only an alert budget counts it

  auto a = e.admit(who("research"), usd / 2, now, nullptr, chr::seconds(60));
  ASSERT_EQ(a.result, budget_admission::verdict::admitted);
  ASSERT_EQ(a.holds.size(), 1u);
  e.settle(a, who("research"), usd, now, now, nullptr);  // actual above the estimate

  const auto b = e.admit(who("research"), 0, now, nullptr, chr::seconds(60));
  EXPECT_EQ(b.result, budget_admission::verdict::blocked);
  EXPECT_EQ(b.budget, "research-daily");
  EXPECT_NE(b.message.find("research-daily"), std::string::npos);
  EXPECT_NE(b.message.find("$1.00"), std::string::npos);
  EXPECT_NE(b.message.find("2026-11-27T00:00:00Z"), std::string::npos);
  // Another team is not blocked; the alert budget counts both but never blocks.
  EXPECT_EQ(e.admit(who("search"), usd, now, nullptr, chr::seconds(60)).result,
            budget_admission::verdict::admitted);
  const auto st = e.status(now, nullptr);
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].spent, 1 * usd);
  EXPECT_EQ(st[0].blocked, 1u);
  EXPECT_EQ(st[1].spent, 1 * usd);
}

TEST(BudgetEngine, ExhaustedBudgetAdmitsAgainExactlyAtLocalMidnight) {
  // New York, the night DST ends (2026-11-01): the day is 25 hours long, and midnight local is
  // 04:00 UTC before the switch, 05:00 UTC after it.
  auto e0 = budget("ny-daily", 1 * usd, bm::budget_action::block);
  e0.time_zone = "America/New_York";
  cfg::budgets_config c;
  c.definitions.push_back(e0);
  const auto evening = utc(2026, 11, 1, 22);  // 17:00 EST
  budget_engine e(c, nullptr, {}, evening);
  auto a = e.admit(who("x"), usd, evening, nullptr, chr::seconds(60));
  ASSERT_EQ(a.result, budget_admission::verdict::admitted);
  e.settle(a, who("x"), usd, evening, evening, nullptr);
  const auto midnight = utc(2026, 11, 2, 5);  // 00:00 EST
  EXPECT_EQ(e.admit(who("x"), 0, midnight - chr::nanoseconds(1), nullptr, chr::seconds(60)).result,
            budget_admission::verdict::blocked);
  EXPECT_EQ(e.admit(who("x"), usd, midnight, nullptr, chr::seconds(60)).result,
            budget_admission::verdict::admitted);
  const auto st = e.status(midnight, nullptr)[0];
  EXPECT_EQ(st.window.start, midnight);
  EXPECT_EQ(st.window.end, utc(2026, 11, 3, 5));
  EXPECT_EQ(st.spent, 0);
}

TEST(BudgetEngine, MonthlyBudgetRollsAtTheFirstInItsZone) {
  auto e0 = budget("tokyo-monthly", 10 * usd, bm::budget_action::block, std::nullopt,
                   bm::period_kind::monthly);
  e0.time_zone = "Asia/Tokyo";
  cfg::budgets_config c;
  c.definitions.push_back(e0);
  const auto late = utc(2026, 11, 30, 14, 59);  // 23:59 JST on 30 November
  budget_engine e(c, nullptr, {}, late);
  e.settle({}, who("x"), 10 * usd, late, late, nullptr);
  EXPECT_EQ(e.admit(who("x"), 0, late, nullptr, chr::seconds(60)).result,
            budget_admission::verdict::blocked);
  const auto first = utc(2026, 11, 30, 15);  // 00:00 JST on 1 December
  EXPECT_EQ(e.admit(who("x"), 1 * usd, first, nullptr, chr::seconds(60)).result,
            budget_admission::verdict::admitted);
  EXPECT_EQ(e.status(first, nullptr)[0].window.end, utc(2026, 12, 31, 15));
}

TEST(BudgetEngine, RefusalByOneBudgetReleasesTheOthersReservations) {
  cfg::budgets_config c;
  c.definitions.push_back(budget("wide", 100 * usd, bm::budget_action::block));
  c.definitions.push_back(budget("narrow", 1 * usd, bm::budget_action::block, "research"));
  const auto now = utc(2026, 11, 26, 12);
  budget_engine e(c, nullptr, {}, now);
  const auto a = e.admit(who("research"), 2 * usd, now, nullptr, chr::seconds(60));
  EXPECT_EQ(a.result, budget_admission::verdict::blocked);
  EXPECT_EQ(a.budget, "narrow");
  EXPECT_NE(a.message.find("worst-case"), std::string::npos);
  EXPECT_TRUE(a.holds.empty());
  for (const auto& s : e.status(now, nullptr)) EXPECT_EQ(s.reserved, 0) << s.name;
}

TEST(BudgetEngine, ConcurrentBurstStaysWithinTheLimit) {
  cfg::budgets_config c;
  c.definitions.push_back(budget("burst", 10 * usd, bm::budget_action::block));
  const auto now = utc(2026, 11, 26, 12);
  budget_engine e(c, nullptr, {}, now);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        auto a = e.admit(who("x"), 1 * usd, now, nullptr, chr::seconds(60));
        if (a.result != budget_admission::verdict::admitted) continue;
        ++admitted;
        e.settle(a, who("x"), 1 * usd, now, now, nullptr);  // each costs its worst case
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 10);
  EXPECT_EQ(e.status(now, nullptr)[0].spent, 10 * usd);
}

TEST(BudgetEngine, RestoresFromTheLedgerAndCarriesAccountsAcrossReload) {
  cfg::budgets_config c;
  c.definitions.push_back(budget("daily", 10 * usd, bm::budget_action::block));
  const auto now = utc(2026, 11, 26, 12);
  std::vector<bm::instant> asked;
  budget_restore_fn restore = [&](const bm::budget_def&, bm::instant from) {
    asked.push_back(from);
    return std::optional<bm::money_total>(4 * usd);
  };
  budget_engine first(c, nullptr, restore, now);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], utc(2026, 11, 26));  // the period start, in the budget's zone
  EXPECT_EQ(first.status(now, nullptr)[0].spent, 4 * usd);
  auto held = first.admit(who("x"), 1 * usd, now, nullptr, chr::seconds(60));
  ASSERT_EQ(held.result, budget_admission::verdict::admitted);

  // Same definition: carried over (no second ledger read, reservation still held).
  c.definitions.push_back(budget("new-one", 5 * usd, bm::budget_action::alert));
  budget_engine second(c, &first, restore, now);
  EXPECT_EQ(asked.size(), 2u);  // only the new budget was restored
  EXPECT_EQ(second.status(now, nullptr)[0].reserved, 1 * usd);
  // A request admitted under the old snapshot settles through it, into the shared account.
  first.settle(held, who("x"), usd / 2, now, now, nullptr);
  EXPECT_EQ(second.status(now, nullptr)[0].spent, 4 * usd + usd / 2);
  EXPECT_EQ(second.status(now, nullptr)[0].reserved, 0);

  // A changed limit continues the account (no ledger read: its spend is already exact).
  c.definitions[0].def.limit = 20 * usd;
  budget_engine third(c, &second, restore, now);
  EXPECT_EQ(asked.size(), 2u);
  EXPECT_EQ(third.status(now, nullptr)[0].limit, 20 * usd);
  EXPECT_EQ(third.status(now, nullptr)[0].spent, 4 * usd + usd / 2);

  // A changed scope counts other requests: a new account, restored from the ledger.
  c.definitions[0].def.scope.team = "x";
  budget_engine fourth(c, &third, restore, now);
  EXPECT_EQ(asked.size(), 3u);
  EXPECT_EQ(fourth.status(now, nullptr)[0].spent, 4 * usd);
}

// Five limit changes while requests are in flight: before, each reload made a fresh account
// restored from the ledger, and requests admitted under an older snapshot settled into the
// discarded account, so the live budget read low (by $32 after five reloads under load) and a
// block budget could overshoot. Now every reservation made under any of the six definitions
// settles into the one live account, which holds exactly what was spent.
TEST(BudgetEngine, ReloadsThatChangeALimitKeepTheReservationsAndSettlementsInFlight) {
  cfg::budgets_config c;
  c.definitions.push_back(budget("daily", 100 * usd, bm::budget_action::block));
  const auto now = utc(2026, 11, 26, 12);
  int restores = 0;
  budget_restore_fn restore = [&](const bm::budget_def&, bm::instant) {
    ++restores;
    return std::optional<bm::money_total>(10 * usd);
  };
  std::vector<std::unique_ptr<budget_engine>> engines;
  engines.push_back(std::make_unique<budget_engine>(c, nullptr, restore, now));
  std::vector<std::pair<budget_engine*, budget_admission>> in_flight;
  for (int reload = 1; reload <= 5; ++reload) {
    for (int i = 0; i < 3; ++i) {
      auto& e = *engines.back();
      auto adm = e.admit(who("x"), 4 * usd, now, nullptr, chr::seconds(60));
      ASSERT_EQ(adm.result, budget_admission::verdict::admitted) << reload << "/" << i;
      in_flight.emplace_back(&e, std::move(adm));
    }
    c.definitions[0].def.limit = (100 + reload) * usd;
    engines.push_back(std::make_unique<budget_engine>(c, engines.back().get(), restore, now));
    // Every reservation so far is held by the live account.
    EXPECT_EQ(engines.back()->status(now, nullptr)[0].reserved,
              static_cast<bm::money_total>(in_flight.size()) * 4 * usd);
  }
  EXPECT_EQ(restores, 1);
  // Each request settles through the engine it was admitted by, oldest first.
  for (auto& [e, adm] : in_flight) e->settle(adm, who("x"), 3 * usd, now, now, nullptr);
  const auto s = engines.back()->status(now, nullptr)[0];
  EXPECT_EQ(s.limit, 105 * usd);
  EXPECT_EQ(s.spent, 10 * usd + 15 * 3 * usd);  // restored + every settlement
  EXPECT_EQ(s.reserved, 0);

  // The new limit binds requests admitted through an old snapshot too: 55 of 105 spent, so an
  // old engine admits 50 more and not a cent beyond.
  auto fits = engines.front()->admit(who("x"), 50 * usd, now, nullptr, chr::seconds(60));
  EXPECT_EQ(fits.result, budget_admission::verdict::admitted);
  auto over = engines.front()->admit(who("x"), 1, now, nullptr, chr::seconds(60));
  EXPECT_EQ(over.result, budget_admission::verdict::blocked);
  engines.front()->settle(fits, who("x"), 0, now, now, nullptr);
  EXPECT_EQ(engines.back()->status(now, nullptr)[0].reserved, 0);
}

// A new scope is a new account restored from the ledger; a request admitted before the reload
// and settled after it is not in what the restore read, so it is charged there too.
TEST(BudgetEngine, AReloadThatChangesTheScopeChargesTheRequestsStillInFlight) {
  cfg::budgets_config c;
  c.definitions.push_back(budget("daily", 100 * usd, bm::budget_action::block));
  const auto now = utc(2026, 11, 26, 12);
  budget_restore_fn restore = [&](const bm::budget_def&, bm::instant) {
    return std::optional<bm::money_total>(7 * usd);
  };
  budget_engine first(c, nullptr, restore, now);
  auto x = first.admit(who("x"), 4 * usd, now, nullptr, chr::seconds(60));
  auto y = first.admit(who("y"), 4 * usd, now, nullptr, chr::seconds(60));
  c.definitions[0].def.scope.team = "x";
  budget_engine second(c, &first, restore, now);
  first.settle(x, who("x"), 2 * usd, now, now, nullptr);
  first.settle(y, who("y"), 2 * usd, now, now, nullptr);  // outside the new scope
  EXPECT_EQ(second.status(now, nullptr)[0].spent, 7 * usd + 2 * usd);
  EXPECT_EQ(first.status(now, nullptr)[0].reserved, 0);
}

TEST(BudgetEngine, ForecastExtrapolatesThePaceToPeriodEnd) {
  cfg::budgets_config c;
  c.definitions.push_back(budget("daily", 10 * usd, bm::budget_action::alert));
  const auto noon = utc(2026, 11, 26, 12);
  budget_engine e(c, nullptr, {}, noon);
  auto a = e.admit(who("x"), 0, noon, nullptr, chr::seconds(60));
  e.settle(a, who("x"), 3 * usd, noon, noon, nullptr);
  const auto s = e.status(noon, nullptr)[0];
  EXPECT_EQ(s.forecast, 6 * usd);  // half the day gone, $3 spent
  const auto doc = boost::json::parse(budgets_json({s}, noon));
  const auto& b = doc.at("budgets").at(0);
  EXPECT_EQ(b.at("name").as_string(), "daily");
  EXPECT_DOUBLE_EQ(b.at("used_percent").to_number<double>(), 30.0);
  EXPECT_DOUBLE_EQ(b.at("forecast_percent").to_number<double>(), 60.0);
  EXPECT_EQ(b.at("forecast_usd").as_string(), "6.000000");
  EXPECT_EQ(b.at("period_end").as_string(), "2026-11-27T00:00:00Z");
  EXPECT_EQ(b.at("action").as_string(), "alert");
}

TEST(BudgetEngine, ThresholdsAreReportedOnceWhenCrossed) {
  cfg::budgets_config c;
  c.definitions.push_back(budget("daily", 10 * usd, bm::budget_action::alert));
  const auto now = utc(2026, 11, 26, 12);
  budget_engine e(c, nullptr, {}, now);
  std::vector<int> seen;
  for (int i = 0; i < 12; ++i) {
    for (const auto& ev : e.settle({}, who("x"), 1 * usd, now, now, nullptr)) {
      EXPECT_EQ(ev.budget, "daily");
      seen.push_back(ev.percent);
    }
  }
  EXPECT_EQ(seen, (std::vector<int>{50, 80, 100}));
}

TEST(BudgetEngine, SharedStoreEnforcesAcrossTwoEngines) {
  cfg::budgets_config c;
  c.store = cfg::budget_store_kind::redis;
  c.definitions.push_back(budget("shared", 3 * usd, bm::budget_action::block));
  const auto now = utc(2026, 11, 26, 12);
  memory_store store;
  budget_engine a(c, nullptr, {}, now);
  budget_engine b(c, nullptr, {}, now);
  int admitted = 0;
  for (int i = 0; i < 5; ++i) {
    auto& e = i % 2 ? b : a;
    auto r = e.admit(who("x"), 1 * usd, now, &store, chr::seconds(60));
    if (r.result == budget_admission::verdict::admitted) ++admitted;
  }
  EXPECT_EQ(admitted, 3);  // each replica alone would have admitted 3
  const auto st = a.status(now, &store)[0];
  EXPECT_EQ(st.source, "redis");
  EXPECT_EQ(st.reserved, 3 * usd);
}

TEST(BudgetEngine, StoreDownFailsOpenOrClosedAsConfigured) {
  const auto now = utc(2026, 11, 26, 12);
  memory_store store;
  store.down = true;
  for (auto fallback : {cfg::budget_store_fallback::open, cfg::budget_store_fallback::closed}) {
    cfg::budgets_config c;
    c.store = cfg::budget_store_kind::redis;
    c.on_store_unavailable = fallback;
    c.definitions.push_back(budget("shared", 3 * usd, bm::budget_action::block));
    budget_engine e(c, nullptr, {}, now);
    const auto r = e.admit(who("x"), 1 * usd, now, &store, chr::seconds(60));
    EXPECT_TRUE(r.store_failed);
    if (fallback == cfg::budget_store_fallback::open) {
      EXPECT_EQ(r.result, budget_admission::verdict::admitted);
      EXPECT_EQ(e.totals().fail_open, 1u);
      // Counted locally meanwhile, so the local view still has the spend.
      e.settle(r, who("x"), 1 * usd, now, now, &store);
      EXPECT_EQ(e.status(now, nullptr)[0].spent, 1 * usd);
      EXPECT_EQ(e.status(now, &store)[0].source, "local (redis unavailable)");
    } else {
      EXPECT_EQ(r.result, budget_admission::verdict::unavailable);
      EXPECT_NE(r.message.find("fail closed"), std::string::npos);
      EXPECT_EQ(e.totals().fail_closed, 1u);
    }
  }
}

TEST(BudgetEngine, SeedsAFreshStoreFromTheLedgerButNeverOverwrites) {
  cfg::budgets_config c;
  c.store = cfg::budget_store_kind::redis;
  c.definitions.push_back(budget("shared", 10 * usd, bm::budget_action::block));
  const auto now = utc(2026, 11, 26, 12);
  budget_restore_fn restore = [](const bm::budget_def&, bm::instant) {
    return std::optional<bm::money_total>(2 * usd);
  };
  memory_store store;
  budget_engine a(c, nullptr, restore, now);
  a.seed_store(now, store);
  EXPECT_EQ(a.status(now, &store)[0].spent, 2 * usd);
  budget_engine b(
      c, nullptr,
      [](const bm::budget_def&, bm::instant) { return std::optional<bm::money_total>(7 * usd); },
      now);
  b.seed_store(now, store);  // a second replica's ledger does not replace or add
  EXPECT_EQ(b.status(now, &store)[0].spent, 2 * usd);
}

TEST(BudgetDescriptions, ScopesAndPeriodsInWords) {
  EXPECT_EQ(describe_scope({}), "everything");
  bm::budget_scope s;
  s.team = "research";
  s.model = "amazon.nova-lite-v1:0";
  EXPECT_EQ(describe_scope(s), "team=research,model=amazon.nova-lite-v1:0");
}
