#pragma once
// The ledger side of commitments, shared by `bedrock-meter commitment` and the background run
// that exports the burn-down gauges (app/advice_refresh.cpp).
#include <chrono>
#include <vector>

#include "accounting/ledger.hpp"
#include "billing/commitment.hpp"
#include "telemetry/metrics.hpp"

namespace bedrock_meter::app {

/// The ledger's list-price spend per UTC day and base model over [from, to), in one grouped query.
accounting::ledger_result<std::vector<billing::day_model_spend>> spend_by_day(
    accounting::ledger_reader& reader, std::chrono::sys_days from, std::chrono::sys_days to);

/// The current contract year of every commitment whose term has begun by `today` (the last year
/// of an ended term stays until the commitment leaves the config).
accounting::ledger_result<std::vector<telemetry::metrics::commitment_gauges>> commitment_gauges(
    accounting::ledger_reader& reader, const std::vector<config::commitment_config>& commitments,
    std::chrono::sys_days today);

}  // namespace bedrock_meter::app
