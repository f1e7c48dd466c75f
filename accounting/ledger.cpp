#include "accounting/ledger.hpp"

#include <stdexcept>

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <climits>
#include <string>
#include <utility>

#include <boost/json.hpp>

namespace bedrock_meter::accounting {
namespace {

using metering::money_total;
using metering::usage_source;

// 'BMLG': marks the file as a bedrock-meter ledger, so we never migrate someone else's database.
constexpr int application_id = 0x424D4C47;

// Schema migrations: entry i brings user_version i to i+1. Append, never edit: a file at version
// N runs entries N.. on open, each in its own transaction with its user_version bump.
constexpr std::array<std::string_view, ledger_schema_version> migrations = {
    // 0 -> 1
    R"sql(
CREATE TABLE requests (
  id                    INTEGER PRIMARY KEY,
  time_ms               INTEGER NOT NULL,
  request_id            TEXT    NOT NULL,
  team                  TEXT    NOT NULL,
  app                   TEXT    NOT NULL,
  principal             TEXT    NOT NULL,
  tags                  TEXT    NOT NULL,
  operation             TEXT    NOT NULL,
  model_requested       TEXT    NOT NULL,
  model_base            TEXT    NOT NULL,
  model_label           TEXT    NOT NULL,
  region                TEXT    NOT NULL,
  scope                 TEXT    NOT NULL,
  service_tier          TEXT    NOT NULL,
  latency_mode          TEXT    NOT NULL,
  batch                 INTEGER NOT NULL,
  status                INTEGER NOT NULL,
  outcome               TEXT    NOT NULL,
  input_tokens          INTEGER NOT NULL,
  output_tokens         INTEGER NOT NULL,
  cache_read_tokens     INTEGER NOT NULL,
  cache_write_tokens    INTEGER NOT NULL,
  cache_write_1h_tokens INTEGER NOT NULL,
  usage_source          TEXT    NOT NULL,
  input_cost            INTEGER NOT NULL,
  output_cost           INTEGER NOT NULL,
  cache_read_cost       INTEGER NOT NULL,
  cache_write_cost      INTEGER NOT NULL,
  total_cost            INTEGER NOT NULL,
  priced                INTEGER NOT NULL,
  unpriced_reason       TEXT    NOT NULL,
  rate_table_version    TEXT    NOT NULL,
  rate_entry            TEXT    NOT NULL,
  duration_us           INTEGER NOT NULL,
  first_byte_us         INTEGER NOT NULL,
  bytes_in              INTEGER NOT NULL,
  bytes_out             INTEGER NOT NULL
);
CREATE INDEX requests_time ON requests(time_ms);
CREATE INDEX requests_team_time ON requests(team, time_ms);
CREATE INDEX requests_app_time ON requests(app, time_ms);
CREATE TABLE rollup (
  operation                    TEXT    NOT NULL,
  model_label                  TEXT    NOT NULL,
  region                       TEXT    NOT NULL,
  service_tier                 TEXT    NOT NULL,
  team                         TEXT    NOT NULL,
  app                          TEXT    NOT NULL,
  status                       INTEGER NOT NULL,
  requests                     INTEGER NOT NULL,
  unpriced_requests            INTEGER NOT NULL,
  input_tokens                 INTEGER NOT NULL,
  output_tokens                INTEGER NOT NULL,
  cache_read_tokens            INTEGER NOT NULL,
  cache_write_tokens           INTEGER NOT NULL,
  estimated_input_tokens       INTEGER NOT NULL,
  estimated_output_tokens      INTEGER NOT NULL,
  estimated_cache_read_tokens  INTEGER NOT NULL,
  estimated_cache_write_tokens INTEGER NOT NULL,
  input_cost_hi                INTEGER NOT NULL,
  input_cost_lo                INTEGER NOT NULL,
  output_cost_hi               INTEGER NOT NULL,
  output_cost_lo               INTEGER NOT NULL,
  cache_read_cost_hi           INTEGER NOT NULL,
  cache_read_cost_lo           INTEGER NOT NULL,
  cache_write_cost_hi          INTEGER NOT NULL,
  cache_write_cost_lo          INTEGER NOT NULL,
  total_cost_hi                INTEGER NOT NULL,
  total_cost_lo                INTEGER NOT NULL,
  UNIQUE (operation, model_label, region, service_tier, team, app, status)
);
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value
);
)sql",
};

// Column list shared by INSERT and SELECT; the bind / read order below follows it.
constexpr std::string_view record_columns =
    "time_ms, request_id, team, app, principal, tags, operation, model_requested, model_base, "
    "model_label, region, scope, service_tier, latency_mode, batch, status, outcome, input_tokens, "
    "output_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, usage_source, "
    "input_cost, output_cost, cache_read_cost, cache_write_cost, total_cost, priced, "
    "unpriced_reason, rate_table_version, rate_entry, duration_us, first_byte_us, bytes_in, "
    "bytes_out";
constexpr int record_column_count = 36;

