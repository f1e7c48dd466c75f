// Budget core tests: periods in real zones, exact rollover, admission without overshoot,
// settlement and thresholds. Clocks are injected instants only.
#include "metering/budget.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <memory>
#include <vector>

namespace bm = bedrock_meter::metering;
namespace chr = std::chrono;

namespace {

bm::instant utc(int y, unsigned m, unsigned d, int h = 0, int mi = 0) {
  const chr::sys_days day{chr::year{y} / chr::month{m} / chr::day{d}};
  return bm::instant{day + chr::hours{h} + chr::minutes{mi}};
}

std::shared_ptr<const bm::time_zone> zone(const char* name) {
  auto r = bm::load_zone(name);
  EXPECT_TRUE(r) << r.error().message;
  return std::make_shared<const bm::time_zone>(r ? *r : bm::time_zone{});
}

bm::budget_period daily() { return {bm::period_kind::daily, {}, 0}; }
bm::budget_period weekly() { return {bm::period_kind::weekly, {}, 0}; }
bm::budget_period monthly() { return {bm::period_kind::monthly, {}, 0}; }

bm::period_window window(bm::instant a, bm::instant b) { return {a, b}; }

constexpr bm::pico_usd usd = bm::pico_per_usd;

bm::budget_def block_budget(bm::pico_usd limit, bm::budget_period p = daily()) {
  bm::budget_def d;
  d.name = "team-a-daily";
  d.period = p;
  d.limit = limit;
  d.warning_percents = {50, 80, 100};
  d.action = bm::budget_action::block;
  return d;
}

}  // namespace

TEST(BudgetScope, EverySetFieldMustEqual) {
  const bm::request_attribution who{"search", "ranker", "alice", "anthropic.claude-3-haiku"};
  EXPECT_TRUE(bm::budget_scope{}.matches(who));
  bm::budget_scope s;
  s.team = "search";
  EXPECT_TRUE(s.matches(who));
  s.app = "ranker";
  s.model = "anthropic.claude-3-haiku";
  EXPECT_TRUE(s.matches(who));
  s.identity = "bob";
  EXPECT_FALSE(s.matches(who));
  bm::budget_scope other_team;
  other_team.team = "ads";
  EXPECT_FALSE(other_team.matches(who));
  bm::budget_scope model_only;
  model_only.model = "amazon.nova-pro";
  EXPECT_FALSE(model_only.matches(who));
  bm::budget_scope prefix;
  prefix.team = "sea";  // no prefix matching
  EXPECT_FALSE(prefix.matches(who));
}

TEST(BudgetPeriod, DailyUtcAndKolkata) {
  const auto u = zone("UTC");
  EXPECT_EQ(bm::period_bounds(daily(), *u, utc(2024, 6, 15, 12)),
            window(utc(2024, 6, 15), utc(2024, 6, 16)));
  EXPECT_EQ(bm::period_bounds(daily(), *u, utc(2024, 12, 31, 23, 59)),
            window(utc(2024, 12, 31), utc(2025, 1, 1)));
  const auto k = zone("Asia/Kolkata");
  // 20:00 UTC is already the next day in India (01:30 local).
  EXPECT_EQ(bm::period_bounds(daily(), *k, utc(2024, 6, 15, 20)),
            window(utc(2024, 6, 15, 18, 30), utc(2024, 6, 16, 18, 30)));
}

TEST(BudgetPeriod, NewYorkDstDaysAre23And25Hours) {
  const auto ny = zone("America/New_York");
  const auto spring = bm::period_bounds(daily(), *ny, utc(2024, 3, 10, 12));
  EXPECT_EQ(spring, window(utc(2024, 3, 10, 5), utc(2024, 3, 11, 4)));
  EXPECT_EQ(spring.end - spring.start, chr::hours{23});
  const auto fall = bm::period_bounds(daily(), *ny, utc(2024, 11, 3, 12));
  EXPECT_EQ(fall, window(utc(2024, 11, 3, 4), utc(2024, 11, 4, 5)));
  EXPECT_EQ(fall.end - fall.start, chr::hours{25});
  // Far beyond the table, from the footer rule: 2100-03-14 is the second Sunday of March.
  const auto far = bm::period_bounds(daily(), *ny, utc(2100, 3, 14, 12));
  EXPECT_EQ(far.end - far.start, chr::hours{23});
}

