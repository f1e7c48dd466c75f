#include "proxy/exchange.hpp"

#include <array>
#include <chrono>
#include <limits>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/json/parse.hpp>
#include <spdlog/spdlog.h>

#include "metering/money.hpp"
#include "metering/rate_table.hpp"
#include "metering/route.hpp"
#include "metering/usage.hpp"
#include "proxy/bedrock_error.hpp"
#include "proxy/budgets.hpp"
#include "proxy/headers.hpp"
#include "proxy/inline_io.hpp"
#include "proxy/ledger.hpp"
#include "proxy/server.hpp"

namespace bedrock_meter::proxy {

namespace http = beast::http;
using clock = std::chrono::steady_clock;

namespace {

/// Bytes read from upstream per step: one event-stream chunk usually fits, and the stack
/// buffer is the only copy between the two sockets.
constexpr std::size_t relay_chunk_bytes = 16 * 1024;
constexpr std::uint32_t max_upstream_header_bytes = 64 * 1024;

struct timing {
  clock::time_point start = clock::now();
  clock::time_point first_byte{};
  clock::time_point end{};
};

struct settle_info {
  std::string request_id;
  const identity* who = nullptr;
  /// Attribution: the identity's team/app, unless the model is an application inference
  /// profile mapped to a team/app of its own (models.mappings), which then wins.
  std::string_view team;
  std::string_view app;
  budget_engine* budgets = nullptr;  // set when the request was admitted against budgets
  budget_admission admission;
  const metering::route* route = nullptr;
  unsigned status = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  ledger_outcome outcome = ledger_outcome::ok;
  std::string_view region;
  metering::latency_mode latency = metering::latency_mode::standard;
  const metering::usage_observer* usage = nullptr;
  std::chrono::system_clock::time_point wall_start = std::chrono::system_clock::now();
  timing t;
};

void count_status(proxy_stats& s, unsigned status) {
  if (status >= 500) s.responses_5xx.fetch_add(1, std::memory_order_relaxed);
  else if (status >= 400) s.responses_4xx.fetch_add(1, std::memory_order_relaxed);
  else s.responses_2xx.fetch_add(1, std::memory_order_relaxed);
}

void json_escape_into(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char hex[] = "0123456789abcdef";
          out += "\\u00";
          out += hex[(c >> 4) & 0xf];
          out += hex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
}

void add_field(std::string& out, std::string_view key, std::string_view value) {
  out += ",\"";
  out += key;
  out += "\":\"";
  json_escape_into(out, value);
  out += '"';
}

void add_field(std::string& out, std::string_view key, std::uint64_t value) {
  out += ",\"";
  out += key;
  out += "\":";
  out += std::to_string(value);
}

/// Operations that are free (reads) or not billed by tokens at all.
bool free_operation(metering::operation op) noexcept {
  return op == metering::operation::count_tokens || op == metering::operation::get_async_invoke ||
         op == metering::operation::list_async_invokes;
}

/// What a request cost. Model operations are priced with the worker's current rate-table
/// snapshot; free reads price to zero; ApplyGuardrail (text units) and StartAsyncInvoke
/// (per-second / per-image outputs) are not billed by tokens and are recorded as unpriced with
/// that reason rather than as $0.
metering::priced price_request(const settle_info& s, const config::config& cfg,
                               const metering::rate_table* table) {
  metering::priced p;
  if (!s.route || !s.usage) {
    p.priced = true;  // refused before reaching Bedrock: nothing billed
    return p;
  }
  const auto op = s.route->op;
  if (free_operation(op)) {
    p.priced = true;
    p.model = metering::resolve_model(s.route->model_id, cfg.models.mappings);
    return p;
  }
  if (op == metering::operation::apply_guardrail || op == metering::operation::start_async_invoke) {
    p.note = "not billed by tokens (";
    p.note += metering::operation_name(op);
    p.note += ")";
    return p;
  }
  if (!table) {
    p.note = "no rate table configured (pricing.rate_table)";
    p.model = metering::resolve_model(s.route->model_id, cfg.models.mappings);
    return p;
  }
  metering::price_query q;
  q.model_id = s.route->model_id;
  q.region = s.region;
  q.tier = metering::parse_service_tier(s.usage->service_tier()).value_or(
      metering::service_tier::standard);
  q.latency = s.latency;
  q.at = s.wall_start;
  q.mappings = &cfg.models.mappings;
  metering::price(*table, s.usage->usage(), q, p);
  return p;
}

/// The bounded `model` label: a model the rate table knows, else "other" (DESIGN.md: a client
/// sending random model ids cannot grow the series count).
std::string model_label(const metering::priced& p, const metering::rate_table* table) {
  if (p.entry) return p.entry->model;
  if (table && !p.model.base_model.empty()) {
    for (const auto& candidate : metering::base_model_candidates(p.model.base_model))
      if (table->by_model.find(candidate) != table->by_model.end()) return candidate;
  }
  return "other";
}

metering::request_attribution attribution_of(const settle_info& s, std::string_view base_model) {
  metering::request_attribution who;
  who.team = s.team;
  who.app = s.app;
  who.identity = s.who ? std::string_view(s.who->principal) : std::string_view();
  who.model = base_model;
  return who;
}

metering::instant to_instant(std::chrono::system_clock::time_point t) {
  return std::chrono::time_point_cast<std::chrono::nanoseconds>(t);
}

/// Books the request's actual cost on its budgets (releasing what admission reserved) and logs
/// the warning thresholds it crossed.
void settle_budgets(worker& w, settle_info& s, const metering::priced& p,
                    const config::config& cfg) {
  const std::string base = p.entry ? p.entry->model : p.model.base_model;
  bool store_failed = false;
  const auto events = s.budgets->settle(
      s.admission, attribution_of(s, base), p.priced ? p.cost.total() : 0,
      to_instant(s.wall_start), to_instant(std::chrono::system_clock::now()),
      w.budget_store(cfg.budgets), &store_failed);
  if (store_failed) {
    w.state().stats.budget_store_settle_errors.fetch_add(1, std::memory_order_relaxed);
    w.state().log->warn("budget store unavailable at settlement; counted locally only");
  }
  for (const auto& e : events) {
    w.state().log->warn(
        "budget '{}' crossed {}% of its limit: ${} of ${} spent this period", e.budget, e.percent,
        metering::format_usd(e.spent, 2), metering::format_usd(e.limit, 2));
  }
}

/// Settles one request: price it, count it, write the ledger row and one access-log line. Only
/// labels, counts and ids are logged: never a header value, key or body.
void settle(worker& w, const inbound_request& req, settle_info& s, const config::config& cfg) {
  auto& state = w.state();
  auto& st = state.stats;
  s.t.end = clock::now();
  count_status(st, s.status);
  if (s.outcome == ledger_outcome::client_abort)
    st.client_aborts.fetch_add(1, std::memory_order_relaxed);
  if (s.usage && s.usage->decode_errors() > 0)
    st.stream_decode_errors.fetch_add(s.usage->decode_errors(), std::memory_order_relaxed);

  const auto table = w.rates();  // one rate-table snapshot for this request
  const metering::priced p = price_request(s, cfg, table.get());
  const metering::token_usage none{};
  const auto& u = s.usage ? s.usage->usage() : none;
  if (!p.priced) st.unpriced_requests.fetch_add(1, std::memory_order_relaxed);
  if (s.budgets != nullptr) settle_budgets(w, s, p, cfg);
  if (u.source == metering::usage_source::estimated)
    st.estimated_requests.fetch_add(1, std::memory_order_relaxed);

  using us = std::chrono::microseconds;
  const auto duration = std::chrono::duration_cast<us>(s.t.end - s.t.start).count();
  const std::int64_t first_byte =
      s.t.first_byte == clock::time_point{}
          ? -1
          : std::chrono::duration_cast<us>(s.t.first_byte - s.t.start).count();
  const std::string tier(s.usage ? s.usage->service_tier() : std::string_view{});
  const std::string label = model_label(p, table.get());
  const std::string_view operation =
      s.route ? metering::operation_name(s.route->op) : std::string_view("-");

  if (auto* rec = w.recorder()) {
    settled_request m;
    m.operation = operation;
    m.model_label = label;
    m.gen_ai_model = label;  // bounded, unlike the requested id
    m.region = s.region;
    m.tier = tier;
    m.team = s.team;
    m.app = s.app;
    m.status = s.status;
    m.usage_known = u.source != metering::usage_source::none;
    m.estimated = u.source == metering::usage_source::estimated;
    m.input_tokens = u.input;
    m.output_tokens = u.output;
    m.cache_read_tokens = u.cache_read;
    m.cache_write_tokens = u.cache_write;
    m.priced = p.priced;
    m.input_cost = p.cost.input;
    m.output_cost = p.cost.output;
    m.cache_read_cost = p.cost.cache_read;
    m.cache_write_cost = p.cost.cache_write;
    m.duration_s = static_cast<double>(duration) / 1e6;
    m.streaming = s.route && metering::is_streaming(s.route->op);
    if (m.streaming && first_byte >= 0) m.first_chunk_s = static_cast<double>(first_byte) / 1e6;
    if (s.outcome == ledger_outcome::upstream_error) m.error_type = "upstream_error";
    else if (s.outcome == ledger_outcome::upstream_cut) m.error_type = "upstream_cut";
    rec->record(m);
  }

  if (state.ledger_sink != nullptr) {
    ledger_record r;
    r.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    s.wall_start.time_since_epoch()).count();
    r.request_id = s.request_id;
    r.team = std::string(s.team);
    r.app = std::string(s.app);
    if (s.who) {
      r.principal = s.who->principal;
      r.tags = s.who->attributes.tags;
    }
    r.operation = std::string(operation);
    if (s.route) r.model_requested = s.route->model_id;
    r.model_base = p.entry ? p.entry->model : p.model.base_model;
    r.model_label = label;
    r.region = std::string(s.region);
    r.scope = std::string(metering::to_string(p.model.scope));
    r.service_tier = tier.empty() ? "default" : tier;
    r.latency_mode = std::string(metering::to_string(s.latency));
    r.status = s.status;
    r.outcome = s.outcome;
    r.input_tokens = u.input;
    r.output_tokens = u.output;
    r.cache_read_tokens = u.cache_read;
    r.cache_write_tokens = u.cache_write;
    r.cache_write_1h_tokens = u.cache_write_1h;
    r.usage_source = u.source;
    r.input_cost = p.cost.input;
    r.output_cost = p.cost.output;
    r.cache_read_cost = p.cost.cache_read;
    r.cache_write_cost = p.cost.cache_write;
    r.total_cost = p.cost.total();
    r.priced = p.priced;
    r.unpriced_reason = p.note;
    r.rate_table_version = table ? table->version : std::string();
    if (p.entry) r.rate_entry = p.entry->location;
    r.duration_us = duration;
    r.first_byte_us = first_byte;
    r.bytes_in = s.bytes_in;
    r.bytes_out = s.bytes_out;
    if (!state.ledger_sink->append(std::move(r)))
      st.ledger_append_failures.fetch_add(1, std::memory_order_relaxed);
  }

