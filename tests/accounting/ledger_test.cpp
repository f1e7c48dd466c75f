#include "accounting/ledger.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace bedrock_meter::accounting {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using metering::money_total;
using metering::pico_usd;

// --- helpers ---------------------------------------------------------------------------------------

class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "bm-ledger-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] std::string file(std::string_view name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// A record whose every field depends on (thread, i), so a swapped or truncated field shows.
ledger_record make_record(int thread, int i) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(thread) * 1'000'003u + static_cast<std::uint64_t>(i));
  auto pick = [&](std::uint64_t n) { return rng() % n; };
  ledger_record r;
  r.time_ms = 1'700'000'000'000 + static_cast<std::int64_t>(pick(90ull * 86'400'000));
  r.request_id = "req-" + std::to_string(thread) + "-" + std::to_string(i);
  r.team = "team-" + std::to_string(pick(3));
  r.app = "app-" + std::to_string(pick(4));
  r.principal = "AKIA" + std::to_string(thread);
  if (pick(2) == 0) {
    r.tags = {{"env", "prod"}, {"ticket", "T-" + std::to_string(i)}, {"quote\"d", "ü\n\\"}};
  }
  r.operation = pick(2) == 0 ? "Converse" : "InvokeModelWithResponseStream";
  r.model_requested = pick(2) == 0 ? "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
                                   : "arn:aws:bedrock:us-east-1:123:application-inference-profile/x";
  r.model_base = pick(5) == 0 ? "" : "anthropic.claude-3-5-sonnet-20240620-v1:0";
  r.model_label = r.model_base.empty() ? "other" : r.model_base;
  r.region = pick(2) == 0 ? "us-east-1" : "eu-west-1";
  r.scope = pick(2) == 0 ? "geo" : "in_region";
  r.service_tier = pick(2) == 0 ? "standard" : "priority";
  r.latency_mode = pick(2) == 0 ? "standard" : "optimized";
  r.batch = pick(2) == 0;
  r.status = pick(4) == 0 ? 429u : 200u;
  r.outcome = static_cast<metering::request_outcome>(pick(5));
  r.input_tokens = pick(100'000);
  r.output_tokens = pick(8'000);
  r.cache_read_tokens = pick(50'000);
  r.cache_write_tokens = pick(10'000);
  r.cache_write_1h_tokens = r.cache_write_tokens / 2;
  r.usage_source = static_cast<metering::usage_source>(pick(3));
  r.input_cost = static_cast<pico_usd>(r.input_tokens) * 3'000'000;
  r.output_cost = static_cast<pico_usd>(r.output_tokens) * 15'000'000;
  r.cache_read_cost = static_cast<pico_usd>(r.cache_read_tokens) * 300'000;
  r.cache_write_cost = static_cast<pico_usd>(r.cache_write_tokens) * 3'750'000;
  r.total_cost = r.input_cost + r.output_cost + r.cache_read_cost + r.cache_write_cost;
  r.priced = pick(6) != 0;
  r.unpriced_reason = r.priced ? "" : "no rate for model";
  r.rate_table_version = "2025-06-01#" + std::to_string(pick(3));
  r.rate_entry = "rates.yaml:" + std::to_string(pick(400));
  r.duration_us = static_cast<std::int64_t>(pick(30'000'000));
  r.first_byte_us = pick(3) == 0 ? -1 : static_cast<std::int64_t>(pick(1'000'000));
  r.bytes_in = pick(1'000'000);
  r.bytes_out = pick(1'000'000);
  return r;
}

ledger_options fast_options() {
  ledger_options o;
  o.flush_interval = 5ms;
  o.busy_timeout = 5ms;
  o.retry_backoff_min = 1ms;
  o.retry_backoff_max = 20ms;
  return o;
}

std::unique_ptr<ledger> open_or_die(const std::string& path, ledger_options o = fast_options()) {
  auto l = ledger::open(path, std::move(o));
  EXPECT_TRUE(l) << l.error().message;
  return l ? std::move(*l) : nullptr;
}

std::vector<ledger_record> all_records(const std::string& path) {
  auto reader = ledger_reader::open(path);
  EXPECT_TRUE(reader) << reader.error().message;
  if (!reader) return {};
  auto recs = (*reader)->records(INT64_MIN, INT64_MAX);
  EXPECT_TRUE(recs) << recs.error().message;
  return recs ? *recs : std::vector<ledger_record>{};
}

// Waits (bounded) for a condition another thread makes true; no fixed sleeps.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

std::string i128(money_total v) {
  if (v == 0) return "0";
  const bool neg = v < 0;
  std::string s;
  while (v != 0) {
    const int digit = static_cast<int>(v % 10);
    s.insert(s.begin(), static_cast<char>('0' + (digit < 0 ? -digit : digit)));
    v /= 10;
  }
  return neg ? "-" + s : s;
}

void exec_or_fail(sqlite3* db, const char* sql) {
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
}

// --- round trip ------------------------------------------------------------------------------------

TEST(LedgerWriter, ConcurrentAppendsAreStoredExactlyOnceWithEveryField) {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  constexpr int threads = 4;
  constexpr int per_thread = 1500;
  {
    auto o = fast_options();
    o.batch_max = 64;  // several groups per flush interval
    auto l = open_or_die(path, o);
    ASSERT_TRUE(l);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&l, t] {
        for (int i = 0; i < per_thread; ++i) EXPECT_TRUE(l->append(make_record(t, i)));
      });
    }
    for (auto& w : workers) w.join();
    EXPECT_EQ(l->close(), 0u);
    const auto c = l->counters();
    EXPECT_EQ(c.appended, std::uint64_t{threads * per_thread});
    EXPECT_EQ(c.committed, std::uint64_t{threads * per_thread});
    EXPECT_GE(c.commit_batches, std::uint64_t{threads * per_thread / 64});
    EXPECT_EQ(c.errors, 0u);
    EXPECT_EQ(c.lost, 0u);
    EXPECT_EQ(l->queue_depth(), 0u);
  }
  const auto stored = all_records(path);
  ASSERT_EQ(stored.size(), std::size_t{threads * per_thread});
  std::map<std::string, int> seen;
  for (const auto& r : stored) {
    ++seen[r.request_id];
    const auto dash = r.request_id.find('-', 4);
    const int t = std::stoi(r.request_id.substr(4, dash - 4));
    const int i = std::stoi(r.request_id.substr(dash + 1));
    EXPECT_EQ(r, make_record(t, i)) << r.request_id;
  }
  EXPECT_EQ(seen.size(), std::size_t{threads * per_thread});
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id;

  // Reopen for writing: ids continue after the existing rows, nothing is rewritten.
  auto again = open_or_die(path);
  ASSERT_TRUE(again);
  ASSERT_TRUE(again->append(make_record(99, 0)));
  ASSERT_TRUE(again->flush());
  again->close();
  const auto after = all_records(path);
  ASSERT_EQ(after.size(), std::size_t{threads * per_thread + 1});
  EXPECT_EQ(after.back(), make_record(99, 0));
}

