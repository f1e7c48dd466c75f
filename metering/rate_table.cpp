#include "metering/rate_table.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace bedrock_meter::metering {
namespace {

using i128 = money_total;

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

const std::vector<model_mapping>& no_mappings() noexcept {
  static const std::vector<model_mapping> empty;
  return empty;
}

/// Rank of a region list for `region`: 0 exact, 1 "*", -1 no match.
int region_rank(const std::vector<std::string>& regions, std::string_view region) noexcept {
  int rank = -1;
  for (const std::string& r : regions) {
    if (!region.empty() && r == region) return 0;
    if (r == "*") rank = 1;
  }
  return rank;
}

int region_rank(const rate_entry& e, std::string_view region) noexcept {
  return region_rank(e.regions, region);
}

/// Best matching entry among those indexed under `model` (see find_rate for the order).
const rate_entry* best_for(const rate_table& table, std::string_view model, inference_scope scope,
                           const price_query& q, std::chrono::sys_days day) noexcept {
  const auto it = table.by_model.find(model);
  if (it == table.by_model.end()) return nullptr;
  const rate_entry* best = nullptr;
  int best_region = 0;
  int best_scope = 0;
  std::chrono::sys_days best_from{};
  for (const std::uint32_t i : it->second) {
    if (i >= table.entries.size()) continue;  // a stale index must not read out of bounds
    const rate_entry& e = table.entries[i];
    if (e.tier != q.tier || e.latency != q.latency || e.batch != q.batch) continue;
    if (e.scope && *e.scope != scope) continue;
    if (e.effective_from && day < *e.effective_from) continue;
    if (e.effective_to && day >= *e.effective_to) continue;
    const int region = region_rank(e, q.region);
    if (region < 0) continue;
    const int scope_rank = e.scope ? 0 : 1;
    const std::chrono::sys_days from = e.effective_from.value_or(std::chrono::sys_days::min());
    // Strict improvement only: on a full tie the entry earlier in the table stays.
    const bool better = best == nullptr || region < best_region ||
                        (region == best_region && (scope_rank < best_scope ||
                                                   (scope_rank == best_scope && from > best_from)));
    if (better) {
      best = &e;
      best_region = region;
      best_scope = scope_rank;
      best_from = from;
    }
  }
  return best;
}

void add_note(std::string& note, std::string_view text) {
  if (!note.empty()) note += "; ";
  note += text;
}

std::string_view scope_name(inference_scope s) noexcept { return to_string(s); }

std::string day_string(std::chrono::sys_days day) {
  const std::chrono::year_month_day ymd{day};
  char buf[16];
  const int y = static_cast<int>(ymd.year());
  const unsigned m = static_cast<unsigned>(ymd.month());
  const unsigned d = static_cast<unsigned>(ymd.day());
  std::string out;
  const auto two = [&buf](unsigned v) {
    buf[0] = static_cast<char>('0' + v / 10);
    buf[1] = static_cast<char>('0' + v % 10);
    return std::string_view(buf, 2);
  };
  out += std::to_string(y);
  out += '-';
  out += two(m);
  out += '-';
  out += two(d);
  return out;
}

/// The rates to use for one request: the entry's rates, or its long-context rates with unset
/// types falling back to the normal rate (noted when tokens of that type are present).
token_rates effective_rates(const rate_entry& e, bool long_context, const token_usage& u,
                            std::uint64_t write_5m, std::uint64_t write_1h, std::string& note) {
  if (!long_context) return e.rates;
  const token_rates& base = e.rates;
  const token_rates& lc = e.long_context_rates;
  token_rates r = lc;
  const auto fallback = [&note](bool used, std::string_view what) {
    if (used) add_note(note, what);
  };
  if (r.input == 0) {
    r.input = base.input;
    fallback(u.input > 0, "no long-context input rate: normal rate used");
  }
  if (r.output == 0) {
    r.output = base.output;
    fallback(u.output > 0, "no long-context output rate: normal rate used");
  }
  if (!r.cache_read && base.cache_read) {
    r.cache_read = base.cache_read;
    fallback(u.cache_read > 0, "no long-context cache_read rate: normal rate used");
  }
  if (!r.cache_write_5m && base.cache_write_5m) {
    r.cache_write_5m = base.cache_write_5m;
    fallback(write_5m > 0, "no long-context cache_write_5m rate: normal rate used");
  }
  if (!r.cache_write_1h && base.cache_write_1h) {
    r.cache_write_1h = base.cache_write_1h;
    fallback(write_1h > 0, "no long-context cache_write_1h rate: normal rate used");
  }
  if (!r.speech_input && base.speech_input) {
    r.speech_input = base.speech_input;
    fallback(u.speech_input > 0, "no long-context speech_input rate: normal rate used");
  }
  if (!r.speech_output && base.speech_output) {
    r.speech_output = base.speech_output;
    fallback(u.speech_output > 0, "no long-context speech_output rate: normal rate used");
  }
  return r;
}

/// Clears every per-request field of `out` (keeping string capacity) and records the table
/// version, which every quote carries.
inline void reset_quote(const rate_table& table, priced& out) {
  out.priced = false;
  out.cost = {};
  out.entry = nullptr;
  out.long_context = false;
  out.note.clear();
  out.table_version.assign(table.version);
}

/// Copies the resolution of the requested id into `out` (assign reuses the strings' capacity).
inline void record_model(const resolved_model_view& m, priced& out) {
  out.model.kind = m.kind;
  out.model.base_model.assign(m.base_model);
  out.model.scope = m.scope;
  out.model.geo.assign(m.geo);
  out.model.arn_region.assign(m.arn_region);
  out.model.mapping = m.mapping;
  out.base_model.assign(m.base_model);
}

inline bool no_tokens(const token_usage& u) noexcept {
  return u.input == 0 && u.output == 0 && u.cache_read == 0 && u.cache_write == 0;
}

/// Rule 3's note: the id names no base model, and why.
void note_no_base_model(const resolved_model_view& m, std::string& note) {
  note = "unpriced: ";
  if (m.kind == model_id_kind::unknown) {
    note += "unknown model id";
  } else {
    note += "no model_mapping for ";
    note += to_string(m.kind);
    note += " id";
  }
}

/// Rule 4's note: every dimension the lookup used, so the missing table row can be written.
void note_no_rate(const resolved_model_view& m, const price_query& q, std::string& note) {
  note = "unpriced: no rate for ";
  note += m.base_model;
  note += " in region ";
  note += q.region.empty() ? std::string_view("(none)") : q.region;
  note += ", scope ";
  note += scope_name(m.scope);
  note += ", tier ";
  note += to_string(q.tier);
  note += ", latency ";
  note += to_string(q.latency);
  if (q.batch) note += ", batch";
  note += ", on ";
  note += day_string(std::chrono::floor<std::chrono::days>(q.at));
}

/// Cache writes by TTL: the 1-hour part (never more than all writes) and the 5-minute rest.
struct cache_writes {
  std::uint64_t five_min = 0;
  std::uint64_t one_hour = 0;
};

inline cache_writes split_cache_writes(const token_usage& u) noexcept {
  const std::uint64_t one_hour = std::min(u.cache_write_1h, u.cache_write);
  return {u.cache_write - one_hour, one_hour};
}

/// The long-context rule: total input (input + cache read + cache write) strictly above the
/// entry's threshold. Summed in 128 bits: counts come from the network.
inline bool exceeds_long_context(const rate_entry& e, const token_usage& u) noexcept {
  const i128 total_input = static_cast<i128>(u.input) + u.cache_read + u.cache_write;
  return e.long_context_threshold && total_input > static_cast<i128>(*e.long_context_threshold);
}

/// The rate for one cache token type: its own rate, else the input rate (noted when tokens of
/// that type are present, since the table does not say what they cost).
inline rate_micro_per_m rate_or_input(const std::optional<rate_micro_per_m>& rate,
                                      rate_micro_per_m input, std::uint64_t tokens,
                                      std::string_view caveat, std::string& note) {
  if (rate) return *rate;
  if (tokens > 0) add_note(note, caveat);
  return input;
}

/// 1-hour cache writes without their own rate cost what a 5-minute write costs when the entry
/// has that rate, else the input rate; either way the note says so.
inline rate_micro_per_m write_1h_rate(const token_rates& r, std::uint64_t tokens,
                                      std::string& note) {
  if (r.cache_write_1h) return *r.cache_write_1h;
  if (tokens == 0) return r.input;
  if (r.cache_write_5m) {
    add_note(note, "no cache_write_1h rate: priced at 5m write rate");
    return *r.cache_write_5m;
  }
  add_note(note, "no cache_write_1h rate: priced at input rate");
  return r.input;
}

/// Cost per token type in pico-USD, in 128 bits so that no count or rate can overflow.
struct token_costs {
  i128 input = 0;
  i128 output = 0;
  i128 read = 0;
  i128 write = 0;  ///< 5m + 1h
};

/// Speech tokens by direction, each capped at the direction's count (the rest is text).
struct speech_split {
  std::uint64_t input = 0;
  std::uint64_t output = 0;
};

inline speech_split split_speech(const token_usage& u) noexcept {
  return {std::min(u.speech_input, u.input), std::min(u.speech_output, u.output)};
}

/// Rule 5's speech check: speech tokens need their own rate. Priced at the text rate they would
/// cost about 50x too little, which is worse than unpriced (counted, alertable).
bool speech_rates_missing(const rate_entry& e, const token_rates& r, const speech_split& sp,
                          std::string& note) {
  const bool no_in = sp.input > 0 && !r.speech_input;
  const bool no_out = sp.output > 0 && !r.speech_output;
  if (!no_in && !no_out) return false;
  std::string text(speech_unpriced_note);
  text += no_in && no_out ? " (speech_input, speech_output)"
          : no_in         ? " (speech_input)"
                          : " (speech_output)";
  text += " for ";
  text += e.model;
  text += " at ";
  text += e.location;
  text += ": speech tokens are never priced at the text rate";
  note = std::move(text);  // the whole note: a long-context caveat says nothing about $0
  return true;
}

token_costs costs_of(const token_rates& r, const token_usage& u, const cache_writes& w,
                     std::string& note) {
  // The caveats are noted in this order: read, 5m write, 1h write.
  const rate_micro_per_m read_rate = rate_or_input(
      r.cache_read, r.input, u.cache_read, "no cache_read rate: priced at input rate", note);
  const rate_micro_per_m write_5m_rate = rate_or_input(
      r.cache_write_5m, r.input, w.five_min, "no cache_write_5m rate: priced at input rate", note);
  const rate_micro_per_m write_1h = write_1h_rate(r, w.one_hour, note);
  // Speech without its rate (only cost_at gets here with one: price() refuses it first) is
  // priced at the text rate, what cost_at's callers can at least compare.
  const speech_split sp = split_speech(u);
  token_costs c;
  c.input = static_cast<i128>(u.input - sp.input) * r.input +
            static_cast<i128>(sp.input) * r.speech_input.value_or(r.input);
  c.output = static_cast<i128>(u.output - sp.output) * r.output +
             static_cast<i128>(sp.output) * r.speech_output.value_or(r.output);
  c.read = static_cast<i128>(u.cache_read) * read_rate;
  c.write =
      static_cast<i128>(w.five_min) * write_5m_rate + static_cast<i128>(w.one_hour) * write_1h;
  return c;
}

/// Whether every part and the total fit a pico_usd (int64); negative rates cannot, either.
inline bool fits_in_pico(const token_costs& c) noexcept {
  constexpr i128 max = std::numeric_limits<pico_usd>::max();
  return c.input + c.output + c.read + c.write <= max && c.input >= 0 && c.output >= 0 &&
         c.read >= 0 && c.write >= 0;
}

/// Rule 5: prices the usage from entry `e` (already recorded in `out`).
void price_from_entry(const rate_entry& e, const token_usage& usage, priced& out) {
  const cache_writes w = split_cache_writes(usage);
  out.long_context = exceeds_long_context(e, usage);
  const token_rates r =
      effective_rates(e, out.long_context, usage, w.five_min, w.one_hour, out.note);
  if (speech_rates_missing(e, r, split_speech(usage), out.note)) {
    out.entry = nullptr;
    out.long_context = false;
    return;
  }
  const token_costs c = costs_of(r, usage, w, out.note);
  if (!fits_in_pico(c)) {
    out.entry = nullptr;
    out.long_context = false;
    add_note(out.note, "unpriced: cost out of range (token counts or rates)");
    return;
  }
  out.cost.input = static_cast<pico_usd>(c.input);
  out.cost.output = static_cast<pico_usd>(c.output);
  out.cost.cache_read = static_cast<pico_usd>(c.read);
  out.cost.cache_write = static_cast<pico_usd>(c.write);
  out.priced = true;
}

}  // namespace

