#include "fleet/pg.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>

namespace bedrock_meter::fleet {

namespace {

PGresult* raw(pg_result* r) { return r; }
PGconn* raw(pg_conn* c) { return c; }

/// libpq's messages end with a newline and may span lines: one line for the log.
std::string one_line(const char* m) {
  std::string s = m == nullptr ? "" : m;
  for (auto& ch : s)
    if (ch == '\n' || ch == '\r') ch = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

result& result::operator=(result&& o) noexcept {
  if (this != &o) {
    PQclear(raw(r_));
    r_ = o.r_;
    o.r_ = nullptr;
  }
  return *this;
}
result::~result() { PQclear(raw(r_)); }
int result::rows() const { return r_ == nullptr ? 0 : PQntuples(raw(r_)); }
std::string_view result::text(int row, int col) const {
  return {PQgetvalue(raw(r_), row, col), static_cast<std::size_t>(PQgetlength(raw(r_), row, col))};
}
bool result::null(int row, int col) const { return PQgetisnull(raw(r_), row, col) != 0; }
std::int64_t result::i64(int row, int col) const {
  const auto t = text(row, col);
  std::int64_t v = 0;
  std::from_chars(t.data(), t.data() + t.size(), v);
  return v;
}

accounting::ledger_result<std::unique_ptr<connection>> connection::open(
    const config::ledger_postgres_config& cfg, std::string_view application_name) {
  const std::string port = std::to_string(cfg.port);
  const std::string timeout = std::to_string(std::max<long long>(
      1, std::chrono::duration_cast<std::chrono::seconds>(cfg.connect_timeout).count()));
  const std::string app(application_name);
  std::vector<const char*> keys = {
      "host", "port", "dbname", "user", "sslmode", "connect_timeout", "application_name"};
  std::vector<const char*> values = {cfg.host.c_str(), port.c_str(),        cfg.database.c_str(),
                                     cfg.user.c_str(), cfg.sslmode.c_str(), timeout.c_str(),
                                     app.c_str()};
  if (!cfg.password.empty()) {
    keys.push_back("password");
    values.push_back(cfg.password.c_str());
  }
  if (!cfg.sslrootcert.empty()) {
    keys.push_back("sslrootcert");
    values.push_back(cfg.sslrootcert.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  std::string where = "postgresql://" + cfg.user + "@" + cfg.host + ":" + port + "/" + cfg.database;
  PGconn* c = PQconnectdbParams(keys.data(), values.data(), 0);
  if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
    std::string msg = "cannot connect to the fleet ledger " + where + ": " +
                      one_line(c == nullptr ? "out of memory" : PQerrorMessage(c));
    PQfinish(c);
    return accounting::ledger_error{accounting::ledger_error::kind::cannot_open, std::move(msg)};
  }
  return std::unique_ptr<connection>(new connection(c, std::move(where)));
}

connection::~connection() { PQfinish(raw(c_)); }

bool connection::ok() const { return PQstatus(raw(c_)) == CONNECTION_OK; }

accounting::ledger_error connection::error(std::string_view what) const {
  return {accounting::ledger_error::kind::sqlite, "fleet ledger " + where_ + ": " +
                                                      std::string(what) + ": " +
                                                      one_line(PQerrorMessage(raw(c_)))};
}

accounting::ledger_result<result> connection::exec(std::string_view sql,
                                                   const std::vector<std::string>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p.c_str());
  const std::string q(sql);
  // Without parameters, the simple protocol: it also runs several statements (the schema).
  result r(params.empty() ? PQexec(raw(c_), q.c_str())
                          : PQexecParams(raw(c_), q.c_str(), static_cast<int>(values.size()),
                                         nullptr, values.data(), nullptr, nullptr, 0));
  const auto status = PQresultStatus(r.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    const char* m = r.get() == nullptr ? PQerrorMessage(raw(c_)) : PQresultErrorMessage(r.get());
    return accounting::ledger_error{accounting::ledger_error::kind::sqlite,
                                    "fleet ledger " + where_ + ": " + one_line(m)};
  }
  return r;
}

accounting::ledger_result<void> connection::copy_in(std::string_view copy_sql,
                                                    std::string_view data) {
  const std::string q(copy_sql);
  {
    const result start(PQexec(raw(c_), q.c_str()));
    if (PQresultStatus(start.get()) != PGRES_COPY_IN) return error("COPY");
  }
  if (PQputCopyData(raw(c_), data.data(), static_cast<int>(data.size())) != 1 ||
      PQputCopyEnd(raw(c_), nullptr) != 1)
    return error("COPY data");
  bool failed = false;
  std::string why;
  while (PGresult* r = PQgetResult(raw(c_))) {
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      failed = true;
      why = one_line(PQresultErrorMessage(r));
    }
    PQclear(r);
  }
  if (failed)
    return accounting::ledger_error{accounting::ledger_error::kind::sqlite,
                                    "fleet ledger " + where_ + ": COPY: " + why};
  return {};
}

void copy_escape(std::string& out, std::string_view v) {
  for (const char ch : v) {
    switch (ch) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\0': break;  // PostgreSQL text cannot hold NUL
      default: out += ch;
    }
  }
}

metering::money_total parse_money(std::string_view t) {
  metering::money_total v = 0;
  bool neg = false;
  std::size_t i = 0;
  if (i < t.size() && t[i] == '-') {
    neg = true;
    ++i;
  }
  for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) v = v * 10 + (t[i] - '0');
  return neg ? -v : v;
}

}  // namespace bedrock_meter::fleet
