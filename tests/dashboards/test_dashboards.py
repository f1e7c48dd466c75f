"""Checks every shipped dashboard and rule expression (tests/dashboards/exprs.py):

- each one parses (promtool check rules on a generated file of recording rules: promtool has no
  standalone expression checker);
- each metric and label it names is in the metrics contract (contract.py) or is a recording rule,
  and closed label values (type="cache_read"...) are real ones;
- the dashboards are well-formed Grafana JSON (datasource variable, ids, layout, descriptions);
- every alert has severity, summary, description and runbook, and a promtool unit test where it
  fires and one where it stays quiet; every recording rule is evaluated by a promql_expr_test;
- docs/metrics.md covers every metric, recording rule, alert and dashboard.

Standard library only; needs promtool (scripts/install-deps installs the prometheus package).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contract  # noqa: E402
import exprs  # noqa: E402

PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")
if os.environ.get("BM_REQUIRE_TOOLS") and not PROMTOOL:
    raise SystemExit("test_dashboards: promtool missing (run scripts/install-deps)")
RULE_TESTS = sorted((exprs.RULES / "tests").glob("*.yml"))

AGGREGATORS = {"sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev",
               "stdvar", "count_values", "group", "limitk", "limit_ratio"}
KEYWORDS = AGGREGATORS | {"by", "without", "on", "ignoring", "group_left", "group_right", "and",
                          "or", "unless", "bool", "offset", "inf", "nan", "atan2"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<num>(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+)(?:ms|s|m|h|d|w|y)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){},@])
""", re.X)


