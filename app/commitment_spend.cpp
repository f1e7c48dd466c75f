#include "app/commitment_spend.hpp"

#include "app/args.hpp"

namespace bedrock_meter::app {

namespace {

std::int64_t ms_of(std::chrono::sys_days d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d.time_since_epoch()).count();
}

double seconds_of(std::chrono::sys_days d) { return static_cast<double>(ms_of(d)) / 1000.0; }

}  // namespace

accounting::ledger_result<std::vector<billing::day_model_spend>> spend_by_day(
    accounting::ledger_reader& reader, std::chrono::sys_days from, std::chrono::sys_days to) {
  auto rows = reader.query_report(
      ms_of(from), ms_of(to), {accounting::report_key::day, accounting::report_key::model_base});
  if (!rows) return rows.error();
  std::vector<billing::day_model_spend> out;
  out.reserve(rows->size());
  for (auto& r : *rows) {
    if (r.total_cost == 0) continue;
    const auto day = parse_day(r.keys[0]);  // the ledger's "YYYY-MM-DD"
    if (!day) continue;
    out.push_back({*day, std::move(r.keys[1]), r.total_cost});
  }
  return out;
}

accounting::ledger_result<std::vector<telemetry::metrics::commitment_gauges>> commitment_gauges(
    accounting::ledger_reader& reader, const std::vector<config::commitment_config>& commitments,
    std::chrono::sys_days today) {
  std::vector<telemetry::metrics::commitment_gauges> out;
  for (const auto& c : commitments) {
    const auto from = std::chrono::sys_days(c.start);
    if (from > today) continue;
    const auto to = std::min(std::chrono::sys_days(c.end), today + std::chrono::days(1));
    // Only the current (last begun) year is exported: read from its start.
    auto report = billing::evaluate_commitment(c, {}, today);
    if (report.years.empty()) continue;
    const auto year_start = report.years.back().start;
    auto spend = spend_by_day(reader, std::max(from, year_start), to);
    if (!spend) return spend.error();
    report = billing::evaluate_commitment(c, *spend, today);
    const auto& y = report.years.back();
    out.push_back({c.name, metering::to_usd_double(y.commitment),
                   metering::to_usd_double(y.counted_bedrock + y.counted_other),
                   metering::to_usd_double(y.forecast), seconds_of(y.end)});
  }
  return out;
}

}  // namespace bedrock_meter::app