  if (!state.access) return;
  std::string line;
  line.reserve(640);
  line += "{\"request_id\":\"";
  line += s.request_id;
  line += '"';
  add_field(line, "conn", req.connection_id);
  add_field(line, "protocol", req.protocol);
  add_field(line, "remote", req.remote);
  add_field(line, "principal", s.who ? std::string_view(s.who->principal) : "-");
  add_field(line, "team", s.who ? s.team : "-");
  add_field(line, "app", s.who ? s.app : "-");
  add_field(line, "operation",
            s.route ? metering::operation_name(s.route->op) : std::string_view("-"));
  add_field(line, "model", s.route ? std::string_view(s.route->model_id) : "-");
  add_field(line, "region", s.region);
  add_field(line, "status", s.status);
  add_field(line, "outcome", to_string(s.outcome));
  add_field(line, "bytes_in", s.bytes_in);
  add_field(line, "bytes_out", s.bytes_out);
  add_field(line, "duration_us", static_cast<std::uint64_t>(duration));
  if (first_byte >= 0) add_field(line, "first_byte_us", static_cast<std::uint64_t>(first_byte));
  add_field(line, "input_tokens", u.input);
  add_field(line, "output_tokens", u.output);
  add_field(line, "cache_read_tokens", u.cache_read);
  add_field(line, "cache_write_tokens", u.cache_write);
  add_field(line, "usage_source", to_string(u.source));
  if (!tier.empty()) add_field(line, "service_tier", tier);
  if (s.latency != metering::latency_mode::standard)
    add_field(line, "latency", metering::to_string(s.latency));
  add_field(line, "priced", p.priced ? std::string_view("true") : std::string_view("false"));
  add_field(line, "cost_usd", metering::format_usd(p.cost.total(), 9));
  if (!p.note.empty()) add_field(line, "pricing_note", p.note);
  if (table) add_field(line, "rate_table_version", table->version);
  line += '}';
  state.access->info(line);
}

template <class Stream>
tcp_stream& lowest(Stream& s) {
  return beast::get_lowest_layer(s);
}

/// Remaining time before the exchange's overall deadline, capped by a per-step timeout.
std::chrono::milliseconds step(clock::time_point deadline, std::chrono::milliseconds cap) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
  return std::max(std::chrono::milliseconds(1), std::min(left, cap));
}