// The text outlives the step that reads it, so SQLite need not copy it.
const sqlite3_destructor_type no_copy = nullptr;

struct statement {
  sqlite3_stmt* s = nullptr;
  statement() = default;
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  ~statement() { sqlite3_finalize(s); }
};

std::string errmsg(sqlite3* db) {
  return std::string(sqlite3_errmsg(db)) + " (" + sqlite3_errstr(sqlite3_extended_errcode(db)) + ")";
}

ledger_error make_error(ledger_error::kind k, std::string message) {
  return ledger_error{k, std::move(message)};
}

template <typename T>
ledger_result<T> fail(ledger_error e) {
  return ledger_result<T>(boost::system::in_place_error, std::move(e));
}

template <typename T>
ledger_result<T> ok(T v) {
  return ledger_result<T>(boost::system::in_place_value, std::move(v));
}

int exec(sqlite3* db, std::string_view sql) {
  return sqlite3_exec(db, std::string(sql).c_str(), nullptr, nullptr, nullptr);
}

int prepare(sqlite3* db, std::string_view sql, statement& st) {
  return sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &st.s, nullptr);
}

// One integer from a single-row query; nullopt on error (sqlite3_errmsg says why).
std::optional<std::int64_t> query_int(sqlite3* db, std::string_view sql) {
  statement st;
  if (prepare(db, sql, st) != SQLITE_OK) return std::nullopt;
  if (sqlite3_step(st.s) != SQLITE_ROW) return std::nullopt;
  return sqlite3_column_int64(st.s, 0);
}

std::int64_t clamp_i64(std::uint64_t v) noexcept {
  return static_cast<std::int64_t>(std::min<std::uint64_t>(v, INT64_MAX));
}

std::uint64_t as_u64(std::int64_t v) noexcept { return v < 0 ? 0 : static_cast<std::uint64_t>(v); }

std::string tags_to_json(const std::map<std::string, std::string>& tags) {
  if (tags.empty()) return "{}";
  boost::json::object o;
  for (const auto& [k, v] : tags) o[k] = v;
  return boost::json::serialize(o);
}

std::map<std::string, std::string> tags_from_json(std::string_view text) {
  std::map<std::string, std::string> out;
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) return out;
  for (const auto& [k, val] : v.as_object()) {
    out.emplace(std::string(k), val.is_string() ? std::string(val.as_string())
                                                : boost::json::serialize(val));
  }
  return out;
}

std::string column_text(sqlite3_stmt* s, int i) {
  const auto* p = sqlite3_column_text(s, i);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s, i)));
}

void bind_text(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), no_copy);
}

// Money sums: SQLite's SUM is int64 and fails with "integer overflow" past ~9.2M USD. Summing the
// high and low 32-bit halves separately keeps each partial sum within int64 for up to 2^31 rows
// per group, and (hi << 32) + lo recombines them exactly in 128 bits (>> is arithmetic in SQLite,
// so negative amounts recombine too).
std::string money_sum_sql(std::string_view column) {
  std::string c(column);
  return "COALESCE(SUM(" + c + " >> 32), 0), COALESCE(SUM(" + c + " & 4294967295), 0)";
}

money_total read_money(sqlite3_stmt* s, int i) {
  const money_total hi = sqlite3_column_int64(s, i);
  const money_total lo = sqlite3_column_int64(s, i + 1);
  return hi * (money_total{1} << 32) + lo;
}

constexpr std::array<std::string_view, 5> cost_columns = {"input_cost", "output_cost", "cache_read_cost",
                                                          "cache_write_cost", "total_cost"};

std::string money_sums_sql() {
  std::string out;
  for (auto c : cost_columns) {
    out += ", ";
    out += money_sum_sql(c);
  }
  return out;
}

// The Prometheus series groups, and what `rollup` keeps per group for pruned rows.
constexpr std::string_view group_columns = "operation, model_label, region, service_tier, team, app, status";
constexpr std::array<std::string_view, 10> count_columns = {
    "requests",           "unpriced_requests",      "input_tokens",           "output_tokens",
    "cache_read_tokens",  "cache_write_tokens",     "estimated_input_tokens", "estimated_output_tokens",
    "estimated_cache_read_tokens", "estimated_cache_write_tokens"};

// Every rollup column after the group keys, in order: counts, then money as hi/lo halves.
std::vector<std::string> rollup_value_columns() {
  std::vector<std::string> out(count_columns.begin(), count_columns.end());
  for (auto c : cost_columns) {
    out.push_back(std::string(c) + "_hi");
    out.push_back(std::string(c) + "_lo");
  }
  return out;
}

