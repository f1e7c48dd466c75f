// HTTP/2 sessions on nghttp2. One coroutine pair per connection owns the socket: the reader feeds
// nghttp2_session_mem_recv, the writer drains nghttp2_session_mem_send. Each request stream that
// ends becomes one exchange coroutine writing through an http2_sink; the sink queues body bytes
// for a deferred data provider and resolves only once nghttp2 has taken them, so a client whose
// flow-control window stays closed stops the exchange's upstream reads (back-pressure).
#include "proxy/http2_session.hpp"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/write.hpp>

#include "aws/bedrock_error.hpp"
#include "io/nghttp2_output.hpp"
#include "proxy/exchange.hpp"
#include "proxy/worker.hpp"

namespace bedrock_meter::proxy {

using namespace io;
using namespace aws;

preface_match match_h2_preface(std::string_view first_bytes) noexcept {
  const auto n = std::min(first_bytes.size(), h2_preface.size());
  if (first_bytes.substr(0, n) != h2_preface.substr(0, n)) return preface_match::http1;
  return n == h2_preface.size() ? preface_match::http2 : preface_match::need_more;
}

bool is_connection_specific_header(std::string_view name) noexcept {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade" || name == "te";
}

bool rate_window::hit(std::chrono::steady_clock::time_point now) noexcept {
  if (count_ == 0 || now - start_ >= window_) {
    start_ = now;
    count_ = 0;
  }
  return ++count_ > max_;
}

namespace {

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return out;
}

std::string_view as_sv(const std::uint8_t* p, std::size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

/// One request stream and, once it runs, its response queue.
struct h2_stream {
  explicit h2_stream(const executor& ex, std::int32_t stream_id) : id(stream_id), wake(ex) {}
  std::int32_t id;
  inbound_request req;
  std::string authority;
  std::size_t header_bytes = 0;
  bool headers_too_large = false;
  bool body_too_large = false;
  bool dispatched = false;
  // Per-stream request timeouts (limits.header_timeout, then limits.body_timeout), as HTTP/1.1
  // applies them per request: the sweeper resets a stream that has not ended by `deadline`.
  bool headers_done = false;
  std::chrono::steady_clock::time_point deadline{};
  // Response side: bytes the sink queued that nghttp2 has not copied into frames yet.
  std::string out;
  std::size_t out_off = 0;
  bool eof = false;       // finish(true): END_STREAM after `out`
  bool deferred = false;  // the data provider returned NGHTTP2_ERR_DEFERRED
  bool closed = false;    // nghttp2 closed the stream (done, or reset by either side)
  steady_timer wake;      // cancelled to wake the sink waiting on this stream
  // Request body streamed to a running exchange (InvokeModelWithBidirectionalStream): bytes
  // received and not yet read; acknowledged to the client (WINDOW_UPDATE) only once read.
  bool streaming = false;
  std::string in;
  bool in_eof = false;        // END_STREAM from the client
  bool in_cancelled = false;  // the exchange stopped reading
  bool exchange_over = false;
  steady_timer in_wake{wake.get_executor()};
};

/// The request path of InvokeModelWithBidirectionalStream: its body streams to the exchange
/// instead of being collected first.
bool streams_request_body(std::string_view target) noexcept {
  const auto path = target.substr(0, target.find('?'));
  return path.starts_with("/model/") && path.ends_with("/invoke-with-bidirectional-stream");
}

template <class Stream>
class h2_connection {
 public:
  h2_connection(worker& w, Stream& stream, session_entry& entry, std::string remote)
      : w_(w),
        stream_(stream),
        entry_(entry),
        remote_(std::move(remote)),
        cfg_(w.snapshot()->cfg),
        writer_wake_(w.get_executor()),
        idle_wake_(w.get_executor()),
        sweep_timer_(w.get_executor()),
        resets_(cfg_->http2.max_resets_per_window, cfg_->http2.flood_window),
        settings_(cfg_->http2.max_settings_per_window, cfg_->http2.flood_window),
        pings_(cfg_->http2.max_pings_per_window, cfg_->http2.flood_window),
        empties_(cfg_->http2.max_empty_frames_per_window, cfg_->http2.flood_window) {}

  h2_connection(const h2_connection&) = delete;
  h2_connection& operator=(const h2_connection&) = delete;
  ~h2_connection() {
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  bool init() {
    nghttp2_session_callbacks* cbs = nullptr;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return false;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &on_stream_close);
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    // Queued SETTINGS/PING ACKs the client never reads: nghttp2 stops the session (flood).
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    // Received DATA is acknowledged by consume(): at once for collected bodies, as the exchange
    // reads for streamed ones (flow control both ways).
    nghttp2_option_set_no_auto_window_update(opt, 1);
    const int rv = nghttp2_session_server_new2(&session_, cbs, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) return false;
    const nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg_->http2.max_concurrent_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg_->http2.max_header_list_bytes},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    return nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, std::size(iv)) == 0;
  }

