// Reading Price List offers and assembling the rate table (billing/price_list.hpp).
#include "billing/price_list.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <deque>
#include <map>
#include <tuple>

#include "config/rate_table_loader.hpp"

namespace bedrock_meter::billing {

namespace {

namespace json = boost::json;
namespace m = metering;

/// One product of an offer with its on-demand price dimensions, whichever file shape it came in.
struct product {
  std::string offer;
  std::string version;
  std::string sku;
  const json::object* attributes = nullptr;
  const json::object* on_demand = nullptr;  ///< terms.OnDemand[sku]: offer term code -> term
};

std::string_view str(const json::object* o, std::string_view key) {
  if (o == nullptr) return {};
  const json::value* v = o->if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

const json::object* obj(const json::object* o, std::string_view key) {
  if (o == nullptr) return nullptr;
  const json::value* v = o->if_contains(key);
  return v != nullptr ? v->if_object() : nullptr;
}

/// The parsed documents stay alive, and in place, while their products point into them.
struct parsed_offers {
  std::deque<json::value> documents;
  std::vector<product> products;
};

/// Bulk file: {offerCode, version, products: {sku: {sku, attributes}}, terms: {OnDemand: {sku:
/// {...}}}}.
void read_bulk(const json::object& doc, std::vector<product>& out) {
  const json::object* products = obj(&doc, "products");
  const json::object* on_demand = obj(obj(&doc, "terms"), "OnDemand");
  for (const auto& [sku, p] : *products) {
    product row;
    row.offer = std::string(str(&doc, "offerCode"));
    row.version = std::string(str(&doc, "version"));
    row.sku = std::string(sku);
    row.attributes = obj(p.if_object(), "attributes");
    row.on_demand = obj(on_demand, sku);
    if (row.offer.empty()) row.offer = std::string(str(row.attributes, "servicecode"));
    out.push_back(std::move(row));
  }
}

/// GetProducts page: {PriceList: ["<product JSON>" | {...}, ...]}; each item {product: {sku,
/// attributes}, serviceCode, terms: {OnDemand: {...}}, version}.
bool read_page(const json::array& items, std::deque<json::value>& keep, std::vector<product>& out,
               std::string& error) {
  for (const auto& item : items) {
    const json::object* o = item.if_object();
    if (item.is_string()) {
      boost::system::error_code ec;
      keep.push_back(json::parse(item.get_string(), ec));
      if (ec) {
        error = "a PriceList item is not JSON: " + ec.message();
        return false;
      }
      o = keep.back().if_object();
    }
    if (o == nullptr) {
      error = "a PriceList item is neither a JSON object nor a string holding one";
      return false;
    }
    const json::object* p = obj(o, "product");
    product row;
    row.offer = std::string(str(o, "serviceCode"));
    row.version = std::string(str(o, "version"));
    row.sku = std::string(str(p, "sku"));
    row.attributes = obj(p, "attributes");
    if (const json::object* od = obj(obj(o, "terms"), "OnDemand")) {
      row.on_demand = od->contains(row.sku) ? obj(od, row.sku) : od;
    }
    if (row.offer.empty()) row.offer = std::string(str(row.attributes, "servicecode"));
    out.push_back(std::move(row));
  }
  return true;
}

/// Adds the products of one file; an error names the file when it is not an offer.
void read_offer(const offer_text& f, parsed_offers& into, std::vector<std::string>& errors) {
  boost::system::error_code ec;
  json::value doc = json::parse(f.json, ec);
  if (ec) {
    errors.push_back(f.name + ": not JSON (" + ec.message() + ")");
    return;
  }
  into.documents.push_back(std::move(doc));
  const json::object* o = into.documents.back().if_object();
  if (o != nullptr && obj(o, "products") != nullptr) {
    read_bulk(*o, into.products);
    return;
  }
  if (const json::value* list = o != nullptr ? o->if_contains("PriceList") : nullptr;
      list != nullptr && list->is_array()) {
    std::string error;
    if (!read_page(list->get_array(), into.documents, into.products, error)) {
      errors.push_back(f.name + ": " + error);
    }
    return;
  }
  errors.push_back(f.name +
                   ": not an AWS Price List offer (expected a bulk offer file with 'products' "
                   "and 'terms', or a GetProducts result with 'PriceList')");
}

/// The one price dimension of a product: [0, Inf) only.
struct dimension {
  std::string_view unit, description, usd, rate_code, effective;
  std::string why_not;
};
dimension only_dimension(const product& p) {
  dimension d;
  if (p.on_demand == nullptr) {
    d.why_not = "no OnDemand term";
    return d;
  }
  std::size_t count = 0;
  for (const auto& [code, term] : *p.on_demand) {
    const json::object* dims = obj(term.if_object(), "priceDimensions");
    if (dims == nullptr) continue;
    for (const auto& [rc, dim] : *dims) {
      const json::object* o = dim.if_object();
      ++count;
      d.unit = str(o, "unit");
      d.description = str(o, "description");
      d.usd = str(obj(o, "pricePerUnit"), "USD");
      d.rate_code = str(o, "rateCode");
      if (d.rate_code.empty()) d.rate_code = rc;
      d.effective = str(term.if_object(), "effectiveDate");
      const auto begin = str(o, "beginRange"), end = str(o, "endRange");
      if ((!begin.empty() && begin != "0") || (!end.empty() && end != "Inf")) {
        d.why_not = "a tiered price (range " + std::string(begin) + " to " + std::string(end) +
                    "); the rate table has one price per meter";
      }
    }
  }
  if (count == 0) d.why_not = "no price dimension";
  if (count > 1 && d.why_not.empty()) {
    d.why_not = "several price dimensions; the rate table has one price per meter";
  }
  if (d.why_not.empty() && d.usd.empty()) d.why_not = "no USD price";
  return d;
}

/// The model name the offer gives: `model` (or `titanModel`) in AmazonBedrock, `servicename`
/// without " (Amazon Bedrock Edition)" in AmazonBedrockFoundationModels.
std::string model_name(const product& p) {
  if (p.offer == "AmazonBedrock") {
    if (auto n = str(p.attributes, "model"); !n.empty()) return std::string(n);
    return std::string(str(p.attributes, "titanModel"));  // servicename is "Amazon Bedrock"
  }
  std::string_view n = str(p.attributes, "servicename");
  constexpr std::string_view edition = " (Amazon Bedrock Edition)";
  if (n.ends_with(edition)) n.remove_suffix(edition.size());
  return std::string(n);
}

const config::price_list_model* find_mapping(std::span<const config::price_list_model> mapping,
                                             std::string_view name, std::string_view offer) {
  const config::price_list_model* any = nullptr;
  for (const auto& m : mapping) {
    if (m.name != name) continue;
    if (m.offer == offer) return &m;
    if (m.offer.empty()) any = &m;
  }
  return any;
}

// ---- assembly ----

/// A price and where it came from.
struct priced {
  std::int64_t micro = 0;
  std::string provenance;  ///< "AmazonBedrock 2026..., USE1-..., SKU x, rate code y, effective d"
  std::string version;     ///< the offer's version (publication timestamp)
  std::string usage_type;
};

using entry_key = std::tuple<std::string, std::string, int, int, int, bool>;  // model, region,
                                                                              // scope, tier,
                                                                              // latency, batch
struct entry_slots {
  std::map<meter_kind, priced> normal, long_context;
  std::uint64_t long_context_above = 0;
  bool conflicted = false;
};
using capacity_key = std::pair<std::string, std::string>;  // model, region
struct capacity_slots {
  std::map<m::commitment_term, priced> model_units;
  /// (term, scope) -> input / output
  std::map<std::pair<m::commitment_term, int>, std::map<meter_kind, priced>> reserved;
};

int scope_code(const std::optional<m::inference_scope>& s) {
  return s ? static_cast<int>(*s) + 1 : 0;
}

std::string yaml_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + '"';
}

std::string_view scope_name(int code) {
  switch (code) {
    case 1: return "in_region";
    case 2: return "geo";
    case 3: return "global";
    default: return "";
  }
}

class assembler {
 public:
  assembler(std::span<const config::price_list_model> mapping, const import_options& opts,
            import_result& r)
      : mapping_(mapping), opts_(opts), r_(r) {}

