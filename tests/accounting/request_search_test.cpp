// The console's request search over a real SQLite ledger: filters, both orders, keyset paging
// that neither skips nor repeats a row (ties included), and cursors it did not hand out.
#include "accounting/request_search.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "accounting/ledger.hpp"
#include "tests/accounting/ledger_test_support.hpp"

namespace bedrock_meter::accounting {
namespace {

class RequestSearch : public ::testing::Test {
 protected:
  void SetUp() override {
    l_ = open_or_die(dir_.file("search.db"));
    ASSERT_TRUE(l_);
    for (int i = 0; i < 40; ++i) {
      auto r = make_record(3, i);
      r.time_ms = 1'750'000'000'000 + (i / 3) * 1000;  // three rows share each millisecond
      r.team = i % 4 == 0 ? "support" : "search";
      r.total_cost = static_cast<metering::pico_usd>(i % 5) * 1'000'000'000;  // ties too
      r.priced = i % 10 != 0;
      recs_.push_back(r);
      ASSERT_TRUE(l_->append(r));
    }
    ASSERT_TRUE(l_->flush());
  }

  /// Every page of `f`, `limit` rows at a time.
  std::vector<ledger_record> all_pages(request_filter f) {
    std::vector<ledger_record> out;
    for (int pages = 0; pages < 100; ++pages) {
      auto page = l_->reader().find_requests(f);
      EXPECT_TRUE(page) << page.error().message;
      if (!page) return out;
      EXPECT_LE(page->rows.size(), f.limit);
      out.insert(out.end(), page->rows.begin(), page->rows.end());
      if (page->next_cursor.empty()) return out;
      f.cursor = page->next_cursor;
    }
    ADD_FAILURE() << "paging never ended";
    return out;
  }

  static request_filter everything() {
    request_filter f;
    f.from_ms = 0;
    f.to_ms = INT64_MAX;
    return f;
  }

  temp_dir dir_;
  std::unique_ptr<ledger> l_;
  std::vector<ledger_record> recs_;
};

TEST_F(RequestSearch, PagesWalkEveryRowOnceNewestFirstAcrossTies) {
  auto f = everything();
  f.limit = 7;
  const auto got = all_pages(f);
  ASSERT_EQ(got.size(), recs_.size());
  std::set<std::string> ids;
  for (const auto& r : got) ids.insert(r.request_id);
  EXPECT_EQ(ids.size(), recs_.size()) << "no row twice";
  // Newest first; within a millisecond, the later commit first.
  auto want = recs_;
  std::reverse(want.begin(), want.end());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].request_id, want[i].request_id);
}

TEST_F(RequestSearch, CostliestFirstAndFilters) {
  auto f = everything();
  f.by = request_filter::order::costliest;
  f.limit = 6;
  const auto got = all_pages(f);
  ASSERT_EQ(got.size(), recs_.size());
  EXPECT_TRUE(std::is_sorted(got.begin(), got.end(), [](const auto& a, const auto& b) {
    return a.total_cost > b.total_cost;
  }));

  f = everything();
  f.team = "support";
  f.min_cost = 2'000'000'000;
  f.max_cost = 3'000'000'000;
  std::set<std::string> want;
  for (const auto& r : recs_)
    if (r.team == "support" && r.total_cost >= *f.min_cost && r.total_cost <= *f.max_cost)
      want.insert(r.request_id);
  ASSERT_FALSE(want.empty());
  std::set<std::string> got_ids;
  for (const auto& r : all_pages(f)) got_ids.insert(r.request_id);
  EXPECT_EQ(got_ids, want);

  f = everything();
  f.unpriced_only = true;
  const auto unpriced = all_pages(f);
  EXPECT_EQ(unpriced.size(), 4u);
  for (const auto& r : unpriced) EXPECT_FALSE(r.priced);

  f = everything();
  f.request_id = recs_[17].request_id;
  const auto one = all_pages(f);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one.front(), recs_[17]) << "the whole record, every field";
}

TEST_F(RequestSearch, ACursorNotHandedOutIsABadQuery) {
  for (const std::string cursor : {"garbage", "12", "12:x", "1:2:3", ""}) {
    auto f = everything();
    f.cursor = cursor;
    auto page = l_->reader().find_requests(f);
    if (cursor.empty()) {
      EXPECT_TRUE(page);
      continue;
    }
    ASSERT_FALSE(page) << cursor;
    EXPECT_EQ(page.error().what, ledger_error::kind::bad_query) << cursor;
  }
}

TEST(RequestSearchSql, PlaceholdersFollowTheStoreAndValuesAreNeverInlined) {
  request_filter f;
  f.from_ms = 5;
  f.to_ms = 9;
  f.team = "x' OR '1'='1";
  f.cursor = "7:abc:3";
  auto pg = build_request_sql(f, {{"journal", false}, {"local_id", true}}, true);
  ASSERT_TRUE(pg) << pg.error();
  EXPECT_EQ(pg->sql.find("x' OR"), std::string::npos);
  EXPECT_NE(pg->sql.find("(time_ms, journal, local_id) < ($4, $5, $6)"), std::string::npos)
      << pg->sql;
  ASSERT_EQ(pg->params.size(), 7u);  // from, to, team, 3 cursor values, limit
  EXPECT_EQ(pg->params[2].s, f.team);
  EXPECT_EQ(pg->params[4].s, "abc");
  EXPECT_TRUE(pg->params[5].integer);
  EXPECT_EQ(pg->params.back().i, 51);  // one more than the page, to know another follows
  auto lite = build_request_sql(f, {{"id", true}}, false);
  EXPECT_FALSE(lite) << "a PostgreSQL cursor is not a SQLite one";
}

}  // namespace
}  // namespace bedrock_meter::accounting
