#include "proxy/headers.hpp"

namespace bedrock_meter::proxy {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]);
    auto y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

bool is_hop_by_hop(std::string_view name) noexcept {
  static constexpr std::string_view names[] = {"connection",
                                               "keep-alive",
                                               "proxy-connection",
                                               "proxy-authenticate",
                                               "proxy-authorization",
                                               "te",
                                               "trailer",
                                               "transfer-encoding",
                                               "upgrade",
                                               "content-length",
                                               "expect",
                                               "http2-settings"};
  for (auto n : names)
    if (iequals(name, n)) return true;
  return false;
}

bool is_client_auth(std::string_view name) noexcept {
  // HTTP/2 pseudo-headers (`:authority` kept for SigV4 verification) never travel upstream.
  if (!name.empty() && name.front() == ':') return true;
  return iequals(name, "authorization") || iequals(name, "x-amz-date") ||
         iequals(name, "x-amz-security-token") || iequals(name, "x-amz-content-sha256") ||
         iequals(name, "host");
}

}  // namespace bedrock_meter::proxy
