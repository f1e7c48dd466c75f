#include "proxy/bidi.hpp"

#include <optional>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <spdlog/spdlog.h>

#include "accounting/inflight_journal.hpp"
#include "aws/event_signing.hpp"
#include "metering/event_stream.hpp"
#include "proxy/forward.hpp"
#include "proxy/headers.hpp"
#include "proxy/http2_client.hpp"

namespace bedrock_meter::proxy {

using namespace io;

namespace {

using detail::step;

/// Both directions of one bidirectional stream. Lives in forward_bidirectional's frame; the input
/// pump (a coroutine of its own) is always waited for before it goes.
class bidi_relay {
 public:
  bidi_relay(exchange_context& ctx, response_sink& out, std::shared_ptr<h2_upstream> up)
      : ctx_(ctx),
        out_(out),
        up_(std::move(up)),
        upstream_chain_(ctx.upstream_creds->secret_access_key, ctx.target->region,
                        ctx.upstream_signature),
        pump_done_(ctx.w.get_executor()) {
    if (ctx.client_key != nullptr)
      client_chain_.emplace(ctx.client_key->secret_access_key, ctx.client_region,
                            ctx.client_signature);
  }

  awaitable<void> run() {
    pump_running_ = true;
    net::co_spawn(ctx_.w.get_executor(), pump(this), net::detached);
    const auto head_deadline =
        steady_clock::now() + step(ctx_.deadline, ctx_.cfg.upstream.first_byte_timeout);
    const error_code hec = co_await up_->read_head(head_deadline);
    if (hec) {
      co_await stop_pump();
      co_await no_answer(hec);
      co_return;
    }
    const bool client_alive = co_await answer_head();
    co_await relay_answer(client_alive);
  }

 private:
  static awaitable<void> pump(bidi_relay* self) {
    co_await self->pump_input();
    self->pump_running_ = false;
    self->pump_done_.cancel();
  }

  /// Client to Bedrock: reads the input event stream as it arrives, checks each event's
  /// signature (SigV4 callers), re-signs it with the proxy's chain and writes it upstream.
  awaitable<void> pump_input() {
    auto& body = *ctx_.req.body_stream;
    const auto& lim = ctx_.cfg.limits;
    metering::event_stream_decoder decoder(static_cast<std::uint32_t>(
        std::min<std::uint64_t>(lim.max_body_bytes + 1024, metering::max_event_frame_bytes)));
    std::string chunk, signed_events, problem;
    for (;;) {
      const auto ec = co_await body.read(
          chunk, std::min(ctx_.deadline, steady_clock::now() + lim.idle_timeout));
      if (ec == net::error::operation_aborted) co_return;  // the answer ended first
      if (ec == net::error::timed_out) {
        input_failed("No input event arrived for " + std::to_string(lim.idle_timeout.count()) +
                     " ms (limits.idle_timeout); the session was ended.");
        co_return;
      }
      if (ec || chunk.empty()) {
        // The input ended (END_STREAM), or the client reset its stream or left: either way
        // Bedrock is told the input is over, so it finishes the session and sends its final
        // usage event, which the answer loop reads (and drains, for a client that left).
        up_->end();
        co_return;
      }
      ctx_.bytes_in += chunk.size();
      signed_events.clear();
      decoder.feed(chunk, [&](const metering::event_message& m) {
        if (problem.empty()) problem = relay_event(m, signed_events);
      });
      if (problem.empty() && decoder.error() != metering::event_stream_error::none)
        problem = "The input event stream is malformed (" +
                  std::string(metering::to_string(decoder.error())) + ").";
      if (!problem.empty()) {
        input_failed(std::move(problem));
        co_return;
      }
      if (signed_events.empty()) continue;
      const auto wec =
          co_await up_->write(signed_events, steady_clock::now() + ctx_.cfg.upstream.idle_timeout);
      if (wec == net::error::timed_out) up_->cancel();  // Bedrock stopped taking input
      if (wec) co_return;                               // the answer loop sees the stream end
    }
  }

  /// One input event: its signature checked (SigV4 callers), then re-signed onto `out`. Returns
  /// what is wrong with it, or nothing.
  std::string relay_event(const metering::event_message& m, std::string& out) {
    ++events_;
    const auto envelope = aws::sigv4::read_signed_event(m.headers, m.payload);
    std::string_view event = m.frame;
    if (client_chain_) {
      if (!envelope)
        return "Input event " + std::to_string(events_) +
               " is not signed: a SigV4 caller's events need :date and :chunk-signature "
               "headers.";
      if (!client_chain_->verify(*envelope))
        return "The signature of input event " + std::to_string(events_) +
               " does not match (each event's :chunk-signature chains from the previous one's).";
    }
    if (envelope) event = envelope->payload;  // bearer callers may send signed events too
    if (event.size() > ctx_.cfg.limits.max_body_bytes)
      return "Input event " + std::to_string(events_) + " is " + std::to_string(event.size()) +
             " bytes, over the proxy's limit of " + std::to_string(ctx_.cfg.limits.max_body_bytes) +
             " (limits.max_body_bytes).";
    upstream_chain_.sign(out, event, std::chrono::system_clock::now());
    return {};
  }

  /// The client's input cannot go on: Bedrock's stream is abandoned, and the client is told why.
  void input_failed(std::string message) {
    telemetry::bump(ctx_.w.counters().bad_requests);
    ctx_.w.state().log->info("request {}: input event stream refused: {}", ctx_.request_id,
                             message);
    input_error_ = std::move(message);
    up_->cancel();
  }

