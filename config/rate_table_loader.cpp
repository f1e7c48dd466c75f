#include "config/rate_table_loader.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>
#include <utility>

namespace bedrock_meter::config {
namespace {

namespace m = metering;

// Commercial and GovCloud regions with a Bedrock endpoint (botocore 1.43 endpoints.json,
// service `bedrock`), which include every region of config/rates/source/bedrock_rates.csv.
constexpr std::array<std::string_view, 35> known_regions = {
    "af-south-1",     "ap-east-2",      "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    "ap-south-1",     "ap-south-2",     "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
    "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-central-1",
    "ca-west-1",      "eu-central-1",   "eu-central-2",   "eu-north-1",     "eu-south-1",
    "eu-south-2",     "eu-west-1",      "eu-west-2",      "eu-west-3",      "il-central-1",
    "me-central-1",   "me-south-1",     "mx-central-1",   "sa-east-1",      "us-east-1",
    "us-east-2",      "us-west-1",      "us-west-2",      "us-gov-east-1",  "us-gov-west-1"};

// Inference-profile prefixes: a `model:` starting with one is a profile id, not a base model.
constexpr std::array<std::string_view, 8> profile_prefixes = {"us", "eu", "apac", "jp", "au",
                                                              "ca", "us-gov", "global"};

constexpr std::array<std::string_view, 4> top_keys = {"version", "currency", "unit", "entries"};
constexpr std::array<std::string_view, 16> entry_keys = {
    "model",          "regions",        "scope",        "tier",         "latency",
    "batch",          "effective_from", "effective_to", "input",        "output",
    "cache_read",     "cache_write_5m", "cache_write_1h", "long_context", "source",
    "variants"};
constexpr std::array<std::string_view, 10> variant_keys = {
    "tier",           "latency",        "batch",        "input",        "output",
    "cache_read",     "cache_write_5m", "cache_write_1h", "long_context", "source"};
constexpr std::array<std::string_view, 6> long_context_keys = {
    "above_input_tokens", "input", "output", "cache_read", "cache_write_5m", "cache_write_1h"};
constexpr std::array<std::string_view, 3> scope_names = {"in_region", "geo", "global"};
// `default` is what the X-Amzn-Bedrock-Service-Tier header says for standard.
constexpr std::array<std::string_view, 5> tier_names = {"standard", "priority", "flex", "reserved",
                                                        "default"};
constexpr std::array<std::string_view, 2> latency_names = {"standard", "optimized"};

constexpr std::string_view price_hint =
    "write a decimal USD amount per 1M tokens, e.g. \"3.00\" or \"0.00875\"";

std::string join(std::span<const std::string_view> items) {
  std::string out;
  for (const auto item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

std::string child(std::string_view parent, std::string_view key) {
  std::string out(parent);
  if (!out.empty()) out += '.';
  out += key;
  return out;
}

std::string index_path(std::string_view parent, std::size_t i) {
  return std::string(parent) + "[" + std::to_string(i) + "]";
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

/// "unknown X 'y'; did you mean 'z'? (valid: ...)" or "...; use one of: ...".
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

struct field {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
  /// Where a message about this field points: the value, or the key when the value is empty
  /// (yaml-cpp marks an empty value at the next token, often on the following line).
  YAML::Mark mark() const { return value.IsNull() ? key_node.Mark() : value.Mark(); }
};

struct row_key_info {
  std::size_t row = 0;
  int line = 0;
  int column = 0;
  std::string path;
};

/// Everything the checks after parsing need about one expanded row.
struct row_meta {
  int line = 0;
  int column = 0;
  std::string path;  ///< `entries[3]` or `entries[3].variants[1]`
};

class loader;

/// A YAML map with known keys: unknown and duplicate keys are reported on construction.
class fields {
 public:
  fields(loader& l, const YAML::Node& node, std::string path,
         std::span<const std::string_view> known, std::string_view what);
  const field* get(std::string_view key) const {
    for (const auto& f : items_) {
      if (f.key == key) return &f;
    }
    return nullptr;
  }
  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }
  const YAML::Mark& mark() const { return mark_; }

 private:
  std::vector<field> items_;
  std::string path_;
  YAML::Mark mark_;
  bool ok_ = false;
};

class loader {
 public:
  loader(std::string file, std::string source_path)
      : file_(std::move(file)), source_path_(std::move(source_path)) {}

  rate_table_result run(std::string_view yaml) {
    rate_table_result result;
    auto table = std::make_shared<m::rate_table>();
    table->source_path = source_path_;
    try {
      parse(yaml, *table);
    } catch (const YAML::DeepRecursion& e) {
      error(e.mark, "", "YAML nested too deeply; a rate table needs only a few levels");
    } catch (const YAML::ParserException& e) {
      error(e.mark, "", "YAML syntax error: " + e.msg);
    } catch (const YAML::Exception& e) {
      error(e.mark, "", "YAML error: " + e.msg);
    } catch (const std::exception& e) {
      error(YAML::Mark::null_mark(), "", std::string("internal error while loading: ") + e.what());
    }
    if (errors_.empty()) {
      table->index();
      result.table = std::move(table);
    }
    sort(errors_);
    sort(warnings_);
    result.errors = std::move(errors_);
    result.warnings = std::move(warnings_);
    return result;
  }

  void error(const YAML::Mark& mark, std::string path, std::string message) {
    errors_.push_back(make(mark, std::move(path), std::move(message)));
  }
  void warn(const YAML::Mark& mark, std::string path, std::string message) {
    warnings_.push_back(make(mark, std::move(path), std::move(message)));
  }

 private:
  config_error make(const YAML::Mark& mark, std::string path, std::string message) const {
    config_error e;
    e.file = file_;
    // yaml-cpp marks are 0-based and -1 when unknown; editors count from 1.
    e.line = mark.line >= 0 ? mark.line + 1 : 0;
    e.column = mark.column >= 0 ? mark.column + 1 : 0;
    e.path = std::move(path);
    e.message = std::move(message);
    return e;
  }

  static void sort(std::vector<config_error>& v) {
    std::stable_sort(v.begin(), v.end(), [](const config_error& a, const config_error& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
  }

  std::string location(const YAML::Mark& mark) const {
    return file_ + ":" + std::to_string(mark.line + 1);
  }

  // ---- scalar readers: each reports its own errors and returns nullopt on failure ----

  std::optional<std::string> read_string(const fields& s, std::string_view key, bool required) {
    const field* f = s.get(key);
    if (f == nullptr) {
      if (required) missing(s, key);
      return std::nullopt;
    }
    const std::string path = child(s.path(), key);
    if (!f->value.IsScalar() || f->value.Scalar().empty()) {
      if (f->value.IsNull() || (f->value.IsScalar() && f->value.Scalar().empty())) {
        error(f->mark(), path, "'" + std::string(key) + "' is empty; give it a value");
      } else {
        error(f->mark(), path, "expected a string, got " + std::string(type_name(f->value)));
      }
      return std::nullopt;
    }
    return f->value.Scalar();
  }

  void missing(const fields& s, std::string_view key) {
    error(s.mark(), child(s.path(), key),
          "missing required key '" + std::string(key) + "'; add '" + std::string(key) +
              ": ...' here");
  }

  /// A price from the scalar's text, exactly. `what` names the field in messages.
  std::optional<m::rate_micro_per_m> read_price(const fields& s, std::string_view key,
                                                bool required) {
    const field* f = s.get(key);
    if (f == nullptr) {
      if (required) {
        error(s.mark(), child(s.path(), key),
              "missing required price '" + std::string(key) + "'; add '" + std::string(key) +
                  ": \"...\"' (USD per 1M tokens)");
      }
      return std::nullopt;
    }
    const std::string path = child(s.path(), key);
    if (!f->value.IsScalar()) {
      error(f->mark(), path,
            "expected a price, got " + std::string(type_name(f->value)) + "; " +
                std::string(price_hint));
      return std::nullopt;
    }
    // The scalar text as written (`3.00` and "3.00" both arrive as the text 3.00): never
    // as<double>(), which would round 0.1 and friends before we ever see them.
    const std::string& text = f->value.Scalar();
    const auto fail = [&](std::string msg) {
      error(f->mark(), path, std::move(msg));
      return std::nullopt;
    };
    if (text.empty()) return fail("'" + std::string(key) + "' is empty; " + std::string(price_hint));
    if (text.front() == '-') {
      return fail("negative price '" + text + "'; prices are 0 or more USD per 1M tokens");
    }
    if (text.find_first_of("eE") != std::string::npos &&
        text.find_first_not_of("0123456789.eE+-") == std::string::npos) {
      return fail("'" + text + "' uses exponent notation; write the decimal in full (e.g. " +
                  "0.00006 rather than 6e-05)");
    }
    if (text.front() == '$') return fail("'" + text + "': drop the '$'; prices are in USD");
    if (text.find(',') != std::string::npos) {
      return fail("'" + text + "': use '.' as the decimal separator and no thousands separator");
    }
    if (const std::size_t dot = text.find('.'); dot != std::string::npos &&
        text.size() - dot - 1 > 6 &&
        text.find_first_not_of("0123456789", dot + 1) == std::string::npos) {
      return fail("'" + text + "' has more than 6 decimals; the finest price is 0.000001 USD " +
                  "per 1M tokens (1 micro-USD), so round it or check the unit");
    }
    const auto v = m::parse_rate_per_million(text);
    if (!v) {
      return fail("'" + text + "' is not a decimal price; " + std::string(price_hint));
    }
    return v;
  }

  std::optional<std::chrono::sys_days> read_date(const fields& s, std::string_view key) {
    const field* f = s.get(key);
    if (f == nullptr) return std::nullopt;
    const std::string path = child(s.path(), key);
    const std::string hint = "write a UTC date as YYYY-MM-DD, e.g. 2026-01-01";
    if (!f->value.IsScalar()) {
      error(f->mark(), path, "expected a date, got " + std::string(type_name(f->value)) + "; " + hint);
      return std::nullopt;
    }
    const std::string& t = f->value.Scalar();
    const auto num = [&](std::size_t pos, std::size_t len) -> std::optional<unsigned> {
      unsigned v = 0;
      const char* b = t.data() + pos;
      const auto [end, ec] = std::from_chars(b, b + len, v);
      if (ec != std::errc{} || end != b + len) return std::nullopt;
      return v;
    };
    if (t.size() == 10 && t[4] == '-' && t[7] == '-') {
      const auto y = num(0, 4);
      const auto mo = num(5, 2);
      const auto d = num(8, 2);
      if (y && mo && d) {
        const std::chrono::year_month_day ymd{std::chrono::year(static_cast<int>(*y)),
                                              std::chrono::month(*mo), std::chrono::day(*d)};
        if (ymd.ok()) return std::chrono::sys_days(ymd);
        error(f->mark(), path, "'" + t + "' is not a calendar date; " + hint);
        return std::nullopt;
      }
    }
    error(f->mark(), path, "'" + t + "' is not a date; " + hint);
    return std::nullopt;
  }

  template <std::size_t N>
  std::optional<std::size_t> read_enum(const fields& s, std::string_view key,
                                       const std::array<std::string_view, N>& names,
                                       std::string_view what) {
    const auto text = read_string(s, key, false);
    if (!text) return std::nullopt;
    const auto it = std::find(names.begin(), names.end(), *text);
    if (it == names.end()) {
      error(s.get(key)->mark(), child(s.path(), key), unknown_word(what, *text, names));
      return std::nullopt;
    }
    return static_cast<std::size_t>(it - names.begin());
  }

  std::optional<bool> read_bool(const fields& s, std::string_view key) {
    const field* f = s.get(key);
    if (f == nullptr) return std::nullopt;
    bool v = false;
    if (!f->value.IsScalar() || !YAML::convert<bool>::decode(f->value, v)) {
      error(f->mark(), child(s.path(), key),
            "'" + (f->value.IsScalar() ? f->value.Scalar() : std::string(type_name(f->value))) +
                "' is not a boolean; write true or false");
      return std::nullopt;
    }
    return v;
  }

  // ---- the file ----

  void parse(std::string_view yaml, m::rate_table& table) {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (root.IsNull()) {
      error(YAML::Mark::null_mark(), "",
            "the rate table is empty; it needs 'version', 'currency', 'unit' and 'entries'");
      return;
    }
    const fields top(*this, root, "", top_keys, "key");
    if (!top.ok()) return;
    if (const auto v = read_string(top, "version", true)) {
      if (!is_valid_label_value(*v)) {
        error(top.get("version")->mark(), "version",
              "'" + *v + "' is not a valid version; use 1 to 64 characters from A-Z a-z 0-9 _ . - " +
                  "(it becomes the Prometheus label bedrock_rate_table_info{version}), e.g. " +
                  "\"2026-07-24.1\"");
      } else {
        table.version = *v;
      }
    }
    if (const auto c = read_string(top, "currency", false); c && *c != "USD") {
      error(top.get("currency")->mark(), "currency",
            "currency '" + *c + "' is not supported; prices must be in USD (write 'currency: USD')");
    }
    if (const auto u = read_string(top, "unit", false); u && *u != "per_million_tokens") {
      error(top.get("unit")->mark(), "unit",
            "unit '" + *u + "' is not supported; write 'unit: per_million_tokens' and give " +
                "every price in USD per 1,000,000 tokens (per-1K prices x 1000)");
    }
    const field* entries = top.get("entries");
    if (entries == nullptr) {
      missing(top, "entries");
      return;
    }
    if (entries->value.IsNull() || (entries->value.IsSequence() && entries->value.size() == 0)) {
      warn(entries->mark(), "entries", "the table has no entries: every request will be unpriced");
      return;
    }
    if (!entries->value.IsSequence()) {
      error(entries->mark(), "entries",
            "expected a list of entries, got " + std::string(type_name(entries->value)));
      return;
    }
    std::size_t i = 0;
    for (const auto& item : entries->value) parse_entry(item, index_path("entries", i++), table);
    check_duplicates(table);
  }

  void parse_entry(const YAML::Node& node, const std::string& path, m::rate_table& table) {
    const fields s(*this, node, path, entry_keys, "key");
    if (!s.ok()) return;
    m::rate_entry e;
    bool ok = true;
    e.location = location(node.Mark());

    if (const auto model = read_string(s, "model", true)) {
      ok &= check_model(*s.get("model"), child(path, "model"), *model);
      e.model = *model;
    } else {
      ok = false;
    }
    ok &= read_regions(s, e.regions);
    if (const auto v = read_enum(s, "scope", scope_names, "scope")) {
      e.scope = static_cast<m::inference_scope>(*v);
    } else {
      ok &= s.get("scope") == nullptr;
    }
    ok &= read_selectors(s, e);
    const auto from = read_date(s, "effective_from");
    const auto to = read_date(s, "effective_to");
    ok &= (s.get("effective_from") == nullptr || from) && (s.get("effective_to") == nullptr || to);
    e.effective_from = from;
    e.effective_to = to;
    if (from && to && *to <= *from) {
      error(s.get("effective_to")->mark(), child(path, "effective_to"),
            "effective_to must be after effective_from (the window is [from, to): from is " +
                s.get("effective_from")->value.Scalar() + ")");
      ok = false;
    }
    ok &= read_all_rates(s, e);
    if (const auto src = read_string(s, "source", true)) {
      e.source = *src;
    } else {
      ok = false;
    }

    std::vector<std::pair<m::rate_entry, row_meta>> rows;
    if (ok) {
      rows.emplace_back(e, row_meta{node.Mark().line + 1, node.Mark().column + 1, path});
    }
    if (const field* v = s.get("variants")) {
      parse_variants(*v, child(path, "variants"), e, ok, rows);
    }
    for (auto& [row, meta] : rows) {
      suspicious(row, meta);
      table.entries.push_back(std::move(row));
      metas_.push_back(std::move(meta));
    }
  }

  /// A variant: same model, regions, scope and dates as its entry; its own tier/latency/batch
  /// and its own rates (nothing is inherited but `source`).
  void parse_variants(const field& f, const std::string& path, const m::rate_entry& parent,
                      bool parent_ok, std::vector<std::pair<m::rate_entry, row_meta>>& rows) {
    if (f.value.IsNull()) return;
    if (!f.value.IsSequence()) {
      error(f.mark(), path, "expected a list of variants, got " + std::string(type_name(f.value)));
      return;
    }
    std::size_t i = 0;
    for (const auto& item : f.value) {
      const std::string item_path = index_path(path, i++);
      const fields s(*this, item, item_path, variant_keys, "key");
      if (!s.ok()) continue;
      m::rate_entry v;
      v.model = parent.model;
      v.regions = parent.regions;
      v.scope = parent.scope;
      v.effective_from = parent.effective_from;
      v.effective_to = parent.effective_to;
      v.location = location(item.Mark());
      bool ok = read_selectors(s, v);
      if (s.get("tier") == nullptr && s.get("latency") == nullptr && s.get("batch") == nullptr) {
        error(s.mark(), item_path,
              "a variant must set 'tier', 'latency' or 'batch'; otherwise it is the entry itself");
        ok = false;
      }
      ok &= read_all_rates(s, v);
      if (s.get("source") != nullptr) {
        if (const auto src = read_string(s, "source", false)) {
          v.source = *src;
        } else {
          ok = false;
        }
      } else {
        v.source = parent.source;
      }
      if (ok && parent_ok) {
        rows.emplace_back(std::move(v),
                          row_meta{item.Mark().line + 1, item.Mark().column + 1, item_path});
      }
    }
  }

  bool read_selectors(const fields& s, m::rate_entry& e) {
    bool ok = true;
    if (const auto v = read_enum(s, "tier", tier_names, "tier")) {
      e.tier = *v == 4 ? m::service_tier::standard : static_cast<m::service_tier>(*v);
    } else {
      ok &= s.get("tier") == nullptr;
    }
    if (const auto v = read_enum(s, "latency", latency_names, "latency mode")) {
      e.latency = static_cast<m::latency_mode>(*v);
    } else {
      ok &= s.get("latency") == nullptr;
    }
    if (const auto b = read_bool(s, "batch")) {
      e.batch = *b;
    } else {
      ok &= s.get("batch") == nullptr;
    }
    return ok;
  }

  bool read_rates(const fields& s, m::token_rates& r) {
    bool ok = true;
    const auto in = read_price(s, "input", true);
    const auto out = read_price(s, "output", true);
    ok &= in.has_value() && out.has_value();
    if (in) r.input = *in;
    if (out) r.output = *out;
    for (const auto& [key, dest] :
         {std::pair<std::string_view, std::optional<m::rate_micro_per_m>*>{"cache_read", &r.cache_read},
          {"cache_write_5m", &r.cache_write_5m},
          {"cache_write_1h", &r.cache_write_1h}}) {
      if (s.get(key) == nullptr) continue;
      *dest = read_price(s, key, false);
      ok &= dest->has_value();
    }
    return ok;
  }

  bool read_all_rates(const fields& s, m::rate_entry& e) {
    bool ok = read_rates(s, e.rates);
    const field* lc = s.get("long_context");
    if (lc == nullptr) return ok;
    const std::string path = child(s.path(), "long_context");
    const fields l(*this, lc->value.IsNull() ? YAML::Node(YAML::NodeType::Map) : lc->value, path,
                   long_context_keys, "key");
    if (!l.ok()) return false;
    if (lc->value.IsNull()) {
      error(lc->mark(), path,
            "'long_context' is empty; give above_input_tokens, input and output, or remove it");
      return false;
    }
    const field* t = l.get("above_input_tokens");
    if (t == nullptr) {
      missing(l, "above_input_tokens");
      ok = false;
    } else {
      std::uint64_t v = 0;
      const std::string text = t->value.IsScalar() ? t->value.Scalar() : std::string();
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) {
        error(t->mark(), child(path, "above_input_tokens"),
              "expected a whole number of input tokens (e.g. 200000), got '" + text + "'");
        ok = false;
      } else if (v == 0) {
        error(t->mark(), child(path, "above_input_tokens"),
              "must be greater than 0: a threshold of 0 would apply the long-context rates to " +
                  std::string("every request (put those rates in the entry itself instead)"));
        ok = false;
      } else {
        e.long_context_threshold = v;
      }
    }
    ok &= read_rates(l, e.long_context_rates);
    return ok;
  }

  bool check_model(const field& f, const std::string& path, const std::string& model) {
    if (model.starts_with("arn:")) {
      error(f.mark(), path,
            "'" + model + "' is an ARN; rate tables price base models. Map application " +
                "inference profiles, provisioned and imported models to a base model in the " +
                "config's models.mappings");
      return false;
    }
    const bool charset = std::all_of(model.begin(), model.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '-' || c == ':' || c == '_';
    });
    if (!charset) {
      error(f.mark(), path,
            "'" + model + "' is not a Bedrock model id; use the id from the InvokeModel URI, " +
                "e.g. anthropic.claude-3-5-sonnet-20240620-v1:0");
      return false;
    }
    const std::size_t dot = model.find('.');
    if (dot == std::string::npos) {
      error(f.mark(), path,
            "'" + model + "' has no provider prefix; base model ids look like " +
                "provider.name (e.g. amazon.nova-pro-v1:0)");
      return false;
    }
    const std::string_view first(model.data(), dot);
    if (std::find(profile_prefixes.begin(), profile_prefixes.end(), first) !=
        profile_prefixes.end()) {
      const std::string base = model.substr(dot + 1);
      error(f.mark(), path,
            "'" + model + "' is an inference-profile id; write the base model '" + base +
                "' and say the routing with 'scope: " + (first == "global" ? "global" : "geo") +
                "' (and the regions it is billed in)");
      return false;
    }
    return true;
  }

  bool read_regions(const fields& s, std::vector<std::string>& out) {
    const field* f = s.get("regions");
    const std::string path = child(s.path(), "regions");
    if (f == nullptr) {
      error(s.mark(), path,
            "missing required key 'regions'; add 'regions: [\"*\"]' for every region, or list " +
                std::string("the billed regions, e.g. [us-east-1, us-west-2]"));
      return false;
    }
    if (!f->value.IsSequence() || f->value.size() == 0) {
      error(f->mark(), path,
            "expected a list of regions, e.g. [\"*\"] or [us-east-1, us-west-2], got " +
                std::string(f->value.IsSequence() ? "an empty list" : type_name(f->value)));
      return false;
    }
    bool ok = true;
    bool star = false;
    bool named = false;  // including rejected names: "*" plus a typo is still a mix
    std::size_t i = 0;
    for (const auto& item : f->value) {
      const std::string item_path = index_path(path, i++);
      if (!item.IsScalar()) {
        error(item.Mark(), item_path, "expected a region name, got " + std::string(type_name(item)));
        ok = false;
        continue;
      }
      const std::string& r = item.Scalar();
      named |= r != "*";
      if (r == "*") {
        star = true;
      } else if (!is_bedrock_region(r)) {
        std::string msg = "'" + r + "' is not a region where Bedrock runs";
        if (r.starts_with("cn-")) {
          msg += " (Bedrock has no endpoint in the China partition)";
        } else if (const auto near = closest_match(r, known_regions); !near.empty()) {
          msg += "; did you mean '" + std::string(near) + "'?";
        } else {
          msg += "; use an AWS region name such as us-east-1, or \"*\" for every region";
        }
        error(item.Mark(), item_path, std::move(msg));
        ok = false;
        continue;
      }
      if (std::find(out.begin(), out.end(), r) != out.end()) {
        error(item.Mark(), item_path, "region '" + r + "' is listed twice; remove one");
        ok = false;
        continue;
      }
      out.push_back(r);
    }
    if (star && named) {
      error(f->mark(), path,
            "\"*\" means every region; do not combine it with named regions (named regions " +
                std::string("belong in their own entry, which wins over \"*\")"));
      ok = false;
    }
    return ok;
  }

  /// Legal but probably a typo: reported as warnings.
  void suspicious(const m::rate_entry& e, const row_meta& meta) {
    const YAML::Mark mark = mark_at(meta);
    const auto check = [&](const m::token_rates& r, std::string_view what) {
      if (r.input == 0 && r.output == 0) {
        warn(mark, meta.path,
             std::string(what) + "input and output are both 0: requests for " + e.model +
                 " will cost nothing; if the price is unknown, remove the entry so they count " +
                 "as unpriced");
      } else if (r.output > 0 && r.output * 10 < r.input) {
        warn(mark, meta.path,
             std::string(what) + "output is priced more than 10x below input; check the two " +
                 "are not swapped");
      }
      if (r.cache_read && *r.cache_read > r.input) {
        warn(mark, meta.path,
             std::string(what) + "cache_read is dearer than input; cache reads are normally " +
                 "a fraction of the input price");
      }
    };
    check(e.rates, "");
    if (e.long_context_threshold) check(e.long_context_rates, "long_context: ");
  }

  static YAML::Mark mark_at(const row_meta& meta) {
    YAML::Mark mark;
    mark.line = meta.line - 1;
    mark.column = meta.column - 1;
    return mark;
  }

  /// Two rows that would both match one request make the price depend on file order.
  void check_duplicates(const m::rate_table& table) {
    const auto overlap_regions = [](const m::rate_entry& a,
                                    const m::rate_entry& b) -> std::optional<std::string> {
      for (const auto& r : a.regions) {
        if (std::find(b.regions.begin(), b.regions.end(), r) != b.regions.end()) return r;
      }
      return std::nullopt;
    };
    const auto overlap_dates = [](const m::rate_entry& a, const m::rate_entry& b) {
      const bool a_before_b = a.effective_to && b.effective_from && *a.effective_to <= *b.effective_from;
      const bool b_before_a = b.effective_to && a.effective_from && *b.effective_to <= *a.effective_from;
      return !a_before_b && !b_before_a;
    };
    for (std::size_t j = 1; j < table.entries.size(); ++j) {
      const auto& b = table.entries[j];
      for (std::size_t i = 0; i < j; ++i) {
        const auto& a = table.entries[i];
        if (a.model != b.model || a.scope != b.scope || a.tier != b.tier ||
            a.latency != b.latency || a.batch != b.batch) {
          continue;
        }
        const auto region = overlap_regions(a, b);
        if (!region || !overlap_dates(a, b)) continue;
        const std::string scope =
            a.scope ? std::string(scope_names.at(static_cast<std::size_t>(*a.scope))) : "any";
        error(mark_at(metas_[j]), metas_[j].path,
              "duplicate: " + metas_[i].path + " at " + a.location + " already prices " + b.model +
                  " in region " + *region + " (scope " + scope + ", tier " +
                  std::string(tier_names.at(static_cast<std::size_t>(b.tier))) + ", latency " +
                  std::string(latency_names.at(static_cast<std::size_t>(b.latency))) +
                  ", batch " + (b.batch ? "true" : "false") +
                  ") with overlapping effective dates; remove one, or give them effective " +
                  "dates that do not overlap");
        break;  // one report per row is enough
      }
    }
  }

  std::string file_;
  std::string source_path_;
  std::vector<config_error> errors_;
  std::vector<config_error> warnings_;
  std::vector<row_meta> metas_;  // parallel to table.entries
};

fields::fields(loader& l, const YAML::Node& node, std::string path,
               std::span<const std::string_view> known, std::string_view what)
    : path_(std::move(path)), mark_(node.Mark()) {
  if (!node.IsMap()) {
    l.error(mark_, path_,
            "expected a map of keys (" + join(known) + "), got " + std::string(type_name(node)));
    return;
  }
  ok_ = true;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) {
      l.error(kv.first.Mark(), path_, "keys must be plain names, got " + std::string(type_name(kv.first)));
      continue;
    }
    const std::string& key = kv.first.Scalar();
    const std::string key_path = child(path_, key);
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string msg = "unknown " + std::string(what) + " '" + key + "'";
      if (const auto near = closest_match(key, known); !near.empty()) {
        msg += "; did you mean '" + std::string(near) + "'?";
      } else {
        msg += "; valid keys here: " + join(known);
      }
      l.error(kv.first.Mark(), key_path, std::move(msg));
      continue;
    }
    if (const field* first = get(key)) {
      l.error(kv.first.Mark(), key_path,
              "duplicate key '" + key + "' (first on line " +
                  std::to_string(first->key_node.Mark().line + 1) + "); remove one");
      continue;
    }
    items_.push_back({key, kv.first, kv.second});
  }
}

}  // namespace

std::span<const std::string_view> bedrock_regions() noexcept { return known_regions; }

bool is_bedrock_region(std::string_view region) noexcept {
  return std::find(known_regions.begin(), known_regions.end(), region) != known_regions.end();
}

rate_table_result load_rate_table_string(std::string_view yaml, std::string_view file_name) {
  loader l{std::string(file_name), std::string(file_name)};
  return l.run(yaml);
}

rate_table_result load_rate_table_file(const std::string& path) {
  std::error_code ec;
  const auto absolute = std::filesystem::absolute(path, ec).lexically_normal();
  const auto fail = [&](std::string message) {
    rate_table_result r;
    config_error e;
    e.file = path;
    e.message = std::move(message);
    r.errors.push_back(std::move(e));
    return r;
  };
  const auto status = std::filesystem::status(absolute, ec);
  if (ec || !std::filesystem::exists(status)) return fail("rate table file does not exist");
  if (!std::filesystem::is_regular_file(status)) return fail("rate table path is not a regular file");
  std::ifstream in(absolute, std::ios::binary);
  if (!in) return fail("rate table file cannot be read; check its permissions");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail("error while reading the rate table file");
  loader l{path, absolute.string()};
  return l.run(text.str());
}

}  // namespace bedrock_meter::config
