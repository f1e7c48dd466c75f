"""Bad input and bad networks: every refusal is Bedrock-shaped, a misbehaving client costs one
connection, upstream failures become a 503 instead of a hang, and SIGTERM lets in-flight
streams finish before a clean exit."""
import json
import os
import socket
import threading
import time
import unittest
from pathlib import Path
import tempfile

from botocore.exceptions import ClientError

from harness import (BEARER_TOKEN, CLAUDE, NOVA, UPSTREAM_BEARER, Proxy, ProxyCase, Simulator, base_config, client,
                     converse_messages, free_port, make_ca, raw_request)

MSGS = converse_messages("SIM{input=3,output=2}")


def http_post(path: str, body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
            + extra + b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


class ClientSideLimits(ProxyCase):
    config = {"limits": {
        "max_header_bytes": "4KiB", "max_body_bytes": "64KiB", "header_timeout": "1s",
        "idle_timeout": "1s", "max_connections": 8, "shutdown_grace": "5s"}}

    def assert_bedrock_error(self, resp: bytes, status: int, error_type: str):
        head, _, body = resp.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(f"HTTP/1.1 {status}".encode()), head[:100])
        self.assertIn(f"x-amzn-ErrorType: {error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/".encode(), head)
        self.assertIn(b"x-amzn-RequestId: ", head)
        self.assertIn("message", json.loads(body))

    def test_unknown_routes_are_404_never_forwarded(self):
        before = self.sim.stats()
        for path in ("/", "/model/x/generate", "/guardrail-checks/invoke", "/v1/chat/completions",
                     "/model/x/converse/extra"):
            with self.subTest(path=path):
                self.assert_bedrock_error(raw_request(self.proxy.port, http_post(path)), 404,
                                          "UnknownOperationException")
        self.assertEqual(self.sim.stats(), before)

    def test_bidirectional_stream_over_http1_is_refused_clearly_not_forwarded(self):
        # Bedrock serves it on HTTP/2 only, full duplex; a body collected whole cannot be one.
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        url = f"{self.proxy.url}/model/amazon.nova-sonic-v1%3A0/invoke-with-bidirectional-stream"
        req = AWSRequest(method="POST", url=url, data=b"{}", headers={"content-type": "application/json"})
        SigV4Auth(Credentials("BMAKTESTSEARCH0001", "client-secret-search-0001"), "bedrock",
                  "us-east-1").add_auth(req)
        head = b"".join(f"{k}: {v}\r\n".encode() for k, v in req.headers.items())
        if b"host:" not in head.lower():
            head += f"Host: 127.0.0.1:{self.proxy.port}\r\n".encode()
        before = self.sim.stats()
        resp = raw_request(self.proxy.port, b"POST /model/amazon.nova-sonic-v1%3A0/invoke-with-bidirectional-stream HTTP/1.1\r\n"
                           + head + b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
        self.assert_bedrock_error(resp, 400, "ValidationException")
        self.assertIn(b"HTTP/2", resp)
        self.assertEqual(self.sim.stats(), before)

    def test_bad_percent_encoding_is_a_validation_error(self):
        self.assert_bedrock_error(raw_request(self.proxy.port, http_post("/model/bad%zzid/converse")),
                                  400, "ValidationException")

    def test_a_malformed_chunked_body_gets_a_400_before_the_connection_closes(self):
        # Before: the connection just closed, with no answer at all.
        before = self.sim.stats()
        for body in (b"zz\r\n{}\r\n0\r\n\r\n",          # not a hex chunk size
                     b"2\r\n{}XX0\r\n\r\n"):               # no CRLF after the chunk data
            with self.subTest(body=body[:12]):
                resp = raw_request(self.proxy.port,
                                   b"POST /model/amazon.nova-lite-v1%3A0/converse HTTP/1.1\r\n"
                                   b"Host: proxy\r\nContent-Type: application/json\r\n"
                                   b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                   + body)
                self.assert_bedrock_error(resp, 400, "ValidationException")
                self.assertIn(b"Malformed HTTP request body", resp)
        self.assertEqual(self.sim.stats(), before, "nothing forwarded")

    def test_malformed_request_costs_one_connection(self):
        resp = raw_request(self.proxy.port, b"THIS IS NOT HTTP\r\n\r\n")
        self.assert_bedrock_error(resp, 400, "ValidationException")
        # The proxy still serves everyone else.
        self.assertEqual(client(self.proxy.url).converse(modelId=CLAUDE, messages=MSGS)
                         ["usage"]["outputTokens"], 2)

    def test_oversized_body(self):
        resp = raw_request(self.proxy.port, http_post("/model/x/converse", b"x" * (65 * 1024)))
        self.assert_bedrock_error(resp, 413, "ValidationException")

    def test_oversized_headers(self):
        resp = raw_request(self.proxy.port,
                           http_post("/model/x/converse", extra=b"X-Big: " + b"a" * 8000 + b"\r\n"))
        self.assert_bedrock_error(resp, 400, "ValidationException")

    def test_slow_client_trickling_headers_is_cut_off(self):
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5) as s:
            closed = False
            for byte in b"POST /model/x/converse HTTP/1.1\r\nHost: slow\r\n":
                try:
                    s.sendall(bytes([byte]))
                    time.sleep(0.1)
                except OSError:
                    closed = True
                    break
                if time.monotonic() - start > 3:
                    break
            if not closed:
                s.settimeout(3)
                closed = s.recv(1) == b""
        self.assertTrue(closed)
        self.assertLess(time.monotonic() - start, 3.0)

    def test_idle_keep_alive_connection_is_closed(self):
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5) as s:
            s.settimeout(4)
            start = time.monotonic()
            self.assertEqual(s.recv(1), b"")
            self.assertLess(time.monotonic() - start, 3.0)

    def test_a_connection_over_max_connections_is_answered_503_then_closed(self):
        # Before: it was closed without a word, and the client saw a reset or an empty reply.
        c = client(self.proxy.url)  # made first: the held sockets idle out after header_timeout
        before = self.sim.stats()
        socks = [socket.create_connection(("127.0.0.1", self.proxy.port)) for _ in range(8)]
        try:
            time.sleep(0.2)
            with self.assertRaises(ClientError) as cm:
                c.converse(modelId=NOVA, messages=MSGS)
            err = cm.exception.response
            self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], 503)
            self.assertEqual(err["Error"]["Code"], "ServiceUnavailableException")
            self.assertIn("connection limit (8 open connections)", err["Error"]["Message"])
            # On the wire: the answer, then the proxy closes (raw_request reads until it does).
            resp = raw_request(self.proxy.port, http_post("/model/x/converse").replace(
                b"Connection: close", b"Connection: keep-alive"), timeout=3)
            self.assert_bedrock_error(resp, 503, "ServiceUnavailableException")
            self.assertIn(b"Connection: close", resp)
        finally:
            for s in socks:
                s.close()
        self.assertEqual(self.sim.stats(), before, "nothing forwarded")
        time.sleep(0.2)
        self.assertEqual(c.converse(modelId=NOVA, messages=MSGS)["usage"]["outputTokens"], 2)


