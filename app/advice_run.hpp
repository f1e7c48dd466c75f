#pragma once
// Runs the advisor (advice/) over the ledger: the one place that turns ledger rows into the
// advisor's rows, shared by `bedrock-meter advise`, GET /api/advice and the background refresh
// behind the savings gauges.
#include <cstdint>
#include <string>
#include <vector>

#include <boost/system/result.hpp>

#include "accounting/ledger.hpp"
#include "advice/advice.hpp"
#include "config/config.hpp"

namespace bedrock_meter::app {

/// What to analyse: a window and optional filters (empty: everything).
struct advice_query {
  std::int64_t since_ms = 0;
  std::int64_t until_ms = 0;
  std::string team;
  std::string app;
  std::string model;
  std::vector<std::string> reprice_as;
  bool net = false;  ///< amounts after the commitment discounts (advice::to_net)
};

/// Streams the matching rows of `reader` through the advisor. The rows are read in time order
/// and never held (memory is the advisor's aggregates). With `q.net`, the report is turned to
/// net prices under `commitments` (the spend summed per row by its day). The error is the
/// ledger's message.
boost::system::result<advice::report, std::string> run_advice(
    accounting::ledger_reader& reader, const metering::rate_table& rates,
    const std::vector<metering::model_mapping>& mappings,
    const std::vector<config::commitment_config>& commitments, const advice_query& q);

/// The advisor's view of one ledger row (the views stay those of `row`).
advice::request_row to_advice_row(const accounting::scan_row& row);

}  // namespace bedrock_meter::app
