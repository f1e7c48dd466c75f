#include "aws/credentials_detail.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

namespace bedrock_meter::aws::detail {

std::string_view trim(std::string_view s) noexcept {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<unsigned> parse_unsigned(std::string_view s) {
  s = trim(s);
  unsigned v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

env_fn effective_env(const env_fn& getenv) {
  if (getenv) return getenv;
  return [](const std::string& name) -> std::optional<std::string> {
    // Read at startup and on the refresh thread only; nothing in the proxy calls setenv.
    const char* v = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe)
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

std::optional<std::string> env_nonempty(const env_fn& env, const std::string& name) {
  auto v = env(name);
  if (!v || v->empty()) return std::nullopt;
  return v;
}

credential_result<std::optional<std::string>> read_file_if_exists(const std::string& path,
                                                                  std::string_view what) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<std::string>{};
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return credential_error{credential_errc::unreadable,
                            std::string(what) + ": cannot read " + path};
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return credential_error{credential_errc::unreadable,
                            std::string(what) + ": error reading " + path};
  }
  return std::optional<std::string>{ss.str()};
}

}  // namespace bedrock_meter::aws::detail
