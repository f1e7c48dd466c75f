// The `commitments` section: EDP / private-pricing contracts (config/config.hpp,
// docs/configuration.md, docs/finops.md "Commitments").
#include <set>

#include "config/loader.hpp"

namespace bedrock_meter::config {

namespace {

constexpr std::array<std::string_view, 8> commitment_keys = {"name",
                                                             "start",
                                                             "end",
                                                             "per_year_usd",
                                                             "discount_percent",
                                                             "marketplace_discounted",
                                                             "marketplace_counts_percent",
                                                             "other_spend_per_year_usd"};

/// A percentage from 0 to 100 with at most 4 decimals ("7.5"), as parts per million.
bool read_percent(const map_reader& s, std::string_view key, std::int64_t& out) {
  const map_entry* e = s.get(key);
  if (e == nullptr) return true;
  const auto v =
      e->value.IsScalar() ? metering::parse_rate_per_million(e->value.Scalar()) : std::nullopt;
  // parse_rate_per_million reads "7.5" as 7'500'000 millionths; a percent is 1/100 of that.
  if (!v || *v > 100'000'000 || *v % 100 != 0) {
    s.error(*e, "expected a percentage from 0 to 100 with at most 4 decimals, e.g. 7.5");
    return false;
  }
  out = *v / 100;
  return true;
}

/// A USD amount up to 1e12 (a trillion dollars a year is a typo), as micro-USD.
bool read_usd(const map_reader& s, std::string_view key, std::int64_t& out, bool required) {
  if (s.get(key) == nullptr) {
    if (required) s.missing(key);
    return !required;
  }
  const auto v = s.read_positive_decimal(
      key, "expected an amount in USD greater than 0 with at most 6 decimals, e.g. 1200000",
      1'000'000'000'000, "USD per year");
  if (!v) return false;
  out = *v;
  return true;
}

}  // namespace

void load_commitments(load_context& ctx, const map_entry& e, std::vector<commitment_config>& out) {
  if (e.value.IsNull()) return;
  std::set<std::string> names;
  std::size_t i = 0;
  if (!e.value.IsSequence()) {
    ctx.diag().error(e.mark(), "commitments",
                     "expected a list of commitments (- name: ..., start: ..., end: ...)");
    return;
  }
  for (const auto& item : e.value) {
    const map_reader s(ctx.diag(), item, index_path("commitments", i++), commitment_keys,
                       item.Mark());
    if (!s.is_map()) continue;
    commitment_config c;
    bool ok = s.read_string("name", c.name, text_rule::required);
    ok &= s.read_date("start", c.start, text_rule::required, "the term's first day");
    ok &= s.read_date("end", c.end, text_rule::required, "the first day after the term");
    ok &= read_usd(s, "per_year_usd", c.per_year_micro_usd, true);
    ok &= read_percent(s, "discount_percent", c.discount_ppm);
    s.read_bool("marketplace_discounted", c.marketplace_discounted);
    ok &= read_percent(s, "marketplace_counts_percent", c.marketplace_counts_ppm);
    if (s.get("other_spend_per_year_usd") != nullptr)
      ok &= read_usd(s, "other_spend_per_year_usd", c.other_spend_per_year_micro_usd, false);
    if (ok && std::chrono::sys_days(c.end) <= std::chrono::sys_days(c.start)) {
      s.error(*s.get("end"), "end must be after start (the term is [start, end))");
      ok = false;
    }
    if (ok && !names.insert(c.name).second) {
      s.error(*s.get("name"), "commitment '" + c.name + "' is defined twice; names are unique");
      ok = false;
    }
    for (const auto& other : out) {
      if (!ok) break;
      if (std::chrono::sys_days(c.start) < std::chrono::sys_days(other.end) &&
          std::chrono::sys_days(other.start) < std::chrono::sys_days(c.end)) {
        s.error(*s.get("start"), "the term overlaps that of commitment '" + other.name +
                                     "'; a day's spend counts toward one commitment only");
        ok = false;
      }
    }
    if (ok) out.push_back(std::move(c));
  }
}

}  // namespace bedrock_meter::config
