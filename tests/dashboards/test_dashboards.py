"""Checks every shipped dashboard and rule expression (tests/dashboards/exprs.py):

- each one parses (promtool check rules on a generated file of recording rules: promtool has no
  standalone expression checker);
- each metric and label it names is in the metrics contract (contract.py) or is a recording rule,
  and closed label values (type="cache_read"...) are real ones;
- the dashboards are well-formed Grafana JSON (datasource variable, ids, layout, descriptions);
  the Ledger dashboard (dashboards/ledger.json) reads PostgreSQL, not Prometheus: its SQL names
  only columns of the ledger's `requests` table, bounds every query by the time range (also on
  time_ms, the partition key) and applies the team/app/model variables so that "All" works;
  the PromQL checks leave it out;
- every alert has severity, summary, description and runbook, and a promtool unit test where it
  fires and one where it stays quiet; every recording rule is evaluated by a promql_expr_test;
- docs/metrics.md covers every metric, recording rule, alert and Prometheus dashboard;
  docs/ledger.md the PostgreSQL one.

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

# Dashboards select their datasource through a variable: Prometheus ones through `datasource`,
# the PostgreSQL one (the fleet ledger, dashboards/ledger.json) through `pg`.
PROMETHEUS_DS = {"type": "prometheus", "uid": "${datasource}"}
POSTGRES_TYPE = "grafana-postgresql-datasource"
POSTGRES_DS = {"type": POSTGRES_TYPE, "uid": "${pg}"}


def board_datasource(board):
    """(variable name, plugin id, the datasource every panel names) of a dashboard."""
    names = {v["name"] for v in board["templating"]["list"] if v["type"] == "datasource"}
    if "pg" in names:
        return "pg", POSTGRES_TYPE, POSTGRES_DS
    return "datasource", "prometheus", PROMETHEUS_DS


def is_postgres(board):
    return board_datasource(board)[1] == POSTGRES_TYPE


def prometheus_panels(board):
    return [p for p in exprs._panels(board["panels"])
            if p.get("datasource", {}).get("type") not in (POSTGRES_TYPE, "postgres")]


# The ledger's PostgreSQL table (written by the proxies, ledger.store: postgres; docs/ledger.md).
LEDGER_COLUMNS = {
    "replica", "local_id", "time_ms", "at", "request_id", "team", "app", "principal", "tags",
    "operation", "model_requested", "model_base", "model_label", "region", "scope", "service_tier",
    "latency_mode", "batch", "status", "outcome", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "usage_source",
    "input_cost", "output_cost", "cache_read_cost", "cache_write_cost", "total_cost", "priced",
    "unpriced_reason", "rate_table_version", "rate_entry", "duration_us", "first_byte_us",
    "bytes_in", "bytes_out", "has_traits", "max_tokens", "stop_reason", "tools",
    "structured_output", "system_prefix_hash", "system_prefix_bytes", "conversation_prefix_hash",
    "conversation_prefix_bytes", "prompt_hash", "prompt_bytes"}
SQL_WORDS = {
    "select", "distinct", "from", "where", "and", "or", "not", "in", "between", "as", "group",
    "by", "order", "asc", "desc", "limit", "filter", "is", "null", "case", "when", "then", "else",
    "end", "coalesce", "nullif", "sum", "count", "min", "max", "avg", "round", "date_trunc",
    "float8", "bigint", "numeric", "text", "requests"}
# Grafana's SQL macros and interval variables; macro arguments are checked like the rest.
SQL_MACROS = {"__timeFilter", "__timeGroupAlias", "__timeGroup", "__unixEpochFrom", "__unixEpochTo",
              "__timeFrom", "__timeTo", "__interval", "__interval_ms"}
# The time range, on the timestamp and on the partition key (so only its months are read).
SQL_TIME = ("$__timeFilter(at)",
            "time_ms BETWEEN $__unixEpochFrom()::bigint * 1000 AND $__unixEpochTo()::bigint * 1000 + 999")
# team/app/model select with an "All" that is the literal '__all' (custom all values are not
# quoted by Grafana), so "All" also matches empty values and never sends a list of every team.
SQL_SCOPE = {"team": "team", "app": "app", "model": "model_base"}
_SQL_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^']|'')*')
  | (?P<quoted>"[^"]*")
  | (?P<macro>\$__\w+)
  | (?P<var>\$\{\w+(?::\w+)?\}|\$\w+)
  | (?P<interval>\d+[smhdw]\b)
  | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>::|<>|>=|<=|\|\||[-+*/%<>=(),.])
""", re.X)


