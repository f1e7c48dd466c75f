#pragma once
// The durable ledger: every priced request as one row of a SQLite database, so budgets, reports
// and chargeback survive restarts and the Prometheus FinOps counters restart from its totals.
//
// Writing: `append` is called by workers on the request path. It moves the record into a bounded
// in-memory queue under a mutex (no disk I/O, no allocation beyond the move) and returns; one
// writer thread commits the queue in groups of up to `batch_max` rows per transaction. When the
// queue is full the caller waits (back-pressure, counted): a slow request is better than a lost
// billing record. A failed commit (disk full, database locked, I/O error) is retried with backoff
// and the records stay in memory until it succeeds; nothing is ever dropped silently.
//
// Reading uses its own connection (WAL lets it run beside the writer) and never the writer's.
// docs/ledger.md describes the schema, the durability guarantees and how to query the file.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/system/result.hpp>

#include "accounting/request_search.hpp"
#include "metering/money.hpp"
#include "metering/settlement.hpp"
#include "metering/usage.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace bedrock_meter::accounting {

/// One ledger row: a settled request (metering/settlement.hpp), stored as it was settled.
/// Tokens and bytes above INT64_MAX cannot be stored and are clamped (no real request comes near).
using ledger_record = metering::settlement;

/// An error value: `message` is one line naming the file and what to do.
struct ledger_error {
  enum class kind : std::uint8_t {
    cannot_open,   ///< missing / unwritable directory, permissions
    not_a_ledger,  ///< not a SQLite file, or a SQLite file of another application
    newer_schema,  ///< written by a newer bedrock-meter; refusing to touch it
    sqlite,        ///< any other SQLite failure
    bad_query,     ///< the caller asked for something malformed (a cursor not handed out)
  };
  kind what = kind::sqlite;
  std::string message;
};

/// For `result::value()` on an error (boost::system::result finds it by ADL): throws
/// std::runtime_error with the message.
[[noreturn]] void throw_exception_from_error(const ledger_error& e,
                                             const boost::source_location& loc);

/// A value or the ledger error that prevented it (docs/architecture.md, "Errors").
template <typename T>
using ledger_result = boost::system::result<T, ledger_error>;

/// The schema version this build writes. `open` migrates older files up to it and refuses newer.
inline constexpr int ledger_schema_version = 4;

/// Sums for one Prometheus series group, to restore the FinOps counters at start.
struct ledger_totals_row {
  std::string operation;
  std::string model_label;
  std::string region;
  std::string service_tier;
  std::string team;
  std::string app;
  unsigned status = 0;

  std::uint64_t requests = 0;
  std::uint64_t unpriced_requests = 0;
  std::uint64_t input_tokens = 0;
  std::uint64_t output_tokens = 0;
  std::uint64_t cache_read_tokens = 0;
  std::uint64_t cache_write_tokens = 0;
  // Tokens whose usage_source was `estimated` (bedrock_estimated_tokens_total).
  std::uint64_t estimated_input_tokens = 0;
  std::uint64_t estimated_output_tokens = 0;
  std::uint64_t estimated_cache_read_tokens = 0;
  std::uint64_t estimated_cache_write_tokens = 0;
  metering::money_total input_cost = 0;
  metering::money_total output_cost = 0;
  metering::money_total cache_read_cost = 0;
  metering::money_total cache_write_cost = 0;
  metering::money_total total_cost = 0;
};

/// Spend of one Prometheus spend series and base model (net figures need the model).
struct series_spend_row {
  std::string model_label, model_base, region, service_tier, team, app;
  metering::money_total input_cost = 0;
  metering::money_total output_cost = 0;
  metering::money_total cache_read_cost = 0;
  metering::money_total cache_write_cost = 0;
  metering::money_total total_cost = 0;
};

/// Which rows a budget counts: every set field must match exactly; nothing set means all rows.
struct spend_filter {
  std::optional<std::string> team = std::nullopt;
  std::optional<std::string> app = std::nullopt;
  std::optional<std::string> principal = std::nullopt;
  std::optional<std::string> model_base = std::nullopt;
  std::optional<std::string> model_label = std::nullopt;
};

/// Report grouping keys. `day` is the UTC calendar day, "YYYY-MM-DD".
enum class report_key : std::uint8_t { team, app, model_base, day };
std::string_view to_string(report_key k) noexcept;
std::optional<report_key> parse_report_key(std::string_view s) noexcept;

struct report_row {
  std::vector<std::string> keys;  // one per requested report_key, in the same order
  std::uint64_t requests = 0;
  std::uint64_t input_tokens = 0;
  std::uint64_t output_tokens = 0;
  std::uint64_t cache_read_tokens = 0;
  std::uint64_t cache_write_tokens = 0;
  metering::money_total input_cost = 0;
  metering::money_total output_cost = 0;
  metering::money_total cache_read_cost = 0;
  metering::money_total cache_write_cost = 0;
  metering::money_total total_cost = 0;