// Aggregates `requests` rows (optionally restricted by `where`) into rollup-shaped rows, named as
// the rollup columns so the two can be UNIONed.
std::string group_sums_sql(std::string_view where) {
  const std::array<std::string_view, count_columns.size()> count_exprs = {
      "count(*)",
      "SUM(priced = 0)",
      "SUM(input_tokens)",
      "SUM(output_tokens)",
      "SUM(cache_read_tokens)",
      "SUM(cache_write_tokens)",
      "SUM(CASE WHEN usage_source = 'estimated' THEN input_tokens ELSE 0 END)",
      "SUM(CASE WHEN usage_source = 'estimated' THEN output_tokens ELSE 0 END)",
      "SUM(CASE WHEN usage_source = 'estimated' THEN cache_read_tokens ELSE 0 END)",
      "SUM(CASE WHEN usage_source = 'estimated' THEN cache_write_tokens ELSE 0 END)"};
  std::string sql = "SELECT " + std::string(group_columns);
  for (std::size_t i = 0; i < count_columns.size(); ++i) {
    sql += ", " + std::string(count_exprs[i]) + " AS " + std::string(count_columns[i]);
  }
  for (auto c : cost_columns) {
    const std::string col(c);
    sql += ", SUM(" + col + " >> 32) AS " + col + "_hi, SUM(" + col + " & 4294967295) AS " + col + "_lo";
  }
  return sql + " FROM requests " + std::string(where) + " GROUP BY " + std::string(group_columns);
}

// Checks a freshly opened connection holds a ledger (or is empty) and returns its user_version.
ledger_result<int> check_identity(sqlite3* db, const std::string& path) {
  auto app = query_int(db, "PRAGMA application_id");
  if (!app) {
    const int rc = sqlite3_errcode(db);
    if (rc == SQLITE_NOTADB) {
      return fail<int>(make_error(ledger_error::kind::not_a_ledger,
                                  "ledger " + path + " is not a SQLite database: " + errmsg(db) +
                                      "; point ledger.path at a new file or a bedrock-meter ledger"));
    }
    return fail<int>(make_error(ledger_error::kind::cannot_open,
                                "cannot read ledger " + path + ": " + errmsg(db)));
  }
  auto version = query_int(db, "PRAGMA user_version");
  auto tables = query_int(db, "SELECT count(*) FROM sqlite_master");
  if (!version || !tables) {
    return fail<int>(make_error(ledger_error::kind::sqlite, "cannot read ledger " + path + ": " + errmsg(db)));
  }
  if (*app != application_id && (*app != 0 || *tables != 0)) {
    return fail<int>(make_error(ledger_error::kind::not_a_ledger,
                                "ledger " + path + " is a SQLite database of another application " +
                                    "(application_id " + std::to_string(*app) + ", " +
                                    std::to_string(*tables) + " schema objects); refusing to write to it"));
  }
  if (*version > ledger_schema_version) {
    return fail<int>(make_error(ledger_error::kind::newer_schema,
                                "ledger " + path + " has schema version " + std::to_string(*version) +
                                    ", newer than this bedrock-meter supports (" +
                                    std::to_string(ledger_schema_version) +
                                    "); run a newer bedrock-meter or point ledger.path elsewhere"));
  }
  return ok(static_cast<int>(*version));
}

// Opening with SQLITE_OPEN_CREATE into a missing or read-only directory fails with a bare
// "unable to open database file": say which file and what to check.
ledger_error open_error(sqlite3* db, const std::string& path, bool create) {
  std::string msg = "cannot open ledger " + path + ": " + (db ? errmsg(db) : std::string("out of memory"));
  if (create) msg += "; check that the directory exists and is writable and the path is not a directory";
  return make_error(ledger_error::kind::cannot_open, std::move(msg));
}

void read_record(sqlite3_stmt* s, int base, ledger_record& r) {
  int i = base;
  r.time_ms = sqlite3_column_int64(s, i++);
  r.request_id = column_text(s, i++);
  r.team = column_text(s, i++);
  r.app = column_text(s, i++);
  r.principal = column_text(s, i++);
  r.tags = tags_from_json(column_text(s, i++));
  r.operation = column_text(s, i++);
  r.model_requested = column_text(s, i++);
  r.model_base = column_text(s, i++);
  r.model_label = column_text(s, i++);
  r.region = column_text(s, i++);
  r.scope = column_text(s, i++);
  r.service_tier = column_text(s, i++);
  r.latency_mode = column_text(s, i++);
  r.batch = sqlite3_column_int64(s, i++) != 0;
  r.status = static_cast<unsigned>(sqlite3_column_int64(s, i++));
  r.outcome = metering::parse_outcome(column_text(s, i++)).value_or(metering::request_outcome::ok);
  r.input_tokens = as_u64(sqlite3_column_int64(s, i++));
  r.output_tokens = as_u64(sqlite3_column_int64(s, i++));
  r.cache_read_tokens = as_u64(sqlite3_column_int64(s, i++));
  r.cache_write_tokens = as_u64(sqlite3_column_int64(s, i++));
  r.cache_write_1h_tokens = as_u64(sqlite3_column_int64(s, i++));
  r.usage_source = metering::parse_usage_source(column_text(s, i++)).value_or(usage_source::none);
  r.input_cost = sqlite3_column_int64(s, i++);
  r.output_cost = sqlite3_column_int64(s, i++);
  r.cache_read_cost = sqlite3_column_int64(s, i++);
  r.cache_write_cost = sqlite3_column_int64(s, i++);
  r.total_cost = sqlite3_column_int64(s, i++);
  r.priced = sqlite3_column_int64(s, i++) != 0;
  r.unpriced_reason = column_text(s, i++);
  r.rate_table_version = column_text(s, i++);
  r.rate_entry = column_text(s, i++);
  r.duration_us = sqlite3_column_int64(s, i++);
  r.first_byte_us = sqlite3_column_int64(s, i++);
  r.bytes_in = as_u64(sqlite3_column_int64(s, i++));
  r.bytes_out = as_u64(sqlite3_column_int64(s, i++));
}