struct relay_result {
  upstream_failure failure = upstream_failure::none;
  error_code ec;
  bool reusable = false;     // upstream connection may go back to the pool
  bool wrote_request = false;
};

/// The upstream request, serialized once: HTTP/1.1 head and body. Small requests travel as one
/// buffer (one TLS record, one send); large bodies are written after the head without a copy.
struct upstream_request {
  std::string head;
  std::string body;
  static constexpr std::size_t coalesce_limit = 64 * 1024;

  upstream_request(std::string_view method, std::string_view target,
                   const sigv4::header_list& headers, std::string&& b)
      : body(std::move(b)) {
    std::size_t n = method.size() + target.size() + 64;
    for (const auto& [k, v] : headers) n += k.size() + v.size() + 4;
    if (body.size() <= coalesce_limit) n += body.size();
    head.reserve(n);
    head.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
    for (const auto& [k, v] : headers) head.append(k).append(": ").append(v).append("\r\n");
    // Beast's prepare_payload(): a length for any body, and for methods that carry one.
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")
      head.append("content-length: ").append(std::to_string(body.size())).append("\r\n");
    head.append("\r\n");
    if (body.size() <= coalesce_limit) {
      head.append(body);
      body.clear();
    }
  }
  std::array<net::const_buffer, 2> buffers() const noexcept {
    return {net::buffer(head), net::buffer(body)};
  }
};

