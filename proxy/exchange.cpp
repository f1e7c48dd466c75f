#include "proxy/exchange.hpp"

#include <limits>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>

#include "accounting/inflight_journal.hpp"
#include "accounting/ledger.hpp"
#include "aws/event_signing.hpp"
#include "metering/money.hpp"
#include "proxy/auth.hpp"
#include "proxy/forward.hpp"
#include "proxy/headers.hpp"
#include "telemetry/access_log.hpp"

namespace bedrock_meter::proxy {

using namespace io;
namespace http = beast::http;
using telemetry::bump;

std::string_view inbound_request::header(std::string_view lowercase_name) const noexcept {
  for (const auto& [k, v] : headers)
    if (k == lowercase_name) return v;
  return {};
}

awaitable<error_code> write_error(response_sink& out, const aws::bedrock_error& err,
                                  std::string_view request_id) {
  const std::string body = aws::error_body(err.message);
  aws::sigv4::header_list headers{
      {"x-amzn-RequestId", std::string(request_id)},
      {"x-amzn-ErrorType", aws::error_type_header(err.type)},
      {"Content-Type", "application/json"},
  };
  if (auto ec = co_await out.write_head(err.status, headers, body.size()); ec) co_return ec;
  if (auto ec = co_await out.write_body(body); ec) co_return ec;
  co_return co_await out.finish(true);
}

awaitable<exchange_result> run_exchange(worker& w, inbound_request& req, response_sink& out) {
  return run_exchange_with(w, req, out, w.pool());
}

// --- the context -------------------------------------------------------------------------------

exchange_context::exchange_context(worker& wk, inbound_request& r)
    : w(wk),
      req(r),
      snap(wk.snapshot()),
      cfg(*snap->cfg),
      request_id(wk.new_request_id()),
      deadline(start + cfg.limits.exchange_timeout),
      bytes_in(r.body.size()) {
  w.counters().inflight.fetch_add(1, std::memory_order_relaxed);
}

exchange_context::~exchange_context() {
  w.counters().inflight.fetch_sub(1, std::memory_order_relaxed);
}

/// The longest model id (or ARN) Bedrock accepts: `modelId` is 1-2048 characters in the
/// Runtime's service model.
constexpr std::size_t max_model_id_bytes = 2048;

// --- the stages --------------------------------------------------------------------------------

stage_result route(exchange_context& ctx) {
  auto parsed = metering::parse_route(ctx.req.method, ctx.req.target);
  if (!parsed) {
    bump(ctx.w.counters().unknown_routes);
    if (parsed.error == metering::route_error::bad_encoding ||
        parsed.error == metering::route_error::empty_model_id)
      return refusal{aws::validation_error("The model identifier in the request path is invalid.")};
    return refusal{aws::unknown_operation(ctx.req.method, ctx.req.target)};
  }
  ctx.route = std::move(parsed.value);
  if (ctx.route->model_id.size() > max_model_id_bytes) {
    // Bedrock's own limit (modelId: 1-2048 characters): refuse as it does, and keep only the
    // first 2,048 bytes (at a UTF-8 boundary) for the refusal's access-log line and ledger row.
    const auto length = ctx.route->model_id.size();
    auto keep = max_model_id_bytes;
    while (keep > 0 && (static_cast<unsigned char>(ctx.route->model_id[keep]) & 0xC0) == 0x80)
      --keep;
    ctx.route->model_id.resize(keep);
    bump(ctx.w.counters().unknown_routes);
    return refusal{aws::validation_error(
        "1 validation error detected: Value at 'modelId' failed to satisfy constraint: Member "
        "must have length less than or equal to 2048 (it has " +
        std::to_string(length) + ")")};
  }
  ctx.body.emplace(ctx.route->op, ctx.req.body);
  ctx.latency = ctx.body->latency(ctx.req.header("x-amzn-bedrock-performanceconfig-latency"));
  return std::nullopt;
}

stage_result authenticate(exchange_context& ctx) {
  // A streamed input event stream is signed as a whole with a literal payload hash; its events
  // carry their own signatures (aws/event_signing.hpp).
  if (ctx.req.body_stream != nullptr &&
      ctx.req.header("x-amz-content-sha256") == aws::sigv4::streaming_events_payload)
    ctx.payload_hash = aws::sigv4::streaming_events_payload;
  else
    ctx.payload_hash = aws::sigv4::sha256_hex(ctx.req.body);
  auto auth = ctx.snap->auth.authenticate(ctx.req.method, ctx.req.target, ctx.req.headers,
                                          ctx.payload_hash, ctx.arrived);
  if (auth.error) {
    bump(ctx.w.counters().auth_failures);
    return refusal{std::move(*auth.error)};
  }
  ctx.who = auth.who;
  ctx.client_key = auth.key;
  ctx.client_signature = std::move(auth.signature);
  ctx.team = auth.who->team;
  ctx.app = auth.who->app;
  ctx.target = ctx.snap->target_for(auth.signed_region);
  ctx.client_region = auth.signed_region;
  if (ctx.target == nullptr) {
    // What Bedrock answers a request signed for another region than its endpoint's, with what
    // this proxy serves: never quietly send, say, an EU request to a US region.
    ctx.target = &ctx.snap->default_target;  // for the refusal's ledger row
    bump(ctx.w.counters().auth_failures);
    std::string allowed = ctx.snap->default_target.region;
    for (const auto& t : ctx.snap->client_region_targets) allowed += ", " + t.region;
    return refusal{aws::invalid_signature(
        "Credential should be scoped to a valid region. This endpoint serves " + allowed +
        "; the request was signed for '" + std::string(auth.signed_region).substr(0, 64) +
        "' (upstream.allowed_client_regions)")};
  }
  return std::nullopt;
}

stage_result authorize_model(exchange_context& ctx) {
  const auto op = ctx.route->op;
  if (op == metering::operation::invoke_model_with_bidirectional_stream) {
    // Bedrock serves this operation over HTTP/2 only, full duplex: a body collected whole
    // (HTTP/1.1) cannot be one. Refuse clearly instead of forwarding what Bedrock would reject.
    if (ctx.req.body_stream == nullptr)
      return refusal{aws::validation_error(
          "InvokeModelWithBidirectionalStream needs HTTP/2: Bedrock serves it on HTTP/2 only, "
          "with both directions streaming at once. Call the proxy over HTTP/2 (the AWS SDK for "
          "JavaScript does by default).")};
    // Its input events are re-signed with SigV4 event signatures, which a bearer key cannot
    // make (docs/http2.md).
    if (!ctx.w.state().upstream_bearer_token().empty())
      return refusal{aws::validation_error(
          "InvokeModelWithBidirectionalStream through bedrock-meter needs SigV4 upstream "
          "credentials: the proxy re-signs every input event, which an upstream bearer key "
          "cannot do.")};
  }
  if (op == metering::operation::get_async_invoke || op == metering::operation::list_async_invokes)
    return std::nullopt;  // reads of the caller's own jobs: no model to check
  const bool need_model = !ctx.cfg.models.mappings.empty() ||
                          !ctx.who->attributes.allowed_models.empty() ||
                          !ctx.snap->budgets->empty();
  if (need_model)
    ctx.resolved = metering::resolve_model(ctx.route->model_id, ctx.cfg.models.mappings);
  if (const auto* m = ctx.resolved.mapping) {
    // An application inference profile carries its own attribution.
    if (!m->team.empty()) ctx.team = m->team;
    if (!m->app.empty()) ctx.app = m->app;
  }
  if (!ctx.who->may_use(ctx.resolved.base_model, ctx.route->model_id)) {
    bump(ctx.w.counters().model_denied);
    return refusal{aws::access_denied("The identity '" + ctx.who->principal +
                                      "' is not allowed to use the model '" + ctx.route->model_id +
                                      "'.")};
  }
  return std::nullopt;
}

namespace {

bool free_operation(metering::operation op) noexcept {
  return op == metering::operation::count_tokens || op == metering::operation::get_async_invoke ||
         op == metering::operation::list_async_invokes;
}

metering::request_attribution attribution_of(const exchange_context& ctx,
                                             std::string_view base_model) {
  metering::request_attribution who;
  who.team = ctx.team;
  who.app = ctx.app;
  who.identity = ctx.who ? std::string_view(ctx.who->principal) : std::string_view();
  who.model = base_model;
  return who;
}

metering::instant to_instant(std::chrono::system_clock::time_point t) {
  return std::chrono::time_point_cast<std::chrono::nanoseconds>(t);
}

/// The most a request can cost: input estimated from the body size, output from max_tokens (or
/// the model's cap), priced exactly as the answer will be. Operations not billed by tokens
/// reserve 0, so an exhausted budget still refuses them.
metering::pico_usd worst_case(exchange_context& ctx) {
  const auto table = ctx.w.rates();
  const auto op = ctx.route->op;
  if (!table || op == metering::operation::apply_guardrail ||
      op == metering::operation::start_async_invoke)
    return 0;
  const auto& b = ctx.cfg.budgets;
  std::uint64_t cap = b.default_max_output_tokens;
  if (auto it = b.max_output_tokens.find(ctx.resolved.base_model); it != b.max_output_tokens.end())
    cap = it->second;
  metering::token_usage u;
  u.input = metering::estimate_input_tokens(ctx.req.body.size());
  u.output = metering::estimate_output_tokens(ctx.body->max_tokens(), cap);
  u.source = metering::usage_source::reported;
  metering::price_query q;
  q.model_id = ctx.route->model_id;
  q.region = ctx.target->region;
  q.latency = ctx.latency;
  q.at = ctx.arrived;
  q.mappings = &ctx.cfg.models.mappings;
  const auto p = metering::price(*table, u, q);
  if (!p.priced) return 0;
  return static_cast<metering::pico_usd>(std::min<metering::money_total>(
      p.cost.total(), std::numeric_limits<metering::pico_usd>::max()));
}

/// A reservation lives as long as an exchange can, plus a margin: it must not expire while the
/// request it holds for is still running.
std::chrono::seconds reservation_ttl(const config::config& cfg) {
  return std::chrono::duration_cast<std::chrono::seconds>(cfg.limits.exchange_timeout +
                                                          cfg.metering.drain_timeout) +
         std::chrono::seconds(60);
}

bool uses_store(const config::config& cfg) noexcept {
  return cfg.budgets.store == config::budget_store_kind::redis;
}

/// The shared store's connection of the store thread running the call (each keeps its own).
accounting::shared_budget_store* store_on_this_thread(const config::budgets_config& cfg) {
  thread_local accounting::budget_store_handle handle;
  return handle.get(cfg);
}

void count_store_failure(exchange_context& ctx) {
  const bool open = ctx.cfg.budgets.on_store_unavailable == config::budget_store_fallback::open;
  auto& c = ctx.w.counters();
  bump(open ? c.budget_store_fail_open : c.budget_store_fail_closed);
  ctx.w.state().log->warn("budget store unavailable; fallback {} applied",
                          open ? "open (admitted)" : "closed (refused)");
}

}  // namespace

stage_result prepare_admission(exchange_context& ctx) {
  const auto op = ctx.route->op;
  if (op == metering::operation::get_async_invoke || op == metering::operation::list_async_invokes)
    return std::nullopt;
  if (const auto* full = ctx.w.state().sinks.spool_full;
      full != nullptr && full->load(std::memory_order_relaxed)) {
    bump(ctx.w.counters().ledger_spool_refusals);
    return refusal{aws::upstream_unavailable(
        "The proxy's ledger spool is full: the fleet's PostgreSQL ledger has been unreachable "
        "too long. The request was not forwarded, so it is not billed; retry later.")};
  }
  if (ctx.snap->budgets->empty()) return std::nullopt;
  ctx.budgets = ctx.snap->budgets.get();  // settle() books the actual cost on them
  const auto who = attribution_of(ctx, ctx.resolved.base_model);
  ctx.admission_pending = !free_operation(op) && ctx.budgets->needs_admission(who);
  return std::nullopt;
}

awaitable<stage_result> admit(exchange_context& ctx) {
  if (!ctx.admission_pending) co_return std::nullopt;
  const auto who = attribution_of(ctx, ctx.resolved.base_model);
  const auto worst = worst_case(ctx);
  const auto now = to_instant(std::chrono::system_clock::now());
  const auto ttl = reservation_ttl(ctx.cfg);
  if (uses_store(ctx.cfg)) {
    // On a store thread; this coroutine resumes on its worker once the store has answered.
    auto* engine = ctx.budgets;
    const auto& budgets_cfg = ctx.cfg.budgets;
    ctx.admission = co_await net::co_spawn(
        ctx.w.state().budget_store_executor(),
        [&]() -> awaitable<accounting::budget_admission> {
          co_return engine->admit(who, worst, now, store_on_this_thread(budgets_cfg), ttl);
        },
        net::use_awaitable_t<executor>{});
  } else {
    ctx.admission = ctx.budgets->admit(who, worst, now, nullptr, ttl);
  }
  if (ctx.admission.store_failed) count_store_failure(ctx);
  // Named, not a temporary in the co_return: GCC 12 mishandles aggregate temporaries there.
  stage_result verdict;
  switch (ctx.admission.result) {
    case accounting::budget_admission::verdict::admitted: break;
    case accounting::budget_admission::verdict::blocked:
      if (auto* rec = ctx.w.recorder()) rec->budget_blocked(ctx.admission.budget);
      verdict = refusal{aws::budget_exceeded(ctx.admission.message)};
      break;
    case accounting::budget_admission::verdict::unavailable:
      verdict = refusal{aws::upstream_unavailable(ctx.admission.message)};
      break;
  }
  co_return verdict;
}

stage_result sign_upstream(exchange_context& ctx) {
  // Same method, target and body; hop-by-hop and the caller's auth headers dropped; Host for the
  // upstream; signed with the proxy's own credentials.
  auto& fwd = ctx.upstream_headers;
  fwd.reserve(ctx.req.headers.size() + 4);
  fwd.emplace_back("host", ctx.target->host_header);
  for (auto& [k, v] : ctx.req.headers)
    if (forward_request_header(k)) fwd.emplace_back(k, v);
  if (const auto& bearer = ctx.w.state().upstream_bearer_token(); !bearer.empty()) {
    fwd.emplace_back("authorization", "Bearer " + bearer);
    return std::nullopt;
  }
  const auto creds = ctx.w.upstream_credentials();
  if (!creds)
    return refusal{aws::upstream_unavailable("The proxy has no upstream AWS credentials."),
                   metering::request_outcome::upstream_error};
  aws::sigv4::signing_options opt;
  opt.region = ctx.target->region;
  opt.now = std::chrono::system_clock::now();
  if (ctx.req.body_stream != nullptr) {
    // The input event stream: its literal payload hash goes in x-amz-content-sha256 (signed), and
    // the events' signature chain starts from this request's signature.
    opt.sign_content_sha256_header = true;
    auto parts = aws::sigv4::sign(ctx.req.method, ctx.req.target, fwd,
                                  aws::sigv4::streaming_events_payload, *creds, opt);
    ctx.upstream_signature = std::move(parts.signature);
    ctx.upstream_creds = creds;
    return std::nullopt;
  }
  aws::sigv4::sign(ctx.req.method, ctx.req.target, fwd, ctx.payload_hash, *creds, opt);
  return std::nullopt;
}

void read_traits(exchange_context& ctx) {
  const auto& key = ctx.w.state().fingerprint_key;
  const bool hash = ctx.cfg.ledger.prompt_fingerprints && key.has_value();
  ctx.traits = ctx.body->traits(hash ? &*key : nullptr);
}

stage_result run_stages(exchange_context& ctx) {
  if (auto r = route(ctx)) return r;
  if (auto r = authenticate(ctx)) return r;
  if (auto r = authorize_model(ctx)) return r;
  return prepare_admission(ctx);
}

stage_result finish_stages(exchange_context& ctx) {
  read_traits(ctx);
  return sign_upstream(ctx);
}

awaitable<void> refuse(exchange_context& ctx, response_sink& out, const refusal& r) {
  ctx.status = r.error.status;
  ctx.outcome = r.outcome;
  const auto ec = co_await write_error(out, r.error, ctx.request_id);
  ctx.result.response_started = true;
  if (ec) ctx.result.keep_alive = false;
}

// --- settlement --------------------------------------------------------------------------------

namespace {

metering::exchange_facts facts_of(const exchange_context& ctx) {
  using std::chrono::duration_cast;
  using us = std::chrono::microseconds;
  metering::exchange_facts f;
  f.request_id = ctx.request_id;
  f.arrived = ctx.arrived;
  f.duration = duration_cast<us>(steady_clock::now() - ctx.start);
  if (ctx.first_byte != steady_clock::time_point{})
    f.first_byte = duration_cast<us>(ctx.first_byte - ctx.start);
  f.route = ctx.route ? &*ctx.route : nullptr;
  if (ctx.who) {
    f.principal = ctx.who->principal;
    f.team = ctx.team;
    f.app = ctx.app;
    f.tags = &ctx.who->attributes.tags;
  }
  if (ctx.target) f.region = ctx.target->region;
  f.latency = ctx.latency;
  if (ctx.meter) {
    f.usage = ctx.meter->usage();
    f.service_tier = ctx.meter->service_tier();
    // A stream that ended in an exception event stopped because of it: the ledger keeps its name.
    f.stop_reason = ctx.meter->stream_exception().empty() ? ctx.meter->stop_reason()
                                                          : ctx.meter->stream_exception();
  }
  f.traits = ctx.traits ? &*ctx.traits : nullptr;
  f.status = ctx.status;
  f.outcome = ctx.outcome;
  f.bytes_in = ctx.bytes_in;
  f.bytes_out = ctx.bytes_out;
  return f;
}

/// What a budget settlement reports: a store it could not reach, and the thresholds crossed.
void report_budget_settlement(shared_state& state, bool store_failed,
                              const std::vector<accounting::threshold_event>& events) {
  auto& log = *state.log;
  if (store_failed) {
    bump(state.counters.budget_store_settle_errors);
    log.warn("budget store unavailable at settlement; counted locally only");
  }
  for (const auto& e : events)
    log.warn("budget '{}' crossed {}% of its limit: ${} of ${} spent this period", e.budget,
             e.percent, metering::format_usd(e.spent, 2), metering::format_usd(e.limit, 2));
}

/// A settlement queued for the store threads: owns what it books (the exchange is gone by the
/// time it runs), and the snapshot keeps its budget engine alive.
struct queued_settlement {
  std::shared_ptr<const runtime_snapshot> snap;
  accounting::budget_engine* budgets = nullptr;
  accounting::budget_admission admission;
  std::string team, app, identity, model;
  metering::pico_usd actual = 0;
  metering::instant arrived, now;
  shared_state* state = nullptr;

