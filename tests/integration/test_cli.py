"""The bedrock-meter command line: check-config explains each error with its location,
keys create mints credentials that work once their printed config lines are added, SIGHUP
reloads the config without a restart (a bad file is rejected and the old one kept), and
`rates import` / `rates diff` turn AWS Price List offers into a table a running proxy applies."""
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from botocore.exceptions import ClientError

from harness import (CLAUDE, PROXY_BIN, ROOT, Proxy, Simulator, base_config, bearer_client,
                     bearer_env, client, converse_messages)

MSGS = converse_messages("SIM{input=4,output=2}")


def run(*args):
    return subprocess.run([PROXY_BIN, *args], capture_output=True, text=True, timeout=30)


class CheckConfig(unittest.TestCase):
    def test_shipped_demo_config_is_valid(self):
        r = run("check-config", "--config", str(ROOT / "config/examples/demo.yaml"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("OK", r.stdout)

    def test_errors_name_file_line_column_and_path(self):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "bad.yaml"
            p.write_text("listeners:\n  - address: 127.0.0.1\n    port: 99999\nupstream:\n  regoin: us-east-1\n")
            r = run("check-config", "--config", str(p))
            self.assertEqual(r.returncode, 1)
            self.assertRegex(r.stderr, re.escape(str(p)) + r":3:\d+: listeners\[0\]\.port: ")
            self.assertRegex(r.stderr, re.escape(str(p)) + r":5:\d+: upstream\.regoin: .*region")

    def test_missing_file(self):
        r = run("check-config", "--config", "/nonexistent/config.yaml")
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent/config.yaml", r.stderr)

    def test_usage_errors(self):
        self.assertEqual(run("frobnicate").returncode, 2)
        self.assertEqual(run("serve").returncode, 2)
        self.assertEqual(run("keys", "create", "--team", "bad team!", "--app", "x").returncode, 2)


class Price(unittest.TestCase):
    RATES = str(ROOT / "config" / "rates" / "bedrock.yaml")

    def test_quote_names_the_entry_and_is_exact(self):
        r = run("price", "--rates", self.RATES, "--model", "anthropic.claude-3-5-haiku-20241022-v1:0",
                "--region", "us-east-1", "--input", "1000", "--output", "200",
                "--cache-read", "3000", "--cache-write", "500")
        self.assertEqual(r.returncode, 0, r.stderr)
        # 1000 x 0.80 + 200 x 4.00 + 3000 x 0.08 + 500 x 1.00, per 1M tokens = $0.00234
        self.assertIn("total:        $0.002340000", r.stdout)
        self.assertRegex(r.stdout, r"entry: +.*bedrock\.yaml:\d+")

    def test_profile_and_latency_and_long_context(self):
        r = run("price", "--rates", self.RATES, "--model", "us.anthropic.claude-sonnet-4-20250514-v1:0",
                "--region", "us-west-2", "--input", "210000", "--output", "1000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("scope geo", r.stdout)
        self.assertIn("long context: yes", r.stdout)
        # 210000 x 6.00 + 1000 x 22.50 per 1M = 1.26 + 0.0225
        self.assertIn("total:        $1.282500000", r.stdout)
        r = run("price", "--rates", self.RATES, "--model", "anthropic.claude-3-5-haiku-20241022-v1:0",
                "--region", "us-east-1", "--input", "1000000", "--output", "0", "--latency", "optimized")
        self.assertIn("total:        $1.000000000", r.stdout)

    def test_unknown_model_is_unpriced_exit_3(self):
        r = run("price", "--rates", self.RATES, "--model", "acme.nothing-v1:0", "--region",
                "us-east-1", "--input", "5", "--output", "5")
        self.assertEqual(r.returncode, 3)
        self.assertIn("UNPRICED", r.stdout)

    def test_bad_rate_table_is_reported_with_its_location(self):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "rates.yaml"
            p.write_text('version: "x"\ncurrency: USD\nunit: per_million_tokens\nentries:\n'
                         '  - model: m.x-v1\n    regions: ["*"]\n    input: "-1"\n    output: "1"\n'
                         '    source: "t"\n')
            r = run("price", "--rates", str(p), "--model", "m.x-v1", "--input", "1", "--output", "1")
            self.assertEqual(r.returncode, 1)
            self.assertRegex(r.stderr, re.escape(str(p)) + r":7:\d+: ")


class Rates(unittest.TestCase):
    OFFERS = [str(ROOT / "tests/data/price_list" / f) for f in (
        "amazonbedrock-us-east-1.json", "foundationmodels-us-east-1-page1.json",
        "foundationmodels-us-east-1-page2.json")]
    SHIPPED = str(ROOT / "config" / "rates" / "bedrock.yaml")
    HAIKU45 = "anthropic.claude-haiku-4-5-20251001-v1:0"

    def import_to(self, out: Path, *extra: str):
        offers = [a for f in self.OFFERS for a in ("--offer", f)]
        return run("rates", "import", *offers, "--out", str(out), *extra)

    def test_import_prices_diff_and_strict(self):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "rates.yaml"
            r = self.import_to(out)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("15 entries, 2 provisioned entries from 45 of 60 rows; 13 skipped", r.stderr)
            self.assertIn("'Palmyra Vision 7' is not in the model mapping", r.stderr)
            # The imported table prices a US-profile Haiku 4.5 request at the offer's regional
            # rates: 1,000 x $1.10/M + 200 x $5.50/M.
            q = run("price", "--rates", str(out), "--model", f"us.{self.HAIKU45}",
                    "--region", "us-east-1", "--input", "1000", "--output", "200")
            self.assertEqual(q.returncode, 0, q.stderr)
            self.assertIn("total:        $0.002200000", q.stdout)
            self.assertIn("SKU JQDUC8Q4K8C6GSGH", q.stdout)
            # The diff against the shipped table names the 10% regional uplift the offer states.
            d1 = run("rates", "diff", self.SHIPPED, str(out))
            self.assertEqual(d1.returncode, 1, d1.stderr)
            self.assertIn(f"changed  {self.HAIKU45} us-east-1  input: 1.00 -> 1.10 (+10.0%)", d1.stdout)
            same = run("rates", "diff", str(out), str(out), "--format", "json")
            self.assertEqual((same.returncode, json.loads(same.stdout)), (0, []))
            strict = self.import_to(Path(d) / "strict.yaml", "--strict")
            self.assertEqual(strict.returncode, 1)

    def test_bad_input_is_named(self):
        with tempfile.TemporaryDirectory() as d:
            cur = Path(d) / "cur.csv"
            cur.write_text("identity/LineItemId,bill/PayerAccountId\n")
            r = run("rates", "import", "--offer", str(cur), "--out", str(Path(d) / "x.yaml"))
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"{cur}: not JSON", r.stderr)
            self.assertFalse((Path(d) / "x.yaml").exists())
            bad_map = Path(d) / "map.yaml"
            bad_map.write_text("models:\n  - price_list: X\n    model: us.amazon.nova-pro-v1:0\n")
            r = self.import_to(Path(d) / "y.yaml", "--models", str(bad_map))
            self.assertEqual(r.returncode, 1)
            self.assertRegex(r.stderr, re.escape(str(bad_map)) + r":3:\d+: models\[0\]\.model: .*inference-profile")
            self.assertEqual(run("rates", "import", "--out", "x.yaml").returncode, 2)
            self.assertEqual(run("rates", "import", *[a for f in self.OFFERS for a in ("--offer", f)],
                                 "--regions", "mars-1", "--out", "x.yaml").returncode, 2)
            self.assertEqual(run("rates", "diff", self.SHIPPED).returncode, 2)
            self.assertEqual(run("rates", "frobnicate").returncode, 2)

    def test_a_running_proxy_prices_with_the_imported_table_once_written(self):
        with tempfile.TemporaryDirectory() as d, Simulator() as sim:
            table = Path(d) / "rates.yaml"
            table.write_text(Path(self.SHIPPED).read_text())
            cfg = base_config(sim.url, pricing={"rate_table": str(table),
                                                "reload": {"watch": True, "poll_interval": "50ms"}})
            with Proxy(cfg) as proxy:
                c = client(proxy.url)
                msgs = converse_messages("SIM{input=1000,output=200}")
                c.converse(modelId=self.HAIKU45, messages=msgs)
                self.assertEqual(self.import_to(table).returncode, 0)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and "price-list-20260901183649" not in proxy.stderr():
                    time.sleep(0.05)
                c.converse(modelId=self.HAIKU45, messages=msgs)
                log = proxy.wait_for_log(2)
                self.assertEqual([e["rate_table_version"] for e in log][1], "price-list-20260901183649")
                # In-region Haiku 4.5 before: the shipped table's 1.00/5.00 per 1M; after: the
                # offer's regional 1.10/5.50, which covers in-region and geographic profiles.
                self.assertEqual([e["cost_usd"] for e in log], ["0.002000000", "0.002200000"])


class KeysCreate(unittest.TestCase):
    def test_minted_keys_work_once_added_to_the_config(self):
        sig = run("keys", "create", "--team", "research", "--app", "notebooks")
        bearer = run("keys", "create", "--team", "ops", "--app", "runbooks", "--type", "bearer")
        self.assertEqual((sig.returncode, bearer.returncode), (0, 0))
        akid = re.search(r"AWS_ACCESS_KEY_ID=(\S+)", sig.stdout).group(1)
        secret = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", sig.stdout).group(1)
        token = re.search(r"AWS_BEARER_TOKEN_BEDROCK=(\S+)", bearer.stdout).group(1)
        sha = re.search(r"sha256: ([0-9a-f]{64})", bearer.stdout).group(1)
        self.assertRegex(akid, r"^BMAK[A-Z2-7]{16}$")
        self.assertEqual(len(secret), 40)
        self.assertNotIn(token, bearer.stdout.split("sha256:")[1])  # config lines hold the hash only
        # Two runs never mint the same key.
        self.assertNotEqual(akid, re.search(r"AWS_ACCESS_KEY_ID=(\S+)",
                                            run("keys", "create", "--team", "a", "--app", "b").stdout).group(1))
        with Simulator() as sim:
            cfg = base_config(sim.url)
            cfg["auth"]["access_keys"].append({"access_key_id": akid, "secret_access_key": secret,
                                               "team": "research", "app": "notebooks"})
            cfg["auth"]["bearer_keys"].append({"sha256": sha, "team": "ops", "app": "runbooks"})
            with Proxy(cfg) as proxy:
                client(proxy.url, akid, secret).converse(modelId=CLAUDE, messages=MSGS)
                with bearer_env(token):
                    bearer_client(proxy.url).converse(modelId=CLAUDE, messages=MSGS)
                teams = [(l["team"], l["app"]) for l in proxy.wait_for_log(2)]
                self.assertEqual(teams, [("research", "notebooks"), ("ops", "runbooks")])


class Reload(unittest.TestCase):
    def test_sighup_adds_a_key_and_keeps_the_old_config_when_the_new_one_is_bad(self):
        with Simulator() as sim:
            cfg = base_config(sim.url)
            with Proxy(cfg) as proxy:
                newcomer = client(proxy.url, "BMAKNEWKEY00000001", "new-secret-0001")
                with self.assertRaises(ClientError):
                    newcomer.converse(modelId=CLAUDE, messages=MSGS)
                cfg["auth"]["access_keys"].append({"access_key_id": "BMAKNEWKEY00000001",
                                                   "secret_access_key": "new-secret-0001",
                                                   "team": "new", "app": "app"})
                proxy.config_path.write_text(json.dumps(cfg))
                proxy.proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 5
                while "config reloaded" not in proxy.stderr() and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertEqual(newcomer.converse(modelId=CLAUDE, messages=MSGS)["usage"]["outputTokens"], 2)

                proxy.config_path.write_text("listeners: [")  # broken YAML
                proxy.proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 5
                while "reload rejected" not in proxy.stderr() and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertIn("reload rejected", proxy.stderr())
                self.assertEqual(newcomer.converse(modelId=CLAUDE, messages=MSGS)["usage"]["outputTokens"], 2)
                self.assertEqual(proxy.stop(), 0)


class StartupFailsFast(unittest.TestCase):
    def test_no_upstream_credentials_is_one_clear_line_and_exit_1(self):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "c.yaml"
            p.write_text(json.dumps(base_config("http://127.0.0.1:9")))
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update({"AWS_EC2_METADATA_DISABLED": "true", "HOME": d,
                        "AWS_SHARED_CREDENTIALS_FILE": str(Path(d) / "none"),
                        "AWS_CONFIG_FILE": str(Path(d) / "none")})
            r = subprocess.run([PROXY_BIN, "serve", "--config", str(p)], capture_output=True,
                               text=True, timeout=30, env=env)
            self.assertEqual(r.returncode, 1)
            self.assertIn("upstream credentials", r.stderr)

    def test_port_in_use(self):
        with Simulator() as sim:
            cfg = base_config(sim.url)
            cfg["listeners"] = [{"address": "127.0.0.1", "port": sim.port}]
            with tempfile.TemporaryDirectory() as d:
                p = Path(d) / "c.yaml"
                p.write_text(json.dumps(cfg))
                env = {**os.environ, "AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "B"}
                r = subprocess.run([PROXY_BIN, "serve", "--config", str(p)], capture_output=True,
                                   text=True, timeout=30, env=env)
                self.assertEqual(r.returncode, 1)
                self.assertIn(f"cannot listen on 127.0.0.1:{sim.port}", r.stderr)


if __name__ == "__main__":
    unittest.main()
