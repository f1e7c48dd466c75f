// The read side: startup totals for the Prometheus counters, period spend for budgets, the
// grouped reports of `bedrock-meter report`, and the raw records. One read-only connection per
// reader, beside the writer's (WAL).
#include "accounting/ledger.hpp"

#include <limits>
#include <map>
#include <utility>

#include "accounting/ledger_schema.hpp"
#include "accounting/ledger_sqlite.hpp"

namespace bedrock_meter::accounting {

namespace {

using metering::money_total;

// How long a query waits for a lock held by the writer or a prune before it fails.
constexpr std::chrono::milliseconds reader_busy_timeout{5000};

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

// Steps `st` through its rows, handing each to `read`; false when a step failed.
template <typename Read>
bool each_row(statement& st, Read&& read) {
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) read(st.s);
  return rc == SQLITE_DONE;
}

// Token sums at columns i.. (input, output, cache read, cache write); returns the next column.
template <typename Row>
int read_token_sums(sqlite3_stmt* s, int i, Row& r) {
  r.input_tokens = as_u64(sqlite3_column_int64(s, i++));
  r.output_tokens = as_u64(sqlite3_column_int64(s, i++));
  r.cache_read_tokens = as_u64(sqlite3_column_int64(s, i++));
  r.cache_write_tokens = as_u64(sqlite3_column_int64(s, i++));
  return i;
}

// The sums of `cost_columns` at columns i.., each as the two halves `money_sum_sql` produces.
template <typename Row>
void read_cost_sums(sqlite3_stmt* s, int i, Row& r) {
  r.input_cost = read_money(s, i);
  r.output_cost = read_money(s, i + 2);
  r.cache_read_cost = read_money(s, i + 4);
  r.cache_write_cost = read_money(s, i + 6);
  r.total_cost = read_money(s, i + 8);
}

// Live rows plus what pruning rolled up, so counters do not drop when old rows are deleted.
// Re-summing hi and lo halves separately stays exact (each stays far inside int64).
std::string totals_sql() {
  std::string values;
  std::string sums;
  for (const auto& c : rollup_value_columns()) {
    values += ", " + c;
    sums += ", SUM(" + c + ")";
  }
  return "SELECT " + std::string(group_columns) + sums + " FROM (" + group_sums_sql("") +
         " UNION ALL SELECT " + std::string(group_columns) + values + " FROM rollup) GROUP BY " +
         std::string(group_columns);
}

ledger_totals_row read_totals_row(sqlite3_stmt* s) {
  ledger_totals_row r;
  int i = 0;
  r.operation = column_text(s, i++);
  r.model_label = column_text(s, i++);
  r.region = column_text(s, i++);
  r.service_tier = column_text(s, i++);
  r.team = column_text(s, i++);
  r.app = column_text(s, i++);
  r.status = static_cast<unsigned>(sqlite3_column_int64(s, i++));
  r.requests = as_u64(sqlite3_column_int64(s, i++));
  r.unpriced_requests = as_u64(sqlite3_column_int64(s, i++));
  i = read_token_sums(s, i, r);
  r.estimated_input_tokens = as_u64(sqlite3_column_int64(s, i++));
  r.estimated_output_tokens = as_u64(sqlite3_column_int64(s, i++));
  r.estimated_cache_read_tokens = as_u64(sqlite3_column_int64(s, i++));
  r.estimated_cache_write_tokens = as_u64(sqlite3_column_int64(s, i++));
  read_cost_sums(s, i, r);
  return r;
}

// Only the set filters appear in the WHERE clause, so SQLite can pick the (team, time_ms) or
// (app, time_ms) index; "?x IS NULL OR col = ?x" would defeat it. `values` gets the parameters
// from ?2 on, in order.
std::string spend_sql(const spend_filter& filter, std::vector<const std::string*>& values) {
  std::string sql = "SELECT " + money_sum_sql("total_cost") + " FROM requests WHERE time_ms >= ?1";
  const std::pair<const char*, const std::optional<std::string>*> fields[] = {
      {"team", &filter.team},
      {"app", &filter.app},
      {"principal", &filter.principal},
      {"model_base", &filter.model_base},
      {"model_label", &filter.model_label}};
  for (const auto& [column, value] : fields) {
    if (!value->has_value()) continue;
    values.push_back(&**value);
    sql += std::string(" AND ") + column + " = ?" + std::to_string(values.size() + 1);
  }
  return sql;
}

std::string report_sql(const std::vector<report_key>& group_by) {
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
  return sql;
}

// report_sql over spend_daily: whole days [?1, ?2), the same columns in the same order.
std::string daily_report_sql(const std::vector<report_key>& group_by) {
  std::string keys;
  for (auto k : group_by) {
    if (!keys.empty()) keys += ", ";
    keys += k == report_key::day ? "date(day_ms / 1000, 'unixepoch')" : report_key_sql(k);
  }
  std::string sql = "SELECT ";
  if (!keys.empty()) sql += keys + ", ";
  sql += "COALESCE(SUM(requests), 0)";
  for (const char* c : {"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                        "input_cost_hi", "input_cost_lo", "output_cost_hi", "output_cost_lo",
                        "cache_read_cost_hi", "cache_read_cost_lo", "cache_write_cost_hi",
                        "cache_write_cost_lo", "total_cost_hi", "total_cost_lo"}) {
    sql += std::string(", COALESCE(SUM(") + c + "), 0)";
  }
  sql += " FROM spend_daily WHERE day_ms >= ?1 AND day_ms < ?2";
  if (!keys.empty()) sql += " GROUP BY " + keys;
  return sql;
}

report_row read_report_row(sqlite3_stmt* s, std::size_t key_count) {
  report_row r;
  int i = 0;
  for (std::size_t k = 0; k < key_count; ++k) r.keys.push_back(column_text(s, i++));
  r.requests = as_u64(sqlite3_column_int64(s, i++));
  i = read_token_sums(s, i, r);
  read_cost_sums(s, i, r);
  return r;
}

}  // namespace

