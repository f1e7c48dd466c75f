"""InvokeModelWithBidirectionalStream (Amazon Nova Sonic) through the proxy: the JavaScript SDK's
own InvokeModelWithBidirectionalStreamCommand over HTTP/2 (cleartext and TLS), both directions
streaming at once, every input event's signature checked and re-signed (the simulator verifies
the proxy's chain independently), metered from the usage events with speech and text tokens
priced apart; client abort, an upstream cut, an exception event, budget refusal and a forged
event signature. (HTTP/1.1 callers are refused: test_robustness.)"""
import base64
import csv
import hashlib
import hmac
import json
import os
import shutil
import socket
import sqlite3
import struct
import subprocess
import tempfile
import time
import unittest
import zlib
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from harness import (CLIENT_AKID, CLIENT_SECRET, PROXY_BIN, ROOT, Proxy, Simulator, base_config,
                     make_ca)
from test_http2 import (DATA, END_HEADERS, END_STREAM, HEADERS, PREFACE, SETTINGS, FrameReader,
                        frame, hpack_literal)

JS_DIR = ROOT / "tests" / "js"
SONIC = "amazon.nova-sonic-v1:0"

# The rate table's Nova Sonic prices (config/rates/bedrock.yaml), USD per 1M tokens.
SPEECH_IN, SPEECH_OUT = Decimal("3.40"), Decimal("13.60")
TEXT_IN, TEXT_OUT = Decimal("0.06"), Decimal("0.24")


def sonic_cost(speech_in, text_in, speech_out, text_out) -> Decimal:
    return (speech_in * SPEECH_IN + text_in * TEXT_IN + speech_out * SPEECH_OUT +
            text_out * TEXT_OUT) / Decimal(1_000_000)


def ledger_row(path: Path, request_id: str, timeout=10.0) -> dict:
    """The ledger's row for `request_id` (waits for the writer's commit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            with sqlite3.connect(path) as db:
                db.row_factory = sqlite3.Row
                row = db.execute("SELECT * FROM requests WHERE request_id = ?",
                                 (request_id,)).fetchone()
                if row is not None:
                    return dict(row)
        time.sleep(0.05)
    raise AssertionError(f"no ledger row for {request_id}")


def last_row(path: Path, timeout=10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            with sqlite3.connect(path) as db:
                db.row_factory = sqlite3.Row
                row = db.execute("SELECT * FROM requests ORDER BY id DESC LIMIT 1").fetchone()
                if row is not None:
                    return dict(row)
        time.sleep(0.05)
    raise AssertionError("no ledger row")


def run_sdk(endpoint: str, scenario: str, akid=CLIENT_AKID, secret=CLIENT_SECRET,
            ca: Path | None = None) -> subprocess.CompletedProcess:
    """tests/js/run-sdk.js: the JS SDK's own commands, `scenario` of them, against `endpoint`."""
    env = {**os.environ, "BM_ENDPOINT": endpoint, "BM_HANDLER": "default", "BM_SCENARIO": scenario,
           "BM_AKID": akid, "BM_SECRET": secret, "AWS_EC2_METADATA_DISABLED": "true"}
    if ca is not None:
        env["NODE_EXTRA_CA_CERTS"] = str(ca)
    return subprocess.run(["node", str(JS_DIR / "run-sdk.js")], capture_output=True, timeout=90,
                          env=env)


def sdk_result(test: unittest.TestCase, r: subprocess.CompletedProcess) -> dict:
    """The JSON line run-sdk.js printed last, once it exited 0."""
    test.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def pico(usd: Decimal) -> int:
    return int(usd * Decimal(10) ** 12)


