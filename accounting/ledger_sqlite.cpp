#include "accounting/ledger_sqlite.hpp"

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <utility>

namespace bedrock_meter::accounting {

namespace {

// The text outlives the step that reads it, so SQLite need not copy it.
const sqlite3_destructor_type no_copy = nullptr;

}  // namespace

void throw_exception_from_error(const ledger_error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

std::string errmsg(sqlite3* db) {
  return std::string(sqlite3_errmsg(db)) + " (" + sqlite3_errstr(sqlite3_extended_errcode(db)) +
         ")";
}

ledger_error sqlite_error(sqlite3* db, std::string_view context) {
  return ledger_error{ledger_error::kind::sqlite, std::string(context) + ": " + errmsg(db)};
}

int exec(sqlite3* db, std::string_view sql) {
  return sqlite3_exec(db, std::string(sql).c_str(), nullptr, nullptr, nullptr);
}

int prepare(sqlite3* db, std::string_view sql, statement& st) {
  return sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &st.s, nullptr);
}

std::optional<std::int64_t> query_int(sqlite3* db, std::string_view sql) {
  statement st;
  if (prepare(db, sql, st) != SQLITE_OK) return std::nullopt;
  if (sqlite3_step(st.s) != SQLITE_ROW) return std::nullopt;
  return sqlite3_column_int64(st.s, 0);
}

std::string column_text(sqlite3_stmt* s, int i) {
  const auto* p = sqlite3_column_text(s, i);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<std::size_t>(sqlite3_column_bytes(s, i)));
}

void bind_text(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), no_copy);
}

std::int64_t clamp_i64(std::uint64_t v) noexcept {
  return static_cast<std::int64_t>(std::min<std::uint64_t>(v, INT64_MAX));
}

std::uint64_t as_u64(std::int64_t v) noexcept { return v < 0 ? 0 : static_cast<std::uint64_t>(v); }

}  // namespace bedrock_meter::accounting
