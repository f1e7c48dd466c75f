"""HTTP/2 through the proxy: nghttp (prior knowledge over cleartext, ALPN h2 over TLS), several
streams on one connection, client RST_STREAM as a client abort, GOAWAY on shutdown, flood
defences with h2load, and the JavaScript SDK (whose default handler speaks HTTP/2)."""
import json
import os
import re
import socket
import struct
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

from harness import (BEARER_TOKEN, CLAUDE, CLIENT_AKID, CLIENT_SECRET, LLAMA, NOVA, ROOT, Proxy,
                     Simulator, base_config, make_ca)

JS_DIR = ROOT / "tests" / "js"
HAVE_NGHTTP = shutil.which("nghttp") is not None and shutil.which("h2load") is not None
HAVE_JS = shutil.which("node") is not None and (JS_DIR / "node_modules").is_dir()
# Missing tools fail the run rather than skip tests: scripts/install-deps installs both.
if not HAVE_NGHTTP or not HAVE_JS:
    raise SystemExit("test_http2: needs nghttp and h2load (nghttp2-client) and node with "
                     "tests/js/node_modules; run scripts/install-deps")


def converse_stream_body(directive: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": [{"text": directive}]}]})


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(headers) -> bytes:
    """HPACK 'literal without indexing, new name' for every field: no table state to track."""
    out = b""
    for name, value in headers:
        n, v = name.encode(), value.encode()
        out += b"\x00" + _hpack_int(len(n), 7, 0) + n + _hpack_int(len(v), 7, 0) + v
    return out


def frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    import struct
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


# Frame types and error codes (RFC 9113 6, 7).
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 0, 1, 3, 4, 6, 7, 9
END_STREAM, END_HEADERS = 0x1, 0x4
NO_ERROR, CANCEL, ENHANCE_YOUR_CALM = 0x0, 0x8, 0xB
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class FrameReader:
    """Reads a server's frames off a raw socket, keeping partial frames between calls."""

    def __init__(self, sock):
        self.sock, self.buf, self.frames = sock, b"", []
        self.closed = False

    def until(self, pred, timeout=10.0):
        """Reads until `pred(frames)` is true, the peer closes, or `timeout`; returns frames
        [(type, flags, stream, payload)] read so far on this connection."""
        self.sock.settimeout(timeout)
        while not pred(self.frames) and not self.closed:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                chunk = b""
            if not chunk:
                self.closed = True
                break
            self.buf += chunk
            while len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + length:
                    break
                ftype, flags = self.buf[3], self.buf[4]
                sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
                self.frames.append((ftype, flags, sid, self.buf[9:9 + length]))
                self.buf = self.buf[9 + length:]
        return self.frames


def read_frames(sock, until, timeout=10.0):
    """Reads frames until `until(frames)` is true or the peer closes; returns
    [(type, flags, stream, payload)]."""
    return FrameReader(sock).until(until, timeout)


def goaway_codes(frames):
    """The error code of every GOAWAY in `frames`."""
    return [int.from_bytes(f[3][4:8], "big") for f in frames if f[0] == GOAWAY]


def rst_codes(frames, sid):
    return [int.from_bytes(f[3][:4], "big") for f in frames if f[0] == RST_STREAM and f[2] == sid]


def ended(frames, sid):
    """True once stream `sid` got its END_STREAM (on DATA or HEADERS)."""
    return any(f[2] == sid and f[0] in (DATA, HEADERS) and f[1] & END_STREAM for f in frames)


def request_block(port, path, token=BEARER_TOKEN):
    return hpack_literal([(":method", "POST"), (":scheme", "http"), (":path", path),
                          (":authority", f"127.0.0.1:{port}"),
                          ("authorization", f"Bearer {token}"),
                          ("content-type", "application/json")])


class Http2Base(unittest.TestCase):
    tls = False
    limits: dict = {}  # extra limits: settings for the class's proxy

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="bm-h2-"))
        cls.sim = Simulator()
        cfg = base_config(cls.sim.url, admin={"enabled": True, "address": "127.0.0.1", "port": 0},
                          limits={"shutdown_grace": "10s", **cls.limits})
        if cls.tls:
            cls.ca = make_ca(cls.tmp / "ca")
            cfg["listeners"] = [{"address": "127.0.0.1", "port": 0,
                                 "tls": {"cert_file": str(cls.ca["cert"]),
                                         "key_file": str(cls.ca["key"])}}]
        cls.proxy = Proxy(cfg)
        cls.admin_port = json.loads((cls.proxy.tmp / "ready.json").read_text())["admin_port"]

    @classmethod
    def tearDownClass(cls):
        cls.proxy.__exit__(None, None, None)
        cls.sim.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def metric(self, name, **labels):
        """The value of one series on the admin listener's /metrics (0 when absent)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        for line in text.splitlines():
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if got == labels:
                return float(m.group(3))
        return 0.0

    def defence_trips(self, defence):
        return self.metric("bedrock_http2_defence_trips_total", defence=defence)

    def assert_still_serving(self):
        """A defence costs one connection, never the process: a fresh connection is served."""
        before = len(self.proxy.access_log())
        r = self.nghttp([(f"/model/{NOVA}/converse", converse_stream_body("SIM{input=2,output=1}"))])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual([l["status"] for l in self.wait_lines(before, 1)], [200])

    def nghttp(self, paths_bodies, *extra, timeout=30):
        """One nghttp connection carrying every (path, body) as its own stream."""
        args = ["nghttp", "-n", "-s", "-H", f"authorization: Bearer {BEARER_TOKEN}",
                "-H", "content-type: application/json", *extra]
        body_file = None
        urls = []
        for path, body in paths_bodies:
            if body is not None:
                body_file = self.tmp / f"body-{len(urls)}.json"
                body_file.write_text(body)
            urls.append(f"{self.proxy.url}{path}")
        if body_file is not None:
            args += ["-d", str(body_file)]  # nghttp sends the same body on every stream
        env = {**os.environ}
        return subprocess.run(args + urls, capture_output=True, timeout=timeout, env=env)

    def lines_since(self, n):
        return self.proxy.access_log()[n:]

    def wait_lines(self, before, count, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines_since(before)
            if len(lines) >= count:
                return lines
            time.sleep(0.05)
        return self.lines_since(before)


class Http2Cleartext(Http2Base):
    def test_prior_knowledge_stream_is_served_and_logged_as_http2(self):
        before = len(self.proxy.access_log())
        r = self.nghttp([(f"/model/{NOVA}/converse-stream",
                          converse_stream_body("SIM{input=5,output=3,events=3}"))])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        lines = self.wait_lines(before, 1)
        self.assertEqual(len(lines), 1)
        l = lines[0]
        self.assertEqual((l["protocol"], l["operation"], l["status"], l["input_tokens"],
                          l["output_tokens"], l["team"]),
                         ("HTTP/2", "ConverseStream", 200, 5, 3, "billing"))

    def test_several_concurrent_streams_on_one_connection(self):
        before = len(self.proxy.access_log())
        n, pace, events = 5, 200, 4
        start = time.monotonic()
        # Distinct paths: nghttp fetches a URL once however often it is named.
        models = [NOVA, CLAUDE, "amazon.nova-pro-v1:0", "amazon.nova-micro-v1:0", LLAMA]
        body = converse_stream_body(f"SIM{{input=7,output=4,events={events},pace_ms={pace}}}")
        r = self.nghttp([(f"/model/{m}/converse-stream", body) for m in models[:n]])
        elapsed = time.monotonic() - start
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        lines = self.wait_lines(before, n)
        self.assertEqual(len(lines), n)
        self.assertEqual(len({l["conn"] for l in lines}), 1, "all streams on one connection")
        self.assertTrue(all(l["status"] == 200 and l["output_tokens"] == 4 for l in lines), lines)
        # Concurrent, not one after another: n serial streams would take n * (events-1) * pace.
        self.assertLess(elapsed, n * (events - 1) * pace / 1000 * 0.6)

    def open_stream(self, sock, directive):
        body = converse_stream_body(directive).encode()
        block = hpack_literal([(":method", "POST"), (":scheme", "http"),
                               (":path", f"/model/{NOVA}/converse-stream"),
                               (":authority", f"127.0.0.1:{self.proxy.port}"),
                               ("authorization", f"Bearer {BEARER_TOKEN}"),
                               ("content-type", "application/json")])
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") +
                     frame(1, 0x4, 1, block) + frame(0, 0x1, 1, body))

    def test_client_rst_stream_is_a_client_abort(self):
        import socket
        before = len(self.proxy.access_log())
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as s:
            self.open_stream(s, "SIM{input=40,output=30,events=30,pace_ms=100}")
            frames = read_frames(s, lambda fs: sum(1 for f in fs if f[0] == 0 and f[2] == 1) >= 2)
            self.assertGreaterEqual(sum(1 for f in frames if f[0] == 0 and f[2] == 1), 2)
            s.sendall(frame(3, 0, 1, (8).to_bytes(4, "big")))  # RST_STREAM(CANCEL)
            lines = self.wait_lines(before, 1, timeout=15)
        self.assertEqual(len(lines), 1)
        self.assertEqual((lines[0]["protocol"], lines[0]["outcome"]), ("HTTP/2", "client_abort"))

    def test_slow_reader_window_holds_the_upstream(self):
        # The client advertises a 1-byte initial window and never opens it: the proxy must not
        # push the body, and the stream stays in flight instead of completing into a buffer.
        import socket
        before = len(self.proxy.access_log())
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as s:
            settings = (4).to_bytes(2, "big") + (1).to_bytes(4, "big")  # INITIAL_WINDOW_SIZE=1
            body = converse_stream_body("SIM{input=3,output=3,events=3}").encode()
            block = hpack_literal([(":method", "POST"), (":scheme", "http"),
                                   (":path", f"/model/{NOVA}/converse-stream"),
                                   (":authority", "x"), ("authorization", f"Bearer {BEARER_TOKEN}"),
                                   ("content-type", "application/json")])
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, settings) +
                      frame(1, 0x4, 1, block) + frame(0, 0x1, 1, body))
            frames = read_frames(s, lambda fs: any(f[0] == 1 and f[2] == 1 for f in fs))
            time.sleep(1.0)  # the upstream answer (3 events, no pacing) is long complete
            data = sum(len(f[3]) for f in frames if f[0] == 0 and f[2] == 1)
            self.assertLessEqual(data, 1)
            self.assertEqual(self.lines_since(before), [], "settled although the client read nothing")
            # Open the windows: the rest arrives and the stream settles normally.
            s.sendall(frame(8, 0, 0, (1 << 20).to_bytes(4, "big")) +
                      frame(8, 0, 1, (1 << 20).to_bytes(4, "big")))
            read_frames(s, lambda fs: any(f[0] == 0 and f[2] == 1 and f[1] & 1 for f in fs))
            lines = self.wait_lines(before, 1)
        self.assertEqual((lines[0]["status"], lines[0]["outcome"], lines[0]["output_tokens"]),
                         (200, "ok", 3))

    def test_metering_is_the_same_over_http1_and_http2(self):
        import http.client
        requests = [(f"/model/{NOVA}/converse-stream", "SIM{input=55,output=21,events=7}"),
                    (f"/model/{CLAUDE}/converse", "SIM{input=120,output=30,cache_read=40,cache_write=8}")]
        keys = ("operation", "model", "status", "outcome", "input_tokens", "output_tokens",
                "cache_read_tokens", "cache_write_tokens", "usage_source", "priced", "cost_usd",
                "team", "app", "principal")
        results = {}
        for proto in ("HTTP/1.1", "HTTP/2"):
            before = len(self.proxy.access_log())
            for path, directive in requests:
                if proto == "HTTP/2":
                    r = self.nghttp([(path, converse_stream_body(directive))])
                    self.assertEqual(r.returncode, 0, r.stderr.decode())
                else:
                    c = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=10)
                    c.request("POST", path, body=converse_stream_body(directive),
                              headers={"authorization": f"Bearer {BEARER_TOKEN}",
                                       "content-type": "application/json"})
                    resp = c.getresponse()
                    resp.read()
                    self.assertEqual(resp.status, 200)
                    c.close()
            lines = self.wait_lines(before, len(requests))
            self.assertEqual([l["protocol"] for l in lines], [proto] * len(requests))
            results[proto] = [tuple(l[k] for k in keys) for l in lines]
        self.assertEqual(results["HTTP/1.1"], results["HTTP/2"])
        self.assertEqual(results["HTTP/2"][0][4:6], (55, 21))

    def test_http1_still_served_on_the_same_port(self):
        from harness import raw_request
        out = raw_request(self.proxy.port, b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 "), out[:80])

    def test_oversized_header_list_is_refused_not_fatal(self):
        before = len(self.proxy.access_log())
        r = self.nghttp([(f"/model/{NOVA}/converse-stream", converse_stream_body("SIM{input=1,output=1}"))],
                        "-H", "x-big: " + "a" * (20 * 1024))
        out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        self.assertNotIn("ConverseStream", [l["operation"] for l in self.lines_since(before)])
        # The process lives on and serves the next request.
        r2 = self.nghttp([(f"/model/{NOVA}/converse-stream", converse_stream_body("SIM{input=1,output=1}"))])
        self.assertEqual(r2.returncode, 0, out + r2.stderr.decode())

    def flood(self, payload):
        """Sends the preface, SETTINGS and `payload` on a fresh connection; returns every frame
        the proxy sent until it closed the connection."""
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5) as s:
            s.sendall(PREFACE + frame(SETTINGS, 0, 0, b"") + payload)
            return read_frames(s, lambda fs: False, timeout=10)

    def assert_calm(self, frames):
        self.assertEqual(goaway_codes(frames), [ENHANCE_YOUR_CALM], [f[:3] for f in frames])

    def test_flood_of_pings_trips_the_defence(self):
        # h2load cannot send PINGs; a raw client can: the preface, SETTINGS, then many PINGs.
        before = self.defence_trips("ping_flood")
        self.assert_calm(self.flood(frame(PING, 0, 0, b"12345678") * 500))
        self.assertEqual(self.defence_trips("ping_flood") - before, 1)
        self.assert_still_serving()

    def test_flood_of_settings_trips_the_defence(self):
        # max_settings_per_window is 100 per second by default: 300 empty SETTINGS at once.
        before = self.defence_trips("settings_flood")
        pings = self.defence_trips("ping_flood")
        self.assert_calm(self.flood(frame(SETTINGS, 0, 0, b"") * 300))
        self.assertEqual(self.defence_trips("settings_flood") - before, 1)
        self.assertEqual(self.defence_trips("ping_flood"), pings, "counted as its own kind")
        self.assert_still_serving()

    def test_settings_under_the_limit_are_acknowledged_not_refused(self):
        # The defence must not trip on a client that sends a few SETTINGS: each is ACKed.
        before = self.defence_trips("settings_flood")
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5) as s:
            s.sendall(PREFACE + frame(SETTINGS, 0, 0, b"") * 20)
            frames = read_frames(s, lambda fs: sum(1 for f in fs if f[0] == SETTINGS and f[1] & 1) >= 20,
                                 timeout=5)
        self.assertEqual(sum(1 for f in frames if f[0] == SETTINGS and f[1] & 1), 20)
        self.assertEqual(goaway_codes(frames), [])
        self.assertEqual(self.defence_trips("settings_flood"), before)

    def test_flood_of_empty_data_frames_trips_the_defence(self):
        # An open request stream, then empty DATA frames without END_STREAM: no body, no end,
        # only work for the server (CVE-2019-9518).
        before = self.defence_trips("empty_frame_flood")
        before_lines = len(self.proxy.access_log())
        block = request_block(self.proxy.port, f"/model/{NOVA}/converse")
        frames = self.flood(frame(HEADERS, END_HEADERS, 1, block) + frame(DATA, 0, 1, b"") * 500)
        self.assert_calm(frames)
        self.assertEqual(self.defence_trips("empty_frame_flood") - before, 1)
        self.assertEqual(self.lines_since(before_lines), [], "the flooded stream never ran")
        self.assert_still_serving()

    def test_rapid_reset_trips_the_defence(self):
        # HPACK: :method POST (idx 3), :scheme http (6), :path / (4), :authority literal.
        block = bytes([0x83, 0x86, 0x84, 0x41, 0x01, ord("x")])
        before = self.defence_trips("rapid_reset")
        out = b""
        for i in range(300):
            sid = 1 + 2 * i
            out += frame(HEADERS, END_HEADERS, sid, block) + frame(RST_STREAM, 0, sid, struct.pack(">I", 8))
        self.assert_calm(self.flood(out))
        self.assertEqual(self.defence_trips("rapid_reset") - before, 1)
        self.assert_still_serving()

    def test_h2load_many_requests_one_process(self):
        body = self.tmp / "h2load.json"
        body.write_text(converse_stream_body("SIM{input=2,output=2}"))
        before = len(self.proxy.access_log())
        r = subprocess.run(["h2load", "-n", "40", "-c", "2", "-m", "10", "-d", str(body),
                            "-H", f"authorization: Bearer {BEARER_TOKEN}",
                            "-H", "content-type: application/json",
                            f"{self.proxy.url}/model/{NOVA}/converse"],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn("40 succeeded", r.stdout.decode())
        lines = self.wait_lines(before, 40)
        self.assertEqual(len(lines), 40)
        self.assertTrue(all(l["protocol"] == "HTTP/2" and l["status"] == 200 for l in lines))


class Http2StreamTimeouts(Http2Base):
    """limits.header_timeout and limits.body_timeout apply per stream, as per request on
    HTTP/1.1: the late stream is reset, its neighbours on the connection carry on."""
    limits = {"header_timeout": "1s", "body_timeout": "1s"}

    def counters(self):
        return (self.defence_trips("stream_timeout"),
                self.metric("bedrock_proxy_events_total", event="timeout"))

    def expect_cancel(self, r, stream: int, start: float, within: float, running: int):
        """Waits for RST_STREAM(CANCEL) on `stream`: after its 1 s timeout, before `within`
        seconds, while stream `running` is still unfinished. Returns the frames read."""
        frames = r.until(lambda fs: rst_codes(fs, stream), timeout=10)
        reset_after = time.monotonic() - start
        self.assertEqual(rst_codes(frames, stream), [CANCEL])
        self.assertGreaterEqual(reset_after, 0.9)
        self.assertLess(reset_after, within)
        self.assertFalse(ended(frames, running),
                         f"stream {running} was still running when {stream} was reset")
        return frames

    def test_stream_whose_body_never_ends_is_reset_and_its_neighbour_completes(self):
        before_lines, (trips, timeouts) = len(self.proxy.access_log()), self.counters()
        path = f"/model/{NOVA}/converse-stream"
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as s:
            r = FrameReader(s)
            start = time.monotonic()
            # Stream 1: headers, the start of a body, and never END_STREAM.
            # Stream 3: a whole request whose answer takes ~2.4 s, past stream 1's deadline.
            body3 = converse_stream_body("SIM{input=6,output=5,events=5,pace_ms=600}").encode()
            s.sendall(PREFACE + frame(SETTINGS, 0, 0, b"") +
                      frame(HEADERS, END_HEADERS, 1, request_block(self.proxy.port, path)) +
                      frame(DATA, 0, 1, b'{"messages":') +
                      frame(HEADERS, END_HEADERS, 3, request_block(self.proxy.port, path)) +
                      frame(DATA, END_STREAM, 3, body3))
            frames = self.expect_cancel(r, 1, start, within=2.2, running=3)
            frames = r.until(lambda fs: ended(fs, 3), timeout=10)
            self.assertTrue(ended(frames, 3))
            # The connection itself stays usable: a new stream on it is served.
            s.sendall(frame(HEADERS, END_HEADERS, 5, request_block(self.proxy.port, f"/model/{NOVA}/converse")) +
                      frame(DATA, END_STREAM, 5, converse_stream_body("SIM{input=2,output=1}").encode()))
            frames = r.until(lambda fs: ended(fs, 5), timeout=10)
            self.assertTrue(ended(frames, 5))
            self.assertEqual(goaway_codes(frames), [])
        lines = self.wait_lines(before_lines, 2)
        self.assertEqual(len(lines), 2, lines)  # streams 3 and 5; stream 1 never became a request
        self.assertEqual([(l["protocol"], l["status"], l["outcome"], l["output_tokens"]) for l in lines],
                         [("HTTP/2", 200, "ok", 5), ("HTTP/2", 200, "ok", 1)])
        self.assertEqual(lines[0]["conn"], lines[1]["conn"])
        self.assertEqual(self.counters(), (trips + 1, timeouts + 1))

    def test_header_block_that_never_ends_is_reset_and_the_running_stream_finishes(self):
        before_lines, (trips, timeouts) = len(self.proxy.access_log()), self.counters()
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as s:
            r = FrameReader(s)
            body1 = converse_stream_body("SIM{input=4,output=4,events=4,pace_ms=700}").encode()
            s.sendall(PREFACE + frame(SETTINGS, 0, 0, b"") +
                      frame(HEADERS, END_HEADERS, 1,
                            request_block(self.proxy.port, f"/model/{NOVA}/converse-stream")) +
                      frame(DATA, END_STREAM, 1, body1))
            r.until(lambda fs: any(f[0] == HEADERS and f[2] == 1 for f in fs))  # stream 1 runs
            # Stream 3: HEADERS without END_HEADERS and half a header block; the CONTINUATION
            # it promises never comes (slowloris on HTTP/2).
            block = request_block(self.proxy.port, f"/model/{NOVA}/converse")
            start = time.monotonic()
            s.sendall(frame(HEADERS, END_STREAM, 3, block[:len(block) // 2]))
            frames = self.expect_cancel(r, 3, start, within=2.0, running=1)
            # No other frame can come on this connection until that header block ends, so the
            # proxy says GOAWAY (no error) and closes once stream 1 is done.
            frames = r.until(lambda fs: False, timeout=10)
            self.assertTrue(r.closed)
            self.assertTrue(ended(frames, 1))
            self.assertEqual(goaway_codes(frames), [NO_ERROR])
        lines = self.wait_lines(before_lines, 1)
        self.assertEqual([(l["protocol"], l["status"], l["outcome"], l["output_tokens"]) for l in lines],
                         [("HTTP/2", 200, "ok", 4)])
        self.assertEqual(self.counters(), (trips + 1, timeouts + 1))

    def test_streams_within_the_timeouts_are_not_reset(self):
        # A body sent in two parts 0.5 s apart ends inside body_timeout: served as usual.
        before_lines, (trips, _) = len(self.proxy.access_log()), self.counters()
        body = converse_stream_body("SIM{input=3,output=2}").encode()
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as s:
            r = FrameReader(s)
            s.sendall(PREFACE + frame(SETTINGS, 0, 0, b"") +
                      frame(HEADERS, END_HEADERS, 1, request_block(self.proxy.port, f"/model/{NOVA}/converse")) +
                      frame(DATA, 0, 1, body[:10]))
            time.sleep(0.5)
            s.sendall(frame(DATA, END_STREAM, 1, body[10:]))
            frames = r.until(lambda fs: ended(fs, 1))
            self.assertEqual(rst_codes(frames, 1), [])
        self.assertEqual([l["status"] for l in self.wait_lines(before_lines, 1)], [200])
        self.assertEqual(self.counters()[0], trips)


class Http2Tls(Http2Base):
    tls = True

    def test_alpn_h2_over_tls(self):
        before = len(self.proxy.access_log())
        r = self.nghttp([(f"/model/{CLAUDE}/converse", converse_stream_body("SIM{input=9,output=4}"))])
        # nghttp does not verify the certificate: the point here is ALPN selecting h2.
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        lines = self.wait_lines(before, 1)
        self.assertEqual((lines[0]["protocol"], lines[0]["status"], lines[0]["input_tokens"]),
                         ("HTTP/2", 200, 9))


class Http2ConnectionLimit(Http2Base):
    limits = {"max_connections_per_client": 2, "header_timeout": "10s", "idle_timeout": "10s"}

    def test_an_http2_connection_over_the_limit_gets_its_stream_answered_then_goaway(self):
        # Before: a connection over a limit was closed at once, so an HTTP/2 client saw its
        # connection drop with no status at all.
        held = [socket.create_connection(("127.0.0.1", self.proxy.port)) for _ in range(2)]
        try:
            time.sleep(0.2)
            r = self.nghttp([(f"/model/{NOVA}/converse", converse_stream_body("SIM{input=2,output=1}"))],
                            "-v")
            out = r.stdout.decode(errors="replace")
            self.assertIn(":status: 429", out)
            self.assertIn("ThrottlingException", out)
            self.assertIn("GOAWAY", out)
            self.assertEqual(self.metric("bedrock_proxy_events_total",
                                         event="connection_refused_per_client"), 1.0)
        finally:
            for s in held:
                s.close()
        time.sleep(0.2)
        self.assert_still_serving()


class Http2Shutdown(unittest.TestCase):
    def test_goaway_on_shutdown_lets_the_in_flight_stream_finish(self):
        with Simulator() as sim:
            proxy = Proxy(base_config(sim.url))
            try:
                body = Path(proxy.tmp) / "b.json"
                body.write_text(converse_stream_body("SIM{input=4,output=8,events=8,pace_ms=150}"))
                client = subprocess.Popen(
                    ["nghttp", "-n", "-H", f"authorization: Bearer {BEARER_TOKEN}",
                     "-H", "content-type: application/json", "-d", str(body),
                     f"{proxy.url}/model/{NOVA}/converse-stream"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                time.sleep(0.4)  # the stream is in flight (8 events * 150 ms)
                rc = proxy.stop(timeout=15)
                out, err = client.communicate(timeout=15)
                self.assertEqual(rc, 0, proxy.stderr())
                self.assertEqual(client.returncode, 0, err.decode())
                lines = proxy.access_log()
                self.assertEqual(len(lines), 1)
                self.assertEqual((lines[0]["protocol"], lines[0]["status"], lines[0]["outcome"],
                                  lines[0]["output_tokens"]), ("HTTP/2", 200, "ok", 8))
            finally:
                proxy.__exit__(None, None, None)


class JsSdk(unittest.TestCase):
    """The AWS SDK for JavaScript v3, each handler, against plain and TLS listeners."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="bm-js-"))
        cls.ca = make_ca(cls.tmp / "ca")
        cls.sim = Simulator()
        cfg = base_config(cls.sim.url)
        cfg["listeners"] = [{"address": "127.0.0.1", "port": 0},
                            {"address": "127.0.0.1", "port": 0,
                             "tls": {"cert_file": str(cls.ca["cert"]), "key_file": str(cls.ca["key"])}}]
        cls.proxy = Proxy(cfg)
        cls.plain = f"http://127.0.0.1:{cls.proxy.ports[0]}"
        cls.https = f"https://localhost:{cls.proxy.ports[1]}"

    @classmethod
    def tearDownClass(cls):
        cls.proxy.__exit__(None, None, None)
        cls.sim.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_js(self, endpoint, handler, scenario="operations"):
        env = {**os.environ, "BM_ENDPOINT": endpoint, "BM_HANDLER": handler,
               "BM_SCENARIO": scenario, "BM_AKID": CLIENT_AKID, "BM_SECRET": CLIENT_SECRET,
               "NODE_EXTRA_CA_CERTS": str(self.ca["ca"]), "AWS_EC2_METADATA_DISABLED": "true"}
        r = subprocess.run(["node", str(JS_DIR / "run-sdk.js")], capture_output=True,
                           timeout=90, env=env)
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
        return json.loads(r.stdout.decode().strip().splitlines()[-1])

    def line(self, rid):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for l in self.proxy.access_log():
                if l["request_id"] == rid:
                    return l
            time.sleep(0.05)
        self.fail(f"no access-log line for {rid}")

    def check_operations(self, out, protocol):
        self.assertEqual((out["converse"]["input"], out["converse"]["output"],
                          out["converse"]["role"]), (120, 30, "assistant"))
        self.assertEqual((out["converse_stream"]["deltas"], out["converse_stream"]["input"],
                          out["converse_stream"]["output"]), (7, 55, 21))
        self.assertEqual(out["invoke"]["output"], 9)
        self.assertEqual((out["invoke_stream"]["first"], out["invoke_stream"]["input"],
                          out["invoke_stream"]["output"]), ("message_start", 70, 12))
        self.assertEqual(out["count_tokens"]["input"], 33)
        tokens = {}
        for op, rec in out.items():
            l = self.line(rec["id"])
            self.assertEqual(l["protocol"], protocol, op)
            tokens[op] = (l["operation"], l["input_tokens"], l["output_tokens"],
                          l["cache_read_tokens"], l["cache_write_tokens"], l["cost_usd"])
        return tokens

    def test_http1_handler_plain(self):
        self.check_operations(self.run_js(self.plain, "http1"), "HTTP/1.1")

    # Over HTTP/2 the SDK signs `:authority` instead of `host`: the verifier accepts either.
    def test_default_handler_plain_is_http2_and_meters_like_http1(self):
        h1 = self.check_operations(self.run_js(self.plain, "http1"), "HTTP/1.1")
        h2 = self.check_operations(self.run_js(self.plain, "default"), "HTTP/2")
        self.assertEqual(h1, h2)

    def test_default_handler_tls_is_http2(self):
        self.check_operations(self.run_js(self.https, "default"), "HTTP/2")

    def check_multiplexed(self, endpoint):
        out = self.run_js(endpoint, "h2-shared", "multiplex")
        lines = [self.line(c["id"]) for c in out["calls"]]
        self.assertEqual(len(lines), 6)
        self.assertEqual({l["protocol"] for l in lines}, {"HTTP/2"})
        self.assertEqual(len({l["conn"] for l in lines}), 1,
                         f"streams spread over connections {sorted({l['conn'] for l in lines})}")
        for i, (call, l) in enumerate(zip(out["calls"], lines)):
            self.assertEqual((l["status"], l["outcome"], l["input_tokens"], l["output_tokens"]),
                             (200, "ok", 20 + i, 3 + i))
            self.assertEqual((call["input"], call["output"]), (20 + i, 3 + i))
        # In flight together: one after another they would take 6 * first_byte_ms.
        self.assertLess(out["elapsed_ms"], 6 * out["first_byte_ms"] / 2)

    def test_h2_handler_multiplexes_streams_on_one_connection_plain(self):
        # The proxy's own record (access-log `conn`) shows all six SDK calls as streams of one
        # HTTP/2 connection.
        self.check_multiplexed(self.plain)

    def test_h2_handler_multiplexes_streams_on_one_connection_tls(self):
        self.check_multiplexed(self.https)

    def test_h2_handler_runs_event_streams_concurrently(self):
        # Several ConverseStreams at once through the SDK's HTTP/2 handler, all metered, and
        # running side by side (not one after another). smithy gives each event-stream operation
        # an isolated session even with disableConcurrentStreams: false (docs/http2.md names the
        # source lines); unary calls do share one (the multiplex tests above).
        out = self.run_js(self.plain, "h2-shared", "concurrent")
        lines = [self.line(s["id"]) for s in out["streams"]]
        self.assertTrue(all(l["protocol"] == "HTTP/2" for l in lines))
        self.assertEqual(len({l["conn"] for l in lines}), len(lines))
        self.assertTrue(all(s["output"] == 5 and len(s["arrivals"]) == 5 for s in out["streams"]))
        # Pacing: each stream's deltas reach the SDK as the simulator paces them (100 ms apart),
        # not in one burst at the end.
        for st in out["streams"]:
            self.assertGreaterEqual(st["arrivals"][-1] - st["arrivals"][0], 0.8 * 4 * 100)
        sequential_ms = len(out["streams"]) * 5 * 100
        self.assertLess(out["elapsed_ms"], sequential_ms / 2)

    def test_default_handler_abort_is_a_client_abort_settled_exactly(self):
        # The client resets the stream after two of thirty deltas; the proxy drains the upstream
        # (Bedrock bills the whole generation) and settles the simulator's reported usage, as the
        # boto3 abort test does over HTTP/1.1 (test_streams.py).
        sim_before = self.sim.stats()["requests"].get("ConverseStream", 0)
        out = self.run_js(self.plain, "default", "abort")
        self.assertEqual(out["deltas"], 2)
        l = self.line(out["id"])
        self.assertEqual((l["protocol"], l["outcome"]), ("HTTP/2", "client_abort"))
        self.assertEqual((l["input_tokens"], l["output_tokens"], l["usage_source"]),
                         (out["expected_input"], out["expected_output"], "reported"))
        self.assertEqual((l["cache_read_tokens"], l["cache_write_tokens"]), (0, 0))
        # One upstream call: the settled counts are that stream's, not a retry's.
        self.assertEqual(self.sim.stats()["requests"].get("ConverseStream", 0) - sim_before, 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
