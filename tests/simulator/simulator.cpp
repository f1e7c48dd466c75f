// bedrock-sim: a fast, deterministic, fault-injecting stand-in for Amazon Bedrock Runtime.
// The server half: Beast HTTP/1.1 (optionally TLS), one io_context and SO_REUSEPORT acceptor per
// thread, C++20 coroutines. What to answer is decided by the pure half (sim_logic reads the
// request, sim_bodies writes the answer) and the command line by sim_options; this file only does
// I/O, auth, delays and faults. See docs/simulator.md.
#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "aws/sigv4.hpp"
#include "tests/simulator/sim_bodies.hpp"
#include "tests/simulator/sim_codec.hpp"
#include "tests/simulator/sim_logic.hpp"
#include "tests/simulator/sim_options.hpp"

namespace bedrock_meter::simulator {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

// Each worker runs a single-threaded io_context, so its own executor type is used everywhere:
// nothing type-erased on the hot path.
using executor = net::io_context::executor_type;
template <class T = void>
using awaitable = net::awaitable<T, executor>;
constexpr auto use_ec = net::as_tuple(net::use_awaitable_t<executor>{});
using tcp_socket = net::basic_stream_socket<tcp, executor>;
using tcp_acceptor = net::basic_socket_acceptor<tcp, executor>;
using steady_timer =
    net::basic_waitable_timer<std::chrono::steady_clock,
                              net::wait_traits<std::chrono::steady_clock>, executor>;
using tls_stream = ssl::stream<tcp_socket>;
using request = http::request<http::string_body>;
using extra_headers = std::vector<std::pair<std::string, std::string>>;  // beyond the common ones

constexpr std::uint64_t max_body_bytes = 64ull * 1024 * 1024;
constexpr std::uint32_t max_header_bytes = 64 * 1024;
constexpr std::uint64_t default_slow_first_byte_ms = 1000;
constexpr std::string_view error_namespace =
    ":http://internal.amazon.com/coral/com.amazon.bedrock/";
constexpr std::string_view account_id = "123456789012";

struct async_record {
  std::string arn;
  std::string model_arn;
  std::string client_token;
  std::string submit_time;
  std::string output_config;  // serialized outputDataConfig, echoed back
};

// State shared by all workers: read-only options, lock-free counters, and the (rarely used)
// async-invoke table behind a mutex.
struct shared_state {
  options opt;
  std::array<std::atomic<std::uint64_t>, sim_op_count> per_op{};
  std::atomic<std::uint64_t> auth_failures{0};
  std::atomic<std::uint64_t> faults{0};
  std::atomic<std::uint64_t> connections{0};
  std::mutex async_mu;
  std::vector<async_record> async;
  std::unique_ptr<ssl::context> tls;
};

struct worker {
  worker(shared_state& s, std::uint64_t seed) : shared(&s), ids(seed) {}
  net::io_context ioc{1};
  tcp_acceptor acceptor{ioc.get_executor()};
  shared_state* shared;
  id_source ids;
};

std::uint64_t ms_since(std::chrono::steady_clock::time_point t0) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count());
}

std::string iso8601_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 40> buf{};
  const std::size_t n = std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%S", &tm);
  std::string s(buf.data(), n);
  std::array<char, 8> frac{};
  std::snprintf(frac.data(), frac.size(), ".%03dZ", static_cast<int>(ms));
  s.append(frac.data());
  return s;
}

awaitable<void> sleep_ms(std::uint64_t ms) {
  if (ms == 0) co_return;
  steady_timer timer(co_await net::this_coro::executor);
  timer.expires_after(std::chrono::milliseconds(ms));
  co_await timer.async_wait(use_ec);
}

// One answer, before it is written: status, body and the headers beyond the common ones.
struct reply {
  http::status status = http::status::ok;
  std::string content_type = "application/json";
  std::string body;
  extra_headers headers;
  bool cut = false;  // write half the body, then close
};

reply ok_reply(std::string body) {
  reply r;
  r.body = std::move(body);
  return r;
}

reply make_error(unsigned status, std::string_view name, std::string_view message) {
  reply r;
  r.status = static_cast<http::status>(status);
  r.headers.emplace_back("x-amzn-ErrorType", std::string(name) + std::string(error_namespace));
  r.body = error_body(message);
  return r;
}

