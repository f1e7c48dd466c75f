#include "app/advice_run.hpp"

namespace bedrock_meter::app {

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
    const std::vector<metering::model_mapping>& mappings, const advice_query& q) {
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
  auto scanned = reader.scan(f, [&](const accounting::scan_row& row) {
    analyzer.add(to_advice_row(row));
    return true;
  });
  if (!scanned) return scanned.error().message;
  return analyzer.finish();
}

}  // namespace bedrock_meter::app
