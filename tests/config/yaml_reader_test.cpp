// The YAML reader both loaders share (config/yaml_reader.hpp) and its scalar helpers
// (config/text.hpp), tested on their own: every message here is one a user can see through
// load_file or load_rate_table_file.
#include "config/yaml_reader.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/text.hpp"

namespace bedrock_meter::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string all(const std::vector<config_error>& v) {
  std::string out;
  for (const auto& e : v) out += e.to_string() + "\n";
  return out;
}

/// A parsed document and the diagnostics its reads report to.
struct doc {
  explicit doc(std::string_view yaml) : root(YAML::Load(std::string(yaml))) {}
  /// The one error reported so far, as "file:line:col: path: message"; fails when not one.
  std::string only_error() {
    const auto errors = diag.take_errors();
    EXPECT_EQ(errors.size(), 1u) << all(errors);
    return errors.size() == 1 ? errors[0].to_string() : all(errors);
  }
  bool no_errors() {
    const auto errors = diag.take_errors();
    EXPECT_TRUE(errors.empty()) << all(errors);
    return errors.empty();
  }

  diagnostics diag{"t.yaml"};
  YAML::Node root;
};

constexpr std::array<std::string_view, 5> keys = {"region", "timeout", "count", "tags", "items"};

// ---------------------------------------------------------------- keys

TEST(yaml_reader, unknown_key_gets_a_did_you_mean_hint) {
  doc d("regoin: us-east-1\ntimeout: 5s\n");
  const map_reader m(d.diag, d.root, "upstream", keys);
  ASSERT_TRUE(m.is_map());
  EXPECT_EQ(m.get("regoin"), nullptr);
  EXPECT_NE(m.get("timeout"), nullptr);
  EXPECT_EQ(d.only_error(),
            "t.yaml:1:1: upstream.regoin: unknown key 'regoin'; did you mean 'region'?");
}

TEST(yaml_reader, unknown_key_without_a_near_one_lists_the_valid_keys) {
  doc d("zzz: 1\n");
  const map_reader m(d.diag, d.root, "upstream", keys);
  EXPECT_EQ(d.only_error(),
            "t.yaml:1:1: upstream.zzz: unknown key 'zzz'; valid keys here: "
            "region, timeout, count, tags, items");
}

TEST(yaml_reader, top_level_unknown_key_can_be_called_a_section) {
  doc d("count: 1\nmetrics: {}\n");
  const map_reader m(d.diag, d.root, "", keys, d.root.Mark(), "section");
  EXPECT_EQ(d.only_error(),
            "t.yaml:2:1: metrics: unknown section 'metrics'; valid keys here: "
            "region, timeout, count, tags, items");
}

TEST(yaml_reader, duplicate_key_is_reported_and_the_first_one_is_kept) {
  doc d("count: 1\nregion: x\ncount: 2\n");
  const map_reader m(d.diag, d.root, "s", keys);
  ASSERT_NE(m.get("count"), nullptr);
  EXPECT_EQ(m.get("count")->value.Scalar(), "1");
  EXPECT_EQ(d.only_error(),
            "t.yaml:3:1: s.count: duplicate key 'count' (first on line 1); remove one");
}

TEST(yaml_reader, keys_must_be_plain_names) {
  doc d("? [a]\n: b\ncount: 1\n");
  const map_reader m(d.diag, d.root, "s", keys);
  EXPECT_NE(m.get("count"), nullptr);
  EXPECT_EQ(d.only_error(), "t.yaml:1:3: s: keys must be plain names, got a list");
}

TEST(yaml_reader, a_map_that_must_be_there_refuses_anything_else) {
  doc list("[1, 2]");
  const map_reader m(list.diag, list.root, "entries[0]", keys);
  EXPECT_FALSE(m.is_map());
  EXPECT_EQ(list.only_error(),
            "t.yaml:1:1: entries[0]: expected a map of keys (region, timeout, "
            "count, tags, items), got a list");

  doc empty("a:\n");
  const map_reader n(empty.diag, empty.root["a"], "a", keys);
  EXPECT_FALSE(n.is_map());
  EXPECT_NE(empty.only_error().find("got nothing"), std::string::npos);
}