report_row& report_row::operator+=(const report_row& r) noexcept {
  requests += r.requests;
  input_tokens += r.input_tokens;
  output_tokens += r.output_tokens;
  cache_read_tokens += r.cache_read_tokens;
  cache_write_tokens += r.cache_write_tokens;
  input_cost += r.input_cost;
  output_cost += r.output_cost;
  cache_read_cost += r.cache_read_cost;
  cache_write_cost += r.cache_write_cost;
  total_cost += r.total_cost;
  return *this;
}

ledger_result<day_span> whole_days(
    std::int64_t from_ms, std::int64_t to_ms,
    const std::function<ledger_result<bool>(std::int64_t, std::int64_t)>& rows_in) {
  constexpr std::int64_t day_ms = 86'400'000;
  // The UTC midnight at or before `ms` (ledger times are after the epoch).
  const auto floor_day = [](std::int64_t ms) { return ms - ms % day_ms; };
  day_span days{floor_day(from_ms), floor_day(to_ms)};
  if (days.from < from_ms) {
    auto outside = rows_in(days.from, from_ms);
    if (!outside) return outside.error();
    if (*outside) days.from += day_ms;
  }
  if (days.to < to_ms && days.to <= std::numeric_limits<std::int64_t>::max() - day_ms) {
    auto outside = rows_in(to_ms, days.to + day_ms);
    if (!outside) return outside.error();
    if (!*outside) days.to += day_ms;
  }
  return days;
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

namespace {

/// The SQLite implementation of ledger_reader: one read-only connection to the file.
class sqlite_reader final : public ledger_reader {
 public:
  explicit sqlite_reader(sqlite3* db) : db_(db) {}
  ~sqlite_reader() override { sqlite3_close_v2(db_); }
  ledger_result<std::vector<ledger_totals_row>> totals() override;
  ledger_result<std::vector<series_spend_row>> series_spend(std::int64_t from_ms,
                                                            std::int64_t to_ms) override;
  ledger_result<money_total> spend_since(std::int64_t from_ms, const spend_filter& filter) override;
  ledger_result<std::vector<report_row>> query_report(
      std::int64_t from_ms, std::int64_t to_ms, const std::vector<report_key>& group_by) override;
  ledger_result<std::uint64_t> scan(const scan_filter& filter,
                                    const std::function<bool(const scan_row&)>& fn) override;
  ledger_result<std::optional<std::int64_t>> pruned_before_ms() override;
  ledger_result<request_page> find_requests(const request_filter& f) override;
  ledger_result<std::vector<ledger_record>> records(std::int64_t from_ms, std::int64_t to_ms,
                                                    std::size_t limit) override;

 private:
  std::mutex mu_;
  sqlite3* db_;
};

}  // namespace

ledger_result<std::unique_ptr<ledger_reader>> ledger_reader::open(const std::string& path) {
  auto file =
      open_ledger_file(path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, reader_busy_timeout);
  if (!file) return file.error();
  if (file->version < ledger_schema_version) {
    return ledger_error{
        ledger_error::kind::not_a_ledger,
        "ledger " + path + " has schema version " + std::to_string(file->version) +
            "; open it once with the proxy (bedrock-meter serve) to create or migrate it"};
  }
  return std::unique_ptr<ledger_reader>(new sqlite_reader(file->db.release()));
}

ledger_result<std::vector<ledger_totals_row>> sqlite_reader::totals() {
  std::lock_guard lk(mu_);
  statement st;
  if (prepare(db_, totals_sql(), st) != SQLITE_OK) return sqlite_error(db_, "ledger totals");
  std::vector<ledger_totals_row> rows;
  if (!each_row(st, [&](sqlite3_stmt* s) { rows.push_back(read_totals_row(s)); })) {
    return sqlite_error(db_, "ledger totals");
  }
  return rows;
}

ledger_result<std::vector<series_spend_row>> sqlite_reader::series_spend(std::int64_t from_ms,
                                                                         std::int64_t to_ms) {
  static const std::string sql =
      "SELECT model_label, model_base, region, service_tier, team, app" + money_sums_sql() +
      " FROM requests WHERE time_ms >= ?1 AND time_ms < ?2 AND total_cost > 0"
      " GROUP BY model_label, model_base, region, service_tier, team, app";
  std::lock_guard lk(mu_);
  statement st;
  if (prepare(db_, sql, st) != SQLITE_OK) return sqlite_error(db_, "ledger series spend");
  sqlite3_bind_int64(st.s, 1, from_ms);
  sqlite3_bind_int64(st.s, 2, to_ms);
  std::vector<series_spend_row> rows;
  const bool done = each_row(st, [&](sqlite3_stmt* s) {
    auto& r = rows.emplace_back();
    int i = 0;
    for (auto* f : {&r.model_label, &r.model_base, &r.region, &r.service_tier, &r.team, &r.app})
      *f = column_text(s, i++);
    read_cost_sums(s, i, r);
  });
  if (!done) return sqlite_error(db_, "ledger series spend");
  return rows;
}

ledger_result<money_total> sqlite_reader::spend_since(std::int64_t from_ms,
                                                      const spend_filter& filter) {
  std::lock_guard lk(mu_);
  std::vector<const std::string*> values;
  statement st;
  if (prepare(db_, spend_sql(filter, values), st) != SQLITE_OK) {
    return sqlite_error(db_, "ledger spend");
  }
  sqlite3_bind_int64(st.s, 1, from_ms);
  for (std::size_t i = 0; i < values.size(); ++i) {
    bind_text(st.s, static_cast<int>(i + 2), *values[i]);
  }
  if (sqlite3_step(st.s) != SQLITE_ROW) return sqlite_error(db_, "ledger spend");
  return read_money(st.s, 0);
}

// A report over [from, to) reads whole UTC days from spend_daily (one row per day, team, app and
// base model, kept by triggers) and only the partial days at either end from `requests`. A
// partial end day counts as whole when no row lies in the part outside the window (the usual
// case: `until` is now, or `since` is a date), so most windows never touch `requests`.
ledger_result<std::vector<report_row>> sqlite_reader::query_report(
    std::int64_t from_ms, std::int64_t to_ms, const std::vector<report_key>& group_by) {
  std::lock_guard lk(mu_);
  const auto days =
      whole_days(from_ms, to_ms, [&](std::int64_t a, std::int64_t b) -> ledger_result<bool> {
        statement st;
        if (prepare(db_, "SELECT 1 FROM requests WHERE time_ms >= ?1 AND time_ms < ?2 LIMIT 1",
                    st) != SQLITE_OK)
          return sqlite_error(db_, "ledger report");
        sqlite3_bind_int64(st.s, 1, a);
        sqlite3_bind_int64(st.s, 2, b);
        const int rc = sqlite3_step(st.s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sqlite_error(db_, "ledger report");
        return rc == SQLITE_ROW;
      });
  if (!days) return days.error();
  std::map<std::vector<std::string>, report_row> merged;
  const auto run = [&](const std::string& sql, std::int64_t a, std::int64_t b) -> bool {
    if (a >= b) return true;
    statement st;
    if (prepare(db_, sql, st) != SQLITE_OK) return false;
    sqlite3_bind_int64(st.s, 1, a);
    sqlite3_bind_int64(st.s, 2, b);
    return each_row(st, [&](sqlite3_stmt* row) {
      auto r = read_report_row(row, group_by.size());
      // An ungrouped query over no rows still yields one row; an emptied day is all zeros.
      if (r.requests > 0) merged.try_emplace(r.keys).first->second += r;
    });
  };
  const bool read = days->from >= days->to
                        ? run(report_sql(group_by), from_ms, to_ms)
                        : run(report_sql(group_by), from_ms, days->from) &&
                              run(daily_report_sql(group_by), days->from, days->to) &&
                              run(report_sql(group_by), days->to, to_ms);
  if (!read) return sqlite_error(db_, "ledger report");
  std::vector<report_row> rows;
  rows.reserve(merged.size());
  for (auto& [keys, row] : merged) {  // ordered by the keys
    row.keys = keys;
    rows.push_back(std::move(row));
  }
  return rows;
}

ledger_result<std::optional<std::int64_t>> sqlite_reader::pruned_before_ms() {
  using result = std::optional<std::int64_t>;
  std::lock_guard lk(mu_);
  statement st;
  if (prepare(db_, "SELECT value FROM meta WHERE key = 'pruned_before_ms'", st) != SQLITE_OK) {
    return sqlite_error(db_, "ledger meta");
  }
  const int rc = sqlite3_step(st.s);
  if (rc == SQLITE_ROW) return result(sqlite3_column_int64(st.s, 0));
  if (rc == SQLITE_DONE) return result();
  return sqlite_error(db_, "ledger meta");
}

ledger_result<ledger_reader::request_page> sqlite_reader::find_requests(const request_filter& f) {
  auto q = build_request_sql(f, {{"id", true}}, false);
  if (!q) return ledger_error{ledger_error::kind::bad_query, q.error()};
  std::lock_guard lk(mu_);
  statement st;
  if (prepare(db_, q->sql, st) != SQLITE_OK) return sqlite_error(db_, "ledger requests");
  for (std::size_t i = 0; i < q->params.size(); ++i) {
    const auto& v = q->params[i];
    const int at = static_cast<int>(i + 1);
    if (v.integer) {
      sqlite3_bind_int64(st.s, at, v.i);
    } else {
      bind_text(st.s, at, v.s);
    }
  }
  request_page page;
  std::string cursor;
  const int extra = static_cast<int>(record_column_count);
  const bool done = each_row(st, [&](sqlite3_stmt* s) {
    if (page.rows.size() == f.limit) {
      page.next_cursor = cursor;  // a row beyond the page: there is another
      return;
    }
    read_record(s, 0, page.rows.emplace_back());
    cursor = make_cursor(sqlite3_column_int64(s, extra),
                         {std::to_string(sqlite3_column_int64(s, extra + 1))});
  });
  if (!done) return sqlite_error(db_, "ledger requests");
  return page;
}

ledger_result<std::vector<ledger_record>> sqlite_reader::records(std::int64_t from_ms,
                                                                 std::int64_t to_ms,
                                                                 std::size_t limit) {
  std::lock_guard lk(mu_);
  const std::string sql =
      "SELECT " + std::string(record_columns) +
      " FROM requests WHERE time_ms >= ?1 AND time_ms < ?2 ORDER BY id LIMIT ?3";
  statement st;
  if (prepare(db_, sql, st) != SQLITE_OK) return sqlite_error(db_, "ledger records");
  sqlite3_bind_int64(st.s, 1, from_ms);
  sqlite3_bind_int64(st.s, 2, to_ms);
  sqlite3_bind_int64(st.s, 3, clamp_i64(limit));
  std::vector<ledger_record> rows;
  if (!each_row(st, [&](sqlite3_stmt* s) { read_record(s, 0, rows.emplace_back()); })) {
    return sqlite_error(db_, "ledger records");
  }
  return rows;
}

namespace {

std::string_view text_at(sqlite3_stmt* s, int i) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
  return p == nullptr ? std::string_view()
                      : std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i)));
}

