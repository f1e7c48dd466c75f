#include "metering/event_stream.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace bedrock_meter::metering {
namespace {

// ---------------------------------------------------------------------------------------------
// Helpers

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string fixture_dir() { return std::string(BM_TEST_DATA_DIR) + "/eventstream/"; }

/// An owned copy of an event_message (the views die with the callback).
struct frame {
  std::string message_type;
  std::string event_type;
  std::string content_type;
  std::string payload;
  bool operator==(const frame&) const = default;
};

std::ostream& operator<<(std::ostream& os, const frame& f) {
  return os << "{" << f.message_type << ", " << f.event_type << ", " << f.content_type << ", "
            << f.payload.size() << " bytes}";
}

struct decode_outcome {
  std::vector<frame> frames;
  event_stream_error error = event_stream_error::none;
  std::size_t max_buffered = 0;
  std::size_t final_buffered = 0;
  std::uint64_t frame_count = 0;
};

/// A chunking: given the stream size, the chunk sizes to feed (summing to the size).
struct chunking {
  std::string name;
  std::function<std::vector<std::size_t>(std::size_t)> sizes;
};

std::vector<std::size_t> fixed_chunks(std::size_t total, std::size_t n) {
  std::vector<std::size_t> out;
  for (std::size_t done = 0; done < total; done += n) out.push_back(std::min(n, total - done));
  return out;
}

std::vector<std::size_t> random_chunks(std::size_t total, std::uint32_t seed, std::size_t max) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::size_t> dist(1, max);
  std::vector<std::size_t> out;
  for (std::size_t done = 0; done < total;) {
    const std::size_t n = std::min(dist(rng), total - done);
    out.push_back(n);
    done += n;
  }
  return out;
}

/// Whole, 1-byte, and several seeded random chunkings: the proxy hands the decoder whatever the
/// network delivered, so every result must be the same whatever the chunk boundaries.
std::vector<chunking> all_chunkings() {
  std::vector<chunking> out;
  out.push_back({"whole", [](std::size_t n) { return std::vector<std::size_t>{n}; }});
  out.push_back({"1-byte", [](std::size_t n) { return fixed_chunks(n, 1); }});
  out.push_back({"7-byte", [](std::size_t n) { return fixed_chunks(n, 7); }});
  const std::array<std::pair<std::uint32_t, std::size_t>, 6> randoms{
      {{1, 3}, {2, 17}, {3, 64}, {42, 300}, {1234, 5000}, {99, 70000}}};
  for (const auto& [seed, max] : randoms) {
    out.push_back(
        {"random(seed=" + std::to_string(seed) + ",max=" + std::to_string(max) + ")",
         [seed = seed, max = max](std::size_t n) { return random_chunks(n, seed, max); }});
  }
  return out;
}

decode_outcome decode_with(std::string_view bytes, const std::vector<std::size_t>& sizes,
                           std::uint32_t max_frame = max_event_frame_bytes) {
  decode_outcome out;
  event_stream_decoder dec(max_frame);
  const auto on_message = [&out](const event_message& m) {
    out.frames.push_back({std::string(m.message_type), std::string(m.event_type),
                          std::string(m.content_type), std::string(m.payload)});
  };
  std::size_t pos = 0;
  for (const std::size_t n : sizes) {
    out.error = dec.feed(bytes.substr(pos, n), on_message);
    pos += n;
    out.max_buffered = std::max(out.max_buffered, dec.buffered());
  }
  out.final_buffered = dec.buffered();
  out.frame_count = dec.frames();
  EXPECT_EQ(out.error, dec.error());
  return out;
}

/// Decodes `bytes` under every chunking; each must agree with the whole-input decode.
decode_outcome decode_every_way(std::string_view bytes,
                                std::uint32_t max_frame = max_event_frame_bytes) {
  const decode_outcome whole = decode_with(bytes, {bytes.size()}, max_frame);
  for (const chunking& c : all_chunkings()) {
    SCOPED_TRACE(c.name);
    const decode_outcome got = decode_with(bytes, c.sizes(bytes.size()), max_frame);
    EXPECT_EQ(got.frames, whole.frames);
    EXPECT_EQ(got.error, whole.error);
    EXPECT_EQ(got.frame_count, whole.frame_count);
  }
  return whole;
}

