"""Client authentication through real boto3: refusals are Bedrock-shaped (status,
x-amzn-ErrorType, JSON message) so boto3 raises its typed errors, nothing reaches the
upstream, and no secret appears in a log line or an error."""
import datetime
import json
import unittest
from unittest import mock

import botocore.auth
from botocore.exceptions import ClientError

from harness import (BEARER_TOKEN, CLAUDE, CLIENT_AKID, CLIENT_SECRET, Proxy, ProxyCase, Simulator,
                     base_config, bearer_client, bearer_env, client, converse_messages,
                     raw_request)

MSGS = converse_messages("SIM{input=3,output=2}")


class ProxyAuth(ProxyCase):
    def refused(self, c, code, status=403):
        before = self.sim.stats()
        with self.assertRaises(ClientError) as cm:
            c.converse(modelId=CLAUDE, messages=MSGS)
        err = cm.exception.response
        self.assertEqual(err["Error"]["Code"], code)
        self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], status)
        self.assertTrue(err["Error"]["Message"])
        self.assertTrue(err["ResponseMetadata"]["RequestId"])
        self.assertEqual(self.sim.stats(), before, "a refused request must not reach Bedrock")
        return err

    def test_unknown_access_key(self):
        self.refused(client(self.proxy.url, "BMAKNOTISSUED00001", "whatever"),
                     "UnrecognizedClientException")

    def test_wrong_secret_is_a_bad_signature(self):
        err = self.refused(client(self.proxy.url, CLIENT_AKID, "not-the-secret"),
                           "InvalidSignatureException")
        self.assertNotIn(CLIENT_SECRET, json.dumps(err, default=str))

    def test_stale_date_outside_five_minutes(self):
        stale = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=6)
        c = client(self.proxy.url)
        with mock.patch.object(botocore.auth.datetime, "datetime", wraps=datetime.datetime) as dt:
            dt.utcnow.return_value = stale.replace(tzinfo=None)
            dt.now.return_value = stale
            err = self.refused(c, "InvalidSignatureException")
        self.assertIn("expired", err["Error"]["Message"].lower())

    def test_date_within_skew_is_accepted(self):
        skewed = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=4)
        c = client(self.proxy.url)
        with mock.patch.object(botocore.auth.datetime, "datetime", wraps=datetime.datetime) as dt:
            dt.utcnow.return_value = skewed.replace(tzinfo=None)
            dt.now.return_value = skewed
            r = c.converse(modelId=CLAUDE, messages=MSGS)
        self.assertEqual(r["usage"]["outputTokens"], 2)

    def test_session_token_not_issued_is_refused(self):
        import boto3
        from botocore.config import Config
        c = boto3.client("bedrock-runtime", endpoint_url=self.proxy.url, region_name="us-east-1",
                         aws_access_key_id=CLIENT_AKID, aws_secret_access_key=CLIENT_SECRET,
                         aws_session_token="FwoGZXIvYXdzEXAMPLETOKEN",
                         config=Config(retries={"total_max_attempts": 1}))
        self.refused(c, "UnrecognizedClientException")

    def test_no_credentials_at_all(self):
        body = json.dumps({"messages": MSGS}).encode()
        resp = raw_request(self.proxy.port,
                           b"POST /model/x/converse HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                           b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        self.assertTrue(resp.startswith(b"HTTP/1.1 403"), resp[:80])
        self.assertIn(b"x-amzn-ErrorType: AccessDeniedException:", resp)
        self.assertIn(b'{"message":"Missing Authentication Token"}', resp)

    def test_tampered_body_breaks_the_signature(self):
        c = client(self.proxy.url)

        def tamper(request, **kwargs):
            request.body = request.body.replace(b"input=3", b"input=9")
        c.meta.events.register_last("before-send.bedrock-runtime.Converse", tamper)
        self.refused(c, "InvalidSignatureException")

    def test_wrong_bearer_key(self):
        with bearer_env("bmk-not-a-key-this-proxy-issued"):
            self.refused(bearer_client(self.proxy.url), "AccessDeniedException")

    def test_bearer_key_works(self):
        with bearer_env():
            r = bearer_client(self.proxy.url).converse(modelId=CLAUDE, messages=MSGS)
        self.assertEqual(r["usage"]["inputTokens"], 3)

    def test_no_secret_in_any_log(self):
        # Exercise success and failure first, then read everything the proxy wrote.
        client(self.proxy.url).converse(modelId=CLAUDE, messages=MSGS)
        try:
            client(self.proxy.url, CLIENT_AKID, "wrong").converse(modelId=CLAUDE, messages=MSGS)
        except ClientError:
            pass
        with bearer_env():
            bearer_client(self.proxy.url).converse(modelId=CLAUDE, messages=MSGS)
        text = "\n".join(json.dumps(l) for l in self.proxy.access_log()) + self.proxy.stderr()
        for secret in (CLIENT_SECRET, BEARER_TOKEN, "upstream-secret-for-tests-only", "Signature="):
            self.assertNotIn(secret, text)


class AnonymousMode(unittest.TestCase):
    def test_off_by_default_and_explicit_when_on(self):
        with Simulator() as sim:
            cfg = base_config(sim.url, auth={"anonymous": {"enabled": True, "team": "demo",
                                                           "app": "playground"}})
            with Proxy(cfg) as proxy:
                body = json.dumps({"messages": MSGS}).encode()
                resp = raw_request(proxy.port,
                                   b"POST /model/" + CLAUDE.encode() + b"/converse HTTP/1.1\r\nHost: a\r\n"
                                   b"Content-Type: application/json\r\nContent-Length: " +
                                   str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
                self.assertTrue(resp.startswith(b"HTTP/1.1 200"), resp[:200])
                line = proxy.wait_for_log(1)[0]
                self.assertEqual((line["team"], line["app"], line["principal"]),
                                 ("demo", "playground", "anonymous"))
                self.assertIn("anonymous", proxy.stderr())


if __name__ == "__main__":
    unittest.main()