def sql_tokens(sql):
    pos, out = 0, []
    while pos < len(sql):
        m = _SQL_TOKEN.match(sql, pos)
        if not m:
            raise ValueError(f"cannot tokenize at {sql[pos:pos + 20]!r} in {sql!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def sql_unknown_names(sql):
    """Identifiers in a query that are neither ledger columns, SQL words nor its own aliases."""
    toks = sql_tokens(sql)
    aliases = {toks[i + 1][1].strip('"') for i, (_, t) in enumerate(toks[:-1]) if t.lower() == "as"}
    unknown = []
    for kind, text in toks:
        if kind == "macro" and text[1:] not in SQL_MACROS:
            unknown.append(text)
        if kind == "ident" and text not in LEDGER_COLUMNS and text.lower() not in SQL_WORDS \
                and text not in aliases:
            unknown.append(text)
    return unknown


def sql_queries(board):
    """[(source, sql)]: every panel target's and query variable's SQL."""
    out = [(f"variable ${v['name']}", v["query"]) for v in board["templating"]["list"]
           if v["type"] == "query"]
    for p in exprs._panels(board["panels"]):
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} ({t['refId']})", t.get("rawSql", "")))
    return out

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
            targets += sum(len(p.get("targets", [])) for p in prometheus_panels(board))
            # SQL panels are not PromQL: none of their targets may reach the PromQL checks.
            for p in exprs._panels(board["panels"]):
                if p not in prometheus_panels(board):
                    for t in p.get("targets", []):
                        self.assertNotIn("expr", t, f"{f.name}: {p['title']}")
            if is_postgres(board):
                self.assertEqual(exprs.dashboard_expressions(f), [], f.name)
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
                                                    "savings.json", "ledger.json"})
        schema_versions = set()
        for f in files:
            with self.subTest(dashboard=f.name):
                board = json.loads(f.read_text())
                self.assertNotIn(board["uid"], uids)
                uids.add(board["uid"])
                self.assertLessEqual(len(board["uid"]), 40)
                self.assertTrue(board["uid"].startswith("bedrock-meter-"), board["uid"])
                self.assertGreaterEqual(board["schemaVersion"], 36)
                schema_versions.add(board["schemaVersion"])
                self.assertIn("bedrock-meter", board["tags"])
                self.assertEqual(board["timezone"], "utc")
                self.assertIs(board["editable"], True)
                self.assertTrue(board["title"].startswith("bedrock-meter / "), board["title"])
                self.assertTrue(board.get("description"))
                variables = {v["name"]: v for v in board["templating"]["list"]}
                ds_var, plugin, panel_ds = board_datasource(board)
                ds = variables[ds_var]
                self.assertEqual((ds["type"], ds["query"]), ("datasource", plugin))
                self.assertEqual([v["name"] for v in variables.values() if v["type"] == "datasource"], [ds_var])
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
                    self.assertEqual(p["datasource"], panel_ds, p["title"])
                    refs = [t["refId"] for t in p["targets"]]
                    self.assertTrue(refs, p["title"])
                    self.assertEqual(len(refs), len(set(refs)), p["title"])
                    for t in p["targets"]:
                        self.assertEqual(t["datasource"], panel_ds, p["title"])
                        if plugin == POSTGRES_TYPE:
                            self.assertNotIn("expr", t, p["title"])
                            self.assertTrue(t["rawSql"].strip(), p["title"])
                            self.assertIs(t["rawQuery"], True, p["title"])
                            self.assertEqual(t["editorMode"], "code", p["title"])
                            self.assertIn(t["format"], ("table", "time_series"), p["title"])
                        else:
                            self.assertTrue(t["expr"].strip(), p["title"])
                            self.assertNotIn("rawSql", t, p["title"])
                    if p.get("timeFrom"):
                        self.assertRegex(p["timeFrom"], r"^(now/[dwMy]|\d+[smhdwMy])$")
                for v in variables.values():
                    if v["type"] == "query":
                        self.assertEqual(v["datasource"], panel_ds, v["name"])
        self.assertEqual(len(schema_versions), 1, "dashboards with different schemaVersions")

    def test_every_variable_is_used(self):
        for f in exprs.dashboard_files():
            text = f.read_text()
            board = json.loads(text)
            for v in board["templating"]["list"]:
                if v["name"] == "datasource":
                    continue
                uses = len(re.findall(r"\$%s\b|\$\{%s\b" % (v["name"], v["name"]), text))
                self.assertGreater(uses, 0, f"{f.name}: ${v['name']} is never used")