/// Builds a frame around an arbitrary (possibly malformed) header block, with correct CRCs, so
/// tests reach the header parser.
std::string raw_frame(std::string_view header_block, std::string_view payload,
                      std::uint32_t headers_len_override = 0xFFFFFFFFu) {
  const auto be32 = [](std::string& s, std::uint32_t v) {
    s.push_back(static_cast<char>(v >> 24));
    s.push_back(static_cast<char>(v >> 16));
    s.push_back(static_cast<char>(v >> 8));
    s.push_back(static_cast<char>(v));
  };
  std::string out;
  const auto total = static_cast<std::uint32_t>(12 + header_block.size() + payload.size() + 4);
  be32(out, total);
  be32(out, headers_len_override != 0xFFFFFFFFu ? headers_len_override
                                                : static_cast<std::uint32_t>(header_block.size()));
  be32(out, crc32(out));
  out.append(header_block);
  out.append(payload);
  be32(out, crc32(out));
  return out;
}

/// A prelude with a valid CRC and arbitrary lengths.
std::string raw_prelude(std::uint32_t total, std::uint32_t headers_len) {
  std::string out;
  for (const std::uint32_t v : {total, headers_len}) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
  }
  const std::uint32_t c = crc32(out);
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(c >> shift));
  return out;
}

std::uint32_t reference_crc32(std::string_view s) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (const char ch : s) {
    c ^= static_cast<unsigned char>(ch);
    for (int k = 0; k < 8; ++k) c = (c & 1u) != 0 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
  }
  return ~c;
}

std::string random_bytes(std::mt19937& rng, std::size_t n) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(byte(rng));
  return s;
}

/// A synthetic stream exercising varied sizes, including a frame far larger than most chunks.
struct synthetic_stream {
  std::string bytes;
  std::vector<frame> frames;
  std::size_t largest = 0;
};

synthetic_stream make_synthetic_stream() {
  synthetic_stream s;
  std::mt19937 rng(7);
  const auto add_event = [&s](std::string_view type, std::string payload) {
    const std::string f = encode_event(type, payload);
    s.largest = std::max(s.largest, f.size());
    s.bytes += f;
    s.frames.push_back({"event", std::string(type), "application/json", std::move(payload)});
  };
  add_event("messageStart", R"({"role":"assistant"})");
  add_event("empty", "");
  for (std::size_t n : {1u, 7u, 8u, 9u, 63u, 64u, 65u, 1000u})
    add_event("chunk", std::string(n, 'x'));
  add_event("binary", random_bytes(rng, 300));  // NULs and high bytes in the payload
  add_event("big", random_bytes(rng, 200000));  // several random chunks long
  add_event("after-big", R"({"k":1})");
  const std::string ex = encode_exception("throttlingException", R"({"message":"slow down"})");
  s.largest = std::max(s.largest, ex.size());
  s.bytes += ex;
  s.frames.push_back(
      {"exception", "throttlingException", "application/json", R"({"message":"slow down"})"});
  return s;
}

// ---------------------------------------------------------------------------------------------
// CRC32

TEST(Crc32, MatchesZlibCheckValues) {
  EXPECT_EQ(crc32(""), 0u);
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
  EXPECT_EQ(crc32("The quick brown fox jumps over the lazy dog"), 0x414FA339u);
}

TEST(Crc32, SlicingMatchesBitwiseReferenceAtEveryLengthAndAlignment) {
  std::mt19937 rng(11);
  const std::string data = random_bytes(rng, 300);
  for (std::size_t off = 0; off < 9; ++off) {
    for (std::size_t len = 0; off + len <= data.size(); len += 1 + len / 8) {
      const std::string_view s = std::string_view(data).substr(off, len);
      ASSERT_EQ(crc32(s), reference_crc32(s)) << "off=" << off << " len=" << len;
    }
  }
}

TEST(Crc32, SeedChainsLikeZlib) {
  const std::string a = "hello, ";
  const std::string b = "event stream";
  EXPECT_EQ(crc32(b, crc32(a)), crc32(a + b));
}

// ---------------------------------------------------------------------------------------------
// Encoder / decoder round trip

