#pragma once
// The SQLite plumbing the ledger's writer, reader and retention share: owning handles, running a
// statement, reading and binding columns, and the one way a SQLite failure becomes a
// `ledger_error`. Internal to bm_accounting; the rest of the program uses accounting/ledger.hpp.
#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "accounting/ledger.hpp"

namespace bedrock_meter::accounting {

struct connection_closer {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
/// An open database connection; closed when it goes out of scope unless released.
using connection = std::unique_ptr<sqlite3, connection_closer>;

/// A prepared statement, finalized when it goes out of scope.
struct statement {
  sqlite3_stmt* s = nullptr;
  statement() = default;
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  ~statement() { sqlite3_finalize(s); }
};

/// SQLite's message for the last failure on `db` with the name of its (extended) code.
std::string errmsg(sqlite3* db);
/// A `ledger_error` of kind `sqlite`: "<context>: <errmsg(db)>".
ledger_error sqlite_error(sqlite3* db, std::string_view context);

/// Runs one or more statements; the SQLite result code.
int exec(sqlite3* db, std::string_view sql);
/// Prepares one statement into `st`; the SQLite result code.
int prepare(sqlite3* db, std::string_view sql, statement& st);
/// One integer from a single-row query; nullopt on error (errmsg(db) says why).
std::optional<std::int64_t> query_int(sqlite3* db, std::string_view sql);

/// Column `i` as text; empty for NULL.
std::string column_text(sqlite3_stmt* s, int i);
/// Binds `v` to parameter `i` without copying: `v` must outlive the statement's next step.
void bind_text(sqlite3_stmt* s, int i, std::string_view v);

/// SQLite integers are int64: larger counts are stored as INT64_MAX.
std::int64_t clamp_i64(std::uint64_t v) noexcept;
/// Counts read back from SQLite; a negative value (never written by the ledger) reads as 0.
std::uint64_t as_u64(std::int64_t v) noexcept;

}  // namespace bedrock_meter::accounting
