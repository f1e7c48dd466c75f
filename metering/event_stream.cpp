#include "metering/event_stream.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <stdexcept>

namespace bedrock_meter::metering {
namespace {

// ---------------------------------------------------------------------------------------------
// CRC32 (zlib: reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF), slicing-by-8.
// The CRC is the decoder's hot loop (every byte is checked once), so the tables are built at
// compile time and the loop consumes 8 bytes per step with 8 independent table lookups.

using crc_tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr crc_tables make_crc_tables() noexcept {
  crc_tables t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) != 0 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    t[0][i] = c;
  }
  for (std::size_t s = 1; s < 8; ++s) {
    for (std::size_t i = 0; i < 256; ++i) {
      const std::uint32_t prev = t[s - 1][i];
      t[s][i] = (prev >> 8) ^ t[0][prev & 0xFFu];
    }
  }
  return t;
}

constexpr crc_tables crc_table = make_crc_tables();

static_assert(crc_table[0][1] == 0x77073096u, "zlib CRC32 table");
static_assert(crc_table[0][255] == 0x2D02EF8Du, "zlib CRC32 table");

inline std::uint32_t load_le32(const unsigned char* p) noexcept {
  // Written byte-wise so it is endian-independent; compilers fold it into one load on x86/arm.
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

inline std::uint32_t crc32_update(std::uint32_t crc, const unsigned char* p,
                                  std::size_t n) noexcept {
  while (n >= 8) {
    const std::uint32_t one = load_le32(p) ^ crc;
    const std::uint32_t two = load_le32(p + 4);
    crc = crc_table[7][one & 0xFFu] ^ crc_table[6][(one >> 8) & 0xFFu] ^
          crc_table[5][(one >> 16) & 0xFFu] ^ crc_table[4][one >> 24] ^ crc_table[3][two & 0xFFu] ^
          crc_table[2][(two >> 8) & 0xFFu] ^ crc_table[1][(two >> 16) & 0xFFu] ^
          crc_table[0][two >> 24];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xFFu];
  return crc;
}

inline const unsigned char* bytes_of(std::string_view s) noexcept {
  return reinterpret_cast<const unsigned char*>(s.data());
}

inline std::uint32_t load_be32(const unsigned char* p) noexcept {
  return (static_cast<std::uint32_t>(p[0]) << 24) | (static_cast<std::uint32_t>(p[1]) << 16) |
         (static_cast<std::uint32_t>(p[2]) << 8) | static_cast<std::uint32_t>(p[3]);
}

inline std::uint16_t load_be16(const unsigned char* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

// ---------------------------------------------------------------------------------------------
// Framing constants.

constexpr std::size_t prelude_bytes = 12;  // total length, headers length, prelude CRC
constexpr std::size_t trailer_bytes = 4;   // message CRC
constexpr std::size_t min_frame_bytes = prelude_bytes + trailer_bytes;
constexpr std::size_t max_header_name_bytes = 255;  // 1-byte length
constexpr std::size_t max_header_value_bytes = std::numeric_limits<std::uint16_t>::max();

enum header_type : std::uint8_t {
  type_bool_true = 0,
  type_bool_false = 1,
  type_byte = 2,
  type_short = 3,
  type_int = 4,
  type_long = 5,
  type_bytes = 6,
  type_string = 7,
  type_timestamp = 8,
  type_uuid = 9,
};

struct prelude_result {
  event_stream_error error = event_stream_error::none;
  std::uint32_t total = 0;
};

// Validates the 12-byte prelude at `p`. The CRC is checked before the lengths so any corruption of
// the prelude (including of a length field) reports as prelude_crc; frame_length then means the
// upstream really framed a message we refuse (too short, too large, headers overflowing).
prelude_result check_prelude(const unsigned char* p, std::uint32_t max_frame) noexcept {
  const std::uint32_t total = load_be32(p);
  const std::uint32_t headers = load_be32(p + 4);
  const std::uint32_t crc = load_be32(p + 8);
  if (crc32_update(0xFFFFFFFFu, p, 8) != ~crc) return {event_stream_error::prelude_crc, 0};
  if (total < min_frame_bytes || total > max_frame) return {event_stream_error::frame_length, 0};
  if (headers > total - min_frame_bytes) return {event_stream_error::frame_length, 0};
  return {event_stream_error::none, total};
}

// The message CRC covers everything before it; it is checked before any header is read.
inline bool message_crc_matches(std::string_view frame) noexcept {
  const unsigned char* p = bytes_of(frame);
  const std::size_t covered = frame.size() - trailer_bytes;
  return crc32_update(0xFFFFFFFFu, p, covered) == ~load_be32(p + covered);
}

// One header of a frame: its name, value type and value bytes (views into the frame).
struct raw_header {
  std::string_view name;
  std::uint8_t type = 0;
  std::string_view value;
};

// Walks the header block of a frame. Every read is bounds-checked against the headers block,
// never against the frame, so a header claiming more bytes than the block holds is
// header_format, not an overread.
class header_reader {
 public:
  header_reader(std::string_view frame, std::size_t end, std::size_t begin = prelude_bytes) noexcept
      : frame_(frame), p_(bytes_of(frame)), end_(end), pos_(begin) {}

  [[nodiscard]] bool done() const noexcept { return pos_ >= end_; }

  // Reads the next header; false when it is malformed.
  bool next(raw_header& h) noexcept {
    if (!read_name(h.name)) return false;
    h.type = p_[pos_++];
    std::size_t value_len = 0;
    if (!read_value_length(h.type, value_len) || end_ - pos_ < value_len) return false;
    h.value = std::string_view(frame_.data() + pos_, value_len);
    pos_ += value_len;
    return true;
  }

 private:
  // The name, and room for the type byte that follows it.
  bool read_name(std::string_view& name) noexcept {
    const std::size_t name_len = p_[pos_++];
    // A zero-length name is not something any AWS encoder produces; treat it as corruption
    // rather than guess what the rest of the block means.
    if (name_len == 0 || end_ - pos_ < name_len + 1) return false;
    name = std::string_view(frame_.data() + pos_, name_len);
    pos_ += name_len;
    return true;
  }

  // The value's length: fixed by the type, or a 2-byte prefix for bytes and strings.
  bool read_value_length(std::uint8_t type, std::size_t& value_len) noexcept {
    switch (type) {
      case type_bool_true:
      case type_bool_false: value_len = 0; return true;
      case type_byte: value_len = 1; return true;
      case type_short: value_len = 2; return true;
      case type_int: value_len = 4; return true;
      case type_long:
      case type_timestamp: value_len = 8; return true;
      case type_uuid: value_len = 16; return true;
      case type_bytes:
      case type_string:
        if (end_ - pos_ < 2) return false;
        value_len = load_be16(p_ + pos_);
        pos_ += 2;
        return true;
      default: return false;
    }
  }

  std::string_view frame_;
  const unsigned char* p_;
  std::size_t end_;
  std::size_t pos_;
};

// The string headers that name a message's kind; which one becomes `event_type` depends on
// `:message-type`, which may come after them.
struct kind_headers {
  std::string_view event_type;
  std::string_view exception_type;
  std::string_view error_code;
};

// Keeps the string headers the meter reads; every other header is skipped.
inline void keep_header(const raw_header& h, event_message& msg, kind_headers& kinds) noexcept {
  if (h.type != type_string) return;
  if (h.name == ":message-type") {
    msg.message_type = h.value;
  } else if (h.name == ":event-type") {
    kinds.event_type = h.value;
  } else if (h.name == ":exception-type") {
    kinds.exception_type = h.value;
  } else if (h.name == ":error-code") {
    kinds.error_code = h.value;
  } else if (h.name == ":content-type") {
    msg.content_type = h.value;
  }
}

// Headers may come in any order, so the kind is chosen only once `:message-type` is known.
inline std::string_view event_type_of(std::string_view message_type,
                                      const kind_headers& kinds) noexcept {
  if (message_type == "exception" && !kinds.exception_type.empty()) return kinds.exception_type;
  if (message_type == "error" && !kinds.error_code.empty()) return kinds.error_code;
  return kinds.event_type;
}

// Decodes one complete frame whose prelude was already validated. `frame.size()` is the total
// length.
event_stream_error decode_frame(std::string_view frame, event_message& msg) noexcept {
  if (!message_crc_matches(frame)) return event_stream_error::message_crc;
  const std::size_t end = prelude_bytes + load_be32(bytes_of(frame) + 4);
  msg = event_message{};
  kind_headers kinds;
  header_reader headers(frame, end);
  raw_header h;
  while (!headers.done()) {
    if (!headers.next(h)) return event_stream_error::header_format;
    keep_header(h, msg, kinds);
  }
  msg.event_type = event_type_of(msg.message_type, kinds);
  msg.payload = frame.substr(end, frame.size() - end - trailer_bytes);
  msg.headers = frame.substr(prelude_bytes, end - prelude_bytes);
  msg.frame = frame;
  return event_stream_error::none;
}

void put_be32(std::string& out, std::uint32_t v) {
  const std::array<char, 4> b{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                              static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b.data(), b.size());
}

void put_be16(std::string& out, std::size_t v) {
  const std::array<char, 2> b{static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b.data(), b.size());
}

}  // namespace

std::string_view to_string(event_stream_error e) noexcept {
  switch (e) {
    case event_stream_error::none: return "none";
    case event_stream_error::prelude_crc: return "prelude_crc";
    case event_stream_error::message_crc: return "message_crc";
    case event_stream_error::frame_length: return "frame_length";
    case event_stream_error::header_format: return "header_format";
  }
  return "unknown";
}

std::uint32_t crc32(std::string_view bytes, std::uint32_t seed) noexcept {
  return ~crc32_update(~seed, bytes_of(bytes), bytes.size());
}

event_stream_decoder::event_stream_decoder(std::uint32_t max_frame) noexcept
    // A limit below the smallest legal frame would reject everything; clamp rather than fail.
    : max_frame_(std::max<std::uint32_t>(max_frame, min_frame_bytes)) {}

event_stream_error event_stream_decoder::feed(std::span<const std::byte> bytes,
                                              const callback& on_message) {
  return feed(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
              on_message);
}

event_stream_error event_stream_decoder::poison(event_stream_error e) noexcept {
  error_ = e;
  // Nothing will be decoded again, so the partial frame is dead weight.
  std::string().swap(buffer_);
  pending_total_ = 0;
  return e;
}

event_stream_error event_stream_decoder::deliver(std::string_view frame,
                                                 const callback& on_message) {
  event_message msg;
  const event_stream_error e = decode_frame(frame, msg);
  if (e != event_stream_error::none) return poison(e);
  ++frames_;
  if (on_message) on_message(msg);
  return event_stream_error::none;
}

event_stream_error event_stream_decoder::feed(std::string_view bytes, const callback& on_message) {
  if (error_ != event_stream_error::none) return error_;

  // Slow path: finish the frame left incomplete by earlier chunks, copying only the bytes that
  // belong to it.
  if (!buffer_.empty()) {
    if (pending_total_ == 0) {
      const std::size_t take = std::min(prelude_bytes - buffer_.size(), bytes.size());
      buffer_.append(bytes.data(), take);
      bytes.remove_prefix(take);
      if (buffer_.size() < prelude_bytes) return error_;
      const prelude_result pr = check_prelude(bytes_of(buffer_), max_frame_);
      if (pr.error != event_stream_error::none) return poison(pr.error);
      pending_total_ = pr.total;
      // Reserved only after the prelude CRC matched, so random bytes cannot make us allocate
      // max_frame_ up front.
      buffer_.reserve(pending_total_);
    }
    const std::size_t take = std::min(pending_total_ - buffer_.size(), bytes.size());
    buffer_.append(bytes.data(), take);
    bytes.remove_prefix(take);
    if (buffer_.size() < pending_total_) return error_;
    const event_stream_error e = deliver(buffer_, on_message);
    if (e != event_stream_error::none) return e;
    // clear() keeps the capacity: the next partial frame usually fits without allocating.
    buffer_.clear();
    pending_total_ = 0;
  }

  // Fast path: decode every complete frame straight from the caller's bytes.
  while (bytes.size() >= prelude_bytes) {
    const prelude_result pr = check_prelude(bytes_of(bytes), max_frame_);
    if (pr.error != event_stream_error::none) return poison(pr.error);
    if (bytes.size() < pr.total) {
      pending_total_ = pr.total;
      buffer_.reserve(pending_total_);
      break;
    }
    const event_stream_error e = deliver(bytes.substr(0, pr.total), on_message);
    if (e != event_stream_error::none) return e;
    bytes.remove_prefix(pr.total);
  }

  // Keep the tail (an incomplete prelude or frame) for the next feed().
  buffer_.append(bytes.data(), bytes.size());
  return error_;
}

void encode_event_frame(std::string& out, std::span<const event_header> headers,
                        std::string_view payload) {
  std::size_t headers_len = 0;
  for (const event_header& h : headers) {
    if (h.name.empty() || h.name.size() > max_header_name_bytes ||
        h.value.size() > max_header_value_bytes) {
      throw std::length_error("event stream header name must be 1-255 bytes, value <= 65535");
    }
    headers_len += 1 + h.name.size() + 1 + 2 + h.value.size();
  }
  const std::size_t total = prelude_bytes + headers_len + payload.size() + trailer_bytes;
  if (total > std::numeric_limits<std::uint32_t>::max()) {
    throw std::length_error("event stream frame larger than 4 GiB");
  }

  const std::size_t start = out.size();
  out.reserve(start + total);
  put_be32(out, static_cast<std::uint32_t>(total));
  put_be32(out, static_cast<std::uint32_t>(headers_len));
  put_be32(out, crc32(std::string_view(out).substr(start, 8)));
  for (const event_header& h : headers) {
    out.push_back(static_cast<char>(h.name.size()));
    out.append(h.name);
    out.push_back(static_cast<char>(type_string));
    put_be16(out, h.value.size());
    out.append(h.value);
  }
  out.append(payload);
  put_be32(out, crc32(std::string_view(out).substr(start)));
}

void encode_event_frame_raw(std::string& out, std::string_view header_block,
                            std::string_view payload) {
  const std::size_t total = prelude_bytes + header_block.size() + payload.size() + trailer_bytes;
  if (total > std::numeric_limits<std::uint32_t>::max()) {
    throw std::length_error("event stream frame larger than 4 GiB");
  }
  const std::size_t start = out.size();
  out.reserve(start + total);
  put_be32(out, static_cast<std::uint32_t>(total));
  put_be32(out, static_cast<std::uint32_t>(header_block.size()));
  put_be32(out, crc32(std::string_view(out).substr(start, 8)));
  out.append(header_block);
  out.append(payload);
  put_be32(out, crc32(std::string_view(out).substr(start)));
}

std::optional<event_header_value> find_event_header(std::string_view header_block,
                                                    std::string_view name) noexcept {
  header_reader headers(header_block, header_block.size(), 0);
  raw_header h;
  while (!headers.done()) {
    if (!headers.next(h)) return std::nullopt;
    if (h.name == name) return event_header_value{h.type, h.value};
  }
  return std::nullopt;
}

std::string encode_event(std::string_view event_type, std::string_view json_payload) {
  const std::array<event_header, 3> headers{{{":event-type", event_type},
                                             {":content-type", "application/json"},
                                             {":message-type", "event"}}};
  std::string out;
  encode_event_frame(out, headers, json_payload);
  return out;
}

std::string encode_exception(std::string_view exception_type, std::string_view json_payload) {
  const std::array<event_header, 3> headers{{{":exception-type", exception_type},
                                             {":content-type", "application/json"},
                                             {":message-type", "exception"}}};
  std::string out;
  encode_event_frame(out, headers, json_payload);
  return out;
}

}  // namespace bedrock_meter::metering
