"""Real boto3 clients through bedrock-meter to the Bedrock simulator: every operation, both kinds
of client credential, byte-for-byte forwarding, and one access-log line per request."""
import base64
import json
import socket
import unittest

from harness import (BEARER_TOKEN, CLAUDE, CLAUDE_PROFILE_ARN, CLIENT2_AKID, CLIENT2_SECRET, LLAMA,
                     MISTRAL, NOVA, TITAN, Proxy, Simulator, base_config, bearer_client, bearer_env, client,
                     converse_messages)


def anthropic_body(text, max_tokens=50):
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": text}]})


class ProxyOperations(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Simulator()
        cls.proxy = Proxy(base_config(cls.sim.url))
        cls.c = client(cls.proxy.url)

    @classmethod
    def tearDownClass(cls):
        code = cls.proxy.stop()
        cls.proxy.__exit__(None, None, None)
        cls.sim.stop()
        assert code == 0, f"proxy exited with {code}"

    def log_for(self, request_id):
        for line in self.proxy.wait_for_log(0):
            if line["request_id"] == request_id:
                return line
        lines = self.proxy.wait_for_log(10**9, timeout=2)
        return next(l for l in lines if l["request_id"] == request_id)

    def test_converse(self):
        r = self.c.converse(modelId=CLAUDE,
                            messages=converse_messages("hello SIM{input=120,output=30,cache_read=40,cache_write=8}"))
        self.assertEqual(r["usage"]["inputTokens"], 120)
        self.assertEqual(r["usage"]["outputTokens"], 30)
        self.assertEqual(r["usage"]["cacheReadInputTokens"], 40)
        self.assertEqual(r["output"]["message"]["role"], "assistant")
        line = self.log_for(r["ResponseMetadata"]["RequestId"])
        self.assertEqual((line["operation"], line["model"], line["status"]), ("Converse", CLAUDE, 200))
        self.assertEqual((line["team"], line["app"], line["principal"]),
                         ("search", "web-search", "BMAKTESTSEARCH0001"))
        self.assertEqual((line["input_tokens"], line["output_tokens"], line["cache_read_tokens"],
                          line["cache_write_tokens"], line["usage_source"]),
                         (120, 30, 40, 8, "reported"))

    def test_converse_stream(self):
        r = self.c.converse_stream(modelId=NOVA,
                                   messages=converse_messages("SIM{input=55,output=21,events=7}"))
        kinds, text, usage = [], "", None
        for event in r["stream"]:
            kinds.append(next(iter(event)))
            if "contentBlockDelta" in event:
                text += event["contentBlockDelta"]["delta"]["text"]
            if "metadata" in event:
                usage = event["metadata"]["usage"]
        self.assertEqual(kinds[0], "messageStart")
        self.assertEqual(kinds.count("contentBlockDelta"), 7)
        self.assertEqual(kinds[-1], "metadata")
        self.assertTrue(text)
        self.assertEqual((usage["inputTokens"], usage["outputTokens"]), (55, 21))
        line = self.log_for(r["ResponseMetadata"]["RequestId"])
        self.assertEqual((line["operation"], line["input_tokens"], line["output_tokens"]),
                         ("ConverseStream", 55, 21))

    def test_invoke_model_each_family(self):
        cases = [
            (CLAUDE, anthropic_body("hi SIM{input=11,output=9}"),
             lambda b: b["usage"]["output_tokens"] == 9),
            (NOVA, json.dumps({"messages": [{"role": "user", "content": [{"text": "SIM{input=11,output=9}"}]}]}),
             lambda b: b["usage"]["outputTokens"] == 9),
            (TITAN, json.dumps({"inputText": "SIM{input=11,output=9}"}),
             lambda b: b["results"][0]["tokenCount"] == 9),
            (LLAMA, json.dumps({"prompt": "SIM{input=11,output=9}", "max_gen_len": 100}),
             lambda b: b["generation_token_count"] == 9),
            (MISTRAL, json.dumps({"prompt": "<s>[INST] SIM{input=11,output=9} [/INST]"}),
             lambda b: "outputs" in b),
        ]
        for model, body, check in cases:
            with self.subTest(model=model):
                r = self.c.invoke_model(modelId=model, body=body)
                headers = r["ResponseMetadata"]["HTTPHeaders"]
                self.assertEqual(headers["x-amzn-bedrock-input-token-count"], "11")
                self.assertEqual(headers["x-amzn-bedrock-output-token-count"], "9")
                self.assertTrue(check(json.loads(r["body"].read())))
                line = self.log_for(r["ResponseMetadata"]["RequestId"])
                self.assertEqual((line["operation"], line["model"], line["input_tokens"],
                                  line["output_tokens"]), ("InvokeModel", model, 11, 9))

    def test_invoke_model_with_response_stream(self):
        r = self.c.invoke_model_with_response_stream(
            modelId=CLAUDE_PROFILE_ARN, body=anthropic_body("SIM{input=70,output=12,events=4}"))
        chunks = [json.loads(e["chunk"]["bytes"]) for e in r["body"]]
        self.assertEqual(chunks[0]["type"], "message_start")
        metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
        self.assertEqual((metrics["inputTokenCount"], metrics["outputTokenCount"]), (70, 12))
        line = self.log_for(r["ResponseMetadata"]["RequestId"])
        # The ARN arrives percent-encoded (%3A, %2F) and is logged decoded.
        self.assertEqual((line["operation"], line["model"], line["input_tokens"],
                          line["output_tokens"]),
                         ("InvokeModelWithResponseStream", CLAUDE_PROFILE_ARN, 70, 12))

    def test_count_tokens_is_not_billed(self):
        r = self.c.count_tokens(modelId=CLAUDE, input={"converse": {
            "messages": converse_messages("SIM{input=33}")}})
        self.assertEqual(r["inputTokens"], 33)
        line = self.log_for(r["ResponseMetadata"]["RequestId"])
        self.assertEqual((line["operation"], line["input_tokens"], line["usage_source"]),
                         ("CountTokens", 0, "none"))

    def test_apply_guardrail_and_async_routes(self):
        r = self.c.apply_guardrail(guardrailIdentifier="gr-123", guardrailVersion="1",
                                   source="INPUT", content=[{"text": {"text": "hello"}}])
        self.assertEqual(r["action"], "NONE")
        started = self.c.start_async_invoke(
            modelId="amazon.nova-reel-v1:0", modelInput={"taskType": "TEXT_VIDEO"},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://bucket/out"}})
        arn = started["invocationArn"]
        self.assertTrue(arn.startswith("arn:aws:bedrock:"))
        got = self.c.get_async_invoke(invocationArn=arn)
        self.assertEqual(got["invocationArn"], arn)
        listed = self.c.list_async_invokes()
        self.assertIn("asyncInvokeSummaries", listed)
        ops = {l["operation"] for l in self.proxy.wait_for_log(4)}
        self.assertTrue({"ApplyGuardrail", "StartAsyncInvoke", "GetAsyncInvoke",
                         "ListAsyncInvokes"} <= ops)

    def test_bearer_key(self):
        with bearer_env():
            c = bearer_client(self.proxy.url)
            r = c.converse(modelId=CLAUDE, messages=converse_messages("SIM{input=5,output=3}"))
        self.assertEqual(r["usage"]["outputTokens"], 3)
        line = self.log_for(r["ResponseMetadata"]["RequestId"])
        self.assertEqual((line["team"], line["app"], line["principal"]),
                         ("billing", "invoices", "billing-bot"))

    def test_second_identity_is_attributed_separately(self):
        c = client(self.proxy.url, CLIENT2_AKID, CLIENT2_SECRET)
        r = c.converse(modelId=CLAUDE, messages=converse_messages("SIM{input=5,output=3}"))
        line = self.log_for(r["ResponseMetadata"]["RequestId"])
        self.assertEqual((line["team"], line["app"]), ("support", "helpdesk"))

    def test_raw_colon_model_id_as_the_anthropic_sdk_sends_it(self):
        # The Anthropic SDK quotes the model with safe=":"; boto3 cannot send that, so sign
        # the request by hand with botocore's signer, exactly as that SDK's SigV4 path does.
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        body = anthropic_body("SIM{input=8,output=2}")
        url = f"{self.proxy.url}/model/{CLAUDE}/invoke"
        req = AWSRequest(method="POST", url=url, data=body,
                         headers={"content-type": "application/json"})
        SigV4Auth(Credentials("BMAKTESTSEARCH0001", "client-secret-search-0001"), "bedrock",
                  "us-east-1").add_auth(req)
        self.assertIn(":0/invoke", req.url)
        import urllib.request
        http_req = urllib.request.Request(req.url, data=body.encode(), method="POST",
                                          headers=dict(req.headers.items()))
        with urllib.request.urlopen(http_req, timeout=10) as resp:
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.headers["x-amzn-bedrock-output-token-count"], "2")
            rid = resp.headers["x-amzn-RequestId"]
        self.assertEqual(self.log_for(rid)["model"], CLAUDE)

    def test_forwarding_is_byte_for_byte(self):
        """The body a client gets through the proxy equals what the simulator sends directly."""
        direct = client(self.sim.url, "AKIDUPSTREAMTEST01", "upstream-secret-for-tests-only")
        msgs = converse_messages("fidelity SIM{input=10,output=10,events=5}")
        via_proxy = self.c.invoke_model(modelId=LLAMA, body=json.dumps({"prompt": "SIM{input=3,output=4}"}))
        straight = direct.invoke_model(modelId=LLAMA, body=json.dumps({"prompt": "SIM{input=3,output=4}"}))
        self.assertEqual(via_proxy["body"].read(), straight["body"].read())
        for h in ("content-type", "x-amzn-bedrock-input-token-count",
                  "x-amzn-bedrock-output-token-count"):
            self.assertEqual(via_proxy["ResponseMetadata"]["HTTPHeaders"][h],
                             straight["ResponseMetadata"]["HTTPHeaders"][h])
        a = [e for e in self.c.converse_stream(modelId=NOVA, messages=msgs)["stream"]]
        b = [e for e in direct.converse_stream(modelId=NOVA, messages=msgs)["stream"]]
        strip = lambda evs: [{k: v for k, v in e.items()} for e in evs if "metadata" not in e]
        self.assertEqual(strip(a), strip(b))

    def test_keep_alive_reuses_one_client_connection(self):
        before = len(self.proxy.access_log())
        for _ in range(5):
            self.c.converse(modelId=CLAUDE, messages=converse_messages("SIM{input=1,output=1}"))
        lines = self.proxy.wait_for_log(before + 5)[before:]
        self.assertEqual(len({l["conn"] for l in lines}), 1)


if __name__ == "__main__":
    unittest.main()
