#pragma once
/// Every price that differs between two rate tables (`bedrock-meter rates diff OLD NEW`): the
/// check to run before a new table (an import from the Price List, an edit) goes live. Rows are
/// matched by what selects them (model, scope, tier, latency, batch, dates; capacity rows by
/// model) and compared region by region as the pricer resolves them: a row naming a region
/// before a row listing "*". So a table with `regions: ["*"]` and one with `[us-east-1]` are
/// compared in us-east-1, and "*" is compared once for every region neither names. Pure code.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "metering/rate_table.hpp"

namespace bedrock_meter::billing {

struct price_change {
  enum class kind : std::uint8_t { added, removed, changed };
  kind what = kind::changed;
  std::string row;    ///< "anthropic.claude-... us-east-1 scope=global batch" ("*": any region)
  std::string field;  ///< "input", "long_context.output", "model_units.1_month.hourly", ...
  std::optional<std::int64_t> before;  ///< micro-USD (per 1M tokens, or per hour); nullopt: none
  std::optional<std::int64_t> after;
};

std::vector<price_change> diff_rate_tables(const metering::rate_table& before,
                                           const metering::rate_table& after);

}  // namespace bedrock_meter::billing
