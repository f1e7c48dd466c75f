// The writer: every appended record committed exactly once, back-pressure, retries on a locked
// or failing database, refusals at open, and durability across a crash. The reader's queries are
// in ledger_reader_test.cpp, retention in ledger_prune_test.cpp.
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
#include <string>
#include <thread>
#include <vector>

#include "tests/accounting/ledger_test_support.hpp"

namespace bedrock_meter::accounting {
namespace {

namespace fs = std::filesystem;

// --- round trip
// ------------------------------------------------------------------------------------

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
// --- back-pressure
// ---------------------------------------------------------------------------------

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

// --- SQLite errors
// ---------------------------------------------------------------------------------

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

// --- open errors
// -----------------------------------------------------------------------------------

TEST(LedgerOpen, MissingDirectoryIsAClearError) {
  temp_dir dir;
  auto l = ledger::open(dir.file("no/such/dir/ledger.db"), fast_options());
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().what, ledger_error::kind::cannot_open);
  EXPECT_NE(l.error().message.find("no/such/dir/ledger.db"), std::string::npos)
      << l.error().message;
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
  EXPECT_NE(l.error().message.find("not a SQLite database"), std::string::npos)
      << l.error().message;
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
  exec_or_fail(db, ("PRAGMA user_version = " + std::to_string(ledger_schema_version + 1)).c_str());
  sqlite3_close(db);

  auto l = ledger::open(path, fast_options());
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().what, ledger_error::kind::newer_schema);
  EXPECT_NE(l.error().message.find("schema version " + std::to_string(ledger_schema_version + 1)),
            std::string::npos)
      << l.error().message;
  auto r = ledger_reader::open(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().what, ledger_error::kind::newer_schema);
}

TEST(LedgerOpen, AVersion1LedgerIsMigratedInPlaceAndKeepsItsRows) {
  temp_dir dir;
  const auto path = dir.file("v1.db");
  {
    auto l = open_or_die(path);
    ASSERT_TRUE(l);
    ASSERT_TRUE(l->append(make_record(7, 1)));
    l->close();
  }
  // Turn the file back into what a v1 build wrote: the v2 and v4 columns and the v3 table did
  // not exist.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  exec_or_fail(db,
               "DROP TRIGGER spend_daily_insert; DROP TRIGGER spend_daily_delete; "
               "DROP TABLE spend_daily");
  for (const char* col :
       {"speech_input_tokens", "speech_output_tokens", "has_traits", "max_tokens", "stop_reason",
        "tools", "structured_output", "system_prefix_hash", "system_prefix_bytes",
        "conversation_prefix_hash", "conversation_prefix_bytes", "prompt_hash", "prompt_bytes"})
    exec_or_fail(db, (std::string("ALTER TABLE requests DROP COLUMN ") + col).c_str());
  exec_or_fail(db, "PRAGMA user_version = 1");
  sqlite3_close(db);

  auto l = open_or_die(path);
  ASSERT_TRUE(l);
  ledger_record v2 = make_record(7, 2);
  v2.has_traits = true;
  v2.traits.max_tokens = 512;
  v2.traits.tools = true;
  v2.traits.system = {0xfedcba9876543210ULL, 4096};  // above INT64_MAX: stored as its bits
  v2.traits.full = {42, 5000};
  v2.stop_reason = "max_tokens";
  ASSERT_TRUE(l->append(v2));
  ASSERT_TRUE(l->flush());
  auto rows = l->reader().records(0, INT64_MAX);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_FALSE((*rows)[0].has_traits) << "a v1 row says it has no traits";
  EXPECT_FALSE((*rows)[0].traits.max_tokens);
  EXPECT_EQ((*rows)[0].request_id, make_record(7, 1).request_id);
  EXPECT_EQ((*rows)[1], v2) << "every v2 field round-trips";
  l->close();
}

