#include "proxy/cli.hpp"

#include <signal.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <cstdio>
#include <sys/stat.h>
#include <thread>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <condition_variable>
#include <mutex>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <openssl/rand.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "config/config.hpp"
#include "config/rate_table_loader.hpp"
#include "metering/money.hpp"
#include "metering/rate_table.hpp"
#include "proxy/ledger.hpp"
#include "proxy/admin.hpp"
#include "proxy/credentials.hpp"
#include "proxy/metrics.hpp"
#include "proxy/server.hpp"
#include "proxy/sigv4.hpp"

namespace bedrock_meter::proxy {

namespace {

constexpr std::string_view usage_text = R"(bedrock-meter — a metering proxy for Amazon Bedrock Runtime

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
      Spend table from the ledger.
  bedrock-meter ledger export --config FILE [--since ...] [--until ...] [--format csv|jsonl]
      Every ledger row in the window, for chargeback.
  bedrock-meter budgets --config FILE [--format text|json]
      Each budget's limit, period-to-date spend (from the ledger, or the shared Redis store),
      % used and the forecast at period end. The running proxy answers GET /api/budgets.
  bedrock-meter --version
)";

struct args {
  std::vector<std::string_view> positional;
  std::vector<std::pair<std::string_view, std::string_view>> options;
  std::string_view get(std::string_view name, std::string_view fallback = {}) const {
    for (const auto& [k, v] : options)
      if (k == name) return v;
    return fallback;
  }
};

bool parse_args(int argc, char** argv, args& out, std::string& error) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a.starts_with("--")) {
      const auto eq = a.find('=');
      if (eq != std::string_view::npos) {
        out.options.emplace_back(a.substr(2, eq - 2), a.substr(eq + 1));
      } else if (a == "--help" || a == "--version") {
        out.options.emplace_back(a.substr(2), "1");
      } else if (i + 1 < argc) {
        out.options.emplace_back(a.substr(2), argv[++i]);
      } else {
        error = "option " + std::string(a) + " needs a value";
        return false;
      }
    } else {
      out.positional.push_back(a);
    }
  }
  return true;
}

/// Loads and validates; prints every error (and warning) as `file:line:col: path: message`.
std::shared_ptr<const config::config> load_or_report(std::string_view path) {
  auto r = config::load_file(std::string(path));
  for (const auto& w : r.warnings) std::cerr << "warning: " << w.to_string() << '\n';
  if (!r.value) {
    for (const auto& e : r.errors) std::cerr << e.to_string() << '\n';
    std::cerr << "bedrock-meter: " << r.errors.size() << " problem(s) in " << path << '\n';
    return nullptr;
  }
  return std::make_shared<const config::config>(std::move(*r.value));
}

int check_config(const args& a) {
  const auto path = a.get("config");
  if (path.empty()) {
    std::cerr << "check-config: --config FILE is required\n";
    return 2;
  }
  const auto cfg = load_or_report(path);
  if (!cfg) return 1;
  std::cout << path << ": OK (" << cfg->listeners.size() << " listener(s), "
            << cfg->auth.access_keys.size() << " access key(s), " << cfg->auth.bearer_keys.size()
            << " bearer key(s), upstream region " << cfg->upstream.region << ")\n";
  return 0;
}

std::string random_chars(std::size_t n, std::string_view alphabet) {
  std::string out;
  out.reserve(n);
  // Rejection sampling keeps every character equally likely.
  const unsigned limit = 256 - (256 % static_cast<unsigned>(alphabet.size()));
  while (out.size() < n) {
    unsigned char buf[64];
    if (RAND_bytes(buf, sizeof buf) != 1) throw std::runtime_error("RAND_bytes failed");
    for (unsigned char b : buf) {
      if (b >= limit) continue;
      out += alphabet[b % alphabet.size()];
      if (out.size() == n) break;
    }
  }
  return out;
}

