#include "billing/cur.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>

#include "billing/price_list.hpp"

namespace bedrock_meter::billing {

// ---- CSV ----

void csv_reader::feed(std::string_view bytes) {
  for (const char c : bytes) {
    if (quoted_) {
      if (quote_seen_) {
        quote_seen_ = false;
        if (c == '"') {
          field_ += '"';  // "" inside quotes
          continue;
        }
        quoted_ = false;  // the closing quote; c is read as outside quotes below
      } else if (c == '"') {
        quote_seen_ = true;
        continue;
      } else {
        field_ += c;
        continue;
      }
    }
    if (c == '"' && field_.empty()) {
      quoted_ = true;
      any_ = true;
    } else if (c == ',') {
      end_field();
      any_ = true;
    } else if (c == '\n') {
      end_record();
    } else if (c != '\r') {
      field_ += c;
      any_ = true;
    }
  }
}

void csv_reader::finish() {
  if (quoted_ && quote_seen_) quoted_ = quote_seen_ = false;
  end_record();
}

void csv_reader::end_field() {
  record_.push_back(std::move(field_));
  field_.clear();
}

void csv_reader::end_record() {
  if (!any_ && field_.empty() && record_.empty()) return;  // blank line
  end_field();
  fn_(record_);
  record_.clear();
  any_ = false;
}

// ---- model names and regions ----

namespace {

/// The words and numbers of a name, lower-cased and sorted: "Claude Sonnet 4.6" and
/// "Claude4.6Sonnet" both give [4, 6, claude, sonnet].
std::vector<std::string> name_tokens(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  int kind = 0;  // 1 letters, 2 digits
  const auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    const int k = std::isalpha(c) ? 1 : std::isdigit(c) ? 2 : 0;
    if (k != kind || k == 0) flush();
    kind = k;
    if (k == 1) {
      // A capital after a lower-case letter starts a word: "NovaPro" is nova + pro.
      if (!cur.empty() && std::isupper(c) && std::islower(static_cast<unsigned char>(cur.back())))
        flush();
      cur += static_cast<char>(c);
    } else if (k == 2) {
      cur += static_cast<char>(c);
    }
  }
  flush();
  // Lower-case every token now (the camel-case split needed the original case).
  for (auto& t : out)
    for (auto& ch : t) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::sort(out.begin(), out.end());
  return out;
}

struct code_region {
  std::string_view code, region;
};
// Billing codes of the usage-type prefix (aws-samples pricing-collector config; APS3 is left
// out: it is ap-southeast-3 there and ap-south-1 in other sources, so the region column decides).
constexpr std::array<code_region, 30> billing_codes{{
    {"USE1", "us-east-1"},      {"USE2", "us-east-2"},      {"USW1", "us-west-1"},
    {"USW2", "us-west-2"},      {"EUW1", "eu-west-1"},      {"EUW2", "eu-west-2"},
    {"EUW3", "eu-west-3"},      {"EUC1", "eu-central-1"},   {"EUC2", "eu-central-2"},
    {"EUN1", "eu-north-1"},     {"EUS1", "eu-south-1"},     {"EUS2", "eu-south-2"},
    {"APN1", "ap-northeast-1"}, {"APN2", "ap-northeast-2"}, {"APN3", "ap-northeast-3"},
    {"APS1", "ap-southeast-1"}, {"APS2", "ap-southeast-2"}, {"APS4", "ap-southeast-4"},
    {"APS5", "ap-southeast-5"}, {"APS6", "ap-southeast-6"}, {"APS7", "ap-southeast-7"},
    {"APE1", "ap-east-1"},      {"APE2", "ap-east-2"},      {"CAN1", "ca-central-1"},
    {"SAE1", "sa-east-1"},      {"MEC1", "me-central-1"},   {"ILC1", "il-central-1"},
    {"UGW1", "us-gov-west-1"},  {"UGE1", "us-gov-east-1"},  {"CAN2", "ca-west-1"},
}};

/// An exact decimal ("12.345", "1e-3" is not one) times 10^shift, rounded half up; nullopt when
/// not a non-negative decimal.
std::optional<std::uint64_t> scaled_decimal(std::string_view s, int shift) {
  std::uint64_t whole = 0;
  int decimals = -1;
  bool digits = false, round_up = false, dropped = false;
  for (const char c : s) {
    if (c == '.' && decimals < 0) {
      decimals = 0;
      continue;
    }
    if (c < '0' || c > '9') return std::nullopt;
    digits = true;
    if (decimals >= 0) {
      if (decimals == shift) {
        if (!dropped) round_up = c >= '5';
        dropped = true;
        continue;
      }
      ++decimals;
    }
    if (whole > (UINT64_MAX - 9) / 10) return std::nullopt;
    whole = whole * 10 + static_cast<unsigned>(c - '0');
  }
  if (!digits) return std::nullopt;
  for (int d = std::max(decimals, 0); d < shift; ++d) {
    if (whole > UINT64_MAX / 10) return std::nullopt;
    whole *= 10;
  }
  return whole + (round_up ? 1 : 0);
}

bool icontains(std::string_view hay, std::string_view needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         }) != hay.end();
}