// Binds id (1) and the record (2..); `tags_json` must outlive the step.
void bind_record(sqlite3_stmt* s, std::int64_t id, const ledger_record& r, const std::string& tags_json) {
  int i = 1;
  sqlite3_bind_int64(s, i++, id);
  sqlite3_bind_int64(s, i++, r.time_ms);
  bind_text(s, i++, r.request_id);
  bind_text(s, i++, r.team);
  bind_text(s, i++, r.app);
  bind_text(s, i++, r.principal);
  bind_text(s, i++, tags_json);
  bind_text(s, i++, r.operation);
  bind_text(s, i++, r.model_requested);
  bind_text(s, i++, r.model_base);
  bind_text(s, i++, r.model_label);
  bind_text(s, i++, r.region);
  bind_text(s, i++, r.scope);
  bind_text(s, i++, r.service_tier);
  bind_text(s, i++, r.latency_mode);
  sqlite3_bind_int(s, i++, r.batch ? 1 : 0);
  sqlite3_bind_int64(s, i++, static_cast<std::int64_t>(r.status));
  bind_text(s, i++, to_string(r.outcome));
  sqlite3_bind_int64(s, i++, clamp_i64(r.input_tokens));
  sqlite3_bind_int64(s, i++, clamp_i64(r.output_tokens));
  sqlite3_bind_int64(s, i++, clamp_i64(r.cache_read_tokens));
  sqlite3_bind_int64(s, i++, clamp_i64(r.cache_write_tokens));
  sqlite3_bind_int64(s, i++, clamp_i64(r.cache_write_1h_tokens));
  bind_text(s, i++, to_string(r.usage_source));
  sqlite3_bind_int64(s, i++, r.input_cost);
  sqlite3_bind_int64(s, i++, r.output_cost);
  sqlite3_bind_int64(s, i++, r.cache_read_cost);
  sqlite3_bind_int64(s, i++, r.cache_write_cost);
  sqlite3_bind_int64(s, i++, r.total_cost);
  sqlite3_bind_int(s, i++, r.priced ? 1 : 0);
  bind_text(s, i++, r.unpriced_reason);
  bind_text(s, i++, r.rate_table_version);
  bind_text(s, i++, r.rate_entry);
  sqlite3_bind_int64(s, i++, r.duration_us);
  sqlite3_bind_int64(s, i++, r.first_byte_us);
  sqlite3_bind_int64(s, i++, clamp_i64(r.bytes_in));
  sqlite3_bind_int64(s, i++, clamp_i64(r.bytes_out));
}

std::string_view report_key_sql(report_key k) noexcept {
  switch (k) {
    case report_key::team: return "team";
    case report_key::app: return "app";
    case report_key::model_base: return "model_base";
    // Integer division keeps whole seconds; 'unixepoch' dates are UTC.
    case report_key::day: return "date(time_ms / 1000, 'unixepoch')";
  }
  return "''";
}

}  // namespace

// --- vocabularies -------------------------------------------------------------------------------

