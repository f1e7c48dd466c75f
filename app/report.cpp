// `bedrock-meter report`: a spend table from the ledger, grouped by team, app, model or day.
#include <algorithm>
#include <cstdio>
#include <iostream>
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

void print_table(const std::vector<accounting::report_key>& keys,
                 const std::vector<accounting::report_row>& rows) {
  for (const auto k : keys) std::printf("%-44s ", std::string(to_string(k)).c_str());
  std::printf("%9s %12s %12s %12s %12s %16s\n", "requests", "input", "output", "cache_read",
              "cache_write", "spend_usd");
  accounting::report_row sum;
  for (const auto& r : rows) {
    for (const auto& key : r.keys) std::printf("%-44s ", key.empty() ? "-" : key.c_str());
    std::printf("%9llu %12llu %12llu %12llu %12llu %16s\n",
                static_cast<unsigned long long>(r.requests),
                static_cast<unsigned long long>(r.input_tokens),
                static_cast<unsigned long long>(r.output_tokens),
                static_cast<unsigned long long>(r.cache_read_tokens),
                static_cast<unsigned long long>(r.cache_write_tokens),
                metering::format_usd(r.total_cost, 6).c_str());
    sum.requests += r.requests;
    sum.total_cost += r.total_cost;
  }
  std::printf("total: %llu requests, $%s\n", static_cast<unsigned long long>(sum.requests),
              metering::format_usd(sum.total_cost, 6).c_str());
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
  auto reader = accounting::ledger_reader::open(window->ledger_path);
  if (!reader) {
    std::cerr << "report: " << reader.error().message << '\n';
    return 1;
  }
  auto rows = (*reader)->query_report(window->since_ms, window->until_ms, *keys);
  if (!rows) {
    std::cerr << "report: " << rows.error().message << '\n';
    return 1;
  }
  std::sort(rows->begin(), rows->end(),
            [](const auto& x, const auto& y) { return x.total_cost > y.total_cost; });
  print_table(*keys, *rows);
  return 0;
}

}  // namespace bedrock_meter::app
