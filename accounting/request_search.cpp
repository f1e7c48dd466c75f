#include "accounting/request_search.hpp"

#include <charconv>

#include "accounting/ledger_schema.hpp"

namespace bedrock_meter::accounting {

namespace {

std::optional<std::int64_t> to_i64(std::string_view s) {
  std::int64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::string make_cursor(std::int64_t sort_value, const std::vector<std::string>& tiebreak) {
  std::string out = std::to_string(sort_value);
  for (const auto& t : tiebreak) out += ':' + t;
  return out;
}

boost::system::result<request_sql, std::string> build_request_sql(
    const request_filter& f, const std::vector<tiebreak_column>& tiebreak, bool dollar) {
  request_sql q;
  const auto bind = [&](sql_value v) {
    q.params.push_back(std::move(v));
    return std::string(dollar ? "$" : "?") + std::to_string(q.params.size());
  };
  const auto integer = [&](std::int64_t v) { return bind({true, v, {}}); };
  const auto text = [&](std::string_view v) { return bind({false, 0, std::string(v)}); };

  const std::string_view sort = f.by == request_filter::order::newest ? "time_ms" : "total_cost";
  std::string keys(sort);
  for (const auto& t : tiebreak) keys += ", " + std::string(t.name);

  std::string where = "time_ms >= " + integer(f.from_ms) + " AND time_ms < " + integer(f.to_ms);
  if (!f.request_id.empty()) where += " AND request_id = " + text(f.request_id);
  if (!f.team.empty()) where += " AND team = " + text(f.team);
  if (!f.app.empty()) where += " AND app = " + text(f.app);
  if (!f.model.empty()) {
    const auto m = text(f.model);
    where += " AND (model_base = " + m + " OR model_requested = " + m + ")";
  }
  if (!f.outcome.empty()) where += " AND outcome = " + text(f.outcome);
  if (f.status) where += " AND status = " + integer(*f.status);
  if (f.min_cost) where += " AND total_cost >= " + integer(*f.min_cost);
  if (f.max_cost) where += " AND total_cost <= " + integer(*f.max_cost);
  if (f.unpriced_only) where += " AND priced = 0";
  if (!f.cursor.empty()) {
    // "<sort value>:<tiebreak>...": rows strictly after it in the descending order.
    std::vector<std::string_view> parts;
    std::string_view rest = f.cursor;
    for (std::size_t colon; (colon = rest.find(':')) != std::string_view::npos;) {
      parts.push_back(rest.substr(0, colon));
      rest.remove_prefix(colon + 1);
    }
    parts.push_back(rest);
    const auto first = to_i64(parts.front());
    if (parts.size() != tiebreak.size() + 1 || !first)
      return {boost::system::in_place_error, "cursor: not one this ledger handed out"};
    std::string after = integer(*first);
    for (std::size_t i = 1; i < parts.size(); ++i) {
      const auto& column = tiebreak[i - 1];
      const auto n = to_i64(parts[i]);
      if (column.integer ? !n : parts[i].empty())
        return {boost::system::in_place_error, "cursor: not one this ledger handed out"};
      after += ", " + (column.integer ? integer(*n) : text(parts[i]));
    }
    where += " AND (" + keys + ") < (" + after + ")";
  }
  std::string desc;
  for (const auto& t : tiebreak) desc += ", " + std::string(t.name) + " DESC";
  const auto limit = f.limit > 100000 ? std::int64_t{100000} : static_cast<std::int64_t>(f.limit);
  q.sql = "SELECT " + std::string(record_columns) + ", " + keys + " FROM requests WHERE " + where +
          " ORDER BY " + std::string(sort) + " DESC" + desc + " LIMIT " + integer(limit + 1);
  return q;
}

}  // namespace bedrock_meter::accounting
