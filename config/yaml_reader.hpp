#pragma once
/// The one YAML reading layer of config/: the proxy config loader (config/loader.hpp) and the
/// rate-table loader (config/rate_table_loader.cpp) both read their files through it, so an unknown
/// key, a duplicate key, a wrong type or a malformed duration reads the same in both. Internal to
/// bm_config; the rest of the program uses config/config.hpp and config/rate_table_loader.hpp.
///
/// Errors are values: every problem becomes a `config_error` (file:line:col, YAML path such as
/// `auth.access_keys[1].team`, what is wrong and how to fix it) collected in a `diagnostics`.
/// Reads never throw and never stop at the first problem, so one pass reports everything.
/// yaml-cpp only; no logging. Not thread-safe: one reader per file being loaded.
#include <yaml-cpp/yaml.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "config/text.hpp"

namespace bedrock_meter::config {

/// `parent.key`, or `key` at the top (empty `parent`).
std::string child_path(std::string_view parent, std::string_view key);
/// `parent[i]`, `i` counted from 0.
std::string index_path(std::string_view parent, std::size_t i);
/// How messages name what was found instead: "a scalar", "a list", "a map" or "nothing".
std::string_view type_name(const YAML::Node& node);

/// Where the problems of one file go while it is read.
class diagnostics {
 public:
  /// `file` names the file in every problem, as the user gave it.
  explicit diagnostics(std::string file) : file_(std::move(file)) {}

  /// A problem at `mark` (yaml-cpp's 0-based position; null_mark() when there is none).
  void error(const YAML::Mark& mark, std::string path, std::string message);
  /// Legal but risky or suspicious: reported, never blocks loading.
  void warn(const YAML::Mark& mark, std::string path, std::string message);
  /// Problems of another file (the rate table a config names), kept with their own file:line.
  void adopt(std::vector<config_error> errors, std::vector<config_error> warnings);

  bool has_errors() const { return !errors_.empty(); }
  const std::string& file() const { return file_; }

  /// Runs `parse`, turning what yaml-cpp throws into errors at its position: syntax errors
  /// ("YAML syntax error: ..."), nesting beyond its depth guard (reported as `too_deep`, since
  /// yaml-cpp's own message for it is "bad file"), and anything else as an internal error.
  void guard(const std::function<void()>& parse, std::string_view too_deep);

  /// The errors, then the warnings, each sorted by position: this file's first, then other
  /// files' by name. Leaves the list empty.
  std::vector<config_error> take_errors();
  std::vector<config_error> take_warnings();

 private:
  config_error make(const YAML::Mark& mark, std::string path, std::string message) const;

  std::string file_;
  std::vector<config_error> errors_;
  std::vector<config_error> warnings_;
};

/// One key of a map and its value.
struct map_entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
  /// Where a message about this entry points: the value, or the key when the value is empty
  /// (yaml-cpp marks an empty value at the next token, often on the following line).
  YAML::Mark mark() const { return value.IsNull() ? key_node.Mark() : value.Mark(); }
};

/// What a string read accepts besides a non-empty scalar.
enum class text_rule : std::uint8_t {
  optional,   ///< may be absent; `key:` and `key: ""` read as ""
  non_empty,  ///< may be absent; when present it must not be empty
  required,   ///< must be present and not empty ("missing required key" otherwise)
};

/// How read_bool words a value that is not a scalar. Both wordings predate the shared reader and
/// users' tooling may match them, so each loader keeps its own.
enum class bool_wording : std::uint8_t {
  expected_got,  ///< "expected true or false, got a list" (the config)
  quoted_type,   ///< "'a list' is not a boolean; write true or false" (the rate table)
};

/// The words a file may use for an enum and the value each stands for (several words may stand
/// for one value, e.g. `default` and `standard` tiers). `what` names the field in the default
/// message: "unknown WHAT 'x'; did you mean 'y'? (valid: ...)" or "...; use one of: ...". A table
/// with its own wording gives `unknown_message`, called with the word and the valid names.
template <typename T, std::size_t N>
struct enum_table {
  using message_fn = std::string (*)(std::string_view word,
                                     std::span<const std::string_view> valid);

  std::string_view what;
  std::array<std::string_view, N> names;
  std::array<T, N> values;  ///< values[i] is what names[i] stands for
  message_fn unknown_message = nullptr;

  /// The value `word` stands for; empty when it is not a valid name.
  constexpr std::optional<T> find(std::string_view word) const {
    for (std::size_t i = 0; i < N; ++i) {
      if (names[i] == word) return values[i];
    }
    return std::nullopt;
  }
  /// The first name standing for `value` (for messages and the reverse mapping).
  constexpr std::string_view name_of(T value) const {
    for (std::size_t i = 0; i < N; ++i) {
      if (values[i] == value) return names[i];
    }
    return {};
  }
};

