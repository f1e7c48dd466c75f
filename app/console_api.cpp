#include "app/console_api.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <utility>

#include <boost/json.hpp>

#include "app/args.hpp"
#include "app/ledger_window.hpp"
#include "app/quote.hpp"
#include "app/spend.hpp"
#include "billing/price_list.hpp"
#include "metering/model_id.hpp"
#include "metering/money.hpp"
#include "metering/route.hpp"

namespace bedrock_meter::app {

namespace json = boost::json;

constexpr std::int64_t thirty_days = 30LL * 86'400'000;  // the console's default window

namespace {

admin::response error(unsigned status, std::string_view message) {
  return admin::json(status, json::serialize(json::object{{"message", message}}));
}

json::value rate(std::optional<metering::rate_micro_per_m> v) {
  return v ? json::value(billing::micro_usd_text(*v)) : json::value(nullptr);
}

json::object rates_json(const metering::token_rates& r) {
  return {
      {"input", billing::micro_usd_text(r.input)}, {"output", billing::micro_usd_text(r.output)},
      {"cache_read", rate(r.cache_read)},          {"cache_write", rate(r.cache_write_5m)},
      {"cache_write_1h", rate(r.cache_write_1h)},  {"speech_input", rate(r.speech_input)},
      {"speech_output", rate(r.speech_output)}};
}

json::value day_or_null(const std::optional<std::chrono::sys_days>& d) {
  return d ? json::value(format_day(*d)) : json::value(nullptr);
}

json::object entry_json(const metering::rate_entry& e) {
  json::object o{
      {"model", e.model},
      {"regions", json::array(e.regions.begin(), e.regions.end())},
      {"scope", e.scope ? json::value(metering::to_string(*e.scope)) : json::value(nullptr)},
      {"tier", metering::to_string(e.tier)},
      {"latency", metering::to_string(e.latency)},
      {"batch", e.batch},
      {"effective_from", day_or_null(e.effective_from)},
      {"effective_to", day_or_null(e.effective_to)}};
  for (auto& [k, v] : rates_json(e.rates)) o[k] = v;
  if (e.long_context_threshold) {
    o["long_context_threshold"] = *e.long_context_threshold;
    o["long_context"] = rates_json(e.long_context_rates);
  }
  o["entry"] = e.location;
  o["source"] = e.source;
  return o;
}

bool contains_folded(std::string_view hay, std::string_view needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) ==
                  std::tolower(static_cast<unsigned char>(b));
         }) != hay.end();
}

bool matches(const metering::rate_entry& e, std::string_view q) {
  if (q.empty()) return true;
  if (contains_folded(e.model, q) || contains_folded(e.location, q) ||
      contains_folded(metering::to_string(e.tier), q))
    return true;
  return std::any_of(e.regions.begin(), e.regions.end(),
                     [&](const std::string& r) { return contains_folded(r, q); });
}

std::string iso_time(std::int64_t ms) {
  const auto t = std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds(ms));
  const auto day = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::hh_mm_ss hms(std::chrono::floor<std::chrono::seconds>(t - day));
  char out[40];
  std::snprintf(out, sizeof out, "%sT%02d:%02d:%02dZ", format_day(day).c_str(),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return out;
}

json::object spend_json(const accounting::report_row& r, metering::money_total net) {
  const auto usd = [](metering::money_total v) { return metering::format_usd(v, 6); };
  return {{"requests", r.requests},
          {"input_tokens", r.input_tokens},
          {"output_tokens", r.output_tokens},
          {"cache_read_tokens", r.cache_read_tokens},
          {"cache_write_tokens", r.cache_write_tokens},
          {"cost_usd", usd(r.total_cost)},
          {"net_usd", usd(net)}};
}