TEST(EventStream, RoundTripEveryChunking) {
  const synthetic_stream s = make_synthetic_stream();
  const decode_outcome out = decode_every_way(s.bytes);
  EXPECT_EQ(out.error, event_stream_error::none);
  EXPECT_EQ(out.frames, s.frames);
  EXPECT_EQ(out.frame_count, s.frames.size());
  EXPECT_EQ(out.final_buffered, 0u);
}

TEST(EventStream, EveryTwoWaySplitOfAFrameDecodes) {
  const std::string f = encode_event("contentBlockDelta", R"({"delta":{"text":"hi"}})");
  const std::string two = f + f;
  for (std::size_t cut = 0; cut <= two.size(); ++cut) {
    const decode_outcome out = decode_with(two, {cut, two.size() - cut});
    ASSERT_EQ(out.error, event_stream_error::none) << cut;
    ASSERT_EQ(out.frames.size(), 2u) << cut;
    EXPECT_EQ(out.frames[1].payload, R"({"delta":{"text":"hi"}})");
    EXPECT_EQ(out.final_buffered, 0u);
  }
}

TEST(EventStream, EncodesHeadersInBedrockOrder) {
  const std::string f = encode_event("chunk", "{}");
  // total(4) headers(4) crc(4), then `:event-type` first as Bedrock sends it.
  ASSERT_GT(f.size(), 13u);
  EXPECT_EQ(static_cast<unsigned char>(f[12]), std::string_view(":event-type").size());
  EXPECT_EQ(f.substr(13, 11), ":event-type");
  EXPECT_NE(f.find(":content-type"), std::string::npos);
  EXPECT_LT(f.find(":content-type"), f.find(":message-type"));
  const std::string e = encode_exception("modelStreamErrorException", "{}");
  EXPECT_EQ(e.substr(13, 15), ":exception-type");
}

TEST(EventStream, EncodeFrameAppendsAndChecksLimits) {
  std::string out = "prefix";
  const std::array<event_header, 1> h{{{":message-type", "event"}}};
  encode_event_frame(out, h, "payload");
  EXPECT_EQ(out.substr(0, 6), "prefix");
  const decode_outcome d = decode_with(std::string_view(out).substr(6), {out.size() - 6});
  ASSERT_EQ(d.frames.size(), 1u);
  EXPECT_EQ(d.frames[0].message_type, "event");
  EXPECT_EQ(d.frames[0].payload, "payload");

  std::string sink;
  const std::string long_name(256, 'n');
  const std::array<event_header, 1> bad_name{{{long_name, "v"}}};
  EXPECT_THROW(encode_event_frame(sink, bad_name, ""), std::length_error);
  const std::array<event_header, 1> empty_name{{{"", "v"}}};
  EXPECT_THROW(encode_event_frame(sink, empty_name, ""), std::length_error);
  const std::string long_value(65536, 'v');
  const std::array<event_header, 1> bad_value{{{"n", long_value}}};
  EXPECT_THROW(encode_event_frame(sink, bad_value, ""), std::length_error);

  // The limits themselves are legal and decode.
  const std::string max_name(255, 'n');
  const std::string max_value(65535, 'v');
  const std::array<event_header, 2> at_limit{{{max_name, max_value}, {":event-type", "x"}}};
  encode_event_frame(sink, at_limit, "p");
  const decode_outcome ok = decode_every_way(sink);
  ASSERT_EQ(ok.frames.size(), 1u);
  EXPECT_EQ(ok.frames[0].event_type, "x");
}

TEST(EventStream, WholeFramesAreDecodedWithoutCopying) {
  const std::string f = encode_event("chunk", "0123456789");
  const std::string input = f + f + f.substr(0, 20);
  event_stream_decoder dec;
  int seen = 0;
  dec.feed(input, [&](const event_message& m) {
    // Views point into the caller's bytes: nothing was copied.
    EXPECT_GE(m.payload.data(), input.data());
    EXPECT_LE(m.payload.data() + m.payload.size(), input.data() + input.size());
    ++seen;
  });
  EXPECT_EQ(seen, 2);
  EXPECT_EQ(dec.buffered(), 20u);  // only the incomplete tail
  dec.feed(std::string_view(f).substr(20), [&](const event_message& m) {
    EXPECT_EQ(m.payload, "0123456789");
    ++seen;
  });
  EXPECT_EQ(seen, 3);
  EXPECT_EQ(dec.buffered(), 0u);
  EXPECT_EQ(dec.frames(), 3u);
}