TEST(LedgerOpen, AVersion2LedgerGetsItsDailySpendFromTheRowsItHolds) {
  temp_dir dir;
  const auto path = dir.file("v2.db");
  constexpr std::int64_t day = 86'400'000;
  std::vector<ledger_record> recs;
  for (int i = 0; i < 6; ++i) {
    auto r = make_record(3, i);
    r.time_ms = 20'000 * day + (i % 3) * day + i * 1000;  // three days
    recs.push_back(std::move(r));
  }
  {
    auto l = open_or_die(path);
    ASSERT_TRUE(l);
    for (const auto& r : recs) ASSERT_TRUE(l->append(r));
    l->close();
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  exec_or_fail(db,
               "DROP TRIGGER spend_daily_insert; DROP TRIGGER spend_daily_delete; "
               "DROP TABLE spend_daily; ALTER TABLE requests DROP COLUMN speech_input_tokens; "
               "ALTER TABLE requests DROP COLUMN speech_output_tokens; PRAGMA user_version = 2");
  sqlite3_close(db);

  auto l = open_or_die(path);  // migrates 2 -> 3: spend_daily from the six rows
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->append(make_record(3, 99)));  // and the trigger keeps it from here on
  recs.push_back(make_record(3, 99));
  ASSERT_TRUE(l->flush());
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(db,
                         "SELECT (SELECT sum(requests) FROM spend_daily), "
                         "(SELECT sum(total_cost_hi) * 4294967296 + sum(total_cost_lo) "
                         "FROM spend_daily), (SELECT count(DISTINCT day_ms) FROM spend_daily), "
                         "(SELECT sum(total_cost) FROM requests), "
                         "(SELECT user_version FROM pragma_user_version)",
                         -1, &st, nullptr),
      SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(st, 0), 7);
  EXPECT_EQ(sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 3));
  EXPECT_GE(sqlite3_column_int64(st, 2), 3);
  EXPECT_EQ(sqlite3_column_int(st, 4), ledger_schema_version);
  sqlite3_finalize(st);
  sqlite3_close(db);
  l->close();
}

TEST(LedgerOpen, AVersion3LedgerGainsSpeechColumnsAndItsRowsReadAsTextOnly) {
  temp_dir dir;
  const auto path = dir.file("v3.db");
  {
    auto l = open_or_die(path);
    ASSERT_TRUE(l);
    ASSERT_TRUE(l->append(make_record(8, 1)));
    l->close();
  }
  // What a v3 build wrote: no speech columns.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  exec_or_fail(db,
               "ALTER TABLE requests DROP COLUMN speech_input_tokens; "
               "ALTER TABLE requests DROP COLUMN speech_output_tokens; PRAGMA user_version = 3");
  sqlite3_close(db);

  auto l = open_or_die(path);  // migrates 3 -> 4
  ASSERT_TRUE(l);
  ledger_record sonic = make_record(8, 2);
  sonic.operation = "InvokeModelWithBidirectionalStream";
  sonic.model_requested = sonic.model_base = "amazon.nova-sonic-v1:0";
  sonic.input_tokens = 1'545;
  sonic.speech_input_tokens = 1'500;
  sonic.output_tokens = 2'480;
  sonic.speech_output_tokens = 2'400;
  ASSERT_TRUE(l->append(sonic));
  ASSERT_TRUE(l->flush());
  auto rows = l->reader().records(0, INT64_MAX);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0], make_record(8, 1)) << "a v3 row reads back whole, with no speech";
  EXPECT_EQ((*rows)[0].speech_input_tokens, 0u);
  EXPECT_EQ((*rows)[1], sonic) << "the speech columns round-trip";
  l->close();
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT sum(speech_input_tokens), sum(speech_output_tokens), "
                               "(SELECT user_version FROM pragma_user_version) FROM requests",
                               -1, &st, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(st, 0), 1'500);
  EXPECT_EQ(sqlite3_column_int64(st, 1), 2'400);
  EXPECT_EQ(sqlite3_column_int(st, 2), 4);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

// --- crash durability
// ------------------------------------------------------------------------------

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
// --- throughput (manual: --gtest_also_run_disabled_tests --gtest_filter=LedgerBench.*)
// ------------

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
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto c = l->counters();
    EXPECT_EQ(c.committed, std::uint64_t{threads * per_thread});
    std::printf(
        "synchronous=%s: %llu records in %.2f s = %.0f records/s, %llu batches, %llu blocked "
        "appends\n",
        full ? "FULL" : "NORMAL", static_cast<unsigned long long>(c.committed), secs,
        static_cast<double>(c.committed) / secs, static_cast<unsigned long long>(c.commit_batches),
        static_cast<unsigned long long>(c.blocked_appends));
  }
}

}  // namespace
}  // namespace bedrock_meter::accounting
