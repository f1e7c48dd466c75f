// Choosing a source: the default chain (or the one source configured), and the Bedrock API key
// that `source: bearer` uses instead of AWS credentials.
#include "aws/credentials.hpp"

#include <utility>
#include <vector>

#include "aws/credentials_detail.hpp"

namespace bedrock_meter::aws {
namespace {

// A source with everything bound but the fetch options.
using source_fn = std::function<credential_result<aws_credentials>(const fetch_options&)>;

source_fn profile_source(std::string profile) {
  return
      [profile = std::move(profile)](const fetch_options& o) { return from_profile(profile, o); };
}

// Fetches once from `source`; on success also returns the fetch to repeat.
credential_result<resolved_source> try_source(const source_fn& source, const fetch_options& opt) {
  // The refetch owns copies: it runs on the refresh thread long after `opt` is gone.
  fetch_fn refetch = [source, opt]() { return source(opt); };
  auto first = source(opt);
  if (!first) return first.error();
  return resolved_source{std::move(*first), std::move(refetch)};
}

credential_result<resolved_source> resolve_default_chain(const config::upstream_credentials& cfg,
                                                         const fetch_options& opt) {
  std::vector<source_fn> sources;
  // An explicit profile in our config negates the environment, as Session(profile_name=...)
  // does in botocore: the operator asked for that profile.
  if (cfg.profile.empty()) sources.emplace_back(from_environment);
  sources.push_back(profile_source(cfg.profile));
  sources.emplace_back(from_container);

  std::string tried;  // one clause per source that had nothing, for the final message
  const auto skip = [&tried](const credential_error& e) {
    tried += tried.empty() ? "" : "; ";
    tried += e.message;
  };
  for (const auto& source : sources) {
    auto r = try_source(source, opt);
    if (r || r.error().code != credential_errc::not_found) return r;
    skip(r.error());
  }
  // IMDS is the last resort and, as in botocore, any failure there just means "not on EC2".
  auto r = try_source(from_imds, opt);
  if (r) return r;
  skip(r.error());
  return credential_error{credential_errc::not_found,
                          "no AWS credentials found for Bedrock (" + tried + ")"};
}

}  // namespace

credential_result<resolved_source> resolve(const config::upstream_credentials& cfg,
                                           const fetch_options& opt) {
  switch (cfg.source) {
    case config::credential_source::environment: return try_source(from_environment, opt);
    case config::credential_source::profile: return try_source(profile_source(cfg.profile), opt);
    case config::credential_source::container: return try_source(from_container, opt);
    case config::credential_source::imds: return try_source(from_imds, opt);
    case config::credential_source::bearer:
      return credential_error{
          credential_errc::unsupported,
          "source 'bearer' uses a Bedrock API key, not AWS credentials (see bearer_token)"};
    case config::credential_source::default_chain: break;
  }
  return resolve_default_chain(cfg, opt);
}

credential_result<std::string> bearer_token(const config::upstream_credentials& cfg,
                                            const env_fn& getenv) {
  const env_fn env = detail::effective_env(getenv);
  if (cfg.bearer_token_env.empty()) {
    return credential_error{credential_errc::not_found, "bearer_token_env is empty"};
  }
  auto v = detail::env_nonempty(env, cfg.bearer_token_env);
  if (!v) {
    return credential_error{credential_errc::not_found,
                            cfg.bearer_token_env + " is not set or empty"};
  }
  return std::string(detail::trim(*v));
}

}  // namespace bedrock_meter::aws
