#include "app/application.hpp"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "accounting/budget_restore.hpp"
#include "accounting/fingerprint_key.hpp"
#include "app/admin_routes.hpp"
#include "app/args.hpp"
#include "fleet/postgres_reader.hpp"

namespace bedrock_meter::app {

namespace {

using startup_result = boost::system::result<void, proxy::startup_error>;

proxy::startup_error fail(std::string what, std::string_view why) {
  return proxy::startup_error{std::move(what) + ": " + std::string(why)};
}

/// What the commitment discounts took off each spend series in the ledger, so the restored
/// bedrock_net_spend_usd_total continues where it was (terms do not overlap: config).
accounting::ledger_result<std::vector<telemetry::metrics::net_discount_row>> net_discounts(
    accounting::ledger_reader& reader, const std::vector<config::commitment_config>& terms) {
  std::vector<telemetry::metrics::net_discount_row> out;
  const auto ms = [](std::chrono::year_month_day d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::sys_days(d).time_since_epoch())
        .count();
  };
  for (const auto& c : terms) {
    auto rows = reader.series_spend(ms(c.start), ms(c.end));
    if (!rows) return rows.error();
    for (auto& r : *rows) {
      const auto d = config::discount_ppm_on(terms, r.model_base, std::chrono::sys_days(c.start));
      if (d == 0) continue;
      const auto off = [d](metering::money_total list) { return list - metering::net_of(list, d); };
      out.push_back({std::move(r.model_label),
                     std::move(r.region),
                     std::move(r.service_tier),
                     std::move(r.team),
                     std::move(r.app),
                     {off(r.input_cost), off(r.output_cost), off(r.cache_read_cost),
                      off(r.cache_write_cost)}});
    }
  }
  return out;
}

}  // namespace

application::logging_session::~logging_session() { spdlog::shutdown(); }

application::blocked_signals::blocked_signals() {
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a peer gone mid-write is an error code, not a signal
}

application::closing_ledger::~closing_ledger() {
  if (!book) return;
  const auto lost = book->close();  // commits everything the settled requests appended
  log->info("ledger closed: {} records committed this run", book->counters().committed);
  if (lost > 0) log->error("ledger: {} records could not be committed", lost);
  if (shipper) {
    shipper->stop(std::chrono::seconds(5));
    const auto s = shipper->stats();
    log->info(
        "fleet ledger: {} rows shipped this run, {} left in the local journal for the next "
        "start",
        s.shipped, s.spool_rows);
  }
}

application::~application() {
  if (log_) log_->info("stopped");
}

boost::system::result<std::unique_ptr<application>, proxy::startup_error> application::start(
    std::string config_path, const std::string& ready_file) {
  auto cfg = load_or_report(config_path);
  if (!cfg) return proxy::startup_error{"the config " + config_path + " has errors (above)"};
  std::unique_ptr<application> app(new application());
  app->config_path_ = std::move(config_path);
  app->logging_.loggers = telemetry::make_loggers(cfg->logging);
  app->log_ = app->logging_.loggers.proxy;
  app->ledger_.log = app->log_;
  if (auto r = app->start_upstream_auth(*cfg); !r) return r.error();
  telemetry::metrics_options mo;
  mo.build_version = "0.1.0";
  app->metrics_ = std::make_unique<telemetry::metrics>(mo);
  if (auto r = app->open_ledger(*cfg); !r) return r.error();
  auto* budget_reader = app->ledger_.fleet_reader ? app->ledger_.fleet_reader.get()
                        : app->ledger_.book       ? &app->ledger_.book->reader()
                                                  : nullptr;
  auto state = proxy::shared_state::create(
      cfg, app->creds_, app->upstream_bearer_,
      accounting::restore_from_ledger(app->ledger_.book.get(), budget_reader));
  if (!state) return state.error();
  app->state_ = std::move(*state);
  app->state_->sinks = {app->ledger_.book.get(), app->metrics_.get(),
                        app->ledger_.shipper ? &app->ledger_.shipper->spool_full() : nullptr,
                        app->ledger_.journal.get()};
  if (auto r = app->load_fingerprint_key(*cfg); !r) return r.error();
  app->server_ = std::make_unique<proxy::server>(app->state_);
  if (auto r = app->server_->bind(); !r) return r.error();
  app->advice_ =
      std::make_unique<advice_refresh>(*app->state_, *app->metrics_, cfg->ledger.path, app->log_);
  if (auto r = app->start_admin(*cfg); !r) return r.error();
  const auto ports = app->server_->bound_ports();
  for (std::size_t i = 0; i < cfg->listeners.size(); ++i) {
    const auto& l = cfg->listeners[i];
    app->log_->info("listening on {}://{}:{}", l.tls ? "https" : "http", l.address, ports[i]);
  }
  app->server_->start();
  app->watch_ = std::make_unique<rate_table_watch>(*app->state_, app->log_);
  if (!ready_file.empty()) app->write_ready_file(ready_file);
  return app;
}

