#pragma once
/// The ledger against the AWS bill (`bedrock-meter reconcile`): tokens first, then dollars, per
/// (day, region, model, scope, tier, batch, latency); what only one side has; and unit prices on
/// the bill that differ from the rate table (a stale table). Pure code.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "billing/cur.hpp"
#include "metering/rate_table.hpp"

namespace bedrock_meter::billing {

enum class match_status : std::uint8_t {
  match,        ///< tokens of every class and dollars within the tolerance
  differs,      ///< on both sides, beyond the tolerance
  ledger_only,  ///< the bill has nothing for it (yet: CUR lags a day or more)
  bill_only,    ///< billed but never through the proxy: traffic that bypasses it
};
std::string_view to_string(match_status s) noexcept;

struct reconcile_row {
  usage_key key;
  usage_totals ledger, bill;
  match_status status = match_status::match;
};

struct stale_rate {
  billed_rate billed;
  std::optional<std::int64_t> table_micro_per_m;  ///< nullopt: the table has no price for it
  std::string table_entry;                        ///< "file:line" of the entry used
};

struct reconcile_report {
  std::vector<reconcile_row> rows;  ///< every key of either side, in key order
  usage_totals ledger_total, bill_total;
  std::vector<stale_rate> stale;
  bool within_tolerance = true;  ///< every row matches
};

/// `tolerance` is relative (0.01 = 1%): a value matches when |a - b| <= tolerance x max(a, b).
reconcile_report reconcile(const std::map<usage_key, usage_totals>& ledger, const cur_result& bill,
                           const metering::rate_table* table, double tolerance);

}  // namespace bedrock_meter::billing