  void operator()() const {
    bool store_failed = false;
    const auto events =
        budgets->settle(admission, {team, app, identity, model}, actual, arrived, now,
                        store_on_this_thread(snap->cfg->budgets), &store_failed);
    report_budget_settlement(*state, store_failed, events);
  }
};

/// Books the request's actual cost on its budgets (releasing what admission reserved) and logs
/// the warning thresholds it crossed. With a shared store, queued for the store threads: the
/// exchange (and the next request on its connection) does not wait on Redis.
void settle_budgets(exchange_context& ctx, const metering::settlement& s) {
  const auto who = attribution_of(ctx, s.model_base);
  const metering::pico_usd actual = s.priced ? s.total_cost : 0;
  const auto arrived = to_instant(ctx.arrived);
  const auto now = to_instant(std::chrono::system_clock::now());
  if (!uses_store(ctx.cfg)) {
    bool store_failed = false;
    const auto events =
        ctx.budgets->settle(ctx.admission, who, actual, arrived, now, nullptr, &store_failed);
    report_budget_settlement(ctx.w.state(), store_failed, events);
    return;
  }
  net::post(
      ctx.w.state().budget_store_executor(),
      queued_settlement{ctx.snap, ctx.budgets, std::move(ctx.admission), std::string(who.team),
                        std::string(who.app), std::string(who.identity), std::string(who.model),
                        actual, arrived, now, &ctx.w.state()});
}

/// Usage Bedrock bills but did not report: a stream cut or ended by an exception event (its
/// output is already estimated from what was seen, its input is not), or a call abandoned at
/// first_byte_timeout (nothing seen at all). Input comes from the body size at the model's
/// learned bytes per token; output, for an abandoned call, from the model's mean.
void estimate_unreported(exchange_context& ctx, metering::exchange_facts& f) {
  if (!f.usage || f.route == nullptr || !metering::billed_by_tokens(f.route->op)) return;
  auto& u = *f.usage;
  const bool abandoned = ctx.abandoned_at_first_byte && u.source == metering::usage_source::none;
  if (u.source != metering::usage_source::estimated && !abandoned) return;
  const auto& est = ctx.w.inputs();
  if (u.input + u.cache_read + u.cache_write == 0)
    u.input = est.estimate(f.route->model_id, ctx.bytes_in);
  if (abandoned && u.output == 0)
    u.output =
        est.estimate_output(f.route->model_id, f.traits ? f.traits->max_tokens : std::nullopt)
            .value_or(0);
  u.source = metering::usage_source::estimated;
}

void count_outcome(exchange_context& ctx, const metering::settlement& s) {
  auto& c = ctx.w.counters();
  if (s.outcome == metering::request_outcome::client_abort) bump(c.client_aborts);
  if (ctx.meter && ctx.meter->decode_errors() > 0)
    bump(c.stream_decode_errors, ctx.meter->decode_errors());
  if (s.usage_source == metering::usage_source::estimated) bump(c.estimated_requests);
}

}  // namespace

void settle(exchange_context& ctx) {
  if (ctx.settled) return;
  ctx.settled = true;
  const auto table = ctx.w.rates();  // one rate-table snapshot for this request
  auto facts = facts_of(ctx);
  estimate_unreported(ctx, facts);
  auto s = metering::settle(facts, table.get(), ctx.cfg.models.mappings);
  if (s.usage_source == metering::usage_source::reported && ctx.route)
    ctx.w.inputs().learn(ctx.route->model_id, ctx.bytes_in,
                         s.input_tokens + s.cache_read_tokens + s.cache_write_tokens,
                         s.output_tokens);
  if (!ctx.cfg.commitments.empty() && s.total_cost > 0) {
    const auto day = std::chrono::floor<std::chrono::days>(
        std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds(s.time_ms)));
    s.discount_ppm = config::discount_ppm_on(ctx.cfg.commitments, s.model_base, day);
  }
  count_outcome(ctx, s);
  if (ctx.budgets != nullptr) settle_budgets(ctx, s);
  if (auto* rec = ctx.w.recorder()) rec->record(s);
  auto& state = ctx.w.state();
  if (state.access)
    state.access->info(
        telemetry::access_log_line(s, {ctx.req.connection_id, ctx.req.protocol, ctx.req.remote}));
  if (auto* j = state.sinks.journal) {
    // Settled in the record before the ledger queues the row, so the writer's release (after
    // its commit) is the last word on the slot.
    j->settled(ctx.journal_slot, s);
    s.journal_slot = ctx.journal_slot;
  }
  if (state.sinks.ledger != nullptr && !state.sinks.ledger->append(std::move(s)))
    bump(ctx.w.counters().ledger_append_failures);
}

