#pragma once
// Which headers cross the proxy. Requests: everything but hop-by-hop headers (RFC 9110 7.6.1),
// framing we recompute, and the caller's own auth (we sign with ours). Responses: everything but
// hop-by-hop and framing. Pure functions, unit-tested in tests/proxy/proxy_core_test.cpp.
#include <string_view>

namespace bedrock_meter::proxy {

/// ASCII case-insensitive equality (header names).
bool iequals(std::string_view a, std::string_view b) noexcept;

/// Hop-by-hop and framing headers: never forwarded in either direction (Connection, Keep-Alive,
/// Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade, Content-Length, Expect, HTTP2-Settings).
bool is_hop_by_hop(std::string_view name) noexcept;

/// The caller's credentials and Host: dropped from requests, replaced by the proxy's own
/// signature (Authorization, X-Amz-Date, X-Amz-Security-Token, X-Amz-Content-Sha256, Host), and
/// HTTP/2 pseudo-headers such as `:authority`.
bool is_client_auth(std::string_view name) noexcept;

/// True when a client request header is forwarded upstream.
inline bool forward_request_header(std::string_view name) noexcept {
  return !is_hop_by_hop(name) && !is_client_auth(name);
}
/// True when an upstream response header is forwarded to the client.
inline bool forward_response_header(std::string_view name) noexcept { return !is_hop_by_hop(name); }

}  // namespace bedrock_meter::proxy
