"""Metering end to end: real boto3 traffic through the proxy to the simulator, with known token
counts, priced and written to the ledger. Every ledger row, the ledger total and
`bedrock-meter report` must equal an independent computation from AWS's published prices (kept
here, not read from our rate table) to the pico-dollar. Also: an aborted stream is recorded with
its exact usage, a rate-table reload under load misprices and loses nothing, and kill -9 loses at
most the last commit window."""
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import unittest
from decimal import Decimal
from pathlib import Path

from harness import (CLAUDE_PROFILE_ARN, PROXY_BIN, ROOT, Proxy, Simulator, base_config, client,
                     converse_messages)

PICO = Decimal(10) ** 12
HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
SONNET4 = "anthropic.claude-sonnet-4-20250514-v1:0"
NOVA_PRO = "amazon.nova-pro-v1:0"
LLAMA70 = "meta.llama3-1-70b-instruct-v1:0"
TITAN = "amazon.titan-text-express-v1"
MISTRAL = "mistral.mistral-large-2402-v1:0"
APP_PROFILE = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/chatbot01"

# AWS's published on-demand prices, USD per 1M tokens (us-east-1), written down independently of
# config/rates/bedrock.yaml: if the shipped table drifts from these, this test fails.
PUBLISHED = {
    HAIKU: {"input": "0.80", "output": "4.00", "cache_read": "0.08", "cache_write": "1.00"},
    (HAIKU, "optimized"): {"input": "1.00", "output": "5.00"},
    SONNET4: {"input": "3.00", "output": "15.00", "cache_read": "0.30", "cache_write": "3.75"},
    (SONNET4, "long"): {"input": "6.00", "output": "22.50", "cache_read": "0.60", "cache_write": "7.50"},
    NOVA_PRO: {"input": "0.80", "output": "3.20", "cache_read": "0.20"},
    LLAMA70: {"input": "0.72", "output": "0.72"},
    TITAN: {"input": "0.20", "output": "0.60"},
    MISTRAL: {"input": "4.00", "output": "12.00"},
}


def expected_cost(key, input=0, output=0, cache_read=0, cache_write=0) -> Decimal:
    """USD, exact: tokens x (USD per 1M) / 1M for each type."""
    p = PUBLISHED[key]
    total = Decimal(0)
    for kind, n in (("input", input), ("output", output), ("cache_read", cache_read),
                    ("cache_write", cache_write)):
        if n:
            total += Decimal(n) * Decimal(p[kind]) / Decimal(1_000_000)
    return total


def ledger_rows(path: Path) -> list:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM requests ORDER BY id")]
    finally:
        con.close()


def cost_of(row) -> Decimal:
    return Decimal(row["total_cost"]) / PICO


def metering_config(sim_url: str, **kw) -> dict:
    cfg = base_config(sim_url, **kw)
    cfg["models"] = {"mappings": [{"arn": APP_PROFILE, "base_model": HAIKU}]}
    return cfg


