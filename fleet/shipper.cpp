#include "fleet/shipper.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "accounting/ledger.hpp"
#include "accounting/ledger_schema.hpp"
#include "fleet/pg.hpp"
#include "fleet/schema.hpp"

namespace bedrock_meter::fleet {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds idle_poll{100};
constexpr milliseconds backoff_min{250};
constexpr milliseconds backoff_max{5000};
constexpr auto repeat_warning = std::chrono::seconds(60);

void field(std::string& out, std::string_view v) {
  copy_escape(out, v);
  out += '\t';
}
void field(std::string& out, std::int64_t v) {
  out += std::to_string(v);
  out += '\t';
}
std::int64_t clamp(std::uint64_t v) {
  return v > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(v);
}

/// One COPY text line, in copy_columns() order.
void copy_row(std::string& out, const std::string& journal, const std::string& replica,
              const accounting::journal::row& row) {
  const auto& r = row.rec;
  field(out, journal);
  field(out, row.id);
  field(out, replica);
  field(out, r.time_ms);
  for (const std::string* s : {&r.request_id, &r.team, &r.app, &r.principal}) field(out, *s);
  field(out, accounting::tags_to_json(r.tags));
  for (const std::string* s : {&r.operation, &r.model_requested, &r.model_base, &r.model_label,
                               &r.region, &r.scope, &r.service_tier, &r.latency_mode})
    field(out, *s);
  field(out, r.batch ? 1 : 0);
  field(out, static_cast<std::int64_t>(r.status));
  field(out, metering::to_string(r.outcome));
  for (const auto v : {r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens,
                       r.cache_write_1h_tokens})
    field(out, clamp(v));
  field(out, metering::to_string(r.usage_source));
  for (const auto v :
       {r.input_cost, r.output_cost, r.cache_read_cost, r.cache_write_cost, r.total_cost})
    field(out, v);
  field(out, r.priced ? 1 : 0);
  for (const std::string* s : {&r.unpriced_reason, &r.rate_table_version, &r.rate_entry})
    field(out, *s);
  field(out, r.duration_us);
  field(out, r.first_byte_us);
  field(out, clamp(r.bytes_in));
  field(out, clamp(r.bytes_out));
  field(out, r.has_traits ? 1 : 0);
  if (r.traits.max_tokens) {
    field(out, clamp(*r.traits.max_tokens));
  } else {
    out += "\\N\t";
  }
  field(out, r.stop_reason);
  field(out, r.traits.tools ? 1 : 0);
  field(out, r.traits.structured_output ? 1 : 0);
  for (const metering::prompt_prefix* p :
       {&r.traits.system, &r.traits.conversation, &r.traits.full}) {
    field(out, static_cast<std::int64_t>(p->hash));
    field(out, clamp(p->bytes));
  }
  field(out, clamp(r.speech_input_tokens));
  field(out, clamp(r.speech_output_tokens));
  out.back() = '\n';
}

}  // namespace

struct shipper::state {
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  clock::time_point deadline = clock::time_point::max();  // guarded by mu once stopping

  std::atomic<std::uint64_t> spool_rows{0};
  std::atomic<std::int64_t> oldest_ms{0};
  std::atomic<std::uint64_t> shipped{0};
  std::atomic<std::uint64_t> failures{0};
  std::atomic<bool> connected{false};

  // The shipping thread's own.
  std::unique_ptr<accounting::journal> journal;
  std::unique_ptr<connection> conn;
  partitions parts;
  std::int64_t shipped_id = -1;  // -1: not read from PostgreSQL yet
  std::int64_t local_floor = 0;  // the journal's own record of it, until then
  std::string failing;           // the failure last logged ("" while healthy)
  clock::time_point failing_logged{};

  /// Waits up to `d` or until stopped; true when stopping and past the deadline or idle.
  bool wait(milliseconds d) {
    std::unique_lock lk(mu);
    cv.wait_for(lk, d, [&] { return stopping; });
    return stopping;
  }
  bool past_deadline() {
    std::lock_guard lk(mu);
    return stopping && clock::now() >= deadline;
  }
};

