"""The metrics contract (docs/metrics.md): every metric
bedrock-meter exposes, as Prometheus names, with its type and labels. The dashboard and rule tests
check every expression against it, so a typo in a metric or label name fails a test instead of
drawing an empty panel. Scrape-time labels (job, instance) are allowed on every metric."""

# name -> (type, labels)
METRICS = {
    "bedrock_requests_total": ("counter", {"operation", "model", "region", "team", "app", "code"}),
    "bedrock_tokens_total": ("counter", {"operation", "model", "region", "tier", "team", "app", "type"}),
    "bedrock_spend_usd_total": ("counter", {"model", "region", "tier", "team", "app", "type"}),
    "bedrock_net_spend_usd_total": ("counter", {"model", "region", "tier", "team", "app", "type"}),
    "bedrock_unpriced_requests_total": ("counter", {"model", "region"}),
    "bedrock_estimated_tokens_total": ("counter", {"model", "type"}),
    "gen_ai_client_token_usage": ("histogram", {"gen_ai_operation_name", "gen_ai_provider_name",
                                                "gen_ai_request_model", "gen_ai_token_type"}),
    "gen_ai_client_operation_duration_seconds": ("histogram", {
        "gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"}),
    "gen_ai_client_operation_time_to_first_chunk_seconds": ("histogram", {
        "gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"}),
    "bedrock_budget_limit_usd": ("gauge", {"budget"}),
    "bedrock_budget_spend_usd": ("gauge", {"budget"}),
    "bedrock_budget_period_end_timestamp_seconds": ("gauge", {"budget"}),
    "bedrock_budget_blocked_requests_total": ("counter", {"budget"}),
    "bedrock_budget_warning_ratio": ("gauge", {"budget", "percent"}),
    "bedrock_budget_store_errors_total": ("counter", {"result"}),
    "bedrock_rate_table_info": ("gauge", {"version"}),
    "bedrock_rate_table_reloads_total": ("counter", {"result"}),
    "bedrock_inflight_requests": ("gauge", set()),
    "bedrock_upstream_errors_total": ("counter", {"kind"}),
    "bedrock_client_aborts_total": ("counter", set()),
    "bedrock_ledger_queue_depth": ("gauge", set()),
    "bedrock_ledger_spool_rows": ("gauge", set()),
    "bedrock_ledger_spool_max_rows": ("gauge", set()),
    "bedrock_ledger_replay_lag_seconds": ("gauge", set()),
    "bedrock_ledger_shipped_rows_total": ("counter", set()),
    "bedrock_ledger_ship_failures_total": ("counter", set()),
    "bedrock_ledger_postgres_up": ("gauge", set()),
    "bedrock_ledger_records_total": ("counter", {"result"}),
    "bedrock_build_info": ("gauge", {"version"}),
    # Beyond the core contract, exposed by the metrics adapter (telemetry/metrics.hpp).
    "bedrock_connections": ("gauge", set()),
    "bedrock_proxy_events_total": ("counter", {"event"}),
    "bedrock_http2_defence_trips_total": ("counter", {"defence"}),
    "bedrock_metrics_folded_samples_total": ("counter", {"metric"}),
    "bedrock_metrics_dropped_samples_total": ("counter", {"metric"}),
    # The FinOps advisor's background run (app/advice_refresh.cpp); present once a run finished.
    "bedrock_advice_monthly_savings_usd": ("gauge", {"lever"}),
    "bedrock_advice_window_spend_usd": ("gauge", set()),
    "bedrock_commitment_year_usd": ("gauge", {"commitment"}),
    "bedrock_commitment_counted_usd": ("gauge", {"commitment"}),
    "bedrock_commitment_forecast_usd": ("gauge", {"commitment"}),
    "bedrock_commitment_year_end_timestamp_seconds": ("gauge", {"commitment"}),
    "bedrock_advice_last_run_timestamp_seconds": ("gauge", set()),
    "bedrock_advice_run_duration_seconds": ("gauge", set()),
}

# Closed label value sets (the rest are bounded by config or the rate table).
LABEL_VALUES = {
    ("bedrock_tokens_total", "type"): {"input", "output", "cache_read", "cache_write"},
    ("bedrock_spend_usd_total", "type"): {"input", "output", "cache_read", "cache_write"},
    ("bedrock_net_spend_usd_total", "type"): {"input", "output", "cache_read", "cache_write"},
    ("gen_ai_client_token_usage", "gen_ai_token_type"): {"input", "output"},
    ("bedrock_rate_table_reloads_total", "result"): {"success", "failure"},
    ("bedrock_upstream_errors_total", "kind"): {"resolve", "connect", "tls", "timeout", "reset", "protocol"},
    ("bedrock_ledger_records_total", "result"): {"committed", "failed"},
    ("bedrock_budget_store_errors_total", "result"): {"fail_open", "fail_closed", "settle"},
    ("bedrock_http2_defence_trips_total", "defence"): {
        "rapid_reset", "settings_flood", "ping_flood", "empty_frame_flood", "ack_flood",
        "header_list_size", "stream_timeout"},
    ("bedrock_proxy_events_total", "event"): {
        "auth_failure", "unknown_route", "bad_request", "timeout", "connection_refused",
        "connection_refused_per_client", "stream_decode_error", "estimated_request", "drain", "drain_refused",
        "ledger_append_failure", "ledger_spool_full", "model_denied"},
    # Every lever is always exported (0 when it found nothing): app/advice_refresh.cpp lever_names.
    ("bedrock_advice_monthly_savings_usd", "lever"): {
        "prompt_caching", "output_cap", "prompt_trimming", "model_substitution", "batch",
        "global_profile", "flex_tier", "priority_tier", "buying_mode"},
}

SCRAPE_LABELS = {"job", "instance"}
JOB = "bedrock-meter"

# Series Prometheus itself makes, which dashboards and alerts may read.
PROMETHEUS_SERIES = {
    "up": {"job", "instance"},
    "ALERTS": {"alertname", "alertstate", "severity", "budget", "percent", "model", "region"},
}


def series_labels():
    """Every selectable series name -> the labels it may carry (histograms expand to their
    _bucket/_sum/_count series; _bucket adds le)."""
    out = {}
    for name, (kind, labels) in METRICS.items():
        labels = labels | SCRAPE_LABELS
        if kind == "histogram":
            out[name + "_bucket"] = labels | {"le"}
            out[name + "_sum"] = labels
            out[name + "_count"] = labels
        else:
            out[name] = labels
    for name, labels in PROMETHEUS_SERIES.items():
        out[name] = labels
    return out