class PricedEndToEnd(unittest.TestCase):
    def test_mix_of_operations_families_and_dimensions_matches_published_prices(self):
        with Simulator() as sim, Proxy(metering_config(sim.url)) as proxy:
            c = client(proxy.url)
            expected = {}  # request id -> (USD, model_base, usage_source)

            def remember(resp, usd, base, source="reported"):
                expected[resp["ResponseMetadata"]["RequestId"]] = (usd, base, source)

            # Converse with prompt caching: inputTokens excludes cached tokens; each type has
            # its own rate (billable input = 1000 + 3000 + 500).
            r = c.converse(modelId=HAIKU, messages=converse_messages(
                "SIM{input=1000,output=200,cache_read=3000,cache_write=500}"))
            remember(r, expected_cost(HAIKU, 1000, 200, 3000, 500), HAIKU)
            # ConverseStream on a geographic inference profile: billed at the source region.
            r = c.converse_stream(modelId="us." + SONNET4, messages=converse_messages(
                "SIM{input=2000,output=300,events=4}"))
            for _ in r["stream"]:
                pass
            remember(r, expected_cost(SONNET4, 2000, 300), SONNET4)
            # InvokeModel on a foundation-model ARN (percent-encoded on the wire).
            r = c.invoke_model(modelId=f"arn:aws:bedrock:us-east-1::foundation-model/{NOVA_PRO}",
                               body=json.dumps({"messages": [{"role": "user", "content": [
                                   {"text": "SIM{input=500,output=100,cache_read=400}"}]}]}))
            r["body"].read()
            remember(r, expected_cost(NOVA_PRO, 500, 100, 400), NOVA_PRO)
            # InvokeModelWithResponseStream: usage from the last chunk's invocation metrics.
            r = c.invoke_model_with_response_stream(
                modelId=LLAMA70, body=json.dumps({"prompt": "SIM{input=150,output=250,events=5}"}))
            for _ in r["body"]:
                pass
            remember(r, expected_cost(LLAMA70, 150, 250), LLAMA70)
            # Titan and Mistral bodies (headers carry the counts).
            r = c.invoke_model(modelId=TITAN, body=json.dumps({"inputText": "SIM{input=80,output=40}"}))
            r["body"].read()
            remember(r, expected_cost(TITAN, 80, 40), TITAN)
            r = c.converse(modelId=MISTRAL, messages=converse_messages("SIM{input=300,output=60}"))
            remember(r, expected_cost(MISTRAL, 300, 60), MISTRAL)
            # Latency-optimized, both ways an SDK asks for it: header (InvokeModel) and body
            # (Converse performanceConfig).
            r = c.invoke_model(modelId=HAIKU, performanceConfigLatency="optimized", body=json.dumps({
                "anthropic_version": "bedrock-2023-05-31", "max_tokens": 2000,
                "messages": [{"role": "user", "content": "SIM{input=1000,output=1000}"}]}))
            r["body"].read()
            remember(r, expected_cost((HAIKU, "optimized"), 1000, 1000), HAIKU)
            r = c.converse(modelId=HAIKU, performanceConfig={"latency": "optimized"},
                           messages=converse_messages("SIM{input=700,output=70}"))
            remember(r, expected_cost((HAIKU, "optimized"), 700, 70), HAIKU)
            # Long context: input + cache read above 200k switches every rate for the request.
            r = c.converse(modelId=SONNET4, messages=converse_messages(
                "SIM{input=150000,output=1000,cache_read=60000}"))
            remember(r, expected_cost((SONNET4, "long"), 150000, 1000, 60000), SONNET4)
            # Application inference profile mapped in config to its base model.
            r = c.converse(modelId=APP_PROFILE, messages=converse_messages("SIM{input=64,output=32}"))
            remember(r, expected_cost(HAIKU, 64, 32), HAIKU)
            # CountTokens is not billed.
            r = c.count_tokens(modelId=HAIKU, input={"converse": {
                "messages": converse_messages("SIM{input=999}")}})
            remember(r, Decimal(0), HAIKU, "none")
            # A provider-reported zero output stays zero.
            r = c.converse(modelId=HAIKU, messages=converse_messages("SIM{input=10,output=0}"))
            remember(r, expected_cost(HAIKU, 10, 0), HAIKU)

            code = proxy.stop()
            self.assertEqual(code, 0)
            rows = {row["request_id"]: row for row in ledger_rows(proxy.ledger_path)}
            self.assertEqual(set(rows), set(expected), "one ledger row per request, no more")
            for rid, (usd, base, source) in expected.items():
                row = rows[rid]
                with self.subTest(model=row["model_requested"], op=row["operation"]):
                    self.assertEqual(cost_of(row), usd)
                    self.assertEqual(row["model_base"], base)
                    self.assertEqual(row["priced"], 1)
                    self.assertEqual(row["usage_source"], source)
                    self.assertTrue(row["rate_table_version"])
                    if row["total_cost"]:
                        self.assertRegex(row["rate_entry"], r"bedrock\.yaml:\d+$")
            self.assertEqual(rows[next(k for k, v in expected.items() if v[1] == SONNET4 and
                                       rows[k]["model_requested"].startswith("us."))]["scope"], "geo")
            total = sum(v[0] for v in expected.values())
            self.assertEqual(sum(cost_of(r) for r in rows.values()), total)

            # `bedrock-meter report` reads the same ledger and prints the same total.
            rep = subprocess.run([PROXY_BIN, "report", "--ledger", str(proxy.ledger_path),
                                  "--since", "1h", "--by", "model"],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(rep.returncode, 0, rep.stderr)
            self.assertIn(f"total: {len(expected)} requests, ${total.quantize(Decimal('0.000001'))}",
                          rep.stdout)
            # And the chargeback export carries every row with its exact cost.
            exp = subprocess.run([PROXY_BIN, "ledger", "export", "--ledger", str(proxy.ledger_path),
                                  "--since", "1h", "--format", "jsonl"],
                                 capture_output=True, text=True, timeout=30)
            exported = [json.loads(l) for l in exp.stdout.splitlines()]
            self.assertEqual(sorted(e["request_id"] for e in exported), sorted(expected))
            self.assertEqual(sum(Decimal(e["cost_usd"]) for e in exported), total)

    def test_unknown_model_is_unpriced_never_zero_dollars(self):
        with Simulator() as sim, Proxy(metering_config(sim.url)) as proxy:
            r = client(proxy.url).converse(modelId="acme.mystery-model-v9:0",
                                           messages=converse_messages("SIM{input=100,output=10}"))
            rid = r["ResponseMetadata"]["RequestId"]
            line = next(l for l in proxy.wait_for_log(1) if l["request_id"] == rid)
            self.assertIs(line["priced"], False)
            self.assertIn("acme.mystery-model-v9:0", line["pricing_note"])
            proxy.stop()
            row = ledger_rows(proxy.ledger_path)[0]
            self.assertEqual((row["priced"], row["input_tokens"], row["model_label"]), (0, 100, "other"))
            self.assertTrue(row["unpriced_reason"])


class AbortedStreams(unittest.TestCase):
    def test_client_abort_records_the_exact_usage(self):
        with Simulator() as sim, Proxy(metering_config(sim.url)) as proxy:
            c = client(proxy.url)
            r = c.converse_stream(modelId=HAIKU, messages=converse_messages(
                "SIM{input=400,output=120,events=10,pace_ms=40}"))
            stream = r["stream"]
            next(iter(stream))
            stream.close()
            rid = r["ResponseMetadata"]["RequestId"]
            deadline = time.monotonic() + 5
            while not any(l["request_id"] == rid for l in proxy.access_log()) and time.monotonic() < deadline:
                time.sleep(0.02)
            proxy.stop()
            row = next(x for x in ledger_rows(proxy.ledger_path) if x["request_id"] == rid)
            self.assertEqual(row["outcome"], "client_abort")
            self.assertEqual((row["input_tokens"], row["output_tokens"], row["usage_source"]),
                             (400, 120, "reported"))
            self.assertEqual(cost_of(row), expected_cost(HAIKU, 400, 120))

    def test_without_draining_the_usage_is_estimated_and_marked(self):
        with Simulator() as sim:
            cfg = metering_config(sim.url, metering={"drain_on_client_abort": False})
            with Proxy(cfg) as proxy:
                r = client(proxy.url).converse_stream(modelId=HAIKU, messages=converse_messages(
                    "SIM{input=400,output=120,events=10,pace_ms=40}"))
                stream = r["stream"]
                next(iter(stream))
                stream.close()
                rid = r["ResponseMetadata"]["RequestId"]
                time.sleep(0.3)
                proxy.stop()
                row = next(x for x in ledger_rows(proxy.ledger_path) if x["request_id"] == rid)
                self.assertEqual((row["outcome"], row["usage_source"]), ("client_abort", "estimated"))
                self.assertLess(row["output_tokens"], 120)

    def test_upstream_cut_records_what_is_known(self):
        with Simulator() as sim, Proxy(metering_config(sim.url)) as proxy:
            r = client(proxy.url).invoke_model_with_response_stream(modelId=HAIKU, body=json.dumps({
                "anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": [
                    {"role": "user", "content": "SIM{input=90,output=40,events=8,fault=cut,after=3}"}]}))
            with self.assertRaises(Exception):
                for _ in r["body"]:
                    pass
            time.sleep(0.2)
            proxy.stop()
            row = ledger_rows(proxy.ledger_path)[0]
            self.assertEqual((row["outcome"], row["usage_source"], row["input_tokens"]),
                             ("upstream_cut", "estimated", 90))
            self.assertGreater(row["output_tokens"], 0)


class ReloadUnderLoad(unittest.TestCase):
    def test_rate_table_swap_while_traffic_flows_loses_and_misprices_nothing(self):
        tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bm-reload-{os.getpid()}"
        tmp.mkdir(exist_ok=True)
        table = tmp / "rates.yaml"

        def write_table(version, price):
            text = (f'version: "{version}"\ncurrency: USD\nunit: per_million_tokens\nentries:\n'
                    f'  - model: {HAIKU}\n    regions: ["*"]\n    input: "{price}"\n'
                    f'    output: "{price}"\n    source: "test"\n')
            tmp_path = tmp / "rates.yaml.tmp"
            tmp_path.write_text(text)
            os.replace(tmp_path, table)  # atomic, as a config-management tool would do

        write_table("v1", "1.00")
        with Simulator(threads=2) as sim:
            cfg = metering_config(sim.url, pricing={"rate_table": str(table),
                                                    "reload": {"watch": True, "poll_interval": "50ms"}})
            with Proxy(cfg) as proxy:
                sent, errors = [], []
                stop = threading.Event()

                def traffic():
                    c = client(proxy.url)
                    while not stop.is_set():
                        try:
                            r = c.converse(modelId=HAIKU, messages=converse_messages("SIM{input=1000,output=1000}"))
                            sent.append(r["ResponseMetadata"]["RequestId"])
                        except Exception as e:  # noqa: BLE001 - any failure fails the test below
                            errors.append(e)

                threads = [threading.Thread(target=traffic) for _ in range(3)]
                for t in threads:
                    t.start()
                time.sleep(0.5)
                write_table("v2", "2.00")
                time.sleep(0.5)
                (tmp / "broken.txt").write_text("")
                table.write_text("version: [broken")  # rejected: v2 stays
                time.sleep(0.4)
                write_table("v3", "3.00")
                time.sleep(0.5)
                stop.set()
                for t in threads:
                    t.join(10)
                self.assertEqual(errors, [])
                self.assertEqual(proxy.stop(), 0)
                rows = ledger_rows(proxy.ledger_path)
                self.assertEqual(sorted(r["request_id"] for r in rows), sorted(sent))
                price = {"v1": Decimal("1.00"), "v2": Decimal("2.00"), "v3": Decimal("3.00")}
                versions = set()
                for r in rows:
                    versions.add(r["rate_table_version"])
                    # 2000 tokens at the version's price: one snapshot per request, never mixed.
                    self.assertEqual(cost_of(r), 2000 * price[r["rate_table_version"]] / 1_000_000)
                self.assertEqual(versions, {"v1", "v2", "v3"})
                self.assertIn("rate table reload rejected", proxy.stderr())


class KillNine(unittest.TestCase):
    def test_kill_9_loses_at_most_the_last_commit_window(self):
        window = 0.2  # ledger.flush_interval below; the documented bound
        with Simulator() as sim:
            cfg = metering_config(sim.url)
            with Proxy(cfg) as proxy:
                proxy_cfg = json.loads(proxy.config_path.read_text())
                self.assertLessEqual(float(proxy_cfg["ledger"]["flush_interval"].rstrip("ms")) / 1000, window)
                done = []  # (request id, completion time)
                stop = threading.Event()

                def traffic():
                    c = client(proxy.url)
                    while not stop.is_set():
                        try:
                            r = c.converse(modelId=HAIKU, messages=converse_messages("SIM{input=10,output=5}"))
                            done.append((r["ResponseMetadata"]["RequestId"], time.monotonic()))
                        except Exception:  # noqa: BLE001 - requests cut by the kill itself
                            return

                threads = [threading.Thread(target=traffic) for _ in range(3)]
                for t in threads:
                    t.start()
                time.sleep(1.5)
                killed_at = time.monotonic()
                proxy.proc.send_signal(signal.SIGKILL)
                proxy.proc.wait(5)
                stop.set()
                for t in threads:
                    t.join(10)
                in_ledger = {r["request_id"] for r in ledger_rows(proxy.ledger_path)}
                must_have = [rid for rid, at in done if at < killed_at - window]
                self.assertGreater(len(must_have), 50)
                missing = [rid for rid in must_have if rid not in in_ledger]
                self.assertEqual(missing, [], f"{len(missing)} of {len(must_have)} lost")


if __name__ == "__main__":
    unittest.main()
