#include "billing/commitment.hpp"

#include <algorithm>
#include <cmath>
#include <map>

namespace bedrock_meter::billing {

namespace {

using metering::money_total;
constexpr std::int64_t ppm = 1'000'000;

money_total share(money_total amount, std::int64_t part_ppm) { return amount * part_ppm / ppm; }
using config::is_marketplace;
using metering::net_of;

/// The contract years of the term: from `start`, one calendar year each, the last cut at `end`.
std::vector<std::pair<std::chrono::sys_days, std::chrono::sys_days>> contract_years(
    const config::commitment_config& c) {
  std::vector<std::pair<std::chrono::sys_days, std::chrono::sys_days>> out;
  const std::chrono::sys_days end(c.end);
  for (int k = 0;; ++k) {
    const auto s = std::chrono::sys_days(c.start + std::chrono::years(k));
    if (s >= end) break;
    const auto e = std::min(end, std::chrono::sys_days(c.start + std::chrono::years(k + 1)));
    out.emplace_back(s, e);
  }
  return out;
}

}  // namespace

commitment_report evaluate_commitment(const config::commitment_config& c,
                                      const std::vector<day_model_spend>& spend,
                                      std::chrono::sys_days today) {
  commitment_report r;
  r.name = c.name;
  const auto years = contract_years(c);
  std::map<std::string, money_total> model_list;  // current year
  std::size_t current = 0;
  for (std::size_t k = 0; k < years.size(); ++k) {
    const auto [start, end] = years[k];
    if (start > today) break;
    commitment_year y;
    y.index = static_cast<int>(k) + 1;
    y.start = start;
    y.end = end;
    y.days = static_cast<int>((end - start).count());
    y.days_elapsed =
        static_cast<int>((std::min(end, today + std::chrono::days(1)) - start).count());
    // Commitments are per full year; a short last year is prorated.
    y.commitment = c.per_year_micro_usd * static_cast<money_total>(1'000'000) * y.days / 365;
    r.years.push_back(y);
    current = r.years.size() - 1;
  }
  if (r.years.empty()) return r;
  for (const auto& s : spend) {
    for (auto& y : r.years) {
      if (s.day < y.start || s.day >= y.end || s.day > today) continue;
      (is_marketplace(c, s.model) ? y.list_marketplace : y.list_aws) += s.list;
      if (&y == &r.years[current]) model_list[s.model] += s.list;
    }
  }
  const std::int64_t mp_discount = c.marketplace_discounted ? c.discount_ppm : 0;
  const money_total other_per_year =
      static_cast<money_total>(c.other_spend_per_year_micro_usd) * 1'000'000;
  for (auto& y : r.years) {
    y.net_aws = net_of(y.list_aws, c.discount_ppm);
    y.net_marketplace = net_of(y.list_marketplace, mp_discount);
    y.counted_bedrock = y.net_aws + share(y.net_marketplace, c.marketplace_counts_ppm);
    const money_total other_year = other_per_year * y.days / 365;
    y.counted_other = other_year * y.days_elapsed / y.days;
    // The year's own run rate: what was counted per elapsed day, for every day of the year.
    y.forecast = y.counted_bedrock * y.days / std::max(1, y.days_elapsed) + other_year;
    if (y.forecast < y.commitment) y.shortfall = y.commitment - y.forecast;
    if (y.forecast > y.commitment) y.surplus = y.forecast - y.commitment;
  }
  for (const auto& [model, list] : model_list) {
    const bool mp = is_marketplace(c, model);
    const std::int64_t d = mp ? mp_discount : c.discount_ppm;
    r.models.push_back({model, mp, list, net_of(list, d), d});
  }
  std::sort(r.models.begin(), r.models.end(), [](const auto& a, const auto& b) {
    return a.list != b.list ? a.list > b.list : a.model < b.model;
  });
  return r;
}

std::vector<plan_year> plan_commitment(money_total trailing_30d_aws,
                                       money_total trailing_30d_marketplace,
                                       const plan_options& o) {
  // 30 days of spend -> one average month (365/12 days), in micro-USD: a projection is a double,
  // and int64 pico-USD would overflow past $9.2M.
  const double month_aws = static_cast<double>(trailing_30d_aws) / 1e6 * (365.0 / 12.0) / 30.0;
  const double month_mp =
      static_cast<double>(trailing_30d_marketplace) / 1e6 * (365.0 / 12.0) / 30.0;
  std::vector<plan_year> out;
  for (int k = 0; k < o.years; ++k) {
    double aws = 0, mp = 0;
    for (int m = 12 * k; m < 12 * k + 12; ++m) {
      const double f = std::pow(1.0 + o.growth_per_month, m);
      aws += month_aws * f;
      mp += month_mp * f;
    }
    plan_year y;
    y.index = k + 1;
    const money_total list_aws = static_cast<money_total>(std::llround(aws)) * 1'000'000;
    const money_total list_mp = static_cast<money_total>(std::llround(mp)) * 1'000'000;
    y.list = list_aws + list_mp;
    const money_total net_aws = net_of(list_aws, o.discount_ppm);
    const money_total net_mp = net_of(list_mp, o.marketplace_discounted ? o.discount_ppm : 0);
    y.net = net_aws + net_mp;
    y.counted = net_aws + share(net_mp, o.marketplace_counts_ppm);
    out.push_back(y);
  }
  return out;
}

}  // namespace bedrock_meter::billing