TEST(BudgetPeriod, LordHoweHalfHourDstDays) {
  const auto lh = zone("Australia/Lord_Howe");
  // 2024-10-06 local: starts at +10:30, ends at +11 -> 23.5 hours.
  const auto oct = bm::period_bounds(daily(), *lh, utc(2024, 10, 6, 0));
  EXPECT_EQ(oct, window(utc(2024, 10, 5, 13, 30), utc(2024, 10, 6, 13)));
  EXPECT_EQ(oct.end - oct.start, chr::minutes{23 * 60 + 30});
  // 2024-04-07 local: starts at +11, ends at +10:30 -> 24.5 hours.
  const auto apr = bm::period_bounds(daily(), *lh, utc(2024, 4, 7, 0));
  EXPECT_EQ(apr, window(utc(2024, 4, 6, 13), utc(2024, 4, 7, 13, 30)));
  EXPECT_EQ(apr.end - apr.start, chr::minutes{24 * 60 + 30});
}

TEST(BudgetPeriod, WeeksStartMondayAcrossYearEnd) {
  const auto u = zone("UTC");
  // 2024-06-15 is a Saturday, 06-16 a Sunday, 06-17 a Monday.
  EXPECT_EQ(bm::period_bounds(weekly(), *u, utc(2024, 6, 15, 9)),
            window(utc(2024, 6, 10), utc(2024, 6, 17)));
  EXPECT_EQ(bm::period_bounds(weekly(), *u, utc(2024, 6, 16, 23, 59)),
            window(utc(2024, 6, 10), utc(2024, 6, 17)));
  EXPECT_EQ(bm::period_bounds(weekly(), *u, utc(2024, 6, 17)),
            window(utc(2024, 6, 17), utc(2024, 6, 24)));
  EXPECT_EQ(bm::period_bounds(weekly(), *u, utc(2024, 12, 31, 12)),
            window(utc(2024, 12, 30), utc(2025, 1, 6)));
  // Berlin week containing the March 2024 DST switch: 7 days less an hour.
  const auto b = zone("Europe/Berlin");
  const auto w = bm::period_bounds(weekly(), *b, utc(2024, 3, 28, 12));
  EXPECT_EQ(w, window(utc(2024, 3, 24, 23), utc(2024, 3, 31, 22)));
}

TEST(BudgetPeriod, MonthsLeapYearsAndYearEnd) {
  const auto u = zone("UTC");
  EXPECT_EQ(bm::period_bounds(monthly(), *u, utc(2024, 2, 10)),
            window(utc(2024, 2, 1), utc(2024, 3, 1)));
  EXPECT_EQ(bm::period_bounds(monthly(), *u, utc(2024, 2, 29, 23, 59)).end, utc(2024, 3, 1));
  const auto feb23 = bm::period_bounds(monthly(), *u, utc(2023, 2, 10));
  EXPECT_EQ(feb23.end - feb23.start, chr::days{28});
  const auto feb24 = bm::period_bounds(monthly(), *u, utc(2024, 2, 10));
  EXPECT_EQ(feb24.end - feb24.start, chr::days{29});
  const auto feb00 = bm::period_bounds(monthly(), *u, utc(2100, 2, 10));  // 2100: not leap
  EXPECT_EQ(feb00.end - feb00.start, chr::days{28});
  EXPECT_EQ(bm::period_bounds(monthly(), *u, utc(2024, 12, 31, 23)),
            window(utc(2024, 12, 1), utc(2025, 1, 1)));
  // Berlin March 2024 loses an hour to DST.
  const auto b = zone("Europe/Berlin");
  EXPECT_EQ(bm::period_bounds(monthly(), *b, utc(2024, 3, 15)),
            window(utc(2024, 2, 29, 23), utc(2024, 3, 31, 22)));
  // In Berlin, 23:30 UTC on Jan 31 is already February.
  EXPECT_EQ(bm::period_bounds(monthly(), *b, utc(2024, 1, 31, 23, 30)).start, utc(2024, 1, 31, 23));
}

TEST(BudgetPeriod, CustomPeriodsRepeatBothWays) {
  const auto u = zone("UTC");
  bm::budget_period p{bm::period_kind::custom, chr::year{2024} / 1 / 1, 10};
  EXPECT_EQ(bm::period_bounds(p, *u, utc(2024, 1, 25)), window(utc(2024, 1, 21), utc(2024, 1, 31)));
  EXPECT_EQ(bm::period_bounds(p, *u, utc(2024, 1, 1)), window(utc(2024, 1, 1), utc(2024, 1, 11)));
  EXPECT_EQ(bm::period_bounds(p, *u, utc(2023, 12, 31, 23)),
            window(utc(2023, 12, 22), utc(2024, 1, 1)));
  // A week-long custom period spanning Feb 29.
  bm::budget_period leap{bm::period_kind::custom, chr::year{2024} / 2 / 25, 7};
  EXPECT_EQ(bm::period_bounds(leap, *u, utc(2024, 2, 29, 12)),
            window(utc(2024, 2, 25), utc(2024, 3, 3)));
  // In New York, a custom day count across the fall-back switch is an hour longer.
  const auto ny = zone("America/New_York");
  bm::budget_period fortnight{bm::period_kind::custom, chr::year{2024} / 10 / 28, 14};
  const auto w = bm::period_bounds(fortnight, *ny, utc(2024, 11, 5));
  EXPECT_EQ(w, window(utc(2024, 10, 28, 4), utc(2024, 11, 11, 5)));
}