def tokens(expr):
    pos, out = 0, []
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot tokenize at {expr[pos:pos + 20]!r} in {expr!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def analyse(expr):
    """(selectors, grouping labels): selectors are (metric name, [(label, op, value)])."""
    toks = tokens(expr)
    selectors, grouping = [], set()
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "ident" and text in GROUPING and nxt == "(":
            j = i + 2
            while toks[j][1] != ")":
                if toks[j][0] == "ident":
                    grouping.add(toks[j][1])
                j += 1
            i = j + 1
            continue
        if kind == "ident" and text not in KEYWORDS and nxt != "(":
            matchers = []
            j = i + 1
            if nxt == "{":
                j = i + 2
                while toks[j][1] != "}":
                    if toks[j][0] == "ident":
                        label, op, value = toks[j][1], toks[j + 1][1], json.loads(toks[j + 2][1])
                        matchers.append((label, op, value))
                        j += 3
                    else:
                        j += 1
                j += 1
            selectors.append((text, matchers))
            i = j
            continue
        i += 1
    return selectors, grouping


def recording_rule_names():
    return {name for f in exprs.rule_files() for kind, name, _ in exprs.rules(f) if kind == "record"}


def alert_names():
    return [name for f in exprs.rule_files() for kind, name, _ in exprs.rules(f) if kind == "alert"]


def promtool_check(expressions):
    """Runs promtool check rules on the expressions as recording rules; (ok, output)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "expressions.yml"
        lines = ["groups:", "  - name: dashboards-expression-check", "    rules:"]
        for i, (_, expr) in enumerate(expressions):
            lines.append(f"      - record: dashboards_check:expr_{i}")
            lines.append(f"        expr: {json.dumps(expr)}")
        path.write_text("\n".join(lines) + "\n")
        r = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
        return r.returncode == 0, r.stdout + r.stderr


@unittest.skipUnless(PROMTOOL, "promtool not installed (scripts/install-deps)")
class ExpressionSyntax(unittest.TestCase):
    def test_every_expression_parses(self):
        found = exprs.all_expressions()
        self.assertGreater(len(found), 50)
        ok, out = promtool_check(found)
        if not ok:
            bad = sorted({int(n) for n in re.findall(r"dashboards_check:expr_(\d+)", out)})
            where = "\n".join(f"  {found[n][0]}: {found[n][1]}" for n in bad)
            self.fail(f"promtool rejected expressions:\n{out}\n{where}")

    def test_the_checker_rejects_a_broken_expression(self):
        # Guards against a check that passes whatever it is given.
        ok, out = promtool_check([("good", "sum(rate(bedrock_requests_total[5m]))"),
                                  ("broken", "sum(rate(bedrock_requests_total[5m])")])
        self.assertFalse(ok, out)
        self.assertIn("dashboards_check:expr_1", out)
        ok, out = promtool_check([("unknown function", "rates(bedrock_requests_total[5m])")])
        self.assertFalse(ok, out)


class Extraction(unittest.TestCase):
    def test_variables_are_all_substituted(self):
        for source, expr in exprs.all_expressions():
            self.assertNotIn("$", expr, source)
            self.assertNotIn("[[", expr, source)

    def test_substitution(self):
        self.assertEqual(exprs.substitute('rate(x{team=~"$team"}[$__rate_interval])', {"team": ".*"}),
                         'rate(x{team=~".*"}[1m])')
        self.assertEqual(exprs.substitute('increase(x{a=~"${app:regex}"}[$__range])', {"app": ".*"}),
                         'increase(x{a=~".*"}[1h])')
        with self.assertRaises(ValueError):
            exprs.substitute("x{a=~\"$nope\"}", {})

    def test_every_panel_and_rule_is_extracted(self):
        sources = [s for s, _ in exprs.all_expressions()]
        targets = 0
        for f in exprs.dashboard_files():
            board = json.loads(f.read_text())
            targets += sum(len(p.get("targets", [])) for p in exprs._panels(board["panels"]))
        n_rules = sum(len(exprs.rules(f)) for f in exprs.rule_files())
        self.assertEqual(sum(1 for s in sources if ": panel " in s), targets)
        self.assertEqual(sum(1 for s in sources if s.startswith("dashboards/rules/")), n_rules)
        # Each rule file's rule count matches what promtool finds in it.
        if PROMTOOL:
            for f in exprs.rule_files():
                out = subprocess.run([PROMTOOL, "check", "rules", str(f)], capture_output=True,
                                     text=True).stdout
                self.assertIn(f"SUCCESS: {len(exprs.rules(f))} rules found", out, f)

    def test_analyse(self):
        sel, grp = analyse('sum by (team) (rate(bedrock_spend_usd_total{type="input",team=~"a|b"}[5m]))'
                           ' / on (team) group_left x:y:z offset 5m > 1e9')
        self.assertEqual(sel, [("bedrock_spend_usd_total", [("type", "=", "input"), ("team", "=~", "a|b")]),
                               ("x:y:z", [])])
        self.assertEqual(grp, {"team"})


class Contract(unittest.TestCase):
    def test_metrics_labels_and_values_are_in_the_contract(self):
        series = contract.series_labels()
        recorded = recording_rule_names()
        all_labels = set().union(*series.values()) | {"le"}
        problems = []
        for source, expr in exprs.all_expressions():
            selectors, grouping = analyse(expr)
            for name, matchers in selectors:
                if name in recorded:
                    continue
                if name not in series:
                    problems.append(f"{source}: unknown metric {name}")
                    continue
                base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in contract.METRICS else name
                for label, op, value in matchers:
                    if label not in series[name]:
                        problems.append(f"{source}: {name} has no label {label}")
                    closed = contract.LABEL_VALUES.get((base, label))
                    if closed and op in ("=", "=~") and re.fullmatch(r"[\w|]+", value):
                        for v in value.split("|"):
                            if v not in closed:
                                problems.append(f"{source}: {name}{{{label}}} is never {v!r}")
                if name == "up" and ("job", "=", contract.JOB) not in matchers:
                    problems.append(f"{source}: up without job=\"{contract.JOB}\"")
            recorded_labels = {"budget", "operation", "model", "code", "team", "app", "type"}
            for label in grouping - all_labels - recorded_labels:
                problems.append(f"{source}: groups by unknown label {label}")
        self.assertEqual(problems, [])

    def test_the_contract_check_catches_typos(self):
        selectors, _ = analyse('rate(bedrock_spend_usd{teem="x"}[5m])')
        self.assertNotIn(selectors[0][0], contract.series_labels())


class Dashboards(unittest.TestCase):
    def test_structure(self):
        uids = set()
        files = exprs.dashboard_files()
        self.assertEqual({f.name for f in files}, {"spend.json", "operations.json", "budgets.json",
                                                    "savings.json"})
        for f in files:
            with self.subTest(dashboard=f.name):
                board = json.loads(f.read_text())
                self.assertNotIn(board["uid"], uids)
                uids.add(board["uid"])
                self.assertLessEqual(len(board["uid"]), 40)
                self.assertGreaterEqual(board["schemaVersion"], 36)
                self.assertIn("bedrock-meter", board["tags"])
                self.assertEqual(board["timezone"], "utc")
                variables = {v["name"]: v for v in board["templating"]["list"]}
                ds = variables["datasource"]
                self.assertEqual((ds["type"], ds["query"]), ("datasource", "prometheus"))
                ids = set()
                cells = set()
                for p in exprs._panels(board["panels"]):
                    self.assertNotIn(p["id"], ids, p.get("title"))
                    ids.add(p["id"])
                    g = p["gridPos"]
                    self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
                    for x in range(g["x"], g["x"] + g["w"]):
                        for y in range(g["y"], g["y"] + g["h"]):
                            self.assertNotIn((x, y), cells, f"{p['title']} overlaps another panel")
                            cells.add((x, y))
                    if p["type"] == "row":
                        continue
                    self.assertTrue(p.get("title"))
                    self.assertTrue(p.get("description"), p["title"])
                    if p["type"] == "text":  # static markdown: no datasource, no query
                        self.assertNotIn("targets", p, p["title"])
                        self.assertTrue(p["options"]["content"].strip(), p["title"])
                        continue
                    self.assertEqual(p["datasource"], {"type": "prometheus", "uid": "${datasource}"})
                    refs = [t["refId"] for t in p["targets"]]
                    self.assertTrue(refs, p["title"])
                    self.assertEqual(len(refs), len(set(refs)), p["title"])
                    for t in p["targets"]:
                        self.assertEqual(t["datasource"]["uid"], "${datasource}", p["title"])
                    if p.get("timeFrom"):
                        self.assertRegex(p["timeFrom"], r"^(now/[dwMy]|\d+[smhdwMy])$")
                for v in variables.values():
                    if v["type"] == "query":
                        self.assertEqual(v["datasource"]["uid"], "${datasource}")

    def test_every_variable_is_used(self):
        for f in exprs.dashboard_files():
            text = f.read_text()
            board = json.loads(text)
            for v in board["templating"]["list"]:
                if v["name"] == "datasource":
                    continue
                uses = len(re.findall(r"\$%s\b|\$\{%s\b" % (v["name"], v["name"]), text))
                self.assertGreater(uses, 0, f"{f.name}: ${v['name']} is never used")


def _alert_blocks():
    text = (exprs.RULES / "alerts.yml").read_text()
    parts = re.split(r"^      - alert: ", text, flags=re.M)[1:]
    return {p.split("\n", 1)[0].strip(): p for p in parts}


def _rule_tests():
    firing, quiet, evaluated = {}, {}, ""
    for f in RULE_TESTS:
        text = f.read_text()
        for m in re.finditer(r"alertname: (\w+)\n\s+exp_alerts:(.*)", text):
            (quiet if m.group(2).strip() == "[]" else firing).setdefault(m.group(1), []).append(f.name)
        evaluated += "\n".join(re.findall(r"- expr: (.*)", text)) + "\n"
    return firing, quiet, evaluated


class Rules(unittest.TestCase):
    def test_alerts_have_severity_and_annotations(self):
        blocks = _alert_blocks()
        self.assertEqual(sorted(blocks), sorted(alert_names()))
        for name in ["BudgetExceeded", "BudgetForecastExceeded", "SpendBurnRateFast",
                     "SpendBurnRateSlow", "UnpricedTraffic", "HighEstimatedTokenShare",
                     "UpstreamErrorRateHigh", "BedrockMeterDown", "RateTableReloadFailing"]:
            self.assertIn(name, blocks)
        for name, block in blocks.items():
            with self.subTest(alert=name):
                self.assertRegex(block, r"\n\s+severity: (critical|warning)\n")
                for key in ("summary", "description", "runbook"):
                    self.assertRegex(block, r"\n\s+%s: " % key)

    def test_every_alert_has_a_firing_and_a_quiet_unit_test(self):
        firing, quiet, _ = _rule_tests()
        for name in alert_names():
            self.assertIn(name, firing, f"{name}: no promtool test where it fires")
            self.assertIn(name, quiet, f"{name}: no promtool test where it stays quiet")

    def test_every_recording_rule_is_evaluated_by_a_unit_test(self):
        _, _, evaluated = _rule_tests()
        for name in sorted(recording_rule_names()):
            self.assertRegex(evaluated, r"(^|[^\w:])%s([^\w:]|$)" % re.escape(name),
                             f"{name}: no promql_expr_test reads it")

    def test_rule_tests_load_the_shipped_rule_files(self):
        for f in RULE_TESTS:
            text = f.read_text()
            self.assertIn("../recording.yml", text, f.name)


class Docs(unittest.TestCase):
    def test_metrics_md_covers_everything(self):
        doc = (exprs.REPO / "docs" / "metrics.md").read_text()
        missing = [m for m in contract.METRICS if f"`{m}" not in doc]
        missing += [a for a in alert_names() if a not in doc]
        missing += [r for r in recording_rule_names() if r not in doc]
        for f in exprs.dashboard_files():
            missing += [] if json.loads(f.read_text())["title"] in doc else [f.name]
        self.assertEqual(missing, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