bool valid_label(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

int keys_create(const args& a) {
  const auto team = a.get("team");
  const auto app = a.get("app");
  const auto type = a.get("type", "sigv4");
  if (!valid_label(team) || !valid_label(app)) {
    std::cerr << "keys create: --team and --app are required ([A-Za-z0-9_.-], 1-64 chars)\n";
    return 2;
  }
  if (type == "sigv4") {
    const std::string id = "BMAK" + random_chars(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    const std::string secret = random_chars(
        40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    std::cout << "New SigV4 client key for team '" << team << "', app '" << app
              << "'. The secret is shown only now.\n\n"
              << "  AWS_ACCESS_KEY_ID=" << id << "\n  AWS_SECRET_ACCESS_KEY=" << secret
              << "\n\nAdd to the proxy config under auth.access_keys (better: keep the secret in "
                 "an environment variable and use secret_env):\n\n"
              << "    - access_key_id: " << id << "\n      secret_access_key: \"" << secret
              << "\"\n      team: " << team << "\n      app: " << app << "\n";
    return 0;
  }
  if (type == "bearer") {
    const std::string token =
        "bmk-" + random_chars(43, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    std::cout << "New bearer key for team '" << team << "', app '" << app
              << "'. The key is shown only now; the proxy stores only its SHA-256.\n\n"
              << "  AWS_BEARER_TOKEN_BEDROCK=" << token
              << "\n\nAdd to the proxy config under auth.bearer_keys:\n\n"
              << "    - sha256: " << sigv4::sha256_hex(token) << "\n      team: " << team
              << "\n      app: " << app << "\n      name: " << team << "-" << app << "\n";
    return 0;
  }
  std::cerr << "keys create: --type must be sigv4 or bearer\n";
  return 2;
}

void setup_logging(const config::config& cfg) {
  auto level = spdlog::level::from_str(cfg.logging.level);
  auto proxy_log = spdlog::stderr_logger_mt("proxy");
  auto config_log = spdlog::stderr_logger_mt("config");
  for (auto& l : {proxy_log, config_log}) {
    l->set_level(level);
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%n] %v");
  }
  spdlog::set_default_logger(proxy_log);
  if (cfg.logging.access_log == "off") return;
  std::shared_ptr<spdlog::logger> access;
  if (cfg.logging.access_log == "stdout")
    access = spdlog::stdout_logger_mt("access");
  else {
    // stdio's default buffer is one 4 KiB block, a write(2) every seven lines or so: 2-4% of the
    // proxy's CPU under load (docs/performance.md). A 256 KiB buffer, flushed every second below,
    // makes that a few writes a second. The sink keeps the handlers, so the buffer lives as long
    // as the FILE it is given to.
    auto buffer = std::make_shared<std::vector<char>>(std::size_t{256} << 10);
    spdlog::file_event_handlers handlers;
    handlers.after_open = [buffer](const spdlog::filename_t&, std::FILE* f) {
      std::setvbuf(f, buffer->data(), _IOFBF, buffer->size());
    };
    access = spdlog::basic_logger_mt("access", cfg.logging.access_log, false, handlers);
  }
  access->set_pattern("%v");  // the line is already JSON
  access->set_level(spdlog::level::info);
  if (cfg.logging.access_log == "stdout") {
    // stdout is usually a pipe to a collector that expects whole lines as they happen.
    access->flush_on(spdlog::level::info);
  } else {
    // A file is written in 256 KiB blocks and flushed every second (and at exit): a write(2)
    // per request was 4% of the proxy's CPU in the benchmark. The ledger, not this log, is the
    // durable record of each request.
    access->flush_on(spdlog::level::warn);
    spdlog::flush_every(std::chrono::seconds(1));
  }
}

/// Polls the rate-table file and reloads it when its modification time or size changes
/// (`pricing.reload.watch`). A table that fails validation is logged and counted; the old one
/// stays. Runs on its own thread, never on a worker.
class rate_table_watch {
 public:
  rate_table_watch(shared_state& state, std::shared_ptr<spdlog::logger> log)
      : state_(state), log_(std::move(log)) {
    const auto cfg = state_.snapshot()->cfg;
    if (cfg->pricing.rate_table.empty() || !cfg->pricing.reload.watch) return;
    thread_ = std::thread([this] { run(); });
  }
  ~rate_table_watch() { stop(); }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct stamp {
    std::int64_t mtime_ns = 0;
    std::int64_t size = -1;
    bool operator==(const stamp&) const = default;
  };
  static stamp stat_of(const std::string& path) {
    struct ::stat st {};
    if (::stat(path.c_str(), &st) != 0) return {};
    return {static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
            static_cast<std::int64_t>(st.st_size)};
  }
  void run() {
    auto cfg = state_.snapshot()->cfg;
    stamp last = stat_of(cfg->pricing.rate_table);
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, cfg->pricing.reload.poll_interval, [this] { return stopping_; })) {
      cfg = state_.snapshot()->cfg;
      const stamp now = stat_of(cfg->pricing.rate_table);
      if (now == last) continue;
      last = now;
      const auto errors = state_.reload_rate_table();
      if (errors.empty()) {
        log_->info("rate table reloaded from {} (version {})", cfg->pricing.rate_table,
                   state_.rates().load()->version);
      } else {
        for (const auto& e : errors) log_->error("rate table reload rejected: {}", e);
      }
    }
  }
  shared_state& state_;
  std::shared_ptr<spdlog::logger> log_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

std::optional<std::uint64_t> parse_count(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty()) return 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

/// "24h", "7d", "30m" (before now), or a UTC date "2026-11-01" -> unix ms.
std::optional<std::int64_t> parse_when(std::string_view s, std::int64_t now_ms) {
  if (s.empty()) return std::nullopt;
  if (s.size() == 10 && s[4] == '-' && s[7] == '-') {
    int y = 0;
    unsigned m = 0, d = 0;
    if (std::from_chars(s.data(), s.data() + 4, y).ec != std::errc{} ||
        std::from_chars(s.data() + 5, s.data() + 7, m).ec != std::errc{} ||
        std::from_chars(s.data() + 8, s.data() + 10, d).ec != std::errc{})
      return std::nullopt;
    const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{m},
                                          std::chrono::day{d}};
    if (!ymd.ok()) return std::nullopt;
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::sys_days{ymd}.time_since_epoch())
        .count();
  }
  const char unit = s.back();
  const auto n = parse_count(s.substr(0, s.size() - 1));
  if (!n || *n == 0) return std::nullopt;
  std::int64_t ms = 0;
  switch (unit) {
    case 'm': ms = 60'000; break;
    case 'h': ms = 3'600'000; break;
    case 'd': ms = 86'400'000; break;
    default: return std::nullopt;
  }
  return now_ms - static_cast<std::int64_t>(*n) * ms;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int price_command(const args& a) {
  std::shared_ptr<const metering::rate_table> table;
  std::vector<metering::model_mapping> mappings;
  if (const auto rates = a.get("rates"); !rates.empty()) {
    auto r = config::load_rate_table_file(std::string(rates));
    for (const auto& e : r.errors) std::cerr << e.to_string() << '\n';
    if (!r.table) return 1;
    table = r.table;
  } else if (const auto path = a.get("config"); !path.empty()) {
    const auto cfg = load_or_report(path);
    if (!cfg) return 1;
    if (!cfg->rate_table) {
      std::cerr << "price: " << path << " has no pricing.rate_table\n";
      return 1;
    }
    table = cfg->rate_table;
    mappings = cfg->models.mappings;
  } else {
    std::cerr << "price: give --config FILE or --rates FILE\n";
    return 2;
  }
  const auto model = a.get("model");
  const auto region = a.get("region", "us-east-1");
  if (model.empty()) {
    std::cerr << "price: --model is required\n";
    return 2;
  }
  metering::token_usage u;
  u.source = metering::usage_source::reported;
  struct {
    std::string_view name;
    std::uint64_t* out;
  } counts[] = {{"input", &u.input},
                {"output", &u.output},
                {"cache-read", &u.cache_read},
                {"cache-write", &u.cache_write},
                {"cache-write-1h", &u.cache_write_1h}};
  for (auto& c : counts) {
    const auto v = parse_count(a.get(c.name));
    if (!v) {
      std::cerr << "price: --" << c.name << " must be a whole number of tokens\n";
      return 2;
    }
    *c.out = *v;
  }
  u.cache_write += u.cache_write_1h;  // --cache-write is the 5-minute part
  metering::price_query q;
  q.model_id = model;
  q.region = region;
  const auto tier = metering::parse_service_tier(a.get("tier"));
  if (!tier) {
    std::cerr << "price: --tier must be default, priority, flex or reserved\n";
    return 2;
  }
  q.tier = *tier;
  q.latency = a.get("latency") == "optimized" ? metering::latency_mode::optimized
                                              : metering::latency_mode::standard;
  q.at = std::chrono::system_clock::now();
  if (const auto at = a.get("at"); !at.empty()) {
    const auto ms = parse_when(at, now_ms());
    if (!ms) {
      std::cerr << "price: --at must be a date YYYY-MM-DD\n";
      return 2;
    }
    q.at = std::chrono::system_clock::time_point(std::chrono::milliseconds(*ms));
  }
  q.mappings = &mappings;
  const auto p = metering::price(*table, u, q);
  std::cout << "model:        " << model << " (" << metering::to_string(p.model.kind) << ", scope "
            << metering::to_string(p.model.scope) << ")\n"
            << "region:       " << region << "   tier: " << metering::to_string(q.tier)
            << "   latency: " << metering::to_string(q.latency) << "\n"
            << "rate table:   " << table->version << "\n";
  if (!p.priced) {
    std::cout << "UNPRICED:     " << p.note << "\n";
    return 3;
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
  return 0;
}

/// The ledger path from --config (or --ledger PATH).
std::string ledger_path_of(const args& a) {
  if (const auto l = a.get("ledger"); !l.empty()) return std::string(l);
  if (const auto path = a.get("config"); !path.empty()) {
    const auto cfg = load_or_report(path);
    if (cfg) return cfg->ledger.path;
  }
  return {};
}

int report_command(const args& a) {
  const auto path = ledger_path_of(a);
  if (path.empty()) {
    std::cerr << "report: give --config FILE (with ledger.path) or --ledger PATH\n";
    return 2;
  }
  const auto now = now_ms();
  const auto since = parse_when(a.get("since", "24h"), now);
  const auto until = a.get("until").empty() ? std::optional<std::int64_t>(now + 1)
                                            : parse_when(a.get("until"), now);
  if (!since || !until) {
    std::cerr << "report: --since/--until take 30m, 24h, 7d or a date YYYY-MM-DD\n";
    return 2;
  }
  std::vector<report_key> keys;
  std::string by(a.get("by", "team,model"));
  for (std::size_t pos = 0; pos <= by.size();) {
    const auto comma = std::min(by.find(',', pos), by.size());
    auto name = std::string_view(by).substr(pos, comma - pos);
    if (name == "model") name = "model_base";
    const auto k = parse_report_key(name);
    if (!k) {
      std::cerr << "report: --by takes team, app, model, day\n";
      return 2;
    }
    keys.push_back(*k);
    pos = comma + 1;
  }
  auto reader = ledger_reader::open(path);
  if (!reader) {
    std::cerr << "report: " << reader.error.message << '\n';
    return 1;
  }
  auto rows = (*reader.value)->query_report(*since, *until, keys);
  if (!rows) {
    std::cerr << "report: " << rows.error.message << '\n';
    return 1;
  }
  std::sort(rows.value->begin(), rows.value->end(),
            [](const report_row& x, const report_row& y) { return x.total_cost > y.total_cost; });
  for (const auto k : keys) std::printf("%-44s ", std::string(to_string(k)).c_str());
  std::printf("%9s %12s %12s %12s %12s %16s\n", "requests", "input", "output", "cache_read",
              "cache_write", "spend_usd");
  report_row sum;
  for (const auto& r : *rows.value) {
    for (const auto& key : r.keys) std::printf("%-44s ", key.empty() ? "-" : key.c_str());
    std::printf("%9llu %12llu %12llu %12llu %12llu %16s\n",
                static_cast<unsigned long long>(r.requests),
                static_cast<unsigned long long>(r.input_tokens),
                static_cast<unsigned long long>(r.output_tokens),
                static_cast<unsigned long long>(r.cache_read_tokens),
                static_cast<unsigned long long>(r.cache_write_tokens),
                metering::format_usd(r.total_cost, 6).c_str());
    sum.requests += r.requests;
    sum.total_cost += r.total_cost;
  }
  std::printf("total: %llu requests, $%s\n", static_cast<unsigned long long>(sum.requests),
              metering::format_usd(sum.total_cost, 6).c_str());
  return 0;
}

/// A record's tags as one JSON object (one column in CSV, a string field in JSONL).
std::string tags_json(const std::map<std::string, std::string>& tags) {
  boost::json::object o;
  for (const auto& [k, v] : tags) o[k] = v;
  return boost::json::serialize(o);
}

std::string csv_field(std::string_view v) {
  if (v.find_first_of(",\"\n\r") == std::string_view::npos) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

int ledger_export_command(const args& a) {
  const auto path = ledger_path_of(a);
  if (path.empty()) {
    std::cerr << "ledger export: give --config FILE (with ledger.path) or --ledger PATH\n";
    return 2;
  }
  const auto now = now_ms();
  const auto since = parse_when(a.get("since", "30d"), now);
  const auto until = a.get("until").empty() ? std::optional<std::int64_t>(now + 1)
                                            : parse_when(a.get("until"), now);
  const auto format = a.get("format", "csv");
  if (!since || !until || (format != "csv" && format != "jsonl")) {
    std::cerr << "ledger export: --since/--until take 30m, 24h, 7d or YYYY-MM-DD; --format csv|jsonl\n";
    return 2;
  }
  auto reader = ledger_reader::open(path);
  if (!reader) {
    std::cerr << "ledger export: " << reader.error.message << '\n';
    return 1;
  }
  auto recs = (*reader.value)->records(*since, *until);
  if (!recs) {
    std::cerr << "ledger export: " << recs.error.message << '\n';
    return 1;
  }
  using field = std::pair<std::string_view, std::string>;
  auto fields_of = [](const ledger_record& r) {
    const auto u = [](std::uint64_t v) { return std::to_string(v); };
    return std::vector<field>{
        {"time_ms", std::to_string(r.time_ms)}, {"request_id", r.request_id}, {"team", r.team},
        {"app", r.app}, {"principal", r.principal}, {"operation", r.operation},
        {"model_requested", r.model_requested}, {"model_base", r.model_base},
        {"region", r.region}, {"scope", r.scope}, {"service_tier", r.service_tier},
        {"latency_mode", r.latency_mode}, {"status", std::to_string(r.status)},
        {"outcome", std::string(to_string(r.outcome))}, {"input_tokens", u(r.input_tokens)},
        {"output_tokens", u(r.output_tokens)}, {"cache_read_tokens", u(r.cache_read_tokens)},
        {"cache_write_tokens", u(r.cache_write_tokens)},
        {"cache_write_1h_tokens", u(r.cache_write_1h_tokens)},
        {"usage_source", std::string(to_string(r.usage_source))},
        {"cost_usd", metering::format_usd(r.total_cost, 12)},
        {"input_cost_usd", metering::format_usd(r.input_cost, 12)},
        {"output_cost_usd", metering::format_usd(r.output_cost, 12)},
        {"cache_read_cost_usd", metering::format_usd(r.cache_read_cost, 12)},
        {"cache_write_cost_usd", metering::format_usd(r.cache_write_cost, 12)},
        {"priced", r.priced ? "true" : "false"}, {"pricing_note", r.unpriced_reason},
        {"rate_table_version", r.rate_table_version}, {"rate_entry", r.rate_entry},
        {"duration_us", std::to_string(r.duration_us)}, {"tags", tags_json(r.tags)}};
  };
  bool header = true;
  for (const auto& r : *recs.value) {
    const auto fields = fields_of(r);
    std::string line;
    if (format == "csv") {
      if (header) {
        for (std::size_t i = 0; i < fields.size(); ++i)
          line.append(i ? "," : "").append(fields[i].first);
        std::cout << line << '\n';
        line.clear();
        header = false;
      }
      for (std::size_t i = 0; i < fields.size(); ++i)
        line.append(i ? "," : "").append(csv_field(fields[i].second));
    } else {
      line = "{";
      for (std::size_t i = 0; i < fields.size(); ++i) {
        line.append(i ? ",\"" : "\"").append(fields[i].first).append("\":\"");
        for (char c : fields[i].second) {
          if (c == '"' || c == '\\') line += '\\';
          if (static_cast<unsigned char>(c) >= 0x20) line += c;
        }
        line += '"';
      }
      line += '}';
    }
    std::cout << line << '\n';
  }
  return 0;
}

/// Period-to-date spend of a budget's scope, from the ledger. Records still queued are
/// committed first, so a budget added by a reload sees every settled request.
budget_restore_fn ledger_budget_restore(ledger* book, ledger_reader* reader) {
  if (reader == nullptr) return {};
  return [book, reader](const metering::budget_def& def,
                        metering::instant from) -> std::optional<metering::money_total> {
    if (book != nullptr) book->flush(std::chrono::seconds(2));
    spend_filter f;
    f.team = def.scope.team;
    f.app = def.scope.app;
    f.principal = def.scope.identity;
    f.model_base = def.scope.model;
    const auto from_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(from.time_since_epoch()).count();
    auto r = reader->spend_since(from_ms, f);
    if (!r) return std::nullopt;
    return *r.value;
  };
}

int budgets_command(const args& a) {
  const auto path = a.get("config");
  if (path.empty()) {
    std::cerr << "budgets: --config FILE is required\n";
    return 2;
  }
  const auto format = a.get("format", "text");
  if (format != "text" && format != "json") {
    std::cerr << "budgets: --format takes text or json\n";
    return 2;
  }
  auto cfg = load_or_report(path);
  if (!cfg) return 1;
  std::unique_ptr<ledger_reader> reader;
  if (!cfg->ledger.path.empty() && std::filesystem::exists(cfg->ledger.path)) {
    auto r = ledger_reader::open(cfg->ledger.path);
    if (!r) {
      std::cerr << "budgets: " << r.error.message << '\n';
      return 1;
    }
    reader = std::move(*r.value);
  }
  const auto now = std::chrono::time_point_cast<std::chrono::nanoseconds>(
      std::chrono::system_clock::now());
  std::vector<std::string> warnings;
  budget_engine engine(cfg->budgets, nullptr, ledger_budget_restore(nullptr, reader.get()), now,
                       &warnings);
  for (const auto& w : warnings) std::cerr << "warning: " << w << '\n';
  budget_store_handle store;
  const auto status = engine.status(now, store.get(cfg->budgets));
  if (format == "json") {
    std::cout << budgets_json(status, now) << '\n';
    return 0;
  }
  if (status.empty()) {
    std::cout << "no budgets configured (add a 'budgets' section; see docs/budgets.md)\n";
    return 0;
  }
  std::printf("%-24s %-6s %-28s %-10s %14s %14s %8s %14s %9s  %s\n", "budget", "action", "scope",
              "period", "limit_usd", "spend_usd", "used", "forecast_usd", "forecast",
              "period_end");
  for (const auto& b : status) {
    auto pct = [&](metering::money_total v) {
      return b.limit > 0 ? metering::to_usd_double(v) / metering::to_usd_double(b.limit) * 100.0
                         : 0.0;
    };
    std::printf("%-24s %-6s %-28s %-10s %14s %14s %7.1f%% %14s %8.1f%%  %s\n", b.name.c_str(),
                b.action == metering::budget_action::block ? "block" : "alert", b.scope.c_str(),
                b.period.c_str(), metering::format_usd(b.limit, 2).c_str(),
                metering::format_usd(b.spent, 2).c_str(), pct(b.spent),
                metering::format_usd(b.forecast, 2).c_str(), pct(b.forecast),
                format_utc(b.window.end).c_str());
  }
  if (cfg->budgets.store == config::budget_store_kind::redis && !status.empty() &&
      status.front().source != "redis")
    std::cerr << "warning: the Redis budget store is unreachable; spend shown is from this "
                 "machine's ledger only\n";
  return 0;
}

/// Re-reads the config file (and the rate table it names) and publishes it. A file that fails
/// validation is rejected with its errors and the running config stays. Used by SIGHUP and by
/// `POST /-/reload` on the admin listener.
reload_result reload_config(const std::string& path, shared_state& state, spdlog::logger& log) {
  reload_result out;
  auto r = config::load_file(path);
  if (!r.value) {
    state.stats.rate_table_reloads_failed.fetch_add(1, std::memory_order_relaxed);
    out.result = reload_result::status::invalid;
    for (const auto& e : r.errors) {
      log.error("reload rejected: {}", e.to_string());
      out.errors.push_back(e.to_string());
    }
    return out;
  }
  try {
    auto next = std::make_shared<const config::config>(std::move(*r.value));
    state.replace(next);
    out.reloaded.push_back("config");
    if (next->rate_table) {
      state.stats.rate_table_reloads_ok.fetch_add(1, std::memory_order_relaxed);
      out.reloaded.push_back("rate_table " + next->rate_table->version);
    }
    log.info("config reloaded from {} (listeners, workers, busy_poll_us and the ledger change "
             "only on restart); rate table {}",
             path, next->rate_table ? next->rate_table->version : std::string("none"));
  } catch (const std::exception& e) {
    log.error("reload rejected: {}", e.what());
    out.result = reload_result::status::failed;
    out.errors.emplace_back(e.what());
  }
  return out;
}

/// Budgets as the admin thread sees them (only ever called from that thread).
struct admin_budget_view {
  budget_store_handle store;
  std::vector<std::string> exported;  // budget names with gauges, to drop removed ones

  std::vector<budget_status> status(shared_state& st, metering::instant now) {
    const auto snap = st.snapshot();
    return snap->budgets->status(now, store.get(snap->cfg->budgets));
  }

  void export_gauges(shared_state& st, metrics& m, metering::instant now) {
    const auto list = status(st, now);
    std::vector<std::string> names;
    for (const auto& b : list) {
      m.set_budget(b.name, metering::to_usd_double(b.limit), metering::to_usd_double(b.spent),
                   static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                           b.window.end.time_since_epoch())
                                           .count()));
      m.set_budget_warnings(b.name, b.warning_percents);
      names.push_back(b.name);
    }
    for (const auto& old : exported)
      if (std::find(names.begin(), names.end(), old) == names.end()) m.remove_budget(old);
    exported = std::move(names);
  }
};

int serve(const args& a) {
  const auto path = a.get("config");
  if (path.empty()) {
    std::cerr << "serve: --config FILE is required\n";
    return 2;
  }
  auto cfg = load_or_report(path);
  if (!cfg) return 1;
  setup_logging(*cfg);
  auto log = spdlog::get("proxy");

  // Block the signals we handle before any thread starts, so only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<credential_provider> provider;
  std::shared_ptr<published_credentials> creds;  // what workers read; refreshed below
  std::string bearer;
  if (cfg->upstream.credentials.source == config::credential_source::bearer) {
    auto t = bearer_token(cfg->upstream.credentials, {});
    if (!t) {
      log->critical("upstream credentials: {}", t.error.message);
      return 1;
    }
    bearer = std::move(*t.value);
    log->info("upstream auth: bearer key from ${}", cfg->upstream.credentials.bearer_token_env);
  } else {
    creds = std::make_shared<published_credentials>();
    // The refresh callback runs on the provider's thread after each refresh; it republishes the
    // new keys for the workers. It may fire only once `create` has returned and set `live`.
    auto live = std::make_shared<std::atomic<credential_provider*>>(nullptr);
    provider_options opt;
    opt.policy.refresh_before = cfg->upstream.credentials.refresh_before;
    opt.on_refresh = [log, live, creds](const refresh_event& e) {
      if (e.result == refresh_result::failed) {
        log->warn("upstream credentials refresh from {} failed ({} in a row): {}", e.source,
                  e.consecutive_failures, e.error.message);
        return;
      }
      if (auto* p = live->load()) {
        auto snap = p->current();
        creds->publish(std::shared_ptr<const sigv4::credentials>(snap, &snap->creds));
      }
      log->info("upstream credentials refreshed from {}", e.source);
    };
    auto p = credential_provider::create(cfg->upstream.credentials, std::move(opt));
    if (!p) {
      log->critical("upstream credentials: {}", p.error.message);
      return 1;
    }
    provider = std::move(*p.value);
    live->store(provider.get());  // first, so no refresh from now on is missed
    auto snap = provider->current();
    creds->publish(std::shared_ptr<const sigv4::credentials>(snap, &snap->creds));
    log->info("upstream credentials from {}", snap->source);
  }

  std::unique_ptr<ledger> book;
  if (!cfg->ledger.path.empty()) {
    ledger_options lo;
    lo.batch_max = cfg->ledger.batch_max;
    lo.queue_capacity = cfg->ledger.queue_capacity;
    lo.flush_interval = cfg->ledger.flush_interval;
    lo.log = [log](std::string_view m) { log->warn("ledger: {}", m); };
    auto opened = ledger::open(cfg->ledger.path, std::move(lo));
    if (!opened) {
      log->critical("ledger: {}", opened.error.message);
      return 1;
    }
    book = std::move(*opened.value);
    log->info("ledger at {}", cfg->ledger.path);
  } else {
    log->warn("no ledger.path: priced requests are not recorded durably");
  }
  if (!cfg->rate_table)
    log->warn("no pricing.rate_table: every request with tokens is recorded as unpriced");
  else
    log->info("rate table {} ({} entries) from {}", cfg->rate_table->version,
              cfg->rate_table->entries.size(), cfg->pricing.rate_table);

  // Prometheus: the FinOps counters continue from the ledger's totals, so a restart does not
  // reset them (and rate() sees no counter reset).
  metrics_options mo;
  mo.build_version = "0.1.0";
  auto prom = std::make_unique<metrics>(mo);
  if (book) {
    auto totals = book->reader().totals();
    if (!totals) {
      log->critical("ledger: {}", totals.error.message);
      return 1;
    }
    prom->restore(*totals.value);
    log->info("metrics restored from the ledger ({} series)", totals.value->size());
  }

  std::shared_ptr<shared_state> state;
  std::unique_ptr<server> srv;
  std::unique_ptr<admin_server> admin;
  try {
    state = std::make_shared<shared_state>(
        cfg, creds, bearer, ledger_budget_restore(book.get(), book ? &book->reader() : nullptr));
    state->ledger_sink = book.get();
    state->metrics_sink = prom.get();
    srv = std::make_unique<server>(state);
    srv->bind();
    if (cfg->admin.enabled) {
      auto ao = admin_options_from(cfg->admin);
      if (!ao.error.empty()) throw std::runtime_error("admin: " + ao.error);
      admin_handlers h;
      // The admin thread's own budget view: one store connection (Redis clients are per
      // thread), the gauges refreshed at each scrape so period ends and shared spend are live.
      auto budget_view = std::make_shared<admin_budget_view>();
      h.budgets = [st = state.get(), budget_view] {
        const auto now = std::chrono::time_point_cast<std::chrono::nanoseconds>(
            std::chrono::system_clock::now());
        return budgets_json(budget_view->status(*st, now), now);
      };
      h.metrics = [st = state.get(), m = prom.get(), budget_view] {
        const auto now = std::chrono::time_point_cast<std::chrono::nanoseconds>(
            std::chrono::system_clock::now());
        budget_view->export_gauges(*st, *m, now);
        const auto table = st->rates().load();
        return m->serialize(scrape_inputs_from(st->stats, st->ledger_sink,
                                               table ? table->version : std::string()));
      };
      h.ready = [st = state.get()] {
        readiness r;
        const auto snap = st->snapshot();
        if (!st->rates().load()) r.reasons.emplace_back("no rate table loaded (pricing.rate_table)");
        if (st->upstream_bearer_token().empty() &&
            (st->credentials() == nullptr || !st->credentials()->load()))
          r.reasons.emplace_back("no upstream credentials");
        if (st->stopping.load()) r.reasons.emplace_back("shutting down");
        return r;
      };
      h.reload = [p = std::string(path), st = state.get(), log] {
        return reload_config(p, *st, *log);
      };
      admin = std::make_unique<admin_server>(std::move(ao.options), std::move(h));
      admin->start();
    }
  } catch (const std::exception& e) {
    log->critical("startup failed: {}", e.what());
    return 1;
  }
  const auto ports = srv->bound_ports();
  std::string ports_json = "[";
  for (std::size_t i = 0; i < cfg->listeners.size(); ++i) {
    const auto& l = cfg->listeners[i];
    log->info("listening on {}://{}:{}", l.tls ? "https" : "http", l.address, ports[i]);
    ports_json += (i ? "," : "") + std::to_string(ports[i]);
  }
  ports_json += "]";
  if (admin) log->info("admin listener on http://{}:{} (/metrics /healthz /readyz /-/reload /api/budgets)",
                       cfg->admin.address, admin->port());
  srv->start();
  rate_table_watch watch(*state, log);
  if (const auto rf = a.get("ready-file"); !rf.empty()) {
    const std::string tmp = std::string(rf) + ".tmp";
    std::ofstream(tmp) << "{\"ports\":" << ports_json
                       << ",\"admin_port\":" << (admin ? admin->port() : 0) << "}\n";
    std::rename(tmp.c_str(), std::string(rf).c_str());  // atomic: readers never see half a file
  }

  for (;;) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      reload_config(std::string(path), *state, *log);
      continue;
    }
    break;
  }
  const auto grace = state->snapshot()->cfg->limits.shutdown_grace;
  log->info("shutting down: finishing in-flight requests (up to {} ms)", grace.count());
  const bool clean = srv->shutdown(grace);
  if (!clean)
    log->warn("shutdown grace period ended with {} request(s) still in flight",
              state->stats.inflight.load());
  watch.stop();
  srv.reset();
  if (admin) admin->stop();  // after the workers: a last scrape sees every settled request
  if (book) {
    const auto lost = book->close();  // commits everything the settled requests appended
    const auto c = book->counters();
    log->info("ledger closed: {} records committed this run", c.committed);
    if (lost > 0) log->error("ledger: {} records could not be committed", lost);
  }
  if (provider) provider->stop();  // joins the refresh thread before `creds` goes away
  log->info("stopped");
  spdlog::shutdown();
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  args a;
  std::string error;
  if (!parse_args(argc, argv, a, error)) {
    std::cerr << error << "\n\n" << usage_text;
    return 2;
  }
  if (!a.get("version").empty()) {
    std::cout << "bedrock-meter 0.1.0\n";
    return 0;
  }
  if (a.positional.empty() || !a.get("help").empty()) {
    std::cout << usage_text;
    return a.positional.empty() && a.get("help").empty() ? 2 : 0;
  }
  const auto cmd = a.positional[0];
  try {
    if (cmd == "serve") return serve(a);
    if (cmd == "check-config") return check_config(a);
    if (cmd == "keys" && a.positional.size() > 1 && a.positional[1] == "create")
      return keys_create(a);
    if (cmd == "price") return price_command(a);
    if (cmd == "report") return report_command(a);
    if (cmd == "budgets") return budgets_command(a);
    if (cmd == "ledger" && a.positional.size() > 1 && a.positional[1] == "export")
      return ledger_export_command(a);
  } catch (const std::exception& e) {
    std::cerr << "bedrock-meter: " << e.what() << '\n';
    return 1;
  }
  std::cerr << "unknown command '" << cmd << "'\n\n" << usage_text;
  return 2;
}

}  // namespace bedrock_meter::proxy