TEST(LedgerWriter, AppendAfterCloseIsRefusedAndCounted) {
  temp_dir dir;
  auto l = open_or_die(dir.file("l.db"));
  ASSERT_TRUE(l);
  l->close();
  EXPECT_FALSE(l->append(make_record(0, 0)));
  EXPECT_EQ(l->counters().rejected, 1u);
  EXPECT_TRUE(all_records(dir.file("l.db")).empty());
}

// --- totals ----------------------------------------------------------------------------------------

using group_key = std::tuple<std::string, std::string, std::string, std::string, std::string, std::string, unsigned>;

std::map<group_key, ledger_totals_row> expected_totals(const std::vector<ledger_record>& recs) {
  std::map<group_key, ledger_totals_row> expected;
  for (const auto& r : recs) {
    auto& e = expected[{r.operation, r.model_label, r.region, r.service_tier, r.team, r.app, r.status}];
    const bool est = r.usage_source == metering::usage_source::estimated;
    e.requests += 1;
    e.unpriced_requests += r.priced ? 0 : 1;
    e.input_tokens += r.input_tokens;
    e.output_tokens += r.output_tokens;
    e.cache_read_tokens += r.cache_read_tokens;
    e.cache_write_tokens += r.cache_write_tokens;
    e.estimated_input_tokens += est ? r.input_tokens : 0;
    e.estimated_output_tokens += est ? r.output_tokens : 0;
    e.estimated_cache_read_tokens += est ? r.cache_read_tokens : 0;
    e.estimated_cache_write_tokens += est ? r.cache_write_tokens : 0;
    e.input_cost += r.input_cost;
    e.output_cost += r.output_cost;
    e.cache_read_cost += r.cache_read_cost;
    e.cache_write_cost += r.cache_write_cost;
    e.total_cost += r.total_cost;
  }
  return expected;
}