startup_result application::start_upstream_auth(const config::config& cfg) {
  const auto& c = cfg.upstream.credentials;
  if (c.source == config::credential_source::bearer) {
    auto t = aws::bearer_token(c, {});
    if (!t) return fail("upstream credentials", t.error().message);
    upstream_bearer_ = std::move(*t);
    log_->info("upstream auth: bearer key from ${}", c.bearer_token_env);
    return {};
  }
  creds_ = std::make_shared<proxy::published_credentials>();
  // The refresh callback runs on the provider's thread after each refresh and republishes the
  // new keys for the workers. It may fire only once `create` has returned and set `live`.
  auto live = std::make_shared<std::atomic<aws::credential_provider*>>(nullptr);
  aws::provider_options opt;
  opt.policy.refresh_before = c.refresh_before;
  opt.on_refresh = [log = log_, live, creds = creds_](const aws::refresh_event& e) {
    if (e.result == aws::refresh_result::failed) {
      log->warn("upstream credentials refresh from {} failed ({} in a row): {}", e.source,
                e.consecutive_failures, e.error.message);
      return;
    }
    if (auto* p = live->load()) {
      auto snap = p->current();
      creds->publish(std::shared_ptr<const aws::sigv4::credentials>(snap, &snap->creds));
    }
    log->info("upstream credentials refreshed from {}", e.source);
  };
  auto p = aws::credential_provider::create(c, std::move(opt));
  if (!p) return fail("upstream credentials", p.error().message);
  provider_ = std::move(*p);
  live->store(provider_.get());  // first, so no refresh from now on is missed
  auto snap = provider_->current();
  creds_->publish(std::shared_ptr<const aws::sigv4::credentials>(snap, &snap->creds));
  log_->info("upstream credentials from {}", snap->source);
  return {};
}

startup_result application::recover_inflight(const config::config& cfg) {
  const std::string path = cfg.ledger.path + ".inflight";
  auto rows =
      accounting::inflight_journal::recover(path, cfg.rate_table.get(), cfg.models.mappings);
  if (!rows) return fail("ledger", rows.error());
  std::size_t interrupted = 0, settled = 0;
  for (auto& row : *rows) {
    // A row committed just before the process died may not have had its slot freed yet.
    accounting::request_filter f;
    f.from_ms = row.time_ms;
    f.to_ms = row.time_ms + 1;
    f.request_id = row.request_id;
    f.limit = 1;
    if (const auto found = ledger_.book->reader().find_requests(f); found && !found->rows.empty())
      continue;
    ++(row.outcome == metering::request_outcome::interrupted ? interrupted : settled);
    ledger_.book->append(std::move(row));
  }
  if (interrupted + settled > 0) {
    ledger_.book->flush();
    log_->warn(
        "ledger: the last process died with requests in flight; {} written as interrupted "
        "(usage estimated) and {} settled but not yet committed written as they settled",
        interrupted, settled);
  }
  unsigned workers = cfg.workers;
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  auto journal = accounting::inflight_journal::create(path, workers);
  if (!journal) return fail("ledger", journal.error());
  ledger_.journal = std::move(*journal);
  return {};
}

startup_result application::open_ledger(const config::config& cfg) {
  if (!cfg.rate_table)
    log_->warn("no pricing.rate_table: every request with tokens is recorded as unpriced");
  else
    log_->info("rate table {} ({} entries) from {}", cfg.rate_table->version,
               cfg.rate_table->entries.size(), cfg.pricing.rate_table);
  if (cfg.ledger.path.empty()) {
    log_->warn("no ledger.path: priced requests are not recorded durably");
    return {};
  }
  accounting::ledger_options lo;
  lo.batch_max = cfg.ledger.batch_max;
  lo.queue_capacity = cfg.ledger.queue_capacity;
  lo.flush_interval = cfg.ledger.flush_interval;
  lo.log = [log = log_](std::string_view m) { log->warn("ledger: {}", m); };
  // Rows of this run's requests carry their start record's slot; the recovered rows below carry
  // none, so the journal is only read once it exists.
  lo.after_commit = [journal = &ledger_.journal](const accounting::ledger_record& r) {
    if (r.journal_slot >= 0) (*journal)->release(r.journal_slot);
  };
  auto opened = accounting::ledger::open(cfg.ledger.path, std::move(lo));
  if (!opened) return fail("ledger", opened.error().message);
  ledger_.book = std::move(*opened);
  log_->info("ledger at {}", cfg.ledger.path);
  if (auto r = recover_inflight(cfg); !r) return r;
  // The FinOps counters continue from the ledger's totals, so a restart does not reset them
  // (and rate() sees no counter reset).
  auto totals = ledger_.book->reader().totals();
  if (!totals) return fail("ledger", totals.error().message);
  auto discounts = net_discounts(ledger_.book->reader(), cfg.commitments);
  if (!discounts) return fail("ledger", discounts.error().message);
  metrics_->restore(*totals, *discounts);
  log_->info("metrics restored from the ledger ({} series)", totals->size());
  if (cfg.ledger.store == config::ledger_store_kind::postgres) start_fleet(cfg);
  return {};
}