void read_scan_row(sqlite3_stmt* s, scan_row& r) {
  int i = 0;
  r.time_ms = sqlite3_column_int64(s, i++);
  for (std::string_view* v :
       {&r.team, &r.app, &r.operation, &r.model_requested, &r.model_base, &r.region, &r.scope,
        &r.service_tier, &r.latency_mode, &r.outcome, &r.stop_reason})
    *v = text_at(s, i++);
  r.batch = sqlite3_column_int64(s, i++) != 0;
  r.status = static_cast<unsigned>(sqlite3_column_int64(s, i++));
  for (std::uint64_t* n : {&r.input_tokens, &r.output_tokens, &r.cache_read_tokens,
                           &r.cache_write_tokens, &r.cache_write_1h_tokens})
    *n = as_u64(sqlite3_column_int64(s, i++));
  r.total_cost = sqlite3_column_int64(s, i++);
  r.priced = sqlite3_column_int64(s, i++) != 0;
  r.bytes_in = as_u64(sqlite3_column_int64(s, i++));
  r.has_traits = sqlite3_column_int64(s, i++) != 0;
  r.max_tokens = sqlite3_column_type(s, i) == SQLITE_NULL
                     ? std::nullopt
                     : std::optional<std::uint64_t>(as_u64(sqlite3_column_int64(s, i)));
  ++i;
  r.tools = sqlite3_column_int64(s, i++) != 0;
  r.structured_output = sqlite3_column_int64(s, i++) != 0;
  for (metering::prompt_prefix* p : {&r.system_prefix, &r.conversation_prefix, &r.full_prompt}) {
    p->hash = static_cast<std::uint64_t>(sqlite3_column_int64(s, i++));
    p->bytes = as_u64(sqlite3_column_int64(s, i++));
  }
  r.speech_input_tokens = as_u64(sqlite3_column_int64(s, i++));
  r.speech_output_tokens = as_u64(sqlite3_column_int64(s, i++));
}

}  // namespace

