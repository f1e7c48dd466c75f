// `bedrock-meter report`: a spend table from the ledger, grouped by team, app, model or day.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "accounting/ledger.hpp"
#include "app/commands.hpp"
#include "app/ledger_window.hpp"
#include "app/spend.hpp"
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

void print_table(const std::vector<accounting::report_key>& keys,
                 const std::vector<spend_row>& rows, bool net) {
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
  auto rows = spend_by(**reader, window->since_ms, window->until_ms, *keys, {},
                       net ? &window->cfg->commitments : nullptr);
  if (!rows) {
    std::cerr << "report: " << rows.error().message << '\n';
    return 1;
  }
  print_table(*keys, *rows, net);
  return 0;
}

}  // namespace bedrock_meter::app
