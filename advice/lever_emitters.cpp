// The lever records: each lever's figure, evidence and caveat from a group's aggregates. The
// formulas and evidence keys are listed at the top of levers.cpp.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/serialize.hpp>
#include <boost/json/string_view.hpp>

#include "advice/lever_groups.hpp"

namespace bedrock_meter::advice::lever_detail {
namespace {

using metering::cost_at;

constexpr std::int64_t ms_per_hour = 3'600'000;
constexpr std::size_t max_listed_operations = 5;
constexpr std::size_t max_listed_candidates = 5;

// ---- evidence text ---------------------------------------------------------------------------

void append_u128(std::string& out, token_sum v) {
  char buf[40];
  char* p = buf + sizeof buf;
  do {
    *--p = static_cast<char>('0' + static_cast<int>(v % 10));
    v /= 10;
  } while (v != 0);
  out.append(p, static_cast<std::size_t>(buf + sizeof buf - p));
}

/// A ratio as a JSON number with at most 4 decimals ("0.5", "0.1234", "1").
void append_ratio(std::string& out, double v) {
  if (!std::isfinite(v)) v = 0;
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 4);
  std::string_view s(buf, static_cast<std::size_t>(r.ptr - buf));
  while (s.size() > 1 && s.back() == '0') s.remove_suffix(1);
  if (s.back() == '.') s.remove_suffix(1);
  out += s == "-0" ? std::string_view("0") : s;
}

/// One JSON object's text, built key by key: counts as numbers, money as decimal strings.
class json_object {
 public:
  json_object& count(std::string_view key, token_sum v) {
    name(key);
    append_u128(out_, v);
    return *this;
  }
  json_object& usd(std::string_view key, money_total v) {
    name(key);
    out_ += '"';
    out_ += metering::format_usd(v, 6);
    out_ += '"';
    return *this;
  }
  json_object& ratio(std::string_view key, double v) {
    name(key);
    append_ratio(out_, v);
    return *this;
  }
  json_object& text(std::string_view key, std::string_view v) {
    name(key);
    out_ += boost::json::serialize(boost::json::string_view(v.data(), v.size()));
    return *this;
  }
  /// `json` is already JSON text (a nested object or array).
  json_object& raw(std::string_view key, std::string_view json) {
    name(key);
    out_ += json;
    return *this;
  }
  std::string str() const { return out_ + '}'; }