TEST(BudgetAccount, RollsExactlyAtTheBoundary) {
  bm::budget_account acct(block_budget(10 * usd), zone("America/New_York"), utc(2024, 3, 10, 12));
  const auto end = utc(2024, 3, 11, 4);
  ASSERT_EQ(acct.window().end, end);
  acct.charge(utc(2024, 3, 10, 13), 2 * usd);
  EXPECT_FALSE(acct.roll(end - chr::nanoseconds{1}));
  EXPECT_EQ(acct.spent(), 2 * usd);
  acct.charge(end - chr::milliseconds{1}, 1 * usd);
  EXPECT_EQ(acct.spent(), 3 * usd);
  EXPECT_TRUE(acct.roll(end));
  EXPECT_EQ(acct.spent(), 0);
  EXPECT_EQ(acct.window(), window(end, utc(2024, 3, 12, 4)));
  // A clock stepping back does not wipe the new period.
  acct.charge(end, 1 * usd);
  EXPECT_FALSE(acct.roll(end - chr::hours{1}));
  EXPECT_EQ(acct.spent(), 1 * usd);
  // Skipping several periods lands in the one containing now.
  EXPECT_TRUE(acct.roll(utc(2024, 4, 2, 12)));
  EXPECT_EQ(acct.window(), window(utc(2024, 4, 2, 4), utc(2024, 4, 3, 4)));
}

TEST(BudgetAccount, BurstOfHundredNeverExceedsLimit) {
  const auto now = utc(2024, 6, 15, 12);
  bm::budget_account acct(block_budget(1 * usd), zone("UTC"), now);
  // 100 concurrent requests each worth up to 3 cents: only 33 fit.
  std::vector<bm::reservation> held;
  int blocked = 0;
  for (int i = 0; i < 100; ++i) {
    const auto r = acct.try_reserve(now, 3 * usd / 100);
    if (r.status == bm::reserve_status::reserved) {
      held.push_back(r.held);
    } else {
      EXPECT_EQ(r.status, bm::reserve_status::blocked);
      ++blocked;
    }
    EXPECT_LE(acct.spent() + acct.reserved(), 1 * usd);
  }
  EXPECT_EQ(held.size(), 33U);
  EXPECT_EQ(blocked, 67);
  EXPECT_EQ(acct.blocked_count(), 67U);
  for (const auto& r : held) EXPECT_TRUE(acct.settle(now, r, r.amount).ok);
  EXPECT_EQ(acct.spent(), 99 * usd / 100);
  EXPECT_EQ(acct.reserved(), 0);
  EXPECT_LE(acct.spent(), 1 * usd);
}

TEST(BudgetAccount, InterleavedReserveSettleStaysWithinLimit) {
  const auto now = utc(2024, 6, 15, 12);
  bm::budget_account acct(block_budget(5 * usd), zone("UTC"), now);
  std::vector<bm::reservation> in_flight;
  std::uint64_t lcg = 12345;
  auto next = [&] { return lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL; };
  int admitted = 0;
  for (int step = 0; step < 2000; ++step) {
    if (in_flight.empty() || next() % 3 != 0) {
      const auto worst = static_cast<bm::pico_usd>(next() % (usd / 5)) + 1;
      const auto r = acct.try_reserve(now, worst);
      if (r.status == bm::reserve_status::reserved) {
        in_flight.push_back(r.held);
        ++admitted;
      }
    } else {
      const std::size_t k = next() % in_flight.size();
      const auto r = in_flight[k];
      in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(k));
      const auto actual =
          static_cast<bm::pico_usd>(next() % static_cast<std::uint64_t>(r.amount + 1));
      ASSERT_TRUE(acct.settle(now, r, actual).ok);
    }
    ASSERT_LE(acct.spent() + acct.reserved(), 5 * usd) << "step " << step;
  }
  EXPECT_GT(admitted, 10);
  EXPECT_GT(acct.blocked_count(), 0U);
  EXPECT_EQ(acct.overrun_count(), 0U);
}