  awaitable<void> stop_pump() {
    ctx_.req.body_stream->cancel();
    up_->close();
    while (pump_running_) {
      pump_done_.expires_at(steady_timer::time_point::max());
      co_await pump_done_.async_wait(use_ec);
    }
  }

  /// Bedrock's answer never started.
  awaitable<void> no_answer(const error_code& ec) {
    if (input_error_) {
      const refusal r{aws::validation_error(*input_error_),
                      metering::request_outcome::stream_error};
      co_await refuse(ctx_, out_, r);
      co_return;
    }
    const auto failure =
        ec == net::error::timed_out ? upstream_failure::timeout : upstream_failure::reset;
    // Bedrock had the request (and whatever input it took) and bills it: estimated at settlement.
    if (failure == upstream_failure::timeout) ctx_.abandoned_at_first_byte = true;
    co_await detail::upstream_failed(ctx_, out_, failure, ec, false);
  }

  awaitable<bool> answer_head() {
    ctx_.first_byte = steady_clock::now();
    ctx_.status = up_->status();
    aws::sigv4::header_list headers;
    headers.reserve(up_->headers().size());
    for (const auto& [k, v] : up_->headers()) {
      if (!forward_response_header(k)) continue;
      headers.emplace_back(k, v);
      if (iequals(k, "x-amzn-requestid")) ctx_.request_id = v;
    }
    if (auto* j = ctx_.w.state().sinks.journal)
      j->answered(ctx_.journal_slot, ctx_.status, ctx_.request_id);
    const auto& all = up_->headers();
    ctx_.meter->on_head(ctx_.status, [&all](std::string_view name) -> std::string_view {
      for (const auto& [k, v] : all)
        if (k == name) return v;  // HTTP/2 header names are lowercase
      return {};
    });
    const std::optional<std::uint64_t> unknown_length;  // named: see detail::upstream_failed
    const error_code ec = co_await out_.write_head(ctx_.status, headers, unknown_length);
    if (ec) co_return false;
    ctx_.result.response_started = true;
    co_return true;
  }

  /// Bedrock to client, until the answer ends, then the outcome.
  awaitable<void> relay_answer(bool client_alive) {
    detail::relay_result r;
    detail::drain draining(ctx_);
    bool complete = false;
    bool reading = client_alive || draining.start();
    if (!client_alive) up_->end();
    std::string chunk;
    while (reading) {
      const auto until =
          client_alive ? ctx_.deadline : std::min(ctx_.deadline, draining.deadline());
      const auto ec = co_await up_->read(
          chunk, steady_clock::now() + step(until, ctx_.cfg.upstream.idle_timeout));
      if (!chunk.empty()) {
        ctx_.meter->on_body(chunk);
        journal_progress(ctx_);
        if (client_alive) {
          const error_code wec = co_await out_.write_body(chunk);
          if (wec) {
            client_alive = false;
            up_->end();  // the session ends; its final usage event still comes
            if (!draining.start()) break;
          } else {
            ctx_.bytes_out += chunk.size();
          }
        }
      }
      if (ec) {
        if (!input_error_) {
          r.failure =
              ec == net::error::timed_out ? upstream_failure::timeout : upstream_failure::reset;
          r.ec = ec;
        }
        break;
      }
      if (chunk.empty()) {
        complete = true;
        break;
      }
      if (!client_alive && ctx_.meter->usage_seen()) break;  // the final count is in hand
    }
    if (input_error_ && client_alive) {
      // Told as Bedrock tells a failed stream: an exception event ends the answer (the SDK
      // raises it as ValidationException), and the ledger records a stream_error.
      boost::json::object body;
      body["message"] = *input_error_;
      const auto frame =
          metering::encode_exception("validationException", boost::json::serialize(body));
      ctx_.meter->on_body(frame);
      const error_code fec = co_await out_.write_body(frame);
      if (fec)
        client_alive = false;
      else
        ctx_.bytes_out += frame.size();
      complete = true;
    }
    co_await stop_pump();
    co_await detail::end_relay(ctx_, out_, complete, false, client_alive, r);
    if (r.failure != upstream_failure::none)  // broke off after the answer started
      telemetry::bump(error_counter(ctx_.w.counters(), r.failure));
  }

  exchange_context& ctx_;
  response_sink& out_;
  std::shared_ptr<h2_upstream> up_;
  std::optional<aws::sigv4::event_chain> client_chain_;  // SigV4 callers' events are verified
  aws::sigv4::event_chain upstream_chain_;
  steady_timer pump_done_;
  bool pump_running_ = false;
  std::uint64_t events_ = 0;  // input events seen, for messages
  std::optional<std::string> input_error_;
};

}  // namespace

awaitable<void> forward_bidirectional(exchange_context& ctx, response_sink& out) {
  ctx.meter.emplace(ctx.route->op, ctx.route->model_id);
  journal_start(ctx);
  auto acq = co_await ctx.w.pool().connect_h2(*ctx.target,
                                              step(ctx.deadline, ctx.cfg.upstream.connect_timeout));
  if (!acq.conn) {
    co_await detail::upstream_failed(ctx, out, acq.failure, acq.ec, true);
    co_return;
  }
  auto up = std::make_shared<h2_upstream>(std::move(acq.conn));
  if (!up->start(ctx.req.method, ctx.req.target, *ctx.target, ctx.upstream_headers)) {
    up->close();
    const error_code ec = net::error::no_memory;
    co_await detail::upstream_failed(ctx, out, upstream_failure::protocol, ec, true);
    co_return;
  }
  bidi_relay relay(ctx, out, std::move(up));
  co_await relay.run();
}

}  // namespace bedrock_meter::proxy
