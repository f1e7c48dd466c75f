"""`bedrock-meter rates fetch` against a local stand-in for the AWS Price List Query API: HTTPS
with its own CA, every request's SigV4 signature (service `pricing`) checked by an independent
Python implementation, GetProducts pages with NextToken, the regionCode filter, and a
ThrottlingException on the first call of each series that the client must wait out and retry.
The pages come from the same offer fixtures `rates import` reads, so the fetched table must equal
the imported one (`rates diff` says nothing differs).
"""
from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import ssl
import subprocess
import tempfile
import threading
import unittest
import urllib.parse
from pathlib import Path

from harness import PROXY_BIN, ROOT, make_ca

DATA = ROOT / "tests" / "data" / "price_list"
AKID, SECRET = "AKIDPRICINGTEST00001", "pricing-test-secret-key-0000000000000001"
PAGE = 10


def items_of_bulk(path: Path) -> list[dict]:
    offer = json.loads(path.read_text())
    out = []
    for sku, product in offer["products"].items():
        out.append({"product": product, "serviceCode": offer["offerCode"],
                    "terms": {"OnDemand": offer["terms"]["OnDemand"][sku]},
                    "version": offer["version"], "publicationDate": offer["publicationDate"]})
    return out


def items_of_pages(*paths: Path) -> list[dict]:
    return [json.loads(i) for p in paths for i in json.loads(p.read_text())["PriceList"]]


CATALOGUE = {
    "AmazonBedrock": items_of_bulk(DATA / "amazonbedrock-us-east-1.json"),
    "AmazonBedrockFoundationModels": items_of_pages(DATA / "foundationmodels-us-east-1-page1.json",
                                                    DATA / "foundationmodels-us-east-1-page2.json"),
}


def sigv4_signature(method, path, headers: dict, body: bytes, signed: list[str], amz_date: str,
                    region: str, service: str) -> str:
    """SigV4 as the AWS documentation states it, written here independently of bedrock-meter."""
    canonical_headers = "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in signed)
    canonical = "\n".join([method, path, "", canonical_headers, ";".join(signed),
                           hashlib.sha256(body).hexdigest()])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + SECRET).encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class StandIn(http.server.BaseHTTPRequestHandler):
    calls: list = []
    throttled: set = set()

    def log_message(self, *args):
        pass

    def answer(self, status: int, doc: dict):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        auth = headers.get("authorization", "")
        fields = dict(p.strip().split("=", 1) for p in auth.split(" ", 1)[1].split(","))
        signed = fields["SignedHeaders"].split(";")
        want = sigv4_signature("POST", self.path, headers, body, signed, headers["x-amz-date"],
                               "us-east-1", "pricing")
        ok = (fields["Credential"] == f"{AKID}/{headers['x-amz-date'][:8]}/us-east-1/pricing/aws4_request"
              and fields["Signature"] == want
              and {"host", "x-amz-date", "x-amz-target", "content-type"} <= set(signed))
        req = json.loads(body)
        StandIn.calls.append({"signature_ok": ok, "target": headers.get("x-amz-target"), **req})
        if not ok:
            return self.answer(403, {"__type": "InvalidSignatureException", "message": "bad"})
        if headers.get("x-amz-target") != "AWSPriceListService.GetProducts":
            return self.answer(400, {"__type": "UnknownOperationException"})
        series = (req["ServiceCode"], req.get("NextToken", ""))
        if series not in StandIn.throttled:  # the first call of every page is throttled once
            StandIn.throttled.add(series)
            return self.answer(400, {"__type": "com.amazon.coral.availability#ThrottlingException",
                                     "message": "Rate exceeded"})
        items = CATALOGUE[req["ServiceCode"]]
        for f in req.get("Filters", []):
            items = [i for i in items
                     if i["product"]["attributes"].get(f["Field"]) == f["Value"]]
        start = int(req.get("NextToken") or 0)
        page = items[start:start + min(req.get("MaxResults", 100), PAGE)]
        doc = {"FormatVersion": "aws_v1", "PriceList": [json.dumps(i) for i in page]}
        if start + PAGE < len(items):
            doc["NextToken"] = str(start + PAGE)
        self.answer(200, doc)