/// Forwards one signed request on `stream` and streams the response to `out` (Beast relay():
/// read a piece, show it to the meter, write it, repeat; the loop is the back-pressure).
template <class Stream>
awaitable<relay_result> relay(Stream& stream, const upstream_request& ureq,
                              response_sink& out, metering::usage_observer& meter,
                              settle_info& s, exchange_result& result,
                              const config::config& cfg, clock::time_point deadline,
                              proxy_stats& stats) {
  relay_result r;
  auto& tcp = lowest(stream);

  tcp.expires_after(step(deadline, cfg.upstream.first_byte_timeout));
  if (const error_code wec = co_await write_all(stream, ureq.buffers())) {
    r.failure = wec == beast::error::timeout ? upstream_failure::timeout : upstream_failure::reset;
    r.ec = wec;
    co_return r;
  }
  r.wrote_request = true;

  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(max_upstream_header_bytes);
  parser.body_limit(boost::none);
  auto [hec, hn] = co_await http::async_read_header(stream, buf, parser, use_ec);
  if (hec) {
    r.failure = hec == beast::error::timeout ? upstream_failure::timeout
                : (hec == http::error::end_of_stream || hec == net::error::eof ||
                   hec == net::error::connection_reset)
                    ? upstream_failure::reset
                    : upstream_failure::protocol;
    r.ec = hec;
    co_return r;
  }
  s.t.first_byte = clock::now();

  auto& head = parser.get();
  s.status = head.result_int();
  sigv4::header_list headers;
  headers.reserve(16);
  for (const auto& f : head) {
    if (!forward_response_header(f.name_string())) continue;
    headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  }
  // Errors the proxy makes carry x-amzn-RequestId; upstream responses already do: keep theirs.
  for (const auto& [k, v] : headers)
    if (iequals(k, "x-amzn-requestid")) s.request_id = v;

  meter.on_head(s.status, [&head](std::string_view name) -> std::string_view {
    const auto it = head.find(name);
    return it == head.end() ? std::string_view{} : std::string_view(it->value());
  });

  std::optional<std::uint64_t> length;
  if (!parser.chunked() && parser.content_length()) length = *parser.content_length();
  const bool client_alive_at_start = true;
  bool client_alive = client_alive_at_start;
  if (auto ec = co_await out.write_head(s.status, headers, length); ec) {
    client_alive = false;
  } else {
    result.response_started = true;
  }

  std::array<char, relay_chunk_bytes> chunk;
  clock::time_point drain_deadline{};
  // After the client goes away mid-answer, keep reading the upstream (bounded in time and in how
  // many at once) until the usage arrives: Bedrock bills the whole generation either way.
  bool draining = false;
  struct drain_guard {
    proxy_stats& st;
    bool& on;
    ~drain_guard() {
      if (on) st.draining.fetch_sub(1, std::memory_order_relaxed);
    }
  } drain_release{stats, draining};
  auto start_drain = [&]() {
    const auto& m = cfg.metering;
    if (!m.drain_on_client_abort || meter.usage_seen()) return false;
    if (stats.draining.fetch_add(1, std::memory_order_relaxed) >=
        static_cast<std::int64_t>(m.max_concurrent_drains)) {
      stats.draining.fetch_sub(1, std::memory_order_relaxed);
      stats.drains_refused.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    stats.drains.fetch_add(1, std::memory_order_relaxed);
    draining = true;
    drain_deadline = clock::now() + m.drain_timeout;
    return true;
  };
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    error_code rec;
    if (!some_from_buffer(parser, buf, rec)) {
      tcp.expires_after(step(client_alive ? deadline : std::min(deadline, drain_deadline),
                             cfg.upstream.idle_timeout));
      auto [ec, n] = co_await http::async_read_some(stream, buf, parser, use_ec);
      rec = ec;
    }
    if (rec == http::error::need_buffer) rec = {};
    const std::size_t got = chunk.size() - parser.get().body().size;
    if (got > 0) {
      const std::string_view bytes(chunk.data(), got);
      meter.on_body(bytes);
      if (client_alive) {
        if (auto ec = co_await out.write_body(bytes); ec) {
          client_alive = false;
          if (!start_drain()) break;  // estimate from what was seen
        } else {
          s.bytes_out += got;
        }
      }
    }
    if (rec) {
      r.failure = rec == beast::error::timeout ? upstream_failure::timeout : upstream_failure::reset;
      r.ec = rec;
      break;
    }
    if (!client_alive && meter.usage_seen()) break;  // the exact count is in hand: stop draining
  }

  const bool complete = parser.is_done();
  meter.finish(complete && client_alive);
  if (client_alive) {
    if (auto ec = co_await out.finish(complete); ec) client_alive = false;
  }
  if (!client_alive) {
    s.outcome = ledger_outcome::client_abort;
    result.keep_alive = false;
  } else if (!complete) {
    s.outcome = ledger_outcome::upstream_cut;
    result.keep_alive = false;
  }
  r.reusable = complete && parser.keep_alive();
  // A drain that ran out of time is the client's doing, not an upstream failure.
  if (complete || !client_alive) r.failure = upstream_failure::none;
  co_return r;
}

