#pragma once
// One quote's inputs, read the same way by `bedrock-meter price` (--cache-read) and the console's
// GET /api/quote (cache_read): model, region, token counts, tier, latency and date.
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

#include "metering/rate_table.hpp"

namespace bedrock_meter::app {

struct quote_input {
  std::string model;
  std::string region = "us-east-1";
  metering::token_usage usage;
  metering::service_tier tier = metering::service_tier::standard;
  metering::latency_mode latency = metering::latency_mode::standard;
  std::chrono::system_clock::time_point at;

  /// The pricer's query; it points into this object, so keep the object alive and in place.
  [[nodiscard]] metering::price_query query(
      const std::vector<metering::model_mapping>* mappings) const;
};

/// Reads a quote from named parameters: `get(name)` returns the value or "" for model, region,
/// input, output, cache_read, cache_write (the 5-minute part), cache_write_1h, tier, latency and
/// at. The error names the parameter as `get` spells it and what it takes.
boost::system::result<quote_input, std::string> read_quote(
    const std::function<std::string(std::string_view)>& get);

}  // namespace bedrock_meter::app