std::string_view to_string(service_tier t) noexcept {
  switch (t) {
    case service_tier::standard: return "standard";
    case service_tier::priority: return "priority";
    case service_tier::flex: return "flex";
    case service_tier::reserved: return "reserved";
  }
  return "standard";
}

std::optional<service_tier> parse_service_tier(std::string_view s) noexcept {
  // Bedrock sends lowercase; config authors may not.
  if (s.empty() || iequals(s, "default") || iequals(s, "standard")) return service_tier::standard;
  if (iequals(s, "priority")) return service_tier::priority;
  if (iequals(s, "flex")) return service_tier::flex;
  if (iequals(s, "reserved")) return service_tier::reserved;
  return std::nullopt;
}

std::string_view to_string(latency_mode m) noexcept {
  switch (m) {
    case latency_mode::standard: return "standard";
    case latency_mode::optimized: return "optimized";
  }
  return "standard";
}

std::string_view to_string(commitment_term t) noexcept {
  switch (t) {
    case commitment_term::no_commit: return "no_commit";
    case commitment_term::one_month: return "1_month";
    case commitment_term::three_months: return "3_months";
    case commitment_term::six_months: return "6_months";
  }
  return "no_commit";
}

std::optional<commitment_term> parse_commitment_term(std::string_view s) noexcept {
  // Exact spellings only: these come from rate tables, whose loader suggests the right word.
  if (s == "no_commit") return commitment_term::no_commit;
  if (s == "1_month") return commitment_term::one_month;
  if (s == "3_months") return commitment_term::three_months;
  if (s == "6_months") return commitment_term::six_months;
  return std::nullopt;
}

