#pragma once
/// The proxy's outcome counters, declared once.
///
/// Every outcome of the request path that is not a per-request series (those are recorded from
/// the settlement by `metrics::recorder`) has a counter here. Each line of
/// BEDROCK_METER_COUNTERS names the field the proxy bumps and the Prometheus family and label
/// value it is exported as, so a counter cannot be added without being exported, nor exported
/// under a name that drifts from its field (the pattern of Envoy's `ALL_*_STATS` macros).
///
/// Thread safety: every field is a relaxed atomic; any thread may bump or read at any time.
#include <atomic>
#include <cstdint>
#include <string_view>

namespace bedrock_meter::telemetry {

/// The families the counters are exported in (their metric and label names: `family_info`).
enum class outcome_family : std::uint8_t {
  client_aborts,        ///< bedrock_client_aborts_total
  rate_table_reloads,   ///< bedrock_rate_table_reloads_total{result}
  proxy_events,         ///< bedrock_proxy_events_total{event}
  upstream_errors,      ///< bedrock_upstream_errors_total{kind}
  budget_store_errors,  ///< bedrock_budget_store_errors_total{result}
  http2_defence_trips,  ///< bedrock_http2_defence_trips_total{defence}
};

struct family_info {
  std::string_view name;
  std::string_view help;
  std::string_view label;  ///< empty: one series without labels
};

/// Metric name, help text and label name of a family.
constexpr family_info info(outcome_family f) noexcept {
  switch (f) {
    case outcome_family::client_aborts:
      return {"bedrock_client_aborts_total",
              "Requests whose client went away before the answer ended", ""};
    case outcome_family::rate_table_reloads:
      return {"bedrock_rate_table_reloads_total", "Rate-table reloads by result", "result"};
    case outcome_family::proxy_events:
      return {"bedrock_proxy_events_total", "Other request outcomes, by event", "event"};
    case outcome_family::upstream_errors:
      return {"bedrock_upstream_errors_total", "Failures reaching or reading Bedrock, by kind",
              "kind"};
    case outcome_family::budget_store_errors:
      return {"bedrock_budget_store_errors_total",
              "Shared budget store (Redis) failures: requests admitted (fail_open) or refused "
              "(fail_closed) without it, and settlements it missed",
              "result"};
    case outcome_family::http2_defence_trips:
      return {"bedrock_http2_defence_trips_total", "HTTP/2 defences that tripped, by defence",
              "defence"};
  }
  return {};
}

// X(field, family, label value). docs/metrics.md describes each exported series.
#define BEDROCK_METER_COUNTERS(X)                                                               \
  X(client_aborts, client_aborts, "")                                                           \
  X(rate_table_reloads_ok, rate_table_reloads, "success")                                       \
  X(rate_table_reloads_failed, rate_table_reloads, "failure")                                   \
  X(auth_failures, proxy_events, "auth_failure")             /* signature, key, skew */         \
  X(unknown_routes, proxy_events, "unknown_route")           /* not a Runtime operation */      \
  X(bad_requests, proxy_events, "bad_request")               /* malformed HTTP, over limits */  \
  X(timeouts, proxy_events, "timeout")                       /* client header/body/idle */      \
  X(connections_refused, proxy_events, "connection_refused") /* over max_connections */         \
  X(client_connections_refused, proxy_events,                                                   \
    "connection_refused_per_client") /* over max_connections_per_client */                      \
  X(stream_decode_errors, proxy_events, "stream_decode_error")                                  \
  X(estimated_requests, proxy_events, "estimated_request") /* stream ended without usage */     \
  X(drains, proxy_events, "drain")                         /* client gone: read on for usage */ \
  X(drains_refused, proxy_events, "drain_refused")         /* over max_concurrent_drains */     \
  X(ledger_append_failures, proxy_events, "ledger_append_failure")                              \
  X(ledger_spool_refusals, proxy_events, "ledger_spool_full") /* fleet ledger unreachable */    \
  X(model_denied, proxy_events, "model_denied")               /* identity's model allow-list */ \
  X(upstream_resolve, upstream_errors, "resolve")                                               \
  X(upstream_connect, upstream_errors, "connect")                                               \
  X(upstream_tls_handshake, upstream_errors, "tls")                                             \
  X(upstream_timeout, upstream_errors, "timeout")                                               \
  X(upstream_reset, upstream_errors, "reset")                                                   \
  X(upstream_protocol, upstream_errors, "protocol")                                             \
  X(budget_store_fail_open, budget_store_errors, "fail_open")     /* admitted without it */     \
  X(budget_store_fail_closed, budget_store_errors, "fail_closed") /* refused without it */      \
  X(budget_store_settle_errors, budget_store_errors, "settle")    /* settlements it missed */   \
  X(h2_rapid_resets, http2_defence_trips, "rapid_reset")                                        \
  X(h2_settings_floods, http2_defence_trips, "settings_flood")                                  \
  X(h2_ping_floods, http2_defence_trips, "ping_flood")                                          \
  X(h2_empty_frame_floods, http2_defence_trips, "empty_frame_flood")                            \
  X(h2_ack_floods, http2_defence_trips, "ack_flood")                                            \
  X(h2_header_lists_refused, http2_defence_trips, "header_list_size")                           \
  X(h2_stream_timeouts, http2_defence_trips, "stream_timeout")

/// The counters and the three gauges of the request path.
struct proxy_counters {
#define BEDROCK_METER_COUNTER_FIELD(field, family, value) std::atomic<std::uint64_t> field{0};
  BEDROCK_METER_COUNTERS(BEDROCK_METER_COUNTER_FIELD)
#undef BEDROCK_METER_COUNTER_FIELD

  std::atomic<std::int64_t> inflight{0};     ///< bedrock_inflight_requests
  std::atomic<std::int64_t> connections{0};  ///< bedrock_connections
  /// Streams read on after their client left (not exported: it caps max_concurrent_drains).
  std::atomic<std::int64_t> draining{0};
  /// Connections over a connection limit being answered before they close (not exported: it
  /// caps how many refusals are answered at once).
  std::atomic<std::int64_t> refusing{0};

  /// Calls `f(outcome_family, std::string_view label_value, std::uint64_t value)` for every
  /// counter, in declaration order (so the members of a family are adjacent).
  template <class F>
  void for_each(F&& f) const {
#define BEDROCK_METER_COUNTER_VISIT(field, family, value) \
  f(outcome_family::family, std::string_view(value), field.load(std::memory_order_relaxed));
    BEDROCK_METER_COUNTERS(BEDROCK_METER_COUNTER_VISIT)
#undef BEDROCK_METER_COUNTER_VISIT
  }
};

/// `c += n`, relaxed: the counters order nothing.
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace bedrock_meter::telemetry
