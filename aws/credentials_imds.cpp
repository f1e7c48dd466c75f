// Source 4 of the default chain: EC2 instance metadata, IMDSv2 only.
#include "aws/credentials.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

#include "aws/credentials_detail.hpp"
#include "aws/metadata_client.hpp"

namespace bedrock_meter::aws {
namespace {

using detail::env_nonempty;
using detail::http_method;
using detail::trim;

// IMDSv2 session token lifetime we ask for (the SDKs' value).
constexpr std::string_view imds_token_ttl_seconds = "21600";
constexpr std::string_view role_list_path = "/latest/meta-data/iam/security-credentials/";

// Where every request of one fetch goes, and how patiently.
struct imds_endpoint {
  detail::parsed_url url;
  std::string base_path;  // the endpoint URL's path without trailing slashes
  std::chrono::milliseconds timeout;
  unsigned attempts = 1;
};

// AWS_EC2_METADATA_SERVICE_ENDPOINT, else the IPv6 or IPv4 link-local address.
credential_result<detail::parsed_url> endpoint_url(const env_fn& env) {
  std::string endpoint = "http://169.254.169.254";
  if (auto e = env_nonempty(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT")) {
    endpoint = *e;
  } else if (auto mode = env_nonempty(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
             mode && detail::iequals(*mode, "ipv6")) {
    endpoint = "http://[fd00:ec2::254]";
  }
  auto url = detail::parse_url(endpoint);
  if (!url || url->scheme != "http") {
    return credential_error{credential_errc::invalid_endpoint,
                            "imds: AWS_EC2_METADATA_SERVICE_ENDPOINT must be an http:// URL"};
  }
  return std::move(*url);
}

credential_result<imds_endpoint> find_endpoint(const env_fn& env, const fetch_options& opt) {
  auto url = endpoint_url(env);
  if (!url) return url.error();
  imds_endpoint ep{std::move(*url), {}, opt.imds_timeout, opt.imds_attempts};
  ep.base_path = ep.url.path;
  while (!ep.base_path.empty() && ep.base_path.back() == '/') ep.base_path.pop_back();
  // botocore's overrides; a value that is not a positive number is ignored.
  if (auto t = env_nonempty(env, "AWS_METADATA_SERVICE_TIMEOUT")) {
    if (auto v = detail::parse_unsigned(*t); v && *v > 0) ep.timeout = std::chrono::seconds(*v);
  }
  if (auto n = env_nonempty(env, "AWS_METADATA_SERVICE_NUM_ATTEMPTS")) {
    if (auto v = detail::parse_unsigned(*n); v && *v > 0) ep.attempts = *v;
  }
  return ep;
}

credential_result<detail::metadata_response> call(const imds_endpoint& ep, http_method method,
                                                  std::string_view path,
                                                  std::pair<std::string, std::string> header) {
  detail::metadata_request req;
  req.method = method;
  req.url = ep.url;
  req.target = ep.base_path + std::string(path);
  req.timeout = ep.timeout;
  req.headers = {std::move(header)};
  return detail::fetch_metadata(req, ep.attempts, "imds");
}

credential_result<std::string> session_token(const imds_endpoint& ep) {
  auto reply = call(ep, http_method::put, "/latest/api/token",
                    {"X-aws-ec2-metadata-token-ttl-seconds", std::string(imds_token_ttl_seconds)});
  if (!reply) return reply.error();
  if (reply->status != 200 || trim(reply->body).empty()) {
    return credential_error{credential_errc::http, "imds: session token request answered HTTP " +
                                                       std::to_string(reply->status)};
  }
  return std::string(trim(reply->body));
}

bool is_iam_role_name(std::string_view role) {
  return !role.empty() && std::all_of(role.begin(), role.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
           std::string_view("+=,.@_-").find(c) != std::string_view::npos;
  });
}

// The instance profile's role: the first line of the listing. `not_found` when none is attached.
credential_result<std::string> role_name(const imds_endpoint& ep, const std::string& token) {
  auto reply = call(ep, http_method::get, role_list_path, {"X-aws-ec2-metadata-token", token});
  if (!reply) return reply.error();
  if (reply->status == 404) {
    return credential_error{credential_errc::not_found,
                            "imds: no IAM role is attached to this instance"};
  }
  if (reply->status != 200) {
    return credential_error{credential_errc::http, "imds: role name request answered HTTP " +
                                                       std::to_string(reply->status)};
  }
  std::string_view role = trim(reply->body);
  role = trim(role.substr(0, role.find('\n')));
  if (!is_iam_role_name(role)) {
    return credential_error{credential_errc::bad_response,
                            "imds: the role name is empty or not a valid IAM role name"};
  }
  return std::string(role);
}

credential_result<aws_credentials> role_credentials(const imds_endpoint& ep,
                                                    const std::string& token,
                                                    const std::string& role) {
  auto reply = call(ep, http_method::get, std::string(role_list_path) + role,
                    {"X-aws-ec2-metadata-token", token});
  if (!reply) return reply.error();
  if (reply->status != 200) {
    return credential_error{credential_errc::http, "imds: credentials request for role " + role +
                                                       " answered HTTP " +
                                                       std::to_string(reply->status)};
  }
  return detail::parse_credentials_json(reply->body, true, "imds");
}

}  // namespace

credential_result<aws_credentials> from_imds(const fetch_options& opt) {
  const env_fn env = detail::effective_env(opt.getenv);
  if (auto disabled = env(std::string("AWS_EC2_METADATA_DISABLED"));
      disabled && detail::iequals(trim(*disabled), "true")) {
    return credential_error{credential_errc::disabled,
                            "imds: disabled by AWS_EC2_METADATA_DISABLED"};
  }
  const auto ep = find_endpoint(env, opt);
  if (!ep) return ep.error();
  const auto token = session_token(*ep);
  if (!token) return token.error();
  const auto role = role_name(*ep, *token);
  if (!role) return role.error();
  return role_credentials(*ep, *token, *role);
}

}  // namespace bedrock_meter::aws
