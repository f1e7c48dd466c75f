// The read side: totals (restored into the Prometheus counters at start), spend and reports.
#include "accounting/ledger.hpp"

#include <gtest/gtest.h>

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/accounting/ledger_test_support.hpp"

namespace bedrock_meter::accounting {
namespace {

using metering::money_total;
using metering::pico_usd;

// --- totals
// ----------------------------------------------------------------------------------------

TEST(LedgerTotals, EqualSumsComputedFromTheRecords) {
  temp_dir dir;
  const auto path = dir.file("t.db");
  std::vector<ledger_record> recs;
  for (int i = 0; i < 3000; ++i) recs.push_back(make_record(7, i));
  {
    auto l = open_or_die(path);
    ASSERT_TRUE(l);
    for (const auto& r : recs) ASSERT_TRUE(l->append(r));
    l->close();
  }
  auto l = open_or_die(path);
  ASSERT_TRUE(l);
  expect_totals(l->reader(), recs);
}

TEST(LedgerTotals, MoneyBeyondInt64IsSummedExactly) {
  temp_dir dir;
  const auto path = dir.file("huge.db");
  auto l = open_or_die(path);
  ASSERT_TRUE(l);
  // 40 records of ~4.6M USD each (and odd low bits): the sum is ~20x INT64_MAX pico-USD.
  money_total expected = 0;
  for (int i = 0; i < 40; ++i) {
    auto r = make_record(1, i);
    r.team = "big";
    r.operation = "Converse";
    r.model_label = "m";
    r.region = "us-east-1";
    r.service_tier = "standard";
    r.app = "a";
    r.status = 200;
    r.input_cost = INT64_MAX / 2 + std::int64_t{123'456'789} * i + 1;
    r.output_cost = INT64_MAX - i;
    r.cache_read_cost = 0;
    r.cache_write_cost = 0;
    r.total_cost = INT64_MAX - 7 * i;
    expected += r.total_cost;
    ASSERT_TRUE(l->append(std::move(r)));
  }
  ASSERT_TRUE(l->flush());
  ASSERT_GT(expected, money_total{INT64_MAX} * 20);

  money_total expected_input = 0;
  money_total expected_output = 0;
  for (int i = 0; i < 40; ++i) {
    expected_input += INT64_MAX / 2 + std::int64_t{123'456'789} * i + 1;
    expected_output += INT64_MAX - i;
  }
  auto totals = l->reader().totals();
  ASSERT_TRUE(totals) << totals.error().message;
  ASSERT_EQ(totals->size(), 1u);
  EXPECT_EQ(i128(totals->front().input_cost), i128(expected_input));
  EXPECT_EQ(i128(totals->front().output_cost), i128(expected_output));
  EXPECT_EQ(i128(totals->front().total_cost), i128(expected));

  auto spend = l->reader().spend_since(0, spend_filter{.team = "big"});
  ASSERT_TRUE(spend) << spend.error().message;
  EXPECT_EQ(i128(*spend), i128(expected));

  auto report = l->reader().query_report(INT64_MIN, INT64_MAX, {report_key::team});
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->size(), 1u);
  EXPECT_EQ(i128(report->front().total_cost), i128(expected));
}

// --- queries
// ---------------------------------------------------------------------------------------

ledger_record spend(std::int64_t t, std::string team, std::string app, std::string principal,
                    std::string model, pico_usd cost) {
  ledger_record r;
  r.time_ms = t;
  r.request_id = "s-" + std::to_string(t) + team + app + principal + model;
  r.team = std::move(team);
  r.app = std::move(app);
  r.principal = std::move(principal);
  r.model_base = model;
  r.model_label = model.empty() ? "other" : model;
  r.input_tokens = 10;
  r.output_tokens = 5;
  r.input_cost = cost / 2;
  r.output_cost = cost - cost / 2;
  r.total_cost = cost;
  r.priced = true;
  return r;
}

TEST(LedgerQuery, SpendSinceAppliesEachFilter) {
  temp_dir dir;
  auto l = open_or_die(dir.file("spend.db"));
  ASSERT_TRUE(l);
  const std::vector<ledger_record> recs = {
      spend(1000, "a", "x", "k1", "m1", 1),     spend(2000, "a", "y", "k1", "m2", 10),
      spend(3000, "b", "x", "k2", "m1", 100),   spend(4000, "b", "y", "k3", "m2", 1000),
      spend(5000, "a", "x", "k2", "m2", 10000), spend(999, "a", "x", "k1", "m1", 100000),
  };
  for (const auto& r : recs) ASSERT_TRUE(l->append(r));
  ASSERT_TRUE(l->flush());
  auto& rd = l->reader();
  auto total = [&](std::int64_t from, spend_filter f) {
    auto s = rd.spend_since(from, f);
    EXPECT_TRUE(s) << s.error().message;
    return s ? static_cast<std::int64_t>(*s) : -1;
  };
  EXPECT_EQ(total(1000, {}), 11111);
  EXPECT_EQ(total(0, {}), 111111);
  EXPECT_EQ(total(1000, {.team = "a"}), 10011);
  EXPECT_EQ(total(1000, {.app = "x"}), 10101);
  EXPECT_EQ(total(1000, {.principal = "k2"}), 10100);
  EXPECT_EQ(total(1000, {.model_base = "m2"}), 11010);
  EXPECT_EQ(total(1000, {.model_label = "m1"}), 101);
  EXPECT_EQ(total(1000, {.team = "a", .app = "x"}), 10001);
  EXPECT_EQ(total(3000, {.team = "b"}), 1100);
  EXPECT_EQ(total(3001, {.team = "b"}), 1000);
  EXPECT_EQ(total(1000, {.team = "nobody"}), 0);
}

TEST(LedgerQuery, ReportGroupsByUtcDayAtTheBoundaries) {
  temp_dir dir;
  auto l = open_or_die(dir.file("report.db"));
  ASSERT_TRUE(l);
  constexpr std::int64_t day = 86'400'000;
  constexpr std::int64_t d0 = 20'000 * day;  // 2024-10-04T00:00:00Z
  const std::vector<ledger_record> recs = {
      spend(d0 - 1, "a", "x", "k", "m1", 1),          // 2024-10-03 23:59:59.999
      spend(d0, "a", "x", "k", "m1", 10),             // 2024-10-04 00:00:00.000
      spend(d0 + day - 1, "b", "x", "k", "m2", 100),  // 2024-10-04 23:59:59.999
      spend(d0 + day, "a", "y", "k", "m1", 1000),     // 2024-10-05 00:00:00.000
      spend(d0 + day + 5, "a", "y", "k", "m2", 10000),
  };
  for (const auto& r : recs) ASSERT_TRUE(l->append(r));
  ASSERT_TRUE(l->flush());

  auto by_day = l->reader().query_report(d0 - day, d0 + 2 * day, {report_key::day});
  ASSERT_TRUE(by_day) << by_day.error().message;
  ASSERT_EQ(by_day->size(), 3u);
  const auto& rows = *by_day;
  EXPECT_EQ(rows[0].keys, std::vector<std::string>{"2024-10-03"});
  EXPECT_EQ(rows[0].requests, 1u);
  EXPECT_EQ(static_cast<std::int64_t>(rows[0].total_cost), 1);
  EXPECT_EQ(rows[1].keys, std::vector<std::string>{"2024-10-04"});
  EXPECT_EQ(rows[1].requests, 2u);
  EXPECT_EQ(static_cast<std::int64_t>(rows[1].total_cost), 110);
  EXPECT_EQ(rows[1].input_tokens, 20u);
  EXPECT_EQ(rows[1].output_tokens, 10u);
  EXPECT_EQ(static_cast<std::int64_t>(rows[1].input_cost + rows[1].output_cost), 110);
  EXPECT_EQ(rows[2].keys, std::vector<std::string>{"2024-10-05"});
  EXPECT_EQ(static_cast<std::int64_t>(rows[2].total_cost), 11000);

  // [from, to): the range end excludes its own millisecond.
  auto one_day = l->reader().query_report(d0, d0 + day, {report_key::day, report_key::team});
  ASSERT_TRUE(one_day) << one_day.error().message;
  ASSERT_EQ(one_day->size(), 2u);
  EXPECT_EQ((*one_day)[0].keys, (std::vector<std::string>{"2024-10-04", "a"}));
  EXPECT_EQ((*one_day)[1].keys, (std::vector<std::string>{"2024-10-04", "b"}));
  EXPECT_EQ(static_cast<std::int64_t>((*one_day)[1].total_cost), 100);

  auto by_model =
      l->reader().query_report(INT64_MIN, INT64_MAX, {report_key::app, report_key::model_base});
  ASSERT_TRUE(by_model) << by_model.error().message;
  ASSERT_EQ(by_model->size(), 4u);
  EXPECT_EQ((*by_model)[0].keys, (std::vector<std::string>{"x", "m1"}));
  EXPECT_EQ(static_cast<std::int64_t>((*by_model)[0].total_cost), 11);

  auto everything = l->reader().query_report(INT64_MIN, INT64_MAX, {});
  ASSERT_TRUE(everything) << everything.error().message;
  ASSERT_EQ(everything->size(), 1u);
  EXPECT_EQ(everything->front().requests, 5u);
  auto nothing = l->reader().query_report(0, 1, {});
  ASSERT_TRUE(nothing);
  EXPECT_TRUE(nothing->empty());
}

// Reports read whole days from spend_daily and partial ends from the rows: for any window and
// any grouping, the answer must equal the sums computed from the records themselves, before and
// after a prune (whose delete trigger takes rows out of the days again).
TEST(LedgerQuery, DailySpendAnswersEveryWindowAsTheRowsDo) {
  temp_dir dir;
  const auto path = dir.file("daily.db");
  auto l = open_or_die(path);
  ASSERT_TRUE(l);
  constexpr std::int64_t day = 86'400'000;
  constexpr std::int64_t d0 = 20'000 * day;
  std::vector<ledger_record> recs;
  std::uint64_t seed = 42;
  const auto next = [&seed](std::uint64_t n) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (seed >> 33) % n;
  };
  const char* teams[] = {"a", "b", "c"};
  const char* models[] = {"m1", "m2", ""};
  for (int i = 0; i < 1500; ++i) {
    const auto t = d0 + static_cast<std::int64_t>(next(10 * day));
    recs.push_back(spend(t, teams[next(3)], i % 2 ? "x" : "y", "k", models[next(3)],
                         static_cast<pico_usd>(next(1'000'000'000) + 1)));
    recs.back().request_id += "-" + std::to_string(i);
  }
  for (const auto& r : recs) ASSERT_TRUE(l->append(r));
  ASSERT_TRUE(l->flush());

  const auto check = [&](std::int64_t from, std::int64_t to, std::vector<report_key> keys,
                         std::int64_t floor) {
    std::map<std::vector<std::string>, std::pair<std::uint64_t, money_total>> want;
    for (const auto& r : recs) {
      if (r.time_ms < std::max(from, floor) || r.time_ms >= to) continue;
      std::vector<std::string> k;
      for (auto key : keys) {
        switch (key) {
          case report_key::team: k.push_back(r.team); break;
          case report_key::app: k.push_back(r.app); break;
          case report_key::model_base: k.push_back(r.model_base); break;
          case report_key::day: {
            const std::chrono::year_month_day ymd{
                std::chrono::sys_days{std::chrono::days{r.time_ms / day}}};
            char text[16];
            std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                          static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
            k.push_back(text);
            break;
          }
        }
      }
      auto& w = want[k];
      ++w.first;
      w.second += r.total_cost;
    }
    auto got = l->reader().query_report(from, to, keys);
    ASSERT_TRUE(got) << got.error().message;
    std::map<std::vector<std::string>, std::pair<std::uint64_t, money_total>> have;
    for (const auto& r : *got) have[r.keys] = {r.requests, r.total_cost};
    EXPECT_EQ(have, want) << "window [" << from - d0 << ", " << to - d0 << ")";
  };
  const std::vector<std::vector<report_key>> groupings = {
      {},
      {report_key::team},
      {report_key::day, report_key::model_base},
      {report_key::app, report_key::team, report_key::model_base}};
  // Aligned days, partial ends with and without rows beyond them, one partial day, all time.
  const std::vector<std::pair<std::int64_t, std::int64_t>> windows = {
      {d0, d0 + 10 * day},
      {d0 + 2 * day, d0 + 5 * day},
      {d0 + day / 3, d0 + 7 * day + 5},
      {d0 - 5 * day, d0 + 20 * day},
      {d0 + 3 * day + 1, d0 + 3 * day + day / 2},
      {INT64_MIN, INT64_MAX},
      {d0 + 9 * day + 7, d0 + 30 * day}};
  for (const auto& [from, to] : windows)
    for (const auto& keys : groupings) check(from, to, keys, INT64_MIN);
  for (int i = 0; i < 40; ++i) {
    const auto a = d0 - day + static_cast<std::int64_t>(next(12 * day));
    const auto b = a + static_cast<std::int64_t>(next(6 * day)) + 1;
    check(a, b, groupings[static_cast<std::size_t>(i) % groupings.size()], INT64_MIN);
  }

  // A prune mid-day: its rows leave the days they were in, and emptied days disappear.
  l->close();
  const auto cut = d0 + 4 * day + day / 2;
  ASSERT_TRUE(prune_ledger(path, cut));
  l = open_or_die(path);
  ASSERT_TRUE(l);
  for (const auto& [from, to] : windows)
    for (const auto& keys : groupings) check(from, to, keys, cut);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(db, "SELECT count(*), min(day_ms) FROM spend_daily", -1, &st, nullptr),
      SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_GT(sqlite3_column_int64(st, 0), 0);
  EXPECT_EQ(sqlite3_column_int64(st, 1), d0 + 4 * day) << "days before the cut are gone";
  sqlite3_finalize(st);
  sqlite3_close(db);
}

}  // namespace
}  // namespace bedrock_meter::accounting
