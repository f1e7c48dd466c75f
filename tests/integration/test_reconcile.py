"""`bedrock-meter reconcile` and `bedrock-meter commitment` end to end: real boto3 traffic through the proxy to the simulator,
then a bill written the way AWS writes it (a CUR 2.0 export, gzip-compressed, and a legacy CUR
export in plain CSV, the Claude lines in the Marketplace form) from what the simulator was asked
to bill, not from the ledger. The bill also holds a day of traffic that never went through the
proxy and one unit price the rate table does not know; reconcile must find exactly those.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import tempfile
import time
import unittest
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from harness import PROXY_BIN, Proxy, Simulator, base_config, client, converse_messages

HAIKU45 = "anthropic.claude-haiku-4-5-20251001-v1:0"
NOVA_PRO = "amazon.nova-pro-v1:0"
M = Decimal(1_000_000)
# The shipped table's prices in us-east-1 (USD per 1M tokens), which the bill charges, except
# for NOVA_OUT_BILLED: a price change the table has not caught up with.
HAIKU_RATES = {"input": Decimal("1.00"), "output": Decimal("5.00"), "cache_read": Decimal("0.10"),
               "cache_write": Decimal("1.25")}
NOVA_RATES = {"input": Decimal("0.80"), "output": Decimal("3.20")}
NOVA_OUT_BILLED = Decimal("3.50")

CUR2_COLUMNS = ["identity_line_item_id", "bill_billing_entity", "line_item_line_item_type",
                "line_item_product_code", "line_item_usage_type", "line_item_operation",
                "line_item_usage_start_date", "line_item_usage_amount", "pricing_unit",
                "line_item_line_item_description", "line_item_unblended_rate",
                "line_item_unblended_cost", "product_region_code", "product"]
LEGACY_COLUMNS = ["identity/LineItemId", "bill/BillingEntity", "lineItem/LineItemType",
                  "lineItem/ProductCode", "lineItem/UsageType", "lineItem/UsageStartDate",
                  "lineItem/UsageAmount", "pricing/unit", "lineItem/LineItemDescription",
                  "lineItem/UnblendedRate", "lineItem/UnblendedCost", "product/ProductName"]

HAIKU_MP = {"input": ("InputTokenCount", "Million Input Tokens"),
            "output": ("OutputTokenCount", "Million Response Tokens"),
            "cache_read": ("CacheReadInputTokenCount", "Million Cache Read Input Tokens"),
            "cache_write": ("CacheWriteInputTokenCount", "Million Cache Write Input Tokens")}


def nova_rows(day: str, tokens: dict, out_rate: Decimal) -> list[dict]:
    """CUR 2.0 lines of Nova Pro for one day: unit 1K tokens, amounts in thousands."""
    rows = []
    for cls, meter in (("input", "input-tokens"), ("output", "output-tokens")):
        rate = out_rate if cls == "output" else NOVA_RATES["input"]
        per_1k = rate / 1000
        amount = Decimal(tokens[cls]) / 1000
        rows.append({"bill_billing_entity": "AWS", "line_item_line_item_type": "Usage",
                     "line_item_product_code": "AmazonBedrock",
                     "line_item_usage_type": f"USE1-NovaPro-{meter}",
                     "line_item_operation": "InvokeModelInference",
                     "line_item_usage_start_date": f"{day}T00:00:00Z",
                     "line_item_usage_amount": f"{amount:f}", "pricing_unit": "1K tokens",
                     "line_item_line_item_description": f"${per_1k:f} per 1K {cls} tokens",
                     "line_item_unblended_rate": f"{per_1k:f}",
                     "line_item_unblended_cost": f"{amount * per_1k:.10f}",
                     "product_region_code": "us-east-1",
                     "product": json.dumps({"product_name": "Amazon Bedrock"})})
    return rows


def haiku_rows(day: str, scope: str, tokens: dict) -> list[dict]:
    """Legacy CUR lines of Claude Haiku 4.5 in the Marketplace form: unit Units, millions."""
    rows = []
    suffix = "_Global" if scope == "global" else ""
    region_word = "Global" if scope == "global" else "Regional"
    for cls, (dim, words) in HAIKU_MP.items():
        if tokens[cls] == 0:
            continue
        amount = Decimal(tokens[cls]) / M
        rate = HAIKU_RATES[cls]
        rows.append({"bill/BillingEntity": "AWS Marketplace", "lineItem/LineItemType": "Usage",
                     "lineItem/ProductCode": "prod-4pmewlybdftbs",
                     "lineItem/UsageType": f"USE1-MP:USE1_{dim}{suffix}-Units",
                     "lineItem/UsageStartDate": f"{day}T00:00:00Z",
                     "lineItem/UsageAmount": f"{amount:f}", "pricing/unit": "Units",
                     "lineItem/LineItemDescription":
                         f"AWS Marketplace software usage|us-east-1|{words} {region_word}",
                     "lineItem/UnblendedRate": f"{rate:f}",
                     "lineItem/UnblendedCost": f"{amount * rate:.10f}",
                     "product/ProductName": "Claude Haiku 4.5 (Amazon Bedrock Edition)"})
    return rows


def write_csv(path: Path, columns: list[str], rows: list[dict], gz: bool):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\r\n")
    w.writeheader()
    for i, r in enumerate(rows):
        w.writerow({columns[0]: f"line-{i}", **r})
    data = buf.getvalue().encode()
    path.write_bytes(gzip.compress(data) if gz else data)


def reconcile(proxy: Proxy, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROXY_BIN, "reconcile", "--config", str(proxy.config_path), *args],
                          capture_output=True, text=True, timeout=120)


class Reconcile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="bm-reconcile-"))
        cls.sim = Simulator()
        cls.proxy = Proxy(base_config(cls.sim.url))
        # What the simulator is asked to bill, per group and token class.
        cls.billed = defaultdict(lambda: defaultdict(int))
        c = client(cls.proxy.url)
        for _ in range(3):
            c.converse(modelId=HAIKU45, messages=converse_messages(
                "SIM{input=1200,output=300,cache_read=800,cache_write=100}"))
            for k, v in (("input", 1200), ("output", 300), ("cache_read", 800), ("cache_write", 100)):
                cls.billed["haiku-regional"][k] += v
        for _ in range(2):
            c.converse(modelId="global." + HAIKU45, messages=converse_messages(
                "SIM{input=500,output=50}"))
            cls.billed["haiku-global"]["input"] += 500
            cls.billed["haiku-global"]["output"] += 50
        for _ in range(4):
            c.converse(modelId=NOVA_PRO, messages=converse_messages("SIM{input=2000,output=250}"))
            cls.billed["nova"]["input"] += 2000
            cls.billed["nova"]["output"] += 250
        cls.proxy.wait_for_log(9, timeout=10)
        time.sleep(0.3)  # the ledger's commit window (flush_interval 20 ms)
        cls.today = datetime.now(timezone.utc).date()
        cls.yesterday = cls.today - timedelta(days=1)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.__exit__(None, None, None)
        cls.sim.stop()

    def write_bill(self, stale: bool, bypass: bool) -> list[str]:
        today = self.today.isoformat()
        nova = nova_rows(today, self.billed["nova"], NOVA_OUT_BILLED if stale else NOVA_RATES["output"])
        if bypass:  # a day of calls that went straight to Bedrock
            nova += nova_rows(self.yesterday.isoformat(), {"input": 7000, "output": 900},
                              NOVA_RATES["output"])
        haiku = haiku_rows(today, "regional", self.billed["haiku-regional"]) + \
            haiku_rows(today, "global", {"cache_read": 0, "cache_write": 0,
                                          **self.billed["haiku-global"]})
        cur2 = self.tmp / f"cur2-{stale}-{bypass}.csv.gz"
        legacy = self.tmp / f"legacy-{stale}-{bypass}.csv"
        write_csv(cur2, CUR2_COLUMNS, nova, gz=True)
        write_csv(legacy, LEGACY_COLUMNS, haiku, gz=False)
        return ["--cur", str(cur2), "--cur", str(legacy)]

    def test_a_bill_that_agrees_reconciles_exit_0(self):
        r = reconcile(self.proxy, *self.write_bill(stale=False, bypass=False), "--format", "json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        self.assertTrue(doc["within_tolerance"])
        self.assertEqual([row["status"] for row in doc["rows"]], ["match"] * 3)
        self.assertEqual(doc["ledger"], doc["bill"])
        self.assertEqual(doc["stale_rates"], [])
        # Tokens of each class, straight from what the simulator billed.
        self.assertEqual(doc["bill"]["input"], 3 * 1200 + 2 * 500 + 4 * 2000)
        self.assertEqual(doc["bill"]["cache_read"], 3 * 800)
        self.assertEqual(doc["bill"]["cache_write_5m"], 3 * 100)

    def test_bypass_and_a_stale_price_are_found_exactly(self):
        r = reconcile(self.proxy, *self.write_bill(stale=True, bypass=True), "--format", "json")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        status = {(row["day"], row["model"], row["scope"]): row["status"] for row in doc["rows"]}
        today, yesterday = self.today.isoformat(), self.yesterday.isoformat()
        self.assertEqual(status, {
            (yesterday, NOVA_PRO, "regional"): "bill_only",  # never through the proxy
            (today, NOVA_PRO, "regional"): "differs",        # same tokens, dearer output
            (today, HAIKU45, "regional"): "match",
            (today, HAIKU45, "global"): "match",
        })
        nova_today = next(row for row in doc["rows"]
                          if row["day"] == today and row["model"] == NOVA_PRO)
        self.assertEqual(nova_today["ledger"]["output"], nova_today["bill"]["output"])
        extra = Decimal(self.billed["nova"]["output"]) * (NOVA_OUT_BILLED - NOVA_RATES["output"]) / M
        self.assertEqual(Decimal(nova_today["bill"]["cost_usd"]) - Decimal(nova_today["ledger"]["cost_usd"]),
                         extra)
        self.assertEqual(len(doc["stale_rates"]), 1)
        stale = doc["stale_rates"][0]
        self.assertEqual((stale["model"], stale["token_class"], stale["billed_per_million"],
                          stale["table_per_million"]), (NOVA_PRO, "output", "3.50", "3.20"))
        self.assertRegex(stale["table_entry"], r"bedrock\.yaml:\d+")

    def test_text_report_and_a_loose_tolerance(self):
        args = self.write_bill(stale=True, bypass=False)
        r = reconcile(self.proxy, *args)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"differs  {self.today.isoformat()} us-east-1 {NOVA_PRO} regional", r.stdout)
        self.assertIn("stale rate  us-east-1 amazon.nova-pro-v1:0 regional output: bill 3.50 per 1M, "
                      "table 3.20", r.stdout)
        # The stale price moves Nova's day by less than 5% of its dollars.
        self.assertEqual(reconcile(self.proxy, *args, "--tolerance", "5%").returncode, 0)

    def test_commitment_counts_the_ledgers_spend_net_of_the_discount(self):
        import sqlite3
        with sqlite3.connect(self.proxy.ledger_path) as db:
            rows = db.execute("SELECT model_base, total_cost FROM requests").fetchall()
        pico = Decimal(10**12)
        aws = sum(Decimal(c) for m, c in rows if not m.startswith("anthropic.")) / pico
        mp = sum(Decimal(c) for m, c in rows if m.startswith("anthropic.")) / pico
        year = self.today.year
        cfg = json.loads(self.proxy.config_path.read_text())
        cfg["commitments"] = [{"name": "edp", "start": f"{year}-01-01", "end": f"{year + 2}-01-01",
                               "per_year_usd": "1000", "discount_percent": 10,
                               "marketplace_counts_percent": 50}]
        path = self.tmp / "commitment.yaml"
        path.write_text(json.dumps(cfg))
        r = subprocess.run([PROXY_BIN, "commitment", "--config", str(path), "--format", "json"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        [doc] = json.loads(r.stdout)
        [y] = doc["years"]
        cents = Decimal("0.01")
        self.assertEqual(Decimal(y["list_aws_usd"]), aws.quantize(cents))
        self.assertEqual(Decimal(y["list_marketplace_usd"]), mp.quantize(cents))
        self.assertEqual(Decimal(y["net_aws_usd"]), (aws * Decimal("0.9")).quantize(cents))
        self.assertEqual(Decimal(y["counted_bedrock_usd"]),
                         (aws * Decimal("0.9") + mp / 2).quantize(cents))
        self.assertEqual(y["commitment_usd"], "1000.00")
        self.assertGreater(Decimal(y["shortfall_usd"]), 0)
        self.assertEqual({m["model"] for m in doc["models"]}, {HAIKU45, NOVA_PRO})
        plan = subprocess.run([PROXY_BIN, "commitment", "--config", str(path), "--plan",
                               "--growth", "0%", "--years", "2", "--discount", "10%",
                               "--format", "json"], capture_output=True, text=True, timeout=60)
        self.assertEqual(plan.returncode, 0, plan.stderr)
        p = json.loads(plan.stdout)
        # Flat growth: each year is the last 30 days x 365/30.
        expected = ((aws + mp) * Decimal(365) / Decimal(30)).quantize(cents)
        self.assertAlmostEqual(float(Decimal(p["years"][0]["list_usd"])), float(expected), delta=0.02)
        self.assertEqual(p["years"][0]["list_usd"], p["years"][1]["list_usd"])
        bad = subprocess.run([PROXY_BIN, "commitment", "--config", str(self.proxy.config_path)],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("no commitments section", bad.stderr)

    def test_bad_input_names_the_file_and_the_column(self):
        offer = Path(__file__).resolve().parents[1] / "data/price_list/amazonbedrock-us-east-1.json"
        r = reconcile(self.proxy, "--cur", str(offer))
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"{offer}: not a CUR file", r.stderr)
        partial = self.tmp / "partial.csv"
        partial.write_text("line_item_usage_type,line_item_product_code\nUSE1-NovaPro-input-tokens,AmazonBedrock\n")
        r = reconcile(self.proxy, "--cur", str(partial))
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"{partial}: missing column line_item_usage_amount (legacy CUR: lineItem/UsageAmount)",
                      r.stderr)
        self.assertEqual(reconcile(self.proxy, "--cur", str(partial), "--tolerance", "lots").returncode, 2)
        self.assertEqual(reconcile(self.proxy, "--cur", "/nonexistent.csv").returncode, 2)


if __name__ == "__main__":
    unittest.main()