// The error an error fault answers with; nothing for the faults that shape a success.
std::optional<reply> error_fault_reply(fault f) {
  switch (f) {
    case fault::throttle:
      return make_error(429, "ThrottlingException",
                        "Too many requests, please wait before trying again.");
    case fault::error500:
      return make_error(500, "InternalServerException",
                        "The server encountered an internal error.");
    case fault::unavailable:
      return make_error(503, "ServiceUnavailableException",
                        "Service unavailable. Try again later.");
    case fault::model_timeout:
      return make_error(408, "ModelTimeoutException",
                        "Model has timed out in processing the request.");
    case fault::model_error:
      return make_error(424, "ModelErrorException",
                        "The model encountered an error processing the request.");
    case fault::validation:
      return make_error(400, "ValidationException", "Simulated validation failure.");
    case fault::access_denied:
      return make_error(403, "AccessDeniedException",
                        "You don't have access to the model with the specified model ID.");
    case fault::not_found:
      return make_error(404, "ResourceNotFoundException", "The requested resource was not found.");
    default: return std::nullopt;
  }
}

// The error a directive asks for: an error fault, else `status=` of 300 and above.
std::optional<reply> directive_error_reply(const directive& d) {
  if (auto r = error_fault_reply(d.fault_kind)) return r;
  if (d.status && *d.status >= 300) {
    const std::string_view name =
        d.error_name.empty() ? default_error_name(*d.status) : d.error_name;
    return make_error(*d.status, name, "Simulated " + std::string(name) + ".");
  }
  return std::nullopt;
}

// What /__sim/stats counts as a fault: every fault but a slow first byte, and any error status.
bool counts_as_fault(const directive& d) {
  return (d.fault_kind != fault::none && d.fault_kind != fault::slow_first_byte) ||
         (d.status && *d.status >= 300);
}

// Head delay: first_byte_ms when the directive sets it (slow_first_byte defaults it), else
// the global --latency-ms.
std::uint64_t head_delay_ms(const options& opt, const directive& d) {
  if (d.first_byte_ms) return *d.first_byte_ms;
  if (d.fault_kind == fault::slow_first_byte) return default_slow_first_byte_ms;
  return opt.latency_ms;
}

// The refusal for a SigV4 verification result; nothing when the signature is good and scoped to
// the configured region.
std::optional<reply> signature_refusal(const aws::sigv4::verified& v, std::string_view region) {
  using aws::sigv4::verify_error;
  switch (v.error) {
    case verify_error::none:
      if (v.region != region) {
        return make_error(403, "InvalidSignatureException",
                          "Credential should be scoped to a valid region.");
      }
      return std::nullopt;
    case verify_error::unknown_access_key:
    case verify_error::session_token_refused:
      return make_error(403, "UnrecognizedClientException",
                        "The security token included in the request is invalid.");
    case verify_error::signature_mismatch:
      return make_error(403, "InvalidSignatureException",
                        "The request signature we calculated does not match the signature you "
                        "provided. Check your AWS Secret Access Key and signing method. Consult "
                        "the service documentation for details.");
    case verify_error::clock_skew:
      return make_error(403, "InvalidSignatureException",
                        "Signature expired: the request time is too far from the server time.");
    case verify_error::missing_authorization:
      return make_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token");
    default:
      return make_error(403, "InvalidSignatureException",
                        "Signature rejected: " + std::string(aws::sigv4::to_string(v.error)));
  }
}

