#pragma once
// A thin RAII layer over libpq for the fleet ledger: one connection, statements with text
// parameters, COPY, and error text that names the server and never the password.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accounting/ledger.hpp"
#include "config/config.hpp"

// libpq's own struct names (PGconn, PGresult), so this header needs no libpq include.
struct pg_conn;
struct pg_result;

namespace bedrock_meter::fleet {

/// A query's result, freed when it goes out of scope.
class result {
 public:
  result() = default;
  explicit result(pg_result* r) : r_(r) {}
  result(result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  result& operator=(result&& o) noexcept;
  ~result();
  [[nodiscard]] int rows() const;
  [[nodiscard]] std::string_view text(int row, int col) const;  ///< "" for NULL
  [[nodiscard]] bool null(int row, int col) const;
  [[nodiscard]] std::int64_t i64(int row, int col) const;
  [[nodiscard]] pg_result* get() const noexcept { return r_; }

 private:
  pg_result* r_ = nullptr;
};

/// One connection. Not thread-safe: one owner thread.
class connection {
 public:
  /// Connects with `cfg` (host, port, database, user, password, sslmode, sslrootcert,
  /// connect_timeout). The error is one line naming host, port, database and user.
  static accounting::ledger_result<std::unique_ptr<connection>> open(
      const config::ledger_postgres_config& cfg, std::string_view application_name);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Runs `sql` with text parameters ($1...); an error when the server says no.
  accounting::ledger_result<result> exec(std::string_view sql,
                                         const std::vector<std::string>& params = {});
  /// COPY `copy_sql` FROM STDIN with `data` (text format, already escaped).
  accounting::ledger_result<void> copy_in(std::string_view copy_sql, std::string_view data);
  /// False once the connection broke (reconnect).
  [[nodiscard]] bool ok() const;
  [[nodiscard]] const std::string& where() const noexcept { return where_; }

 private:
  connection(pg_conn* c, std::string where) : c_(c), where_(std::move(where)) {}
  accounting::ledger_error error(std::string_view what) const;
  pg_conn* c_;
  std::string where_;  ///< "postgresql://user@host:port/db", for messages
};

/// Appends `v` to a COPY text row with its special characters escaped.
void copy_escape(std::string& out, std::string_view v);

/// Exact pico-USD from PostgreSQL's numeric text ("123", "-5"); 0 for "" (NULL).
metering::money_total parse_money(std::string_view numeric);

}  // namespace bedrock_meter::fleet
