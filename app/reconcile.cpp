// `bedrock-meter reconcile`: the ledger against the AWS bill's Bedrock lines (CUR 2.0 or legacy
// CUR exports, CSV or gzip-compressed CSV). billing/ does the reading and comparing; this file
// reads the files and the ledger and prints the report. Exit 0 within the tolerance, 1 beyond
// it (for cron and CI), 2 when an input cannot be read.
#include <zlib.h>

#include <boost/json.hpp>

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "accounting/ledger.hpp"
#include "app/commands.hpp"
#include "app/ledger_window.hpp"
#include "billing/price_list.hpp"
#include "billing/reconcile.hpp"
#include "config/price_list_models.hpp"
#include "metering/money.hpp"
#include "metering/rate_table.hpp"

namespace bedrock_meter::app {

namespace {

namespace b = billing;

/// Feeds one file (gzip or plain: zlib reads both) to the summer; false after printing why.
bool feed_file(const std::string& path, b::cur_summer& summer) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    std::cerr << "reconcile: cannot open " << path << '\n';
    return false;
  }
  gzbuffer(f, 1 << 17);
  summer.begin(path);
  std::string buf(1 << 16, '\0');
  for (;;) {
    const int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int code = 0;
      std::cerr << "reconcile: " << path << ": " << gzerror(f, &code) << '\n';
      gzclose(f);
      return false;
    }
    if (n == 0) break;
    summer.feed(std::string_view(buf.data(), static_cast<std::size_t>(n)));
  }
  gzclose(f);
  summer.end();
  return true;
}

/// The ledger summed into the bill's keys over [from, to).
std::optional<std::map<b::usage_key, b::usage_totals>> ledger_sums(const config::config& cfg,
                                                                   std::int64_t from_ms,
                                                                   std::int64_t to_ms) {
  const auto path = cfg.ledger.store == config::ledger_store_kind::postgres
                        ? std::string("the fleet ledger")
                        : cfg.ledger.path;
  auto reader = open_ledger_reader(cfg);
  if (!reader) {
    std::cerr << "reconcile: " << path << ": " << reader.error().message << '\n';
    return std::nullopt;
  }
  std::map<b::usage_key, b::usage_totals> out;
  accounting::scan_filter f;
  f.from_ms = from_ms;
  f.to_ms = to_ms;
  auto scanned = (*reader)->scan(f, [&](const accounting::scan_row& r) {
    if (r.input_tokens + r.output_tokens + r.cache_read_tokens + r.cache_write_tokens == 0 &&
        r.total_cost == 0)
      return true;
    b::usage_key k;
    k.day = format_day(r.time_ms);
    k.region = std::string(r.region);
    k.model = std::string(r.model_base);
    k.scope = r.scope == "global" ? "global" : "regional";
    // The ledger keeps the tier as Bedrock's header spells it ("default" is standard).
    const auto tier = metering::parse_service_tier(r.service_tier);
    k.tier = tier ? std::string(metering::to_string(*tier)) : std::string(r.service_tier);
    k.batch = r.batch;
    k.latency_optimized = r.latency_mode == "optimized";
    auto& t = out[k];
    const auto at = [&](b::token_class c) -> std::uint64_t& {
      return t.tokens[static_cast<std::size_t>(c)];
    };
    // The bill counts text and speech tokens under separate usage types; the ledger's input and
    // output hold both.
    const auto speech_in = std::min(r.input_tokens, r.speech_input_tokens);
    const auto speech_out = std::min(r.output_tokens, r.speech_output_tokens);
    at(b::token_class::input) += r.input_tokens - speech_in;
    at(b::token_class::output) += r.output_tokens - speech_out;
    at(b::token_class::speech_input) += speech_in;
    at(b::token_class::speech_output) += speech_out;
    at(b::token_class::cache_read) += r.cache_read_tokens;
    at(b::token_class::cache_write_5m) +=
        r.cache_write_tokens - std::min(r.cache_write_tokens, r.cache_write_1h_tokens);
    at(b::token_class::cache_write_1h) += r.cache_write_1h_tokens;
    t.cost += r.total_cost;
    return true;
  });
  if (!scanned) {
    std::cerr << "reconcile: " << path << ": " << scanned.error().message << '\n';
    return std::nullopt;
  }
  return out;
}