class RatesFetch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="bm-fetch-"))
        cls.ca = make_ca(cls.tmp / "ca")
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cls.ca["cert"], cls.ca["key"])
        cls.server.socket = ctx.wrap_socket(cls.server.socket, server_side=True)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.endpoint = f"https://127.0.0.1:{cls.server.server_address[1]}/"

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()

    def setUp(self):
        StandIn.calls.clear()
        StandIn.throttled.clear()

    def fetch(self, *args: str, env_extra: dict | None = None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET,
                    "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(self.tmp)})
        env.update(env_extra or {})
        return subprocess.run([PROXY_BIN, "rates", "fetch", "--endpoint", self.endpoint,
                               "--ca-file", str(self.ca["ca"]), *args],
                              capture_output=True, text=True, timeout=120, env=env)

    def test_fetched_table_equals_the_imported_one(self):
        fetched, imported = self.tmp / "fetched.yaml", self.tmp / "imported.yaml"
        r = self.fetch("--out", str(fetched), "--regions", "us-east-1", "--verbose")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("throttled (400), retrying", r.stderr)
        self.assertTrue(all(c["signature_ok"] for c in StandIn.calls))
        self.assertTrue(all(c["Filters"] == [{"Type": "TERM_MATCH", "Field": "regionCode",
                                              "Value": "us-east-1"}] for c in StandIn.calls))
        pages = {s: sum(1 for c in StandIn.calls if c["ServiceCode"] == s) for s in CATALOGUE}
        # AmazonBedrock: 32 us-east-1 products, 4 pages; FoundationModels: 27, 3 pages; each
        # page's first call throttled once.
        self.assertEqual(pages, {"AmazonBedrock": 8, "AmazonBedrockFoundationModels": 6})
        offers = [str(DATA / f) for f in ("amazonbedrock-us-east-1.json",
                                          "foundationmodels-us-east-1-page1.json",
                                          "foundationmodels-us-east-1-page2.json")]
        imp = subprocess.run([PROXY_BIN, "rates", "import", *[x for o in offers for x in ("--offer", o)],
                              "--regions", "us-east-1", "--out", str(imported)],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(imp.returncode, 0, imp.stderr)
        diff = subprocess.run([PROXY_BIN, "rates", "diff", str(imported), str(fetched)],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual((diff.returncode, diff.stdout), (0, ""), diff.stderr)

    def test_errors_are_named_and_nothing_is_written(self):
        out = self.tmp / "never.yaml"
        bad_key = self.fetch("--out", str(out), env_extra={"AWS_SECRET_ACCESS_KEY": "wrong"})
        self.assertEqual(bad_key.returncode, 1)
        self.assertIn("HTTP 403 InvalidSignatureException", bad_key.stderr)
        self.assertNotIn("wrong", bad_key.stderr, "no secret in a message")
        untrusted = subprocess.run([PROXY_BIN, "rates", "fetch", "--endpoint", self.endpoint,
                                    "--out", str(out)], capture_output=True, text=True, timeout=60,
                                   env={**os.environ, "AWS_ACCESS_KEY_ID": AKID,
                                        "AWS_SECRET_ACCESS_KEY": SECRET})
        self.assertEqual(untrusted.returncode, 1)
        self.assertIn("TLS handshake", untrusted.stderr)
        no_creds = self.fetch("--out", str(out), env_extra={"AWS_ACCESS_KEY_ID": "",
                                                            "AWS_SECRET_ACCESS_KEY": ""})
        self.assertEqual(no_creds.returncode, 1)
        self.assertIn("AWS credentials", no_creds.stderr)
        plain = subprocess.run([PROXY_BIN, "rates", "fetch", "--endpoint", "http://127.0.0.1:9/",
                                "--out", str(out)], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "AWS_ACCESS_KEY_ID": AKID,
                                    "AWS_SECRET_ACCESS_KEY": SECRET})
        self.assertEqual(plain.returncode, 1)
        self.assertIn("--endpoint must be an https:// URL", plain.stderr)
        self.assertFalse(out.exists())


if __name__ == "__main__":
    unittest.main()
