#!/usr/bin/env python3
"""Real boto3 against bedrock-sim, no proxy in between.

Proves the simulator speaks Bedrock's wire formats well enough that botocore parses every answer:
each operation, each model family (bodies, headers, event streams), SigV4 and bearer auth, the
SIM{...} directive, every fault, pacing, TLS and clean shutdown.

Usage: BEDROCK_SIM=/path/to/bedrock-sim python3 test_simulator_direct.py
   or: python3 test_simulator_direct.py /path/to/bedrock-sim [unittest args]
"""
import base64
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

SIM = os.environ.get("BEDROCK_SIM")
if not SIM and len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
    SIM = sys.argv.pop(1)

# InvokeGuardrailChecks is newer than boto3 1.43's bundled model; the service model copied into
# tests/data/bedrock has it.
_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "bedrock",
                     "botocore-data")
if "AWS_DATA_PATH" not in os.environ and os.path.isdir(_DATA):
    os.environ["AWS_DATA_PATH"] = os.path.abspath(_DATA)
# The tests choose the auth mode per client; an ambient key or profile must not leak in.
for var in ("AWS_BEARER_TOKEN_BEDROCK", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(var, None)

import boto3  # noqa: E402
import botocore  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import (  # noqa: E402
    ClientError, ConnectionClosedError, EventStreamError, ResponseStreamingError)
import urllib3  # noqa: E402

AKID = "AKIDSIMULATOR0001"
SECRET = "sim/secret+key0001"
AKID2 = "AKIDSIMULATOR0002"
SECRET2 = "second-secret"
AKID3 = "ASIASIMULATOR0003"  # temporary credentials: key pair plus session token
SECRET3 = "third-secret"
TOKEN3 = "FwoGZXIvYXdzEXAMPLEsessiontoken"
BEARER = "ABSKc2ltdWxhdG9yLWJlYXJlci10b2tlbg=="
REGION = "us-east-1"
NO_RETRY = Config(retries={"total_max_attempts": 1}, read_timeout=20, connect_timeout=5)


class Sim:
    """One bedrock-sim process on 127.0.0.1:0."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="bedrock-sim-")
        port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen(
            [SIM, "--listen", "127.0.0.1:0", "--port-file", port_file, "--region", REGION,
             "--access-key", AKID, "--secret-key", SECRET, "--access-key", AKID2,
             "--secret-key", SECRET2, "--access-key", AKID3, "--secret-key", SECRET3,
             "--session-token", TOKEN3, "--bearer-token", BEARER, "--seed", "7", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("bedrock-sim listening on 127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"unexpected first line {line!r}: {self.proc.stderr.read()}")
        self.port = int(line.rsplit(":", 1)[1])
        with open(port_file) as f:
            assert int(f.read()) == self.port, "port file disagrees with the stdout line"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc

    def raw(self, method, path, body=b"", headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp, data

    def stats(self):
        resp, data = self.raw("GET", "/__sim/stats")
        assert resp.status == 200
        return json.loads(data)


def make_client(port, scheme="http", akid=AKID, secret=SECRET, config=NO_RETRY, token=None, **kw):
    session = boto3.session.Session(aws_access_key_id=akid, aws_secret_access_key=secret,
                                    aws_session_token=token, region_name=REGION)
    return session.client("bedrock-runtime", endpoint_url=f"{scheme}://127.0.0.1:{port}",
                          config=config, **kw)


def words(n):
    vocab = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
             "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "magna"]
    return " ".join(vocab[k % len(vocab)] for k in range(n))


def user(text):
    return [{"role": "user", "content": [{"text": text}]}]


class SimulatorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not SIM or not os.path.exists(SIM):
            raise unittest.SkipTest("BEDROCK_SIM not set")
        cls.sim = Sim()
        cls.client = make_client(cls.sim.port)

    @classmethod
    def tearDownClass(cls):
        rc = cls.sim.stop()
        assert rc == 0, f"bedrock-sim exited {rc} on SIGTERM"

    def assert_code(self, ctx, code, status):
        err = ctx.exception.response
        self.assertEqual(err["Error"]["Code"], code)
        self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], status)
        self.assertTrue(err["ResponseMetadata"]["RequestId"])

    # ---- Converse -----------------------------------------------------------------------------

    def test_converse_directive_usage(self):
        r = self.client.converse(modelId="anthropic.claude-3-haiku-20240307-v1:0",
                                 messages=user("hi SIM{input=100,output=20,cache_read=5,cache_write=7}"))
        self.assertEqual(r["usage"], {"inputTokens": 100, "outputTokens": 20, "totalTokens": 132,
                                      "cacheReadInputTokens": 5, "cacheWriteInputTokens": 7})
        self.assertEqual(r["stopReason"], "end_turn")
        self.assertEqual(r["output"]["message"]["role"], "assistant")
        self.assertEqual(r["output"]["message"]["content"][0]["text"], words(20))
        self.assertIn("latencyMs", r["metrics"])
        self.assertTrue(r["ResponseMetadata"]["RequestId"])

    def test_converse_default_counts_follow_the_request(self):
        sent = {}

        def capture(request, **_):
            sent["body"] = request.body

        c = make_client(self.sim.port)
        c.meta.events.register("before-send.bedrock-runtime.Converse", capture)
        r = c.converse(modelId="amazon.nova-lite-v1:0", messages=user("x" * 400),
                       inferenceConfig={"maxTokens": 10})
        self.assertEqual(r["usage"]["inputTokens"], max(1, len(sent["body"]) // 4))
        self.assertEqual(r["usage"]["outputTokens"], 10)
        self.assertEqual(r["stopReason"], "max_tokens")
        self.assertNotIn("cacheReadInputTokens", r["usage"])  # only when nonzero, like Bedrock
        r = c.converse(modelId="amazon.nova-lite-v1:0", messages=user("no limit"))
        self.assertEqual(r["usage"]["outputTokens"], 64)
        self.assertEqual(r["stopReason"], "end_turn")

    def test_converse_service_tier_and_latency_echo(self):
        r = self.client.converse(modelId="amazon.nova-pro-v1:0", messages=user("hi"),
                                 serviceTier={"type": "priority"},
                                 performanceConfig={"latency": "optimized"})
        self.assertEqual(r["serviceTier"], {"type": "priority"})
        self.assertEqual(r["performanceConfig"], {"latency": "optimized"})
        headers = r["ResponseMetadata"]["HTTPHeaders"]
        self.assertEqual(headers["x-amzn-bedrock-service-tier"], "priority")
        r = self.client.converse(modelId="amazon.nova-pro-v1:0", messages=user("SIM{tier=default}"),
                                 serviceTier={"type": "flex"})
        self.assertEqual(r["serviceTier"], {"type": "default"})

    def test_converse_stream(self):
        r = self.client.converse_stream(
            modelId="us.anthropic.claude-3-5-haiku-20241022-v1:0",
            messages=user("SIM{input=100,output=20,cache_read=5,cache_write=7,events=5}"))
        self.assertEqual(r["ResponseMetadata"]["HTTPHeaders"]["content-type"],
                         "application/vnd.amazon.eventstream")
        self.assertEqual(r["ResponseMetadata"]["HTTPHeaders"].get("transfer-encoding"), "chunked")
        kinds, text, metadata, stop = [], "", None, None
        for event in r["stream"]:
            (kind, payload), = event.items()
            kinds.append(kind)
            if kind == "contentBlockDelta":
                self.assertEqual(payload["contentBlockIndex"], 0)
                text += payload["delta"]["text"]
            elif kind == "messageStop":
                stop = payload["stopReason"]
            elif kind == "metadata":
                metadata = payload
        self.assertEqual(kinds, ["messageStart"] + ["contentBlockDelta"] * 5 +
                         ["contentBlockStop", "messageStop", "metadata"])
        self.assertEqual(text, words(20))
        self.assertEqual(stop, "end_turn")
        self.assertEqual(metadata["usage"], {"inputTokens": 100, "outputTokens": 20,
                                             "totalTokens": 132, "cacheReadInputTokens": 5,
                                             "cacheWriteInputTokens": 7})
        self.assertIn("latencyMs", metadata["metrics"])

    # ---- InvokeModel, per family ---------------------------------------------------------------

    def invoke(self, model, body, **kw):
        r = self.client.invoke_model(modelId=model, body=json.dumps(body), **kw)
        return json.loads(r["body"].read()), r["ResponseMetadata"]["HTTPHeaders"], r

    def assert_count_headers(self, headers, i, o, cache_read=0, cache_write=0):
        self.assertEqual(headers["x-amzn-bedrock-input-token-count"], str(i))
        self.assertEqual(headers["x-amzn-bedrock-output-token-count"], str(o))
        self.assertTrue(headers["x-amzn-bedrock-invocation-latency"].isdigit())
        if cache_read:
            self.assertEqual(headers["x-amzn-bedrock-cache-read-input-token-count"], str(cache_read))
        else:
            self.assertNotIn("x-amzn-bedrock-cache-read-input-token-count", headers)
        if cache_write:
            self.assertEqual(headers["x-amzn-bedrock-cache-write-input-token-count"], str(cache_write))
        else:
            self.assertNotIn("x-amzn-bedrock-cache-write-input-token-count", headers)

    def test_invoke_anthropic(self):
        body, headers, r = self.invoke(
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 300,
             "messages": [{"role": "user", "content": "SIM{input=11,output=6,cache_read=3,cache_write=4}"}]})
        self.assertEqual(r["contentType"], "application/json")
        self.assertTrue(body["id"].startswith("msg_bdrk_"))
        self.assertEqual(body["type"], "message")
        self.assertEqual(body["role"], "assistant")
        self.assertEqual(body["model"], "claude-3-7-sonnet-20250219")
        self.assertEqual(body["content"], [{"type": "text", "text": words(6)}])
        self.assertEqual(body["stop_reason"], "end_turn")
        self.assertIsNone(body["stop_sequence"])
        self.assertEqual(body["usage"], {"input_tokens": 11, "output_tokens": 6,
                                         "cache_creation_input_tokens": 4,
                                         "cache_read_input_tokens": 3})
        self.assert_count_headers(headers, 11, 6, 3, 4)

    def test_invoke_anthropic_max_tokens_and_arn_model_id(self):
        arn = ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
               "eu.anthropic.claude-3-haiku-20240307-v1:0")
        body, headers, _ = self.invoke(arn, {"anthropic_version": "bedrock-2023-05-31",
                                             "max_tokens": 5, "messages": []})
        self.assertEqual(body["model"], "claude-3-haiku-20240307")
        self.assertEqual(body["usage"]["output_tokens"], 5)
        self.assertEqual(body["stop_reason"], "max_tokens")
        self.assert_count_headers(headers, body["usage"]["input_tokens"], 5)

    def test_invoke_nova(self):
        body, headers, _ = self.invoke(
            "amazon.nova-micro-v1:0",
            {"messages": [{"role": "user", "content": [{"text": "SIM{input=9,output=4,cache_read=2}"}]}],
             "inferenceConfig": {"max_new_tokens": 100}})
        self.assertEqual(body["output"]["message"], {"content": [{"text": words(4)}], "role": "assistant"})
        self.assertEqual(body["stopReason"], "end_turn")
        self.assertEqual(body["usage"], {"inputTokens": 9, "outputTokens": 4, "totalTokens": 15,
                                         "cacheReadInputTokenCount": 2, "cacheWriteInputTokenCount": 0})
        self.assert_count_headers(headers, 9, 4, 2, 0)

    def test_invoke_titan_text(self):
        body, headers, _ = self.invoke(
            "amazon.titan-text-express-v1",
            {"inputText": "SIM{input=8,output=3}", "textGenerationConfig": {"maxTokenCount": 50}})
        self.assertEqual(body, {"inputTextTokenCount": 8, "results": [
            {"tokenCount": 3, "outputText": words(3), "completionReason": "FINISH"}]})
        self.assert_count_headers(headers, 8, 3)

    def test_invoke_titan_embed(self):
        body, headers, _ = self.invoke("amazon.titan-embed-text-v2:0",
                                       {"inputText": "hello SIM{input=5}", "dimensions": 256})
        self.assertEqual(body["inputTextTokenCount"], 5)
        self.assertEqual(len(body["embedding"]), 256)
        self.assertTrue(all(isinstance(x, float) for x in body["embedding"]))
        self.assert_count_headers(headers, 5, 0)
        with self.assertRaises(ClientError) as ctx:
            self.client.converse(modelId="amazon.titan-embed-text-v2:0", messages=user("x"))
        self.assert_code(ctx, "ValidationException", 400)

    def test_invoke_llama(self):
        body, headers, _ = self.invoke("us.meta.llama3-2-1b-instruct-v1:0",
                                       {"prompt": "SIM{input=12}", "max_gen_len": 7})
        self.assertEqual(body, {"generation": words(7), "prompt_token_count": 12,
                                "generation_token_count": 7, "stop_reason": "length"})
        self.assert_count_headers(headers, 12, 7)

    def test_invoke_mistral(self):
        body, headers, _ = self.invoke("mistral.mistral-7b-instruct-v0:2",
                                       {"prompt": "SIM{input=10,output=2}", "max_tokens": 100})
        self.assertEqual(body, {"outputs": [{"text": words(2), "stop_reason": "stop"}]})
        self.assert_count_headers(headers, 10, 2)

    def test_invoke_other_family_uses_anthropic_shape(self):
        body, headers, _ = self.invoke("cohere.command-r-v1:0", {"message": "SIM{input=3,output=2}"})
        self.assertEqual(body["usage"]["input_tokens"], 3)
        self.assertEqual(body["content"][0]["text"], words(2))
        self.assert_count_headers(headers, 3, 2)

    def test_invoke_tier_and_latency_headers(self):
        _, headers, r = self.invoke("anthropic.claude-3-haiku-20240307-v1:0",
                                    {"max_tokens": 10, "messages": []},
                                    serviceTier="flex", performanceConfigLatency="optimized")
        self.assertEqual(headers["x-amzn-bedrock-service-tier"], "flex")
        self.assertEqual(r["serviceTier"], "flex")
        self.assertEqual(r["performanceConfigLatency"], "optimized")
        _, headers, _ = self.invoke("anthropic.claude-3-haiku-20240307-v1:0",
                                    {"max_tokens": 10, "messages": []})
        self.assertNotIn("x-amzn-bedrock-service-tier", headers)

    # ---- InvokeModelWithResponseStream -------------------------------------------------------------

    def invoke_stream(self, model, body):
        r = self.client.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))
        self.assertEqual(r["contentType"], "application/json")
        chunks = []
        for event in r["body"]:
            self.assertEqual(list(event), ["chunk"])
            chunks.append(json.loads(event["chunk"]["bytes"]))
        for c in chunks[:-1]:
            self.assertNotIn("amazon-bedrock-invocationMetrics", c)
        return chunks, chunks[-1]["amazon-bedrock-invocationMetrics"]

    def assert_metrics(self, metrics, i, o, cache_read=0, cache_write=0):
        self.assertEqual(metrics["inputTokenCount"], i)
        self.assertEqual(metrics["outputTokenCount"], o)
        self.assertIsInstance(metrics["invocationLatency"], int)
        self.assertIsInstance(metrics["firstByteLatency"], int)
        self.assertEqual(metrics.get("cacheReadInputTokenCount", 0), cache_read)
        self.assertEqual(metrics.get("cacheWriteInputTokenCount", 0), cache_write)
        if not cache_read:
            self.assertNotIn("cacheReadInputTokenCount", metrics)

    def test_stream_anthropic(self):
        chunks, metrics = self.invoke_stream(
            "anthropic.claude-3-haiku-20240307-v1:0",
            {"max_tokens": 100, "messages": [{"role": "user", "content":
                                              "SIM{input=30,output=10,events=4,cache_read=6,cache_write=2}"}]})
        types = [c["type"] for c in chunks]
        self.assertEqual(types, ["message_start", "content_block_start"] + ["content_block_delta"] * 4 +
                         ["content_block_stop", "message_delta", "message_stop"])
        usage = chunks[0]["message"]["usage"]
        self.assertEqual(usage, {"input_tokens": 30, "cache_creation_input_tokens": 2,
                                 "cache_read_input_tokens": 6, "output_tokens": 1})
        text = "".join(c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta")
        self.assertEqual(text, words(10))
        self.assertEqual(chunks[-2]["usage"], {"output_tokens": 10})
        self.assertEqual(chunks[-2]["delta"]["stop_reason"], "end_turn")
        self.assert_metrics(metrics, 30, 10, 6, 2)

    def test_stream_nova(self):
        chunks, metrics = self.invoke_stream(
            "us.amazon.nova-lite-v1:0", {"messages": [], "x": "SIM{input=5,output=6,events=3}"})
        keys = [next(k for k in c if k != "amazon-bedrock-invocationMetrics") for c in chunks]
        self.assertEqual(keys, ["messageStart"] + ["contentBlockDelta"] * 3 +
                         ["contentBlockStop", "messageStop", "metadata"])
        self.assertEqual(chunks[-1]["metadata"]["usage"]["outputTokens"], 6)
        self.assert_metrics(metrics, 5, 6)

    def test_stream_titan(self):
        chunks, metrics = self.invoke_stream("amazon.titan-text-lite-v1",
                                             {"inputText": "SIM{input=4,output=5,events=2}"})
        self.assertEqual(len(chunks), 2)
        self.assertEqual("".join(c["outputText"] for c in chunks), words(5))
        self.assertIsNone(chunks[0]["completionReason"])
        self.assertEqual(chunks[-1]["completionReason"], "FINISH")
        self.assertEqual(chunks[-1]["totalOutputTextTokenCount"], 5)
        self.assertEqual(chunks[-1]["inputTextTokenCount"], 4)
        self.assert_metrics(metrics, 4, 5)

    def test_stream_llama(self):
        chunks, metrics = self.invoke_stream("meta.llama3-8b-instruct-v1:0",
                                             {"prompt": "SIM{input=7,output=9,events=3}"})
        self.assertEqual("".join(c["generation"] for c in chunks), words(9))
        self.assertEqual(chunks[-1]["generation_token_count"], 9)
        self.assertEqual(chunks[-1]["prompt_token_count"], 7)
        self.assertEqual(chunks[-1]["stop_reason"], "stop")
        self.assertIsNone(chunks[1]["stop_reason"])
        self.assert_metrics(metrics, 7, 9)

    def test_stream_mistral(self):
        chunks, metrics = self.invoke_stream("mistral.mixtral-8x7b-instruct-v0:1",
                                             {"prompt": "SIM{input=3,output=4,events=4}"})
        self.assertEqual(len(chunks), 4)
        self.assertEqual("".join(c["outputs"][0]["text"] for c in chunks), words(4))
        self.assertEqual(chunks[-1]["outputs"][0]["stop_reason"], "stop")
        self.assert_metrics(metrics, 3, 4)

    def test_stream_chunk_payload_has_padding(self):
        # botocore hides the envelope; read the raw event-stream frames to see `p`.
        resp, data = self.sim.raw("POST", "/model/mistral.mistral-large-2402-v1:0/invoke-with-response-stream",
                                  body=b'{"prompt":"SIM{output=2,events=2}"}',
                                  headers={"Authorization": "Bearer " + BEARER})
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("X-Amzn-Bedrock-Content-Type"), "application/json")
        from botocore.eventstream import EventStreamBuffer
        buf = EventStreamBuffer()
        buf.add_data(data)
        payloads = [json.loads(m.payload) for m in buf]
        self.assertEqual(len(payloads), 2)
        for p in payloads:
            self.assertEqual(sorted(p), ["bytes", "p"])
            self.assertRegex(p["p"], r"^[a-zA-Z0-9]+$")
            json.loads(base64.b64decode(p["bytes"]))

    # ---- Other operations ----------------------------------------------------------------------

    def test_count_tokens(self):
        r = self.client.count_tokens(modelId="anthropic.claude-3-5-haiku-20241022-v1:0",
                                     input={"converse": {"messages": user("SIM{input=42}")}})
        self.assertEqual(r["inputTokens"], 42)
        # InvokeModel-style input arrives base64-encoded; the directive inside still applies.
        body = json.dumps({"max_tokens": 5, "messages": [{"role": "user", "content": "SIM{input=77}"}]})
        r = self.client.count_tokens(modelId="anthropic.claude-3-5-haiku-20241022-v1:0",
                                     input={"invokeModel": {"body": body.encode()}})
        self.assertEqual(r["inputTokens"], 77)

    def test_apply_guardrail(self):
        r = self.client.apply_guardrail(guardrailIdentifier="gr-123", guardrailVersion="1",
                                        source="INPUT", content=[{"text": {"text": "hello"}}])
        self.assertEqual(r["action"], "NONE")
        self.assertEqual(r["outputs"], [])
        self.assertEqual(r["assessments"], [])
        self.assertEqual(r["usage"], {"topicPolicyUnits": 1, "contentPolicyUnits": 1,
                                      "wordPolicyUnits": 1, "sensitiveInformationPolicyUnits": 0,
                                      "sensitiveInformationPolicyFreeUnits": 0,
                                      "contextualGroundingPolicyUnits": 0})
        r = self.client.apply_guardrail(guardrailIdentifier="gr-123", guardrailVersion="DRAFT",
                                        source="OUTPUT",
                                        content=[{"text": {"text": "SIM{guardrail=intervene}"}}])
        self.assertEqual(r["action"], "GUARDRAIL_INTERVENED")
        self.assertEqual(len(r["outputs"]), 1)

    def test_invoke_guardrail_checks(self):
        if "InvokeGuardrailChecks" not in self.client.meta.service_model.operation_names:
            self.skipTest("boto3 model lacks InvokeGuardrailChecks and AWS_DATA_PATH is unset")
        r = self.client.invoke_guardrail_checks(
            messages=[{"role": "user", "content": [{"text": "hello"}]}],
            checks={"promptAttack": {"categories": [{"category": "JAILBREAK"}]}})
        self.assertEqual(r["results"], {"promptAttack": {"results": []}})
        self.assertEqual(r["usage"], {"promptAttack": {"textUnits": 1}})

    def test_async_invoke(self):
        out = {"s3OutputDataConfig": {"s3Uri": "s3://bucket/out/"}}
        start = self.client.start_async_invoke(modelId="amazon.nova-reel-v1:0",
                                               modelInput={"taskType": "TEXT_VIDEO"},
                                               outputDataConfig=out)
        arn = start["invocationArn"]
        self.assertRegex(arn, r"^arn:aws:bedrock:us-east-1:123456789012:async-invoke/[a-z0-9]{12}$")
        got = self.client.get_async_invoke(invocationArn=arn)
        self.assertEqual(got["invocationArn"], arn)
        self.assertEqual(got["status"], "Completed")
        self.assertEqual(got["modelArn"], "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-reel-v1:0")
        self.assertEqual(got["outputDataConfig"], out)
        self.assertEqual(got["submitTime"].tzinfo is not None, True)
        listed = self.client.list_async_invokes()
        self.assertIn(arn, [s["invocationArn"] for s in listed["asyncInvokeSummaries"]])
        self.assertEqual(self.client.list_async_invokes(statusEquals="Failed")["asyncInvokeSummaries"], [])
        with self.assertRaises(ClientError) as ctx:
            self.client.get_async_invoke(invocationArn=arn[:-1] + ("x" if arn[-1] != "x" else "y"))
        self.assert_code(ctx, "ValidationException", 400)

    def test_unknown_route_and_bidirectional(self):
        resp, data = self.sim.raw("GET", "/model/x/list")
        self.assertEqual(resp.status, 404)
        self.assertTrue(resp.getheader("x-amzn-ErrorType").startswith("UnknownOperationException:"))
        self.assertTrue(resp.getheader("x-amzn-RequestId"))
        self.assertIn("message", json.loads(data))
        resp, _ = self.sim.raw("POST", "/model/amazon.nova-sonic-v1:0/invoke-with-bidirectional-stream",
                               headers={"Authorization": "Bearer " + BEARER})
        self.assertEqual(resp.status, 400)
        self.assertEqual(resp.getheader("x-amzn-ErrorType"),
                         "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/")

    def test_bad_directive_is_a_validation_error(self):
        with self.assertRaises(ClientError) as ctx:
            self.client.converse(modelId="amazon.nova-lite-v1:0", messages=user("SIM{outptu=3}"))
        self.assert_code(ctx, "ValidationException", 400)

    # ---- Auth ----------------------------------------------------------------------------------

    def test_second_key_pair_is_accepted(self):
        c = make_client(self.sim.port, akid=AKID2, secret=SECRET2)
        self.assertEqual(c.count_tokens(modelId="m", input={"converse": {"messages": user("SIM{input=2}")}})
                         ["inputTokens"], 2)

    def test_session_token(self):
        c = make_client(self.sim.port, akid=AKID3, secret=SECRET3, token=TOKEN3)
        r = c.converse(modelId="amazon.nova-lite-v1:0", messages=user("SIM{output=2}"))
        self.assertEqual(r["usage"]["outputTokens"], 2)
        for token in (None, "other-token"):
            with self.subTest(token=token):
                c = make_client(self.sim.port, akid=AKID3, secret=SECRET3, token=token)
                with self.assertRaises(ClientError) as ctx:
                    c.converse(modelId="amazon.nova-lite-v1:0", messages=user("hi"))
                self.assert_code(ctx, "UnrecognizedClientException", 403)

    def test_bad_signature(self):
        c = make_client(self.sim.port, secret="wrong")
        with self.assertRaises(ClientError) as ctx:
            c.converse(modelId="amazon.nova-lite-v1:0", messages=user("hi"))
        self.assert_code(ctx, "InvalidSignatureException", 403)

    def test_unknown_access_key(self):
        c = make_client(self.sim.port, akid="AKIDNOTISSUED", secret=SECRET)
        with self.assertRaises(ClientError) as ctx:
            c.converse(modelId="amazon.nova-lite-v1:0", messages=user("hi"))
        self.assert_code(ctx, "UnrecognizedClientException", 403)

    def test_wrong_region_scope(self):
        session = boto3.session.Session(aws_access_key_id=AKID, aws_secret_access_key=SECRET)
        c = session.client("bedrock-runtime", region_name="eu-west-1",
                           endpoint_url=f"http://127.0.0.1:{self.sim.port}", config=NO_RETRY)
        with self.assertRaises(ClientError) as ctx:
            c.converse(modelId="amazon.nova-lite-v1:0", messages=user("hi"))
        self.assert_code(ctx, "InvalidSignatureException", 403)

    def test_unsigned_request(self):
        resp, _ = self.sim.raw("POST", "/model/amazon.nova-lite-v1:0/converse", body=b"{}")
        self.assertEqual(resp.status, 403)

    def bearer_client(self, token):
        # boto3 picks bearer auth for Bedrock when AWS_BEARER_TOKEN_BEDROCK is set; the token is
        # read per request, so it is set only around the call.
        session = boto3.session.Session(region_name=REGION)
        c = session.client("bedrock-runtime", endpoint_url=f"http://127.0.0.1:{self.sim.port}",
                           config=NO_RETRY)
        seen = {}
        c.meta.events.register("before-send.bedrock-runtime.*",
                               lambda request, **_: seen.update(auth=request.headers.get("Authorization")))
        return c, seen

    def test_bearer_token(self):
        os.environ["AWS_BEARER_TOKEN_BEDROCK"] = BEARER
        try:
            c, seen = self.bearer_client(BEARER)
            r = c.converse(modelId="amazon.nova-lite-v1:0", messages=user("SIM{output=3}"))
            self.assertEqual(r["usage"]["outputTokens"], 3)
            auth = seen["auth"].decode() if isinstance(seen["auth"], bytes) else seen["auth"]
            self.assertEqual(auth, "Bearer " + BEARER)
            os.environ["AWS_BEARER_TOKEN_BEDROCK"] = "ABSKwrong"
            c, _ = self.bearer_client("ABSKwrong")
            with self.assertRaises(ClientError) as ctx:
                c.converse(modelId="amazon.nova-lite-v1:0", messages=user("hi"))
            self.assert_code(ctx, "AccessDeniedException", 403)
        finally:
            os.environ.pop("AWS_BEARER_TOKEN_BEDROCK", None)

    # ---- Faults --------------------------------------------------------------------------------

    def test_error_faults_are_counted_once(self):
        cases = [("fault=throttle", "ThrottlingException", 429),
                 ("fault=error500", "InternalServerException", 500),
                 ("fault=unavailable", "ServiceUnavailableException", 503),
                 ("fault=model_timeout", "ModelTimeoutException", 408),
                 ("fault=model_error", "ModelErrorException", 424),
                 ("status=503", "ServiceUnavailableException", 503),
                 ("status=429,error=ModelNotReadyException", "ModelNotReadyException", 429)]
        before = self.sim.stats()["requests"]["Converse"]
        for directive, code, status in cases:
            with self.subTest(directive=directive):
                with self.assertRaises(ClientError) as ctx:
                    self.client.converse(modelId="amazon.nova-lite-v1:0",
                                         messages=user("SIM{" + directive + "}"))
                self.assert_code(ctx, code, status)
        with self.assertRaises(ClientError) as ctx:
            self.client.invoke_model(modelId="meta.llama3-8b-instruct-v1:0",
                                     body=json.dumps({"prompt": "SIM{fault=throttle}"}))
        self.assert_code(ctx, "ThrottlingException", 429)
        self.assertEqual(self.sim.stats()["requests"]["Converse"] - before, len(cases))

    def test_stream_exception(self):
        r = self.client.converse_stream(
            modelId="anthropic.claude-3-haiku-20240307-v1:0",
            messages=user("SIM{output=12,events=6,after=2,fault=stream_exception}"))
        deltas = 0
        with self.assertRaises(EventStreamError) as ctx:
            for event in r["stream"]:
                deltas += "contentBlockDelta" in event
        self.assertEqual(deltas, 2)
        self.assertEqual(ctx.exception.response["Error"]["Code"], "modelStreamErrorException")
        r = self.client.invoke_model_with_response_stream(
            modelId="anthropic.claude-3-haiku-20240307-v1:0",
            body=json.dumps({"x": "SIM{fault=stream_exception,exception_type=throttlingException}"}))
        with self.assertRaises(EventStreamError) as ctx:
            for _ in r["body"]:
                pass
        self.assertEqual(ctx.exception.response["Error"]["Code"], "throttlingException")

    def test_cut_stream(self):
        r = self.client.converse_stream(modelId="amazon.nova-lite-v1:0",
                                        messages=user("SIM{output=10,events=5,after=1,fault=cut}"))
        kinds = []
        # botocore iterates the raw urllib3 stream: a truncated chunked body surfaces as urllib3's
        # ProtocolError ("Response ended prematurely").
        with self.assertRaises(urllib3.exceptions.ProtocolError):
            for event in r["stream"]:
                kinds.append(next(iter(event)))
        self.assertEqual(kinds, ["messageStart", "contentBlockDelta"])

    def test_cut_plain_body(self):
        r = self.client.invoke_model(modelId="amazon.titan-text-express-v1",
                                     body=json.dumps({"inputText": "SIM{fault=cut}"}))
        with self.assertRaisesRegex(ResponseStreamingError, "IncompleteRead"):
            r["body"].read()

    def test_drop(self):
        with self.assertRaises(ConnectionClosedError):
            self.client.converse(modelId="amazon.nova-lite-v1:0", messages=user("SIM{fault=drop}"))

    def test_pacing(self):
        pace = 0.12
        t0 = time.monotonic()
        r = self.client.converse_stream(modelId="amazon.nova-lite-v1:0",
                                        messages=user("SIM{output=8,events=4,pace_ms=120}"))
        stamps = []
        for _ in r["stream"]:
            stamps.append(time.monotonic() - t0)
        self.assertEqual(len(stamps), 8)
        # Event i cannot leave the simulator before i * pace after the first one, whatever the
        # delivery jitter on a loaded machine; and the first must not wait for the rest.
        for i, at in enumerate(stamps):
            self.assertGreaterEqual(at, i * pace, stamps)
        self.assertLess(stamps[0], 5 * pace, stamps)
        self.assertGreater(stamps[-1] - stamps[0], 3 * pace, stamps)

    def test_slow_first_byte(self):
        t0 = time.monotonic()
        self.client.converse(modelId="amazon.nova-lite-v1:0",
                             messages=user("SIM{fault=slow_first_byte,first_byte_ms=500}"))
        self.assertGreaterEqual(time.monotonic() - t0, 0.5)
        t0 = time.monotonic()
        self.client.converse(modelId="amazon.nova-lite-v1:0", messages=user("fast"))
        self.assertLess(time.monotonic() - t0, 0.5)

    def test_stats_and_reset(self):
        s = self.sim.stats()
        self.assertIn("ConverseStream", s["requests"])
        self.assertEqual(s["total"], sum(s["requests"].values()))
        self.client.count_tokens(modelId="m", input={"converse": {"messages": user("SIM{input=1}")}})
        self.assertEqual(self.sim.stats()["requests"]["CountTokens"] - s["requests"]["CountTokens"], 1)


# ---- InvokeModelWithBidirectionalStream over HTTP/2 (tests/js/sim-bidi.js, node's http2) --------

JS_BIDI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "js", "sim-bidi.js")
SONIC = "amazon.nova-sonic-v1:0"


def run_bidi(port, scheme="http", **plan):
    """Runs one bidirectional session with the node client; returns what it saw."""
    plan.setdefault("endpoint", f"{scheme}://127.0.0.1:{port}")
    plan.setdefault("region", REGION)
    plan.setdefault("model", SONIC)
    plan.setdefault("auth", "sigv4")
    plan.setdefault("akid", AKID)
    plan.setdefault("secret", SECRET)
    plan.setdefault("bearer", BEARER)
    r = subprocess.run(["node", JS_BIDI, json.dumps(plan)], capture_output=True, text=True,
                       timeout=40)
    lines = r.stdout.strip().splitlines()
    if not lines:
        raise AssertionError(f"sim-bidi.js printed nothing: {r.stderr}")
    return json.loads(lines[-1])


def ev(name, **body):
    return {"event": {name: body}}


def sonic_open(prompt="p1"):
    return [ev("sessionStart", inferenceConfiguration={"maxTokens": 1024, "topP": 0.9,
                                                        "temperature": 0.7}),
            ev("promptStart", promptName=prompt,
               textOutputConfiguration={"mediaType": "text/plain"},
               audioOutputConfiguration={"mediaType": "audio/lpcm", "sampleRateHertz": 24000,
                                         "sampleSizeBits": 16, "channelCount": 1,
                                         "voiceId": "matthew", "encoding": "base64",
                                         "audioType": "SPEECH"})]


def sonic_text_turn(text, content="t1", prompt="p1"):
    return [ev("contentStart", promptName=prompt, contentName=content, type="TEXT",
               interactive=True, role="USER", textInputConfiguration={"mediaType": "text/plain"}),
            ev("textInput", promptName=prompt, contentName=content, content=text),
            ev("contentEnd", promptName=prompt, contentName=content)]


def sonic_audio_turn(chunks, size, content="a1", prompt="p1"):
    return ([ev("contentStart", promptName=prompt, contentName=content, type="AUDIO",
                interactive=True, role="USER",
                audioInputConfiguration={"mediaType": "audio/lpcm", "sampleRateHertz": 16000,
                                         "sampleSizeBits": 16, "channelCount": 1,
                                         "audioType": "SPEECH", "encoding": "base64"})] +
            [{"audio": {"promptName": prompt, "contentName": content, "bytes": size}}] * chunks +
            [ev("contentEnd", promptName=prompt, contentName=content)])


def sonic_close(prompt="p1"):
    return [ev("promptEnd", promptName=prompt), ev("sessionEnd"), {"end": True}]


def usage_events(result):
    return [e["body"] for e in result["events"] if e["name"] == "usageEvent"]


def tokens(io):
    return (io["speechTokens"], io["textTokens"])


@unittest.skipUnless(shutil.which("node"), "node not installed")
class SimulatorBidiTest(unittest.TestCase):
    """InvokeModelWithBidirectionalStream over HTTP/2 with prior knowledge: signed envelopes,
    full duplex, usage, faults."""

    @classmethod
    def setUpClass(cls):
        if not SIM or not os.path.exists(SIM):
            raise unittest.SkipTest("BEDROCK_SIM not set")
        cls.sim = Sim()

    @classmethod
    def tearDownClass(cls):
        rc = cls.sim.stop()
        assert rc == 0, f"bedrock-sim exited {rc} on SIGTERM"

    def test_bidi_usage_totals_full_duplex(self):
        before = self.sim.stats()
        steps = (sonic_open() + sonic_audio_turn(3, 3200) +
                 # The request is still open: the answer to the first turn must come now.
                 [{"wait": "usageEvent", "count": 1}] +
                 sonic_text_turn("hello there") + [{"wait": "usageEvent", "count": 2}] +
                 sonic_close())
        r = run_bidi(self.sim.port, steps=steps)
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["status"], 200)
        self.assertEqual(r["headers"]["content-type"], "application/vnd.amazon.eventstream")
        self.assertRegex(r["headers"]["x-amzn-requestid"], r"^[0-9a-f-]{36}$")
        names = [e["name"] for e in r["events"]]
        turn = ["contentStart", "textOutput", "contentEnd", "contentStart", "audioOutput",
                "contentEnd", "usageEvent"]
        self.assertEqual(names, ["completionStart"] + turn + turn +
                         ["completionEnd", "usageEvent"])
        self.assertTrue(all(e["type"] == "event" for e in r["events"]))
        first = r["events"][0]["body"]
        for e in r["events"]:
            self.assertEqual(e["body"]["sessionId"], first["sessionId"])
            self.assertEqual(e["body"]["completionId"], first["completionId"])
            self.assertEqual(e["body"]["promptName"], "p1")
        self.assertEqual(r["events"][2]["body"]["content"], "Simulated reply 1.")
        self.assertEqual(r["events"][1]["body"]["role"], "ASSISTANT")
        self.assertEqual(r["events"][4]["body"]["type"], "AUDIO")
        self.assertEqual(len(base64.b64decode(r["events"][5]["body"]["content"])), 4000)
        self.assertEqual(r["events"][-2]["body"]["stopReason"], "END_TURN")

        u1, u2, last = usage_events(r)
        self.assertEqual(tokens(u1["details"]["total"]["input"]), (12, 0))  # 3 x ceil(3200/1000)
        self.assertEqual(tokens(u1["details"]["total"]["output"]), (4, 8))
        self.assertEqual(tokens(u2["details"]["delta"]["input"]), (0, 3))  # ceil(11/4)
        self.assertEqual(tokens(u2["details"]["delta"]["output"]), (4, 8))
        self.assertEqual(tokens(u2["details"]["total"]["input"]), (12, 3))
        self.assertEqual(tokens(u2["details"]["total"]["output"]), (8, 16))
        self.assertEqual(tokens(last["details"]["delta"]["input"]), (0, 0))
        self.assertEqual(tokens(last["details"]["delta"]["output"]), (0, 0))
        self.assertEqual((last["totalInputTokens"], last["totalOutputTokens"],
                          last["totalTokens"]), (15, 24, 39))

        after = self.sim.stats()
        sent = r["sent"]
        self.assertEqual(sent, 12)
        self.assertEqual(after["requests"]["InvokeModelWithBidirectionalStream"] -
                         before["requests"]["InvokeModelWithBidirectionalStream"], 1)
        self.assertEqual(after["bidi_input_events"] - before["bidi_input_events"], sent)
        self.assertEqual(after["bidi_verified_events"] - before["bidi_verified_events"], sent)
        self.assertEqual(after["bidi_signature_failures"], before["bidi_signature_failures"])
        self.assertGreater(after["http2_connections"], before["http2_connections"])

    def test_bidi_bad_event_signature_is_a_validation_exception(self):
        before = self.sim.stats()
        r = run_bidi(self.sim.port, sign="bad:3",
                     steps=sonic_open() + sonic_text_turn("hi") + sonic_close())
        self.assertEqual(r["status"], 200)
        last = r["events"][-1]
        self.assertEqual(last["type"], "exception")
        self.assertEqual(last["name"], "validationException")
        self.assertIn("event 3", last["body"]["message"])
        self.assertIn("signature does not match", last["body"]["message"])
        self.assertNotIn("usageEvent", [e["name"] for e in r["events"]])
        after = self.sim.stats()
        self.assertEqual(after["bidi_signature_failures"] - before["bidi_signature_failures"], 1)
        self.assertEqual(after["bidi_verified_events"] - before["bidi_verified_events"], 2)

    def test_bidi_unsigned_events_are_refused_when_the_request_is_signed(self):
        r = run_bidi(self.sim.port, sign="bare", steps=sonic_open() + sonic_close())
        self.assertEqual(r["events"][-1]["name"], "validationException")
        self.assertIn(":chunk-signature", r["events"][-1]["body"]["message"])

    def test_bidi_stream_exception_after_usage(self):
        steps = (sonic_open() + sonic_text_turn("hi SIM{fault=stream_exception,after=1}") +
                 [{"wait": "usageEvent", "count": 1}] + sonic_close())
        r = run_bidi(self.sim.port, steps=steps)
        names = [e["name"] for e in r["events"]]
        self.assertEqual(names[-2:], ["usageEvent", "modelStreamErrorException"])
        self.assertEqual(r["events"][-1]["type"], "exception")
        self.assertIn("message", r["events"][-1]["body"])
        r = run_bidi(self.sim.port, steps=sonic_open() + sonic_text_turn(
            "SIM{fault=stream_exception,after=0,exception_type=throttlingException}") +
            sonic_close())
        self.assertEqual([e["name"] for e in r["events"]],
                         ["completionStart", "throttlingException"])

    def test_bidi_cut_resets_the_stream(self):
        steps = (sonic_open() + sonic_text_turn("SIM{fault=cut,after=1}") +
                 [{"wait": "usageEvent", "count": 1}] + sonic_close())
        r = run_bidi(self.sim.port, steps=steps)
        self.assertEqual(r["events"][-1]["name"], "usageEvent")
        self.assertEqual(r["rst"], 2)  # INTERNAL_ERROR

    def test_bidi_pacing(self):
        t0 = time.monotonic()
        r = run_bidi(self.sim.port, steps=sonic_open() + sonic_text_turn("SIM{pace_ms=100}") +
                     [{"wait": "usageEvent", "count": 1}] + sonic_close())
        self.assertEqual(len(r["events"]), 10)
        self.assertGreaterEqual(time.monotonic() - t0, 0.8)  # 9 gaps after completionStart

    def test_bidi_bearer_token_and_bare_events(self):
        before = self.sim.stats()
        r = run_bidi(self.sim.port, auth="bearer", sign="bare",
                     steps=sonic_open() + sonic_text_turn("hello there") + sonic_close())
        self.assertIsNone(r["error"], r)
        self.assertEqual(usage_events(r)[-1]["totalInputTokens"], 3)
        after = self.sim.stats()
        self.assertEqual(after["bidi_verified_events"], before["bidi_verified_events"])
        self.assertEqual(after["bidi_input_events"] - before["bidi_input_events"], 7)

    def test_bidi_refusals_before_the_stream(self):
        r = run_bidi(self.sim.port, secret="wrong", steps=sonic_open() + sonic_close())
        self.assertEqual(r["status"], 403)
        self.assertTrue(r["headers"]["x-amzn-errortype"].startswith("InvalidSignatureException:"))
        self.assertIn("signature", r["body"]["message"])
        r = run_bidi(self.sim.port, auth="none", steps=sonic_open() + sonic_close())
        self.assertEqual(r["status"], 403)
        self.assertTrue(
            r["headers"]["x-amzn-errortype"].startswith("MissingAuthenticationTokenException:"))
        r = run_bidi(self.sim.port, model="amazon.nova-lite-v1:0", steps=sonic_close())
        self.assertEqual(r["status"], 400)
        self.assertTrue(r["headers"]["x-amzn-errortype"].startswith("ValidationException:"))
        r = run_bidi(self.sim.port, model="us.amazon.nova-2-sonic-v1:0",
                     steps=sonic_open() + sonic_close())
        self.assertEqual(r["status"], 200)
        self.assertEqual(r["events"][-2]["name"], "completionEnd")

    def test_bidi_client_reset_is_quiet(self):
        r = run_bidi(self.sim.port, close_after_first_event=True,
                     steps=sonic_open() + [{"wait": "usageEvent"}])
        self.assertEqual(len(r["events"]), 1)
        self.sim.stats()  # still serving
        r = run_bidi(self.sim.port, steps=sonic_open() + sonic_text_turn("again") + sonic_close())
        self.assertEqual(usage_events(r)[-1]["totalOutputTokens"], 12)

    @unittest.skipUnless(os.path.isdir(os.path.join(os.path.dirname(JS_BIDI), "node_modules")),
                         "tests/js/node_modules missing (scripts/install-deps)")
    def test_bidi_with_the_js_sdk(self):
        # The SDK's own signing (request and envelopes) and event-stream parsing.
        before = self.sim.stats()
        r = subprocess.run(["node", os.path.join(os.path.dirname(JS_BIDI), "sim-bidi-sdk.js"),
                            str(self.sim.port), AKID, SECRET],
                           capture_output=True, text=True, timeout=40)
        out = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertNotIn("error", out, r.stderr)
        self.assertEqual(out["names"][0], "completionStart")
        self.assertEqual(out["names"][-2:], ["completionEnd", "usageEvent"])
        self.assertEqual((out["usage"]["totalInputTokens"], out["usage"]["totalOutputTokens"]),
                         (3, 12))
        after = self.sim.stats()
        self.assertEqual(after["bidi_verified_events"] - before["bidi_verified_events"], 7)
        self.assertEqual(after["bidi_signature_failures"], before["bidi_signature_failures"])

    @unittest.skipUnless(shutil.which("nghttp"), "nghttp not installed")
    def test_http2_stats_and_other_operations(self):
        out = subprocess.run(["nghttp", f"http://127.0.0.1:{self.sim.port}/__sim/stats"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        self.assertIn("bidi_input_events", json.loads(out))
        out = subprocess.run(["nghttp", "-v", "-d", "-", "-H", ":method: POST",
                              f"http://127.0.0.1:{self.sim.port}/model/m/converse"],
                             input="{}", capture_output=True, text=True, timeout=10).stdout
        self.assertIn(":status: 400", out)


class SimulatorTlsThreadsTest(unittest.TestCase):
    """TLS and several worker threads, through boto3 over https."""

    @classmethod
    def setUpClass(cls):
        if not SIM or not os.path.exists(SIM):
            raise unittest.SkipTest("BEDROCK_SIM not set")
        if not shutil.which("openssl"):
            raise unittest.SkipTest("openssl CLI not found")
        cls.certdir = tempfile.mkdtemp(prefix="bedrock-sim-tls-")
        cls.cert = os.path.join(cls.certdir, "cert.pem")
        key = os.path.join(cls.certdir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cls.cert],
                       check=True, capture_output=True)
        cls.sim = Sim("--tls-cert", cls.cert, "--tls-key", key, "--threads", "3")

    @classmethod
    def tearDownClass(cls):
        rc = cls.sim.stop()
        shutil.rmtree(cls.certdir, ignore_errors=True)
        assert rc == 0, f"bedrock-sim exited {rc} on SIGTERM"

    def test_https_with_three_threads(self):
        for n in range(6):
            c = make_client(self.sim.port, scheme="https", verify=self.cert)
            r = c.converse(modelId="amazon.nova-lite-v1:0", messages=user(f"SIM{{output={n + 1}}}"))
            self.assertEqual(r["usage"]["outputTokens"], n + 1)
        r = c.converse_stream(modelId="amazon.nova-lite-v1:0", messages=user("SIM{output=4,events=2}"))
        self.assertEqual(sum("contentBlockDelta" in e for e in r["stream"]), 2)
        stats = self.https_stats()
        self.assertGreaterEqual(stats["requests"]["Converse"], 6)
        self.assertGreaterEqual(stats["requests"]["ConverseStream"], 1)

    @unittest.skipUnless(shutil.which("node"), "node not installed")
    def test_bidi_over_tls_alpn_h2(self):
        steps = sonic_open() + sonic_audio_turn(2, 1500) + sonic_close()
        r = run_bidi(self.sim.port, scheme="https", steps=steps)
        self.assertIsNone(r["error"], r)
        self.assertEqual(r["status"], 200)
        self.assertEqual(usage_events(r)[-1]["details"]["total"]["input"]["speechTokens"], 4)

    def https_stats(self):
        conn = http.client.HTTPSConnection("127.0.0.1", self.sim.port, timeout=10,
                                           context=ssl.create_default_context(cafile=self.cert))
        conn.request("GET", "/__sim/stats")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        data = json.loads(resp.read())
        conn.close()
        return data

    def test_plain_http_gets_no_answer_on_tls_port(self):
        with self.assertRaises((http.client.HTTPException, OSError)):
            self.sim.raw("GET", "/__sim/stats")


if __name__ == "__main__":
    unittest.main(verbosity=2)