  void add(const std::string& file, const product& p) {
    const std::string_view usage_type = str(p.attributes, "usagetype");
    if (usage_type.empty()) return;  // not a metered product (no usage type at all)
    const std::string region(str(p.attributes, "regionCode"));
    if (!opts_.regions.empty() && !region.empty() &&
        std::find(opts_.regions.begin(), opts_.regions.end(), region) == opts_.regions.end()) {
      return;
    }
    ++r_.rows_read;
    skipped_row s{file, p.offer, p.sku, std::string(usage_type), model_name(p), {}};
    const auto skip = [&](std::string why) {
      s.reason = std::move(why);
      r_.skipped.push_back(std::move(s));
    };
    const classification c = classify_usage_type(p.offer, usage_type);
    if (!c.m) return skip(c.why_not);
    if (region.empty()) return skip("no regionCode attribute");
    if (!config::is_bedrock_region(region)) {
      return skip("region '" + region + "' is not a Bedrock region this build knows");
    }
    if (s.model_name.empty()) return skip("no model name (model, titanModel or servicename)");
    const config::price_list_model* map = find_mapping(mapping_, s.model_name, p.offer);
    if (map == nullptr) {
      return skip("model '" + s.model_name +
                  "' is not in the model mapping; add it with the Bedrock model id it prices");
    }
    const dimension d = only_dimension(p);
    if (!d.why_not.empty()) return skip(d.why_not);
    const normalised_price n = normalise_price(c.m->kind, d.unit, d.description, d.usd);
    if (!n.micro) return skip(n.why_not);
    if (c.m->long_context && !map->long_context_above) {
      return skip("a long-context rate, but the mapping gives no long_context_above for '" +
                  s.model_name + "'");
    }
    priced price{*n.micro,
                 p.offer + " " + p.version + " " + std::string(usage_type) + " SKU " + p.sku +
                     " rate code " + std::string(d.rate_code) +
                     (d.effective.empty() ? "" : " effective " + std::string(d.effective)),
                 p.version, std::string(usage_type)};
    for (const auto& model : map->models) place(model, region, *c.m, *map, price, s);
  }

