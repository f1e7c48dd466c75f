#include "metering/rate_table.hpp"

#include <algorithm>
#include <limits>

namespace bedrock_meter::metering {
namespace {

using i128 = money_total;

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

const std::vector<model_mapping>& no_mappings() noexcept {
  static const std::vector<model_mapping> empty;
  return empty;
}

/// Rank of an entry's region list for `region`: 0 exact, 1 "*", -1 no match.
int region_rank(const rate_entry& e, std::string_view region) noexcept {
  int rank = -1;
  for (const std::string& r : e.regions) {
    if (!region.empty() && r == region) return 0;
    if (r == "*") rank = 1;
  }
  return rank;
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
                        (region == best_region &&
                         (scope_rank < best_scope || (scope_rank == best_scope && from > best_from)));
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
  return r;
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
          : resolve_model_view(q.model_id, q.mappings != nullptr ? *q.mappings : no_mappings()).scope;
  return find_rate(table, base_model, scope, q);
}

void price(const rate_table& table, const token_usage& usage, const price_query& q, priced& out) {
  out.priced = false;
  out.cost = {};
  out.entry = nullptr;
  out.long_context = false;
  out.note.clear();
  out.table_version.assign(table.version);

  const resolved_model_view m =
      resolve_model_view(q.model_id, q.mappings != nullptr ? *q.mappings : no_mappings());
  out.model.kind = m.kind;
  out.model.base_model.assign(m.base_model);
  out.model.scope = m.scope;
  out.model.geo.assign(m.geo);
  out.model.arn_region.assign(m.arn_region);
  out.model.mapping = m.mapping;
  out.base_model.assign(m.base_model);

  // 1. Nothing billable: a request, not unpriced spend.
  if (usage.input == 0 && usage.output == 0 && usage.cache_read == 0 && usage.cache_write == 0) {
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
    out.note = "unpriced: ";
    if (m.kind == model_id_kind::unknown) {
      out.note += "unknown model id";
    } else {
      out.note += "no model_mapping for ";
      out.note += to_string(m.kind);
      out.note += " id";
    }
    return;
  }
  // 4. Find the entry.
  const rate_entry* e = find_rate(table, m.base_model, m.scope, q);
  if (e == nullptr) {
    out.note = "unpriced: no rate for ";
    out.note += m.base_model;
    out.note += " in region ";
    out.note += q.region.empty() ? std::string_view("(none)") : q.region;
    out.note += ", scope ";
    out.note += scope_name(m.scope);
    out.note += ", tier ";
    out.note += to_string(q.tier);
    out.note += ", latency ";
    out.note += to_string(q.latency);
    if (q.batch) out.note += ", batch";
    out.note += ", on ";
    out.note += day_string(std::chrono::floor<std::chrono::days>(q.at));
    return;
  }
  out.entry = e;
  out.base_model.assign(e->model);

  // 5. Price it. Sums and products in 128 bits: counts come from the network.
  const std::uint64_t write_1h = std::min(usage.cache_write_1h, usage.cache_write);
  const std::uint64_t write_5m = usage.cache_write - write_1h;
  const i128 total_input = static_cast<i128>(usage.input) + usage.cache_read + usage.cache_write;
  out.long_context = e->long_context_threshold && total_input > static_cast<i128>(*e->long_context_threshold);
  const token_rates r = effective_rates(*e, out.long_context, usage, write_5m, write_1h, out.note);

  rate_micro_per_m read_rate = r.input;
  if (r.cache_read) {
    read_rate = *r.cache_read;
  } else if (usage.cache_read > 0) {
    add_note(out.note, "no cache_read rate: priced at input rate");
  }
  rate_micro_per_m write_5m_rate = r.input;
  if (r.cache_write_5m) {
    write_5m_rate = *r.cache_write_5m;
  } else if (write_5m > 0) {
    add_note(out.note, "no cache_write_5m rate: priced at input rate");
  }
  rate_micro_per_m write_1h_rate = r.input;
  if (r.cache_write_1h) {
    write_1h_rate = *r.cache_write_1h;
  } else if (write_1h > 0) {
    if (r.cache_write_5m) {
      write_1h_rate = *r.cache_write_5m;
      add_note(out.note, "no cache_write_1h rate: priced at 5m write rate");
    } else {
      add_note(out.note, "no cache_write_1h rate: priced at input rate");
    }
  }

  const i128 input = static_cast<i128>(usage.input) * r.input;
  const i128 output = static_cast<i128>(usage.output) * r.output;
  const i128 read = static_cast<i128>(usage.cache_read) * read_rate;
  const i128 write = static_cast<i128>(write_5m) * write_5m_rate + static_cast<i128>(write_1h) * write_1h_rate;
  constexpr i128 max = std::numeric_limits<pico_usd>::max();
  if (input + output + read + write > max || input < 0 || output < 0 || read < 0 || write < 0) {
    out.entry = nullptr;
    out.long_context = false;
    add_note(out.note, "unpriced: cost out of range (token counts or rates)");
    return;
  }
  out.cost.input = static_cast<pico_usd>(input);
  out.cost.output = static_cast<pico_usd>(output);
  out.cost.cache_read = static_cast<pico_usd>(read);
  out.cost.cache_write = static_cast<pico_usd>(write);
  out.priced = true;
}

priced price(const rate_table& table, const token_usage& usage, const price_query& q) {
  priced out;
  price(table, usage, q, out);
  return out;
}

}  // namespace bedrock_meter::metering