std::optional<token_class> class_of(meter_kind k) {
  switch (k) {
    case meter_kind::input: return token_class::input;
    case meter_kind::output: return token_class::output;
    case meter_kind::cache_read: return token_class::cache_read;
    case meter_kind::cache_write_5m: return token_class::cache_write_5m;
    case meter_kind::cache_write_1h: return token_class::cache_write_1h;
    case meter_kind::speech_input: return token_class::speech_input;
    case meter_kind::speech_output: return token_class::speech_output;
    default: return std::nullopt;
  }
}

/// How many tokens one unit of `unit` is; 0 when the unit is not a token count.
std::uint64_t tokens_per_unit(std::string_view unit, std::string_view description) {
  if (icontains(unit, "1K tokens")) return 1000;
  if (icontains(unit, "1M tokens")) return 1'000'000;
  if (unit == "Units" && icontains(description, "million") && icontains(description, "token"))
    return 1'000'000;
  if (unit == "tokens" || unit == "Tokens") return 1;
  return 0;
}

constexpr std::string_view edition = " (Amazon Bedrock Edition)";

}  // namespace

std::string model_for_bill_name(std::string_view name,
                                std::span<const config::price_list_model> mapping) {
  std::string_view n = name;
  if (n.ends_with(edition)) n.remove_suffix(edition.size());
  const auto want = name_tokens(n);
  if (want.empty()) return {};
  std::string found;
  for (const auto& m : mapping) {
    if (name_tokens(m.name) != want) continue;
    if (!found.empty() && found != m.models.front()) return {};  // ambiguous
    found = m.models.front();
  }
  return found;
}

std::string_view region_of_billing_code(std::string_view code) {
  for (const auto& [c, r] : billing_codes)
    if (c == code) return r;
  return {};
}

// ---- CUR ----

/// Column positions: CUR 2.0 names, then the legacy CUR names.
struct cur_summer::columns {
  int product_code = -1, entity = -1, line_type = -1, usage_type = -1, start = -1, amount = -1,
      unit = -1, description = -1, cost = -1, rate = -1, region = -1, product_name = -1,
      product_map = -1;
};

cur_summer::cur_summer(std::span<const config::price_list_model> mapping)
    : mapping_(mapping), csv_([this](const std::vector<std::string>& rec) { on_record(rec); }) {}

void cur_summer::begin(std::string name) {
  file_ = std::move(name);
  header_seen_ = false;
  failed_ = false;
  cols_ = std::make_shared<columns>();
  csv_ = csv_reader([this](const std::vector<std::string>& rec) { on_record(rec); });
}

void cur_summer::end() {
  csv_.finish();
  if (!header_seen_ && !failed_) r_.errors.push_back(file_ + ": empty, not a CUR file");
}

void cur_summer::on_record(const std::vector<std::string>& rec) {
  if (failed_) return;
  if (!header_seen_) {
    header_seen_ = true;
    on_header(rec);
    return;
  }
  on_row(rec);
}

