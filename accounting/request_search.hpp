#pragma once
// Finding ledger rows for a person: the console's Requests page (GET /api/requests). One filter,
// one SQL builder for both stores (SQLite `?N`, PostgreSQL `$N`), keyset paging so page 100 costs
// what page 1 does.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "metering/money.hpp"

namespace bedrock_meter::accounting {

struct request_filter {
  std::int64_t from_ms = 0;  ///< inclusive
  std::int64_t to_ms = 0;    ///< exclusive
  std::string request_id;    ///< one request (without an index: give a narrow time window)
  std::string team, app;
  std::string model;    ///< the base model or the id as requested
  std::string outcome;  ///< ok, client_error, upstream_error, refused, aborted...
  std::optional<unsigned> status;
  std::optional<metering::pico_usd> min_cost, max_cost;  ///< total_cost, inclusive
  bool unpriced_only = false;
  enum class order : std::uint8_t { newest, costliest };
  order by = order::newest;
  std::size_t limit = 50;
  std::string cursor;  ///< a page's `next_cursor`, "" for the first page
};

/// A statement's parameters in order: integers bound as integers, the rest as text.
struct sql_value {
  bool integer = false;
  std::int64_t i = 0;
  std::string s;
};

struct request_sql {
  std::string sql;  ///< SELECT <record_columns>, <sort value>, <tiebreak...> FROM requests ...
  std::vector<sql_value> params;
};

/// A column that makes the order total, and whether it holds integers (a cursor's value for it
/// must then be one).
struct tiebreak_column {
  std::string_view name;
  bool integer = true;
};

/// The statement of one page (limit + 1 rows, so the reader knows whether another follows).
/// `tiebreak`: {id} in SQLite, {journal (text), local_id} in PostgreSQL; `dollar`: `$N`
/// placeholders instead of `?N`. An error names a malformed cursor.
boost::system::result<request_sql, std::string> build_request_sql(
    const request_filter& f, const std::vector<tiebreak_column>& tiebreak, bool dollar);

/// The cursor after a row: its sort value and tiebreak values, joined by ':'.
std::string make_cursor(std::int64_t sort_value, const std::vector<std::string>& tiebreak);

}  // namespace bedrock_meter::accounting
