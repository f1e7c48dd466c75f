#pragma once
/// Buying mode per model and region: on demand versus Provisioned Throughput (each term) and the
/// Reserved tier, from the per-minute token load; and the utilisation of ARNs already mapped as
/// provisioned. Internal to bm_advice (the analyzer feeds it).
#include "advice/advice.hpp"

namespace bedrock_meter::advice {

class buying_mode_analysis {
 public:
  explicit buying_mode_analysis(const options& opts);
  ~buying_mode_analysis();
  buying_mode_analysis(const buying_mode_analysis&) = delete;
  buying_mode_analysis& operator=(const buying_mode_analysis&) = delete;

  /// A row inside the window (the analyzer filters), in time order.
  void add(const request_row& row);
  /// Fills `r.buying_mode` (largest on-demand spend first) and `r.provisioned`; may add notes.
  void finish(report& r);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace bedrock_meter::advice
