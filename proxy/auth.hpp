#pragma once
// Client authentication against proxy-issued credentials: SigV4 access keys (the SDK signs as it
// would for AWS; we verify), bearer keys (stored as SHA-256 hex; `Authorization: Bearer ...` as
// boto3 sends with AWS_BEARER_TOKEN_BEDROCK) and an explicit anonymous identity for demos.
// Built once per config snapshot; read-only afterwards, so any worker may use it unlocked.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "aws/bedrock_error.hpp"
#include "aws/sigv4.hpp"
#include "config/config.hpp"

namespace bedrock_meter::proxy {

/// Who is calling: attribution labels plus a principal for the access log (a key id or a bearer
/// key's name/hash prefix, never a secret).
struct identity {
  enum class kind : std::uint8_t { sigv4, bearer, anonymous };
  kind how = kind::anonymous;
  std::string principal;
  std::string team;
  std::string app;
  config::identity_attributes attributes;  // ledger tags, model allow-list

  /// Whether this identity may call `base_model` (the model the request resolves to) or
  /// `requested` (the id as sent): true with no allow-list, else when either matches an entry
  /// (`*` at the end matches a prefix).
  [[nodiscard]] bool may_use(std::string_view base_model,
                             std::string_view requested) const noexcept;
};

struct auth_outcome {
  const identity* who = nullptr;            // set on success; points into the auth_index
  std::optional<aws::bedrock_error> error;  // set on failure
  std::string signed_region;                // the region a SigV4 client signed for (else empty)
  /// A SigV4 client's key and request signature: what its input event stream's signatures chain
  /// from (InvokeModelWithBidirectionalStream). Null / empty for bearer and anonymous callers.
  const aws::sigv4::issued_key* key = nullptr;
  std::string signature;
};

class auth_index {
 public:
  explicit auth_index(const config::auth_config& cfg);

  /// Authenticates one request. `payload_sha256_hex` is the hex SHA-256 of the body (the caller
  /// computes it once and reuses it to re-sign upstream).
  [[nodiscard]] auth_outcome authenticate(std::string_view method, std::string_view target,
                                          const aws::sigv4::header_list& headers,
                                          std::string_view payload_sha256_hex,
                                          std::chrono::system_clock::time_point now) const;

 private:
  struct sigv4_entry {
    aws::sigv4::issued_key key;
    identity who;
  };
  std::unordered_map<std::string, sigv4_entry> access_keys_;  // by access key id
  std::unordered_map<std::string, identity> bearer_keys_;     // by sha256 hex of the token
  std::optional<identity> anonymous_;
  std::chrono::seconds max_skew_;
};

}  // namespace bedrock_meter::proxy
