#pragma once
/// InvokeModelWithBidirectionalStream (Amazon Nova Sonic), the pure half: the request's event
/// stream read frame by frame, the signed envelopes around each event checked against their
/// signature chain, the inner Nova Sonic input events parsed, and the session that answers them
/// with output events and usage. No sockets, no Asio: the server (simulator.cpp) feeds bytes and
/// writes the frames it gets back. See docs/simulator.md, "Bidirectional streams over HTTP/2".
///
/// The event signature check is written here on purpose rather than taken from aws/: the
/// simulator is the independent check of the proxy's re-signing, so it must not share its code.
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "tests/simulator/sim_codec.hpp"
#include "tests/simulator/sim_logic.hpp"

namespace bedrock_meter::simulator {

/// Largest inner event accepted (encoded bytes); a larger one ends the session with an exception.
inline constexpr std::size_t max_bidi_event_bytes = std::size_t{1024} * 1024;
/// Largest signed envelope: the inner event plus its `:date` and `:chunk-signature` headers and
/// framing, with room to spare.
inline constexpr std::size_t max_bidi_envelope_bytes = max_bidi_event_bytes + 1024;

/// The payload hash a streaming SigV4 request signs instead of a body hash.
inline constexpr std::string_view streaming_payload_hash = "STREAMING-AWS4-HMAC-SHA256-EVENTS";

/// Event-stream header value types (the wire's type byte).
enum class es_type : std::uint8_t {
  bool_true = 0,
  bool_false = 1,
  byte = 2,
  int16 = 3,
  int32 = 4,
  int64 = 5,
  bytes = 6,
  string = 7,
  timestamp = 8,
  uuid = 9,
};

/// One header of a frame; `value` is the raw value bytes (for strings the text, for a timestamp
/// 8 big-endian bytes of milliseconds, for byte arrays the bytes).
struct es_header {
  std::string_view name;
  es_type type = es_type::string;
  std::string_view value;
};

/// One whole frame, its views into the bytes given to parse_es_frame.
struct es_frame {
  std::vector<es_header> headers;
  std::string_view payload;
  /// The first header named `name`, or null.
  [[nodiscard]] const es_header* find(std::string_view name) const noexcept;
  /// The value of a string header `name`; empty when absent or not a string.
  [[nodiscard]] std::string_view string_header(std::string_view name) const noexcept;
};

/// Parses exactly one whole frame (both CRCs checked, every header type understood).
boost::system::result<es_frame, sim_error> parse_es_frame(std::string_view whole);

/// Cuts a byte stream into whole frames. Memory: the incomplete tail only, bounded by max_frame.
class frame_splitter {
 public:
  explicit frame_splitter(std::size_t max_frame) noexcept : max_frame_(max_frame) {}
  void append(std::string_view bytes);
  /// The next whole frame's bytes; nothing while it is incomplete; an error when the prelude is
  /// corrupt or announces a frame over max_frame (the stream cannot be resynchronised after).
  boost::system::result<std::optional<std::string>, sim_error> next();
  [[nodiscard]] std::size_t buffered() const noexcept { return buf_.size() - off_; }

 private:
  std::size_t max_frame_;
  std::string buf_;
  std::size_t off_ = 0;
};

/// The header block an event signature covers: only `:date`, i.e. 0x05 ":date" 0x08 followed by
/// the 8-byte big-endian milliseconds.
std::string event_date_header_block(std::int64_t date_ms);

/// "AWS4-HMAC-SHA256-PAYLOAD\n<longdate>\n<day>/<region>/bedrock/aws4_request\n<prior>\n
/// <hex sha256(date header block)>\n<hex sha256(payload)>", dates of `date_ms` in UTC.
std::string event_string_to_sign(std::int64_t date_ms, std::string_view region,
                                 std::string_view prior_signature_hex, std::string_view payload);

/// hex(HMAC-SHA256(signing key for the event's day, region and `bedrock`, string to sign)).
std::string event_signature_hex(std::string_view secret, std::string_view region,
                                std::int64_t date_ms, std::string_view prior_signature_hex,
                                std::string_view payload);

/// The hex `Signature=` of a SigV4 Authorization header value; nothing when absent.
std::optional<std::string> authorization_signature(std::string_view authorization);

/// One input frame opened: the inner event's bytes, whether its signature was checked and held.
struct opened_event {
  std::string inner;      ///< the encoded inner message; empty for an empty (closing) envelope
  bool verified = false;  ///< the envelope's signature was checked and matched
};

/// Opens the request's frames. Verifying: every frame must be a signed envelope whose signature
/// continues the chain from the request's own signature. Accepting (--no-auth, bearer tokens):
/// envelopes are unwrapped unchecked and bare inner messages pass as they are.
class envelope_opener {
 public:
  static envelope_opener verifying(std::string secret, std::string region,
                                   std::string seed_signature_hex);
  static envelope_opener accepting();