// Authenticates as AWS does: a SigV4 signature for service `bedrock` in the configured region,
// or a Bedrock API key as `Authorization: Bearer`. Returns the refusal, or nothing when allowed.
std::optional<reply> authenticate(const shared_state& st, const request& req) {
  const options& opt = st.opt;
  if (opt.no_auth) return std::nullopt;
  const std::string_view auth = req[http::field::authorization];
  if (auth.starts_with("Bearer ")) {
    const std::string_view token = auth.substr(7);
    if (!opt.bearer_token.empty() && aws::sigv4::constant_time_equal(token, opt.bearer_token)) {
      return std::nullopt;
    }
    return make_error(403, "AccessDeniedException",
                      "Authentication failed: Please make sure your API Key is valid.");
  }
  if (auth.empty()) {
    return make_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token");
  }
  aws::sigv4::header_list headers;
  headers.reserve(16);
  for (const auto& f : req) {
    headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  }
  const std::string body_hash = aws::sigv4::sha256_hex(req.body());
  aws::sigv4::verify_options vo;
  vo.service = "bedrock";
  vo.now = std::chrono::system_clock::now();
  const auto lookup = [&opt](std::string_view id) -> const aws::sigv4::issued_key* {
    auto it = opt.keys.find(id);
    return it == opt.keys.end() ? nullptr : &it->second;
  };
  const auto v =
      aws::sigv4::verify(req.method_string(), req.target(), headers, body_hash, lookup, vo);
  return signature_refusal(v, opt.region);
}
std::string stats_body(const shared_state& st) {
  std::string out = "{\"requests\":{";
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < sim_op_count; ++i) {
    const auto op = static_cast<sim_op>(i);
    if (op == sim_op::stats || op == sim_op::reset) continue;
    const std::uint64_t n = st.per_op[i].load(std::memory_order_relaxed);
    total += n;
    if (out.back() != '{') out.push_back(',');
    append_json_string(out, op_name(op));
    out.push_back(':');
    out.append(std::to_string(n));
  }
  out.append("},\"total\":").append(std::to_string(total));
  out.append(",\"auth_failures\":").append(std::to_string(st.auth_failures.load()));
  out.append(",\"faults\":").append(std::to_string(st.faults.load()));
  out.append(",\"connections\":").append(std::to_string(st.connections.load()));
  out.push_back('}');
  return out;
}

void append_async_record(std::string& out, const async_record& r) {
  out.append("{\"invocationArn\":");
  append_json_string(out, r.arn);
  out.append(",\"modelArn\":");
  append_json_string(out, r.model_arn);
  if (!r.client_token.empty()) {
    out.append(",\"clientRequestToken\":");
    append_json_string(out, r.client_token);
  }
  out.append(",\"status\":\"Completed\",\"submitTime\":");
  append_json_string(out, r.submit_time);
  out.append(",\"lastModifiedTime\":");
  append_json_string(out, r.submit_time);
  out.append(",\"endTime\":");
  append_json_string(out, r.submit_time);
  out.append(",\"outputDataConfig\":").append(r.output_config).push_back('}');
}

reply start_async(worker& w, std::string_view body) {
  shared_state& st = *w.shared;
  error_code ec;
  const boost::json::value root = boost::json::parse(body, ec);
  const boost::json::object* obj = ec ? nullptr : root.if_object();
  const boost::json::value* model = obj ? obj->if_contains("modelId") : nullptr;
  const boost::json::value* out_cfg = obj ? obj->if_contains("outputDataConfig") : nullptr;
  if (model == nullptr || !model->is_string() || out_cfg == nullptr || !out_cfg->is_object() ||
      !obj->contains("modelInput")) {
    return make_error(400, "ValidationException",
                      "modelId, modelInput and outputDataConfig are required.");
  }
  std::string token;
  if (const auto* t = obj->if_contains("clientRequestToken"); t != nullptr && t->is_string()) {
    token = std::string(t->get_string());
  }
  std::lock_guard lock(st.async_mu);
  if (!token.empty()) {
    // Idempotent: the same token names the same invocation.
    for (const auto& r : st.async) {
      if (r.client_token == token) return ok_reply("{\"invocationArn\":\"" + r.arn + "\"}");
    }
  }
  async_record rec;
  rec.arn = "arn:aws:bedrock:" + st.opt.region + ":" + std::string(account_id) + ":async-invoke/" +
            w.ids.lower_alnum(12);
  rec.model_arn = "arn:aws:bedrock:" + st.opt.region + "::foundation-model/" +
                  std::string(base_model_id(model->get_string()));
  rec.client_token = std::move(token);
  rec.submit_time = iso8601_now();
  rec.output_config = boost::json::serialize(*out_cfg);
  reply r;
  r.body = "{\"invocationArn\":";
  append_json_string(r.body, rec.arn);
  r.body.push_back('}');
  st.async.push_back(std::move(rec));
  return r;
}

