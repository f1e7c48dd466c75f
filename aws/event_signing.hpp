#pragma once
// SigV4 for the events of an input event stream (InvokeModelWithBidirectionalStream). The request
// is signed with the payload hash `STREAMING-AWS4-HMAC-SHA256-EVENTS`; then every event the client
// sends travels in a signed envelope, an event-stream message whose headers are `:date`
// (timestamp) and `:chunk-signature` (32 bytes) and whose payload is the encoded event. Each
// signature chains from the previous one, the first from the request's own signature:
//
//   string to sign = "AWS4-HMAC-SHA256-PAYLOAD" \n <YYYYMMDDTHHMMSSZ of :date> \n <scope> \n
//                    <prior signature, hex> \n hex(SHA-256(the encoded :date header alone)) \n
//                    hex(SHA-256(payload))
//   signature      = HMAC-SHA256(the SigV4 signing key of :date's day, string to sign)
//
// as the AWS SDK for JavaScript's EventSigningTransformStream writes it (@smithy/signature-v4
// signEvent). The proxy verifies the client's chain with the client's key and writes a chain of
// its own, seeded with its own upstream signature, with the proxy's credentials (docs/http2.md).
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "aws/sigv4.hpp"

namespace bedrock_meter::aws::sigv4 {

/// The payload hash a streaming-events request is signed with (also its x-amz-content-sha256).
inline constexpr std::string_view streaming_events_payload = "STREAMING-AWS4-HMAC-SHA256-EVENTS";

/// One signed envelope, read from a decoded message's header block and payload.
struct signed_event {
  std::chrono::system_clock::time_point date;  ///< `:date`, millisecond precision
  std::string_view signature;                  ///< the 32 raw bytes of `:chunk-signature`
  std::string_view payload;                    ///< the event inside, still encoded
};

/// The envelope in a message, or nullopt when it has no `:chunk-signature` (a bare event) or its
/// `:date` / `:chunk-signature` headers have the wrong type or size.
std::optional<signed_event> read_signed_event(std::string_view header_block,
                                              std::string_view payload) noexcept;

/// One side of a signature chain: a secret, the scope's region and service, and the signature the
/// next event chains from. Signing keys are derived once per day.
class event_chain {
 public:
  event_chain(std::string secret, std::string region, std::string seed_signature_hex,
              std::string service = "bedrock");
  ~event_chain();
  event_chain(const event_chain&) = delete;
  event_chain& operator=(const event_chain&) = delete;

  /// Checks one envelope from the client and, when it matches (constant-time), moves the chain
  /// on to it. A mismatch leaves the chain where it was.
  [[nodiscard]] bool verify(const signed_event& e);
  /// Wraps `event` (an encoded message) in an envelope signed at `at` and appends the envelope
  /// to `out`; the chain moves on to it.
  void sign(std::string& out, std::string_view event, std::chrono::system_clock::time_point at);
  /// The signature the next event chains from, hex.
  [[nodiscard]] const std::string& prior() const noexcept { return prior_; }

 private:
  std::string signature_hex(std::int64_t date_ms, std::string_view payload);

  std::string secret_;
  std::string region_;
  std::string service_;
  std::string prior_;
  std::string key_day_;  ///< the day `key_` was derived for
  std::array<unsigned char, 32> key_{};
};

}  // namespace bedrock_meter::aws::sigv4
