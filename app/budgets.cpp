// `bedrock-meter budgets`: each budget's limit, period-to-date spend (from the ledger or the shared
// Redis store), percentage used and forecast at period end. The running proxy answers the same
// document at GET /api/budgets.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "accounting/budget_restore.hpp"
#include "accounting/budgets.hpp"
#include "accounting/ledger.hpp"
#include "app/commands.hpp"
#include "app/ledger_window.hpp"
#include "metering/money.hpp"

namespace bedrock_meter::app {

namespace {

void print_table(const std::vector<accounting::budget_status>& status) {
  std::printf("%-24s %-6s %-28s %-10s %14s %14s %8s %14s %9s  %s\n", "budget", "action", "scope",
              "period", "limit_usd", "spend_usd", "used", "forecast_usd", "forecast", "period_end");
  for (const auto& b : status) {
    const auto pct = [&](metering::money_total v) {
      return b.limit > 0 ? metering::to_usd_double(v) / metering::to_usd_double(b.limit) * 100.0
                         : 0.0;
    };
    std::printf("%-24s %-6s %-28s %-10s %14s %14s %7.1f%% %14s %8.1f%%  %s\n", b.name.c_str(),
                b.action == metering::budget_action::block ? "block" : "alert", b.scope.c_str(),
                b.period.c_str(), metering::format_usd(b.limit, 2).c_str(),
                metering::format_usd(b.spent, 2).c_str(), pct(b.spent),
                metering::format_usd(b.forecast, 2).c_str(), pct(b.forecast),
                accounting::format_utc(b.window.end).c_str());
  }
}

}  // namespace

int budgets_command(const args& a) {
  const auto path = a.get("config");
  const auto format = a.get("format", "text");
  if (path.empty() || (format != "text" && format != "json")) {
    std::cerr << "budgets: --config FILE is required; --format takes text or json\n";
    return 2;
  }
  auto cfg = load_or_report(path);
  if (!cfg) return 1;
  std::unique_ptr<accounting::ledger_reader> reader;
  if (cfg->ledger.store == config::ledger_store_kind::postgres ||
      (!cfg->ledger.path.empty() && std::filesystem::exists(cfg->ledger.path))) {
    auto r = open_ledger_reader(*cfg);
    if (!r) {
      std::cerr << "budgets: " << r.error().message << '\n';
      return 1;
    }
    reader = std::move(*r);
  }
  const auto now =
      std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now());
  std::vector<std::string> warnings;
  accounting::budget_engine engine(cfg->budgets, nullptr,
                                   accounting::restore_from_ledger(nullptr, reader.get()), now,
                                   &warnings);
  for (const auto& w : warnings) std::cerr << "warning: " << w << '\n';
  accounting::budget_store_handle store;
  const auto status = engine.status(now, store.get(cfg->budgets));
  if (format == "json") {
    std::cout << accounting::budgets_json(status, now) << '\n';
  } else if (status.empty()) {
    std::cout << "no budgets configured (add a 'budgets' section; see docs/budgets.md)\n";
  } else {
    print_table(status);
  }
  if (cfg->budgets.store == config::budget_store_kind::redis && !status.empty() &&
      status.front().source != "redis")
    std::cerr << "warning: the Redis budget store is unreachable; spend shown is from this "
                 "machine's ledger only\n";
  return 0;
}

}  // namespace bedrock_meter::app
