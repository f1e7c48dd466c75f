#include "tests/simulator/sim_logic.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "tests/simulator/sim_codec.hpp"

namespace bedrock_meter::simulator {

namespace {

// The actions of `/model/{modelId}/{action}`.
constexpr std::array<std::pair<std::string_view, sim_op>, 6> k_model_actions = {{
    {"converse", sim_op::converse},
    {"converse-stream", sim_op::converse_stream},
    {"invoke", sim_op::invoke_model},
    {"invoke-with-response-stream", sim_op::invoke_model_with_response_stream},
    {"invoke-with-bidirectional-stream", sim_op::invoke_model_with_bidirectional_stream},
    {"count-tokens", sim_op::count_tokens},
}};

// Routes without path parameters: the operation for POST and for GET (unknown: not allowed).
struct fixed_route {
  std::string_view path;
  sim_op on_post;
  sim_op on_get;
};
constexpr std::array<fixed_route, 5> k_fixed_routes = {{
    {"/__sim/stats", sim_op::unknown, sim_op::stats},
    {"/__sim/reset", sim_op::reset, sim_op::unknown},
    {"/guardrail-checks/invoke", sim_op::invoke_guardrail_checks, sim_op::unknown},
    {"/async-invoke", sim_op::start_async_invoke, sim_op::list_async_invokes},
    {"/async-invoke/", sim_op::start_async_invoke, sim_op::list_async_invokes},
}};

constexpr std::array<std::string_view, 20> k_geo_prefixes = {
    "us", "eu", "apac", "jp", "au", "us-gov", "global", "ca", "sa", "ap",
    "me", "af", "il",   "mx", "uk", "in",     "kr",     "sg", "tw", "th"};

// The directive's keys that take a non-negative integer, and the fields they set.
constexpr std::array<std::pair<std::string_view, std::optional<std::uint64_t> directive::*>, 8>
    k_numeric_keys = {{
        {"input", &directive::input},
        {"output", &directive::output},
        {"cache_read", &directive::cache_read},
        {"cache_write", &directive::cache_write},
        {"events", &directive::events},
        {"pace_ms", &directive::pace_ms},
        {"first_byte_ms", &directive::first_byte_ms},
        {"after", &directive::after},
    }};

// The directive's keys whose value is taken verbatim.
constexpr std::array<std::pair<std::string_view, std::string directive::*>, 4> k_text_keys = {{
    {"exception_type", &directive::exception_type},
    {"error", &directive::error_name},
    {"tier", &directive::tier},
    {"stop", &directive::stop},
}};

constexpr std::array<std::pair<std::string_view, fault>, 12> k_faults = {{
    {"throttle", fault::throttle},
    {"error500", fault::error500},
    {"unavailable", fault::unavailable},
    {"model_timeout", fault::model_timeout},
    {"model_error", fault::model_error},
    {"validation", fault::validation},
    {"access_denied", fault::access_denied},
    {"not_found", fault::not_found},
    {"stream_exception", fault::stream_exception},
    {"cut", fault::cut},
    {"slow_first_byte", fault::slow_first_byte},
    {"drop", fault::drop},
}};

constexpr std::array<std::string_view, 6> k_max_token_keys = {
    "\"max_tokens\"",    "\"maxTokens\"",   "\"max_new_tokens\"",
    "\"maxTokenCount\"", "\"max_gen_len\"", "\"max_tokens_to_sample\""};

// Percent-decodes `raw` into `dst`; a malformed escape marks the route instead.
void decode_into(sim_route& r, std::string_view raw, std::string& dst) {
  auto d = percent_decode(raw);
  if (!d) {
    r.bad_encoding = true;
    return;
  }
  dst = std::move(*d);
}

// `rest` follows `/model/`. The model id runs to the last '/': an ARN sent with a raw '/' still
// routes.
sim_route route_model(std::string_view rest, bool post) {
  sim_route r;
  const auto slash = rest.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return r;
  const std::string_view action = rest.substr(slash + 1);
  const auto it = std::find_if(k_model_actions.begin(), k_model_actions.end(),
                               [action](const auto& a) { return a.first == action; });
  if (it == k_model_actions.end() || !post) return r;
  r.op = it->second;
  decode_into(r, rest.substr(0, slash), r.model_id);
  return r;
}

// `rest` follows `/guardrail/`: `{id}/version/{version}/apply`.
sim_route route_guardrail(std::string_view rest, bool post) {
  sim_route r;
  const auto v = rest.find("/version/");
  if (v == std::string_view::npos || !rest.ends_with("/apply") || !post) return r;
  const std::string_view id = rest.substr(0, v);
  const std::string_view ver_and_apply = rest.substr(v + 9);
  const std::string_view ver = ver_and_apply.substr(0, ver_and_apply.size() - 6);
  if (id.empty() || ver.empty() || ver.find('/') != std::string_view::npos) return r;
  r.op = sim_op::apply_guardrail;
  decode_into(r, id, r.model_id);
  decode_into(r, ver, r.resource);
  return r;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

using step = boost::system::result<void, sim_error>;

boost::system::result<std::uint64_t, sim_error> directive_number(std::string_view key,
                                                                 std::string_view val) {
  auto v = parse_uint(val);
  if (!v) {
    return sim_error{"SIM directive: '" + std::string(key) + "' needs a non-negative integer"};
  }
  return *v;
}

step set_status(directive& d, std::string_view val) {
  auto s = directive_number("status", val);
  if (!s) return s.error();
  if (*s < 100 || *s > 599) return sim_error{"SIM directive: status must be 100..599"};
  d.status = static_cast<unsigned>(*s);
  return {};
}

step set_guardrail(directive& d, std::string_view val) {
  if (val == "intervene")
    d.intervene = true;
  else if (val != "none")
    return sim_error{"SIM directive: guardrail must be intervene or none"};
  return {};
}

step set_fault(directive& d, std::string_view val) {
  const auto it = std::find_if(k_faults.begin(), k_faults.end(),
                               [val](const auto& n) { return n.first == val; });
  if (it == k_faults.end()) {
    return sim_error{"SIM directive: unknown fault '" + std::string(val) + "'"};
  }
  d.fault_kind = it->second;
  return {};
}

// Applies one `key=value` item of the directive.
step apply_item(directive& d, std::string_view key, std::string_view val) {
  for (const auto& [name, field] : k_numeric_keys) {
    if (key != name) continue;
    auto v = directive_number(key, val);
    if (!v) return v.error();
    d.*field = *v;
    return {};
  }
  for (const auto& [name, field] : k_text_keys) {
    if (key != name) continue;
    d.*field = std::string(val);
    return {};
  }
  if (key == "status") return set_status(d, val);
  if (key == "guardrail") return set_guardrail(d, val);
  if (key == "fault") return set_fault(d, val);
  return sim_error{"SIM directive: unknown key '" + std::string(key) + "'"};
}

bool is_ws(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// How often a key occurs with a non-negative integer value, and the first such value.
struct key_hits {
  std::size_t count = 0;
  std::uint64_t first = 0;
};

// Scans `body` for `"key"` used as an object key with a non-negative integer value. A key inside a
// JSON string would be preceded by a backslash (`\"key\"`), so those occurrences are skipped.
key_hits scan_numeric_key(std::string_view body, std::string_view quoted_key) {
  key_hits hits;
  std::size_t pos = 0;
  while ((pos = body.find(quoted_key, pos)) != std::string_view::npos) {
    const std::size_t key_at = pos;
    pos += quoted_key.size();
    if (key_at > 0 && body[key_at - 1] == '\\') continue;
    std::size_t i = pos;
    while (i < body.size() && is_ws(body[i])) ++i;
    if (i >= body.size() || body[i] != ':') continue;
    ++i;
    while (i < body.size() && is_ws(body[i])) ++i;
    std::size_t j = i;
    while (j < body.size() && body[j] >= '0' && body[j] <= '9') ++j;
    if (j == i) continue;
    auto v = parse_uint(body.substr(i, j - i));
    if (!v) continue;
    if (hits.count == 0) hits.first = *v;
    ++hits.count;
  }
  return hits;
}

std::optional<std::uint64_t> json_uint_at(const boost::json::value& root,
                                          std::initializer_list<std::string_view> path) {
  const boost::json::value* v = json_at(root, path);
  if (v == nullptr) return std::nullopt;
  if (const auto* i = v->if_int64(); i != nullptr && *i >= 0) return static_cast<std::uint64_t>(*i);
  if (const auto* u = v->if_uint64(); u != nullptr) return *u;
  if (const auto* d = v->if_double(); d != nullptr && *d >= 0) {
    return static_cast<std::uint64_t>(*d);
  }
  return std::nullopt;
}

std::string json_string_at(const boost::json::value& root, std::string_view a, std::string_view b) {
  const boost::json::value* leaf = json_at(root, {a, b});
  if (leaf == nullptr || !leaf->is_string()) return {};
  return std::string(leaf->get_string());
}

// The model's limit where the key scan found it ambiguous: the first of the families' places.
std::optional<std::uint64_t> json_max_tokens(const boost::json::value& root) {
  for (auto path : {std::initializer_list<std::string_view>{"inferenceConfig", "maxTokens"},
                    {"inferenceConfig", "max_new_tokens"},
                    {"max_tokens"},
                    {"textGenerationConfig", "maxTokenCount"},
                    {"max_gen_len"},
                    {"max_tokens_to_sample"}}) {
    if (auto v = json_uint_at(root, path)) return v;
  }
  return std::nullopt;
}

}  // namespace

void throw_exception_from_error(const sim_error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

std::string_view op_name(sim_op op) noexcept {
  switch (op) {
    case sim_op::converse: return "Converse";
    case sim_op::converse_stream: return "ConverseStream";
    case sim_op::invoke_model: return "InvokeModel";
    case sim_op::invoke_model_with_response_stream: return "InvokeModelWithResponseStream";
    case sim_op::invoke_model_with_bidirectional_stream:
      return "InvokeModelWithBidirectionalStream";
    case sim_op::count_tokens: return "CountTokens";
    case sim_op::apply_guardrail: return "ApplyGuardrail";
    case sim_op::invoke_guardrail_checks: return "InvokeGuardrailChecks";
    case sim_op::start_async_invoke: return "StartAsyncInvoke";
    case sim_op::get_async_invoke: return "GetAsyncInvoke";
    case sim_op::list_async_invokes: return "ListAsyncInvokes";
    case sim_op::unknown: return "UnknownOperation";
    case sim_op::stats: return "SimStats";
    case sim_op::reset: return "SimReset";
  }
  return "UnknownOperation";
}

bool is_stream(sim_op op) noexcept {
  return op == sim_op::converse_stream || op == sim_op::invoke_model_with_response_stream;
}

std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return std::nullopt;
    const int hi = hex(in[i + 1]);
    const int lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

sim_route parse_route(std::string_view method, std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  const bool post = method == "POST";
  const bool get = method == "GET";
  sim_route r;
  for (const auto& f : k_fixed_routes) {
    if (path != f.path) continue;
    r.op = post ? f.on_post : get ? f.on_get : sim_op::unknown;
    return r;
  }
  if (path.starts_with("/model/")) return route_model(path.substr(7), post);
  if (path.starts_with("/guardrail/")) return route_guardrail(path.substr(11), post);
  if (path.starts_with("/async-invoke/") && get) {
    r.op = sim_op::get_async_invoke;
    decode_into(r, path.substr(14), r.resource);
  }
  return r;
}

std::string_view base_model_id(std::string_view id) noexcept {
  if (id.starts_with("arn:")) {
    const auto slash = id.rfind('/');
    id = slash == std::string_view::npos ? id.substr(id.rfind(':') + 1) : id.substr(slash + 1);
  }
  const auto dot = id.find('.');
  if (dot != std::string_view::npos && id.find('.', dot + 1) != std::string_view::npos) {
    const std::string_view first = id.substr(0, dot);
    if (std::find(k_geo_prefixes.begin(), k_geo_prefixes.end(), first) != k_geo_prefixes.end()) {
      id.remove_prefix(dot + 1);
    }
  }
  return id;
}

model_family family_of(std::string_view model_id) noexcept {
  const std::string_view b = base_model_id(model_id);
  if (b.starts_with("anthropic.")) return model_family::anthropic;
  if (b.starts_with("amazon.nova-")) return model_family::nova;
  if (b.starts_with("amazon.titan-embed")) return model_family::titan_embed;
  if (b.starts_with("amazon.titan-text") || b.starts_with("amazon.titan-tg1"))
    return model_family::titan_text;
  if (b.starts_with("meta.llama")) return model_family::llama;
  if (b.starts_with("mistral.")) return model_family::mistral;
  return model_family::generic;
}

boost::system::result<directive, sim_error> parse_directive(std::string_view body) {
  directive d;
  const auto start = body.find("SIM{");
  if (start == std::string_view::npos) return d;
  const auto end = body.find('}', start);
  if (end == std::string_view::npos) return sim_error{"SIM directive: missing '}'"};
  std::string_view rest = body.substr(start + 4, end - start - 4);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      return sim_error{"SIM directive: expected key=value, got '" + std::string(item) + "'"};
    }
    if (auto r = apply_item(d, trim(item.substr(0, eq)), trim(item.substr(eq + 1))); !r) {
      return r.error();
    }
  }
  return d;
}

std::string count_tokens_model_body(std::string_view body) {
  if (body.find("\"invokeModel\"") == std::string_view::npos) return std::string(body);
  boost::system::error_code ec;
  const boost::json::value root = boost::json::parse(body, ec);
  if (ec) return std::string(body);
  const boost::json::value* b = json_at(root, {"input", "invokeModel", "body"});
  if (b == nullptr || !b->is_string()) return std::string(body);
  auto decoded = decode_base64(b->get_string());
  return decoded ? std::move(*decoded) : std::string(body);
}

request_facts scan_request(std::string_view body) {
  request_facts f;
  std::size_t hits = 0;
  std::uint64_t first_value = 0;
  bool disagree = false;
  for (auto key : k_max_token_keys) {
    const key_hits k = scan_numeric_key(body, key);
    if (k.count == 0) continue;
    if (hits == 0)
      first_value = k.first;
    else if (k.first != first_value || k.count > 1)
      disagree = true;
    if (k.count > 1) disagree = true;
    hits += k.count;
  }
  const bool has_tier = body.find("\"serviceTier\"") != std::string_view::npos;
  const bool has_perf = body.find("\"performanceConfig\"") != std::string_view::npos;
  if (hits == 1 || (hits > 1 && !disagree)) f.max_tokens = first_value;

  // The scan cannot tell a model's limit from a same-named key elsewhere (a tool schema, a
  // nested field); when it is ambiguous, or a nested field is needed, parse the body properly.
  if (disagree || has_tier || has_perf) {
    boost::system::error_code ec;
    const boost::json::value root = boost::json::parse(body, ec);
    if (!ec) {
      if (disagree) f.max_tokens = json_max_tokens(root);
      if (has_tier) f.tier = json_string_at(root, "serviceTier", "type");
      if (has_perf) f.latency = json_string_at(root, "performanceConfig", "latency");
    }
  }
  if (const key_hits dims = scan_numeric_key(body, "\"dimensions\""); dims.count > 0) {
    f.dimensions = dims.first;
  }
  return f;
}

plan make_plan(std::string_view body, const directive& d, const request_facts& facts,
               model_family family, sim_op op) {
  plan p;
  p.input = d.input.value_or(std::max<std::uint64_t>(1, body.size() / 4));
  p.cache_read = d.cache_read.value_or(0);
  p.cache_write = d.cache_write.value_or(0);
  const bool no_output = family == model_family::titan_embed || op == sim_op::count_tokens;
  if (no_output) {
    p.output = d.output.value_or(0);
  } else {
    const std::uint64_t limit = facts.max_tokens.value_or(default_output_tokens);
    p.output = d.output.value_or(std::min(limit, default_output_tokens));
    p.hit_max_tokens = facts.max_tokens.has_value() && p.output >= *facts.max_tokens;
  }
  p.events = d.events.value_or(std::clamp<std::uint64_t>(p.output, 1, default_stream_events));
  p.stop = d.stop;
  return p;
}

std::string_view default_error_name(unsigned status) noexcept {
  switch (status) {
    case 400: return "ValidationException";
    case 403: return "AccessDeniedException";
    case 404: return "ResourceNotFoundException";
    case 408: return "ModelTimeoutException";
    case 409: return "ConflictException";
    case 424: return "ModelErrorException";
    case 429: return "ThrottlingException";
    case 503: return "ServiceUnavailableException";
    default: return "InternalServerException";
  }
}

}  // namespace bedrock_meter::simulator
