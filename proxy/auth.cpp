#include "proxy/auth.hpp"

namespace bedrock_meter::proxy {

using namespace aws;

namespace {

std::string_view find_header(const sigv4::header_list& headers, std::string_view name) {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return {};
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    auto a = static_cast<unsigned char>(s[i]);
    auto b = static_cast<unsigned char>(prefix[i]);
    if (a >= 'A' && a <= 'Z') a = static_cast<unsigned char>(a - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

// Messages name the failure class only: never the key, token or signature.
bedrock_error refusal(sigv4::verify_error e) {
  using sigv4::verify_error;
  switch (e) {
    case verify_error::unknown_access_key:
      return unrecognized_client("The security token included in the request is invalid.");
    case verify_error::signature_mismatch:
      return invalid_signature(
          "The request signature we calculated does not match the signature you provided. "
          "Check your proxy-issued secret access key and signing method.");
    case verify_error::clock_skew:
      return invalid_signature(
          "Signature expired: the request time is more than the allowed "
          "clock skew away from the proxy's time.");
    case verify_error::payload_hash_mismatch:
      return invalid_signature("The provided x-amz-content-sha256 header does not match the body.");
    case verify_error::session_token_refused:
      return unrecognized_client("The security token included in the request is invalid.");
    case verify_error::host_not_signed: return invalid_signature("The host header must be signed.");
    case verify_error::bad_scope:
      return invalid_signature(
          "Credential scope is invalid: expected service 'bedrock' and the "
          "request date.");
    case verify_error::missing_date: return invalid_signature("Missing X-Amz-Date header.");
    case verify_error::signed_header_missing:
      return invalid_signature("A header listed in SignedHeaders is missing.");
    case verify_error::malformed_authorization:
      return invalid_signature("Authorization header is malformed.");
    case verify_error::missing_authorization:
    case verify_error::none: break;
  }
  return access_denied("Missing Authentication Token");
}

}  // namespace

bool identity::may_use(std::string_view base_model, std::string_view requested) const noexcept {
  const auto& allowed = attributes.allowed_models;
  if (allowed.empty()) return true;
  for (const auto& pattern : allowed) {
    const bool prefix = !pattern.empty() && pattern.back() == '*';
    const std::string_view p = prefix ? std::string_view(pattern).substr(0, pattern.size() - 1)
                                      : std::string_view(pattern);
    for (std::string_view m : {base_model, requested}) {
      if (m.empty()) continue;
      if (prefix ? m.starts_with(p) : m == p) return true;
    }
  }
  return false;
}

auth_index::auth_index(const config::auth_config& cfg) : max_skew_(cfg.max_clock_skew) {
  for (const auto& k : cfg.access_keys) {
    sigv4_entry e;
    e.key.secret_access_key = k.secret_access_key;
    e.who = identity{identity::kind::sigv4, k.access_key_id, k.team, k.app, k.attributes};
    access_keys_.emplace(k.access_key_id, std::move(e));
  }
  for (const auto& b : cfg.bearer_keys) {
    std::string principal = b.name.empty() ? "bearer:" + b.sha256.substr(0, 12) : b.name;
    bearer_keys_.emplace(b.sha256,
                         identity{identity::kind::bearer, principal, b.team, b.app, b.attributes});
  }
  if (cfg.anonymous.enabled)
    anonymous_ = identity{identity::kind::anonymous, "anonymous", cfg.anonymous.team,
                          cfg.anonymous.app, cfg.anonymous.attributes};
}

auth_outcome auth_index::authenticate(std::string_view method, std::string_view target,
                                      const sigv4::header_list& headers,
                                      std::string_view payload_sha256_hex,
                                      std::chrono::system_clock::time_point now) const {
  auth_outcome out;
  const std::string_view authz = find_header(headers, "authorization");
  if (authz.empty()) {
    if (anonymous_) {
      out.who = &*anonymous_;
      return out;
    }
    out.error = access_denied("Missing Authentication Token");
    return out;
  }
  if (starts_with_ci(authz, "bearer ")) {
    std::string_view token = authz.substr(7);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    // Only the token's hash is stored; looking up by hash reveals nothing about the token.
    const auto it = bearer_keys_.find(sigv4::sha256_hex(token));
    if (it == bearer_keys_.end()) {
      out.error = access_denied("The bearer key is not valid for this proxy.");
      return out;
    }
    out.who = &it->second;
    return out;
  }

  const sigv4::key_lookup lookup = [this](std::string_view id) -> const sigv4::issued_key* {
    const auto it = access_keys_.find(std::string(id));
    return it == access_keys_.end() ? nullptr : &it->second.key;
  };
  sigv4::verify_options opt;
  opt.now = now;
  opt.max_skew = max_skew_;
  auto v = sigv4::verify(method, target, headers, payload_sha256_hex, lookup, opt);
  if (!v) {
    out.error = refusal(v.error);
    return out;
  }
  const auto& entry = access_keys_.find(v.access_key_id)->second;
  out.who = &entry.who;
  out.key = &entry.key;
  out.signed_region = std::move(v.region);
  out.signature = std::move(v.signature);
  return out;
}

}  // namespace bedrock_meter::proxy
