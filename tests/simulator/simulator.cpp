// bedrock-sim: a fast, deterministic, fault-injecting stand-in for Amazon Bedrock Runtime.
// The server half: Beast HTTP/1.1 (optionally TLS), one io_context and SO_REUSEPORT acceptor per
// thread, C++20 coroutines. What to answer is decided by the pure half (sim_logic reads the
// request, sim_bodies writes the answer) and the command line by sim_options; this file only does
// I/O, auth, delays and faults. See docs/simulator.md.
#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <sys/socket.h>

#include <nghttp2/nghttp2.h>

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
#include "io/nghttp2_output.hpp"
#include "tests/simulator/sim_bidi.hpp"
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
  std::atomic<std::uint64_t> http2_connections{0};
  // InvokeModelWithBidirectionalStream: frames read from request streams, those whose envelope
  // signature was checked and held, and those refused by the envelope check.
  std::atomic<std::uint64_t> bidi_input_events{0};
  std::atomic<std::uint64_t> bidi_verified_events{0};
  std::atomic<std::uint64_t> bidi_signature_failures{0};
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

// How a request was let in; for SigV4 also what continues its event signature chain.
struct admission {
  std::optional<reply> refusal;  ///< set when refused
  bool sigv4 = false;            ///< signed with an issued key (not --no-auth, not a bearer token)
  std::string secret;            ///< the signing key's secret
  std::string region;            ///< the credential scope's region
};

// Authenticates as AWS does: a SigV4 signature for service `bedrock` in the configured region,
// or a Bedrock API key as `Authorization: Bearer`. `headers` as received (an HTTP/2 request's
// `:authority` among them); `payload_hash` is the body's hash, or the streaming literal.
admission admit(const options& opt, std::string_view method, std::string_view target,
                const aws::sigv4::header_list& headers, std::string_view auth,
                std::string_view payload_hash) {
  admission a;
  if (opt.no_auth) return a;
  if (auth.starts_with("Bearer ")) {
    const std::string_view token = auth.substr(7);
    if (!opt.bearer_token.empty() && aws::sigv4::constant_time_equal(token, opt.bearer_token)) {
      return a;
    }
    a.refusal = make_error(403, "AccessDeniedException",
                           "Authentication failed: Please make sure your API Key is valid.");
    return a;
  }
  if (auth.empty()) {
    a.refusal =
        make_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token");
    return a;
  }
  aws::sigv4::verify_options vo;
  vo.service = "bedrock";
  vo.now = std::chrono::system_clock::now();
  const auto lookup = [&opt](std::string_view id) -> const aws::sigv4::issued_key* {
    auto it = opt.keys.find(id);
    return it == opt.keys.end() ? nullptr : &it->second;
  };
  const auto v = aws::sigv4::verify(method, target, headers, payload_hash, lookup, vo);
  a.refusal = signature_refusal(v, opt.region);
  if (!a.refusal) {
    a.sigv4 = true;
    a.secret = opt.keys.find(v.access_key_id)->second.secret_access_key;
    a.region = v.region;
  }
  return a;
}

