#pragma once
/// Token usage of one Bedrock request, read from the response as it streams past.
///
/// Where usage comes from (first that applies; docs/usage-sources.md has the details per family):
///   Converse                       body `usage`
///   ConverseStream                 the final `metadata` event's `usage`
///   InvokeModel                    `X-Amzn-Bedrock-*-Token-Count` headers, else the family's
///                                  body usage
///   InvokeModelWithResponseStream  last chunk's `amazon-bedrock-invocationMetrics`, else the
///                                  family's events
///   InvokeModelWithBidirectionalStream  the last `usageEvent` (running totals, speech and text)
///   CountTokens                    not billed (a request, zero tokens)
/// `input` excludes cached tokens; billable input = input + cache_read + cache_write.
/// A provider-reported zero is a zero, never replaced by an estimate.
///
/// Pure code: no I/O. One observer per request, used from one thread.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "metering/route.hpp"

namespace bedrock_meter::metering {

enum class usage_source : std::uint8_t {
  none,       ///< nothing billable seen (errors, CountTokens, non-model operations)
  reported,   ///< the provider's own counts
  estimated,  ///< the stream ended without its usage event; counts estimated from what was seen
};
/// "none", "reported", "estimated": the spelling in the ledger, the access log and exports.
std::string_view to_string(usage_source s) noexcept;
std::optional<usage_source> parse_usage_source(std::string_view s) noexcept;

struct token_usage {
  std::uint64_t input = 0;  ///< uncached input tokens
  std::uint64_t output = 0;
  std::uint64_t cache_read = 0;
  std::uint64_t cache_write = 0;     ///< all cache writes (5m + 1h)
  std::uint64_t cache_write_1h = 0;  ///< the part of cache_write written with a 1-hour TTL
  /// The part of `input` that is speech (audio) tokens, priced at the entry's speech_input rate
  /// (Nova Sonic, InvokeModelWithBidirectionalStream); the rest of `input` is text.
  std::uint64_t speech_input = 0;
  std::uint64_t speech_output = 0;  ///< the part of `output` that is speech tokens
  usage_source source = usage_source::none;
};

/// The model families whose InvokeModel / InvokeModelWithResponseStream bodies carry usage in
/// their own shapes (docs/usage-sources.md lists each shape). Converse and ConverseStream do not
/// depend on the family.
enum class model_family : std::uint8_t {
  unknown,  ///< application inference profile, provisioned or imported model, or a new provider:
            ///< every known shape is tried
  anthropic,
  amazon_nova,
  amazon_titan,  ///< Titan text and Titan embeddings
  meta_llama,
  mistral,
  cohere,
  deepseek,
  openai,  ///< OpenAI open-weight models (OpenAI chat-completions shape)
  ai21,
};

/// The family of a model id as it appears in the request path (decoded): a base model id
/// (`anthropic.claude-3-haiku-20240307-v1:0`), a geographic or global inference profile id
/// (`us.`, `eu.`, `apac.`, `jp.`, `au.`, `us-gov.`, `global.` and any other one-segment prefix),
/// or an ARN of a foundation model, inference profile, prompt router or custom model.
/// Application-inference-profile, provisioned-model and imported-model ARNs say nothing about
/// the model behind them: `unknown`. Never allocates.
model_family family_of(std::string_view model_id) noexcept;

/// Looks up a response header by lowercase name; returns empty when absent.
using header_lookup = std::function<std::string_view(std::string_view lowercase_name)>;

/// Observes one response. Feed the head once, then body bytes in any chunking, then finish().
class usage_observer {
 public:
  usage_observer(operation op, std::string_view model_id);
  ~usage_observer();
  usage_observer(usage_observer&&) noexcept;
  usage_observer& operator=(usage_observer&&) noexcept;

  /// Status and headers of the upstream response. Non-2xx responses bill nothing.
  void on_head(unsigned status, const header_lookup& headers);
  /// Body bytes as they are forwarded. Never fails: malformed bytes only stop metering.
  void on_body(std::string_view bytes);
  /// The body ended. `complete` is false when the stream was cut or the client went away.
  void finish(bool complete);

  /// The settled usage; final once finish() has been called (before that: zeros, source none).
  [[nodiscard]] const token_usage& usage() const noexcept;
  /// The service tier the upstream served (`X-Amzn-Bedrock-Service-Tier`; for Converse and
  /// ConverseStream, when that header is absent, the body's / metadata event's `serviceTier.type`),
  /// empty if not sent.
  [[nodiscard]] std::string_view service_tier() const noexcept;
  /// True once a usage record (metadata event / invocation metrics / body usage) has been seen;
  /// for InvokeModelWithBidirectionalStream, once a `usageEvent` arrived after the
  /// `completionEnd` (the session's final count; earlier ones are running totals).
  /// Live while the body streams: the proxy may use it to decide whether a stream whose client
  /// went away still needs draining to learn its exact counts.
  [[nodiscard]] bool usage_seen() const noexcept;
  /// Why the model stopped, normalised across families: "end_turn", "max_tokens" (the output cap
  /// was reached), "tool_use", "stop_sequence", "content_filtered", "guardrail_intervened", or
  /// "other"; empty when the response did not say (errors, embeddings, a cut stream).
  [[nodiscard]] std::string_view stop_reason() const noexcept;
  /// Count of event-stream frames that failed to decode (corrupt upstream bytes).
  [[nodiscard]] std::uint64_t decode_errors() const noexcept;
  /// The first exception or error event of a stream (`:exception-type` such as
  /// "modelStreamErrorException" or "throttlingException", or an error frame's `:error-code`),
  /// at most 64 bytes; empty when the stream carried none.
  [[nodiscard]] std::string_view stream_exception() const noexcept;
  /// UTF-8 bytes of generated text seen so far (what an estimate of the output counts).
  [[nodiscard]] std::uint64_t text_bytes() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace bedrock_meter::metering
