#include "proxy/server.hpp"

#include <sys/socket.h>

#include <stdexcept>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include "config/rate_table_loader.hpp"

namespace bedrock_meter::proxy {

namespace {

std::shared_ptr<net::ssl::context> make_server_tls(const config::tls_files& files) {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                   net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                   net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use);
  ctx->use_certificate_chain_file(files.cert_file);
  ctx->use_private_key_file(files.key_file, net::ssl::context::pem);
  // ALPN: h2 when the client offers it (the JS SDK's default), else http/1.1; a client offering
  // neither gets no ALPN answer and speaks HTTP/1.1.
  SSL_CTX_set_alpn_select_cb(
      ctx->native_handle(),
      [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
         unsigned int inlen, void*) -> int {
        for (const std::string_view want : {std::string_view("h2"), std::string_view("http/1.1")}) {
          for (unsigned i = 0; i + 1 <= inlen;) {
            const unsigned len = in[i];
            if (i + 1 + len > inlen) break;
            if (std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == want) {
              *out = in + i + 1;
              *outlen = static_cast<unsigned char>(len);
              return SSL_TLSEXT_ERR_OK;
            }
            i += 1 + len;
          }
        }
        return SSL_TLSEXT_ERR_NOACK;
      },
      nullptr);
  return ctx;
}

awaitable<void> accept_loop(worker& w, tcp_acceptor& acceptor,
                            std::shared_ptr<net::ssl::context> tls) {
  auto& state = w.state();
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_ec);
    if (ec) {
      if (ec == net::error::operation_aborted || state.stopping.load()) co_return;
      // EMFILE and friends: log once per occurrence and keep accepting.
      state.log->warn("accept failed: {}", ec.message());
      continue;
    }
    const auto limit = w.snapshot()->cfg->limits.max_connections;
    if (state.stats.connections.load(std::memory_order_relaxed) >=
        static_cast<std::int64_t>(limit)) {
      state.stats.connections_refused.fetch_add(1, std::memory_order_relaxed);
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    net::co_spawn(w.get_executor(), run_connection(w, std::move(socket), tls), net::detached);
  }
}

}  // namespace

runtime_snapshot::runtime_snapshot(std::shared_ptr<const config::config> c,
                                   std::shared_ptr<budget_engine> b)
    : cfg(std::move(c)), auth(cfg->auth), budgets(std::move(b)) {
  auto t = make_upstream_target(cfg->upstream, cfg->upstream.region);
  if (!t) throw std::runtime_error("upstream.endpoint does not parse: " + cfg->upstream.endpoint);
  default_target = std::move(*t);
  for (const auto& r : cfg->upstream.allowed_client_regions) {
    if (auto rt = make_upstream_target(cfg->upstream, r)) client_region_targets.push_back(*rt);
  }
}

const upstream_target& runtime_snapshot::target_for(std::string_view signed_region) const noexcept {
  if (!signed_region.empty() && signed_region != default_target.region) {
    for (const auto& t : client_region_targets)
      if (t.region == signed_region) return t;
  }
  return default_target;
}

shared_state::shared_state(std::shared_ptr<const config::config> cfg,
                           std::shared_ptr<const published_credentials> creds,
                           std::string upstream_bearer_token, budget_restore_fn restore_budgets)
    : restore_budgets_(std::move(restore_budgets)),
      creds_(std::move(creds)),
      bearer_(std::move(upstream_bearer_token)) {
  log = spdlog::get("proxy");
  if (!log) log = spdlog::default_logger();
  access = spdlog::get("access");
  upstream_tls_ = make_upstream_tls_context(cfg->upstream);
  rates_.publish(cfg->rate_table);
  auto budgets = make_budgets(*cfg, nullptr);
  snapshot_.publish(std::make_shared<const runtime_snapshot>(std::move(cfg), std::move(budgets)));
}

