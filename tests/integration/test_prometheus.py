"""End to end with a real Prometheus (Debian's package): it scrapes the proxy's admin listener
while boto3 traffic flows through the proxy to the simulator, with the shipped recording and
alerting rules loaded. Every PromQL expression of every dashboard panel and every rule is sent
to Prometheus's HTTP API: each must parse and evaluate, panels and recording rules must return
data, and every series an alert watches must exist. The spend Prometheus holds must equal the
ledger's total, and after a proxy restart the counters continue from where they were."""
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request
from decimal import Decimal
from pathlib import Path

from harness import ROOT, Proxy, Simulator, base_config, client, converse_messages
from test_metering import HAIKU, LLAMA70, NOVA_PRO, ledger_rows

sys.path.insert(0, str(ROOT / "tests" / "dashboards"))
from exprs import all_expressions  # noqa: E402

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
# Budgets arrive with the budgets issue: until a budget is configured their series cannot exist.
NEEDS_BUDGETS = re.compile(r"budget")
# Series only a `ledger.store: postgres` replica exports; test_fleet.py checks them against a real
# PostgreSQL server.
FLEET_ONLY = {"bedrock_ledger_postgres_up", "bedrock_ledger_replay_lag_seconds",
              "bedrock_ledger_spool_rows", "bedrock_ledger_spool_max_rows"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusServer:
    def __init__(self, admin_port: int):
        self.tmp = Path(tempfile.mkdtemp(prefix="bm-prom-"))
        rules = self.tmp / "rules"
        rules.mkdir()
        # The shipped rules evaluate every 1-2 minutes; the test evaluates them every second so it
        # need not wait. The expressions themselves are unchanged.
        for f in (ROOT / "dashboards" / "rules").glob("*.yml"):
            (rules / f.name).write_text(re.sub(r"interval: \d+[smh]", "interval: 1s", f.read_text()))
        self.port = free_port()
        (self.tmp / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules / "*.yml")],
            "scrape_configs": [{"job_name": "bedrock-meter", "metrics_path": "/metrics",
                                "static_configs": [{"targets": [f"127.0.0.1:{admin_port}"]}]}],
        }))
        self.log = open(self.tmp / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.tmp / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--web.enable-lifecycle"], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("prometheus exited: " + (self.tmp / "prometheus.log").read_text()[-2000:])
                time.sleep(0.2)
        raise RuntimeError("prometheus not ready in 30 s")

    def query(self, expr: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            return json.load(e)

    def value(self, expr: str):
        res = self.query(expr)
        if res.get("status") != "success" or not res["data"]["result"]:
            return None
        return float(res["data"]["result"][0]["value"][1])

    def wait_for(self, expr: str, want: float, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        v = None
        while time.monotonic() < deadline:
            v = self.value(expr)
            if v is not None and abs(v - want) < 1e-9 * max(1.0, abs(want)):
                return v
            time.sleep(0.25)
        raise AssertionError(f"{expr} = {v}, expected {want}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def admin_config(sim_url, ledger_path):
    cfg = base_config(sim_url, admin={"enabled": True, "address": "127.0.0.1", "port": 0})
    cfg["ledger"] = {"path": str(ledger_path), "flush_interval": "20ms"}
    # The Savings dashboard reads the advisor's gauges: refresh them while the test runs.
    cfg["advice"] = {"window": "1h", "refresh_interval": "1s"}
    # The Spend dashboard's list/net and burn-down panels need a commitment in force.
    year = time.gmtime().tm_year
    cfg["commitments"] = [{"name": "edp", "start": f"{year}-01-01", "end": f"{year + 1}-01-01",
                           "per_year_usd": "100000", "discount_percent": 8}]
    return cfg


def drive_traffic(url: str) -> int:
    """A mix that gives every panel something to show: several operations, models, teams,
    cached tokens, an unpriced model, an estimated (cut) stream, an upstream error and a client
    abort. Returns the number of requests the proxy settles."""
    c = client(url)
    n = 0
    for i in range(4):
        c.converse(modelId=HAIKU, messages=converse_messages(
            "SIM{input=1200,output=300,cache_read=800,cache_write=100}"))
        n += 1
    for _ in c.converse_stream(modelId=NOVA_PRO, messages=converse_messages(
            "SIM{input=300,output=40,events=4}"))["stream"]:
        pass
    n += 1
    c.invoke_model(modelId=LLAMA70, body=json.dumps({"prompt": "SIM{input=90,output=20}"}))["body"].read()
    n += 1
    c.converse(modelId="acme.unpriced-model-v1:0", messages=converse_messages("SIM{input=5,output=5}"))
    n += 1
    try:
        for _ in c.converse_stream(modelId=HAIKU, messages=converse_messages(
                "SIM{input=50,output=30,events=6,fault=cut,after=2}"))["stream"]:
            pass
    except Exception:  # noqa: BLE001 - the cut is the point
        pass
    n += 1
    try:
        c.converse(modelId=HAIKU, messages=converse_messages("SIM{fault=throttle}"))
    except Exception:  # noqa: BLE001
        pass
    n += 1
    try:
        c.converse(modelId=HAIKU, messages=converse_messages("SIM{fault=drop}"))
    except Exception:  # noqa: BLE001 - upstream reset -> 503
        pass
    n += 1
    s = c.converse_stream(modelId=HAIKU, messages=converse_messages("SIM{input=40,output=40,events=8,pace_ms=30}"))["stream"]
    next(iter(s))
    s.close()
    n += 1
    return n


class PrometheusEndToEnd(unittest.TestCase):
    def test_every_expression_evaluates_spend_matches_ledger_and_counters_survive_restart(self):
        tmp = Path(tempfile.mkdtemp(prefix="bm-prom-ledger-"))
        ledger = tmp / "ledger.db"
        with Simulator() as sim:
            proxy = Proxy(admin_config(sim.url, ledger))
            try:
                admin_port = json.loads((proxy.tmp / "ready.json").read_text())["admin_port"]
                prom = PrometheusServer(admin_port)
                try:
                    self.run_checks(prom, proxy, drive_traffic(proxy.url), ledger, sim)
                finally:
                    prom.stop()
            finally:
                proxy.__exit__(None, None, None)
        shutil.rmtree(tmp, ignore_errors=True)

    def run_checks(self, prom, proxy, sent, ledger, sim):
        prom.wait_for('sum(bedrock_requests_total)', sent)
        # A reload that fails shows up in bedrock_rate_table_reloads_total{result="failure"}.
        admin_port = json.loads((proxy.tmp / "ready.json").read_text())["admin_port"]
        good = proxy.config_path.read_text()
        proxy.config_path.write_text("listeners: [")
        req = urllib.request.Request(f"http://127.0.0.1:{admin_port}/-/reload", method="POST")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req, timeout=10)
        self.assertEqual(cm.exception.code, 400)
        proxy.config_path.write_text(good)
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertIn("config", json.load(r)["reloaded"])
        prom.wait_for('sum(bedrock_rate_table_reloads_total{result="failure"})', 1)
        time.sleep(4)  # rules evaluate every second; rate() windows need a few samples

        # Every expression parses and evaluates; panels and recording rules return data.
        rule_names = set()
        failures, empty, missing = [], [], []
        expressions = all_expressions()
        self.assertGreater(len(expressions), 50)
        for source, expr in expressions:
            res = prom.query(expr)
            if res.get("status") != "success":
                failures.append(f"{source}: {res.get('error')}")
                continue
            if NEEDS_BUDGETS.search(expr):
                continue
            if "alert" in source.lower():
                # An alert's expression is empty unless it fires; what must exist is the data
                # it watches.
                for metric in set(re.findall(r"(?<![\w:])(:?[a-z_][a-z0-9_]*(?::[a-z0-9_]+)+|(?:bedrock|gen_ai)_[a-z0-9_]+)\b", expr)):
                    if metric in FLEET_ONLY:
                        continue
                    if prom.value(f"count({{__name__=\"{metric}\"}})") is None and \
                            prom.value(f"count({{__name__=~\"{metric}(_bucket|_count|_sum)?\"}})") is None:
                        missing.append(f"{source}: {metric}")
                continue
            if not res["data"]["result"]:
                empty.append(f"{source}: {expr}")
        self.assertEqual(failures, [], "expressions Prometheus rejected")
        self.assertEqual(empty, [], "panels/recording rules without data")
        self.assertEqual(missing, [], "series an alert watches that do not exist")

        # The spend Prometheus holds equals the ledger's total (after the ledger's last commit).
        proxy_total_pico = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = ledger_rows(ledger)
            if len(rows) == sent:
                proxy_total_pico = sum(Decimal(r["total_cost"]) for r in rows)
                break
            time.sleep(0.1)
        self.assertIsNotNone(proxy_total_pico, "ledger rows")
        ledger_usd = proxy_total_pico / Decimal(10) ** 12
        prom_usd = Decimal(str(prom.value("sum(bedrock_spend_usd_total)")))
        self.assertAlmostEqual(float(prom_usd), float(ledger_usd), places=12)
        self.assertGreater(ledger_usd, 0)

        # Restart the proxy on the same ledger: the counters continue, without a reset.
        before_requests = prom.value("sum(bedrock_requests_total)")
        before_spend = prom.value("sum(bedrock_spend_usd_total)")
        self.assertEqual(proxy.stop(), 0)
        proxy2_cfg = json.loads(proxy.config_path.read_text())
        proxy2 = Proxy(proxy2_cfg)
        try:
            new_admin = json.loads((proxy2.tmp / "ready.json").read_text())["admin_port"]
            # Point Prometheus at the new admin port and reload it.
            cfg = json.loads((prom.tmp / "prometheus.yml").read_text())
            cfg["scrape_configs"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{new_admin}"]
            (prom.tmp / "prometheus.yml").write_text(json.dumps(cfg))
            urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{prom.port}/-/reload", method="POST"), timeout=10)
            client(proxy2.url).converse(modelId=HAIKU, messages=converse_messages("SIM{input=100,output=100}"))
            prom.wait_for("sum(bedrock_requests_total)", before_requests + 1)
            after_spend = prom.value("sum(bedrock_spend_usd_total)")
            # 100 in at 0.80 + 100 out at 4.00 per 1M tokens = $0.00048 more, not a restart from 0.
            self.assertAlmostEqual(after_spend - before_spend, 0.00048, places=12)
            self.assertEqual(prom.value("sum(resets(bedrock_requests_total[5m]))"), 0)
        finally:
            proxy2.__exit__(None, None, None)


class BoundedLabels(unittest.TestCase):
    def test_a_thousand_random_model_ids_add_no_series(self):
        import random
        import threading
        with Simulator(threads=2) as sim:
            tmp = Path(tempfile.mkdtemp(prefix="bm-card-"))
            proxy = Proxy(admin_config(sim.url, tmp / "ledger.db"))
            try:
                admin_port = json.loads((proxy.tmp / "ready.json").read_text())["admin_port"]

                def series() -> set:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as r:
                        text = r.read().decode()
                    return {line.rsplit(" ", 1)[0] for line in text.splitlines()
                            if line and not line.startswith("#")}

                c = client(proxy.url)
                c.converse(modelId="acme.first-random-v1:0", messages=converse_messages("SIM{input=1,output=1}"))
                before = series()
                rng = random.Random(7)

                def burst(k):
                    cc = client(proxy.url)
                    for _ in range(k):
                        model = "acme.random-%08x-v1:0" % rng.getrandbits(32)
                        cc.converse(modelId=model, messages=converse_messages("SIM{input=1,output=1}"))

                threads = [threading.Thread(target=burst, args=(250,)) for _ in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(120)
                after = series()
                # Unknown models are all labelled model="other": the counters move, no series appear.
                self.assertEqual(after - before, set())
                other = [s for s in after if s.startswith("bedrock_requests_total") and 'model="other"' in s]
                self.assertEqual(len(other), 1)
            finally:
                proxy.__exit__(None, None, None)
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
