#include "app/spend.hpp"

#include <algorithm>
#include <map>

#include "app/args.hpp"

namespace bedrock_meter::app {

accounting::ledger_result<std::vector<spend_row>> spend_by(
    accounting::ledger_reader& reader, std::int64_t since_ms, std::int64_t until_ms,
    const std::vector<accounting::report_key>& keys, const std::vector<spend_match>& only,
    const std::vector<config::commitment_config>* commitments) {
  // Query keys: the asked ones, then the filtered ones, then (for the discount) day and model.
  auto fine = keys;
  for (const auto& [k, v] : only) fine.push_back(k);
  const bool net = commitments != nullptr && !commitments->empty();
  if (net) {
    fine.push_back(accounting::report_key::day);
    fine.push_back(accounting::report_key::model_base);
  }
  auto rows = reader.query_report(since_ms, until_ms, fine);
  if (!rows) return rows.error();
  std::map<std::vector<std::string>, spend_row> folded;
  for (auto& r : *rows) {
    bool wanted = true;
    for (std::size_t i = 0; i < only.size(); ++i)
      wanted = wanted && r.keys[keys.size() + i] == only[i].second;
    if (!wanted) continue;
    std::int64_t discount = 0;
    if (net) {
      const auto& model = r.keys.back();
      // The ledger's UTC day, always well formed; the epoch (outside every term) if not.
      const auto day = parse_day(r.keys[r.keys.size() - 2]).value_or(std::chrono::sys_days{});
      discount = config::discount_ppm_on(*commitments, model, day);
    }
    r.keys.resize(keys.size());
    auto& out = folded[r.keys];
    out.row.keys = r.keys;
    out.row += r;
    out.net += metering::net_of(r.total_cost, discount);
  }
  std::vector<spend_row> out;
  out.reserve(folded.size());
  for (auto& [k, v] : folded) out.push_back(std::move(v));
  std::stable_sort(out.begin(), out.end(), [](const spend_row& x, const spend_row& y) {
    return x.row.total_cost > y.row.total_cost;
  });
  return out;
}

}  // namespace bedrock_meter::app
