#include "advice/levers.hpp"

// The levers: formulas and evidence keys (docs/finops.md copies this block).
//
// Which rows take part: outcome not "refused", priced, model_base not empty, and not sent to an
// ARN mapped as provisioned (`models.mappings[].hourly_usd`). Rows are folded into groups
// (team, app, model_base); inside a group, token sums are kept per pricing key (region, scope,
// tier, latency, batch, long-context flag, UTC day) and repriced with `cost_at(entry, sums,
// long_context)`, the entry found by `find_rate` for that key (and that day's prices). A row's
// long-context flag is whether its own billable input (input + cache read + cache write) is above
// its entry's `long_context_threshold`. A group's "current cost" is the sum of its rows'
// `total_cost` (what the meter billed). Rows without request traits (written before ledger
// schema v2: no max_tokens, stop_reason, prefixes, tools or structured-output flag) are counted
// in a note and left out of prompt_caching and output_cap. Every lever is emitted only when its
// savings are > 0 (and at least `min_monthly_savings` a month), except the evidence-only
// prompt_caching record below. monthly_savings = savings x hours_per_month / window hours.
// Money in evidence is a decimal USD string (6 places), counts are numbers, ratios are numbers
// rounded to 4 places.
//
// prompt_caching. Rows with cache_read or cache_write > 0 are "already caching". The others are
//   candidates when the model has a cache_read and a cache_write_5m rate and a `caching` rule,
//   the body size is known and the prompt has a fingerprint. Prefix tokens are estimated with the
//   request's own density: P = prefix bytes x billable input / bytes_in. Per (model, region,
//   scope), in time order, a cache keyed by prefix hash is simulated for the policy "a
//   checkpoint after system + tools, one at the end of the prompt": a request reads its
//   conversation prefix when that hash is live (an earlier request's full prompt, or an earlier
//   request's own conversation prefix), else its system prefix when live; it writes
//   full - read when its full prompt (the prefix the end checkpoint caches) is >= the rule's
//   min_prefix_tokens: prompts below it are never cached (below_minimum_requests). After a write
//   the full prompt and the conversation prefix are live, and the system prefix too when it is
//   itself >= min_prefix_tokens (its tokens are part of full - read: nothing is counted twice).
//   Live = written or read within the TTL (reads refresh it); expired prefixes are evicted, so
//   the simulation holds only the prefixes touched within about two TTLs. Policy cost = read x
//   cache_read + write x cache_write + (billable input - read - write) x input; savings =
//   candidates' input at the input rate - policy cost. Simulated with the 5-minute TTL, and with
//   the 1-hour TTL (cache_write_1h rate) when the rule offers it and every candidate's entry has
//   that rate; the better one is reported. Evidence: requests (rows with traits),
//   candidate_requests, below_minimum_requests, distinct_prefixes (distinct system prefixes among
//   candidates, counted up to 1024), simulated_reads and simulated_writes (requests that read /
//   wrote), read_tokens, write_tokens, ttl ("5m" or "1h"), min_prefix_tokens, hit_rate (read_tokens
//   / candidates' billable input), and already_caching {requests, hit_ratio, saved_usd} when the
//   group also has caching rows. A group whose simulation saves nothing but that already caches
//   gets one record with savings 0 and evidence {requests, hit_ratio = cache_read / (input +
//   cache_read + cache_write), saved_usd = its rows at the input rate - what they paid for input,
//   reads and writes, i.e. what the reads saved minus the write premium}; caveat "already caching:
//   ...".
// output_cap. Over rows with traits: uncapped_requests (no max_tokens), cap_hits (stop_reason
//   "max_tokens"), output tokens per request in a log-linear histogram (exact below 1024, 64
//   sub-buckets per power of two). A quantile is the largest value of its bucket. For a cap c:
//   savings = sum(max(0, output - c)) x the group's average output rate (repriced output cost /
//   output tokens), answers_cut = requests with output > c. Headline: c = p99.
//   Evidence: requests, uncapped_requests, cap_hits, output_p50, output_p95, output_p99,
//   cap_p95 {savings_usd, answers_cut}, cap_p99 {savings_usd, answers_cut}.
// prompt_trimming. Billable input per request (histogram) p50 and p95; savings =
//   sum(max(0, uncached input - p50)) x the group's average input rate (repriced input cost /
//   input tokens): every prompt above the median trimmed down to it.
//   Evidence: requests, input_tokens_per_request_p50, input_tokens_per_request_p95,
//   input_tokens_per_request_mean, share_of_spend_input (repriced billable-input cost / repriced
//   cost), operations {operation: billable input tokens} (the 5 heaviest).
// model_substitution. Candidates: every model of the rate table with the same provider (text
//   before the first '.') and every `reprice_as` model (its base id; any provider). A candidate
//   is priced when it has an entry for every pricing key of the group (same region, scope, tier,
//   latency, batch); cost = sum of cost_at over the keys. Savings = current cost - the cheapest
//   candidate's cost. When no candidate is cheaper but reprice_as models were priced, one record
//   with savings 0 shows them.
//   Evidence: current_usd, requests, tokens (input + output + cache read + cache write),
//   candidates [{model, cost_usd, savings_usd}] cheapest first: every reprice_as model (even
//   when dearer: negative savings), then the cheapest others, 5 in all. A row's long-context
//   flag (from its own model's threshold) is kept on the candidate.
// batch. Eligible rows: not batch, not streaming, no tools, no structured output, tier standard,
//   status 2xx, outcome ok, and a batch entry (batch = true, same model, region, scope, tier,
//   latency). Savings = their current cost - cost_at(batch entry). Cache reads and writes are
//   priced at the input rate when the batch entry has no cache rates, so lost cache savings
//   are already netted in the figure.
//   Rows without request traits cannot say whether they sent tools: they count as without.
//   Evidence: eligible_requests, ineligible_streaming, ineligible_tools (tools or structured
//   output, not streaming), ineligible_other (tier, status or outcome), no_batch_rate_requests
//   (eligible but the model has no batch entry there), current_usd, batch_usd.
// global_profile. Rows with scope geo or in_region whose model has an entry scoped global in the
//   same region (tier, latency, batch): savings = their current cost - the global cost.
//   Evidence: requests, current_usd, global_usd, scope (the scopes moved, "geo" / "in_region" /
//   "geo,in_region").
// flex_tier. Standard-tier rows whose model has a flex entry: savings = current - flex cost.
//   Evidence: requests, current_usd, flex_usd.
// priority_tier. Priority-tier rows: savings = current - the standard entry's cost (the premium).
//   Evidence: requests, current_usd, standard_usd.

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "advice/lever_groups.hpp"

