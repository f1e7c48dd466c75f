#include "fleet/schema.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

#include "accounting/ledger_schema.hpp"

namespace bedrock_meter::fleet {

namespace {

// pg_advisory_xact_lock key: 'BMLG' as in the SQLite application_id.
constexpr std::string_view lock_sql = "SELECT pg_advisory_xact_lock(1112359495)";

constexpr std::string_view schema_v1 = R"sql(
CREATE TABLE requests (
  journal                   text    NOT NULL,
  local_id                  bigint  NOT NULL,
  replica                   text    NOT NULL,
  time_ms                   bigint  NOT NULL,
  at                        timestamptz GENERATED ALWAYS AS (to_timestamp(time_ms / 1000.0)) STORED,
  request_id                text    NOT NULL,
  team                      text    NOT NULL,
  app                       text    NOT NULL,
  principal                 text    NOT NULL,
  tags                      text    NOT NULL,
  operation                 text    NOT NULL,
  model_requested           text    NOT NULL,
  model_base                text    NOT NULL,
  model_label               text    NOT NULL,
  region                    text    NOT NULL,
  scope                     text    NOT NULL,
  service_tier              text    NOT NULL,
  latency_mode              text    NOT NULL,
  batch                     integer NOT NULL,
  status                    integer NOT NULL,
  outcome                   text    NOT NULL,
  input_tokens              bigint  NOT NULL,
  output_tokens             bigint  NOT NULL,
  cache_read_tokens         bigint  NOT NULL,
  cache_write_tokens        bigint  NOT NULL,
  cache_write_1h_tokens     bigint  NOT NULL,
  usage_source              text    NOT NULL,
  input_cost                bigint  NOT NULL,
  output_cost               bigint  NOT NULL,
  cache_read_cost           bigint  NOT NULL,
  cache_write_cost          bigint  NOT NULL,
  total_cost                bigint  NOT NULL,
  priced                    integer NOT NULL,
  unpriced_reason           text    NOT NULL,
  rate_table_version        text    NOT NULL,
  rate_entry                text    NOT NULL,
  duration_us               bigint  NOT NULL,
  first_byte_us             bigint  NOT NULL,
  bytes_in                  bigint  NOT NULL,
  bytes_out                 bigint  NOT NULL,
  has_traits                integer NOT NULL,
  max_tokens                bigint,
  stop_reason               text    NOT NULL,
  tools                     integer NOT NULL,
  structured_output         integer NOT NULL,
  system_prefix_hash        bigint  NOT NULL,
  system_prefix_bytes       bigint  NOT NULL,
  conversation_prefix_hash  bigint  NOT NULL,
  conversation_prefix_bytes bigint  NOT NULL,
  prompt_hash               bigint  NOT NULL,
  prompt_bytes              bigint  NOT NULL,
  PRIMARY KEY (journal, local_id, time_ms)
) PARTITION BY RANGE (time_ms);
CREATE INDEX requests_time ON requests (time_ms);
CREATE INDEX requests_team_time ON requests (team, time_ms);
CREATE INDEX requests_app_time ON requests (app, time_ms);
CREATE TABLE journals (
  journal    text        PRIMARY KEY,
  replica    text        NOT NULL,
  shipped_id bigint      NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
)sql";

// Schema 2: spend per UTC day, journal (replica), team, app and base model, kept by a statement
// trigger on every COPY a shipper makes, in the same transaction, so `report`, /api/spend and the
// spend console's Overview read whole days from here (fleet/postgres_reader.cpp). `journal` is in
// the key so replicas shipping at once never update the same row (no waits, no deadlocks).
// Existing rows are summed in once, here.
constexpr std::string_view schema_v2 = R"sql(
CREATE TABLE spend_daily (
  day_ms             bigint  NOT NULL,
  journal            text    NOT NULL,
  team               text    NOT NULL,
  app                text    NOT NULL,
  model_base         text    NOT NULL,
  requests           bigint  NOT NULL,
  input_tokens       bigint  NOT NULL,
  output_tokens      bigint  NOT NULL,
  cache_read_tokens  bigint  NOT NULL,
  cache_write_tokens bigint  NOT NULL,
  input_cost         numeric NOT NULL,
  output_cost        numeric NOT NULL,
  cache_read_cost    numeric NOT NULL,
  cache_write_cost   numeric NOT NULL,
  total_cost         numeric NOT NULL,
  PRIMARY KEY (day_ms, journal, team, app, model_base)
);
INSERT INTO spend_daily (day_ms, journal, team, app, model_base, requests, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, input_cost, output_cost, cache_read_cost, cache_write_cost, total_cost)
  SELECT time_ms - time_ms % 86400000, journal, team, app, model_base, count(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(input_cost), SUM(output_cost), SUM(cache_read_cost), SUM(cache_write_cost), SUM(total_cost)
  FROM requests GROUP BY 1, 2, 3, 4, 5;
CREATE FUNCTION bm_spend_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO spend_daily (day_ms, journal, team, app, model_base, requests, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, input_cost, output_cost, cache_read_cost, cache_write_cost, total_cost)
    SELECT time_ms - time_ms % 86400000, journal, team, app, model_base, count(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(input_cost), SUM(output_cost), SUM(cache_read_cost), SUM(cache_write_cost), SUM(total_cost)
    FROM new_rows GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (day_ms, journal, team, app, model_base) DO UPDATE SET
      requests = spend_daily.requests + excluded.requests,
      input_tokens = spend_daily.input_tokens + excluded.input_tokens,
      output_tokens = spend_daily.output_tokens + excluded.output_tokens,
      cache_read_tokens = spend_daily.cache_read_tokens + excluded.cache_read_tokens,
      cache_write_tokens = spend_daily.cache_write_tokens + excluded.cache_write_tokens,
      input_cost = spend_daily.input_cost + excluded.input_cost,
      output_cost = spend_daily.output_cost + excluded.output_cost,
      cache_read_cost = spend_daily.cache_read_cost + excluded.cache_read_cost,
      cache_write_cost = spend_daily.cache_write_cost + excluded.cache_write_cost,
      total_cost = spend_daily.total_cost + excluded.total_cost;
  RETURN NULL;
END $$;
CREATE TRIGGER spend_daily_add AFTER INSERT ON requests REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bm_spend_daily_add();
)sql";

// Schema 3: the speech parts of input_tokens and output_tokens (Nova Sonic), as in the SQLite
// journal's schema 4. ADD COLUMN on the partitioned table reaches every month; with a constant
// default PostgreSQL 11+ rewrites no rows. Rows shipped before are text only.
constexpr std::string_view schema_v3 = R"sql(
ALTER TABLE requests ADD COLUMN speech_input_tokens  bigint NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN speech_output_tokens bigint NOT NULL DEFAULT 0;
)sql";

/// [first ms of the month holding `ms`, first ms of the next month), UTC.
std::pair<std::int64_t, std::int64_t> month_of(std::int64_t ms) {
  using namespace std::chrono;
  const auto day = floor<days>(sys_time<milliseconds>(milliseconds(ms)));
  const year_month_day ymd(day);
  const auto first = sys_days(ymd.year() / ymd.month() / 1);
  const auto next = sys_days((ymd.year() / ymd.month() + months(1)) / 1);
  return {duration_cast<milliseconds>(first.time_since_epoch()).count(),
          duration_cast<milliseconds>(next.time_since_epoch()).count()};
}

}  // namespace

accounting::ledger_result<void> ensure_schema(connection& c) {
  if (auto r = c.exec("BEGIN"); !r) return r.error();
  auto fail = [&](accounting::ledger_error e) {
    (void)c.exec("ROLLBACK");
    return e;
  };
  if (auto r = c.exec(lock_sql); !r) return fail(r.error());
  if (auto r = c.exec("CREATE TABLE IF NOT EXISTS bm_meta (key text PRIMARY KEY, value text NOT "
                      "NULL)");
      !r)
    return fail(r.error());
  auto v = c.exec("SELECT value FROM bm_meta WHERE key = 'schema_version'");
  if (!v) return fail(v.error());
  const int version = v->rows() == 0 ? 0 : static_cast<int>(v->i64(0, 0));
  if (version > pg_schema_version) {
    return fail({accounting::ledger_error::kind::newer_schema,
                 "fleet ledger " + c.where() + " has schema version " + std::to_string(version) +
                     ", newer than this bedrock-meter supports (" +
                     std::to_string(pg_schema_version) + "); upgrade this replica"});
  }
  if (version < 1) {
    if (auto r = c.exec(schema_v1); !r) return fail(r.error());
    if (auto r = c.exec("INSERT INTO bm_meta VALUES ('schema_version', '1'), ('migrated_at', "
                        "now()::text) ON CONFLICT (key) DO UPDATE SET value = excluded.value");
        !r)
      return fail(r.error());
    // How many times a migration ran: operators (and the tests) can see it ran once.
    if (auto r = c.exec("INSERT INTO bm_meta VALUES ('migrations_run', '1') ON CONFLICT (key) DO "
                        "UPDATE SET value = (bm_meta.value::int + 1)::text");
        !r)
      return fail(r.error());
  }
  if (version < 2) {
    if (auto r = c.exec(schema_v2); !r) return fail(r.error());
    if (auto r = c.exec("UPDATE bm_meta SET value = '2' WHERE key = 'schema_version'"); !r)
      return fail(r.error());
  }
  if (version < 3) {
    if (auto r = c.exec(schema_v3); !r) return fail(r.error());
    if (auto r = c.exec("UPDATE bm_meta SET value = '3' WHERE key = 'schema_version'"); !r)
      return fail(r.error());
  }
  if (auto r = c.exec("COMMIT"); !r) return r.error();
  return {};
}

accounting::ledger_result<void> partitions::ensure(connection& c, std::int64_t time_ms) {
  const auto [from, to] = month_of(time_ms);
  if (known_.contains(from)) return {};
  const std::chrono::year_month_day ymd(std::chrono::floor<std::chrono::days>(
      std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds(from))));
  char name[32];
  std::snprintf(name, sizeof name, "requests_%04d_%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()));
  const std::string create = "CREATE TABLE IF NOT EXISTS " + std::string(name) +
                             " PARTITION OF requests FOR VALUES FROM (" + std::to_string(from) +
                             ") TO (" + std::to_string(to) + ")";
  if (auto r = c.exec("BEGIN"); !r) return r.error();
  for (const std::string_view sql : {lock_sql, std::string_view(create)}) {
    if (auto r = c.exec(sql); !r) {
      (void)c.exec("ROLLBACK");
      return r.error();
    }
  }
  if (auto r = c.exec("COMMIT"); !r) return r.error();
  known_.insert(from);
  return {};
}

accounting::ledger_result<pruned_months> prune_months(connection& c, std::int64_t before_ms,
                                                      bool dry_run) {
  if (auto r = c.exec("BEGIN"); !r) return r.error();
  auto body = [&]() -> accounting::ledger_result<pruned_months> {
    if (auto r = c.exec(lock_sql); !r) return r.error();
    auto parts = c.exec(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'requests'::regclass ORDER BY c.relname");
    if (!parts) return parts.error();
    pruned_months out;
    for (int i = 0; i < parts->rows(); ++i) {
      const std::string name(parts->text(i, 0));
      int y = 0;
      unsigned m = 0;
      char tail = 0;
      // Only the partitions this schema makes; anything else attached by hand is left alone.
      if (std::sscanf(name.c_str(), "requests_%4d_%2u%c", &y, &m, &tail) != 2 || m < 1 || m > 12)
        continue;
      const auto next = std::chrono::sys_days(std::chrono::year(y) / std::chrono::month(m) / 1 +
                                              std::chrono::months(1));
      const auto end_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(next.time_since_epoch()).count();
      if (end_ms > before_ms) continue;
      auto n = c.exec("SELECT count(*) FROM " + name);
      if (!n) return n.error();
      out.rows += static_cast<std::uint64_t>(n->i64(0, 0));
      out.partitions.push_back(name);
      out.before_ms = std::max(out.before_ms, end_ms);
      if (!dry_run) {
        if (auto r = c.exec("DROP TABLE " + name); !r) return r.error();
      }
    }
    // Whole months went: their days leave spend_daily with them.
    if (!dry_run && out.before_ms > 0) {
      if (auto r =
              c.exec("DELETE FROM spend_daily WHERE day_ms < $1", {std::to_string(out.before_ms)});
          !r)
        return r.error();
    }
    if (!dry_run && out.before_ms > 0) {
      if (auto r = c.exec("INSERT INTO bm_meta VALUES ('pruned_before_ms', $1) ON CONFLICT (key) "
                          "DO UPDATE SET value = GREATEST(bm_meta.value::bigint, "
                          "excluded.value::bigint)::text",
                          {std::to_string(out.before_ms)});
          !r)
        return r.error();
    }
    return out;
  }();
  if (!body || dry_run) {
    (void)c.exec("ROLLBACK");
    return body;
  }
  if (auto r = c.exec("COMMIT"); !r) return r.error();
  return body;
}

std::string copy_columns() {
  return "journal, local_id, replica, " + std::string(accounting::record_columns);
}

}  // namespace bedrock_meter::fleet