TEST(EventStream, ByteSpanOverloadAndNullCallback) {
  const std::string f = encode_event("chunk", "{}");
  std::vector<std::byte> bytes(f.size());
  std::memcpy(bytes.data(), f.data(), f.size());
  event_stream_decoder dec;
  EXPECT_EQ(dec.feed(std::span<const std::byte>(bytes), {}), event_stream_error::none);
  EXPECT_EQ(dec.frames(), 1u);
  std::string type;
  EXPECT_EQ(dec.feed(std::span<const std::byte>(bytes),
                     [&](const event_message& m) { type = std::string(m.event_type); }),
            event_stream_error::none);
  EXPECT_EQ(type, "chunk");
  EXPECT_EQ(dec.feed(std::string_view{}, {}), event_stream_error::none);
  EXPECT_EQ(dec.frames(), 2u);
}

TEST(EventStream, MinimalFrameAndClampedLimit) {
  const std::string minimal = raw_frame("", "");
  ASSERT_EQ(minimal.size(), 16u);
  const decode_outcome out = decode_every_way(minimal, 0);  // limit clamps up to 16
  EXPECT_EQ(out.error, event_stream_error::none);
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_EQ(out.frames[0], frame{});
}

// ---------------------------------------------------------------------------------------------
// Recorded fixtures (tests/data/eventstream/generate.py, an independent Python encoder)

struct fixture {
  std::string file;
  std::string bytes;
  bool cpp_encodable = false;
  std::vector<frame> frames;
  std::vector<std::vector<event_header>> headers;  // views into `header_storage`
  std::vector<std::string> header_storage;
};

std::vector<fixture> load_fixtures() {
  const std::string text = read_file(fixture_dir() + "manifest.json");
  boost::system::error_code ec;
  const boost::json::value manifest = boost::json::parse(text, ec);
  EXPECT_FALSE(ec) << ec.message();
  std::vector<fixture> out;
  if (ec) return out;
  for (const boost::json::value& fv : manifest.at("fixtures").as_array()) {
    const boost::json::object& fo = fv.as_object();
    fixture fx;
    fx.file = std::string(fo.at("file").as_string());
    fx.bytes = read_file(fixture_dir() + fx.file);
    EXPECT_EQ(fx.bytes.size(), fo.at("size").to_number<std::size_t>()) << fx.file;
    EXPECT_EQ(crc32(fx.bytes), fo.at("crc32").to_number<std::uint32_t>()) << fx.file;
    fx.cpp_encodable = fo.at("cpp_encodable").as_bool();
    std::size_t header_count = 0;
    for (const boost::json::value& frv : fo.at("frames").as_array()) {
      header_count += frv.at("headers").as_array().size() * 2;
    }
    fx.header_storage.reserve(header_count);  // views below must not move
    for (const boost::json::value& frv : fo.at("frames").as_array()) {
      const boost::json::object& fr = frv.as_object();
      fx.frames.push_back({std::string(fr.at("message_type").as_string()),
                           std::string(fr.at("event_type").as_string()),
                           std::string(fr.at("content_type").as_string()),
                           std::string(fr.at("payload").as_string())});
      std::vector<event_header> hs;
      for (const boost::json::value& hv : fr.at("headers").as_array()) {
        fx.header_storage.emplace_back(hv.as_array().at(0).as_string());
        const std::string& name = fx.header_storage.back();
        fx.header_storage.emplace_back(hv.as_array().at(1).as_string());
        hs.push_back({name, fx.header_storage.back()});
      }
      fx.headers.push_back(std::move(hs));
    }
    out.push_back(std::move(fx));
  }
  return out;
}

TEST(EventStreamFixtures, PythonEncodedStreamsDecodeEveryChunking) {
  const std::vector<fixture> fixtures = load_fixtures();
  ASSERT_EQ(fixtures.size(), 5u);
  for (const fixture& fx : fixtures) {
    SCOPED_TRACE(fx.file);
    const decode_outcome out = decode_every_way(fx.bytes);
    EXPECT_EQ(out.error, event_stream_error::none);
    EXPECT_EQ(out.frames, fx.frames);
    EXPECT_EQ(out.final_buffered, 0u);
  }
}