/// The latency mode asked for: InvokeModel* send the `X-Amzn-Bedrock-PerformanceConfig-Latency`
/// header; Converse* put `performanceConfig.latency` in the JSON body. The body is parsed only
/// when the word "optimized" appears in it at all.
metering::latency_mode requested_latency(const inbound_request& req, metering::operation op) {
  if (iequals(req.header("x-amzn-bedrock-performanceconfig-latency"), "optimized"))
    return metering::latency_mode::optimized;
  if ((op == metering::operation::converse || op == metering::operation::converse_stream) &&
      req.body.find("\"optimized\"") != std::string::npos) {
    boost::system::error_code ec;
    const auto doc = boost::json::parse(req.body, ec);
    if (!ec && doc.is_object()) {
      if (const auto* pc = doc.as_object().if_contains("performanceConfig");
          pc && pc->is_object()) {
        if (const auto* l = pc->as_object().if_contains("latency");
            l && l->is_string() && l->as_string() == "optimized")
          return metering::latency_mode::optimized;
      }
    }
  }
  return metering::latency_mode::standard;
}

/// Answers with a Bedrock-shaped error and records why (a plain function, not a capturing
/// lambda coroutine: STYLE.md 8).
awaitable<void> refuse(response_sink& out, settle_info& s, exchange_result& result,
                       const bedrock_error& err, ledger_outcome outcome) {
  s.status = err.status;
  s.outcome = outcome;
  auto ec = co_await write_error(out, err, s.request_id);
  result.response_started = true;
  if (ec) result.keep_alive = false;
}

