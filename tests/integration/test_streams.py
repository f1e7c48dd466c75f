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


if __name__ == "__main__":
    unittest.main()