  /// Adds `r`'s counts and costs (not its keys): folding rows of one group together.
  report_row& operator+=(const report_row& r) noexcept;
};

/// The whole UTC days [from, to) of the window [from_ms, to_ms) that a report may read from the
/// per-day sums (`spend_daily`); the rest of the window is read from the rows. A partial end day
/// counts as whole when `rows_in(a, b)` says no row lies in [a, b), its part outside the window.
/// `from >= to` when there is no whole day.
struct day_span {
  std::int64_t from = 0;
  std::int64_t to = 0;
};
ledger_result<day_span> whole_days(
    std::int64_t from_ms, std::int64_t to_ms,
    const std::function<ledger_result<bool>(std::int64_t, std::int64_t)>& rows_in);

/// Which rows `ledger_reader::scan` streams. Empty strings match anything.
struct scan_filter {
  std::int64_t from_ms = 0;  ///< inclusive
  std::int64_t to_ms = 0;    ///< exclusive
  std::string team;
  std::string app;
  std::string model;  ///< equal to the row's base model or to the model id as requested
};

/// One row as `scan` hands it over: the columns the advisor reads. Views are valid only during
/// the callback (they point into SQLite's row buffer).
struct scan_row {
  std::int64_t time_ms = 0;
  std::string_view team, app, operation, model_requested, model_base, region, scope, service_tier,
      latency_mode, outcome, stop_reason;
  bool batch = false;
  unsigned status = 0;
  std::uint64_t input_tokens = 0, output_tokens = 0, cache_read_tokens = 0, cache_write_tokens = 0,
                cache_write_1h_tokens = 0;
  /// Nova Sonic's speech tokens, parts of input_tokens and output_tokens.
  std::uint64_t speech_input_tokens = 0, speech_output_tokens = 0;
  metering::pico_usd total_cost = 0;
  bool priced = false;
  std::uint64_t bytes_in = 0;
  bool has_traits = false;
  std::optional<std::uint64_t> max_tokens;
  bool tools = false;
  bool structured_output = false;
  metering::prompt_prefix system_prefix, conversation_prefix, full_prompt;
};
/// The columns of a `scan_row`, in the order every reader (SQLite, PostgreSQL) reads them.
inline constexpr std::string_view scan_columns =
    "time_ms, team, app, operation, model_requested, model_base, region, scope, service_tier, "
    "latency_mode, outcome, stop_reason, batch, status, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, total_cost, priced, bytes_in, "
    "has_traits, max_tokens, tools, structured_output, system_prefix_hash, system_prefix_bytes, "
    "conversation_prefix_hash, conversation_prefix_bytes, prompt_hash, prompt_bytes, "
    "speech_input_tokens, speech_output_tokens";

/// A read-only view of a ledger: the local SQLite file (`open`: its own connection, safe beside a
/// running writer, WAL) or the fleet's PostgreSQL database (fleet/postgres_reader.hpp). Used by
/// the ledger for startup totals and budgets, and by the reporting commands. Calls are
/// serialised on an internal mutex; any thread may call.
class ledger_reader {
 public:
  /// Opens an existing ledger read-only. Checks it is a ledger of a schema this build knows.
  static ledger_result<std::unique_ptr<ledger_reader>> open(const std::string& path);
  virtual ~ledger_reader() = default;
  ledger_reader(const ledger_reader&) = delete;
  ledger_reader& operator=(const ledger_reader&) = delete;

  /// Sums grouped by (operation, model_label, region, service_tier, team, app, status). Money is
  /// summed exactly in 128 bits (SQLite's SUM would overflow past ~9.2M USD).
  virtual ledger_result<std::vector<ledger_totals_row>> totals() = 0;

  /// Spend of the rows with from_ms <= time_ms < to_ms per (model_label, model_base, region,
  /// service_tier, team, app), rows that cost something only: what a commitment discount applies
  /// to when the net counters are restored. Pruned rows are not seen (the rollup has no time).
  virtual ledger_result<std::vector<series_spend_row>> series_spend(std::int64_t from_ms,
                                                                    std::int64_t to_ms) = 0;

  /// Exact pico-USD of rows with time_ms >= from_ms matching `filter`.
  virtual ledger_result<metering::money_total> spend_since(std::int64_t from_ms,
                                                           const spend_filter& filter) = 0;