/// Reserves the request's worst-case cost on every block budget that counts it. Returns true
/// when the request was refused (the error is written).
awaitable<bool> admit_budgets(worker& w, const inbound_request& req, settle_info& s,
                              response_sink& out, exchange_result& result,
                              const metering::resolved_model& resolved, const metering::route& r,
                              const config::config& cfg, budget_engine& engine) {
  auto who = attribution_of(s, resolved.base_model);
  if (!engine.needs_admission(who)) co_return false;
  // Worst case: input estimated from the body size, output from max_tokens (or the model's
  // cap), priced exactly as the answer will be. Operations not billed by tokens reserve 0, so
  // an exhausted budget still refuses them.
  metering::pico_usd worst = 0;
  const auto table = w.rates();
  if (table && r.op != metering::operation::apply_guardrail &&
      r.op != metering::operation::start_async_invoke) {
    const auto& b = cfg.budgets;
    std::uint64_t cap = b.default_max_output_tokens;
    if (auto it = b.max_output_tokens.find(resolved.base_model); it != b.max_output_tokens.end())
      cap = it->second;
    metering::token_usage u;
    u.input = metering::estimate_input_tokens(req.body.size());
    u.output = metering::estimate_output_tokens(requested_max_tokens(req.body), cap);
    u.source = metering::usage_source::reported;
    metering::price_query q;
    q.model_id = r.model_id;
    q.region = s.region;
    q.latency = s.latency;
    q.at = s.wall_start;
    q.mappings = &cfg.models.mappings;
    const auto p = metering::price(*table, u, q);
    if (p.priced) worst = static_cast<metering::pico_usd>(
        std::min<metering::money_total>(p.cost.total(), std::numeric_limits<metering::pico_usd>::max()));
  }
  const auto now = to_instant(std::chrono::system_clock::now());
  s.admission = engine.admit(who, worst, now, w.budget_store(cfg.budgets),
                             std::chrono::duration_cast<std::chrono::seconds>(
                                 cfg.limits.exchange_timeout + cfg.metering.drain_timeout) +
                                 std::chrono::seconds(60));
  if (s.admission.store_failed) {
    auto& st = w.state().stats;
    (cfg.budgets.on_store_unavailable == config::budget_store_fallback::open
         ? st.budget_store_fail_open
         : st.budget_store_fail_closed)
        .fetch_add(1, std::memory_order_relaxed);
  }
  if (s.admission.store_failed)
    w.state().log->warn("budget store unavailable; fallback {} applied",
                        cfg.budgets.on_store_unavailable == config::budget_store_fallback::open
                            ? "open (admitted)"
                            : "closed (refused)");
  switch (s.admission.result) {
    case budget_admission::verdict::admitted: co_return false;
    case budget_admission::verdict::blocked:
      w.state().stats.budget_blocked.fetch_add(1, std::memory_order_relaxed);
      if (auto* rec = w.recorder()) rec->budget_blocked(s.admission.budget);
      co_await refuse(out, s, result, budget_exceeded(s.admission.message), ledger_outcome::refused);
      co_return true;
    case budget_admission::verdict::unavailable:
      co_await refuse(out, s, result, upstream_unavailable(s.admission.message),
                      ledger_outcome::refused);
      co_return true;
  }
  co_return false;
}

}  // namespace

std::string_view inbound_request::header(std::string_view lowercase_name) const noexcept {
  for (const auto& [k, v] : headers)
    if (k == lowercase_name) return v;
  return {};
}