class BidirectionalJs(unittest.TestCase):
    """The JS SDK's bidirectional command through the proxy to the simulator."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="bm-bidi-"))
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

    def run_js(self, endpoint, scenario, akid=CLIENT_AKID, secret=CLIENT_SECRET, ok=True):
        r = run_sdk(endpoint, scenario, akid, secret, ca=self.ca["ca"])
        return sdk_result(self, r) if ok else r

    def check_session(self, endpoint):
        sim_before = self.sim.stats()
        out = self.run_js(endpoint, "bidi")
        # Two turns answered while the input was still open (the script sends turn 2 only after
        # turn 1's usage event came back), then the final usage event and completionEnd.
        self.assertEqual(out["usage_events"], 3)
        self.assertEqual(out["text"], ["Simulated reply 1.", "Simulated reply 2."])
        self.assertEqual(out["audio_bytes"], 2 * 4000)
        self.assertEqual(out["completion_end"], "END_TURN")
        t = out["totals"]
        # The simulator's rules (docs/simulator.md): 3 audio events of 3,200 bytes = 12 speech
        # tokens; "You are a helpful assistant." (28 bytes) 7 and "hello there" 3 text tokens;
        # each turn answers 8 text and 4 speech tokens.
        self.assertEqual((t["speech_input"], t["text_input"], t["speech_output"], t["text_output"]),
                         (12, 10, 8, 16))
        row = ledger_row(self.proxy.ledger_path, out["id"])
        self.assertEqual((row["operation"], row["status"], row["outcome"], row["usage_source"]),
                         ("InvokeModelWithBidirectionalStream", 200, "ok", "reported"))
        self.assertEqual((row["input_tokens"], row["output_tokens"]), (t["input"], t["output"]))
        self.assertEqual((row["speech_input_tokens"], row["speech_output_tokens"]), (12, 8))
        self.assertEqual(row["total_cost"], pico(sonic_cost(12, 10, 8, 16)))
        self.assertEqual(row["stop_reason"], "end_turn")
        self.assertGreater(row["bytes_in"], 0)
        # Every input event the proxy forwarded carried the proxy's own valid signature.
        sim = self.sim.stats()
        sent = sim["bidi_verified_events"] - sim_before["bidi_verified_events"]
        self.assertEqual(sent, sim["bidi_input_events"] - sim_before["bidi_input_events"])
        self.assertGreaterEqual(sent, 14)
        self.assertEqual(sim["bidi_signature_failures"], sim_before["bidi_signature_failures"])
        return row

    def test_a_session_over_cleartext_http2_is_relayed_both_ways_and_metered(self):
        self.check_session(self.plain)

    def test_a_session_over_tls_is_relayed_both_ways_and_metered(self):
        row = self.check_session(self.https)
        access = [l for l in self.proxy.access_log() if l["request_id"] == row["request_id"]]
        self.assertEqual(access[0]["protocol"], "HTTP/2")

    def test_a_client_abort_ends_the_input_and_settles_bedrocks_final_count(self):
        # The client resets its stream after the first turn's usage event. The proxy ends the
        # input, so Bedrock closes the session, and drains the answer to its final usage event:
        # one turn's tokens, as reported, not an estimate.
        out = self.run_js(self.plain, "bidi_abort")
        self.assertEqual((out["aborted"], out["seen_usage"]), (True, 1))
        self.assertIn(out["error"], (None, "AbortError"))
        row = ledger_row(self.proxy.ledger_path, out["id"])
        self.assertEqual((row["outcome"], row["usage_source"]), ("client_abort", "reported"))
        self.assertEqual((row["speech_input_tokens"], row["input_tokens"],
                          row["speech_output_tokens"], row["output_tokens"]), (12, 19, 4, 12))
        self.assertEqual(row["total_cost"], pico(sonic_cost(12, 7, 4, 8)))

    def test_an_exception_event_reaches_the_sdk_and_is_a_stream_error(self):
        out = self.run_js(self.plain, "bidi_exception")
        self.assertEqual(out["error"], "ModelStreamErrorException")
        self.assertEqual(out["usage_events"], 1)
        row = ledger_row(self.proxy.ledger_path, out["id"])
        self.assertEqual((row["outcome"], row["stop_reason"]),
                         ("stream_error", "modelStreamErrorException"))
        # At least the usage Bedrock reported before the exception is billed.
        self.assertGreaterEqual(row["speech_input_tokens"], 12)

    def test_an_upstream_cut_resets_the_client_and_is_estimated_at_the_last_totals(self):
        # Bedrock resets the stream after the first turn's usage event: the client's stream is
        # reset too (as for any stream cut mid-answer), and the ledger keeps the running totals
        # Bedrock reported before the cut, estimated (it billed at least that much).
        out = self.run_js(self.plain, "bidi_cut")
        self.assertEqual((out["usage_events"], out["error"]), (1, "Error"))
        self.assertIn("INTERNAL_ERROR", out["message"])
        row = ledger_row(self.proxy.ledger_path, out["id"])
        self.assertEqual((row["outcome"], row["usage_source"]), ("upstream_cut", "estimated"))
        self.assertEqual((row["speech_input_tokens"], row["speech_output_tokens"],
                          row["output_tokens"]), (12, 4, 12))
        # Text input: the system prompt "You are terse. SIM{fault=cut,after=1}" (37 bytes, 10
        # tokens) only; the second turn's text was never sent.
        self.assertEqual(row["input_tokens"], 12 + 10)
        self.assertEqual(row["total_cost"], pico(sonic_cost(12, 10, 4, 8)))

    def test_a_wrong_client_secret_is_refused_before_bedrock(self):
        before = self.sim.stats()["requests"].get("InvokeModelWithBidirectionalStream", 0)
        r = self.run_js(self.plain, "bidi", secret="not-the-secret", ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"InvalidSignatureException", r.stderr)
        self.assertEqual(self.sim.stats()["requests"].get("InvokeModelWithBidirectionalStream", 0),
                         before)


class BidirectionalBudget(unittest.TestCase):
    """A block budget refuses a session before it reaches Bedrock, as it refuses other calls."""

    def test_a_block_budget_refuses_the_session(self):
        tmp = Path(tempfile.mkdtemp(prefix="bm-bidi-budget-"))
        sim = Simulator()
        try:
            cfg = base_config(sim.url, budgets={"definitions": [
                {"name": "voice", "scope": {"team": "search"}, "period": "daily",
                 "limit_usd": "0.000001", "action": "block"}]})
            with Proxy(cfg) as proxy:
                r = run_sdk(proxy.url, "bidi")
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(b"ServiceQuotaExceededException", r.stderr)
                self.assertIn(b"voice", r.stderr)
                row = last_row(proxy.ledger_path)
                self.assertEqual((row["operation"], row["outcome"], row["status"]),
                                 ("InvokeModelWithBidirectionalStream", "refused", 400))
                self.assertEqual(sim.stats()["requests"].get("InvokeModelWithBidirectionalStream", 0), 0)
        finally:
            sim.stop()
            shutil.rmtree(tmp, ignore_errors=True)


class BidirectionalReconcile(unittest.TestCase):
    """A Nova Sonic session reconciles with a bill that counts speech and text tokens apart.

    The bill is written the way AWS writes Nova Sonic's lines (a CUR 2.0 export: one usage type
    each for speech and text, input and output, unit 1K tokens) from the token counts the SDK
    itself received, not from the ledger, at the rate table's prices."""

    def test_speech_and_text_tokens_match_the_bills_own_lines(self):
        tmp = Path(tempfile.mkdtemp(prefix="bm-bidi-reconcile-"))
        sim = Simulator()
        try:
            with Proxy(base_config(sim.url)) as proxy:
                out = sdk_result(self, run_sdk(proxy.url, "bidi"))
                t = out["totals"]
                ledger_row(proxy.ledger_path, out["id"])  # committed
                day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
                lines = [("speech-input-tokens", t["speech_input"], SPEECH_IN),
                         ("text-input-tokens", t["text_input"], TEXT_IN),
                         ("speech-output-tokens", t["speech_output"], SPEECH_OUT),
                         ("text-output-tokens", t["text_output"], TEXT_OUT)]
                cur = tmp / "cur.csv"
                with cur.open("w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(["line_item_line_item_type", "line_item_product_code",
                                "bill_billing_entity", "line_item_usage_type",
                                "line_item_usage_start_date", "line_item_usage_amount",
                                "pricing_unit", "line_item_line_item_description",
                                "line_item_unblended_rate", "line_item_unblended_cost",
                                "product_region_code", "product"])
                    for meter, tokens, per_m in lines:
                        per_1k, amount = per_m / 1000, Decimal(tokens) / 1000
                        w.writerow(["Usage", "AmazonBedrock", "AWS", f"USE1-NovaSonic-{meter}",
                                    f"{day}T00:00:00Z", f"{amount:f}", "1K tokens",
                                    f"${per_1k:f} per 1K {meter}", f"{per_1k:f}",
                                    f"{amount * per_1k:.12f}", "us-east-1",
                                    json.dumps({"product_name": "Amazon Bedrock"})])
                def reconcile(*args):
                    return subprocess.run([PROXY_BIN, "reconcile", "--config", str(proxy.config_path),
                                           "--cur", str(cur), *args],
                                          capture_output=True, text=True, timeout=60)

                rec = reconcile("--format", "json")
                self.assertEqual(rec.returncode, 0, rec.stdout + rec.stderr)
                doc = json.loads(rec.stdout)
                self.assertTrue(doc["within_tolerance"], doc)
                [row] = [r for r in doc["rows"] if r["model"] == SONIC]
                self.assertEqual(row["status"], "match")
                want = {"speech_input": t["speech_input"], "input": t["text_input"],
                        "speech_output": t["speech_output"], "output": t["text_output"]}
                for side in ("ledger", "bill"):
                    self.assertEqual({k: row[side][k] for k in want}, want, side)
                self.assertEqual(Decimal(row["ledger"]["cost_usd"]), Decimal(row["bill"]["cost_usd"]))
                self.assertEqual(Decimal(row["bill"]["cost_usd"]),
                                 sonic_cost(t["speech_input"], t["text_input"], t["speech_output"],
                                            t["text_output"]).quantize(Decimal("0.000001"), ROUND_HALF_UP))
                self.assertEqual(doc["stale_rates"], [], "the bill's speech rates are the table's")
                self.assertEqual(doc["skipped"], {})
                text = reconcile()
                self.assertRegex(text.stdout, rf"speech_input\s+{t['speech_input']}\s+{t['speech_input']}")
        finally:
            sim.stop()
            shutil.rmtree(tmp, ignore_errors=True)


