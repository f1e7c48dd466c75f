// Time-zone tests against the system's tzdata. Expected instants are the published DST rules
// (US: 2nd Sunday March / 1st Sunday November at 02:00; EU: last Sundays at 01:00 UTC; Lord Howe
// and Chatham per their TZ strings), cross-checked with Python's zoneinfo.
#include "metering/tz.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace bm = bedrock_meter::metering;
namespace chr = std::chrono;

namespace {

std::int64_t utc(int y, unsigned m, unsigned d, int h = 0, int mi = 0, int s = 0) {
  const chr::sys_days day{chr::year{y} / chr::month{m} / chr::day{d}};
  return (day + chr::hours{h} + chr::minutes{mi} + chr::seconds{s}).time_since_epoch().count();
}

constexpr std::int32_t hm(int h, int m = 0) { return h * 3600 + (h < 0 ? -m : m) * 60; }

bm::time_zone zone(const char* name) {
  auto r = bm::load_zone(name);
  EXPECT_TRUE(r.has_value()) << name << ": " << r.error().message;
  return r ? *r : bm::time_zone{};
}

void expect_switch(const bm::time_zone& z, std::int64_t at, std::int32_t before,
                   std::int32_t after) {
  EXPECT_EQ(z.offset_at(at - 1), before) << "one second before " << at;
  EXPECT_EQ(z.offset_at(at), after) << "at " << at;
}

}  // namespace

TEST(TzLoad, UtcIsZeroEverywhere) {
  const auto z = zone("UTC");
  EXPECT_EQ(z.offset_at(0), 0);
  EXPECT_EQ(z.offset_at(utc(2024, 7, 1)), 0);
  EXPECT_EQ(z.offset_at(utc(2300, 1, 1)), 0);
}

TEST(TzLoad, RejectsPathEscapesAndUnknownZones) {
  EXPECT_FALSE(bm::load_zone("../../etc/passwd"));
  EXPECT_FALSE(bm::load_zone("/etc/localtime"));
  const auto r = bm::load_zone("Mars/Olympus_Mons");
  EXPECT_FALSE(r);
  EXPECT_NE(r.error().message.find("Mars/Olympus_Mons"), std::string::npos);
}

TEST(TzLoad, ErrorsCarryKindAndOneLineMessage) {
  const auto escape = bm::load_zone("../../etc/passwd");
  ASSERT_FALSE(escape);
  EXPECT_EQ(escape.error().what, bm::error::kind::invalid_argument);
  EXPECT_EQ(escape.error().message, "invalid zone name");
  const auto missing = bm::load_zone("Mars/Olympus_Mons");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().what, bm::error::kind::not_found);
  EXPECT_EQ(missing.error().message, "unknown time zone: Mars/Olympus_Mons");
  const auto garbage = bm::parse_tzif("");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().what, bm::error::kind::bad_data);
  EXPECT_EQ(garbage.error().message, "not a TZif file");
  // value() on an error throws the message (boost::system::result finds the thrower by ADL).
  EXPECT_THROW((void)missing.value(), std::runtime_error);
}

TEST(TzParse, RejectsGarbageAndTruncation) {
  EXPECT_FALSE(bm::parse_tzif(""));
  EXPECT_FALSE(bm::parse_tzif("not a tzif file at all, but long enough to hold a header...."));
  // A real file cut in half.
  std::string berlin;
  {
    auto r = bm::load_zone("Europe/Berlin");
    ASSERT_TRUE(r);
  }
  FILE* f = std::fopen("/usr/share/zoneinfo/Europe/Berlin", "rb");
  ASSERT_NE(f, nullptr);
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) berlin.append(buf, n);
  std::fclose(f);
  EXPECT_TRUE(bm::parse_tzif(berlin));
  EXPECT_FALSE(bm::parse_tzif(std::string_view(berlin).substr(0, berlin.size() / 2)));
  // Version 1 only: the 32-bit table stops in 2038 and has no footer.
  std::string v1 = berlin;
  v1[4] = '\0';
  EXPECT_FALSE(bm::parse_tzif(v1));
}

TEST(TzNewYork, DstSwitchesFromTable) {
  const auto z = zone("America/New_York");
  expect_switch(z, utc(2024, 3, 10, 7), hm(-5), hm(-4));
  expect_switch(z, utc(2024, 11, 3, 6), hm(-4), hm(-5));
}

TEST(TzNewYork, DstSwitchesFromFooterFarAhead) {
  const auto z = zone("America/New_York");
  expect_switch(z, utc(2100, 3, 14, 7), hm(-5), hm(-4));
  expect_switch(z, utc(2100, 11, 7, 6), hm(-4), hm(-5));
}

TEST(TzBerlin, LastSundayRules) {
  const auto z = zone("Europe/Berlin");
  expect_switch(z, utc(2024, 3, 31, 1), hm(1), hm(2));
  expect_switch(z, utc(2024, 10, 27, 1), hm(2), hm(1));
  expect_switch(z, utc(2100, 3, 28, 1), hm(1), hm(2));
  expect_switch(z, utc(2100, 10, 31, 1), hm(2), hm(1));
}

