#pragma once
/// SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit pseudo-random function. The prompt
/// fingerprints use it so that a fingerprint can be compared with another from the same
/// installation but cannot be matched against a guessed text without the installation's key.
/// Streaming: feed the bytes in any pieces, and read the hash of what was fed so far at any
/// point without ending the stream (prefixes of one prompt share one pass).
///
/// Pure code, no allocation.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace bedrock_meter::metering {

/// A 128-bit SipHash key.
using siphash_key = std::array<std::uint8_t, 16>;

class siphash24 {
 public:
  explicit siphash24(const siphash_key& key) noexcept;

  /// Appends bytes to the message.
  void update(std::string_view bytes) noexcept;
  /// The SipHash-2-4 of everything fed so far; the stream can go on afterwards.
  [[nodiscard]] std::uint64_t digest() const noexcept;

 private:
  std::uint64_t v0_, v1_, v2_, v3_;
  std::uint64_t tail_ = 0;  ///< the bytes of an unfinished 8-byte word, little-endian
  std::size_t length_ = 0;  ///< bytes fed in all
};

/// One-shot SipHash-2-4 of `bytes`.
std::uint64_t siphash(const siphash_key& key, std::string_view bytes) noexcept;

}  // namespace bedrock_meter::metering
