#include "billing/reconcile.hpp"

#include <algorithm>
#include <chrono>

namespace bedrock_meter::billing {

namespace {

namespace m = metering;

bool close(double a, double b, double tolerance) {
  return std::abs(a - b) <= tolerance * std::max(std::abs(a), std::abs(b));
}

bool totals_match(const usage_totals& a, const usage_totals& b, double tolerance) {
  for (std::size_t i = 0; i < a.tokens.size(); ++i) {
    if (!close(static_cast<double>(a.tokens[i]), static_cast<double>(b.tokens[i]), tolerance))
      return false;
  }
  return close(static_cast<double>(a.cost), static_cast<double>(b.cost), tolerance);
}

void add(usage_totals& into, const usage_totals& t) {
  for (std::size_t i = 0; i < t.tokens.size(); ++i) into.tokens[i] += t.tokens[i];
  into.cost += t.cost;
}

/// The table's rate for a billed unit price's class, as the pricer would pick the entry.
std::optional<std::int64_t> table_rate(const m::rate_entry& e, token_class c) {
  switch (c) {
    case token_class::input: return e.rates.input;
    case token_class::output: return e.rates.output;
    case token_class::cache_read: return e.rates.cache_read;
    case token_class::cache_write_5m: return e.rates.cache_write_5m;
    case token_class::cache_write_1h: return e.rates.cache_write_1h;
    case token_class::speech_input: return e.rates.speech_input;
    case token_class::speech_output: return e.rates.speech_output;
  }
  return std::nullopt;
}

std::vector<stale_rate> check_rates(const std::vector<billed_rate>& rates,
                                    const m::rate_table& table) {
  std::vector<stale_rate> out;
  for (const auto& r : rates) {
    m::price_query q;
    q.model_id = r.key.model;
    q.region = r.key.region;
    q.tier = m::parse_service_tier(r.key.tier).value_or(m::service_tier::standard);
    q.latency = r.key.latency_optimized ? m::latency_mode::optimized : m::latency_mode::standard;
    q.batch = r.key.batch;
    q.at = std::chrono::system_clock::now();
    // "regional" covers in-region calls and geographic profiles: the in-region row is checked.
    const auto scope =
        r.key.scope == "global" ? m::inference_scope::global : m::inference_scope::in_region;
    const m::rate_entry* e = m::find_rate(table, r.key.model, scope, q);
    stale_rate s{r, std::nullopt, {}};
    if (e != nullptr) {
      s.table_micro_per_m = table_rate(*e, r.cls);
      s.table_entry = e->location;
    }
    if (s.table_micro_per_m != r.micro_per_m) out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

std::string_view to_string(match_status s) noexcept {
  switch (s) {
    case match_status::match: return "match";
    case match_status::differs: return "differs";
    case match_status::ledger_only: return "ledger_only";
    case match_status::bill_only: return "bill_only";
  }
  return "?";
}

reconcile_report reconcile(const std::map<usage_key, usage_totals>& ledger, const cur_result& bill,
                           const m::rate_table* table, double tolerance) {
  reconcile_report r;
  auto i = ledger.begin();
  auto j = bill.bill.begin();
  while (i != ledger.end() || j != bill.bill.end()) {
    reconcile_row row;
    if (j == bill.bill.end() || (i != ledger.end() && i->first < j->first)) {
      row = {i->first, i->second, {}, match_status::ledger_only};
      ++i;
    } else if (i == ledger.end() || j->first < i->first) {
      row = {j->first, {}, j->second, match_status::bill_only};
      ++j;
    } else {
      row = {i->first, i->second, j->second,
             totals_match(i->second, j->second, tolerance) ? match_status::match
                                                           : match_status::differs};
      ++i, ++j;
    }
    add(r.ledger_total, row.ledger);
    add(r.bill_total, row.bill);
    if (row.status != match_status::match) r.within_tolerance = false;
    r.rows.push_back(std::move(row));
  }
  if (table != nullptr) r.stale = check_rates(bill.rates, *table);
  return r;
}

}  // namespace bedrock_meter::billing
