#include "app/admin_routes.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "accounting/budgets.hpp"
#include "metering/money.hpp"

namespace bedrock_meter::app {

namespace {

metering::instant now() {
  return std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now());
}

/// Budgets as the admin thread sees them: its own connection to the shared store (Redis clients
/// are per thread), and the gauges refreshed at each scrape so period ends and shared spend are
/// live.
class budget_view {
 public:
  explicit budget_view(proxy::shared_state& st) : st_(st) {}

  std::vector<accounting::budget_status> status(metering::instant at) {
    const auto snap = st_.snapshot();
    return snap->budgets->status(at, store_.get(snap->cfg->budgets));
  }

  void export_gauges(telemetry::metrics& m, metering::instant at) {
    std::vector<std::string> names;
    for (const auto& b : status(at)) {
      m.set_budget(b.name, metering::to_usd_double(b.limit), metering::to_usd_double(b.spent),
                   static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                           b.window.end.time_since_epoch())
                                           .count()));
      m.set_budget_warnings(b.name, b.warning_percents);
      names.push_back(b.name);
    }
    for (const auto& old : exported_)  // budgets a reload removed
      if (std::find(names.begin(), names.end(), old) == names.end()) m.remove_budget(old);
    exported_ = std::move(names);
  }

 private:
  proxy::shared_state& st_;
  accounting::budget_store_handle store_;
  std::vector<std::string> exported_;
};

admin::readiness readiness_of(proxy::shared_state& st) {
  admin::readiness r;
  if (!st.rates().load()) r.reasons.emplace_back("no rate table loaded (pricing.rate_table)");
  if (st.upstream_bearer_token().empty() &&
      (st.credentials() == nullptr || !st.credentials()->load()))
    r.reasons.emplace_back("no upstream credentials");
  if (st.stopping.load()) r.reasons.emplace_back("shutting down");
  return r;
}

}  // namespace

void add_admin_routes(admin::server& server, proxy::shared_state& state, telemetry::metrics& m,
                      std::function<admin::reload_result()> reload) {
  auto budgets = std::make_shared<budget_view>(state);
  server.route("GET", "/metrics", [&state, &m, budgets](const admin::request&) {
    budgets->export_gauges(m, now());
    const auto table = state.rates().load();
    admin::response r;
    r.content_type = telemetry::metrics::content_type;
    r.body = m.serialize(telemetry::scrape_inputs_from(state.counters, state.sinks.ledger,
                                                       table ? table->version : std::string()));
    return r;
  });
  server.route("GET", "/api/budgets", [budgets](const admin::request&) {
    const auto at = now();
    return admin::json(200, accounting::budgets_json(budgets->status(at), at));
  });
  server.route("GET", "/readyz",
               [&state](const admin::request&) { return to_response(readiness_of(state)); });
  server.route("POST", "/-/reload", [reload = std::move(reload)](const admin::request&) {
    return to_response(reload());
  });
}

}  // namespace bedrock_meter::app
