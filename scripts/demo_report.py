"""Per-model summary of what the proxy saw, read from its access log (one JSON line per
request, written when the request settles)."""
import collections
import decimal
import json
import sys

rows = collections.OrderedDict()
teams = collections.Counter()
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    key = (r["model"], r["operation"])
    row = rows.setdefault(key, collections.Counter())
    row["requests"] += 1
    # speech_*_tokens (Nova Sonic) are the spoken part of input_tokens / output_tokens; the access
    # log carries them only when non-zero.
    for t in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
              "speech_input_tokens", "speech_output_tokens"):
        row[t] += r.get(t, 0)
    # cost_usd is an exact decimal string; sum it as Decimal, never as float.
    row["cost"] += decimal.Decimal(r.get("cost_usd", "0"))
    teams[(r["team"], r["app"])] += 1



def speech(row) -> str:
    """Spoken tokens in/out (part of input/output), or '-' for models without speech."""
    if not row["speech_input_tokens"] and not row["speech_output_tokens"]:
        return "-"
    return f"{row['speech_input_tokens']}/{row['speech_output_tokens']}"


print()
print(f"{'model':46} {'operation':30} {'req':>4} {'input':>7} {'output':>7} {'cache_rd':>8} {'cache_wr':>8} {'speech':>11} {'spend_usd':>12}")
for (model, op), row in rows.items():
    print(f"{model:46} {op:30} {row['requests']:>4} {row['input_tokens']:>7} {row['output_tokens']:>7} "
          f"{row['cache_read_tokens']:>8} {row['cache_write_tokens']:>8} "
          f"{speech(row):>11} {row['cost']:>12.6f}")
print()
print("requests by team/app: " + ", ".join(f"{t}/{a}: {n}" for (t, a), n in teams.items()))
total = sum((row["cost"] for row in rows.values()), decimal.Decimal(0))
print(f"total spend: ${total:.6f} (token counts as Bedrock reported them, priced with the shipped rate table)")
