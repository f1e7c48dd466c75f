#!/usr/bin/env python3
"""Generates config/rates/bedrock.yaml, the shipped rate table, from the committed price CSV.

    scripts/gen_rates.py            # rewrite config/rates/bedrock.yaml
    scripts/gen_rates.py --check    # exit 1 if the committed table is not what the CSV gives

Input: config/rates/source/bedrock_rates.csv (a copy of the reference CSV; see
config/rates/source/NOTES.md). The CSV is a starting point, not the truth: this script applies the
corrections listed in NOTES.md (CORRECTIONS below) and the pricing mechanics it describes
(derived cache, long-context, batch and latency-optimized rates), and fails loudly when the CSV
no longer looks the way a correction expects, so a CSV update cannot silently undo a fix.

Then config/rates/source/capacity.yaml (hand-written: the `provisioned:` and `caching:`
sections, what buying capacity costs and each model's prompt-caching facts, each value with its
source) is appended verbatim after a comment line. It is not derived from the CSV, whose
provisioned-throughput rows are skipped; edit it by hand and regenerate.

Every number is a decimal.Decimal parsed from the CSV text: no float ever touches a price.
docs/pricing.md explains the format, the rules and the known gaps.
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CSV_PATH = ROOT / "config" / "rates" / "source" / "bedrock_rates.csv"
CAPACITY_PATH = ROOT / "config" / "rates" / "source" / "capacity.yaml"
OUT_PATH = ROOT / "config" / "rates" / "bedrock.yaml"
VERSION = "2026-07-24.1"

D = Decimal

# Source regions of each cross-region (geographic) inference profile prefix. A profile is billed
# at the price of the region whose endpoint was called, so a `geo` entry lists the regions that
# can call that profile. Must be a subset of the loader's region list
# (config/rate_table_loader.cpp, known_regions).
GEO_REGIONS = {
    "us": ["us-east-1", "us-east-2", "us-west-1", "us-west-2"],
    "eu": ["eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2",
           "eu-west-1", "eu-west-2", "eu-west-3"],
    "apac": ["ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
             "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
             "ap-southeast-4", "ap-southeast-5", "ap-southeast-7"],
    "jp": ["ap-northeast-1", "ap-northeast-3"],
    "au": ["ap-southeast-2", "ap-southeast-4"],
    "ca": ["ca-central-1", "ca-west-1"],
    "us-gov": ["us-gov-east-1", "us-gov-west-1"],
}

RATE_FIELDS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "speech_input",
               "speech_output")

# ---- NOTES.md corrections ------------------------------------------------------------------
# (base model, csv model_id filter or None for every row of the model,
#  field -> (value the CSV is known to say, correct value), why)
# A row whose value is neither the known-wrong one nor the correct one stops the generator.
CORRECTIONS = [
    ("amazon.titan-text-express-v1", None,
     {"input": ("1.3", "0.20"), "output": ("1.7", "0.60")},
     "NOTES.md correction: Titan Text Express is 0.20/0.60, CSV says 1.3/1.7"),
    ("amazon.titan-text-lite-v1", None,
     {"input": ("0.3", "0.15"), "output": ("0.4", "0.20")},
     "NOTES.md correction: Titan Text Lite is 0.15/0.20, CSV says 0.3/0.4"),
    ("meta.llama3-1-70b-instruct-v1:0", None,
     {"input": ("0.99", "0.72"), "output": ("0.99", "0.72")},
     "NOTES.md correction: Llama 3.1 70B is 0.72/0.72, CSV says 0.99"),
    ("meta.llama3-1-405b-instruct-v1:0", None,
     {"input": ("5.32", "2.40"), "output": ("16", "2.40")},
     "NOTES.md correction: Llama 3.1 405B is 2.40/2.40, CSV says 5.32/16"),
    ("meta.llama3-2-11b-instruct-v1:0", None,
     {"input": ("0.35", "0.16"), "output": ("0.35", "0.16")},
     "NOTES.md correction: Llama 3.2 11B is 0.16/0.16 (NOTES.md's '0.16 / 0.72 (11b)' read with "
     "its 'CSV says 0.35 / 2.0' column as 11b / 90b; AWS prices every Llama 3.x the same in "
     "and out), CSV says 0.35"),
    ("meta.llama3-2-90b-instruct-v1:0", None,
     {"input": ("2", "0.72"), "output": ("2", "0.72")},
     "NOTES.md correction: Llama 3.2 90B is 0.72/0.72, CSV says 2.0"),
    ("mistral.mistral-large-2402-v1:0", None,
     {"input": ("8", "4"), "output": ("24", "12")},
     "NOTES.md correction: Mistral Large (24.02) is 4/12, CSV says 8/24"),
    # The CSV's eu-west-3 row is 1.3 x the wrong 8/24 (the Paris uplift Mistral 7B and Mixtral
    # show); the same uplift on the corrected 4/12 gives 5.2/15.6. Flagged in docs/pricing.md.
    ("mistral.mistral-large-2402-v1:0", "mistral.mistral-large-2402-v1:0@eu-west-3",
     {"input": ("10.4", "5.2"), "output": ("31.2", "15.6")},
     "NOTES.md correction scaled: CSV eu-west-3 10.4/31.2 is 1.3x the wrong 8/24; "
     "1.3x the corrected 4/12 is 5.2/15.6 (verify against the AWS page)"),
    ("anthropic.claude-3-5-haiku-20241022-v1:0", "eu.anthropic.claude-3-5-haiku-20241022-v1:0",
     {"input": ("0.25", "0.80"), "output": ("1.25", "4.00"),
      # The row's cache prices are Claude 3 Haiku's too; re-derived from the corrected input.
      "cache_read": ("0.025", None), "cache_write_5m": ("0.3125", None)},
     "NOTES.md correction: eu. Claude 3.5 Haiku is 0.80/4.00, CSV says 0.25/1.25 "
     "(Claude 3 Haiku's price); cache rates re-derived"),
    ("qwen.qwen3-coder-480b-a35b-v1:0", None,
     {"input": ("0.22", "0.45")},
     "NOTES.md correction: Qwen3 Coder 480B input is 0.45, CSV says 0.22"),
]

# NOTES.md: Nova v1 cache reads the CSV lacks (in-region prices); checked against the 0.25x rule.
NOVA_CACHE_READ = {
    "amazon.nova-micro-v1:0": D("0.00875"),
    "amazon.nova-lite-v1:0": D("0.015"),
    "amazon.nova-pro-v1:0": D("0.20"),
    "amazon.nova-premier-v1:0": D("0.625"),
}

# NOTES.md: latency-optimized inference prices (X-Amzn-Bedrock-PerformanceConfig-Latency).
LATENCY_OPTIMIZED = {
    "anthropic.claude-3-5-haiku-20241022-v1:0": (D("1.00"), D("5.00")),
    "amazon.nova-pro-v1:0": (D("1.00"), D("4.00")),
    "meta.llama3-1-70b-instruct-v1:0": (D("0.90"), D("0.90")),
}

# Speech-to-speech models (InvokeModelWithBidirectionalStream). The CSV has no speech columns and
# no row for them, and NOTES.md says nothing of them: these are hand-written, per 1M tokens
# (the AWS page quotes per 1K: x 1000). Text tokens at input/output, speech tokens at
# speech_input/speech_output (docs/pricing.md, "Speech tokens"). The figures are the us-east-1
# on-demand prices; like the CSV's `*` rows they are applied to every region.
SPEECH_MODELS = [
    ("amazon.nova-2-sonic-v1:0",
     dict(input=D("0.33"), output=D("2.75"), speech_input=D("3.00"), speech_output=D("12.00")),
     "not in the CSV: AWS Bedrock pricing page, Amazon Nova 2 Sonic on-demand, us-east-1, "
     "transcribed by hand (per 1K tokens: speech input 0.003, speech output 0.012, text input "
     "0.00033, text output 0.00275); applied to every region, unverified outside us-east-1"),
    ("amazon.nova-sonic-v1:0",
     dict(input=D("0.06"), output=D("0.24"), speech_input=D("3.40"), speech_output=D("13.60")),
     "not in the CSV: AWS Bedrock pricing page, Amazon Nova Sonic on-demand, us-east-1, "
     "transcribed by hand (per 1K tokens: speech input 0.0034, speech output 0.0136, text input "
     "0.00006, text output 0.00024); applied to every region, unverified outside us-east-1"),
]

# The same (model_id, region) listed twice with different prices: which CSV row wins, and why.
CONFLICTS = {
    ("moonshotai.kimi-k2.5", "*"): (
        "moonshotai.kimi-k2.5",
        "the row citing aws.amazon.com/bedrock/pricing (0.6/3) over the one citing Moonshot's "
        "own platform page (0.6/3.03)"),
    ("openai.gpt-oss-safeguard-20b", "*"): (
        "openai.gpt-oss-safeguard-20b",
        "the Bedrock Runtime (Converse) row (0.07/0.2) over the bedrock-mantle OpenAI-compatible "
        "endpoint row (0.075/0.3): the proxy meters Bedrock Runtime"),
    ("openai.gpt-oss-safeguard-120b", "*"): (
        "openai.gpt-oss-safeguard-120b", "Runtime and mantle rows agree"),
}

TOKEN_MODES = {"chat", "responses", "embedding"}


def is_claude_with_caching(model: str) -> bool:
    """Claude 3 and later support prompt caching; Instant and 1.x/2.x never did."""
    if not model.startswith("anthropic.claude-"):
        return False
    legacy = ("anthropic.claude-instant", "anthropic.claude-v1", "anthropic.claude-v2")
    return not model.startswith(legacy)


def fmt(v: Decimal) -> str:
    """Decimal text with at least two places and no trailing zeros beyond: 3 -> 3.00."""
    if v < 0:
        raise ValueError(f"negative price {v}")
    s = format(v.normalize(), "f")
    whole, _, frac = s.partition(".")
    frac = frac.rstrip("0")
    if len(frac) > 6:
        raise ValueError(f"{v} needs more than 6 decimals")
    return f"{whole}.{frac.ljust(2, '0')}"


@dataclass
class Rates:
    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    speech_input: Decimal | None = None
    speech_output: Decimal | None = None

    def key(self):
        return tuple(getattr(self, f) for f in RATE_FIELDS)


@dataclass
class LongContext:
    above: int
    rates: Rates

    def key(self):
        return (self.above, self.rates.key())


@dataclass
class Row:
    line: int
    model_id: str
    base: str
    region: str
    scope: str          # in_region | geo | global
    geo: str            # "us", "eu", ... for geo
    source_key: str
    provider: str
    notes: str
    rates: Rates
    long_context: LongContext | None
    batch: tuple[Decimal, Decimal] | None
    lines: list[int] = field(default_factory=list)  # every CSV line merged into this row
    remarks: list[str] = field(default_factory=list)

    def price_key(self):
        return (self.rates.key(), self.long_context.key() if self.long_context else None,
                self.batch)


def dec(text: str) -> Decimal | None:
    text = text.strip()
    return D(text) if text else None


def parse_other(other: str) -> dict[str, str]:
    out = {}
    for part in other.split(";"):
        k, sep, v = part.strip().partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


def skip_reason(r: dict) -> str | None:
    if r["inference_scope"] == "provisioned":
        return ("provisioned-throughput rows (per model unit per hour; not read: the "
                "provisioned section at the end is hand-written from cited sources): map the "
                "provisioned model with models.mappings[].hourly_usd")
    if r["mode"].startswith("image"):
        return f"{r['mode']}: priced per image"
    if r["mode"] == "rerank":
        return "rerank: priced per query"
    if r["mode"] not in TOKEN_MODES:
        return f"mode {r['mode']}: not priced per token"
    if r["notes"].startswith("alias key"):
        return "alias key, not a Bedrock model id"
    if not r["input_per_1m_usd"].strip():
        return "no per-token input price (input billed per video second)"
    if D(r["input_per_1m_usd"]) == 0 and D(r["output_per_1m_usd"] or "0") == 0:
        return "all prices 0 (an unpriced placeholder, never a free model)"
    return None


def read_rows(path: Path):
    rows, skipped = [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        for r in reader:
            line = reader.line_num
            why = skip_reason(r)
            if why:
                skipped.append((line, r, why))
                continue
            scope_text = r["inference_scope"]
            if scope_text == "in-region":
                scope, geo = "in_region", ""
            elif scope_text == "global":
                scope, geo = "global", ""
            elif scope_text.startswith("geo:"):
                scope, geo = "geo", scope_text[4:]
                if geo not in GEO_REGIONS:
                    sys.exit(f"line {line}: unknown geo prefix {geo!r}; add it to GEO_REGIONS")
            else:
                sys.exit(f"line {line}: unknown inference_scope {scope_text!r}")
            other = parse_other(r["other"])
            rates = Rates(dec(r["input_per_1m_usd"]), dec(r["output_per_1m_usd"]) or D(0),
                          dec(r["cache_read_per_1m_usd"]), dec(r["cache_write_per_1m_usd"]),
                          dec(other.get("cache_write_1h_per_1m", "")))
            lc = None
            if "input_above_200k_per_1m" in other:
                lc = LongContext(200000, Rates(
                    D(other["input_above_200k_per_1m"]), D(other["output_above_200k_per_1m"]),
                    dec(other.get("cache_read_above_200k_per_1m", "")),
                    dec(other.get("cache_write_above_200k_per_1m", "")),
                    dec(other.get("cache_write_1h_above_200k_per_1m", ""))))
            batch = None
            if r["batch_input_per_1m_usd"].strip():
                batch = (D(r["batch_input_per_1m_usd"]), D(r["batch_output_per_1m_usd"]))
            rows.append(Row(line, r["model_id"], r["base_model_id"], r["region"], scope, geo,
                            r["source_key"], r["litellm_provider"], r["notes"], rates, lc, batch,
                            [line]))
    return rows, skipped


def merge_duplicates(rows: list[Row]) -> list[Row]:
    """One row per (model_id, region): identical rows merge, rows that only add information
    (a long-context tier) merge into the richer one, real conflicts need a CONFLICTS entry."""
    groups: dict[tuple[str, str], list[Row]] = OrderedDict()
    for r in rows:
        groups.setdefault((r.model_id, r.region), []).append(r)
    out = []
    for key, group in groups.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        if key in CONFLICTS:
            winner_key, why = CONFLICTS[key]
            winner = next(r for r in group if r.source_key == winner_key)
            losers = [r for r in group if r is not winner]
            winner.lines = sorted(set(sum((r.lines for r in group), [])))
            winner.remarks.append(
                f"CSV line {', '.join(str(r.line) for r in losers)} lists another price; "
                f"chose {why}")
            out.append(winner)
            continue
        base = group[0]
        for other in group[1:]:
            if other.rates.key() != base.rates.key() or other.batch != base.batch:
                sys.exit(f"CSV lines {base.line} and {other.line}: {key} listed twice with "
                         "different prices; decide in CONFLICTS")
            if other.long_context and base.long_context and \
                    other.long_context.key() != base.long_context.key():
                sys.exit(f"CSV lines {base.line} and {other.line}: conflicting long-context tiers")
            if other.long_context and not base.long_context:
                base.long_context = other.long_context
                base.source_key = other.source_key
                base.line = other.line
            base.lines = sorted(set(base.lines + other.lines))
        out.append(base)
    # A CONFLICTS entry that no longer matches anything is stale.
    for key in CONFLICTS:
        if len([r for r in rows if (r.model_id, r.region) == key]) < 2:
            sys.exit(f"CONFLICTS entry {key} no longer matches two CSV rows; remove it")
    return out


def apply_corrections(rows: list[Row]):
    used = [0] * len(CORRECTIONS)
    for r in rows:
        for i, (base, selector, fields, why) in enumerate(CORRECTIONS):
            if r.base != base:
                continue
            if selector is not None:
                model_id, _, region = selector.partition("@")
                if r.model_id != model_id or (region and r.region != region):
                    continue
            elif any(s is not None and "@" in s and s.partition("@")[0] == r.model_id and
                     s.partition("@")[2] == r.region
                     for b, s, _, _ in CORRECTIONS if b == base):
                continue  # a row-specific correction handles this row
            changed = False
            for name, (wrong, right) in fields.items():
                current = getattr(r.rates, name)
                if right is not None and current == D(right):
                    continue  # already correct (the CSV was fixed upstream)
                if current is None or current != D(wrong):
                    sys.exit(f"CSV line {r.line}: {r.model_id} {name} is {current}, expected the "
                             f"known-wrong {wrong} or the correct {right}; review CORRECTIONS")
                setattr(r.rates, name, D(right) if right is not None else None)
                changed = True
            if changed:
                r.remarks.append(why)
                used[i] += 1
    for i, n in enumerate(used):
        if n == 0:
            print(f"note: correction for {CORRECTIONS[i][0]} matched no wrong row "
                  "(already fixed in the CSV?)", file=sys.stderr)


def derive(rows: list[Row]):
    # Long-context ratios per base model, from its first row that has a tier.
    lc_ratio = {}
    for r in rows:
        if r.long_context and r.base not in lc_ratio:
            lc = r.long_context.rates
            lc_ratio[r.base] = (r.line, lc.input / r.rates.input, lc.output / r.rates.output)
    for r in rows:
        notes = []
        if r.long_context is None and r.base in lc_ratio:
            line, ri, ro = lc_ratio[r.base]
            r.long_context = LongContext(200000, Rates(r.rates.input * ri, r.rates.output * ro))
            notes.append(f"long-context tier derived from the ratios of CSV line {line} "
                         f"({fmt(ri)}x input, {fmt(ro)}x output above 200k)")
        tiers = [("", r.rates)] + ([("long-context ", r.long_context.rates)]
                                  if r.long_context else [])
        for label, t in tiers:
            if is_claude_with_caching(r.base):
                derived = []
                if t.cache_read is None:
                    t.cache_read = t.input * D("0.1")
                    derived.append("cache_read 0.1x")
                if t.cache_write_5m is None:
                    t.cache_write_5m = t.input * D("1.25")
                    derived.append("cache_write_5m 1.25x")
                if t.cache_write_1h is None:
                    t.cache_write_1h = t.input * D("2")
                    derived.append("cache_write_1h 2x")
                if derived:
                    notes.append(f"{label}{', '.join(derived)} input (Claude caching rule)")
            elif r.base in NOVA_CACHE_READ and t.cache_read is None:
                t.cache_read = t.input * D("0.25")
                notes.append(f"{label}cache_read 0.25x input (Nova caching rule; NOTES.md "
                             "lists the in-region values)")
        if r.base in NOVA_CACHE_READ and r.scope == "in_region" and r.region == "*":
            if r.rates.cache_read != NOVA_CACHE_READ[r.base]:
                sys.exit(f"CSV line {r.line}: Nova cache read {r.rates.cache_read} differs from "
                         f"NOTES.md {NOVA_CACHE_READ[r.base]}")
        if r.batch is not None:
            half = (r.rates.input / 2, r.rates.output / 2)
            notes.append("batch prices from the CSV" +
                         (" (50% of on-demand)" if r.batch == half else
                          f" (not 50%: on-demand/2 would be {fmt(half[0])}/{fmt(half[1])})"))
        r.remarks.extend(notes)


@dataclass
class Entry:
    model: str
    regions: list[str]
    scope: str | None
    rates: Rates
    long_context: LongContext | None
    source: str
    variants: list[dict] = field(default_factory=list)


def source_text(r: Row, extra: list[str] = ()) -> str:
    lines = ", ".join(str(n) for n in r.lines)
    parts = [f"CSV line{'s' if len(r.lines) > 1 else ''} {lines} ({r.source_key})"]
    parts += r.remarks
    parts += list(extra)
    return "; ".join(parts)


def build_entries(rows: list[Row]):
    by_base: dict[str, list[Row]] = OrderedDict()
    for r in sorted(rows, key=lambda r: r.base):
        by_base.setdefault(r.base, []).append(r)
    entries: list[Entry] = []
    for base, group in by_base.items():
        star = next((r for r in group if r.scope == "in_region" and r.region == "*"), None)
        in_region = {r.region: r for r in group if r.scope == "in_region"}
        covered = []  # rows folded into the `*` entry
        regional: dict = OrderedDict()  # price key -> in-region rows of named regions
        profiles: dict = OrderedDict()  # (scope, price key) -> profile rows
        for r in group:
            if r is star:
                continue
            if r.scope == "in_region":
                if star is not None and r.price_key() == star.price_key():
                    covered.append(r)
                else:
                    regional.setdefault(r.price_key(), []).append(r)
                continue
            # A profile is billed at its source region's price: when the in-region price of
            # every region it can be called from is the same, it needs no entry of its own.
            regions = GEO_REGIONS[r.geo] if r.scope == "geo" else ["*"]
            applicable = [in_region.get(x, star) for x in regions]
            if all(a is not None and a.price_key() == r.price_key() for a in applicable):
                if applicable and all(a is star for a in applicable):
                    covered.append(r)
                else:
                    for a in {id(a): a for a in applicable}.values():
                        a.remarks.append(f"same price also covers {describe(r)} "
                                         f"(CSV line {', '.join(map(str, r.lines))})")
                continue
            profiles.setdefault((r.scope, r.price_key()), []).append(r)
        if star is not None:
            extra = []
            if covered:
                extra.append("same price also covers " + ", ".join(
                    f"{describe(r)} (CSV line {', '.join(map(str, r.lines))}"
                    + (f"; {'; '.join(r.remarks)}" if r.remarks and r.remarks != star.remarks
                       else "") + ")" for r in covered))
            entries.append(make_entry(star, ["*"], None, extra))
        for rs in regional.values():
            regions = sorted({r.region for r in rs})
            first = rs[0]
            first.lines = sorted({n for r in rs for n in r.lines})
            entries.append(make_entry(first, regions, None, []))
        claimed: dict[str, tuple] = {}  # geo region -> price key of the entry that has it
        for (scope, key), rs in profiles.items():
            first = rs[0]
            if scope == "global":
                entries.append(make_entry(first, ["*"], "global", []))
                continue
            regions = sorted({x for r in rs for x in GEO_REGIONS[r.geo]})
            for x in regions:
                if x in claimed and claimed[x] != key:
                    sys.exit(f"{base}: geographic profiles callable from {x} have different "
                             "prices; the table cannot tell them apart (decide by hand)")
                claimed[x] = key
            extra = [", ".join(f"{r.geo}." for r in rs) + " profiles, billed in their source "
                     "regions" + ("" if len(rs) == 1 else "; also CSV lines " + ", ".join(
                         f"{', '.join(map(str, r.lines))} ({r.source_key}"
                         + (f"; {'; '.join(r.remarks)}" if r.remarks else "") + ")"
                         for r in rs[1:]))]
            entries.append(make_entry(first, regions, "geo", extra))
    return entries


def describe(r: Row) -> str:
    if r.scope == "geo":
        return f"{r.geo}. profiles"
    if r.scope == "global":
        return "global. profiles"
    return r.region


def make_entry(r: Row, regions, scope, extra) -> Entry:
    e = Entry(r.base, regions, scope, r.rates, r.long_context, source_text(r, extra))
    if r.batch is not None:
        e.variants.append({"batch": True, "input": r.batch[0], "output": r.batch[1],
                           "source": f"CSV line {r.line} batch columns"})
    if r.base in LATENCY_OPTIMIZED and r.scope == "in_region" and r.region == "*":
        i, o = LATENCY_OPTIMIZED[r.base]
        e.variants.append({"latency": "optimized", "input": i, "output": o,
                           "source": "NOTES.md latency-optimized price (no cache rates published)"})
    return e


def yaml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rates_lines(t: Rates, indent: str) -> list[str]:
    out = []
    for name in RATE_FIELDS:
        v = getattr(t, name)
        if v is not None:
            out.append(f'{indent}{name}: "{fmt(v)}"')
    return out


def render(entries: list[Entry], skipped) -> str:
    out = [
        "# The shipped Bedrock rate table: USD per 1M tokens.",
        "# GENERATED by scripts/gen_rates.py from config/rates/source/bedrock_rates.csv with the",
        "# corrections of config/rates/source/NOTES.md applied; edit the CSV or the script and",
        "# regenerate (hand edits are overwritten). Format and rules: docs/pricing.md.",
        "#",
        "# Not in this table (not priced per token; requests for them are counted as unpriced):",
    ]
    seen = set()
    for line, r, why in skipped:
        k = (r["base_model_id"], why)
        if k in seen:
            continue
        seen.add(k)
        out.append(f"#   {r['base_model_id']}: {why}")
    out += [
        "",
        f'version: "{VERSION}"',
        "currency: USD",
        "unit: per_million_tokens",
        "entries:",
    ]
    for e in entries:
        out.append(f"  - model: {e.model}")
        out.append("    regions: [" + ", ".join(yaml_str(x) if x == "*" else x
                                                for x in e.regions) + "]")
        if e.scope:
            out.append(f"    scope: {e.scope}")
        out += rates_lines(e.rates, "    ")
        if e.long_context:
            out.append("    long_context:")
            out.append(f"      above_input_tokens: {e.long_context.above}")
            out += rates_lines(e.long_context.rates, "      ")
        out.append(f"    source: {yaml_str(e.source)}")
        if e.variants:
            out.append("    variants:")
            for v in e.variants:
                first = True
                for k in ("batch", "latency"):
                    if k in v:
                        val = "true" if v[k] is True else v[k]
                        out.append(f"      {'- ' if first else '  '}{k}: {val}")
                        first = False
                out.append(f'        input: "{fmt(v["input"])}"')
                out.append(f'        output: "{fmt(v["output"])}"')
                out.append(f"        source: {yaml_str(v['source'])}")
    return "\n".join(out) + "\n"


def capacity_text() -> str:
    """capacity.yaml as committed, after a comment line saying where it comes from."""
    text = CAPACITY_PATH.read_text()
    if not text.endswith("\n"):
        text += "\n"
    return ("\n# ---- appended verbatim from config/rates/source/capacity.yaml (hand-written; "
            "edit it there) ----\n" + text)


def add_speech_models(entries: list[Entry]) -> list[Entry]:
    """SPEECH_MODELS as `*` entries, in model order among the CSV's (a stable sort keeps the CSV
    entries' own order)."""
    for model, rates, source in SPEECH_MODELS:
        if any(e.model == model for e in entries):
            sys.exit(f"{model} is in the CSV now: drop it from SPEECH_MODELS or decide by hand")
        entries.append(Entry(model, ["*"], None, Rates(**rates), None, source))
    return sorted(entries, key=lambda e: e.model)


def generate() -> str:
    rows, skipped = read_rows(CSV_PATH)
    rows = merge_duplicates(rows)
    apply_corrections(rows)
    derive(rows)
    return render(add_speech_models(build_entries(rows)), skipped) + capacity_text()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="compare with the committed table instead of writing it")
    ap.add_argument("--out", type=Path, default=OUT_PATH)
    args = ap.parse_args()
    text = generate()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run scripts/gen_rates.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    entries = text.partition("\n# ---- appended verbatim")[0].count("\n  - model:")
    print(f"wrote {args.out} ({entries} entries, plus {CAPACITY_PATH.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
