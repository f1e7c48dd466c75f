// The advisor's report at net prices (advice.hpp, `to_net`).
#include <algorithm>

#include "advice/advice.hpp"

namespace bedrock_meter::advice {

void to_net(report& r, money_total net_spend,
            const std::function<std::int64_t(std::string_view model)>& discount_ppm) {
  using metering::net_of;
  r.basis = "net";
  r.spend = net_spend;
  for (auto& a : r.buying_mode) {
    const auto d = discount_ppm(a.model);
    a.on_demand = net_of(a.on_demand, d);
    a.on_demand_monthly = net_of(a.on_demand_monthly, d);
    for (auto& o : a.options) {
      if (o.monthly) o.monthly = net_of(*o.monthly, d);
      if (o.spill) o.spill = net_of(*o.spill, d);
    }
  }
  for (auto& u : r.provisioned) {
    const auto d = discount_ppm(u.model);
    u.committed = net_of(u.committed, d);
    u.on_demand_equivalent = net_of(u.on_demand_equivalent, d);
  }
  for (auto& l : r.levers) {
    const auto d = discount_ppm(l.model);
    l.savings = net_of(l.savings, d);
    l.monthly_savings = net_of(l.monthly_savings, d);
  }
  std::stable_sort(r.levers.begin(), r.levers.end(),
                   [](const lever& a, const lever& b) { return a.savings > b.savings; });
  r.notes.push_back(
      "Net basis: amounts are after the configured commitment discounts (the discount in force "
      "at the window's end per model; Marketplace-billed models only where the commitment "
      "discounts them). Lever evidence stays at list prices.");
}

}  // namespace bedrock_meter::advice
