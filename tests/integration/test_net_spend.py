"""Net spend under an EDP commitment, end to end: real boto3 traffic through the proxy to the
simulator with a `commitments` section (10% off AWS-billed models, Marketplace-billed Claude not
discounted). The net figures of `report --net`, `advise --net`, `/api/advice?basis=net` and
bedrock_net_spend_usd_total must equal the ledger's list spend less exactly that discount, and
the net counters must come back at the same values after a restart."""
from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
import unittest
import urllib.request
from datetime import datetime, timezone
from decimal import Decimal

from harness import PROXY_BIN, Proxy, Simulator, base_config, client, converse_messages

HAIKU45 = "anthropic.claude-haiku-4-5-20251001-v1:0"
NOVA_PRO = "amazon.nova-pro-v1:0"
PICO = Decimal(10**12)


def admin_port(proxy: Proxy) -> int:
    return json.loads((proxy.tmp / "ready.json").read_text())["admin_port"]


def scrape_sum(proxy: Proxy, family: str, label: str) -> Decimal:
    """The sum of a family's series having one label (`model="x"`) on the proxy's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port(proxy)}/metrics", timeout=10) as r:
        text = r.read().decode()
    total = Decimal(0)
    for line in text.splitlines():
        if line.startswith(family + "{") and label in line:
            total += Decimal(line.rsplit(" ", 1)[1])
    return total


class NetSpend(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Simulator()
        year = datetime.now(timezone.utc).year
        cls.cfg = base_config(
            cls.sim.url, admin={"enabled": True, "address": "127.0.0.1", "port": 0},
            advice={"refresh_interval": "1s"},
            commitments=[{"name": "edp", "start": f"{year - 1}-01-01", "end": f"{year + 2}-01-01",
                          "per_year_usd": "1000", "discount_percent": 10}])
        cls.proxy = Proxy(cls.cfg)
        c = client(cls.proxy.url)
        for _ in range(3):
            c.converse(modelId=NOVA_PRO, messages=converse_messages("SIM{input=2000,output=250}"))
        for _ in range(2):
            c.converse(modelId=HAIKU45, messages=converse_messages("SIM{input=1200,output=300}"))
        cls.proxy.wait_for_log(5, timeout=10)
        time.sleep(0.3)  # the ledger's commit window
        with sqlite3.connect(cls.proxy.ledger_path) as db:
            rows = db.execute("SELECT model_base, total_cost FROM requests").fetchall()
        cls.list = {m: sum(Decimal(c) for b, c in rows if b == m) / PICO for m in (NOVA_PRO, HAIKU45)}
        cls.net = {NOVA_PRO: cls.list[NOVA_PRO] * Decimal("0.9"), HAIKU45: cls.list[HAIKU45]}

    @classmethod
    def tearDownClass(cls):
        cls.proxy.__exit__(None, None, None)
        cls.sim.stop()

    def test_report_net_applies_the_discount_to_aws_billed_models_only(self):
        r = subprocess.run([PROXY_BIN, "report", "--config", str(self.proxy.config_path),
                            "--by", "model", "--net"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("net_usd", r.stdout.splitlines()[0])
        got = {}
        for line in r.stdout.splitlines()[1:-1]:
            cols = line.split()
            got[cols[0]] = (Decimal(cols[-2]), Decimal(cols[-1]))
        six = Decimal("0.000001")
        for m in (NOVA_PRO, HAIKU45):
            self.assertEqual(got[m][0], self.list[m].quantize(six))
            self.assertEqual(got[m][1], self.net[m].quantize(six), m)
        total = re.search(r"\$([0-9.]+) net", r.stdout.splitlines()[-1]).group(1)
        self.assertEqual(Decimal(total), sum(self.net.values()).quantize(six))
        no_cfg = subprocess.run([PROXY_BIN, "report", "--ledger", str(self.proxy.ledger_path),
                                 "--net"], capture_output=True, text=True, timeout=60)
        self.assertEqual(no_cfg.returncode, 2)
        self.assertIn("--net needs --config", no_cfg.stderr)

    def test_advise_and_the_api_answer_on_the_net_basis(self):
        r = subprocess.run([PROXY_BIN, "advise", "--config", str(self.proxy.config_path), "--net",
                            "--format", "json"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["basis"], "net")
        self.assertEqual(Decimal(doc["window"]["spend_usd"]).quantize(Decimal("0.01")),
                         sum(self.net.values()).quantize(Decimal("0.01")))
        nova = [b for b in doc["buying_mode"] if b["model"] == NOVA_PRO]
        self.assertTrue(nova)
        base = f"http://127.0.0.1:{admin_port(self.proxy)}/api/advice?since=1d"
        with urllib.request.urlopen(base + "&basis=net", timeout=30) as resp:
            api = json.loads(resp.read())
        with urllib.request.urlopen(base, timeout=30) as resp:
            listed = json.loads(resp.read())
        self.assertEqual(api["basis"], "net")
        self.assertEqual(listed["basis"], "list")
        self.assertEqual(Decimal(api["window"]["spend_usd"]).quantize(Decimal("0.01")),
                         sum(self.net.values()).quantize(Decimal("0.01")))
        self.assertEqual(Decimal(listed["window"]["spend_usd"]).quantize(Decimal("0.01")),
                         sum(self.list.values()).quantize(Decimal("0.01")))
        with self.assertRaises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(base + "&basis=gross", timeout=30)
        self.assertEqual(bad.exception.code, 400)

    def test_burn_down_gauges_count_the_current_contract_year(self):
        # Net AWS-billed spend plus the default 25% of Marketplace spend counts toward it.
        counted = self.net[NOVA_PRO] + self.list[HAIKU45] / 4
        label = 'commitment="edp"'
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = scrape_sum(self.proxy, "bedrock_commitment_counted_usd", label)
            if abs(float(got) - float(counted)) < 1e-9:
                break
            time.sleep(0.2)
        self.assertAlmostEqual(float(got), float(counted), places=9)
        self.assertEqual(scrape_sum(self.proxy, "bedrock_commitment_year_usd", label), 1000)
        self.assertGreaterEqual(scrape_sum(self.proxy, "bedrock_commitment_forecast_usd", label),
                                counted)
        year = datetime.now(timezone.utc).year
        self.assertEqual(
            scrape_sum(self.proxy, "bedrock_commitment_year_end_timestamp_seconds", label),
            int(datetime(year + 1, 1, 1, tzinfo=timezone.utc).timestamp()))

    def test_net_counters_follow_the_discount_and_survive_a_restart(self):
        for m in (NOVA_PRO, HAIKU45):
            self.assertAlmostEqual(float(scrape_sum(self.proxy, "bedrock_spend_usd_total", f'model="{m}"')),
                                   float(self.list[m]), places=9)
            self.assertAlmostEqual(float(scrape_sum(self.proxy, "bedrock_net_spend_usd_total", f'model="{m}"')),
                                   float(self.net[m]), places=9)
        # A second proxy on the same ledger restores list and net from it.
        cfg = {**self.cfg, "ledger": {"path": str(self.proxy.ledger_path), "flush_interval": "20ms"}}
        self.proxy.stop()
        with Proxy(cfg) as again:
            for m in (NOVA_PRO, HAIKU45):
                self.assertAlmostEqual(float(scrape_sum(again, "bedrock_net_spend_usd_total", f'model="{m}"')),
                                       float(self.net[m]), places=9)
        self.__class__.proxy = Proxy(cfg)  # the other tests of the class use a live proxy


if __name__ == "__main__":
    unittest.main(verbosity=2)