reply get_async(shared_state& st, std::string_view arn) {
  std::lock_guard lock(st.async_mu);
  for (const auto& r : st.async) {
    if (r.arn == arn) {
      reply out;
      append_async_record(out.body, r);
      return out;
    }
  }
  return make_error(400, "ValidationException", "The specified invocation ARN does not exist.");
}

reply list_async(shared_state& st, std::string_view target) {
  const auto question = target.find('?');
  const std::string_view query =
      question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);
  // Every simulated invocation is Completed, so a filter on another status matches nothing.
  const auto status_at = query.find("statusEquals=");
  const bool other_status =
      status_at != std::string_view::npos && query.substr(status_at + 13, 9) != "Completed";
  reply r;
  r.body = "{\"asyncInvokeSummaries\":[";
  if (!other_status) {
    std::lock_guard lock(st.async_mu);
    bool first = true;
    for (const auto& rec : st.async) {
      if (!first) r.body.push_back(',');
      first = false;
      append_async_record(r.body, rec);
    }
  }
  r.body.append("]}");
  return r;
}
template <class Stream>
void close_transport(Stream& s) {
  error_code ec;
  beast::get_lowest_layer(s).shutdown(tcp::socket::shutdown_both, ec);
  beast::get_lowest_layer(s).close(ec);
}

template <class Stream>
awaitable<bool> write_reply(Stream& s, const request& req, const std::string& request_id, reply r) {
  http::response<http::string_body> res{r.status, req.version()};
  res.set("x-amzn-RequestId", request_id);
  res.set(http::field::content_type, r.content_type);
  for (auto& [k, v] : r.headers) res.set(k, v);
  res.keep_alive(req.keep_alive() && !r.cut);
  res.body() = std::move(r.body);
  res.prepare_payload();
  if (!r.cut) {
    auto [ec, n] = co_await http::async_write(s, res, use_ec);
    co_return !ec && res.keep_alive();
  }
  // Truncated plain body: the full Content-Length is promised, half the bytes arrive.
  http::response_serializer<http::string_body> sr{res};
  auto [ec, n] = co_await http::async_write_header(s, sr, use_ec);
  if (!ec) {
    const std::string& b = res.body();
    co_await net::async_write(s, net::buffer(b.data(), b.size() / 2), use_ec);
  }
  close_transport(s);
  co_return false;
}

// Appends `data` as one HTTP/1.1 chunk (hex size, CRLF, data, CRLF), as Beast's make_chunk would.
void append_chunk(std::string& out, std::string_view data) {
  std::array<char, 16> hex{};
  auto [end, ec] = std::to_chars(hex.data(), hex.data() + hex.size(), data.size(), 16);
  (void)ec;  // 16 hex digits always fit a size_t
  out.append(hex.data(), end).append("\r\n").append(data).append("\r\n");
}

template <class Stream>
awaitable<bool> write_out(Stream& s, std::string& out) {
  if (out.empty()) co_return true;
  auto [ec, n] = co_await net::async_write(s, net::buffer(out), use_ec);
  out.clear();
  co_return !ec;
}

