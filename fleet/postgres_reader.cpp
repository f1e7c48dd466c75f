#include "fleet/postgres_reader.hpp"

#include <charconv>
#include <map>
#include <mutex>
#include <tuple>

#include "accounting/ledger_schema.hpp"
#include "fleet/pg.hpp"
#include "fleet/schema.hpp"

namespace bedrock_meter::fleet {

namespace {

using accounting::ledger_error;
using accounting::ledger_result;
using metering::money_total;

constexpr std::size_t fetch_rows = 10'000;

std::uint64_t u64(const result& r, int row, int col) {
  const auto v = r.i64(row, col);
  return v < 0 ? 0 : static_cast<std::uint64_t>(v);
}

std::string_view key_sql(accounting::report_key k) {
  switch (k) {
    case accounting::report_key::team: return "team";
    case accounting::report_key::app: return "app";
    case accounting::report_key::model_base: return "model_base";
    case accounting::report_key::day:
      return "to_char(to_timestamp(time_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')";
  }
  return "''";
}

void read_record(const result& r, int row, accounting::ledger_record& rec) {
  int i = 0;
  const auto text = [&] { return std::string(r.text(row, i++)); };
  const auto num = [&] { return r.i64(row, i++); };
  const auto unum = [&] { return u64(r, row, i++); };
  rec.time_ms = num();
  rec.request_id = text();
  rec.team = text();
  rec.app = text();
  rec.principal = text();
  ++i;  // tags: decoded below from its JSON
  for (std::string* s : {&rec.operation, &rec.model_requested, &rec.model_base, &rec.model_label,
                         &rec.region, &rec.scope, &rec.service_tier, &rec.latency_mode})
    *s = text();
  rec.batch = num() != 0;
  rec.status = static_cast<unsigned>(num());
  rec.outcome = metering::parse_outcome(text()).value_or(metering::request_outcome::ok);
  for (std::uint64_t* n : {&rec.input_tokens, &rec.output_tokens, &rec.cache_read_tokens,
                           &rec.cache_write_tokens, &rec.cache_write_1h_tokens})
    *n = unum();
  rec.usage_source = metering::parse_usage_source(text()).value_or(metering::usage_source::none);
  for (metering::pico_usd* c : {&rec.input_cost, &rec.output_cost, &rec.cache_read_cost,
                                &rec.cache_write_cost, &rec.total_cost})
    *c = num();
  rec.priced = num() != 0;
  rec.unpriced_reason = text();
  rec.rate_table_version = text();
  rec.rate_entry = text();
  rec.duration_us = num();
  rec.first_byte_us = num();
  rec.bytes_in = unum();
  rec.bytes_out = unum();
  rec.has_traits = num() != 0;
  if (r.null(row, i)) {
    rec.traits.max_tokens.reset();
    ++i;
  } else {
    rec.traits.max_tokens = unum();
  }
  rec.stop_reason = text();
  rec.traits.tools = num() != 0;
  rec.traits.structured_output = num() != 0;
  for (metering::prompt_prefix* p :
       {&rec.traits.system, &rec.traits.conversation, &rec.traits.full}) {
    p->hash = static_cast<std::uint64_t>(num());
    p->bytes = unum();
  }
  rec.speech_input_tokens = unum();
  rec.speech_output_tokens = unum();
  rec.tags = accounting::tags_from_json(r.text(row, 5));
}

class postgres_reader final : public accounting::ledger_reader {
 public:
  explicit postgres_reader(std::unique_ptr<connection> c) : c_(std::move(c)) {}

  ledger_result<std::vector<accounting::ledger_totals_row>> totals() override {
    return unavailable("counter totals");
  }
  ledger_result<std::vector<accounting::series_spend_row>> series_spend(std::int64_t,
                                                                        std::int64_t) override {
    return unavailable("series spend");
  }