void rate_table::index() {
  by_model.clear();
  by_model.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    by_model[entries[i].model].push_back(static_cast<std::uint32_t>(i));
  }
}

const rate_entry* find_rate(const rate_table& table, std::string_view base_model,
                            inference_scope scope, const price_query& q) noexcept {
  const auto day = std::chrono::floor<std::chrono::days>(q.at);
  const model_candidates c = base_model_candidate_views(base_model);
  for (std::size_t i = 0; i < c.count; ++i) {
    if (const rate_entry* e = best_for(table, c.ids[i], scope, q, day)) return e;
  }
  return nullptr;
}

const rate_entry* find_rate(const rate_table& table, std::string_view base_model,
                            const price_query& q) noexcept {
  const inference_scope scope =
      q.model_id.empty()
          ? inference_scope::in_region
          : resolve_model_view(q.model_id, q.mappings != nullptr ? *q.mappings : no_mappings())
                .scope;
  return find_rate(table, base_model, scope, q);
}

const provisioned_entry* find_provisioned(const rate_table& table, std::string_view base_model,
                                          std::string_view region) noexcept {
  // The section is short (a few dozen rows): a scan per candidate needs no index.
  const model_candidates c = base_model_candidate_views(base_model);
  for (std::size_t i = 0; i < c.count; ++i) {
    const provisioned_entry* star = nullptr;
    for (const provisioned_entry& p : table.provisioned) {
      if (p.model != c.ids[i]) continue;
      const int rank = region_rank(p.regions, region);
      if (rank == 0) return &p;
      if (rank == 1 && star == nullptr) star = &p;
    }
    if (star != nullptr) return star;
  }
  return nullptr;
}