TEST(EventStreamFixtures, CppEncoderReproducesPythonBytes) {
  for (const fixture& fx : load_fixtures()) {
    if (!fx.cpp_encodable) continue;
    SCOPED_TRACE(fx.file);
    std::string generic;
    std::string convenience;
    for (std::size_t i = 0; i < fx.frames.size(); ++i) {
      encode_event_frame(generic, fx.headers[i], fx.frames[i].payload);
      const frame& f = fx.frames[i];
      convenience += f.message_type == "exception" ? encode_exception(f.event_type, f.payload)
                                                   : encode_event(f.event_type, f.payload);
    }
    EXPECT_TRUE(generic == fx.bytes);
    EXPECT_TRUE(convenience == fx.bytes);
  }
}

TEST(EventStreamFixtures, StreamsCarryTheExpectedEvents) {
  const std::vector<fixture> fixtures = load_fixtures();
  const auto find = [&](std::string_view name) -> const fixture& {
    for (const fixture& fx : fixtures) {
      if (fx.file == name) return fx;
    }
    throw std::runtime_error("missing fixture");
  };

  // InvokeModelWithResponseStream: chunk events; the last one wraps the invocation metrics.
  const decode_outcome invoke = decode_with(find("invoke_stream_anthropic.bin").bytes, {1u << 20});
  ASSERT_GE(invoke.frames.size(), 4u);
  for (const frame& f : invoke.frames) EXPECT_EQ(f.event_type, "chunk");
  const boost::json::value last = boost::json::parse(invoke.frames.back().payload);
  EXPECT_TRUE(last.as_object().contains("bytes"));
  EXPECT_TRUE(last.as_object().contains("p"));

  // ConverseStream: messageStart ... metadata{usage, metrics}.
  const decode_outcome conv = decode_with(find("converse_stream.bin").bytes, {1u << 20});
  ASSERT_GE(conv.frames.size(), 5u);
  EXPECT_EQ(conv.frames.front().event_type, "messageStart");
  EXPECT_EQ(conv.frames[conv.frames.size() - 2].event_type, "messageStop");
  EXPECT_EQ(conv.frames.back().event_type, "metadata");
  const boost::json::value meta = boost::json::parse(conv.frames.back().payload);
  EXPECT_EQ(meta.at("usage").at("inputTokens").as_int64(), 31);
  EXPECT_EQ(meta.at("usage").at("cacheWriteInputTokens").as_int64(), 64);
  EXPECT_EQ(meta.at("metrics").at("latencyMs").as_int64(), 842);

  // Mid-stream exceptions surface their type in event_type.
  const decode_outcome thr = decode_with(find("invoke_stream_throttled.bin").bytes, {1u << 20});
  ASSERT_FALSE(thr.frames.empty());
  EXPECT_EQ(thr.frames.back().message_type, "exception");
  EXPECT_EQ(thr.frames.back().event_type, "throttlingException");
  const decode_outcome mse = decode_with(find("converse_stream_model_error.bin").bytes, {1u << 20});
  ASSERT_FALSE(mse.frames.empty());
  EXPECT_EQ(mse.frames.back().message_type, "exception");
  EXPECT_EQ(mse.frames.back().event_type, "modelStreamErrorException");

  // Every header value type is skipped correctly; `:error-code` names an error message; a
  // non-string `:content-type` is ignored rather than misread.
  const decode_outcome mixed = decode_with(find("mixed_header_types.bin").bytes, {1u << 20});
  ASSERT_EQ(mixed.frames.size(), 3u);
  EXPECT_EQ(mixed.frames[0].event_type, "contentBlockDelta");
  EXPECT_EQ(mixed.frames[0].content_type, "application/json");
  EXPECT_EQ(mixed.frames[1].event_type, "initial-response");
  EXPECT_EQ(mixed.frames[1].content_type, "");
  EXPECT_EQ(mixed.frames[2].message_type, "error");
  EXPECT_EQ(mixed.frames[2].event_type, "InternalFailure");
}

// ---------------------------------------------------------------------------------------------
// Corruption: each class of damage reports its error, sticks, and nothing is decoded after it.