class PerClientConnectionLimit(ProxyCase):
    config = {"limits": {"max_connections_per_client": 3, "header_timeout": "10s",
                         "idle_timeout": "10s", "shutdown_grace": "5s"},
              "admin": {"enabled": True, "address": "127.0.0.1", "port": 0}}

    def proxy_events(self) -> dict:
        import urllib.request
        admin = json.loads((self.proxy.tmp / "ready.json").read_text())["admin_port"]
        text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("bedrock_proxy_events_total{"):
                label = line.split('event="', 1)[1].split('"', 1)[0]
                out[label] = float(line.rsplit(" ", 1)[1])
        return out

    def test_one_address_holding_its_limit_is_throttled_and_others_are_not_refused(self):
        # Before: there was no per-client limit; one client could hold every connection.
        c = client(self.proxy.url)
        self.assertEqual(self.proxy_events().get("connection_refused_per_client"), 0.0)
        socks = [socket.create_connection(("127.0.0.1", self.proxy.port)) for _ in range(3)]
        try:
            time.sleep(0.2)
            with self.assertRaises(ClientError) as cm:
                c.converse(modelId=NOVA, messages=MSGS)
            err = cm.exception.response
            self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], 429)
            self.assertEqual(err["Error"]["Code"], "ThrottlingException")
            self.assertIn("Too many connections from this client address (the limit is 3)",
                          err["Error"]["Message"])
            self.assertEqual(self.proxy_events()["connection_refused_per_client"], 1.0)
            self.assertEqual(self.proxy_events()["connection_refused"], 0.0)
            socks.pop().close()  # a place frees up
            time.sleep(0.2)
            self.assertEqual(c.converse(modelId=NOVA, messages=MSGS)["usage"]["outputTokens"], 2)
        finally:
            for s in socks:
                s.close()