const caching_rule* find_caching(const rate_table& table, std::string_view base_model) noexcept {
  const model_candidates c = base_model_candidate_views(base_model);
  for (std::size_t i = 0; i < c.count; ++i) {
    for (const caching_rule& r : table.caching) {
      if (r.model == c.ids[i]) return &r;
    }
  }
  return nullptr;
}

money_total cost_at(const rate_entry& e, const token_usage& usage, bool long_context) {
  std::string note;
  const cache_writes w = split_cache_writes(usage);
  const token_rates r = effective_rates(e, long_context, usage, w.five_min, w.one_hour, note);
  const token_costs c = costs_of(r, usage, w, note);
  return c.input + c.output + c.read + c.write;
}

void price(const rate_table& table, const token_usage& usage, const price_query& q, priced& out) {
  reset_quote(table, out);
  const resolved_model_view m =
      resolve_model_view(q.model_id, q.mappings != nullptr ? *q.mappings : no_mappings());
  record_model(m, out);

  // 1. Nothing billable: a request, not unpriced spend.
  if (no_tokens(usage)) {
    out.priced = true;
    return;
  }
  // 2. Provisioned throughput: the hours are the bill, tokens cost nothing extra.
  if (m.mapping != nullptr && m.mapping->hourly_usd) {
    out.priced = true;
    out.note = "provisioned: billed hourly";
    return;
  }
  // 3. Nothing to look up.
  if (m.base_model.empty()) {
    note_no_base_model(m, out.note);
    return;
  }
  // 4. Find the entry.
  const rate_entry* e = find_rate(table, m.base_model, m.scope, q);
  if (e == nullptr) {
    note_no_rate(m, q, out.note);
    return;
  }
  out.entry = e;
  out.base_model.assign(e->model);
  // 5. Price it.
  price_from_entry(*e, usage, out);
}

priced price(const rate_table& table, const token_usage& usage, const price_query& q) {
  priced out;
  price(table, usage, q, out);
  return out;
}

}  // namespace bedrock_meter::metering
