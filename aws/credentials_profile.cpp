// Source 2 of the default chain: the static keys of a profile in the shared credentials and
// config files.
#include "aws/credentials.hpp"

#include <array>
#include <sstream>
#include <utility>
#include <vector>

#include "aws/credentials_detail.hpp"
#include "aws/profile_ini.hpp"

namespace bedrock_meter::aws {
namespace {

using detail::env_nonempty;
using detail::ini_section;

// Keys whose presence means "this profile gets credentials some way we do not implement".
constexpr std::array<std::string_view, 8> unsupported_profile_keys = {
    "credential_process",      "sso_session",       "sso_start_url", "sso_account_id", "role_arn",
    "web_identity_token_file", "credential_source", "login_session"};

// Which profile to read. `named` when the user chose it: a named profile that is missing is an
// error, the implicit default missing just means "no profile".
struct profile_choice {
  std::string name;
  bool named = false;
};

profile_choice choose_profile(std::string_view profile, const env_fn& env) {
  if (!profile.empty()) return {std::string(profile), true};
  if (auto p = env_nonempty(env, "AWS_PROFILE")) return {std::move(*p), true};
  return {"default", false};
}

std::string expand_home(std::string path, const env_fn& env) {
  if (path == "~" || path.starts_with("~/")) {
    if (auto home = env_nonempty(env, "HOME")) return *home + path.substr(1);
  }
  return path;
}

struct shared_files {
  std::string credentials_path;
  std::string config_path;
};

shared_files locate_shared_files(const env_fn& env) {
  return {expand_home(
              env_nonempty(env, "AWS_SHARED_CREDENTIALS_FILE").value_or("~/.aws/credentials"), env),
          expand_home(env_nonempty(env, "AWS_CONFIG_FILE").value_or("~/.aws/config"), env)};
}

// The credentials file names sections `[name]`.
std::optional<ini_section> credentials_file_section(const std::string& text,
                                                    const std::string& name) {
  auto ini = detail::parse_ini(text);
  if (auto it = ini.find(name); it != ini.end()) return std::move(it->second);
  return std::nullopt;
}

// The config file names sections `[profile name]` (any whitespace between the words), except
// that the default profile may be `[default]` there too.
bool is_config_section_for(const std::string& section, const std::string& name) {
  if (name == "default" && section == "default") return true;
  if (!section.starts_with("profile")) return false;
  std::istringstream words(section);
  std::string first;
  std::string second;
  std::string extra;
  words >> first >> second;
  return first == "profile" && second == name && !(words >> extra);
}

// Every config-file section for the profile, merged in file order.
std::optional<ini_section> config_file_section(const std::string& text, const std::string& name) {
  std::optional<ini_section> out;
  for (auto& [section, values] : detail::parse_ini(text)) {
    if (!is_config_section_for(section, name)) continue;
    if (!out) out.emplace();
    for (auto& [k, v] : values) (*out)[k] = std::move(v);
  }
  return out;
}

// A profile's section in one shared file, and the file, for messages.
struct profile_section {
  ini_section values;
  std::string path;
};

// The sections of profile `name`: the credentials file's first, then the config file's
// (botocore's SharedCredentialProvider, then ConfigProvider). Empty when neither file has it.
credential_result<std::vector<profile_section>> find_profile(const std::string& name,
                                                             const shared_files& files,
                                                             const std::string& label) {
  auto credentials_text = detail::read_file_if_exists(files.credentials_path, label);
  if (!credentials_text) return credentials_text.error();
  auto config_text = detail::read_file_if_exists(files.config_path, label);
  if (!config_text) return config_text.error();

  std::vector<profile_section> found;
  if (*credentials_text) {
    if (auto s = credentials_file_section(**credentials_text, name)) {
      found.push_back({std::move(*s), files.credentials_path});
    }
  }
  if (*config_text) {
    if (auto s = config_file_section(**config_text, name)) {
      found.push_back({std::move(*s), files.config_path});
    }
  }
  return found;
}

std::string_view get(const ini_section& s, std::string_view key) {
  const auto it = s.find(std::string(key));
  return it == s.end() ? std::string_view{} : detail::trim(it->second);
}

// The static keys in one section: nullopt when it has neither key, `partial` when only one.
credential_result<std::optional<aws_credentials>> static_keys(const profile_section& section,
                                                              const std::string& label) {
  const auto id = get(section.values, "aws_access_key_id");
  const auto secret = get(section.values, "aws_secret_access_key");
  if (id.empty() && secret.empty()) return std::optional<aws_credentials>{};
  if (id.empty() || secret.empty()) {
    return credential_error{credential_errc::partial,
                            label + " in " + section.path + " has " +
                                (id.empty() ? "aws_secret_access_key but no aws_access_key_id"
                                            : "aws_access_key_id but no aws_secret_access_key")};
  }
  aws_credentials c;
  c.creds.access_key_id = std::string(id);
  c.creds.secret_access_key = std::string(secret);
  auto token = get(section.values, "aws_session_token");
  if (token.empty()) token = get(section.values, "aws_security_token");
  c.creds.session_token = std::string(token);
  return std::optional<aws_credentials>{std::move(c)};
}

// `unsupported` when the section gets its credentials some way we do not implement. The message
// names the key, never its value (a credential_process command line may hold a secret).
credential_result<void> check_supported(const profile_section& section, const std::string& label) {
  for (const auto key : unsupported_profile_keys) {
    if (section.values.contains(std::string(key))) {
      return credential_error{
          credential_errc::unsupported,
          label + " in " + section.path + " uses " + std::string(key) +
              ", which bedrock-meter does not support; give the profile static keys "
              "(aws_access_key_id / aws_secret_access_key) or use environment, container or "
              "instance credentials"};
    }
  }
  return {};
}

}  // namespace

credential_result<aws_credentials> from_profile(std::string_view profile,
                                                const fetch_options& opt) {
  const env_fn env = detail::effective_env(opt.getenv);
  const profile_choice choice = choose_profile(profile, env);
  const shared_files files = locate_shared_files(env);
  const std::string label = "profile '" + choice.name + "'";

  auto sections = find_profile(choice.name, files, label);
  if (!sections) return sections.error();
  if (sections->empty()) {
    return credential_error{
        choice.named ? credential_errc::profile_not_found : credential_errc::not_found,
        label + " not found in " + files.credentials_path + " or " + files.config_path};
  }
  for (const auto& section : *sections) {
    auto keys = static_keys(section, label);
    if (!keys) return keys.error();
    if (*keys) {
      (*keys)->source = "profile:" + choice.name;
      return std::move(**keys);
    }
  }
  for (const auto& section : *sections) {
    if (auto supported = check_supported(section, label); !supported) return supported.error();
  }
  return credential_error{credential_errc::not_found,
                          label + " has no aws_access_key_id / aws_secret_access_key"};
}

}  // namespace bedrock_meter::aws
