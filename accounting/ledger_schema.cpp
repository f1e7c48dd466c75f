#include "accounting/ledger_schema.hpp"

#include <algorithm>
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
    // 1 -> 2: what each request asked for, for the advisor (docs/finops.md). Rows written before
    // have has_traits = 0 and are left out of the levers that need traits. The fingerprints are
    // SipHash-2-4 values under the installation's key (stored as signed 64-bit integers).
    R"sql(
ALTER TABLE requests ADD COLUMN has_traits                INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN max_tokens                INTEGER;
ALTER TABLE requests ADD COLUMN stop_reason               TEXT    NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN tools                     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN structured_output         INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN system_prefix_hash        INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN system_prefix_bytes       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN conversation_prefix_hash  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN conversation_prefix_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN prompt_hash               INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN prompt_bytes              INTEGER NOT NULL DEFAULT 0;
)sql",
    // 2 -> 3: spend per UTC day, team, app and base model, kept by triggers in the same
    // transaction as the rows, so the spend console's Overview and `report` read whole days
    // from here instead of every row (docs/ledger.md, "spend_daily"). Money is kept as the
    // sums of each cost's high and low 32 bits, as `rollup` does, so no sum can overflow.
    // Existing rows are summed in once, here.
    R"sql(
CREATE TABLE spend_daily (
  day_ms               INTEGER NOT NULL,
  team                 TEXT    NOT NULL,
  app                  TEXT    NOT NULL,
  model_base           TEXT    NOT NULL,
  requests             INTEGER NOT NULL,
  input_tokens         INTEGER NOT NULL,
  output_tokens        INTEGER NOT NULL,
  cache_read_tokens    INTEGER NOT NULL,
  cache_write_tokens   INTEGER NOT NULL,
  input_cost_hi        INTEGER NOT NULL,
  input_cost_lo        INTEGER NOT NULL,
  output_cost_hi       INTEGER NOT NULL,
  output_cost_lo       INTEGER NOT NULL,
  cache_read_cost_hi   INTEGER NOT NULL,
  cache_read_cost_lo   INTEGER NOT NULL,
  cache_write_cost_hi  INTEGER NOT NULL,
  cache_write_cost_lo  INTEGER NOT NULL,
  total_cost_hi        INTEGER NOT NULL,
  total_cost_lo        INTEGER NOT NULL,
  PRIMARY KEY (day_ms, team, app, model_base)
) WITHOUT ROWID;
INSERT INTO spend_daily (day_ms, team, app, model_base, requests, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, input_cost_hi, input_cost_lo, output_cost_hi, output_cost_lo, cache_read_cost_hi, cache_read_cost_lo, cache_write_cost_hi, cache_write_cost_lo, total_cost_hi, total_cost_lo)
  SELECT time_ms - time_ms % 86400000, team, app, model_base, count(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(input_cost >> 32), SUM(input_cost & 4294967295), SUM(output_cost >> 32), SUM(output_cost & 4294967295), SUM(cache_read_cost >> 32), SUM(cache_read_cost & 4294967295), SUM(cache_write_cost >> 32), SUM(cache_write_cost & 4294967295), SUM(total_cost >> 32), SUM(total_cost & 4294967295)
  FROM requests GROUP BY 1, 2, 3, 4;
CREATE TRIGGER spend_daily_insert AFTER INSERT ON requests BEGIN
  INSERT INTO spend_daily (day_ms, team, app, model_base, requests, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, input_cost_hi, input_cost_lo, output_cost_hi, output_cost_lo, cache_read_cost_hi, cache_read_cost_lo, cache_write_cost_hi, cache_write_cost_lo, total_cost_hi, total_cost_lo)
  VALUES (NEW.time_ms - NEW.time_ms % 86400000, NEW.team, NEW.app, NEW.model_base, 1, NEW.input_tokens, NEW.output_tokens, NEW.cache_read_tokens, NEW.cache_write_tokens, (NEW.input_cost >> 32), (NEW.input_cost & 4294967295), (NEW.output_cost >> 32), (NEW.output_cost & 4294967295), (NEW.cache_read_cost >> 32), (NEW.cache_read_cost & 4294967295), (NEW.cache_write_cost >> 32), (NEW.cache_write_cost & 4294967295), (NEW.total_cost >> 32), (NEW.total_cost & 4294967295))
  ON CONFLICT (day_ms, team, app, model_base) DO UPDATE SET
    requests = requests + excluded.requests,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
    cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
    input_cost_hi = input_cost_hi + excluded.input_cost_hi,
    input_cost_lo = input_cost_lo + excluded.input_cost_lo,
    output_cost_hi = output_cost_hi + excluded.output_cost_hi,
    output_cost_lo = output_cost_lo + excluded.output_cost_lo,
    cache_read_cost_hi = cache_read_cost_hi + excluded.cache_read_cost_hi,
    cache_read_cost_lo = cache_read_cost_lo + excluded.cache_read_cost_lo,
    cache_write_cost_hi = cache_write_cost_hi + excluded.cache_write_cost_hi,
    cache_write_cost_lo = cache_write_cost_lo + excluded.cache_write_cost_lo,
    total_cost_hi = total_cost_hi + excluded.total_cost_hi,
    total_cost_lo = total_cost_lo + excluded.total_cost_lo;
END;
CREATE TRIGGER spend_daily_delete AFTER DELETE ON requests BEGIN
  UPDATE spend_daily SET
    requests = requests - 1,
    input_tokens = input_tokens - OLD.input_tokens,
    output_tokens = output_tokens - OLD.output_tokens,
    cache_read_tokens = cache_read_tokens - OLD.cache_read_tokens,
    cache_write_tokens = cache_write_tokens - OLD.cache_write_tokens,
    input_cost_hi = input_cost_hi - (OLD.input_cost >> 32),
    input_cost_lo = input_cost_lo - (OLD.input_cost & 4294967295),
    output_cost_hi = output_cost_hi - (OLD.output_cost >> 32),
    output_cost_lo = output_cost_lo - (OLD.output_cost & 4294967295),
    cache_read_cost_hi = cache_read_cost_hi - (OLD.cache_read_cost >> 32),
    cache_read_cost_lo = cache_read_cost_lo - (OLD.cache_read_cost & 4294967295),
    cache_write_cost_hi = cache_write_cost_hi - (OLD.cache_write_cost >> 32),
    cache_write_cost_lo = cache_write_cost_lo - (OLD.cache_write_cost & 4294967295),
    total_cost_hi = total_cost_hi - (OLD.total_cost >> 32),
    total_cost_lo = total_cost_lo - (OLD.total_cost & 4294967295)
  WHERE day_ms = OLD.time_ms - OLD.time_ms % 86400000 AND team = OLD.team AND app = OLD.app
    AND model_base = OLD.model_base;
END;
)sql",
    // 3 -> 4: the speech parts of input_tokens and output_tokens (Nova Sonic,
    // InvokeModelWithBidirectionalStream), priced at their own rates. Rows written before are
    // text only.
    R"sql(
