#include "metering/siphash.hpp"

#include <bit>
#include <cstring>

namespace bedrock_meter::metering {

namespace {

constexpr std::uint64_t rotl(std::uint64_t x, int b) noexcept { return (x << b) | (x >> (64 - b)); }

constexpr void round(std::uint64_t& v0, std::uint64_t& v1, std::uint64_t& v2,
                     std::uint64_t& v3) noexcept {
  v0 += v1;
  v1 = rotl(v1, 13);
  v1 ^= v0;
  v0 = rotl(v0, 32);
  v2 += v3;
  v3 = rotl(v3, 16);
  v3 ^= v2;
  v0 += v3;
  v3 = rotl(v3, 21);
  v3 ^= v0;
  v2 += v1;
  v1 = rotl(v1, 17);
  v1 ^= v2;
  v2 = rotl(v2, 32);
}

std::uint64_t load_le(const std::uint8_t* p) noexcept {
  std::uint64_t x;
  std::memcpy(&x, p, sizeof x);  // one unaligned load
  if constexpr (std::endian::native == std::endian::big) {
    std::uint64_t r = 0;
    for (int i = 0; i < 8; ++i, x >>= 8) r = (r << 8) | (x & 0xff);
    return r;
  }
  return x;
}

}  // namespace

siphash24::siphash24(const siphash_key& key) noexcept {
  const std::uint64_t k0 = load_le(key.data());
  const std::uint64_t k1 = load_le(key.data() + 8);
  v0_ = k0 ^ 0x736f6d6570736575ULL;
  v1_ = k1 ^ 0x646f72616e646f6dULL;
  v2_ = k0 ^ 0x6c7967656e657261ULL;
  v3_ = k1 ^ 0x7465646279746573ULL;
}

void siphash24::update(std::string_view bytes) noexcept {
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  std::size_t n = bytes.size();
  // Finish a word begun by an earlier call, a byte at a time.
  while (n > 0 && (length_ % 8) != 0) {
    tail_ |= static_cast<std::uint64_t>(*p++) << (8 * (length_ % 8));
    ++length_;
    --n;
    if (length_ % 8 == 0) {
      v3_ ^= tail_;
      round(v0_, v1_, v2_, v3_);
      round(v0_, v1_, v2_, v3_);
      v0_ ^= tail_;
      tail_ = 0;
    }
  }
  // Whole words straight from the input.
  for (; n >= 8; n -= 8, p += 8, length_ += 8) {
    const std::uint64_t m = load_le(p);
    v3_ ^= m;
    round(v0_, v1_, v2_, v3_);
    round(v0_, v1_, v2_, v3_);
    v0_ ^= m;
  }
  for (; n > 0; --n, ++length_) tail_ |= static_cast<std::uint64_t>(*p++) << (8 * (length_ % 8));
}

std::uint64_t siphash24::digest() const noexcept {
  std::uint64_t v0 = v0_, v1 = v1_, v2 = v2_, v3 = v3_;
  const std::uint64_t b = (static_cast<std::uint64_t>(length_) << 56) | tail_;
  v3 ^= b;
  round(v0, v1, v2, v3);
  round(v0, v1, v2, v3);
  v0 ^= b;
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) round(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

std::uint64_t siphash(const siphash_key& key, std::string_view bytes) noexcept {
  siphash24 h(key);
  h.update(bytes);
  return h.digest();
}

}  // namespace bedrock_meter::metering