template <class Stream>
awaitable<bool> write_stream(Stream& s, const request& req, const std::string& request_id,
                             extra_headers headers, stream_script script, directive d,
                             std::chrono::steady_clock::time_point t0) {
  http::response<http::empty_body> res{http::status::ok, req.version()};
  res.set("x-amzn-RequestId", request_id);
  res.set(http::field::content_type, "application/vnd.amazon.eventstream");
  for (auto& [k, v] : headers) res.set(k, v);
  res.keep_alive(req.keep_alive());
  res.chunked(true);
  http::response_serializer<http::empty_body> sr{res};
  if (auto [ec, n] = co_await http::async_write_header(s, sr, use_ec); ec) co_return false;

  const bool cut = d.fault_kind == fault::cut;
  const bool raise = d.fault_kind == fault::stream_exception;
  // A fault fires after the prefix events and `after` content deltas (default: half of them).
  const std::size_t fire_at =
      script.prefix() +
      std::min<std::size_t>(script.deltas(),
                            d.after ? static_cast<std::size_t>(*d.after) : script.deltas() / 2);
  const std::size_t end = (cut || raise) ? fire_at : script.size();
  const std::uint64_t pace = d.pace_ms.value_or(0);

  // Paced events are written one by one so the pacing reaches the client. Unpaced events are
  // still separate HTTP chunks and event-stream frames, but leave in one write: a stream costs one
  // syscall rather than one per event, which matters when the simulator is a benchmark upstream.
  const bool paced = pace > 0;
  timing t;
  std::string frame;
  std::string out;
  frame.reserve(512);
  out.reserve(paced ? 1024 : 512 * script.size());
  for (std::size_t i = 0; i < end; ++i) {
    if (i > 0 && paced) co_await sleep_ms(pace);
    t.latency_ms = ms_since(t0);
    if (i == 0) t.first_byte_ms = t.latency_ms;
    frame.clear();
    script.render(i, t, frame);
    append_chunk(out, frame);
    if (paced && !co_await write_out(s, out)) co_return false;
  }
  if (end > 0 && (cut || raise) && paced) co_await sleep_ms(pace);
  if (cut) {
    co_await write_out(s, out);
    close_transport(s);
    co_return false;
  }
  if (raise) {
    const std::string type =
        d.exception_type.empty() ? "modelStreamErrorException" : d.exception_type;
    append_chunk(out, stream_exception_frame(type, "Simulated " + type + " mid-stream."));
  }
  out.append("0\r\n\r\n");
  co_return co_await write_out(s, out) && req.keep_alive();
}

// The simulator's own routes and unknown operations: answered before authentication.
std::optional<reply> unauthenticated_reply(shared_state& st, const sim_route& route,
                                           const request& req) {
  switch (route.op) {
    case sim_op::stats: return ok_reply(stats_body(st));
    case sim_op::reset:
      for (auto& c : st.per_op) c.store(0, std::memory_order_relaxed);
      st.auth_failures = 0;
      st.faults = 0;
      return ok_reply("{}");
    case sim_op::unknown:
      return make_error(404, "UnknownOperationException",
                        "Unknown operation: " + std::string(req.method_string()) + " " +
                            std::string(req.target()));
    default: return std::nullopt;
  }
}

// Refuses a request that fails authentication (counted) or whose path encoding is malformed.
std::optional<reply> refusal(shared_state& st, const sim_route& route, const request& req) {
  if (auto refused = authenticate(st, req)) {
    st.auth_failures.fetch_add(1, std::memory_order_relaxed);
    return refused;
  }
  if (route.bad_encoding) return make_error(400, "ValidationException", "Malformed path encoding.");
  return std::nullopt;
}

// The operations answered without a model plan: bidirectional streams (refused), guardrails and
// async invocations.
std::optional<reply> planless_reply(worker& w, const sim_route& route, const request& req,
                                    const directive& d) {
  switch (route.op) {
    case sim_op::invoke_model_with_bidirectional_stream:
      return make_error(400, "ValidationException",
                        "InvokeModelWithBidirectionalStream requires HTTP/2; the simulator speaks "
                        "HTTP/1.1.");
    case sim_op::apply_guardrail: return ok_reply(apply_guardrail_body(d));
    case sim_op::invoke_guardrail_checks: return ok_reply(invoke_guardrail_checks_body(req.body()));
    case sim_op::start_async_invoke: return start_async(w, req.body());
    case sim_op::get_async_invoke: return get_async(*w.shared, route.resource);
    case sim_op::list_async_invokes: return list_async(*w.shared, req.target());
    default: return std::nullopt;
  }
}

// Embeddings models neither converse nor stream.
std::optional<reply> unsupported_model_reply(model_family fam, sim_op op) {
  const bool converse = op == sim_op::converse || op == sim_op::converse_stream;
  if (fam != model_family::titan_embed || !(converse || is_stream(op))) return std::nullopt;
  return make_error(400, "ValidationException",
                    converse ? "This action doesn't support the model that you provided. Try again "
                               "with a supported text or chat model."
                             : "The model is unsupported for streaming.");
}

