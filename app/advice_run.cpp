#include "app/advice_run.hpp"

namespace bedrock_meter::app {

namespace {

std::chrono::sys_days day_of(std::int64_t ms) {
  return std::chrono::floor<std::chrono::days>(
      std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds(ms)));
}

}  // namespace

advice::request_row to_advice_row(const accounting::scan_row& r) {
  advice::request_row a;
  a.time_ms = r.time_ms;
  a.team = r.team;
  a.app = r.app;
  a.operation = r.operation;
  a.model_requested = r.model_requested;
  a.model_base = r.model_base;
  a.region = r.region;
  a.scope = r.scope;
  a.service_tier = r.service_tier;
  a.latency_mode = r.latency_mode;
  a.outcome = r.outcome;
  a.batch = r.batch;
  a.streaming = r.operation == "ConverseStream" || r.operation == "InvokeModelWithResponseStream";
  a.status = r.status;
  a.input_tokens = r.input_tokens;
  a.output_tokens = r.output_tokens;
  a.cache_read_tokens = r.cache_read_tokens;
  a.cache_write_tokens = r.cache_write_tokens;
  a.cache_write_1h_tokens = r.cache_write_1h_tokens;
  a.total_cost = r.total_cost;
  a.priced = r.priced;
  a.bytes_in = r.bytes_in;
  a.has_traits = r.has_traits;
  a.max_tokens = r.max_tokens;
  a.stop_reason = r.stop_reason;
  a.tools = r.tools;
  a.structured_output = r.structured_output;
  a.system_prefix = {r.system_prefix.hash, r.system_prefix.bytes};
  a.conversation_prefix = {r.conversation_prefix.hash, r.conversation_prefix.bytes};
  a.full_prompt = {r.full_prompt.hash, r.full_prompt.bytes};
  return a;
}

boost::system::result<advice::report, std::string> run_advice(
    accounting::ledger_reader& reader, const metering::rate_table& rates,
    const std::vector<metering::model_mapping>& mappings,
    const std::vector<config::commitment_config>& commitments, const advice_query& q) {
  advice::options o;
  o.since_ms = q.since_ms;
  o.until_ms = q.until_ms;
  o.rates = &rates;
  o.mappings = &mappings;
  o.reprice_as = q.reprice_as;
  advice::analyzer analyzer(std::move(o));
  accounting::scan_filter f;
  f.from_ms = q.since_ms;
  f.to_ms = q.until_ms;
  f.team = q.team;
  f.app = q.app;
  f.model = q.model;
  metering::money_total net_spend = 0;
  auto scanned = reader.scan(f, [&](const accounting::scan_row& row) {
    analyzer.add(to_advice_row(row));
    if (q.net && row.total_cost != 0)
      net_spend += metering::net_of(
          row.total_cost,
          config::discount_ppm_on(commitments, row.model_base, day_of(row.time_ms)));
    return true;
  });
  if (!scanned) return scanned.error().message;
  auto report = analyzer.finish();
  if (q.net) {
    const auto last_day = day_of(q.until_ms - 1);
    advice::to_net(report, net_spend, [&](std::string_view model) {
      return config::discount_ppm_on(commitments, model, last_day);
    });
  }
  return report;
}

}  // namespace bedrock_meter::app
