"""The spend console in a real headless Chromium (Debian's chromium, driven over the DevTools
protocol by playwright-core from tests/js): after real boto3 traffic through the proxy to the
simulator, every page loads with no console error, no CSP violation and no failed request; the
figures the pages show equal the ledger's; a filter narrows the Requests table to the right rows;
a model id that is markup is shown as text and runs nothing; with an admin token the page shows
nothing until the token is given. Screenshots of every page are kept as test artifacts in
build/test/artifacts/console/ (or $BM_ARTIFACTS/console)."""
from __future__ import annotations

import calendar
import json
import os
import shutil
import sqlite3
import subprocess
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from harness import (BUILD, CLAUDE, CLIENT2_AKID, CLIENT2_SECRET, NOVA, ROOT, Proxy, Simulator,
                     base_config, client, converse_messages)

TOKEN = "console-browser-admin-token"
HOSTILE = "<img src=x onerror=alert(1)>"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DRIVER = ROOT / "tests" / "js" / "console-browser.js"
ARTIFACTS = Path(os.environ.get("BM_ARTIFACTS", BUILD / "artifacts")) / "console"


def usd(pico: int) -> str:
    """Picodollars as the API prints money: micro-dollars, half up."""
    return str((Decimal(pico) / Decimal(10**12)).quantize(Decimal("1e-6"), ROUND_HALF_UP))


def admin_url(proxy: Proxy) -> str:
    return f"http://127.0.0.1:{json.loads((proxy.tmp / 'ready.json').read_text())['admin_port']}"