std::shared_ptr<budget_engine> shared_state::make_budgets(const config::config& cfg,
                                                          const budget_engine* previous) {
  std::vector<std::string> warnings;
  const auto now = std::chrono::time_point_cast<std::chrono::nanoseconds>(
      std::chrono::system_clock::now());
  auto engine =
      std::make_shared<budget_engine>(cfg.budgets, previous, restore_budgets_, now, &warnings);
  for (const auto& w : warnings) log->warn("budgets: {}", w);
  if (cfg.budgets.store == config::budget_store_kind::redis && !engine->empty()) {
    // A fresh (or flushed) Redis learns the spend this replica's ledger knows; an existing
    // count is left alone (SET NX), so replicas never add their ledgers up twice.
    auto store = make_shared_budget_store(cfg.budgets.redis);
    engine->seed_store(now, *store);
  }
  return engine;
}

void shared_state::replace(std::shared_ptr<const config::config> cfg) {
  std::lock_guard lock(reload_mutex_);
  auto budgets = make_budgets(*cfg, snapshot_.load()->budgets.get());
  auto snap = std::make_shared<const runtime_snapshot>(cfg, std::move(budgets));
  // A config reload re-read the rate table too (load_file validates it); publish both.
  if (cfg->rate_table) rates_.publish(cfg->rate_table);
  snapshot_.publish(std::move(snap));
}

std::vector<std::string> shared_state::reload_rate_table() {
  std::lock_guard lock(reload_mutex_);
  const auto path = snapshot_.load()->cfg->pricing.rate_table;
  if (path.empty()) return {"no pricing.rate_table configured"};
  auto r = config::load_rate_table_file(path);
  if (!r.table) {
    stats.rate_table_reloads_failed.fetch_add(1, std::memory_order_relaxed);
    std::vector<std::string> errors;
    for (const auto& e : r.errors) errors.push_back(e.to_string());
    if (errors.empty()) errors.push_back(path + ": could not be loaded");
    return errors;
  }
  stats.rate_table_reloads_ok.fetch_add(1, std::memory_order_relaxed);
  rates_.publish(std::move(r.table));
  return {};
}

worker::worker(shared_state& state, unsigned index)
    : state_(state),
      index_(index),
      pool_(ioc_.get_executor(), state.upstream_tls(),
            state.snapshot()->cfg->upstream.max_idle_connections,
            state.snapshot()->cfg->upstream.pool_idle_time),
      snapshot_(state.snapshots()),
      rates_(state.rates()),
      rng_(std::random_device{}()) {
  if (state.credentials() != nullptr) creds_.emplace(*state.credentials());
  if (state.metrics_sink != nullptr) recorder_ = state.metrics_sink->make_recorder();
}

std::uint64_t worker::next_connection_id() noexcept {
  // Worker index in the top bits keeps ids unique across workers without sharing a counter.
  return (static_cast<std::uint64_t>(index_) << 48) | ++next_conn_;
}

std::string worker::new_request_id() {
  const std::uint64_t hi = rng_();
  const std::uint64_t lo = rng_();
  unsigned char b[16];
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<unsigned char>(hi >> (56 - 8 * i));
    b[8 + i] = static_cast<unsigned char>(lo >> (56 - 8 * i));
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += hex[b[i] >> 4];
    out += hex[b[i] & 0xf];
  }
  return out;
}

std::list<session_entry>::iterator worker::register_session(std::uint64_t id, tcp_stream* s) {
  sessions_.push_front(session_entry{id, s, false, {}});
  return sessions_.begin();
}

void worker::unregister_session(std::list<session_entry>::iterator it) { sessions_.erase(it); }

void worker::begin_shutdown() {
  for (auto& a : acceptors_) {
    error_code ignored;
    a->close(ignored);
  }
  for (auto& s : sessions_) {
    // Sessions inside an exchange finish it and then close (they check `stopping`); idle
    // keep-alive sessions are waiting for a request that must not start now.
    if (s.on_shutdown)
      s.on_shutdown();
    else if (!s.in_exchange)
      s.stream->cancel();
  }
  pool_.clear();
}

server::server(std::shared_ptr<shared_state> state) : state_(std::move(state)) {
  const auto snap = state_->snapshot();
  unsigned n = snap->cfg->workers;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<worker>(*state_, i));
}