void throw_exception_from_error(const ledger_error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

std::string_view to_string(report_key k) noexcept {
  switch (k) {
    case report_key::team: return "team";
    case report_key::app: return "app";
    case report_key::model_base: return "model_base";
    case report_key::day: return "day";
  }
  return "team";
}

std::optional<report_key> parse_report_key(std::string_view s) noexcept {
  for (auto k : {report_key::team, report_key::app, report_key::model_base, report_key::day}) {
    if (to_string(k) == s) return k;
  }
  return std::nullopt;
}

// --- reader -------------------------------------------------------------------------------------

ledger_result<std::unique_ptr<ledger_reader>> ledger_reader::open(const std::string& path) {
  using result = std::unique_ptr<ledger_reader>;
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<ledger_reader> reader(new ledger_reader(db));  // owns db even on failure
  if (rc != SQLITE_OK) return fail<result>(open_error(db, path, false));
  sqlite3_busy_timeout(db, 5000);
  auto version = check_identity(db, path);
  if (!version) return fail<result>(version.error());
  if (*version < ledger_schema_version) {
    return fail<result>(make_error(ledger_error::kind::not_a_ledger,
                                   "ledger " + path + " has schema version " + std::to_string(*version) +
                                       "; open it once with the proxy (bedrock-meter serve) to create or migrate it"));
  }
  return ok(std::move(reader));
}

ledger_reader::~ledger_reader() { sqlite3_close_v2(db_); }

ledger_result<std::vector<ledger_totals_row>> ledger_reader::totals() {
  using result = std::vector<ledger_totals_row>;
  std::lock_guard lk(mu_);
  // Live rows plus what pruning rolled up, so counters do not drop when old rows are deleted.
  // Re-summing hi and lo halves separately stays exact (each stays far inside int64).
  std::string values;
  std::string sums;
  for (const auto& c : rollup_value_columns()) {
    values += ", " + c;
    sums += ", SUM(" + c + ")";
  }
  const std::string sql = "SELECT " + std::string(group_columns) + sums + " FROM (" + group_sums_sql("") +
                          " UNION ALL SELECT " + std::string(group_columns) + values +
                          " FROM rollup) GROUP BY " + std::string(group_columns);
  statement st;
  if (prepare(db_, sql, st) != SQLITE_OK) {
    return fail<result>(make_error(ledger_error::kind::sqlite, "ledger totals: " + errmsg(db_)));
  }
  result rows;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    ledger_totals_row r;
    int i = 0;
    r.operation = column_text(st.s, i++);
    r.model_label = column_text(st.s, i++);
    r.region = column_text(st.s, i++);
    r.service_tier = column_text(st.s, i++);
    r.team = column_text(st.s, i++);
    r.app = column_text(st.s, i++);
    r.status = static_cast<unsigned>(sqlite3_column_int64(st.s, i++));
    r.requests = as_u64(sqlite3_column_int64(st.s, i++));
    r.unpriced_requests = as_u64(sqlite3_column_int64(st.s, i++));
    r.input_tokens = as_u64(sqlite3_column_int64(st.s, i++));
    r.output_tokens = as_u64(sqlite3_column_int64(st.s, i++));
    r.cache_read_tokens = as_u64(sqlite3_column_int64(st.s, i++));
    r.cache_write_tokens = as_u64(sqlite3_column_int64(st.s, i++));
    r.estimated_input_tokens = as_u64(sqlite3_column_int64(st.s, i++));
    r.estimated_output_tokens = as_u64(sqlite3_column_int64(st.s, i++));
    r.estimated_cache_read_tokens = as_u64(sqlite3_column_int64(st.s, i++));
    r.estimated_cache_write_tokens = as_u64(sqlite3_column_int64(st.s, i++));
    r.input_cost = read_money(st.s, i);
    r.output_cost = read_money(st.s, i + 2);
    r.cache_read_cost = read_money(st.s, i + 4);
    r.cache_write_cost = read_money(st.s, i + 6);
    r.total_cost = read_money(st.s, i + 8);
    rows.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) {
    return fail<result>(make_error(ledger_error::kind::sqlite, "ledger totals: " + errmsg(db_)));
  }
  return ok(std::move(rows));
}

ledger_result<money_total> ledger_reader::spend_since(std::int64_t from_ms, const spend_filter& filter) {
  std::lock_guard lk(mu_);
  // Only the set filters appear in the WHERE clause, so SQLite can pick the (team, time_ms) or
  // (app, time_ms) index; "?x IS NULL OR col = ?x" would defeat it.
  std::string sql = "SELECT " + money_sum_sql("total_cost") + " FROM requests WHERE time_ms >= ?1";
  std::vector<const std::string*> values;
  const std::pair<const char*, const std::optional<std::string>*> fields[] = {
      {"team", &filter.team},           {"app", &filter.app},
      {"principal", &filter.principal}, {"model_base", &filter.model_base},
      {"model_label", &filter.model_label}};
  for (const auto& [column, value] : fields) {
    if (!value->has_value()) continue;
    values.push_back(&**value);
    sql += std::string(" AND ") + column + " = ?" + std::to_string(values.size() + 1);
  }
  statement st;
  if (prepare(db_, sql, st) != SQLITE_OK) {
    return fail<money_total>(make_error(ledger_error::kind::sqlite, "ledger spend: " + errmsg(db_)));
  }
  sqlite3_bind_int64(st.s, 1, from_ms);
  for (std::size_t i = 0; i < values.size(); ++i) bind_text(st.s, static_cast<int>(i + 2), *values[i]);
  if (sqlite3_step(st.s) != SQLITE_ROW) {
    return fail<money_total>(make_error(ledger_error::kind::sqlite, "ledger spend: " + errmsg(db_)));
  }
  return ok(read_money(st.s, 0));
}