/// Offsets of each frame in a stream.
std::vector<std::size_t> frame_offsets(std::string_view bytes) {
  std::vector<std::size_t> out;
  for (std::size_t pos = 0; pos + 4 <= bytes.size();) {
    out.push_back(pos);
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + pos);
    pos += (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
  }
  return out;
}

void expect_error_at(std::string_view bytes, std::size_t good_frames, event_stream_error want,
                     std::uint32_t max_frame = max_event_frame_bytes) {
  const decode_outcome out = decode_every_way(bytes, max_frame);
  EXPECT_EQ(out.error, want) << to_string(out.error);
  EXPECT_EQ(out.frames.size(), good_frames);
  EXPECT_EQ(out.frame_count, good_frames);
  EXPECT_EQ(out.final_buffered, 0u);  // poisoned decoders hold nothing
}

TEST(EventStreamCorruption, FlippedBitInPreludeIsPreludeCrc) {
  const synthetic_stream s = make_synthetic_stream();
  const std::vector<std::size_t> offs = frame_offsets(s.bytes);
  for (const std::size_t k : {std::size_t{0}, std::size_t{3}, offs.size() - 1}) {
    for (const std::size_t byte : {0u, 3u, 5u, 9u, 11u}) {
      std::string bad = s.bytes;
      bad[offs[k] + byte] = static_cast<char>(bad[offs[k] + byte] ^ 0x10);
      SCOPED_TRACE("frame " + std::to_string(k) + " byte " + std::to_string(byte));
      expect_error_at(bad, k, event_stream_error::prelude_crc);
    }
  }
}

TEST(EventStreamCorruption, FlippedBitInHeadersPayloadOrTrailerIsMessageCrc) {
  const synthetic_stream s = make_synthetic_stream();
  const std::vector<std::size_t> offs = frame_offsets(s.bytes);
  const std::size_t k = 2;
  const std::size_t len = offs[k + 1] - offs[k];
  for (const std::size_t at : {std::size_t{12}, std::size_t{20}, len - 5, len - 4, len - 1}) {
    std::string bad = s.bytes;
    bad[offs[k] + at] = static_cast<char>(bad[offs[k] + at] ^ 0x01);
    SCOPED_TRACE("offset " + std::to_string(at));
    expect_error_at(bad, k, event_stream_error::message_crc);
  }
}

TEST(EventStreamCorruption, AbsurdLengthsAreFrameLength) {
  const std::string good = encode_event("chunk", "{}");
  // Lengths with a valid prelude CRC: the upstream framed something we refuse.
  expect_error_at(good + raw_prelude(0xFFFFFFF0u, 0), 1, event_stream_error::frame_length);
  expect_error_at(good + raw_prelude(max_event_frame_bytes + 1, 0), 1,
                  event_stream_error::frame_length);
  expect_error_at(good + raw_prelude(15, 0), 1, event_stream_error::frame_length);
  expect_error_at(good + raw_prelude(0, 0), 1, event_stream_error::frame_length);
  expect_error_at(good + raw_prelude(100, 85), 1, event_stream_error::frame_length);
  expect_error_at(good + raw_prelude(100, 0xFFFFFFFFu), 1, event_stream_error::frame_length);
  // The constructor's limit applies, so a small-limit decoder refuses a big (valid) frame.
  const std::string big = encode_event("chunk", std::string(2000, 'x'));
  expect_error_at(good + big, 1, event_stream_error::frame_length, 1024);
  // headers length exactly total - 16 is legal (empty payload).
  expect_error_at(good + raw_frame(std::string("\x01x\x00", 3), ""), 2, event_stream_error::none);
}

