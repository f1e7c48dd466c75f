#include "app/admin_routes.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "accounting/budgets.hpp"
#include "app/args.hpp"
#include "app/console_api.hpp"
#include "console/assets.hpp"
#include "metering/money.hpp"
#include "metering/route.hpp"

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
    std::vector<std::string> blocking;
    for (const auto& b : status(at)) {
      if (b.action == metering::budget_action::block) blocking.push_back(b.name);
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
    const auto& up = st_.snapshot()->cfg->upstream;
    std::vector<std::string> regions{up.region};
    regions.insert(regions.end(), up.allowed_client_regions.begin(),
                   up.allowed_client_regions.end());
    m.declare_known_series(blocking, regions);
  }

 private:
  proxy::shared_state& st_;
  accounting::budget_store_handle store_;
  std::vector<std::string> exported_;
};

/// GET /api/advice: the background report when asked nothing, else an analysis of the query's
/// window and filters (`since`, `until`, `team`, `app`, `model`, `reprice_as`), on this thread.
admin::response advice_response(const advice_refresh& advice, std::string_view query) {
  if (query.empty()) {
    if (auto latest = advice.latest_json()) return admin::json(200, *latest);
  }
  advice_query q = advice.default_query();
  const auto param = [&](std::string_view n) { return query_param(query, n).value_or(""); };
  if (auto bad = read_window(query, q.since_ms, q.until_ms)) return std::move(*bad);
  q.team = param("team");
  q.app = param("app");
  q.model = param("model");
  const auto reprice = param("reprice_as");
  for (std::size_t pos = 0; pos < reprice.size();) {
    const auto comma = std::min(reprice.find(',', pos), reprice.size());
    if (comma > pos) q.reprice_as.push_back(reprice.substr(pos, comma - pos));
    pos = comma + 1;
  }
  const auto basis = param("basis");
  if (basis != "" && basis != "list" && basis != "net")
    return admin::json(400, R"({"message":"basis: use list or net"})");
  q.net = basis == "net";
  auto report = advice.analyse(q);
  if (!report) {
    boost::json::object o;
    o["message"] = report.error();
    return admin::json(503, boost::json::serialize(o));
  }
  return admin::json(200, advice::to_json(*report));
}

admin::readiness readiness_of(proxy::shared_state& st) {
  admin::readiness r;
  if (!st.rates().load()) r.reasons.emplace_back("no rate table loaded (pricing.rate_table)");
  if (st.upstream_bearer_token().empty() &&
      (st.credentials() == nullptr || !st.credentials()->load()))
    r.reasons.emplace_back("no upstream credentials");
  if (st.stopping.load()) r.reasons.emplace_back("shutting down");
  return r;
}

/// The spend console's files at /, open to all: they hold no data (every figure comes from the
/// /api/ routes, which need the token), and the page must load to ask for the token.
void add_console_routes(admin::server& server) {
  for (const auto& file : console::assets()) {
    server.route(
        "GET", std::string(file.path),
        [&file](const admin::request&) {
          admin::response r;
          r.content_type = file.content_type;
          r.body = file.body;
          r.headers = {{"Content-Security-Policy", std::string(console::content_security_policy)},
                       {"X-Content-Type-Options", "nosniff"},
                       {"Referrer-Policy", "no-referrer"},
                       {"Cache-Control", "no-cache"}};
          return r;
        },
        admin::access::open);
  }
}

}  // namespace

void add_admin_routes(admin::server& server, proxy::shared_state& state, telemetry::metrics& m,
                      const advice_refresh& advice, const fleet::shipper* shipper,
                      std::function<admin::reload_result()> reload) {
  auto budgets = std::make_shared<budget_view>(state);
  server.route("GET", "/metrics", [&state, &m, budgets, shipper](const admin::request&) {
    budgets->export_gauges(m, now());
    const auto table = state.rates().load();
    admin::response r;
    r.content_type = telemetry::metrics::content_type;
    auto in = telemetry::scrape_inputs_from(state.counters, state.sinks.ledger,
                                            table ? table->version : std::string());
    if (shipper != nullptr) {
      const auto s = shipper->stats();
      in.fleet = telemetry::scrape_inputs::fleet_snapshot{
          s.spool_rows, s.lag_seconds, s.shipped,
          s.failures,   s.connected,   state.snapshot()->cfg->ledger.postgres.spool_max_rows};
    }
    r.body = m.serialize(in);
    return r;
  });
  server.route("GET", "/api/budgets", [budgets](const admin::request&) {
    const auto at = now();
    return admin::json(200, accounting::budgets_json(budgets->status(at), at));
  });
  server.route("GET", "/api/advice",
               [&advice](const admin::request& r) { return advice_response(advice, r.query); });
  server.route("GET", "/api/rates", [&state](const admin::request& r) {
    const auto table = state.rates().load();
    return rates_response(table.get(), r.query);
  });
  server.route("GET", "/api/spend", [&state](const admin::request& r) {
    return spend_response(*state.snapshot()->cfg, r.query);
  });
  server.route("GET", "/api/requests", [&state](const admin::request& r) {
    return requests_response(*state.snapshot()->cfg, r.query);
  });
  server.route("GET", "/api/request", [&state](const admin::request& r) {
    return request_response(*state.snapshot()->cfg, r.query);
  });
  server.route("GET", "/api/quote", [&state](const admin::request& r) {
    const auto table = state.rates().load();
    const auto snap = state.snapshot();
    return quote_response(table.get(), snap->cfg->models.mappings, r.query);
  });
  add_console_routes(server);
  server.route("GET", "/readyz",
               [&state](const admin::request&) { return to_response(readiness_of(state)); });
  server.route("POST", "/-/reload", [reload = std::move(reload)](const admin::request&) {
    return to_response(reload());
  });
}

}  // namespace bedrock_meter::app
