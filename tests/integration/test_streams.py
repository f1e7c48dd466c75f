"""Streams and upstream faults through the proxy with real boto3: events are forwarded as they
arrive (pacing), every simulator fault reaches the client as Bedrock would send it, and each
outcome is settled in the access log."""
import json
import socket
import time
import unittest

from botocore.exceptions import ClientError, EventStreamError

from harness import CLAUDE, NOVA, ProxyCase, client, converse_messages


class StreamsAndFaults(ProxyCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.c = client(cls.proxy.url)

    def line_for(self, rid):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for l in self.proxy.access_log():
                if l["request_id"] == rid:
                    return l
            time.sleep(0.02)
        self.fail(f"no access-log line for {rid}")

    def test_pacing_client_sees_first_event_before_the_last_is_sent(self):
        pace_ms, events = 150, 6
        start = time.monotonic()
        r = self.c.converse_stream(
            modelId=NOVA,
            messages=converse_messages(f"SIM{{input=5,output=6,events={events},pace_ms={pace_ms}}}"))
        arrivals = []
        for event in r["stream"]:
            if "contentBlockDelta" in event:
                arrivals.append(time.monotonic() - start)
        total = time.monotonic() - start
        self.assertEqual(len(arrivals), events)
        # The upstream needs at least (events-1)*pace to send the last delta; the first delta
        # must be in the client's hands well before that: nothing is buffered in between.
        self.assertLess(arrivals[0], (events - 1) * pace_ms / 1000 / 2)
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        self.assertGreater(min(gaps), pace_ms / 1000 * 0.5, gaps)
        self.assertGreater(total, (events - 1) * pace_ms / 1000 * 0.9)

    def fault(self, directive, code, status):
        with self.assertRaises(ClientError) as cm:
            self.c.converse(modelId=CLAUDE, messages=converse_messages(f"SIM{{{directive}}}"))
        resp = cm.exception.response
        self.assertEqual(resp["Error"]["Code"], code)
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], status)
        line = self.line_for(resp["ResponseMetadata"]["RequestId"])
        self.assertEqual(line["status"], status)
        self.assertEqual((line["input_tokens"], line["output_tokens"]), (0, 0))
        return line

    def test_throttle(self):
        self.fault("fault=throttle", "ThrottlingException", 429)

    def test_internal_error(self):
        self.fault("fault=error500", "InternalServerException", 500)

    def test_unavailable(self):
        self.fault("fault=unavailable", "ServiceUnavailableException", 503)

    def test_model_timeout(self):
        self.fault("fault=model_timeout", "ModelTimeoutException", 408)

    def test_model_error(self):
        self.fault("fault=model_error", "ModelErrorException", 424)

    def test_mid_stream_exception_event(self):
        r = self.c.converse_stream(
            modelId=NOVA,
            messages=converse_messages("SIM{input=40,output=20,events=5,fault=stream_exception,after=2}"))
        seen = 0
        with self.assertRaises(EventStreamError) as cm:
            for event in r["stream"]:
                seen += "contentBlockDelta" in event
        self.assertEqual(seen, 2)
        self.assertIn("modelStreamErrorException", str(cm.exception))
        line = self.line_for(r["ResponseMetadata"]["RequestId"])
        self.assertEqual(line["status"], 200)
        self.assertEqual(line["usage_source"], "estimated")
        self.assertEqual(line["outcome"], "stream_error")  # before: "ok"

    def test_connection_cut_mid_stream(self):
        r = self.c.invoke_model_with_response_stream(
            modelId=CLAUDE,
            body=json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
                             "messages": [{"role": "user",
                                           "content": "SIM{input=30,output=20,events=6,fault=cut,after=3}"}]}))
        chunks = 0
        with self.assertRaises(Exception):
            for _ in r["body"]:
                chunks += 1
        self.assertGreaterEqual(chunks, 1)
        line = self.line_for(r["ResponseMetadata"]["RequestId"])
        self.assertEqual(line["outcome"], "upstream_cut")
        self.assertEqual(line["usage_source"], "estimated")
        self.assertEqual(line["input_tokens"], 30)  # message_start reported it before the cut
        self.assertGreater(line["output_tokens"], 0)

    def test_slow_first_byte_within_timeout(self):
        start = time.monotonic()
        r = self.c.converse(modelId=CLAUDE,
                            messages=converse_messages("SIM{input=1,output=1,fault=slow_first_byte,first_byte_ms=400}"))
        self.assertGreaterEqual(time.monotonic() - start, 0.4)
        self.assertEqual(r["usage"]["outputTokens"], 1)

    def test_client_abort_mid_stream_is_drained_and_settled_exactly(self):
        """The client goes away after the first event; the proxy keeps reading the upstream
        (Bedrock bills the whole generation) and settles the reported usage."""
        c = client(self.proxy.url)
        r = c.converse_stream(
            modelId=NOVA,
            messages=converse_messages("SIM{input=64,output=48,events=8,pace_ms=50}"))
        stream = r["stream"]
        next(iter(stream))
        stream.close()  # closes the HTTP connection under boto3's stream
        line = self.line_for(r["ResponseMetadata"]["RequestId"])
        self.assertEqual(line["outcome"], "client_abort")
        self.assertEqual((line["input_tokens"], line["output_tokens"], line["usage_source"]),
                         (64, 48, "reported"))


