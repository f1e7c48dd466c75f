"""The fleet ledger (`ledger.store: postgres`) against a real PostgreSQL server started here:
replicas under concurrent boto3 load writing one database, an outage with a replica killed by
SIGKILL in the middle of it, replicas migrating the schema at the same instant, and a wrong
password or an unreachable server at start."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
from decimal import Decimal
from pathlib import Path

from harness import (NOVA, PROXY_BIN, Proxy, Simulator, base_config, client, converse_messages,
                     free_port)
from pg_server import PostgresServer


def admin_port(proxy: Proxy) -> int:
    return json.loads((proxy.tmp / "ready.json").read_text())["admin_port"]


def metric(proxy: Proxy, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port(proxy)}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return float("nan")


def wait_shipped(proxies: list[Proxy], timeout: float = 30.0):
    """Until every proxy has shipped its whole journal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(metric(p, "bedrock_ledger_spool_rows") == 0 and
               metric(p, "bedrock_ledger_postgres_up") == 1 for p in proxies):
            return
        time.sleep(0.1)
    raise AssertionError("the journals were not shipped: " + ", ".join(
        f"{metric(p, 'bedrock_ledger_spool_rows')} rows left" for p in proxies))


def fleet_config(sim: Simulator, pg: PostgresServer, directory: Path, replica: str, **pg_extra):
    return base_config(sim.url, admin={"enabled": True, "address": "127.0.0.1", "port": 0},
                       ledger=pg.ledger_config(directory / f"{replica}.db", replica, **pg_extra))


def send(proxy: Proxy, n: int, answered: list, lock: threading.Lock, tokens: int = 100):
    c = client(proxy.url)
    for i in range(n):
        r = c.converse(modelId=NOVA, messages=converse_messages(
            f"SIM{{input={tokens + i},output={10 + i % 7}}}"))
        with lock:
            answered.append(r["ResponseMetadata"]["RequestId"])


def answered_costs(proxies: list[Proxy]) -> dict[str, Decimal]:
    """request id -> cost, from the access logs (what each replica settled and answered)."""
    out = {}
    for p in proxies:
        for line in p.access_log():
            if line.get("operation") == "Converse":
                out[line["request_id"]] = Decimal(line["cost_usd"])
    return out


