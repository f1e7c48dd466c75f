"""Budgets and attribution through real boto3 clients: a block budget refuses at its limit with
a non-retryable Bedrock-shaped error naming it, a concurrent burst cannot push spend past the
limit, a restart neither forgets nor double-counts, an alert budget never blocks; identities are
limited to their models; application inference profiles carry their own team/app; tags reach the
ledger. With Redis (a real redis-server): two proxies enforce one budget together, and a stopped
Redis applies the configured fallback.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
from decimal import Decimal
from pathlib import Path

from botocore.exceptions import ClientError

from harness import (CLAUDE, CLIENT2_AKID, CLIENT2_SECRET, NOVA, PROXY_BIN, Proxy, Simulator,
                     base_config, client, free_port)

# Claude 3.5 Sonnet: $3 per 1M input, $15 per 1M output. Each request below asks for 1000
# output tokens (maxTokens) and the simulator answers 50 input + 1000 output: $0.01515 each.
COST = Decimal("0.01515")
PROMPT = "SIM{input=50,output=1000} hello"


def ask(c, prompt: str = PROMPT, model: str = CLAUDE, max_tokens: int = 1000):
    return c.converse(modelId=model,
                      messages=[{"role": "user", "content": [{"text": prompt}]}],
                      inferenceConfig={"maxTokens": max_tokens})


def admin_port(proxy: Proxy) -> int:
    return json.loads((proxy.tmp / "ready.json").read_text())["admin_port"]


def api_budgets(proxy: Proxy) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port(proxy)}/api/budgets", timeout=10) as r:
        assert r.status == 200
        return {b["name"]: b for b in json.loads(r.read())["budgets"]}


def scrape(proxy: Proxy) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port(proxy)}/metrics", timeout=10) as r:
        return r.read().decode()


def ledger_spend(path: Path, team: str | None = None) -> Decimal:
    """Exact spend from the ledger file (pico-USD integers summed in Python)."""
    with sqlite3.connect(path) as db:
        cols = [r[1] for r in db.execute("PRAGMA table_info(requests)")]
        cost_col = "total_cost_pico" if "total_cost_pico" in cols else "total_cost"
        q = f"SELECT {cost_col} FROM requests" + (" WHERE team = ?" if team else "")
        rows = db.execute(q, (team,) if team else ()).fetchall()
    return Decimal(sum(int(r[0]) for r in rows)) / Decimal(10**12)


def budget_config(sim_url: str, definitions: list, **extra) -> dict:
    budgets = {"definitions": definitions, **extra.pop("budgets_extra", {})}
    return base_config(sim_url, budgets=budgets,
                       admin={"enabled": True, "address": "127.0.0.1", "port": 0}, **extra)


class WithSimulator(unittest.TestCase):
    """One simulator per test class (each test starts its own proxies)."""

    @classmethod
    def setUpClass(cls):
        cls.sim = Simulator()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()


class BudgetsLocal(WithSimulator):
    def test_block_budget_refuses_at_its_limit_with_a_non_retryable_error(self):
        cfg = budget_config(self.sim.url, [
            {"name": "search-daily", "scope": {"team": "search"}, "period": "daily",
             "limit_usd": "0.05", "action": "block"}])
        with Proxy(cfg) as proxy:
            # Before any request: the counters a dashboard sums are there at 0, not missing.
            metrics = scrape(proxy)
            self.assertIn('bedrock_budget_blocked_requests_total{budget="search-daily"} 0', metrics)
            self.assertIn('bedrock_unpriced_requests_total{model="other",region="us-east-1"} 0',
                          metrics)
            sim_before = self.sim.stats()["requests"].get("Converse", 0)
            c = client(proxy.url, retries=4)  # standard retry mode: would retry a 429
            ok = 0
            refused = None
            for _ in range(6):
                try:
                    ask(c)
                    ok += 1
                except ClientError as e:
                    refused = e
                    break
            self.assertEqual(ok, 3)  # 3 x $0.01515 = $0.04545; a 4th could reach $0.0606
            self.assertIsNotNone(refused)
            err = refused.response["Error"]
            self.assertEqual(err["Code"], "ServiceQuotaExceededException")
            self.assertEqual(refused.response["ResponseMetadata"]["HTTPStatusCode"], 400)
            self.assertIn("search-daily", err["Message"])
            self.assertIn("$0.05", err["Message"])
            # Refused once, not retried: 4 requests reached the proxy, 3 reached Bedrock.
            log = proxy.wait_for_log(4)
            self.assertEqual(len(log), 4)
            self.assertEqual(self.sim.stats()["requests"].get("Converse", 0) - sim_before, 3)
            self.assertEqual([line["status"] for line in log], [200, 200, 200, 400])
            # Another team is outside the budget's scope.
            ask(client(proxy.url, akid=CLIENT2_AKID, secret=CLIENT2_SECRET))
            b = api_budgets(proxy)["search-daily"]
            self.assertEqual(Decimal(b["spend_usd"]), 3 * COST)
            self.assertEqual(b["blocked_requests"], 1)
            self.assertEqual(b["action"], "block")
            self.assertLessEqual(Decimal(b["spend_usd"]), Decimal(b["limit_usd"]))
            metrics = scrape(proxy)
            self.assertIn('bedrock_budget_blocked_requests_total{budget="search-daily"} 1', metrics)
            self.assertIn('bedrock_budget_limit_usd{budget="search-daily"} 0.05', metrics)
            self.assertIn('bedrock_budget_spend_usd{budget="search-daily"} 0.04545', metrics)

    def test_concurrent_burst_stays_within_the_limit(self):
        # Each request holds for 400 ms upstream, so all 24 are in flight together. Without
        # reservations every one would pass the "spent < limit" check and spend $0.36.
        cfg = budget_config(self.sim.url, [
            {"name": "burst", "period": "daily", "limit_usd": "0.10", "action": "block"}])
        with Proxy(cfg) as proxy:
            def one(_):
                try:
                    ask(client(proxy.url), prompt="SIM{input=50,output=1000,first_byte_ms=400} x")
                    return True
                except ClientError as e:
                    self.assertEqual(e.response["Error"]["Code"], "ServiceQuotaExceededException")
                    return False
            with concurrent.futures.ThreadPoolExecutor(24) as pool:
                results = list(pool.map(one, range(24)))
            admitted = sum(results)
            self.assertGreaterEqual(admitted, 1)
            self.assertLessEqual(admitted, 6)  # floor($0.10 / worst case ~$0.0153)
            proxy.wait_for_log(24)
            spent = Decimal(api_budgets(proxy)["burst"]["spend_usd"])
            self.assertEqual(spent, admitted * COST)
            self.assertLessEqual(spent, Decimal("0.10"))

    def test_restart_keeps_spend_without_double_counting(self):
        tmp = Path(tempfile.mkdtemp(prefix="bm-budget-"))
        try:
            ledger = {"path": str(tmp / "ledger.db"), "flush_interval": "20ms"}
            cfg = budget_config(self.sim.url, [
                {"name": "monthly", "period": "monthly", "time_zone": "Europe/Berlin",
                 "limit_usd": "0.05", "action": "block"}], ledger=ledger)
            with Proxy(cfg) as proxy:
                ask(client(proxy.url))
                ask(client(proxy.url))
                proxy.wait_for_log(2)
            with Proxy(cfg) as proxy:
                b = api_budgets(proxy)["monthly"]
                self.assertEqual(Decimal(b["spend_usd"]), 2 * COST)
                self.assertEqual(b["time_zone"], "Europe/Berlin")
                ask(client(proxy.url))  # $0.04545: the third fits
                with self.assertRaises(ClientError) as e:
                    ask(client(proxy.url))
                self.assertEqual(e.exception.response["Error"]["Code"],
                                 "ServiceQuotaExceededException")
                proxy.stop()
                # The CLI reads the same from the ledger, with the process stopped.
                cli = [PROXY_BIN, "budgets", "--config", str(proxy.config_path)]
                out = subprocess.run(cli + ["--format", "json"], capture_output=True, text=True,
                                     timeout=30)
                text = subprocess.run(cli, capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            doc = json.loads(out.stdout)
            self.assertEqual(Decimal(doc["budgets"][0]["spend_usd"]), 3 * COST)
            self.assertEqual(ledger_spend(tmp / "ledger.db"), 3 * COST)
            self.assertEqual(text.returncode, 0, text.stderr)
            self.assertIn("monthly", text.stdout)
            self.assertIn("90.9%", text.stdout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_alert_budget_never_blocks_and_logs_thresholds(self):
        cfg = budget_config(self.sim.url, [
            {"name": "watch", "limit_usd": "0.02", "warn_at": [50, 100], "action": "alert"}])
        with Proxy(cfg) as proxy:
            for _ in range(4):
                ask(client(proxy.url))  # $0.0606 in all: three times the limit
            proxy.wait_for_log(4)
            b = api_budgets(proxy)["watch"]
            self.assertEqual(Decimal(b["spend_usd"]), 4 * COST)
            self.assertGreater(b["used_percent"], 300)
            self.assertEqual(b["blocked_requests"], 0)
            err = proxy.stderr()
            self.assertIn("budget 'watch' crossed 50%", err)
            self.assertIn("budget 'watch' crossed 100%", err)
            self.assertEqual(err.count("budget 'watch' crossed 100%"), 1)
            metrics = scrape(proxy)
            self.assertIn('bedrock_budget_warning_ratio{budget="watch",percent="50"} 0.5', metrics)
            self.assertIn('bedrock_budget_warning_ratio{budget="watch",percent="100"} 1', metrics)
            self.assertIn('bedrock_budget_spend_usd{budget="watch"} 0.0606', metrics)


class BudgetReloads(WithSimulator):
    def test_limit_changing_reloads_under_load_keep_the_budget_equal_to_the_ledger(self):
        # Before: each reload that changed the limit made a fresh account restored from the
        # ledger, and the requests admitted under the old config settled into the discarded
        # one; after five such reloads under load the budget read $32 below the ledger.
        # Each request holds 300 ms upstream, so every reload finds some in flight.
        defs = [{"name": "everything", "period": "monthly", "limit_usd": "1000", "action": "block"}]
        cfg = budget_config(self.sim.url, defs)
        with Proxy(cfg) as proxy:
            stop = threading.Event()
            errors = []
            done = []

            def load():
                c = client(proxy.url)
                while not stop.is_set():
                    try:
                        ask(c, prompt="SIM{input=50,output=1000,first_byte_ms=300} hello")
                        done.append(1)
                    except Exception as e:  # noqa: BLE001 - reported below
                        errors.append(e)

            workers = [threading.Thread(target=load) for _ in range(6)]
            for w in workers:
                w.start()
            try:
                for limit in ("1001", "1002", "1003", "1004", "1005"):
                    time.sleep(0.5)
                    defs[0]["limit_usd"] = limit
                    ledger = {"path": str(proxy.ledger_path), "flush_interval": "20ms"}
                    proxy.config_path.write_text(
                        json.dumps(budget_config(self.sim.url, defs, ledger=ledger)))
                    req = urllib.request.Request(
                        f"http://127.0.0.1:{admin_port(proxy)}/-/reload", method="POST")
                    with urllib.request.urlopen(req, timeout=10) as r:
                        self.assertEqual(r.status, 200)
                    self.assertEqual(Decimal(api_budgets(proxy)["everything"]["limit_usd"]),
                                     Decimal(limit))
                time.sleep(0.5)
            finally:
                stop.set()
                for w in workers:
                    w.join()
            self.assertEqual(errors, [])
            requests = len(done)
            self.assertGreater(requests, 30)
            self.assertEqual(len(proxy.wait_for_log(requests)), requests)
            deadline = time.monotonic() + 10  # the ledger commits in groups: wait for every row
            while ledger_spend(proxy.ledger_path) != requests * COST:
                self.assertLess(time.monotonic(), deadline, "the ledger never got every row")
                time.sleep(0.05)
            b = api_budgets(proxy)["everything"]
            self.assertEqual(Decimal(b["spend_usd"]), ledger_spend(proxy.ledger_path))
            self.assertEqual(Decimal(b["spend_usd"]), requests * COST)
            self.assertEqual(Decimal(b["reserved_usd"]), 0)


class Attribution(WithSimulator):
    def test_model_allow_list_refuses_other_models_with_403(self):
        cfg = base_config(self.sim.url)
        cfg["auth"]["access_keys"][0]["allowed_models"] = ["amazon.nova-*"]
        with Proxy(cfg) as proxy:
            ask(client(proxy.url), model=NOVA)
            with self.assertRaises(ClientError) as e:
                ask(client(proxy.url), model=CLAUDE)
            self.assertEqual(e.exception.response["Error"]["Code"], "AccessDeniedException")
            self.assertIn("BMAKTESTSEARCH0001", e.exception.response["Error"]["Message"])
            self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)
            self.assertIn(CLAUDE, e.exception.response["Error"]["Message"])
            # Geo profiles resolve to their base model before the check.
            with self.assertRaises(ClientError):
                ask(client(proxy.url), model="us." + CLAUDE)
            ask(client(proxy.url), model="us." + NOVA)
            log = proxy.wait_for_log(4)
            self.assertEqual([line["status"] for line in log], [200, 403, 403, 200])

    def test_application_profile_attribution_and_tags_reach_the_ledger(self):
        arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123xyz"
        cfg = base_config(self.sim.url, models={"mappings": [
            {"arn": arn, "base_model": CLAUDE, "team": "marketing", "app": "campaigns"}]})
        cfg["auth"]["access_keys"][0]["tags"] = {"cost_center": "CC-1234", "env": "prod"}
        with Proxy(cfg) as proxy:
            ask(client(proxy.url))
            ask(client(proxy.url), model=arn)
            log = proxy.wait_for_log(2)
            self.assertEqual((log[0]["team"], log[0]["app"]), ("search", "web-search"))
            self.assertEqual((log[1]["team"], log[1]["app"]), ("marketing", "campaigns"))
            proxy.stop()
            out = subprocess.run([PROXY_BIN, "ledger", "export", "--config", str(proxy.config_path),
                                  "--format", "jsonl"], capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
            self.assertEqual(len(rows), 2)
            self.assertEqual(rows[1]["team"], "marketing")
            for row in rows:
                tags = row["tags"] if isinstance(row["tags"], dict) else json.loads(row["tags"])
                self.assertEqual(tags, {"cost_center": "CC-1234", "env": "prod"})


class RedisServer:
    """A real redis-server on a free loopback port, no persistence, stopped by the test."""

    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bm-redis-"))
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                               text=True)
            if r.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class BudgetsRedis(WithSimulator):
    def setUp(self):
        self.redis = RedisServer()
        self.addCleanup(self.redis.close)

    def redis_config(self, fallback: str = "open", limit: str = "0.05") -> dict:
        return budget_config(self.sim.url, [
            {"name": "shared", "period": "daily", "limit_usd": limit, "action": "block"}],
            budgets_extra={"store": "redis", "on_store_unavailable": fallback,
                           "redis": {"host": "127.0.0.1", "port": self.redis.port,
                                     "timeout": "100ms", "key_prefix": "bmtest"}})

    def test_a_paused_redis_holds_only_the_requests_that_need_it(self):
        # Before: hiredis ran on the worker, so with Redis paused (SIGSTOP) one admission held
        # its worker for the whole timeout, and every other connection on that worker waited.
        # Now store calls run on their own threads: the support team's request (under a block
        # budget) waits on Redis, while the search team's requests on the same single worker
        # (under an alert budget only, settled in the background) go straight through.
        cfg = budget_config(self.sim.url, [
            {"name": "support-cap", "scope": {"team": "support"}, "period": "daily",
             "limit_usd": "100", "action": "block"},
            {"name": "everything", "period": "daily", "limit_usd": "100", "action": "alert"}],
            workers=1,
            budgets_extra={"store": "redis", "on_store_unavailable": "open",
                           "redis": {"host": "127.0.0.1", "port": self.redis.port,
                                     "timeout": "3s", "key_prefix": "bmtest-pause"}})
        with Proxy(cfg) as proxy:
            search = client(proxy.url)
            support = client(proxy.url, akid=CLIENT2_AKID, secret=CLIENT2_SECRET)
            ask(search)
            ask(support)
            support_done = []
            os.kill(self.redis.proc.pid, signal.SIGSTOP)
            try:
                waiting = threading.Thread(
                    target=lambda: (ask(support), support_done.append(time.monotonic())))
                waiting.start()
                time.sleep(0.3)  # the support request is in admission, waiting on Redis
                for _ in range(3):
                    ask(search)
                self.assertEqual(support_done, [], "the support request waits on Redis...")
                self.assertTrue(waiting.is_alive(), "...while search traffic went through")
            finally:
                os.kill(self.redis.proc.pid, signal.SIGCONT)
            waiting.join(15)
            self.assertEqual(len(support_done), 1)
            log = proxy.wait_for_log(6)
            self.assertEqual([line["status"] for line in log], [200] * 6)
            self.assertEqual([line["team"] for line in log][2:],
                             ["search", "search", "search", "support"])

    def test_two_proxies_share_one_budget(self):
        cfg = self.redis_config()
        with Proxy(cfg) as a, Proxy(cfg) as b:
            outcomes = []
            for i in range(6):  # alternate replicas, as a load balancer would
                try:
                    ask(client((a if i % 2 == 0 else b).url))
                    outcomes.append("ok")
                except ClientError as e:
                    outcomes.append(e.response["Error"]["Code"])
            # Each replica alone would admit 3; together they admit 3 in all.
            self.assertEqual(outcomes.count("ok"), 3, outcomes)
            self.assertEqual(outcomes[3:], ["ServiceQuotaExceededException"] * 3)
            for p in (a, b):
                s = api_budgets(p)["shared"]
                self.assertEqual(s["source"], "redis")
                self.assertEqual(Decimal(s["spend_usd"]), 3 * COST)
            # A concurrent burst across both replicas stays within a fresh limit too.
        cfg = self.redis_config(limit="0.10")
        cfg["budgets"]["redis"]["key_prefix"] = "bmtest-burst"
        with Proxy(cfg) as a, Proxy(cfg) as b:
            def one(i):
                try:
                    ask(client((a if i % 2 else b).url),
                        prompt="SIM{input=50,output=1000,first_byte_ms=300} x")
                    return True
                except ClientError:
                    return False
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                admitted = sum(pool.map(one, range(16)))
            self.assertLessEqual(admitted, 6)
            self.assertGreaterEqual(admitted, 1)
            time.sleep(0.2)
            self.assertLessEqual(Decimal(api_budgets(a)["shared"]["spend_usd"]), Decimal("0.10"))

    def test_redis_stopped_fails_open_when_configured(self):
        with Proxy(self.redis_config("open")) as proxy:
            ask(client(proxy.url))
            self.redis.stop()
            for _ in range(4):  # beyond the limit, but the store cannot say so: admitted
                ask(client(proxy.url))
            err = proxy.stderr()
            self.assertIn("budget store unavailable; fallback open (admitted)", err)
            self.assertEqual(api_budgets(proxy)["shared"]["source"], "local (redis unavailable)")
            metrics = scrape(proxy)
            self.assertIn('bedrock_budget_store_errors_total{result="fail_open"} 4', metrics)
            self.assertIn('bedrock_budget_store_errors_total{result="fail_closed"} 0', metrics)

    def test_redis_stopped_fails_closed_when_configured(self):
        with Proxy(self.redis_config("closed")) as proxy:
            ask(client(proxy.url))
            self.redis.stop()
            with self.assertRaises(ClientError) as e:
                ask(client(proxy.url, retries=1))
            self.assertEqual(e.exception.response["Error"]["Code"], "ServiceUnavailableException")
            self.assertIn("fail closed", e.exception.response["Error"]["Message"])
            # Back again (empty: no persistence). The client reconnects at most once a second,
            # then re-seeds the fresh Redis from what this replica counted before the outage.
            self.redis.start()
            time.sleep(1.2)
            ask(client(proxy.url))
            self.assertEqual(Decimal(api_budgets(proxy)["shared"]["spend_usd"]), 2 * COST)


if __name__ == "__main__":
    unittest.main()