TEST(yaml_reader, an_empty_section_reads_as_a_map_with_no_keys_at_its_key) {
  doc d("limits:\nother: 1\n");
  const YAML::Node key = d.root.begin()->first;
  const map_reader m(d.diag, d.root["limits"], "limits", keys, key.Mark());
  EXPECT_TRUE(m.is_map());
  EXPECT_EQ(m.get("count"), nullptr);
  m.missing("count");
  EXPECT_EQ(d.only_error(),
            "t.yaml:1:1: limits.count: missing required key 'count'; add 'count: ...' here");
}

// ---------------------------------------------------------------- strings and booleans

TEST(yaml_reader, string_rules_for_empty_and_missing_values) {
  doc d("region:\ntimeout: ''\ncount: [1]\ntags: text\n");
  const map_reader m(d.diag, d.root, "s", keys);
  std::string out = "default";

  // optional: `key:` and `key: ''` are the empty string; absent keeps the default.
  EXPECT_TRUE(m.read_string("region", out, text_rule::optional));
  EXPECT_EQ(out, "");
  out = "default";
  EXPECT_TRUE(m.read_string("timeout", out, text_rule::optional));
  EXPECT_EQ(out, "");
  out = "default";
  EXPECT_FALSE(m.read_string("items", out, text_rule::optional));
  EXPECT_EQ(out, "default");
  EXPECT_TRUE(d.no_errors());

  // non_empty: absent is fine, empty is not.
  EXPECT_FALSE(m.read_string("items", out, text_rule::non_empty));
  EXPECT_TRUE(d.no_errors());
  EXPECT_FALSE(m.read_string("region", out, text_rule::non_empty));
  EXPECT_EQ(d.only_error(), "t.yaml:1:1: s.region: 'region' is empty; give it a value");
  EXPECT_FALSE(m.read_string("timeout", out, text_rule::non_empty));
  EXPECT_EQ(d.only_error(), "t.yaml:2:10: s.timeout: 'timeout' is empty; give it a value");

  // required: absent is reported at the map.
  EXPECT_FALSE(m.read_string("items", out, text_rule::required));
  EXPECT_EQ(d.only_error(),
            "t.yaml:1:1: s.items: missing required key 'items'; add 'items: ...' here");

  // Any rule: the wrong type.
  EXPECT_FALSE(m.read_string("count", out, text_rule::optional));
  EXPECT_EQ(d.only_error(), "t.yaml:3:8: s.count: expected a string, got a list");
  EXPECT_TRUE(m.read_string("tags", out, text_rule::required));
  EXPECT_EQ(out, "text");
}

TEST(yaml_reader, booleans_and_the_two_wordings_of_a_wrong_type) {
  doc d("region: yes\ntimeout: maybe\ncount: [1]\n");
  const map_reader m(d.diag, d.root, "s", keys);
  bool out = false;
  EXPECT_TRUE(m.read_bool("region", out));
  EXPECT_TRUE(out);
  EXPECT_FALSE(m.read_bool("timeout", out));
  EXPECT_EQ(d.only_error(),
            "t.yaml:2:10: s.timeout: 'maybe' is not a boolean; write true or false");
  EXPECT_FALSE(m.read_bool("count", out));
  EXPECT_EQ(d.only_error(), "t.yaml:3:8: s.count: expected true or false, got a list");
  EXPECT_FALSE(m.read_bool("count", out, bool_wording::quoted_type));
  EXPECT_EQ(d.only_error(), "t.yaml:3:8: s.count: 'a list' is not a boolean; write true or false");
  EXPECT_FALSE(m.read_bool("items", out));
  EXPECT_TRUE(d.no_errors());
}

// ---------------------------------------------------------------- numbers, sizes, durations