void journal_start(exchange_context& ctx) {
  auto* j = ctx.w.state().sinks.journal;
  if (j == nullptr) return;
  accounting::inflight_journal::start_record r;
  r.time_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(ctx.arrived.time_since_epoch()).count();
  r.request_id = ctx.request_id;
  r.team = ctx.team;
  r.app = ctx.app;
  r.principal = ctx.who ? std::string_view(ctx.who->principal) : std::string_view();
  r.model_id = ctx.route->model_id;
  r.region = ctx.target->region;
  r.op = ctx.route->op;
  r.latency = ctx.latency;
  r.bytes_in = ctx.bytes_in;
  ctx.journal_slot = j->take(ctx.w.index(), r);
}

void journal_progress(exchange_context& ctx) {
  if (auto* j = ctx.w.state().sinks.journal) j->progress(ctx.journal_slot, ctx.meter->text_bytes());
}

// --- forwarding, the parts that do not depend on the stream type -------------------------------

namespace detail {

std::chrono::milliseconds step(steady_clock::time_point deadline, std::chrono::milliseconds cap) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now());
  return std::max(std::chrono::milliseconds(1), std::min(left, cap));
}

upstream_request::upstream_request(std::string_view method, std::string_view target,
                                   const aws::sigv4::header_list& headers, std::string&& b)
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