/// "1%" or "0.01".
std::optional<double> parse_tolerance(std::string_view s) {
  const bool percent = s.ends_with('%');
  if (percent) s.remove_suffix(1);
  try {
    std::size_t used = 0;
    const double v = std::stod(std::string(s), &used);
    if (used != s.size() || v < 0) return std::nullopt;
    return percent ? v / 100 : v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string usd(metering::money_total pico) { return metering::format_usd(pico, 6); }

std::string key_text(const b::usage_key& k) {
  std::string s = k.day + " " + k.region + " " + k.model + " " + k.scope;
  if (k.tier != "standard") s += " tier=" + k.tier;
  if (k.batch) s += " batch";
  if (k.latency_optimized) s += " latency=optimized";
  return s;
}

boost::json::object totals_json(const b::usage_totals& t) {
  boost::json::object o;
  for (std::size_t i = 0; i < t.tokens.size(); ++i) o[b::token_class_names[i]] = t.tokens[i];
  o["cost_usd"] = usd(t.cost);
  return o;
}

void print_json(const b::reconcile_report& r, const b::cur_result& bill, double tolerance) {
  boost::json::object doc;
  doc["tolerance"] = tolerance;
  doc["within_tolerance"] = r.within_tolerance;
  doc["first_day"] = bill.first_day.value_or("");
  doc["last_day"] = bill.last_day.value_or("");
  doc["ledger"] = totals_json(r.ledger_total);
  doc["bill"] = totals_json(r.bill_total);
  boost::json::array rows;
  for (const auto& row : r.rows) {
    boost::json::object o;
    o["status"] = b::to_string(row.status);
    o["day"] = row.key.day;
    o["region"] = row.key.region;
    o["model"] = row.key.model;
    o["scope"] = row.key.scope;
    o["tier"] = row.key.tier;
    o["batch"] = row.key.batch;
    o["latency_optimized"] = row.key.latency_optimized;
    o["ledger"] = totals_json(row.ledger);
    o["bill"] = totals_json(row.bill);
    rows.push_back(std::move(o));
  }
  doc["rows"] = std::move(rows);
  boost::json::array stale;
  for (const auto& s : r.stale) {
    boost::json::object o;
    o["usage_type"] = s.billed.usage_type;
    o["model"] = s.billed.key.model;
    o["region"] = s.billed.key.region;
    o["scope"] = s.billed.key.scope;
    o["token_class"] = b::token_class_names[static_cast<std::size_t>(s.billed.cls)];
    o["billed_per_million"] = b::micro_usd_text(s.billed.micro_per_m);
    o["table_per_million"] = s.table_micro_per_m
                                 ? boost::json::value(b::micro_usd_text(*s.table_micro_per_m))
                                 : boost::json::value(nullptr);
    o["table_entry"] = s.table_entry;
    stale.push_back(std::move(o));
  }
  doc["stale_rates"] = std::move(stale);
  boost::json::object skipped;
  for (const auto& [why, s] : bill.skipped)
    skipped[why] = boost::json::object{{"rows", s.first}, {"example", s.second}};
  doc["skipped"] = std::move(skipped);
  std::cout << boost::json::serialize(doc) << '\n';
}

void print_text(const b::reconcile_report& r, const b::cur_result& bill, double tolerance) {
  std::cout << "bill " << bill.first_day.value_or("?") << " .. " << bill.last_day.value_or("?")
            << ": " << bill.used_rows << " of " << bill.bedrock_rows << " Bedrock usage lines ("
            << bill.rows << " lines read)\n";
  std::cout << "            ledger          bill\n";
  for (std::size_t i = 0; i < b::token_classes; ++i) {
    if (b::is_speech(i) && r.ledger_total.tokens[i] == 0 && r.bill_total.tokens[i] == 0) continue;
    std::cout << std::left << std::setw(15) << b::token_class_names[i] << std::right
              << std::setw(12) << r.ledger_total.tokens[i] << std::setw(14)
              << r.bill_total.tokens[i] << '\n';
  }
  std::cout << std::left << std::setw(15) << "cost (USD)" << std::right << std::setw(12)
            << usd(r.ledger_total.cost) << std::setw(14) << usd(r.bill_total.cost) << "\n\n";
  std::size_t shown = 0;
  for (const auto& row : r.rows) {
    if (row.status == b::match_status::match) continue;
    ++shown;
    std::cout << b::to_string(row.status) << "  " << key_text(row.key) << '\n';
    for (std::size_t i = 0; i < b::token_classes; ++i) {
      if (row.ledger.tokens[i] == row.bill.tokens[i]) continue;
      std::cout << "    " << b::token_class_names[i] << ": ledger " << row.ledger.tokens[i]
                << ", bill " << row.bill.tokens[i] << '\n';
    }
    std::cout << "    cost: ledger $" << usd(row.ledger.cost) << ", bill $" << usd(row.bill.cost)
              << '\n';
  }
  for (const auto& s : r.stale) {
    std::cout << "stale rate  " << s.billed.key.region << ' ' << s.billed.key.model << ' '
              << s.billed.key.scope << ' '
              << b::token_class_names[static_cast<std::size_t>(s.billed.cls)] << ": bill "
              << b::micro_usd_text(s.billed.micro_per_m) << " per 1M, table "
              << (s.table_micro_per_m ? b::micro_usd_text(*s.table_micro_per_m) : "none")
              << (s.table_entry.empty() ? "" : " (" + s.table_entry + ")") << "  ["
              << s.billed.usage_type << "]\n";
  }
  for (const auto& [why, s] : bill.skipped) {
    std::cout << "not compared: " << s.first << " line" << (s.first == 1 ? "" : "s") << ", e.g. "
              << s.second << ": " << why << '\n';
  }
  std::cout << r.rows.size() - shown << " of " << r.rows.size() << " groups match within "
            << tolerance * 100 << "%; " << r.stale.size() << " stale rate"
            << (r.stale.size() == 1 ? "" : "s") << '\n';
}

}  // namespace

int reconcile_command(const args& a) {
  const auto path = a.get("config");
  const auto files = a.get_list("cur");
  const auto format = a.get("format", "text");
  const auto tolerance = parse_tolerance(a.get("tolerance", "1%"));
  if (path.empty() || files.empty() || (format != "text" && format != "json") || !tolerance) {
    std::cerr << "reconcile: --config FILE and --cur FILE are required; --format takes text or "
                 "json; --tolerance takes 1% or 0.01\n";
    return 2;
  }
  const auto cfg = load_or_report(path);
  if (!cfg) return 2;
  if (cfg->ledger.path.empty()) {
    std::cerr << "reconcile: " << path << " has no ledger.path\n";
    return 2;
  }
  const auto models = load_models_or_report(a.get("models"));
  if (!models) return 2;

  b::cur_summer summer(*models);
  for (const auto& f : files)
    if (!feed_file(f, summer)) return 2;
  b::cur_result bill = summer.take();
  for (const auto& e : bill.errors) std::cerr << "reconcile: " << e << '\n';
  if (!bill.errors.empty()) return 2;

  // The window: --since/--until, or the days the bill covers (CUR lags; the ledger's newest
  // hours would otherwise all read as "ledger_only").
  const auto now = now_ms();
  const auto day_ms = [](const std::optional<std::string>& d, std::int64_t plus) {
    return d ? parse_when(*d, 0).value_or(0) + plus : 0;
  };
  const auto since = a.get("since").empty() ? std::optional(day_ms(bill.first_day, 0))
                                            : parse_when(a.get("since"), now);
  const auto until = a.get("until").empty() ? std::optional(day_ms(bill.last_day, 86'400'000))
                                            : parse_when(a.get("until"), now);
  if (!since || !until || *since >= *until) {
    std::cerr << "reconcile: no window (give --since and --until, or a CUR with Bedrock usage)\n";
    return 2;
  }
  // Bill lines outside an explicit window are not compared either.
  for (auto it = bill.bill.begin(); it != bill.bill.end();) {
    const auto d = parse_when(it->first.day, 0).value_or(0);
    it = d < *since || d >= *until ? bill.bill.erase(it) : std::next(it);
  }
  const auto ledger = ledger_sums(*cfg, *since, *until);
  if (!ledger) return 2;
  const auto report = b::reconcile(*ledger, bill, cfg->rate_table.get(), *tolerance);
  if (format == "json") {
    print_json(report, bill, *tolerance);
  } else {
    print_text(report, bill, *tolerance);
  }
  return report.within_tolerance ? 0 : 1;
}

}  // namespace bedrock_meter::app
