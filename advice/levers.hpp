#pragma once
/// The levers: prompt caching, output caps, prompt trimming, model substitution, batch, global
/// profiles, flex and priority tiers; each in dollars with its evidence and caveat. Internal to
/// bm_advice (the analyzer feeds it).
#include <cstddef>

#include "advice/advice.hpp"

namespace bedrock_meter::advice {

class lever_analysis {
 public:
  explicit lever_analysis(const options& opts);
  ~lever_analysis();
  lever_analysis(const lever_analysis&) = delete;
  lever_analysis& operator=(const lever_analysis&) = delete;

  /// A row inside the window (the analyzer filters), in time order.
  void add(const request_row& row);
  /// Appends to `r.levers` (the analyzer sorts them); may add notes.
  void finish(report& r);
  /// Prefix hashes held by the prompt-cache simulation right now (for tests: memory is bounded
  /// by the prefixes live within the longest TTL).
  std::size_t live_prefixes() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace bedrock_meter::advice