std::optional<reply> authenticate(const shared_state& st, const request& req) {
  if (st.opt.no_auth) return std::nullopt;
  aws::sigv4::header_list headers;
  headers.reserve(16);
  for (const auto& f : req) {
    headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  }
  return admit(st.opt, req.method_string(), req.target(), headers, req[http::field::authorization],
               aws::sigv4::sha256_hex(req.body()))
      .refusal;
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
  out.append(",\"http2_connections\":").append(std::to_string(st.http2_connections.load()));
  out.append(",\"bidi_input_events\":").append(std::to_string(st.bidi_input_events.load()));
  out.append(",\"bidi_verified_events\":").append(std::to_string(st.bidi_verified_events.load()));
  out.append(",\"bidi_signature_failures\":")
      .append(std::to_string(st.bidi_signature_failures.load()));
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
      st.bidi_input_events = 0;
      st.bidi_verified_events = 0;
      st.bidi_signature_failures = 0;
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
                        "InvokeModelWithBidirectionalStream requires HTTP/2 (prior knowledge on "
                        "cleartext, or ALPN h2 over TLS).");
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
// Serves HTTP/1.1 until the client leaves; `initial` holds bytes already read from the client.
template <class Stream>
awaitable<void> serve(Stream& s, worker& w, std::string_view initial = {}) {
  beast::flat_buffer buffer;
  if (!initial.empty()) {
    buffer.commit(net::buffer_copy(buffer.prepare(initial.size()), net::buffer(initial)));
  }
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

// ---- HTTP/2: InvokeModelWithBidirectionalStream ----
//
// One coroutine pair per connection owns the socket, as in the proxy's HTTP/2 sessions: the
// reader feeds nghttp2_session_mem_recv, the writer drains nghttp2_session_mem_send. A stream's
// request headers start its coroutine at once (the request body is a stream of events, answered
// as they arrive); its DATA is queued on the stream and consumed from the flow-control window
// only when the coroutine takes it, so a client cannot make the simulator buffer more than a
// window. Responses go out through a deferred data provider.

constexpr std::string_view h2_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::size_t h2_max_header_list_bytes = 64 * 1024;
constexpr std::uint32_t h2_max_concurrent_streams = 128;
constexpr auto h2_write_timeout = std::chrono::seconds(30);  // a client window shut this long

struct h2_stream {
  h2_stream(const executor& ex, std::int32_t sid) : id(sid), wake(ex) {}
  std::int32_t id;
  std::string method, path, authority;
  aws::sigv4::header_list headers;
  std::size_t header_bytes = 0;
  bool dispatched = false;
  bool reading = false;  // the stream's coroutine takes its DATA; otherwise it is dropped
  bool in_end = false;   // the client's END_STREAM arrived
  bool closed = false;   // closed by either side, or the connection is gone
  std::string in;        // request bytes not taken yet (not yet consumed from the window)
  // Response side: bytes nghttp2 has not framed yet, and the end of the response.
  std::string out;
  std::size_t out_off = 0;
  bool eof = false;
  bool deferred = false;
  steady_timer wake;  // cancelled when input arrives, output was framed, or the stream closed
};

template <class Stream>
class h2_connection {
 public:
  h2_connection(Stream& s, worker& w)
      : s_(s), w_(w), writer_wake_(w.ioc.get_executor()), idle_wake_(w.ioc.get_executor()) {}
  h2_connection(const h2_connection&) = delete;
  h2_connection& operator=(const h2_connection&) = delete;
  ~h2_connection() {
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  bool init() {
    nghttp2_session_callbacks* cbs = nullptr;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return false;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &on_stream_close);
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);  // consumed when the stream takes it
    const int rv = nghttp2_session_server_new2(&session_, cbs, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) return false;
    const std::array<nghttp2_settings_entry, 2> iv{{
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, h2_max_concurrent_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
         static_cast<std::uint32_t>(h2_max_header_list_bytes)},
    }};
    return nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv.data(), iv.size()) == 0;
  }

  awaitable<void> run(std::string initial) {
    if (!initial.empty() && !feed(initial)) read_done_ = true;
    ++tasks_;
    net::co_spawn(w_.ioc.get_executor(), write_loop(this), net::detached);
    co_await read_loop();
    // Stream coroutines and the writer reference this connection: wait for them.
    while (tasks_ > 0 || active_ > 0) {
      signal_write();
      idle_wake_.expires_at(steady_timer::time_point::max());
      co_await idle_wake_.async_wait(use_ec);
    }
  }

 private:
  bool feed(std::string_view bytes) {
    const auto rv = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    if (rv < 0) {
      nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
      return false;
    }
    return true;
  }

  awaitable<void> read_loop() {
    std::vector<char> buf(std::size_t{16} * 1024);
    while (!dead_ && !read_done_) {
      auto [ec, n] = co_await s_.async_read_some(net::buffer(buf), use_ec);
      if (ec) {
        fail();  // the client left: every open stream ends quietly
        break;
      }
      if (!feed(std::string_view(buf.data(), n))) read_done_ = true;
      signal_write();
      if (nghttp2_session_want_read(session_) == 0) read_done_ = true;
    }
    read_done_ = true;
    signal_write();
  }

  static awaitable<void> write_loop(h2_connection* self) {
    co_await self->write_loop_impl();
    --self->tasks_;
    self->idle_wake_.cancel();
  }

  awaitable<void> write_loop_impl() {
    std::string out;
    for (;;) {
      write_pending_ = false;
      if (dead_) break;
      out.clear();
      if (!io::take_h2_output(session_, out)) {
        fail();
        co_return;
      }
      if (!out.empty()) {
        auto [ec, n] = co_await net::async_write(s_, net::buffer(out), use_ec);
        if (ec) {
          fail();
          break;
        }
        continue;
      }
      const bool want_read = nghttp2_session_want_read(session_) != 0;
      const bool want_write = nghttp2_session_want_write(session_) != 0;
      if (!want_read && !want_write) {
        if (active_ > 0) fail();  // nothing can be sent any more: release the streams
        break;
      }
      if (read_done_ && !want_write && active_ == 0) break;
      if (write_pending_) continue;
      writer_wake_.expires_at(steady_timer::time_point::max());
      co_await writer_wake_.async_wait(use_ec);
    }
  }

  void signal_write() {
    write_pending_ = true;
    writer_wake_.cancel();
  }

  // The connection is unusable: both loops stop, every stream is closed and woken.
  void fail() {
    if (dead_) return;
    dead_ = true;
    error_code ignored;
    beast::get_lowest_layer(s_).cancel(ignored);
    for (auto& [id, st] : streams_) {
      st->closed = true;
      st->wake.cancel();
    }
    for (auto& st : running_) {
      st->closed = true;
      st->wake.cancel();
    }
    signal_write();
  }

  h2_stream* find(std::int32_t id) {
    const auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  // --- nghttp2 callbacks (user_data is the connection) ---

  static h2_connection& self(void* p) { return *static_cast<h2_connection*>(p); }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& c = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    c.streams_.emplace(frame->hd.stream_id,
                       std::make_shared<h2_stream>(c.w_.ioc.get_executor(), frame->hd.stream_id));
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                       std::uint8_t, void* user) {
    auto& c = self(user);
    h2_stream* s = c.find(frame->hd.stream_id);
    if (s == nullptr || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;  // trailers are ignored
    }
    s->header_bytes += namelen + valuelen + 32;
    if (s->header_bytes > h2_max_header_list_bytes) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    const std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":method") {
      s->method = std::move(v);
    } else if (n == ":path") {
      s->path = std::move(v);
    } else if (n == ":authority") {
      s->authority = std::move(v);
    } else if (!n.starts_with(':')) {
      s->headers.emplace_back(std::string(n), std::move(v));  // nghttp2 refuses uppercase names
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                           const std::uint8_t* data, std::size_t len, void* user) {
    auto& c = self(user);
    h2_stream* s = c.find(stream_id);
    if (s != nullptr && s->reading) {
      s->in.append(reinterpret_cast<const char*>(data), len);
      s->wake.cancel();
    } else {
      nghttp2_session_consume(session, stream_id, len);  // nobody reads it: dropped
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& c = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    const auto it = c.streams_.find(frame->hd.stream_id);
    if (it == c.streams_.end()) return 0;
    const std::shared_ptr<h2_stream>& s = it->second;
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      s->in_end = true;
      s->wake.cancel();
    }
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
        !s->dispatched) {
      c.dispatch(s);
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t, void* user) {
    auto& c = self(user);
    const auto it = c.streams_.find(stream_id);
    if (it == c.streams_.end()) return 0;
    it->second->closed = true;
    it->second->wake.cancel();
    c.streams_.erase(it);  // a running stream coroutine keeps its own reference
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* s = static_cast<h2_stream*>(source->ptr);
    const std::size_t left = s->out.size() - s->out_off;
    if (left > 0) {
      const std::size_t n = std::min(left, length);
      std::memcpy(buf, s->out.data() + s->out_off, n);
      s->out_off += n;
      if (s->out_off == s->out.size()) {
        s->out.clear();
        s->out_off = 0;
        s->wake.cancel();  // every queued byte is framed now
        if (s->eof) *flags |= NGHTTP2_DATA_FLAG_EOF;
      }
      return static_cast<ssize_t>(n);
    }
    if (s->eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }

  // --- streams ---

  void dispatch(const std::shared_ptr<h2_stream>& s) {
    s->dispatched = true;
    if (!s->authority.empty()) {
      // HTTP/2 clients may sign `:authority` instead of `host` (the JS SDK does): both are
      // offered to the verifier, which uses the one named in SignedHeaders.
      const bool has_host = std::any_of(s->headers.begin(), s->headers.end(),
                                        [](const auto& h) { return h.first == "host"; });
      if (!has_host) s->headers.emplace_back("host", s->authority);
      s->headers.emplace_back(":authority", s->authority);
    }
    ++active_;
    running_.push_back(s);
    net::co_spawn(w_.ioc.get_executor(), run_stream(this, s), net::detached);
  }

  static awaitable<void> run_stream(h2_connection* c, std::shared_ptr<h2_stream> s) {
    co_await c->serve_stream(*s);
    s->reading = false;
    if (!s->in.empty() && !c->dead_) {
      nghttp2_session_consume(c->session_, s->id, s->in.size());
      s->in.clear();
    }
    c->running_.erase(std::remove(c->running_.begin(), c->running_.end(), s), c->running_.end());
    --c->active_;
    c->signal_write();
    c->idle_wake_.cancel();
  }

  // Submits the response head; the body follows through `send` / `finish`.
  bool submit_head(h2_stream& s, unsigned status, const std::string& request_id,
                   std::string_view content_type, const extra_headers& extra) {
    std::vector<std::pair<std::string, std::string>> owned;
    owned.reserve(extra.size() + 3);
    owned.emplace_back(":status", std::to_string(status));
    owned.emplace_back("content-type", std::string(content_type));
    owned.emplace_back("x-amzn-requestid", request_id);
    for (const auto& [k, v] : extra) {
      std::string name = k;
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      owned.emplace_back(std::move(name), v);
    }
    std::vector<nghttp2_nv> nv;
    nv.reserve(owned.size());
    for (auto& [k, v] : owned) {
      nv.push_back(nghttp2_nv{reinterpret_cast<std::uint8_t*>(k.data()),
                              reinterpret_cast<std::uint8_t*>(v.data()), k.size(), v.size(),
                              NGHTTP2_NV_FLAG_NONE});
    }
    nghttp2_data_provider prd{};
    prd.source.ptr = &s;
    prd.read_callback = &read_body;
    const bool ok = nghttp2_submit_response(session_, s.id, nv.data(), nv.size(), &prd) == 0;
    signal_write();
    return ok;
  }

  void resume(h2_stream& s) {
    if (s.deferred) {
      s.deferred = false;
      nghttp2_session_resume_data(session_, s.id);
    }
    signal_write();
  }

  // Queues bytes and waits until nghttp2 has framed them all (the client's flow-control window
  // is the back-pressure). False when the stream or connection is gone, or stayed shut too long.
  awaitable<bool> send(h2_stream& s, std::string_view bytes) {
    if (s.closed || dead_) co_return false;
    s.out.append(bytes);
    resume(s);
    const auto deadline = std::chrono::steady_clock::now() + h2_write_timeout;
    while (s.out_off < s.out.size() && !s.closed && !dead_) {
      s.wake.expires_at(deadline);
      co_await s.wake.async_wait(use_ec);
      if (std::chrono::steady_clock::now() >= deadline) {
        reset(s);
        co_return false;
      }
    }
    co_return !s.closed && !dead_;
  }

  void finish(h2_stream& s) {
    if (s.closed || dead_) return;
    s.eof = true;
    resume(s);
  }

  void reset(h2_stream& s) {
    if (s.closed || dead_) return;
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_INTERNAL_ERROR);
    signal_write();
  }

  // A whole answer (errors, stats): head, body, END_STREAM.
  void answer(h2_stream& s, const std::string& request_id, reply r) {
    if (!submit_head(s, static_cast<unsigned>(r.status), request_id, r.content_type, r.headers)) {
      return;
    }
    s.out = std::move(r.body);
    finish(s);
  }

  awaitable<void> serve_stream(h2_stream& s) {
    shared_state& st = *w_.shared;
    const std::string request_id = w_.ids.uuid();
    const sim_route route = parse_route(s.method, s.path);
    st.per_op[static_cast<std::size_t>(route.op)].fetch_add(1, std::memory_order_relaxed);
    switch (route.op) {
      case sim_op::stats: answer(s, request_id, ok_reply(stats_body(st))); co_return;
      case sim_op::unknown:
        answer(s, request_id,
               make_error(404, "UnknownOperationException",
                          "Unknown operation: " + s.method + " " + s.path));
        co_return;
      case sim_op::invoke_model_with_bidirectional_stream: break;
      default:
        answer(s, request_id,
               make_error(400, "ValidationException",
                          "Over HTTP/2 the simulator serves only "
                          "InvokeModelWithBidirectionalStream and /__sim/stats; use HTTP/1.1 for " +
                              std::string(op_name(route.op)) + "."));
        co_return;
    }
    std::string_view auth;
    for (const auto& [k, v] : s.headers) {
      if (k == "authorization") auth = v;
    }
    admission a = admit(st.opt, s.method, s.path, s.headers, auth, streaming_payload_hash);
    if (a.refusal) {
      st.auth_failures.fetch_add(1, std::memory_order_relaxed);
      answer(s, request_id, std::move(*a.refusal));
      co_return;
    }
    if (route.bad_encoding) {
      answer(s, request_id, make_error(400, "ValidationException", "Malformed path encoding."));
      co_return;
    }
    if (!is_sonic_model(route.model_id)) {
      answer(s, request_id,
             make_error(400, "ValidationException",
                        "The model " + route.model_id +
                            " does not support InvokeModelWithBidirectionalStream."));
      co_return;
    }
    co_await sleep_ms(st.opt.latency_ms);
    if (s.closed || dead_) co_return;
    if (!submit_head(s, 200, request_id, "application/vnd.amazon.eventstream", {})) co_return;
    s.reading = true;
    const std::optional<std::string> seed = authorization_signature(auth);
    envelope_opener opener =
        a.sigv4 ? envelope_opener::verifying(a.secret, a.region, seed.value_or(std::string{}))
                : envelope_opener::accepting();
    co_await converse(s, opener, a.sigv4);
  }

  // Sends one step's frames (pacing them), then ends or resets the stream when the step says.
  // False when the session is over, either way.
  awaitable<bool> play(h2_stream& s, sonic_session::step step, std::uint64_t pace_ms,
                       std::uint64_t& sent) {
    for (const auto& frame : step.frames) {
      if (sent > 0 && pace_ms > 0) co_await sleep_ms(pace_ms);
      ++sent;
      if (!co_await send(s, frame)) co_return false;
    }
    if (step.reset) {
      reset(s);
      co_return false;
    }
    if (step.end) {
      finish(s);
      co_return false;
    }
    co_return true;
  }

  // The full-duplex loop: frames are answered as they arrive, not after the request ends.
  awaitable<void> converse(h2_stream& s, envelope_opener& opener, bool verifying) {
    shared_state& st = *w_.shared;
    sonic_session session(id_source(w_.ids.next()));
    frame_splitter splitter(max_bidi_envelope_bytes);
    std::uint64_t sent = 0;  // output frames so far: pacing waits before every one but the first
    for (;;) {
      if (s.closed || dead_) co_return;
      if (!s.in.empty()) {
        splitter.append(s.in);
        nghttp2_session_consume(session_, s.id, s.in.size());
        signal_write();
        s.in.clear();
      }
      for (;;) {
        auto next = splitter.next();
        if (!next) {
          const sonic_session::step refused =
              session.fail("validationException", next.error().message);
          co_await play(s, refused, 0, sent);
          co_return;
        }
        if (!*next) break;
        st.bidi_input_events.fetch_add(1, std::memory_order_relaxed);
        auto opened = opener.open(**next);
        if (!opened) {
          if (verifying) st.bidi_signature_failures.fetch_add(1, std::memory_order_relaxed);
          const sonic_session::step refused =
              session.fail("validationException", opened.error().message);
          co_await play(s, refused, 0, sent);
          co_return;
        }
        if (opened->verified) st.bidi_verified_events.fetch_add(1, std::memory_order_relaxed);
        if (opened->inner.empty()) continue;  // an empty envelope closes the signed input
        if (opened->inner.size() > max_bidi_event_bytes) {
          const sonic_session::step refused = session.fail(
              "validationException", "event of " + std::to_string(opened->inner.size()) +
                                         " bytes exceeds the limit of " +
                                         std::to_string(max_bidi_event_bytes) + " bytes");
          co_await play(s, refused, 0, sent);
          co_return;
        }
        auto event = parse_input_event(opened->inner);
        sonic_session::step step = event
                                       ? session.on_event(*event)
                                       : session.fail("validationException", event.error().message);
        if (!co_await play(s, std::move(step), session.pace_ms(), sent)) co_return;
      }
      if (s.closed || dead_) co_return;
      if (s.in.empty() && s.in_end) {
        sonic_session::step last = session.on_input_end();
        co_await play(s, std::move(last), session.pace_ms(), sent);
        co_return;
      }
      if (s.in.empty()) {
        s.wake.expires_at(steady_timer::time_point::max());
        co_await s.wake.async_wait(use_ec);
      }
    }
  }

  Stream& s_;
  worker& w_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<std::int32_t, std::shared_ptr<h2_stream>> streams_;
  std::vector<std::shared_ptr<h2_stream>> running_;
  steady_timer writer_wake_;
  steady_timer idle_wake_;
  int active_ = 0;  // stream coroutines running
  int tasks_ = 0;   // the writer
  bool write_pending_ = false;
  bool read_done_ = false;
  bool dead_ = false;
};