  /// One whole frame from the wire; the error names what failed.
  boost::system::result<opened_event, sim_error> open(std::string_view frame_bytes);

 private:
  bool verify_ = false;
  std::string secret_, region_, prior_;
  std::uint64_t index_ = 0;
};

/// A Nova Sonic input event, the fields the simulator uses.
struct input_event {
  std::string name;  ///< sessionStart, promptStart, contentStart, textInput, audioInput, ...
  std::string prompt_name, content_name;
  std::string type;     ///< contentStart: TEXT, AUDIO, TOOL
  std::string role;     ///< contentStart: USER, SYSTEM, ASSISTANT, TOOL
  std::string content;  ///< textInput text; audioInput base64 audio
};

/// Parses one inner message: `:message-type event`, `:event-type chunk`, payload
/// `{"bytes":"<base64 of {\"event\":{<name>:{...}}}>"}`.
boost::system::result<input_event, sim_error> parse_input_event(std::string_view inner);

/// Token counts by modality, as usageEvent reports them.
struct sonic_tokens {
  std::uint64_t speech_in = 0, text_in = 0, speech_out = 0, text_out = 0;
};

/// Speech input tokens of one audioInput: ceil(decoded audio bytes / 1000).
std::uint64_t speech_tokens_for_audio(std::size_t audio_bytes) noexcept;
/// Text input tokens of one textInput: max(1, ceil(utf-8 bytes / 4)).
std::uint64_t text_tokens_for_text(std::size_t text_bytes) noexcept;

/// Per assistant turn: "Simulated reply N." (8 text tokens) and 4000 bytes of silence (4 speech
/// tokens).
inline constexpr std::uint64_t sonic_turn_text_tokens = 8;
inline constexpr std::uint64_t sonic_turn_speech_tokens = 4;
inline constexpr std::size_t sonic_turn_audio_bytes = 4000;

/// One session's conversation: input events in, output frames (encoded event-stream messages)
/// out. Single-threaded; one per stream.
class sonic_session {
 public:
  /// `ids` seeds the session, completion and content ids.
  explicit sonic_session(id_source ids);

  /// What to do after an input event or the end of input.
  struct step {
    std::vector<std::string> frames;  ///< to send in order (pace between them)
    bool end = false;                 ///< then END_STREAM: the session is over
    bool reset = false;               ///< then RST_STREAM(INTERNAL_ERROR) instead (fault=cut)
  };

  step on_event(const input_event& e);
  /// The request stream ended (END_STREAM) or a sessionEnd arrived: completionEnd, the last
  /// usageEvent, end.
  step on_input_end();
  /// Ends the session with an exception message (`:exception-type`) carrying {"message":...}.
  step fail(std::string_view exception_type, std::string_view message);

  [[nodiscard]] bool finished() const noexcept { return finished_; }
  [[nodiscard]] std::uint64_t pace_ms() const noexcept { return pace_ms_; }
  [[nodiscard]] const sonic_tokens& total() const noexcept { return total_; }
  [[nodiscard]] std::uint64_t usage_events() const noexcept { return usage_events_; }

 private:
  struct content_info {
    std::string type, role;
  };
  static void append(step& into, step from);
  void apply_directive(std::string_view text, step& s);
  void turn(const std::string& prompt_name, step& s);
  void completion_start(step& s);
  void usage(step& s);
  void maybe_fault(step& s);
  void emit(step& s, std::string_view event_name, const std::string& body_fields);
  [[nodiscard]] std::string ids_json(bool with_content, const std::string& content_id) const;

  id_source ids_;
  std::string session_id_, completion_id_, prompt_name_;
  std::map<std::string, content_info, std::less<>> contents_;
  sonic_tokens total_, reported_;
  std::uint64_t turns_ = 0, usage_events_ = 0, pace_ms_ = 0;
  bool started_ = false, finished_ = false;
  fault fault_ = fault::none;
  std::uint64_t fault_after_ = 1;
  std::string exception_type_;
};

/// True for the model ids that serve bidirectional streams: amazon.nova-sonic-v1:0 and
/// amazon.nova-2-sonic-v1:0, bare, as an ARN resource or behind a geographic prefix.
bool is_sonic_model(std::string_view model_id) noexcept;

}  // namespace bedrock_meter::simulator
