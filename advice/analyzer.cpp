#include "advice/advice.hpp"

#include <algorithm>
#include <utility>

#include "advice/buying_mode.hpp"
#include "advice/levers.hpp"

namespace bedrock_meter::advice {

/// `opts` is declared first: both analyses keep a reference to it.
struct analyzer::impl {
  options opts;
  buying_mode_analysis buying;
  lever_analysis levers;
  std::uint64_t requests = 0;
  money_total spend = 0;

  explicit impl(options o) : opts(std::move(o)), buying(opts), levers(opts) {}
};

analyzer::analyzer(options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}
analyzer::~analyzer() = default;

void analyzer::add(const request_row& row) {
  impl& s = *impl_;
  if (row.time_ms < s.opts.since_ms || row.time_ms >= s.opts.until_ms) return;
  ++s.requests;
  s.spend += row.total_cost;
  s.buying.add(row);
  s.levers.add(row);
}

report analyzer::finish() {
  impl& s = *impl_;
  report r;
  r.since_ms = s.opts.since_ms;
  r.until_ms = s.opts.until_ms;
  r.requests = s.requests;
  r.spend = s.spend;
  if (s.opts.rates != nullptr) r.rate_table_version = s.opts.rates->version;
  s.buying.finish(r);
  s.levers.finish(r);
  std::stable_sort(r.buying_mode.begin(), r.buying_mode.end(),
                   [](const auto& a, const auto& b) { return a.on_demand > b.on_demand; });
  const money_total floor = s.opts.min_monthly_savings;
  std::erase_if(r.levers, [floor](const lever& l) { return l.monthly_savings < floor; });
  std::stable_sort(r.levers.begin(), r.levers.end(),
                   [](const lever& a, const lever& b) { return a.savings > b.savings; });
  return r;
}

}  // namespace bedrock_meter::advice