template <class Stream>
awaitable<void> serve_h2(Stream& s, worker& w, std::string initial) {
  w.shared->http2_connections.fetch_add(1, std::memory_order_relaxed);
  {
    h2_connection<Stream> conn(s, w);
    if (conn.init()) co_await conn.run(std::move(initial));
  }
  close_transport(s);
}

// Cleartext carries both protocols: a client opening with the HTTP/2 preface (prior knowledge)
// speaks HTTP/2, any other first byte means HTTP/1.1. The first read is handed on either way, so
// an HTTP/1.1 connection costs no extra read.
awaitable<void> plain_session(tcp_socket sock, worker* w) {
  std::string first;
  std::array<char, 4096> buf{};
  for (;;) {
    auto [ec, n] = co_await sock.async_read_some(net::buffer(buf), use_ec);
    if (ec) co_return;
    first.append(buf.data(), n);
    const std::size_t k = std::min(first.size(), h2_preface.size());
    if (std::string_view(first).substr(0, k) != h2_preface.substr(0, k)) break;  // HTTP/1.x
    if (k == h2_preface.size()) {
      co_await serve_h2(sock, *w, std::move(first));
      co_return;
    }
  }
  co_await serve(sock, *w, first);
}

awaitable<void> tls_session(tcp_socket sock, worker* w) {
  tls_stream stream(std::move(sock), *w->shared->tls);
  if (auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, use_ec); ec) co_return;
  const unsigned char* alpn = nullptr;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(stream.native_handle(), &alpn, &alpn_len);
  if (alpn_len == 2 && alpn[0] == 'h' && alpn[1] == '2') {
    co_await serve_h2(stream, *w, {});
  } else {
    co_await serve(stream, *w);
  }
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

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  // h2 when the client offers it (the JS SDK), else HTTP/1.1 (boto3); without either, no ALPN.
  static constexpr unsigned char protos[] = {2,   'h', '2', 8,   'h', 't',
                                             't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, protos, sizeof(protos), in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// The server context for --tls-cert / --tls-key: TLS 1.2 and up, ALPN picks h2 or http/1.1.
boost::system::result<std::unique_ptr<ssl::context>, startup_error> make_tls_context(
    const options& opt) {
  auto tls = std::make_unique<ssl::context>(ssl::context::tls_server);
  error_code ec;
  tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  tls->use_certificate_chain_file(opt.tls_cert, ec);
  if (!ec) tls->use_private_key_file(opt.tls_key, ssl::context::pem, ec);
  if (ec) return startup_error{"cannot load TLS certificate/key: " + ec.message()};
  SSL_CTX_set_alpn_select_cb(tls->native_handle(), select_alpn, nullptr);
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
