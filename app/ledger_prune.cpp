// `bedrock-meter ledger prune`: retention. The local SQLite ledger folds old rows into its
// rollup and deletes them (accounting::prune_ledger); the fleet's PostgreSQL ledger drops whole
// monthly partitions (fleet::prune_months). A replica's journal is pruned only where every row
// has been shipped.
#include <iostream>
#include <string>

#include "accounting/ledger.hpp"
#include "app/args.hpp"
#include "app/commands.hpp"
#include "fleet/pg.hpp"
#include "fleet/schema.hpp"

namespace bedrock_meter::app {

namespace {

int prune_fleet(const config::config& cfg, std::int64_t before_ms, bool dry_run) {
  auto c = fleet::connection::open(cfg.ledger.postgres, "bedrock-meter ledger prune");
  if (!c) {
    std::cerr << "ledger prune: " << c.error().message << '\n';
    return 1;
  }
  auto r = fleet::prune_months(**c, before_ms, dry_run);
  if (!r) {
    std::cerr << "ledger prune: " << r.error().message << '\n';
    return 1;
  }
  if (r->partitions.empty()) {
    std::cout << "no whole month of the fleet ledger " << (*c)->where() << " ends by "
              << format_day(before_ms) << "; nothing " << (dry_run ? "would be " : "")
              << "dropped\n";
    return 0;
  }
  std::cout << (dry_run ? "would drop" : "dropped") << ' ' << r->partitions.size()
            << " monthly partitions of " << (*c)->where() << " (" << r->rows << " rows):";
  for (const auto& p : r->partitions) std::cout << ' ' << p;
  std::cout << "\nthe fleet ledger " << (dry_run ? "would start" : "now starts") << " at "
            << format_day(r->before_ms);
  if (r->before_ms < before_ms)
    std::cout << " (whole months only: the month holding " << format_day(before_ms) << " is kept)";
  std::cout << '\n';
  return 0;
}

}  // namespace

int ledger_prune_command(const args& a) {
  const auto path = a.get("config");
  const auto before_text = a.get("before");
  if (path.empty() || before_text.empty()) {
    std::cerr << "ledger prune: give --config FILE and --before YYYY-MM-DD (or 90d)\n";
    return 2;
  }
  const auto before = parse_when(before_text, now_ms());
  if (!before) {
    std::cerr << "ledger prune: --before takes a date YYYY-MM-DD or an age such as 90d\n";
    return 2;
  }
  const auto cfg = load_or_report(path);
  if (!cfg) return 2;
  const bool fleet = cfg->ledger.store == config::ledger_store_kind::postgres;
  const bool journal = !a.get("journal").empty();
  const bool dry_run = !a.get("dry-run").empty();
  if (fleet && !journal) return prune_fleet(*cfg, *before, dry_run);
  if (dry_run) {
    std::cerr << "ledger prune: --dry-run applies to the fleet ledger (ledger.store: postgres)\n";
    return 2;
  }
  // A fleet replica's journal keeps what PostgreSQL has not acknowledged.
  auto n = accounting::prune_ledger(cfg->ledger.path, *before, std::chrono::seconds(10), fleet);
  if (!n) {
    std::cerr << "ledger prune: " << n.error().message << '\n';
    return 1;
  }
  std::cout << "pruned " << *n << " rows before " << format_day(*before) << " from "
            << cfg->ledger.path << " (their sums stay in the rollup)\n";
  return 0;
}

}  // namespace bedrock_meter::app