ledger_result<std::uint64_t> sqlite_reader::scan(const scan_filter& filter,
                                                 const std::function<bool(const scan_row&)>& fn) {
  std::lock_guard lk(mu_);
  std::string sql =
      "SELECT " + std::string(scan_columns) + " FROM requests WHERE time_ms >= ?1 AND time_ms < ?2";
  if (!filter.team.empty()) sql += " AND team = ?3";
  if (!filter.app.empty()) sql += " AND app = ?4";
  if (!filter.model.empty()) sql += " AND (model_base = ?5 OR model_requested = ?5)";
  sql += " ORDER BY time_ms, id";
  statement st;
  if (prepare(db_, sql, st) != SQLITE_OK) return sqlite_error(db_, "ledger scan");
  sqlite3_bind_int64(st.s, 1, filter.from_ms);
  sqlite3_bind_int64(st.s, 2, filter.to_ms);
  if (!filter.team.empty()) bind_text(st.s, 3, filter.team);
  if (!filter.app.empty()) bind_text(st.s, 4, filter.app);
  if (!filter.model.empty()) bind_text(st.s, 5, filter.model);
  std::uint64_t n = 0;
  scan_row row;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    read_scan_row(st.s, row);
    ++n;
    if (!fn(row)) return n;
  }
  if (rc != SQLITE_DONE) return sqlite_error(db_, "ledger scan");
  return n;
}

}  // namespace bedrock_meter::accounting