/// "unknown WHAT 'word'; did you mean 'x'? (valid: a, b)" or "...; use one of: a, b", the hint
/// from closest_match.
std::string unknown_word(std::string_view what, std::string_view word,
                         std::span<const std::string_view> valid);

/// A YAML map whose keys are known: unknown keys (with a "did you mean" hint from closest_match,
/// or the list of valid keys) and duplicate keys are reported on construction; values are then
/// looked up by key (never with yaml-cpp's inserting operator[]) and read by type. Each typed read
/// reports its own problems at the value's position and path, and leaves `out` untouched unless
/// it returns true.
class map_reader {
 public:
  /// A section that may be left empty (`auth:`): a null `node` reads as a map with no keys, every
  /// value keeping its default, and problems about it point at `empty_mark` (the key). At the top
  /// of a file, `unknown_noun` "section" makes an unknown key "unknown section 'x'".
  map_reader(diagnostics& diag, const YAML::Node& node, std::string path,
             std::span<const std::string_view> keys, YAML::Mark empty_mark,
             std::string_view unknown_noun = "key");
  /// A map that must be there: anything else, null included, is "expected a map of keys (...)".
  map_reader(diagnostics& diag, const YAML::Node& node, std::string path,
             std::span<const std::string_view> keys);

  /// False when the node was not a map (already reported); there is nothing to read then.
  bool is_map() const { return is_map_; }
  const std::string& path() const { return path_; }
  /// The map's own position: where "missing required key" points.
  const YAML::Mark& mark() const { return mark_; }
  diagnostics& diag() const { return diag_; }

  const map_entry* get(std::string_view key) const;
  /// `path.key`.
  std::string path_of(std::string_view key) const { return child_path(path_, key); }

  /// An error about `e` (an entry of this map), at its value and path.
  void error(const map_entry& e, std::string message) const;
  /// "missing required key 'key'; add 'key: ...' here", at the map.
  void missing(std::string_view key) const;

  /// The scalar text of `e`, or nullptr after "expected EXPECTED, got TYPE" (plus "; HINT").
  /// For values whose exact text matters, e.g. decimal prices that must not pass through a double.
  const std::string* scalar(const map_entry& e, std::string_view expected,
                            std::string_view hint = {}) const;
  /// The text of a list item, or nullptr after "expected EXPECTED, got TYPE" at `path`.
  const std::string* item_scalar(const YAML::Node& item, const std::string& path,
                                 std::string_view expected) const;

  bool read_string(std::string_view key, std::string& out, text_rule rule) const;
  /// Whatever yaml-cpp takes for a boolean (true/false, yes/no, on/off, any case).
  bool read_bool(std::string_view key, bool& out,
                 bool_wording wording = bool_wording::expected_got) const;
  /// A whole number in [min, max]; `range_hint` says what is valid ("use a number from 1 to 64").
  template <typename T>
  bool read_uint(std::string_view key, T& out, std::uint64_t min, std::uint64_t max,
                 std::string_view range_hint) const {
    const auto v = uint_value(key, min, max, range_hint);
    if (v) out = static_cast<T>(*v);
    return v.has_value();
  }
  /// 0 to 65535 (0 picks a free port, for tests).
  bool read_port(std::string_view key, std::uint16_t& out) const;
  /// A byte count with parse_size's syntax, from 1 to the largest T.
  template <typename T>
  bool read_size(std::string_view key, T& out) const {
    const auto v = size_value(key, std::numeric_limits<T>::max());
    if (v) out = static_cast<T>(*v);
    return v.has_value();
  }
  /// parse_duration's syntax, at most `max`; zero only when `allow_zero`. A Duration coarser than
  /// milliseconds (std::chrono::seconds) refuses values it would truncate.
  template <typename Duration>
  bool read_duration(std::string_view key, Duration& out, bool allow_zero,
                     std::chrono::milliseconds max = max_duration) const {
    constexpr bool whole_seconds = !std::is_same_v<Duration, std::chrono::milliseconds>;
    static_assert(!whole_seconds || std::is_same_v<Duration, std::chrono::seconds>);
    const auto v = duration_value(key, allow_zero, max, whole_seconds);
    if (v) out = std::chrono::duration_cast<Duration>(*v);
    return v.has_value();
  }
  /// A positive amount from the scalar's exact decimal text, in millionths (`"44.00"` and `44`
  /// are 44'000'000; metering::parse_rate_per_million: at most 6 decimals, never through a
  /// double). Anything else is reported as `message`. With `max_usd` > 0, a decimal above it
  /// (or too long to hold at all) is reported as "'X' is more than the largest amount accepted,
  /// MAX UNIT" instead.
  std::optional<std::int64_t> read_positive_decimal(std::string_view key, std::string_view message,
                                                    std::int64_t max_usd = 0,
                                                    std::string_view unit = {}) const;
  /// A calendar date written YYYY-MM-DD; `what` says what it stands for in the message
  /// ("'x' is not a date; write YYYY-MM-DD (WHAT)").
  bool read_date(std::string_view key, std::chrono::year_month_day& out, text_rule rule,
                 std::string_view what) const;
  /// A string that must be one of `table`'s names; `out` gets the value it stands for.
  template <typename T, std::size_t N>
  bool read_enum(std::string_view key, const enum_table<T, N>& table, T& out,
                 text_rule rule) const {
    std::string word;
    return read_string(key, word, rule) && match_enum(key, word, table, out);
  }
  /// The second half of read_enum, for callers that treat a wrong type (already reported by
  /// read_string) differently from an unknown name: reports `word` at `key` when it is not one
  /// of `table`'s names.
  template <typename T, std::size_t N>
  bool match_enum(std::string_view key, std::string_view word, const enum_table<T, N>& table,
                  T& out) const {
    if (const auto v = table.find(word)) {
      out = *v;
      return true;
    }
    error(*get(key), table.unknown_message != nullptr
                         ? table.unknown_message(word, table.names)
                         : unknown_word(table.what, word, table.names));
    return false;
  }