void cur_summer::on_header(const std::vector<std::string>& rec) {
  const auto find = [&](std::initializer_list<std::string_view> names) {
    for (std::size_t i = 0; i < rec.size(); ++i)
      for (auto n : names)
        if (rec[i] == n) return static_cast<int>(i);
    return -1;
  };
  auto& c = *cols_;
  c.usage_type = find({"line_item_usage_type", "lineItem/UsageType"});
  if (c.usage_type < 0) {
    r_.errors.push_back(file_ +
                        ": not a CUR file (no line_item_usage_type or lineItem/UsageType column)");
    failed_ = true;
    return;
  }
  struct required {
    int* at;
    std::string_view cur2, legacy;
  };
  const required need[] = {
      {&c.product_code, "line_item_product_code", "lineItem/ProductCode"},
      {&c.line_type, "line_item_line_item_type", "lineItem/LineItemType"},
      {&c.start, "line_item_usage_start_date", "lineItem/UsageStartDate"},
      {&c.amount, "line_item_usage_amount", "lineItem/UsageAmount"},
      {&c.unit, "pricing_unit", "pricing/unit"},
      {&c.cost, "line_item_unblended_cost", "lineItem/UnblendedCost"},
  };
  for (const auto& n : need) {
    *n.at = find({n.cur2, n.legacy});
    if (*n.at < 0) {
      r_.errors.push_back(file_ + ": missing column " + std::string(n.cur2) +
                          " (legacy CUR: " + std::string(n.legacy) + ")");
      failed_ = true;
    }
  }
  c.entity = find({"bill_billing_entity", "bill/BillingEntity"});
  c.description = find({"line_item_line_item_description", "lineItem/LineItemDescription"});
  c.rate = find({"line_item_unblended_rate", "lineItem/UnblendedRate"});
  c.region = find({"product_region_code", "product/regionCode", "product/region"});
  c.product_name = find({"product_product_name", "product_name", "product/ProductName"});
  c.product_map = find({"product"});
}

void cur_summer::skip(std::string reason, std::string_view usage_type) {
  auto& s = r_.skipped[std::move(reason)];
  if (s.first++ == 0) s.second = std::string(usage_type);
}

namespace {

/// The product name of a line: its own column, or CUR 2.0's product map (JSON in CSV exports).
std::string product_name_of(std::string_view column, std::string_view product_map) {
  if (!column.empty() || product_map.empty()) return std::string(column);
  boost::system::error_code ec;
  const auto v = boost::json::parse(product_map, ec);
  if (ec || !v.is_object()) return {};
  const auto* n = v.as_object().if_contains("product_name");
  return n != nullptr && n->is_string() ? std::string(n->get_string()) : std::string();
}

}  // namespace

const cur_summer::usage_type_info& cur_summer::classified(std::string_view usage_type) {
  auto it = usage_types_.find(std::string(usage_type));
  if (it != usage_types_.end()) return it->second;
  const bool mp_shape = usage_type.find("-MP:") != std::string_view::npos;
  usage_type_info info{
      classify_usage_type(mp_shape ? "AmazonBedrockFoundationModels" : "AmazonBedrock", usage_type),
      {}};
  info.model_key = std::string(info.c.model_key);  // the view points into this line
  info.c.model_key = {};
  return usage_types_.emplace(std::string(usage_type), std::move(info)).first->second;
}

const std::string& cur_summer::model_of(const std::string& name) {
  auto it = models_by_name_.find(name);
  if (it == models_by_name_.end())
    it = models_by_name_.emplace(name, model_for_bill_name(name, mapping_)).first;
  return it->second;
}

/// Whether a line is Bedrock usage to compare: the two model offers, or the Marketplace form
/// (another product code, billed by AWS Marketplace, a Bedrock product name). Guardrails,
/// Knowledge Bases and AgentCore count as Bedrock lines not compared.
bool cur_summer::is_model_usage(std::string_view code, std::string_view entity,
                                std::string_view line_type, std::string_view usage_type,
                                const std::function<const std::string&()>& product_name) {
  if (code != "AmazonBedrock" && code != "AmazonBedrockFoundationModels") {
    if (code == "AmazonBedrockService" || code == "AmazonBedrockAgentCore") {
      ++r_.bedrock_rows;
      skip("not model inference (" + std::string(code) + ")", usage_type);
      return false;
    }
    if (entity != "AWS Marketplace" || product_name().find("Bedrock") == std::string::npos)
      return false;
  }
  if (line_type != "Usage" && line_type != "DiscountedUsage" &&
      line_type != "SavingsPlanCoveredUsage")
    return false;
  ++r_.bedrock_rows;
  return true;
}

