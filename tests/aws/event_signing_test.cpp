// The event signature chain of input event streams, against vectors written by the AWS SDK for
// JavaScript itself: @smithy/signature-v4 3.x `sign({message, priorSignature})` and
// @smithy/core's EventStreamCodec, as its EventSigningTransformStream uses them (the script that
// printed them is in the comment below), so the proxy signs and verifies byte for byte as the SDK
// does.
#include "aws/event_signing.hpp"

#include <gtest/gtest.h>

#include "metering/event_stream.hpp"

namespace {

namespace sigv4 = bedrock_meter::aws::sigv4;
namespace metering = bedrock_meter::metering;

// const signer = new SignatureV4({credentials: {accessKeyId: "AKIDEXAMPLE", secretAccessKey:
//   "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}, region: "us-east-1", service: "bedrock", sha256});
// for ms of [1764982800123, 1764982801456]:
//   s = await signer.sign({message: {body: inner, headers: {":date": {type: "timestamp",
//         value: new Date(ms)}}}, priorSignature: prior}, {signingDate: new Date(ms)});
//   envelope = codec.encode({headers: {":date": ..., ":chunk-signature": {type: "binary",
//         value: Buffer.from(s.signature, "hex")}}, body: inner}); prior = s.signature
constexpr std::string_view secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr std::string_view seed =
    "e1d8a9e3b7f2c6d4a5b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8";
constexpr std::string_view inner_hex =
    "000000770000004bcfde7bae0b3a6576656e742d747970650700056368756e6b0d3a636f6e74656e742d747970"
    "650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b2262"
    "79746573223a2265794a6c646d56756443493665333139227d1a75916f";
constexpr std::string_view sig1 =
    "eb1b48879e764436f8a839bff85d110d468d4e3ee6a079775edafc7fb04254e0";
constexpr std::string_view sig2 =
    "ccda8a6a2116d6e13a0322bbb638a5eb45a4edba9f1295ebf4543717ee48eba3";
constexpr std::string_view envelope1_head =
    "000000ca0000004329523f39053a64617465080000019af12c3efb103a6368756e6b2d7369676e617475726506"
    "0020eb1b48879e764436f8a839bff85d110d468d4e3ee6a079775edafc7fb04254e0";
constexpr std::string_view envelope1_crc = "917744ee";
constexpr std::string_view envelope2_head =
    "000000ca0000004329523f39053a64617465080000019af12c4430103a6368756e6b2d7369676e617475726506"
    "0020ccda8a6a2116d6e13a0322bbb638a5eb45a4edba9f1295ebf4543717ee48eba3";
constexpr std::string_view envelope2_crc = "04a0a18e";

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

std::chrono::system_clock::time_point at_ms(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

std::string envelope(std::string_view head, std::string_view crc) {
  return unhex(head) + unhex(inner_hex) + unhex(crc);
}

/// Decodes one whole message and reads its envelope.
struct decoded {
  std::string headers, payload;
};
decoded decode_one(const std::string& frame) {
  decoded d;
  metering::event_stream_decoder dec;
  int n = 0;
  dec.feed(frame, [&](const metering::event_message& m) {
    d.headers = std::string(m.headers);
    d.payload = std::string(m.payload);
    ++n;
  });
  EXPECT_EQ(n, 1);
  return d;
}

TEST(EventSigning, SignsEnvelopesByteForByteAsTheJavaScriptSdk) {
  sigv4::event_chain chain{std::string(secret), "us-east-1", std::string(seed)};
  std::string out;
  chain.sign(out, unhex(inner_hex), at_ms(1764982800123));
  EXPECT_EQ(chain.prior(), sig1);
  EXPECT_EQ(out, envelope(envelope1_head, envelope1_crc));
  out.clear();
  chain.sign(out, unhex(inner_hex), at_ms(1764982801456));
  EXPECT_EQ(chain.prior(), sig2);
  EXPECT_EQ(out, envelope(envelope2_head, envelope2_crc));
}

TEST(EventSigning, VerifiesTheSdksChainAndMovesOnOnlyWhenItMatches) {
  sigv4::event_chain chain{std::string(secret), "us-east-1", std::string(seed)};
  const auto one = decode_one(envelope(envelope1_head, envelope1_crc));
  const auto e1 = sigv4::read_signed_event(one.headers, one.payload);
  ASSERT_TRUE(e1.has_value());
  EXPECT_EQ(e1->date, at_ms(1764982800123));
  EXPECT_EQ(e1->payload, unhex(inner_hex));

  // The second event first: it chains from the first, so it cannot verify yet.
  const auto two = decode_one(envelope(envelope2_head, envelope2_crc));
  const auto e2 = sigv4::read_signed_event(two.headers, two.payload);
  ASSERT_TRUE(e2.has_value());
  EXPECT_FALSE(chain.verify(*e2));
  EXPECT_EQ(chain.prior(), seed);

  EXPECT_TRUE(chain.verify(*e1));
  EXPECT_EQ(chain.prior(), sig1);
  EXPECT_TRUE(chain.verify(*e2));
  EXPECT_EQ(chain.prior(), sig2);
}

TEST(EventSigning, RefusesATamperedPayloadADifferentKeyOrAnotherRegion) {
  const auto one = decode_one(envelope(envelope1_head, envelope1_crc));
  auto e = sigv4::read_signed_event(one.headers, one.payload);
  ASSERT_TRUE(e.has_value());
  std::string tampered(e->payload);
  tampered.back() = static_cast<char>(tampered.back() ^ 1);
  auto bad = *e;
  bad.payload = tampered;
  sigv4::event_chain chain{std::string(secret), "us-east-1", std::string(seed)};
  EXPECT_FALSE(chain.verify(bad));
  sigv4::event_chain other_key{"another-secret", "us-east-1", std::string(seed)};
  EXPECT_FALSE(other_key.verify(*e));
  sigv4::event_chain other_region{std::string(secret), "eu-west-1", std::string(seed)};
  EXPECT_FALSE(other_region.verify(*e));
  EXPECT_TRUE(chain.verify(*e));
}

TEST(EventSigning, ABareEventOrAWronglyTypedHeaderIsNotAnEnvelope) {
  const auto bare = decode_one(unhex(inner_hex));
  EXPECT_FALSE(sigv4::read_signed_event(bare.headers, bare.payload).has_value());
  // :chunk-signature as a string header (type 7) instead of bytes.
  std::string wrong;
  const metering::event_header h[] = {{":chunk-signature", sig1}, {":date", "x"}};
  metering::encode_event_frame(wrong, h, "{}");
  const auto d = decode_one(wrong);
  EXPECT_FALSE(sigv4::read_signed_event(d.headers, d.payload).has_value());
}

}  // namespace