ledger_result<std::vector<report_row>> ledger_reader::query_report(std::int64_t from_ms, std::int64_t to_ms,
                                                                   const std::vector<report_key>& group_by) {
  using result = std::vector<report_row>;
  std::lock_guard lk(mu_);
  std::string keys;
  for (auto k : group_by) {
    if (!keys.empty()) keys += ", ";
    keys += report_key_sql(k);
  }
  std::string sql = "SELECT ";
  if (!keys.empty()) sql += keys + ", ";
  sql +=
      "count(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
      "COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(cache_write_tokens), 0)" +
      money_sums_sql() + " FROM requests WHERE time_ms >= ?1 AND time_ms < ?2";
  if (!keys.empty()) sql += " GROUP BY " + keys + " ORDER BY " + keys;
  statement st;
  if (prepare(db_, sql, st) != SQLITE_OK) {
    return fail<result>(make_error(ledger_error::kind::sqlite, "ledger report: " + errmsg(db_)));
  }
  sqlite3_bind_int64(st.s, 1, from_ms);
  sqlite3_bind_int64(st.s, 2, to_ms);
  result rows;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    report_row r;
    int i = 0;
    for (std::size_t k = 0; k < group_by.size(); ++k) r.keys.push_back(column_text(st.s, i++));
    r.requests = as_u64(sqlite3_column_int64(st.s, i++));
    if (r.requests == 0) continue;  // an ungrouped query over no rows still yields one row
    r.input_tokens = as_u64(sqlite3_column_int64(st.s, i++));
    r.output_tokens = as_u64(sqlite3_column_int64(st.s, i++));
    r.cache_read_tokens = as_u64(sqlite3_column_int64(st.s, i++));
    r.cache_write_tokens = as_u64(sqlite3_column_int64(st.s, i++));
    r.input_cost = read_money(st.s, i);
    r.output_cost = read_money(st.s, i + 2);
    r.cache_read_cost = read_money(st.s, i + 4);
    r.cache_write_cost = read_money(st.s, i + 6);
    r.total_cost = read_money(st.s, i + 8);
    rows.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) {
    return fail<result>(make_error(ledger_error::kind::sqlite, "ledger report: " + errmsg(db_)));
  }
  return ok(std::move(rows));
}

ledger_result<std::optional<std::int64_t>> ledger_reader::pruned_before_ms() {
  using result = std::optional<std::int64_t>;
  std::lock_guard lk(mu_);
  statement st;
  if (prepare(db_, "SELECT value FROM meta WHERE key = 'pruned_before_ms'", st) != SQLITE_OK) {
    return fail<result>(make_error(ledger_error::kind::sqlite, "ledger meta: " + errmsg(db_)));
  }
  const int rc = sqlite3_step(st.s);
  if (rc == SQLITE_ROW) return ok(result(sqlite3_column_int64(st.s, 0)));
  if (rc == SQLITE_DONE) return ok(result());
  return fail<result>(make_error(ledger_error::kind::sqlite, "ledger meta: " + errmsg(db_)));
}

ledger_result<std::vector<ledger_record>> ledger_reader::records(std::int64_t from_ms, std::int64_t to_ms,
                                                                 std::size_t limit) {
  using result = std::vector<ledger_record>;
  std::lock_guard lk(mu_);
  const std::string sql = "SELECT " + std::string(record_columns) +
                          " FROM requests WHERE time_ms >= ?1 AND time_ms < ?2 ORDER BY id LIMIT ?3";
  statement st;
  if (prepare(db_, sql, st) != SQLITE_OK) {
    return fail<result>(make_error(ledger_error::kind::sqlite, "ledger records: " + errmsg(db_)));
  }
  sqlite3_bind_int64(st.s, 1, from_ms);
  sqlite3_bind_int64(st.s, 2, to_ms);
  sqlite3_bind_int64(st.s, 3, clamp_i64(limit));
  result rows;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    read_record(st.s, 0, rows.emplace_back());
  }
  if (rc != SQLITE_DONE) {
    return fail<result>(make_error(ledger_error::kind::sqlite, "ledger records: " + errmsg(db_)));
  }
  return ok(std::move(rows));
}

// --- retention ----------------------------------------------------------------------------------

