#pragma once
/// Usage of a request Bedrock billed but never reported back (a stream cut or ended by an
/// exception event, a call abandoned at first_byte_timeout). Input tokens come from the body size
/// with each model's bytes-per-token ratio, output tokens (when nothing of the answer was seen)
/// from the model's mean output per request, both learned from the requests whose usage Bedrock
/// did report. Pure code; one per worker, so learning takes no lock.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace bedrock_meter::metering {

class input_estimator {
 public:
  /// Bytes of request body per input token before a model has reported usage: a Converse or
  /// Messages body is JSON around English text, about 4 characters per token, and the JSON adds
  /// a little on top.
  static constexpr std::uint64_t default_bytes_per_token = 4;
  /// Models remembered; the map starts afresh beyond it (a client sending random model ids
  /// cannot grow it).
  static constexpr std::size_t max_models = 1024;

  /// A request to `model` whose `body_bytes` Bedrock counted as `input_tokens` (uncached input
  /// plus cache reads and writes). Requests without a body or tokens teach nothing.
  void learn(std::string_view model, std::uint64_t body_bytes, std::uint64_t input_tokens,
             std::uint64_t output_tokens);

  /// ceil(body_bytes x tokens / bytes) over what `model` taught, else ceil(body_bytes / 4).
  [[nodiscard]] std::uint64_t estimate(std::string_view model, std::uint64_t body_bytes) const;
  /// The mean output per reported request of `model`, rounded up and capped by the request's own
  /// `max_tokens` when it set one; nullopt before the model has reported any.
  [[nodiscard]] std::optional<std::uint64_t> estimate_output(
      std::string_view model, std::optional<std::uint64_t> max_tokens) const;

 private:
  struct sums {
    std::uint64_t bytes = 0;   // request body bytes
    std::uint64_t tokens = 0;  // input tokens of those bodies
    std::uint64_t requests = 0;
    std::uint64_t output = 0;  // output tokens of those requests
  };
  struct hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  std::unordered_map<std::string, sums, hash, std::equal_to<>> by_model_;
};

}  // namespace bedrock_meter::metering