  awaitable<void> run(std::string initial) {
    entry_.on_shutdown = [this] { begin_goaway(); };
    if (!initial.empty() && !feed(initial)) read_done_ = true;
    net::co_spawn(w_.get_executor(), write_loop(this), net::detached);
    ++tasks_;
    net::co_spawn(w_.get_executor(), sweep_loop(this), net::detached);
    ++tasks_;
    co_await read_loop();
    // The reader ended: wait for the writer to flush (GOAWAY) and for every exchange to finish
    // with this connection, since they reference it.
    while (tasks_ > 0 || active_ > 0) {
      signal_write();
      idle_wake_.expires_at(steady_timer::time_point::max());
      co_await idle_wake_.async_wait(use_ec);
    }
    entry_.on_shutdown = nullptr;
  }

 private:
  using clock = std::chrono::steady_clock;

  auto& tcp() { return beast::get_lowest_layer(stream_); }
  telemetry::proxy_counters& counters() { return w_.counters(); }

  /// Feeds received bytes to nghttp2; false when the session must end.
  bool feed(std::string_view bytes) {
    const auto rv = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    if (calm_) {
      nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
      return false;
    }
    if (rv < 0) {
      if (rv == NGHTTP2_ERR_FLOODED) {
        // nghttp2's own guard: control-frame ACKs piling up for a client that does not read.
        telemetry::bump(counters().h2_ack_floods);
        nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
      } else {
        telemetry::bump(counters().bad_requests);
        nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
      }
      w_.state().log->debug("conn {} HTTP/2 session error: {}", entry_.id,
                            nghttp2_strerror(static_cast<int>(rv)));
      return false;
    }
    return true;
  }

  awaitable<void> read_loop() {
    std::vector<char> buf(std::size_t{16} * 1024);
    while (!dead_ && !read_done_) {
      // Idle (no stream open): the keep-alive idle timeout applies; with streams open the
      // exchanges' own timeouts do (and the sink's write timeout for a reader that stalls).
      if (streams_.empty() && active_ == 0)
        tcp().expires_after(cfg_->limits.idle_timeout);
      else
        tcp().expires_never();
      auto [ec, n] = co_await stream_.async_read_some(net::buffer(buf), use_ec);
      if (ec) {
        if (ec == beast::error::timeout) {
          telemetry::bump(counters().timeouts);
          begin_goaway();
        }
        // Cancelled by shutdown with nothing in flight: GOAWAY was submitted; let it flush.
        if (ec == net::error::operation_aborted && goaway_) break;
        fail();  // client gone: every open stream's sink fails (a client abort)
        break;
      }
      note_activity();
      if (!feed(std::string_view(buf.data(), n))) read_done_ = true;
      signal_write();
      if (nghttp2_session_want_read(session_) == 0) read_done_ = true;
    }
    read_done_ = true;
    signal_write();
  }

  /// Per-stream header/body timeouts, and the idle timeout when a timed-out stream left the
  /// connection idle while the reader waits without a deadline (streams were open when it began).
  static awaitable<void> sweep_loop(h2_connection* self) {
    co_await self->sweep_loop_impl();
    --self->tasks_;
    self->idle_wake_.cancel();
  }

