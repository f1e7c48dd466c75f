#pragma once
// AWS Signature Version 4: signing (upstream, to Bedrock) and verification (downstream, of the
// proxy-issued client keys). Canonicalization follows AWS exactly, including the rule AWS SDKs
// apply to every service but S3: the canonical URI is the path *as sent*, percent-encoded once
// more (`v1%3A0` signs as `v1%253A0`; a raw `:` signs as `%3A`).
//
// No sockets here; OpenSSL for SHA-256/HMAC. Thread-safe: all functions are pure.
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bedrock_meter::aws::sigv4 {

using header_list = std::vector<std::pair<std::string, std::string>>;

struct credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty when none
};

struct signing_options {
  std::string region;
  std::string service = "bedrock";
  std::chrono::system_clock::time_point now;
  bool double_encode_path = true;           // false only for S3-style suites
  bool normalize_path = true;               // remove dot segments / duplicate slashes (AWS default)
  bool sign_content_sha256_header = false;  // add x-amz-content-sha256 (not sent by Bedrock SDKs)
};

/// The request as the signer sees it. `target` is path plus optional `?query`, exactly as it will
/// go on the wire. Headers include `host`. Header names may be in any case.
struct request_view {
  std::string_view method;
  std::string_view target;
  const header_list* headers = nullptr;
  std::string_view payload_sha256_hex;  // hex SHA-256 of the body
};

/// Intermediate results, exposed for the test suites.
struct signature_parts {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;       // hex
  std::string signed_headers;  // "a;b;c"
  std::string authorization;   // full Authorization header value
};

/// Lowercase hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);
/// HMAC-SHA256 raw 32 bytes.
std::array<unsigned char, 32> hmac_sha256(std::string_view key, std::string_view data);
/// "YYYYMMDDTHHMMSSZ"
std::string amz_date(std::chrono::system_clock::time_point t);

/// Computes canonical request, string to sign and signature over the headers given, signing every
/// header in `headers` (callers decide what to include). Does not modify anything.
/// Query parameters are percent-decoded then re-encoded (raw UTF-8 and `%E1%88%B4` sign alike; a
/// literal `+` is a plus, not a space) and sorted by key then value. Header values are trimmed,
/// inner whitespace runs collapse to one space, duplicates join with `,` in request order.
signature_parts compute(const request_view& req, const credentials& creds,
                        std::string_view amz_date_value, const signing_options& opt);

/// Signs an outgoing request: removes any existing authorization / x-amz-date /
/// x-amz-security-token / x-amz-content-sha256 headers from `headers`, adds `x-amz-date`
/// (and `x-amz-security-token` when the credentials have one, and `x-amz-content-sha256` when
/// asked), computes the signature over `host`, `content-type`, `accept` (when present) and every
/// `x-amz-*` header, and appends `authorization`. Returns the parts for logging-free tests.
/// Added header names are lowercase (valid for HTTP/2 too). `headers` must contain `host`.
/// Cost: about 2.6 us for a Bedrock request on the dev machine (12 SHA-256 runs), excluding the
/// body hash (~0.7 us per KiB).
signature_parts sign(std::string_view method, std::string_view target, header_list& headers,
                     std::string_view payload_sha256_hex, const credentials& creds,
                     const signing_options& opt);

enum class verify_error : std::uint8_t {
  none = 0,
  missing_authorization,    // no Authorization header (or not AWS4-HMAC-SHA256)
  malformed_authorization,  // cannot parse Credential/SignedHeaders/Signature
  unknown_access_key,       // key id not issued by the proxy
  bad_scope,                // service not bedrock, or date in scope != x-amz-date day
  missing_date,             // no x-amz-date (or Date) header
  clock_skew,               // more than 5 minutes from now
  host_not_signed,          // `host` missing from SignedHeaders
  signed_header_missing,    // a header named in SignedHeaders is absent
  payload_hash_mismatch,    // x-amz-content-sha256 present and != body hash
  session_token_refused,    // x-amz-security-token present but not issued
  signature_mismatch,       // recomputed signature differs (constant-time compare)
};

std::string_view to_string(verify_error e) noexcept;

/// What a verified request told us: the key id and the region it signed for.
struct verified {
  verify_error error = verify_error::none;
  std::string access_key_id;
  std::string region;     // from the credential scope
  std::string signature;  // hex, once verified: an input event stream's chain starts from it
  explicit operator bool() const noexcept { return error == verify_error::none; }
};

/// Looks up the secret for an access key id issued by the proxy; nullptr when unknown.
/// `session_token` is set when the key was issued with one (empty otherwise).
struct issued_key {
  std::string secret_access_key;
  std::string session_token;
};
using key_lookup = std::function<const issued_key*(std::string_view access_key_id)>;

struct verify_options {
  std::string service = "bedrock";
  std::chrono::system_clock::time_point now;
  std::chrono::seconds max_skew{300};
};

/// Verifies a SigV4-signed request against proxy-issued keys. `headers` as received; `target`
/// exactly as received (the canonical URI is derived from it as the client's SDK did: normalized,
/// then encoded once more); `payload_sha256_hex` is the lowercase hex SHA-256 of the body.
/// Checks, first failure wins: Authorization present and AWS4-HMAC-SHA256 (else
/// missing_authorization), parsable and single (malformed_authorization), key issued
/// (unknown_access_key), scope service == opt.service / terminator aws4_request / region a DNS
/// label (bad_scope), x-amz-date present and valid (missing_date), scope day == x-amz-date day
/// (bad_scope), |now - x-amz-date| <= max_skew (clock_skew), `host` in SignedHeaders
/// (host_not_signed; an HTTP/2 `:authority` header stands in for a missing `host`), every signed
/// header present (signed_header_missing), x-amz-security-token equal to the issued token, and
/// required when the key has one (session_token_refused), x-amz-content-sha256 when sent equal
/// to the body hash, so UNSIGNED-PAYLOAD is refused (payload_hash_mismatch), then the signature
/// (constant-time; signature_mismatch). `access_key_id` is filled once parsed and `region` once
/// the scope is accepted, also on failure, for counters and logs; no secret is ever returned.
verified verify(std::string_view method, std::string_view target, const header_list& headers,
                std::string_view payload_sha256_hex, const key_lookup& lookup,
                const verify_options& opt);

/// Constant-time comparison of two equal-length strings (false on length mismatch).
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace bedrock_meter::aws::sigv4