/// Every field of a ledger row, typed; money as exact decimal strings (12 places).
json::object record_json(const accounting::ledger_record& r) {
  const auto usd = [](metering::pico_usd v) { return metering::format_usd(v, 12); };
  json::object tags;
  for (const auto& [k, v] : r.tags) tags[k] = v;
  json::object o{{"request_id", r.request_id},
                 {"time", iso_time(r.time_ms)},
                 {"time_ms", r.time_ms},
                 {"team", r.team},
                 {"app", r.app},
                 {"principal", r.principal},
                 {"tags", std::move(tags)},
                 {"operation", r.operation},
                 {"model_requested", r.model_requested},
                 {"model_base", r.model_base},
                 {"region", r.region},
                 {"scope", r.scope},
                 {"service_tier", r.service_tier},
                 {"latency_mode", r.latency_mode},
                 {"batch", r.batch},
                 {"status", r.status},
                 {"outcome", metering::to_string(r.outcome)},
                 {"input_tokens", r.input_tokens},
                 {"output_tokens", r.output_tokens},
                 {"cache_read_tokens", r.cache_read_tokens},
                 {"cache_write_tokens", r.cache_write_tokens},
                 {"cache_write_1h_tokens", r.cache_write_1h_tokens},
                 {"speech_input_tokens", r.speech_input_tokens},
                 {"speech_output_tokens", r.speech_output_tokens},
                 {"usage_source", metering::to_string(r.usage_source)},
                 {"input_cost_usd", usd(r.input_cost)},
                 {"output_cost_usd", usd(r.output_cost)},
                 {"cache_read_cost_usd", usd(r.cache_read_cost)},
                 {"cache_write_cost_usd", usd(r.cache_write_cost)},
                 {"cost_usd", usd(r.total_cost)},
                 {"priced", r.priced},
                 {"unpriced_reason", r.unpriced_reason},
                 {"rate_table_version", r.rate_table_version},
                 {"rate_entry", r.rate_entry},
                 {"duration_ms", static_cast<double>(r.duration_us) / 1000.0},
                 {"first_byte_ms",
                  r.first_byte_us < 0 ? json::value(nullptr)
                                      : json::value(static_cast<double>(r.first_byte_us) / 1000.0)},
                 {"bytes_in", r.bytes_in},
                 {"bytes_out", r.bytes_out},
                 {"stop_reason", r.stop_reason}};
  if (r.has_traits) {
    o["max_tokens"] =
        r.traits.max_tokens ? json::value(*r.traits.max_tokens) : json::value(nullptr);
    o["tools"] = r.traits.tools;
    o["structured_output"] = r.traits.structured_output;
  }
  return o;
}

/// A decimal USD amount ("0.25") as picodollars; nullopt when malformed.
std::optional<metering::pico_usd> parse_usd(std::string_view s) {
  if (s.empty() || s.size() > 30) return std::nullopt;
  std::string_view whole = s, frac;
  if (const auto dot = s.find('.'); dot != std::string_view::npos) {
    whole = s.substr(0, dot);
    frac = s.substr(dot + 1);
  }
  if (frac.size() > 12 || (whole.empty() && frac.empty())) return std::nullopt;
  const auto digits = [](std::string_view d) {
    return std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(whole) || !digits(frac) || whole.size() > 7) return std::nullopt;  // < $10M
  metering::pico_usd v = 0;
  for (const char c : whole) v = v * 10 + (c - '0');
  for (std::size_t i = 0; i < 12; ++i) v = v * 10 + (i < frac.size() ? frac[i] - '0' : 0);
  return v;
}

}  // namespace

std::optional<admin::response> read_window(std::string_view query, std::int64_t& from_ms,
                                           std::int64_t& to_ms) {
  const auto now = now_ms();
  for (const auto& [name, out] : {std::pair{"since", &from_ms}, {"until", &to_ms}}) {
    const auto v = query_param(query, name).value_or("");
    if (v.empty()) continue;
    const auto ms = parse_when(v, now);
    if (!ms) return error(400, std::string(name) + ": use 30m, 24h, 7d or YYYY-MM-DD");
    *out = *ms;
  }
  if (from_ms >= to_ms) return error(400, "since must be before until");
  return std::nullopt;
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  for (std::size_t pos = 0; pos <= query.size();) {
    const auto amp = std::min(query.find('&', pos), query.size());
    const auto pair = query.substr(pos, amp - pos);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      std::string raw(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
      std::replace(raw.begin(), raw.end(), '+', ' ');
      return metering::percent_decode(raw);
    }
    pos = amp + 1;
  }
  return std::nullopt;
}