ALTER TABLE requests ADD COLUMN speech_input_tokens  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN speech_output_tokens INTEGER NOT NULL DEFAULT 0;
)sql",
};

// Checks a freshly opened connection holds a ledger (or is empty) and returns its user_version.
ledger_result<int> check_identity(sqlite3* db, const std::string& path) {
  auto app = query_int(db, "PRAGMA application_id");
  if (!app) {
    if (sqlite3_errcode(db) == SQLITE_NOTADB) {
      return ledger_error{ledger_error::kind::not_a_ledger,
                          "ledger " + path + " is not a SQLite database: " + errmsg(db) +
                              "; point ledger.path at a new file or a bedrock-meter ledger"};
    }
    return ledger_error{ledger_error::kind::cannot_open,
                        "cannot read ledger " + path + ": " + errmsg(db)};
  }
  auto version = query_int(db, "PRAGMA user_version");
  auto tables = query_int(db, "SELECT count(*) FROM sqlite_master");
  if (!version || !tables) return sqlite_error(db, "cannot read ledger " + path);
  if (*app != application_id && (*app != 0 || *tables != 0)) {
    return ledger_error{ledger_error::kind::not_a_ledger,
                        "ledger " + path + " is a SQLite database of another application " +
                            "(application_id " + std::to_string(*app) + ", " +
                            std::to_string(*tables) + " schema objects); refusing to write to it"};
  }
  if (*version > ledger_schema_version) {
    return ledger_error{ledger_error::kind::newer_schema,
                        "ledger " + path + " has schema version " + std::to_string(*version) +
                            ", newer than this bedrock-meter supports (" +
                            std::to_string(ledger_schema_version) +
                            "); run a newer bedrock-meter or point ledger.path elsewhere"};
  }
  return static_cast<int>(*version);
}