shipper::shipper(config::ledger_postgres_config cfg, std::string journal_path, std::string replica,
                 log_fn log, std::string reported)
    : cfg_(std::move(cfg)),
      journal_path_(std::move(journal_path)),
      replica_(std::move(replica)),
      log_(std::move(log)),
      st_(std::make_unique<state>()) {
  if (!reported.empty()) {
    st_->failing = std::move(reported);
    st_->failing_logged = clock::now();
  }
  thread_ = std::thread([this] { run(); });
}

shipper::~shipper() { stop(milliseconds(0)); }

void shipper::stop(milliseconds grace) {
  {
    std::lock_guard lk(st_->mu);
    if (!st_->stopping) {
      st_->stopping = true;
      st_->deadline = clock::now() + grace;
    }
  }
  st_->cv.notify_all();
  if (thread_.joinable()) thread_.join();
}

shipper_stats shipper::stats() const {
  shipper_stats s;
  s.spool_rows = st_->spool_rows.load(std::memory_order_relaxed);
  const auto oldest = st_->oldest_ms.load(std::memory_order_relaxed);
  if (s.spool_rows > 0 && oldest > 0) {
    const auto now = std::chrono::duration_cast<milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    s.lag_seconds = std::max(0.0, static_cast<double>(now - oldest) / 1000.0);
  }
  s.shipped = st_->shipped.load(std::memory_order_relaxed);
  s.failures = st_->failures.load(std::memory_order_relaxed);
  s.connected = st_->connected.load(std::memory_order_relaxed);
  return s;
}

