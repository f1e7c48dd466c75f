#include "proxy/http2_client.hpp"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/write.hpp>

#include "io/nghttp2_output.hpp"
#include "proxy/http2_session.hpp"

namespace bedrock_meter::proxy {

using namespace io;

namespace {

/// Per-stream window the proxy grants Bedrock: one audio session's output in flight without
/// waiting on WINDOW_UPDATEs, still a bound on what a stalled client makes the proxy hold.
constexpr std::int32_t stream_window = 1 << 20;

std::string_view as_sv(const std::uint8_t* p, std::size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

nghttp2_nv make_nv(const std::string& k, const std::string& v) {
  return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(k.data())),
                    reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), k.size(),
                    v.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

struct h2_upstream::callbacks {
  static h2_upstream& self(void* p) { return *static_cast<h2_upstream*>(p); }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                       std::uint8_t, void* user) {
    auto& c = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != c.stream_id_ ||
        frame->headers.cat != NGHTTP2_HCAT_RESPONSE)
      return 0;
    const auto n = as_sv(name, namelen);
    const auto v = as_sv(value, valuelen);
    if (n == ":status") {
      unsigned status = 0;
      for (const char ch : v) status = status * 10 + static_cast<unsigned>(ch - '0');
      c.status_ = status;
    } else if (!n.empty() && n.front() != ':') {
      c.headers_.emplace_back(std::string(n), std::string(v));
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& c = self(user);
    if (frame->hd.stream_id != c.stream_id_) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE &&
        c.status_ >= 200) {
      c.head_done_ = true;
      c.read_wake_.cancel();
    }
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      c.in_eof_ = true;
      c.read_wake_.cancel();
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                           const std::uint8_t* data, std::size_t len, void* user) {
    auto& c = self(user);
    if (stream_id != c.stream_id_) {
      nghttp2_session_consume(session, stream_id, len);
      return 0;
    }
    // Acknowledged (WINDOW_UPDATE) only when read() hands the bytes out: back-pressure.
    c.in_.append(reinterpret_cast<const char*>(data), len);
    c.read_wake_.cancel();
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t, void* user) {
    auto& c = self(user);
    if (stream_id != c.stream_id_) return 0;
    c.closed_ = true;
    c.read_wake_.cancel();
    c.write_wake_.cancel();
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source* source, void*) {
    auto& c = *static_cast<h2_upstream*>(source->ptr);
    const auto left = c.out_.size() - c.out_off_;
    if (left > 0) {
      const auto n = std::min(left, length);
      std::memcpy(buf, c.out_.data() + c.out_off_, n);
      c.out_off_ += n;
      if (c.out_off_ == c.out_.size()) {
        c.out_.clear();
        c.out_off_ = 0;
        c.write_wake_.cancel();  // the writer's bytes are all in frames now
        if (c.out_eof_) *flags |= NGHTTP2_DATA_FLAG_EOF;
      }
      return static_cast<ssize_t>(n);
    }
    if (c.out_eof_) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    c.deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
};

h2_upstream::h2_upstream(std::unique_ptr<upstream_connection> conn)
    : conn_(std::move(conn)),
      writer_wake_(conn_->tcp().get_executor()),
      read_wake_(conn_->tcp().get_executor()),
      write_wake_(conn_->tcp().get_executor()) {}

h2_upstream::~h2_upstream() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

bool h2_upstream::start(std::string_view method, std::string_view path, const upstream_target& t,
                        const aws::sigv4::header_list& headers) {
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return false;
  nghttp2_session_callbacks_set_on_header_callback(cbs, &callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &callbacks::on_stream_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  const int rv = nghttp2_session_client_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return false;
  const nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(stream_window)},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, std::size(iv)) != 0) return false;
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, stream_window);

  std::vector<std::pair<std::string, std::string>> owned;
  owned.reserve(headers.size() + 4);
  owned.emplace_back(":method", std::string(method));
  owned.emplace_back(":scheme", t.tls ? "https" : "http");
  owned.emplace_back(":authority", t.host_header);
  owned.emplace_back(":path", std::string(path));
  for (const auto& [k, v] : headers) {
    std::string name = k;
    std::transform(name.begin(), name.end(), name.begin(), [](char ch) {
      return ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch + 32) : ch;
    });
    if (name == "host" || name.empty() || name.front() == ':' ||
        is_connection_specific_header(name))
      continue;
    owned.emplace_back(std::move(name), v);
  }
  std::vector<nghttp2_nv> nv;
  nv.reserve(owned.size());
  for (const auto& [k, v] : owned) nv.push_back(make_nv(k, v));
  nghttp2_data_provider prd{};
  prd.source.ptr = this;
  prd.read_callback = &callbacks::read_body;
  stream_id_ = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(), &prd, nullptr);
  if (stream_id_ < 0) return false;

  auto self = shared_from_this();
  conn_->with_stream([&](auto& s) {
    net::co_spawn(
        conn_->tcp().get_executor(),
        [self, &s]() -> awaitable<void> { co_await self->read_loop(s); }, net::detached);
    net::co_spawn(
        conn_->tcp().get_executor(),
        [self, &s]() -> awaitable<void> { co_await self->write_loop(s); }, net::detached);
    return 0;
  });
  signal_write();
  return true;
}