TEST(BudgetAccount, SettleBelowAtAndAboveReservation) {
  const auto now = utc(2024, 6, 15, 12);
  bm::budget_account acct(block_budget(10 * usd), zone("UTC"), now);
  const auto a = acct.try_reserve(now, 1 * usd).held;
  const auto b = acct.try_reserve(now, 1 * usd).held;
  const auto c = acct.try_reserve(now, 1 * usd).held;
  EXPECT_EQ(acct.reserved(), 3 * usd);
  EXPECT_EQ(acct.outstanding(), 3U);

  auto below = acct.settle(now, a, usd / 4);
  EXPECT_TRUE(below.ok);
  EXPECT_EQ(below.overrun, 0);
  EXPECT_EQ(acct.spent(), usd / 4);
  EXPECT_EQ(acct.reserved(), 2 * usd);

  auto equal = acct.settle(now, b, 1 * usd);
  EXPECT_EQ(equal.overrun, 0);
  EXPECT_EQ(acct.spent(), usd / 4 + usd);

  auto above = acct.settle(now, c, 3 * usd);  // the estimate was wrong
  EXPECT_TRUE(above.ok);
  EXPECT_EQ(above.overrun, 2 * usd);
  EXPECT_EQ(acct.overrun_count(), 1U);
  EXPECT_EQ(acct.overrun_total(), 2 * usd);
  EXPECT_EQ(acct.spent(), usd / 4 + 4 * usd);
  EXPECT_EQ(acct.reserved(), 0);

  // Settling twice, or a reservation never made, is refused and changes nothing.
  EXPECT_FALSE(acct.settle(now, c, 1 * usd).ok);
  EXPECT_FALSE(acct.settle(now, bm::reservation{999, usd}, 1 * usd).ok);
  EXPECT_EQ(acct.spent(), usd / 4 + 4 * usd);
  EXPECT_EQ(acct.try_reserve(now, -1).status, bm::reserve_status::invalid);
}

TEST(BudgetAccount, BlocksOnceLimitReachedAndWorstCaseAloneTooBig) {
  const auto now = utc(2024, 6, 15, 12);
  bm::budget_account acct(block_budget(1 * usd), zone("UTC"), now);
  // A single request whose worst case exceeds what is left is blocked even with nothing spent.
  EXPECT_EQ(acct.try_reserve(now, 1 * usd + 1).status, bm::reserve_status::blocked);
  const auto r = acct.try_reserve(now, 1 * usd);
  ASSERT_EQ(r.status, bm::reserve_status::reserved);
  EXPECT_EQ(acct.try_reserve(now, 1).status, bm::reserve_status::blocked);
  EXPECT_FALSE(acct.exhausted(now));
  acct.settle(now, r.held, 1 * usd);
  EXPECT_TRUE(acct.exhausted(now));
  EXPECT_EQ(acct.try_reserve(now, 0).status, bm::reserve_status::blocked);
  // Next day: admitted again.
  EXPECT_EQ(acct.try_reserve(utc(2024, 6, 16), 1).status, bm::reserve_status::reserved);
  EXPECT_FALSE(acct.exhausted(utc(2024, 6, 16)));
}

TEST(BudgetAccount, ReservationOutlivingPeriodLandsInNewPeriod) {
  const auto late = utc(2024, 6, 15, 23, 59);
  bm::budget_account acct(block_budget(1 * usd), zone("UTC"), late);
  acct.charge(late, usd / 2);
  const auto r = acct.try_reserve(late, usd / 2);
  ASSERT_EQ(r.status, bm::reserve_status::reserved);
  const auto next = utc(2024, 6, 16, 0, 1);
  EXPECT_TRUE(acct.roll(next));
  EXPECT_EQ(acct.spent(), 0);
  EXPECT_EQ(acct.reserved(), usd / 2);  // still in flight, still held
  // The in-flight reservation still counts against the new period.
  EXPECT_EQ(acct.try_reserve(next, usd / 2 + 1).status, bm::reserve_status::blocked);
  const auto s = acct.settle(next, r.held, usd / 5);
  EXPECT_TRUE(s.ok);
  EXPECT_EQ(acct.spent(), usd / 5);
  EXPECT_EQ(acct.reserved(), 0);
}

