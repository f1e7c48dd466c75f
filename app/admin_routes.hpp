#pragma once
// What the admin listener answers for the running proxy: /metrics, /readyz, /-/reload and
// /api/budgets (docs/operations.md). The routes run on the admin thread.
#include <functional>

#include "admin/server.hpp"
#include "proxy/state.hpp"
#include "telemetry/metrics.hpp"

namespace bedrock_meter::app {

/// Registers the proxy's admin routes. `state` and `m` must outlive the server.
void add_admin_routes(admin::server& server, proxy::shared_state& state, telemetry::metrics& m,
                      std::function<admin::reload_result()> reload);

}  // namespace bedrock_meter::app
