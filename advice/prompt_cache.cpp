#include "advice/prompt_cache.hpp"

#include <algorithm>
#include <bit>
#include <utility>

#include "advice/histogram.hpp"

namespace bedrock_meter::advice {
namespace {

/// bytes x tokens / bytes_in, in 128 bits (both counts come from the ledger), capped at tokens.
std::uint64_t tokens_of(std::uint64_t bytes, std::uint64_t tokens, std::uint64_t bytes_in) {
  const token_sum t = static_cast<token_sum>(bytes) * tokens / bytes_in;
  return t > tokens ? tokens : static_cast<std::uint64_t>(t);
}

}  // namespace

std::size_t prefix_cache::home(std::uint64_t hash) const noexcept {
  // Fingerprints are random already; the multiply spreads test hashes (1, 2, 3, ...) as well.
  // Fibonacci hashing: the top bits of the product (table_.size() == 1 << bits_).
  return static_cast<std::size_t>((hash * 0x9E3779B97F4A7C15ULL) >> (64 - bits_));
}

std::size_t prefix_cache::find(std::uint64_t hash) const noexcept {
  if (table_.empty() || hash == 0) return npos;
  for (std::size_t i = home(hash);; i = (i + 1) & (table_.size() - 1)) {
    if (table_[i].hash == hash) return i;
    if (table_[i].hash == 0) return npos;
  }
}

bool prefix_cache::live(std::uint64_t hash, std::int64_t now_ms) const {
  const std::size_t i = find(hash);
  return i != npos && now_ms - table_[i].at_ms <= ttl_ms_;
}

void prefix_cache::touch(std::uint64_t hash, std::int64_t now_ms) {
  if (hash == 0) return;
  if (const std::size_t at = find(hash); at != npos) {
    table_[at].at_ms = now_ms;  // its queue record is refreshed when it comes up
    return;
  }
  if ((size_ + 1) * 2 > table_.size()) rehash(std::max<std::size_t>(64, table_.size() * 2));
  std::size_t i = home(hash);
  while (table_[i].hash != 0) i = (i + 1) & (table_.size() - 1);
  table_[i] = slot{hash, now_ms};
  ++size_;
  order_.push_back(slot{hash, now_ms});
}

void prefix_cache::evict(std::int64_t now_ms) {
  while (!order_.empty() && now_ms - order_.front().at_ms > ttl_ms_) {
    const std::uint64_t hash = order_.front().hash;
    order_.pop_front();
    const std::size_t i = find(hash);
    if (i == npos) continue;
    if (now_ms - table_[i].at_ms > ttl_ms_) {
      erase(hash);
    } else {
      order_.push_back(table_[i]);  // touched since it was queued: comes up again later
    }
  }
  // Shrink after a burst (between 1/8 and 1/2 full: no rehash on every other call).
  if (table_.size() > 64 && size_ * 8 < table_.size()) rehash(table_.size() / 2);
}

void prefix_cache::erase(std::uint64_t hash) noexcept {
  const std::size_t mask = table_.size() - 1;
  std::size_t i = home(hash);
  while (table_[i].hash != hash) i = (i + 1) & mask;
  // Backward-shift deletion: pull later members of the probe run into the hole.
  for (std::size_t j = (i + 1) & mask; table_[j].hash != 0; j = (j + 1) & mask) {
    const std::size_t k = home(table_[j].hash);
    const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (stays) continue;
    table_[i] = table_[j];
    i = j;
  }
  table_[i] = slot{};
  --size_;
}

void prefix_cache::rehash(std::size_t capacity) {
  std::vector<slot> old = std::exchange(table_, std::vector<slot>(capacity));
  bits_ = static_cast<unsigned>(std::countr_zero(capacity));
  for (const slot& s : old) {
    if (s.hash == 0) continue;
    std::size_t i = home(s.hash);
    while (table_[i].hash != 0) i = (i + 1) & (capacity - 1);
    table_[i] = s;
  }
}

std::optional<prompt_shape> estimate_shape(const request_row& row) {
  if (row.bytes_in == 0 || row.full_prompt.hash == 0) return std::nullopt;
  prompt_shape p;
  p.input_tokens = row.input_tokens + row.cache_read_tokens + row.cache_write_tokens;
  p.system_hash = row.system_prefix.hash;
  p.conversation_hash = row.conversation_prefix.hash;
  p.full_hash = row.full_prompt.hash;
  p.system_tokens = tokens_of(row.system_prefix.bytes, p.input_tokens, row.bytes_in);
  p.conversation_tokens = tokens_of(row.conversation_prefix.bytes, p.input_tokens, row.bytes_in);
  p.full_tokens = tokens_of(row.full_prompt.bytes, p.input_tokens, row.bytes_in);
  return p;
}

cache_step simulate_request(prefix_cache& cache, const prompt_shape& p,
                            std::uint64_t min_prefix_tokens, std::int64_t now_ms) {
  cache.evict(now_ms);
  cache_step s;
  const bool conversation_hit = p.conversation_hash != 0 && cache.live(p.conversation_hash, now_ms);
  const bool system_hit =
      !conversation_hit && p.system_hash != 0 && cache.live(p.system_hash, now_ms);
  if (conversation_hit) s.read = p.conversation_tokens;
  if (system_hit) s.read = p.system_tokens;
  s.read = std::min(s.read, p.full_tokens);
  if (p.full_tokens >= min_prefix_tokens && p.full_tokens > s.read)
    s.write = p.full_tokens - s.read;

  // What is cached after this request: the checkpoint at the end of the prompt (which also holds
  // the conversation prefix) when written, what was read, and the system checkpoint whenever the
  // request read or wrote past it and it is long enough to be cached on its own.
  if (s.write > 0) {
    cache.touch(p.full_hash, now_ms);
    if (p.conversation_hash != 0) cache.touch(p.conversation_hash, now_ms);
  } else if (conversation_hit) {
    cache.touch(p.conversation_hash, now_ms);
  }
  const bool covered = s.write > 0 || conversation_hit || system_hit;
  if (covered && p.system_hash != 0 && p.system_tokens >= min_prefix_tokens) {
    cache.touch(p.system_hash, now_ms);
  }
  return s;
}

}  // namespace bedrock_meter::advice