  awaitable<void> sweep_loop_impl() {
    std::vector<std::int32_t> expired;
    while (!dead_) {
      const auto now = clock::now();
      auto next = clock::time_point::max();
      expired.clear();
      for (const auto& [id, s] : streams_) {
        if (s->dispatched) continue;
        if (s->deadline <= now)
          expired.push_back(id);
        else
          next = std::min(next, s->deadline);
      }
      for (const auto id : expired) expire_stream(id);
      if (streams_.empty() && active_ == 0 && !read_done_) {
        const auto idle_end = last_activity_ + cfg_->limits.idle_timeout;
        if (idle_end <= now) {
          telemetry::bump(counters().timeouts);
          fail();
          break;
        }
        next = std::min(next, idle_end);
      }
      sweep_at_ = next;
      sweep_timer_.expires_at(next);
      co_await sweep_timer_.async_wait(use_ec);
    }
  }

  /// A request stream did not finish its headers or body in time. HTTP/1.1 closes the
  /// connection without an answer; here the stream is the request, so it is reset (CANCEL) and
  /// its neighbours carry on.
  void expire_stream(std::int32_t id) {
    const auto it = streams_.find(id);
    if (it == streams_.end()) return;
    const bool header_block_open = !it->second->headers_done;
    streams_.erase(it);  // frames still arriving for it find no stream and are dropped
    telemetry::bump(counters().timeouts);
    telemetry::bump(counters().h2_stream_timeouts);
    w_.state().log->debug("conn {} HTTP/2 stream {}: {} timeout", entry_.id, id,
                          header_block_open ? "header" : "body");
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    // An unfinished header block holds the whole connection: no frame of another stream may
    // come until its CONTINUATIONs do (RFC 9113 6.10). Streams already running finish; no new
    // ones start.
    if (header_block_open) begin_goaway();
    signal_write();
  }

  /// Bytes arrived or an exchange ended: the idle clock restarts.
  void note_activity() {
    last_activity_ = clock::now();
    arm(last_activity_ + cfg_->limits.idle_timeout);
  }

  /// Wakes the sweeper early when a deadline comes before the one it sleeps until.
  void arm(clock::time_point t) {
    if (t < sweep_at_) {
      sweep_at_ = t;
      sweep_timer_.cancel();
    }
  }

  static awaitable<void> write_loop(h2_connection* self) {
    co_await self->write_loop_impl();
    --self->tasks_;
    self->idle_wake_.cancel();
  }

  awaitable<void> write_loop_impl() {
    std::string out;
    for (;;) {
      write_pending_ = false;
      if (dead_) break;
      out.clear();
      if (!io::take_h2_output(session_, out)) {
        fail();
        co_return;
      }
      if (!out.empty()) {
        auto [ec, n] = co_await net::async_write(stream_, net::buffer(out), use_ec);
        if (ec) {
          fail();
          break;
        }
        continue;  // more may be ready (or was produced while writing)
      }
      const bool want_read = nghttp2_session_want_read(session_) != 0;
      const bool want_write = nghttp2_session_want_write(session_) != 0;
      if (!want_read && !want_write) {
        // The session is over (terminated by a defence, or both sides said GOAWAY): exchanges
        // still running can never send again, so fail their sinks instead of letting them wait.
        if (active_ > 0) fail();
        break;
      }
      if (read_done_ && !want_write && active_ == 0) break;
      if (goaway_ && active_ == 0 && !want_write) break;
      if (write_pending_) continue;
      writer_wake_.expires_at(steady_timer::time_point::max());
      co_await writer_wake_.async_wait(use_ec);
    }
    // Done writing: stop the reader too (it may be waiting for bytes that will not matter).
    error_code ignored;
    tcp().socket().cancel(ignored);
    dead_ = true;
    wake_all();
  }

 public:
  void signal_write() {
    write_pending_ = true;
    writer_wake_.cancel();
  }

  /// The connection is unusable: stop both loops, fail every sink.
  void fail() {
    if (dead_) return;
    dead_ = true;
    error_code ignored;
    tcp().socket().cancel(ignored);
    wake_all();
    signal_write();
  }

