// Classifying Price List usage types and normalising their prices (billing/price_list.hpp).
// The catalogue of usage-type spellings and units, with sources, is in docs/pricing.md ("Rates
// from the AWS Price List").
#include <algorithm>
#include <array>
#include <span>

#include "billing/price_list.hpp"

namespace bedrock_meter::billing {

namespace {

namespace m = metering;
using parts_t = std::vector<std::string_view>;

parts_t split(std::string_view s, char sep) {
  parts_t out;
  for (std::size_t start = 0;;) {
    const std::size_t at = s.find(sep, start);
    out.push_back(
        s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](char x, char y) { return (x | 0x20) == (y | 0x20); });
}

bool icontains(std::string_view hay, std::string_view needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                     [](char x, char y) { return (x | 0x20) == (y | 0x20); }) != hay.end();
}

/// parts[i..] starts with `head`.
bool starts_at(const parts_t& parts, std::size_t i, std::span<const std::string_view> head) {
  if (parts.size() - i < head.size()) return false;
  return std::equal(head.begin(), head.end(), parts.begin() + static_cast<std::ptrdiff_t>(i));
}

struct head {
  std::array<std::string_view, 5> words;
  std::size_t n;
  std::optional<meter_kind> kind;  ///< nullopt: recognised, but not priced per text token
  std::string_view why_not;
  std::span<const std::string_view> span() const { return {words.data(), n}; }
};

classification refuse(std::string why) { return {std::nullopt, std::move(why), {}}; }

constexpr std::string_view not_text_tokens =
    "not priced per text or speech token (image, video, search units and storage are outside "
    "the rate table)";

// ---- AmazonBedrock: <RC>-<ModelKey>-<meter>[-<qualifier>...], meter words in lowercase ----

constexpr std::array ab_heads{
    head{{"cache", "read", "input", "token", "count"}, 5, meter_kind::cache_read, {}},
    head{{"cache", "write", "input", "token", "count"}, 5, meter_kind::cache_write_5m, {}},
    head{{"cache", "read", "input", "tokens"}, 4, meter_kind::cache_read, {}},
    head{{"cache", "write", "input", "tokens"}, 4, meter_kind::cache_write_5m, {}},
    head{{"text", "input", "tokens"}, 3, meter_kind::input, {}},
    head{{"text", "output", "tokens"}, 3, meter_kind::output, {}},
    head{{"speech", "input", "tokens"}, 3, meter_kind::speech_input, {}},
    head{{"speech", "output", "tokens"}, 3, meter_kind::speech_output, {}},
    head{{"input", "image", "token", "count"}, 4, std::nullopt, not_text_tokens},
    head{{"input", "tokens"}, 2, meter_kind::input, {}},
    head{{"output", "tokens"}, 2, meter_kind::output, {}},
    head{{"ProvisionedThroughput"}, 1, meter_kind::model_unit_hour, {}},
};

/// The AB qualifiers after the meter words; false with `why` when one is not known.
bool ab_qualifiers(const parts_t& p, std::size_t i, meter& out, std::string& why) {
  const auto at = [&](std::initializer_list<std::string_view> w) {
    return starts_at(p, i, std::span<const std::string_view>(w.begin(), w.size()));
  };
  bool term_seen = false;
  while (i < p.size()) {
    const std::string_view w = p[i];
    if (out.kind == meter_kind::model_unit_hour) {
      if (w == "ModelUnits") {
        ++i;
      } else if (w == "NoCommit") {
        out.term = m::commitment_term::no_commit, term_seen = true, ++i;
      } else if (iequals(w, "1month") || iequals(w, "1months")) {
        out.term = m::commitment_term::one_month, term_seen = true, ++i;
      } else if (iequals(w, "6month") || iequals(w, "6months")) {
        out.term = m::commitment_term::six_months, term_seen = true, ++i;
      } else if (w == "Custom") {
        why = "Provisioned Throughput for a custom model (priced as its base model)";
        return false;
      } else {
        why = "unrecognised component '" + std::string(w) + "'";
        return false;
      }
      continue;
    }
    if (at({"cross", "region", "global"})) {
      out.scope = m::inference_scope::global, i += 3;
    } else if (at({"cross", "region"})) {
      out.scope = m::inference_scope::geo, i += 2;
    } else if (at({"latency", "optimized"})) {
      out.latency = m::latency_mode::optimized, i += 2;
    } else if (at({"custom", "model"})) {
      why = "a custom-model rate (custom models are priced through models.mappings)";
      return false;
    } else if (at({"long", "context"})) {
      out.long_context = true, i += 2;
    } else if (w == "global") {
      out.scope = m::inference_scope::global, ++i;
    } else if (w == "batch") {
      out.batch = true, ++i;
    } else if (w == "flex") {
      out.tier = m::service_tier::flex, ++i;
    } else if (w == "priority") {
      out.tier = m::service_tier::priority, ++i;
    } else if (w == "standard" || (w == "5m" && out.kind == meter_kind::cache_write_5m)) {
      ++i;  // the defaults: standard tier, 5-minute cache writes
    } else if (w == "1h" && out.kind == meter_kind::cache_write_5m) {
      out.kind = meter_kind::cache_write_1h, ++i;
    } else {
      why = "unrecognised component '" + std::string(w) + "'";
      return false;
    }
  }
  if (out.kind == meter_kind::model_unit_hour && !term_seen) {
    why = "Provisioned Throughput without a commitment term";
    return false;
  }
  return true;
}

classification classify_ab(std::string_view usage_type) {
  const std::size_t dash = usage_type.find('-');
  if (dash == std::string_view::npos) return refuse("no region code");
  const parts_t p = split(usage_type.substr(dash + 1), '-');
  // The model key may itself hold dashes (Llama3-1-405B, Gemma-3-4B-IT): the meter starts at
  // the first position where a whole meter head matches, and at least one word precedes it.
  for (std::size_t i = 1; i < p.size(); ++i) {
    for (const auto& h : ab_heads) {
      if (!starts_at(p, i, h.span())) continue;
      if (!h.kind) return refuse(std::string(h.why_not));
      meter out;
      out.kind = *h.kind;
      std::string why;
      if (!ab_qualifiers(p, i + h.n, out, why)) return refuse(std::move(why));
      const std::string_view rest = usage_type.substr(dash + 1);
      const auto key_size = static_cast<std::size_t>(p[i].data() - rest.data()) - 1;
      return {out, {}, rest.substr(0, key_size)};
    }
  }
  return refuse("not a token or capacity meter");
}

// ---- AmazonBedrockFoundationModels: <RC>-MP:<RC>_<dimension>-Units ----

struct fm_base {
  std::string_view word;
  std::optional<meter_kind> kind;
  bool batch = false;
};

// The legacy CamelCase generation: the dimension's first word.
constexpr std::array fm_legacy{
    fm_base{"InputTokenCount", meter_kind::input},
    fm_base{"OutputTokenCount", meter_kind::output},
    fm_base{"CacheReadInputTokenCount", meter_kind::cache_read},
    fm_base{"CacheWriteInputTokenCount", meter_kind::cache_write_5m},
    fm_base{"CacheWrite5mInputTokenCount", meter_kind::cache_write_5m},
    fm_base{"CacheWrite1hInputTokenCount", meter_kind::cache_write_1h},
    fm_base{"MillionBatchInputTokens", meter_kind::input, true},
};

/// Reserved_<1Month|3Month>_<InputTPM|OutputTPM>[_<Geo|Global>]
classification fm_reserved(const parts_t& p) {
  meter out;
  bool term = false, side = false;
  for (std::size_t i = 1; i < p.size(); ++i) {
    const std::string_view w = p[i];
    if (iequals(w, "1Month") || iequals(w, "1Months")) {
      out.term = m::commitment_term::one_month, term = true;
    } else if (iequals(w, "3Month") || iequals(w, "3Months")) {
      out.term = m::commitment_term::three_months, term = true;
    } else if (w == "InputTPM") {
      out.kind = meter_kind::reserved_input, side = true;
    } else if (w == "OutputTPM") {
      out.kind = meter_kind::reserved_output, side = true;
    } else if (w == "Geo") {
      out.scope = m::inference_scope::geo;
    } else if (w == "Global") {
      out.scope = m::inference_scope::global;
    } else {
      return refuse("unrecognised component '" + std::string(w) + "'");
    }
  }
  if (!term || !side) return refuse("a Reserved-tier row without its term or its token side");
  return {out, {}, {}};
}

/// ProvisionedThroughput_<NoCommit|1MonthCommit|6MonthsCommit>_ModelUnits_Usage
classification fm_provisioned(const parts_t& p) {
  meter out;
  out.kind = meter_kind::model_unit_hour;
  bool term = false;
  for (std::size_t i = 1; i < p.size(); ++i) {
    const std::string_view w = p[i];
    if (w == "NoCommit") {
      out.term = m::commitment_term::no_commit, term = true;
    } else if (w == "1MonthCommit" || w == "1MonthsCommit") {
      out.term = m::commitment_term::one_month, term = true;
    } else if (w == "6MonthCommit" || w == "6MonthsCommit") {
      out.term = m::commitment_term::six_months, term = true;
    } else if (w != "ModelUnits" && w != "Usage") {
      return refuse("unrecognised component '" + std::string(w) + "'");
    }
  }
  if (!term) return refuse("Provisioned Throughput without a commitment term");
  return {out, {}, {}};
}

/// A qualifier word of either generation; false when unknown.
bool fm_qualifier(std::string_view w, meter& out) {
  if (iequals(w, "global")) {
    out.scope = m::inference_scope::global;
  } else if (iequals(w, "geo")) {
    out.scope = m::inference_scope::geo;
  } else if (iequals(w, "regional") || iequals(w, "standard")) {
    // Regional is the in-region and geographic-profile price; standard is the default tier.
  } else if (iequals(w, "batch")) {
    out.batch = true;
  } else if (iequals(w, "priority")) {
    out.tier = m::service_tier::priority;
  } else if (iequals(w, "flex")) {
    out.tier = m::service_tier::flex;
  } else if (w == "LatencyOptimized") {
    out.latency = m::latency_mode::optimized;
  } else if (w == "LCtx") {
    out.long_context = true;
  } else {
    return false;
  }
  return true;
}

classification fm_dimension(const parts_t& p) {
  if (p.empty() || p[0].empty()) return refuse("an empty dimension");
  if (p[0] == "Reserved") return fm_reserved(p);
  if (p[0] == "ProvisionedThroughput") return fm_provisioned(p);
  meter out;
  std::size_t i = 0;
  if (const auto* b = std::find_if(fm_legacy.begin(), fm_legacy.end(),
                                   [&](const fm_base& x) { return x.word == p[0]; });
      b != fm_legacy.end()) {
    out.kind = *b->kind;
    out.batch = b->batch;
    i = 1;
  } else {
    // The current snake_case generation: input_tokens, output_tokens, cache_read_tokens,
    // cache_write_tokens[_1h|_5m].
    const auto at = [&](std::initializer_list<std::string_view> w) {
      return starts_at(p, 0, std::span<const std::string_view>(w.begin(), w.size()));
    };
    if (at({"input", "tokens"})) {
      out.kind = meter_kind::input, i = 2;
    } else if (at({"output", "tokens"})) {
      out.kind = meter_kind::output, i = 2;
    } else if (at({"cache", "read", "tokens"})) {
      out.kind = meter_kind::cache_read, i = 3;
    } else if (at({"cache", "write", "tokens"})) {
      out.kind = meter_kind::cache_write_5m, i = 3;
    } else {
      return refuse(std::string(not_text_tokens));
    }
  }
  for (; i < p.size(); ++i) {
    const std::string_view w = p[i];
    if (w == "1h" && out.kind == meter_kind::cache_write_5m) {
      out.kind = meter_kind::cache_write_1h;
    } else if (w == "5m" && out.kind == meter_kind::cache_write_5m) {
    } else if (w == "30m") {
      return refuse("a 30-minute cache TTL (the rate table has 5-minute and 1-hour writes)");
    } else if (w == "long" && i + 1 < p.size() && p[i + 1] == "ctx") {
      out.long_context = true, ++i;
    } else if (!fm_qualifier(w, out)) {
      return refuse("unrecognised component '" + std::string(w) + "'");
    }
  }
  return {out, {}, {}};
}

classification classify_fm(std::string_view usage_type) {
  const std::size_t mp = usage_type.find("-MP:");
  if (mp == std::string_view::npos) return refuse("not a Marketplace usage type (no '-MP:')");
  std::string_view dim = usage_type.substr(mp + 4);
  const std::size_t underscore = dim.find('_');
  if (underscore == std::string_view::npos) return refuse("no region code before the dimension");
  dim.remove_prefix(underscore + 1);
  if (dim.ends_with("-Units")) dim.remove_suffix(6);
  if (dim.find('-') != std::string_view::npos) return refuse("an unexpected '-' in the dimension");
  if (dim.starts_with("CacheWrite30m")) {
    return refuse("a 30-minute cache TTL (the rate table has 5-minute and 1-hour writes)");
  }
  return fm_dimension(split(dim, '_'));
}

// -Wpedantic refuses the GCC/Clang builtin otherwise (as in metering/money.hpp).
__extension__ using u128 = unsigned __int128;

/// An exact non-negative decimal: digits[.digits].
struct decimal {
  u128 mantissa = 0;
  int scale = 0;
};
std::optional<decimal> parse_decimal(std::string_view s) {
  decimal d;
  bool digits = false, dot = false;
  for (char c : s) {
    if (c == '.' && !dot) {
      dot = true;
    } else if (c >= '0' && c <= '9') {
      if (d.mantissa > (static_cast<u128>(1) << 100)) return std::nullopt;
      d.mantissa = d.mantissa * 10 + static_cast<unsigned>(c - '0');
      digits = true;
      if (dot) ++d.scale;
    } else {
      return std::nullopt;
    }
  }
  if (!digits || d.scale > 24) return std::nullopt;
  return d;
}

u128 pow10(int n) {
  u128 r = 1;
  while (n-- > 0) r *= 10;
  return r;
}

}  // namespace