TEST(yaml_reader, whole_numbers_with_a_range) {
  doc d("region: ' 42 '\ntimeout: 4x\ncount: 99\ntags: -1\n");
  const map_reader m(d.diag, d.root, "s", keys);
  unsigned out = 7;
  EXPECT_TRUE(m.read_uint("region", out, 1, 50, "use 1 to 50"));
  EXPECT_EQ(out, 42u);
  EXPECT_FALSE(m.read_uint("timeout", out, 1, 50, "use 1 to 50"));
  EXPECT_EQ(d.only_error(), "t.yaml:2:10: s.timeout: '4x' is not a whole number; use 1 to 50");
  EXPECT_FALSE(m.read_uint("count", out, 1, 50, "use 1 to 50"));
  EXPECT_EQ(d.only_error(), "t.yaml:3:8: s.count: 99 is out of range; use 1 to 50");
  EXPECT_FALSE(m.read_uint("tags", out, 1, 50, "use 1 to 50"));
  EXPECT_EQ(d.only_error(), "t.yaml:4:7: s.tags: '-1' is not a whole number; use 1 to 50");
  EXPECT_EQ(out, 42u);  // untouched by the failed reads

  // Ports are whole numbers too; 0 picks a free port.
  doc ports("region: 0\ncount: 70000\n");
  const map_reader p(ports.diag, ports.root, "s", keys);
  std::uint16_t port = 8080;
  EXPECT_TRUE(p.read_port("region", port) && port == 0);
  EXPECT_FALSE(p.read_port("count", port));
  EXPECT_EQ(ports.only_error(),
            "t.yaml:2:8: s.count: 70000 is out of range; a port is 1 to "
            "65535 (0 picks a free port, for tests)");
}

TEST(yaml_reader, sizes_name_binary_units_when_decimal_ones_are_used) {
  doc d("region: 16KiB\ntimeout: 16KB\ncount: lots\ntags: 0\nitems: 1MiB\n");
  const map_reader m(d.diag, d.root, "s", keys);
  std::uint16_t out = 1;
  EXPECT_TRUE(m.read_size("region", out));
  EXPECT_EQ(out, 16384);
  EXPECT_FALSE(m.read_size("timeout", out));
  EXPECT_EQ(d.only_error(),
            "t.yaml:2:10: s.timeout: '16KB' is not a size; sizes use binary "
            "units KiB, MiB, GiB (1 KiB = 1024 bytes)");
  EXPECT_FALSE(m.read_size("count", out));
  EXPECT_EQ(d.only_error(),
            "t.yaml:3:8: s.count: 'lots' is not a size; write a whole number of "
            "bytes, optionally with KiB, MiB or GiB (e.g. 16384, 16KiB, 32MiB)");
  EXPECT_FALSE(m.read_size("tags", out));
  EXPECT_EQ(d.only_error(), "t.yaml:4:7: s.tags: must be between 1 and 65535 bytes");
  EXPECT_FALSE(m.read_size("items", out));  // beyond the field's type
  EXPECT_EQ(d.only_error(), "t.yaml:5:8: s.items: must be between 1 and 65535 bytes");
}

TEST(yaml_reader, durations_need_a_unit_and_stay_in_range) {
  doc d("region: 1m30s\ntimeout: 30\ncount: soon\ntags: 0s\nitems: 2h\n");
  const map_reader m(d.diag, d.root, "s", keys);
  std::chrono::milliseconds out{1};
  EXPECT_TRUE(m.read_duration("region", out, false));
  EXPECT_EQ(out, 90s);
  EXPECT_FALSE(m.read_duration("timeout", out, false));
  EXPECT_EQ(d.only_error(),
            "t.yaml:2:10: s.timeout: '30' has no unit; durations need one: write "
            "e.g. '30s' for seconds or '30ms' for milliseconds");
  EXPECT_FALSE(m.read_duration("count", out, false));
  EXPECT_EQ(d.only_error(),
            "t.yaml:3:8: s.count: 'soon' is not a duration; write a whole number "
            "with a unit: 250ms, 5s, 15m, 1h (or combined, e.g. 1m30s)");
  EXPECT_FALSE(m.read_duration("tags", out, false));
  EXPECT_EQ(d.only_error(), "t.yaml:4:7: s.tags: must be greater than 0 and at most 168h");
  EXPECT_TRUE(m.read_duration("tags", out, true));
  EXPECT_EQ(out, 0ms);
  EXPECT_FALSE(m.read_duration("items", out, true, 1h));
  EXPECT_EQ(d.only_error(), "t.yaml:5:8: s.items: must be at most 1h");
}