namespace bedrock_meter::advice {
namespace lever_detail {

const rate_entry* rate_lookup::find(std::string_view model, price_dims d) {
  d.long_context = false;
  const std::uint64_t packed = pack(d);
  key_.assign(model);
  key_.push_back('\0');
  key_.append(reinterpret_cast<const char*>(&packed), sizeof packed);
  if (const auto it = memo_.find(std::string_view(key_)); it != memo_.end()) return it->second;
  metering::price_query q;
  q.region = regions_[d.region];
  q.tier = d.tier;
  q.latency = d.latency;
  q.batch = d.batch;
  q.at = std::chrono::sys_days{std::chrono::days{d.day}};
  const rate_entry* e = metering::find_rate(table_, model, d.scope, q);
  memo_.emplace(key_, e);
  return e;
}

}  // namespace lever_detail

namespace {

using namespace lever_detail;

constexpr std::int64_t ms_per_day = 86'400'000;
constexpr std::int64_t sweep_every_ms = 60'000;  ///< evict idle caches once a minute
constexpr std::size_t max_operations = 16;       ///< operation names kept per group
constexpr std::uint32_t max_regions = 1u << 20;  ///< region ids fit 20 bits of the key

token_usage usage_of(const request_row& row) {
  token_usage u;
  u.input = row.input_tokens;
  u.output = row.output_tokens;
  u.cache_read = row.cache_read_tokens;
  u.cache_write = row.cache_write_tokens;
  u.cache_write_1h = row.cache_write_1h_tokens;
  return u;
}

void add_usage(token_usage& sum, const token_usage& u) {
  sum.input += u.input;
  sum.output += u.output;
  sum.cache_read += u.cache_read;
  sum.cache_write += u.cache_write;
  sum.cache_write_1h += u.cache_write_1h;
}

const metering::rate_table& no_rates() {
  static const metering::rate_table empty;
  return empty;
}

/// Rows written before ledger schema v2 carry none of the request traits (`has_traits` false;
/// rows built without the flag count as having traits when any trait is set).
bool has_traits(const request_row& row) {
  return row.has_traits || row.max_tokens || !row.stop_reason.empty() || row.tools ||
         row.structured_output || row.system_prefix.hash != 0 ||
         row.conversation_prefix.hash != 0 || row.full_prompt.hash != 0;
}

std::int32_t day_of(std::int64_t time_ms) {
  const std::int64_t d = time_ms >= 0 ? time_ms / ms_per_day : (time_ms + 1) / ms_per_day - 1;
  return static_cast<std::int32_t>(d);
}

}  // namespace

// ---- lever_analysis::impl ----------------------------------------------------------------------

struct lever_analysis::impl {
  explicit impl(const options& o);

