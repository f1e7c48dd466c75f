// `bedrock-meter price`: quote one request's cost from the rate table and name the entry used.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "app/commands.hpp"
#include "app/quote.hpp"
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
  // The options are the quote's parameters spelled with '-' (--cache-read for cache_read).
  const auto in = read_quote([&](std::string_view name) {
    std::string option(name);
    std::replace(option.begin(), option.end(), '_', '-');
    return std::string(a.get(option));
  });
  if (!in) {
    std::string why = in.error();  // "cache_read: ...": named as the option is spelled
    std::replace(why.begin(), why.begin() + static_cast<std::ptrdiff_t>(why.find(':')), '_', '-');
    std::cerr << "price: --" << why << '\n';
    return 2;
  }
  const auto q = in->query(&src.mappings);
  const auto p = metering::price(*src.table, in->usage, q);
  print_quote(p, in->usage, q, *src.table);
  return p.priced ? 0 : 3;
}

}  // namespace bedrock_meter::app