def fetch(url: str, token: str | None = None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class ConsoleInChromium(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Simulator()
        year = time.gmtime().tm_year
        cfg = base_config(
            cls.sim.url,
            admin={"enabled": True, "address": "127.0.0.1", "port": 0, "token_env": "BM_ADMIN_TOKEN"},
            budgets={"definitions": [
                {"name": "search-monthly", "scope": {"team": "search"}, "limit_usd": "0.05",
                 "warn_at": [50, 80, 100], "action": "alert"},
                {"name": "everything-daily", "period": "daily", "limit_usd": "10"}]},
            # Savings analyses on request, so the page shows the advisor's view of this traffic.
            advice={"refresh_interval": "0s"},
            commitments=[{"name": "edp", "start": f"{year}-01-01", "end": f"{year + 1}-01-01",
                          "per_year_usd": "1000", "discount_percent": 10}])
        cls.proxy = Proxy(cfg, env={"BM_ADMIN_TOKEN": TOKEN})
        cls.url = admin_url(cls.proxy)
        search = client(cls.proxy.url)
        support = client(cls.proxy.url, akid=CLIENT2_AKID, secret=CLIENT2_SECRET)
        sent = 0
        for i in range(6):
            search.converse(modelId=NOVA, messages=converse_messages(
                f"SIM{{input={1500 * (i + 1)},output={300 * (i + 1)}}}"))
            sent += 1
        for i in range(3):
            search.converse(modelId=CLAUDE, messages=converse_messages(
                f"SIM{{input={800 * (i + 1)},output={200 * (i + 1)}}}"))
            support.converse(modelId=NOVA, messages=converse_messages(
                f"SIM{{input={400 * (i + 1)},output={90 * (i + 1)}}}"))
            sent += 2
        from botocore.exceptions import ClientError
        try:  # the simulator answers it; Bedrock would refuse it: either way it is a ledger row
            support.converse(modelId=HOSTILE, messages=converse_messages("hi"))
        except ClientError:
            pass
        sent += 1
        deadline = time.monotonic() + 15
        while len(cls.ledger()) < sent and time.monotonic() < deadline:
            time.sleep(0.05)
        cls.rows = cls.ledger()
        assert len(cls.rows) == sent, f"{len(cls.rows)} ledger rows, {sent} sent"

        if ARTIFACTS.exists():
            shutil.rmtree(ARTIFACTS)
        ARTIFACTS.mkdir(parents=True)
        settings = ARTIFACTS / "driver.json"
        settings.write_text(json.dumps({"url": cls.url, "token": TOKEN, "shots": str(ARTIFACTS),
                                        "filter": {"team": "support"}, "xss_model": HOSTILE}))
        run = subprocess.run(["node", str(DRIVER), str(settings)], capture_output=True, text=True,
                             timeout=240, env={**os.environ, "CHROMIUM": CHROMIUM})
        (ARTIFACTS / "driver.stderr").write_text(run.stderr)
        if run.returncode != 0:
            cls.tearDownClass()
            raise AssertionError(f"the browser driver failed ({run.returncode}):\n{run.stderr[-4000:]}")
        cls.seen = json.loads(run.stdout)
        (ARTIFACTS / "observed.json").write_text(json.dumps(cls.seen, indent=2))

    @classmethod
    def tearDownClass(cls):
        cls.proxy.__exit__(None, None, None)
        cls.sim.stop()

    @classmethod
    def ledger(cls) -> list[sqlite3.Row]:
        with sqlite3.connect(cls.proxy.ledger_path) as db:
            db.row_factory = sqlite3.Row
            return db.execute("SELECT * FROM requests").fetchall()

    def spend(self, query: str) -> dict:
        status, _, body = fetch(f"{self.url}/api/spend?{query}", TOKEN)
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def test_the_page_is_served_with_a_policy_and_the_api_needs_the_token(self):
        status, headers, body = fetch(self.url + "/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        csp = headers["Content-Security-Policy"]
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        self.assertIn(b'src="/console.js"', body)
        for path, kind in (("/console.js", "text/javascript"), ("/console.css", "text/css"),
                           ("/favicon.svg", "image/svg+xml")):
            status, headers, _ = fetch(self.url + path)
            self.assertEqual((status, headers["Content-Type"].split(";")[0]), (200, kind), path)
        for api in ("/api/spend", "/api/requests", "/api/budgets", "/api/rates"):
            self.assertEqual(fetch(self.url + api)[0], 401, api)
            self.assertEqual(fetch(self.url + api, "wrong-token")[0], 401, api)

    def test_without_the_token_the_page_shows_nothing(self):
        self.assertTrue(self.seen["token_prompt_shown"])
        self.assertFalse(self.seen["data_visible_before_token"])
        self.assertTrue(self.seen["wrong_token_rejected"])
        self.assertGreaterEqual(self.seen["unauthorized_responses"], 2)

    def test_every_page_loads_cleanly(self):
        self.assertEqual(self.seen["not_ready"], [])
        self.assertEqual(self.seen["console_errors"], [])
        self.assertEqual(self.seen["page_errors"], [])
        self.assertEqual(self.seen["failed_requests"], [])
        self.assertEqual(self.seen["csp_violations"], [])
        self.assertEqual(self.seen["dialogs"], [])
        for page in ("overview", "budgets", "savings", "requests", "rates", "request",
                     "overview-phone"):
            shot = ARTIFACTS / f"{page}.png"
            self.assertTrue(shot.exists(), shot)
            self.assertEqual(shot.read_bytes()[:8], b"\x89PNG\r\n\x1a\n", shot)
            self.assertGreater(shot.stat().st_size, 5000, shot)

    def test_overview_figures_equal_the_ledger(self):
        o = self.seen["overview"]
        today = time.strftime("%Y-%m-%d", time.gmtime())
        month = today[:8] + "01"
        since_ms = {"today": calendar.timegm(time.strptime(today, "%Y-%m-%d")) * 1000,
                    "mtd": calendar.timegm(time.strptime(month, "%Y-%m-%d")) * 1000}
        for span in ("today", "mtd"):
            rows = [r for r in self.rows if r["time_ms"] >= since_ms[span]]
            self.assertEqual(o[f"{span}_list"], usd(sum(r["total_cost"] for r in rows)), span)
            self.assertEqual(int(o[f"{span}_requests"]), len(rows), span)
        # Net of the 10% commitment: what the API computes (tests/integration/test_console_api.py
        # holds the API's net to the ledger); the page must show that, not a rounding of its own.
        self.assertEqual(o["mtd_net"], self.spend(f"since={month}")["total"]["net_usd"])
        self.assertLess(Decimal(o["mtd_net"]), Decimal(o["mtd_list"]))
        by_team: dict[str, int] = {}
        for r in self.rows:
            by_team[r["team"]] = by_team.get(r["team"], 0) + r["total_cost"]
        self.assertEqual(o["mtd_by_team"], {k: usd(v) for k, v in by_team.items()})
        self.assertEqual(Decimal(o["daily"][today]), Decimal(usd(sum(r["total_cost"] for r in self.rows))))
        # Every team's figure links to that team's requests over the same month.
        for team in by_team:
            link = urllib.parse.urlsplit(o["mtd_team_links"][team] or "")
            self.assertTrue(link.fragment.startswith("/requests?"), link)
            query = urllib.parse.parse_qs(link.fragment.split("?", 1)[1])
            self.assertEqual((query["team"], query["since"]), ([team], [month]), link)
        # The phone layout keeps the page itself from scrolling sideways (tables scroll inside).
        self.assertFalse(self.seen["phone_overflow_x"])

    def test_requests_table_and_filter_show_the_ledger_rows(self):
        self.assertEqual(set(self.seen["requests"]), {r["request_id"] for r in self.rows})
        support = {r["request_id"] for r in self.rows if r["team"] == "support"}
        self.assertEqual(set(self.seen["filtered_request_ids"]), support)
        self.assertLess(len(support), len(self.rows))
        self.assertIn("team=support", self.seen["filtered_hash"])

    def test_a_hostile_model_id_is_text_and_runs_nothing(self):
        self.assertEqual(self.seen["xss_cell_texts"], [HOSTILE])
        self.assertEqual(self.seen["xss_detail_model"], HOSTILE)
        self.assertEqual(self.seen["xss_img_count"], 0)
        self.assertEqual(self.seen["dialogs"], [])

    def test_budgets_rates_and_quote_pages_show_the_live_state(self):
        status, _, body = fetch(self.url + "/api/budgets", TOKEN)
        budgets = {b["name"]: b["spend_usd"] for b in json.loads(body)["budgets"]}
        self.assertEqual(self.seen["budgets"], budgets)
        search = sum(r["total_cost"] for r in self.rows if r["team"] == "search")
        self.assertEqual(Decimal(self.seen["budgets"]["search-monthly"]), Decimal(search) / 10**12)
        self.assertEqual(self.seen["rates_version"], "2026-07-24.1")
        self.assertGreater(self.seen["rates_rows"], 10)
        q = self.seen["quote"]
        query = urllib.parse.urlencode({"model": q["model"], "input": 1000, "output": 500})
        status, _, body = fetch(f"{self.url}/api/quote?{query}", TOKEN)
        self.assertEqual(status, 200, body)
        self.assertEqual(q["value"], json.loads(body)["total_usd"])
        # The Savings page shows the advisor's report over this traffic: its window counts every
        # ledger row, and it has as many cards as the report has buying-mode and lever entries.
        self.assertIn(f"{len(self.rows)} requests", self.seen["savings_text"])
        status, _, body = fetch(self.url + "/api/advice", TOKEN)
        self.assertEqual(status, 200, body)
        advice = json.loads(body)
        self.assertEqual(advice["window"]["requests"], len(self.rows))
        self.assertEqual(self.seen["savings_cards"],
                         len(advice.get("buying_mode", [])) + len(advice.get("levers", [])))

    # Named to run last (unittest runs methods by name): the request it sends would otherwise
    # show up in the other tests' live API reads.
    def test_z_the_overview_updates_live_without_a_reload(self):
        marker = ARTIFACTS / "live-ready"
        marker.unlink(missing_ok=True)
        settings = ARTIFACTS / "live.json"
        settings.write_text(json.dumps({"url": self.url, "token": TOKEN,
                                        "live_marker": str(marker)}))
        driver = subprocess.Popen(["node", str(DRIVER), str(settings)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "CHROMIUM": CHROMIUM})
        try:
            deadline = time.monotonic() + 60
            while not marker.exists() and driver.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertTrue(marker.exists(), "the Overview never became ready")
            client(self.proxy.url).converse(modelId=NOVA, messages=converse_messages(
                "SIM{input=100,output=10}"))
            out, err = driver.communicate(timeout=120)
        finally:
            if driver.poll() is None:
                driver.kill()
        seen = json.loads(out)
        self.assertEqual(seen["driver_errors"], [], err[-2000:])
        # The page polls (every 10 s): the new request appears without a reload.
        self.assertEqual(int(seen["live"]["after"]), int(seen["live"]["before"]) + 1, seen["live"])


if __name__ == "__main__":
    unittest.main()
