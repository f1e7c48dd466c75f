#!/usr/bin/env python3
"""Generates the recorded event-stream fixtures in this folder.

An independent encoder of `application/vnd.amazon.eventstream` (pure stdlib: struct + zlib.crc32 +
base64), so the C++ tests cross-check framing and CRC against a second implementation: the C++
decoder must read these bytes, and the C++ encoder must produce the same bytes for the same
headers and payloads.

The streams mirror what Bedrock sends (header order `:event-type`, `:content-type`,
`:message-type`; `p` padding fields; the Anthropic model JSON base64-encoded in `chunk` events;
`amazon-bedrock-invocationMetrics` in the last chunk; ConverseStream's `metadata` event last).

Usage: python3 tests/data/eventstream/generate.py            (rewrites *.bin and manifest.json)
       python3 tests/data/eventstream/generate.py --botocore (also parses them with botocore's
                                                              EventStreamBuffer, a third decoder)
Deterministic: running it twice gives identical files.
"""

import base64
import json
import os
import struct
import sys
import uuid
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# Header value type codes.
T_TRUE, T_FALSE, T_BYTE, T_SHORT, T_INT, T_LONG, T_BYTES, T_STRING, T_TIMESTAMP, T_UUID = range(10)


def encode_header(name, vtype, value=None):
    n = name.encode()
    out = struct.pack(">B", len(n)) + n + struct.pack(">B", vtype)
    if vtype in (T_TRUE, T_FALSE):
        pass
    elif vtype == T_BYTE:
        out += struct.pack(">b", value)
    elif vtype == T_SHORT:
        out += struct.pack(">h", value)
    elif vtype == T_INT:
        out += struct.pack(">i", value)
    elif vtype in (T_LONG, T_TIMESTAMP):
        out += struct.pack(">q", value)
    elif vtype in (T_BYTES, T_STRING):
        v = value.encode() if isinstance(value, str) else value
        out += struct.pack(">H", len(v)) + v
    elif vtype == T_UUID:
        out += value.bytes
    else:
        raise ValueError(vtype)
    return out


def encode_frame(headers, payload):
    """headers: list of (name, type, value); payload: bytes."""
    hdr = b"".join(encode_header(*h) for h in headers)
    total = 12 + len(hdr) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hdr))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + hdr + payload
    return body + struct.pack(">I", zlib.crc32(body))


def padding(n):
    # Bedrock pads events with a `p` field of varying length so sizes do not leak content.
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[: (n * 7) % 40 + 1]


class Stream:
    def __init__(self, name, cpp_encodable=True):
        self.name = name
        self.cpp_encodable = cpp_encodable
        self.bytes = b""
        self.frames = []

    def add(self, headers, payload, message_type, event_type, content_type):
        self.bytes += encode_frame(headers, payload)
        self.frames.append({
            "message_type": message_type,
            "event_type": event_type,
            "content_type": content_type,
            "payload": payload.decode(),
            # String headers in wire order, for re-encoding in C++ (only when all are strings).
            "headers": [[h[0], h[2]] for h in headers if h[1] == T_STRING],
        })

    def event(self, event_type, obj):
        payload = json.dumps(obj, separators=(",", ":")).encode()
        self.add([(":event-type", T_STRING, event_type),
                  (":content-type", T_STRING, "application/json"),
                  (":message-type", T_STRING, "event")],
                 payload, "event", event_type, "application/json")

    def exception(self, exception_type, obj):
        payload = json.dumps(obj, separators=(",", ":")).encode()
        self.add([(":exception-type", T_STRING, exception_type),
                  (":content-type", T_STRING, "application/json"),
                  (":message-type", T_STRING, "exception")],
                 payload, "exception", exception_type, "application/json")

    def chunk(self, model_obj, i):
        b64 = base64.b64encode(json.dumps(model_obj, separators=(",", ":")).encode()).decode()
        self.event("chunk", {"bytes": b64, "p": padding(i)})


def anthropic_chunks(s, text_parts, usage, cache_read=0, cache_write=0):
    i = 0
    s.chunk({"type": "message_start", "message": {
        "id": "msg_bdrk_01ABCDEF", "type": "message", "role": "assistant",
        "model": "claude-3-5-sonnet-20240620", "content": [], "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "cache_creation_input_tokens": cache_write,
                  "cache_read_input_tokens": cache_read, "output_tokens": 1}}}, i)
    i += 1
    s.chunk({"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": ""}}, i)
    for part in text_parts:
        i += 1
        s.chunk({"type": "content_block_delta", "index": 0,
                 "delta": {"type": "text_delta", "text": part}}, i)
    return i


def invoke_stream_anthropic():
    s = Stream("invoke_stream_anthropic")
    parts = ["Hello", "! How can", " I help you", " today?", " \u00e9\u00e8 \u2603"]
    i = anthropic_chunks(s, parts, (25, 0), cache_read=1024, cache_write=2048)
    s.chunk({"type": "content_block_stop", "index": 0}, i + 1)
    s.chunk({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
             "usage": {"output_tokens": 17}}, i + 2)
    s.chunk({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": 25, "outputTokenCount": 17, "invocationLatency": 1234,
        "firstByteLatency": 321, "cacheReadInputTokenCount": 1024,
        "cacheWriteInputTokenCount": 2048}}, i + 3)
    return s