TEST(BudgetAccount, SpendBelongsToThePeriodOfArrivalLikeTheLedger) {
  // A request that arrives at 23:59 and ends after midnight is in yesterday's ledger rows, so a
  // restart would not count it today; the live account must agree.
  const auto late = utc(2024, 6, 15, 23, 59);
  bm::budget_account acct(block_budget(1 * usd), zone("UTC"), late);
  const auto r = acct.try_reserve(late, usd / 2);
  ASSERT_EQ(r.status, bm::reserve_status::reserved);
  const auto next = utc(2024, 6, 16, 0, 1);
  const auto s = acct.settle(next, r.held, usd / 5, late);
  EXPECT_TRUE(s.ok);
  EXPECT_EQ(acct.spent(), 0);     // booked to the ended period
  EXPECT_EQ(acct.reserved(), 0);  // but the reservation is released
  EXPECT_TRUE(acct.charge(next, usd / 5, late).empty());
  EXPECT_EQ(acct.spent(), 0);
  // Arrival in the current period books normally, including exactly at its start.
  acct.charge(next, usd / 5, utc(2024, 6, 16));
  EXPECT_EQ(acct.spent(), usd / 5);
}

TEST(BudgetThresholds, EachCrossedOncePerPeriod) {
  const auto now = utc(2024, 6, 15, 12);
  bm::budget_account acct(block_budget(100 * usd), zone("UTC"), now);
  std::vector<int> seen;
  for (int i = 0; i < 130; ++i) {
    for (int p : acct.charge(now, 1 * usd)) {
      seen.push_back(p);
      // Reported exactly when spend reaches the mark.
      EXPECT_EQ(acct.spent(), static_cast<bm::money_total>(p) * usd);
    }
  }
  EXPECT_EQ(seen, (std::vector<int>{50, 80, 100}));
  // A new period crosses them again.
  const auto tomorrow = utc(2024, 6, 16, 1);
  EXPECT_EQ(acct.charge(tomorrow, 85 * usd), (std::vector<int>{50, 80}));
}

TEST(BudgetThresholds, FreeFunctionIsExactAtTheMark) {
  const std::vector<int> p{50, 80, 100};
  const bm::pico_usd limit = 3;  // 50% of 3 pico is 1.5: crossed at 2, not at 1
  EXPECT_TRUE(bm::thresholds_crossed(p, limit, 0, 1).empty());
  EXPECT_EQ(bm::thresholds_crossed(p, limit, 1, 2), (std::vector<int>{50}));
  EXPECT_EQ(bm::thresholds_crossed(p, limit, 0, 3), (std::vector<int>{50, 80, 100}));
  EXPECT_TRUE(bm::thresholds_crossed(p, limit, 3, 10).empty());
  EXPECT_TRUE(bm::thresholds_crossed(p, 100 * usd, 10 * usd, 49 * usd).empty());
  EXPECT_EQ(bm::thresholds_crossed(p, 100 * usd, 79 * usd, 80 * usd), (std::vector<int>{80}));
}

TEST(BudgetEstimate, ConservativeWorstCase) {
  EXPECT_EQ(bm::estimate_input_tokens(0), 0U);
  EXPECT_EQ(bm::estimate_input_tokens(1), 1U);
  EXPECT_EQ(bm::estimate_input_tokens(4001), 2001U);
  EXPECT_EQ(bm::estimate_input_tokens(10, 0), 10U);
  EXPECT_EQ(bm::estimate_output_tokens(std::nullopt, 8192), 8192U);
  EXPECT_EQ(bm::estimate_output_tokens(512, 8192), 512U);
  EXPECT_EQ(bm::estimate_output_tokens(100000, 8192), 8192U);
  // 1000 in at $3/M and 500 out at $15/M = 0.003 + 0.0075 USD.
  EXPECT_EQ(bm::worst_case_cost(1000, 500, 3'000'000, 15'000'000), usd * 105 / 10000);
  EXPECT_EQ(bm::worst_case_cost(~0ULL, ~0ULL, 15'000'000, 15'000'000),
            std::numeric_limits<bm::pico_usd>::max());
}

TEST(BudgetValidate, RejectsUnusableDefinitions) {
  EXPECT_EQ(bm::validate_budget(block_budget(usd)), "");
  auto d = block_budget(0);
  EXPECT_NE(bm::validate_budget(d), "");
  d = block_budget(usd, {bm::period_kind::custom, chr::year{2024} / 1 / 1, 0});
  EXPECT_NE(bm::validate_budget(d), "");
  d = block_budget(usd, {bm::period_kind::custom, chr::year{2024} / 2 / 30, 7});
  EXPECT_NE(bm::validate_budget(d), "");
  d = block_budget(usd);
  d.warning_percents = {80, 50};
  EXPECT_NE(bm::validate_budget(d), "");
  d.name.clear();
  EXPECT_NE(bm::validate_budget(d), "");
}