void application::start_fleet(const config::config& cfg) {
  const auto& pg = cfg.ledger.postgres;
  const std::string replica = pg.replica.empty() ? fleet::default_replica_name() : pg.replica;
  // Budgets restore the fleet's period-to-date spend; without PostgreSQL at start, this
  // replica's own (the documented fallback: docs/ledger.md). A failure is one line.
  std::string reported;
  auto ready = fleet::prepare_schema(pg);
  auto reader =
      ready ? fleet::open_reader(pg)
            : accounting::ledger_result<std::unique_ptr<accounting::ledger_reader>>(ready.error());
  if (reader) {
    ledger_.fleet_reader = std::move(*reader);
    log_->info("fleet ledger: replica {}, budgets restore the fleet's spend", replica);
  } else if (reader.error().what == accounting::ledger_error::kind::cannot_open) {
    reported = reader.error().message;
    log_->error(
        "{}; serving on: records stay in the local journal {} and are shipped when it "
        "answers, budgets restore from this replica's local journal only until a restart",
        reported, cfg.ledger.path);
  } else {
    log_->info("{}; budgets restore from this replica's local journal until a restart",
               reader.error().message);
  }
  ledger_.shipper = std::make_unique<fleet::shipper>(
      pg, cfg.ledger.path, replica,
      [log = log_](fleet::shipper::level l, std::string_view m) {
        if (l == fleet::shipper::level::info)
          log->info("{}", m);
        else if (l == fleet::shipper::level::warn)
          log->warn("{}", m);
        else
          log->error("{}", m);
      },
      reported);
}

startup_result application::load_fingerprint_key(const config::config& cfg) {
  if (!cfg.ledger.prompt_fingerprints || cfg.ledger.fingerprint_key_file.empty()) {
    log_->info("prompt fingerprints off");
    return {};
  }
  std::string warning;
  auto key = accounting::load_or_create_fingerprint_key(cfg.ledger.fingerprint_key_file, warning);
  if (!key) return fail("ledger", key.error());
  if (!warning.empty()) log_->warn("{}", warning);
  state_->fingerprint_key = *key;
  log_->info("prompt fingerprints keyed by {}", cfg.ledger.fingerprint_key_file);
  return {};
}

startup_result application::start_admin(const config::config& cfg) {
  if (!cfg.admin.enabled) return {};
  auto opts = admin::options_from(cfg.admin);
  if (!opts) return fail("admin", opts.error().message);
  admin_ = std::make_unique<admin::server>(std::move(*opts));
  add_admin_routes(*admin_, *state_, *metrics_, *advice_, ledger_.shipper.get(),
                   [this] { return reload(); });
  if (auto r = admin_->start(); !r) return proxy::startup_error{r.error().message};
  log_->info(
      "admin listener on http://{}:{} (/metrics /healthz /readyz /-/reload /api/budgets "
      "/api/advice /api/rates /api/quote)",
      cfg.admin.address, admin_->port());
  return {};
}

void application::write_ready_file(const std::string& path) const {
  std::string ports = "[";
  for (const auto p : server_->bound_ports())
    ports += (ports.size() > 1 ? "," : "") + std::to_string(p);
  ports += "]";
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << "{\"ports\":" << ports
                     << ",\"admin_port\":" << (admin_ ? admin_->port() : 0) << "}\n";
  std::rename(tmp.c_str(), path.c_str());  // atomic: readers never see half a file
}

admin::reload_result application::reload() {
  admin::reload_result out;
  auto r = config::load_file(config_path_);
  if (!r.value) {
    telemetry::bump(state_->counters.rate_table_reloads_failed);
    out.result = admin::reload_result::status::invalid;
    for (const auto& e : r.errors) {
      log_->error("reload rejected: {}", e.to_string());
      out.errors.push_back(e.to_string());
    }
    return out;
  }
  auto next = std::make_shared<const config::config>(std::move(*r.value));
  if (auto replaced = state_->replace(next); !replaced) {
    log_->error("reload rejected: {}", replaced.error().message);
    out.result = admin::reload_result::status::failed;
    out.errors.push_back(replaced.error().message);
    return out;
  }
  out.reloaded.push_back("config");
  if (next->rate_table) {
    telemetry::bump(state_->counters.rate_table_reloads_ok);
    out.reloaded.push_back("rate_table " + next->rate_table->version);
  }
  log_->info(
      "config reloaded from {} (listeners, workers, busy_poll_us and the ledger change "
      "only on restart); rate table {}",
      config_path_, next->rate_table ? next->rate_table->version : std::string("none"));
  return out;
}

int application::run() {
  for (;;) {
    int sig = 0;
    sigwait(&signals_.set, &sig);
    if (sig != SIGHUP) break;
    reload();
  }
  const auto grace = state_->snapshot()->cfg->limits.shutdown_grace;
  log_->info("shutting down: finishing in-flight requests (up to {} ms)", grace.count());
  if (!server_->shutdown(grace))
    log_->warn("shutdown grace period ended with {} request(s) still in flight",
               state_->counters.inflight.load());
  return 0;
}

}  // namespace bedrock_meter::app