class Fleet(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Simulator(threads=2)
        cls.dir = Path(tempfile.mkdtemp(prefix="bm-fleet-"))

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.pg = PostgresServer()
        self.proxies: list[Proxy] = []

    def tearDown(self):
        for p in self.proxies:
            p.__exit__(None, None, None)
        self.pg.close()

    def start(self, replica: str, **pg_extra) -> Proxy:
        p = Proxy(fleet_config(self.sim, self.pg, self.tmpdir(), replica, **pg_extra),
                  env=PostgresServer.env())
        self.proxies.append(p)
        return p

    def tmpdir(self) -> Path:
        d = self.dir / self._testMethodName
        d.mkdir(exist_ok=True)
        return d

    def fleet_rows(self) -> list[tuple[str, str, int]]:
        out = self.pg.psql("SELECT request_id, replica, total_cost FROM requests "
                           "WHERE operation = 'Converse' ORDER BY request_id")
        return [(a, b, int(c)) for a, b, c in (l.split("|") for l in out.splitlines() if l)]

    def test_three_replicas_under_load_write_one_ledger_row_for_row(self):
        proxies = [self.start(f"meter-{k}") for k in (1, 2, 3)]
        answered, lock = [], threading.Lock()
        threads = [threading.Thread(target=send, args=(p, 40, answered, lock, 100 * k))
                   for k, p in enumerate(proxies, 1) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(answered), 240)
        for p in proxies:
            p.wait_for_log(80, timeout=10)
        wait_shipped(proxies)
        settled = answered_costs(proxies)
        rows = self.fleet_rows()
        self.assertEqual(sorted(r[0] for r in rows), sorted(settled), "row for row")
        self.assertEqual({r[1] for r in rows}, {"meter-1", "meter-2", "meter-3"})
        total = sum(Decimal(r[2]) for r in rows) / Decimal(10**12)
        self.assertEqual(total.quantize(Decimal("1e-9")), sum(settled.values()))
        # The fleet report (any replica's config) sees every replica's rows.
        rep = subprocess.run([PROXY_BIN, "report", "--config", str(proxies[0].config_path),
                              "--by", "team"], capture_output=True, text=True, timeout=60,
                             env={**PostgresServer.env()})
        self.assertEqual(rep.returncode, 0, rep.stderr)
        m = re.search(r"total: (\d+) requests, \$([0-9.]+)", rep.stdout)
        self.assertEqual(int(m.group(1)), 240)
        self.assertEqual(Decimal(m.group(2)), total.quantize(Decimal("1e-6")))
        export = subprocess.run([PROXY_BIN, "ledger", "export", "--config",
                                 str(proxies[1].config_path), "--format", "jsonl"],
                                capture_output=True, text=True, timeout=60,
                                env={**PostgresServer.env()})
        self.assertEqual(export.returncode, 0, export.stderr)
        exported = [json.loads(l) for l in export.stdout.splitlines() if l]
        self.assertEqual(sorted(e["request_id"] for e in exported), sorted(settled))

    def test_an_outage_and_a_sigkill_lose_nothing_and_double_nothing(self):
        a, b = self.start("meter-a"), self.start("meter-b")
        answered, lock = [], threading.Lock()
        send(a, 10, answered, lock)
        send(b, 10, answered, lock)
        wait_shipped([a, b])
        self.pg.stop("immediate")  # the database goes away mid-run
        send(a, 15, answered, lock)
        send(b, 15, answered, lock)
        a.wait_for_log(25, timeout=10)
        b.wait_for_log(25, timeout=10)
        time.sleep(0.5)  # past the journal's commit window
        deadline = time.monotonic() + 15  # the backlog is re-read at each reconnect attempt
        while metric(b, "bedrock_ledger_spool_rows") < 15 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertGreaterEqual(metric(b, "bedrock_ledger_spool_rows"), 15)
        self.assertEqual(metric(b, "bedrock_ledger_postgres_up"), 0)
        a.proc.send_signal(signal.SIGKILL)  # killed during the outage, its rows only local
        a.proc.wait()
        settled = answered_costs([a, b])
        self.pg.start()
        a_again = Proxy({**json.loads(a.config_path.read_text())}, env=PostgresServer.env())
        self.proxies.append(a_again)
        wait_shipped([a_again, b])
        rows = self.fleet_rows()
        ids = [r[0] for r in rows]
        self.assertEqual(len(ids), len(set(ids)), "no row twice")
        self.assertEqual(sorted(ids), sorted(settled), "every answered request, exactly once")
        self.assertEqual(len(ids), 50)
        self.assertGreater(metric(b, "bedrock_ledger_ship_failures_total"), 0)

    def test_replicas_started_together_migrate_the_schema_once(self):
        d = self.tmpdir()
        procs = []
        for k in range(3):
            cfg = fleet_config(self.sim, self.pg, d, f"meter-{k}")
            path = d / f"meter-{k}.yaml"
            path.write_text(json.dumps({**cfg, "logging": {"level": "info",
                                                            "access_log": "off"}}))
            procs.append(path)
        errs = [open(str(p) + ".err", "w") for p in procs]
        started = [subprocess.Popen([PROXY_BIN, "serve", "--config", str(p), "--ready-file",
                                     str(p) + ".ready"], stdout=subprocess.DEVNULL,
                                    stderr=err,
                                    env={**os.environ, **PostgresServer.env(),
                                         "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"})
                   for p, err in zip(procs, errs)]
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if self.pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name "
                                "LIKE 'bedrock-meter meter-%'") == "3":
                    break
                time.sleep(0.1)
            self.assertEqual(self.pg.psql("SELECT value FROM bm_meta WHERE key = "
                                          "'schema_version'"), "1")
            self.assertEqual(self.pg.psql("SELECT value FROM bm_meta WHERE key = "
                                          "'migrations_run'"), "1", "migrated once")
            self.assertEqual(self.pg.psql("SELECT count(*) FROM pg_class WHERE relname = "
                                          "'requests'"), "1")
            self.assertEqual(self.pg.psql("SELECT count(*) FROM journals"), "3")
            for p in procs:
                err = Path(str(p) + ".err").read_text()
                self.assertNotIn("error", err.lower(), err)
        finally:
            for s in started:
                s.send_signal(signal.SIGTERM)
                s.wait(20)
            for e in errs:
                e.close()

    def test_a_wrong_password_or_no_server_gives_one_clear_line_and_keeps_serving(self):
        d = self.tmpdir()
        cfg = fleet_config(self.sim, self.pg, d, "meter-x")
        wrong = Proxy(cfg, env=PostgresServer.env("not-the-password"))
        self.proxies.append(wrong)
        closed = free_port()
        cfg2 = fleet_config(self.sim, self.pg, d, "meter-y", port=closed)
        away = Proxy(cfg2, env=PostgresServer.env())
        self.proxies.append(away)
        answered, lock = [], threading.Lock()
        send(wrong, 3, answered, lock)
        send(away, 3, answered, lock)
        self.assertEqual(len(answered), 6, "requests are answered while the ledger is away")
        time.sleep(2)  # several reconnect attempts
        err = wrong.stderr()
        failures = [l for l in err.splitlines() if "password authentication failed" in l]
        self.assertEqual(len(failures), 1, err)
        self.assertIn("records stay in the local journal", failures[0])
        self.assertIn("budgets restore from this replica's local journal", failures[0])
        self.assertNotIn("not-the-password", err)
        err2 = away.stderr()
        refused = [l for l in err2.splitlines() if "cannot connect to the fleet ledger" in l]
        self.assertEqual(len(refused), 1, err2)
        self.assertIn(f"127.0.0.1:{closed}", refused[0])
        self.assertEqual(metric(away, "bedrock_ledger_postgres_up"), 0)
        deadline = time.monotonic() + 15
        while metric(away, "bedrock_ledger_spool_rows") < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertGreaterEqual(metric(away, "bedrock_ledger_spool_rows"), 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
