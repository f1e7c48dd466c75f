// The `upstream` section: where requests go (region, endpoint, TLS) and with which credentials.
#include "config/loader.hpp"

#include <algorithm>

#include "config/text.hpp"

namespace bedrock_meter::config {
namespace {

constexpr std::array<std::string_view, 12> upstream_keys = {"region",
                                                            "allowed_client_regions",
                                                            "unlisted_client_regions",
                                                            "endpoint",
                                                            "ca_file",
                                                            "verify_tls",
                                                            "credentials",
                                                            "connect_timeout",
                                                            "first_byte_timeout",
                                                            "idle_timeout",
                                                            "max_idle_connections",
                                                            "pool_idle_time"};
constexpr enum_table<bool, 2> unlisted_regions{
    "unlisted_client_regions",
    {"refuse", "reroute"},
    {false, true},
    [](std::string_view word, std::span<const std::string_view>) {
      return "'" + std::string(word) +
             "' is not a choice; use refuse (the default: 403 for a region not allowed) or reroute "
             "(send it to upstream.region)";
    }};
constexpr std::array<std::string_view, 4> credentials_keys = {"source", "profile",
                                                              "bearer_token_env", "refresh_before"};

constexpr std::string_view endpoint_fix =
    "; write http(s)://host[:port], e.g. https://bedrock-runtime.{region}.amazonaws.com or "
    "http://127.0.0.1:9000";

/// What is wrong with the host[:port] of `endpoint` (`authority`, `{region}` already
/// substituted), or empty.
std::string authority_problem(const std::string& endpoint, const std::string& authority) {
  const auto bad = [&](std::string_view what) {
    return "'" + endpoint + "' " + std::string(what) + std::string(endpoint_fix);
  };
  std::string_view host = authority;
  std::string_view port;
  if (host.starts_with('[')) {
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos || !is_ip_literal(std::string(host.substr(1, close - 1)))) {
      return bad("has a malformed IPv6 address");
    }
    const std::string_view after = host.substr(close + 1);
    host = host.substr(0, close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return bad("is malformed after ']'");
      port = after.substr(1);
      if (port.empty()) port = "x";  // "[::1]:" is malformed
    }
  } else if (const std::size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    if (port.empty()) port = "x";
    host = host.substr(0, colon);
  }
  const bool host_ok =
      !host.empty() && (host.starts_with('[') || std::all_of(host.begin(), host.end(), [](char c) {
                          return is_lower(c) || is_upper(c) || is_digit(c) || c == '.' || c == '-';
                        }));
  if (!host_ok) {
    const bool placeholder = authority.find_first_of("{}") != std::string::npos;
    return bad(placeholder ? "has an invalid host; {region} is the only supported placeholder"
                           : "has an invalid host");
  }
  if (!port.empty()) {
    const auto p = parse_uint(port);
    if (!p || *p == 0 || *p > 65535) {
      return bad("has an invalid port; use a number from 1 to 65535");
    }
  }
  return {};
}

/// What is wrong with an endpoint override, or empty.
std::string endpoint_problem(const std::string& endpoint) {
  std::string_view rest = endpoint;
  if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else {
    return "'" + endpoint + "' must start with http:// or https://" + std::string(endpoint_fix);
  }
  // Only a bare origin: the proxy forwards the client's path unchanged.
  const std::size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    if (slash + 1 != rest.size()) {
      return "'" + endpoint + "' has a path, query or fragment; the endpoint is only scheme, " +
             "host and port" + std::string(endpoint_fix);
    }
    rest = rest.substr(0, slash);
  }
  std::string authority(rest);
  // `{region}` is the only placeholder; substitute a real region to check what remains.
  for (std::size_t at = authority.find("{region}"); at != std::string::npos;
       at = authority.find("{region}")) {
    authority.replace(at, 8, "us-east-1");
  }
  return authority_problem(endpoint, authority);
}

void load_regions(const map_reader& s, std::vector<std::string>& out) {
  s.for_each_item("allowed_client_regions", "regions such as [us-west-2, eu-west-1]",
                  [&](const YAML::Node& item, const std::string& path) {
                    const std::string* region = s.item_scalar(item, path, "a region name");
                    if (region == nullptr) return;
                    if (!is_valid_region(*region)) {
                      s.diag().error(
                          item.Mark(), path,
                          "'" + *region + "' is not an AWS region name; write e.g. us-west-2");
                      return;
                    }
                    out.push_back(*region);
                  });
}