TEST(EventStreamCorruption, MalformedHeadersAreHeaderFormat) {
  const std::string good = encode_event("chunk", "{}");
  const std::vector<std::string> bad_blocks = {
      std::string("\x0a:event", 7),        // name longer than the block
      std::string("\x01x", 2),             // name, then no type byte
      std::string("\x00\x07\x00\x00", 4),  // empty name
      std::string("\x01x\x0a", 3),         // unknown value type 10
      std::string("\x01x\xff", 3),         // unknown value type 255
      std::string("\x01x\x07\x00", 4),     // string length cut short
      std::string("\x01x\x07\x00\x05"
                  "abc",
                  8),  // string longer than the block
      std::string("\x01x\x06\xff\xff"
                  "abc",
                  8),  // bytes longer than the block
      std::string("\x01x\x09"
                  "0123456789",
                  13),  // uuid cut short
      std::string("\x01x\x08"
                  "0123",
                  7),  // timestamp cut short
      std::string("\x01x\x05"
                  "0123456",
                  10),  // long cut short
      std::string("\x01x\x04"
                  "012",
                  6),  // int cut short
      std::string("\x01x\x03"
                  "0",
                  4),                   // short cut short
      std::string("\x01x\x02", 3),      // byte missing
      std::string("\x01x\x00\x01", 4),  // good bool, then a truncated header
  };
  for (std::size_t i = 0; i < bad_blocks.size(); ++i) {
    SCOPED_TRACE("block " + std::to_string(i));
    // The payload follows the header block, so these would read into it if bounds were taken
    // from the frame instead of the header block.
    expect_error_at(good + raw_frame(bad_blocks[i], "payload-bytes-follow") + good, 1,
                    event_stream_error::header_format);
  }
}

TEST(EventStreamCorruption, ErrorIsStickyAndNothingDecodesAfter) {
  const std::string good = encode_event("chunk", "{}");
  std::string bad = good;
  bad[bad.size() - 1] = static_cast<char>(bad[bad.size() - 1] ^ 0x80);
  event_stream_decoder dec;
  int calls = 0;
  const auto count = [&](const event_message&) { ++calls; };
  EXPECT_EQ(dec.feed(good, count), event_stream_error::none);
  EXPECT_EQ(dec.feed(bad, count), event_stream_error::message_crc);
  EXPECT_EQ(dec.error(), event_stream_error::message_crc);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(dec.feed(good, count), event_stream_error::message_crc);
    EXPECT_EQ(dec.feed(std::string_view(good).substr(0, 5), count),
              event_stream_error::message_crc);
  }
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(dec.frames(), 1u);
  EXPECT_EQ(dec.buffered(), 0u);
}

TEST(EventStreamCorruption, RandomGarbageNeverCrashesAndAgreesAcrossChunkings) {
  std::mt19937 rng(2024);
  const synthetic_stream s = make_synthetic_stream();
  for (int round = 0; round < 40; ++round) {
    // Valid frames with random damage at a random place, or pure noise.
    std::string bytes = round % 4 == 0 ? random_bytes(rng, 4096) : s.bytes.substr(0, 3000);
    std::uniform_int_distribution<std::size_t> at(0, bytes.size() - 1);
    for (int flips = round % 3; flips > 0; --flips) {
      bytes[at(rng)] = static_cast<char>(rng());
    }
    const decode_outcome out = decode_every_way(bytes);
    EXPECT_LE(out.max_buffered, bytes.size());
  }
}

// ---------------------------------------------------------------------------------------------
// Memory bound

TEST(EventStreamMemory, BufferedNeverExceedsOneFrame) {
  const synthetic_stream s = make_synthetic_stream();
  for (const chunking& c : all_chunkings()) {
    SCOPED_TRACE(c.name);
    const decode_outcome out = decode_with(s.bytes, c.sizes(s.bytes.size()));
    ASSERT_EQ(out.error, event_stream_error::none);
    // A complete frame is decoded at once, so at most one frame minus a byte is ever held.
    EXPECT_LT(out.max_buffered, s.largest);
    EXPECT_EQ(out.final_buffered, 0u);
  }
  // Whole-input decoding holds nothing at all.
  EXPECT_EQ(decode_with(s.bytes, {s.bytes.size()}).max_buffered, 0u);
}

TEST(EventStreamMemory, BufferedTracksOnlyTheCurrentFrame) {
  const std::string small = encode_event("a", "{}");
  const std::string big = encode_event("b", std::string(10000, 'y'));
  const std::string stream = big + small + small;
  event_stream_decoder dec;
  std::size_t fed = 0;
  std::size_t max_after_big = 0;
  for (; fed < stream.size(); ++fed) {
    dec.feed(std::string_view(stream).substr(fed, 1), {});
    if (fed >= big.size()) max_after_big = std::max(max_after_big, dec.buffered());
  }
  EXPECT_EQ(dec.frames(), 3u);
  // After the big frame is out, only small frames are pending.
  EXPECT_LT(max_after_big, small.size());
}

}  // namespace
}  // namespace bedrock_meter::metering