upstream_failure write_failure(const error_code& ec) noexcept {
  return ec == beast::error::timeout ? upstream_failure::timeout : upstream_failure::reset;
}

upstream_failure head_failure(const error_code& ec) noexcept {
  if (ec == beast::error::timeout) return upstream_failure::timeout;
  if (ec == http::error::end_of_stream || ec == net::error::eof ||
      ec == net::error::connection_reset)
    return upstream_failure::reset;
  return upstream_failure::protocol;
}

drain::~drain() {
  if (on_) ctx_.w.counters().draining.fetch_sub(1, std::memory_order_relaxed);
}

bool drain::start() {
  const auto& m = ctx_.cfg.metering;
  if (!m.drain_on_client_abort || ctx_.meter->usage_seen()) return false;
  auto& c = ctx_.w.counters();
  if (c.draining.fetch_add(1, std::memory_order_relaxed) >=
      static_cast<std::int64_t>(m.max_concurrent_drains)) {
    c.draining.fetch_sub(1, std::memory_order_relaxed);
    bump(c.drains_refused);
    return false;
  }
  bump(c.drains);
  on_ = true;
  deadline_ = steady_clock::now() + m.drain_timeout;
  return true;
}

awaitable<bool> answer_head(exchange_context& ctx, response_sink& out, response_parser& parser) {
  ctx.first_byte = steady_clock::now();
  auto& head = parser.get();
  ctx.status = head.result_int();
  aws::sigv4::header_list headers;
  headers.reserve(16);
  for (const auto& f : head) {
    if (!forward_response_header(f.name_string())) continue;
    headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    // Errors the proxy makes carry x-amzn-RequestId; upstream responses already do: keep theirs.
    if (iequals(f.name_string(), "x-amzn-requestid")) ctx.request_id = f.value();
  }
  if (auto* j = ctx.w.state().sinks.journal)
    j->answered(ctx.journal_slot, ctx.status, ctx.request_id);
  ctx.meter->on_head(ctx.status, [&head](std::string_view name) -> std::string_view {
    const auto it = head.find(name);
    return it == head.end() ? std::string_view{} : std::string_view(it->value());
  });
  std::optional<std::uint64_t> length;
  if (!parser.chunked() && parser.content_length()) length = *parser.content_length();
  if (auto ec = co_await out.write_head(ctx.status, headers, length); ec) co_return false;
  ctx.result.response_started = true;
  co_return true;
}

