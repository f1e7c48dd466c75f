// `bedrock-meter advise`: what to change to cut the bill, computed from the ledger (advice/). The
// running proxy answers the same JSON at GET /api/advice.
#include <filesystem>
#include <iostream>

#include "accounting/ledger.hpp"
#include "app/advice_run.hpp"
#include "app/commands.hpp"
#include "app/ledger_window.hpp"

namespace bedrock_meter::app {

namespace {

std::optional<advice_query> query_from(const args& a) {
  const auto now = now_ms();
  const auto since = parse_when(a.get("since", "30d"), now);
  const auto until = a.get("until").empty() ? std::optional<std::int64_t>(now + 1)
                                            : parse_when(a.get("until"), now);
  if (!since || !until || *since >= *until) {
    std::cerr << "advise: --since/--until take 30m, 24h, 7d or a date YYYY-MM-DD, since before "
                 "until\n";
    return std::nullopt;
  }
  advice_query q;
  q.since_ms = *since;
  q.until_ms = *until;
  q.team = a.get("team");
  q.app = a.get("app");
  q.model = a.get("model");
  q.reprice_as = a.get_list("reprice-as");  // repeated, or a comma-separated list
  q.net = !a.get("net").empty();
  return q;
}

}  // namespace

int advise_command(const args& a) {
  const auto path = a.get("config");
  const auto format = a.get("format", "text");
  if (path.empty() || (format != "text" && format != "json" && format != "markdown")) {
    std::cerr << "advise: --config FILE is required; --format takes text, json or markdown\n";
    return 2;
  }
  const auto q = query_from(a);
  if (!q) return 2;
  const auto cfg = load_or_report(path);
  if (!cfg) return 1;
  if (!cfg->rate_table) {
    std::cerr << "advise: the config has no pricing.rate_table; the advisor prices from it\n";
    return 1;
  }
  if (cfg->ledger.store == config::ledger_store_kind::sqlite &&
      (cfg->ledger.path.empty() || !std::filesystem::exists(cfg->ledger.path))) {
    std::cerr << "advise: no ledger at '" << cfg->ledger.path
              << "' (set ledger.path and let the proxy record traffic first)\n";
    return 1;
  }
  auto reader = open_ledger_reader(*cfg);
  if (!reader) {
    std::cerr << "advise: " << reader.error().message << '\n';
    return 1;
  }
  for (const auto& m : q->reprice_as) {
    if (!cfg->rate_table->by_model.contains(m))
      std::cerr << "warning: --reprice-as " << m << ": not in the rate table; skipped\n";
  }
  auto report = run_advice(**reader, *cfg->rate_table, cfg->models.mappings, cfg->commitments, *q);
  if (!report) {
    std::cerr << "advise: " << report.error() << '\n';
    return 1;
  }
  if (format == "json") {
    std::cout << advice::to_json(*report) << '\n';
  } else if (format == "markdown") {
    std::cout << advice::to_markdown(*report);
  } else {
    std::cout << advice::to_text(*report);
  }
  return 0;
}

}  // namespace bedrock_meter::app
