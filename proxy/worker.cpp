#include "proxy/worker.hpp"

namespace bedrock_meter::proxy {

using namespace io;

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
  if (state.sinks.metrics != nullptr) recorder_ = state.sinks.metrics->make_recorder();
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
  sessions_.push_front(session_entry{id, s, false, {}, std::nullopt});
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

}  // namespace bedrock_meter::proxy
