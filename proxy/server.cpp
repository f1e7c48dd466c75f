#include "proxy/server.hpp"

#include <sys/socket.h>

#include <optional>
#include <stdexcept>
#include <thread>

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>

#include "proxy/connection.hpp"

namespace bedrock_meter::proxy {

using namespace io;

namespace {

/// The listener's TLS context, with ALPN for h2 and http/1.1.
boost::system::result<std::shared_ptr<net::ssl::context>, startup_error> make_server_tls(
    const config::tls_files& files) {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  error_code ec;
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                       net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                       net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use,
                   ec);
  ctx->use_certificate_chain_file(files.cert_file, ec);
  if (ec) return startup_error{"TLS certificate " + files.cert_file + ": " + ec.message()};
  ctx->use_private_key_file(files.key_file, net::ssl::context::pem, ec);
  if (ec) return startup_error{"TLS key " + files.key_file + ": " + ec.message()};
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

/// Connections over a limit answered at once, per process; beyond it they are closed unanswered,
/// so a flood cannot make the refusals themselves the load.
constexpr std::int64_t max_refusals_answered = 256;

/// The connection limits for one accepted socket: served, refused with an answer (over
/// `max_connections` or `max_connections_per_client`), or nullopt: closed unanswered (too many
/// refusals at once already). Every refusal is counted.
std::optional<admitted_connection> admit_connection(worker& w, const tcp_socket& socket) {
  auto& state = w.state();
  const auto& lim = w.snapshot()->cfg->limits;
  error_code ec;
  const auto peer = socket.remote_endpoint(ec).address();
  if (ec) return std::nullopt;  // already gone
  const bool counted = state.clients.try_add(peer, lim.max_connections_per_client);
  std::optional<aws::bedrock_error> refusal;
  if (!counted) {
    telemetry::bump(state.counters.client_connections_refused);
    refusal = aws::too_many_client_connections(lim.max_connections_per_client);
  } else if (state.counters.connections.load(std::memory_order_relaxed) >=
             static_cast<std::int64_t>(lim.max_connections)) {
    telemetry::bump(state.counters.connections_refused);
    refusal = aws::too_many_connections(lim.max_connections);
  }
  const bool answer =
      refusal && state.counters.refusing.load(std::memory_order_relaxed) < max_refusals_answered;
  if (refusal && !answer) {
    if (counted) state.clients.remove(peer);
    return std::nullopt;
  }
  return admitted_connection(w, peer, counted, std::move(refusal), answer);
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
    auto admitted = admit_connection(w, socket);
    if (!admitted) {
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    net::co_spawn(w.get_executor(), run_connection(w, std::move(socket), tls, std::move(*admitted)),
                  net::detached);
  }
}

}  // namespace

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

boost::system::result<void, startup_error> server::bind() {
  const auto snap = state_->snapshot();
  for (const auto& l : snap->cfg->listeners) {
    std::shared_ptr<net::ssl::context> tls;
    if (l.tls) {
      auto made = make_server_tls(*l.tls);
      if (!made) return made.error();
      tls = std::move(*made);
    }
    server_tls_.push_back(std::move(tls));
    auto port = bind_listener(l);
    if (!port) return port.error();
    ports_.push_back(*port);
  }
  return {};
}

boost::system::result<std::uint16_t, startup_error> server::bind_listener(
    const config::listener_config& l) {
  error_code ec;
  const auto addr = net::ip::make_address(l.address, ec);
  if (ec) return startup_error{"listener address '" + l.address + "' is not an IP address"};
  std::uint16_t port = l.port;
  const auto cannot = [&](const error_code& why) {
    return startup_error{"cannot listen on " + l.address + ":" + std::to_string(port) + ": " +
                         why.message()};
  };
  if (port != 0) {
    // SO_REUSEPORT would let us join another process's socket on this port (any process of the
    // same user that also set it) and silently split its traffic. Probe without it first.
    tcp_acceptor probe(workers_.front()->get_executor());
    probe.open(addr.is_v6() ? tcp::v6() : tcp::v4(), ec);
    if (!ec) probe.set_option(net::socket_base::reuse_address(true), ec);  // TIME_WAIT: not in use
    if (!ec) probe.bind(tcp::endpoint(addr, port), ec);
    if (ec) return cannot(ec);
  }
  for (auto& w : workers_) {
    auto acc = std::make_unique<tcp_acceptor>(w->get_executor());
    const tcp::endpoint ep(addr, port);
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(net::socket_base::reuse_address(true), ec);
    if (ec) return cannot(ec);
    // One acceptor per worker on the same port: the kernel spreads connections over them.
    const int one = 1;
    ::setsockopt(acc->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    acc->bind(ep, ec);
    if (!ec) acc->listen(net::socket_base::max_listen_connections, ec);
    if (ec) return cannot(ec);
    port = acc->local_endpoint(ec).port();  // port 0: the rest join the port the first got
    w->acceptors().push_back(std::move(acc));
  }
  return port;
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
  while (state_->counters.inflight.load() > 0 || state_->counters.connections.load() > 0) {
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
  // The budget settlements queued for the shared store go out before the process ends.
  state_->drain_budget_store();
  return clean;
}

}  // namespace bedrock_meter::proxy
