"""The spend console's JSON endpoints on the admin listener, against the live proxy: the rate
table as the proxy prices with it (GET /api/rates), a quote by the same pricer (GET /api/quote)
that equals what a real boto3 request through the proxy was charged, and the ledger's spend by
team, app, model and day, list and net of a commitment (GET /api/spend)."""
from __future__ import annotations

import json
import os
import sqlite3
import time
import subprocess
import unittest
import urllib.error
import urllib.parse
import urllib.request
from decimal import ROUND_HALF_UP, Decimal

from harness import (CLIENT2_AKID, CLIENT2_SECRET, NOVA, PROXY_BIN, Proxy, Simulator, base_config,
                     client, converse_messages)

TOKEN = "console-admin-token-for-tests"


def admin_port(proxy: Proxy) -> int:
    return json.loads((proxy.tmp / "ready.json").read_text())["admin_port"]


def get(proxy: Proxy, path: str, token: str | None = TOKEN) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{admin_port(proxy)}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if body.startswith(b"{") else {}


class ConsoleApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Simulator()
        year = time.gmtime().tm_year
        cfg = base_config(cls.sim.url, admin={"enabled": True, "address": "127.0.0.1", "port": 0,
                                              "token_env": "BM_ADMIN_TOKEN"},
                          commitments=[{"name": "edp", "start": f"{year}-01-01",
                                        "end": f"{year + 1}-01-01", "per_year_usd": "1000",
                                        "discount_percent": 10}])
        cls.proxy = Proxy(cfg, env={"BM_ADMIN_TOKEN": TOKEN})

    @classmethod
    def tearDownClass(cls):
        cls.proxy.__exit__(None, None, None)
        cls.sim.stop()

    def test_the_rate_table_as_the_proxy_prices_with_it(self):
        status, doc = get(self.proxy, "/api/rates?q=NOVA-LITE")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["version"], "2026-07-24.1")
        self.assertTrue(doc["source"].endswith("bedrock.yaml"))
        self.assertGreater(doc["total_entries"], len(doc["entries"]))
        models = {e["model"] for e in doc["entries"]}
        self.assertIn(NOVA, models, "the search is case-insensitive")
        self.assertTrue(all("nova-lite" in e["model"] or "nova-lite" in e["entry"].lower()
                            for e in doc["entries"]))
        first = next(e for e in doc["entries"] if e["model"] == NOVA and e["tier"] == "standard"
                     and not e["batch"])
        self.assertEqual((first["input"], first["output"]), ("0.06", "0.24"))
        self.assertRegex(first["entry"], r"bedrock\.yaml:\d+$")
        _, everything = get(self.proxy, "/api/rates")
        self.assertEqual(len(everything["entries"]), everything["total_entries"])

    def test_a_quote_equals_what_a_real_request_was_charged(self):
        c = client(self.proxy.url)
        c.converse(modelId=NOVA, messages=converse_messages("SIM{input=1234,output=567}"))
        [line] = [l for l in self.proxy.wait_for_log(1) if l.get("operation") == "Converse"][-1:]
        query = urllib.parse.urlencode({"model": NOVA, "region": "us-east-1", "input": 1234,
                                        "output": 567})
        status, q = get(self.proxy, "/api/quote?" + query)
        self.assertEqual(status, 200, q)
        self.assertTrue(q["priced"])
        self.assertEqual(Decimal(q["total_usd"]), Decimal(line["cost_usd"]))
        # 1234 x 0.06 + 567 x 0.24 per million
        self.assertEqual(Decimal(q["total_usd"]), Decimal("0.00021012"))
        self.assertRegex(q["entry"], r"bedrock\.yaml:\d+$")
        # The command line quotes the same from the same table.
        cli = subprocess.run([PROXY_BIN, "price", "--config", str(self.proxy.config_path),
                              "--model", NOVA, "--region", "us-east-1", "--input", "1234",
                              "--output", "567"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "BM_ADMIN_TOKEN": TOKEN})
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertIn("total:        $0.000210120", cli.stdout)

    def test_unpriced_and_malformed_quotes(self):
        status, q = get(self.proxy, "/api/quote?model=acme.nothing-v1%3A0&input=1&output=1")
        self.assertEqual(status, 200)
        self.assertFalse(q["priced"])
        self.assertIsNone(q["total_usd"])
        self.assertTrue(q["note"])
        for query, named in (("input=1", "model"), (f"model={NOVA}&input=-3", "input"),
                             (f"model={NOVA}&tier=gold", "tier"),
                             (f"model={NOVA}&latency=fast", "latency"),
                             (f"model={NOVA}&at=yesterday", "at")):
            status, doc = get(self.proxy, "/api/quote?" + query)
            self.assertEqual(status, 400, query)
            self.assertTrue(doc["message"].startswith(named + ":"), doc)
        bad = subprocess.run([PROXY_BIN, "price", "--config", str(self.proxy.config_path),
                              "--model", NOVA, "--cache-read", "many"],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "BM_ADMIN_TOKEN": TOKEN})
        self.assertEqual(bad.returncode, 2)
        self.assertIn("price: --cache-read: a whole number of tokens", bad.stderr)

    def ledger(self) -> list[sqlite3.Row]:
        with sqlite3.connect(self.proxy.ledger_path) as db:
            db.row_factory = sqlite3.Row
            return db.execute("SELECT * FROM requests").fetchall()

    def test_spend_by_team_app_model_and_day_equals_the_ledger(self):
        before = len(self.ledger())
        for akid, secret, n in ((None, None, 3), (CLIENT2_AKID, CLIENT2_SECRET, 2)):
            c = client(self.proxy.url, **({"akid": akid, "secret": secret} if akid else {}))
            for i in range(n):
                c.converse(modelId=NOVA, messages=converse_messages(
                    f"SIM{{input={1000 * (i + 1)},output={100 * (i + 1)}}}"))
        deadline = time.monotonic() + 10
        while len(self.ledger()) < before + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = self.ledger()
        self.assertEqual(len(rows), before + 5)

        def usd(pico: int) -> str:
            return str((Decimal(pico) / Decimal(10**12)).quantize(Decimal("1e-6"), ROUND_HALF_UP))

        def expected(key: str, where=lambda r: True) -> dict:
            out = {}
            for r in rows:
                if where(r):
                    g = out.setdefault(r[key], {"requests": 0, "cost": 0, "input": 0})
                    g["requests"] += 1
                    g["cost"] += r["total_cost"]
                    g["input"] += r["input_tokens"]
            return out

        status, doc = get(self.proxy, "/api/spend?since=1d&by=team")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["by"], "team")
        want = expected("team")
        self.assertEqual({r["key"]: (r["requests"], r["cost_usd"], r["input_tokens"])
                          for r in doc["rows"]},
                         {k: (v["requests"], usd(v["cost"]), v["input"]) for k, v in want.items()})
        self.assertEqual(doc["total"]["requests"], len(rows))
        self.assertEqual(doc["total"]["cost_usd"], usd(sum(r["total_cost"] for r in rows)))
        # Nova Lite is first-party Bedrock: the 10% EDP discount applies to every row (the net is
        # computed from exact picodollars, so it is within rounding of 0.9 x the rounded list).
        for r in doc["rows"] + [doc["total"]]:
            self.assertLessEqual(abs(Decimal(r["net_usd"]) - Decimal(r["cost_usd"]) * Decimal("0.9")),
                                 Decimal("0.000001"), r)
            self.assertLess(Decimal(r["net_usd"]), Decimal(r["cost_usd"]))
        costs = [Decimal(r["cost_usd"]) for r in doc["rows"]]
        self.assertEqual(costs, sorted(costs, reverse=True), "most expensive first")
        # A filter narrows to one team's rows, grouped another way.
        status, support = get(self.proxy, "/api/spend?since=1d&by=app&team=support")
        self.assertEqual(status, 200, support)
        want = expected("app", lambda r: r["team"] == "support")
        self.assertEqual([(r["key"], r["requests"], r["cost_usd"]) for r in support["rows"]],
                         [(k, v["requests"], usd(v["cost"])) for k, v in want.items()])
        self.assertEqual(support["total"]["requests"],
                         sum(1 for r in rows if r["team"] == "support"))
        _, by_day = get(self.proxy, "/api/spend?since=2d&by=day")
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertIn(today, [r["key"] for r in by_day["rows"]])
        _, nothing = get(self.proxy, "/api/spend?since=1d&model=acme.none-v1")
        self.assertEqual((nothing["total"]["requests"], nothing["rows"]), (0, []))
        # The command line agrees.
        rep = subprocess.run([PROXY_BIN, "report", "--config", str(self.proxy.config_path),
                              "--since", "1d", "--by", "team", "--net"], capture_output=True,
                             text=True, timeout=60, env={**os.environ, "BM_ADMIN_TOKEN": TOKEN})
        self.assertEqual(rep.returncode, 0, rep.stderr)
        self.assertIn(f"${doc['total']['cost_usd']}, ${doc['total']['net_usd']} net", rep.stdout)
        for query, named in (("by=region", "by"), ("since=soon", "since"),
                             ("since=1d&until=2d", "since")):
            status, bad = get(self.proxy, "/api/spend?" + query)
            self.assertEqual(status, 400, query)
            self.assertTrue(bad["message"].startswith(named), bad)

    def test_requests_are_filtered_paged_and_shown_whole(self):
        from botocore.exceptions import ClientError
        before = len(self.ledger())
        search, support = client(self.proxy.url), client(self.proxy.url, akid=CLIENT2_AKID,
                                                         secret=CLIENT2_SECRET)
        for i in range(5):
            search.converse(modelId=NOVA, messages=converse_messages(
                f"SIM{{input={500 * (i + 1)},output={50 * (5 - i)}}}"))
        support.converse(modelId=NOVA, messages=converse_messages("SIM{input=10,output=10}"))
        hostile = "<img src=x onerror=alert(1)>"
        try:  # the simulator may answer it; Bedrock would refuse it: either way it is a row
            support.converse(modelId=hostile, messages=converse_messages("hi"))
        except ClientError:
            pass
        deadline = time.monotonic() + 10
        while len(self.ledger()) < before + 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = self.ledger()
        self.assertEqual(len(rows), before + 7)
        newest_first = sorted(rows, key=lambda r: (r["time_ms"], r["id"]), reverse=True)

        def page_through(query: str, limit: int) -> list[dict]:
            out, cursor = [], None
            for _ in range(100):
                q = f"{query}&limit={limit}" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor
                                                 else "")
                status, doc = get(self.proxy, "/api/requests?" + q)
                self.assertEqual(status, 200, doc)
                self.assertLessEqual(len(doc["rows"]), limit)
                out += doc["rows"]
                cursor = doc["next_cursor"]
                if cursor is None:
                    return out
            self.fail("paging never ended")

        # Every search row, two at a time, newest first, none twice, none missed.
        got = page_through("since=1d&team=search", 2)
        self.assertEqual([r["request_id"] for r in got],
                         [r["request_id"] for r in newest_first if r["team"] == "search"])
        # Costliest first across pages.
        by_cost = page_through("since=1d&team=search&order=cost", 3)
        costs = [Decimal(r["cost_usd"]) for r in by_cost]
        self.assertEqual(costs, sorted(costs, reverse=True))
        self.assertEqual(len(by_cost), len(got))
        # Filters narrow to exactly the right rows.
        status, doc = get(self.proxy, "/api/requests?since=1d&team=support")
        self.assertEqual({r["request_id"] for r in doc["rows"]},
                         {r["request_id"] for r in rows if r["team"] == "support"})
        threshold = Decimal("0.0002")
        status, doc = get(self.proxy, f"/api/requests?since=1d&min_cost={threshold}")
        self.assertEqual({r["request_id"] for r in doc["rows"]},
                         {r["request_id"] for r in rows
                          if Decimal(r["total_cost"]) / Decimal(10**12) >= threshold})
        self.assertTrue(doc["rows"])
        # A client's model id comes back as the exact text it sent, with its refusal.
        status, doc = get(self.proxy, "/api/requests?since=1d&model=" +
                          urllib.parse.quote(hostile))
        [row] = doc["rows"]
        self.assertEqual(row["model_requested"], hostile)
        _, unpriced = get(self.proxy, "/api/requests?since=1d&unpriced=1&limit=500")
        self.assertEqual({r["request_id"] for r in unpriced["rows"]},
                         {r["request_id"] for r in rows if not r["priced"]})
        self.assertTrue(all(not r["priced"] for r in unpriced["rows"]))
        _, by_status = get(self.proxy, f"/api/requests?since=1d&status={row['status']}")
        self.assertIn(row["request_id"], [r["request_id"] for r in by_status["rows"]])
        # One request, whole: every field the ledger keeps, exact costs.
        one = newest_first[1]
        status, doc = get(self.proxy, f"/api/request?id={one['request_id']}&at={one['time_ms']}")
        self.assertEqual(status, 200, doc)
        [full] = doc["rows"]
        self.assertEqual((full["request_id"], full["team"], full["input_tokens"],
                          full["output_tokens"], full["operation"]),
                         (one["request_id"], one["team"], one["input_tokens"],
                          one["output_tokens"], one["operation"]))
        self.assertEqual(Decimal(full["cost_usd"]), Decimal(one["total_cost"]) / Decimal(10**12))
        self.assertEqual(get(self.proxy, f"/api/request?id={one['request_id']}")[1]["rows"],
                         doc["rows"], "found without a time too")
        self.assertEqual(get(self.proxy, "/api/request?id=no-such-request")[0], 404)
        for query, named in (("cursor=garbage", "cursor"), ("order=cheapest", "order"),
                             ("limit=0", "limit"), ("min_cost=-1", "min_cost"),
                             ("status=42", "status"), ("unpriced=yes", "unpriced")):
            status, bad = get(self.proxy, "/api/requests?" + query)
            self.assertEqual(status, 400, query)
            self.assertTrue(bad["message"].startswith(named), bad)

    def test_the_admin_token_guards_every_console_endpoint(self):
        for path in ("/api/rates", "/api/quote?model=x", "/api/spend", "/api/requests",
                     "/api/request?id=x"):
            status, _ = get(self.proxy, path, token=None)
            self.assertEqual(status, 401, path)
            status, _ = get(self.proxy, path, token="wrong")
            self.assertEqual(status, 401, path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
