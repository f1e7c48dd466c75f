// The writer: opens (and migrates) the file, queues records from the request path and commits
// them in groups on its own thread. The reader is ledger_reader.cpp, retention ledger_prune.cpp and
// the file's layout ledger_schema.cpp.
#include "accounting/ledger.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "accounting/ledger_schema.hpp"
#include "accounting/ledger_sqlite.hpp"

namespace bedrock_meter::accounting {

namespace {

// How the writer wants its connection: WAL, the configured durability, a bounded -wal file.
ledger_result<void> configure_writer(sqlite3* db, const std::string& path,
                                     const ledger_options& options) {
  sqlite3_extended_result_codes(db, 1);
  // WAL: readers (totals, budgets, `report`) never block the writer and vice versa, and a commit
  // is one sequential append to the -wal file.
  statement st;
  std::string mode;
  if (prepare(db, "PRAGMA journal_mode=WAL", st) == SQLITE_OK && sqlite3_step(st.s) == SQLITE_ROW) {
    mode = column_text(st.s, 0);
  }
  if (mode != "wal") {
    return ledger_error{ledger_error::kind::cannot_open,
                        "ledger " + path + ": cannot switch to WAL journal mode (got '" + mode +
                            "': " + errmsg(db) +
                            "); WAL needs a local filesystem with shared memory"};
  }
  // journal_size_limit: after a checkpoint the -wal file is truncated back to 64 MiB, so one
  // burst does not leave a huge file behind.
  const std::string pragmas = std::string(options.synchronous_full ? "PRAGMA synchronous=FULL;"
                                                                   : "PRAGMA synchronous=NORMAL;") +
                              "PRAGMA journal_size_limit=67108864;";
  if (exec(db, pragmas) != SQLITE_OK) return sqlite_error(db, "ledger " + path);
  return {};
}

// Inserts `n` records with ids from `first_id` inside the open transaction; the SQLite result
// code of the first failure, or SQLITE_OK.
int insert_group(sqlite3_stmt* insert, std::int64_t first_id, const ledger_record* recs,
                 std::size_t n) {
  int rc = SQLITE_OK;
  std::string tags;
  for (std::size_t i = 0; rc == SQLITE_OK && i < n; ++i) {
    tags = tags_to_json(recs[i].tags);
    bind_record(insert, first_id + static_cast<std::int64_t>(i), recs[i], tags);
    rc = sqlite3_step(insert);
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_reset(insert);
  }
  sqlite3_clear_bindings(insert);
  return rc;
}

// Whether the group whose first record is `first` was stored from `first_id` on. Transactions are
// atomic, so the first row tells for the whole group.
bool group_landed(sqlite3* db, std::int64_t first_id, const ledger_record& first) {
  statement st;
  if (prepare(db, "SELECT request_id, time_ms FROM requests WHERE id = ?1", st) != SQLITE_OK) {
    return false;
  }
  sqlite3_bind_int64(st.s, 1, first_id);
  return sqlite3_step(st.s) == SQLITE_ROW && column_text(st.s, 0) == first.request_id &&
         sqlite3_column_int64(st.s, 1) == first.time_ms;
}

}  // namespace

ledger_result<std::unique_ptr<ledger>> ledger::open(const std::string& path,
                                                    ledger_options options) {
  if (options.batch_max == 0) options.batch_max = 1;
  if (options.queue_capacity == 0) options.queue_capacity = 1;

  auto file = open_ledger_file(
      path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, options.busy_timeout);
  if (!file) return file.error();
  sqlite3* db = file->db.get();
  if (auto configured = configure_writer(db, path, options); !configured) return configured.error();
  if (auto migrated = migrate_ledger(db, path, file->version); !migrated) return migrated.error();
  // Past every id ever written, pruned ones included (ledger_prune.cpp keeps their floor).
  auto max_id = query_int(db,
                          "SELECT MAX(COALESCE((SELECT MAX(id) FROM requests), 0), "
                          "COALESCE((SELECT value FROM meta WHERE key = 'id_floor'), 0))");
  if (!max_id) return sqlite_error(db, "ledger " + path);

  auto reader = ledger_reader::open(path);
  if (!reader) return reader.error();

  std::unique_ptr<ledger> l(
      new ledger(path, std::move(options), file->db.release(), std::move(*reader)));
  l->next_id_ = *max_id + 1;
  const std::string insert = insert_record_sql();
  if (sqlite3_prepare_v3(l->db_, insert.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &l->insert_,
                         nullptr) != SQLITE_OK) {
    return sqlite_error(l->db_, "ledger " + path);
  }
  l->writer_ = std::thread([p = l.get()] { p->run_writer(); });
  return l;
}

ledger::ledger(std::string path, ledger_options options, sqlite3* db,
               std::unique_ptr<ledger_reader> reader)
    : path_(std::move(path)), opt_(std::move(options)), db_(db), reader_(std::move(reader)) {
  pending_.reserve(opt_.batch_max);
}

ledger::~ledger() {
  close();
  sqlite3_finalize(insert_);
  sqlite3_close_v2(db_);
}

void ledger::log(std::string_view line) const {
  if (opt_.log) opt_.log(line);
}

bool ledger::append(ledger_record rec) {
  std::unique_lock lk(mu_);
  if (!closed_ && appended_seq_ - settled_seq_ >= opt_.queue_capacity) {
    // Back-pressure: a billing record is worth more than this request's latency.
    blocked_.fetch_add(1, std::memory_order_relaxed);
    space_cv_.wait(lk,
                   [&] { return closed_ || appended_seq_ - settled_seq_ < opt_.queue_capacity; });
  }
  if (closed_) {
    lk.unlock();
    rejected_.fetch_add(1, std::memory_order_relaxed);
    log("ledger: record " + rec.request_id + " appended after close; not recorded");
    return false;
  }
  pending_.push_back(std::move(rec));
  ++appended_seq_;
  appended_.store(appended_seq_, std::memory_order_relaxed);
  const std::uint64_t depth = appended_seq_ - settled_seq_;
  if (depth > high_water_.load(std::memory_order_relaxed))
    high_water_.store(depth, std::memory_order_relaxed);
  // Wake the writer when a group starts (it then waits up to flush_interval) and when a full group
  // is ready; appends in between do not signal.
  const bool wake = pending_.size() == 1 || pending_.size() == opt_.batch_max;
  lk.unlock();
  if (wake) writer_cv_.notify_one();
  return true;
}

bool ledger::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  const std::uint64_t target = appended_seq_;
  auto done = [&] { return settled_seq_ >= target; };
  if (done()) return true;
  ++flush_waiters_;
  lk.unlock();
  writer_cv_.notify_one();
  lk.lock();
  bool all = true;
  if (timeout == std::chrono::milliseconds::max()) {
    done_cv_.wait(lk, done);
  } else {
    all = done_cv_.wait_for(lk, timeout, done);
  }
  --flush_waiters_;
  return all;
}