admin::response rates_response(const metering::rate_table* table, std::string_view query) {
  if (table == nullptr) return error(503, "no rate table loaded (pricing.rate_table)");
  const auto q = query_param(query, "q").value_or("");
  if (q.size() > 200) return error(400, "q: at most 200 characters");
  json::array entries;
  for (const auto& e : table->entries)
    if (matches(e, q)) entries.push_back(entry_json(e));
  json::object doc{{"version", table->version},
                   {"source", table->source_path},
                   {"total_entries", table->entries.size()},
                   {"entries", std::move(entries)}};
  return admin::json(200, json::serialize(doc));
}

admin::response quote_response(const metering::rate_table* table,
                               const std::vector<metering::model_mapping>& mappings,
                               std::string_view query) {
  if (table == nullptr) return error(503, "no rate table loaded (pricing.rate_table)");
  const auto in =
      read_quote([&](std::string_view n) { return query_param(query, n).value_or(std::string()); });
  if (!in) return error(400, in.error());
  const auto q = in->query(&mappings);
  const auto p = metering::price(*table, in->usage, q);
  const auto usd = [](metering::pico_usd v) { return metering::format_usd(v, 12); };
  json::object doc{{"model", in->model},
                   {"region", in->region},
                   {"kind", metering::to_string(p.model.kind)},
                   {"scope", metering::to_string(p.model.scope)},
                   {"tier", metering::to_string(q.tier)},
                   {"latency", metering::to_string(q.latency)},
                   {"rate_table_version", table->version},
                   {"priced", p.priced}};
  if (p.priced) {
    doc["input_usd"] = usd(p.cost.input);
    doc["output_usd"] = usd(p.cost.output);
    doc["cache_read_usd"] = usd(p.cost.cache_read);
    doc["cache_write_usd"] = usd(p.cost.cache_write);
    doc["total_usd"] = usd(p.cost.total());
    doc["long_context"] = p.long_context;
    doc["entry"] = p.entry ? json::value(p.entry->location) : json::value(nullptr);
  } else {
    doc["total_usd"] = nullptr;
  }
  doc["note"] = p.note;
  return admin::json(200, json::serialize(doc));
}

}  // namespace bedrock_meter::app

namespace bedrock_meter::app {

admin::response spend_response(const config::config& cfg, std::string_view query) {
  const auto param = [&](std::string_view n) { return query_param(query, n).value_or(""); };
  std::int64_t since = now_ms() - thirty_days, until = now_ms() + 1;
  if (auto bad = read_window(query, since, until)) return std::move(*bad);
  std::vector<accounting::report_key> keys;
  const auto by = param("by");
  if (!by.empty()) {
    const auto k = accounting::parse_report_key(by == "model" ? "model_base" : by);
    if (!k) return error(400, "by: team, app, model or day");
    keys.push_back(*k);
  }
  std::vector<spend_match> only;
  for (const auto& [name, key] : {std::pair{"team", accounting::report_key::team},
                                  {"app", accounting::report_key::app},
                                  {"model", accounting::report_key::model_base}}) {
    if (auto v = param(name); !v.empty()) only.emplace_back(key, std::move(v));
  }
  auto reader = open_ledger_reader(cfg);
  if (!reader) return error(503, reader.error().message);
  auto rows = spend_by(**reader, since, until, keys, only, &cfg.commitments);
  if (!rows) return error(503, rows.error().message);
  accounting::report_row total;
  metering::money_total total_net = 0;
  json::array out;
  for (const auto& [r, net] : *rows) {
    total.requests += r.requests;
    total.input_tokens += r.input_tokens;
    total.output_tokens += r.output_tokens;
    total.cache_read_tokens += r.cache_read_tokens;
    total.cache_write_tokens += r.cache_write_tokens;
    total.total_cost += r.total_cost;
    total_net += net;
    if (keys.empty()) continue;
    auto o = spend_json(r, net);
    o.emplace("key", r.keys.front());
    out.push_back(std::move(o));
  }
  json::object doc{{"since", iso_time(since)},
                   {"until", iso_time(until)},
                   {"by", by.empty() ? json::value(nullptr) : json::value(by)},
                   {"total", spend_json(total, total_net)},
                   {"rows", std::move(out)}};
  // Rows before a prune are gone from `requests`: say the window is incomplete.
  if (auto pruned = (*reader)->pruned_before_ms(); pruned && *pruned && **pruned > since)
    doc["pruned_before"] = iso_time(**pruned);
  return admin::json(200, json::serialize(doc));
}

}  // namespace bedrock_meter::app