  /// Rows with from_ms <= time_ms < to_ms grouped by `group_by` (empty: one row for everything),
  /// ordered by the keys.
  virtual ledger_result<std::vector<report_row>> query_report(
      std::int64_t from_ms, std::int64_t to_ms, const std::vector<report_key>& group_by) = 0;

  /// Streams the rows matching `filter` to `fn` in time order (ties in commit order), keeping
  /// none in memory; `fn` returns false to stop. Returns the number of rows handed over. Holds
  /// this reader's lock for the whole scan: give long scans a reader of their own.
  virtual ledger_result<std::uint64_t> scan(const scan_filter& filter,
                                            const std::function<bool(const scan_row&)>& fn) = 0;

  /// Rows before this time were pruned (see prune_ledger); nullopt when never pruned.
  virtual ledger_result<std::optional<std::int64_t>> pruned_before_ms() = 0;

  /// One page of the rows matching `f`, newest or costliest first; `next_cursor` continues it
  /// ("" after the last page). A malformed cursor is a `bad_query` error.
  struct request_page {
    std::vector<ledger_record> rows;
    std::string next_cursor;
  };
  virtual ledger_result<request_page> find_requests(const request_filter& f) = 0;

  /// The records with from_ms <= time_ms < to_ms, in commit order (at most `limit`). For export,
  /// reconciliation and tests.
  virtual ledger_result<std::vector<ledger_record>> records(std::int64_t from_ms,
                                                            std::int64_t to_ms,
                                                            std::size_t limit = SIZE_MAX) = 0;

 protected:
  ledger_reader() = default;
};

/// The local file read as the fleet's journal (fleet/shipper.hpp): rows in id order, ids never
/// reused. Its own read connection; one thread.
class journal {
 public:
  struct row {
    std::int64_t id = 0;
    ledger_record rec;
  };
  /// Opens an existing ledger file. Creates its fleet identity on first use (meta `journal_id`,
  /// 32 hex digits), so a replaced file never passes for the one already shipped.
  static ledger_result<std::unique_ptr<journal>> open(const std::string& path);
  ~journal();
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  [[nodiscard]] const std::string& id() const noexcept { return id_; }
  /// Rows with id > after_id, in id order, at most `limit`.
  ledger_result<std::vector<row>> after(std::int64_t after_id, std::size_t limit);
  /// The last id known shipped, as this file remembers it (0: none). PostgreSQL's record is the
  /// authority; this one may lag a batch behind and serves to size the spool while it is away.
  ledger_result<std::int64_t> shipped_locally();
  ledger_result<void> record_shipped(std::int64_t id);
  /// How many rows have id > after_id (from the ids, which are never reused: rows pruned before
  /// they were shipped count until shipped past), and the time_ms of the first (0 when none).
  ledger_result<std::pair<std::uint64_t, std::int64_t>> backlog(std::int64_t after_id);

 private:
  journal(sqlite3* db, std::string id) : db_(db), id_(std::move(id)) {}
  sqlite3* db_;
  std::string id_;
};

/// Retention: in one transaction, adds the rows with time_ms < before_ms to the `rollup` table
/// (per Prometheus series group, so `totals()` and the counters restored from it never go down)
/// and deletes them. Uses its own connection, so it may run beside a live proxy: it waits up to
/// `busy_timeout` for the write lock, and the proxy's writer retries while it holds it (records
/// stay queued). Prune a day or so at a time on a large ledger. Reports, budgets and `records`
/// no longer see pruned rows. Returns the number of rows deleted.
/// `keep_unshipped` (a replica's journal with `ledger.store: postgres`): refuses, deleting
/// nothing, when a row before the cut-off has not been shipped to PostgreSQL yet.
ledger_result<std::uint64_t> prune_ledger(
    const std::string& path, std::int64_t before_ms,
    std::chrono::milliseconds busy_timeout = std::chrono::seconds(10), bool keep_unshipped = false);

