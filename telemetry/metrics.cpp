#include "telemetry/metrics.hpp"

#include <algorithm>

#include <array>
#include <charconv>
#include <map>
#include <mutex>
#include <span>
#include <sstream>
#include <unordered_map>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "accounting/ledger.hpp"

namespace bedrock_meter::telemetry {

namespace pm = prometheus;

namespace {

constexpr std::string_view other = "other";
constexpr std::string_view provider = "aws.bedrock";
// Separates label values in cache keys; a unit separator never appears in a sane label value,
// and if one did, the worst outcome is two tuples sharing a series.
constexpr char key_sep = '\x1f';

// OpenTelemetry GenAI semantic conventions, explicit bucket boundaries advice.
const std::vector<double> token_buckets = {
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864};
const std::vector<double> duration_buckets = {0.01, 0.02, 0.04, 0.08,  0.16,  0.32,  0.64,
                                              1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92};

enum token_type : std::size_t { input, output, cache_read, cache_write, token_type_count };
constexpr std::array<std::string_view, token_type_count> token_type_names = {
    "input", "output", "cache_read", "cache_write"};

struct label_spec {
  std::string name;
  bool open;  // open-ended value set: folded to "other" past the cap
};

/// A prometheus-cpp family with a bound on its series count (see the header). Lookups that miss
/// a recorder's cache come here and take the family's mutex; recorders keep what they got.
template <class T>
class capped_family {
 public:
  struct handle {
    T* metric = nullptr;  // null: dropped (the folded tuple did not fit either)
    bool folded = false;
  };

  capped_family(pm::Family<T>& family, std::string metric, std::vector<label_spec> labels,
                std::size_t cap, pm::Counter& folded, pm::Counter& dropped,
                const std::vector<double>* buckets = nullptr)
      : family_(family),
        metric_(std::move(metric)),
        labels_(std::move(labels)),
        cap_(std::max<std::size_t>(cap, 2)),
        reserve_(std::max<std::size_t>(cap_ / 100, 1)),
        folded_(folded),
        dropped_(dropped),
        buckets_(buckets) {}

  std::size_t arity() const noexcept { return labels_.size(); }

  handle resolve(std::span<const std::string_view> values) {
    std::string key = join(values);
    std::lock_guard lock(mu_);
    if (const auto it = series_.find(key); it != series_.end()) return {it->second, false};
    if (series_.size() < cap_ - reserve_) return {add(std::move(key), values), false};

    std::vector<std::string_view> folded(values.begin(), values.end());
    for (std::size_t i = 0; i < folded.size(); ++i)
      if (labels_[i].open && !folded[i].empty()) folded[i] = other;
    key = join(folded);
    if (const auto it = series_.find(key); it != series_.end()) return {it->second, true};
    if (series_.size() < cap_) return {add(std::move(key), folded), true};
    return {nullptr, true};
  }

  /// Called on every use of a folded handle, so the counts are per sample, not per tuple.
  void count_fold(const handle& h) noexcept {
    if (!h.folded) return;
    if (h.metric)
      folded_.Increment();
    else
      dropped_.Increment();
  }

  /// Resolves and counts the fold in one step (off the recorder path: restore, budgets).
  T* get(std::span<const std::string_view> values) {
    const handle h = resolve(values);
    count_fold(h);
    return h.metric;
  }

  void remove(std::span<const std::string_view> values) {
    const std::string key = join(values);
    std::lock_guard lock(mu_);
    const auto it = series_.find(key);
    if (it == series_.end()) return;
    family_.Remove(it->second);
    series_.erase(it);
  }

 private:
  static std::string join(std::span<const std::string_view> values) {
    std::string key;
    for (const auto v : values) {
      key += v;
      key += key_sep;
    }
    return key;
  }

  T* add(std::string key, std::span<const std::string_view> values) {
    pm::Labels labels;
    for (std::size_t i = 0; i < values.size(); ++i)
      if (!values[i].empty()) labels.emplace(labels_[i].name, std::string(values[i]));
    T* m = nullptr;
    if constexpr (std::is_same_v<T, pm::Histogram>)
      m = &family_.Add(labels, *buckets_);
    else
      m = &family_.Add(labels);
    series_.emplace(std::move(key), m);
    return m;
  }