  ledger_result<money_total> spend_since(std::int64_t from_ms,
                                         const accounting::spend_filter& f) override {
    std::lock_guard lk(mu_);
    std::string sql = "SELECT COALESCE(SUM(total_cost), 0)::text FROM requests WHERE time_ms >= $1";
    std::vector<std::string> params{std::to_string(from_ms)};
    const std::pair<const char*, const std::optional<std::string>*> fields[] = {
        {"team", &f.team},
        {"app", &f.app},
        {"principal", &f.principal},
        {"model_base", &f.model_base},
        {"model_label", &f.model_label}};
    for (const auto& [col, v] : fields) {
      if (!v->has_value()) continue;
      params.push_back(**v);
      sql += " AND " + std::string(col) + " = $" + std::to_string(params.size());
    }
    auto r = c_->exec(sql, params);
    if (!r) return r.error();
    return parse_money(r->text(0, 0));
  }

  // As the SQLite reader: whole UTC days from spend_daily (kept by the COPY trigger, schema 2),
  // partial end days from `requests`; an end day counts as whole when no row lies outside the
  // window on it (until = now, since = a date).
  ledger_result<std::vector<accounting::report_row>> query_report(
      std::int64_t from_ms, std::int64_t to_ms,
      const std::vector<accounting::report_key>& group_by) override {
    std::lock_guard lk(mu_);
    const auto days = accounting::whole_days(
        from_ms, to_ms, [&](std::int64_t a, std::int64_t b) -> ledger_result<bool> {
          auto r = c_->exec("SELECT 1 FROM requests WHERE time_ms >= $1 AND time_ms < $2 LIMIT 1",
                            {std::to_string(a), std::to_string(b)});
          if (!r) return r.error();
          return r->rows() > 0;
        });
    if (!days) return days.error();
    std::map<std::vector<std::string>, accounting::report_row> merged;
    const auto run = [&](bool daily, std::int64_t a, std::int64_t b) -> ledger_result<void> {
      if (a >= b) return {};
      std::string keys;
      for (const auto k : group_by) {
        if (!keys.empty()) keys += ", ";
        keys += daily && k == accounting::report_key::day
                    ? "to_char(to_timestamp(day_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
                    : key_sql(k);
      }
      std::string sql = "SELECT ";
      if (!keys.empty()) sql += keys + ", ";
      sql += daily ? "COALESCE(SUM(requests), 0)" : "count(*)";
      for (const char* t :
           {"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"})
        sql += std::string(", COALESCE(SUM(") + t + "), 0)";
      for (const auto c : accounting::cost_columns)
        sql += ", COALESCE(SUM(" + std::string(c) + "), 0)::text";
      sql += daily ? " FROM spend_daily WHERE day_ms >= $1 AND day_ms < $2"
                   : " FROM requests WHERE time_ms >= $1 AND time_ms < $2";
      if (!keys.empty()) sql += " GROUP BY " + keys;
      auto r = c_->exec(sql, {std::to_string(a), std::to_string(b)});
      if (!r) return r.error();
      for (int row = 0; row < r->rows(); ++row) {
        accounting::report_row out;
        int i = 0;
        for (std::size_t k = 0; k < group_by.size(); ++k) out.keys.emplace_back(r->text(row, i++));
        out.requests = u64(*r, row, i++);
        for (std::uint64_t* n : {&out.input_tokens, &out.output_tokens, &out.cache_read_tokens,
                                 &out.cache_write_tokens})
          *n = u64(*r, row, i++);
        for (money_total* m : {&out.input_cost, &out.output_cost, &out.cache_read_cost,
                               &out.cache_write_cost, &out.total_cost})
          *m = parse_money(r->text(row, i++));
        // An ungrouped query over no rows still yields one row.
        if (out.requests > 0) merged.try_emplace(out.keys).first->second += out;
      }
      return {};
    };
    if (days->from >= days->to) {  // within one partial day, or an empty window
      if (auto r = run(false, from_ms, to_ms); !r) return r.error();
    } else {
      for (auto [daily, a, b] :
           {std::tuple{false, from_ms, days->from}, std::tuple{true, days->from, days->to},
            std::tuple{false, days->to, to_ms}}) {
        if (auto r = run(daily, a, b); !r) return r.error();
      }
    }
    std::vector<accounting::report_row> rows;
    rows.reserve(merged.size());
    for (auto& [keys, row] : merged) {  // ordered by the keys
      row.keys = keys;
      rows.push_back(std::move(row));
    }
    return rows;
  }