template <class Stream>
awaitable<void> h2_upstream::read_loop(Stream& s) {
  std::vector<char> buf(std::size_t{16} * 1024);
  while (!dead_) {
    auto [ec, n] = co_await s.async_read_some(net::buffer(buf), use_ec);
    if (ec || dead_) break;
    const auto rv =
        nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(buf.data()), n);
    if (rv < 0) break;
    signal_write();
    if (nghttp2_session_want_read(session_) == 0) break;
  }
  fail();
}

template <class Stream>
awaitable<void> h2_upstream::write_loop(Stream& s) {
  std::string out;
  while (!dead_) {
    write_pending_ = false;
    out.clear();
    if (!io::take_h2_output(session_, out)) {
      fail();
      co_return;
    }
    if (!out.empty()) {
      auto [ec, n] = co_await net::async_write(s, net::buffer(out), use_ec);
      if (ec) {
        fail();
        co_return;
      }
      continue;
    }
    if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
      fail();
      co_return;
    }
    if (write_pending_) continue;
    writer_wake_.expires_at(steady_timer::time_point::max());
    co_await writer_wake_.async_wait(use_ec);
  }
}

void h2_upstream::signal_write() {
  write_pending_ = true;
  writer_wake_.cancel();
}

void h2_upstream::wake_all() {
  read_wake_.cancel();
  write_wake_.cancel();
  writer_wake_.cancel();
}

void h2_upstream::fail() {
  if (dead_) return;
  dead_ = true;
  error_code ignored;
  conn_->tcp().socket().cancel(ignored);
  conn_->tcp().socket().close(ignored);
  wake_all();
}

void h2_upstream::close() { fail(); }

void h2_upstream::end() {
  if (dead_ || closed_ || out_eof_) return;
  out_eof_ = true;
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(session_, stream_id_);
  }
  signal_write();
}

void h2_upstream::cancel() {
  if (dead_) return;
  if (!closed_) nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id_, NGHTTP2_CANCEL);
  // GOAWAY follows the reset; the writer flushes both, then finds nothing more to do and closes.
  nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
  signal_write();
}

awaitable<bool> h2_upstream::wait(steady_timer& t, time_point deadline) {
  t.expires_at(deadline);
  auto [ec] = co_await t.async_wait(use_ec);
  // Not cancelled: the deadline passed.
  co_return !ec && std::chrono::steady_clock::now() >= deadline;
}

// Awaited results are named, never awaited inside a condition: GCC 12 compiled a co_return under
// `if (co_await ...)` in a loop into falling off the coroutine's end (UBSan trapped it).
awaitable<error_code> h2_upstream::write(std::string_view bytes, time_point deadline) {
  if (dead_ || closed_ || out_eof_) co_return net::error::connection_reset;
  if (bytes.empty()) co_return error_code{};
  out_.append(bytes);
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(session_, stream_id_);
  }
  signal_write();
  while (out_off_ < out_.size() && !closed_ && !dead_) {
    const bool timed_out = co_await wait(write_wake_, deadline);
    if (timed_out) co_return net::error::timed_out;
  }
  if (!out_.empty() || closed_ || dead_) co_return net::error::connection_reset;
  co_return error_code{};
}

awaitable<error_code> h2_upstream::read_head(time_point deadline) {
  while (!head_done_) {
    if (closed_ || dead_) co_return net::error::connection_reset;
    const bool timed_out = co_await wait(read_wake_, deadline);
    if (timed_out) co_return net::error::timed_out;
  }
  co_return error_code{};
}

awaitable<error_code> h2_upstream::read(std::string& out, time_point deadline) {
  out.clear();
  while (in_.empty()) {
    if (in_eof_) co_return error_code{};
    if (closed_ || dead_) co_return net::error::connection_reset;
    const bool timed_out = co_await wait(read_wake_, deadline);
    if (timed_out) co_return net::error::timed_out;
  }
  out.swap(in_);
  if (!dead_) {
    nghttp2_session_consume(session_, stream_id_, out.size());
    signal_write();
  }
  co_return error_code{};
}

}  // namespace bedrock_meter::proxy