// Served tier: the directive's, else the one the request asked for (header for InvokeModel*,
// body for Converse*). Latency mode likewise echoes the request.
served_config served_for(const request& req, const directive& d, const request_facts& facts,
                         bool converse) {
  served_config served;
  served.tier = d.tier;
  const std::string_view hdr_tier = req["X-Amzn-Bedrock-Service-Tier"];
  const std::string_view hdr_latency = req["X-Amzn-Bedrock-PerformanceConfig-Latency"];
  if (served.tier.empty()) served.tier = converse ? facts.tier : std::string(hdr_tier);
  served.latency = converse ? facts.latency : std::string(hdr_latency);
  if (served.latency.empty() && !hdr_latency.empty()) served.latency = std::string(hdr_latency);
  return served;
}

extra_headers served_headers(const served_config& served) {
  extra_headers extra;
  if (!served.tier.empty()) extra.emplace_back("X-Amzn-Bedrock-Service-Tier", served.tier);
  if (!served.latency.empty()) {
    extra.emplace_back("X-Amzn-Bedrock-PerformanceConfig-Latency", served.latency);
  }
  return extra;
}

// InvokeModel's usage headers; cache counts only when non-zero.
void add_invoke_headers(extra_headers& headers, const plan& p, const timing& t) {
  headers.emplace_back("X-Amzn-Bedrock-Input-Token-Count", std::to_string(p.input));
  headers.emplace_back("X-Amzn-Bedrock-Output-Token-Count", std::to_string(p.output));
  headers.emplace_back("X-Amzn-Bedrock-Invocation-Latency", std::to_string(t.latency_ms));
  if (p.cache_read != 0) {
    headers.emplace_back("X-Amzn-Bedrock-Cache-Read-Input-Token-Count",
                         std::to_string(p.cache_read));
  }
  if (p.cache_write != 0) {
    headers.emplace_back("X-Amzn-Bedrock-Cache-Write-Input-Token-Count",
                         std::to_string(p.cache_write));
  }
}

// A model operation's answer: a whole reply, or for a stream the script and, in `whole`, only
// the response headers.
struct model_answer {
  reply whole;
  std::optional<stream_script> script;
};

model_answer answer_model(worker& w, const request& req, const sim_route& route, const directive& d,
                          std::string_view model_body, std::chrono::steady_clock::time_point t0) {
  const model_family fam = family_of(route.model_id);
  const request_facts facts = scan_request(model_body);
  const plan p = make_plan(model_body, d, facts, fam, route.op);
  if (route.op == sim_op::count_tokens) return {ok_reply(count_tokens_body(p)), std::nullopt};
  if (auto r = unsupported_model_reply(fam, route.op)) return {std::move(*r), std::nullopt};

  const bool converse = route.op == sim_op::converse || route.op == sim_op::converse_stream;
  const served_config served = served_for(req, d, facts, converse);
  reply r;
  r.headers = served_headers(served);
  const bool anthropic_like = fam == model_family::anthropic || fam == model_family::generic;
  std::string message_id = anthropic_like ? "msg_bdrk_" + w.ids.base62(24) : std::string{};
  if (is_stream(route.op)) {
    if (route.op == sim_op::invoke_model_with_response_stream) {
      r.headers.emplace_back("X-Amzn-Bedrock-Content-Type", "application/json");
    }
    return {std::move(r),
            stream_script(route.op, fam, route.model_id, p, served, std::move(message_id))};
  }
  r.cut = d.fault_kind == fault::cut;
  const timing t{ms_since(t0), ms_since(t0)};
  if (converse) {
    r.body = converse_body(p, t, served);
  } else {
    r.body = invoke_body(fam, route.model_id, p, facts, message_id);
    add_invoke_headers(r.headers, p, t);
  }
  return {std::move(r), std::nullopt};
}