void expect_totals(ledger_reader& reader, const std::vector<ledger_record>& recs) {
  const auto expected = expected_totals(recs);
  auto totals = reader.totals();
  ASSERT_TRUE(totals) << totals.error().message;
  ASSERT_EQ(totals->size(), expected.size());
  for (const auto& row : *totals) {
    auto it = expected.find({row.operation, row.model_label, row.region, row.service_tier, row.team, row.app, row.status});
    ASSERT_NE(it, expected.end()) << row.operation << " " << row.model_label << " " << row.team;
    const auto& e = it->second;
    EXPECT_EQ(row.requests, e.requests);
    EXPECT_EQ(row.unpriced_requests, e.unpriced_requests);
    EXPECT_EQ(row.input_tokens, e.input_tokens);
    EXPECT_EQ(row.output_tokens, e.output_tokens);
    EXPECT_EQ(row.cache_read_tokens, e.cache_read_tokens);
    EXPECT_EQ(row.cache_write_tokens, e.cache_write_tokens);
    EXPECT_EQ(row.estimated_input_tokens, e.estimated_input_tokens);
    EXPECT_EQ(row.estimated_output_tokens, e.estimated_output_tokens);
    EXPECT_EQ(row.estimated_cache_read_tokens, e.estimated_cache_read_tokens);
    EXPECT_EQ(row.estimated_cache_write_tokens, e.estimated_cache_write_tokens);
    EXPECT_EQ(i128(row.input_cost), i128(e.input_cost));
    EXPECT_EQ(i128(row.output_cost), i128(e.output_cost));
    EXPECT_EQ(i128(row.cache_read_cost), i128(e.cache_read_cost));
    EXPECT_EQ(i128(row.cache_write_cost), i128(e.cache_write_cost));
    EXPECT_EQ(i128(row.total_cost), i128(e.total_cost));
  }
}

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

// --- retention -------------------------------------------------------------------------------------

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
  const auto old_rows = static_cast<std::uint64_t>(
      std::count_if(recs.begin(), recs.end(), [&](const ledger_record& r) { return r.time_ms < cut; }));
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

// --- back-pressure ---------------------------------------------------------------------------------

TEST(LedgerWriter, FullQueueBlocksTheCallerUntilTheWriterCatchesUp) {
  temp_dir dir;
  const auto path = dir.file("bp.db");
  std::promise<void> gate;
  std::shared_future<void> open_gate = gate.get_future().share();
  std::atomic<int> commit_attempts{0};
  auto o = fast_options();
  o.queue_capacity = 4;
  o.batch_max = 2;
  // The writer is held before its first commit, as a slow disk would hold it.
  o.before_commit = [open_gate, &commit_attempts] {
    ++commit_attempts;
    open_gate.wait();
  };
  auto l = open_or_die(path, o);
  ASSERT_TRUE(l);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(l->append(make_record(2, i)));
  EXPECT_EQ(l->queue_depth(), 4u);
  EXPECT_EQ(l->counters().blocked_appends, 0u);

  std::atomic<bool> fifth_done{false};
  std::thread producer([&] {
    EXPECT_TRUE(l->append(make_record(2, 4)));
    fifth_done = true;
  });
  ASSERT_TRUE(eventually([&] { return l->counters().blocked_appends == 1; }));
  EXPECT_FALSE(fifth_done.load());  // still waiting: nothing was committed yet
  EXPECT_EQ(l->counters().committed, 0u);

  gate.set_value();
  producer.join();
  EXPECT_TRUE(fifth_done.load());
  ASSERT_TRUE(l->flush());
  const auto c = l->counters();
  EXPECT_EQ(c.committed, 5u);
  EXPECT_EQ(c.blocked_appends, 1u);
  EXPECT_EQ(c.queue_high_water, 4u);
  EXPECT_EQ(c.errors, 0u);
  l->close();
  EXPECT_EQ(all_records(path).size(), 5u);
}

// --- SQLite errors ---------------------------------------------------------------------------------

