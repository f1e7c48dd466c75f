// Source 3 of the default chain: the ECS / EKS Pod Identity container credentials endpoint.
#include "aws/credentials.hpp"

#include <utility>

#include <boost/asio/ip/address.hpp>

#include "aws/credentials_detail.hpp"
#include "aws/metadata_client.hpp"

namespace bedrock_meter::aws {
namespace {

using detail::env_nonempty;
using detail::parsed_url;

constexpr const char* relative_uri_var = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
constexpr const char* full_uri_var = "AWS_CONTAINER_CREDENTIALS_FULL_URI";

bool is_allowed_full_uri_host(const std::string& host) {
  if (detail::iequals(host, "localhost")) return true;
  boost::system::error_code ec;
  const auto addr = boost::asio::ip::make_address(host, ec);
  if (ec) return false;
  if (addr.is_loopback()) return true;
  // The ECS (IPv4) and EKS Pod Identity (IPv4 and IPv6) agents.
  for (const char* allowed : {"169.254.170.2", "169.254.170.23", "fd00:ec2::23"}) {
    if (addr == boost::asio::ip::make_address(allowed, ec)) return true;
  }
  return false;
}

// The URI the environment names, and whether it is the relative form.
struct container_uri {
  std::string uri;
  bool relative = false;
};

credential_result<container_uri> find_container_uri(const env_fn& env, const fetch_options& opt) {
  if (auto rel = env_nonempty(env, relative_uri_var)) {
    return container_uri{opt.container_base_uri + *rel, true};
  }
  if (auto full = env_nonempty(env, full_uri_var)) return container_uri{*full, false};
  return credential_error{
      credential_errc::not_found,
      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / AWS_CONTAINER_CREDENTIALS_FULL_URI are not set"};
}

// The endpoint, checked: http only, and for the full form one of the agents' hosts.
credential_result<parsed_url> container_endpoint(const env_fn& env, const fetch_options& opt) {
  const auto found = find_container_uri(env, opt);
  if (!found) return found.error();
  auto url = detail::parse_url(found->uri);
  if (!url) {
    return credential_error{credential_errc::invalid_endpoint,
                            "container: the credentials URI is not a valid http URL"};
  }
  if (url->scheme == "https") {
    return credential_error{
        credential_errc::unsupported,
        "container: https credentials endpoints are not supported (use an http endpoint on "
        "loopback, 169.254.170.2 or 169.254.170.23)"};
  }
  if (url->scheme != "http") {
    return credential_error{credential_errc::invalid_endpoint,
                            "container: the credentials URI must be http://"};
  }
  // The relative form always targets the configured base (the ECS agent); the full form is
  // restricted as the SDKs restrict it, so a poisoned env var cannot send the token elsewhere.
  if (!found->relative && !is_allowed_full_uri_host(url->host)) {
    return credential_error{credential_errc::invalid_endpoint,
                            "container: AWS_CONTAINER_CREDENTIALS_FULL_URI host " +
                                detail::printable(url->host) +
                                " is not loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23"};
  }
  return std::move(*url);
}

// The Authorization header value, if the environment gives one: the token file (re-read on every
// fetch, because EKS rotates the projected token file) wins over the inline token.
credential_result<std::optional<std::string>> authorization_token(const env_fn& env) {
  std::optional<std::string> token;
  if (auto file = env_nonempty(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
    auto text = detail::read_file_if_exists(*file, "container");
    if (!text) return text.error();
    if (!*text) {
      return credential_error{
          credential_errc::unreadable,
          "container: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " + *file + " does not exist"};
    }
    token = std::string(detail::trim(**text));
  } else if (auto inline_token = env_nonempty(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
    token = std::move(*inline_token);
  }
  if (token && token->find_first_of("\r\n") != std::string::npos) {
    return credential_error{credential_errc::bad_response,
                            "container: the authorization token contains a line break"};
  }
  return token;
}

}  // namespace

credential_result<aws_credentials> from_container(const fetch_options& opt) {
  const env_fn env = detail::effective_env(opt.getenv);
  auto url = container_endpoint(env, opt);
  if (!url) return url.error();
  auto token = authorization_token(env);
  if (!token) return token.error();

  detail::metadata_request req;
  req.url = std::move(*url);
  req.target = req.url.path;
  req.timeout = opt.container_timeout;
  if (*token) req.headers.emplace_back("Authorization", std::move(**token));

  auto reply = detail::fetch_metadata(req, opt.container_attempts, "container");
  if (!reply) return reply.error();
  if (reply->status != 200) {
    return credential_error{
        credential_errc::http,
        "container: " + detail::where(req.url) + " answered HTTP " + std::to_string(reply->status)};
  }
  return detail::parse_credentials_json(reply->body, false, "container");
}

}  // namespace bedrock_meter::aws