  ledger_result<std::uint64_t> scan(
      const accounting::scan_filter& f,
      const std::function<bool(const accounting::scan_row&)>& fn) override {
    std::lock_guard lk(mu_);
    std::string sql = "DECLARE scan NO SCROLL CURSOR FOR SELECT " +
                      std::string(accounting::scan_columns) +
                      " FROM requests WHERE time_ms >= $1 AND time_ms < $2";
    std::vector<std::string> params{std::to_string(f.from_ms), std::to_string(f.to_ms)};
    if (!f.team.empty()) {
      params.push_back(f.team);
      sql += " AND team = $" + std::to_string(params.size());
    }
    if (!f.app.empty()) {
      params.push_back(f.app);
      sql += " AND app = $" + std::to_string(params.size());
    }
    if (!f.model.empty()) {
      params.push_back(f.model);
      const auto n = std::to_string(params.size());
      sql += " AND (model_base = $" + n + " OR model_requested = $" + n + ")";
    }
    sql += " ORDER BY time_ms, journal, local_id";
    return in_transaction([&]() -> ledger_result<std::uint64_t> {
      if (auto r = c_->exec(sql, params); !r) return r.error();
      std::uint64_t n = 0;
      accounting::scan_row row;
      for (;;) {
        auto r = c_->exec("FETCH " + std::to_string(fetch_rows) + " FROM scan");
        if (!r) return r.error();
        for (int k = 0; k < r->rows(); ++k) {
          read_scan_row(*r, k, row);
          ++n;
          if (!fn(row)) return n;
        }
        if (r->rows() < static_cast<int>(fetch_rows)) return n;
      }
    });
  }

  ledger_result<std::optional<std::int64_t>> pruned_before_ms() override {
    // `ledger prune` drops whole months and records where it stopped (fleet::prune_months).
    std::lock_guard lk(mu_);
    auto r = c_->exec("SELECT value FROM bm_meta WHERE key = 'pruned_before_ms'");
    if (!r) return r.error();
    if (r->rows() == 0) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(r->i64(0, 0));
  }

  ledger_result<request_page> find_requests(const accounting::request_filter& f) override {
    auto q = accounting::build_request_sql(f, {{"journal", false}, {"local_id", true}}, true);
    if (!q) return ledger_error{ledger_error::kind::bad_query, q.error()};
    std::vector<std::string> params;
    params.reserve(q->params.size());
    for (const auto& v : q->params) params.push_back(v.integer ? std::to_string(v.i) : v.s);
    std::lock_guard lk(mu_);
    auto r = c_->exec(q->sql, params);
    if (!r) return r.error();
    request_page page;
    const int extra = static_cast<int>(accounting::record_column_count);
    for (int row = 0; row < r->rows(); ++row) {
      if (page.rows.size() == f.limit) {
        const int last = row - 1;  // a row beyond the page: continue after the page's last
        page.next_cursor = accounting::make_cursor(
            r->i64(last, extra),
            {std::string(r->text(last, extra + 1)), std::string(r->text(last, extra + 2))});
        break;
      }
      read_record(*r, row, page.rows.emplace_back());
    }
    return page;
  }