std::string micro_usd_text(std::int64_t micro) {
  std::string frac = std::to_string(micro % 1'000'000);
  frac.insert(0, 6 - frac.size(), '0');
  while (frac.size() > 2 && frac.back() == '0') frac.pop_back();
  return std::to_string(micro / 1'000'000) + "." + frac;
}

std::string_view to_string(meter_kind k) noexcept {
  switch (k) {
    case meter_kind::input: return "input";
    case meter_kind::output: return "output";
    case meter_kind::cache_read: return "cache_read";
    case meter_kind::cache_write_5m: return "cache_write_5m";
    case meter_kind::cache_write_1h: return "cache_write_1h";
    case meter_kind::speech_input: return "speech_input";
    case meter_kind::speech_output: return "speech_output";
    case meter_kind::model_unit_hour: return "model_unit_hour";
    case meter_kind::reserved_input: return "reserved_input";
    case meter_kind::reserved_output: return "reserved_output";
  }
  return "?";
}

classification classify_usage_type(std::string_view offer, std::string_view usage_type) {
  if (offer == "AmazonBedrockFoundationModels") return classify_fm(usage_type);
  if (offer == "AmazonBedrock") {
    // Legacy Claude rows of the AmazonBedrock offer may use the Marketplace spelling too.
    if (usage_type.find("-MP:") != std::string_view::npos) return classify_fm(usage_type);
    return classify_ab(usage_type);
  }
  return refuse("offer '" + std::string(offer) + "' carries no model token prices");
}