  void add(const request_row& row);
  void finish(report& r);
  std::size_t live_prefixes() const;

 private:
  bool takes_part(const request_row& row);
  std::uint32_t region_id(std::string_view region);
  price_dims dims_of(const request_row& row);
  group& group_for(const request_row& row);
  /// The sums of `d` in `g`, made on first use with entry `e` (looked up when nullptr).
  key_sums& key_for(group& g, const price_dims& d, const rate_entry* e, std::string_view model);
  cache_domain& domain_for(const request_row& row, inference_scope scope);
  void fold_totals(group& g, key_sums& k, const request_row& row, const token_usage& u);
  void fold_batch(group& g, key_sums& k, const request_row& row, const token_usage& u);
  void fold_output(group& g, const request_row& row);
  void fold_caching(group& g, key_sums& k, const request_row& row, const token_usage& u);
  void sweep(std::int64_t now_ms);

  const options opts_;  ///< a copy: the caller's may not outlive the analysis
  std::vector<std::string> regions_;
  std::unordered_map<std::string, std::uint32_t, metering::string_hash, std::equal_to<>>
      region_ids_;
  rate_lookup rates_;
  std::vector<std::string> models_;  ///< distinct models of the rate table, in table order
  std::vector<std::string> named_;   ///< reprice_as, as base ids
  std::unordered_map<std::string, group, metering::string_hash, std::equal_to<>> groups_;
  std::unordered_map<std::string, cache_domain, metering::string_hash, std::equal_to<>> domains_;
  std::unordered_map<std::string, bool, metering::string_hash, std::equal_to<>> provisioned_;
  std::uint32_t last_region_ = max_regions;  ///< the previous row's region id
  group* last_group_ = nullptr;              ///< the previous row's group
  std::string scratch_;
  std::uint64_t untraced_ = 0;
  std::int64_t last_sweep_ms_ = 0;
};

lever_analysis::impl::impl(const options& o)
    : opts_(o), rates_(opts_.rates != nullptr ? *opts_.rates : no_rates(), regions_) {
  std::unordered_set<std::string_view> seen;
  for (const rate_entry& e : (opts_.rates != nullptr ? *opts_.rates : no_rates()).entries) {
    if (seen.insert(e.model).second) models_.push_back(e.model);
  }
  for (const std::string& m : o.reprice_as) {
    const metering::resolved_model_view v = metering::resolve_model_view(m);
    std::string base(v.base_model.empty() ? std::string_view(m) : v.base_model);
    if (std::find(named_.begin(), named_.end(), base) == named_.end()) named_.push_back(base);
  }
}

bool lever_analysis::impl::takes_part(const request_row& row) {
  if (opts_.rates == nullptr) return false;  // `rates` is required: without it, nothing to price
  if (row.outcome == "refused" || !row.priced || row.model_base.empty()) return false;
  if (opts_.mappings == nullptr || opts_.mappings->empty()) return true;
  if (const auto it = provisioned_.find(row.model_requested); it != provisioned_.end()) {
    return !it->second;
  }
  const auto m = metering::resolve_model_view(row.model_requested, *opts_.mappings);
  const bool hourly = m.mapping != nullptr && m.mapping->hourly_usd.has_value();
  provisioned_.emplace(std::string(row.model_requested), hourly);
  return !hourly;
}

std::uint32_t lever_analysis::impl::region_id(std::string_view region) {
  // Most rows name the region of the row before them.
  if (last_region_ < regions_.size() && regions_[last_region_] == region) return last_region_;
  if (const auto it = region_ids_.find(region); it != region_ids_.end()) {
    return last_region_ = it->second;
  }
  if (regions_.size() >= max_regions) return max_regions;  // not interned: the row is skipped
  const auto id = static_cast<std::uint32_t>(regions_.size());
  regions_.emplace_back(region);
  region_ids_.emplace(std::string(region), id);
  return last_region_ = id;
}

price_dims lever_analysis::impl::dims_of(const request_row& row) {
  price_dims d;
  d.region = region_id(row.region);
  if (row.scope == "global") {
    d.scope = inference_scope::global;
  } else if (row.scope == "geo") {
    d.scope = inference_scope::geo;
  } else if (row.scope == "in_region") {
    d.scope = inference_scope::in_region;
  } else {
    static const std::vector<metering::model_mapping> none;
    d.scope = metering::resolve_model_view(row.model_requested,
                                           opts_.mappings != nullptr ? *opts_.mappings : none)
                  .scope;
  }
  d.tier = metering::parse_service_tier(row.service_tier).value_or(service_tier::standard);
  d.latency = row.latency_mode == "optimized" ? latency_mode::optimized : latency_mode::standard;
  d.batch = row.batch;
  d.day = day_of(row.time_ms);
  return d;
}

group& lever_analysis::impl::group_for(const request_row& row) {
  // Rows of one team and app often come in runs.
  if (last_group_ != nullptr && last_group_->model == row.model_base &&
      last_group_->app == row.app && last_group_->team == row.team) {
    return *last_group_;
  }
  scratch_.assign(row.team);
  scratch_ += '\x1f';
  scratch_ += row.app;
  scratch_ += '\x1f';
  scratch_ += row.model_base;
  auto it = groups_.find(std::string_view(scratch_));
  if (it == groups_.end()) {
    it = groups_.emplace(scratch_, group{}).first;
    it->second.team = row.team;
    it->second.app = row.app;
    it->second.model = row.model_base;
  }
  last_group_ = &it->second;  // map nodes do not move
  return it->second;
}

cache_domain& lever_analysis::impl::domain_for(const request_row& row, inference_scope scope) {
  scratch_.assign(row.model_base);
  scratch_ += '\x1f';
  scratch_ += row.region;
  scratch_ += '\x1f';
  scratch_ += metering::to_string(scope);
  auto it = domains_.find(std::string_view(scratch_));
  if (it == domains_.end()) {
    it = domains_.emplace(scratch_, cache_domain{}).first;
    cache_domain& d = it->second;
    d.rule = metering::find_caching(*opts_.rates, row.model_base);
    if (d.rule != nullptr && d.rule->ttl_1h) d.one_hour.emplace(cache_ttl_1h_ms);
  }
  return it->second;
}

void lever_analysis::impl::add(const request_row& row) {
  if (!takes_part(row)) return;
  sweep(row.time_ms);
  price_dims d = dims_of(row);
  if (d.region >= max_regions) return;  // a corrupt ledger: more regions than exist
  group& g = group_for(row);
  const token_usage u = usage_of(row);
  key_sums* k = &key_for(g, d, nullptr, row.model_base);
  // Long context: the row's own entry decides (the short-context key holds it).
  const rate_entry* e = k->entry;
  if (e != nullptr && e->long_context_threshold && billable_input(u) > *e->long_context_threshold) {
    d.long_context = true;
    k = &key_for(g, d, e, row.model_base);
  }
  fold_totals(g, *k, row, u);
  fold_batch(g, *k, row, u);
  if (!has_traits(row)) {
    ++untraced_;
    return;
  }
  fold_output(g, row);
  fold_caching(g, *k, row, u);
}

key_sums& lever_analysis::impl::key_for(group& g, const price_dims& d, const rate_entry* e,
                                        std::string_view model) {
  const std::uint64_t packed = pack(d);
  if (g.last_sums != nullptr && g.last_key == packed) return *g.last_sums;
  auto [it, fresh] = g.keys.try_emplace(packed);
  if (fresh) {
    it->second.dims = d;
    it->second.entry = e != nullptr ? e : rates_.find(model, d);
  }
  g.last_key = packed;
  g.last_sums = &it->second;  // map nodes do not move
  return it->second;
}

void lever_analysis::impl::fold_totals(group& g, key_sums& k, const request_row& row,
                                       const token_usage& u) {
  ++k.requests;
  add_usage(k.all, u);
  k.current += row.total_cost;
  ++g.requests;
  g.billable_input.add(billable_input(u));
  g.uncached_input.add(u.input);
  auto op = std::find_if(g.operations.begin(), g.operations.end(),
                         [&row](const auto& p) { return p.first == row.operation; });
  if (op == g.operations.end()) {
    // A bounded list: names past the limit are summed as "other".
    const bool room = g.operations.size() < max_operations - 1;
    const std::string_view name = room ? row.operation : std::string_view("other");
    op = std::find_if(g.operations.begin(), g.operations.end(),
                      [name](const auto& p) { return p.first == name; });
    if (op == g.operations.end()) op = g.operations.emplace(g.operations.end(), name, 0);
  }
  op->second += billable_input(u);
}

void lever_analysis::impl::fold_batch(group& g, key_sums& k, const request_row& row,
                                      const token_usage& u) {
  if (row.batch) return;
  if (row.streaming) {
    ++g.ineligible_streaming;
  } else if (row.tools || row.structured_output) {
    ++g.ineligible_tools;
  } else if (k.dims.tier != service_tier::standard || row.status < 200 || row.status > 299 ||
             row.outcome != "ok") {
    ++g.ineligible_other;
  } else {
    ++k.batchable_requests;
    add_usage(k.batchable, u);
    k.batchable_current += row.total_cost;
  }
}

void lever_analysis::impl::fold_output(group& g, const request_row& row) {
  ++g.traced;
  if (!row.max_tokens) ++g.uncapped;
  if (row.stop_reason == "max_tokens") ++g.cap_hits;
  g.output.add(row.output_tokens);
}

void lever_analysis::impl::fold_caching(group& g, key_sums& k, const request_row& row,
                                        const token_usage& u) {
  if (u.cache_read > 0 || u.cache_write > 0) {
    ++k.caching_requests;
    add_usage(k.caching, u);
    return;
  }
  const rate_entry* e = k.entry;
  if (e == nullptr || !e->rates.cache_read || !e->rates.cache_write_5m) return;
  if (k.domain == nullptr) k.domain = &domain_for(row, k.dims.scope);
  cache_domain& dom = *k.domain;
  if (dom.rule == nullptr) return;
  const std::optional<prompt_shape> shape = estimate_shape(row);
  if (!shape) return;
  const std::uint64_t min = dom.rule->min_prefix_tokens;
  ++g.cache_candidates;
  g.min_prefix_tokens = min;
  g.candidate_input += shape->input_tokens;
  if (shape->full_tokens < min) ++g.below_minimum;
  g.system_prefixes.insert(shape->system_hash);
  k.cache_baseline.input += shape->input_tokens;
  const auto fold = [&shape](token_usage& sum, const cache_step& s, bool one_hour) {
    sum.input += shape->input_tokens - s.read - s.write;
    sum.cache_read += s.read;
    sum.cache_write += s.write;
    if (one_hour) sum.cache_write_1h += s.write;
  };
  const cache_step five = simulate_request(dom.five_min, *shape, min, row.time_ms);
  fold(k.sim_5m, five, false);
  g.tally_5m.add(five);
  if (dom.one_hour && e->rates.cache_write_1h) {
    const cache_step hour = simulate_request(*dom.one_hour, *shape, min, row.time_ms);
    fold(k.sim_1h, hour, true);
    g.tally_1h.add(hour);
    ++g.cache_candidates_1h;
  }
}

void lever_analysis::impl::sweep(std::int64_t now_ms) {
  // Domains that see no more traffic still let their prefixes go.
  if (now_ms - last_sweep_ms_ < sweep_every_ms) return;
  last_sweep_ms_ = now_ms;
  for (auto& [key, d] : domains_) {
    d.five_min.evict(now_ms);
    if (d.one_hour) d.one_hour->evict(now_ms);
  }
}

std::size_t lever_analysis::impl::live_prefixes() const {
  std::size_t n = 0;
  for (const auto& [key, d] : domains_) {
    n += d.five_min.size() + (d.one_hour ? d.one_hour->size() : 0);
  }
  return n;
}

// ---- finish ------------------------------------------------------------------------------------

void lever_analysis::impl::finish(report& r) {
  std::vector<const std::string*> keys;
  keys.reserve(groups_.size());
  for (const auto& [key, g] : groups_) keys.push_back(&key);
  std::sort(keys.begin(), keys.end(), [](const auto* a, const auto* b) { return *a < *b; });
  lever_context c{opts_, rates_, models_, named_};
  for (const std::string* key : keys) emit_levers(c, groups_.find(*key)->second, r.levers);
  if (untraced_ > 0) {
    r.notes.push_back(std::to_string(untraced_) +
                      " requests predate request traits: caching and output-cap levers ignore "
                      "them");
  }
}

// ---- lever_analysis ----------------------------------------------------------------------------

lever_analysis::lever_analysis(const options& opts) : impl_(std::make_unique<impl>(opts)) {}
lever_analysis::~lever_analysis() = default;
void lever_analysis::add(const request_row& row) { impl_->add(row); }
void lever_analysis::finish(report& r) { impl_->finish(r); }
std::size_t lever_analysis::live_prefixes() const { return impl_->live_prefixes(); }

}  // namespace bedrock_meter::advice
