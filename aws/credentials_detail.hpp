#pragma once
// Internal to aws/: what the upstream credential sources share (string and environment helpers,
// reading a file the user named, the credentials JSON of the metadata endpoints). Not part of
// the module's interface; only aws/*.cpp include it.
#include <optional>
#include <string>
#include <string_view>

#include "aws/credentials.hpp"

namespace bedrock_meter::aws::detail {

/// Without leading and trailing spaces, tabs, CR and LF.
std::string_view trim(std::string_view s) noexcept;
/// ASCII lower case.
std::string lower(std::string_view s);
/// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b) noexcept;
/// A decimal number, surrounding whitespace allowed; nullopt when anything else is there.
std::optional<unsigned> parse_unsigned(std::string_view s);
/// A short, printable excerpt of a non-secret field for error messages.
std::string printable(std::string_view s);

/// `getenv` itself, or the process environment when it is empty.
env_fn effective_env(const env_fn& getenv);
/// The value of `name` when set and non-empty.
std::optional<std::string> env_nonempty(const env_fn& env, const std::string& name);

/// The contents of a file the user named: nullopt when it does not exist, `unreadable` (message
/// starting with `what`) when it exists but cannot be read.
credential_result<std::optional<std::string>> read_file_if_exists(const std::string& path,
                                                                  std::string_view what);

/// The credentials document of the container endpoint and IMDS: AccessKeyId, SecretAccessKey,
/// optional Token and Expiration (ISO 8601), and for IMDS (`check_code`) a Code that must be
/// "Success". Errors are `bad_response`, prefixed with `source`, which also becomes the result's
/// `source`.
credential_result<aws_credentials> parse_credentials_json(std::string_view body, bool check_code,
                                                          std::string source);

}  // namespace bedrock_meter::aws::detail
