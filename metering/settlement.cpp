#include "metering/settlement.hpp"

#include <array>

namespace bedrock_meter::metering {

namespace {

constexpr std::array<std::pair<request_outcome, std::string_view>, 7> outcome_names = {{
    {request_outcome::ok, "ok"},
    {request_outcome::refused, "refused"},
    {request_outcome::upstream_error, "upstream_error"},
    {request_outcome::upstream_cut, "upstream_cut"},
    {request_outcome::client_abort, "client_abort"},
    {request_outcome::stream_error, "stream_error"},
    {request_outcome::interrupted, "interrupted"},
}};

/// Operations that are free (reads) or not billed by tokens at all.
bool free_operation(operation op) noexcept {
  return op == operation::count_tokens || op == operation::get_async_invoke ||
         op == operation::list_async_invokes;
}

/// What a request cost (see `settle`).
priced price_request(const exchange_facts& f, const rate_table* table,
                     const std::vector<model_mapping>& mappings) {
  priced p;
  if (f.route == nullptr || !f.usage) {
    p.priced = true;  // refused before reaching Bedrock: nothing billed
    return p;
  }
  const auto op = f.route->op;
  if (free_operation(op)) {
    p.priced = true;
    p.model = resolve_model(f.route->model_id, mappings);
    return p;
  }
  if (op == operation::apply_guardrail || op == operation::start_async_invoke) {
    p.note = "not billed by tokens (" + std::string(operation_name(op)) + ")";
    return p;
  }
  if (table == nullptr) {
    p.note = "no rate table configured (pricing.rate_table)";
    p.model = resolve_model(f.route->model_id, mappings);
    return p;
  }
  price_query q;
  q.model_id = f.route->model_id;
  q.region = f.region;
  q.tier = parse_service_tier(f.service_tier).value_or(service_tier::standard);
  q.latency = f.latency;
  q.at = f.arrived;
  q.mappings = &mappings;
  price(*table, *f.usage, q, p);
  return p;
}

void copy_usage(const token_usage& u, settlement& s) {
  s.input_tokens = u.input;
  s.output_tokens = u.output;
  s.cache_read_tokens = u.cache_read;
  s.cache_write_tokens = u.cache_write;
  s.cache_write_1h_tokens = u.cache_write_1h;
  s.speech_input_tokens = u.speech_input;
  s.speech_output_tokens = u.speech_output;
  s.usage_source = u.source;
}

void copy_price(const priced& p, const rate_table* table, settlement& s) {
  s.model_base = p.entry ? p.entry->model : p.model.base_model;
  s.model_label = model_label(p, table);
  s.scope = std::string(to_string(p.model.scope));
  s.input_cost = p.cost.input;
  s.output_cost = p.cost.output;
  s.cache_read_cost = p.cost.cache_read;
  s.cache_write_cost = p.cost.cache_write;
  s.total_cost = p.cost.total();
  s.priced = p.priced;
  s.unpriced_reason = p.note;
  if (table) s.rate_table_version = table->version;
  if (p.entry) s.rate_entry = p.entry->location;
}

}  // namespace

std::string_view to_string(request_outcome o) noexcept {
  for (const auto& [value, name] : outcome_names)
    if (value == o) return name;
  return "ok";
}

std::optional<request_outcome> parse_outcome(std::string_view s) noexcept {
  for (const auto& [value, name] : outcome_names)
    if (name == s) return value;
  return std::nullopt;
}

bool settlement::streaming() const noexcept {
  return operation == "ConverseStream" || operation == "InvokeModelWithResponseStream" ||
         operation == "InvokeModelWithBidirectionalStream";
}

std::string model_label(const priced& p, const rate_table* table) {
  if (p.entry) return p.entry->model;
  if (table && !p.model.base_model.empty()) {
    for (const auto& candidate : base_model_candidates(p.model.base_model))
      if (table->by_model.find(candidate) != table->by_model.end()) return candidate;
  }
  return "other";
}

settlement settle(const exchange_facts& f, const rate_table* table,
                  const std::vector<model_mapping>& mappings) {
  using std::chrono::duration_cast;
  settlement s;
  s.time_ms = duration_cast<std::chrono::milliseconds>(f.arrived.time_since_epoch()).count();
  s.request_id = f.request_id;
  s.team = f.team;
  s.app = f.app;
  s.principal = f.principal;
  if (f.tags) s.tags = *f.tags;
  s.operation = f.route ? operation_name(f.route->op) : std::string_view("-");
  if (f.route) s.model_requested = f.route->model_id;
  s.region = f.region;
  s.service_tier = f.service_tier.empty() ? std::string_view("default") : f.service_tier;
  s.latency_mode = to_string(f.latency);
  s.status = f.status;
  s.outcome = f.outcome;
  if (f.usage) copy_usage(*f.usage, s);
  copy_price(price_request(f, table, mappings), table, s);
  s.duration_us = f.duration.count();
  s.first_byte_us = f.first_byte ? f.first_byte->count() : -1;
  s.bytes_in = f.bytes_in;
  s.bytes_out = f.bytes_out;
  if (f.traits != nullptr) {
    s.has_traits = true;
    s.traits = *f.traits;
  }
  s.stop_reason = f.stop_reason;
  return s;
}

}  // namespace bedrock_meter::metering