class UnreportedUsage(ProxyCase):
    """Usage Bedrock bills but never reports back. Before: a stream cut or ended by an exception
    event recorded 0 input tokens, and a call abandoned at first_byte_timeout recorded no tokens
    at all ($0), though Bedrock bills both. Now the input is estimated from the body at the
    model's bytes per token, learned from the requests it did report (one worker, so one
    learner), and an abandoned call's output from the model's mean."""
    config = {"workers": 1, "upstream": {"first_byte_timeout": "700ms"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.c = client(cls.proxy.url)
        for i, (tokens, out) in enumerate(((120, 10), (300, 30), (60, 2), (900, 40))):
            filler = "lorem ipsum dolor " * (20 * (i + 1))
            cls.c.converse(modelId=NOVA, messages=converse_messages(
                f"{filler} SIM{{input={tokens},output={out}}}"))

    def rows(self, count: int) -> list[dict]:
        import sqlite3
        deadline = time.monotonic() + 5
        while True:
            con = sqlite3.connect(f"file:{self.proxy.ledger_path}?mode=ro", uri=True)
            con.row_factory = sqlite3.Row
            try:
                rows = [dict(r) for r in con.execute("SELECT * FROM requests ORDER BY id")]
            finally:
                con.close()
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.02)

    def row(self, request_id: str) -> tuple[dict, list[dict]]:
        """The ledger row of `request_id` and the reported NOVA rows settled before it."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            rows = self.rows(0)
            mine = [r for r in rows if r["request_id"] == request_id]
            if mine:
                before = [r for r in rows if r["id"] < mine[0]["id"] and
                          r["model_requested"] == NOVA and r["usage_source"] == "reported"]
                return mine[0], before
            time.sleep(0.02)
        self.fail(f"no ledger row for {request_id}")

    @staticmethod
    def learned_input(before: list[dict], body_bytes: int) -> int:
        nbytes = sum(r["bytes_in"] for r in before)
        tokens = sum(r["input_tokens"] + r["cache_read_tokens"] + r["cache_write_tokens"]
                     for r in before)
        return -(-body_bytes * tokens // nbytes)  # ceil

    def test_an_exception_stream_is_a_stream_error_with_its_input_estimated(self):
        r = self.c.converse_stream(modelId=NOVA, messages=converse_messages(
            "tell me a story " * 40 + "SIM{input=400,output=20,events=5,fault=stream_exception,after=2}"))
        with self.assertRaises(EventStreamError) as cm:
            for _ in r["stream"]:
                pass
        self.assertIn("modelStreamErrorException", str(cm.exception))
        row, before = self.row(r["ResponseMetadata"]["RequestId"])
        self.assertGreaterEqual(len(before), 4)
        self.assertEqual(row["outcome"], "stream_error")  # before: "ok"
        self.assertEqual(row["status"], 200)
        self.assertEqual(row["stop_reason"], "modelStreamErrorException")
        self.assertEqual(row["usage_source"], "estimated")
        self.assertEqual(row["input_tokens"], self.learned_input(before, row["bytes_in"]))
        self.assertGreater(row["input_tokens"], 0)  # before: 0
        self.assertGreater(row["output_tokens"], 0)
        self.assertEqual(row["priced"], 1)
        self.assertGreater(row["total_cost"], 0)
        line = [l for l in self.proxy.access_log() if l["request_id"] == row["request_id"]]
        self.assertEqual(line[0]["outcome"], "stream_error")

    def test_a_cut_converse_stream_has_its_input_estimated(self):
        r = self.c.converse_stream(modelId=NOVA, messages=converse_messages(
            "x" * 700 + " SIM{input=400,output=20,events=6,fault=cut,after=2}"))
        with self.assertRaises(Exception):
            for _ in r["stream"]:
                pass
        row, before = self.row(r["ResponseMetadata"]["RequestId"])
        self.assertEqual(row["outcome"], "upstream_cut")
        self.assertEqual(row["usage_source"], "estimated")
        self.assertEqual(row["input_tokens"], self.learned_input(before, row["bytes_in"]))
        self.assertGreater(row["input_tokens"], 0)  # before: 0

    def test_a_call_abandoned_at_first_byte_timeout_is_metered_not_free(self):
        before_sim = self.sim.stats()["requests"].get("Converse", 0)
        with self.assertRaises(ClientError) as cm:
            self.c.converse(modelId=NOVA, messages=converse_messages(
                "y" * 300 + " SIM{input=77,output=9,fault=slow_first_byte,first_byte_ms=1500}"),
                inferenceConfig={"maxTokens": 500})
        err = cm.exception.response
        self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], 503)
        self.assertEqual(self.sim.stats()["requests"].get("Converse", 0), before_sim + 1,
                         "Bedrock got the call, so it bills it")
        deadline = time.monotonic() + 5
        rows = self.rows(0)
        while not any(r["outcome"] == "upstream_error" for r in rows):
            self.assertLess(time.monotonic(), deadline, "no ledger row for the abandoned call")
            time.sleep(0.02)
            rows = self.rows(0)
        row = max((r for r in rows if r["outcome"] == "upstream_error"), key=lambda r: r["id"])
        before = [r for r in rows if r["id"] < row["id"] and r["model_requested"] == NOVA and
                  r["usage_source"] == "reported"]
        self.assertEqual(row["status"], 503)
        self.assertEqual(row["usage_source"], "estimated")  # before: "none", 0 tokens, $0
        self.assertEqual(row["input_tokens"], self.learned_input(before, row["bytes_in"]))
        mean_output = -(-sum(r["output_tokens"] for r in before) // len(before))
        self.assertEqual(row["output_tokens"], mean_output)
        self.assertGreater(row["total_cost"], 0)


class KilledMidRequest(unittest.TestCase):
    """kill -9 with requests in flight and rows not yet committed. Before: the streams in flight
    vanished from the ledger, and so did the settled requests still in the ledger's queue (up to
    `flush_interval`). Now each left a start record in the in-flight journal: the next start
    writes the streams as `interrupted` rows with estimated usage, and the settled requests as
    they settled, each once."""

    def test_the_next_start_writes_what_a_killed_process_had_in_flight(self):
        import shutil
        import sqlite3
        import tempfile
        import threading
        from pathlib import Path
        from harness import Proxy, Simulator, base_config
        tmp = Path(tempfile.mkdtemp(prefix="bm-kill9-"))
        sim = Simulator()
        try:
            # A long group-commit window: the settled requests are still queued at the kill.
            ledger = {"path": str(tmp / "ledger.db"), "flush_interval": "5s"}
            cfg = base_config(sim.url, ledger=ledger)
            proxy = Proxy(cfg)
            c = client(proxy.url)
            for _ in range(3):
                c.converse(modelId=NOVA, messages=converse_messages("SIM{input=11,output=7}"))
            started = threading.Barrier(5)

            def stream():
                r = client(proxy.url).converse_stream(modelId=CLAUDE, messages=converse_messages(
                    "q" * 400 + " SIM{input=100,output=40,events=20,pace_ms=250}"))
                try:
                    for i, _ in enumerate(r["stream"]):
                        if i == 3:
                            started.wait(10)
                except Exception:  # noqa: BLE001 - the proxy is killed under it
                    pass

            threads = [threading.Thread(target=stream) for _ in range(4)]
            for t in threads:
                t.start()
            started.wait(10)  # every stream has delivered a few events
            time.sleep(0.3)
            proxy.proc.kill()
            proxy.proc.wait()
            for t in threads:
                t.join(15)
            with sqlite3.connect(tmp / "ledger.db") as db:
                self.assertEqual(db.execute("SELECT count(*) FROM requests").fetchone()[0], 0,
                                 "nothing committed yet: it would all have been lost")
            proxy.__exit__(None, None, None)
            with Proxy(cfg) as again:
                again.stop()
                self.assertIn("the last process died with requests in flight", again.stderr())
            con = sqlite3.connect(tmp / "ledger.db")
            con.row_factory = sqlite3.Row
            rows = [dict(r) for r in con.execute("SELECT * FROM requests ORDER BY time_ms")]
            con.close()
            done = [r for r in rows if r["outcome"] == "ok"]
            cut = [r for r in rows if r["outcome"] == "interrupted"]
            self.assertEqual(len(rows), 7, [(r["outcome"], r["request_id"]) for r in rows])
            self.assertEqual(len({r["request_id"] for r in rows}), 7, "each once")
            self.assertEqual(len(done), 3)
            for r in done:  # as they settled: reported usage, priced
                self.assertEqual((r["input_tokens"], r["output_tokens"]), (11, 7))
                self.assertEqual(r["usage_source"], "reported")
                self.assertEqual(r["status"], 200)
                self.assertGreater(r["total_cost"], 0)
            self.assertEqual(len(cut), 4)
            for r in cut:  # estimated: the body at 4 bytes a token, the text seen so far
                self.assertEqual(r["usage_source"], "estimated")
                self.assertEqual(r["status"], 200)
                self.assertEqual(r["model_requested"], CLAUDE)
                self.assertEqual(r["input_tokens"], -(-r["bytes_in"] // 4))
                self.assertGreater(r["output_tokens"], 0)
                self.assertEqual(r["priced"], 1)
                self.assertGreater(r["total_cost"], 0)
        finally:
            sim.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
