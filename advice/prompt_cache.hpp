#pragma once
/// The prompt-cache simulation behind the prompt_caching lever: what a request that does not use
/// prompt caching would have read and written had it placed a cache checkpoint after its system
/// prompt + tools and one at the end of its prompt. Internal to bm_advice; pure code, not
/// thread-safe.
///
/// Memory is bounded by the prefixes live within the TTL: a prefix not touched for longer than
/// the TTL is evicted.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "advice/advice.hpp"

namespace bedrock_meter::advice {

/// Bedrock's prompt-cache lifetimes (since the last read or write of a prefix).
inline constexpr std::int64_t cache_ttl_5m_ms = 5 * 60 * 1000;
inline constexpr std::int64_t cache_ttl_1h_ms = 60 * 60 * 1000;

/// The prefix hashes one simulated cache holds (one model, region and scope; one TTL), each with
/// the time it was last written or read. A flat open-addressing table (no allocation per prefix:
/// the advisor touches millions) and a queue with one record per held prefix, oldest first but
/// for refreshed ones, which go back to the end when their record comes up. A prefix is dropped
/// once untouched for longer than the TTL (at the latest about two TTLs after its last touch), so
/// memory is bounded by the prefixes touched within the last two TTLs.
class prefix_cache {
 public:
  explicit prefix_cache(std::int64_t ttl_ms) : ttl_ms_(ttl_ms) {}

  /// Whether `hash` was written or read within the TTL before `now_ms` (inclusive).
  bool live(std::uint64_t hash, std::int64_t now_ms) const;
  /// Records a write or read of `hash` (not 0) at `now_ms` (not before any earlier touch).
  void touch(std::uint64_t hash, std::int64_t now_ms);
  /// Drops prefixes not touched within the TTL before `now_ms`.
  void evict(std::int64_t now_ms);
  /// Prefixes held (live, or expired and not yet dropped).
  std::size_t size() const noexcept { return size_; }
  std::int64_t ttl_ms() const noexcept { return ttl_ms_; }

 private:
  struct slot {
    std::uint64_t hash = 0;  ///< 0: empty
    std::int64_t at_ms = 0;
  };
  static constexpr std::size_t npos = ~std::size_t{0};
  std::size_t home(std::uint64_t hash) const noexcept;
  std::size_t find(std::uint64_t hash) const noexcept;  ///< its slot, or npos
  void erase(std::uint64_t hash) noexcept;
  void rehash(std::size_t capacity);

  std::int64_t ttl_ms_;
  std::vector<slot> table_;  ///< linear probing; capacity a power of two, at most half full
  unsigned bits_ = 0;        ///< log2 of the table's capacity
  std::size_t size_ = 0;
  std::deque<slot> order_;  ///< one record per held hash: (hash, last touch when queued)
};

/// A request's prompt in estimated tokens: each prefix's bytes times the request's own token
/// density (billable input tokens / request body bytes).
struct prompt_shape {
  std::uint64_t system_hash = 0;        ///< 0: no system prompt or tools
  std::uint64_t conversation_hash = 0;  ///< 0: a single-turn request
  std::uint64_t full_hash = 0;
  std::uint64_t system_tokens = 0;
  std::uint64_t conversation_tokens = 0;
  std::uint64_t full_tokens = 0;
  std::uint64_t input_tokens = 0;  ///< billable input: input + cache read + cache write
};

/// The shape of `row`; nullopt when it cannot be estimated (no body bytes, no prompt hash).
/// Every estimate is capped at the billable input.
std::optional<prompt_shape> estimate_shape(const request_row& row);

/// What one request reads from and writes to the cache under the policy.
struct cache_step {
  std::uint64_t read = 0;   ///< tokens read (cache_read)
  std::uint64_t write = 0;  ///< tokens written (cache_write)
};

/// One request under the policy, at `now_ms`: it reads the longest live prefix (its conversation
/// prefix, else its system prefix) and, when its full prompt is at least `min_prefix_tokens`,
/// writes the rest of its prompt (full - read). Prefixes shorter than the minimum are never
/// written. Touches (refreshes) what it read and wrote, after evicting what has expired.
cache_step simulate_request(prefix_cache& cache, const prompt_shape& p,
                            std::uint64_t min_prefix_tokens, std::int64_t now_ms);

}  // namespace bedrock_meter::advice