normalised_price normalise_price(meter_kind kind, std::string_view unit,
                                 std::string_view description, std::string_view usd) {
  // How many of the unit make the rate table's unit (1M tokens, or one hour).
  unsigned factor = 0;
  switch (kind) {
    case meter_kind::model_unit_hour:
      if (iequals(unit, "Hrs") || iequals(unit, "Hour") || iequals(unit, "Hours") ||
          (iequals(unit, "Units") && icontains(description, "hour"))) {
        factor = 1;
      }
      break;
    case meter_kind::reserved_input:
    case meter_kind::reserved_output:
      if (iequals(unit, "1K TPM Hour")) factor = 1;
      break;
    default:
      if (iequals(unit, "1K tokens")) {
        factor = 1000;
      } else if (iequals(unit, "1M tokens") ||
                 (iequals(unit, "Units") && icontains(description, "million") &&
                  icontains(description, "token"))) {
        factor = 1;
      }
  }
  if (factor == 0) {
    return {std::nullopt, "unit '" + std::string(unit) + "' is not one this importer knows for " +
                              std::string(to_string(kind)) + " (description: '" +
                              std::string(description) + "')"};
  }
  const auto d = parse_decimal(usd);
  if (!d) return {std::nullopt, "price '" + std::string(usd) + "' is not a decimal"};
  const u128 scaled = d->mantissa * factor * 1'000'000;
  const u128 den = pow10(d->scale);
  if (scaled % den != 0) {
    return {std::nullopt, "price " + std::string(usd) + " per " + std::string(unit) +
                              " is finer than the rate table's 6 decimals"};
  }
  const u128 micro = scaled / den;
  if (micro == 0) return {std::nullopt, "price 0 (an unknown price is no row, never 0)"};
  if (micro > static_cast<u128>(INT64_MAX / 1'000'000)) {
    return {std::nullopt, "price " + std::string(usd) + " is out of range"};
  }
  return {static_cast<std::int64_t>(micro), {}};
}

}  // namespace bedrock_meter::billing
