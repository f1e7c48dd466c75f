// `bedrock-meter report`: a spend table from the ledger, grouped by team, app, model or day.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "accounting/ledger.hpp"
#include "app/commands.hpp"
#include "app/ledger_window.hpp"
#include "metering/money.hpp"

namespace bedrock_meter::app {

namespace {

/// `--by team,app,model,day` ("model" is the base model). nullopt on an unknown key.
std::optional<std::vector<accounting::report_key>> parse_keys(std::string_view by) {
  std::vector<accounting::report_key> keys;
  for (std::size_t pos = 0; pos <= by.size();) {
    const auto comma = std::min(by.find(',', pos), by.size());
    auto name = by.substr(pos, comma - pos);
    if (name == "model") name = "model_base";
    const auto k = accounting::parse_report_key(name);
    if (!k) return std::nullopt;
    keys.push_back(*k);
    pos = comma + 1;
  }
  return keys;
}

/// A report row and, with --net, its spend after the commitment discounts.
struct priced_row {
  accounting::report_row row;
  metering::money_total net = 0;
};

void print_table(const std::vector<accounting::report_key>& keys,
                 const std::vector<priced_row>& rows, bool net) {
  for (const auto k : keys) std::printf("%-44s ", std::string(to_string(k)).c_str());
  std::printf("%9s %12s %12s %12s %12s %16s", "requests", "input", "output", "cache_read",
              "cache_write", "spend_usd");
  std::printf(net ? " %16s\n" : "\n", "net_usd");
  std::uint64_t requests = 0;
  metering::money_total list = 0, net_sum = 0;
  for (const auto& [r, n] : rows) {
    for (const auto& key : r.keys) std::printf("%-44s ", key.empty() ? "-" : key.c_str());
    std::printf("%9llu %12llu %12llu %12llu %12llu %16s",
                static_cast<unsigned long long>(r.requests),
                static_cast<unsigned long long>(r.input_tokens),
                static_cast<unsigned long long>(r.output_tokens),
                static_cast<unsigned long long>(r.cache_read_tokens),
                static_cast<unsigned long long>(r.cache_write_tokens),
                metering::format_usd(r.total_cost, 6).c_str());
    std::printf(net ? " %16s\n" : "\n", metering::format_usd(n, 6).c_str());
    requests += r.requests;
    list += r.total_cost;
    net_sum += n;
  }
  std::printf("total: %llu requests, $%s", static_cast<unsigned long long>(requests),
              metering::format_usd(list, 6).c_str());
  if (net) std::printf(", $%s net", metering::format_usd(net_sum, 6).c_str());
  std::printf("\n");
}

/// The rows grouped by `keys`, each with its net spend: queried per day and base model as well
/// (a discount depends on both), then folded back into `keys`.
std::vector<priced_row> with_net(accounting::ledger_reader& reader, const ledger_window& w,
                                 const std::vector<accounting::report_key>& keys,
                                 const std::vector<config::commitment_config>& commitments,
                                 std::string& error) {
  auto fine = keys;
  fine.push_back(accounting::report_key::day);
  fine.push_back(accounting::report_key::model_base);
  auto rows = reader.query_report(w.since_ms, w.until_ms, fine);
  if (!rows) {
    error = rows.error().message;
    return {};
  }
  std::map<std::vector<std::string>, priced_row> folded;
  for (auto& r : *rows) {
    const auto model = r.keys.back();
    // The ledger's UTC day, always well formed; the epoch (outside every term) if not.
    const auto day = parse_day(r.keys[r.keys.size() - 2]).value_or(std::chrono::sys_days{});
    r.keys.resize(keys.size());
    auto& out = folded[r.keys];
    out.row.keys = r.keys;
    out.row.requests += r.requests;
    out.row.input_tokens += r.input_tokens;
    out.row.output_tokens += r.output_tokens;
    out.row.cache_read_tokens += r.cache_read_tokens;
    out.row.cache_write_tokens += r.cache_write_tokens;
    out.row.total_cost += r.total_cost;
    out.net += metering::net_of(r.total_cost, config::discount_ppm_on(commitments, model, day));
  }
  std::vector<priced_row> out;
  out.reserve(folded.size());
  for (auto& [k, v] : folded) out.push_back(std::move(v));
  return out;
}

}  // namespace

int report_command(const args& a) {
  const auto window = ledger_window::from(a, "report", "24h");
  if (!window) return 2;
  const auto keys = parse_keys(a.get("by", "team,model"));
  if (!keys) {
    std::cerr << "report: --by takes team, app, model, day\n";
    return 2;
  }
  auto reader = window->open();
  if (!reader) {
    std::cerr << "report: " << reader.error().message << '\n';
    return 1;
  }
  const bool net = !a.get("net").empty();
  if (net && !window->cfg) {
    std::cerr << "report: --net needs --config FILE (its commitments section)\n";
    return 2;
  }
  std::vector<priced_row> rows;
  if (net) {
    std::string error;
    rows = with_net(**reader, *window, *keys, window->cfg->commitments, error);
    if (!error.empty()) {
      std::cerr << "report: " << error << '\n';
      return 1;
    }
  } else {
    auto list = (*reader)->query_report(window->since_ms, window->until_ms, *keys);
    if (!list) {
      std::cerr << "report: " << list.error().message << '\n';
      return 1;
    }
    for (auto& r : *list) {
      const auto cost = r.total_cost;
      rows.push_back({std::move(r), cost});
    }
  }
  std::sort(rows.begin(), rows.end(),
            [](const auto& x, const auto& y) { return x.row.total_cost > y.row.total_cost; });
  print_table(*keys, rows, net);
  return 0;
}

}  // namespace bedrock_meter::app
