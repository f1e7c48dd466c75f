/// libFuzzer target for the usage observer: the JSON and event-stream parsing that every upstream
/// response body goes through. Byte 0 picks the operation, byte 1 the model family, byte 2 the
/// HTTP status class, byte 3 the chunk size; the rest is the body. The body is fed whole and in
/// chunks; both runs must agree on the usage (the observer may not depend on chunk boundaries),
/// and nothing may crash, hang or read out of bounds.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "metering/route.hpp"
#include "metering/usage.hpp"

namespace {

using namespace bedrock_meter::metering;

constexpr operation ops[] = {operation::converse, operation::converse_stream,
                             operation::invoke_model, operation::invoke_model_with_response_stream,
                             operation::count_tokens};
constexpr std::string_view models[] = {
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "amazon.nova-lite-v1:0",
    "amazon.titan-text-express-v1",
    "meta.llama3-1-70b-instruct-v1:0",
    "mistral.mistral-large-2402-v1:0",
    "cohere.command-r-v1:0",
    "openai.gpt-oss-120b-1:0",
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"};

token_usage run(operation op, std::string_view model, unsigned status, std::string_view body,
                std::size_t chunk) {
  usage_observer obs(op, model);
  obs.on_head(status, [](std::string_view) -> std::string_view { return {}; });
  while (!body.empty()) {
    const auto n = chunk == 0 ? body.size() : std::min(chunk, body.size());
    obs.on_body(body.substr(0, n));
    body.remove_prefix(n);
  }
  obs.finish(true);
  return obs.usage();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const auto op = ops[data[0] % std::size(ops)];
  const auto model = models[data[1] % std::size(models)];
  const unsigned status = (data[2] & 1) ? 200u : 400u + data[2] % 100u;
  const std::size_t chunk = 1u + data[3] % 64u;
  const std::string_view body(reinterpret_cast<const char*>(data + 4), size - 4);
  const auto whole = run(op, model, status, body, 0);
  const auto pieces = run(op, model, status, body, chunk);
  if (whole.input != pieces.input || whole.output != pieces.output ||
      whole.cache_read != pieces.cache_read || whole.cache_write != pieces.cache_write ||
      whole.cache_write_1h != pieces.cache_write_1h || whole.source != pieces.source)
    std::abort();
  return 0;
}
