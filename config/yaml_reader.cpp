#include "config/yaml_reader.hpp"

#include <yaml-cpp/depthguard.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <fstream>
#include <sstream>
#include <system_error>
#include <tuple>

#include "metering/money.hpp"

namespace bedrock_meter::config {

using std::chrono::milliseconds;

namespace {

constexpr std::string_view duration_hint =
    "write a whole number with a unit: 250ms, 5s, 15m, 1h (or combined, e.g. 1m30s)";
constexpr std::string_view size_hint =
    "write a whole number of bytes, optionally with KiB, MiB or GiB (e.g. 16384, 16KiB, 32MiB)";

/// By position; problems of other files (the rate table a config names) after the file's own,
/// by file.
void sort_by_position(std::vector<config_error>& v, const std::string& own_file) {
  std::stable_sort(v.begin(), v.end(), [&](const config_error& a, const config_error& b) {
    return std::tuple(a.file != own_file, a.file, a.line, a.column) <
           std::tuple(b.file != own_file, b.file, b.line, b.column);
  });
}

/// Decimal units (KB) and shorthand (k, M) are the usual mistakes; say which units we take.
bool looks_like_decimal_units(std::string_view t) {
  return t.ends_with("KB") || t.ends_with("MB") || t.ends_with("GB") || t.ends_with("k") ||
         t.ends_with("K") || t.ends_with("M");
}

}  // namespace

std::string child_path(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string out(parent);
  out += '.';
  out += key;
  return out;
}

std::string index_path(std::string_view parent, std::size_t i) {
  std::string out(parent);
  out += '[';
  out += std::to_string(i);
  out += ']';
  return out;
}

std::string_view type_name(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

std::string unknown_word(std::string_view what, std::string_view word,
                         std::span<const std::string_view> valid) {
  std::string msg = "unknown " + std::string(what) + " '" + std::string(word) + "'";
  if (const auto near = closest_match(word, valid); !near.empty()) {
    msg += "; did you mean '" + std::string(near) + "'? (valid: " + join(valid) + ")";
  } else {
    msg += "; use one of: " + join(valid);
  }
  return msg;
}

// ---------------------------------------------------------------- diagnostics

void diagnostics::error(const YAML::Mark& mark, std::string path, std::string message) {
  errors_.push_back(make(mark, std::move(path), std::move(message)));
}

void diagnostics::warn(const YAML::Mark& mark, std::string path, std::string message) {
  warnings_.push_back(make(mark, std::move(path), std::move(message)));
}

void diagnostics::adopt(std::vector<config_error> errors, std::vector<config_error> warnings) {
  for (auto& e : errors) errors_.push_back(std::move(e));
  for (auto& w : warnings) warnings_.push_back(std::move(w));
}

void diagnostics::guard(const std::function<void()>& parse, std::string_view too_deep) {
  try {
    parse();
  } catch (const YAML::DeepRecursion& e) {
    error(e.mark, "", std::string(too_deep));
  } catch (const YAML::ParserException& e) {
    error(e.mark, "", "YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {
    error(e.mark, "", "YAML error: " + e.msg);
  } catch (const std::exception& e) {
    error(YAML::Mark::null_mark(), "", std::string("internal error while loading: ") + e.what());
  }
}

std::vector<config_error> diagnostics::take_errors() {
  sort_by_position(errors_, file_);
  return std::exchange(errors_, {});
}

std::vector<config_error> diagnostics::take_warnings() {
  sort_by_position(warnings_, file_);
  return std::exchange(warnings_, {});
}

config_error diagnostics::make(const YAML::Mark& mark, std::string path,
                               std::string message) const {
  config_error e;
  e.file = file_;
  // yaml-cpp marks are 0-based and -1 when unknown; editors count from 1.
  e.line = mark.line >= 0 ? mark.line + 1 : 0;
  e.column = mark.column >= 0 ? mark.column + 1 : 0;
  e.path = std::move(path);
  e.message = std::move(message);
  return e;
}

// ---------------------------------------------------------------- map_reader: keys

map_reader::map_reader(diagnostics& diag, const YAML::Node& node, std::string path,
                       std::span<const std::string_view> keys, YAML::Mark empty_mark,
                       std::string_view unknown_noun)
    : diag_(diag), path_(std::move(path)), mark_(node.IsNull() ? empty_mark : node.Mark()) {
  if (node.IsNull()) {
    // An empty section (`auth:`) is a map with no keys: everything takes its default.
    is_map_ = true;
    return;
  }
  read_entries(node, keys, unknown_noun);
}

map_reader::map_reader(diagnostics& diag, const YAML::Node& node, std::string path,
                       std::span<const std::string_view> keys)
    : diag_(diag), path_(std::move(path)), mark_(node.Mark()) {
  read_entries(node, keys, "key");
}

void map_reader::read_entries(const YAML::Node& node, std::span<const std::string_view> keys,
                              std::string_view unknown_noun) {
  if (!node.IsMap()) {
    diag_.error(mark_, path_,
                "expected a map of keys (" + join(keys) + "), got " + std::string(type_name(node)));
    return;
  }
  is_map_ = true;
  for (const auto& kv : node) add_entry(kv.first, kv.second, keys, unknown_noun);
}

void map_reader::add_entry(const YAML::Node& key_node, const YAML::Node& value,
                           std::span<const std::string_view> keys, std::string_view unknown_noun) {
  if (!key_node.IsScalar()) {
    diag_.error(key_node.Mark(), path_,
                "keys must be plain names, got " + std::string(type_name(key_node)));
    return;
  }
  const std::string& key = key_node.Scalar();
  if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
    std::string msg = "unknown " + std::string(unknown_noun) + " '" + key + "'";
    if (const auto near = closest_match(key, keys); !near.empty()) {
      msg += "; did you mean '" + std::string(near) + "'?";
    } else {
      msg += "; valid keys here: " + join(keys);
    }
    diag_.error(key_node.Mark(), path_of(key), std::move(msg));
    return;
  }
  if (const map_entry* first = get(key)) {
    // yaml-cpp keeps both and lookups would silently take the first.
    diag_.error(key_node.Mark(), path_of(key),
                "duplicate key '" + key + "' (first on line " +
                    std::to_string(first->key_node.Mark().line + 1) + "); remove one");
    return;
  }
  entries_.push_back({key, key_node, value});
}

const map_entry* map_reader::get(std::string_view key) const {
  for (const auto& e : entries_) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

void map_reader::error(const map_entry& e, std::string message) const {
  diag_.error(e.mark(), path_of(e.key), std::move(message));
}

void map_reader::missing(std::string_view key) const {
  diag_.error(
      mark_, path_of(key),
      "missing required key '" + std::string(key) + "'; add '" + std::string(key) + ": ...' here");
}

// ---------------------------------------------------------------- map_reader: typed reads

const std::string* map_reader::scalar(const map_entry& e, std::string_view expected,
                                      std::string_view hint) const {
  if (e.value.IsScalar()) return &e.value.Scalar();
  std::string msg =
      "expected " + std::string(expected) + ", got " + std::string(type_name(e.value));
  if (!hint.empty()) msg += "; " + std::string(hint);
  error(e, std::move(msg));
  return nullptr;
}

const std::string* map_reader::item_scalar(const YAML::Node& item, const std::string& path,
                                           std::string_view expected) const {
  if (item.IsScalar()) return &item.Scalar();
  diag_.error(item.Mark(), path,
              "expected " + std::string(expected) + ", got " + std::string(type_name(item)));
  return nullptr;
}

bool map_reader::read_string(std::string_view key, std::string& out, text_rule rule) const {
  const map_entry* e = get(key);
  if (e == nullptr) {
    if (rule == text_rule::required) missing(key);
    return false;
  }
  const std::string empty = "'" + std::string(key) + "' is empty; give it a value";
  if (e->value.IsNull()) {
    // `key:` with nothing after it reads as an empty string, like `key: ""`.
    if (rule != text_rule::optional) {
      error(*e, empty);
      return false;
    }
    out.clear();
    return true;
  }
  const std::string* text = scalar(*e, "a string");
  if (text == nullptr) return false;
  if (rule != text_rule::optional && text->empty()) {
    error(*e, empty);
    return false;
  }
  out = *text;
  return true;
}

bool map_reader::read_bool(std::string_view key, bool& out, bool_wording wording) const {
  const map_entry* e = get(key);
  if (e == nullptr) return false;
  const std::string not_boolean = "' is not a boolean; write true or false";
  if (!e->value.IsScalar() && wording == bool_wording::quoted_type) {
    error(*e, "'" + std::string(type_name(e->value)) + not_boolean);
    return false;
  }
  const std::string* text = scalar(*e, "true or false");
  if (text == nullptr) return false;
  bool v = false;
  if (!YAML::convert<bool>::decode(e->value, v)) {
    error(*e, "'" + *text + not_boolean);
    return false;
  }
  out = v;
  return true;
}

bool map_reader::read_port(std::string_view key, std::uint16_t& out) const {
  return read_uint(key, out, 0, 65535, "a port is 1 to 65535 (0 picks a free port, for tests)");
}

std::optional<std::uint64_t> map_reader::uint_value(std::string_view key, std::uint64_t min,
                                                    std::uint64_t max,
                                                    std::string_view range_hint) const {
  const map_entry* e = get(key);
  if (e == nullptr) return std::nullopt;
  const std::string* text = scalar(*e, "a whole number");
  if (text == nullptr) return std::nullopt;
  const auto v = parse_uint(trim(*text));
  if (!v) {
    error(*e, "'" + *text + "' is not a whole number; " + std::string(range_hint));
    return std::nullopt;
  }
  if (*v < min || *v > max) {
    error(*e, std::to_string(*v) + " is out of range; " + std::string(range_hint));
    return std::nullopt;
  }
  return v;
}

std::optional<std::uint64_t> map_reader::size_value(std::string_view key, std::uint64_t max) const {
  const map_entry* e = get(key);
  if (e == nullptr) return std::nullopt;
  const std::string* text = scalar(*e, "a size");
  if (text == nullptr) return std::nullopt;
  const std::string_view t = trim(*text);
  const auto v = parse_size(t);
  if (!v) {
    error(*e, "'" + *text + "' is not a size; " +
                  std::string(looks_like_decimal_units(t)
                                  ? "sizes use binary units KiB, MiB, GiB (1 KiB = 1024 bytes)"
                                  : size_hint));
    return std::nullopt;
  }
  if (*v == 0 || *v > max) {
    error(*e, "must be between 1 and " + std::to_string(max) + " bytes");
    return std::nullopt;
  }
  return v;
}

std::optional<milliseconds> map_reader::duration_value(std::string_view key, bool allow_zero,
                                                       milliseconds max, bool whole_seconds) const {
  const map_entry* e = get(key);
  if (e == nullptr) return std::nullopt;
  const std::string* text = scalar(*e, "a duration");
  if (text == nullptr) return std::nullopt;
  const std::string_view t = trim(*text);
  if (parse_uint(t)) {
    error(*e, "'" + *text + "' has no unit; durations need one: write e.g. '" + std::string(t) +
                  "s' for seconds or '" + std::string(t) + "ms' for milliseconds");
    return std::nullopt;
  }
  const auto v = parse_duration_uncapped(t);
  if (!v) {
    error(*e, "'" + *text + "' is not a duration; " + std::string(duration_hint));
    return std::nullopt;
  }
  if ((!allow_zero && v->count() == 0) || *v > max) {
    error(*e, std::string(allow_zero ? "must be at most " : "must be greater than 0 and at most ") +
                  format_duration(max));
    return std::nullopt;
  }
  if (whole_seconds && v->count() % 1000 != 0) {
    error(*e, "'" + *text + "' must be a whole number of seconds (e.g. 5m, 30s)");
    return std::nullopt;
  }
  return v;
}

std::optional<std::int64_t> map_reader::read_positive_decimal(std::string_view key,
                                                              std::string_view message,
                                                              std::int64_t max_usd,
                                                              std::string_view unit) const {
  const map_entry* e = get(key);
  if (e == nullptr) return std::nullopt;
  const std::string text(e->value.IsScalar() ? trim(e->value.Scalar()) : std::string_view());
  const auto v = metering::parse_rate_per_million(text);
  if (max_usd > 0 && !text.empty()) {
    // Digits with at most one inner '.': a decimal. One that does not parse has too many
    // decimals or too many whole digits; only the second is over the maximum.
    const std::size_t dot = text.find('.');
    const bool decimal = text.find_first_not_of("0123456789.") == std::string::npos &&
                         text.front() != '.' && text.back() != '.' &&
                         (dot == std::string::npos || text.find('.', dot + 1) == std::string::npos);
    const std::string_view whole = std::string_view(text).substr(0, dot);
    const std::size_t first = whole.find_first_not_of('0');
    const std::size_t whole_digits = first == std::string_view::npos ? 0 : whole.size() - first;
    const bool too_big =
        v ? *v > max_usd * 1'000'000 : whole_digits > std::to_string(max_usd).size();
    if (decimal && too_big) {
      error(*e, "'" + text + "' is more than the largest amount accepted, " +
                    std::to_string(max_usd) + (unit.empty() ? "" : " ") + std::string(unit));
      return std::nullopt;
    }
  }
  if (!v || *v == 0) {
    error(*e, std::string(message));
    return std::nullopt;
  }
  return v;
}

bool map_reader::read_date(std::string_view key, std::chrono::year_month_day& out, text_rule rule,
                           std::string_view what) const {
  std::string text;
  if (!read_string(key, text, rule) || text.empty()) return false;
  unsigned y = 0, mo = 0, d = 0;
  char tail = 0;
  const std::chrono::year_month_day ymd =
      text.size() == 10 && std::sscanf(text.c_str(), "%4u-%2u-%2u%c", &y, &mo, &d, &tail) == 3
          ? std::chrono::year_month_day(std::chrono::year(static_cast<int>(y)),
                                        std::chrono::month(mo), std::chrono::day(d))
          : std::chrono::year_month_day{};
  if (!ymd.ok()) {
    error(*get(key), "'" + text + "' is not a date; write YYYY-MM-DD (" + std::string(what) + ")");
    return false;
  }
  out = ymd;
  return true;
}

// ---------------------------------------------------------------- map_reader: lists and maps

bool map_reader::is_list(const map_entry& e, std::string_view what) const {
  if (e.value.IsNull()) return false;
  if (e.value.IsSequence()) return true;
  error(e, "expected a list of " + std::string(what) + ", got " + std::string(type_name(e.value)));
  return false;
}

bool map_reader::is_pair_map(const map_entry& e, std::string_view what) const {
  if (e.value.IsNull()) return false;
  if (e.value.IsMap()) return true;
  error(e, "expected a map of " + std::string(what) + ", got " + std::string(type_name(e.value)));
  return false;
}

// ---------------------------------------------------------------- files

text_file read_text_file(const std::string& path, std::string_view noun) {
  text_file out;
  std::error_code ec;
  out.absolute = std::filesystem::absolute(path, ec).lexically_normal();
  const auto fail = [&](std::string message) {
    config_error e;
    e.file = path;
    e.message = std::move(message);
    out.error = std::move(e);
    return out;
  };
  const std::string what(noun);
  const auto status = std::filesystem::status(out.absolute, ec);
  if (ec || !std::filesystem::exists(status)) return fail(what + " file does not exist");
  if (!std::filesystem::is_regular_file(status)) return fail(what + " path is not a regular file");
  std::ifstream in(out.absolute, std::ios::binary);
  if (!in) return fail(what + " file cannot be read; check its permissions");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail("error while reading the " + what + " file");
  out.text = std::move(text).str();
  return out;
}

}  // namespace bedrock_meter::config
