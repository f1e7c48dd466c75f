#include "aws/profile_ini.hpp"

#include "aws/credentials_detail.hpp"

namespace bedrock_meter::aws::detail {
namespace {

// Cuts a trailing ` # ...` / ` ; ...` comment. Only when preceded by whitespace: keys, secrets
// and tokens never contain whitespace, but a value may legitimately contain `#` or `;`.
std::string_view strip_inline_comment(std::string_view v) noexcept {
  for (std::size_t i = 1; i < v.size(); ++i) {
    if ((v[i] == '#' || v[i] == ';') && (v[i - 1] == ' ' || v[i - 1] == '\t')) {
      return trim(v.substr(0, i));
    }
  }
  return v;
}

}  // namespace

ini_file parse_ini(std::string_view text) {
  ini_file out;
  ini_section* section = nullptr;
  // Indent of the last property in this section; npos when there is none yet.
  std::size_t property_indent = std::string_view::npos;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);

    const auto indent = line.find_first_not_of(" \t");
    const std::string_view t = trim(line);
    if (t.empty() || t.front() == '#' || t.front() == ';') continue;
    if (property_indent != std::string_view::npos && indent > property_indent) {
      continue;  // continuation of the previous property's value
    }
    if (t.front() == '[') {
      const auto close = t.find(']');
      if (close == std::string_view::npos) {
        section = nullptr;  // malformed header: ignore its body rather than misfile it
      } else {
        section = &out[std::string(trim(t.substr(1, close - 1)))];
      }
      property_indent = std::string_view::npos;
      continue;
    }
    const auto delim = t.find_first_of("=:");
    if (delim == std::string_view::npos || section == nullptr) continue;
    const std::string key = lower(trim(t.substr(0, delim)));
    if (key.empty()) continue;
    (*section)[key] = std::string(strip_inline_comment(trim(t.substr(delim + 1))));
    property_indent = indent;
  }
  return out;
}

}  // namespace bedrock_meter::aws::detail
