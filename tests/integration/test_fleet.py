"""The fleet ledger (`ledger.store: postgres`) against a real PostgreSQL server started here:
replicas under concurrent boto3 load writing one database, an outage with a replica killed by
SIGKILL in the middle of it, replicas migrating the schema at the same instant, a wrong
password or an unreachable server at start, TLS with certificate verification, the bounded spool
refusing requests when full, and retention (`ledger prune`) on both the fleet and a journal."""
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
from test_reconcile import CUR2_COLUMNS, write_csv


def admin_port(proxy: Proxy) -> int:
    return json.loads((proxy.tmp / "ready.json").read_text())["admin_port"]


def metric(proxy: Proxy, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port(proxy)}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return float("nan")


def wait_journal(proxy: Proxy, rows: int, timeout: float = 10.0):
    """Until the replica's journal holds `rows` rows (the access log is written before the
    ledger's commit)."""
    import sqlite3
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(proxy.ledger_path) as db:
            if db.execute("SELECT count(*) FROM requests").fetchone()[0] >= rows:
                return
        time.sleep(0.05)
    raise AssertionError(f"the journal did not reach {rows} rows")


# Rows of spend_daily (summed over journals) that differ from the sums of `requests` per UTC day,
# team, app and base model, either way: 0 when the COPY trigger and prune kept it exact.
DAILY_MISMATCHES = """
WITH daily AS (SELECT day_ms, team, app, model_base, sum(requests)::numeric AS n,
                      sum(input_tokens)::numeric AS i, sum(total_cost)::numeric AS c
               FROM spend_daily GROUP BY 1, 2, 3, 4 HAVING sum(requests) > 0),
     rows AS (SELECT time_ms - time_ms % 86400000 AS day_ms, team, app, model_base,
                     count(*)::numeric AS n, sum(input_tokens)::numeric AS i,
                     sum(total_cost)::numeric AS c
              FROM requests GROUP BY 1, 2, 3, 4)
SELECT (SELECT count(*) FROM (SELECT * FROM daily EXCEPT SELECT * FROM rows) a) +
       (SELECT count(*) FROM (SELECT * FROM rows EXCEPT SELECT * FROM daily) b)
"""


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

    def wait_shipped(self, proxies: list[Proxy], timeout: float = 30.0):
        """Until every proxy's journal is in PostgreSQL up to its newest committed row (the
        journal's newest id equals PostgreSQL's shipped id for it)."""
        import sqlite3

        def shipped(p: Proxy) -> bool:
            with sqlite3.connect(p.ledger_path) as db:
                newest = db.execute("SELECT COALESCE(MAX(id), 0) FROM requests").fetchone()[0]
                journal = db.execute("SELECT value FROM meta WHERE key = 'journal_id'").fetchone()
            if journal is None:
                return False
            at = self.pg.psql(f"SELECT shipped_id FROM journals WHERE journal = '{journal[0]}'")
            return at != "" and int(at) >= newest

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(shipped(p) for p in proxies):
                return
            time.sleep(0.1)
        raise AssertionError("the journals were not shipped: " + ", ".join(
            f"{metric(p, 'bedrock_ledger_spool_rows')} rows left" for p in proxies))

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
            wait_journal(p, 80)
        self.wait_shipped(proxies)
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
        self.check_fleet_readers(proxies[2], total, sorted(settled))

    def cli(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([PROXY_BIN, *argv], capture_output=True, text=True, timeout=120,
                              env={**os.environ, **PostgresServer.env()})

    def check_fleet_readers(self, proxy: Proxy, total: Decimal, ids: list[str]):
        """budgets, advise, commitment and reconcile, with one replica's config, count every
        replica's rows."""
        cfg = json.loads(proxy.config_path.read_text())
        year = time.gmtime().tm_year
        cfg["budgets"] = {"definitions": [{"name": "all", "period": "custom", "period_start":
                                           f"{year - 1}-01-01", "period_days": 3000,
                                           "limit_usd": "1000"}]}
        cfg["commitments"] = [{"name": "edp", "start": f"{year}-01-01", "end": f"{year + 1}-01-01",
                               "per_year_usd": "1000", "discount_percent": 10}]
        path = self.tmpdir() / "readers.yaml"
        path.write_text(json.dumps(cfg))
        micro = Decimal("1e-6")
        # The console's spend endpoint on one replica answers for the whole fleet.
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port(proxy)}/api/spend?since=1d",
                                    timeout=30) as r:
            spend = json.loads(r.read())["total"]
        self.assertEqual((spend["requests"], Decimal(spend["cost_usd"])),
                         (240, total.quantize(micro)))
        # Its requests pages walk every replica's rows, 50 at a time, once each.
        seen, cursor = [], None
        while True:
            q = "since=1d&limit=50" + (f"&cursor={cursor}" if cursor else "")
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port(proxy)}/api/requests?{q}",
                                        timeout=30) as r:
                page = json.loads(r.read())
            seen += [row["request_id"] for row in page["rows"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        self.assertEqual(sorted(seen), ids)
        b = self.cli("budgets", "--config", str(path), "--format", "json")
        self.assertEqual(b.returncode, 0, b.stderr)
        [budget] = json.loads(b.stdout)["budgets"]
        self.assertEqual(Decimal(budget["spend_usd"]), total.quantize(micro))
        a = self.cli("advise", "--config", str(path), "--since", "1d", "--format", "json")
        self.assertEqual(a.returncode, 0, a.stderr)
        window = json.loads(a.stdout)["window"]
        self.assertEqual((window["requests"], Decimal(window["spend_usd"])),
                         (240, total.quantize(micro)))
        c = self.cli("commitment", "--config", str(path), "--format", "json")
        self.assertEqual(c.returncode, 0, c.stderr)
        [year_doc] = json.loads(c.stdout)[0]["years"]
        self.assertEqual(Decimal(year_doc["list_aws_usd"]), total.quantize(Decimal("0.01")))
        # The bill, written from what the simulator was asked to serve on each replica: Nova
        # Lite, CUR 2.0 in thousands of tokens. It agrees only with all three replicas summed.
        per_day = self.pg.psql(
            "SELECT to_char(to_timestamp(time_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), "
            "sum(input_tokens), sum(output_tokens) FROM requests GROUP BY 1")
        lines = []
        for day, inp, out in (l.split("|") for l in per_day.splitlines()):
            for cls, n, rate in (("input", inp, Decimal("0.00006")),
                                 ("output", out, Decimal("0.00024"))):
                amount = Decimal(n) / 1000
                lines.append({"bill_billing_entity": "AWS", "line_item_line_item_type": "Usage",
                              "line_item_product_code": "AmazonBedrock",
                              "line_item_usage_type": f"USE1-NovaLite-{cls}-tokens",
                              "line_item_operation": "InvokeModelInference",
                              "line_item_usage_start_date": f"{day}T00:00:00Z",
                              "line_item_usage_amount": f"{amount:f}",
                              "pricing_unit": "1K tokens",
                              "line_item_line_item_description": f"${rate:f} per 1K {cls} tokens",
                              "line_item_unblended_rate": f"{rate:f}",
                              "line_item_unblended_cost": f"{amount * rate:.10f}",
                              "product_region_code": "us-east-1",
                              "product": json.dumps({"product_name": "Amazon Bedrock"})})
        cur = self.tmpdir() / "cur.csv.gz"
        write_csv(cur, CUR2_COLUMNS, lines, gz=True)
        r = self.cli("reconcile", "--config", str(path), "--cur", str(cur), "--since", "2d",
                     "--format", "json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        self.assertTrue(doc["within_tolerance"])
        self.assertEqual(doc["ledger"], doc["bill"])
        self.check_ledger_dashboard(total)

    def check_ledger_dashboard(self, total: Decimal):
        """Every query of dashboards/ledger.json, expanded the way Grafana's PostgreSQL datasource
        expands its macros, runs on the fleet's database and shows the fleet's numbers."""
        import math
        board = json.loads((Path(__file__).resolve().parents[2] / "dashboards" /
                            "ledger.json").read_text())
        frm, to = int(time.time()) - 86400, int(time.time()) + 60

        def iso(t: int) -> str:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

        def expand(sql: str) -> str:
            sql = sql.replace("$__interval", "1m")
            sql = re.sub(r"\$__timeGroupAlias\((\w+),\s*(\d+)([mh])\)",
                         lambda m: f"floor(extract(epoch from {m[1]})/"
                                   f"{int(m[2]) * (60 if m[3] == 'm' else 3600)})*"
                                   f"{int(m[2]) * (60 if m[3] == 'm' else 3600)} AS \"time\"",
                         sql)
            sql = re.sub(r"\$__timeFilter\((\w+)\)",
                         lambda m: f"{m[1]} BETWEEN '{iso(frm)}' AND '{iso(to)}'", sql)
            sql = sql.replace("$__unixEpochFrom()", str(frm)).replace("$__unixEpochTo()", str(to))
            for name in ("team", "app", "model"):  # the variables at "All"
                sql = re.sub(r"\$\{?%s\}?\b" % name, "'__all'", sql)
            self.assertNotIn("$", sql)
            return sql

        def panels(ps):
            for p in ps:
                yield p
                yield from panels(p.get("panels", []))

        results = {}
        for v in board["templating"]["list"]:
            if v["type"] == "query":
                self.pg.psql(expand(v["query"]))
        for p in panels(board["panels"]):
            for t in p.get("targets", []):
                if t.get("rawSql"):
                    out = self.pg.psql(expand(t["rawSql"]))  # every query runs
                    results.setdefault(p["title"], out)  # the first panel of a title
        self.assertTrue(math.isclose(float(results["Spend"]), float(total), rel_tol=1e-9))
        self.assertEqual(results["Requests"], "240")
        by_team = {l.split("|")[0]: float(l.split("|")[1])
                   for l in results["Spend by team"].splitlines()}
        self.assertTrue(math.isclose(sum(by_team.values()), float(total), rel_tol=1e-9))
        costs = [float(l.split("|")[6]) for l in results["Most expensive requests"].splitlines()]
        self.assertTrue(costs)
        self.assertEqual(costs, sorted(costs, reverse=True))
        self.assertEqual(results["Refused or failed (status >= 400)"], "0")
        self.assertEqual(results["Unpriced requests"], "0")

    def test_an_outage_and_a_sigkill_lose_nothing_and_double_nothing(self):
        a, b = self.start("meter-a"), self.start("meter-b")
        answered, lock = [], threading.Lock()
        send(a, 10, answered, lock)
        send(b, 10, answered, lock)
        self.wait_shipped([a, b])
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
        self.wait_shipped([a_again, b])
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
                                          "'schema_version'"), "3")
            self.assertEqual(self.pg.psql("SELECT value FROM bm_meta WHERE key = "
                                          "'migrations_run'"), "1", "migrated once")
            self.assertEqual(self.pg.psql("SELECT count(*) FROM pg_class WHERE relname = "
                                          "'requests'"), "1")
            self.assertEqual(self.pg.psql("SELECT count(*) FROM pg_trigger WHERE tgname = "
                                          "'spend_daily_add'"), "1")
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

    def test_tls_with_verify_full_ships_and_a_wrong_root_is_one_clear_line(self):
        self.pg.close()
        self.pg = PostgresServer(tls=True)
        good = self.start("meter-tls", sslmode="verify-full", sslrootcert=str(self.pg.ca_cert))
        other_ca = self.tmpdir() / "other"
        other_ca.mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=another root", "-keyout", str(other_ca / "k"), "-out",
                        str(other_ca / "ca.crt")], capture_output=True, check=True, timeout=60)
        wrong = self.start("meter-wrong-root", sslmode="verify-full",
                           sslrootcert=str(other_ca / "ca.crt"))
        answered, lock = [], threading.Lock()
        send(good, 5, answered, lock)
        send(wrong, 2, answered, lock)
        self.assertEqual(len(answered), 7)
        wait_journal(good, 5)
        self.wait_shipped([good])
        self.assertEqual(self.pg.psql("SELECT replica, count(*) FROM requests GROUP BY 1"),
                         "meter-tls|5")
        # The shipper's session is encrypted (pg_stat_ssl), not merely allowed to be.
        self.assertEqual(self.pg.psql(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE a.application_name = 'bedrock-meter meter-tls'"), "t")
        time.sleep(1.5)  # a few reconnect attempts
        err = wrong.stderr()
        refused = [l for l in err.splitlines() if "certificate verify failed" in l]
        self.assertEqual(len(refused), 1, err)
        self.assertIn("records stay in the local journal", refused[0])
        self.assertEqual(metric(wrong, "bedrock_ledger_postgres_up"), 0)

    def test_a_full_spool_refuses_new_requests_with_503_until_it_ships(self):
        import sqlite3
        from botocore.exceptions import ClientError
        p = self.start("meter-spool", spool_max_rows=1000)
        answered, lock = [], threading.Lock()
        send(p, 1, answered, lock)
        wait_journal(p, 1)
        self.pg.stop("immediate")
        # Over 1,000 answered-but-unshipped rows: what a long outage leaves in the journal.
        with sqlite3.connect(p.ledger_path) as db:
            cols = [r[1] for r in db.execute("PRAGMA table_info(requests)") if r[1] != "id"]
            picked = ", ".join("request_id || '-' || id" if c == "request_id" else c
                               for c in cols)
            while db.execute("SELECT count(*) FROM requests").fetchone()[0] <= 1000:
                db.execute(f"INSERT INTO requests ({', '.join(cols)}) SELECT {picked} FROM "
                           "requests")  # doubles
            journal_rows = db.execute("SELECT count(*) FROM requests").fetchone()[0]
        deadline = time.monotonic() + 15
        while metric(p, "bedrock_ledger_spool_rows") <= 1000 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertGreater(metric(p, "bedrock_ledger_spool_rows"), 1000)
        c = client(p.url)
        with self.assertRaises(ClientError) as refused:
            c.converse(modelId=NOVA, messages=converse_messages("SIM{input=5,output=5}"))
        err = refused.exception.response
        self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], 503)
        self.assertEqual(err["Error"]["Code"], "ServiceUnavailableException")
        self.assertIn("ledger", err["Error"]["Message"])
        self.assertEqual(metric(p, 'bedrock_proxy_events_total{event="ledger_spool_full"}'), 1)
        self.pg.start()
        self.wait_shipped([p], timeout=60)
        r = c.converse(modelId=NOVA, messages=converse_messages("SIM{input=5,output=5}"))
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        wait_journal(p, journal_rows + 2)
        deadline = time.monotonic() + 20
        while int(self.pg.psql("SELECT count(*) FROM requests")) < journal_rows + 2 and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        # Every journal row reached PostgreSQL once, and so did the two requests after them:
        # the refusal (recorded, unbilled) and the one served once the spool drained.
        self.assertEqual(int(self.pg.psql("SELECT count(*) FROM requests")), journal_rows + 2)
        self.assertEqual(self.pg.psql("SELECT count(*), sum(total_cost) FROM requests WHERE "
                                      "status = 503"), "1|0")
        self.assertEqual(self.pg.psql("SELECT count(*) - count(DISTINCT local_id) FROM requests"),
                         "0")
        # Many COPYs of one day's rows: the daily sums the Overview reads kept up with each.
        self.assertEqual(self.pg.psql(DAILY_MISMATCHES), "0")
        self.assertGreater(int(self.pg.psql("SELECT count(*) FROM spend_daily")), 0)

    def test_ledger_prune_drops_whole_months_and_never_an_unshipped_journal_row(self):
        import sqlite3
        p = self.start("meter-prune")
        answered, lock = [], threading.Lock()
        send(p, 3, answered, lock)
        wait_journal(p, 3)
        # Rows of January and February 2025 (a replica back from a long outage ships them).
        jan, feb = 1736899200000, 1739145600000  # 2025-01-15, 2025-02-10 UTC
        with sqlite3.connect(p.ledger_path) as db:
            cols = [r[1] for r in db.execute("PRAGMA table_info(requests)") if r[1] != "id"]
            for when, tag in ((jan, "jan-1"), (jan + 1000, "jan-2"), (feb, "feb-1")):
                picked = ", ".join(f"'{tag}'" if c == "request_id" else
                                   str(when) if c == "time_ms" else c for c in cols)
                db.execute(f"INSERT INTO requests ({', '.join(cols)}) SELECT {picked} FROM "
                           "requests ORDER BY id LIMIT 1")
        deadline = time.monotonic() + 20  # the spool gauge may still read 0 from before them
        while self.pg.psql("SELECT count(*) FROM requests") != "6" and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM requests"), "6", p.stderr())
        self.assertEqual(self.pg.psql(DAILY_MISMATCHES), "0")
        jan_day = str(jan - jan % 86400000)
        self.assertEqual(self.pg.psql(f"SELECT sum(requests) FROM spend_daily WHERE day_ms = {jan_day}"),
                         "2")
        dry = self.cli("ledger", "prune", "--config", str(p.config_path), "--before",
                       "2025-02-15", "--dry-run")
        self.assertEqual(dry.returncode, 0, dry.stderr)
        self.assertIn("would drop 1 monthly partitions", dry.stdout)
        self.assertIn("(2 rows): requests_2025_01", dry.stdout)
        self.assertIn("the month holding 2025-02-15 is kept", dry.stdout)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM requests"), "6", "dry run")
        done = self.cli("ledger", "prune", "--config", str(p.config_path), "--before", "2025-02-15")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("dropped 1 monthly partitions", done.stdout)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM requests"), "4")
        self.assertEqual(self.pg.psql("SELECT count(*) FROM pg_class WHERE relname = "
                                      "'requests_2025_01'"), "0")
        self.assertEqual(self.pg.psql("SELECT value FROM bm_meta WHERE key = 'pruned_before_ms'"),
                         "1738368000000")  # 2025-02-01
        # The dropped month's days left spend_daily with it; the rest still add up.
        self.assertEqual(self.pg.psql(f"SELECT count(*) FROM spend_daily WHERE day_ms = {jan_day}"),
                         "0")
        self.assertEqual(self.pg.psql(DAILY_MISMATCHES), "0")
        # The journal: while PostgreSQL is away, the newest row is not shipped and stays.
        self.pg.stop("immediate")
        send(p, 1, answered, lock)
        wait_journal(p, 7)
        with sqlite3.connect(p.ledger_path) as db:
            before = db.execute("SELECT count(*) FROM requests").fetchone()[0]
        tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
        refused = self.cli("ledger", "prune", "--config", str(p.config_path), "--journal",
                           "--before", tomorrow)
        self.assertEqual(refused.returncode, 1, refused.stdout)
        self.assertIn("1 rows before the cut-off are not yet shipped", refused.stderr)
        with sqlite3.connect(p.ledger_path) as db:
            self.assertEqual(db.execute("SELECT count(*) FROM requests").fetchone()[0], before)
        self.pg.start()
        self.wait_shipped([p])
        ok = self.cli("ledger", "prune", "--config", str(p.config_path), "--journal", "--before",
                      tomorrow)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertIn(f"pruned {before} rows", ok.stdout)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM requests"), "5")


if __name__ == "__main__":
    unittest.main(verbosity=2)
