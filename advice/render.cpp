// The report as JSON (Boost.JSON), as aligned terminal tables, and as Markdown. Money is always
// a decimal string (6 places in JSON, cents on screen): never a float.
#include "advice/advice.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

namespace bedrock_meter::advice {
namespace {

namespace json = boost::json;
namespace m = metering;

constexpr double max_exact_integer = 9'007'199'254'740'992.0;  ///< 2^53

// ---- values --------------------------------------------------------------------------------

/// Unix ms as ISO 8601 UTC ("2026-07-24T00:00:00Z"; milliseconds only when not zero).
std::string iso8601(std::int64_t ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> t{milliseconds(ms)};
  const sys_days day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> tod{t - day};
  std::array<char, 48> buf{};
  int n = std::snprintf(buf.data(), buf.size(), "%04d-%02u-%02uT%02d:%02d:%02d",
                        static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                        static_cast<unsigned>(ymd.day()), static_cast<int>(tod.hours().count()),
                        static_cast<int>(tod.minutes().count()),
                        static_cast<int>(tod.seconds().count()));
  std::string out(buf.data(), static_cast<std::size_t>(std::max(n, 0)));
  if (tod.subseconds().count() != 0) {
    n = std::snprintf(buf.data(), buf.size(), ".%03d", static_cast<int>(tod.subseconds().count()));
    out.append(buf.data(), static_cast<std::size_t>(std::max(n, 0)));
  }
  return out + "Z";
}

json::value money(money_total pico) { return json::string(m::format_usd(pico, 6)); }

json::value money_or_null(const std::optional<money_total>& pico) {
  if (!pico) return nullptr;
  return money(*pico);
}

/// Whole numbers as JSON integers ("200000", not Boost's "2E5"); others as doubles.
json::value number(double x) {
  if (!std::isfinite(x)) return nullptr;
  if (std::trunc(x) == x && std::fabs(x) < max_exact_integer) return static_cast<std::int64_t>(x);
  return x;
}

json::value number_or_null(const std::optional<double>& x) {
  if (!x) return nullptr;
  return number(*x);
}

json::value count_or_null(const std::optional<std::uint64_t>& x) {
  if (!x) return nullptr;
  return *x;
}

std::string usd(money_total pico) { return "$" + m::format_usd(pico, 2); }

std::string fixed(double x, int decimals) {
  if (!std::isfinite(x)) return "-";
  std::array<char, 64> buf{};
  const auto r =
      std::to_chars(buf.data(), buf.data() + buf.size(), x, std::chars_format::fixed, decimals);
  return std::string(buf.data(), r.ptr);
}

std::string tokens(double x) { return fixed(x, x < 100 ? 1 : 0); }

std::string percent(const std::optional<double>& ratio) {
  return ratio ? fixed(*ratio * 100, 1) + "%" : "-";
}

std::string usd_or_dash(const std::optional<money_total>& pico) { return pico ? usd(*pico) : "-"; }

/// "3" model units, "40000 in + 8000 out TPM" reserved, "-" when unknown.
std::string units_text(const buying_option& o) {
  if (!o.units) return "-";
  if (o.mode != "reserved") return std::to_string(*o.units);
  std::string s = std::to_string(*o.units) + " in";
  if (o.reserved_output_tpm) s += " + " + std::to_string(*o.reserved_output_tpm) + " out";
  return s + " TPM";
}

// ---- JSON ----------------------------------------------------------------------------------

json::object load_json(const load_summary& l) {
  return {{"p50", number(l.p50)},
          {"p95", number(l.p95)},
          {"p99", number(l.p99)},
          {"max", number(l.max)},
          {"mean", number(l.mean)}};
}

json::object option_json(const buying_option& o) {
  json::object j;
  j["mode"] = o.mode;
  j["term"] = o.term;
  j["units"] = count_or_null(o.units);
  if (o.mode == "reserved") j["reserved_output_tpm"] = count_or_null(o.reserved_output_tpm);
  j["monthly_usd"] = money_or_null(o.monthly);
  j["spill_usd"] = money_or_null(o.spill);
  j["utilisation"] = number_or_null(o.utilisation);
  j["source"] = o.source;
  j["note"] = o.note;
  return j;
}

json::object per_term(const std::vector<std::pair<std::string, double>>& v) {
  json::object j;
  for (const auto& [term, x] : v) j[term] = number(x);
  return j;
}

json::object buying_json(const buying_mode_advice& a) {
  json::array week;
  for (const double x : a.hour_of_week) week.push_back(number(x));
  json::array opts;
  for (const buying_option& o : a.options) opts.push_back(option_json(o));
  json::object j;
  j["model"] = a.model;
  j["region"] = a.region;
  j["scope"] = a.scope;
  j["requests"] = a.requests;
  j["on_demand_usd"] = money(a.on_demand);
  j["on_demand_monthly_usd"] = money(a.on_demand_monthly);
  j["load"] = json::object{{"input_tpm", load_json(a.input_tpm)},
                           {"output_tpm", load_json(a.output_tpm)},
                           {"hour_of_week", std::move(week)}};
  j["options"] = std::move(opts);
  j["break_even"] = json::object{{"tokens_per_minute", per_term(a.breakeven.tokens_per_minute)},
                                 {"utilisation", per_term(a.breakeven.utilisation)}};
  j["recommendation"] = a.recommendation;
  return j;
}

json::object provisioned_json(const provisioned_usage& u) {
  json::object j;
  j["arn"] = u.arn;
  j["model"] = u.model;
  j["region"] = u.region;
  j["requests"] = u.requests;
  j["committed_usd"] = money(u.committed);
  j["on_demand_equivalent_usd"] = money(u.on_demand_equivalent);
  j["utilisation"] = number_or_null(u.utilisation);
  j["input_tpm"] = load_json(u.input_tpm);
  j["output_tpm"] = load_json(u.output_tpm);
  j["recommendation"] = u.recommendation;
  return j;
}

/// The lever's evidence is JSON text; a malformed one is kept as a string rather than lost.
json::value evidence(std::string_view text) {
  if (text.empty()) return json::object{};
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return json::string(text);
  return v;
}

json::object lever_json(const lever& l) {
  return {{"lever", l.name},
          {"team", l.team},
          {"app", l.app},
          {"model", l.model},
          {"savings_usd", money(l.savings)},
          {"monthly_savings_usd", money(l.monthly_savings)},
          {"evidence", evidence(l.evidence_json)},
          {"caveat", l.caveat}};
}

// ---- tables --------------------------------------------------------------------------------

struct table {
  std::vector<std::string> head;
  std::vector<bool> right;  ///< right-aligned columns (numbers)
  std::vector<std::vector<std::string>> rows;
};

/// The header, a rule, and one line per row, columns padded to their widest cell.
std::vector<std::string> text_lines(const table& t) {
  std::vector<std::size_t> width(t.head.size(), 0);
  for (std::size_t c = 0; c < t.head.size(); ++c) width[c] = t.head[c].size();
  for (const auto& row : t.rows) {
    for (std::size_t c = 0; c < row.size() && c < width.size(); ++c) {
      width[c] = std::max(width[c], row[c].size());
    }
  }
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (std::size_t c = 0; c < width.size(); ++c) {
      const std::string& cell = c < cells.size() ? cells[c] : std::string();
      const std::string pad(width[c] - std::min(width[c], cell.size()), ' ');
      if (c > 0) s += "  ";
      s += (c < t.right.size() && t.right[c]) ? pad + cell : cell + pad;
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
  };
  std::vector<std::string> out{line(t.head)};
  std::size_t total = 0;
  for (const std::size_t w : width) total += w;
  out.push_back(std::string(total + 2 * (width.empty() ? 0 : width.size() - 1), '-'));
  for (const auto& row : t.rows) out.push_back(line(row));
  return out;
}

std::string md_cell(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '|') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

std::string md_table(const table& t) {
  const auto line = [](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (const std::string& c : cells) s += " " + md_cell(c) + " |";
    return s + "\n";
  };
  std::string out = line(t.head) + "|";
  for (std::size_t c = 0; c < t.head.size(); ++c) {
    out += (c < t.right.size() && t.right[c]) ? " ---: |" : " --- |";
  }
  out += "\n";
  for (const auto& row : t.rows) out += line(row);
  return out;
}

table load_table(const load_summary& in, const load_summary& out) {
  table t{{"tokens/min", "p50", "p95", "p99", "max", "mean"},
          {false, true, true, true, true, true},
          {}};
  for (const auto& [name, l] : {std::pair{"input", &in}, std::pair{"output", &out}}) {
    t.rows.push_back(
        {name, tokens(l->p50), tokens(l->p95), tokens(l->p99), tokens(l->max), tokens(l->mean)});
  }
  return t;
}

table options_table(const buying_mode_advice& a) {
  table t{{"mode", "term", "units", "monthly", "spill/month", "used", "source"},
          {false, false, true, true, true, true, false},
          {}};
  for (const buying_option& o : a.options) {
    t.rows.push_back({o.mode, o.term, units_text(o), usd_or_dash(o.monthly), usd_or_dash(o.spill),
                      percent(o.utilisation), o.source});
  }
  return t;
}

std::string break_even_text(const break_even& b) {
  std::string s;
  for (const auto& [term, tpm] : b.tokens_per_minute) {
    if (!s.empty()) s += ", ";
    s += term + " " + tokens(tpm) + " tokens/min";
    for (const auto& [t, u] : b.utilisation) {
      if (t == term) s += " (" + percent(u) + " of a unit)";
    }
  }
  return s;
}

table provisioned_table(const report& r) {
  table t{{"arn", "model", "region", "requests", "committed", "on demand", "used"},
          {false, false, false, true, true, true, true},
          {}};
  for (const provisioned_usage& u : r.provisioned) {
    t.rows.push_back({u.arn, u.model, u.region, std::to_string(u.requests), usd(u.committed),
                      usd(u.on_demand_equivalent), percent(u.utilisation)});
  }
  return t;
}

table levers_table(const report& r, bool with_caveat) {
  table t{{"lever", "team", "app", "model", "savings", "per month"},
          {false, false, false, false, true, true},
          {}};
  if (with_caveat) {
    t.head.push_back("caveat");
    t.right.push_back(false);
  }
  for (const lever& l : r.levers) {
    t.rows.push_back({l.name, l.team, l.app, l.model, usd(l.savings), usd(l.monthly_savings)});
    if (with_caveat) t.rows.back().push_back(l.caveat);
  }
  return t;
}

/// "Wed 13:00-14:00 UTC, 11 tokens/min on average": the busiest hour of the week; "" when idle.
std::string busiest_hour(const std::vector<double>& week) {
  static constexpr std::array<std::string_view, 7> days = {"Mon", "Tue", "Wed", "Thu",
                                                           "Fri", "Sat", "Sun"};
  const auto top = std::max_element(week.begin(), week.end());
  if (top == week.end() || *top <= 0) return "";
  const auto h = static_cast<std::size_t>(top - week.begin());
  if (h / 24 >= days.size()) return "";
  std::array<char, 32> span{};
  const int n =
      std::snprintf(span.data(), span.size(), " %02zu:00-%02zu:00 UTC, ", h % 24, h % 24 + 1);
  return std::string(days[h / 24]) + std::string(span.data(), static_cast<std::size_t>(n)) +
         tokens(*top) + " tokens/min on average";
}

std::string heading_of(const buying_mode_advice& a) {
  return a.model + " in " + a.region + " (" + a.scope + ")";
}

std::string summary_of(const buying_mode_advice& a) {
  return std::to_string(a.requests) + " requests, " + usd(a.on_demand) + " on demand (" +
         usd(a.on_demand_monthly) + "/month)";
}

std::string window_of(const report& r) {
  return iso8601(r.since_ms) + " .. " + iso8601(r.until_ms) + ": " + std::to_string(r.requests) +
         " requests, " + usd(r.spend) + (r.basis == "net" ? " spent at net prices" : " spent") +
         " (rate table " +
         (r.rate_table_version.empty() ? std::string("-") : r.rate_table_version) + ")";
}

// ---- text ----------------------------------------------------------------------------------

void append_lines(std::string& out, const table& t, std::string_view indent) {
  for (const std::string& l : text_lines(t)) out += std::string(indent) + l + "\n";
}

void text_buying(std::string& out, const buying_mode_advice& a) {
  out += "\n" + heading_of(a) + ": " + summary_of(a) + "\n";
  append_lines(out, load_table(a.input_tpm, a.output_tpm), "  ");
  const std::string peak = busiest_hour(a.hour_of_week);
  if (!peak.empty()) out += "  busiest hour of the week: " + peak + "\n";
  out += "\n";
  append_lines(out, options_table(a), "  ");
  for (const buying_option& o : a.options) {
    if (!o.note.empty()) out += "  * " + o.mode + " " + o.term + ": " + o.note + "\n";
  }
  const std::string be = break_even_text(a.breakeven);
  if (!be.empty()) out += "  break-even of one unit: " + be + "\n";
  out += "  => " + a.recommendation + "\n";
}

void text_levers(std::string& out, const report& r) {
  out += "\nLevers (largest saving first)\n";
  const std::vector<std::string> lines = text_lines(levers_table(r, false));
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += "  " + lines[i] + "\n";
    if (i >= 2 && !r.levers[i - 2].caveat.empty()) {
      out += "      " + r.levers[i - 2].caveat + "\n";
    }
  }
}

// ---- Markdown ------------------------------------------------------------------------------

void markdown_buying(std::string& out, const buying_mode_advice& a) {
  out += "\n### " + md_cell(heading_of(a)) + "\n\n" + summary_of(a) + ".\n\n";
  out += md_table(load_table(a.input_tpm, a.output_tpm)) + "\n";
  const std::string peak = busiest_hour(a.hour_of_week);
  if (!peak.empty()) out += "Busiest hour of the week: " + peak + ".\n\n";
  out += md_table(options_table(a)) + "\n";
  for (const buying_option& o : a.options) {
    if (!o.note.empty()) out += "- *" + o.mode + " " + o.term + "*: " + o.note + "\n";
  }
  const std::string be = break_even_text(a.breakeven);
  if (!be.empty()) out += "- Break-even of one unit: " + be + "\n";
  out += "\n**Recommendation:** " + a.recommendation + "\n";
}

}  // namespace

