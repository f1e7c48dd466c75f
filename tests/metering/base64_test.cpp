// base64_decode on its own: the usage observer decodes every InvokeModelWithResponseStream chunk
// with it, so the edge cases (padding, bad characters, impossible lengths) are pinned here.
#include "metering/base64.hpp"

#include <gtest/gtest.h>

#include <string>

namespace bm = bedrock_meter::metering;

namespace {

std::string decoded(std::string_view in) {
  std::string out = "stale";
  EXPECT_TRUE(bm::base64_decode(in, out)) << in;
  return out;
}

}  // namespace

TEST(Base64, DecodesEveryPaddingForm) {
  EXPECT_EQ(decoded(""), "");
  EXPECT_EQ(decoded("Zg=="), "f");
  EXPECT_EQ(decoded("Zm8="), "fo");
  EXPECT_EQ(decoded("Zm9v"), "foo");
  EXPECT_EQ(decoded("Zm9vYg"), "foob");  // padding may be left out
  EXPECT_EQ(decoded("Zm9vYmE="), "fooba");
  EXPECT_EQ(decoded("Zm9vYmFy"), "foobar");
  EXPECT_EQ(decoded("eyJieXRlcyI6MX0="), "{\"bytes\":1}");
  EXPECT_EQ(decoded("+/+/"), "\xfb\xff\xbf");
}

TEST(Base64, RejectsBadCharactersAndLengths) {
  std::string out;
  EXPECT_FALSE(bm::base64_decode("Zm9v!", out));      // length 5: one character left over
  EXPECT_FALSE(bm::base64_decode("Zm-v", out));       // URL-safe alphabet is not Bedrock's
  EXPECT_FALSE(bm::base64_decode("Zm9v\nYmF", out));  // a newline is no base64 character
  EXPECT_FALSE(bm::base64_decode("Z===", out));
}