void shipper::run() {
  auto& st = *st_;
  milliseconds backoff = backoff_min;
  // One line when a failure starts or changes, a reminder a minute while it lasts, one line
  // when it ends: an outage must not flood the log.
  const auto failed = [&](const std::string& why) {
    st.failures.fetch_add(1, std::memory_order_relaxed);
    const auto now = clock::now();
    if (why != st.failing || now - st.failing_logged >= repeat_warning) {
      log_(level::error, why + "; records stay in the local journal " + journal_path_ +
                             " and are shipped when it answers");
      st.failing = why;
      st.failing_logged = now;
    }
  };
  const auto update_backlog = [&] {
    if (!st.journal) return;
    if (auto b = st.journal->backlog(st.shipped_id >= 0 ? st.shipped_id : st.local_floor)) {
      st.spool_rows.store(b->first, std::memory_order_relaxed);
      st.oldest_ms.store(b->second, std::memory_order_relaxed);
      spool_full_.store(b->first > cfg_.spool_max_rows, std::memory_order_relaxed);
    }
  };
  while (!st.past_deadline()) {
    if (!st.journal) {
      auto j = accounting::journal::open(journal_path_);
      if (!j) {
        failed(j.error().message);
        if (st.wait(backoff)) break;
        continue;
      }
      st.journal = std::move(*j);
      if (auto f = st.journal->shipped_locally()) st.local_floor = *f;
    }
    if (!st.conn || !st.conn->ok()) {
      st.connected = false;
      st.conn.reset();
      st.parts.forget();
      auto c = connection::open(cfg_, "bedrock-meter " + replica_);
      auto ready = c ? ensure_schema(**c) : accounting::ledger_result<void>(c.error());
      if (ready && c) {
        auto row = (*c)->exec(
            "INSERT INTO journals (journal, replica, shipped_id) VALUES ($1, $2, 0) "
            "ON CONFLICT (journal) DO UPDATE SET replica = excluded.replica RETURNING shipped_id",
            {st.journal->id(), replica_});
        if (!row) {
          ready = row.error();
        } else {
          st.shipped_id = row->i64(0, 0);
        }
      }
      if (!ready) {
        failed(ready.error().message);
        update_backlog();
        if (st.wait(backoff)) break;
        backoff = std::min(backoff * 2, backoff_max);
        continue;
      }
      st.conn = std::move(*c);
      st.connected = true;
      backoff = backoff_min;
      log_(level::info, "fleet ledger " + st.conn->where() + ": connected as replica " + replica_ +
                            ", journal " + st.journal->id() + " shipped up to row " +
                            std::to_string(st.shipped_id));
      st.failing.clear();
    }
    auto rows = st.journal->after(st.shipped_id, cfg_.batch_max);
    if (!rows) {
      failed(rows.error().message);
      if (st.wait(backoff)) break;  // stopping: no retries, the journal keeps the rest
      continue;
    }
    if (rows->empty()) {
      update_backlog();
      if (st.wait(idle_poll)) break;  // stopping with nothing left to ship
      continue;
    }
    std::string data;
    data.reserve(rows->size() * 512);
    for (const auto& r : *rows) copy_row(data, st.journal->id(), replica_, r);
    // One transaction: lock this journal's row, check that PostgreSQL agrees on where the
    // journal stands, COPY the batch straight into `requests`, move the shipped id. The row lock
    // and the check make a replay impossible (rows at or below shipped_id are never sent
    // again), so no staging table or ON CONFLICT pass is needed; the primary key still refuses
    // a double as a last line.
    bool moved = false;  // PostgreSQL's shipped id was not ours: re-read the journal from it
    auto shipped = [&]() -> accounting::ledger_result<void> {
      for (const auto& r : *rows) {
        if (auto p = st.parts.ensure(*st.conn, r.rec.time_ms); !p) return p.error();
      }
      if (auto r = st.conn->exec("BEGIN"); !r) return r.error();
      auto body = [&]() -> accounting::ledger_result<void> {
        auto at = st.conn->exec("SELECT shipped_id FROM journals WHERE journal = $1 FOR UPDATE",
                                {st.journal->id()});
        if (!at) return at.error();
        if (at->rows() != 1 || at->i64(0, 0) != st.shipped_id) {
          st.shipped_id = at->rows() == 1 ? at->i64(0, 0) : 0;
          moved = true;
          return {};
        }
        if (auto r = st.conn->copy_in("COPY requests (" + copy_columns() + ") FROM STDIN", data);
            !r)
          return r.error();
        if (auto r = st.conn->exec(
                "UPDATE journals SET shipped_id = $2, replica = $3, updated_at = now() "
                "WHERE journal = $1",
                {st.journal->id(), std::to_string(rows->back().id), replica_});
            !r)
          return r.error();
        return st.conn->exec("COMMIT").has_value()
                   ? accounting::ledger_result<void>()
                   : accounting::ledger_result<void>(accounting::ledger_error{
                         accounting::ledger_error::kind::sqlite,
                         "fleet ledger " + st.conn->where() + ": COMMIT failed"});
      }();
      if (!body || moved) (void)st.conn->exec("ROLLBACK");
      return body;
    }();
    if (shipped && moved) {
      log_(level::warn, "fleet ledger " + st.conn->where() + ": journal " + st.journal->id() +
                            " was shipped up to row " + std::to_string(st.shipped_id) +
                            " by another process; continuing from there");
      continue;
    }
    if (!shipped) {
      failed(shipped.error().message);
      st.parts.forget();  // a month dropped by `ledger prune` under us is created again
      if (st.conn && !st.conn->ok()) st.conn.reset();
      update_backlog();
      if (st.wait(backoff)) break;  // stopping: no retries, the journal keeps the rest
      backoff = std::min(backoff * 2, backoff_max);
      continue;
    }
    backoff = backoff_min;
    st.shipped_id = rows->back().id;
    (void)st.journal->record_shipped(st.shipped_id);  // a lag of one batch is harmless
    st.shipped.fetch_add(rows->size(), std::memory_order_relaxed);
    update_backlog();
  }
  st.connected = false;
}

std::string default_replica_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "replica";
  std::string s(host);
  for (auto& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) c = '-';
  return s.substr(0, 64);
}

}  // namespace bedrock_meter::fleet
