// `bedrock-meter ledger export`: every ledger row in a window, as CSV or JSON lines, for
// chargeback.
#include <iostream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "accounting/ledger.hpp"
#include "app/commands.hpp"
#include "app/ledger_window.hpp"
#include "metering/money.hpp"

namespace bedrock_meter::app {

namespace {

using field = std::pair<std::string_view, std::string>;

/// A record's tags as one JSON object (one column in CSV, a string field in JSONL).
std::string tags_json(const std::map<std::string, std::string>& tags) {
  boost::json::object o;
  for (const auto& [k, v] : tags) o[k] = v;
  return boost::json::serialize(o);
}

/// The exported columns of a record, in order (docs/ledger.md, "Export").
std::vector<field> fields_of(const accounting::ledger_record& r) {
  const auto u = [](std::uint64_t v) { return std::to_string(v); };
  const auto usd = [](metering::money_total v) { return metering::format_usd(v, 12); };
  return {{"time_ms", std::to_string(r.time_ms)},
          {"request_id", r.request_id},
          {"team", r.team},
          {"app", r.app},
          {"principal", r.principal},
          {"operation", r.operation},
          {"model_requested", r.model_requested},
          {"model_base", r.model_base},
          {"region", r.region},
          {"scope", r.scope},
          {"service_tier", r.service_tier},
          {"latency_mode", r.latency_mode},
          {"status", std::to_string(r.status)},
          {"outcome", std::string(to_string(r.outcome))},
          {"input_tokens", u(r.input_tokens)},
          {"output_tokens", u(r.output_tokens)},
          {"cache_read_tokens", u(r.cache_read_tokens)},
          {"cache_write_tokens", u(r.cache_write_tokens)},
          {"cache_write_1h_tokens", u(r.cache_write_1h_tokens)},
          {"speech_input_tokens", u(r.speech_input_tokens)},
          {"speech_output_tokens", u(r.speech_output_tokens)},
          {"usage_source", std::string(to_string(r.usage_source))},
          {"cost_usd", usd(r.total_cost)},
          {"input_cost_usd", usd(r.input_cost)},
          {"output_cost_usd", usd(r.output_cost)},
          {"cache_read_cost_usd", usd(r.cache_read_cost)},
          {"cache_write_cost_usd", usd(r.cache_write_cost)},
          {"priced", r.priced ? "true" : "false"},
          {"pricing_note", r.unpriced_reason},
          {"rate_table_version", r.rate_table_version},
          {"rate_entry", r.rate_entry},
          {"duration_us", std::to_string(r.duration_us)},
          {"tags", tags_json(r.tags)}};
}

std::string csv_field(std::string_view v) {
  if (v.find_first_of(",\"\n\r") == std::string_view::npos) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string csv_line(const std::vector<field>& fields, bool names) {
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i)
    line.append(i ? "," : "")
        .append(names ? std::string(fields[i].first) : csv_field(fields[i].second));
  return line;
}

/// One JSON object of string fields; control characters are dropped.
std::string jsonl_line(const std::vector<field>& fields) {
  std::string line = "{";
  for (std::size_t i = 0; i < fields.size(); ++i) {
    line.append(i ? ",\"" : "\"").append(fields[i].first).append("\":\"");
    for (char c : fields[i].second) {
      if (c == '"' || c == '\\') line += '\\';
      if (static_cast<unsigned char>(c) >= 0x20) line += c;
    }
    line += '"';
  }
  return line + '}';
}

}  // namespace

int ledger_export_command(const args& a) {
  const auto window = ledger_window::from(a, "ledger export", "30d");
  if (!window) return 2;
  const auto format = a.get("format", "csv");
  if (format != "csv" && format != "jsonl") {
    std::cerr << "ledger export: --format takes csv or jsonl\n";
    return 2;
  }
  auto reader = window->open();
  if (!reader) {
    std::cerr << "ledger export: " << reader.error().message << '\n';
    return 1;
  }
  auto recs = (*reader)->records(window->since_ms, window->until_ms);
  if (!recs) {
    std::cerr << "ledger export: " << recs.error().message << '\n';
    return 1;
  }
  bool header = format == "csv";
  for (const auto& r : *recs) {
    const auto fields = fields_of(r);
    if (header) std::cout << csv_line(fields, true) << '\n';
    header = false;
    std::cout << (format == "csv" ? csv_line(fields, false) : jsonl_line(fields)) << '\n';
  }
  return 0;
}

}  // namespace bedrock_meter::app
