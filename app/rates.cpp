// `bedrock-meter rates import` (AWS Price List offers -> a rate table) and `bedrock-meter rates
// diff` (every price that differs between two tables). The work is in billing/; this file reads
// and writes the files and prints the report.
#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "app/commands.hpp"
#include "app/price_list_fetch.hpp"
#include "aws/credentials.hpp"
#include "billing/price_list.hpp"
#include "billing/rates_diff.hpp"
#include "config/price_list_models.hpp"
#include "config/rate_table_loader.hpp"

namespace bedrock_meter::app {

namespace {

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return std::move(s).str();
}

/// Writes `text` to `path` through a temporary file and a rename, so a proxy watching `path`
/// never reads half a table.
bool write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!(out << text) || !out.flush()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

/// The skipped rows, one line per reason and model name, with how many rows each covers.
void print_skipped(const std::vector<billing::skipped_row>& skipped, bool verbose) {
  std::map<std::pair<std::string, std::string>, std::pair<std::size_t, std::string>> grouped;
  for (const auto& s : skipped) {
    auto& g = grouped[{s.reason, s.model_name}];
    if (g.first++ == 0) g.second = s.usage_type + (s.sku.empty() ? "" : " (SKU " + s.sku + ")");
    if (verbose) {
      std::cerr << "  skipped " << s.usage_type << (s.sku.empty() ? "" : " SKU " + s.sku) << ": "
                << s.reason << '\n';
    }
  }
  if (verbose) return;
  for (const auto& [key, g] : grouped) {
    std::cerr << "  skipped " << g.first << " row" << (g.first == 1 ? "" : "s")
              << (key.second.empty() ? "" : " of '" + key.second + "'") << ", e.g. " << g.second
              << ": " << key.first << '\n';
  }
}

/// Imports `offers` and writes the table to --out: what `rates import` and `rates fetch` share.
int import_and_write(const args& a, const std::vector<billing::offer_text>& offers,
                     const billing::import_options& opts) {
  const auto out_path = std::string(a.get("out"));
  const auto models = load_models_or_report(a.get("models"));
  if (!models) return 1;
  const auto r = billing::import_price_list(offers, *models, opts);
  for (const auto& e : r.errors) std::cerr << "rates: " << e << '\n';
  if (!r.errors.empty()) return 1;
  if (r.yaml.empty()) {
    std::cerr << "rates: nothing priced (" << r.rows_read << " rows read)\n";
    print_skipped(r.skipped, !a.get("verbose").empty());
    return 1;
  }
  // What is written must load: the import is checked by the loader the proxy uses.
  const auto check = config::load_rate_table_string(r.yaml, out_path);
  for (const auto& e : check.errors) std::cerr << "rates (bug): " << e.to_string() << '\n';
  if (!check.table) return 1;
  if (!write_file(out_path, r.yaml)) {
    std::cerr << "rates: cannot write " << out_path << '\n';
    return 1;
  }
  std::cerr << "rates: " << out_path << ": " << r.entries << " entries, " << r.provisioned
            << " provisioned entries from " << r.rows_priced << " of " << r.rows_read << " rows; "
            << r.skipped.size() << " skipped\n";
  print_skipped(r.skipped, !a.get("verbose").empty());
  return !a.get("strict").empty() && !r.skipped.empty() ? 1 : 0;
}

/// --regions, each a Bedrock region; nullopt after printing the bad one.
std::optional<billing::import_options> import_options_of(const args& a) {
  billing::import_options opts;
  opts.regions = a.get_list("regions");
  for (const auto& r : opts.regions) {
    if (!config::is_bedrock_region(r)) {
      std::cerr << "rates: --regions: '" << r << "' is not a Bedrock region\n";
      return std::nullopt;
    }
  }
  return opts;
}

int rates_import(const args& a) {
  const auto files = a.get_list("offer");
  if (files.empty() || a.get("out").empty()) {
    std::cerr << "rates import: give --offer FILE (one or more) and --out FILE\n";
    return 2;
  }
  const auto opts = import_options_of(a);
  if (!opts) return 2;
  std::vector<billing::offer_text> offers;
  for (const auto& f : files) {
    auto text = read_file(f);
    if (!text) {
      std::cerr << "rates import: cannot read " << f << '\n';
      return 1;
    }
    offers.push_back({f, std::move(*text)});
  }
  return import_and_write(a, offers, *opts);
}

int rates_fetch(const args& a) {
  if (a.get("out").empty()) {
    std::cerr << "rates fetch: give --out FILE\n";
    return 2;
  }
  const auto opts = import_options_of(a);
  if (!opts) return 2;
  // The proxy's own credential chain: the config's upstream.credentials, or the default chain.
  config::upstream_credentials source;
  if (const auto path = a.get("config"); !path.empty()) {
    const auto cfg = load_or_report(path);
    if (!cfg) return 1;
    source = cfg->upstream.credentials;
  }
  const auto creds = aws::resolve(source, aws::fetch_options{});
  if (!creds) {
    std::cerr << "rates fetch: AWS credentials: " << creds.error().message << '\n';
    return 1;
  }
  fetch_settings s;
  s.endpoint = std::string(a.get("endpoint", s.endpoint));
  s.ca_file = std::string(a.get("ca-file"));
  s.regions = opts->regions;
  const bool verbose = !a.get("verbose").empty();
  const auto pages = fetch_price_list(s, creds->first, [&](const std::string& what) {
    if (verbose) std::cerr << "rates fetch: " << what << '\n';
  });
  if (!pages) {
    std::cerr << "rates fetch: " << pages.error() << '\n';
    return 1;
  }
  std::cerr << "rates fetch: " << pages->size() << " GetProducts pages (credentials from "
            << creds->first.source << ")\n";
  return import_and_write(a, *pages, *opts);
}

std::string price_text(const std::optional<std::int64_t>& v) {
  return v ? billing::micro_usd_text(*v) : "-";
}

int rates_diff(const args& a) {
  if (a.positional.size() != 4) {
    std::cerr << "rates diff: give two rate tables, OLD and NEW\n";
    return 2;
  }
  const auto format = a.get("format", "text");
  if (format != "text" && format != "json") {
    std::cerr << "rates diff: --format takes text or json\n";
    return 2;
  }
  std::shared_ptr<const metering::rate_table> tables[2];
  for (int i = 0; i < 2; ++i) {
    auto t = config::load_rate_table_file(std::string(a.positional[2 + i]));
    for (const auto& e : t.errors) std::cerr << e.to_string() << '\n';
    if (!t.table) return 2;
    tables[i] = t.table;
  }
  const auto changes = billing::diff_rate_tables(*tables[0], *tables[1]);
  constexpr std::string_view words[] = {"added", "removed", "changed"};
  if (format == "json") {
    boost::json::array out;
    const auto num = [](const std::optional<std::int64_t>& v) {
      return v ? boost::json::value(billing::micro_usd_text(*v)) : boost::json::value(nullptr);
    };
    for (const auto& c : changes) {
      out.push_back(boost::json::object{{"change", words[static_cast<int>(c.what)]},
                                        {"row", c.row},
                                        {"field", c.field},
                                        {"before", num(c.before)},
                                        {"after", num(c.after)}});
    }
    std::cout << boost::json::serialize(out) << '\n';
  } else {
    for (const auto& c : changes) {
      std::cout << words[static_cast<int>(c.what)] << "  " << c.row << "  " << c.field << ": "
                << price_text(c.before) << " -> " << price_text(c.after);
      if (c.before && c.after && *c.before != 0) {
        const double pct =
            100.0 * static_cast<double>(*c.after - *c.before) / static_cast<double>(*c.before);
        std::cout << " (" << (pct > 0 ? "+" : "") << std::fixed << std::setprecision(1) << pct
                  << "%)" << std::defaultfloat;
      }
      std::cout << '\n';
    }
    std::cerr << changes.size() << " price" << (changes.size() == 1 ? "" : "s") << " differ\n";
  }
  return changes.empty() ? 0 : 1;
}

}  // namespace

int rates_command(const args& a) {
  const auto word = a.positional.size() > 1 ? a.positional[1] : std::string_view();
  if (word == "import") return rates_import(a);
  if (word == "fetch") return rates_fetch(a);
  if (word == "diff") return rates_diff(a);
  std::cerr << "rates: use 'rates import', 'rates fetch' or 'rates diff'\n";
  return 2;
}

}  // namespace bedrock_meter::app