// Answers one request. Returns whether the connection stays open.
template <class Stream>
awaitable<bool> handle(Stream& s, worker& w, const request& req) {
  shared_state& st = *w.shared;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string request_id = w.ids.uuid();
  const sim_route route = parse_route(req.method_string(), req.target());
  st.per_op[static_cast<std::size_t>(route.op)].fetch_add(1, std::memory_order_relaxed);
  if (auto r = unauthenticated_reply(st, route, req)) {
    co_return co_await write_reply(s, req, request_id, std::move(*r));
  }
  if (auto r = refusal(st, route, req)) {
    co_return co_await write_reply(s, req, request_id, std::move(*r));
  }

  const std::string_view raw_body = req.body();
  const std::string count_body =
      route.op == sim_op::count_tokens ? count_tokens_model_body(raw_body) : std::string{};
  const std::string_view model_body = route.op == sim_op::count_tokens ? count_body : raw_body;
  const auto parsed = parse_directive(model_body);
  if (!parsed) {
    co_return co_await write_reply(s, req, request_id,
                                   make_error(400, "ValidationException", parsed.error().message));
  }
  const directive& d = *parsed;

  co_await sleep_ms(head_delay_ms(st.opt, d));
  if (counts_as_fault(d)) st.faults.fetch_add(1, std::memory_order_relaxed);
  if (d.fault_kind == fault::drop) {
    close_transport(s);
    co_return false;
  }
  if (auto r = directive_error_reply(d)) {
    co_return co_await write_reply(s, req, request_id, std::move(*r));
  }
  if (auto r = planless_reply(w, route, req, d)) {
    co_return co_await write_reply(s, req, request_id, std::move(*r));
  }
  model_answer a = answer_model(w, req, route, d, model_body, t0);
  if (a.script) {
    co_return co_await write_stream(s, req, request_id, std::move(a.whole.headers),
                                    std::move(*a.script), d, t0);
  }
  co_return co_await write_reply(s, req, request_id, std::move(a.whole));
}
template <class Stream>
awaitable<void> serve(Stream& s, worker& w) {
  beast::flat_buffer buffer;
  for (;;) {
    // A fresh parser per request (Beast parsers are single-use); the buffer carries pipelined
    // bytes over to the next request.
    http::request_parser<http::string_body> parser;
    parser.body_limit(max_body_bytes);
    parser.header_limit(max_header_bytes);
    if (auto [ec, n] = co_await http::async_read_header(s, buffer, parser, use_ec); ec) break;
    if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      http::response<http::empty_body> cont{http::status::continue_, 11};
      if (auto [ec, n] = co_await http::async_write(s, cont, use_ec); ec) break;
    }
    if (auto [ec, n] = co_await http::async_read(s, buffer, parser, use_ec); ec) {
      if (ec == http::error::body_limit) {
        request req = parser.release();
        co_await write_reply(s, req, w.ids.uuid(),
                             make_error(413, "ValidationException", "Request body too large."));
      }
      break;
    }
    const request req = parser.release();
    if (!co_await handle(s, w, req)) co_return;
  }
  close_transport(s);
}

awaitable<void> plain_session(tcp_socket sock, worker* w) { co_await serve(sock, *w); }

awaitable<void> tls_session(tcp_socket sock, worker* w) {
  tls_stream stream(std::move(sock), *w->shared->tls);
  if (auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, use_ec); ec) co_return;
  co_await serve(stream, *w);
}

awaitable<void> accept_loop(worker* w) {
  for (;;) {
    auto [ec, sock] = co_await w->acceptor.async_accept(use_ec);
    if (ec == net::error::operation_aborted || !w->acceptor.is_open()) co_return;
    if (ec) {
      // Out of descriptors or similar: back off instead of spinning.
      co_await sleep_ms(10);
      continue;
    }
    w->shared->connections.fetch_add(1, std::memory_order_relaxed);
    error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    if (w->shared->tls) {
      net::co_spawn(w->ioc.get_executor(), tls_session(std::move(sock), w), net::detached);
    } else {
      net::co_spawn(w->ioc.get_executor(), plain_session(std::move(sock), w), net::detached);
    }
  }
}