server::~server() {
  for (auto& w : workers_) w->io_context().stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void server::bind() {
  const auto snap = state_->snapshot();
  for (const auto& l : snap->cfg->listeners) {
    server_tls_.push_back(l.tls ? make_server_tls(*l.tls) : nullptr);
    error_code ec;
    const auto addr = net::ip::make_address(l.address, ec);
    if (ec) throw std::runtime_error("listener address '" + l.address + "' is not an IP address");
    std::uint16_t port = l.port;
    if (port != 0) {
      // SO_REUSEPORT would let us join another process's socket on this port (any process of
      // the same user that also set it) and silently split its traffic. Probe without it first.
      tcp_acceptor probe(workers_.front()->get_executor());
      probe.open(addr.is_v6() ? tcp::v6() : tcp::v4());
      probe.set_option(net::socket_base::reuse_address(true));  // TIME_WAIT is not "in use"
      probe.bind(tcp::endpoint(addr, port), ec);
      if (ec)
        throw std::runtime_error("cannot listen on " + l.address + ":" + std::to_string(port) +
                                 ": " + ec.message());
    }
    for (auto& w : workers_) {
      auto acc = std::make_unique<tcp_acceptor>(w->get_executor());
      const tcp::endpoint ep(addr, port);
      acc->open(ep.protocol());
      acc->set_option(net::socket_base::reuse_address(true));
      // One acceptor per worker on the same port: the kernel spreads connections over them.
      const int one = 1;
      ::setsockopt(acc->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
      acc->bind(ep, ec);
      if (ec)
        throw std::runtime_error("cannot listen on " + l.address + ":" + std::to_string(port) +
                                 ": " + ec.message());
      acc->listen(net::socket_base::max_listen_connections);
      port = acc->local_endpoint().port();  // port 0: the rest join the port the first got
      w->acceptors().push_back(std::move(acc));
    }
    ports_.push_back(port);
  }
}

namespace {

/// A worker's event loop. With busy polling on, a worker that has just run a handler keeps
/// polling (epoll with a zero timeout) for up to `spin` before it blocks. Waking a thread that
/// sleeps in epoll_wait costs tens of microseconds on a virtual machine (the idle vCPU halts and
/// needs an interrupt to run again) and the wake-up finds cold caches; at low request rates that
/// is most of the latency the proxy adds (docs/performance.md). Between polls the worker yields
/// the core: when other threads are waiting for it (the upstream, other processes on a shared
/// host) they run, so polling only uses a core nobody else wants; without the yield, polling
/// cost a third of the throughput at saturation on the 2-core benchmark machine. HAProxy's
/// `busy-polling` is the same idea, always on; here it stops `spin` after the last event.
void run_worker(net::io_context& ioc, std::chrono::microseconds spin) {
  if (spin.count() == 0) {
    ioc.run();
    return;
  }
  using clock = std::chrono::steady_clock;
  auto last = clock::now();
  while (!ioc.stopped()) {  // stop(), or no work left (poll and run_one then stop it)
    if (ioc.poll() > 0) {
      last = clock::now();
    } else if (clock::now() - last >= spin) {
      ioc.run_one();
      last = clock::now();
    } else {
      std::this_thread::yield();
    }
  }
}

}  // namespace

void server::start() {
  const std::chrono::microseconds spin(state_->snapshot()->cfg->busy_poll_us);
  for (auto& w : workers_) {
    for (std::size_t i = 0; i < w->acceptors().size(); ++i)
      net::co_spawn(w->get_executor(), accept_loop(*w, *w->acceptors()[i], server_tls_[i]),
                    net::detached);
    threads_.emplace_back([wp = w.get(), spin] { run_worker(wp->io_context(), spin); });
  }
}

bool server::shutdown(std::chrono::milliseconds grace) {
  state_->stopping.store(true);
  for (auto& w : workers_) net::post(w->io_context(), [wp = w.get()] { wp->begin_shutdown(); });
  const auto deadline = std::chrono::steady_clock::now() + grace;
  bool clean = true;
  while (state_->stats.inflight.load() > 0 || state_->stats.connections.load() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      clean = false;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& w : workers_) w->io_context().stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  return clean;
}

}  // namespace bedrock_meter::proxy