 private:
  void name(std::string_view key) {
    if (out_.size() > 1) out_ += ',';
    out_ += boost::json::serialize(boost::json::string_view(key.data(), key.size()));
    out_ += ':';
  }
  std::string out_ = "{";
};

double ratio_of(token_sum part, token_sum whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

/// A group's own prices, repriced from its sums (for average rates and shares).
struct group_rates {
  token_sum input_tokens = 0, output_tokens = 0;
  money_total input_cost = 0, output_cost = 0, total = 0;
};

group_rates rates_of(const group& g) {
  group_rates r;
  for (const auto& [packed, k] : g.keys) {
    if (k.entry == nullptr || no_tokens(k.all)) continue;
    const bool lc = k.dims.long_context;
    token_usage in{}, out{};
    in.input = k.all.input;
    out.output = k.all.output;
    r.input_tokens += k.all.input;
    r.output_tokens += k.all.output;
    r.input_cost += cost_at(*k.entry, in, lc);
    r.output_cost += cost_at(*k.entry, out, lc);
    r.total += cost_at(*k.entry, k.all, lc);
  }
  return r;
}

/// tokens x (cost / tokens): tokens at an average rate, in pico-USD.
money_total at_rate(token_sum tokens, money_total cost, token_sum rate_tokens) {
  if (rate_tokens == 0) return 0;
  return static_cast<money_total>(tokens) * cost / static_cast<money_total>(rate_tokens);
}

// ---- lever records -----------------------------------------------------------------------------

money_total monthly(const options& opts, money_total savings) {
  const std::int64_t window_ms = opts.until_ms - opts.since_ms;
  if (window_ms <= 0) return savings;
  const auto month_ms = static_cast<money_total>(std::llround(opts.hours_per_month * ms_per_hour));
  return savings * month_ms / window_ms;
}

void push(const lever_context& c, std::vector<lever>& out, const group& g, std::string name,
          money_total savings, std::string evidence, std::string caveat,
          bool evidence_only = false) {
  lever l;
  l.name = std::move(name);
  l.team = g.team;
  l.app = g.app;
  l.model = g.model;
  l.savings = savings;
  l.monthly_savings = monthly(c.opts, savings);
  l.evidence_json = std::move(evidence);
  l.caveat = std::move(caveat);
  if (!evidence_only && (l.savings <= 0 || l.monthly_savings < c.opts.min_monthly_savings)) return;
  out.push_back(std::move(l));
}

// prompt_caching ---------------------------------------------------------------------------------

/// What the group's rows that already cache saved, as evidence.
std::string already_caching_evidence(const group& g) {
  std::uint64_t requests = 0;
  token_sum read = 0, billable = 0;
  money_total saved = 0;
  for (const auto& [packed, k] : g.keys) {
    if (k.caching_requests == 0) continue;
    requests += k.caching_requests;
    read += k.caching.cache_read;
    billable += billable_input(k.caching);
    if (k.entry == nullptr) continue;
    token_usage plain{}, paid = k.caching;
    plain.input = billable_input(k.caching);
    paid.output = 0;
    saved += cost_at(*k.entry, plain, k.dims.long_context) -
             cost_at(*k.entry, paid, k.dims.long_context);
  }
  if (requests == 0) return {};
  return json_object{}
      .count("requests", requests)
      .ratio("hit_ratio", ratio_of(read, billable))
      .usd("saved_usd", saved)
      .str();
}

/// Savings of the simulated policy: candidates' input at the input rate - policy cost.
money_total simulated_savings(const group& g, token_usage key_sums::*sim) {
  money_total savings = 0;
  for (const auto& [packed, k] : g.keys) {
    if (k.entry == nullptr || k.cache_baseline.input == 0) continue;
    const bool lc = k.dims.long_context;
    savings += cost_at(*k.entry, k.cache_baseline, lc) - cost_at(*k.entry, k.*sim, lc);
  }
  return savings;
}

void emit_caching(lever_context& c, const group& g, std::vector<lever>& out) {
  const std::string already = already_caching_evidence(g);
  money_total savings = 0;
  bool one_hour = false;
  if (g.cache_candidates > 0) {
    savings = simulated_savings(g, &key_sums::sim_5m);
    if (g.cache_candidates_1h == g.cache_candidates) {
      const money_total hour = simulated_savings(g, &key_sums::sim_1h);
      one_hour = hour > savings;
      if (one_hour) savings = hour;
    }
  }
  if (savings <= 0) {
    if (!already.empty()) {
      push(c, out, g, "prompt_caching", 0, already,
           "already caching: the figure is what cache reads saved these requests net of the "
           "write premium, not a further saving",
           true);
    }
    return;
  }
  const cache_tally& t = one_hour ? g.tally_1h : g.tally_5m;
  json_object ev;
  ev.count("requests", g.traced)
      .count("candidate_requests", g.cache_candidates)
      .count("below_minimum_requests", g.below_minimum)
      .count("distinct_prefixes", g.system_prefixes.size())
      .count("simulated_reads", t.reads)
      .count("simulated_writes", t.writes)
      .count("read_tokens", t.read_tokens)
      .count("write_tokens", t.write_tokens)
      .text("ttl", one_hour ? "1h" : "5m")
      .count("min_prefix_tokens", g.min_prefix_tokens)
      .ratio("hit_rate", ratio_of(t.read_tokens, g.candidate_input));
  if (!already.empty()) ev.raw("already_caching", already);
  push(c, out, g, "prompt_caching", savings, ev.str(),
       "prefix sizes are estimated from bytes; cache hits depend on identical prefixes and "
       "checkpoint placement; writes cost a premium");
}

// output_cap and prompt_trimming -----------------------------------------------------------------

void emit_output_cap(lever_context& c, const group& g, const group_rates& gr,
                     std::vector<lever>& out) {
  if (g.traced == 0) return;
  const auto cap_at = [&](std::uint64_t cap, money_total& savings) {
    savings = at_rate(g.output.excess_above(cap), gr.output_cost, gr.output_tokens);
    return json_object{}
        .usd("savings_usd", savings)
        .count("answers_cut", g.output.count_above(cap))
        .str();
  };
  const std::uint64_t p95 = g.output.quantile(0.95), p99 = g.output.quantile(0.99);
  money_total savings_95 = 0, savings_99 = 0;
  const std::string cap_95 = cap_at(p95, savings_95);
  const std::string cap_99 = cap_at(p99, savings_99);
  std::string ev = json_object{}
                       .count("requests", g.traced)
                       .count("uncapped_requests", g.uncapped)
                       .count("cap_hits", g.cap_hits)
                       .count("output_p50", g.output.quantile(0.5))
                       .count("output_p95", p95)
                       .count("output_p99", p99)
                       .raw("cap_p95", cap_95)
                       .raw("cap_p99", cap_99)
                       .str();
  push(c, out, g, "output_cap", savings_99, std::move(ev),
       "answers above the cap would be cut short");
}

void emit_trimming(lever_context& c, const group& g, const group_rates& gr,
                   std::vector<lever>& out) {
  if (g.requests == 0) return;
  const std::uint64_t p50 = g.billable_input.quantile(0.5);
  const money_total savings =
      at_rate(g.uncached_input.excess_above(p50), gr.input_cost, gr.input_tokens);
  auto ops = g.operations;
  std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (ops.size() > max_listed_operations) ops.resize(max_listed_operations);
  json_object op_tokens;
  for (const auto& [name, tokens] : ops) op_tokens.count(name, tokens);
  const double input_share = gr.total == 0 ? 0.0
                                           : metering::to_usd_double(gr.total - gr.output_cost) /
                                                 metering::to_usd_double(gr.total);
  std::string ev = json_object{}
                       .count("requests", g.requests)
                       .count("input_tokens_per_request_p50", p50)
                       .count("input_tokens_per_request_p95", g.billable_input.quantile(0.95))
                       .ratio("input_tokens_per_request_mean", g.billable_input.mean())
                       .ratio("share_of_spend_input", input_share)
                       .raw("operations", op_tokens.str())
                       .str();
  push(c, out, g, "prompt_trimming", savings, std::move(ev),
       "an upper bound: prompts above the median trimmed to it; only the team knows which "
       "context is needed");
}

// model_substitution -----------------------------------------------------------------------------

std::optional<money_total> cost_on(lever_context& c, const group& g, std::string_view model) {
  money_total total = 0;
  for (const auto& [packed, k] : g.keys) {
    if (no_tokens(k.all)) continue;
    const rate_entry* e = c.rates.find(model, k.dims);
    if (e == nullptr) return std::nullopt;
    total += cost_at(*e, k.all, k.dims.long_context);
  }
  return total;
}

std::string_view provider_of(std::string_view model) { return model.substr(0, model.find('.')); }

bool same_model(std::string_view own, std::string_view candidate) {
  const metering::model_candidates c = metering::base_model_candidate_views(own);
  for (std::size_t i = 0; i < c.count; ++i) {
    if (c.ids[i] == candidate) return true;
  }
  return false;
}

struct candidate_cost {
  std::string_view model;
  money_total cost = 0;
  bool named = false;
};

/// Cheapest first; every named one, then the cheapest others, up to the listing limit.
std::string candidates_json(std::vector<candidate_cost> all, money_total current) {
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.cost < b.cost; });
  const auto named = static_cast<std::size_t>(
      std::count_if(all.begin(), all.end(), [](const auto& c) { return c.named; }));
  std::size_t others = named >= max_listed_candidates ? 0 : max_listed_candidates - named;
  std::string out = "[";
  for (const candidate_cost& c : all) {
    if (!c.named) {
      if (others == 0) continue;
      --others;
    }
    if (out.size() > 1) out += ',';
    out += json_object{}
               .text("model", c.model)
               .usd("cost_usd", c.cost)
               .usd("savings_usd", current - c.cost)
               .str();
  }
  return out + ']';
}