ledger_result<std::uint64_t> prune_ledger(const std::string& path, std::int64_t before_ms,
                                          std::chrono::milliseconds busy_timeout) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> db(raw, &sqlite3_close_v2);
  if (rc != SQLITE_OK) return fail<std::uint64_t>(open_error(raw, path, false));
  sqlite3_busy_timeout(raw, static_cast<int>(busy_timeout.count()));
  auto version = check_identity(raw, path);
  if (!version) return fail<std::uint64_t>(version.error());
  if (*version != ledger_schema_version) {
    return fail<std::uint64_t>(make_error(ledger_error::kind::not_a_ledger,
                                          "ledger " + path + " has schema version " +
                                              std::to_string(*version) + "; open it with the proxy first"));
  }
  auto failed = [&](std::string_view what) {
    auto err = make_error(ledger_error::kind::sqlite, "pruning ledger " + path + ": " + std::string(what) + ": " + errmsg(raw));
    exec(raw, "ROLLBACK");
    return fail<std::uint64_t>(std::move(err));
  };
  if (exec(raw, "PRAGMA synchronous=FULL") != SQLITE_OK || exec(raw, "BEGIN IMMEDIATE") != SQLITE_OK) {
    return failed("cannot take the write lock");
  }

  const auto values = rollup_value_columns();
  std::string columns(group_columns);
  std::string merge;
  std::string carry;
  for (const auto& c : values) {
    columns += ", " + c;
    if (!merge.empty()) merge += ", ";
    merge += c + " = " + c + " + excluded." + c;
  }
  // Keep each lo half below 2^32 by carrying into hi, so repeated prunes never overflow.
  for (auto c : cost_columns) {
    const std::string hi = std::string(c) + "_hi";
    const std::string lo = std::string(c) + "_lo";
    if (!carry.empty()) carry += ", ";
    carry += hi + " = " + hi + " + (" + lo + " >> 32), " + lo + " = " + lo + " & 4294967295";
  }
  // The SELECT has a WHERE clause, which SQLite's upsert-after-SELECT parsing requires.
  const std::string upsert = "INSERT INTO rollup (" + columns + ") " + group_sums_sql("WHERE time_ms < ?1") +
                             " ON CONFLICT (" + std::string(group_columns) + ") DO UPDATE SET " + merge;
  {
    statement st;
    if (prepare(raw, upsert, st) != SQLITE_OK) return failed("rollup");
    sqlite3_bind_int64(st.s, 1, before_ms);
    if (sqlite3_step(st.s) != SQLITE_DONE) return failed("rollup");
  }
  if (exec(raw, "UPDATE rollup SET " + carry) != SQLITE_OK) return failed("rollup carry");
  std::uint64_t deleted = 0;
  {
    statement st;
    if (prepare(raw, "DELETE FROM requests WHERE time_ms < ?1", st) != SQLITE_OK) return failed("delete");
    sqlite3_bind_int64(st.s, 1, before_ms);
    if (sqlite3_step(st.s) != SQLITE_DONE) return failed("delete");
    deleted = static_cast<std::uint64_t>(sqlite3_changes64(raw));
  }
  {
    statement st;
    if (prepare(raw,
                "INSERT INTO meta (key, value) VALUES ('pruned_before_ms', ?1) "
                "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                st) != SQLITE_OK) {
      return failed("meta");
    }
    sqlite3_bind_int64(st.s, 1, before_ms);
    if (sqlite3_step(st.s) != SQLITE_DONE) return failed("meta");
  }
  if (exec(raw, "COMMIT") != SQLITE_OK) return failed("commit");
  return ok(deleted);
}

// --- writer -------------------------------------------------------------------------------------

ledger_result<std::unique_ptr<ledger>> ledger::open(const std::string& path, ledger_options options) {
  using result = std::unique_ptr<ledger>;
  if (options.batch_max == 0) options.batch_max = 1;
  if (options.queue_capacity == 0) options.queue_capacity = 1;

  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  // Closes the connection on every early return; released once the ledger owns it.
  std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> db(raw, &sqlite3_close_v2);
  if (rc != SQLITE_OK) return fail<result>(open_error(raw, path, true));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, static_cast<int>(options.busy_timeout.count()));

  auto version = check_identity(raw, path);
  if (!version) return fail<result>(version.error());

  // WAL: readers (totals, budgets, `report`) never block the writer and vice versa, and a commit
  // is one sequential append to the -wal file.
  {
    statement st;
    std::string mode;
    if (prepare(raw, "PRAGMA journal_mode=WAL", st) == SQLITE_OK && sqlite3_step(st.s) == SQLITE_ROW) {
      mode = column_text(st.s, 0);
    }
    if (mode != "wal") {
      return fail<result>(make_error(ledger_error::kind::cannot_open,
                                     "ledger " + path + ": cannot switch to WAL journal mode (got '" + mode +
                                         "': " + errmsg(raw) + "); WAL needs a local filesystem with shared memory"));
    }
  }
  // journal_size_limit: after a checkpoint the -wal file is truncated back to 64 MiB, so one
  // burst does not leave a huge file behind.
  const std::string pragmas = std::string(options.synchronous_full ? "PRAGMA synchronous=FULL;"
                                                                   : "PRAGMA synchronous=NORMAL;") +
                              "PRAGMA journal_size_limit=67108864;";
  if (exec(raw, pragmas) != SQLITE_OK) {
    return fail<result>(make_error(ledger_error::kind::sqlite, "ledger " + path + ": " + errmsg(raw)));
  }

  for (int v = *version; v < ledger_schema_version; ++v) {
    const std::string step = "BEGIN IMMEDIATE;\n" + std::string(migrations[static_cast<std::size_t>(v)]) +
                             "\nPRAGMA application_id=" + std::to_string(application_id) +
                             ";\nPRAGMA user_version=" + std::to_string(v + 1) + ";\nCOMMIT;";
    if (exec(raw, step) != SQLITE_OK) {
      auto err = make_error(ledger_error::kind::sqlite, "ledger " + path + ": migrating schema " +
                                                            std::to_string(v) + " -> " + std::to_string(v + 1) +
                                                            " failed: " + errmsg(raw));
      exec(raw, "ROLLBACK");
      return fail<result>(std::move(err));
    }
  }

  auto max_id = query_int(raw, "SELECT COALESCE(MAX(id), 0) FROM requests");
  if (!max_id) return fail<result>(make_error(ledger_error::kind::sqlite, "ledger " + path + ": " + errmsg(raw)));

  auto reader = ledger_reader::open(path);
  if (!reader) return fail<result>(reader.error());

  std::unique_ptr<ledger> l(new ledger(path, std::move(options), db.release(), std::move(*reader)));
  l->next_id_ = *max_id + 1;
  std::string insert = "INSERT INTO requests (id, " + std::string(record_columns) + ") VALUES (?";
  for (int i = 0; i < record_column_count; ++i) insert += ", ?";
  insert += ")";
  if (sqlite3_prepare_v3(l->db_, insert.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &l->insert_, nullptr) != SQLITE_OK) {
    return fail<result>(make_error(ledger_error::kind::sqlite, "ledger " + path + ": " + errmsg(l->db_)));
  }
  l->writer_ = std::thread([p = l.get()] { p->run_writer(); });
  return ok(std::move(l));
}