namespace bedrock_meter::accounting {

ledger_result<std::unique_ptr<journal>> journal::open(const std::string& path) {
  // Read-write: the journal's identity and how far it was shipped live in `meta` (tiny writes
  // beside the proxy's writer, WAL).
  auto file =
      open_ledger_file(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, reader_busy_timeout);
  if (!file) return file.error();
  sqlite3* db = file->db.get();
  unsigned char raw[16];
  sqlite3_randomness(sizeof raw, raw);
  static constexpr char hex[] = "0123456789abcdef";
  std::string fresh;
  for (const unsigned char c : raw) {
    fresh += hex[c >> 4];
    fresh += hex[c & 15];
  }
  std::string id;
  {
    statement ins;
    if (prepare(db, "INSERT OR IGNORE INTO meta (key, value) VALUES ('journal_id', ?1)", ins) !=
        SQLITE_OK)
      return sqlite_error(db, "ledger " + path + ": journal id");
    bind_text(ins.s, 1, fresh);
    if (sqlite3_step(ins.s) != SQLITE_DONE)
      return sqlite_error(db, "ledger " + path + ": journal id");
    statement st;
    if (prepare(db, "SELECT value FROM meta WHERE key = 'journal_id'", st) != SQLITE_OK ||
        sqlite3_step(st.s) != SQLITE_ROW)
      return sqlite_error(db, "ledger " + path + ": journal id");
    id = column_text(st.s, 0);
  }
  return std::unique_ptr<journal>(new journal(file->db.release(), std::move(id)));
}

ledger_result<std::int64_t> journal::shipped_locally() {
  auto v = query_int(db_, "SELECT COALESCE((SELECT value FROM meta WHERE key = 'shipped_id'), 0)");
  if (!v) return sqlite_error(db_, "journal shipped id");
  return *v;
}

ledger_result<void> journal::record_shipped(std::int64_t id) {
  statement st;
  if (prepare(db_,
              "INSERT INTO meta (key, value) VALUES ('shipped_id', ?1) "
              "ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
              st) != SQLITE_OK)
    return sqlite_error(db_, "journal shipped id");
  sqlite3_bind_int64(st.s, 1, id);
  if (sqlite3_step(st.s) != SQLITE_DONE) return sqlite_error(db_, "journal shipped id");
  return {};
}

journal::~journal() { sqlite3_close_v2(db_); }

ledger_result<std::vector<journal::row>> journal::after(std::int64_t after_id, std::size_t limit) {
  static const std::string sql = "SELECT id, " + std::string(record_columns) +
                                 " FROM requests WHERE id > ?1 ORDER BY id LIMIT ?2";
  statement st;
  if (prepare(db_, sql, st) != SQLITE_OK) return sqlite_error(db_, "journal");
  sqlite3_bind_int64(st.s, 1, after_id);
  sqlite3_bind_int64(st.s, 2, clamp_i64(limit));
  std::vector<row> rows;
  const bool done = each_row(st, [&](sqlite3_stmt* s) {
    auto& r = rows.emplace_back();
    r.id = sqlite3_column_int64(s, 0);
    read_record(s, 1, r.rec);
  });
  if (!done) return sqlite_error(db_, "journal");
  return rows;
}

ledger_result<std::pair<std::uint64_t, std::int64_t>> journal::backlog(std::int64_t after_id) {
  // Ids are handed out in order and never reused, so the rows after `after_id` are the newest
  // id minus it: two index probes instead of a count(*) that walks the whole spool (which made
  // shipping a deep spool quadratic). Only rows pruned before they were shipped leave gaps, and
  // those are counted until the next batch ships past them.
  statement st;
  if (prepare(db_,
              "SELECT COALESCE((SELECT MAX(id) FROM requests), 0), COALESCE((SELECT time_ms FROM "
              "requests WHERE id > ?1 ORDER BY id LIMIT 1), 0)",
              st) != SQLITE_OK)
    return sqlite_error(db_, "journal backlog");
  sqlite3_bind_int64(st.s, 1, after_id);
  if (sqlite3_step(st.s) != SQLITE_ROW) return sqlite_error(db_, "journal backlog");
  const auto newest = sqlite3_column_int64(st.s, 0);
  return std::pair<std::uint64_t, std::int64_t>(
      newest > after_id ? static_cast<std::uint64_t>(newest - after_id) : 0,
      sqlite3_column_int64(st.s, 1));
}

}  // namespace bedrock_meter::accounting
