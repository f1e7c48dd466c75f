// Retention: old rows leave `requests` for their per-series group in `rollup`, in one
// transaction on a connection of its own, so it can run beside a live proxy.
#include "accounting/ledger.hpp"

#include <string>
#include <utility>

#include "accounting/ledger_schema.hpp"
#include "accounting/ledger_sqlite.hpp"

namespace bedrock_meter::accounting {

namespace {

// A ledger at this build's schema version, opened for writing (never created or migrated here).
ledger_result<connection> open_for_prune(const std::string& path,
                                         std::chrono::milliseconds busy_timeout) {
  auto file = open_ledger_file(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, busy_timeout);
  if (!file) return file.error();
  if (file->version != ledger_schema_version) {
    return ledger_error{ledger_error::kind::not_a_ledger,
                        "ledger " + path + " has schema version " + std::to_string(file->version) +
                            "; open it with the proxy first"};
  }
  return std::move(file->db);
}

// Adds the sums of the rows with time_ms < ?1 to their groups in `rollup`.
std::string rollup_upsert_sql() {
  std::string columns(group_columns);
  std::string merge;
  for (const auto& c : rollup_value_columns()) {
    columns += ", " + c;
    if (!merge.empty()) merge += ", ";
    merge += c + " = " + c + " + excluded." + c;
  }
  // The SELECT has a WHERE clause, which SQLite's upsert-after-SELECT parsing requires.
  return "INSERT INTO rollup (" + columns + ") " + group_sums_sql("WHERE time_ms < ?1") +
         " ON CONFLICT (" + std::string(group_columns) + ") DO UPDATE SET " + merge;
}

// Keeps each lo half below 2^32 by carrying into hi, so repeated prunes never overflow.
std::string rollup_carry_sql() {
  std::string carry;
  for (auto c : cost_columns) {
    const std::string hi = std::string(c) + "_hi";
    const std::string lo = std::string(c) + "_lo";
    if (!carry.empty()) carry += ", ";
    carry += hi + " = " + hi + " + (" + lo + " >> 32), " + lo + " = " + lo + " & 4294967295";
  }
  return "UPDATE rollup SET " + carry;
}

// Remembers the newest cut-off, so readers can tell reports before it are incomplete.
constexpr std::string_view mark_pruned_sql =
    "INSERT INTO meta (key, value) VALUES ('pruned_before_ms', ?1) "
    "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)";

// The statements of one prune, all in one transaction on `db`. A failure rolls everything back.
class prune_transaction {
 public:
  prune_transaction(sqlite3* db, const std::string& path, std::int64_t before_ms)
      : db_(db), path_(path), before_ms_(before_ms) {}

  // Rolls back and names the step that failed. Called while the failed statement is still
  // open, so SQLite's message is still that statement's.
  ledger_error failed(std::string_view step) const {
    auto err = sqlite_error(db_, "pruning ledger " + path_ + ": " + std::string(step));
    exec(db_, "ROLLBACK");
    return err;
  }

  // Runs `sql`, whose only parameter (?1) is the cut-off.
  ledger_result<void> run(std::string_view step, std::string_view sql) const {
    statement st;
    if (prepare(db_, sql, st) != SQLITE_OK) return failed(step);
    sqlite3_bind_int64(st.s, 1, before_ms_);
    if (sqlite3_step(st.s) != SQLITE_DONE) return failed(step);
    return {};
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  std::int64_t before_ms_;
};

}  // namespace

ledger_result<std::uint64_t> prune_ledger(const std::string& path, std::int64_t before_ms,
                                          std::chrono::milliseconds busy_timeout,
                                          bool keep_unshipped) {
  auto db = open_for_prune(path, busy_timeout);
  if (!db) return db.error();
  sqlite3* raw = db->get();
  const prune_transaction tx(raw, path, before_ms);
  if (exec(raw, "PRAGMA synchronous=FULL") != SQLITE_OK ||
      exec(raw, "BEGIN IMMEDIATE") != SQLITE_OK) {
    return tx.failed("cannot take the write lock");
  }
  if (keep_unshipped) {
    // The shipper records how far it got in `meta` (at most a batch behind PostgreSQL's own
    // record), so a row above that mark may still be PostgreSQL's only way to see it.
    std::int64_t unshipped = 0;
    {
      statement st;
      if (prepare(raw,
                  "SELECT count(*) FROM requests WHERE time_ms < ?1 AND id > COALESCE((SELECT "
                  "value FROM meta WHERE key = 'shipped_id'), 0)",
                  st) != SQLITE_OK)
        return tx.failed("unshipped rows");
      sqlite3_bind_int64(st.s, 1, before_ms);
      if (sqlite3_step(st.s) != SQLITE_ROW) return tx.failed("unshipped rows");
      unshipped = sqlite3_column_int64(st.s, 0);
    }
    if (unshipped > 0) {
      exec(raw, "ROLLBACK");
      return ledger_error{ledger_error::kind::sqlite,
                          "ledger " + path + ": " + std::to_string(unshipped) +
                              " rows before the cut-off are not yet shipped to the fleet "
                              "ledger (PostgreSQL); nothing pruned, prune again once they ship"};
    }
  }
  if (auto r = tx.run("rollup", rollup_upsert_sql()); !r) return r.error();
  if (exec(raw, rollup_carry_sql()) != SQLITE_OK) return tx.failed("rollup carry");
  // Ids are never reused, even when every row is pruned: the fleet's journal (fleet/shipper)
  // ships by id, and the writer continues from this floor.
  if (auto r = tx.run("id floor",
                      "INSERT INTO meta (key, value) SELECT 'id_floor', MAX(id) FROM requests "
                      "WHERE time_ms < ?1 HAVING MAX(id) IS NOT NULL "
                      "ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)");
      !r)
    return r.error();
  if (auto r = tx.run("delete", "DELETE FROM requests WHERE time_ms < ?1"); !r) return r.error();
  const auto deleted = static_cast<std::uint64_t>(sqlite3_changes64(raw));
  // The delete trigger took the rows out of spend_daily; drop the days it emptied.
  if (exec(raw, "DELETE FROM spend_daily WHERE requests = 0") != SQLITE_OK)
    return tx.failed("spend_daily");
  if (auto r = tx.run("meta", mark_pruned_sql); !r) return r.error();
  if (exec(raw, "COMMIT") != SQLITE_OK) return tx.failed("commit");
  return deleted;
}

}  // namespace bedrock_meter::accounting