void emit_substitution(lever_context& c, const group& g, std::vector<lever>& out) {
  std::vector<candidate_cost> priced;
  const auto consider = [&](std::string_view model, bool named) {
    if (same_model(g.model, model)) return;
    for (candidate_cost& seen : priced) {
      if (seen.model == model) {
        seen.named = seen.named || named;
        return;
      }
    }
    if (const std::optional<money_total> cost = cost_on(c, g, model)) {
      priced.push_back({model, *cost, named});
    }
  };
  for (const std::string& m : c.models) {
    if (provider_of(m) == provider_of(g.model)) consider(m, false);
  }
  for (const std::string& m : c.named) consider(m, true);
  if (priced.empty()) return;
  money_total current = 0;
  std::uint64_t requests = 0;
  token_sum tokens = 0;
  for (const auto& [packed, k] : g.keys) {
    current += k.current;
    requests += k.requests;
    tokens += static_cast<token_sum>(billable_input(k.all)) + k.all.output;
  }
  const auto best = std::min_element(priced.begin(), priced.end(),
                                     [](const auto& a, const auto& b) { return a.cost < b.cost; });
  const money_total savings = current - best->cost;
  const bool any_named =
      std::any_of(priced.begin(), priced.end(), [](const auto& p) { return p.named; });
  std::string ev = json_object{}
                       .usd("current_usd", current)
                       .count("requests", requests)
                       .count("tokens", tokens)
                       .raw("candidates", candidates_json(priced, current))
                       .str();
  push(c, out, g, "model_substitution", savings > 0 ? savings : 0, std::move(ev),
       "tokenizers differ (the same text can count ~30% more tokens on another model family); "
       "quality is not measured",
       savings <= 0 && any_named);
}

