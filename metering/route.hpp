#pragma once
/// Bedrock Runtime route parsing: which operation a request is, and for which model.
///
/// Pure code. Model ids arrive percent-encoded by AWS SDKs (`%3A`, `%2F` inside ARNs) and with a
/// raw `:` from the Anthropic SDK; both decode to the same model id. The raw path is never
/// rewritten: the proxy forwards and re-signs the bytes it received.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bedrock_meter::metering {

enum class operation : std::uint8_t {
  invoke_model,
  invoke_model_with_response_stream,
  converse,
  converse_stream,
  count_tokens,
  invoke_model_with_bidirectional_stream,
  apply_guardrail,
  start_async_invoke,
  get_async_invoke,
  list_async_invokes,
};

/// The AWS operation name, e.g. "InvokeModelWithResponseStream".
std::string_view operation_name(operation op) noexcept;
/// The operations Bedrock bills by tokens, whose answers carry usage: Converse, ConverseStream,
/// InvokeModel, InvokeModelWithResponseStream.
bool billed_by_tokens(operation op) noexcept;
/// True for the operations whose response is an event stream.
bool is_streaming(operation op) noexcept;

struct route {
  operation op;
  std::string model_id;  ///< decoded model id / ARN; guardrail id for ApplyGuardrail; empty for
                         ///< async routes
  std::string resource;  ///< guardrail version, or async invocation ARN (decoded); else empty
};

enum class route_error : std::uint8_t {
  none = 0,
  unknown_route,       ///< path is not a Bedrock Runtime operation -> 404 UnknownOperationException
  method_not_allowed,  ///< known path, wrong method -> 405/404 as Bedrock
  bad_encoding,        ///< invalid percent-encoding in a path segment -> 400 ValidationException
  empty_model_id,      ///< `/model//converse`; also an empty guardrail id/version or invocation ARN
};

std::string_view to_string(route_error e) noexcept;

struct route_result {
  route_error error = route_error::none;
  route value{};
  explicit operator bool() const noexcept { return error == route_error::none; }
};

/// Parses `method` and the request target (path plus optional `?query`). The query is ignored.
/// Each path segment is percent-decoded on its own, after splitting, so `%2F` inside an ARN stays
/// part of the model id. Methods compare case-sensitively (RFC 9110). A trailing slash makes the
/// path unknown (`/model/x/invoke/`), except that an empty identifier segment reports
/// empty_model_id. Allocates only the decoded identifiers.
route_result parse_route(std::string_view method, std::string_view target);

/// Percent-decodes `in`; nullopt on a malformed escape. `+` is not special in paths.
std::optional<std::string> percent_decode(std::string_view in);

}  // namespace bedrock_meter::metering