TEST(yaml_reader, durations_in_seconds_refuse_what_they_would_truncate) {
  doc d("region: 1500ms\ncount: 2m\n");
  const map_reader m(d.diag, d.root, "s", keys);
  std::chrono::seconds out{1};
  EXPECT_FALSE(m.read_duration("region", out, false));
  EXPECT_EQ(d.only_error(),
            "t.yaml:1:9: s.region: '1500ms' must be a whole number of seconds (e.g. 5m, 30s)");
  EXPECT_TRUE(m.read_duration("count", out, false));
  EXPECT_EQ(out, 120s);
}

TEST(yaml_reader, positive_decimals_come_from_the_exact_text) {
  doc d("region: 44.00\ntimeout: \"0.1\"\ncount: 0\ntags: 1e3\nitems: [1]\n");
  const map_reader m(d.diag, d.root, "s", keys);
  EXPECT_EQ(m.read_positive_decimal("region", "bad"), 44'000'000);
  EXPECT_EQ(m.read_positive_decimal("timeout", "bad"), 100'000);
  EXPECT_TRUE(d.no_errors());
  EXPECT_FALSE(m.read_positive_decimal("count", "need a positive amount"));
  EXPECT_EQ(d.only_error(), "t.yaml:3:8: s.count: need a positive amount");
  EXPECT_FALSE(m.read_positive_decimal("tags", "need a positive amount"));
  EXPECT_EQ(d.only_error(), "t.yaml:4:7: s.tags: need a positive amount");
  EXPECT_FALSE(m.read_positive_decimal("items", "need a positive amount"));
  EXPECT_EQ(d.only_error(), "t.yaml:5:8: s.items: need a positive amount");
}

// ---------------------------------------------------------------- enums

enum class color { red, green, blue };
constexpr enum_table<color, 4> colors{"color",
                                      {"red", "green", "blue", "crimson"},
                                      {color::red, color::green, color::blue, color::red}};

TEST(yaml_reader, enum_names_map_to_values_and_unknown_names_list_the_valid_ones) {
  doc d("region: crimson\ntimeout: gren\ncount: purple\ntags: ''\n");
  const map_reader m(d.diag, d.root, "s", keys);
  color out = color::blue;
  EXPECT_TRUE(m.read_enum("region", colors, out, text_rule::non_empty));
  EXPECT_EQ(out, color::red);
  EXPECT_EQ(colors.name_of(color::red), "red");  // the first name, for messages
  EXPECT_FALSE(m.read_enum("timeout", colors, out, text_rule::non_empty));
  EXPECT_EQ(d.only_error(),
            "t.yaml:2:10: s.timeout: unknown color 'gren'; did you mean "
            "'green'? (valid: red, green, blue, crimson)");
  EXPECT_FALSE(m.read_enum("count", colors, out, text_rule::non_empty));
  EXPECT_EQ(d.only_error(),
            "t.yaml:3:8: s.count: unknown color 'purple'; use one of: red, "
            "green, blue, crimson");
  // The text rule decides whether empty is "empty" or an unknown name.
  EXPECT_FALSE(m.read_enum("tags", colors, out, text_rule::non_empty));
  EXPECT_EQ(d.only_error(), "t.yaml:4:7: s.tags: 'tags' is empty; give it a value");
  EXPECT_FALSE(m.read_enum("tags", colors, out, text_rule::optional));
  EXPECT_EQ(d.only_error(),
            "t.yaml:4:7: s.tags: unknown color ''; use one of: red, green, blue, "
            "crimson");
  EXPECT_EQ(out, color::red);
}

TEST(yaml_reader, an_enum_table_may_word_its_own_message) {
  constexpr enum_table<color, 2> primaries{
      "primary",
      {"red", "blue"},
      {color::red, color::blue},
      [](std::string_view word, std::span<const std::string_view> valid) {
        return "'" + std::string(word) + "' is not a primary; use " + join(valid);
      }};
  doc d("region: green\n");
  const map_reader m(d.diag, d.root, "s", keys);
  color out = color::blue;
  EXPECT_FALSE(m.read_enum("region", primaries, out, text_rule::optional));
  EXPECT_EQ(d.only_error(), "t.yaml:1:9: s.region: 'green' is not a primary; use red, blue");
  EXPECT_TRUE(m.match_enum("region", "red", primaries, out));
  EXPECT_EQ(out, color::red);
}

// ---------------------------------------------------------------- lists and maps

TEST(yaml_reader, list_items_get_indexed_paths) {
  doc d("items: [a, [b], c]\nregion:\ncount: 5\n");
  const map_reader m(d.diag, d.root, "s", keys);
  std::vector<std::string> seen;
  m.for_each_item("items", "names", [&](const YAML::Node& item, const std::string& path) {
    if (const std::string* text = m.item_scalar(item, path, "a name")) seen.push_back(*text);
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(d.only_error(), "t.yaml:1:12: s.items[1]: expected a name, got a list");

  m.for_each_item("region", "names", [&](const YAML::Node&, const std::string&) { FAIL(); });
  m.for_each_item("tags", "names", [&](const YAML::Node&, const std::string&) { FAIL(); });
  EXPECT_TRUE(d.no_errors());
  m.for_each_item("count", "names such as [a, b]", [](const YAML::Node&, const std::string&) {});
  EXPECT_EQ(d.only_error(),
            "t.yaml:3:8: s.count: expected a list of names such as [a, b], got a "
            "scalar");
}

TEST(yaml_reader, list_of_maps_reads_empty_items_as_empty_maps) {
  doc d("items:\n  - {count: 1}\n  -\n  - 5\n");
  const map_reader m(d.diag, d.root, "s", keys);
  std::vector<std::string> paths;
  m.for_each_map("items", keys, "items",
                 [&](const map_reader& item) { paths.push_back(item.path()); });
  EXPECT_EQ(paths, (std::vector<std::string>{"s.items[0]", "s.items[1]"}));
  EXPECT_EQ(d.only_error(),
            "t.yaml:4:5: s.items[2]: expected a map of keys (region, timeout, "
            "count, tags, items), got a scalar");
}

TEST(yaml_reader, maps_of_strings_yield_each_pair) {
  doc d("tags: {a: 1, b: x}\nitems: [1]\n");
  const map_reader m(d.diag, d.root, "s", keys);
  std::vector<std::string> pairs;
  m.for_each_pair("tags", "tags", [&](const YAML::Node& k, const YAML::Node& v) {
    pairs.push_back(k.Scalar() + "=" + v.Scalar());
  });
  EXPECT_EQ(pairs, (std::vector<std::string>{"a=1", "b=x"}));
  m.for_each_pair("items", "tags such as {a: b}", [](const YAML::Node&, const YAML::Node&) {});
  EXPECT_EQ(d.only_error(),
            "t.yaml:2:8: s.items: expected a map of tags such as {a: b}, got a "
            "list");
}

TEST(yaml_reader, scalar_text_is_exact_or_names_what_was_expected) {
  doc d("region: 0.10\ncount: {a: b}\n");
  const map_reader m(d.diag, d.root, "s", keys);
  const std::string* text = m.scalar(*m.get("region"), "a price");
  ASSERT_NE(text, nullptr);
  EXPECT_EQ(*text, "0.10");
  EXPECT_EQ(m.scalar(*m.get("count"), "a price", "write e.g. \"3.00\""), nullptr);
  EXPECT_EQ(d.only_error(),
            "t.yaml:2:8: s.count: expected a price, got a map; write e.g. \"3.00\"");
}

// ---------------------------------------------------------------- diagnostics

TEST(yaml_reader, diagnostics_count_from_one_and_sort_other_files_last) {
  diagnostics diag("main.yaml");
  YAML::Mark late;
  late.line = 9;
  late.column = 4;
  YAML::Mark early;
  early.line = 0;
  early.column = 0;
  diag.error(late, "b", "late");
  diag.error(YAML::Mark::null_mark(), "", "nowhere");
  config_error other;
  other.file = "a_rates.yaml";
  other.line = 1;
  other.message = "from the table";
  diag.adopt({other}, {});
  diag.error(early, "a", "early");
  diag.warn(early, "w", "careful");
  EXPECT_TRUE(diag.has_errors());
  EXPECT_EQ(all(diag.take_errors()),
            "main.yaml:0:0: nowhere\n"
            "main.yaml:1:1: a: early\n"
            "main.yaml:10:5: b: late\n"
            "a_rates.yaml:1:0: from the table\n");
  EXPECT_EQ(all(diag.take_warnings()), "main.yaml:1:1: w: careful\n");
  EXPECT_FALSE(diag.has_errors());
}

TEST(yaml_reader, guard_turns_what_yaml_cpp_throws_into_errors) {
  diagnostics diag("t.yaml");
  diag.guard([] { YAML::Load("a: [1"); }, "too deep");
  diag.guard([] { YAML::Load(std::string(2000, '[')); }, "nested too deeply");
  diag.guard([] { throw std::runtime_error("boom"); }, "too deep");
  const auto errors = diag.take_errors();
  ASSERT_EQ(errors.size(), 3u) << all(errors);
  EXPECT_EQ(errors[0].message, "internal error while loading: boom");
  EXPECT_TRUE(errors[1].message.starts_with("YAML syntax error: ")) << errors[1].message;
  EXPECT_EQ(errors[2].message, "nested too deeply");
}

TEST(yaml_reader, reading_a_file_names_what_is_wrong_with_it) {
  const fs::path dir = fs::temp_directory_path() / ("bm_yaml_reader_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "x.yaml";
  std::ofstream(file) << "a: 1\n";

  const text_file ok = read_text_file(file.string(), "widget");
  EXPECT_FALSE(ok.error.has_value());
  EXPECT_EQ(ok.text, "a: 1\n");
  EXPECT_EQ(ok.absolute, file);

  const text_file missing = read_text_file((dir / "nope.yaml").string(), "widget");
  ASSERT_TRUE(missing.error.has_value());
  EXPECT_EQ(missing.error->to_string(),
            (dir / "nope.yaml").string() + ":0:0: widget file does not exist");
  const text_file directory = read_text_file(dir.string(), "widget");
  ASSERT_TRUE(directory.error.has_value());
  EXPECT_EQ(directory.error->message, "widget path is not a regular file");
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- text helpers

TEST(yaml_reader, paths_and_type_names) {
  EXPECT_EQ(child_path("", "auth"), "auth");
  EXPECT_EQ(child_path(index_path("auth.access_keys", 1), "team"), "auth.access_keys[1].team");
  doc d("a: 1\nb: [1]\nc: {x: 1}\nd:\n");
  EXPECT_EQ(type_name(d.root["a"]), "a scalar");
  EXPECT_EQ(type_name(d.root["b"]), "a list");
  EXPECT_EQ(type_name(d.root["c"]), "a map");
  EXPECT_EQ(type_name(d.root["d"]), "nothing");
}

TEST(text, whole_numbers_and_trimming) {
  EXPECT_EQ(trim(" \t a b\t "), "a b");
  EXPECT_EQ(parse_uint("007"), 7u);
  EXPECT_EQ(parse_uint("18446744073709551615"), 18446744073709551615u);
  EXPECT_FALSE(parse_uint("18446744073709551616"));
  EXPECT_FALSE(parse_uint("+1"));
  EXPECT_FALSE(parse_uint(" 1"));
  EXPECT_FALSE(parse_uint("1 "));
  EXPECT_FALSE(parse_uint(""));
}

TEST(text, durations_without_the_cap_and_their_shortest_spelling) {
  EXPECT_EQ(parse_duration_uncapped("200h"), std::chrono::milliseconds(200h));
  EXPECT_EQ(parse_duration_uncapped("1m30s"), std::chrono::milliseconds(90s));
  EXPECT_EQ(parse_duration_uncapped("5ms"), 5ms);
  EXPECT_FALSE(parse_duration_uncapped("1x"));
  EXPECT_FALSE(parse_duration_uncapped("s"));
  EXPECT_FALSE(parse_duration_uncapped(""));
  EXPECT_FALSE(parse_duration_uncapped("1000001h"));
  EXPECT_EQ(format_duration(2h), "2h");
  EXPECT_EQ(format_duration(2min), "2m");
  EXPECT_EQ(format_duration(90s), "90s");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
  EXPECT_EQ(format_duration(0ms), "0s");
  constexpr std::array<std::string_view, 2> items = {"a", "b"};
  EXPECT_EQ(join(items), "a, b");
}

}  // namespace
}  // namespace bedrock_meter::config
