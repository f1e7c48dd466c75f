#include "app/cli.hpp"

#include <exception>
#include <iostream>
#include <string>
#include <string_view>

#include "app/args.hpp"
#include "app/commands.hpp"

namespace bedrock_meter::app {

namespace {

constexpr std::string_view usage_text =
    R"(bedrock-meter — a metering proxy for Amazon Bedrock Runtime

Usage:
  bedrock-meter serve --config FILE [--ready-file PATH]
      Run the proxy. SIGTERM/SIGINT: stop accepting, finish in-flight requests within
      limits.shutdown_grace, exit 0. SIGHUP: reload the config file (kept if invalid).
      --ready-file writes the bound ports as JSON once listening (for scripts using port 0).
  bedrock-meter check-config --config FILE
      Validate a config file; print each problem with file:line:column. Exit 1 if any.
  bedrock-meter keys create --team TEAM --app APP [--type sigv4|bearer]
      Mint a client credential. It is printed once, with the config lines to add.
  bedrock-meter price --model ID --region R --input N --output M [--cache-read N]
                      [--cache-write N] [--cache-write-1h N] [--tier T] [--latency optimized]
                      [--at YYYY-MM-DD] (--config FILE | --rates FILE)
      Quote a request's cost from the rate table and name the entry used.
  bedrock-meter report --config FILE [--since 24h|7d|YYYY-MM-DD] [--until ...] [--by team,app,model,day]
                       [--net]
      Spend table from the ledger (--net: and after the config's commitment discounts).
  bedrock-meter ledger export --config FILE [--since ...] [--until ...] [--format csv|jsonl]
      Every ledger row in the window, for chargeback.
  bedrock-meter ledger prune --config FILE --before YYYY-MM-DD|90d [--journal] [--dry-run]
      Retention. SQLite: rows before the cut-off are folded into the rollup (totals and
      counters keep them) and deleted. ledger.store postgres: drops the fleet's whole monthly
      partitions that end by the cut-off (--dry-run: name them); --journal prunes this
      replica's local journal instead, refusing while a row before the cut-off is unshipped.
  bedrock-meter budgets --config FILE [--format text|json]
      Each budget's limit, period-to-date spend (from the ledger, or the shared Redis store),
      % used and the forecast at period end. The running proxy answers GET /api/budgets.
  bedrock-meter advise --config FILE [--since 30d] [--until ...] [--team T] [--app A] [--model M]
                       [--reprice-as MODEL]... [--net] [--format text|json|markdown]
      What to change to cut the bill, from the ledger: buying mode (on demand, Provisioned
      Throughput, Reserved tier) per model and region, and the levers (prompt caching, output
      caps, trimming, model choice, batch, global profiles, flex/priority tiers) in dollars.
      The running proxy answers GET /api/advice. Formulas: docs/finops.md.
  bedrock-meter rates import --offer FILE [--offer FILE...] [--regions r1,r2] --out FILE
                            [--models FILE] [--strict] [--verbose]
      Write a rate table from AWS Price List offer files (bulk index.json or GetProducts
      pages of AmazonBedrock and AmazonBedrockFoundationModels). Model names are mapped to
      ids by --models FILE (default: config/rates/price-list-models.yaml, built in); rows that
      cannot be priced exactly are reported, never guessed (--strict: exit 1 when any is).
  bedrock-meter rates fetch --out FILE [--config FILE] [--regions r1,r2] [--models FILE]
                           [--endpoint URL] [--ca-file FILE] [--strict] [--verbose]
      The same, from the AWS Price List Query API (GetProducts, SigV4 service pricing, with
      the config's upstream.credentials or the default chain; paged, throttling retried).
  bedrock-meter rates diff OLD NEW [--format text|json]
      Every price that differs between two rate tables. Exit 0 when none, 1 when some.
  bedrock-meter reconcile --config FILE --cur FILE [--cur FILE...] [--since ...] [--until ...]
                          [--tolerance 1%] [--models FILE] [--format text|json]
      The ledger against the AWS bill: CUR 2.0 or legacy CUR exports (CSV or .csv.gz),
      tokens then dollars per day, region, model, scope, tier; what only one side has
      (traffic bypassing the proxy); billed unit prices the rate table disagrees with.
      Exit 0 within the tolerance, 1 beyond it, 2 when an input cannot be read.
  bedrock-meter commitment --config FILE [--name N] [--format text|json]
  bedrock-meter commitment --config FILE --plan [--growth 5%/month] [--years 3] [--discount 10%]
      EDP commitments (the config's commitments section) against the ledger: per contract
      year the Bedrock spend at list and net, what counts toward the commitment, the run-rate
      forecast and its shortfall or surplus, the net price per model. --plan projects the
      last 30 days forward to size a commitment before signing.
  bedrock-meter --version
)";

using command_fn = int (*)(const args&);

/// The command the positional words name, or null.
command_fn find_command(const args& a) {
  const auto word = [&](std::size_t i) {
    return i < a.positional.size() ? a.positional[i] : std::string_view();
  };
  if (word(0) == "serve") return serve_command;
  if (word(0) == "check-config") return check_config_command;
  if (word(0) == "keys" && word(1) == "create") return keys_create_command;
  if (word(0) == "price") return price_command;
  if (word(0) == "report") return report_command;
  if (word(0) == "budgets") return budgets_command;
  if (word(0) == "advise") return advise_command;
  if (word(0) == "rates") return rates_command;
  if (word(0) == "reconcile") return reconcile_command;
  if (word(0) == "commitment") return commitment_command;
  if (word(0) == "ledger" && word(1) == "export") return ledger_export_command;
  if (word(0) == "ledger" && word(1) == "prune") return ledger_prune_command;
  return nullptr;
}

}  // namespace

int run_cli(int argc, char** argv) {
  const auto a = args::parse(argc, argv);
  if (!a) {
    std::cerr << a.error().message << "\n\n" << usage_text;
    return 2;
  }
  if (!a->get("version").empty()) {
    std::cout << "bedrock-meter 0.1.0\n";
    return 0;
  }
  if (a->positional.empty() || !a->get("help").empty()) {
    std::cout << usage_text;
    return a->positional.empty() && a->get("help").empty() ? 2 : 0;
  }
  const auto command = find_command(*a);
  if (command == nullptr) {
    std::cerr << "unknown command '" << a->positional[0] << "'\n\n" << usage_text;
    return 2;
  }
  try {
    return command(*a);
  } catch (const std::exception& e) {
    // Commands report their errors as values; this is the last resort for what a library throws
    // unasked (std::bad_alloc, a yaml-cpp or SQLite surprise), so it ends as one line, not abort.
    std::cerr << "bedrock-meter: " << e.what() << '\n';
    return 1;
  }
}

}  // namespace bedrock_meter::app
