#include "tests/simulator/sim_logic.hpp"

#include <algorithm>
#include <charconv>
#include <unordered_map>
#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "metering/event_stream.hpp"

namespace bedrock_meter::simulator {

namespace {

constexpr std::string_view k_alnum =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

// Words the simulated model "says"; one word is one output token.
constexpr std::array<std::string_view, 16> k_words = {
    "lorem", "ipsum", "dolor", "sit",  "amet",  "consectetur", "adipiscing", "elit",
    "sed",   "do",    "eiusmod", "tempor", "incididunt", "ut", "labore", "magna"};

void append_uint(std::string& out, std::uint64_t v) {
  std::array<char, 24> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  (void)ec;  // 24 bytes always fit a uint64
  out.append(buf.data(), end);
}

bool starts_with(std::string_view s, std::string_view p) noexcept { return s.starts_with(p); }

// Text of output tokens [from, to): words joined by single spaces, no leading space for token 0.
void append_tokens_text(std::string& out, std::uint64_t from, std::uint64_t to) {
  for (std::uint64_t k = from; k < to; ++k) {
    if (k != 0) out.push_back(' ');
    out.append(k_words[k % k_words.size()]);
  }
}

std::string full_text(const plan& p) {
  std::string s;
  s.reserve(p.output * 7);
  append_tokens_text(s, 0, p.output);
  return s;
}

std::optional<std::uint64_t> parse_uint(std::string_view s) {
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_ws(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Scans `body` for `"key"` used as an object key with a non-negative integer value. A key inside a
// JSON string would be preceded by a backslash (`\"key\"`), so those occurrences are skipped.
// Returns how many numeric hits there were; `first` receives the first.
std::size_t scan_numeric_key(std::string_view body, std::string_view quoted_key,
                             std::uint64_t& first) {
  std::size_t hits = 0;
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
    if (hits == 0) first = *v;
    ++hits;
  }
  return hits;
}

std::optional<std::uint64_t> json_uint_at(const boost::json::value& root,
                                          std::initializer_list<std::string_view> path) {
  const boost::json::value* v = &root;
  for (auto key : path) {
    const auto* obj = v->if_object();
    if (obj == nullptr) return std::nullopt;
    v = obj->if_contains(key);
    if (v == nullptr) return std::nullopt;
  }
  if (const auto* i = v->if_int64(); i != nullptr && *i >= 0) return static_cast<std::uint64_t>(*i);
  if (const auto* u = v->if_uint64(); u != nullptr) return *u;
  if (const auto* d = v->if_double(); d != nullptr && *d >= 0) return static_cast<std::uint64_t>(*d);
  return std::nullopt;
}

std::string json_string_at(const boost::json::value& root, std::string_view a, std::string_view b) {
  const auto* obj = root.if_object();
  if (obj == nullptr) return {};
  const auto* inner = obj->if_contains(a);
  if (inner == nullptr || !inner->is_object()) return {};
  const auto* leaf = inner->get_object().if_contains(b);
  if (leaf == nullptr || !leaf->is_string()) return {};
  return std::string(leaf->get_string());
}

constexpr std::array<std::string_view, 6> k_max_token_keys = {
    "\"max_tokens\"",  "\"maxTokens\"",   "\"max_new_tokens\"",
    "\"maxTokenCount\"", "\"max_gen_len\"", "\"max_tokens_to_sample\""};

constexpr std::array<std::string_view, 20> k_geo_prefixes = {
    "us", "eu", "apac", "jp", "au", "us-gov", "global", "ca", "sa", "ap",
    "me", "af", "il",   "mx", "uk", "in",     "kr",     "sg", "tw", "th"};

// Anthropic bodies name the model without the `anthropic.` provider and `-v1:0` version suffix.
std::string anthropic_model_name(std::string_view model_id) {
  std::string_view base = base_model_id(model_id);
  if (base.starts_with("anthropic.")) base.remove_prefix(10);
  if (auto v = base.rfind("-v"); v != std::string_view::npos && v + 2 < base.size() &&
                                  base[v + 2] >= '0' && base[v + 2] <= '9') {
    base = base.substr(0, v);
  }
  return std::string(base);
}

void append_embedding(std::string& out, std::uint64_t dims) {
  // Cached per dimension count: embeddings are the largest bodies and identical per size.
  thread_local std::unordered_map<std::uint64_t, std::string> cache;
  auto it = cache.find(dims);
  if (it == cache.end()) {
    std::string s = "[";
    for (std::uint64_t k = 0; k < dims; ++k) {
      if (k != 0) s.push_back(',');
      const std::int64_t m = static_cast<std::int64_t>((k * 2654435761u) % 2001u) - 1000;
      if (m < 0) s.push_back('-');
      const std::uint64_t a = static_cast<std::uint64_t>(m < 0 ? -m : m);
      s.append("0.");
      s.push_back(static_cast<char>('0' + (a / 1000) % 10));
      s.push_back(static_cast<char>('0' + (a / 100) % 10));
      s.push_back(static_cast<char>('0' + (a / 10) % 10));
      s.push_back(static_cast<char>('0' + a % 10));
    }
    s.push_back(']');
    it = cache.emplace(dims, std::move(s)).first;
  }
  out.append(it->second);
}

}  // namespace

std::string_view op_name(sim_op op) noexcept {
  switch (op) {
    case sim_op::converse: return "Converse";
    case sim_op::converse_stream: return "ConverseStream";
    case sim_op::invoke_model: return "InvokeModel";
    case sim_op::invoke_model_with_response_stream: return "InvokeModelWithResponseStream";
    case sim_op::invoke_model_with_bidirectional_stream: return "InvokeModelWithBidirectionalStream";
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
  sim_route r;
  std::string_view path = target.substr(0, target.find('?'));
  const bool post = method == "POST";
  const bool get = method == "GET";

  auto decode_into = [&r](std::string_view raw, std::string& dst) {
    auto d = percent_decode(raw);
    if (!d) {
      r.bad_encoding = true;
      return;
    }
    dst = std::move(*d);
  };

  if (path == "/__sim/stats") {
    if (get) r.op = sim_op::stats;
    return r;
  }
  if (path == "/__sim/reset") {
    if (post) r.op = sim_op::reset;
    return r;
  }
  if (path.starts_with("/model/")) {
    // The model id runs to the last '/': an ARN sent with a raw '/' still routes.
    std::string_view rest = path.substr(7);
    const auto slash = rest.rfind('/');
    if (slash == std::string_view::npos || slash == 0) return r;
    const std::string_view id = rest.substr(0, slash);
    const std::string_view action = rest.substr(slash + 1);
    sim_op op = sim_op::unknown;
    if (action == "converse") op = sim_op::converse;
    else if (action == "converse-stream") op = sim_op::converse_stream;
    else if (action == "invoke") op = sim_op::invoke_model;
    else if (action == "invoke-with-response-stream") op = sim_op::invoke_model_with_response_stream;
    else if (action == "invoke-with-bidirectional-stream")
      op = sim_op::invoke_model_with_bidirectional_stream;
    else if (action == "count-tokens") op = sim_op::count_tokens;
    if (op == sim_op::unknown || !post) return r;
    r.op = op;
    decode_into(id, r.model_id);
    return r;
  }
  if (path.starts_with("/guardrail/")) {
    // /guardrail/{id}/version/{version}/apply
    std::string_view rest = path.substr(11);
    const auto v = rest.find("/version/");
    if (v == std::string_view::npos || !rest.ends_with("/apply") || !post) return r;
    const std::string_view id = rest.substr(0, v);
    const std::string_view ver_and_apply = rest.substr(v + 9);
    const std::string_view ver = ver_and_apply.substr(0, ver_and_apply.size() - 6);
    if (id.empty() || ver.empty() || ver.find('/') != std::string_view::npos) return r;
    r.op = sim_op::apply_guardrail;
    decode_into(id, r.model_id);
    decode_into(ver, r.resource);
    return r;
  }
  if (path == "/guardrail-checks/invoke") {
    if (post) r.op = sim_op::invoke_guardrail_checks;
    return r;
  }
  if (path == "/async-invoke" || path == "/async-invoke/") {
    if (post) r.op = sim_op::start_async_invoke;
    else if (get) r.op = sim_op::list_async_invokes;
    return r;
  }
  if (path.starts_with("/async-invoke/")) {
    if (!get) return r;
    r.op = sim_op::get_async_invoke;
    decode_into(path.substr(14), r.resource);
    return r;
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
  if (starts_with(b, "anthropic.")) return model_family::anthropic;
  if (starts_with(b, "amazon.nova-")) return model_family::nova;
  if (starts_with(b, "amazon.titan-embed")) return model_family::titan_embed;
  if (starts_with(b, "amazon.titan-text") || starts_with(b, "amazon.titan-tg1"))
    return model_family::titan_text;
  if (starts_with(b, "meta.llama")) return model_family::llama;
  if (starts_with(b, "mistral.")) return model_family::mistral;
  return model_family::generic;
}

directive_result parse_directive(std::string_view body) {
  directive_result res;
  const auto start = body.find("SIM{");
  if (start == std::string_view::npos) return res;
  const auto end = body.find('}', start);
  if (end == std::string_view::npos) {
    res.error = "SIM directive: missing '}'";
    return res;
  }
  std::string_view rest = body.substr(start + 4, end - start - 4);
  directive& d = res.value;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      res.error = "SIM directive: expected key=value, got '" + std::string(item) + "'";
      return res;
    }
    const std::string_view key = trim(item.substr(0, eq));
    const std::string_view val = trim(item.substr(eq + 1));
    auto set_num = [&](std::optional<std::uint64_t>& field) {
      auto v = parse_uint(val);
      if (!v) {
        res.error = "SIM directive: '" + std::string(key) + "' needs a non-negative integer";
        return false;
      }
      field = *v;
      return true;
    };
    bool ok = true;
    if (key == "input") ok = set_num(d.input);
    else if (key == "output") ok = set_num(d.output);
    else if (key == "cache_read") ok = set_num(d.cache_read);
    else if (key == "cache_write") ok = set_num(d.cache_write);
    else if (key == "events") ok = set_num(d.events);
    else if (key == "pace_ms") ok = set_num(d.pace_ms);
    else if (key == "first_byte_ms") ok = set_num(d.first_byte_ms);
    else if (key == "after") ok = set_num(d.after);
    else if (key == "status") {
      std::optional<std::uint64_t> s;
      ok = set_num(s);
      if (ok && (*s < 100 || *s > 599)) {
        res.error = "SIM directive: status must be 100..599";
        return res;
      }
      if (ok) d.status = static_cast<unsigned>(*s);
    } else if (key == "exception_type") d.exception_type = std::string(val);
    else if (key == "error") d.error_name = std::string(val);
    else if (key == "tier") d.tier = std::string(val);
    else if (key == "stop") d.stop = std::string(val);
    else if (key == "guardrail") {
      if (val == "intervene") d.intervene = true;
      else if (val != "none") {
        res.error = "SIM directive: guardrail must be intervene or none";
        return res;
      }
    } else if (key == "fault") {
      static constexpr std::array<std::pair<std::string_view, fault>, 12> names = {{
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
      auto it = std::find_if(names.begin(), names.end(),
                             [val](const auto& n) { return n.first == val; });
      if (it == names.end()) {
        res.error = "SIM directive: unknown fault '" + std::string(val) + "'";
        return res;
      }
      d.fault_kind = it->second;
    } else {
      res.error = "SIM directive: unknown key '" + std::string(key) + "'";
      return res;
    }
    if (!ok) return res;
  }
  return res;
}

request_facts scan_request(std::string_view body) {
  request_facts f;
  std::size_t hits = 0;
  std::uint64_t first_value = 0;
  bool disagree = false;
  for (auto key : k_max_token_keys) {
    std::uint64_t v = 0;
    const std::size_t n = scan_numeric_key(body, key, v);
    if (n == 0) continue;
    if (hits == 0) first_value = v;
    else if (v != first_value || n > 1) disagree = true;
    if (n > 1) disagree = true;
    hits += n;
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
      if (disagree) {
        f.max_tokens = std::nullopt;
        for (auto path : {std::initializer_list<std::string_view>{"inferenceConfig", "maxTokens"},
                          {"inferenceConfig", "max_new_tokens"},
                          {"max_tokens"},
                          {"textGenerationConfig", "maxTokenCount"},
                          {"max_gen_len"},
                          {"max_tokens_to_sample"}}) {
          if (auto v = json_uint_at(root, path)) {
            f.max_tokens = v;
            break;
          }
        }
      }
      if (has_tier) f.tier = json_string_at(root, "serviceTier", "type");
      if (has_perf) f.latency = json_string_at(root, "performanceConfig", "latency");
    }
  }
  std::uint64_t dims = 0;
  if (scan_numeric_key(body, "\"dimensions\"", dims) > 0) f.dimensions = dims;
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

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      constexpr std::string_view hex = "0123456789abcdef";
      out.append("\\u00");
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

std::string error_body(std::string_view message) {
  std::string out = "{\"message\":";
  append_json_string(out, message);
  out.push_back('}');
  return out;
}

void append_base64(std::string& out, std::string_view bytes) {
  constexpr std::string_view tbl =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out.reserve(out.size() + (bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto at = [&bytes](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out.push_back(tbl[(n >> 18) & 63]);
    out.push_back(tbl[(n >> 12) & 63]);
    out.push_back(tbl[(n >> 6) & 63]);
    out.push_back(tbl[n & 63]);
  }
  const std::size_t rem = bytes.size() - i;
  if (rem == 1) {
    const std::uint32_t n = at(i) << 16;
    out.push_back(tbl[(n >> 18) & 63]);
    out.push_back(tbl[(n >> 12) & 63]);
    out.append("==");
  } else if (rem == 2) {
    const std::uint32_t n = (at(i) << 16) | (at(i + 1) << 8);
    out.push_back(tbl[(n >> 18) & 63]);
    out.push_back(tbl[(n >> 12) & 63]);
    out.push_back(tbl[(n >> 6) & 63]);
    out.push_back('=');
  }
}

std::optional<std::string> decode_base64(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() / 4 * 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const int v = val(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::uint64_t id_source::next() noexcept {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string id_source::uuid() {
  constexpr std::string_view hex = "0123456789abcdef";
  const std::uint64_t a = next();
  const std::uint64_t b = next();
  std::array<unsigned, 32> nib{};
  for (std::size_t k = 0; k < 16; ++k) {
    nib[k] = static_cast<unsigned>((a >> (60 - 4 * k)) & 15);
    nib[16 + k] = static_cast<unsigned>((b >> (60 - 4 * k)) & 15);
  }
  nib[12] = 4;                 // version 4
  nib[16] = 8 | (nib[16] & 3);  // RFC 4122 variant
  std::string s;
  s.reserve(36);
  for (std::size_t k = 0; k < 32; ++k) {
    if (k == 8 || k == 12 || k == 16 || k == 20) s.push_back('-');
    s.push_back(hex[nib[k]]);
  }
  return s;
}

std::string id_source::base62(std::size_t length) {
  std::string s;
  s.reserve(length);
  for (std::size_t k = 0; k < length; ++k) s.push_back(k_alnum[next() % 62]);
  return s;
}

std::string id_source::lower_alnum(std::size_t length) {
  constexpr std::string_view chars = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  s.reserve(length);
  for (std::size_t k = 0; k < length; ++k) s.push_back(chars[next() % chars.size()]);
  return s;
}

std::string_view padding(std::size_t seed) noexcept {
  return k_alnum.substr(0, 1 + (seed * 7 + 3) % 48);
}

std::string_view stop_reason_for(model_family fam, sim_op op, const plan& p) {
  if (!p.stop.empty()) return p.stop;
  if (op == sim_op::converse || op == sim_op::converse_stream) {
    return p.hit_max_tokens ? "max_tokens" : "end_turn";
  }
  switch (fam) {
    case model_family::titan_text:
    case model_family::titan_embed: return p.hit_max_tokens ? "LENGTH" : "FINISH";
    case model_family::llama:
    case model_family::mistral: return p.hit_max_tokens ? "length" : "stop";
    default: return p.hit_max_tokens ? "max_tokens" : "end_turn";
  }
}

std::string converse_body(const plan& p, const timing& t, const served_config& s) {
  std::string out;
  out.reserve(256 + p.output * 8);
  out.append(R"({"output":{"message":{"role":"assistant","content":[{"text":)");
  append_json_string(out, full_text(p));
  out.append(R"(}]}},"stopReason":)");
  append_json_string(out, stop_reason_for(model_family::generic, sim_op::converse, p));
  out.append(R"(,"usage":{"inputTokens":)");
  append_uint(out, p.input);
  out.append(",\"outputTokens\":");
  append_uint(out, p.output);
  out.append(",\"totalTokens\":");
  append_uint(out, p.input + p.output + p.cache_read + p.cache_write);
  if (p.cache_read != 0) {
    out.append(",\"cacheReadInputTokens\":");
    append_uint(out, p.cache_read);
  }
  if (p.cache_write != 0) {
    out.append(",\"cacheWriteInputTokens\":");
    append_uint(out, p.cache_write);
  }
  out.append(R"(},"metrics":{"latencyMs":)");
  append_uint(out, t.latency_ms);
  out.push_back('}');
  if (!s.tier.empty()) {
    out.append(R"(,"serviceTier":{"type":)");
    append_json_string(out, s.tier);
    out.push_back('}');
  }
  if (!s.latency.empty()) {
    out.append(R"(,"performanceConfig":{"latency":)");
    append_json_string(out, s.latency);
    out.push_back('}');
  }
  out.push_back('}');
  return out;
}

std::string invoke_body(model_family fam, std::string_view model_id, const plan& p,
                        const request_facts& facts, std::string_view message_id) {
  std::string out;
  out.reserve(256 + p.output * 8);
  const std::string_view stop = stop_reason_for(fam, sim_op::invoke_model, p);
  switch (fam) {
    case model_family::nova:
      out.append(R"({"output":{"message":{"content":[{"text":)");
      append_json_string(out, full_text(p));
      out.append(R"(}],"role":"assistant"}},"stopReason":)");
      append_json_string(out, stop);
      out.append(R"(,"usage":{"inputTokens":)");
      append_uint(out, p.input);
      out.append(",\"outputTokens\":");
      append_uint(out, p.output);
      out.append(",\"totalTokens\":");
      append_uint(out, p.input + p.output + p.cache_read + p.cache_write);
      out.append(",\"cacheReadInputTokenCount\":");
      append_uint(out, p.cache_read);
      out.append(",\"cacheWriteInputTokenCount\":");
      append_uint(out, p.cache_write);
      out.append("}}");
      return out;
    case model_family::titan_text:
      out.append("{\"inputTextTokenCount\":");
      append_uint(out, p.input);
      out.append(",\"results\":[{\"tokenCount\":");
      append_uint(out, p.output);
      out.append(",\"outputText\":");
      append_json_string(out, full_text(p));
      out.append(",\"completionReason\":");
      append_json_string(out, stop);
      out.append("}]}");
      return out;
    case model_family::titan_embed: {
      const std::string_view base = base_model_id(model_id);
      const std::uint64_t def = base.find("-v2") != std::string_view::npos ? 1024 : 1536;
      const std::uint64_t dims = std::clamp<std::uint64_t>(facts.dimensions.value_or(def), 1, 8192);
      out.append("{\"embedding\":");
      append_embedding(out, dims);
      out.append(",\"inputTextTokenCount\":");
      append_uint(out, p.input);
      out.push_back('}');
      return out;
    }
    case model_family::llama:
      out.append("{\"generation\":");
      append_json_string(out, full_text(p));
      out.append(",\"prompt_token_count\":");
      append_uint(out, p.input);
      out.append(",\"generation_token_count\":");
      append_uint(out, p.output);
      out.append(",\"stop_reason\":");
      append_json_string(out, stop);
      out.push_back('}');
      return out;
    case model_family::mistral:
      out.append("{\"outputs\":[{\"text\":");
      append_json_string(out, full_text(p));
      out.append(",\"stop_reason\":");
      append_json_string(out, stop);
      out.append("}]}");
      return out;
    case model_family::anthropic:
    case model_family::generic:
      break;
  }
  out.append("{\"id\":");
  append_json_string(out, message_id);
  out.append(R"(,"type":"message","role":"assistant","model":)");
  append_json_string(out, anthropic_model_name(model_id));
  out.append(R"(,"content":[{"type":"text","text":)");
  append_json_string(out, full_text(p));
  out.append(R"(}],"stop_reason":)");
  append_json_string(out, stop);
  out.append(R"(,"stop_sequence":null,"usage":{"input_tokens":)");
  append_uint(out, p.input);
  out.append(",\"cache_creation_input_tokens\":");
  append_uint(out, p.cache_write);
  out.append(",\"cache_read_input_tokens\":");
  append_uint(out, p.cache_read);
  out.append(",\"output_tokens\":");
  append_uint(out, p.output);
  out.append("}}");
  return out;
}

std::string count_tokens_body(const plan& p) {
  std::string out = "{\"inputTokens\":";
  append_uint(out, p.input);
  out.push_back('}');
  return out;
}

std::string apply_guardrail_body(const directive& d) {
  std::string out =
      R"({"usage":{"topicPolicyUnits":1,"contentPolicyUnits":1,"wordPolicyUnits":1,)"
      R"("sensitiveInformationPolicyUnits":0,"sensitiveInformationPolicyFreeUnits":0,)"
      R"("contextualGroundingPolicyUnits":0},)";
  if (d.intervene) {
    out.append(
        R"("action":"GUARDRAIL_INTERVENED","actionReason":"Guardrail blocked.",)"
        R"("outputs":[{"text":"Sorry, the model cannot answer this question."}],)"
        R"("assessments":[{"topicPolicy":{"topics":[{"name":"Simulated","type":"DENY",)"
        R"("action":"BLOCKED","detected":true}]}}]})");
  } else {
    out.append(R"("action":"NONE","outputs":[],"assessments":[]})");
  }
  return out;
}

std::string invoke_guardrail_checks_body(std::string_view request_body) {
  // One empty result list and one text unit per configured check: nothing is ever flagged.
  std::string results = "{";
  std::string usage = "{";
  boost::system::error_code ec;
  const boost::json::value root = boost::json::parse(request_body, ec);
  const boost::json::object* checks = nullptr;
  if (!ec && root.is_object()) {
    if (const auto* c = root.get_object().if_contains("checks"); c != nullptr) {
      checks = c->if_object();
    }
  }
  bool first = true;
  for (std::string_view name : {"contentFilter", "promptAttack", "sensitiveInformation"}) {
    if (checks == nullptr || !checks->contains(name)) continue;
    if (!first) {
      results.push_back(',');
      usage.push_back(',');
    }
    first = false;
    append_json_string(results, name);
    results.append(":{\"results\":[]}");
    append_json_string(usage, name);
    usage.append(":{\"textUnits\":1}");
  }
  results.push_back('}');
  usage.push_back('}');
  return "{\"results\":" + results + ",\"usage\":" + usage + "}";
}

stream_script::stream_script(sim_op op, model_family fam, std::string model_id, plan p,
                             served_config served, std::string message_id)
    : op_(op),
      fam_(fam),
      model_id_(std::move(model_id)),
      plan_(std::move(p)),
      served_(std::move(served)),
      message_id_(std::move(message_id)) {
  deltas_ = static_cast<std::size_t>(plan_.events);
  if (op_ == sim_op::converse_stream) {
    prefix_ = 1;  // messageStart
    suffix_ = 3;  // contentBlockStop, messageStop, metadata
    return;
  }
  switch (fam_) {
    case model_family::nova:
      prefix_ = 1;
      suffix_ = 3;
      break;
    case model_family::titan_text:
    case model_family::titan_embed:
    case model_family::llama:
    case model_family::mistral:
      // These families finish on their last content chunk, so there must be one.
      deltas_ = std::max<std::size_t>(deltas_, 1);
      break;
    case model_family::anthropic:
    case model_family::generic:
      prefix_ = 2;  // message_start, content_block_start
      suffix_ = 3;  // content_block_stop, message_delta, message_stop
      break;
  }
}

std::uint64_t stream_script::tokens_through(std::size_t delta) const noexcept {
  if (deltas_ == 0) return plan_.output;
  return (static_cast<std::uint64_t>(delta) + 1) * plan_.output / deltas_;
}

void stream_script::append_delta_text(std::size_t delta, std::string& json) const {
  const std::uint64_t from = delta == 0 ? 0 : tokens_through(delta - 1);
  std::string text;
  append_tokens_text(text, from, tokens_through(delta));
  append_json_string(json, text);
}

std::string_view stream_script::stop_reason() const { return stop_reason_for(fam_, op_, plan_); }

void stream_script::append_metrics(const timing& t, std::string& json) const {
  json.append(R"("amazon-bedrock-invocationMetrics":{"inputTokenCount":)");
  append_uint(json, plan_.input);
  json.append(",\"outputTokenCount\":");
  append_uint(json, plan_.output);
  json.append(",\"invocationLatency\":");
  append_uint(json, t.latency_ms);
  json.append(",\"firstByteLatency\":");
  append_uint(json, t.first_byte_ms);
  if (plan_.cache_read != 0) {
    json.append(",\"cacheReadInputTokenCount\":");
    append_uint(json, plan_.cache_read);
  }
  if (plan_.cache_write != 0) {
    json.append(",\"cacheWriteInputTokenCount\":");
    append_uint(json, plan_.cache_write);
  }
  json.push_back('}');
}

void stream_script::render_converse(std::size_t i, const timing& t, std::string& json) const {
  const std::string_view pad = padding(i);
  if (i < prefix_) {
    json.append(R"({"role":"assistant","p":")").append(pad).append("\"}");
    return;
  }
  if (i < prefix_ + deltas_) {
    json.append(R"({"contentBlockIndex":0,"delta":{"text":)");
    append_delta_text(i - prefix_, json);
    json.append(R"(},"p":")").append(pad).append("\"}");
    return;
  }
  const std::size_t k = i - prefix_ - deltas_;
  if (k == 0) {
    json.append(R"({"contentBlockIndex":0,"p":")").append(pad).append("\"}");
  } else if (k == 1) {
    json.append("{\"stopReason\":");
    append_json_string(json, stop_reason());
    json.append(R"(,"p":")").append(pad).append("\"}");
  } else {
    json.append(R"({"usage":{"inputTokens":)");
    append_uint(json, plan_.input);
    json.append(",\"outputTokens\":");
    append_uint(json, plan_.output);
    json.append(",\"totalTokens\":");
    append_uint(json, plan_.input + plan_.output + plan_.cache_read + plan_.cache_write);
    if (plan_.cache_read != 0) {
      json.append(",\"cacheReadInputTokens\":");
      append_uint(json, plan_.cache_read);
    }
    if (plan_.cache_write != 0) {
      json.append(",\"cacheWriteInputTokens\":");
      append_uint(json, plan_.cache_write);
    }
    json.append(R"(},"metrics":{"latencyMs":)");
    append_uint(json, t.latency_ms);
    json.push_back('}');
    if (!served_.tier.empty()) {
      json.append(R"(,"serviceTier":{"type":)");
      append_json_string(json, served_.tier);
      json.push_back('}');
    }
    if (!served_.latency.empty()) {
      json.append(R"(,"performanceConfig":{"latency":)");
      append_json_string(json, served_.latency);
      json.push_back('}');
    }
    json.append(R"(,"p":")").append(pad).append("\"}");
  }
}

void stream_script::render_chunk(std::size_t i, const timing& t, std::string& json) const {
  const bool is_delta = i >= prefix_ && i < prefix_ + deltas_;
  const std::size_t d = i - prefix_;  // valid when is_delta
  const bool last = i + 1 == size();
  const std::uint64_t cum = is_delta ? tokens_through(d) : 0;
  switch (fam_) {
    case model_family::titan_text:
    case model_family::titan_embed:
      json.append("{\"outputText\":");
      append_delta_text(d, json);
      json.append(",\"index\":0,\"totalOutputTextTokenCount\":");
      append_uint(json, cum);
      json.append(",\"completionReason\":");
      if (last) append_json_string(json, stop_reason());
      else json.append("null");
      json.append(",\"inputTextTokenCount\":");
      append_uint(json, plan_.input);
      break;
    case model_family::llama:
      json.append("{\"generation\":");
      append_delta_text(d, json);
      json.append(",\"prompt_token_count\":");
      if (d == 0 || last) append_uint(json, plan_.input);
      else json.append("null");
      json.append(",\"generation_token_count\":");
      append_uint(json, cum);
      json.append(",\"stop_reason\":");
      if (last) append_json_string(json, stop_reason());
      else json.append("null");
      break;
    case model_family::mistral:
      json.append("{\"outputs\":[{\"text\":");
      append_delta_text(d, json);
      json.append(",\"stop_reason\":");
      if (last) append_json_string(json, stop_reason());
      else json.append("null");
      json.append("}]");
      break;
    case model_family::nova:
      if (i < prefix_) {
        json.append(R"({"messageStart":{"role":"assistant"})");
      } else if (is_delta) {
        json.append(R"({"contentBlockDelta":{"delta":{"text":)");
        append_delta_text(d, json);
        json.append(R"(},"contentBlockIndex":0})");
      } else if (i == prefix_ + deltas_) {
        json.append(R"({"contentBlockStop":{"contentBlockIndex":0})");
      } else if (!last) {
        json.append(R"({"messageStop":{"stopReason":)");
        append_json_string(json, stop_reason());
        json.push_back('}');
      } else {
        json.append(R"({"metadata":{"usage":{"inputTokens":)");
        append_uint(json, plan_.input);
        json.append(",\"outputTokens\":");
        append_uint(json, plan_.output);
        json.append(",\"cacheReadInputTokenCount\":");
        append_uint(json, plan_.cache_read);
        json.append(",\"cacheWriteInputTokenCount\":");
        append_uint(json, plan_.cache_write);
        json.append(R"(},"metrics":{},"trace":{}})");
      }
      break;
    case model_family::anthropic:
    case model_family::generic:
      if (i == 0) {
        json.append(R"({"type":"message_start","message":{"id":)");
        append_json_string(json, message_id_);
        json.append(R"(,"type":"message","role":"assistant","model":)");
        append_json_string(json, anthropic_model_name(model_id_));
        json.append(R"(,"content":[],"stop_reason":null,"stop_sequence":null,)"
                    R"("usage":{"input_tokens":)");
        append_uint(json, plan_.input);
        json.append(",\"cache_creation_input_tokens\":");
        append_uint(json, plan_.cache_write);
        json.append(",\"cache_read_input_tokens\":");
        append_uint(json, plan_.cache_read);
        json.append(",\"output_tokens\":1}}");
      } else if (i == 1) {
        json.append(
            R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""})");
      } else if (is_delta) {
        json.append(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":)");
        append_delta_text(d, json);
        json.push_back('}');
      } else if (i == prefix_ + deltas_) {
        json.append(R"({"type":"content_block_stop","index":0)");
      } else if (!last) {
        json.append(R"({"type":"message_delta","delta":{"stop_reason":)");
        append_json_string(json, stop_reason());
        json.append(R"(,"stop_sequence":null},"usage":{"output_tokens":)");
        append_uint(json, plan_.output);
        json.push_back('}');
      } else {
        json.append(R"({"type":"message_stop")");
      }
      break;
  }
  if (last) {
    json.push_back(',');
    append_metrics(t, json);
  }
  json.push_back('}');
}

void stream_script::render(std::size_t i, const timing& t, std::string& out) const {
  std::string json;
  json.reserve(256);
  std::array<metering::event_header, 3> headers{};
  if (op_ == sim_op::converse_stream) {
    render_converse(i, t, json);
    std::string_view type;
    if (i < prefix_) type = "messageStart";
    else if (i < prefix_ + deltas_) type = "contentBlockDelta";
    else if (i == prefix_ + deltas_) type = "contentBlockStop";
    else if (i + 1 < size()) type = "messageStop";
    else type = "metadata";
    headers = {{{":event-type", type},
                {":content-type", "application/json"},
                {":message-type", "event"}}};
    metering::encode_event_frame(out, headers, json);
    return;
  }
  render_chunk(i, t, json);
  std::string payload;
  payload.reserve(json.size() * 4 / 3 + 64);
  payload.append("{\"bytes\":\"");
  append_base64(payload, json);
  payload.append("\",\"p\":\"").append(padding(i)).append("\"}");
  headers = {{{":event-type", "chunk"},
              {":content-type", "application/json"},
              {":message-type", "event"}}};
  metering::encode_event_frame(out, headers, payload);
}

std::string stream_exception_frame(std::string_view exception_type, std::string_view message) {
  std::string payload = "{\"message\":";
  append_json_string(payload, message);
  if (exception_type == "modelStreamErrorException") {
    payload.append(R"(,"originalStatusCode":500,"originalMessage":"simulated model failure")");
  }
  payload.push_back('}');
  return metering::encode_exception(exception_type, payload);
}

}  // namespace bedrock_meter::simulator