awaitable<error_code> write_error(response_sink& out, const bedrock_error& err,
                                  std::string_view request_id) {
  const std::string body = error_body(err.message);
  sigv4::header_list headers{
      {"x-amzn-RequestId", std::string(request_id)},
      {"x-amzn-ErrorType", error_type_header(err.type)},
      {"Content-Type", "application/json"},
  };
  if (auto ec = co_await out.write_head(err.status, headers, body.size()); ec) co_return ec;
  if (auto ec = co_await out.write_body(body); ec) co_return ec;
  co_return co_await out.finish(true);
}

awaitable<exchange_result> run_exchange(worker& w, inbound_request& req, response_sink& out) {
  auto& state = w.state();
  auto& stats = state.stats;
  stats.requests.fetch_add(1, std::memory_order_relaxed);
  stats.inflight.fetch_add(1, std::memory_order_relaxed);
  struct inflight_guard {
    proxy_stats& s;
    ~inflight_guard() { s.inflight.fetch_sub(1, std::memory_order_relaxed); }
  } guard{stats};

  const auto snap = w.snapshot();  // one config snapshot (a copy) for the whole exchange
  const auto& cfg = *snap->cfg;
  exchange_result result;
  settle_info s;
  s.request_id = w.new_request_id();
  s.bytes_in = req.body.size();
  const auto deadline = s.t.start + cfg.limits.exchange_timeout;


  // Route: anything that is not a Bedrock Runtime operation is refused, never passed through
  // unmetered.
  auto parsed = metering::parse_route(req.method, req.target);
  if (!parsed) {
    stats.unknown_routes.fetch_add(1, std::memory_order_relaxed);
    if (parsed.error == metering::route_error::bad_encoding ||
        parsed.error == metering::route_error::empty_model_id)
      co_await refuse(out, s, result, validation_error("The model identifier in the request path is invalid."),
                      ledger_outcome::refused);
    else
      co_await refuse(out, s, result, unknown_operation(req.method, req.target), ledger_outcome::refused);
    settle(w, req, s, cfg);
    co_return result;
  }
  s.route = &parsed.value;
  s.latency = requested_latency(req, parsed.value.op);

  const std::string payload_hash = sigv4::sha256_hex(req.body);
  auto auth = snap->auth.authenticate(req.method, req.target, req.headers, payload_hash,
                                      std::chrono::system_clock::now());
  if (auth.error) {
    stats.auth_failures.fetch_add(1, std::memory_order_relaxed);
    co_await refuse(out, s, result, *auth.error, ledger_outcome::refused);
    settle(w, req, s, cfg);
    co_return result;
  }
  s.who = auth.who;
  s.team = auth.who->team;
  s.app = auth.who->app;
  if (parsed.value.op == metering::operation::invoke_model_with_bidirectional_stream) {
    // Bedrock serves this operation over HTTP/2 only; our upstream connections are HTTP/1.1.
    // Refuse clearly instead of forwarding a request Bedrock would reject (docs/http2.md).
    co_await refuse(out, s, result,
                    validation_error("InvokeModelWithBidirectionalStream is not supported through "
                                     "bedrock-meter yet: it needs HTTP/2 to Bedrock, and the "
                                     "proxy's upstream connections are HTTP/1.1."),
                    ledger_outcome::refused);
    settle(w, req, s, cfg);
    co_return result;
  }
  const upstream_target& target = snap->target_for(auth.signed_region);
  s.region = target.region;

  // Attribution, model allow-list and budget admission: all before anything reaches Bedrock.
  if (parsed.value.op != metering::operation::get_async_invoke &&
      parsed.value.op != metering::operation::list_async_invokes) {
    const bool need_model = !cfg.models.mappings.empty() ||
                            !auth.who->attributes.allowed_models.empty() || !snap->budgets->empty();
    metering::resolved_model resolved;
    if (need_model) resolved = metering::resolve_model(parsed.value.model_id, cfg.models.mappings);
    if (resolved.mapping != nullptr) {
      // An application inference profile carries its own attribution.
      if (!resolved.mapping->team.empty()) s.team = resolved.mapping->team;
      if (!resolved.mapping->app.empty()) s.app = resolved.mapping->app;
    }
    if (!model_allowed(auth.who->attributes.allowed_models, resolved.base_model,
                       parsed.value.model_id)) {
      stats.model_denied.fetch_add(1, std::memory_order_relaxed);
      co_await refuse(out, s, result,
                      access_denied("The identity '" + auth.who->principal +
                                    "' is not allowed to use the model '" +
                                    parsed.value.model_id + "'."),
                      ledger_outcome::refused);
      settle(w, req, s, cfg);
      co_return result;
    }
    if (!snap->budgets->empty()) {
      s.budgets = snap->budgets.get();
      if (!free_operation(parsed.value.op) && co_await admit_budgets(w, req, s, out, result,
                                                                     resolved, parsed.value, cfg,
                                                                     *snap->budgets)) {
        settle(w, req, s, cfg);
        co_return result;
      }
    }
  }

  // Build the upstream request: same method, target and body; hop-by-hop and the caller's
  // auth headers dropped; Host for the upstream; signed with the proxy's own credentials.
  sigv4::header_list fwd;
  fwd.reserve(req.headers.size() + 4);
  fwd.emplace_back("host", target.host_header);
  for (auto& [k, v] : req.headers) {
    if (!forward_request_header(k)) continue;
    fwd.emplace_back(k, v);
  }
  const auto& bearer = state.upstream_bearer_token();
  if (!bearer.empty()) {
    fwd.emplace_back("authorization", "Bearer " + bearer);
  } else {
    const auto creds = w.upstream_credentials();
    if (!creds) {
      co_await refuse(out, s, result, upstream_unavailable("The proxy has no upstream AWS credentials."),
                      ledger_outcome::upstream_error);
      settle(w, req, s, cfg);
      co_return result;
    }
    sigv4::signing_options opt;
    opt.region = target.region;
    opt.now = std::chrono::system_clock::now();
    sigv4::sign(req.method, req.target, fwd, payload_hash, *creds, opt);
  }

  const upstream_request ureq(req.method, req.target, fwd, std::move(req.body));

  metering::usage_observer meter(parsed.value.op, parsed.value.model_id);
  s.usage = &meter;

  // One retry, only when a pooled connection turns out dead before the request was written:
  // Bedrock never saw the request, so it cannot be billed twice.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto acq = co_await w.pool().acquire(target, step(deadline, cfg.upstream.connect_timeout));
    if (!acq.conn) {
      stats.upstream_errors[static_cast<int>(acq.failure)].fetch_add(1, std::memory_order_relaxed);
      state.log->warn("upstream {} failed for {}: {}", to_string(acq.failure), target.pool_key,
                      acq.ec.message());
      co_await refuse(out, s, result, upstream_unavailable("The proxy could not reach Bedrock (" +
                                           std::string(to_string(acq.failure)) + ")."),
                      ledger_outcome::upstream_error);
      break;
    }
    const bool reused = acq.conn->requests > 0;
    relay_result rr = acq.conn->tls()
                          ? co_await relay(acq.conn->ssl(), ureq, out, meter, s, result, cfg,
                                           deadline, stats)
                          : co_await relay(acq.conn->tcp(), ureq, out, meter, s, result, cfg,
                                           deadline, stats);
    if (rr.failure != upstream_failure::none && !result.response_started) {
      if (reused && !rr.wrote_request && attempt == 0) continue;
      stats.upstream_errors[static_cast<int>(rr.failure)].fetch_add(1, std::memory_order_relaxed);
      state.log->warn("upstream {} on {}: {}", to_string(rr.failure), target.pool_key,
                      rr.ec.message());
      co_await refuse(out, s, result, upstream_unavailable("Bedrock did not answer (" +
                                           std::string(to_string(rr.failure)) + ")."),
                      ledger_outcome::upstream_error);
      break;
    }
    if (rr.failure != upstream_failure::none) {
      stats.upstream_errors[static_cast<int>(rr.failure)].fetch_add(1, std::memory_order_relaxed);
    }
    if (rr.reusable) {
      ++acq.conn->requests;
      w.pool().release(std::move(acq.conn));
    }
    break;
  }
  settle(w, req, s, cfg);
  co_return result;
}

}  // namespace bedrock_meter::proxy
