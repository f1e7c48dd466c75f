#pragma once
/// Incremental decoder and encoder for `application/vnd.amazon.eventstream`, the binary framing
/// Bedrock uses for InvokeModelWithResponseStream and ConverseStream.
///
/// Frame layout (all integers big-endian): total length (4), headers length (4), CRC32 of those
/// 8 bytes (4), headers, payload, CRC32 of everything before it (4). CRC is zlib's CRC32.
/// Header: name length (1), name, value type (1), value (type-dependent). Types 0-9: bool true,
/// bool false, byte, short, int, long, bytes (2-byte length), string (2-byte length), timestamp
/// (8, ms), uuid (16).
///
/// Pure code: no I/O, no exceptions on bad input. Thread safety: one decoder per stream.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bedrock_meter::metering {

/// Largest frame the decoder accepts. Bedrock chunks are far smaller; a larger prelude is treated
/// as corruption so a hostile upstream cannot make the proxy buffer without bound.
inline constexpr std::uint32_t max_event_frame_bytes = 16u * 1024u * 1024u;

/// One decoded frame. Views point into the decoder's buffer or the caller's input and are valid
/// only during the callback.
struct event_message {
  std::string_view message_type;  ///< `:message-type` (event, exception, error)
  std::string_view event_type;    ///< `:event-type`, or `:exception-type` / `:error-code`
  std::string_view content_type;  ///< `:content-type`, may be empty
  std::string_view payload;       ///< raw payload bytes
  std::string_view headers;       ///< the whole encoded header block (find_event_header reads it)
  std::string_view frame;         ///< the whole encoded message
};

/// One header's type (0-9, as in the file comment) and value bytes: for bytes and strings without
/// their 2-byte length, for timestamps the 8 big-endian bytes.
struct event_header_value {
  std::uint8_t type = 0;
  std::string_view value;
};

/// The first header called `name` in a header block (`event_message::headers`); nullopt when it
/// is absent or the block is malformed. Views point into `header_block`.
std::optional<event_header_value> find_event_header(std::string_view header_block,
                                                    std::string_view name) noexcept;

enum class event_stream_error : std::uint8_t {
  none = 0,
  prelude_crc,    ///< prelude CRC mismatch
  message_crc,    ///< message CRC mismatch
  frame_length,   ///< total length < 16 or > max_event_frame_bytes, or headers overflow
  header_format,  ///< malformed header block
};

std::string_view to_string(event_stream_error e) noexcept;

/// Incremental decoder. Feed arbitrary chunks (down to one byte); each complete, valid frame is
/// reported once through the callback. After the first error the decoder is poisoned: it reports
/// that error from every later feed() and decodes nothing more (the proxy keeps forwarding bytes
/// regardless; only metering stops). Memory is bounded by the largest frame seen; complete frames
/// within one chunk are decoded in place without copying.
class event_stream_decoder {
 public:
  using callback = std::function<void(const event_message&)>;

  explicit event_stream_decoder(std::uint32_t max_frame = max_event_frame_bytes) noexcept;

  /// Decodes as many whole frames as `bytes` completes. Returns the sticky error state.
  event_stream_error feed(std::string_view bytes, const callback& on_message);
  event_stream_error feed(std::span<const std::byte> bytes, const callback& on_message);

  [[nodiscard]] event_stream_error error() const noexcept { return error_; }
  [[nodiscard]] std::uint64_t frames() const noexcept { return frames_; }
  /// Bytes held for an incomplete frame.
  [[nodiscard]] std::size_t buffered() const noexcept { return buffer_.size(); }

 private:
  event_stream_error poison(event_stream_error e) noexcept;
  event_stream_error deliver(std::string_view frame, const callback& on_message);

  std::uint32_t max_frame_;
  event_stream_error error_ = event_stream_error::none;
  std::uint64_t frames_ = 0;
  /// Total length of the frame being assembled in buffer_, once its prelude has been validated;
  /// 0 while fewer than 12 bytes of it have arrived.
  std::size_t pending_total_ = 0;
  /// Only the tail of an incomplete frame; complete frames are decoded from the caller's bytes.
  std::string buffer_;
};

/// A header value for the encoder: strings only (all Bedrock response headers are strings).
struct event_header {
  std::string_view name;
  std::string_view value;
};

/// Encodes one frame with string headers, appending it to `out`. Throws std::length_error if a
/// header name is empty or over 255 bytes, or a value over 65535 bytes: a programming error in
/// the caller (the simulator and our own synthesized frames use short fixed names), not input.
void encode_event_frame(std::string& out, std::span<const event_header> headers,
                        std::string_view payload);

/// Convenience: an `event` frame with `:event-type`, `:content-type: application/json`,
/// `:message-type: event`, as Bedrock sends them.
std::string encode_event(std::string_view event_type, std::string_view json_payload);

/// Convenience: an `exception` frame (`:exception-type`, `:message-type: exception`), as Bedrock
/// sends a mid-stream error such as `throttlingException` or `modelStreamErrorException`.
std::string encode_exception(std::string_view exception_type, std::string_view json_payload);

/// Appends one frame whose header block is given already encoded (`header_block`, as built by
/// the caller: the signed envelopes of input event streams carry timestamp and byte-array
/// headers, which `event_header` cannot express). Throws std::length_error beyond 4 GiB.
void encode_event_frame_raw(std::string& out, std::string_view header_block,
                            std::string_view payload);

/// zlib-compatible CRC32 (slicing-by-8), exposed for tests and the simulator.
std::uint32_t crc32(std::string_view bytes, std::uint32_t seed = 0) noexcept;

}  // namespace bedrock_meter::metering