// Opening with SQLITE_OPEN_CREATE into a missing or read-only directory fails with a bare
// "unable to open database file": say which file and what to check.
ledger_error open_error(sqlite3* db, const std::string& path, bool create) {
  std::string msg =
      "cannot open ledger " + path + ": " + (db ? errmsg(db) : std::string("out of memory"));
  if (create)
    msg += "; check that the directory exists and is writable and the path is not a directory";
  return ledger_error{ledger_error::kind::cannot_open, std::move(msg)};
}

// What `rollup` keeps per group besides money, and how `group_sums_sql` computes each from rows.
constexpr std::array<std::string_view, 10> count_columns = {"requests",
                                                            "unpriced_requests",
                                                            "input_tokens",
                                                            "output_tokens",
                                                            "cache_read_tokens",
                                                            "cache_write_tokens",
                                                            "estimated_input_tokens",
                                                            "estimated_output_tokens",
                                                            "estimated_cache_read_tokens",
                                                            "estimated_cache_write_tokens"};
constexpr std::array<std::string_view, count_columns.size()> count_exprs = {
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

}  // namespace

// --- opening and migrating ----------------------------------------------------------------------

ledger_result<opened_ledger> open_ledger_file(const std::string& path, int flags,
                                              std::chrono::milliseconds busy_timeout) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  connection db(raw);  // SQLite hands out a connection even when opening fails; close it too
  if (rc != SQLITE_OK) return open_error(raw, path, (flags & SQLITE_OPEN_CREATE) != 0);
  sqlite3_busy_timeout(raw, static_cast<int>(busy_timeout.count()));
  auto version = check_identity(raw, path);
  if (!version) return version.error();
  return opened_ledger{std::move(db), *version};
}

ledger_result<void> migrate_ledger(sqlite3* db, const std::string& path, int from_version) {
  for (int v = from_version; v < ledger_schema_version; ++v) {
    const std::string step = "BEGIN IMMEDIATE;\n" +
                             std::string(migrations[static_cast<std::size_t>(v)]) +
                             "\nPRAGMA application_id=" + std::to_string(application_id) +
                             ";\nPRAGMA user_version=" + std::to_string(v + 1) + ";\nCOMMIT;";
    if (exec(db, step) != SQLITE_OK) {
      auto err = sqlite_error(db, "ledger " + path + ": migrating schema " + std::to_string(v) +
                                      " -> " + std::to_string(v + 1) + " failed");
      exec(db, "ROLLBACK");
      return err;
    }
  }
  return {};
}

// --- one record, one `requests` row -------------------------------------------------------------

std::string insert_record_sql() {
  std::string sql = "INSERT INTO requests (id, " + std::string(record_columns) + ") VALUES (?";
  for (std::size_t i = 0; i < record_column_count; ++i) sql += ", ?";  // one per column
  return sql + ")";
}