TEST(LedgerWriter, LockedDatabaseIsRetriedAndNoRecordIsLost) {
  temp_dir dir;
  const auto path = dir.file("locked.db");
  std::mutex log_mu;
  std::vector<std::string> lines;
  std::promise<void> first_error;
  bool signalled = false;
  auto o = fast_options();
  o.log = [&](std::string_view line) {
    std::lock_guard lk(log_mu);
    lines.emplace_back(line);
    if (!signalled && line.find("failed") != std::string_view::npos) {
      signalled = true;
      first_error.set_value();
    }
  };
  auto l = open_or_die(path, o);
  ASSERT_TRUE(l);

  // Another connection takes the write lock, as a stuck backup or a second process would.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
  exec_or_fail(other, "BEGIN IMMEDIATE");

  for (int i = 0; i < 10; ++i) ASSERT_TRUE(l->append(make_record(3, i)));
  ASSERT_EQ(first_error.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(l->flush(0ms));
  EXPECT_EQ(l->counters().committed, 0u);
  EXPECT_EQ(l->queue_depth(), 10u);
  // Records appended during the outage are kept too.
  for (int i = 10; i < 15; ++i) ASSERT_TRUE(l->append(make_record(3, i)));

  exec_or_fail(other, "COMMIT");
  sqlite3_close(other);
  ASSERT_TRUE(l->flush(10s));
  const auto c = l->counters();
  EXPECT_GE(c.errors, 1u);
  EXPECT_EQ(c.committed, 15u);
  EXPECT_EQ(c.lost, 0u);
  l->close();

  const auto stored = all_records(path);
  ASSERT_EQ(stored.size(), 15u);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(stored[static_cast<std::size_t>(i)], make_record(3, i));
  std::lock_guard lk(log_mu);
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.front().find("locked"), std::string::npos) << lines.front();
}

TEST(LedgerWriter, CloseGivesUpAfterItsTimeoutAndCountsTheLoss) {
  temp_dir dir;
  const auto path = dir.file("stuck.db");
  auto o = fast_options();
  o.close_timeout = 100ms;
  o.batch_max = 2;
  o.busy_timeout = 400ms;  // each further attempt would be slow: close must not make them
  auto l = open_or_die(path, o);
  ASSERT_TRUE(l);
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
  exec_or_fail(other, "BEGIN IMMEDIATE");
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(l->append(make_record(4, i)));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(l->close(), 9u);
  // The deadline plus at most the one attempt in progress, not one busy_timeout per group.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
  EXPECT_EQ(l->counters().lost, 9u);
  EXPECT_GE(l->counters().errors, 1u);
  exec_or_fail(other, "ROLLBACK");
  sqlite3_close(other);
}

// --- open errors -----------------------------------------------------------------------------------

TEST(LedgerOpen, MissingDirectoryIsAClearError) {
  temp_dir dir;
  auto l = ledger::open(dir.file("no/such/dir/ledger.db"), fast_options());
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().what, ledger_error::kind::cannot_open);
  EXPECT_NE(l.error().message.find("no/such/dir/ledger.db"), std::string::npos) << l.error().message;
  EXPECT_NE(l.error().message.find("directory"), std::string::npos) << l.error().message;
}

TEST(LedgerOpen, DirectoryPathIsAClearError) {
  temp_dir dir;
  fs::create_directory(dir.file("adir"));
  auto l = ledger::open(dir.file("adir"), fast_options());
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().what, ledger_error::kind::cannot_open) << l.error().message;
  EXPECT_NE(l.error().message.find("adir"), std::string::npos) << l.error().message;
}

TEST(LedgerOpen, NotASqliteFileIsRefused) {
  temp_dir dir;
  const auto path = dir.file("notes.txt");
  std::ofstream(path) << "this is not a database, but it is long enough to have a header........\n";
  auto l = ledger::open(path, fast_options());
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().what, ledger_error::kind::not_a_ledger) << l.error().message;
  EXPECT_NE(l.error().message.find("not a SQLite database"), std::string::npos) << l.error().message;
}

TEST(LedgerOpen, AnotherApplicationsDatabaseIsRefused) {
  temp_dir dir;
  const auto path = dir.file("other.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  exec_or_fail(db, "CREATE TABLE customers (id INTEGER)");
  sqlite3_close(db);
  auto l = ledger::open(path, fast_options());
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().what, ledger_error::kind::not_a_ledger) << l.error().message;
}