/// `source: bearer` needs a variable holding the upstream API key, and it must be set.
void check_bearer_env(const load_context& ctx, const map_reader& s, upstream_credentials& c) {
  const map_entry* b = s.get("bearer_token_env");
  if (c.bearer_token_env.empty()) {
    ctx.diag().error(b != nullptr ? b->mark() : s.mark(), s.path_of("bearer_token_env"),
                     "source 'bearer' needs 'bearer_token_env': the variable holding the Bedrock "
                     "API key");
  } else if (is_env_name(c.bearer_token_env)) {
    // Without an explicit bearer_token_env, point at `source: bearer`, which asked for it.
    ctx.require_env_set(b != nullptr ? *b : *s.get("source"), s.path_of("bearer_token_env"),
                        c.bearer_token_env, "it holds the upstream Bedrock API key");
  }
}

void load_credentials(const load_context& ctx, const map_entry& e, upstream_credentials& c) {
  if (e.value.IsNull()) return;
  const map_reader s(ctx.diag(), e.value, "upstream.credentials", credentials_keys, e.mark());
  if (!s.is_map()) return;
  s.read_enum("source", credential_sources, c.source, text_rule::optional);
  if (s.read_string("profile", c.profile, text_rule::optional) && !c.profile.empty() &&
      c.source != credential_source::profile) {
    s.error(*s.get("profile"),
            "'profile' is only used with 'source: profile'; set the source to profile or remove "
            "'profile' (the default chain honours AWS_PROFILE)");
  }
  read_env_name(s, "bearer_token_env", c.bearer_token_env, text_rule::optional);
  if (c.source == credential_source::bearer) check_bearer_env(ctx, s, c);
  s.read_duration("refresh_before", c.refresh_before, true, std::chrono::hours(1));
}

}  // namespace

void load_upstream(load_context& ctx, const map_entry& e, upstream_config& u) {
  if (e.value.IsNull()) return;
  const map_reader s(ctx.diag(), e.value, "upstream", upstream_keys, e.mark());
  if (!s.is_map()) return;
  if (s.read_string("region", u.region, text_rule::optional) && !is_valid_region(u.region)) {
    s.error(*s.get("region"),
            "'" + u.region + "' is not an AWS region name; write e.g. us-east-1 or eu-west-3");
  }
  load_regions(s, u.allowed_client_regions);
  s.read_enum("unlisted_client_regions", unlisted_regions, u.reroute_unlisted_client_regions,
              text_rule::non_empty);
  if (s.read_string("endpoint", u.endpoint, text_rule::optional) && !u.endpoint.empty()) {
    if (auto problem = endpoint_problem(u.endpoint); !problem.empty()) {
      s.error(*s.get("endpoint"), std::move(problem));
    } else if (u.endpoint.ends_with('/')) {
      u.endpoint.pop_back();  // one spelling for the proxy to work with
    }
  }
  if (s.read_string("ca_file", u.ca_file, text_rule::optional) && !u.ca_file.empty()) {
    u.ca_file = ctx.readable_file(*s.get("ca_file"), "upstream.ca_file", u.ca_file);
  }
  if (s.read_bool("verify_tls", u.verify_tls) && !u.verify_tls) {
    ctx.diag().warn(s.get("verify_tls")->mark(), "upstream.verify_tls",
                    "upstream TLS certificates are not verified; use this only against a local "
                    "simulator");
  }
  if (const map_entry* c = s.get("credentials")) load_credentials(ctx, *c, u.credentials);
  s.read_duration("connect_timeout", u.connect_timeout, false);
  s.read_duration("first_byte_timeout", u.first_byte_timeout, false);
  s.read_duration("idle_timeout", u.idle_timeout, false);
  s.read_uint("max_idle_connections", u.max_idle_connections, 1, 100000,
              "use a number from 1 to 100000 (idle upstream connections kept per worker)");
  s.read_duration("pool_idle_time", u.pool_idle_time, false);
}

}  // namespace bedrock_meter::config
