#include "aws/credentials.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace bedrock_meter::aws {
namespace {

using namespace std::chrono_literals;

// --- ISO 8601 ------------------------------------------------------------------------------------

TEST(CredentialIso8601, ParsesUtcAndOffsets) {
  const clock_time expected = std::chrono::sys_days{std::chrono::year{2026} / 11 / 26} + 12h;
  EXPECT_EQ(parse_iso8601("2026-11-26T12:00:00Z"), expected);
  EXPECT_EQ(parse_iso8601("2026-11-26t12:00:00z"), expected);
  EXPECT_EQ(parse_iso8601("2026-11-26T13:30:00+01:30"), expected);
  EXPECT_EQ(parse_iso8601("2026-11-26T07:00:00-0500"), expected);
  EXPECT_EQ(parse_iso8601("2026-11-26T12:00:00.250Z"), expected + 250ms);
  EXPECT_EQ(parse_iso8601("2026-11-26T12:00:00.000000001Z"), expected + 1ns);
  EXPECT_EQ(parse_iso8601("2024-02-29T00:00:00Z"),
            clock_time{std::chrono::sys_days{std::chrono::year{2024} / 2 / 29}});
  EXPECT_EQ(parse_iso8601("1970-01-01T00:00:00Z"), clock_time{});
}

TEST(CredentialIso8601, RejectsMalformed) {
  for (const char* bad :
       {"", "2026-11-26", "2026-11-26T12:00:00", "2026-11-26T12:00:00ZZ", "2026-13-01T00:00:00Z",
        "2025-02-29T00:00:00Z", "2026-11-26T24:00:00Z", "2026-11-26T12:60:00Z",
        "2026-11-26T12:00:00.Z", "2026/11/26T12:00:00Z", "2026-11-26T12:00:00+1",
        "2026-11-26T12:00:00+01:00x", "20x6-11-26T12:00:00Z"}) {
    EXPECT_FALSE(parse_iso8601(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace bedrock_meter::aws
