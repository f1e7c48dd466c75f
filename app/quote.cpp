#include "app/quote.hpp"

#include "app/args.hpp"

namespace bedrock_meter::app {

namespace {

boost::system::result<quote_input, std::string> failed(std::string why) {
  return {boost::system::in_place_error, std::move(why)};
}

}  // namespace

metering::price_query quote_input::query(
    const std::vector<metering::model_mapping>* mappings) const {
  metering::price_query q;
  q.model_id = model;
  q.region = region;
  q.tier = tier;
  q.latency = latency;
  q.at = at;
  q.mappings = mappings;
  return q;
}

boost::system::result<quote_input, std::string> read_quote(
    const std::function<std::string(std::string_view)>& get) {
  quote_input in;
  in.model = get("model");
  if (in.model.empty()) return failed(std::string("model: required"));
  if (in.model.size() > 256) return failed(std::string("model: at most 256 characters"));
  if (auto r = get("region"); !r.empty()) in.region = std::move(r);
  in.usage.source = metering::usage_source::reported;
  const struct {
    std::string_view name;
    std::uint64_t* out;
  } counts[] = {{"input", &in.usage.input},
                {"output", &in.usage.output},
                {"cache_read", &in.usage.cache_read},
                {"cache_write", &in.usage.cache_write},
                {"cache_write_1h", &in.usage.cache_write_1h}};
  for (const auto& c : counts) {
    const auto v = parse_count(get(c.name));
    if (!v) return failed(std::string(c.name) + ": a whole number of tokens");
    *c.out = *v;
  }
  in.usage.cache_write += in.usage.cache_write_1h;  // the usage counts both; the 1h part apart
  const auto tier = metering::parse_service_tier(get("tier"));
  if (!tier) return failed(std::string("tier: default, priority, flex or reserved"));
  in.tier = *tier;
  const auto latency = get("latency");
  if (!latency.empty() && latency != "standard" && latency != "optimized")
    return failed(std::string("latency: standard or optimized"));
  in.latency =
      latency == "optimized" ? metering::latency_mode::optimized : metering::latency_mode::standard;
  in.at = std::chrono::system_clock::now();
  if (const auto at = get("at"); !at.empty()) {
    const auto ms = parse_when(at, now_ms());
    if (!ms) return failed(std::string("at: a date YYYY-MM-DD"));
    in.at = std::chrono::system_clock::time_point(std::chrono::milliseconds(*ms));
  }
  return in;
}

}  // namespace bedrock_meter::app
