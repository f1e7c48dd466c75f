#pragma once
// What the admin listener answers for the running proxy: /metrics, /readyz, /-/reload,
// /api/budgets, /api/advice, and the spend console's /api/rates and /api/quote
// (docs/operations.md). The routes run on the admin thread.
#include <functional>

#include "admin/server.hpp"
#include "app/advice_refresh.hpp"
#include "fleet/shipper.hpp"
#include "proxy/state.hpp"
#include "telemetry/metrics.hpp"

namespace bedrock_meter::app {

/// Registers the proxy's admin routes. `state`, `m` and `advice` must outlive the server.
/// `shipper`: the fleet ledger's (null with `ledger.store: sqlite`), for its spool metrics.
void add_admin_routes(admin::server& server, proxy::shared_state& state, telemetry::metrics& m,
                      const advice_refresh& advice, const fleet::shipper* shipper,
                      std::function<admin::reload_result()> reload);

}  // namespace bedrock_meter::app