def converse_stream():
    s = Stream("converse_stream")
    s.event("messageStart", {"p": padding(0), "role": "assistant"})
    words = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog."]
    for n, w in enumerate(words):
        s.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w},
                                      "p": padding(n + 1)})
    s.event("contentBlockStop", {"contentBlockIndex": 0, "p": padding(11)})
    s.event("messageStop", {"p": padding(12), "stopReason": "end_turn"})
    s.event("metadata", {"metrics": {"latencyMs": 842}, "p": padding(13), "usage": {
        "cacheReadInputTokens": 128, "cacheWriteInputTokens": 64, "inputTokens": 31,
        "outputTokens": 9, "totalTokens": 232}})
    return s


def invoke_stream_throttled():
    s = Stream("invoke_stream_throttled")
    anthropic_chunks(s, ["Partial", " answer"], (12, 0))
    s.exception("throttlingException", {
        "message": "Too many tokens, please wait before trying again."})
    return s


def converse_stream_model_error():
    s = Stream("converse_stream_model_error")
    s.event("messageStart", {"p": padding(0), "role": "assistant"})
    s.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Once upon"},
                                  "p": padding(1)})
    s.exception("modelStreamErrorException", {
        "message": "Model stream error", "originalMessage": "upstream model failed",
        "originalStatusCode": 500})
    return s


def mixed_header_types():
    """Every header value type, unusual header order, an error message and an empty payload.
    Not C++-encodable (our encoder writes string headers only); decoding is what is checked."""
    s = Stream("mixed_header_types", cpp_encodable=False)
    u = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")
    s.add([(":message-type", T_STRING, "event"),
           ("flag-true", T_TRUE), ("flag-false", T_FALSE), ("a-byte", T_BYTE, -5),
           ("a-short", T_SHORT, -1234), ("an-int", T_INT, 123456789),
           ("a-long", T_LONG, -(1 << 40)), ("some-bytes", T_BYTES, b"\x00\x01\xff"),
           (":date", T_TIMESTAMP, 1718000000000), ("id", T_UUID, u),
           (":content-type", T_STRING, "application/json"),
           (":event-type", T_STRING, "contentBlockDelta")],
          b'{"contentBlockIndex":0,"delta":{"text":"x"}}', "event", "contentBlockDelta",
          "application/json")
    # A non-string value under a well-known name is skipped, not misread as a string.
    # (botocore rejects duplicate names, so the non-string one is `:content-type`.)
    s.add([(":content-type", T_BYTES, b"application/json"), (":message-type", T_STRING, "event"),
           (":event-type", T_STRING, "initial-response")],
          b"", "event", "initial-response", "")
    s.add([(":error-message", T_STRING, "Internal failure"),
           (":error-code", T_STRING, "InternalFailure"),
           (":message-type", T_STRING, "error")],
          b"", "error", "InternalFailure", "")
    return s


def main():
    streams = [invoke_stream_anthropic(), converse_stream(), invoke_stream_throttled(),
               converse_stream_model_error(), mixed_header_types()]
    manifest = {"generator": "generate.py", "fixtures": []}
    for s in streams:
        with open(os.path.join(HERE, s.name + ".bin"), "wb") as f:
            f.write(s.bytes)
        manifest["fixtures"].append({"file": s.name + ".bin", "size": len(s.bytes),
                                     "crc32": zlib.crc32(s.bytes),
                                     "cpp_encodable": s.cpp_encodable, "frames": s.frames})
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    write_fuzz_seeds(streams)
    if "--botocore" in sys.argv:
        check_with_botocore(manifest)


def write_fuzz_seeds(streams):
    """Seed corpus for tests/fuzz/fuzz_event_stream.cpp: a control byte (low 4 bits = number of
    chunk-size bytes, bit 4 = 4 KiB frame limit, bit 5 = repair CRCs), the chunk sizes, then the
    stream."""
    out_dir = os.path.join(HERE, "..", "fuzz", "event_stream")
    os.makedirs(out_dir, exist_ok=True)
    seeds = {}
    for s in streams:
        seeds[s.name + "_whole"] = bytes([1, 255]) + s.bytes
        seeds[s.name + "_bytewise"] = bytes([1, 1]) + s.bytes
        seeds[s.name + "_mixed"] = bytes([4, 3, 0, 17, 200]) + s.bytes
    first = streams[0].bytes
    flip = bytearray(first)
    flip[5] ^= 0x40
    seeds["prelude_crc"] = bytes([1, 7]) + bytes(flip)
    flip = bytearray(first)
    flip[len(first) // 2] ^= 0x01
    seeds["message_crc"] = bytes([2, 5, 9]) + bytes(flip)
    seeds["small_limit"] = bytes([0x11, 64]) + encode_frame(
        [(":event-type", T_STRING, "chunk")], b"x" * 5000)
    seeds["minimal_frame"] = bytes([0]) + encode_frame([], b"")
    seeds["truncated"] = bytes([1, 2]) + first[: len(first) - 3]
    # With CRC repair on, mutations of these reach the header parser.
    seeds["repair_mixed_headers"] = bytes([0x21, 5]) + streams[-1].bytes
    seeds["repair_converse"] = bytes([0x22, 1, 40]) + streams[1].bytes
    for name, data in seeds.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)


def check_with_botocore(manifest):
    from botocore.eventstream import EventStreamBuffer
    for fx in manifest["fixtures"]:
        buf = EventStreamBuffer()
        with open(os.path.join(HERE, fx["file"]), "rb") as f:
            buf.add_data(f.read())
        msgs = list(buf)
        assert len(msgs) == len(fx["frames"]), fx["file"]
        for msg, frame in zip(msgs, fx["frames"]):
            assert msg.payload.decode() == frame["payload"], fx["file"]
            assert msg.headers.get(":message-type") == frame["message_type"], fx["file"]
        print(f"botocore: {fx['file']}: {len(msgs)} frames ok")


if __name__ == "__main__":
    main()