std::string to_json(const report& r) {
  json::array buying, provisioned, levers, notes;
  for (const buying_mode_advice& a : r.buying_mode) buying.push_back(buying_json(a));
  for (const provisioned_usage& u : r.provisioned) provisioned.push_back(provisioned_json(u));
  for (const lever& l : r.levers) levers.push_back(lever_json(l));
  for (const std::string& n : r.notes) notes.push_back(json::string(n));
  json::object doc;
  doc["window"] = json::object{{"since", iso8601(r.since_ms)},
                               {"until", iso8601(r.until_ms)},
                               {"requests", r.requests},
                               {"spend_usd", money(r.spend)}};
  doc["basis"] = r.basis;
  doc["rate_table_version"] = r.rate_table_version;
  doc["buying_mode"] = std::move(buying);
  doc["provisioned"] = std::move(provisioned);
  doc["levers"] = std::move(levers);
  doc["notes"] = std::move(notes);
  return json::serialize(doc);
}

std::string to_text(const report& r) {
  std::string out = "Bedrock advice, " + window_of(r) + "\n";
  if (!r.buying_mode.empty()) out += "\nBuying mode\n";
  for (const buying_mode_advice& a : r.buying_mode) text_buying(out, a);
  if (!r.provisioned.empty()) {
    out += "\nProvisioned models\n";
    append_lines(out, provisioned_table(r), "  ");
    for (const provisioned_usage& u : r.provisioned) {
      out += "  * " + u.arn + ": " + u.recommendation + "\n";
    }
  }
  if (!r.levers.empty()) text_levers(out, r);
  if (!r.notes.empty()) out += "\nNotes\n";
  for (const std::string& n : r.notes) out += "  - " + n + "\n";
  return out;
}

std::string to_markdown(const report& r) {
  std::string out = "# Bedrock advice\n\n" + window_of(r) + ".\n";
  if (!r.buying_mode.empty()) out += "\n## Buying mode\n";
  for (const buying_mode_advice& a : r.buying_mode) markdown_buying(out, a);
  if (!r.provisioned.empty()) {
    out += "\n## Provisioned models\n\n" + md_table(provisioned_table(r)) + "\n";
    for (const provisioned_usage& u : r.provisioned) {
      out += "- `" + u.arn + "`: " + u.recommendation + "\n";
    }
  }
  if (!r.levers.empty()) {
    out += "\n## Levers\n\nLargest saving first.\n\n" + md_table(levers_table(r, true));
  }
  if (!r.notes.empty()) out += "\n## Notes\n\n";
  for (const std::string& n : r.notes) out += "- " + md_cell(n) + "\n";
  return out;
}

}  // namespace bedrock_meter::advice
