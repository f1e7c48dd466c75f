#include "aws/bedrock_error.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

namespace bedrock_meter::aws {

std::string error_type_header(std::string_view type) {
  std::string out;
  out.reserve(type.size() + 48);
  out.append(type);
  out.append(":http://internal.amazon.com/coral/com.amazon.bedrock/");
  return out;
}

std::string error_body(std::string_view message) {
  std::string out = R"({"message":)";
  out += boost::json::serialize(boost::json::string(message));
  out += '}';
  return out;
}

bedrock_error unknown_operation(std::string_view method, std::string_view path) {
  // Only the method and path are echoed (never query or headers): they carry no secret.
  std::string msg = "Unknown operation ";
  msg.append(method).append(" ");
  msg.append(path.substr(0, path.find('?')).substr(0, 256));
  return {404, "UnknownOperationException", std::move(msg)};
}
bedrock_error validation_error(std::string message) {
  return {400, "ValidationException", std::move(message)};
}
bedrock_error access_denied(std::string message) {
  return {403, "AccessDeniedException", std::move(message)};
}
bedrock_error invalid_signature(std::string message) {
  return {403, "InvalidSignatureException", std::move(message)};
}
bedrock_error unrecognized_client(std::string message) {
  return {403, "UnrecognizedClientException", std::move(message)};
}
bedrock_error payload_too_large(std::uint64_t limit) {
  return {413, "ValidationException",
          "Request body exceeds the proxy's limit of " + std::to_string(limit) + " bytes"};
}
bedrock_error budget_exceeded(std::string message) {
  return {400, "ServiceQuotaExceededException", std::move(message)};
}
bedrock_error upstream_unavailable(std::string message) {
  return {503, "ServiceUnavailableException", std::move(message)};
}
bedrock_error upstream_timeout(std::string message) {
  return {503, "ServiceUnavailableException", std::move(message)};
}
bedrock_error internal_error(std::string message) {
  return {500, "InternalServerException", std::move(message)};
}
bedrock_error too_many_connections(std::uint32_t limit) {
  return {503, "ServiceUnavailableException",
          "The proxy is at its connection limit (" + std::to_string(limit) +
              " open connections); retry with backoff"};
}
bedrock_error too_many_client_connections(std::uint32_t limit) {
  return {429, "ThrottlingException",
          "Too many connections from this client address (the limit is " + std::to_string(limit) +
              "); reuse connections or retry with backoff"};
}
bedrock_error proxy_shutting_down() {
  return {503, "ServiceUnavailableException", "The proxy is shutting down; retry"};
}

}  // namespace bedrock_meter::aws
