#pragma once
// Bedrock-shaped refusals. Every error the proxy itself produces looks like one from Bedrock:
// status, `x-amzn-ErrorType: <Name>:http://internal.amazon.com/coral/com.amazon.bedrock/`,
// `x-amzn-RequestId`, JSON `{"message": ...}` — so SDKs raise their typed exceptions
// (botocore maps the ErrorType prefix to `ClientError.response["Error"]["Code"]`).
#include <cstdint>
#include <string>
#include <string_view>

namespace bedrock_meter::aws {

struct bedrock_error {
  unsigned status = 500;
  std::string_view type;  // e.g. "ValidationException"
  std::string message;    // never contains a secret
};

/// The `x-amzn-ErrorType` header value for an error name.
std::string error_type_header(std::string_view type);
/// The JSON body `{"message":"..."}` with proper escaping.
std::string error_body(std::string_view message);

// The refusals the proxy makes, named once so status and type never drift apart.
bedrock_error unknown_operation(std::string_view method, std::string_view path);
bedrock_error validation_error(std::string message);
bedrock_error access_denied(std::string message);
bedrock_error invalid_signature(std::string message);
bedrock_error unrecognized_client(std::string message);
bedrock_error payload_too_large(std::uint64_t limit);
bedrock_error upstream_unavailable(std::string message);  // 503 ServiceUnavailableException
bedrock_error upstream_timeout(
    std::string message);  // 504-ish: Bedrock uses 408 ModelTimeout; we use 503
bedrock_error internal_error(std::string message);
/// A block budget has reached its limit: 400 ServiceQuotaExceededException, a type in Bedrock's
/// own model that no SDK retries (a 429 ThrottlingException would be retried, and would mislead:
/// waiting does not help until the period ends or the budget is raised).
bedrock_error budget_exceeded(std::string message);
bedrock_error proxy_shutting_down();
/// The proxy holds `limits.max_connections` already: 503, which every SDK retries with backoff.
bedrock_error too_many_connections(std::uint32_t limit);
/// One client address holds `limits.max_connections_per_client` already: 429 ThrottlingException
/// (retried with backoff, like Bedrock's own throttling).
bedrock_error too_many_client_connections(std::uint32_t limit);

}  // namespace bedrock_meter::aws