TEST(TzLordHowe, HalfHourDstBothHemisphereEdges) {
  const auto z = zone("Australia/Lord_Howe");
  expect_switch(z, utc(2024, 4, 6, 15), hm(11), hm(10, 30));
  expect_switch(z, utc(2024, 10, 5, 15, 30), hm(10, 30), hm(11));
  expect_switch(z, utc(2099, 4, 4, 15), hm(11), hm(10, 30));
  expect_switch(z, utc(2099, 10, 3, 15, 30), hm(10, 30), hm(11));
  // Southern summer spans New Year: DST on both sides of it.
  EXPECT_EQ(z.offset_at(utc(2098, 12, 31, 23)), hm(11));
  EXPECT_EQ(z.offset_at(utc(2099, 1, 1, 1)), hm(11));
}

TEST(TzChatham, QuarterHourOffsets) {
  const auto z = zone("Pacific/Chatham");
  expect_switch(z, utc(2024, 4, 6, 14), hm(13, 45), hm(12, 45));
  expect_switch(z, utc(2024, 9, 28, 14), hm(12, 45), hm(13, 45));
  expect_switch(z, utc(2080, 4, 6, 14), hm(13, 45), hm(12, 45));
  expect_switch(z, utc(2080, 9, 28, 14), hm(12, 45), hm(13, 45));
}

TEST(TzKolkata, FixedHalfHourOffset) {
  const auto z = zone("Asia/Kolkata");
  EXPECT_EQ(z.offset_at(utc(2024, 1, 1)), hm(5, 30));
  EXPECT_EQ(z.offset_at(utc(2024, 7, 1)), hm(5, 30));
  EXPECT_EQ(z.offset_at(utc(2200, 7, 1)), hm(5, 30));
}

TEST(TzLocalToUtc, GapsAndOverlaps) {
  const auto z = zone("America/New_York");
  // Ordinary local time.
  EXPECT_EQ(z.first_instant_at_or_after_local(utc(2024, 6, 1, 0)), utc(2024, 6, 1, 4));
  // 02:30 on 2024-03-10 never happened: the first instant after it is the end of the gap.
  EXPECT_EQ(z.first_instant_at_or_after_local(utc(2024, 3, 10, 2, 30)), utc(2024, 3, 10, 7));
  // 01:30 on 2024-11-03 happened twice: first occurrence (EDT).
  EXPECT_EQ(z.first_instant_at_or_after_local(utc(2024, 11, 3, 1, 30)), utc(2024, 11, 3, 5, 30));
  // Lord Howe skips 02:00-02:30 in October.
  const auto lh = zone("Australia/Lord_Howe");
  EXPECT_EQ(lh.first_instant_at_or_after_local(utc(2024, 10, 6, 2, 10)), utc(2024, 10, 5, 15, 30));
}

TEST(TzPosix, ParsesFooterForms) {
  auto ny = bm::parse_posix_tz("EST5EDT,M3.2.0,M11.1.0");
  ASSERT_TRUE(ny);
  EXPECT_EQ(ny->std_offset, hm(-5));
  EXPECT_TRUE(ny->has_dst);
  EXPECT_EQ(ny->dst_offset, hm(-4));
  EXPECT_EQ(ny->start.month, 3);
  EXPECT_EQ(ny->start.week, 2);
  EXPECT_EQ(ny->start.time, hm(2));

  auto lh = bm::parse_posix_tz("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
  ASSERT_TRUE(lh);
  EXPECT_EQ(lh->std_offset, hm(10, 30));
  EXPECT_EQ(lh->dst_offset, hm(11));

  auto ch = bm::parse_posix_tz("<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45");
  ASSERT_TRUE(ch);
  EXPECT_EQ(ch->dst_offset, hm(13, 45));  // default: one hour ahead of standard
  EXPECT_EQ(ch->start.time, hm(2, 45));

  auto in = bm::parse_posix_tz("IST-5:30");
  ASSERT_TRUE(in);
  EXPECT_FALSE(in->has_dst);
  EXPECT_EQ(in->offset_at(0), hm(5, 30));

  // Julian forms: J60 is March 1 in every year; 59 (zero-based) is Feb 29 in leap years.
  auto j = bm::parse_posix_tz("XST0XDT,J60/0,300/0");
  ASSERT_TRUE(j);
  EXPECT_EQ(j->offset_at(utc(2024, 2, 29, 23, 59, 59)), 0);
  EXPECT_EQ(j->offset_at(utc(2024, 3, 1)), 3600);
  EXPECT_EQ(j->offset_at(utc(2023, 3, 1)), 3600);
  // Day 300 zero-based of 2024 (leap) is Oct 27; end at 00:00 local DST = Oct 26 23:00 UTC.
  EXPECT_EQ(j->offset_at(utc(2024, 10, 26, 22, 59, 59)), 3600);
  EXPECT_EQ(j->offset_at(utc(2024, 10, 26, 23)), 0);

  EXPECT_FALSE(bm::parse_posix_tz(""));
  EXPECT_FALSE(bm::parse_posix_tz("EST"));
  EXPECT_FALSE(bm::parse_posix_tz("EST5EDT"));  // DST without rules
  EXPECT_FALSE(bm::parse_posix_tz("EST5EDT,M13.1.0,M11.1.0"));
  EXPECT_FALSE(bm::parse_posix_tz("EST5EDT,M3.2.0,M11.1.0junk"));
  EXPECT_FALSE(bm::parse_posix_tz("<+1030-10:30"));
}