  ledger_result<std::vector<accounting::ledger_record>> records(std::int64_t from_ms,
                                                                std::int64_t to_ms,
                                                                std::size_t limit) override {
    std::lock_guard lk(mu_);
    const std::string sql = "SELECT " + std::string(accounting::record_columns) +
                            " FROM requests WHERE time_ms >= $1 AND time_ms < $2 ORDER BY "
                            "time_ms, journal, local_id LIMIT $3";
    const auto cap =
        limit > static_cast<std::size_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(limit);
    auto r = c_->exec(sql, {std::to_string(from_ms), std::to_string(to_ms), std::to_string(cap)});
    if (!r) return r.error();
    std::vector<accounting::ledger_record> out(static_cast<std::size_t>(r->rows()));
    for (int row = 0; row < r->rows(); ++row)
      read_record(*r, row, out[static_cast<std::size_t>(row)]);
    return out;
  }

 private:
  static ledger_error unavailable(std::string_view what) {
    return {ledger_error::kind::sqlite,
            std::string(what) + " come from each replica's local journal, not the fleet ledger"};
  }

  template <class F>
  auto in_transaction(F&& body) -> decltype(body()) {
    if (auto r = c_->exec("BEGIN READ ONLY"); !r) return r.error();
    auto out = body();
    (void)c_->exec(out ? "COMMIT" : "ROLLBACK");
    return out;
  }

  static void read_scan_row(const result& r, int row, accounting::scan_row& s) {
    int i = 0;
    s.time_ms = r.i64(row, i++);
    for (std::string_view* v :
         {&s.team, &s.app, &s.operation, &s.model_requested, &s.model_base, &s.region, &s.scope,
          &s.service_tier, &s.latency_mode, &s.outcome, &s.stop_reason})
      *v = r.text(row, i++);
    s.batch = r.i64(row, i++) != 0;
    s.status = static_cast<unsigned>(r.i64(row, i++));
    for (std::uint64_t* n : {&s.input_tokens, &s.output_tokens, &s.cache_read_tokens,
                             &s.cache_write_tokens, &s.cache_write_1h_tokens})
      *n = u64(r, row, i++);
    s.total_cost = r.i64(row, i++);
    s.priced = r.i64(row, i++) != 0;
    s.bytes_in = u64(r, row, i++);
    s.has_traits = r.i64(row, i++) != 0;
    s.max_tokens = r.null(row, i) ? std::nullopt : std::optional<std::uint64_t>(u64(r, row, i));
    ++i;
    s.tools = r.i64(row, i++) != 0;
    s.structured_output = r.i64(row, i++) != 0;
    for (metering::prompt_prefix* p : {&s.system_prefix, &s.conversation_prefix, &s.full_prompt}) {
      p->hash = static_cast<std::uint64_t>(r.i64(row, i++));
      p->bytes = u64(r, row, i++);
    }
    s.speech_input_tokens = u64(r, row, i++);
    s.speech_output_tokens = u64(r, row, i++);
  }

  std::mutex mu_;
  std::unique_ptr<connection> c_;
};

}  // namespace

ledger_result<void> prepare_schema(const config::ledger_postgres_config& cfg) {
  auto c = connection::open(cfg, "bedrock-meter migration");
  if (!c) return c.error();
  return ensure_schema(**c);
}

ledger_result<std::unique_ptr<accounting::ledger_reader>> open_reader(
    const config::ledger_postgres_config& cfg) {
  auto c = connection::open(cfg, "bedrock-meter reader");
  if (!c) return c.error();
  auto v = (*c)->exec("SELECT to_regclass('requests') IS NOT NULL");
  if (!v) return v.error();
  if (v->text(0, 0) != "t") {
    return ledger_error{ledger_error::kind::not_a_ledger,
                        "fleet ledger " + (*c)->where() +
                            " has no requests table yet; start a replica with ledger.store: "
                            "postgres to create it"};
  }
  return std::unique_ptr<accounting::ledger_reader>(new postgres_reader(std::move(*c)));
}

}  // namespace bedrock_meter::fleet