# --- a raw HTTP/2 client signing its own events, to forge one ------------------------------------

def es_header_string(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v


def es_frame(headers: bytes, payload: bytes) -> bytes:
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def chunk_event(event: dict) -> bytes:
    payload = json.dumps({"bytes": base64.b64encode(json.dumps({"event": event}).encode()).decode()})
    headers = (es_header_string(":event-type", "chunk") +
               es_header_string(":content-type", "application/json") +
               es_header_string(":message-type", "event"))
    return es_frame(headers, payload.encode())


def signing_key(secret: str, day: str, region="us-east-1", service="bedrock") -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), day.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def signed_envelope(inner: bytes, prior: str, secret: str, when: datetime) -> tuple[bytes, str]:
    ms = int(when.timestamp() * 1000)
    date_header = b"\x05:date\x08" + struct.pack(">q", ms)
    long_date = when.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{long_date[:8]}/us-east-1/bedrock/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", long_date, scope, prior,
                         hashlib.sha256(date_header).hexdigest(), hashlib.sha256(inner).hexdigest()])
    sig = hmac.new(signing_key(secret, long_date[:8]), to_sign.encode(), hashlib.sha256).hexdigest()
    headers = date_header + b"\x10:chunk-signature\x06" + struct.pack(">H", 32) + bytes.fromhex(sig)
    return es_frame(headers, inner), sig