int select_http11(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                  unsigned int inlen, void*) {
  // Only HTTP/1.1 is spoken; pick it when offered, else continue without ALPN.
  static constexpr unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, http11, sizeof(http11), in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// The server context for --tls-cert / --tls-key: TLS 1.2 and up, ALPN answers http/1.1.
boost::system::result<std::unique_ptr<ssl::context>, startup_error> make_tls_context(
    const options& opt) {
  auto tls = std::make_unique<ssl::context>(ssl::context::tls_server);
  error_code ec;
  tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  tls->use_certificate_chain_file(opt.tls_cert, ec);
  if (!ec) tls->use_private_key_file(opt.tls_key, ssl::context::pem, ec);
  if (ec) return startup_error{"cannot load TLS certificate/key: " + ec.message()};
  SSL_CTX_set_alpn_select_cb(tls->native_handle(), select_http11, nullptr);
  return tls;
}

error_code listen_on(tcp_acceptor& acceptor, const tcp::endpoint& ep) {
  error_code ec;
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) {
    // Every worker listens on the same port; the kernel spreads connections across them.
    const int one = 1;
    if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
      ec = error_code(errno, boost::system::system_category());
    }
  }
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  return ec;
}

// One listening worker per --threads; with --listen port 0 the first picks the port the others
// then share.
boost::system::result<std::vector<std::unique_ptr<worker>>, startup_error> open_workers(
    shared_state& st, const net::ip::address& address) {
  const options& opt = st.opt;
  std::vector<std::unique_ptr<worker>> workers;
  unsigned short port = opt.port;
  for (unsigned i = 0; i < opt.threads; ++i) {
    auto w = std::make_unique<worker>(st, opt.seed * 0x100000001b3ULL + i);
    if (const error_code ec = listen_on(w->acceptor, tcp::endpoint(address, port)); ec) {
      return startup_error{"cannot listen on " + opt.host + ":" + std::to_string(port) + ": " +
                           ec.message()};
    }
    port = w->acceptor.local_endpoint().port();
    workers.push_back(std::move(w));
  }
  return workers;
}

// Written to a temporary name and renamed, so a reader never sees a partial port.
boost::system::result<void, startup_error> write_port_file(const std::string& path,
                                                           unsigned short port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << port << "\n";
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return startup_error{"cannot write --port-file " + path};
  }
  return {};
}

// Runs the workers until SIGINT or SIGTERM: the first on this thread, each other on its own.
void run_workers(const std::vector<std::unique_ptr<worker>>& workers) {
  for (const auto& w : workers) {
    net::co_spawn(w->ioc.get_executor(), accept_loop(w.get()), net::detached);
  }
  net::signal_set signals(workers[0]->ioc, SIGINT, SIGTERM);
  signals.async_wait([&workers](const error_code& e, int) {
    if (e) return;
    for (const auto& w : workers) w->ioc.stop();
  });

  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < workers.size(); ++i) {
    threads.emplace_back([w = workers[i].get()] { w->ioc.run(); });
  }
  workers[0]->ioc.run();
  for (const auto& w : workers) w->ioc.stop();
  for (auto& t : threads) t.join();
}

void report(const startup_error& e) {
  std::cerr << "bedrock-sim: " << e.message << "\n";
  if (e.show_usage) usage(std::cerr);
}

// Exit status: 0 after SIGINT / SIGTERM or --help, 2 for a bad command line or listen address,
// 1 when a file or the socket cannot be used.
int run(int argc, char** argv) {
  auto parsed = parse_args(argc, argv);
  if (!parsed) {
    report(parsed.error());
    return 2;
  }
  if (parsed->help) {
    usage(std::cout);
    return 0;
  }
  shared_state st;
  st.opt = std::move(parsed->opt);
  const options& opt = st.opt;
  if (!opt.tls_cert.empty()) {
    auto tls = make_tls_context(opt);
    if (!tls) {
      report(tls.error());
      return 1;
    }
    st.tls = std::move(*tls);
  }
  error_code ec;
  const auto address = net::ip::make_address(opt.host, ec);
  if (ec) {
    report(startup_error{"bad listen address " + opt.host});
    return 2;
  }
  const auto workers = open_workers(st, address);
  if (!workers) {
    report(workers.error());
    return 1;
  }
  const unsigned short port = workers->back()->acceptor.local_endpoint().port();
  if (!opt.port_file.empty()) {
    if (auto written = write_port_file(opt.port_file, port); !written) {
      report(written.error());
      return 1;
    }
  }
  std::cout << "bedrock-sim listening on " << opt.host << ":" << port << std::endl;
  run_workers(*workers);
  return 0;
}

}  // namespace
}  // namespace bedrock_meter::simulator

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  return bedrock_meter::simulator::run(argc, argv);
}
