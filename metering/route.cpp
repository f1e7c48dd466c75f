#include "metering/route.hpp"

#include <array>
#include <cstddef>

namespace bedrock_meter::metering {
namespace {

// The deepest Bedrock Runtime path is /guardrail/{id}/version/{version}/apply: five segments.
// One more slot lets a longer path be recognised as too long without scanning it all.
constexpr std::size_t max_route_segments = 6;

struct segments {
  std::array<std::string_view, max_route_segments> seg{};
  std::size_t count = 0;
  bool too_many = false;
};

// Splits "/a/b/c" into raw (still percent-encoded) segments. Splitting happens before decoding so
// a `%2F` inside an ARN stays inside its segment.
segments split_path(std::string_view path) noexcept {
  segments out;
  path.remove_prefix(1);  // leading '/', checked by the caller
  while (true) {
    if (out.count == max_route_segments) {
      out.too_many = true;
      return out;
    }
    const std::size_t slash = path.find('/');
    out.seg[out.count++] = path.substr(0, slash);
    if (slash == std::string_view::npos) return out;
    path.remove_prefix(slash + 1);
  }
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct model_action {
  std::string_view name;
  operation op;
};

constexpr std::array<model_action, 6> model_actions{{
    {"invoke", operation::invoke_model},
    {"invoke-with-response-stream", operation::invoke_model_with_response_stream},
    {"converse", operation::converse},
    {"converse-stream", operation::converse_stream},
    {"count-tokens", operation::count_tokens},
    {"invoke-with-bidirectional-stream", operation::invoke_model_with_bidirectional_stream},
}};

route_result fail(route_error e) {
  route_result r;
  r.error = e;
  return r;
}

// Decodes an identifier segment into `out`; reports empty or malformed identifiers.
route_error decode_identifier(std::string_view raw, std::string& out) {
  if (raw.empty()) return route_error::empty_model_id;
  std::optional<std::string> decoded = percent_decode(raw);
  if (!decoded) return route_error::bad_encoding;
  out = std::move(*decoded);
  return route_error::none;
}

const model_action* find_model_action(std::string_view name) noexcept {
  for (const model_action& a : model_actions) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

// POST /model/{modelId}/{action}
route_result model_route(const segments& s, bool post) {
  const model_action* found = find_model_action(s.seg[2]);
  if (found == nullptr) return fail(route_error::unknown_route);
  if (!post) return fail(route_error::method_not_allowed);
  route_result r;
  r.value.op = found->op;
  r.error = decode_identifier(s.seg[1], r.value.model_id);
  return r;
}

inline bool is_guardrail_apply(const segments& s) noexcept {
  return s.count == 5 && s.seg[0] == "guardrail" && s.seg[2] == "version" && s.seg[4] == "apply";
}

// POST /guardrail/{guardrailIdentifier}/version/{guardrailVersion}/apply
route_result guardrail_route(const segments& s, bool post) {
  if (!post) return fail(route_error::method_not_allowed);
  route_result r;
  r.value.op = operation::apply_guardrail;
  r.error = decode_identifier(s.seg[1], r.value.model_id);
  if (r.error == route_error::none) r.error = decode_identifier(s.seg[3], r.value.resource);
  return r;
}

// POST /async-invoke (start), GET /async-invoke (list)
route_result async_collection_route(bool post, bool get) {
  route_result r;
  if (post) {
    r.value.op = operation::start_async_invoke;
  } else if (get) {
    r.value.op = operation::list_async_invokes;
  } else {
    return fail(route_error::method_not_allowed);
  }
  return r;
}

// GET /async-invoke/{invocationArn}; the ARN's '/' arrives as %2F, so it is one segment.
route_result async_invocation_route(const segments& s, bool get) {
  if (!get) return fail(route_error::method_not_allowed);
  route_result r;
  r.value.op = operation::get_async_invoke;
  r.error = decode_identifier(s.seg[1], r.value.resource);
  return r;
}

}  // namespace

bool billed_by_tokens(operation op) noexcept {
  return op == operation::converse || op == operation::converse_stream ||
         op == operation::invoke_model || op == operation::invoke_model_with_response_stream;
}

std::string_view operation_name(operation op) noexcept {
  switch (op) {
    case operation::invoke_model: return "InvokeModel";
    case operation::invoke_model_with_response_stream: return "InvokeModelWithResponseStream";
    case operation::converse: return "Converse";
    case operation::converse_stream: return "ConverseStream";
    case operation::count_tokens: return "CountTokens";
    case operation::invoke_model_with_bidirectional_stream:
      return "InvokeModelWithBidirectionalStream";
    case operation::apply_guardrail: return "ApplyGuardrail";
    case operation::start_async_invoke: return "StartAsyncInvoke";
    case operation::get_async_invoke: return "GetAsyncInvoke";
    case operation::list_async_invokes: return "ListAsyncInvokes";
  }
  return "Unknown";
}

bool is_streaming(operation op) noexcept {
  return op == operation::invoke_model_with_response_stream || op == operation::converse_stream ||
         op == operation::invoke_model_with_bidirectional_stream;
}

std::string_view to_string(route_error e) noexcept {
  switch (e) {
    case route_error::none: return "none";
    case route_error::unknown_route: return "unknown_route";
    case route_error::method_not_allowed: return "method_not_allowed";
    case route_error::bad_encoding: return "bad_encoding";
    case route_error::empty_model_id: return "empty_model_id";
  }
  return "unknown";
}

std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    if (in.size() - i < 3) return std::nullopt;
    const int hi = hex_value(in[i + 1]);
    const int lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>((hi << 4) | lo));
    i += 2;
  }
  return out;
}

route_result parse_route(std::string_view method, std::string_view target) {
  // Routing looks at the path only; the query (ListAsyncInvokes filters, pagination) is forwarded
  // untouched by the proxy.
  const std::string_view path = target.substr(0, target.find('?'));
  if (path.empty() || path.front() != '/') return fail(route_error::unknown_route);

  const segments s = split_path(path);
  if (s.too_many) return fail(route_error::unknown_route);
  const bool post = method == "POST";
  const bool get = method == "GET";

  if (s.count == 3 && s.seg[0] == "model") return model_route(s, post);
  if (is_guardrail_apply(s)) return guardrail_route(s, post);
  if (s.seg[0] == "async-invoke") {
    if (s.count == 1) return async_collection_route(post, get);
    if (s.count == 2) return async_invocation_route(s, get);
  }

  // Everything else, including InvokeGuardrailChecks (POST /guardrail-checks/invoke), is unknown.
  // InvokeGuardrailChecks is in the service model but not in our operation enum: the proxy must
  // never pass a request through unmetered, and we do not meter it yet, so it is refused like any
  // other unknown path until it gets an operation and a usage rule.
  return fail(route_error::unknown_route);
}

}  // namespace bedrock_meter::metering
