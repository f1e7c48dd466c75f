/// libFuzzer target for the event-stream decoder, the first thing untrusted upstream bytes reach.
///
/// Input layout: byte 0 = control (low 4 bits: how many chunk-size bytes follow; bit 4: use a
/// 4 KiB frame limit instead of the default; bit 5: repair the CRCs), then that many chunk sizes
/// (each 0-255; 0 means an empty feed), then the stream. Repairing CRCs lets mutated header
/// blocks and lengths get past the checksums to the header parser, which random mutation alone
/// almost never does; the decoder itself is the production code, unmodified. The stream is decoded
/// whole and in chunks (sizes cycled); both must report the same frames and the same error. Decoded
/// frames are re-encoded and decoded again to check the encoder/decoder pair. Any disagreement
/// aborts.
#include "metering/event_stream.hpp"

#include <array>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using bedrock_meter::metering::event_header;
using bedrock_meter::metering::event_message;
using bedrock_meter::metering::event_stream_decoder;
using bedrock_meter::metering::event_stream_error;

struct frame {
  std::string message_type;
  std::string event_type;
  std::string content_type;
  std::string payload;
  bool operator==(const frame&) const = default;
};

struct outcome {
  std::vector<frame> frames;
  event_stream_error error = event_stream_error::none;
};

void check(bool ok) {
  if (!ok) std::abort();
}

frame copy_of(const event_message& m) {
  return {std::string(m.message_type), std::string(m.event_type), std::string(m.content_type),
          std::string(m.payload)};
}

outcome decode(std::string_view stream, std::uint32_t max_frame,
               const std::vector<std::size_t>* sizes) {
  outcome out;
  event_stream_decoder dec(max_frame);
  const auto on_message = [&out](const event_message& m) { out.frames.push_back(copy_of(m)); };
  if (sizes == nullptr) {
    out.error = dec.feed(stream, on_message);
    // Nothing but an incomplete frame may remain.
    check(dec.buffered() <= stream.size());
  } else {
    std::size_t pos = 0;
    std::size_t i = 0;
    std::size_t empty_run = 0;
    while (pos < stream.size()) {
      std::size_t n = (*sizes)[i++ % sizes->size()];
      // All-zero sizes would never progress; after a full cycle of them feed one byte.
      empty_run = n == 0 ? empty_run + 1 : 0;
      if (empty_run > sizes->size()) n = 1;
      const std::string_view chunk = stream.substr(pos, n);
      pos += chunk.size();
      out.error = dec.feed(chunk, on_message);
      check(dec.buffered() < max_frame || max_frame < 16);
      if (out.error != event_stream_error::none) check(dec.buffered() == 0);
    }
  }
  check(dec.error() == out.error);
  check(dec.frames() == out.frames.size());
  return out;
}

void put_be32(std::string& s, std::size_t at, std::uint32_t v) {
  s[at] = static_cast<char>(v >> 24);
  s[at + 1] = static_cast<char>(v >> 16);
  s[at + 2] = static_cast<char>(v >> 8);
  s[at + 3] = static_cast<char>(v);
}

// Rewrites every prelude CRC and, where the frame is complete, its message CRC.
void repair_crcs(std::string& s) {
  using bedrock_meter::metering::crc32;
  for (std::size_t pos = 0; pos + 12 <= s.size();) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data() + pos);
    const std::size_t total = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                              (std::size_t{p[2]} << 8) | std::size_t{p[3]};
    put_be32(s, pos + 8, crc32(std::string_view(s).substr(pos, 8)));
    if (total < 16 || total > s.size() - pos) return;
    put_be32(s, pos + total - 4, crc32(std::string_view(s).substr(pos, total - 4)));
    pos += total;
  }
}

// Re-encodes a decoded frame with the headers that carry its fields and decodes it again.
void check_round_trip(const frame& f) {
  std::string_view kind_header = ":event-type";
  if (f.message_type == "exception") kind_header = ":exception-type";
  if (f.message_type == "error") kind_header = ":error-code";
  std::vector<event_header> headers;
  if (!f.message_type.empty()) headers.push_back({":message-type", f.message_type});
  if (!f.event_type.empty()) headers.push_back({kind_header, f.event_type});
  if (!f.content_type.empty()) headers.push_back({":content-type", f.content_type});
  std::string bytes;
  bedrock_meter::metering::encode_event_frame(bytes, headers, f.payload);
  event_stream_decoder dec;
  int seen = 0;
  const event_stream_error e = dec.feed(bytes, [&](const event_message& m) {
    check(copy_of(m) == f);
    ++seen;
  });
  check(e == event_stream_error::none);
  check(seen == 1);
  check(dec.buffered() == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t n_sizes = data[0] & 0x0Fu;
  const std::uint32_t max_frame =
      (data[0] & 0x10u) != 0 ? 4096u : bedrock_meter::metering::max_event_frame_bytes;
  if (size < 1 + n_sizes) return 0;
  std::vector<std::size_t> sizes(data + 1, data + 1 + n_sizes);
  if (sizes.empty()) sizes.push_back(1);
  std::string storage;
  std::string_view stream(reinterpret_cast<const char*>(data + 1 + n_sizes), size - 1 - n_sizes);
  if ((data[0] & 0x20u) != 0) {
    storage.assign(stream);
    repair_crcs(storage);
    stream = storage;
  }

  const outcome whole = decode(stream, max_frame, nullptr);
  const outcome chunked = decode(stream, max_frame, &sizes);
  check(whole.error == chunked.error);
  check(whole.frames == chunked.frames);
  for (const frame& f : whole.frames) check_round_trip(f);
  (void)bedrock_meter::metering::to_string(whole.error);
  return 0;
}
