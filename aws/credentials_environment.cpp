// Source 1 of the default chain: keys in the process environment.
#include "aws/credentials.hpp"

#include <utility>

#include "aws/credentials_detail.hpp"

namespace bedrock_meter::aws {

using detail::env_nonempty;

credential_result<aws_credentials> from_environment(const fetch_options& opt) {
  const env_fn env = detail::effective_env(opt.getenv);
  const auto id = env_nonempty(env, "AWS_ACCESS_KEY_ID");
  const auto secret = env_nonempty(env, "AWS_SECRET_ACCESS_KEY");
  if (!id && !secret) {
    return credential_error{credential_errc::not_found, "AWS_ACCESS_KEY_ID is not set"};
  }
  if (!id || !secret) {
    return credential_error{credential_errc::partial,
                            id ? "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
                               : "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"};
  }
  aws_credentials c;
  c.creds.access_key_id = *id;
  c.creds.secret_access_key = *secret;
  if (auto token = env_nonempty(env, "AWS_SESSION_TOKEN")) {
    c.creds.session_token = *token;
  } else if (auto legacy = env_nonempty(env, "AWS_SECURITY_TOKEN")) {
    c.creds.session_token = *legacy;
  }
  if (auto exp = env_nonempty(env, "AWS_CREDENTIAL_EXPIRATION")) {
    c.expiration = parse_iso8601(detail::trim(*exp));
    if (!c.expiration) {
      return credential_error{credential_errc::bad_response,
                              "AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 timestamp"};
    }
  }
  c.source = "environment";
  return c;
}

}  // namespace bedrock_meter::aws