// batch, global_profile, flex_tier, priority_tier ------------------------------------------------

void emit_batch(lever_context& c, const group& g, std::vector<lever>& out) {
  std::uint64_t eligible = 0, no_rate = 0;
  money_total current = 0, batch = 0;
  for (const auto& [packed, k] : g.keys) {
    if (k.batchable_requests == 0) continue;
    price_dims d = k.dims;
    d.batch = true;
    const rate_entry* e = c.rates.find(g.model, d);
    if (e == nullptr) {
      no_rate += k.batchable_requests;
      continue;
    }
    eligible += k.batchable_requests;
    current += k.batchable_current;
    batch += cost_at(*e, k.batchable, k.dims.long_context);
  }
  if (eligible == 0) return;
  std::string ev = json_object{}
                       .count("eligible_requests", eligible)
                       .count("ineligible_streaming", g.ineligible_streaming)
                       .count("ineligible_tools", g.ineligible_tools)
                       .count("ineligible_other", g.ineligible_other)
                       .count("no_batch_rate_requests", no_rate)
                       .usd("current_usd", current)
                       .usd("batch_usd", batch)
                       .str();
  push(c, out, g, "batch", current - batch, std::move(ev),
       "results within 24 h; batch jobs have a minimum record count (quota); no prompt caching "
       "in batch (lost cache savings are netted in the figure)");
}

struct moved_cost {
  std::uint64_t requests = 0;
  money_total current = 0, alternative = 0;
  unsigned scopes = 0;  ///< bit per inference_scope moved
};

void emit_global(lever_context& c, const group& g, std::vector<lever>& out) {
  moved_cost m;
  for (const auto& [packed, k] : g.keys) {
    if (k.dims.scope == inference_scope::global) continue;
    price_dims d = k.dims;
    d.scope = inference_scope::global;
    const rate_entry* e = c.rates.find(g.model, d);
    if (e == nullptr || e->scope != inference_scope::global) continue;
    m.requests += k.requests;
    m.current += k.current;
    m.alternative += cost_at(*e, k.all, k.dims.long_context);
    m.scopes |= 1u << static_cast<unsigned>(k.dims.scope);
  }
  if (m.requests == 0) return;
  std::string scope;
  for (const inference_scope s : {inference_scope::geo, inference_scope::in_region}) {
    if ((m.scopes & (1u << static_cast<unsigned>(s))) == 0) continue;
    if (!scope.empty()) scope += ',';
    scope += metering::to_string(s);
  }
  std::string ev = json_object{}
                       .count("requests", m.requests)
                       .usd("current_usd", m.current)
                       .usd("global_usd", m.alternative)
                       .text("scope", scope)
                       .str();
  push(c, out, g, "global_profile", m.current - m.alternative, std::move(ev),
       "a global profile may process data in any commercial region (data residency)");
}

void emit_tiers(lever_context& c, const group& g, std::vector<lever>& out) {
  // flex_tier: standard -> flex; priority_tier: priority -> standard.
  moved_cost flex, priority;
  for (const auto& [packed, k] : g.keys) {
    const bool standard = k.dims.tier == service_tier::standard;
    if (!standard && k.dims.tier != service_tier::priority) continue;
    price_dims d = k.dims;
    d.tier = standard ? service_tier::flex : service_tier::standard;
    const rate_entry* e = c.rates.find(g.model, d);
    if (e == nullptr) continue;
    moved_cost& m = standard ? flex : priority;
    m.requests += k.requests;
    m.current += k.current;
    m.alternative += cost_at(*e, k.all, k.dims.long_context);
  }
  const auto evidence = [](const moved_cost& m, std::string_view alt_key) {
    return json_object{}
        .count("requests", m.requests)
        .usd("current_usd", m.current)
        .usd(alt_key, m.alternative)
        .str();
  };
  if (flex.requests > 0) {
    push(c, out, g, "flex_tier", flex.current - flex.alternative, evidence(flex, "flex_usd"),
         "flex is served at lower priority and may be slower or throttled; for latency-tolerant "
         "work");
  }
  if (priority.requests > 0) {
    push(c, out, g, "priority_tier", priority.current - priority.alternative,
         evidence(priority, "standard_usd"),
         "the premium buys lower latency: drop it only if the latency is not needed");
  }
}

}  // namespace

void emit_levers(lever_context& c, const group& g, std::vector<lever>& out) {
  const group_rates gr = rates_of(g);
  emit_caching(c, g, out);
  emit_output_cap(c, g, gr, out);
  emit_trimming(c, g, gr, out);
  emit_substitution(c, g, out);
  emit_batch(c, g, out);
  emit_global(c, g, out);
  emit_tiers(c, g, out);
}

}  // namespace bedrock_meter::advice::lever_detail