  void write() {
    std::string body;
    std::string newest;
    for (auto& [key, slots] : entries_) write_entry(key, slots, body, newest);
    std::string capacity;
    for (auto& [key, slots] : capacity_) write_capacity(key, slots, capacity, newest);
    if (r_.entries == 0 && r_.provisioned == 0) return;
    std::string out =
        "# GENERATED by `bedrock-meter rates import` from the AWS Price List; every price names\n"
        "# its offer, SKU, rate code and effective date. Format: docs/pricing.md.\n";
    const std::string version = "price-list-" + (newest.empty() ? std::string("unknown") : newest);
    out += "version: " + yaml_quote(version.substr(0, 64)) + "\n";
    out += "currency: USD\nunit: per_million_tokens\nentries:\n";
    out += body.empty() ? "  []\n" : body;
    if (!capacity.empty()) out += "provisioned:\n" + capacity;
    r_.yaml = std::move(out);
  }

 private:
  void place(const std::string& model, const std::string& region, const meter& mt,
             const config::price_list_model& map, const priced& p, skipped_row& s) {
    const auto conflict = [&](const priced& old) {
      if (old.micro == p.micro) return false;  // the same price in both offers: one row
      s.reason = "conflicts with " + old.usage_type + " (" + old.provenance + ") for " + model +
                 " in " + region + ": " + micro_usd_text(old.micro) + " vs " +
                 micro_usd_text(p.micro);
      r_.skipped.push_back(s);
      return true;
    };
    if (mt.kind == meter_kind::model_unit_hour) {
      auto& slots = capacity_[{model, region}];
      if (auto [it, fresh] = slots.model_units.emplace(mt.term, p); !fresh) conflict(it->second);
      return;
    }
    if (mt.kind == meter_kind::reserved_input || mt.kind == meter_kind::reserved_output) {
      auto& slots = capacity_[{model, region}];
      auto& side = slots.reserved[{mt.term, scope_code(mt.scope)}];
      if (auto [it, fresh] = side.emplace(mt.kind, p); !fresh) conflict(it->second);
      return;
    }
    entry_key key{model,
                  region,
                  scope_code(mt.scope),
                  static_cast<int>(mt.tier),
                  static_cast<int>(mt.latency),
                  mt.batch};
    auto& slots = entries_[key];
    if (mt.long_context) slots.long_context_above = *map.long_context_above;
    auto& into = mt.long_context ? slots.long_context : slots.normal;
    if (auto [it, fresh] = into.emplace(mt.kind, p); !fresh && conflict(it->second)) {
      slots.conflicted = true;
    }
  }

  void skip_entry(const entry_key& key, const entry_slots& slots, const std::string& why) {
    for (const auto* side : {&slots.normal, &slots.long_context}) {
      for (const auto& [kind, p] : *side) {
        r_.skipped.push_back({{}, {}, {}, p.usage_type, std::get<0>(key), why});
      }
    }
  }

  static void rates(const std::map<meter_kind, priced>& side, std::string_view indent,
                    std::string& out) {
    for (const auto& [kind, p] : side) {
      out += std::string(indent) + std::string(to_string(kind)) + ": " +
             yaml_quote(micro_usd_text(p.micro)) + "\n";
    }
  }

  /// "AWS Price List: input <provenance>; output ..." and the newest offer version seen.
  using labelled_side = std::pair<std::string_view, const std::map<meter_kind, priced>*>;
  static std::string provenance(std::initializer_list<labelled_side> sides, std::string& newest) {
    std::string s = "AWS Price List";
    char sep = ':';
    for (const auto& [prefix, side] : sides) {
      for (const auto& [kind, p] : *side) {
        s.append(1, sep).append(" ").append(prefix).append(to_string(kind));
        s.append(" ").append(p.provenance);
        newest = std::max(newest, p.version);
        sep = ';';
      }
    }
    return s;
  }

