#pragma once
// The spend console's JSON endpoints on the admin listener (docs/operations.md, "Spend console
// API"): what the browser pages read. They run on the admin thread, apart from the workers.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "admin/server.hpp"
#include "config/config.hpp"
#include "metering/rate_table.hpp"

namespace bedrock_meter::app {

/// The decoded value of `name` in a query string (`a=1&b=x%2Cy`), `+` as a space; nullopt when
/// absent or badly encoded.
std::optional<std::string> query_param(std::string_view query, std::string_view name);

/// The `since` and `until` of a query (`30m`, `24h`, `7d` or `YYYY-MM-DD`) over `from_ms` and
/// `to_ms`, which hold the defaults on entry. The 400 to answer when either is malformed or
/// since is not before until; nullopt when the window is good.
std::optional<admin::response> read_window(std::string_view query, std::int64_t& from_ms,
                                           std::int64_t& to_ms);

/// GET /api/rates?q=TEXT: the live table's version and source and its entries (prices per 1M
/// tokens as decimal strings), those whose model, region, tier or entry location contain TEXT
/// (case-insensitive) when given. 503 when no table is loaded.
admin::response rates_response(const metering::rate_table* table, std::string_view query);

/// GET /api/quote?model=&region=&input=&output=&cache_read=&cache_write=&cache_write_1h=
/// &tier=&latency=&at=: one request's cost from the live table, by the pricer the proxy meters
/// with (the same answer as `bedrock-meter price`). 400 on a malformed parameter.
admin::response quote_response(const metering::rate_table* table,
                               const std::vector<metering::model_mapping>& mappings,
                               std::string_view query);

/// GET /api/spend?since=30d&until=&by=team|app|model|day&team=&app=&model=: the ledger's spend
/// in the window (the fleet's with `ledger.store: postgres`), grouped by one key (none: the
/// total only), filtered to a team, app and base model when given; list and net of the
/// commitment discounts, exact to the micro-dollar. 400 on a malformed parameter, 503 when the
/// ledger cannot be read.
admin::response spend_response(const config::config& cfg, std::string_view query);

/// GET /api/requests?since=&until=&team=&app=&model=&outcome=&status=&min_cost=&max_cost=
/// &unpriced=1&order=time|cost&limit=50&cursor=: one page of ledger rows, newest (or costliest)
/// first, every field of each; `next_cursor` continues. `limit` at most 500.
admin::response requests_response(const config::config& cfg, std::string_view query);

/// GET /api/request?id=REQUEST_ID[&at=TIME_MS]: the row (rows, when a client reused the id) of
/// one request: within a day of `at` when given (the time index finds it at once), else over
/// the last 400 days. 404 when none.
admin::response request_response(const config::config& cfg, std::string_view query);

}  // namespace bedrock_meter::app