namespace bedrock_meter::app {

admin::response requests_response(const config::config& cfg, std::string_view query) {
  const auto param = [&](std::string_view n) { return query_param(query, n).value_or(""); };
  accounting::request_filter f;
  f.from_ms = now_ms() - thirty_days;
  f.to_ms = now_ms() + 1;
  if (auto bad = read_window(query, f.from_ms, f.to_ms)) return std::move(*bad);
  f.team = param("team");
  f.app = param("app");
  f.model = param("model");
  f.outcome = param("outcome");
  if (const auto v = param("status"); !v.empty()) {
    const auto n = parse_count(v);
    if (!n || *n < 100 || *n > 599) return error(400, "status: an HTTP status, 100-599");
    f.status = static_cast<unsigned>(*n);
  }
  for (const auto& [name, out] : {std::pair{"min_cost", &f.min_cost}, {"max_cost", &f.max_cost}}) {
    if (const auto v = param(name); !v.empty()) {
      *out = parse_usd(v);
      if (!*out) return error(400, std::string(name) + ": a USD amount such as 0.25");
    }
  }
  const auto unpriced = param("unpriced");
  if (unpriced != "" && unpriced != "0" && unpriced != "1")
    return error(400, "unpriced: 1 (only unpriced requests) or 0");
  f.unpriced_only = unpriced == "1";
  const auto order = param("order");
  if (order != "" && order != "time" && order != "cost") return error(400, "order: time or cost");
  f.by = order == "cost" ? accounting::request_filter::order::costliest
                         : accounting::request_filter::order::newest;
  if (const auto v = param("limit"); !v.empty()) {
    const auto n = parse_count(v);
    if (!n || *n < 1 || *n > 500) return error(400, "limit: 1 to 500");
    f.limit = static_cast<std::size_t>(*n);
  }
  f.cursor = param("cursor");
  auto reader = open_ledger_reader(cfg);
  if (!reader) return error(503, reader.error().message);
  auto page = (*reader)->find_requests(f);
  if (!page) {
    return error(page.error().what == accounting::ledger_error::kind::bad_query ? 400 : 503,
                 page.error().message);
  }
  json::array rows;
  for (const auto& r : page->rows) rows.push_back(record_json(r));
  json::object doc{{"rows", std::move(rows)},
                   {"next_cursor", page->next_cursor.empty() ? json::value(nullptr)
                                                             : json::value(page->next_cursor)}};
  return admin::json(200, json::serialize(doc));
}

admin::response request_response(const config::config& cfg, std::string_view query) {
  const auto id = query_param(query, "id").value_or("");
  if (id.empty()) return error(400, "id: required");
  if (id.size() > 256) return error(400, "id: at most 256 characters");
  constexpr std::int64_t day = 86'400'000;
  const auto now = now_ms();
  std::int64_t from = now - 400 * day, to = now + 1;
  if (const auto at = query_param(query, "at").value_or(""); !at.empty()) {
    const auto ms = parse_count(at);
    if (!ms || *ms > static_cast<std::uint64_t>(INT64_MAX) - day)
      return error(400, "at: the request's time in unix ms");
    from = static_cast<std::int64_t>(*ms) - day;
    to = static_cast<std::int64_t>(*ms) + day;
  }
  auto reader = open_ledger_reader(cfg);
  if (!reader) return error(503, reader.error().message);
  accounting::request_filter f;
  f.from_ms = from;
  f.to_ms = to;
  f.request_id = id;
  f.limit = 10;  // one row; a few when a client reused an id
  auto page = (*reader)->find_requests(f);
  if (!page) return error(503, page.error().message);
  json::array rows;
  for (const auto& r : page->rows) rows.push_back(record_json(r));
  if (rows.empty()) return error(404, "no request " + id + " in the ledger");
  return admin::json(200, json::serialize(json::object{{"rows", std::move(rows)}}));
}

}  // namespace bedrock_meter::app
