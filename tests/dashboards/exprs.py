"""Every PromQL expression bedrock-meter ships, ready to evaluate.

all_expressions() returns (source, expr) for every dashboard panel target, every dashboard
variable query (the selector inside label_values()), and every recording and alerting rule.
Grafana's interval variables and the dashboards' template variables are replaced by concrete
values ($__rate_interval -> 1m, $team -> .*), so each expression can be handed to promtool or a
live Prometheus as it is. Standard library only: the rule files are read with a small YAML
subset reader that understands exactly what the rule files use (plain, quoted and block scalars).

    from exprs import all_expressions
    for source, expr in all_expressions():
        ...
"""
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
RULES = DASHBOARDS / "rules"

# Grafana's built-in variables, with values a live Prometheus scraped every 15 s accepts.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "30s",
    "__interval_ms": "30000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
# A template variable stands for "All" (its allValue, a regex): the widest query a panel runs.
ALL_VALUE = ".*"

_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")


def substitute(expr, variables):
    """Replaces $name, ${name}, ${name:fmt} and [[name]]; raises ValueError on an unknown one."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in variables:
            return variables[name]
        raise ValueError(f"unknown variable ${name} in: {expr}")
    return _VAR.sub(repl, expr)


def dashboard_files():
    return sorted(DASHBOARDS.glob("*.json"))


def rule_files():
    return sorted(RULES.glob("*.yml"))


def _panels(panels):
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))  # collapsed rows hold their panels


def dashboard_variables(board):
    """Template variable name -> the value used when extracting (its allValue, else .*)."""
    out = {}
    for v in board.get("templating", {}).get("list", []):
        if v.get("type") in ("query", "custom", "textbox", "constant", "interval"):
            out[v["name"]] = v.get("allValue") or ALL_VALUE
    return out


_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", re.S)


def dashboard_expressions(path):
    board = json.loads(Path(path).read_text())
    variables = dashboard_variables(board)
    rel = Path(path).relative_to(REPO)
    out = []
    for v in board.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = _LABEL_VALUES.match(q)
        if m:
            out.append((f"{rel}: variable ${v['name']}", substitute(m.group(1), variables)))
        elif q.strip().startswith("query_result("):
            out.append((f"{rel}: variable ${v['name']}",
                        substitute(q.strip()[len("query_result("):-1], variables)))
    for p in _panels(board.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                src = f"{rel}: panel {p.get('title', p.get('id'))!r} ({t.get('refId', '?')})"
                out.append((src, substitute(t["expr"], variables)))
    return out


def _scalar(rest, lines, i, key_indent):
    """The value of a `key: rest` line at lines[i]; returns (value, next index)."""
    rest = rest.strip()
    if rest[:1] in ("|", ">"):
        block = []
        j = i + 1
        while j < len(lines) and (not lines[j].strip()
                                  or len(lines[j]) - len(lines[j].lstrip()) > key_indent):
            block.append(lines[j])
            j += 1
        while block and not block[-1].strip():
            block.pop()
        indent = min(len(b) - len(b.lstrip()) for b in block if b.strip())
        # Folded and literal differ only in newlines, which PromQL treats as spaces.
        return "\n".join(b[indent:] for b in block), j
    if rest.startswith('"'):
        return json.loads(rest), i + 1
    if rest.startswith("'"):
        return rest[1:-1].replace("''", "'"), i + 1
    return re.sub(r"\s+#.*$", "", rest), i + 1


def rules(path):
    """[(kind, name, expr)] for every rule in a rule file, kind being 'record' or 'alert'."""
    lines = Path(path).read_text().splitlines()
    out, kind, name = [], None, None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)(?:- )?(record|alert|expr):\s*(.*)$", line)
        if not m:
            i += 1
            continue
        indent = len(m.group(1)) + (2 if line.lstrip().startswith("- ") else 0)
        value, i = _scalar(m.group(3), lines, i, indent)
        if m.group(2) == "expr":
            if kind is None:
                raise ValueError(f"{path}: expr without a record or alert before it")
            out.append((kind, name, value))
            kind = name = None
        else:
            kind, name = m.group(2), value
    return out


def rule_expressions(path):
    rel = Path(path).relative_to(REPO)
    return [(f"{rel}: {kind} {name}", expr) for kind, name, expr in rules(path)]


def all_expressions():
    """[(source, expr)] for every dashboard and rule expression, variables substituted."""
    out = []
    for f in dashboard_files():
        out += dashboard_expressions(f)
    for f in rule_files():
        out += rule_expressions(f)
    return out


if __name__ == "__main__":
    for source, expr in all_expressions():
        print(f"# {source}\n{expr}\n")