std::uint64_t ledger::close() {
  std::unique_lock lk(mu_);
  if (closed_) return 0;
  closed_ = true;
  stopping_ = true;
  const std::uint64_t target = appended_seq_;
  lk.unlock();
  writer_cv_.notify_all();
  space_cv_.notify_all();
  lk.lock();
  if (!done_cv_.wait_for(lk, opt_.close_timeout, [&] { return settled_seq_ >= target; })) {
    abandon_ = true;
    lk.unlock();
    writer_cv_.notify_all();
  } else {
    lk.unlock();
  }
  if (writer_.joinable()) writer_.join();
  const std::uint64_t lost = lost_.load();
  if (lost > 0) {
    log("ledger: closed with " + std::to_string(lost) + " records that could not be committed to " +
        path_ + "; they are lost");
  }
  sqlite3_finalize(insert_);
  insert_ = nullptr;
  sqlite3_close_v2(db_);
  db_ = nullptr;
  return lost;
}

std::size_t ledger::queue_depth() const noexcept {
  const auto a = appended_.load(std::memory_order_relaxed);
  const auto settled =
      committed_.load(std::memory_order_relaxed) + lost_.load(std::memory_order_relaxed);
  return a > settled ? static_cast<std::size_t>(a - settled) : 0;
}

ledger_counters ledger::counters() const noexcept {
  ledger_counters c;
  c.appended = appended_.load(std::memory_order_relaxed);
  c.committed = committed_.load(std::memory_order_relaxed);
  c.commit_batches = batches_.load(std::memory_order_relaxed);
  c.errors = errors_.load(std::memory_order_relaxed);
  c.queue_high_water = high_water_.load(std::memory_order_relaxed);
  c.blocked_appends = blocked_.load(std::memory_order_relaxed);
  c.rejected = rejected_.load(std::memory_order_relaxed);
  c.lost = lost_.load(std::memory_order_relaxed);
  return c;
}

