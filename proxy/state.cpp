#include "proxy/state.hpp"

#include <stdexcept>

#include <spdlog/spdlog.h>

#include "config/rate_table_loader.hpp"

namespace bedrock_meter::proxy {

boost::system::result<std::shared_ptr<const runtime_snapshot>, startup_error>
runtime_snapshot::make(const std::shared_ptr<const config::config>& c,
                       std::shared_ptr<accounting::budget_engine> b) {
  auto t = make_upstream_target(c->upstream, c->upstream.region);
  if (!t) return startup_error{"upstream.endpoint does not parse: " + c->upstream.endpoint};
  auto snap = std::make_shared<runtime_snapshot>(
      runtime_snapshot{c, auth_index(c->auth), std::move(b), std::move(*t), {}});
  for (const auto& r : c->upstream.allowed_client_regions)
    if (auto rt = make_upstream_target(c->upstream, r)) snap->client_region_targets.push_back(*rt);
  return std::shared_ptr<const runtime_snapshot>(std::move(snap));
}

const upstream_target* runtime_snapshot::target_for(std::string_view signed_region) const noexcept {
  if (signed_region.empty() || signed_region == default_target.region) return &default_target;
  for (const auto& t : client_region_targets)
    if (t.region == signed_region) return &t;
  return cfg->upstream.reroute_unlisted_client_regions ? &default_target : nullptr;
}

bool client_connections::try_add(const io::net::ip::address& a, std::uint32_t limit) {
  const std::lock_guard lock(mu_);
  auto& n = open_[a];
  if (limit != 0 && n >= limit) {
    if (n == 0) open_.erase(a);
    return false;
  }
  ++n;
  return true;
}

void client_connections::remove(const io::net::ip::address& a) {
  const std::lock_guard lock(mu_);
  const auto it = open_.find(a);
  if (it != open_.end() && --it->second == 0) open_.erase(it);
}

std::uint32_t client_connections::count(const io::net::ip::address& a) const {
  const std::lock_guard lock(mu_);
  const auto it = open_.find(a);
  return it == open_.end() ? 0 : it->second;
}

shared_state::shared_state(std::shared_ptr<const published_credentials> creds, std::string bearer,
                           accounting::budget_restore_fn restore_budgets)
    : restore_budgets_(std::move(restore_budgets)),
      creds_(std::move(creds)),
      bearer_(std::move(bearer)) {
  log = spdlog::get("proxy");
  if (!log) log = spdlog::default_logger();
  access = spdlog::get("access");
}

namespace {
/// Threads for the shared budget store's calls: enough that one call stuck on a paused Redis
/// does not hold up the others, few enough to stay idle otherwise.
constexpr int budget_store_threads = 2;
}  // namespace

void shared_state::drain_budget_store() {
  store_work_.reset();
  for (auto& t : store_threads_)
    if (t.joinable()) t.join();
  store_threads_.clear();
}

shared_state::~shared_state() { drain_budget_store(); }

boost::system::result<std::shared_ptr<shared_state>, startup_error> shared_state::create(
    const std::shared_ptr<const config::config>& cfg,
    std::shared_ptr<const published_credentials> creds, std::string upstream_bearer_token,
    accounting::budget_restore_fn restore_budgets) {
  std::shared_ptr<shared_state> s(new shared_state(
      std::move(creds), std::move(upstream_bearer_token), std::move(restore_budgets)));
  auto tls = make_upstream_tls_context(cfg->upstream);
  if (!tls) return tls.error();
  s->upstream_tls_ = std::move(*tls);
  s->rates_.publish(cfg->rate_table);
  auto snap = runtime_snapshot::make(cfg, s->make_budgets(*cfg, nullptr));
  if (!snap) return snap.error();
  s->snapshot_.publish(std::move(*snap));
  s->store_work_.emplace(s->store_ioc_.get_executor());
  for (int i = 0; i < budget_store_threads; ++i)
    s->store_threads_.emplace_back([st = s.get()] { st->store_ioc_.run(); });
  return s;
}

std::shared_ptr<accounting::budget_engine> shared_state::make_budgets(
    const config::config& cfg, const accounting::budget_engine* previous) {
  std::vector<std::string> warnings;
  const auto now =
      std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now());
  auto engine = std::make_shared<accounting::budget_engine>(cfg.budgets, previous, restore_budgets_,
                                                            now, &warnings);
  for (const auto& w : warnings) log->warn("budgets: {}", w);
  if (cfg.budgets.store == config::budget_store_kind::redis && !engine->empty()) {
    // A fresh (or flushed) Redis learns the spend this replica's ledger knows; an existing
    // count is left alone (SET NX), so replicas never add their ledgers up twice.
    auto store = accounting::make_shared_budget_store(cfg.budgets.redis);
    engine->seed_store(now, *store);
  }
  return engine;
}

boost::system::result<void, startup_error> shared_state::replace(
    const std::shared_ptr<const config::config>& cfg) {
  std::lock_guard lock(reload_mutex_);
  auto snap = runtime_snapshot::make(cfg, make_budgets(*cfg, snapshot_.load()->budgets.get()));
  if (!snap) return snap.error();
  // A config reload re-read the rate table too (load_file validates it); publish both.
  if (cfg->rate_table) rates_.publish(cfg->rate_table);
  snapshot_.publish(std::move(*snap));
  return {};
}

boost::system::result<std::string, reload_error> shared_state::reload_rate_table() {
  std::lock_guard lock(reload_mutex_);
  const auto path = snapshot_.load()->cfg->pricing.rate_table;
  if (path.empty()) return reload_error{{"no pricing.rate_table configured"}};
  auto r = config::load_rate_table_file(path);
  if (!r.table) {
    telemetry::bump(counters.rate_table_reloads_failed);
    reload_error e;
    for (const auto& p : r.errors) e.problems.push_back(p.to_string());
    if (e.problems.empty()) e.problems.push_back(path + ": could not be loaded");
    return e;
  }
  telemetry::bump(counters.rate_table_reloads_ok);
  std::string version = r.table->version;
  rates_.publish(std::move(r.table));
  return version;
}

}  // namespace bedrock_meter::proxy