awaitable<void> end_relay(exchange_context& ctx, response_sink& out, bool complete, bool keep_alive,
                          bool client_alive, relay_result& r) {
  ctx.meter->finish(complete && client_alive);
  if (client_alive) {
    if (auto ec = co_await out.finish(complete); ec) client_alive = false;
  }
  if (!client_alive) {
    ctx.outcome = metering::request_outcome::client_abort;
    ctx.result.keep_alive = false;
  } else if (!complete) {
    ctx.outcome = metering::request_outcome::upstream_cut;
    ctx.result.keep_alive = false;
  } else if (!ctx.meter->stream_exception().empty()) {
    ctx.outcome = metering::request_outcome::stream_error;  // the client got an error event
  }
  r.reusable = keep_alive;
  // A drain that ran out of time is the client's doing, not an upstream failure.
  if (complete || !client_alive) r.failure = upstream_failure::none;
}

awaitable<void> upstream_failed(exchange_context& ctx, response_sink& out, upstream_failure failure,
                                const error_code& ec, bool acquiring) {
  bump(error_counter(ctx.w.counters(), failure));
  const std::string kind(to_string(failure));
  if (acquiring)
    ctx.w.state().log->warn("upstream {} failed for {}: {}", kind, ctx.target->pool_key,
                            ec.message());
  else
    ctx.w.state().log->warn("upstream {} on {}: {}", kind, ctx.target->pool_key, ec.message());
  // A named local, not a temporary in the co_await expression: GCC 12 destroys aggregate
  // temporaries there twice.
  const refusal r{
      aws::upstream_unavailable(acquiring ? "The proxy could not reach Bedrock (" + kind + ")."
                                          : "Bedrock did not answer (" + kind + ")."),
      metering::request_outcome::upstream_error};
  co_await refuse(ctx, out, r);
}

}  // namespace detail

}  // namespace bedrock_meter::proxy
