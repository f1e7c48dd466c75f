// Retention: prune_ledger beside a live writer; totals never go down.
#include "accounting/ledger.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "tests/accounting/ledger_test_support.hpp"

namespace bedrock_meter::accounting {
namespace {

TEST(LedgerRetention, PruneDeletesOldRowsButTotalsNeverDrop) {
  temp_dir dir;
  const auto path = dir.file("prune.db");
  constexpr std::int64_t start = 1'700'000'000'000;
  constexpr std::int64_t day = 86'400'000;
  std::vector<ledger_record> recs;
  for (int i = 0; i < 2000; ++i) recs.push_back(make_record(8, i));
  // Huge amounts in one group make the rollup carry lo halves into hi across prunes.
  for (int i = 0; i < 12; ++i) {
    auto r = make_record(9, i);
    r.time_ms = start + i * 8 * day;
    r.input_cost = INT64_MAX - i;
    r.total_cost = INT64_MAX - 3 * i;
    recs.push_back(std::move(r));
  }
  auto l = open_or_die(path);
  ASSERT_TRUE(l);
  for (const auto& r : recs) ASSERT_TRUE(l->append(r));
  ASSERT_TRUE(l->flush());
  expect_totals(l->reader(), recs);

  // Pruned beside the live writer, as an operator's cron job would.
  const std::int64_t cut = start + 45 * day;
  const auto old_rows = static_cast<std::uint64_t>(std::count_if(
      recs.begin(), recs.end(), [&](const ledger_record& r) { return r.time_ms < cut; }));
  ASSERT_GT(old_rows, 0u);
  auto pruned = prune_ledger(path, cut);
  ASSERT_TRUE(pruned) << pruned.error().message;
  EXPECT_EQ(*pruned, old_rows);
  expect_totals(l->reader(), recs);

  auto live = l->reader().records(INT64_MIN, INT64_MAX);
  ASSERT_TRUE(live);
  EXPECT_EQ(live->size(), recs.size() - old_rows);
  for (const auto& r : *live) EXPECT_GE(r.time_ms, cut);
  auto horizon = l->reader().pruned_before_ms();
  ASSERT_TRUE(horizon);
  EXPECT_EQ(*horizon, std::optional<std::int64_t>(cut));
  auto report = l->reader().query_report(INT64_MIN, INT64_MAX, {});
  ASSERT_TRUE(report);
  EXPECT_EQ(report->front().requests, recs.size() - old_rows);

  // Late records (older than the cut) and new ones, then a second prune merges into the same
  // rollup groups; an earlier cut later never moves the horizon back.
  for (int i = 0; i < 300; ++i) {
    auto r = make_record(10, i);
    if (i % 3 == 0) r.time_ms = start + i;
    recs.push_back(r);
    ASSERT_TRUE(l->append(std::move(r)));
  }
  ASSERT_TRUE(l->flush());
  expect_totals(l->reader(), recs);
  ASSERT_TRUE(prune_ledger(path, start + 80 * day));
  ASSERT_TRUE(prune_ledger(path, start + 10 * day));
  expect_totals(l->reader(), recs);
  horizon = l->reader().pruned_before_ms();
  ASSERT_TRUE(horizon);
  EXPECT_EQ(*horizon, std::optional<std::int64_t>(start + 80 * day));
  EXPECT_EQ(l->counters().lost, 0u);
  l->close();

  // And after a restart.
  auto reader = ledger_reader::open(path);
  ASSERT_TRUE(reader) << reader.error().message;
  expect_totals(**reader, recs);
}

TEST(LedgerRetention, IdsAreNeverReusedEvenWhenEveryRowIsPruned) {
  // The fleet's shipper (fleet/shipper.cpp) resumes by id: a reused id would never be shipped.
  temp_dir dir;
  const auto path = dir.file("ids.db");
  {
    auto l = open_or_die(path);
    ASSERT_TRUE(l);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(l->append(make_record(11, i)));
    ASSERT_TRUE(l->flush());
  }
  auto j = journal::open(path);
  ASSERT_TRUE(j) << j.error().message;
  auto before = (*j)->after(0, 100);
  ASSERT_TRUE(before);
  ASSERT_EQ(before->size(), 5u);
  const auto last = before->back().id;
  auto pruned = prune_ledger(path, INT64_MAX);
  ASSERT_TRUE(pruned) << pruned.error().message;
  EXPECT_EQ(*pruned, 5u);
  {
    auto l = open_or_die(path);
    ASSERT_TRUE(l);
    ASSERT_TRUE(l->append(make_record(11, 99)));
    ASSERT_TRUE(l->flush());
  }
  auto after = (*j)->after(last, 100);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_GT(after->front().id, last);
  auto backlog = (*j)->backlog(last);
  ASSERT_TRUE(backlog);
  EXPECT_EQ(backlog->first, 1u);
  EXPECT_EQ(backlog->second, after->front().rec.time_ms);
  ASSERT_TRUE((*j)->record_shipped(after->front().id));
  EXPECT_EQ(*(*j)->shipped_locally(), after->front().id);
  const std::string id = (*j)->id();
  EXPECT_EQ(id.size(), 32u);
  auto again = journal::open(path);
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)->id(), id) << "the journal's identity is created once";
}

TEST(LedgerRetention, AJournalKeepsEveryRowNotYetShipped) {
  // With ledger.store postgres the journal may be PostgreSQL's only copy of a row.
  temp_dir dir;
  const auto path = dir.file("journal.db");
  {
    auto l = open_or_die(path);
    ASSERT_TRUE(l);
    for (int i = 0; i < 6; ++i) {
      auto r = make_record(12, i);
      r.time_ms = 1'750'000'000'000 + i * 1000;  // in id order, as the proxy writes them
      ASSERT_TRUE(l->append(r));
    }
    ASSERT_TRUE(l->flush());
  }
  auto j = journal::open(path);
  ASSERT_TRUE(j);
  auto rows = (*j)->after(0, 100);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 6u);
  ASSERT_TRUE((*j)->record_shipped((*rows)[3].id));  // four shipped, two not

  auto refused = prune_ledger(path, INT64_MAX, std::chrono::seconds(1), true);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("2 rows before the cut-off are not yet shipped"),
            std::string::npos)
      << refused.error().message;
  auto kept = (*j)->after(0, 100);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->size(), 6u) << "a refused prune deletes nothing";

  // A cut-off below the unshipped rows prunes the shipped ones.
  const auto cut = (*rows)[4].rec.time_ms;
  ASSERT_LT((*rows)[3].rec.time_ms, cut);
  auto pruned = prune_ledger(path, cut, std::chrono::seconds(1), true);
  ASSERT_TRUE(pruned) << pruned.error().message;
  EXPECT_EQ(*pruned, 4u);
  ASSERT_TRUE((*j)->record_shipped((*rows)[5].id));
  auto all = prune_ledger(path, INT64_MAX, std::chrono::seconds(1), true);
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_EQ(*all, 2u);
}

}  // namespace
}  // namespace bedrock_meter::accounting
