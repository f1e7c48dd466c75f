// How budgets read to people: times in RFC 3339, scopes and periods in words, and the document
// GET /api/budgets and `bedrock-meter budgets --json` print. The engine is budgets.cpp.
#include "accounting/budgets.hpp"

#include <cmath>
#include <cstdio>
#include <utility>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace bedrock_meter::accounting {

namespace bm = metering;

namespace {

// `part` as a percentage of `whole`, rounded to two decimals; 0 when there is no limit.
double percent_of(bm::money_total part, bm::pico_usd whole) {
  if (whole <= 0) return 0.0;
  return std::round(bm::to_usd_double(part) / bm::to_usd_double(whole) * 10000.0) / 100.0;
}

std::string_view action_name(bm::budget_action action) {
  return action == bm::budget_action::block ? "block" : "alert";
}

// One entry of the "budgets" list; the key order is the documented one.
boost::json::object status_json(const budget_status& b) {
  return boost::json::object{
      {"name", b.name},
      {"action", action_name(b.action)},
      {"scope", b.scope},
      {"period", b.period},
      {"time_zone", b.time_zone},
      {"period_start", format_utc(b.window.start)},
      {"period_end", format_utc(b.window.end)},
      {"limit_usd", bm::format_usd(b.limit, 6)},
      {"spend_usd", bm::format_usd(b.spent, 6)},
      {"reserved_usd", bm::format_usd(b.reserved, 6)},
      {"used_percent", percent_of(b.spent, b.limit)},
      {"forecast_usd", bm::format_usd(b.forecast, 6)},
      {"forecast_percent", percent_of(b.forecast, b.limit)},
      {"blocked_requests", b.blocked},
      {"warn_at", boost::json::array(b.warning_percents.begin(), b.warning_percents.end())},
      {"source", b.source},
  };
}

}  // namespace

std::string format_utc(bm::instant t) {
  // Whole seconds, rounded down (also before 1970).
  const auto secs = std::chrono::floor<std::chrono::seconds>(t);
  const auto day = std::chrono::floor<std::chrono::days>(secs);
  const std::chrono::year_month_day ymd(day);
  const std::chrono::hh_mm_ss hms(secs - day);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

std::string describe_scope(const bm::budget_scope& scope) {
  const std::pair<std::string_view, const std::optional<std::string>*> parts[] = {
      {"team", &scope.team},
      {"app", &scope.app},
      {"identity", &scope.identity},
      {"model", &scope.model},
  };
  std::string out;
  for (const auto& [key, value] : parts) {
    if (!value->has_value()) continue;
    if (!out.empty()) out += ',';
    out += key;
    out += '=';
    out += **value;
  }
  return out.empty() ? "everything" : out;
}

std::string describe_period(const bm::budget_period& period) {
  switch (period.kind) {
    case bm::period_kind::daily: return "daily";
    case bm::period_kind::weekly: return "weekly";
    case bm::period_kind::monthly: return "monthly";
    case bm::period_kind::custom: break;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "custom(%dd from %04d-%02u-%02u)", period.custom_days,
                static_cast<int>(period.custom_start.year()),
                static_cast<unsigned>(period.custom_start.month()),
                static_cast<unsigned>(period.custom_start.day()));
  return buf;
}

std::string budgets_json(const std::vector<budget_status>& budgets, bm::instant now) {
  boost::json::array list;
  for (const auto& b : budgets) list.push_back(status_json(b));
  return boost::json::serialize(
      boost::json::object{{"as_of", format_utc(now)}, {"budgets", std::move(list)}});
}

}  // namespace bedrock_meter::accounting
