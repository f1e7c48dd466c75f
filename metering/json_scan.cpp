#include "metering/json_scan.hpp"

#include <cstring>

namespace bedrock_meter::metering::json_scan {

namespace {

constexpr bool is_ws(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::size_t skip_literal(std::string_view s, std::size_t i, std::string_view word) noexcept {
  return s.substr(i, word.size()) == word ? i + word.size() : npos;
}

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

std::size_t skip_digits(std::string_view s, std::size_t i) noexcept {
  while (i < s.size() && is_digit(s[i])) ++i;
  return i;
}

/// RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
std::size_t skip_number(std::string_view s, std::size_t i) noexcept {
  if (i < s.size() && s[i] == '-') ++i;
  if (i >= s.size() || !is_digit(s[i])) return npos;
  i = s[i] == '0' ? i + 1 : skip_digits(s, i);
  if (i < s.size() && s[i] == '.') {
    const std::size_t j = skip_digits(s, i + 1);
    if (j == i + 1) return npos;
    i = j;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    const std::size_t j = skip_digits(s, i);
    if (j == i) return npos;
    i = j;
  }
  return i;
}

/// Skips the members or elements of a container whose opening bracket is at `i`.
std::size_t skip_container(std::string_view s, std::size_t i, int depth) noexcept {
  const bool object = s[i] == '{';
  const char close = object ? '}' : ']';
  i = skip_ws(s, i + 1);
  if (i < s.size() && s[i] == close) return i + 1;
  while (i < s.size()) {
    if (object) {
      if (s[i] != '"') return npos;
      i = skip_ws(s, detail::skip_string(s, i));
      if (i >= s.size() || s[i] != ':') return npos;
      ++i;
    }
    i = skip_value(s, i, depth + 1);
    if (i == npos) return npos;
    i = skip_ws(s, i);
    if (i >= s.size()) return npos;
    if (s[i] == close) return i + 1;
    if (s[i] != ',') return npos;
    i = skip_ws(s, i + 1);
  }
  return npos;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::size_t skip_ws(std::string_view s, std::size_t i) noexcept {
  while (i < s.size() && is_ws(s[i])) ++i;
  return i;
}

std::string_view trim(std::string_view v) noexcept {
  std::size_t b = skip_ws(v, 0);
  std::size_t e = v.size();
  while (e > b && is_ws(v[e - 1])) --e;
  return v.substr(b, e - b);
}

std::size_t detail::skip_string(std::string_view s, std::size_t i) noexcept {
  // `i` is the opening quote. Control characters are not allowed raw inside a string.
  for (++i; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"') return i + 1;
    if (c == '\\') {
      if (++i >= s.size()) return npos;
      if (s[i] == 'u') {
        if (i + 4 >= s.size()) return npos;
        for (std::size_t k = 1; k <= 4; ++k)
          if (hex_value(s[i + k]) < 0) return npos;
        i += 4;
      } else if (std::strchr("\"\\/bfnrt", s[i]) == nullptr || s[i] == '\0') {
        return npos;
      }
    } else if (c < 0x20) {
      return npos;
    }
  }
  return npos;
}

std::size_t skip_value(std::string_view s, std::size_t i, int depth) noexcept {
  if (i == npos || depth > max_depth) return npos;
  i = skip_ws(s, i);
  if (i >= s.size()) return npos;
  switch (s[i]) {
    case '"': return detail::skip_string(s, i);
    case '{':
    case '[': return skip_container(s, i, depth);
    case 't': return skip_literal(s, i, "true");
    case 'f': return skip_literal(s, i, "false");
    case 'n': return skip_literal(s, i, "null");
    default: return skip_number(s, i);
  }
}

bool key_equals(std::string_view raw, std::string_view name) {
  if (raw.find('\\') == std::string_view::npos) return raw == name;
  std::string decoded;
  decoded.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\') {
      decoded.push_back(raw[i]);
      continue;
    }
    if (++i >= raw.size()) return false;
    const char e = raw[i];
    if (e == 'u') {
      if (i + 4 >= raw.size()) return false;
      int code = 0;
      for (int k = 1; k <= 4; ++k) {
        const int h = hex_value(raw[i + k]);
        if (h < 0) return false;
        code = code * 16 + h;
      }
      i += 4;
      if (code >= 0x80) return false;  // the names we look for are ASCII
      decoded.push_back(static_cast<char>(code));
    } else {
      const char* from = "\"\\/bfnrt";
      const char* to = "\"\\/\b\f\n\r\t";
      const char* at = std::strchr(from, e);
      if (at == nullptr || e == '\0') return false;
      decoded.push_back(to[at - from]);
    }
  }
  return decoded == name;
}

}  // namespace bedrock_meter::metering::json_scan