class BidirectionalForgedEvent(unittest.TestCase):
    """An input event whose signature does not chain is refused and never forwarded. Once
    Bedrock's answer has begun the client is told with a validationException event (what the SDKs
    raise as ValidationException); before it, with a plain 400 ValidationException answer."""

    def open_session(self, proxy):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        path = f"/model/{SONIC.replace(':', '%3A')}/invoke-with-bidirectional-stream"
        req = AWSRequest(method="POST", url=f"http://127.0.0.1:{proxy.port}{path}", headers={
            "content-type": "application/vnd.amazon.eventstream",
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-EVENTS"})
        SigV4Auth(Credentials(CLIENT_AKID, CLIENT_SECRET), "bedrock", "us-east-1").add_auth(req)
        seed = req.headers["Authorization"].rsplit("Signature=", 1)[1]
        fields = [(":method", "POST"), (":scheme", "http"), (":path", path),
                  (":authority", f"127.0.0.1:{proxy.port}")]
        fields += [(k.lower(), v) for k, v in req.headers.items() if k.lower() != "host"]
        now = datetime.now(timezone.utc)
        first, _ = signed_envelope(chunk_event({"sessionStart": {}}), seed, CLIENT_SECRET, now)
        # The second event is signed as if it were the first (a replay): wrong chain.
        forged, _ = signed_envelope(chunk_event({"promptStart": {"promptName": "p"}}), seed,
                                    CLIENT_SECRET, now)
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        s.sendall(PREFACE + frame(SETTINGS, 0, 0, b"") +
                  frame(HEADERS, END_HEADERS, 1, hpack_literal(fields)) + frame(DATA, 0, 1, first))
        return s, forged

    @staticmethod
    def until_ended(reader):
        return reader.until(lambda fs: any(f[2] == 1 and f[1] & END_STREAM for f in fs
                                           if f[0] in (DATA, HEADERS)), timeout=15)

    def test_a_forged_event_after_the_answer_began_ends_it_with_a_validation_exception(self):
        sim = Simulator()
        try:
            with Proxy(base_config(sim.url)) as proxy:
                s, forged = self.open_session(proxy)
                with s:
                    reader = FrameReader(s)
                    # Bedrock's 200 head reached the client: the answer has begun.
                    reader.until(lambda fs: any(f[0] == HEADERS and f[2] == 1 for f in fs))
                    s.sendall(frame(DATA, 0, 1, forged))
                    frames = self.until_ended(reader)
                body = b"".join(f[3] for f in frames if f[0] == DATA and f[2] == 1)
                self.assertIn(b"validationException", body)
                self.assertIn(b"signature of input event 2 does not match", body)
                row = last_row(proxy.ledger_path)
                self.assertEqual((row["operation"], row["status"], row["outcome"]),
                                 ("InvokeModelWithBidirectionalStream", 200, "stream_error"))
                stats = sim.stats()
                # The first event reached the simulator with the proxy's valid signature; the
                # forged one never did.
                self.assertEqual((stats["bidi_input_events"], stats["bidi_verified_events"],
                                  stats["bidi_signature_failures"]), (1, 1, 0))
        finally:
            sim.stop()

    def test_a_forged_event_before_the_answer_began_is_a_400_validation_exception(self):
        # Bedrock (the simulator) takes 3 s to answer the head; the forged event comes first.
        sim = Simulator("--latency-ms", "3000")
        try:
            with Proxy(base_config(sim.url)) as proxy:
                s, forged = self.open_session(proxy)
                with s:
                    s.sendall(frame(DATA, 0, 1, forged))
                    frames = self.until_ended(FrameReader(s))
                body = b"".join(f[3] for f in frames if f[0] == DATA and f[2] == 1)
                self.assertEqual(json.loads(body)["message"],
                                 "The signature of input event 2 does not match (each event's "
                                 ":chunk-signature chains from the previous one's).")
                row = last_row(proxy.ledger_path)
                self.assertEqual((row["operation"], row["status"], row["outcome"]),
                                 ("InvokeModelWithBidirectionalStream", 400, "stream_error"))
                access = [l for l in proxy.access_log() if l["request_id"] == row["request_id"]]
                self.assertEqual(access[0]["status"], 400)
                self.assertEqual(sim.stats()["bidi_signature_failures"], 0)
        finally:
            sim.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
