// `bedrock-meter commitment`: the configured EDP commitments against the ledger's Bedrock spend,
// and `--plan`, which projects the trailing month forward to size a commitment before signing.
// The arithmetic is billing/commitment.cpp; this file reads the ledger and prints.
#include <boost/json.hpp>

#include <iomanip>
#include <iostream>
#include <map>

#include "accounting/ledger.hpp"
#include "app/commands.hpp"
#include "app/commitment_spend.hpp"
#include "app/ledger_window.hpp"
#include "billing/commitment.hpp"
#include "metering/money.hpp"

namespace bedrock_meter::app {

namespace {

namespace b = billing;
using metering::money_total;

std::string usd(money_total pico) { return metering::format_usd(pico, 2); }

std::chrono::sys_days today() {
  return std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
}

/// The ledger's list-price spend per UTC day and base model over [from, to); prints the error.
std::optional<std::vector<b::day_model_spend>> read_spend(const config::config& cfg,
                                                          std::chrono::sys_days from,
                                                          std::chrono::sys_days to) {
  const std::string ledger = cfg.ledger.store == config::ledger_store_kind::postgres
                                 ? std::string("the fleet ledger")
                                 : cfg.ledger.path;
  auto reader = open_ledger_reader(cfg);
  auto spend = reader ? spend_by_day(**reader, from, to)
                      : accounting::ledger_result<std::vector<b::day_model_spend>>(reader.error());
  if (!spend) {
    std::cerr << "commitment: " << ledger << ": " << spend.error().message << '\n';
    return std::nullopt;
  }
  return std::move(*spend);
}

/// "5%", "5%/month" or "0.05".
std::optional<double> parse_fraction(std::string_view s) {
  if (s.ends_with("/month")) s.remove_suffix(6);
  const bool percent = s.ends_with('%');
  if (percent) s.remove_suffix(1);
  try {
    std::size_t used = 0;
    const double v = std::stod(std::string(s), &used);
    if (used != s.size() || v < 0 || v > (percent ? 1000 : 10)) return std::nullopt;
    return percent ? v / 100 : v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

boost::json::object year_json(const b::commitment_year& y) {
  return {{"year", y.index},
          {"start", format_day(y.start)},
          {"end", format_day(y.end)},
          {"days", y.days},
          {"days_elapsed", y.days_elapsed},
          {"list_aws_usd", usd(y.list_aws)},
          {"list_marketplace_usd", usd(y.list_marketplace)},
          {"net_aws_usd", usd(y.net_aws)},
          {"net_marketplace_usd", usd(y.net_marketplace)},
          {"counted_bedrock_usd", usd(y.counted_bedrock)},
          {"counted_other_usd", usd(y.counted_other)},
          {"forecast_usd", usd(y.forecast)},
          {"commitment_usd", usd(y.commitment)},
          {"shortfall_usd", usd(y.shortfall)},
          {"surplus_usd", usd(y.surplus)}};
}

void print_report(const b::commitment_report& r, const config::commitment_config& c, bool json,
                  boost::json::array& out) {
  if (json) {
    boost::json::array years, models;
    for (const auto& y : r.years) years.push_back(year_json(y));
    for (const auto& m : r.models) {
      models.push_back({{"model", m.model},
                        {"marketplace", m.marketplace},
                        {"list_usd", usd(m.list)},
                        {"net_usd", usd(m.net)},
                        {"discount_percent", static_cast<double>(m.discount_ppm) / 10'000}});
    }
    out.push_back({{"name", r.name},
                   {"discount_percent", static_cast<double>(c.discount_ppm) / 10'000},
                   {"years", std::move(years)},
                   {"models", std::move(models)}});
    return;
  }
  std::cout << "commitment " << r.name << ": " << format_day(std::chrono::sys_days(c.start))
            << " .. " << format_day(std::chrono::sys_days(c.end)) << ", $"
            << usd(static_cast<money_total>(c.per_year_micro_usd) * 1'000'000)
            << " a year, discount " << static_cast<double>(c.discount_ppm) / 10'000 << "%\n";
  if (r.years.empty()) std::cout << "  the term has not begun\n";
  for (const auto& y : r.years) {
    std::cout << "  year " << y.index << " (" << format_day(y.start) << " .. " << format_day(y.end)
              << ", day " << y.days_elapsed << " of " << y.days << ")\n"
              << "    Bedrock list   $" << usd(y.list_aws + y.list_marketplace) << "  (AWS $"
              << usd(y.list_aws) << ", Marketplace $" << usd(y.list_marketplace) << ")\n"
              << "    Bedrock net    $" << usd(y.net_aws + y.net_marketplace) << "\n"
              << "    counted        $" << usd(y.counted_bedrock + y.counted_other)
              << "  (Bedrock $" << usd(y.counted_bedrock) << ", other $" << usd(y.counted_other)
              << ")\n"
              << "    forecast       $" << usd(y.forecast) << " of $" << usd(y.commitment);
    if (y.shortfall > 0) std::cout << "  -> shortfall $" << usd(y.shortfall);
    if (y.surplus > 0) std::cout << "  -> surplus $" << usd(y.surplus);
    std::cout << '\n';
  }
  if (!r.models.empty()) std::cout << "  net effective price, current year:\n";
  for (const auto& m : r.models) {
    std::cout << "    " << std::left << std::setw(48) << m.model << std::right << " list $"
              << usd(m.list) << "  net $" << usd(m.net) << "  (-"
              << static_cast<double>(m.discount_ppm) / 10'000 << "%"
              << (m.marketplace ? ", Marketplace" : "") << ")\n";
  }
}

int plan(const args& a, const config::config& cfg, const std::vector<b::day_model_spend>& spend) {
  const auto growth = parse_fraction(a.get("growth", "0%"));
  const auto years = parse_count(a.get("years", "3"));
  const auto discount = parse_fraction(a.get("discount", "0%"));
  if (!growth || !years || *years == 0 || *years > 10 || !discount || *discount >= 1) {
    std::cerr << "commitment --plan: --growth takes 5% or 5%/month, --years 1 to 10, --discount "
                 "a percentage below 100%\n";
    return 2;
  }
  // The contract's Marketplace rules when one is configured, else the defaults.
  config::commitment_config rules =
      cfg.commitments.empty() ? config::commitment_config{} : cfg.commitments.front();
  b::plan_options o;
  o.growth_per_month = *growth;
  o.years = static_cast<int>(*years);
  o.discount_ppm = static_cast<std::int64_t>(std::llround(*discount * 1e6));
  o.marketplace_discounted = rules.marketplace_discounted;
  o.marketplace_counts_ppm = rules.marketplace_counts_ppm;
  money_total aws = 0, mp = 0;
  for (const auto& s : spend) (config::is_marketplace(rules, s.model) ? mp : aws) += s.list;
  const auto projected = b::plan_commitment(aws, mp, o);
  if (a.get("format") == "json") {
    boost::json::array out;
    for (const auto& y : projected)
      out.push_back({{"year", y.index},
                     {"list_usd", usd(y.list)},
                     {"net_usd", usd(y.net)},
                     {"counted_usd", usd(y.counted)}});
    std::cout << boost::json::serialize(
                     boost::json::object{{"trailing_30_days_list_usd", usd(aws + mp)},
                                         {"growth_per_month", *growth},
                                         {"discount", *discount},
                                         {"years", std::move(out)}})
              << '\n';
    return 0;
  }
  std::cout << "plan from the last 30 days: $" << usd(aws + mp) << " at list (AWS $" << usd(aws)
            << ", Marketplace $" << usd(mp) << "), growth " << *growth * 100
            << "% a month, discount " << *discount * 100 << "%\n";
  money_total lowest = -1;
  for (const auto& y : projected) {
    std::cout << "  year " << y.index << ": list $" << usd(y.list) << ", net $" << usd(y.net)
              << ", counted toward a commitment $" << usd(y.counted) << '\n';
    if (lowest < 0 || y.counted < lowest) lowest = y.counted;
  }
  std::cout << "a flat yearly commitment this Bedrock spend alone covers every year: $"
            << usd(lowest) << " (other eligible spend adds to it)\n";
  return 0;
}

}  // namespace

int commitment_command(const args& a) {
  const auto path = a.get("config");
  const auto format = a.get("format", "text");
  if (path.empty() || (format != "text" && format != "json")) {
    std::cerr << "commitment: --config FILE is required; --format takes text or json\n";
    return 2;
  }
  const auto cfg = load_or_report(path);
  if (!cfg) return 1;
  if (cfg->ledger.path.empty()) {
    std::cerr << "commitment: " << path << " has no ledger.path\n";
    return 1;
  }
  const auto now = today();
  if (!a.get("plan").empty()) {
    const auto spend = read_spend(*cfg, now - std::chrono::days(29), now + std::chrono::days(1));
    return spend ? plan(a, *cfg, *spend) : 1;
  }
  if (cfg->commitments.empty()) {
    std::cerr << "commitment: " << path
              << " has no commitments section (or use --plan to size one)\n";
    return 1;
  }
  boost::json::array out;
  for (const auto& c : cfg->commitments) {
    if (!a.get("name").empty() && a.get("name") != c.name) continue;
    const auto spend =
        read_spend(*cfg, std::chrono::sys_days(c.start),
                   std::min(std::chrono::sys_days(c.end), now + std::chrono::days(1)));
    if (!spend) return 1;
    print_report(b::evaluate_commitment(c, *spend, now), c, format == "json", out);
  }
  if (format == "json") std::cout << boost::json::serialize(out) << '\n';
  return 0;
}

}  // namespace bedrock_meter::app
