#include "billing/rates_diff.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

#include "billing/price_list.hpp"

namespace bedrock_meter::billing {

namespace {

namespace m = metering;

/// Field -> micro-USD (a long-context threshold is kept as a count of tokens).
using fields = std::map<std::string, std::int64_t>;
/// One row: the regions it lists ("*" included) and its prices.
using region_row = std::pair<std::vector<std::string>, fields>;
/// (model, what else selects the row) -> its rows, by the regions they list.
using table_rows = std::map<std::pair<std::string, std::string>, std::vector<region_row>>;

std::string day_text(const std::optional<std::chrono::sys_days>& d) {
  if (!d) return {};
  const std::chrono::year_month_day ymd(*d);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

std::string selector(const m::rate_entry& e) {
  std::string s;
  if (e.scope) s += " scope=" + std::string(m::to_string(*e.scope));
  if (e.tier != m::service_tier::standard) s += " tier=" + std::string(m::to_string(e.tier));
  if (e.latency != m::latency_mode::standard) s += " latency=optimized";
  if (e.batch) s += " batch";
  if (e.effective_from) s += " from=" + day_text(e.effective_from);
  if (e.effective_to) s += " to=" + day_text(e.effective_to);
  return s;
}

void put_rates(const m::token_rates& r, const std::string& prefix, fields& out) {
  // An entry always has input and output; long-context rates leave unset ones at 0.
  if (r.input != 0 || prefix.empty()) out[prefix + "input"] = r.input;
  if (r.output != 0 || prefix.empty()) out[prefix + "output"] = r.output;
  if (r.cache_read) out[prefix + "cache_read"] = *r.cache_read;
  if (r.cache_write_5m) out[prefix + "cache_write_5m"] = *r.cache_write_5m;
  if (r.cache_write_1h) out[prefix + "cache_write_1h"] = *r.cache_write_1h;
  if (r.speech_input) out[prefix + "speech_input"] = *r.speech_input;
  if (r.speech_output) out[prefix + "speech_output"] = *r.speech_output;
}

table_rows rows_of(const m::rate_table& t) {
  table_rows out;
  for (const auto& e : t.entries) {
    fields f;
    put_rates(e.rates, "", f);
    if (e.long_context_threshold) {
      f["long_context.above_input_tokens"] = static_cast<std::int64_t>(*e.long_context_threshold);
      put_rates(e.long_context_rates, "long_context.", f);
    }
    out[{e.model, selector(e)}].emplace_back(e.regions, std::move(f));
  }
  for (const auto& p : t.provisioned) {
    fields f;
    for (const auto& u : p.model_units) {
      f["model_units." + std::string(m::to_string(u.term)) + ".hourly"] = u.hourly / 1'000'000;
    }
    for (const auto& r : p.reserved) {
      const std::string k = "reserved." + std::string(m::to_string(r.term)) +
                            (r.scope ? "." + std::string(m::to_string(*r.scope)) : "");
      f[k + ".input_per_1k_tpm_hour"] = r.input_per_1k_tpm_hour / 1'000'000;
      if (r.output_per_1k_tpm_hour) {
        f[k + ".output_per_1k_tpm_hour"] = *r.output_per_1k_tpm_hour / 1'000'000;
      }
    }
    out[{p.model, " provisioned"}].emplace_back(p.regions, std::move(f));
  }
  return out;
}

/// The row that applies in `region` as the pricer chooses (a row naming the region before one
/// listing "*"), and whether it names the region.
struct resolved {
  const fields* f = nullptr;
  bool exact = false;
};
resolved resolve(const std::vector<region_row>* rows, const std::string& region) {
  resolved r;
  if (rows == nullptr) return r;
  for (const auto& [regions, f] : *rows) {
    const bool listed = std::find(regions.begin(), regions.end(), region) != regions.end();
    const bool star = std::find(regions.begin(), regions.end(), "*") != regions.end();
    if (listed && region != "*") return {&f, true};
    if (star && r.f == nullptr) r.f = &f;
  }
  return r;
}

void compare(const std::string& row, const fields* a, const fields* b,
             std::vector<price_change>& out) {
  using kind = price_change::kind;
  std::map<std::string, std::pair<std::optional<std::int64_t>, std::optional<std::int64_t>>> all;
  if (a != nullptr) {
    for (const auto& [f, v] : *a) all[f].first = v;
  }
  if (b != nullptr) {
    for (const auto& [f, v] : *b) all[f].second = v;
  }
  for (const auto& [f, v] : all) {
    if (v.first == v.second) continue;
    const kind k = !v.first ? kind::added : !v.second ? kind::removed : kind::changed;
    out.push_back({k, row, f, v.first, v.second});
  }
}

}  // namespace

std::vector<price_change> diff_rate_tables(const m::rate_table& before,
                                           const m::rate_table& after) {
  const table_rows a = rows_of(before), b = rows_of(after);
  std::map<std::pair<std::string, std::string>, int> keys;
  for (const auto& [k, rows] : a) keys[k] = 0;
  for (const auto& [k, rows] : b) keys[k] = 0;
  std::vector<price_change> out;
  for (const auto& [key, unused] : keys) {
    const auto ia = a.find(key), ib = b.find(key);
    const auto* ra = ia == a.end() ? nullptr : &ia->second;
    const auto* rb = ib == b.end() ? nullptr : &ib->second;
    // Every region either table names for this row, "*" first: a region is compared where at
    // least one side names it; where both fall back to "*", the "*" comparison covers it.
    std::vector<std::string> regions{"*"};
    for (const auto* rows : {ra, rb}) {
      if (rows == nullptr) continue;
      for (const auto& [rs, f] : *rows) regions.insert(regions.end(), rs.begin(), rs.end());
    }
    std::sort(regions.begin() + 1, regions.end());
    regions.erase(std::unique(regions.begin() + 1, regions.end()), regions.end());
    regions.erase(std::remove(regions.begin() + 1, regions.end(), "*"), regions.end());
    for (const auto& region : regions) {
      const resolved x = resolve(ra, region), y = resolve(rb, region);
      if (region != "*" && !x.exact && !y.exact) continue;
      if (x.f == nullptr && y.f == nullptr) continue;
      compare(key.first + " " + region + key.second, x.f, y.f, out);
    }
  }
  return out;
}

}  // namespace bedrock_meter::billing
