#pragma once
/// What the proxy reads from a request body, parsed at most once and only when something asks.
///
/// Every feature that needs the body (budgets' worst-case output, the latency mode, and whatever
/// comes next) asks this one object, so a request is never parsed twice. A feature that only
/// needs the body in some cases checks cheaply first (the latency mode looks for the word
/// "optimized" before asking for the parse), so requests that need nothing pay nothing.
///
/// Pure code (Boost.JSON). Not thread-safe: one per request.
#include <cstdint>
#include <optional>
#include <string_view>

#include <boost/json/value.hpp>

#include "metering/rate_table.hpp"
#include "metering/route.hpp"

namespace bedrock_meter::metering {

class request_body {
 public:
  /// `body` must outlive this object (the proxy keeps the request until it is forwarded).
  request_body(operation op, std::string_view body) noexcept : op_(op), body_(body) {}

  /// The most output tokens the request asks for: Converse `inferenceConfig.maxTokens`, and the
  /// InvokeModel families' `max_tokens` (Anthropic, Mistral, Cohere, OpenAI),
  /// `max_completion_tokens`, `inferenceConfig.max_new_tokens` (Nova), `max_gen_len` (Llama),
  /// `textGenerationConfig.maxTokenCount` (Titan). nullopt when absent or the body is not JSON.
  std::optional<std::uint64_t> max_tokens();

  /// Converse and ConverseStream ask for latency-optimized inference in the body
  /// (`performanceConfig.latency: "optimized"`); InvokeModel* use a header instead, which the
  /// caller passes as `header`. Parses only when the body mentions "optimized" at all.
  latency_mode latency(std::string_view header);

  /// Whether the body has been parsed (at most once, whatever was asked).
  [[nodiscard]] bool parsed() const noexcept { return parsed_; }

 private:
  /// The top-level object, parsed on first use; null when the body is not a JSON object.
  const boost::json::object* object();

  operation op_;
  std::string_view body_;
  bool parsed_ = false;
  boost::json::value doc_;
};

}  // namespace bedrock_meter::metering