std::map<std::string, std::string> tags_from_json(std::string_view text) {
  std::map<std::string, std::string> out;
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) return out;
  for (const auto& [k, val] : v.as_object()) {
    out.emplace(std::string(k),
                val.is_string() ? std::string(val.as_string()) : boost::json::serialize(val));
  }
  return out;
}

std::string tags_to_json(const std::map<std::string, std::string>& tags) {
  if (tags.empty()) return "{}";
  boost::json::object o;
  for (const auto& [k, v] : tags) o[k] = v;
  return boost::json::serialize(o);
}

// Binds id (1) and the record (2..); `tags_json` must outlive the step.
void bind_record(sqlite3_stmt* s, std::int64_t id, const ledger_record& r,
                 const std::string& tags_json) {
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
  sqlite3_bind_int(s, i++, r.has_traits ? 1 : 0);
  if (r.traits.max_tokens) {
    sqlite3_bind_int64(s, i++, clamp_i64(*r.traits.max_tokens));
  } else {
    sqlite3_bind_null(s, i++);
  }
  bind_text(s, i++, r.stop_reason);
  sqlite3_bind_int(s, i++, r.traits.tools ? 1 : 0);
  sqlite3_bind_int(s, i++, r.traits.structured_output ? 1 : 0);
  for (const metering::prompt_prefix* p :
       {&r.traits.system, &r.traits.conversation, &r.traits.full}) {
    sqlite3_bind_int64(s, i++, static_cast<std::int64_t>(p->hash));  // the bits, as SQLite's type
    sqlite3_bind_int64(s, i++, clamp_i64(p->bytes));
  }
  sqlite3_bind_int64(s, i++, clamp_i64(r.speech_input_tokens));
  sqlite3_bind_int64(s, i++, clamp_i64(r.speech_output_tokens));
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
  r.has_traits = sqlite3_column_int64(s, i++) != 0;
  if (sqlite3_column_type(s, i) == SQLITE_NULL) {
    r.traits.max_tokens.reset();
  } else {
    r.traits.max_tokens = as_u64(sqlite3_column_int64(s, i));
  }
  ++i;
  r.stop_reason = column_text(s, i++);
  r.traits.tools = sqlite3_column_int64(s, i++) != 0;
  r.traits.structured_output = sqlite3_column_int64(s, i++) != 0;
  for (metering::prompt_prefix* p : {&r.traits.system, &r.traits.conversation, &r.traits.full}) {
    p->hash = static_cast<std::uint64_t>(sqlite3_column_int64(s, i++));
    p->bytes = as_u64(sqlite3_column_int64(s, i++));
  }
  r.speech_input_tokens = as_u64(sqlite3_column_int64(s, i++));
  r.speech_output_tokens = as_u64(sqlite3_column_int64(s, i++));
}

// --- sums per Prometheus series group -----------------------------------------------------------

std::vector<std::string> rollup_value_columns() {
  std::vector<std::string> out(count_columns.begin(), count_columns.end());
  for (auto c : cost_columns) {
    out.push_back(std::string(c) + "_hi");
    out.push_back(std::string(c) + "_lo");
  }
  return out;
}

std::string group_sums_sql(std::string_view where) {
  std::string sql = "SELECT " + std::string(group_columns);
  for (std::size_t i = 0; i < count_columns.size(); ++i) {
    sql += ", " + std::string(count_exprs[i]) + " AS " + std::string(count_columns[i]);
  }
  for (auto c : cost_columns) {
    const std::string col(c);
    sql.append(", SUM(").append(col).append(" >> 32) AS ").append(col);
    sql.append("_hi, SUM(").append(col).append(" & 4294967295) AS ").append(col).append("_lo");
  }
  return sql + " FROM requests " + std::string(where) + " GROUP BY " + std::string(group_columns);
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

std::string money_sums_sql() {
  std::string out;
  for (auto c : cost_columns) {
    out += ", ";
    out += money_sum_sql(c);
  }
  return out;
}

}  // namespace bedrock_meter::accounting
