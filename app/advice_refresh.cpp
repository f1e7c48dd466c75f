#include "app/advice_refresh.hpp"

#include <chrono>
#include <filesystem>
#include <map>

#include "app/args.hpp"
#include "app/commitment_spend.hpp"

namespace bedrock_meter::app {

namespace {

/// Every lever the advisor knows, so a gauge drops to 0 rather than vanishing.
constexpr std::array<std::string_view, 9> lever_names = {
    "prompt_caching", "output_cap", "prompt_trimming", "model_substitution", "batch",
    "global_profile", "flex_tier",  "priority_tier",   "buying_mode"};

/// The savings gauges of one report: each lever summed over its groups; `buying_mode` is what
/// the recommended options save against on demand, summed over models.
telemetry::metrics::advice_gauges gauges_of(const advice::report& r, double duration_s) {
  std::map<std::string, metering::money_total, std::less<>> sums;
  for (auto n : lever_names) sums[std::string(n)] = 0;
  for (const auto& l : r.levers)
    sums[l.name] += std::max<metering::money_total>(0, l.monthly_savings);
  for (const auto& b : r.buying_mode) {
    metering::money_total best = b.on_demand_monthly;
    for (const auto& o : b.options)
      // An option without a unit count is a lower bound ("at least one unit"), not a price.
      if (o.units && o.monthly && *o.monthly < best) best = *o.monthly;
    sums["buying_mode"] += b.on_demand_monthly - best;
  }
  telemetry::metrics::advice_gauges g;
  for (const auto& [name, v] : sums)
    g.monthly_savings_usd.emplace_back(name, metering::to_usd_double(v));
  g.window_spend_usd = metering::to_usd_double(r.spend);
  g.finished_unix_s = static_cast<double>(now_ms()) / 1000.0;
  g.duration_s = duration_s;
  return g;
}

}  // namespace

advice_refresh::advice_refresh(proxy::shared_state& state, telemetry::metrics& m,
                               std::string ledger_path, std::shared_ptr<spdlog::logger> log)
    : state_(state), metrics_(m), ledger_path_(std::move(ledger_path)), log_(std::move(log)) {
  const auto snap = state_.snapshot();
  if (!ledger_path_.empty() && snap->cfg->advice.refresh_interval.count() > 0)
    thread_ = std::thread([this] { run(); });
}

advice_refresh::~advice_refresh() {
  {
    std::lock_guard lk(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const std::string> advice_refresh::latest_json() const {
  std::lock_guard lk(mutex_);
  return latest_;
}

advice_query advice_refresh::default_query() const {
  advice_query q;
  q.until_ms = now_ms() + 1;
  q.since_ms = q.until_ms - state_.snapshot()->cfg->advice.window.count();
  return q;
}

boost::system::result<advice::report, std::string> advice_refresh::analyse(
    const advice_query& q) const {
  const auto rates = state_.rates().load();
  if (!rates) return std::string("no rate table loaded (pricing.rate_table)");
  if (ledger_path_.empty()) return std::string("no ledger (ledger.path)");
  if (!std::filesystem::exists(ledger_path_)) return std::string("the ledger has no rows yet");
  // A reader of its own: a long scan never holds the lock the budgets' reader uses.
  auto reader = accounting::ledger_reader::open(ledger_path_);
  if (!reader) return reader.error().message;
  const auto snap = state_.snapshot();
  return run_advice(**reader, *rates, snap->cfg->models.mappings, snap->cfg->commitments, q);
}

void advice_refresh::refresh_commitments() {
  const auto cfg = state_.snapshot()->cfg;
  if (cfg->commitments.empty() && !had_commitments_) return;
  had_commitments_ = !cfg->commitments.empty();
  if (ledger_path_.empty() || !std::filesystem::exists(ledger_path_)) return;
  auto reader = accounting::ledger_reader::open(ledger_path_);
  if (!reader) {
    log_->warn("commitments: {}", reader.error().message);
    return;
  }
  const auto today = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
  auto gauges = commitment_gauges(**reader, cfg->commitments, today);
  if (!gauges) {
    log_->warn("commitments: {}", gauges.error().message);
    return;
  }
  metrics_.set_commitments(*gauges);
}

void advice_refresh::refresh_once() {
  refresh_commitments();
  const auto start = std::chrono::steady_clock::now();
  auto report = analyse(default_query());
  if (!report) {
    log_->warn("advice: {}", report.error());
    return;
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  metrics_.set_advice(gauges_of(*report, took.count()));
  auto json = std::make_shared<const std::string>(advice::to_json(*report));
  {
    std::lock_guard lk(mutex_);
    latest_ = std::move(json);
  }
  log_->info("advice: {} requests analysed in {:.2f} s, {} levers", report->requests, took.count(),
             report->levers.size());
}

void advice_refresh::run() {
  std::unique_lock lk(mutex_);
  while (!stopping_) {
    lk.unlock();
    refresh_once();
    lk.lock();
    // A reload may change the interval; 0 (off) parks the thread until a reload turns it back
    // on or the server stops, re-reading the configuration once a minute.
    auto every = state_.snapshot()->cfg->advice.refresh_interval;
    while (every.count() == 0 && !stopping_) {
      cv_.wait_for(lk, std::chrono::minutes(1), [this] { return stopping_; });
      every = state_.snapshot()->cfg->advice.refresh_interval;
    }
    cv_.wait_for(lk, every, [this] { return stopping_; });
  }
}

}  // namespace bedrock_meter::app