void cur_summer::on_row(const std::vector<std::string>& rec) {
  ++r_.rows;
  const auto& c = *cols_;
  const auto at = [&](int i) -> std::string_view {
    return i >= 0 && static_cast<std::size_t>(i) < rec.size() ? std::string_view(rec[i])
                                                              : std::string_view();
  };
  const std::string_view usage_type = at(c.usage_type);
  // The product name is parsed only for the lines that need it (a JSON map in CUR 2.0).
  std::optional<std::string> product;
  const std::function<const std::string&()> product_name = [&]() -> const std::string& {
    if (!product) product = product_name_of(at(c.product_name), at(c.product_map));
    return *product;
  };
  if (!is_model_usage(at(c.product_code), at(c.entity), at(c.line_type), usage_type, product_name))
    return;

  const usage_type_info& info = classified(usage_type);
  if (!info.c.m) return skip(info.c.why_not, usage_type);
  const meter& m = *info.c.m;
  const auto tc = class_of(m.kind);
  if (!tc)
    return skip("capacity (Provisioned Throughput, Reserved tier): billed by the hour", usage_type);
  const std::string& name = info.model_key.empty() ? product_name() : info.model_key;
  const std::string& model = model_of(name);
  if (model.empty()) {
    return skip("model '" + name + "' matches no name of the model mapping (or several)",
                usage_type);
  }
  std::string region(at(c.region));
  if (region.empty()) region = region_of_billing_code(usage_type.substr(0, usage_type.find('-')));
  if (region.empty()) return skip("no region (no region column, unknown prefix)", usage_type);
  const std::uint64_t per_unit = tokens_per_unit(at(c.unit), at(c.description));
  if (per_unit == 0) {
    return skip("unit '" + std::string(at(c.unit)) + "' is not a token count", usage_type);
  }
  // Tokens: the amount in units, exact to 6 decimals, times the tokens per unit.
  const auto amount_micro = scaled_decimal(at(c.amount), 6);
  const auto cost_pico = scaled_decimal(at(c.cost), 12);
  const std::string_view start = at(c.start);
  if (!amount_micro || !cost_pico || start.size() < 10) {
    return skip("an amount, cost or date that is not a number or a date", usage_type);
  }
  usage_key key{std::string(start.substr(0, 10)),
                std::move(region),
                model,
                m.scope == metering::inference_scope::global ? "global" : "regional",
                std::string(metering::to_string(m.tier)),
                m.batch,
                m.latency == metering::latency_mode::optimized};
  add(key, *tc, (*amount_micro * per_unit + 500'000) / 1'000'000, *cost_pico);
  if (const auto rate = at(c.rate); !rate.empty()) {
    const normalised_price n = normalise_price(m.kind, at(c.unit), at(c.description), rate);
    if (n.micro) add_rate(std::move(key), *tc, *n.micro, usage_type);
  }
}

void cur_summer::add(const usage_key& key, token_class tc, std::uint64_t tokens,
                     std::uint64_t cost_pico) {
  if (!r_.first_day || key.day < *r_.first_day) r_.first_day = key.day;
  if (!r_.last_day || key.day > *r_.last_day) r_.last_day = key.day;
  auto& t = r_.bill[key];
  t.tokens[static_cast<std::size_t>(tc)] += tokens;
  t.cost += static_cast<metering::money_total>(cost_pico);
  ++r_.used_rows;
}

void cur_summer::add_rate(usage_key key, token_class tc, std::int64_t micro_per_m,
                          std::string_view usage_type) {
  key.day.clear();  // one unit price per group and class, whatever the day
  if (!rates_seen_.emplace(std::tuple(key, tc, micro_per_m), true).second) return;
  r_.rates.push_back({std::move(key), tc, micro_per_m, std::string(usage_type)});
}

}  // namespace bedrock_meter::billing