TEST(LedgerOpen, NewerSchemaVersionIsRefused) {
  temp_dir dir;
  const auto path = dir.file("future.db");
  {
    auto l = open_or_die(path);
    ASSERT_TRUE(l);
    ASSERT_TRUE(l->append(make_record(5, 0)));
    l->close();
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), ledger_schema_version);
  sqlite3_finalize(st);
  exec_or_fail(db, "PRAGMA user_version = 2");
  sqlite3_close(db);

  auto l = ledger::open(path, fast_options());
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().what, ledger_error::kind::newer_schema);
  EXPECT_NE(l.error().message.find("schema version 2"), std::string::npos) << l.error().message;
  auto r = ledger_reader::open(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().what, ledger_error::kind::newer_schema);
}

// --- crash durability ------------------------------------------------------------------------------

TEST(LedgerCrash, FlushedRecordsSurviveAProcessThatExitsWithoutClosing) {
  temp_dir dir;
  const auto path = dir.file("crash.db");
  constexpr int flushed = 300;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // No gtest assertions here: report through the exit status only.
    auto l = ledger::open(path, fast_options());
    if (!l) ::_exit(2);
    for (int i = 0; i < flushed; ++i) (*l)->append(make_record(6, i));
    if (!(*l)->flush()) ::_exit(3);
    // More records that were never flushed, then die without close() or destructors.
    for (int i = flushed; i < flushed + 50; ++i) (*l)->append(make_record(6, i));
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);

  // Reopened as the proxy would after a crash: WAL recovery, then every flushed record is there.
  auto l = open_or_die(path);
  ASSERT_TRUE(l);
  auto recs = l->reader().records(INT64_MIN, INT64_MAX);
  ASSERT_TRUE(recs) << recs.error().message;
  ASSERT_GE(recs->size(), std::size_t{flushed});
  ASSERT_LE(recs->size(), std::size_t{flushed + 50});
  for (std::size_t i = 0; i < recs->size(); ++i) {
    EXPECT_EQ((*recs)[i], make_record(6, static_cast<int>(i)));
  }
  // And the ledger keeps writing after the recovered rows.
  ASSERT_TRUE(l->append(make_record(6, 1000)));
  ASSERT_TRUE(l->flush());
  EXPECT_EQ(l->counters().errors, 0u);
}

// --- queries ---------------------------------------------------------------------------------------

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
      spend(1000, "a", "x", "k1", "m1", 1),      spend(2000, "a", "y", "k1", "m2", 10),
      spend(3000, "b", "x", "k2", "m1", 100),    spend(4000, "b", "y", "k3", "m2", 1000),
      spend(5000, "a", "x", "k2", "m2", 10000),  spend(999, "a", "x", "k1", "m1", 100000),
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

  auto by_model = l->reader().query_report(INT64_MIN, INT64_MAX, {report_key::app, report_key::model_base});
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

// --- throughput (manual: --gtest_also_run_disabled_tests --gtest_filter=LedgerBench.*) ------------

TEST(LedgerBench, DISABLED_CommittedRecordsPerSecond) {
  temp_dir dir;
  for (bool full : {true, false}) {
    auto o = fast_options();
    o.batch_max = 512;
    o.flush_interval = 50ms;
    o.synchronous_full = full;
    const auto path = dir.file(full ? "bench_full.db" : "bench_normal.db");
    auto l = open_or_die(path, o);
    ASSERT_TRUE(l);
    constexpr int threads = 2;
    constexpr int per_thread = 100'000;
    std::vector<std::vector<ledger_record>> prepared(threads);
    for (int t = 0; t < threads; ++t) {
      for (int i = 0; i < per_thread; ++i) {
        // Real arrival times only move forward, so index inserts land at the end of the b-trees.
        auto r = make_record(t, i);
        r.time_ms = 1'750'000'000'000 + i;
        prepared[static_cast<std::size_t>(t)].push_back(std::move(r));
      }
    }
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&l, &prepared, t] {
        for (auto& r : prepared[static_cast<std::size_t>(t)]) l->append(std::move(r));
      });
    }
    for (auto& w : workers) w.join();
    ASSERT_TRUE(l->flush());
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto c = l->counters();
    EXPECT_EQ(c.committed, std::uint64_t{threads * per_thread});
    std::printf("synchronous=%s: %llu records in %.2f s = %.0f records/s, %llu batches, %llu blocked appends\n",
                full ? "FULL" : "NORMAL", static_cast<unsigned long long>(c.committed), secs,
                static_cast<double>(c.committed) / secs, static_cast<unsigned long long>(c.commit_batches),
                static_cast<unsigned long long>(c.blocked_appends));
  }
}

}  // namespace
}  // namespace bedrock_meter::accounting