def converse_bytes(text: str, extra: bytes = b"", connection: bytes = b"keep-alive",
                   body_separately: bool = False) -> tuple[bytes, bytes]:
    """A bearer-key Converse request as raw HTTP/1.1: (head, body)."""
    body = json.dumps({"messages": converse_messages(text)}).encode()
    head = (b"POST /model/" + CLAUDE.replace(":", "%3A").encode() + b"/converse HTTP/1.1\r\n"
            b"Host: proxy\r\nAuthorization: Bearer " + BEARER_TOKEN.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
            b"\r\nConnection: " + connection + b"\r\n" + extra + b"\r\n")
    return head, body


def split_responses(data: bytes) -> list[tuple[bytes, bytes]]:
    """Consecutive fixed-length HTTP/1.1 responses: [(head, body), ...]."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"truncated response: {data[:200]!r}")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        out.append((head, rest[:length]))
        data = rest[length:]
    return out


def read_to_close(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


class Http1Framing(ProxyCase):
    """How requests arrive on the wire: pipelined, in pieces, after 100 Continue. The proxy parses
    what is already buffered without waiting on the socket (io/inline_io.hpp); these are the
    cases where that must behave exactly as reading from the socket would."""

    def output_tokens(self, head: bytes, body: bytes) -> int:
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:200])
        return json.loads(body)["usage"]["outputTokens"]

    def test_pipelined_requests_are_answered_in_order(self):
        first = b"".join(converse_bytes("SIM{input=3,output=2}"))
        second = b"".join(converse_bytes("SIM{input=4,output=7}"))
        third = b"".join(converse_bytes("SIM{input=5,output=4}", connection=b"close"))
        before = len(self.proxy.access_log())
        answers = split_responses(raw_request(self.proxy.port, first + second + third))
        self.assertEqual([self.output_tokens(h, b) for h, b in answers], [2, 7, 4])
        log = self.proxy.wait_for_log(before + 3)[before:]
        self.assertEqual([line["output_tokens"] for line in log], [2, 7, 4])
        self.assertEqual(len({line["conn"] for line in log}), 1)

    def test_request_arriving_in_pieces_is_served(self):
        head, body = converse_bytes("SIM{input=3,output=6}", connection=b"close")
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5) as s:
            for piece in (head[:20], head[20:-3], head[-3:], body[:10], body[10:]):
                s.sendall(piece)
                time.sleep(0.05)
            [(h, b)] = split_responses(read_to_close(s))
        self.assertEqual(self.output_tokens(h, b), 6)

    def test_expect_100_continue_gets_the_interim_answer_then_the_response(self):
        head, body = converse_bytes("SIM{input=3,output=5}", extra=b"Expect: 100-continue\r\n",
                                    connection=b"close")
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5) as s:
            s.sendall(head)
            interim = s.recv(65536)
            self.assertEqual(interim, b"HTTP/1.1 100 Continue\r\n\r\n")
            s.sendall(body)
            [(h, b)] = split_responses(read_to_close(s))
        self.assertEqual(self.output_tokens(h, b), 5)

    def test_a_bad_request_behind_a_good_one_costs_only_itself(self):
        good = b"".join(converse_bytes("SIM{input=3,output=3}"))
        resp = raw_request(self.proxy.port, good + b"GARBAGE\r\n\r\n")
        (h1, b1), (h2, b2) = split_responses(resp)
        self.assertEqual(self.output_tokens(h1, b1), 3)
        self.assertTrue(h2.startswith(b"HTTP/1.1 400"), h2[:100])
        self.assertIn(b"ValidationException", h2)


class UpstreamFailures(unittest.TestCase):
    def test_upstream_refused_is_a_503(self):
        cfg = base_config(f"http://127.0.0.1:{free_port()}")
        with Proxy(cfg) as proxy:
            with self.assertRaises(ClientError) as cm:
                client(proxy.url).converse(modelId=CLAUDE, messages=MSGS)
            self.assertEqual(cm.exception.response["Error"]["Code"], "ServiceUnavailableException")
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 503)
            self.assertEqual(proxy.wait_for_log(1)[0]["outcome"], "upstream_error")

    def test_upstream_first_byte_timeout_is_a_503_not_a_hang(self):
        with Simulator() as sim:
            cfg = base_config(sim.url, upstream={"first_byte_timeout": "500ms"})
            with Proxy(cfg) as proxy:
                start = time.monotonic()
                with self.assertRaises(ClientError) as cm:
                    client(proxy.url).converse(modelId=CLAUDE, messages=converse_messages(
                        "SIM{fault=slow_first_byte,first_byte_ms=3000}"))
                self.assertLess(time.monotonic() - start, 2.5)
                self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 503)

    def test_upstream_drops_connection_is_a_503(self):
        with Simulator() as sim, Proxy(base_config(sim.url)) as proxy:
            with self.assertRaises(ClientError) as cm:
                client(proxy.url).converse(modelId=CLAUDE, messages=converse_messages("SIM{fault=drop}"))
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 503)

    def test_upstream_rejects_our_signature_passes_through_as_bedrock_said(self):
        with Simulator() as sim:
            with Proxy(base_config(sim.url), env={"AWS_SECRET_ACCESS_KEY": "wrong"}) as proxy:
                with self.assertRaises(ClientError) as cm:
                    client(proxy.url).converse(modelId=CLAUDE, messages=MSGS)
                self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)


class UpstreamAuthAndRegions(unittest.TestCase):
    def test_upstream_bearer_key(self):
        with Simulator() as sim:
            cfg = base_config(sim.url, upstream={"credentials": {
                "source": "bearer", "bearer_token_env": "TEST_UPSTREAM_BEARER"}})
            with Proxy(cfg, env={"TEST_UPSTREAM_BEARER": UPSTREAM_BEARER,
                                 "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}) as proxy:
                r = client(proxy.url).converse(modelId=CLAUDE, messages=MSGS)
                self.assertEqual(r["usage"]["outputTokens"], 2)

    def test_a_region_outside_the_allow_list_is_refused_not_rerouted(self):
        # Before: eu-west-1, cn-north-1 and even us-east-1x were accepted and quietly sent to
        # upstream.region (an EU request served from the US). Now: 403 before forwarding.
        with Simulator() as sim:
            cfg = base_config(sim.url, upstream={"allowed_client_regions": ["us-west-2"]})
            with Proxy(cfg) as proxy:
                upstream_before = sim.stats()["requests"]
                for region in ("eu-west-1", "cn-north-1", "us-east-1x"):
                    with self.assertRaises(ClientError) as refused:
                        client(proxy.url, region=region).converse(modelId=CLAUDE, messages=MSGS)
                    err = refused.exception.response
                    self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], 403, region)
                    self.assertEqual(err["Error"]["Code"], "InvalidSignatureException")
                    self.assertIn("Credential should be scoped to a valid region",
                                  err["Error"]["Message"])
                    self.assertIn(f"signed for '{region}'", err["Error"]["Message"])
                    self.assertIn("us-east-1, us-west-2", err["Error"]["Message"])
                self.assertEqual(sim.stats()["requests"], upstream_before, "nothing forwarded")
                # upstream.region itself needs no listing; bearer keys sign no region.
                r = client(proxy.url, region="us-east-1").converse(modelId=CLAUDE, messages=MSGS)
                self.assertEqual(r["usage"]["outputTokens"], 2)
                log = proxy.wait_for_log(4)
                self.assertEqual([(l["status"], l["outcome"]) for l in log[:3]],
                                 [(403, "refused")] * 3)

    def test_client_region_used_only_when_allowed_or_rerouted_by_choice(self):
        with Simulator("--region", "us-west-2") as sim:
            cfg = base_config(sim.url, upstream={"allowed_client_regions": ["us-west-2"],
                                                 "unlisted_client_regions": "reroute"})
            with Proxy(cfg) as proxy:
                r = client(proxy.url, region="us-west-2").converse(modelId=CLAUDE, messages=MSGS)
                self.assertEqual(r["usage"]["outputTokens"], 2)
                with self.assertRaises(ClientError):  # rerouted to us-east-1: this sim refuses it
                    client(proxy.url, region="eu-west-1").converse(modelId=CLAUDE, messages=MSGS)
                regions = [l["region"] for l in proxy.wait_for_log(2)]
                self.assertEqual(regions, ["us-west-2", "us-east-1"])

    def test_a_model_id_longer_than_bedrock_accepts_is_refused_and_not_stored_whole(self):
        # Before: a 15 KB model id was forwarded and stored whole in the ledger.
        import sqlite3
        with Simulator() as sim:
            with Proxy(base_config(sim.url)) as proxy:
                upstream_before = sim.stats()["requests"]
                long_id = "anthropic." + "x" * 15000
                with self.assertRaises(ClientError) as refused:
                    client(proxy.url).converse(modelId=long_id, messages=MSGS)
                err = refused.exception.response
                self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], 400)
                self.assertEqual(err["Error"]["Code"], "ValidationException")
                self.assertIn("less than or equal to 2048", err["Error"]["Message"])
                self.assertEqual(sim.stats()["requests"], upstream_before)
                ok_id = "amazon.nova-lite-v1:0"
                client(proxy.url).converse(modelId=ok_id, messages=MSGS)
                [line] = [l for l in proxy.wait_for_log(2) if l["status"] == 400]
                self.assertEqual(len(line["model"]), 2048)
                deadline = time.monotonic() + 10
                rows = []
                while len(rows) < 2 and time.monotonic() < deadline:
                    with sqlite3.connect(proxy.ledger_path) as db:
                        rows = db.execute("SELECT length(model_requested), outcome FROM requests "
                                          "ORDER BY id").fetchall()
                    time.sleep(0.05)
                self.assertEqual(rows, [(2048, "refused"), (len(ok_id), "ok")])


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="bm-tls-"))
        cls.certs = make_ca(cls.tmp)

    def test_proxy_serves_tls_and_verifies_upstream_tls(self):
        with Simulator(tls=(self.certs["cert"], self.certs["key"])) as sim:
            cfg = base_config(sim.url, upstream={"ca_file": str(self.certs["ca"])})
            cfg["listeners"] = [{"address": "127.0.0.1", "port": 0, "tls": {
                "cert_file": str(self.certs["cert"]), "key_file": str(self.certs["key"])}}]
            with Proxy(cfg) as proxy:
                self.assertTrue(proxy.url.startswith("https://"))
                c = client(proxy.url, verify=str(self.certs["ca"]))
                r = c.converse(modelId=CLAUDE, messages=MSGS)
                self.assertEqual(r["usage"]["outputTokens"], 2)
                events = list(c.converse_stream(modelId=NOVA, messages=converse_messages(
                    "SIM{input=2,output=3,events=3}"))["stream"])
                self.assertEqual(events[-1]["metadata"]["usage"]["outputTokens"], 3)

    def test_untrusted_upstream_certificate_is_refused(self):
        with Simulator(tls=(self.certs["cert"], self.certs["key"])) as sim:
            with Proxy(base_config(sim.url)) as proxy:  # no ca_file: the test CA is not trusted
                with self.assertRaises(ClientError) as cm:
                    client(proxy.url).converse(modelId=CLAUDE, messages=MSGS)
                self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 503)
                self.assertIn("tls", proxy.stderr())


class GracefulShutdown(unittest.TestCase):
    def test_sigterm_lets_in_flight_stream_finish_then_exits_zero(self):
        with Simulator() as sim:
            proxy = Proxy(base_config(sim.url))
            try:
                result = {}

                def run_stream():
                    r = client(proxy.url).converse_stream(modelId=NOVA, messages=converse_messages(
                        "SIM{input=9,output=8,events=8,pace_ms=100}"))
                    result["events"] = [next(iter(e)) for e in r["stream"]]

                t = threading.Thread(target=run_stream)
                t.start()
                deadline = time.monotonic() + 5
                while not sim.stats().get("operations", {}).get("ConverseStream") and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(0.1)
                code = proxy.stop(timeout=15)
                t.join(10)
                self.assertEqual(code, 0)
                self.assertEqual(result["events"][-1], "metadata")
                self.assertEqual(result["events"].count("contentBlockDelta"), 8)
                line = proxy.access_log()[-1]
                self.assertEqual((line["operation"], line["output_tokens"]), ("ConverseStream", 8))
                with self.assertRaises(OSError):
                    socket.create_connection(("127.0.0.1", proxy.port), timeout=1).recv(1)
            finally:
                proxy.__exit__(None, None, None)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BusyPolling(unittest.TestCase):
    """busy_poll_us: workers poll for a moment after each event instead of sleeping at once. It
    must serve and meter like the default, stop polling when traffic stops, and shut down."""

    def test_serves_meters_then_goes_idle_and_exits_cleanly(self):
        with Simulator() as sim:
            with Proxy(base_config(sim.url, workers=2, busy_poll_us=500)) as proxy:
                c = client(proxy.url)
                for _ in range(20):
                    r = c.converse(modelId=CLAUDE, messages=MSGS)
                    self.assertEqual(r["usage"]["outputTokens"], 2)
                events = [next(iter(e)) for e in c.converse_stream(
                    modelId=NOVA, messages=converse_messages(
                        "SIM{input=4,output=5,events=5,pace_ms=20}"))["stream"]]
                self.assertEqual(events.count("contentBlockDelta"), 5)
                log = proxy.wait_for_log(21)
                self.assertEqual(len(log), 21)
                self.assertEqual(sum(line["output_tokens"] for line in log), 20 * 2 + 5)
                # Idle: both workers sleep again 0.5 ms after the last event. Polling without
                # stopping would burn two cores (2 s of CPU in this second).
                time.sleep(0.2)
                before = cpu_seconds(proxy.proc.pid)
                time.sleep(1.0)
                idle = cpu_seconds(proxy.proc.pid) - before
                self.assertLess(idle, 0.2, f"{idle:.2f} s of CPU in an idle second")
                self.assertEqual(proxy.stop(timeout=10), 0)


if __name__ == "__main__":
    unittest.main()
