#pragma once
/// A validating JSON scanner that finds values without building them: where each member of an
/// object or element of an array begins and ends, as views into the text. The request body's one
/// pass (metering/request_body.hpp) uses it to read a few small values and to hash prompt
/// prefixes byte for byte, at a fraction of the cost of a document parse, allocating nothing.
///
/// Strict enough to reject what is not JSON (unbalanced brackets, bad literals, control
/// characters in strings, trailing commas), so a value it hands out is a complete JSON value.
/// Nesting deeper than `max_depth` counts as malformed (no unbounded recursion on hostile input).
/// Pure code.
#include <cstddef>
#include <string>
#include <string_view>

namespace bedrock_meter::metering::json_scan {

inline constexpr std::size_t npos = std::string_view::npos;
inline constexpr int max_depth = 128;

/// The first non-whitespace position at or after `i` (s.size() when none).
std::size_t skip_ws(std::string_view s, std::size_t i) noexcept;

/// The position just after the JSON value that starts at `i` (leading whitespace allowed), or
/// npos when the text there is not a complete value.
std::size_t skip_value(std::string_view s, std::size_t i, int depth = 0) noexcept;

/// `v` with surrounding whitespace removed.
std::string_view trim(std::string_view v) noexcept;

/// Whether the raw text of a string's contents (between the quotes, escapes not decoded) equals
/// `name` once decoded. Keys with escapes are rare; they are decoded into a small buffer.
bool key_equals(std::string_view raw, std::string_view name);

/// Calls `f(raw_key, value)` for each member of the object `obj` (its whole text, `{...}`), in
/// order; `value` is the member's value text without surrounding whitespace. Returns false when
/// `obj` is not a well-formed object (members already visited stay visited).
template <class F>
bool for_each_member(std::string_view obj, F&& f);

/// Calls `f(element)` for each element of the array `arr` (its whole text, `[...]`), in order.
template <class F>
bool for_each_element(std::string_view arr, F&& f);

// --- implementation -------------------------------------------------------------------------

namespace detail {
/// Position after the string whose opening quote is at `i`, or npos.
std::size_t skip_string(std::string_view s, std::size_t i) noexcept;
}  // namespace detail

template <class F>
bool for_each_member(std::string_view obj, F&& f) {
  std::size_t i = skip_ws(obj, 0);
  if (i >= obj.size() || obj[i] != '{') return false;
  i = skip_ws(obj, i + 1);
  if (i < obj.size() && obj[i] == '}') return skip_ws(obj, i + 1) == obj.size();
  while (i < obj.size()) {
    if (obj[i] != '"') return false;
    const std::size_t key_end = detail::skip_string(obj, i);
    if (key_end == npos) return false;
    const std::string_view key = obj.substr(i + 1, key_end - i - 2);
    i = skip_ws(obj, key_end);
    if (i >= obj.size() || obj[i] != ':') return false;
    const std::size_t v_begin = skip_ws(obj, i + 1);
    const std::size_t v_end = skip_value(obj, v_begin, 1);
    if (v_end == npos) return false;
    f(key, obj.substr(v_begin, v_end - v_begin));
    i = skip_ws(obj, v_end);
    if (i >= obj.size()) return false;
    if (obj[i] == '}') return skip_ws(obj, i + 1) == obj.size();
    if (obj[i] != ',') return false;
    i = skip_ws(obj, i + 1);
  }
  return false;
}

template <class F>
bool for_each_element(std::string_view arr, F&& f) {
  std::size_t i = skip_ws(arr, 0);
  if (i >= arr.size() || arr[i] != '[') return false;
  i = skip_ws(arr, i + 1);
  if (i < arr.size() && arr[i] == ']') return skip_ws(arr, i + 1) == arr.size();
  while (i < arr.size()) {
    const std::size_t v_end = skip_value(arr, i, 1);
    if (v_end == npos) return false;
    f(arr.substr(i, v_end - i));
    i = skip_ws(arr, v_end);
    if (i >= arr.size()) return false;
    if (arr[i] == ']') return skip_ws(arr, i + 1) == arr.size();
    if (arr[i] != ',') return false;
    i = skip_ws(arr, i + 1);
  }
  return false;
}

}  // namespace bedrock_meter::metering::json_scan