  /// Server stopping (or idle timeout): no new streams, in-flight ones finish.
  void begin_goaway() {
    if (goaway_ || session_ == nullptr) return;
    goaway_ = true;
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                          nullptr, 0);
    signal_write();
  }

  bool dead() const noexcept { return dead_; }
  nghttp2_session* session() noexcept { return session_; }
  worker& owner() noexcept { return w_; }
  std::chrono::milliseconds write_timeout() const noexcept { return cfg_->limits.idle_timeout; }

 private:
  void wake_all() {
    sweep_timer_.cancel();
    for (auto& [id, s] : streams_) {
      s->closed = s->closed || dead_;
      s->wake.cancel();
    }
    for (auto& s : running_) {
      if (dead_) s->closed = true;
      s->wake.cancel();
      s->in_wake.cancel();
    }
  }

  h2_stream* find(std::int32_t id) {
    const auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  // --- nghttp2 callbacks (C ABI; user_data is the connection) ---

  static h2_connection& self(void* p) { return *static_cast<h2_connection*>(p); }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& c = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto s = std::make_shared<h2_stream>(c.w_.get_executor(), frame->hd.stream_id);
    s->deadline = clock::now() + c.cfg_->limits.header_timeout;
    c.arm(s->deadline);
    s->req.connection_id = c.entry_.id;
    s->req.protocol = "HTTP/2";
    s->req.remote = c.remote_;
    s->req.headers.reserve(16);
    c.streams_.emplace(frame->hd.stream_id, std::move(s));
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                       std::uint8_t, void* user) {
    auto& c = self(user);
    h2_stream* s = c.find(frame->hd.stream_id);
    if (s == nullptr || frame->hd.type != NGHTTP2_HEADERS) return 0;
    // SETTINGS_MAX_HEADER_LIST_SIZE is advisory to the peer; enforce it (RFC 9113 6.5.2 size).
    s->header_bytes += namelen + valuelen + 32;
    if (s->header_bytes > c.cfg_->http2.max_header_list_bytes) {
      s->headers_too_large = true;
      return 0;
    }
    const auto n = as_sv(name, namelen);
    const auto v = as_sv(value, valuelen);
    if (n == ":method")
      s->req.method = std::string(v);
    else if (n == ":path")
      s->req.target = std::string(v);
    else if (n == ":authority")
      s->authority = std::string(v);
    else if (!n.empty() && n.front() == ':')
      return 0;  // :scheme; nghttp2 rejects unknown pseudo-headers itself
    else
      s->req.headers.emplace_back(to_lower(n), std::string(v));  // nghttp2 already refuses
                                                                 // uppercase; lower anyway
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                           const std::uint8_t* data, std::size_t len, void* user) {
    auto& c = self(user);
    h2_stream* s = c.find(stream_id);
    if (s != nullptr && s->streaming && !s->exchange_over && !s->in_cancelled) {
      s->in.append(reinterpret_cast<const char*>(data), len);
      s->in_wake.cancel();
      return 0;
    }
    if (nghttp2_session_consume(session, stream_id, len) != 0)
      nghttp2_session_consume_connection(session, len);
    if (s == nullptr || s->dispatched) return 0;
    if (s->req.body.size() + len > c.cfg_->limits.max_body_bytes) {
      s->body_too_large = true;
      s->req.body.clear();
      s->req.body.shrink_to_fit();
      return 0;
    }
    if (!s->body_too_large) s->req.body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& c = self(user);
    const auto now = clock::now();
    switch (frame->hd.type) {
      case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 && c.settings_.hit(now))
          c.flood(c.counters().h2_settings_floods);
        return 0;
      case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 && c.pings_.hit(now))
          c.flood(c.counters().h2_ping_floods);
        return 0;
      case NGHTTP2_RST_STREAM:
        if (c.resets_.hit(now) && !c.calm_) {
          telemetry::bump(c.counters().h2_rapid_resets);
          c.calm_ = true;
        }
        return 0;
      case NGHTTP2_DATA:
      case NGHTTP2_HEADERS: break;
      default: return 0;
    }
    const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_DATA && frame->hd.length == 0 && !end && c.empties_.hit(now))
      c.flood(c.counters().h2_empty_frame_floods);
    if (h2_stream* s = c.find(frame->hd.stream_id); s != nullptr && s->streaming) {
      if (end) {
        s->in_eof = true;
        s->in_wake.cancel();
      }
      return 0;
    }
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      const auto it = c.streams_.find(frame->hd.stream_id);
      if (it != c.streams_.end() && streams_request_body(it->second->req.target)) {
        // A bidirectional stream: the exchange starts now and reads the body as it comes.
        it->second->streaming = true;
        it->second->headers_done = true;
        it->second->in_eof = end;
        c.dispatch(it->second);
        return 0;
      }
    }
    if (!end) {
      // The request's header block is complete (CONTINUATIONs included): its body has
      // limits.body_timeout from now to end the stream.
      if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        if (h2_stream* s = c.find(frame->hd.stream_id); s != nullptr && !s->headers_done) {
          s->headers_done = true;
          s->deadline = now + c.cfg_->limits.body_timeout;
          c.arm(s->deadline);
        }
      }
      return 0;
    }
    const auto it = c.streams_.find(frame->hd.stream_id);
    if (it == c.streams_.end() || it->second->dispatched) return 0;
    c.dispatch(it->second);
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t, void* user) {
    auto& c = self(user);
    const auto it = c.streams_.find(stream_id);
    if (it == c.streams_.end()) return 0;
    it->second->closed = true;
    it->second->wake.cancel();
    it->second->in_wake.cancel();
    c.streams_.erase(it);  // a running exchange keeps its own reference
    return 0;
  }

  /// A flood defence tripped: counted once per connection (by kind), then GOAWAY.
  void flood(std::atomic<std::uint64_t>& kind) {
    if (calm_) return;
    kind.fetch_add(1, std::memory_order_relaxed);
    calm_ = true;
  }

  // --- exchanges ---

  void dispatch(std::shared_ptr<h2_stream> s) {
    s->dispatched = true;
    if (!s->authority.empty()) {
      // `:authority` is what an HTTP/2 client may have signed (the JS SDK does); keep it for
      // SigV4 verification and offer it as `host` too. Neither is forwarded upstream.
      s->req.headers.emplace(s->req.headers.begin(), ":authority", s->authority);
      if (s->req.header("host").empty())
        s->req.headers.emplace(s->req.headers.begin(), "host", s->authority);
    }
    ++active_;
    entry_.in_exchange = true;
    running_.push_back(s);
    net::co_spawn(w_.get_executor(), run_stream(this, std::move(s)), net::detached);
  }

  static awaitable<void> run_stream(h2_connection* c, std::shared_ptr<h2_stream> s);

 public:
  /// A streaming exchange ended: what the client sent unread is acknowledged and dropped, and a
  /// client still sending is told to stop (RST_STREAM(NO_ERROR) after a complete response,
  /// RFC 9113 8.1).
  void end_streamed_body(h2_stream& s) {
    s.exchange_over = true;
    if (!s.in.empty() && !dead_) {
      nghttp2_session_consume(session_, s.id, s.in.size());
      s.in.clear();
    }
    if (!s.in_eof && !s.closed && !dead_)
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_NO_ERROR);
    signal_write();
  }

  void exchange_done(const std::shared_ptr<h2_stream>& s) {
    running_.erase(std::remove(running_.begin(), running_.end(), s), running_.end());
    --active_;
    entry_.in_exchange = active_ > 0;
    note_activity();
    if (w_.state().stopping.load(std::memory_order_relaxed)) begin_goaway();
    signal_write();
    idle_wake_.cancel();
  }

  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* s = static_cast<h2_stream*>(source->ptr);
    const auto left = s->out.size() - s->out_off;
    if (left > 0) {
      const auto n = std::min(left, length);
      std::memcpy(buf, s->out.data() + s->out_off, n);
      s->out_off += n;
      if (s->out_off == s->out.size()) {
        s->out.clear();
        s->out_off = 0;
        s->wake.cancel();  // the sink's bytes are all in frames now
        if (s->eof) *flags |= NGHTTP2_DATA_FLAG_EOF;
      }
      return static_cast<ssize_t>(n);
    }
    if (s->eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }

 private:
  worker& w_;
  Stream& stream_;
  session_entry& entry_;
  std::string remote_;
  std::shared_ptr<const config::config> cfg_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<std::int32_t, std::shared_ptr<h2_stream>> streams_;
  std::vector<std::shared_ptr<h2_stream>> running_;
  steady_timer writer_wake_;
  steady_timer idle_wake_;
  steady_timer sweep_timer_;
  clock::time_point sweep_at_ = clock::time_point::min();  // when the sweeper wakes next
  clock::time_point last_activity_ = clock::now();
  rate_window resets_;
  rate_window settings_;
  rate_window pings_;
  rate_window empties_;
  int active_ = 0;  // exchanges running
  int tasks_ = 0;   // writer coroutine
  bool write_pending_ = false;
  bool read_done_ = false;
  bool dead_ = false;
  bool goaway_ = false;
  bool calm_ = false;  // a defence tripped: GOAWAY(ENHANCE_YOUR_CALM) after this read
};

