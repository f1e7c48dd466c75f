// SipHash-2-4 against the reference vectors of Aumasson and Bernstein's reference implementation
// (vectors.h: key 00..0f, message i = bytes 00..i-1), fed whole and in every split.
#include "metering/siphash.hpp"

#include <gtest/gtest.h>

#include <string>

namespace bedrock_meter::metering {
namespace {

const siphash_key reference_key = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

std::string message(std::size_t n) {
  std::string m;
  for (std::size_t i = 0; i < n; ++i) m.push_back(static_cast<char>(i));
  return m;
}

TEST(SipHash, MatchesTheReferenceVectors) {
  const std::uint64_t expected[] = {0x726fdb47dd0e0e31, 0x74f839c593dc67fd, 0x0d6c8009d9a94f5a,
                                    0x85676696d7fb7e2d, 0xcf2794e0277187b7, 0x18765564cd99a68d,
                                    0xcbc9466e58fee3ce, 0xab0200f58b01d137, 0x93f5f5799a932462,
                                    0x9e0082df0ba9e4b0};
  for (std::size_t n = 0; n < std::size(expected); ++n)
    EXPECT_EQ(siphash(reference_key, message(n)), expected[n]) << "length " << n;
  // The paper's worked example: 15 bytes.
  EXPECT_EQ(siphash(reference_key, message(15)), 0xa129ca6149be45e5u);
}

TEST(SipHash, AnySplitOfTheInputGivesTheSameHash) {
  const std::string m = message(40);
  const std::uint64_t whole = siphash(reference_key, m);
  for (std::size_t a = 0; a <= m.size(); ++a) {
    for (std::size_t b = a; b <= m.size(); b += 3) {
      siphash24 h(reference_key);
      h.update(std::string_view(m).substr(0, a));
      h.update(std::string_view(m).substr(a, b - a));
      h.update(std::string_view(m).substr(b));
      ASSERT_EQ(h.digest(), whole) << a << "/" << b;
    }
  }
}

TEST(SipHash, ADigestMidwayIsTheHashOfThePrefixAndTheStreamGoesOn) {
  siphash24 h(reference_key);
  const std::string m = message(15);
  h.update(std::string_view(m).substr(0, 7));
  EXPECT_EQ(h.digest(), siphash(reference_key, message(7)));
  h.update(std::string_view(m).substr(7));
  EXPECT_EQ(h.digest(), 0xa129ca6149be45e5u);
}

}  // namespace
}  // namespace bedrock_meter::metering