void ledger::run_writer() {
  std::vector<ledger_record> work;
  work.reserve(opt_.batch_max);
  std::unique_lock lk(mu_);
  for (;;) {
    writer_cv_.wait(lk, [&] { return stopping_ || !pending_.empty(); });
    if (pending_.empty()) break;  // stopping and drained
    if (!stopping_ && flush_waiters_ == 0 && pending_.size() < opt_.batch_max) {
      // Group commit: give the group up to flush_interval to fill.
      writer_cv_.wait_for(lk, opt_.flush_interval, [&] {
        return stopping_ || flush_waiters_ > 0 || pending_.size() >= opt_.batch_max;
      });
    }
    // Take everything queued; `pending_` gets the old vector's capacity back, so steady state
    // appends do not allocate.
    work.swap(pending_);
    lk.unlock();
    for (std::size_t i = 0; i < work.size(); i += opt_.batch_max) {
      const std::size_t n = std::min(opt_.batch_max, work.size() - i);
      const bool committed = commit_with_retry(&work[i], n);
      if (committed && opt_.after_commit)
        for (std::size_t k = i; k < i + n; ++k) opt_.after_commit(work[k]);
      lk.lock();
      settled_seq_ += n;
      if (!committed) lost_.fetch_add(n, std::memory_order_relaxed);
      lk.unlock();
      space_cv_.notify_all();
      done_cv_.notify_all();
    }
    work.clear();
    lk.lock();
  }
}

bool ledger::commit_with_retry(const ledger_record* recs, std::size_t n) {
  auto backoff = opt_.retry_backoff_min;
  std::uint64_t failures = 0;
  for (;;) {
    {
      // Past the close deadline every remaining group is given up at once: one more attempt
      // each could cost busy_timeout per group and hold shutdown for minutes.
      std::lock_guard lk(mu_);
      if (abandon_) return false;
    }
    if (opt_.before_commit) opt_.before_commit();
    const auto committed = try_commit(recs, n);
    if (committed) {
      committed_.fetch_add(n, std::memory_order_relaxed);
      batches_.fetch_add(1, std::memory_order_relaxed);
      if (failures > 0) {
        log("ledger: commit succeeded after " + std::to_string(failures) + " failed attempts; " +
            std::to_string(n) + " records written to " + path_);
      }
      return true;
    }
    ++failures;
    errors_.fetch_add(1, std::memory_order_relaxed);
    log("ledger: commit of " + std::to_string(n) + " records to " + path_ + " failed: " +
        committed.error().message + "; retrying in " + std::to_string(backoff.count()) + " ms (" +
        std::to_string(queue_depth()) + " records held in memory)");
    std::unique_lock lk(mu_);
    if (writer_cv_.wait_for(lk, backoff, [&] { return abandon_; })) return false;
    backoff = std::min(backoff * 2, opt_.retry_backoff_max);
  }
}

ledger_result<void> ledger::try_commit(const ledger_record* recs, std::size_t n) {
  const std::int64_t first_id = next_id_;
  int rc = exec(db_, "BEGIN IMMEDIATE");
  if (rc == SQLITE_OK) rc = insert_group(insert_, first_id, recs, n);
  const bool at_commit = rc == SQLITE_OK;
  if (at_commit) rc = exec(db_, "COMMIT");
  if (rc == SQLITE_OK) {
    next_id_ = first_id + static_cast<std::int64_t>(n);
    return {};
  }
  const ledger_error why{ledger_error::kind::sqlite, errmsg(db_)};
  const int ext = sqlite3_extended_errcode(db_);
  if (sqlite3_get_autocommit(db_) == 0) {
    exec(db_, "ROLLBACK");  // still in the transaction: nothing of it is committed
  } else if (at_commit && group_landed(db_, first_id, recs[0])) {
    // SQLite ended the transaction itself on an I/O error during COMMIT, yet the group is
    // there; retrying blindly would write it twice.
    next_id_ = first_id + static_cast<std::int64_t>(n);
    log("ledger: COMMIT reported '" + why.message + "' but the group is in " + path_ +
        "; not writing it again");
    return {};
  }
  if (ext == SQLITE_CONSTRAINT_PRIMARYKEY) {
    // Another process wrote to this file (unsupported, but never lose or clobber): move past it.
    if (auto max_id = query_int(db_, "SELECT COALESCE(MAX(id), 0) FROM requests"))
      next_id_ = *max_id + 1;
  }
  return why;
}

}  // namespace bedrock_meter::accounting
