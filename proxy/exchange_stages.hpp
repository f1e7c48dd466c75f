#pragma once
// The exchange as stages. `run_exchange` (proxy/forward.hpp) reads as
//
//   route -> authenticate -> authorize_model -> admit -> sign_upstream -> forward -> settle
//
// Each stage before forward is a short synchronous function of the one `exchange_context`: it
// fills in what it learned and returns nullopt to continue, or the refusal that ends the
// exchange (answered Bedrock-shaped by `refuse`). Whatever happened, `settle` runs exactly once
// at the end and hands the settlement to every sink.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "accounting/budgets.hpp"
#include "aws/bedrock_error.hpp"
#include "aws/sigv4.hpp"
#include "metering/model_id.hpp"
#include "metering/request_body.hpp"
#include "metering/route.hpp"
#include "metering/settlement.hpp"
#include "metering/usage.hpp"
#include "proxy/exchange.hpp"
#include "proxy/state.hpp"

namespace bedrock_meter::proxy {

class worker;
struct identity;

using steady_clock = std::chrono::steady_clock;

/// Why an exchange ends before it reaches Bedrock: the answer, and how the ledger records it.
struct refusal {
  aws::bedrock_error error;
  metering::request_outcome outcome = metering::request_outcome::refused;
};
using stage_result = std::optional<refusal>;  ///< nullopt: go on to the next stage

/// Everything one exchange learns on its way, in the order the stages learn it. Lives in the
/// exchange's coroutine frame; no other thread sees it.
struct exchange_context {
  exchange_context(worker& w, inbound_request& r);  ///< counts the request in flight
  ~exchange_context();
  exchange_context(const exchange_context&) = delete;
  exchange_context& operator=(const exchange_context&) = delete;

  worker& w;
  inbound_request& req;
  /// One config snapshot (a copy of the pointer) for the whole exchange, however long it takes.
  const std::shared_ptr<const runtime_snapshot> snap;
  const config::config& cfg;
  std::string request_id;  ///< ours until the upstream's x-amzn-RequestId replaces it
  const steady_clock::time_point start = steady_clock::now();
  const std::chrono::system_clock::time_point arrived = std::chrono::system_clock::now();
  const steady_clock::time_point deadline;  ///< start + limits.exchange_timeout
  /// The request body's size (forward moves the body upstream); a streamed body's grows as it
  /// is read.
  std::uint64_t bytes_in;
  steady_clock::time_point first_byte{};  ///< the upstream's first response byte

  // route
  std::optional<metering::route> route;
  /// The one parse of the body, on demand. It views req.body, which forward moves upstream:
  /// only the stages before forward may ask it.
  std::optional<metering::request_body> body;
  metering::latency_mode latency = metering::latency_mode::standard;
  // authenticate
  std::string payload_hash;  ///< hex SHA-256 of the body: verified, then re-signed with
  const identity* who = nullptr;
  /// A SigV4 caller's key and request signature: its input event stream chains from them.
  const aws::sigv4::issued_key* client_key = nullptr;
  std::string client_signature;
  std::string client_region;  ///< the region the caller signed for
  std::string_view team;  ///< the identity's, unless an application inference profile names its own
  std::string_view app;
  const upstream_target* target = nullptr;
  // authorize_model
  metering::resolved_model resolved;
  // admit
  accounting::budget_engine* budgets = nullptr;  ///< set when the budgets count this request
  bool admission_pending = false;                ///< a block budget counts it: admit() reserves
  accounting::budget_admission admission;
  // read_traits
  std::optional<metering::request_traits> traits;  ///< what the request asked for (the ledger's)
  // sign_upstream
  aws::sigv4::header_list upstream_headers;
  /// The upstream request's signature and the credentials it was made with: the proxy's own
  /// input event stream chain starts from them (InvokeModelWithBidirectionalStream).
  std::string upstream_signature;
  std::shared_ptr<const aws::sigv4::credentials> upstream_creds;
  // forward
  std::optional<metering::usage_observer> meter;  ///< set once the request goes upstream
  /// Bedrock has the request but had not answered by first_byte_timeout: the client was answered
  /// 503 then, and Bedrock bills the call anyway (drained for its usage, else estimated).
  bool abandoned_at_first_byte = false;
  std::int32_t journal_slot = -1;  ///< the start record (accounting/inflight_journal.hpp)
  unsigned status = 0;
  metering::request_outcome outcome = metering::request_outcome::ok;
  std::uint64_t bytes_out = 0;
  exchange_result result;
  bool settled = false;
};

/// Parses the route: anything that is not a Bedrock Runtime operation is refused (404 or 400),
/// never passed through unmetered. Also reads the latency mode (header, or Converse's body).
stage_result route(exchange_context& ctx);
/// Verifies the client's SigV4 signature or bearer key and picks the upstream region.
stage_result authenticate(exchange_context& ctx);
/// Resolves the model (application inference profiles carry their own team/app) and checks the
/// identity's model allow-list.
stage_result authorize_model(exchange_context& ctx);
/// What admission needs that costs no store call: the fleet ledger's spool has room, and which
/// budgets count the request (ctx.budgets; ctx.admission_pending when a block budget does).
stage_result prepare_admission(exchange_context& ctx);
/// Reserves the request's worst-case cost on every block budget that counts it. With a shared
/// store (Redis) the reservation runs on the store's threads, so a slow or paused Redis holds
/// only the requests that need it, never the worker and its other connections.
io::awaitable<stage_result> admit(exchange_context& ctx);
/// Reads what the request asked for (output cap, tools, structured output, the keyed prompt
/// fingerprints when `ledger.prompt_fingerprints` is on) from the body's one scan, for the
/// ledger. Not a check: it refuses nothing. Runs after admission, so refusals cost nothing.
void read_traits(exchange_context& ctx);
/// The upstream request's headers, signed with the proxy's own credentials (or bearer key).
stage_result sign_upstream(exchange_context& ctx);
/// The stages before admission, in order (route, authenticate, authorize_model,
/// prepare_admission); the first refusal ends them.
stage_result run_stages(exchange_context& ctx);
/// The stages after admission: read_traits, sign_upstream.
stage_result finish_stages(exchange_context& ctx);

/// Answers a refusal Bedrock-shaped and records why.
io::awaitable<void> refuse(exchange_context& ctx, response_sink& out, const refusal& r);

/// The request goes upstream: its start record, so a process killed before it settles still
/// leaves it in the ledger (as `interrupted`) at the next start.
void journal_start(exchange_context& ctx);
/// Generated text seen so far, for that record's estimate.
void journal_progress(exchange_context& ctx);

/// Prices the exchange once and hands the settlement to every sink: budgets, metrics, the access
/// log and the ledger; bumps the outcome counters. Idempotent: the second call does nothing.
void settle(exchange_context& ctx);

}  // namespace bedrock_meter::proxy
