// The protocol-independent pieces of the HTTP/2 session: preface detection for the cleartext
// port shared with HTTP/1.1, the forbidden response headers, and the windowed counter behind
// the rapid-reset and flood defences.
#include <gtest/gtest.h>

#include <chrono>

#include "proxy/http2_session.hpp"

namespace bedrock_meter::proxy {
namespace {

TEST(Http2Preface, FullPrefaceIsHttp2) {
  EXPECT_EQ(match_h2_preface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), preface_match::http2);
  // Bytes after the preface (the client's SETTINGS) do not change the verdict.
  EXPECT_EQ(match_h2_preface(std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12", 27)),
            preface_match::http2);
}

TEST(Http2Preface, PrefixNeedsMoreBytes) {
  EXPECT_EQ(match_h2_preface(""), preface_match::need_more);
  EXPECT_EQ(match_h2_preface("P"), preface_match::need_more);
  EXPECT_EQ(match_h2_preface("PRI * HTTP/2.0\r\n"), preface_match::need_more);
}

TEST(Http2Preface, Http1RequestsAreHttp1) {
  EXPECT_EQ(match_h2_preface("POST /model/x/invoke HTTP/1.1\r\n"), preface_match::http1);
  EXPECT_EQ(match_h2_preface("G"), preface_match::http1);
  // Shares a prefix with the preface, then differs: decided as soon as it differs.
  EXPECT_EQ(match_h2_preface("PRI * HTTP/1.1"), preface_match::http1);
  EXPECT_EQ(match_h2_preface("PUT"), preface_match::http1);
}

TEST(Http2Headers, ConnectionSpecificHeadersAreDropped) {
  for (const char* h : {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                        "upgrade", "te"})
    EXPECT_TRUE(is_connection_specific_header(h)) << h;
  for (const char* h : {"content-type", "x-amzn-requestid", "x-amzn-bedrock-input-token-count",
                        "content-length", "date"})
    EXPECT_FALSE(is_connection_specific_header(h)) << h;
}

TEST(Http2RateWindow, TripsOnlyAboveTheLimitWithinOneWindow) {
  using namespace std::chrono_literals;
  rate_window rw(3, 1000ms);
  const auto t0 = std::chrono::steady_clock::time_point{} + 10s;
  EXPECT_FALSE(rw.hit(t0));
  EXPECT_FALSE(rw.hit(t0 + 100ms));
  EXPECT_FALSE(rw.hit(t0 + 200ms));
  EXPECT_TRUE(rw.hit(t0 + 300ms));  // the 4th in one window
}

TEST(Http2RateWindow, NewWindowStartsCountingAgain) {
  using namespace std::chrono_literals;
  rate_window rw(2, 1000ms);
  const auto t0 = std::chrono::steady_clock::time_point{} + 10s;
  EXPECT_FALSE(rw.hit(t0));
  EXPECT_FALSE(rw.hit(t0 + 900ms));
  EXPECT_FALSE(rw.hit(t0 + 1000ms));  // window elapsed: this is the first of a new one
  EXPECT_FALSE(rw.hit(t0 + 1500ms));
  EXPECT_TRUE(rw.hit(t0 + 1600ms));
}

}  // namespace
}  // namespace bedrock_meter::proxy
