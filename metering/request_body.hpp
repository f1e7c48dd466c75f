#pragma once
/// What the proxy reads from a request body, in one pass, and only when something asks.
///
/// Every feature that needs the body (budgets' worst-case output, the latency mode, the request
/// traits the ledger keeps for the advisor, and whatever comes next) asks this one object, so a
/// request is scanned once. The pass does not build a document: a validating scanner
/// (metering/json_scan.hpp) finds the top-level members this object knows, and each question
/// reads only the member it needs. A feature that only needs the body in some cases checks
/// cheaply first (the latency mode looks for the word "optimized" before asking for the scan).
///
/// Pure code. Not thread-safe: one per request.
#include <cstdint>
#include <optional>
#include <string_view>

#include "metering/rate_table.hpp"
#include "metering/route.hpp"
#include "metering/siphash.hpp"

namespace bedrock_meter::metering {

/// A keyed fingerprint of a prompt prefix (SipHash-2-4 under the installation's key) and how
/// many bytes of the body it spans. `hash` 0: there is no such prefix.
struct prompt_prefix {
  std::uint64_t hash = 0;
  std::uint64_t bytes = 0;
  bool operator==(const prompt_prefix&) const = default;
};

/// What a request asked for, as the ledger keeps it for the advisor. Never any prompt text.
struct request_traits {
  std::optional<std::uint64_t> max_tokens;  ///< the output cap asked for (see max_tokens())
  bool tools = false;                       ///< tool definitions (`tools`, `toolConfig`) were sent
  bool structured_output = false;           ///< a response schema/format was asked for
  /// The cacheable prefixes, in the order Bedrock caches them (tools, system, messages):
  prompt_prefix system;        ///< tool definitions + system prompt (+ leading system messages)
  prompt_prefix conversation;  ///< that + every message before the last turn (an assistant
                               ///< answer and the user message after it); 0 with < 3 messages
  prompt_prefix full;          ///< that + every message: what the next turn's conversation reads
  bool operator==(const request_traits&) const = default;
};

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
  /// caller passes as `header`. Scans only when the body mentions "optimized" at all.
  latency_mode latency(std::string_view header);

  /// The request's traits; prompt fingerprints only with a key (null: fingerprints off, all 0).
  /// Converse/ConverseStream (`toolConfig`, `system`, `messages`), Anthropic and Nova
  /// (`tools`/`toolConfig`, `system`, `messages`), OpenAI-style chat (`tools`, leading
  /// `system`/`developer` messages, `messages`) and Cohere Command R (`tools`, `preamble`,
  /// `chat_history`, `message`) bodies have prefixes; plain-prompt bodies (Llama, Titan) do not.
  /// Each part is hashed as its exact bytes, framed by its kind and length.
  request_traits traits(const siphash_key* key);

  /// Whether the body has been scanned (at most once, whatever was asked).
  [[nodiscard]] bool parsed() const noexcept { return parsed_; }

 private:
  /// The top-level members this object reads, as value texts (empty: absent).
  struct members {
    std::string_view max_tokens, max_completion_tokens, max_gen_len, max_tokens_camel;
    std::string_view inference_config, text_generation_config, performance_config;
    std::string_view system, preamble, tools, tool_config, messages, chat_history, message;
    bool structured_output = false;
  };
  /// Scans on first use; null when the body is not a JSON object.
  const members* scan();
  static void hash_prefixes(const members& m, const siphash_key& key, request_traits& t);

  operation op_;
  std::string_view body_;
  bool parsed_ = false;
  bool valid_ = false;
  members m_;
};

}  // namespace bedrock_meter::metering
