// The protocol-independent pieces of the HTTP/2 session: preface detection for the cleartext
// port shared with HTTP/1.1, the forbidden response headers, and the windowed counter behind
// the rapid-reset and flood defences.
#include <gtest/gtest.h>

#include <chrono>

#include "config/config.hpp"
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
  for (const char* h :
       {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"})
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

constexpr std::string_view base_yaml = R"(
listeners: [{address: 127.0.0.1, port: 0}]
upstream: {region: us-east-1, credentials: {source: environment}}
auth:
  access_keys: [{access_key_id: BMAKTESTSEARCH0001, secret_access_key: x, team: a, app: b}]
)";

TEST(Http2Config, DefaultsWithoutASection) {
  const auto r = config::load_string(base_yaml, "config.yaml");
  ASSERT_TRUE(r.value) << (r.errors.empty() ? "" : r.errors.front().to_string());
  EXPECT_EQ(r.value->http2.max_concurrent_streams, 100u);
  EXPECT_EQ(r.value->http2.max_header_list_bytes, 16u * 1024);
  EXPECT_EQ(r.value->http2.flood_window, std::chrono::milliseconds(1000));
}

TEST(Http2Config, SectionIsReadAndValidated) {
  const auto ok = config::load_string(
      std::string(base_yaml) +
          "http2: {max_concurrent_streams: 8, max_header_list_bytes: 4096, "
          "max_resets_per_window: 20, max_settings_per_window: 5, max_pings_per_window: 6, "
          "max_empty_frames_per_window: 7, flood_window: 250ms}\n",
      "config.yaml");
  ASSERT_TRUE(ok.value) << (ok.errors.empty() ? "" : ok.errors.front().to_string());
  const auto& h = ok.value->http2;
  EXPECT_EQ(h.max_concurrent_streams, 8u);
  EXPECT_EQ(h.max_header_list_bytes, 4096u);
  EXPECT_EQ(h.max_resets_per_window, 20u);
  EXPECT_EQ(h.max_settings_per_window, 5u);
  EXPECT_EQ(h.max_pings_per_window, 6u);
  EXPECT_EQ(h.max_empty_frames_per_window, 7u);
  EXPECT_EQ(h.flood_window, std::chrono::milliseconds(250));

  const auto bad = config::load_string(
      std::string(base_yaml) + "http2: {max_header_list_bytes: 10, max_streams: 3}\n",
      "config.yaml");
  EXPECT_FALSE(bad.value);
  bool size_error = false, unknown_key = false;
  for (const auto& e : bad.errors) {
    size_error |= e.path == "http2.max_header_list_bytes";
    unknown_key |= e.path.find("max_streams") != std::string::npos;
  }
  EXPECT_TRUE(size_error);
  EXPECT_TRUE(unknown_key);
}

}  // namespace
}  // namespace bedrock_meter::proxy
