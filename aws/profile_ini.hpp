#pragma once
// Internal to aws/: the INI dialect of AWS's shared credentials and config files
// (~/.aws/credentials, ~/.aws/config), as botocore's configparser reads it.
#include <map>
#include <string>
#include <string_view>

namespace bedrock_meter::aws::detail {

/// One section's properties; keys lower-cased, like configparser.
using ini_section = std::map<std::string, std::string>;
/// Sections by name as written, trimmed.
using ini_file = std::map<std::string, ini_section>;

/// Parses the shared-file dialect of INI. Comments start with `#` or `;` (a trailing one only
/// after whitespace); `key = value` and `key: value`. Indented lines after a property are
/// continuation lines (nested settings such as `s3 =\n  max_concurrent_requests = 10`) and are
/// skipped, so they can never be mistaken for top-level keys. Later duplicates override earlier
/// ones. Never fails: what cannot be read is ignored.
ini_file parse_ini(std::string_view text);

}  // namespace bedrock_meter::aws::detail