  void write_entry(const entry_key& key, const entry_slots& slots, std::string& out,
                   std::string& newest) {
    const auto& [model, region, scope, tier, latency, batch] = key;
    if (slots.conflicted) return skip_entry(key, slots, "left out: two prices for one meter");
    const auto has = [](const auto& side, meter_kind k) { return side.contains(k); };
    if (!has(slots.normal, meter_kind::input) || !has(slots.normal, meter_kind::output)) {
      return skip_entry(key, slots,
                        std::string("left out: the offers give no ") +
                            (has(slots.normal, meter_kind::input) ? "output" : "input") +
                            " price for this model, region and tier");
    }
    if (!slots.long_context.empty() && (!has(slots.long_context, meter_kind::input) ||
                                        !has(slots.long_context, meter_kind::output))) {
      return skip_entry(key, slots, "left out: long-context rates without both input and output");
    }
    out += "  - model: " + yaml_quote(model) + "\n    regions: [" + region + "]\n";
    if (scope != 0) out += "    scope: " + std::string(scope_name(scope)) + "\n";
    if (tier != 0) {
      out += "    tier: " + std::string(m::to_string(static_cast<m::service_tier>(tier))) + "\n";
    }
    if (latency != 0) out += "    latency: optimized\n";
    if (batch) out += "    batch: true\n";
    rates(slots.normal, "    ", out);
    if (!slots.long_context.empty()) {
      out += "    long_context:\n      above_input_tokens: " +
             std::to_string(slots.long_context_above) + "\n";
      rates(slots.long_context, "      ", out);
    }
    const std::string source =
        provenance({{"", &slots.normal}, {"long_context.", &slots.long_context}}, newest);
    out += "    source: " + yaml_quote(source) + "\n";
    ++r_.entries;
    r_.rows_priced += slots.normal.size() + slots.long_context.size();
  }

  void write_capacity(const capacity_key& key, const capacity_slots& slots, std::string& out,
                      std::string& newest) {
    std::string units, reserved;
    std::size_t rows = 0;
    for (const auto& [term, p] : slots.model_units) {
      units += "      - term: " + std::string(m::to_string(term)) +
               "\n        hourly: " + yaml_quote(micro_usd_text(p.micro)) +
               "\n        source: " + yaml_quote("AWS Price List: " + p.provenance) + "\n";
      newest = std::max(newest, p.version);
      ++rows;
    }
    for (const auto& [ts, sides] : slots.reserved) {
      const auto in = sides.find(meter_kind::reserved_input);
      if (in == sides.end()) {
        for (const auto& [kind, p] : sides) {
          r_.skipped.push_back({{},
                                {},
                                {},
                                p.usage_type,
                                key.first,
                                "left out: a Reserved-tier output price without its input price"});
        }
        continue;
      }
      reserved += "      - term: " + std::string(m::to_string(ts.first)) + "\n";
      if (ts.second != 0) reserved += "        scope: " + std::string(scope_name(ts.second)) + "\n";
      reserved +=
          "        input_per_1k_tpm_hour: " + yaml_quote(micro_usd_text(in->second.micro)) + "\n";
      const std::string source = provenance({{"", &sides}}, newest);
      if (const auto o = sides.find(meter_kind::reserved_output); o != sides.end()) {
        reserved +=
            "        output_per_1k_tpm_hour: " + yaml_quote(micro_usd_text(o->second.micro)) + "\n";
      }
      reserved += "        source: " + yaml_quote(source) + "\n";
      rows += sides.size();
    }
    if (units.empty() && reserved.empty()) return;
    out += "  - model: " + yaml_quote(key.first) + "\n    regions: [" + key.second + "]\n";
    if (!units.empty()) out += "    model_units:\n" + units;
    if (!reserved.empty()) out += "    reserved:\n" + reserved;
    ++r_.provisioned;
    r_.rows_priced += rows;
  }

  std::span<const config::price_list_model> mapping_;
  const import_options& opts_;
  import_result& r_;
  std::map<entry_key, entry_slots> entries_;
  std::map<capacity_key, capacity_slots> capacity_;
};

}  // namespace

import_result import_price_list(std::span<const offer_text> offers,
                                std::span<const config::price_list_model> mapping,
                                const import_options& opts) {
  import_result r;
  // Parse every file first: a file that is not an offer fails the import before anything else.
  std::vector<parsed_offers> parsed(offers.size());
  for (std::size_t i = 0; i < offers.size(); ++i) read_offer(offers[i], parsed[i], r.errors);
  if (!r.errors.empty()) return r;
  assembler a(mapping, opts, r);
  for (std::size_t i = 0; i < offers.size(); ++i) {
    for (const auto& p : parsed[i].products) a.add(offers[i].name, p);
  }
  a.write();
  return r;
}

}  // namespace bedrock_meter::billing