struct ledger_options {
  /// Most rows per transaction. Larger groups commit faster per row; smaller keep memory down.
  std::size_t batch_max = 512;
  /// Longest a record waits in memory before its group is committed (when fewer than
  /// batch_max are queued). Bounds what a crash can lose from the queue.
  std::chrono::milliseconds flush_interval{50};
  /// Most records in memory and not yet committed (queued + being written). A full queue makes
  /// `append` wait (back-pressure), never drop.
  std::size_t queue_capacity = 65536;
  /// true: PRAGMA synchronous=FULL (each commit is fsync'd: survives power loss and OS crashes).
  /// false: NORMAL (survives a process crash; an OS crash or power loss may lose the last
  /// commits). See docs/ledger.md.
  bool synchronous_full = true;
  /// How long SQLite itself waits on a lock held by another connection before reporting busy.
  std::chrono::milliseconds busy_timeout{2000};
  /// Retry backoff after a failed commit: doubles from min to max.
  std::chrono::milliseconds retry_backoff_min{10};
  std::chrono::milliseconds retry_backoff_max{2000};
  /// How long `close` keeps retrying before it gives up on records it cannot commit (they are
  /// then reported as lost through `log` and the `lost` counter). Shutdown must end eventually.
  std::chrono::milliseconds close_timeout{30000};
  /// One line per event worth an operator's attention (commit failures, recovery, loss, appends
  /// after close). Called mostly from the writer thread, also from `append`/`close` callers, never
  /// under the ledger's lock; must not call back into the ledger. Empty: silent.
  std::function<void(std::string_view)> log;
  /// Called on the writer thread for each record once its transaction has committed (the
  /// proxy frees the record's start record then).
  std::function<void(const ledger_record&)> after_commit;
  /// Test hook: called on the writer thread before each commit attempt.
  std::function<void()> before_commit;
};

struct ledger_counters {
  std::uint64_t appended = 0;          // records accepted by append
  std::uint64_t committed = 0;         // records durably in the database
  std::uint64_t commit_batches = 0;    // successful transactions
  std::uint64_t errors = 0;            // failed commit attempts (each retried)
  std::uint64_t queue_high_water = 0;  // most records uncommitted at once
  std::uint64_t blocked_appends = 0;   // appends that had to wait for space
  std::uint64_t rejected = 0;          // appends after close (refused, logged)
  std::uint64_t lost = 0;              // records given up at close_timeout (0 unless disk failed)
};

/// The writer. One per process per file; `append` from any thread.
class ledger {
 public:
  /// Opens (creating if needed) and migrates the ledger at `path`, then starts the writer thread.
  static ledger_result<std::unique_ptr<ledger>> open(const std::string& path,
                                                     ledger_options options);
  ~ledger();  ///< close()
  ledger(const ledger&) = delete;
  ledger& operator=(const ledger&) = delete;

  /// Queues a record for the writer. Never touches the disk. Blocks only while the queue is full
  /// (back-pressure). Returns false only after close (the record is refused and counted).
  bool append(ledger_record rec);

  /// Blocks until every record appended before the call is committed, or `timeout` passes.
  /// Returns true when all were committed.
  bool flush(std::chrono::milliseconds timeout = std::chrono::milliseconds::max());

  /// Flushes, stops the writer and closes its connection. Idempotent. Returns the number of
  /// records that could not be committed within close_timeout (normally 0).
  std::uint64_t close();

  /// Records appended and not yet committed.
  [[nodiscard]] std::size_t queue_depth() const noexcept;
  [[nodiscard]] ledger_counters counters() const noexcept;

  /// The read side (own connection). Valid until the ledger is destroyed.
  ledger_reader& reader() noexcept { return *reader_; }

 private:
  ledger(std::string path, ledger_options options, sqlite3* db,
         std::unique_ptr<ledger_reader> reader);
  void run_writer();
  /// Writes `n` records starting at `recs` in one transaction, retrying until committed or the
  /// close deadline passes. Returns true when committed.
  bool commit_with_retry(const ledger_record* recs, std::size_t n);
  /// One attempt at that transaction; the error says why it failed.
  ledger_result<void> try_commit(const ledger_record* recs, std::size_t n);
  void log(std::string_view line) const;

  std::string path_;
  ledger_options opt_;
  sqlite3* db_;  // the writer's connection: only the writer thread touches it after open
  sqlite3_stmt* insert_ = nullptr;
  std::int64_t next_id_ = 1;  // writer thread only
  std::unique_ptr<ledger_reader> reader_;

  mutable std::mutex mu_;
  std::condition_variable writer_cv_;   // the writer waits for work
  std::condition_variable space_cv_;    // appenders wait for space
  std::condition_variable done_cv_;     // flush/close wait for commits
  std::vector<ledger_record> pending_;  // guarded by mu_
  std::uint64_t appended_seq_ = 0;      // guarded by mu_: records ever accepted
  std::uint64_t settled_seq_ = 0;       // guarded by mu_: records committed or given up
  std::size_t flush_waiters_ = 0;       // guarded by mu_
  bool stopping_ = false;               // guarded by mu_
  bool abandon_ = false;                // guarded by mu_: close deadline passed
  bool closed_ = false;                 // guarded by mu_

  std::atomic<std::uint64_t> committed_{0};
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> errors_{0};
  std::atomic<std::uint64_t> high_water_{0};
  std::atomic<std::uint64_t> blocked_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> lost_{0};
  std::atomic<std::uint64_t> appended_{0};

  std::thread writer_;
};

}  // namespace bedrock_meter::accounting
