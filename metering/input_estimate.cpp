#include "metering/input_estimate.hpp"

namespace bedrock_meter::metering {

namespace {
/// Sums are halved beyond this, so recent traffic weighs most and nothing overflows.
constexpr std::uint64_t max_sum = std::uint64_t{1} << 40;
}  // namespace

void input_estimator::learn(std::string_view model, std::uint64_t body_bytes,
                            std::uint64_t input_tokens, std::uint64_t output_tokens) {
  if (body_bytes == 0 || input_tokens == 0 || body_bytes >= max_sum || input_tokens >= max_sum ||
      output_tokens >= max_sum)
    return;
  auto it = by_model_.find(model);
  if (it == by_model_.end()) {
    if (by_model_.size() >= max_models) by_model_.clear();
    it = by_model_.emplace(std::string(model), sums{}).first;
  }
  auto& s = it->second;
  s.bytes += body_bytes;
  s.tokens += input_tokens;
  s.requests += 1;
  s.output += output_tokens;
  while (s.bytes >= max_sum || s.tokens >= max_sum || s.output >= max_sum) {
    s.bytes = (s.bytes + 1) / 2;
    s.tokens = (s.tokens + 1) / 2;
    s.requests = (s.requests + 1) / 2;
    s.output = (s.output + 1) / 2;
  }
}

std::uint64_t input_estimator::estimate(std::string_view model, std::uint64_t body_bytes) const {
  if (body_bytes == 0) return 0;
  const auto it = by_model_.find(model);
  if (it == by_model_.end() || it->second.bytes == 0 || it->second.tokens == 0)
    return (body_bytes + default_bytes_per_token - 1) / default_bytes_per_token;
  __extension__ typedef unsigned __int128 u128;
  const u128 num = static_cast<u128>(body_bytes) * it->second.tokens;
  return static_cast<std::uint64_t>((num + it->second.bytes - 1) / it->second.bytes);
}

std::optional<std::uint64_t> input_estimator::estimate_output(
    std::string_view model, std::optional<std::uint64_t> max_tokens) const {
  const auto it = by_model_.find(model);
  if (it == by_model_.end() || it->second.requests == 0) return std::nullopt;
  const auto& s = it->second;
  const std::uint64_t mean = (s.output + s.requests - 1) / s.requests;
  return max_tokens && *max_tokens < mean ? *max_tokens : mean;
}

}  // namespace bedrock_meter::metering
