// `bedrock-meter price`: quote one request's cost from the rate table and name the entry used.
#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "app/commands.hpp"
#include "config/rate_table_loader.hpp"
#include "metering/money.hpp"
#include "metering/rate_table.hpp"

namespace bedrock_meter::app {

namespace {

/// The table to quote from: --rates FILE, or the one --config FILE names (with its mappings).
struct quote_source {
  std::shared_ptr<const metering::rate_table> table;
  std::vector<metering::model_mapping> mappings;
};

/// Exit code 0 and the source, or the exit code of the error already printed.
int load_source(const args& a, quote_source& out) {
  if (const auto rates = a.get("rates"); !rates.empty()) {
    auto r = config::load_rate_table_file(std::string(rates));
    for (const auto& e : r.errors) std::cerr << e.to_string() << '\n';
    if (!r.table) return 1;
    out.table = r.table;
    return 0;
  }
  const auto path = a.get("config");
  if (path.empty()) {
    std::cerr << "price: give --config FILE or --rates FILE\n";
    return 2;
  }
  const auto cfg = load_or_report(path);
  if (!cfg) return 1;
  if (!cfg->rate_table) {
    std::cerr << "price: " << path << " has no pricing.rate_table\n";
    return 1;
  }
  out.table = cfg->rate_table;
  out.mappings = cfg->models.mappings;
  return 0;
}

/// The token counts from --input, --output, --cache-read, --cache-write, --cache-write-1h.
bool read_usage(const args& a, metering::token_usage& u) {
  u.source = metering::usage_source::reported;
  const struct {
    std::string_view name;
    std::uint64_t* out;
  } counts[] = {{"input", &u.input},
                {"output", &u.output},
                {"cache-read", &u.cache_read},
                {"cache-write", &u.cache_write},
                {"cache-write-1h", &u.cache_write_1h}};
  for (const auto& c : counts) {
    const auto v = parse_count(a.get(c.name));
    if (!v) {
      std::cerr << "price: --" << c.name << " must be a whole number of tokens\n";
      return false;
    }
    *c.out = *v;
  }
  u.cache_write += u.cache_write_1h;  // --cache-write is the 5-minute part
  return true;
}

/// Model, region, tier, latency and date of the quote. False (message printed) on a bad value.
bool read_query(const args& a, metering::price_query& q) {
  q.model_id = a.get("model");
  q.region = a.get("region", "us-east-1");
  if (q.model_id.empty()) {
    std::cerr << "price: --model is required\n";
    return false;
  }
  const auto tier = metering::parse_service_tier(a.get("tier"));
  if (!tier) {
    std::cerr << "price: --tier must be default, priority, flex or reserved\n";
    return false;
  }
  q.tier = *tier;
  q.latency = a.get("latency") == "optimized" ? metering::latency_mode::optimized
                                              : metering::latency_mode::standard;
  q.at = std::chrono::system_clock::now();
  if (const auto at = a.get("at"); !at.empty()) {
    const auto ms = parse_when(at, now_ms());
    if (!ms) {
      std::cerr << "price: --at must be a date YYYY-MM-DD\n";
      return false;
    }
    q.at = std::chrono::system_clock::time_point(std::chrono::milliseconds(*ms));
  }
  return true;
}

void print_quote(const metering::priced& p, const metering::token_usage& u,
                 const metering::price_query& q, const metering::rate_table& table) {
  std::cout << "model:        " << q.model_id << " (" << metering::to_string(p.model.kind)
            << ", scope " << metering::to_string(p.model.scope) << ")\n"
            << "region:       " << q.region << "   tier: " << metering::to_string(q.tier)
            << "   latency: " << metering::to_string(q.latency) << "\n"
            << "rate table:   " << table.version << "\n";
  if (!p.priced) {
    std::cout << "UNPRICED:     " << p.note << "\n";
    return;
  }
  if (p.entry)
    std::cout << "entry:        " << p.entry->location << "  (" << p.entry->model << "; "
              << p.entry->source << ")\n";
  if (p.long_context) std::cout << "long context: yes (input above the entry's threshold)\n";
  std::cout << "input:        " << u.input << " tokens  $" << metering::format_usd(p.cost.input, 9)
            << "\noutput:       " << u.output << " tokens  $"
            << metering::format_usd(p.cost.output, 9) << "\ncache read:   " << u.cache_read
            << " tokens  $" << metering::format_usd(p.cost.cache_read, 9)
            << "\ncache write:  " << u.cache_write << " tokens  $"
            << metering::format_usd(p.cost.cache_write, 9) << "\ntotal:        $"
            << metering::format_usd(p.cost.total(), 9) << "\n";
  if (!p.note.empty()) std::cout << "note:         " << p.note << "\n";
}

}  // namespace

int price_command(const args& a) {
  quote_source src;
  if (const int rc = load_source(a, src); rc != 0) return rc;
  metering::token_usage u;
  metering::price_query q;
  if (!read_query(a, q) || !read_usage(a, u)) return 2;
  q.mappings = &src.mappings;
  const auto p = metering::price(*src.table, u, q);
  print_quote(p, u, q, *src.table);
  return p.priced ? 0 : 3;
}

}  // namespace bedrock_meter::app