ledger::ledger(std::string path, ledger_options options, sqlite3* db, std::unique_ptr<ledger_reader> reader)
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
    space_cv_.wait(lk, [&] { return closed_ || appended_seq_ - settled_seq_ < opt_.queue_capacity; });
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
  if (depth > high_water_.load(std::memory_order_relaxed)) high_water_.store(depth, std::memory_order_relaxed);
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
    log("ledger: closed with " + std::to_string(lost) + " records that could not be committed to " + path_ +
        "; they are lost");
  }
  sqlite3_finalize(insert_);
  insert_ = nullptr;
  sqlite3_close_v2(db_);
  db_ = nullptr;
  return lost;
}

std::size_t ledger::queue_depth() const noexcept {
  const auto a = appended_.load(std::memory_order_relaxed);
  const auto settled = committed_.load(std::memory_order_relaxed) + lost_.load(std::memory_order_relaxed);
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

bool ledger::commit_with_retry(ledger_record* recs, std::size_t n) {
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
    std::string why;
    const int rc = try_commit(recs, n, why);
    if (rc == SQLITE_OK) {
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
    log("ledger: commit of " + std::to_string(n) + " records to " + path_ + " failed: " + why + "; retrying in " +
        std::to_string(backoff.count()) + " ms (" + std::to_string(queue_depth()) +
        " records held in memory)");
    std::unique_lock lk(mu_);
    if (writer_cv_.wait_for(lk, backoff, [&] { return abandon_; })) return false;
    backoff = std::min(backoff * 2, opt_.retry_backoff_max);
  }
}

int ledger::try_commit(ledger_record* recs, std::size_t n, std::string& why) {
  const std::int64_t first_id = next_id_;
  bool at_commit = false;
  int rc = exec(db_, "BEGIN IMMEDIATE");
  std::string tags;
  for (std::size_t i = 0; rc == SQLITE_OK && i < n; ++i) {
    tags = tags_to_json(recs[i].tags);
    bind_record(insert_, first_id + static_cast<std::int64_t>(i), recs[i], tags);
    rc = sqlite3_step(insert_);
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_reset(insert_);
  }
  sqlite3_clear_bindings(insert_);
  if (rc == SQLITE_OK) {
    at_commit = true;
    rc = exec(db_, "COMMIT");
  }
  if (rc == SQLITE_OK) {
    next_id_ = first_id + static_cast<std::int64_t>(n);
    return SQLITE_OK;
  }
  why = errmsg(db_);
  const int ext = sqlite3_extended_errcode(db_);
  if (sqlite3_get_autocommit(db_) == 0) {
    exec(db_, "ROLLBACK");  // still in the transaction: nothing of it is committed
  } else if (at_commit) {
    // SQLite ended the transaction itself on an I/O error during COMMIT. Transactions are atomic,
    // so the first row tells whether the group landed; retrying blindly could write it twice.
    statement st;
    if (prepare(db_, "SELECT request_id, time_ms FROM requests WHERE id = ?1", st) == SQLITE_OK) {
      sqlite3_bind_int64(st.s, 1, first_id);
      if (sqlite3_step(st.s) == SQLITE_ROW && column_text(st.s, 0) == recs[0].request_id &&
          sqlite3_column_int64(st.s, 1) == recs[0].time_ms) {
        next_id_ = first_id + static_cast<std::int64_t>(n);
        log("ledger: COMMIT reported '" + why + "' but the group is in " + path_ + "; not writing it again");
        return SQLITE_OK;
      }
    }
  }
  if (ext == SQLITE_CONSTRAINT_PRIMARYKEY) {
    // Another process wrote to this file (unsupported, but never lose or clobber): move past it.
    if (auto max_id = query_int(db_, "SELECT COALESCE(MAX(id), 0) FROM requests")) next_id_ = *max_id + 1;
  }
  return rc == SQLITE_OK ? SQLITE_ERROR : rc;
}

}  // namespace bedrock_meter::accounting
