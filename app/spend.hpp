#pragma once
// Spend grouped by team, app, model or day, list and net of the commitment discounts: what
// `bedrock-meter report` prints and the console's GET /api/spend answers, computed one way.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "accounting/ledger.hpp"
#include "config/config.hpp"
#include "metering/money.hpp"

namespace bedrock_meter::app {

/// A report row and its spend after the commitment discounts (equal to the list spend when no
/// commitment covers it).
struct spend_row {
  accounting::report_row row;
  metering::money_total net = 0;
};

/// A key the rows must have, e.g. {team, "search"}.
using spend_match = std::pair<accounting::report_key, std::string>;

/// The rows with since_ms <= time_ms < until_ms grouped by `keys`, most expensive first. The
/// rows must match every `only` (the query groups by those keys too and keeps the matching
/// groups, so the ledger is read once). With `commitments`, the query also groups by day and
/// base model (a discount depends on both) and folds them back; without, `net` is the list.
accounting::ledger_result<std::vector<spend_row>> spend_by(
    accounting::ledger_reader& reader, std::int64_t since_ms, std::int64_t until_ms,
    const std::vector<accounting::report_key>& keys, const std::vector<spend_match>& only,
    const std::vector<config::commitment_config>* commitments);

}  // namespace bedrock_meter::app
