// The credentials document both metadata endpoints (container agent, IMDS) answer with.
#include "aws/credentials_detail.hpp"

#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace bedrock_meter::aws::detail {
namespace {

std::optional<std::string_view> json_string(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  const auto& s = v->get_string();
  return std::string_view(s.data(), s.size());
}

// Expiration is optional; when present it must be an ISO 8601 string.
credential_result<std::optional<clock_time>> expiration_of(const boost::json::object& o,
                                                           const std::string& source) {
  const auto* exp = o.if_contains("Expiration");
  if (exp == nullptr || exp->is_null()) return std::optional<clock_time>{};
  std::optional<clock_time> t;
  if (exp->is_string()) {
    const auto& s = exp->get_string();
    t = parse_iso8601(std::string_view(s.data(), s.size()));
  }
  if (!t) {
    return credential_error{credential_errc::bad_response,
                            source + ": credentials response has an unparseable Expiration"};
  }
  return t;
}

}  // namespace

credential_result<aws_credentials> parse_credentials_json(std::string_view body, bool check_code,
                                                          std::string source) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) {
    return credential_error{credential_errc::bad_response,
                            source + ": credentials response is not a JSON object"};
  }
  const auto& o = v.get_object();
  if (check_code) {
    if (auto code = json_string(o, "Code"); code && *code != "Success") {
      return credential_error{credential_errc::bad_response,
                              source + ": credentials response has Code=" + printable(*code)};
    }
  }
  const auto id = json_string(o, "AccessKeyId");
  const auto secret = json_string(o, "SecretAccessKey");
  if (!id || id->empty() || !secret || secret->empty()) {
    return credential_error{credential_errc::bad_response,
                            source + ": credentials response lacks AccessKeyId or SecretAccessKey"};
  }
  aws_credentials c;
  c.creds.access_key_id = std::string(*id);
  c.creds.secret_access_key = std::string(*secret);
  if (auto token = json_string(o, "Token")) c.creds.session_token = std::string(*token);
  auto expiration = expiration_of(o, source);
  if (!expiration) return expiration.error();
  c.expiration = *expiration;
  c.source = std::move(source);
  return c;
}

}  // namespace bedrock_meter::aws::detail