template <class Stream>
class http2_sink final : public response_sink {
 public:
  http2_sink(h2_connection<Stream>& c, std::shared_ptr<h2_stream> s) : c_(c), s_(std::move(s)) {}

  awaitable<error_code> write_head(unsigned status, const sigv4::header_list& headers,
                                   std::optional<std::uint64_t> content_length) override {
    if (s_->closed || c_.dead()) co_return net::error::connection_reset;
    std::vector<std::pair<std::string, std::string>> owned;
    owned.reserve(headers.size() + 2);
    owned.emplace_back(":status", std::to_string(status));
    for (const auto& [k, v] : headers) {
      auto name = to_lower(k);
      if (is_connection_specific_header(name) || name == "content-length") continue;
      owned.emplace_back(std::move(name), v);
    }
    if (content_length) owned.emplace_back("content-length", std::to_string(*content_length));
    std::vector<nghttp2_nv> nv;
    nv.reserve(owned.size());
    for (auto& [k, v] : owned)
      nv.push_back(nghttp2_nv{reinterpret_cast<std::uint8_t*>(k.data()),
                              reinterpret_cast<std::uint8_t*>(v.data()), k.size(), v.size(),
                              NGHTTP2_NV_FLAG_NONE});
    nghttp2_data_provider prd{};
    prd.source.ptr = s_.get();
    prd.read_callback = &h2_connection<Stream>::read_body;
    if (nghttp2_submit_response(c_.session(), s_->id, nv.data(), nv.size(), &prd) != 0)
      co_return net::error::connection_reset;
    c_.signal_write();
    co_return error_code{};
  }

