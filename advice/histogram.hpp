#pragma once
/// A bounded log-linear histogram of token counts (per request): exact below 1024, then 64
/// sub-buckets per power of two, so a bucket above the exact range is less than 1/64 of its
/// values wide. Memory grows with the largest value seen, never with the number of values (at
/// most 4480 buckets). Buckets above the exact range also keep the sum of their values, so
/// "tokens above a threshold" is exact for every bucket wholly above it. Header-only, pure code,
/// not thread-safe.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bedrock_meter::advice {

/// Token sums over many requests: 128 bits, so no count read from a ledger can overflow them.
__extension__ typedef unsigned __int128 token_sum;

class log_histogram {
 public:
  static constexpr std::uint64_t exact_limit = 1024;  ///< values below are their own bucket
  static constexpr unsigned exact_bits = 10;          ///< log2(exact_limit)
  static constexpr unsigned sub_bits = 6;             ///< 64 sub-buckets per power of two
  static constexpr std::uint64_t sub_count = 1u << sub_bits;
  static constexpr std::size_t max_buckets = exact_limit + (64 - exact_bits) * sub_count;

  /// The bucket a value falls in.
  static constexpr std::size_t bucket_of(std::uint64_t v) noexcept {
    if (v < exact_limit) return static_cast<std::size_t>(v);
    const unsigned e = static_cast<unsigned>(std::bit_width(v)) - 1;  // >= exact_bits
    const std::uint64_t sub = (v >> (e - sub_bits)) & (sub_count - 1);
    return static_cast<std::size_t>(exact_limit + (e - exact_bits) * sub_count + sub);
  }
  /// The smallest value bucket `b` holds.
  static constexpr std::uint64_t lowest(std::size_t b) noexcept {
    if (b < exact_limit) return b;
    const std::uint64_t i = b - exact_limit;
    const unsigned e = static_cast<unsigned>(exact_bits + i / sub_count);
    return (sub_count + i % sub_count) << (e - sub_bits);
  }
  /// The largest value bucket `b` holds.
  static constexpr std::uint64_t highest(std::size_t b) noexcept {
    if (b < exact_limit) return b;
    const unsigned e = static_cast<unsigned>(exact_bits + (b - exact_limit) / sub_count);
    return lowest(b) + ((std::uint64_t{1} << (e - sub_bits)) - 1);
  }

  void add(std::uint64_t v) {
    const std::size_t b = bucket_of(v);
    if (b >= counts_.size()) counts_.resize(b + 1, 0);
    ++counts_[b];
    if (b >= exact_limit) {
      const std::size_t i = b - exact_limit;
      if (i >= sums_.size()) sums_.resize(i + 1, 0);
      sums_[i] += v;
    }
    ++count_;
    sum_ += v;
  }

  std::uint64_t count() const noexcept { return count_; }
  token_sum sum() const noexcept { return sum_; }
  double mean() const noexcept {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
  }

  /// Nearest rank: the bucket holding the ceil(q x count)-th smallest value, reported as the
  /// largest value that bucket can hold (exact below 1024; above, at most 1/64 high). A cap set
  /// there therefore cuts no value of its own bucket. 0 when empty.
  std::uint64_t quantile(double q) const noexcept {
    if (count_ == 0) return 0;
    // In parts per million, with integer ceiling: 0.99 x 1000 must be rank 990, not 991.
    const auto ppm = static_cast<token_sum>(std::llround(std::clamp(q, 0.0, 1.0) * 1e6));
    const auto want = static_cast<std::uint64_t>((ppm * count_ + 999'999) / 1'000'000);
    const std::uint64_t rank = std::clamp<std::uint64_t>(want, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < counts_.size(); ++b) {
      seen += counts_[b];
      if (seen >= rank) return highest(b);
    }
    return highest(counts_.size() - 1);
  }

  /// The sum over every value of max(0, v - c). Exact for buckets wholly above `c`; the bucket
  /// holding `c` (above the exact range) adds max(0, its sum - its count x c), a lower bound
  /// that is at most one bucket's width short per value.
  token_sum excess_above(std::uint64_t c) const noexcept {
    token_sum total = 0;
    for (std::size_t b = bucket_of(c); b < counts_.size(); ++b) {
      const token_sum s = bucket_sum(b);
      const token_sum floor = static_cast<token_sum>(counts_[b]) * c;
      if (s > floor) total += s - floor;
    }
    return total;
  }

  /// How many values are greater than `c`. Exact below 1024 and for buckets wholly above `c`;
  /// values sharing `c`'s bucket above the exact range are counted as not above it.
  std::uint64_t count_above(std::uint64_t c) const noexcept {
    std::uint64_t n = 0;
    for (std::size_t b = bucket_of(c) + 1; b < counts_.size(); ++b) n += counts_[b];
    return n;
  }

  /// Buckets allocated (memory is this times about 16 bytes): for tests.
  std::size_t buckets() const noexcept { return counts_.size(); }

 private:
  token_sum bucket_sum(std::size_t b) const noexcept {
    if (b < exact_limit) return static_cast<token_sum>(counts_[b]) * b;
    return sums_[b - exact_limit];
  }

  std::vector<std::uint64_t> counts_;  ///< by bucket, grown to the largest bucket used
  std::vector<token_sum> sums_;        ///< by bucket - exact_limit
  std::uint64_t count_ = 0;
  token_sum sum_ = 0;
};

}  // namespace bedrock_meter::advice