  pm::Family<T>& family_;
  const std::string metric_;
  const std::vector<label_spec> labels_;
  const std::size_t cap_;
  const std::size_t reserve_;
  pm::Counter& folded_;
  pm::Counter& dropped_;
  const std::vector<double>* buckets_;
  std::mutex mu_;
  std::unordered_map<std::string, T*> series_;  // guarded by mu_
};

using counter_family = capped_family<pm::Counter>;
using gauge_family = capped_family<pm::Gauge>;
using histogram_family = capped_family<pm::Histogram>;

std::string_view tier_or_default(std::string_view tier) noexcept {
  return tier.empty() ? std::string_view("default") : tier;
}

bool contains(std::string_view haystack, std::string_view needle) noexcept {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace

std::optional<std::string_view> gen_ai_operation_name(std::string_view operation,
                                                      std::string_view model_label) noexcept {
  if (operation == "Converse" || operation == "ConverseStream") return "chat";
  if (operation == "InvokeModel" || operation == "InvokeModelWithResponseStream" ||
      operation == "InvokeModelWithBidirectionalStream") {
    // Titan / Cohere / Nova embedding model ids all name "embed"; the label is the bounded
    // model id, so "other" (an unknown model) falls back to chat.
    if (contains(model_label, "embed")) return "embeddings";
    return "chat";
  }
  return std::nullopt;
}

scrape_inputs scrape_inputs_from(const proxy_counters& counters, const accounting::ledger* l,
                                 std::string rate_table_version) {
  constexpr auto r = std::memory_order_relaxed;
  scrape_inputs in;
  in.inflight = counters.inflight.load(r);
  in.connections = counters.connections.load(r);
  counters.for_each([&](outcome_family f, std::string_view label, std::uint64_t v) {
    in.counters.push_back({f, label, v});
  });
  in.rate_table_version = std::move(rate_table_version);
  if (l) {
    const auto c = l->counters();
    in.ledger = scrape_inputs::ledger_snapshot{l->queue_depth(), c.committed, c.rejected + c.lost};
  }
  return in;
}

// ---------------------------------------------------------------------------------------------

struct metrics::impl {
  explicit impl(metrics_options o)
      : opt(std::move(o)),
        folded_family(pm::BuildCounter()
                          .Name("bedrock_metrics_folded_samples_total")
                          .Help("Samples whose open-ended labels were folded to \"other\" because "
                                "the metric reached its series cap")
                          .Register(registry)),
        dropped_family(pm::BuildCounter()
                           .Name("bedrock_metrics_dropped_samples_total")
                           .Help("Samples dropped because even their folded series did not fit "
                                 "under the metric's series cap")
                           .Register(registry)),
        requests(counter("bedrock_requests_total", "Requests by outcome (restored from the ledger)",
                         {{"operation", false},
                          {"model", true},
                          {"region", true},
                          {"team", true},
                          {"app", true},
                          {"code", false}})),
        tokens(counter("bedrock_tokens_total", "Tokens by type (restored from the ledger)",
                       {{"operation", false},
                        {"model", true},
                        {"region", true},
                        {"tier", true},
                        {"team", true},
                        {"app", true},
                        {"type", false}})),
        spend(counter("bedrock_spend_usd_total",
                      "Spend in USD (restored from the ledger; the exact amount is in the ledger)",
                      {{"model", true},
                       {"region", true},
                       {"tier", true},
                       {"team", true},
                       {"app", true},
                       {"type", false}})),
        net_spend(counter("bedrock_net_spend_usd_total",
                          "Spend in USD after the configured commitment (EDP) discount; equal to "
                          "bedrock_spend_usd_total outside every commitment term",
                          {{"model", true},
                           {"region", true},
                           {"tier", true},
                           {"team", true},
                           {"app", true},
                           {"type", false}})),
        unpriced(counter("bedrock_unpriced_requests_total",
                         "Requests with no matching price (never counted as $0)",
                         {{"model", true}, {"region", true}})),
        estimated(counter("bedrock_estimated_tokens_total",
                          "Tokens estimated because the stream ended without its usage",
                          {{"model", true}, {"type", false}})),
        budget_blocked(counter("bedrock_budget_blocked_requests_total",
                               "Requests refused by a blocking budget", {{"budget", true}})),
        token_usage(histogram("gen_ai_client_token_usage",
                              "Tokens used per GenAI operation (OpenTelemetry GenAI semconv)",
                              {{"gen_ai_operation_name", false},
                               {"gen_ai_request_model", true},
                               {"gen_ai_token_type", false}},
                              token_buckets)),
        duration(histogram("gen_ai_client_operation_duration_seconds",
                           "GenAI operation duration in seconds (OpenTelemetry GenAI semconv)",
                           {{"gen_ai_operation_name", false},
                            {"gen_ai_request_model", true},
                            {"error_type", true}},
                           duration_buckets)),
        first_chunk(histogram("gen_ai_client_operation_time_to_first_chunk_seconds",
                              "Time to the first response chunk of streaming GenAI operations",
                              {{"gen_ai_operation_name", false}, {"gen_ai_request_model", true}},
                              duration_buckets)),
        budget_limit(gauge("bedrock_budget_limit_usd", "Budget limit for the current period")),
        budget_spend(gauge("bedrock_budget_spend_usd", "Budget spend in the period to date")),
        budget_end(gauge("bedrock_budget_period_end_timestamp_seconds",
                         "Unix time the budget's current period ends")),
        budget_warning(gauge("bedrock_budget_warning_ratio",
                             "A configured warning threshold of the budget, as a fraction of its "
                             "limit (warn_at)",
                             {{"budget", true}, {"percent", false}})),
        commitment_year(gauge("bedrock_commitment_year_usd",
                              "The commitment of the current contract year (prorated when short)",
                              {{"commitment", true}})),
        commitment_counted(gauge("bedrock_commitment_counted_usd",
                                 "Net Bedrock spend counted toward the current contract year's "
                                 "commitment so far, plus configured other spend pro rata",
                                 {{"commitment", true}})),
        commitment_forecast(gauge("bedrock_commitment_forecast_usd",
                                  "What will count toward the current contract year by its end, "
                                  "at the year's run rate",
                                  {{"commitment", true}})),
        commitment_year_end(gauge("bedrock_commitment_year_end_timestamp_seconds",
                                  "Unix time the current contract year ends",
                                  {{"commitment", true}})),
        advice_savings(gauge("bedrock_advice_monthly_savings_usd",
                             "What each lever of the FinOps advisor would save per month, from "
                             "the traffic of its window (docs/finops.md)",
                             {{"lever", false}})),
        advice_spend(gauge("bedrock_advice_window_spend_usd",
                           "Spend in the window the advisor last analysed", {})),
        advice_last_run(gauge("bedrock_advice_last_run_timestamp_seconds",
                              "Unix time the advisor's last background run finished", {})),
        advice_duration(gauge("bedrock_advice_run_duration_seconds",
                              "How long the advisor's last background run took", {})) {
    pm::BuildGauge()
        .Name("bedrock_build_info")
        .Help("Build of the running proxy (always 1)")
        .Register(registry)
        .Add({{"version", opt.build_version}})
        .Set(1);
  }

  counter_family counter(const std::string& name, const std::string& help,
                         std::vector<label_spec> labels) {
    auto& fam = pm::BuildCounter().Name(name).Help(help).Register(registry);
    return counter_family(fam, name, std::move(labels), opt.max_series_per_family,
                          folded_family.Add({{"metric", name}}),
                          dropped_family.Add({{"metric", name}}));
  }

  histogram_family histogram(const std::string& name, const std::string& help,
                             std::vector<label_spec> labels, const std::vector<double>& buckets) {
    auto& fam = pm::BuildHistogram()
                    .Name(name)
                    .Help(help)
                    .Labels({{"gen_ai_provider_name", std::string(provider)}})
                    .Register(registry);
    return histogram_family(fam, name, std::move(labels), opt.max_series_per_family,
                            folded_family.Add({{"metric", name}}),
                            dropped_family.Add({{"metric", name}}), &buckets);
  }

  gauge_family gauge(const std::string& name, const std::string& help,
                     std::vector<label_spec> labels = {{"budget", true}}) {
    auto& fam = pm::BuildGauge().Name(name).Help(help).Register(registry);
    return gauge_family(fam, name, std::move(labels), opt.max_series_per_family,
                        folded_family.Add({{"metric", name}}),
                        dropped_family.Add({{"metric", name}}));
  }

  metrics_options opt;
  pm::Registry registry;
  pm::Family<pm::Counter>& folded_family;
  pm::Family<pm::Counter>& dropped_family;
  counter_family requests;
  counter_family tokens;
  counter_family spend;
  counter_family net_spend;
  counter_family unpriced;
  counter_family estimated;
  counter_family budget_blocked;
  histogram_family token_usage;
  histogram_family duration;
  histogram_family first_chunk;
  gauge_family budget_limit;
  gauge_family budget_spend;
  gauge_family budget_end;
  gauge_family budget_warning;
  gauge_family commitment_year;
  gauge_family commitment_counted;
  gauge_family commitment_forecast;
  gauge_family commitment_year_end;
  std::mutex commitments_mu;
  std::vector<std::string> commitments;  // names exported, guarded by commitments_mu
  gauge_family advice_savings;
  gauge_family advice_spend;
  gauge_family advice_last_run;
  gauge_family advice_duration;
  std::mutex warnings_mu;
  std::unordered_map<std::string, std::vector<int>> warnings;  // budget -> percents exported
};

// ---------------------------------------------------------------------------------------------

namespace {

template <class T>
struct slot {
  typename capped_family<T>::handle h;
  bool resolved = false;
};

/// Every series one label tuple can touch, resolved lazily (a tuple that never has cache
/// writes never creates a cache_write series).
struct series_bundle {
  slot<pm::Counter> requests;
  std::array<slot<pm::Counter>, token_type_count> tokens;
  std::array<slot<pm::Counter>, token_type_count> spend;
  std::array<slot<pm::Counter>, token_type_count> net_spend;
  slot<pm::Counter> unpriced;
  std::array<slot<pm::Counter>, token_type_count> estimated;
  std::array<slot<pm::Histogram>, 2> token_usage;  // input, output
  slot<pm::Histogram> duration;
  slot<pm::Histogram> first_chunk;
};

/// The handle in `s`, resolving it through the family on first use. `values` is only called
/// on that first use.
template <class T, class Values>
T* use(slot<T>& s, capped_family<T>& fam, Values&& values) {
  if (!s.resolved) {
    const auto v = values();
    s.h = fam.resolve(v);
    s.resolved = true;
  }
  fam.count_fold(s.h);
  return s.h.metric;
}

}  // namespace

namespace {

/// The label values of one settlement, as string views into it (and into `status_buf`).
struct record_labels {
  std::string_view operation, model, region, tier, team, app, code, error_type;

  record_labels(const metering::settlement& r, std::array<char, 12>& status_buf) noexcept
      : operation(r.operation),
        model(r.model_label),
        region(r.region),
        tier(tier_or_default(r.service_tier)),
        team(r.team),
        app(r.app) {
    const auto [end, ec] =
        std::to_chars(status_buf.data(), status_buf.data() + status_buf.size(), r.status);
    (void)ec;  // 12 chars always fit an unsigned
    code = std::string_view(status_buf.data(), static_cast<std::size_t>(end - status_buf.data()));
    // The proxy's failure kind when the upstream failed or broke off, else a failure's status.
    if (r.outcome == metering::request_outcome::upstream_error ||
        r.outcome == metering::request_outcome::upstream_cut ||
        r.outcome == metering::request_outcome::stream_error)
      error_type = metering::to_string(r.outcome);
    else if (r.status >= 400)
      error_type = code;
  }
};

}  // namespace

struct metrics::recorder::state {
  explicit state(metrics::impl& i) : m(i) {}
  metrics::impl& m;
  std::unordered_map<std::string, series_bundle> cache;
  std::unordered_map<std::string, slot<pm::Counter>> budgets;
  std::string key;  // scratch: keeps its capacity, so building a key does not allocate

  /// bedrock_requests/tokens/spend/unpriced/estimated for one settlement.
  void count_finops(series_bundle& b, const metering::settlement& r,
                    const record_labels& l) noexcept;
  /// The OpenTelemetry GenAI histograms for one settlement.
  void observe_gen_ai(series_bundle& b, const metering::settlement& r,
                      const record_labels& l) noexcept;
};

metrics::recorder::recorder(std::unique_ptr<state> s) : state_(std::move(s)) {}
metrics::recorder::~recorder() = default;

void metrics::recorder::record(const metering::settlement& r) noexcept {
  auto& st = *state_;
  std::array<char, 12> status_buf{};
  const record_labels l(r, status_buf);
  auto& key = st.key;
  key.clear();
  for (const auto v :
       {l.operation, l.model, l.region, l.tier, l.team, l.app, l.code, l.error_type}) {
    key += v;
    key += key_sep;
  }
  auto it = st.cache.find(key);
  if (it == st.cache.end()) {
    // A bounded memo, not a registry: starting afresh only costs re-resolving live tuples.
    if (st.cache.size() >= st.m.opt.recorder_cache_entries) st.cache.clear();
    it = st.cache.emplace(key, series_bundle{}).first;
  }
  st.count_finops(it->second, r, l);
  st.observe_gen_ai(it->second, r, l);
}

void metrics::recorder::state::count_finops(series_bundle& b, const metering::settlement& r,
                                            const record_labels& l) noexcept {
  if (auto* c = use(b.requests, m.requests, [&] {
        return std::array{l.operation, l.model, l.region, l.team, l.app, l.code};
      }))
    c->Increment();
  const bool estimated = r.usage_source == metering::usage_source::estimated;
  const std::array<std::uint64_t, token_type_count> counts = {
      r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens};
  const std::array<metering::pico_usd, token_type_count> costs = {
      r.input_cost, r.output_cost, r.cache_read_cost, r.cache_write_cost};
  for (std::size_t t = 0; t < token_type_count; ++t) {
    const auto type = token_type_names[t];
    if (counts[t] > 0) {
      if (auto* c = use(b.tokens[t], m.tokens, [&] {
            return std::array{l.operation, l.model, l.region, l.tier, l.team, l.app, type};
          }))
        c->Increment(static_cast<double>(counts[t]));
      if (estimated) {
        if (auto* c = use(b.estimated[t], m.estimated, [&] { return std::array{l.model, type}; }))
          c->Increment(static_cast<double>(counts[t]));
      }
    }
    if (costs[t] > 0) {
      const auto labels = [&] {
        return std::array{l.model, l.region, l.tier, l.team, l.app, type};
      };
      if (auto* c = use(b.spend[t], m.spend, labels))
        c->Increment(metering::to_usd_double(costs[t]));
      if (auto* c = use(b.net_spend[t], m.net_spend, labels))
        c->Increment(metering::to_usd_double(metering::net_of(costs[t], r.discount_ppm)));
    }
  }
  if (!r.priced) {
    if (auto* c = use(b.unpriced, m.unpriced, [&] { return std::array{l.model, l.region}; }))
      c->Increment();
  }
}

void metrics::recorder::state::observe_gen_ai(series_bundle& b, const metering::settlement& r,
                                              const record_labels& l) noexcept {
  const auto op_name = gen_ai_operation_name(l.operation, l.model);
  if (!op_name) return;
  if (r.usage_source != metering::usage_source::none) {
    // semconv: input token usage includes cached input (read and written).
    const double in =
        static_cast<double>(r.input_tokens + r.cache_read_tokens + r.cache_write_tokens);
    if (auto* h = use(b.token_usage[0], m.token_usage, [&] {
          return std::array{*op_name, l.model, std::string_view("input")};
        }))
      h->Observe(in);
    if (*op_name != "embeddings") {  // embeddings produce no output tokens
      if (auto* h = use(b.token_usage[1], m.token_usage, [&] {
            return std::array{*op_name, l.model, std::string_view("output")};
          }))
        h->Observe(static_cast<double>(r.output_tokens));
    }
  }
  if (auto* h = use(b.duration, m.duration, [&] {
        return std::array{*op_name, l.model, l.error_type};
      }))
    h->Observe(static_cast<double>(r.duration_us) / 1e6);
  if (r.streaming() && r.first_byte_us >= 0) {
    if (auto* h = use(b.first_chunk, m.first_chunk, [&] { return std::array{*op_name, l.model}; }))
      h->Observe(static_cast<double>(r.first_byte_us) / 1e6);
  }
}

void metrics::recorder::budget_blocked(std::string_view budget) noexcept {
  auto& st = *state_;
  auto& key = st.key;
  key.assign(budget);
  auto it = st.budgets.find(key);
  if (it == st.budgets.end()) {
    if (st.budgets.size() >= st.m.opt.recorder_cache_entries) st.budgets.clear();
    it = st.budgets.emplace(key, slot<pm::Counter>{}).first;
  }
  if (auto* c = use(it->second, st.m.budget_blocked, [&] { return std::array{budget}; }))
    c->Increment();
}

// ---------------------------------------------------------------------------------------------

metrics::metrics(metrics_options options) : impl_(std::make_unique<impl>(std::move(options))) {}
metrics::~metrics() = default;

std::unique_ptr<metrics::recorder> metrics::make_recorder() {
  return std::unique_ptr<recorder>(new recorder(std::make_unique<recorder::state>(*impl_)));
}

void metrics::restore(const std::vector<accounting::ledger_totals_row>& totals,
                      const std::vector<net_discount_row>& discounts) {
  auto& m = *impl_;
  // Spend rows are grouped finer in the ledger (by operation and status) than the spend series:
  // sum the exact pico amounts per series first, convert to USD once.
  using spend_key = std::array<std::string, 6>;
  std::map<spend_key, metering::money_total> spend;

  for (const auto& row : totals) {
    const std::string_view tier = tier_or_default(row.service_tier);
    const std::string code = std::to_string(row.status);
    if (row.requests > 0) {
      if (auto* c = m.requests.get(std::array<std::string_view, 6>{
              row.operation, row.model_label, row.region, row.team, row.app, code}))
        c->Increment(static_cast<double>(row.requests));
    }
    if (row.unpriced_requests > 0) {
      if (auto* c = m.unpriced.get(std::array<std::string_view, 2>{row.model_label, row.region}))
        c->Increment(static_cast<double>(row.unpriced_requests));
    }
    const std::array<std::uint64_t, token_type_count> counts = {
        row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_write_tokens};
    const std::array<std::uint64_t, token_type_count> estimated = {
        row.estimated_input_tokens, row.estimated_output_tokens, row.estimated_cache_read_tokens,
        row.estimated_cache_write_tokens};
    const std::array<metering::money_total, token_type_count> costs = {
        row.input_cost, row.output_cost, row.cache_read_cost, row.cache_write_cost};
    for (std::size_t t = 0; t < token_type_count; ++t) {
      const auto type = token_type_names[t];
      if (counts[t] > 0) {
        if (auto* c = m.tokens.get(std::array<std::string_view, 7>{
                row.operation, row.model_label, row.region, tier, row.team, row.app, type}))
          c->Increment(static_cast<double>(counts[t]));
      }
      if (estimated[t] > 0) {
        if (auto* c = m.estimated.get(std::array<std::string_view, 2>{row.model_label, type}))
          c->Increment(static_cast<double>(estimated[t]));
      }
      if (costs[t] > 0) {
        spend[spend_key{row.model_label, row.region, std::string(tier), row.team, row.app,
                        std::string(type)}] += costs[t];
      }
    }
  }
  std::map<spend_key, metering::money_total> discount;
  for (const auto& d : discounts) {
    const std::string tier(tier_or_default(d.service_tier));
    for (std::size_t t = 0; t < token_type_count; ++t) {
      if (d.discount[t] == 0) continue;
      discount[spend_key{d.model_label, d.region, tier, d.team, d.app,
                         std::string(token_type_names[t])}] += d.discount[t];
    }
  }
  for (const auto& [k, pico] : spend) {
    const std::array<std::string_view, 6> values = {k[0], k[1], k[2], k[3], k[4], k[5]};
    if (auto* c = m.spend.get(values)) c->Increment(metering::to_usd_double(pico));
    const auto d = discount.find(k);
    const metering::money_total net = d == discount.end() ? pico : pico - d->second;
    if (auto* c = m.net_spend.get(values)) c->Increment(metering::to_usd_double(net));
  }
}

void metrics::set_budget(std::string_view budget, double limit_usd, double spend_usd,
                         double period_end_unix_s) {
  auto& m = *impl_;
  const std::array<std::string_view, 1> v = {budget};
  if (auto* g = m.budget_limit.get(v)) g->Set(limit_usd);
  if (auto* g = m.budget_spend.get(v)) g->Set(spend_usd);
  if (auto* g = m.budget_end.get(v)) g->Set(period_end_unix_s);
}

void metrics::set_commitments(const std::vector<commitment_gauges>& all) {
  auto& m = *impl_;
  std::lock_guard lock(m.commitments_mu);
  for (const auto& name : m.commitments) {
    if (std::any_of(all.begin(), all.end(), [&](const auto& c) { return c.name == name; }))
      continue;
    const std::array<std::string_view, 1> v = {name};
    for (auto* f : {&m.commitment_year, &m.commitment_counted, &m.commitment_forecast,
                    &m.commitment_year_end})
      f->remove(v);
  }
  m.commitments.clear();
  for (const auto& c : all) {
    const std::array<std::string_view, 1> v = {c.name};
    if (auto* g = m.commitment_year.get(v)) g->Set(c.year_usd);
    if (auto* g = m.commitment_counted.get(v)) g->Set(c.counted_usd);
    if (auto* g = m.commitment_forecast.get(v)) g->Set(c.forecast_usd);
    if (auto* g = m.commitment_year_end.get(v)) g->Set(c.year_end_unix_s);
    m.commitments.push_back(c.name);
  }
}

void metrics::set_advice(const advice_gauges& a) {
  auto& m = *impl_;
  for (const auto& [lever, usd] : a.monthly_savings_usd) {
    if (auto* g = m.advice_savings.get(std::array<std::string_view, 1>{lever})) g->Set(usd);
  }
  const std::array<std::string_view, 0> none{};
  if (auto* g = m.advice_spend.get(none)) g->Set(a.window_spend_usd);
  if (auto* g = m.advice_last_run.get(none)) g->Set(a.finished_unix_s);
  if (auto* g = m.advice_duration.get(none)) g->Set(a.duration_s);
}

void metrics::set_budget_warnings(std::string_view budget, const std::vector<int>& percents) {
  auto& m = *impl_;
  std::lock_guard lock(m.warnings_mu);
  auto& had = m.warnings[std::string(budget)];
  for (int p : had) {
    if (std::find(percents.begin(), percents.end(), p) != percents.end()) continue;
    const std::string ps = std::to_string(p);
    m.budget_warning.remove(std::array<std::string_view, 2>{budget, ps});
  }
  for (int p : percents) {
    const std::string ps = std::to_string(p);
    if (auto* g = m.budget_warning.get(std::array<std::string_view, 2>{budget, ps}))
      g->Set(static_cast<double>(p) / 100.0);
  }
  had = percents;
}

void metrics::remove_budget(std::string_view budget) {
  auto& m = *impl_;
  const std::array<std::string_view, 1> v = {budget};
  m.budget_limit.remove(v);
  m.budget_spend.remove(v);
  m.budget_end.remove(v);
  set_budget_warnings(budget, {});
}

void metrics::budget_blocked(std::string_view budget) {
  if (auto* c = impl_->budget_blocked.get(std::array<std::string_view, 1>{budget})) c->Increment();
}

void metrics::declare_known_series(const std::vector<std::string>& blocking_budgets,
                                   const std::vector<std::string>& regions) {
  auto& m = *impl_;
  for (const auto& b : blocking_budgets)
    (void)m.budget_blocked.get(std::array<std::string_view, 1>{b});
  for (const auto& r : regions) (void)m.unpriced.get(std::array<std::string_view, 2>{"other", r});
  if (!regions.empty()) {
    for (const auto type : token_type_names)
      (void)m.estimated.get(std::array<std::string_view, 2>{"other", type});
  }
}

namespace {

pm::ClientMetric sample(double value, pm::MetricType type,
                        std::vector<pm::ClientMetric::Label> labels = {}) {
  pm::ClientMetric c;
  c.label = std::move(labels);
  if (type == pm::MetricType::Counter)
    c.counter.value = value;
  else
    c.gauge.value = value;
  return c;
}

pm::MetricFamily family(std::string name, std::string help, pm::MetricType type,
                        std::vector<pm::ClientMetric> samples) {
  pm::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  f.metric = std::move(samples);
  return f;
}

/// The families read from the proxy's atomics at scrape time: built fresh each scrape, so the
/// rate-table info series of an old version disappears as soon as the version changes.
void append_scraped(std::vector<pm::MetricFamily>& out, const scrape_inputs& in) {
  using mt = pm::MetricType;
  const auto d = [](auto v) { return static_cast<double>(v); };
  out.push_back(family("bedrock_inflight_requests", "Requests being served now", mt::Gauge,
                       {sample(d(in.inflight), mt::Gauge)}));
  out.push_back(family("bedrock_connections", "Open client connections", mt::Gauge,
                       {sample(d(in.connections), mt::Gauge)}));
  // The outcome counters, one family per run of counters that share one (they are adjacent).
  for (std::size_t i = 0; i < in.counters.size();) {
    const outcome_family f = in.counters[i].family;
    const family_info fi = info(f);
    std::vector<pm::ClientMetric> samples;
    for (; i < in.counters.size() && in.counters[i].family == f; ++i) {
      const auto& c = in.counters[i];
      if (fi.label.empty())
        samples.push_back(sample(d(c.value), mt::Counter));
      else
        samples.push_back(
            sample(d(c.value), mt::Counter, {{std::string(fi.label), std::string(c.label)}}));
    }
    out.push_back(
        family(std::string(fi.name), std::string(fi.help), mt::Counter, std::move(samples)));
  }
  if (!in.rate_table_version.empty())
    out.push_back(family("bedrock_rate_table_info", "The rate table in use (always 1)", mt::Gauge,
                         {sample(1, mt::Gauge, {{"version", in.rate_table_version}})}));
  if (in.ledger) {
    out.push_back(family("bedrock_ledger_queue_depth", "Ledger records not yet committed",
                         mt::Gauge, {sample(d(in.ledger->queue_depth), mt::Gauge)}));
    out.push_back(family("bedrock_ledger_records_total", "Ledger records by result", mt::Counter,
                         {sample(d(in.ledger->committed), mt::Counter, {{"result", "committed"}}),
                          sample(d(in.ledger->failed), mt::Counter, {{"result", "failed"}})}));
  }
  if (in.fleet) {
    const auto& f = *in.fleet;
    out.push_back(family("bedrock_ledger_spool_rows",
                         "Rows in the local journal not yet shipped to the fleet's PostgreSQL "
                         "ledger",
                         mt::Gauge, {sample(d(f.spool_rows), mt::Gauge)}));
    out.push_back(family("bedrock_ledger_spool_max_rows",
                         "ledger.postgres.spool_max_rows: beyond it new requests are refused",
                         mt::Gauge, {sample(d(f.spool_max_rows), mt::Gauge)}));
    out.push_back(family("bedrock_ledger_replay_lag_seconds",
                         "Age of the oldest row not yet shipped to PostgreSQL (0 when none)",
                         mt::Gauge, {sample(f.lag_seconds, mt::Gauge)}));
    out.push_back(family("bedrock_ledger_shipped_rows_total",
                         "Rows this process shipped to the fleet's PostgreSQL ledger", mt::Counter,
                         {sample(d(f.shipped), mt::Counter)}));
    out.push_back(family("bedrock_ledger_ship_failures_total",
                         "Failed connections and batches to the fleet's PostgreSQL ledger (each "
                         "retried)",
                         mt::Counter, {sample(d(f.failures), mt::Counter)}));
    out.push_back(family("bedrock_ledger_postgres_up",
                         "1 while the shipper is connected to PostgreSQL", mt::Gauge,
                         {sample(f.connected ? 1 : 0, mt::Gauge)}));
  }
}

}  // namespace

std::string metrics::serialize(const scrape_inputs& in) const {
  auto families = impl_->registry.Collect();
  append_scraped(families, in);
  std::ostringstream out;
  pm::TextSerializer().Serialize(out, families);
  return std::move(out).str();
}

}  // namespace bedrock_meter::telemetry
