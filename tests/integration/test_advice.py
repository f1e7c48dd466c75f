"""The FinOps advisor end to end: real boto3 traffic through the proxy to the simulator (a shared
system prompt across many requests, multi-turn chats, uncapped outputs, answers stopped by their
cap, a second model), then `bedrock-meter advise` and GET /api/advice read the ledger. Also
checks what the ledger recorded for it: the output cap, the stop reason, and keyed prompt
fingerprints that match where the prompts match (and are absent when switched off).
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

from harness import (CLIENT2_AKID, CLIENT2_SECRET, PROXY_BIN, Proxy, Simulator, base_config,
                     client)

SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"  # caches from 1,024 tokens, $3/M input
NOVA2 = "amazon.nova-2-lite-v1:0"  # has Provisioned Throughput prices in us-east-1
SYSTEM = "You are the search assistant. " + "Follow the house style guide. " * 300  # ~9 KB
SHARED = 12    # requests sharing SYSTEM, no output cap
CAPPED = 4     # requests whose answer runs into its cap
TURNS = 3      # turns of one multi-turn chat
SHORT = 100    # short uncapped answers, then one runaway: a p99 cap needs 100 answers to cut one
RUNAWAY = 3000  # output tokens of the runaway answer


def converse(c, text, model=SONNET, system=SYSTEM, history=(), max_tokens=None):
    kw = {}
    if max_tokens is not None:
        kw["inferenceConfig"] = {"maxTokens": max_tokens}
    messages = [*history, {"role": "user", "content": [{"text": text}]}]
    return c.converse(modelId=model, system=[{"text": system}] if system else [],
                      messages=messages, **kw), messages


def admin_port(proxy: Proxy) -> int:
    return json.loads((proxy.tmp / "ready.json").read_text())["admin_port"]


def api_advice(proxy: Proxy, query: str = "") -> dict:
    url = f"http://127.0.0.1:{admin_port(proxy)}/api/advice" + (f"?{query}" if query else "")
    with urllib.request.urlopen(url, timeout=60) as r:
        assert r.status == 200
        return json.loads(r.read())


def advise(proxy: Proxy, *args: str) -> dict:
    out = subprocess.run([PROXY_BIN, "advise", "--config", str(proxy.config_path), "--since", "1h",
                          "--format", "json", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def ledger_rows(proxy: Proxy) -> list[dict]:
    with sqlite3.connect(proxy.ledger_path) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM requests ORDER BY id")]


class Advisor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Simulator()
        cfg = base_config(cls.sim.url, admin={"enabled": True, "address": "127.0.0.1", "port": 0},
                          advice={"refresh_interval": "0s"})
        cls.proxy = Proxy(cfg)
        try:
            cls.send_traffic()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.proxy.__exit__(None, None, None)
        cls.sim.stop()

    @classmethod
    def send_traffic(cls):
        c = client(cls.proxy.url)
        for i in range(SHARED):
            converse(c, f"question {i} SIM{{input=3000,output=400}}")
        for i in range(CAPPED):
            converse(c, f"long answer {i} SIM{{input=3000,output=256}}", max_tokens=256)
        history = []
        for t in range(TURNS):
            resp, sent = converse(c, f"turn {t} SIM{{input={1500 + 500 * t},output=120}}",
                                  system="Chat helper.", history=history, max_tokens=1000)
            history = [*sent, resp["output"]["message"]]
        support = client(cls.proxy.url, akid=CLIENT2_AKID, secret=CLIENT2_SECRET)
        for i in range(5):
            converse(support, f"ticket {i} SIM{{input=800,output=90}}", model=NOVA2,
                     system="Support bot.", max_tokens=500)
        for i in range(SHORT):
            converse(c, f"short {i} SIM{{input=60,output=40}}", system=None)
        converse(c, f"runaway SIM{{input=60,output={RUNAWAY}}}", system=None)
        cls.total = SHARED + CAPPED + TURNS + 5 + SHORT + 1
        cls.proxy.wait_for_log(cls.total, timeout=10)
        # The ledger commits within its flush interval; advise reads the file.
        for _ in range(200):
            if len(ledger_rows(cls.proxy)) >= cls.total:
                break
            subprocess.run(["sleep", "0.05"])

    def test_the_ledger_keeps_caps_stop_reasons_and_matching_fingerprints(self):
        rows = ledger_rows(self.proxy)
        self.assertEqual(len(rows), self.total)
        self.assertTrue(all(r["has_traits"] == 1 for r in rows))
        shared, capped = rows[:SHARED], rows[SHARED:SHARED + CAPPED]
        chat = rows[SHARED + CAPPED:SHARED + CAPPED + TURNS]
        self.assertTrue(all(r["max_tokens"] is None for r in shared))
        self.assertTrue(all(r["max_tokens"] == 256 and r["stop_reason"] == "max_tokens"
                            for r in capped))
        self.assertTrue(all(r["stop_reason"] == "end_turn" for r in shared))
        hashes = {r["system_prefix_hash"] for r in shared + capped}
        self.assertEqual(len(hashes), 1, "one system prompt, one fingerprint")
        self.assertNotEqual(hashes.pop(), 0)
        self.assertGreater(shared[0]["system_prefix_bytes"], len(SYSTEM))
        self.assertEqual(len({r["prompt_hash"] for r in shared}), SHARED, "the questions differ")
        # Each chat turn's earlier conversation is the previous turn's whole prompt.
        self.assertEqual(chat[0]["conversation_prefix_hash"], 0)
        self.assertEqual(chat[1]["conversation_prefix_hash"], chat[0]["prompt_hash"])
        self.assertEqual(chat[2]["conversation_prefix_hash"], chat[1]["prompt_hash"])
        self.assertNotIn(SYSTEM[:40].encode(), self.proxy.ledger_path.read_bytes(),
                         "no prompt text in the ledger")

    def test_advise_finds_the_caching_and_cap_levers_and_the_buying_mode(self):
        doc = advise(self.proxy)
        self.assertEqual(doc["window"]["requests"], self.total)
        spend = sum(Decimal(r["total_cost"]) for r in ledger_rows(self.proxy)) / Decimal(10**12)
        self.assertEqual(Decimal(doc["window"]["spend_usd"]), spend.quantize(Decimal("0.000001")))
        levers = {(l["lever"], l["team"], l["model"]): l for l in doc["levers"]}
        caching = levers[("prompt_caching", "search", SONNET)]
        self.assertGreater(Decimal(caching["savings_usd"]), 0)
        self.assertGreaterEqual(caching["evidence"]["candidate_requests"], SHARED + CAPPED)
        self.assertGreater(caching["evidence"]["simulated_reads"], 0)
        cap = levers[("output_cap", "search", SONNET)]
        self.assertEqual(cap["evidence"]["uncapped_requests"], SHARED + SHORT + 1)
        self.assertEqual(cap["evidence"]["cap_hits"], CAPPED)
        # The p99 cap is the largest ordinary answer (400 tokens); only the runaway is cut.
        self.assertEqual(cap["evidence"]["output_p99"], 400)
        self.assertEqual(cap["evidence"]["cap_p99"]["answers_cut"], 1)
        self.assertEqual(Decimal(cap["savings_usd"]), Decimal(cap["evidence"]["cap_p99"]["savings_usd"]))
        self.assertGreater(Decimal(cap["savings_usd"]), 0)
        self.assertTrue(all(Decimal(l["monthly_savings_usd"]) >= Decimal(l["savings_usd"])
                            for l in doc["levers"]), "a one-hour window scales up to a month")
        nova = [b for b in doc["buying_mode"] if b["model"] == NOVA2 and b["region"] == "us-east-1"]
        self.assertEqual(len(nova), 1)
        modes = {(o["mode"], o["term"]): o for o in nova[0]["options"]}
        self.assertIn(("on_demand", "none"), modes)
        pt = modes[("provisioned", "no_commit")]
        self.assertIsNone(pt["units"], "a model unit's throughput is not published")
        self.assertIn("on demand", nova[0]["recommendation"].lower())
        self.assertIn("no_commit", nova[0]["break_even"]["tokens_per_minute"])

    def test_filters_and_the_admin_endpoint_agree_with_the_command(self):
        support = advise(self.proxy, "--team", "support")
        self.assertEqual(support["window"]["requests"], 5)
        self.assertTrue(all(l["team"] == "support" for l in support["levers"]))
        api = api_advice(self.proxy, "since=1h&team=support")
        self.assertEqual(api["window"]["requests"], 5)
        self.assertEqual(api["window"]["spend_usd"], support["window"]["spend_usd"])
        self.assertEqual([l["lever"] for l in api["levers"]],
                         [l["lever"] for l in support["levers"]])
        whole = api_advice(self.proxy)
        self.assertEqual(whole["window"]["requests"], self.total)
        with self.assertRaises(urllib.error.HTTPError) as bad:
            api_advice(self.proxy, "since=yesterday-ish")
        self.assertEqual(bad.exception.code, 400)

    def test_markdown_and_text_name_the_recommendation(self):
        for fmt in ("text", "markdown"):
            out = subprocess.run([PROXY_BIN, "advise", "--config", str(self.proxy.config_path),
                                  "--since", "1h", "--format", fmt], capture_output=True, text=True,
                                 timeout=120)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("prompt_caching", out.stdout)
            self.assertIn(NOVA2, out.stdout)


class FingerprintsOff(unittest.TestCase):
    def test_no_fingerprints_and_no_key_file_when_switched_off(self):
        tmp = Path(tempfile.mkdtemp(prefix="bm-advice-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        ledger = {"path": str(tmp / "off.db"), "flush_interval": "20ms",
                  "prompt_fingerprints": False}
        with Simulator() as sim, Proxy(base_config(sim.url, ledger=ledger)) as proxy:
            converse(client(proxy.url), "hello SIM{input=10,output=5}", max_tokens=64)
            proxy.wait_for_log(1)
            proxy.stop()
            row = ledger_rows(proxy)[0]
            self.assertEqual(row["max_tokens"], 64, "the cap is recorded anyway")
            self.assertEqual((row["system_prefix_hash"], row["prompt_hash"]), (0, 0))
            self.assertFalse((tmp / "off.db.key").exists())


if __name__ == "__main__":
    unittest.main()
