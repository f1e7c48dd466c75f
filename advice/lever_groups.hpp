#pragma once
/// The aggregates the levers are computed from: per group (team, app, model_base), token sums per
/// pricing key, histograms and prompt-cache tallies. Internal to bm_advice: levers.cpp folds rows
/// into them, lever_emitters.cpp turns them into `lever` records. Not thread-safe.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "advice/advice.hpp"
#include "advice/histogram.hpp"
#include "advice/prompt_cache.hpp"
#include "metering/rate_table.hpp"
#include "metering/usage.hpp"

namespace bedrock_meter::advice::lever_detail {

using metering::inference_scope;
using metering::latency_mode;
using metering::rate_entry;
using metering::service_tier;
using metering::token_usage;

inline std::uint64_t billable_input(const token_usage& u) {
  return u.input + u.cache_read + u.cache_write;
}

inline bool no_tokens(const token_usage& u) {
  return u.input == 0 && u.output == 0 && u.cache_read == 0 && u.cache_write == 0;
}

/// The dimensions a price is looked up by, plus the long-context flag it is applied with.
struct price_dims {
  std::uint32_t region = 0;  ///< index into the interned region names (< 2^20)
  inference_scope scope = inference_scope::in_region;
  service_tier tier = service_tier::standard;
  latency_mode latency = latency_mode::standard;
  bool batch = false;
  bool long_context = false;
  std::int32_t day = 0;  ///< days since 1970-01-01, UTC
};

/// The dimensions as one map key.
inline std::uint64_t pack(const price_dims& d) {
  std::uint64_t k = static_cast<std::uint32_t>(d.day);
  k |= std::uint64_t{d.region} << 32;
  k |= std::uint64_t{static_cast<std::uint8_t>(d.scope)} << 52;
  k |= std::uint64_t{static_cast<std::uint8_t>(d.tier)} << 54;
  k |= std::uint64_t{static_cast<std::uint8_t>(d.latency)} << 56;
  k |= std::uint64_t{d.batch} << 57;
  k |= std::uint64_t{d.long_context} << 58;
  return k;
}

/// `find_rate`, remembered per (model, dimensions): a window has few distinct keys, and the
/// levers ask for the same ones for every group.
class rate_lookup {
 public:
  rate_lookup(const metering::rate_table& table, const std::vector<std::string>& regions)
      : table_(table), regions_(regions) {}
  /// The entry for `model` priced at `d` (its long-context flag is ignored); nullptr: none.
  const rate_entry* find(std::string_view model, price_dims d);

 private:
  const metering::rate_table& table_;
  const std::vector<std::string>& regions_;  ///< region names by id (owned by the caller)
  std::string key_;                          ///< scratch: model '\0' packed dims
  std::unordered_map<std::string, const rate_entry*, metering::string_hash, std::equal_to<>> memo_;
};

/// Distinct system prefixes counted per group (beyond, the count stops growing).
inline constexpr std::size_t max_tracked_prefixes = 1024;

/// A set of non-zero 64-bit fingerprints that stops growing at `max_tracked_prefixes`: a flat
/// linear-probing table (at most 2048 slots), for counting distinct prefixes per group.
class bounded_set {
 public:
  void insert(std::uint64_t v) {
    if (v == 0) return;
    if (slots_.empty()) slots_.resize(16, 0);
    std::size_t i = slot_of(v);
    while (slots_[i] != 0) {
      if (slots_[i] == v) return;
      i = (i + 1) & (slots_.size() - 1);
    }
    if (size_ >= max_tracked_prefixes) return;
    slots_[i] = v;
    if (++size_ * 2 > slots_.size()) grow();
  }
  std::size_t size() const noexcept { return size_; }

 private:
  std::size_t slot_of(std::uint64_t v) const noexcept {
    return static_cast<std::size_t>((v * 0x9E3779B97F4A7C15ULL) >> 20) & (slots_.size() - 1);
  }
  void grow() {
    std::vector<std::uint64_t> old(slots_.size() * 2, 0);
    old.swap(slots_);
    for (const std::uint64_t v : old) {
      if (v == 0) continue;
      std::size_t i = slot_of(v);
      while (slots_[i] != 0) i = (i + 1) & (slots_.size() - 1);
      slots_[i] = v;
    }
  }
  std::vector<std::uint64_t> slots_;
  std::size_t size_ = 0;
};

/// The simulated caches of one (model, region, scope): 5-minute TTL, and 1-hour when the model's
/// caching rule offers it.
struct cache_domain {
  const metering::caching_rule* rule = nullptr;
  prefix_cache five_min{cache_ttl_5m_ms};
  std::optional<prefix_cache> one_hour;
};

/// Token sums of one pricing key of one group.
struct key_sums {
  price_dims dims;
  const rate_entry* entry = nullptr;  ///< the rows' own entry; nullptr: not repriceable
  cache_domain* domain = nullptr;     ///< the prompt-cache simulation of its rows (set on use)
  std::uint64_t requests = 0;
  token_usage all;
  money_total current = 0;               ///< the rows' total_cost
  std::uint64_t batchable_requests = 0;  ///< batch-eligible rows (before the batch entry check)
  token_usage batchable;
  money_total batchable_current = 0;
  std::uint64_t caching_requests = 0;  ///< rows already caching (with traits)
  token_usage caching;
  token_usage cache_baseline;  ///< caching candidates' billable input, all as uncached input
  token_usage sim_5m;          ///< the same tokens under the simulated policy, 5-minute TTL
  token_usage sim_1h;          ///< ... 1-hour TTL (cache_write_1h = cache_write)
};

/// What the simulated policy read and wrote for one group, under one TTL.
struct cache_tally {
  std::uint64_t reads = 0;   ///< requests that read
  std::uint64_t writes = 0;  ///< requests that wrote
  token_sum read_tokens = 0, write_tokens = 0;
  void add(const cache_step& s) {
    reads += s.read > 0 ? 1 : 0;
    writes += s.write > 0 ? 1 : 0;
    read_tokens += s.read;
    write_tokens += s.write;
  }
};

struct group {
  std::string team, app, model;
  std::unordered_map<std::uint64_t, key_sums> keys;  ///< by pack(dims)
  std::uint64_t last_key = 0;                        ///< pack(dims) of the group's previous row
  key_sums* last_sums = nullptr;  ///< its sums (rows of a group come in runs of one key)
  std::uint64_t requests = 0;
  log_histogram billable_input, uncached_input;               ///< per request
  std::vector<std::pair<std::string, token_sum>> operations;  ///< billable input by operation
  // Rows with request traits.
  std::uint64_t traced = 0, uncapped = 0, cap_hits = 0;
  log_histogram output;
  std::uint64_t cache_candidates = 0, cache_candidates_1h = 0, below_minimum = 0;
  std::uint64_t min_prefix_tokens = 0;
  token_sum candidate_input = 0;  ///< caching candidates' billable input
  cache_tally tally_5m, tally_1h;
  bounded_set system_prefixes;  ///< up to max_tracked_prefixes
  // Batch eligibility (rows not batch already).
  std::uint64_t ineligible_streaming = 0, ineligible_tools = 0, ineligible_other = 0;
};

/// What the emitters need besides a group.
struct lever_context {
  const options& opts;
  rate_lookup& rates;
  const std::vector<std::string>& models;  ///< distinct models of the rate table, table order
  const std::vector<std::string>& named;   ///< reprice_as, as base ids
};

/// Appends the levers of `g` to `out` (in lever order; each only when it applies).
void emit_levers(lever_context& c, const group& g, std::vector<lever>& out);

}  // namespace bedrock_meter::advice::lever_detail
