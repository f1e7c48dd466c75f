#include "config/rate_table_loader.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include "config/text.hpp"
#include "config/yaml_reader.hpp"

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
constexpr std::array<std::string_view, 8> profile_prefixes = {"us", "eu", "apac",   "jp",
                                                              "au", "ca", "us-gov", "global"};

constexpr std::array<std::string_view, 6> top_keys = {"version", "currency",    "unit",
                                                      "entries", "provisioned", "caching"};
constexpr std::array<std::string_view, 18> entry_keys = {
    "model",        "regions",        "scope",          "tier",         "latency",
    "batch",        "effective_from", "effective_to",   "input",        "output",
    "cache_read",   "cache_write_5m", "cache_write_1h", "speech_input", "speech_output",
    "long_context", "source",         "variants"};
constexpr std::array<std::string_view, 12> variant_keys = {
    "tier",         "latency",       "batch",          "input",
    "output",       "cache_read",    "cache_write_5m", "cache_write_1h",
    "speech_input", "speech_output", "long_context",   "source"};
constexpr std::array<std::string_view, 8> long_context_keys = {
    "above_input_tokens", "input",          "output",       "cache_read",
    "cache_write_5m",     "cache_write_1h", "speech_input", "speech_output"};
constexpr std::array<std::string_view, 5> provisioned_keys = {"model", "regions", "model_unit",
                                                              "model_units", "reserved"};
constexpr std::array<std::string_view, 3> model_unit_keys = {"input_tpm", "output_tpm", "source"};
constexpr std::array<std::string_view, 3> unit_price_keys = {"term", "hourly", "source"};
constexpr std::array<std::string_view, 7> reserved_keys = {
    "term",           "scope", "input_per_1k_tpm_hour", "output_per_1k_tpm_hour", "min_input_tpm",
    "min_output_tpm", "source"};
constexpr std::array<std::string_view, 4> caching_keys = {"model", "min_prefix_tokens", "ttl_1h",
                                                          "source"};

constexpr enum_table<m::inference_scope, 3> scopes{
    "scope",
    {"in_region", "geo", "global"},
    {m::inference_scope::in_region, m::inference_scope::geo, m::inference_scope::global}};
// `default` is what the X-Amzn-Bedrock-Service-Tier header says for standard.
constexpr enum_table<m::service_tier, 5> tiers{
    "tier",
    {"standard", "priority", "flex", "reserved", "default"},
    {m::service_tier::standard, m::service_tier::priority, m::service_tier::flex,
     m::service_tier::reserved, m::service_tier::standard}};
constexpr enum_table<m::latency_mode, 2> latencies{
    "latency mode",
    {"standard", "optimized"},
    {m::latency_mode::standard, m::latency_mode::optimized}};

/// A term that exists but is sold for the other product: say which product it belongs to rather
/// than suggesting the nearest spelling.
std::string term_message(std::string_view word, std::span<const std::string_view> valid,
                         std::string_view other_product, std::string_view sold) {
  if (!m::parse_commitment_term(word)) return unknown_word("term", word, valid);
  return "'" + std::string(word) + "' is a " + std::string(other_product) + " term; " +
         std::string(sold) + " (valid: " + join(valid) + ")";
}

std::string unit_term_message(std::string_view word, std::span<const std::string_view> valid) {
  return term_message(word, valid, "Reserved-tier",
                      "Provisioned Throughput model units are sold with no commitment, for 1 "
                      "month or for 6 months");
}

std::string reserved_term_message(std::string_view word, std::span<const std::string_view> valid) {
  return term_message(word, valid, "Provisioned Throughput",
                      "the Reserved tier is sold for 1 month or 3 months");
}

constexpr enum_table<m::commitment_term, 3> unit_terms{
    "term",
    {"no_commit", "1_month", "6_months"},
    {m::commitment_term::no_commit, m::commitment_term::one_month, m::commitment_term::six_months},
    &unit_term_message};
constexpr enum_table<m::commitment_term, 2> reserved_terms{
    "term",
    {"1_month", "3_months"},
    {m::commitment_term::one_month, m::commitment_term::three_months},
    &reserved_term_message};

constexpr std::string_view price_hint =
    "write a decimal USD amount per 1M tokens, e.g. \"3.00\" or \"0.00875\"";
constexpr std::string_view hourly_hint =
    "write a decimal USD amount per model unit per hour, e.g. \"44.00\"";
constexpr std::string_view tpm_hour_hint =
    "write a decimal USD amount per 1,000 tokens-per-minute per hour, e.g. \"0.198\"";
constexpr std::string_view tpm_hint = "use a whole number of tokens per minute, e.g. 100000";
constexpr std::string_view positive_tpm_hint =
    "use a whole number of tokens per minute greater than 0, e.g. 100000";
constexpr std::string_view prefix_hint =
    "use a whole number of tokens greater than 0, e.g. 1024 (the smallest prefix Bedrock caches)";
/// Token counts (TPM, prefix sizes) above this are typos; the cap keeps products with prices far
/// from overflowing.
constexpr std::uint64_t max_tokens = 1'000'000'000'000;