  /// Calls `f(item, item_path)` for each item of the list at `key`. Absent or empty (`key:`)
  /// is an empty list; anything else is "expected a list of WHAT, got TYPE".
  template <typename F>
  void for_each_item(std::string_view key, std::string_view what, F&& f) const {
    const map_entry* e = get(key);
    if (e == nullptr || !is_list(*e, what)) return;
    const std::string path = path_of(key);
    std::size_t i = 0;
    for (const auto& item : e->value) f(item, index_path(path, i++));
  }
  /// Calls `f(map)` for each item of the list at `key` that is a map with `keys` (an empty item
  /// reads as an empty map; other items are reported).
  template <typename F>
  void for_each_map(std::string_view key, std::span<const std::string_view> keys,
                    std::string_view what, F&& f) const {
    for_each_item(key, what, [&](const YAML::Node& item, std::string item_path) {
      const map_reader m(diag_, item, std::move(item_path), keys, item.Mark());
      if (m.is_map()) f(m);
    });
  }
  /// Calls `f(key_node, value_node)` for each pair of the map at `key` (a map of strings such as
  /// tags). Absent or empty is an empty map; anything else is "expected a map of WHAT, got TYPE".
  template <typename F>
  void for_each_pair(std::string_view key, std::string_view what, F&& f) const {
    const map_entry* e = get(key);
    if (e == nullptr || !is_pair_map(*e, what)) return;
    for (const auto& kv : e->value) f(kv.first, kv.second);
  }

 private:
  void read_entries(const YAML::Node& node, std::span<const std::string_view> keys,
                    std::string_view unknown_noun);
  void add_entry(const YAML::Node& key_node, const YAML::Node& value,
                 std::span<const std::string_view> keys, std::string_view unknown_noun);
  bool is_list(const map_entry& e, std::string_view what) const;
  bool is_pair_map(const map_entry& e, std::string_view what) const;
  std::optional<std::uint64_t> uint_value(std::string_view key, std::uint64_t min,
                                          std::uint64_t max, std::string_view range_hint) const;
  std::optional<std::uint64_t> size_value(std::string_view key, std::uint64_t max) const;
  std::optional<std::chrono::milliseconds> duration_value(std::string_view key, bool allow_zero,
                                                          std::chrono::milliseconds max,
                                                          bool whole_seconds) const;

  diagnostics& diag_;
  std::vector<map_entry> entries_;
  std::string path_;
  YAML::Mark mark_;
  bool is_map_ = false;
};

/// A file's text for a loader, or the problem reading it ("NOUN file does not exist", "NOUN path
/// is not a regular file", ...), naming the file as `path` was given. `absolute` is `path` made
/// absolute and normal either way.
struct text_file {
  std::string text;
  std::filesystem::path absolute;
  std::optional<config_error> error;
};
text_file read_text_file(const std::string& path, std::string_view noun);

}  // namespace bedrock_meter::config