  awaitable<error_code> write_body(std::string_view bytes) override {
    if (s_->closed || c_.dead()) co_return net::error::connection_reset;
    if (bytes.empty()) co_return error_code{};
    s_->out.append(bytes);
    resume();
    // Resolve only once nghttp2 has framed every byte: a closed flow-control window keeps the
    // exchange here, which stops its upstream reads.
    const auto deadline = std::chrono::steady_clock::now() + c_.write_timeout();
    while (s_->out_off < s_->out.size() && !s_->closed && !c_.dead()) {
      s_->wake.expires_at(deadline);
      auto [ec] = co_await s_->wake.async_wait(use_ec);
      if (!ec && std::chrono::steady_clock::now() >= deadline) {
        // The client kept its window shut for a whole idle timeout: give up on the connection,
        // as HTTP/1.1 does on a write timeout.
        telemetry::bump(c_.owner().state().counters.timeouts);
        c_.fail();
        co_return net::error::timed_out;
      }
    }
    if (s_->closed || c_.dead()) co_return net::error::connection_reset;
    co_return error_code{};
  }

  awaitable<error_code> finish(bool complete) override {
    if (s_->closed || c_.dead())
      co_return complete ? error_code(net::error::connection_reset) : error_code{};
    if (!complete) {
      nghttp2_submit_rst_stream(c_.session(), NGHTTP2_FLAG_NONE, s_->id, NGHTTP2_INTERNAL_ERROR);
      c_.signal_write();
      co_return error_code{};
    }
    s_->eof = true;
    resume();
    co_return error_code{};
  }

 private:
  void resume() {
    if (s_->deferred) {
      s_->deferred = false;
      nghttp2_session_resume_data(c_.session(), s_->id);
    }
    c_.signal_write();
  }

  h2_connection<Stream>& c_;
  std::shared_ptr<h2_stream> s_;
};