/// How the decimal amounts of one kind are worded in messages.
struct amount_words {
  std::string_view unit;   ///< "USD per 1M tokens"
  std::string_view range;  ///< "0 or more USD per 1M tokens"
  std::string_view hint;   ///< what to write instead
  /// The largest amount accepted, in whole USD: far above any Bedrock price (the dearest token
  /// price is tens of USD per 1M tokens, a model unit a few hundred USD per hour), so a larger
  /// one is a unit mistake, and far below what the exact arithmetic holds (a request's cost is
  /// a 64-bit count of pico-USD; totals are 128-bit).
  std::int64_t max_usd;
};
constexpr amount_words token_price{"USD per 1M tokens", "0 or more USD per 1M tokens", price_hint,
                                   100'000};
constexpr amount_words hourly_price{"USD per model unit per hour",
                                    "more than 0 USD per model unit per hour", hourly_hint,
                                    1'000'000};
constexpr amount_words tpm_hour_price{"USD per 1,000 TPM per hour",
                                      "more than 0 USD per 1,000 TPM per hour", tpm_hour_hint,
                                      1'000'000};
constexpr std::string_view date_hint = "write a UTC date as YYYY-MM-DD, e.g. 2026-01-01";

/// Everything the checks after parsing need about one expanded row.
struct row_meta {
  int line = 0;
  int column = 0;
  std::string path;  ///< `entries[3]` or `entries[3].variants[1]`
};

row_meta meta_at(const YAML::Mark& mark, std::string path) {
  return {mark.line + 1, mark.column + 1, std::move(path)};
}

YAML::Mark mark_at(const row_meta& meta) {
  YAML::Mark mark;
  mark.line = meta.line - 1;
  mark.column = meta.column - 1;
  return mark;
}

/// A key that is either absent or read without a problem.
bool absent_or(bool read, const map_reader& s, std::string_view key) {
  return read || s.get(key) == nullptr;
}

/// What is wrong with a price's text, or empty when it is a plain decimal. The checks name the
/// usual mistakes (a spreadsheet's exponent, a currency sign, a thousands separator) before the
/// generic message.
std::string price_problem(std::string_view key, const std::string& text,
                          const amount_words& words = token_price) {
  if (text.empty()) return "'" + std::string(key) + "' is empty; " + std::string(words.hint);
  if (text.front() == '-') {
    return "negative price '" + text + "'; prices are " + std::string(words.range);
  }
  if (text.find_first_of("eE") != std::string::npos &&
      text.find_first_not_of("0123456789.eE+-") == std::string::npos) {
    return "'" + text + "' uses exponent notation; write the decimal in full (e.g. " +
           "0.00006 rather than 6e-05)";
  }
  if (text.front() == '$') return "'" + text + "': drop the '$'; prices are in USD";
  if (text.find(',') != std::string::npos) {
    return "'" + text + "': use '.' as the decimal separator and no thousands separator";
  }
  if (const std::size_t dot = text.find('.');
      dot != std::string::npos && text.size() - dot - 1 > 6 &&
      text.find_first_not_of("0123456789", dot + 1) == std::string::npos) {
    return "'" + text + "' has more than 6 decimals; the finest price is 0.000001 " +
           std::string(words.unit) + " (1 micro-USD), so round it or check the unit";
  }
  const auto value = m::parse_rate_per_million(text);
  const bool decimal = text.find_first_not_of("0123456789.") == std::string::npos &&
                       std::count(text.begin(), text.end(), '.') <= 1 && text.front() != '.' &&
                       text.back() != '.';
  if (decimal && (!value || *value / 1'000'000 > words.max_usd ||
                  (*value / 1'000'000 == words.max_usd && *value % 1'000'000 != 0))) {
    return "'" + text + "' is more than the largest price accepted, " +
           std::to_string(words.max_usd) + " " + std::string(words.unit) + "; check the unit";
  }
  if (!value) return "'" + text + "' is not a decimal price; " + std::string(words.hint);
  return {};
}

/// Why `r` is not a region a rate table may name, or empty.
std::string region_problem(const std::string& r) {
  if (is_bedrock_region(r)) return {};
  std::string msg = "'" + r + "' is not a region where Bedrock runs";
  if (r.starts_with("cn-")) {
    msg += " (Bedrock has no endpoint in the China partition)";
  } else if (const auto near = closest_match(r, known_regions); !near.empty()) {
    msg += "; did you mean '" + std::string(near) + "'?";
  } else {
    msg += "; use an AWS region name such as us-east-1, or \"*\" for every region";
  }
  return msg;
}

/// Why `model` is not a base model id a rate table may price, or empty.
std::string model_problem(const std::string& model) {
  if (model.starts_with("arn:")) {
    return "'" + model + "' is an ARN; rate tables price base models. Map application " +
           "inference profiles, provisioned and imported models to a base model in the " +
           "config's models.mappings";
  }
  const bool charset = std::all_of(model.begin(), model.end(), [](char c) {
    return is_lower(c) || is_upper(c) || is_digit(c) || c == '.' || c == '-' || c == ':' ||
           c == '_';
  });
  if (!charset) {
    return "'" + model + "' is not a Bedrock model id; use the id from the InvokeModel URI, " +
           "e.g. anthropic.claude-3-5-sonnet-20240620-v1:0";
  }
  const std::size_t dot = model.find('.');
  if (dot == std::string::npos) {
    return "'" + model + "' has no provider prefix; base model ids look like " +
           "provider.name (e.g. amazon.nova-pro-v1:0)";
  }
  const std::string_view first(model.data(), dot);
  if (std::find(profile_prefixes.begin(), profile_prefixes.end(), first) !=
      profile_prefixes.end()) {
    return "'" + model + "' is an inference-profile id; write the base model '" +
           model.substr(dot + 1) +
           "' and say the routing with 'scope: " + (first == "global" ? "global" : "geo") +
           "' (and the regions it is billed in)";
  }
  return {};
}

/// Two rows that would both match one request.
bool same_selectors(const m::rate_entry& a, const m::rate_entry& b) {
  return a.model == b.model && a.scope == b.scope && a.tier == b.tier && a.latency == b.latency &&
         a.batch == b.batch;
}

/// A region both lists name ("*" included: two "*" lists overlap, a named region and "*" do not).
std::optional<std::string> shared_region(const std::vector<std::string>& a,
                                         const std::vector<std::string>& b) {
  for (const auto& r : a) {
    if (std::find(b.begin(), b.end(), r) != b.end()) return r;
  }
  return std::nullopt;
}

/// Whether the list at `key` has items (absent, `key:` and `[]` have none). A value that is not
/// a list counts as having some: it is reported as a wrong type already.
bool has_items(const map_reader& s, std::string_view key) {
  const map_entry* e = s.get(key);
  return e != nullptr && !e->value.IsNull() && (!e->value.IsSequence() || e->value.size() > 0);
}

/// Two Reserved-tier prices one reservation could match: the same term, and the same scope or
/// one of them for any scope.
bool same_reservation(const m::reserved_tier_price& a, const m::reserved_tier_price& b) {
  return a.term == b.term && (!a.scope || !b.scope || *a.scope == *b.scope);
}

bool dates_overlap(const m::rate_entry& a, const m::rate_entry& b) {
  const auto before = [](const m::rate_entry& x, const m::rate_entry& y) {
    return x.effective_to && y.effective_from && *x.effective_to <= *y.effective_from;
  };
  return !before(a, b) && !before(b, a);
}

class loader {
 public:
  loader(std::string file, std::string source_path)
      : diag_(file), file_(std::move(file)), source_path_(std::move(source_path)) {}

  rate_table_result run(std::string_view yaml) {
    rate_table_result result;
    auto table = std::make_shared<m::rate_table>();
    table->source_path = source_path_;
    diag_.guard([&] { parse(yaml, *table); },
                "YAML nested too deeply; a rate table needs only a few levels");
    if (!diag_.has_errors()) {
      table->index();
      result.table = std::move(table);
    }
    result.errors = diag_.take_errors();
    result.warnings = diag_.take_warnings();
    return result;
  }

 private:
  using rows = std::vector<std::pair<m::rate_entry, row_meta>>;

  std::string location(const YAML::Mark& mark) const {
    return file_ + ":" + std::to_string(mark.line + 1);
  }

  // ---- values the generic reader does not know ----

  /// A price from the scalar's text, exactly.
  std::optional<m::rate_micro_per_m> read_price(const map_reader& s, std::string_view key,
                                                bool required) {
    const map_entry* f = s.get(key);
    if (f == nullptr) {
      if (required) {
        diag_.error(s.mark(), s.path_of(key),
                    "missing required price '" + std::string(key) + "'; add '" + std::string(key) +
                        ": \"...\"' (USD per 1M tokens)");
      }
      return std::nullopt;
    }
    // The scalar text as written (`3.00` and "3.00" both arrive as the text 3.00): never
    // as<double>(), which would round 0.1 and friends before we ever see them.
    const std::string* text = s.scalar(*f, "a price", price_hint);
    if (text == nullptr) return std::nullopt;
    if (auto problem = price_problem(key, *text); !problem.empty()) {
      s.error(*f, std::move(problem));
      return std::nullopt;
    }
    return m::parse_rate_per_million(*text);
  }

  std::optional<std::chrono::sys_days> read_date(const map_reader& s, std::string_view key) {
    const map_entry* f = s.get(key);
    if (f == nullptr) return std::nullopt;
    const std::string* text = s.scalar(*f, "a date", date_hint);
    if (text == nullptr) return std::nullopt;
    const std::string& t = *text;
    if (t.size() == 10 && t[4] == '-' && t[7] == '-') {
      const auto y = parse_uint(std::string_view(t).substr(0, 4));
      const auto mo = parse_uint(std::string_view(t).substr(5, 2));
      const auto d = parse_uint(std::string_view(t).substr(8, 2));
      if (y && mo && d) {
        const std::chrono::year_month_day ymd{std::chrono::year(static_cast<int>(*y)),
                                              std::chrono::month(static_cast<unsigned>(*mo)),
                                              std::chrono::day(static_cast<unsigned>(*d))};
        if (ymd.ok()) return std::chrono::sys_days(ymd);
        s.error(*f, "'" + t + "' is not a calendar date; " + std::string(date_hint));
        return std::nullopt;
      }
    }
    s.error(*f, "'" + t + "' is not a date; " + std::string(date_hint));
    return std::nullopt;
  }

  // ---- the file ----

  void parse(std::string_view yaml, m::rate_table& table) {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (root.IsNull()) {
      diag_.error(YAML::Mark::null_mark(), "",
                  "the rate table is empty; it needs 'version', 'currency', 'unit' and 'entries'");
      return;
    }
    const map_reader top(diag_, root, "", top_keys);
    if (!top.is_map()) return;
    read_header(top, table);
    parse_entries(top, table);
    // Optional sections: tables written before them stay valid.
    top.for_each_item("provisioned", "provisioned entries",
                      [&](const YAML::Node& item, const std::string& path) {
                        parse_provisioned(item, path, table);
                      });
    top.for_each_item(
        "caching", "caching rules",
        [&](const YAML::Node& item, const std::string& path) { parse_caching(item, path, table); });
    check_provisioned_duplicates(table);
    check_caching_duplicates(table);
  }

  void parse_entries(const map_reader& top, m::rate_table& table) {
    const map_entry* entries = top.get("entries");
    if (entries == nullptr) {
      top.missing("entries");
      return;
    }
    if (entries->value.IsNull() || (entries->value.IsSequence() && entries->value.size() == 0)) {
      diag_.warn(entries->mark(), "entries",
                 "the table has no entries: every request will be unpriced");
      return;
    }
    top.for_each_item("entries", "entries", [&](const YAML::Node& item, const std::string& path) {
      parse_entry(item, path, table);
    });
    check_duplicates(table);
  }

  void read_header(const map_reader& top, m::rate_table& table) {
    if (std::string v; top.read_string("version", v, text_rule::required)) {
      if (!is_valid_label_value(v)) {
        top.error(*top.get("version"),
                  "'" + v + "' is not a valid version; use 1 to 64 characters from A-Z a-z 0-9 " +
                      "_ . - (it becomes the Prometheus label bedrock_rate_table_info{version}), " +
                      "e.g. \"2026-07-24.1\"");
      } else {
        table.version = v;
      }
    }
    if (std::string c; top.read_string("currency", c, text_rule::non_empty) && c != "USD") {
      top.error(*top.get("currency"), "currency '" + c +
                                          "' is not supported; prices must be in USD (write " +
                                          "'currency: USD')");
    }
    if (std::string u;
        top.read_string("unit", u, text_rule::non_empty) && u != "per_million_tokens") {
      top.error(*top.get("unit"),
                "unit '" + u + "' is not supported; write 'unit: per_million_tokens' and give " +
                    "every price in USD per 1,000,000 tokens (per-1K prices x 1000)");
    }
  }

  void parse_entry(const YAML::Node& node, const std::string& path, m::rate_table& table) {
    const map_reader s(diag_, node, path, entry_keys);
    if (!s.is_map()) return;
    m::rate_entry e;
    e.location = location(node.Mark());
    bool ok = read_model(s, e.model);
    ok &= read_regions(s, e.regions);
    if (m::inference_scope scope{}; s.read_enum("scope", scopes, scope, text_rule::non_empty)) {
      e.scope = scope;
    } else {
      ok &= s.get("scope") == nullptr;
    }
    ok &= read_selectors(s, e);
    ok &= read_dates(s, e);
    ok &= read_all_rates(s, e);
    ok &= s.read_string("source", e.source, text_rule::required);

    rows out;
    if (ok) out.emplace_back(e, meta_at(node.Mark(), path));
    parse_variants(s, e, ok, out);
    for (auto& [row, meta] : out) {
      suspicious(row, meta);
      table.entries.push_back(std::move(row));
      metas_.push_back(std::move(meta));
    }
  }

  /// `model`: required, and a base model id.
  bool read_model(const map_reader& s, std::string& out) {
    if (!s.read_string("model", out, text_rule::required)) return false;
    if (auto problem = model_problem(out); !problem.empty()) {
      s.error(*s.get("model"), std::move(problem));
      return false;
    }
    return true;
  }

  bool read_dates(const map_reader& s, m::rate_entry& e) {
    const auto from = read_date(s, "effective_from");
    const auto to = read_date(s, "effective_to");
    bool ok = absent_or(from.has_value(), s, "effective_from") &&
              absent_or(to.has_value(), s, "effective_to");
    e.effective_from = from;
    e.effective_to = to;
    if (from && to && *to <= *from) {
      s.error(*s.get("effective_to"),
              "effective_to must be after effective_from (the window is [from, to): from is " +
                  s.get("effective_from")->value.Scalar() + ")");
      ok = false;
    }
    return ok;
  }

  /// A variant: same model, regions, scope and dates as its entry; its own tier/latency/batch
  /// and its own rates (nothing is inherited but `source`).
  void parse_variants(const map_reader& entry, const m::rate_entry& parent, bool parent_ok,
                      rows& out) {
    entry.for_each_item(
        "variants", "variants", [&](const YAML::Node& item, const std::string& item_path) {
          const map_reader s(diag_, item, item_path, variant_keys);
          if (!s.is_map()) return;
          m::rate_entry v;
          v.model = parent.model;
          v.regions = parent.regions;
          v.scope = parent.scope;
          v.effective_from = parent.effective_from;
          v.effective_to = parent.effective_to;
          v.location = location(item.Mark());
          bool ok = read_selectors(s, v);
          if (s.get("tier") == nullptr && s.get("latency") == nullptr &&
              s.get("batch") == nullptr) {
            diag_.error(
                s.mark(), item_path,
                "a variant must set 'tier', 'latency' or 'batch'; otherwise it is the entry "
                "itself");
            ok = false;
          }
          ok &= read_all_rates(s, v);
          v.source = parent.source;
          ok &= absent_or(s.read_string("source", v.source, text_rule::non_empty), s, "source");
          if (ok && parent_ok) out.emplace_back(std::move(v), meta_at(item.Mark(), item_path));
        });
  }

  bool read_selectors(const map_reader& s, m::rate_entry& e) {
    bool ok = absent_or(s.read_enum("tier", tiers, e.tier, text_rule::non_empty), s, "tier");
    ok &=
        absent_or(s.read_enum("latency", latencies, e.latency, text_rule::non_empty), s, "latency");
    ok &= absent_or(s.read_bool("batch", e.batch, bool_wording::quoted_type), s, "batch");
    return ok;
  }

  bool read_rates(const map_reader& s, m::token_rates& r) {
    const auto in = read_price(s, "input", true);
    const auto out = read_price(s, "output", true);
    bool ok = in.has_value() && out.has_value();
    if (in) r.input = *in;
    if (out) r.output = *out;
    // Optional rates: a missing cache rate falls back to the input rate; a missing speech rate
    // leaves speech tokens unpriced (metering/rate_table.hpp).
    using optional_rate = std::pair<std::string_view, std::optional<m::rate_micro_per_m>*>;
    for (const auto& [key, dest] : {optional_rate{"cache_read", &r.cache_read},
                                    optional_rate{"cache_write_5m", &r.cache_write_5m},
                                    optional_rate{"cache_write_1h", &r.cache_write_1h},
                                    optional_rate{"speech_input", &r.speech_input},
                                    optional_rate{"speech_output", &r.speech_output}}) {
      if (s.get(key) == nullptr) continue;
      *dest = read_price(s, key, false);
      ok &= dest->has_value();
    }
    return ok;
  }

  bool read_all_rates(const map_reader& s, m::rate_entry& e) {
    bool ok = read_rates(s, e.rates);
    const map_entry* lc = s.get("long_context");
    if (lc == nullptr) return ok;
    if (lc->value.IsNull()) {
      s.error(*lc,
              "'long_context' is empty; give above_input_tokens, input and output, or remove it");
      return false;
    }
    const map_reader l(diag_, lc->value, s.path_of("long_context"), long_context_keys);
    if (!l.is_map()) return false;
    ok &= read_threshold(l, e);
    ok &= read_rates(l, e.long_context_rates);
    return ok;
  }

  bool read_threshold(const map_reader& l, m::rate_entry& e) {
    const map_entry* t = l.get("above_input_tokens");
    if (t == nullptr) {
      l.missing("above_input_tokens");
      return false;
    }
    const std::string text = t->value.IsScalar() ? t->value.Scalar() : std::string();
    const auto v = parse_uint(text);
    if (!v) {
      l.error(*t, "expected a whole number of input tokens (e.g. 200000), got '" + text + "'");
      return false;
    }
    if (*v == 0) {
      l.error(*t,
              "must be greater than 0: a threshold of 0 would apply the long-context rates "
              "to every request (put those rates in the entry itself instead)");
      return false;
    }
    e.long_context_threshold = *v;
    return true;
  }

  bool read_regions(const map_reader& s, std::vector<std::string>& out) {
    const map_entry* f = s.get("regions");
    if (f == nullptr) {
      diag_.error(s.mark(), s.path_of("regions"),
                  "missing required key 'regions'; add 'regions: [\"*\"]' for every region, or " +
                      std::string("list the billed regions, e.g. [us-east-1, us-west-2]"));
      return false;
    }
    if (!f->value.IsSequence() || f->value.size() == 0) {
      s.error(*f, "expected a list of regions, e.g. [\"*\"] or [us-east-1, us-west-2], got " +
                      std::string(f->value.IsSequence() ? "an empty list" : type_name(f->value)));
      return false;
    }
    bool ok = true;
    bool star = false;
    bool named = false;  // including rejected names: "*" plus a typo is still a mix
    s.for_each_item("regions", "regions", [&](const YAML::Node& item, const std::string& path) {
      const std::string* r = s.item_scalar(item, path, "a region name");
      ok &= r != nullptr;
      if (r == nullptr) return;
      named |= *r != "*";
      star |= *r == "*";
      std::string problem = *r == "*" ? std::string() : region_problem(*r);
      if (problem.empty() && std::find(out.begin(), out.end(), *r) != out.end()) {
        problem = "region '" + *r + "' is listed twice; remove one";
      }
      if (!problem.empty()) {
        diag_.error(item.Mark(), path, std::move(problem));
        ok = false;
        return;
      }
      out.push_back(*r);
    });
    if (star && named) {
      s.error(*f, "\"*\" means every region; do not combine it with named regions (named " +
                      std::string("regions belong in their own entry, which wins over \"*\")"));
      ok = false;
    }
    return ok;
  }

  // ---- the `provisioned` and `caching` sections ----

  /// A USD amount from the scalar's exact text, in pico-USD: more than 0, at most 6 decimals.
  std::optional<m::pico_usd> read_amount(const map_reader& s, std::string_view key, bool required,
                                         const amount_words& words) {
    const map_entry* f = s.get(key);
    if (f == nullptr) {
      if (required) {
        diag_.error(s.mark(), s.path_of(key),
                    "missing required price '" + std::string(key) + "'; add '" + std::string(key) +
                        ": \"...\"' (" + std::string(words.unit) + ")");
      }
      return std::nullopt;
    }
    const std::string* text = s.scalar(*f, "a price", words.hint);
    if (text == nullptr) return std::nullopt;
    if (auto problem = price_problem(key, *text, words); !problem.empty()) {
      s.error(*f, std::move(problem));
      return std::nullopt;
    }
    // micro-USD x 1e6 = pico-USD, exact: price_problem capped it at words.max_usd, far below
    // the ~9.2M USD a pico_usd holds.
    constexpr m::pico_usd micro_to_pico = 1'000'000;
    const m::rate_micro_per_m micro = *m::parse_rate_per_million(*text);
    if (micro == 0) {
      s.error(*f, "must be greater than 0 (" + std::string(words.unit) +
                      "); an unknown price is no row at all, never 0");
      return std::nullopt;
    }
    return micro * micro_to_pico;
  }

  /// A whole number of tokens from `min`; absent is fine unless `required`.
  template <typename T>
  bool read_tokens(const map_reader& s, std::string_view key, std::uint64_t min,
                   std::string_view hint, T& out, bool required) {
    if (s.get(key) == nullptr) {
      if (required) s.missing(key);
      return !required;
    }
    return s.read_uint(key, out, min, max_tokens, hint);
  }

  void parse_provisioned(const YAML::Node& node, const std::string& path, m::rate_table& table) {
    const map_reader s(diag_, node, path, provisioned_keys);
    if (!s.is_map()) return;
    m::provisioned_entry p;
    p.location = location(node.Mark());
    bool ok = read_model(s, p.model);
    ok &= read_regions(s, p.regions);
    ok &= read_model_unit(s, p);
    ok &= read_unit_prices(s, p.model_units);
    ok &= read_reservations(s, p.reserved);
    if (!has_items(s, "model_units") && !has_items(s, "reserved")) {
      diag_.error(s.mark(), path,
                  "a provisioned entry needs 'model_units' or 'reserved' (or both): without a "
                  "price there is nothing to compare on-demand spend with");
      ok = false;
    }
    if (!ok) return;
    table.provisioned.push_back(std::move(p));
    provisioned_metas_.push_back(meta_at(node.Mark(), path));
  }

  /// `model_unit`: what one unit carries. AWS does not publish it, so it is optional, but both
  /// counts and their source are required when it is given.
  bool read_model_unit(const map_reader& s, m::provisioned_entry& p) {
    const map_entry* f = s.get("model_unit");
    if (f == nullptr) return true;
    if (f->value.IsNull()) {
      s.error(*f, "'model_unit' is empty; give input_tpm, output_tpm and source, or remove it");
      return false;
    }
    const map_reader u(diag_, f->value, s.path_of("model_unit"), model_unit_keys);
    if (!u.is_map()) return false;
    std::uint64_t in = 0;
    std::uint64_t out = 0;
    bool ok = read_tokens(u, "input_tpm", 1, positive_tpm_hint, in, true);
    ok &= read_tokens(u, "output_tpm", 1, positive_tpm_hint, out, true);
    ok &= u.read_string("source", p.capacity_source, text_rule::required);
    if (ok) {
      p.unit_input_tpm = in;
      p.unit_output_tpm = out;
    }
    return ok;
  }

  /// `model_units`: the hourly price of one unit, at most one per term.
  bool read_unit_prices(const map_reader& s, std::vector<m::model_unit_price>& out) {
    bool ok = true;
    std::vector<std::pair<m::commitment_term, int>> seen;  // term, line
    s.for_each_item("model_units", "model-unit prices",
                    [&](const YAML::Node& item, const std::string& item_path) {
                      const map_reader u(diag_, item, item_path, unit_price_keys);
                      if (!u.is_map()) {
                        ok = false;
                        return;
                      }
                      m::model_unit_price price;
                      bool item_ok =
                          u.read_enum("term", unit_terms, price.term, text_rule::required);
                      if (item_ok) item_ok = first_of_term(u, price.term, seen);
                      const auto hourly = read_amount(u, "hourly", true, hourly_price);
                      item_ok &= hourly.has_value();
                      if (hourly) price.hourly = *hourly;
                      item_ok &= u.read_string("source", price.source, text_rule::required);
                      if (item_ok) out.push_back(std::move(price));
                      ok &= item_ok;
                    });
    return ok;
  }

  /// False (reported at `term`) when an earlier item of the same list has this term.
  bool first_of_term(const map_reader& item, m::commitment_term term,
                     std::vector<std::pair<m::commitment_term, int>>& seen) {
    const map_entry* f = item.get("term");
    for (const auto& [t, line] : seen) {
      if (t != term) continue;
      item.error(*f, "term " + std::string(m::to_string(term)) +
                         " is listed twice in this entry (first at " + file_ + ":" +
                         std::to_string(line) + "); keep one price per term");
      return false;
    }
    seen.emplace_back(term, f->mark().line + 1);
    return true;
  }

  /// `reserved`: Reserved-tier prices, at most one per term and scope.
  bool read_reservations(const map_reader& s, std::vector<m::reserved_tier_price>& out) {
    bool ok = true;
    std::vector<std::pair<m::reserved_tier_price, int>> seen;  // with the term's line
    s.for_each_item("reserved", "Reserved-tier prices",
                    [&](const YAML::Node& item, const std::string& item_path) {
                      const map_reader r(diag_, item, item_path, reserved_keys);
                      if (!r.is_map()) {
                        ok = false;
                        return;
                      }
                      m::reserved_tier_price price;
                      bool item_ok =
                          r.read_enum("term", reserved_terms, price.term, text_rule::required);
                      item_ok &= read_reservation_scope(r, price);
                      item_ok &= read_reservation(r, price);
                      if (item_ok) item_ok = first_reservation(r, price, seen);
                      if (item_ok) out.push_back(std::move(price));
                      ok &= item_ok;
                    });
    return ok;
  }

  bool read_reservation_scope(const map_reader& r, m::reserved_tier_price& price) {
    if (m::inference_scope scope{}; r.read_enum("scope", scopes, scope, text_rule::non_empty)) {
      price.scope = scope;
      return true;
    }
    return r.get("scope") == nullptr;
  }

  /// The amounts, minimums and source of one Reserved-tier price.
  bool read_reservation(const map_reader& r, m::reserved_tier_price& price) {
    const auto in = read_amount(r, "input_per_1k_tpm_hour", true, tpm_hour_price);
    bool ok = in.has_value();
    if (in) price.input_per_1k_tpm_hour = *in;
    if (r.get("output_per_1k_tpm_hour") != nullptr) {
      price.output_per_1k_tpm_hour =
          read_amount(r, "output_per_1k_tpm_hour", false, tpm_hour_price);
      ok &= price.output_per_1k_tpm_hour.has_value();
    }
    ok &= read_tokens(r, "min_input_tpm", 0, tpm_hint, price.min_input_tpm, false);
    ok &= read_tokens(r, "min_output_tpm", 0, tpm_hint, price.min_output_tpm, false);
    ok &= r.read_string("source", price.source, text_rule::required);
    return ok;
  }

  bool first_reservation(const map_reader& r, const m::reserved_tier_price& price,
                         std::vector<std::pair<m::reserved_tier_price, int>>& seen) {
    const map_entry* f = r.get("term");
    for (const auto& [earlier, line] : seen) {
      if (!same_reservation(earlier, price)) continue;
      const auto scope_name = [](const m::reserved_tier_price& p) {
        return p.scope ? std::string(scopes.name_of(*p.scope)) : std::string("any");
      };
      r.error(*f, "term " + std::string(m::to_string(price.term)) + " (scope " + scope_name(price) +
                      ") overlaps the Reserved-tier price at " + file_ + ":" +
                      std::to_string(line) + " (scope " + scope_name(earlier) +
                      "); keep one price per term and scope");
      return false;
    }
    seen.emplace_back(price, f->mark().line + 1);
    return true;
  }

  void parse_caching(const YAML::Node& node, const std::string& path, m::rate_table& table) {
    const map_reader s(diag_, node, path, caching_keys);
    if (!s.is_map()) return;
    m::caching_rule c;
    c.location = location(node.Mark());
    bool ok = read_model(s, c.model);
    ok &= read_tokens(s, "min_prefix_tokens", 1, prefix_hint, c.min_prefix_tokens, true);
    ok &= absent_or(s.read_bool("ttl_1h", c.ttl_1h, bool_wording::quoted_type), s, "ttl_1h");
    ok &= s.read_string("source", c.source, text_rule::required);
    if (!ok) return;
    table.caching.push_back(std::move(c));
    caching_metas_.push_back(meta_at(node.Mark(), path));
  }

  /// Two provisioned entries for one model and region would make the price depend on file order.
  void check_provisioned_duplicates(const m::rate_table& table) {
    const auto& p = table.provisioned;
    for (std::size_t j = 1; j < p.size(); ++j) {
      for (std::size_t i = 0; i < j; ++i) {
        if (p[i].model != p[j].model) continue;
        const auto region = shared_region(p[i].regions, p[j].regions);
        if (!region) continue;
        diag_.error(mark_at(provisioned_metas_[j]), provisioned_metas_[j].path,
                    "duplicate: " + provisioned_metas_[i].path + " at " + p[i].location +
                        " already prices capacity for " + p[j].model + " in region " + *region +
                        "; merge the two entries or give them different regions");
        break;  // one report per row is enough
      }
    }
  }

  void check_caching_duplicates(const m::rate_table& table) {
    const auto& c = table.caching;
    for (std::size_t j = 1; j < c.size(); ++j) {
      for (std::size_t i = 0; i < j; ++i) {
        if (c[i].model != c[j].model) continue;
        diag_.error(mark_at(caching_metas_[j]), caching_metas_[j].path,
                    "duplicate: " + caching_metas_[i].path + " at " + c[i].location +
                        " already gives the caching facts of " + c[j].model +
                        "; keep one rule per model");
        break;
      }
    }
  }

  /// Legal but probably a typo: reported as warnings.
  void suspicious(const m::rate_entry& e, const row_meta& meta) {
    const YAML::Mark mark = mark_at(meta);
    const auto check = [&](const m::token_rates& r, std::string_view what) {
      if (r.input == 0 && r.output == 0) {
        diag_.warn(mark, meta.path,
                   std::string(what) + "input and output are both 0: requests for " + e.model +
                       " will cost nothing; if the price is unknown, remove the entry so they " +
                       "count as unpriced");
      } else if (r.output > 0 && r.output * 10 < r.input) {
        diag_.warn(mark, meta.path,
                   std::string(what) + "output is priced more than 10x below input; check the " +
                       "two are not swapped");
      }
      if (r.cache_read && *r.cache_read > r.input) {
        diag_.warn(mark, meta.path,
                   std::string(what) + "cache_read is dearer than input; cache reads are " +
                       "normally a fraction of the input price");
      }
    };
    check(e.rates, "");
    if (e.long_context_threshold) check(e.long_context_rates, "long_context: ");
  }

  /// Two rows that would both match one request make the price depend on file order.
  void check_duplicates(const m::rate_table& table) {
    for (std::size_t j = 1; j < table.entries.size(); ++j) {
      const auto& b = table.entries[j];
      for (std::size_t i = 0; i < j; ++i) {
        const auto& a = table.entries[i];
        if (!same_selectors(a, b)) continue;
        const auto region = shared_region(a.regions, b.regions);
        if (!region || !dates_overlap(a, b)) continue;
        const std::string scope = a.scope ? std::string(scopes.name_of(*a.scope)) : "any";
        diag_.error(mark_at(metas_[j]), metas_[j].path,
                    "duplicate: " + metas_[i].path + " at " + a.location + " already prices " +
                        b.model + " in region " + *region + " (scope " + scope + ", tier " +
                        std::string(tiers.name_of(b.tier)) + ", latency " +
                        std::string(latencies.name_of(b.latency)) + ", batch " +
                        (b.batch ? "true" : "false") +
                        ") with overlapping effective dates; remove one, or give them " +
                        "effective dates that do not overlap");
        break;  // one report per row is enough
      }
    }
  }

  diagnostics diag_;
  std::string file_;
  std::string source_path_;
  std::vector<row_meta> metas_;              // parallel to table.entries
  std::vector<row_meta> provisioned_metas_;  // parallel to table.provisioned
  std::vector<row_meta> caching_metas_;      // parallel to table.caching
};

}  // namespace

std::span<const std::string_view> bedrock_regions() noexcept { return known_regions; }

bool is_bedrock_region(std::string_view region) noexcept {
  return std::find(known_regions.begin(), known_regions.end(), region) != known_regions.end();
}

std::string base_model_problem(const std::string& model) { return model_problem(model); }

rate_table_result load_rate_table_string(std::string_view yaml, std::string_view file_name) {
  loader l{std::string(file_name), std::string(file_name)};
  return l.run(yaml);
}

rate_table_result load_rate_table_file(const std::string& path) {
  text_file file = read_text_file(path, "rate table");
  if (file.error) {
    rate_table_result r;
    r.errors.push_back(std::move(*file.error));
    return r;
  }
  loader l{path, file.absolute.string()};
  return l.run(file.text);
}

}  // namespace bedrock_meter::config