class LedgerDashboard(unittest.TestCase):
    """dashboards/ledger.json: SQL on the fleet's PostgreSQL ledger (table `requests`)."""

    @classmethod
    def setUpClass(cls):
        cls.board = json.loads((exprs.DASHBOARDS / "ledger.json").read_text())
        cls.queries = sql_queries(cls.board)

    def test_it_is_the_postgres_dashboard(self):
        self.assertTrue(is_postgres(self.board))
        self.assertEqual(self.board["uid"], "bedrock-meter-ledger")
        self.assertEqual(self.board["title"], "bedrock-meter / Ledger")
        self.assertEqual([f.name for f in exprs.dashboard_files()
                          if is_postgres(json.loads(f.read_text()))], ["ledger.json"])

    def test_queries_name_only_ledger_columns(self):
        self.assertGreaterEqual(len(self.queries), 12)
        problems = [f"{src}: {name}" for src, sql in self.queries for name in sql_unknown_names(sql)]
        self.assertEqual(problems, [])

    def test_the_column_check_catches_typos(self):
        # Guards against a check that passes whatever it is given.
        self.assertEqual(sql_unknown_names("SELECT teem, count(*) AS n FROM requests GROUP BY teem"),
                         ["teem", "teem"])
        self.assertEqual(sql_unknown_names("SELECT $__timeFiltre(at) FROM requests"), ["$__timeFiltre"])
        self.assertEqual(sql_unknown_names(
            "SELECT (sum(total_cost) / 1e12)::float8 AS spend, 'x''y' AS \"time\" FROM requests"), [])

    def test_every_query_reads_requests_in_the_time_range(self):
        for src, sql in self.queries:
            with self.subTest(query=src):
                self.assertRegex(sql, r"\bFROM requests\b")
                for bound in SQL_TIME:
                    self.assertIn(bound, sql)

    def test_variables_select_with_an_all_sentinel(self):
        variables = {v["name"]: v for v in self.board["templating"]["list"]}
        text = json.dumps(self.board)
        for name, column in SQL_SCOPE.items():
            with self.subTest(variable=name):
                v = variables[name]
                self.assertEqual((v["type"], v["includeAll"], v["multi"]), ("query", True, True))
                self.assertEqual(v["allValue"], "'__all'")
                self.assertEqual(v["definition"], v["query"])
                self.assertEqual(v["refresh"], 2)   # on time range change: the range's values
                self.assertIn(f"SELECT DISTINCT {column} FROM requests", v["query"])
        for src, sql in self.queries:
            for name, column in SQL_SCOPE.items():
                # Each use of the variable is the whole filter, so "All" works.
                uses = len(re.findall(r"\$%s\b|\$\{%s\b" % (name, name), sql))
                filters = sql.count(f"('__all' IN (${name}) OR {column} IN (${name}))")
                self.assertEqual(uses, 2 * filters, f"{src}: ${name}")
        self.assertNotIn("${team:", text)   # formats would quote the sentinel twice

    def test_panels_apply_the_variables_or_say_they_do_not(self):
        for p in exprs._panels(self.board["panels"]):
            if p["type"] in ("row", "text"):
                continue
            sql = " ".join(t["rawSql"] for t in p["targets"])
            scoped = [f"${name})" in sql for name in SQL_SCOPE]
            with self.subTest(panel=p["title"]):
                if any(scoped):
                    self.assertTrue(all(scoped), "some variables applied, not all")
                else:
                    self.assertIn("the variables do not apply", p["description"])

    def test_money_is_in_usd(self):
        # The table holds pico-USD; a panel in USD divides by 1e12, one that shows money says USD.
        for p in exprs._panels(self.board["panels"]):
            units = [p.get("fieldConfig", {}).get("defaults", {}).get("unit")]
            units += [prop["value"] for o in p.get("fieldConfig", {}).get("overrides", [])
                      for prop in o["properties"] if prop["id"] == "unit"]
            sql = " ".join(t.get("rawSql", "") for t in p.get("targets", []))
            with self.subTest(panel=p["title"]):
                if "currencyUSD" in units:
                    self.assertIn("total_cost", sql)
                for m in re.finditer(r"\b(\w+_cost)\b", sql):
                    after = sql[m.end():m.end() + 40]
                    if not re.match(r"\s+(DESC|ASC)\b", after):   # ORDER BY total_cost DESC
                        self.assertRegex(after, r"^\)?(, 0\))?\)?\s*/\s*1e12\)", f"{m.group(1)} not in USD")

    def test_time_series_queries_return_time_metric_value(self):
        for p in exprs._panels(self.board["panels"]):
            for t in p.get("targets", []):
                if t.get("format") == "time_series":
                    with self.subTest(panel=p["title"]):
                        self.assertRegex(t["rawSql"], r"^SELECT \$__timeGroupAlias\(at, [^)]+\),")
                        self.assertIn(" AS metric,", t["rawSql"])
                        self.assertRegex(t["rawSql"], r"\nORDER BY 1$")

    def test_the_datasource_is_the_provisioned_one(self):
        provisioned = (exprs.REPO / "deploy/grafana/provisioning/datasources/postgres.yml").read_text()
        self.assertIn(f"type: {POSTGRES_TYPE}", provisioned)


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
        ledger_doc = (exprs.REPO / "docs" / "ledger.md").read_text()
        for f in exprs.dashboard_files():
            board = json.loads(f.read_text())
            # The PostgreSQL dashboard is documented with the fleet ledger it reads.
            where = ledger_doc if is_postgres(board) else doc
            missing += [] if board["title"] in where else [f.name]
        self.assertEqual(missing, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