/// The request body of a streaming stream, read by its exchange.
template <class Stream>
class http2_body_stream final : public request_body_stream {
 public:
  http2_body_stream(h2_connection<Stream>& c, std::shared_ptr<h2_stream> s)
      : c_(c), s_(std::move(s)) {}

  awaitable<error_code> read(std::string& out,
                             std::chrono::steady_clock::time_point deadline) override {
    out.clear();
    while (s_->in.empty()) {
      if (s_->in_cancelled) co_return net::error::operation_aborted;
      if (s_->in_eof) co_return error_code{};
      if (s_->closed || c_.dead()) co_return net::error::connection_reset;
      s_->in_wake.expires_at(deadline);
      auto [ec] = co_await s_->in_wake.async_wait(use_ec);
      if (!ec && std::chrono::steady_clock::now() >= deadline) co_return net::error::timed_out;
    }
    out.swap(s_->in);
    // Acknowledged now: the client may send as much again.
    nghttp2_session_consume(c_.session(), s_->id, out.size());
    c_.signal_write();
    co_return error_code{};
  }

  void cancel() override {
    s_->in_cancelled = true;
    s_->in_wake.cancel();
  }

 private:
  h2_connection<Stream>& c_;
  std::shared_ptr<h2_stream> s_;
};

template <class Stream>
awaitable<void> h2_connection<Stream>::run_stream(h2_connection* c, std::shared_ptr<h2_stream> s) {
  auto& w = c->w_;
  {
    http2_sink<Stream> sink(*c, s);
    const auto& lim = c->cfg_->limits;
    if (s->headers_too_large) {
      telemetry::bump(w.counters().bad_requests);
      telemetry::bump(w.counters().h2_header_lists_refused);
      co_await write_error(
          sink,
          validation_error("Request headers exceed the proxy's limit of " +
                           std::to_string(c->cfg_->http2.max_header_list_bytes) + " bytes"),
          w.new_request_id());
    } else if (s->body_too_large) {
      telemetry::bump(w.counters().bad_requests);
      co_await write_error(sink, payload_too_large(lim.max_body_bytes), w.new_request_id());
    } else if (s->req.method.empty() || s->req.target.empty()) {
      telemetry::bump(w.counters().bad_requests);
      co_await write_error(sink, validation_error("Malformed HTTP/2 request"), w.new_request_id());
    } else if (c->entry_.refusal) {
      // Over a connection limit: this stream is answered and the connection winds down (GOAWAY
      // lets the streams already open finish, and the client opens a new connection to retry).
      co_await write_error(sink, *c->entry_.refusal, w.new_request_id());
      c->begin_goaway();
    } else if (s->streaming) {
      http2_body_stream<Stream> body(*c, s);
      s->req.body_stream = &body;
      co_await run_exchange(w, s->req, sink);
      s->req.body_stream = nullptr;
    } else {
      co_await run_exchange(w, s->req, sink);
    }
  }
  if (s->streaming) c->end_streamed_body(*s);
  c->exchange_done(s);
}

// NOLINTBEGIN(bugprone-use-after-move): clang-tidy 14 reads the coroutine's copies of its
// by-value parameters at the closing brace as uses after the moves below.
template <class Stream>
awaitable<void> serve(worker& w, Stream& stream, session_entry& entry, std::string remote,
                      std::string initial) {
  h2_connection<Stream> conn(w, stream, entry, std::move(remote));
  if (!conn.init()) {
    w.state().log->warn("conn {}: cannot create an HTTP/2 session", entry.id);
    co_return;
  }
  co_await conn.run(std::move(initial));
}
// NOLINTEND(bugprone-use-after-move)

}  // namespace

awaitable<void> serve_http2(worker& w, tcp_stream& stream, session_entry& entry, std::string remote,
                            std::string initial) {
  return serve(w, stream, entry, std::move(remote), std::move(initial));
}

awaitable<void> serve_http2(worker& w, beast::ssl_stream<tcp_stream>& stream, session_entry& entry,
                            std::string remote, std::string initial) {
  return serve(w, stream, entry, std::move(remote), std::move(initial));
}

}  // namespace bedrock_meter::proxy
