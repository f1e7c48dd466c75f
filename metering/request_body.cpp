#include "metering/request_body.hpp"

#include <array>
#include <charconv>
#include <utility>

#include "metering/json_scan.hpp"

namespace bedrock_meter::metering {

namespace {

namespace js = json_scan;

/// A non-negative JSON number as a token count, as a document parse would read it: integers
/// exactly, fractions truncated, negatives and values from 1e12 on ignored.
std::optional<std::uint64_t> count_of(std::string_view v) {
  if (v.empty() || v.front() == '-') return std::nullopt;
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec == std::errc{} && end == v.data() + v.size()) return n;
  double d = 0;
  auto [dend, dec] = std::from_chars(v.data(), v.data() + v.size(), d);
  if (dec == std::errc{} && dend == v.data() + v.size() && d >= 0 && d < 1e12)
    return static_cast<std::uint64_t>(d);
  return std::nullopt;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

/// A member's value, or empty when absent or JSON null (null asks for nothing).
bool present(std::string_view v) noexcept { return !v.empty() && v != "null"; }

/// The first of `keys` that the object `obj` holds as a count.
std::optional<std::uint64_t> nested_count(std::string_view obj,
                                          std::initializer_list<std::string_view> keys) {
  if (!present(obj) || obj.front() != '{') return std::nullopt;
  std::optional<std::uint64_t> found;
  std::size_t rank = keys.size();
  js::for_each_member(obj, [&](std::string_view key, std::string_view value) {
    std::size_t i = 0;
    for (std::string_view k : keys) {
      if (i < rank && js::key_equals(key, k)) {
        if (auto n = count_of(value)) {
          found = n;
          rank = i;
        }
      }
      ++i;
    }
  });
  return found;
}

/// Feeds the prompt parts to one SipHash stream, framed so that no two different sequences of
/// parts hash alike: a kind byte and the part's length before its bytes.
class prefix_hasher {
 public:
  explicit prefix_hasher(const siphash_key& key) : h_(key) {}

  void part(char kind, std::string_view bytes) {
    std::array<char, 9> frame{};
    frame[0] = kind;
    std::uint64_t n = bytes.size();
    for (std::size_t i = 1; i < frame.size(); ++i, n >>= 8) frame[i] = static_cast<char>(n & 0xff);
    h_.update({frame.data(), frame.size()});
    h_.update(bytes);
    bytes_ += bytes.size();
    fed_ = true;
  }

  /// The prefix fed so far (hash 0 only when nothing was fed; a real 0 becomes 1).
  [[nodiscard]] prompt_prefix snapshot() const {
    if (!fed_) return {};
    const std::uint64_t d = h_.digest();
    return {d == 0 ? 1 : d, bytes_};
  }

 private:
  siphash24 h_;
  std::uint64_t bytes_ = 0;
  bool fed_ = false;
};

/// Whether a chat message object is a system (or developer) instruction: OpenAI-style bodies
/// put the system prompt in the messages.
bool is_system_message(std::string_view message) {
  bool system = false;
  js::for_each_member(message, [&](std::string_view key, std::string_view value) {
    if (js::key_equals(key, "role"))
      system = value == "\"system\"" || value == "\"developer\"" || value == "\"SYSTEM\"";
  });
  return system;
}

}  // namespace

const request_body::members* request_body::scan() {
  if (parsed_) return valid_ ? &m_ : nullptr;
  parsed_ = true;
  const std::string_view body = js::trim(body_);
  if (body.empty() || body.front() != '{') return nullptr;
  const std::array<std::pair<std::string_view, std::string_view members::*>, 14> known = {{
      {"max_tokens", &members::max_tokens},
      {"max_completion_tokens", &members::max_completion_tokens},
      {"max_gen_len", &members::max_gen_len},
      {"maxTokens", &members::max_tokens_camel},
      {"inferenceConfig", &members::inference_config},
      {"textGenerationConfig", &members::text_generation_config},
      {"performanceConfig", &members::performance_config},
      {"system", &members::system},
      {"preamble", &members::preamble},
      {"tools", &members::tools},
      {"toolConfig", &members::tool_config},
      {"messages", &members::messages},
      {"chat_history", &members::chat_history},
      {"message", &members::message},
  }};
  valid_ = js::for_each_member(body, [&](std::string_view key, std::string_view value) {
    for (const auto& [name, field] : known) {
      if (js::key_equals(key, name)) {
        m_.*field = value;  // a repeated key: the last one wins, as in Bedrock's parser
        return;
      }
    }
    for (std::string_view name :
         {"response_format", "output_format", "output_config", "outputConfig", "responseFormat"}) {
      if (js::key_equals(key, name)) m_.structured_output = present(value);
    }
  });
  if (!valid_) m_ = members{};
  return valid_ ? &m_ : nullptr;
}

std::optional<std::uint64_t> request_body::max_tokens() {
  const members* m = scan();
  if (m == nullptr) return std::nullopt;
  for (std::string_view v :
       {m->max_tokens, m->max_completion_tokens, m->max_gen_len, m->max_tokens_camel}) {
    if (auto n = present(v) ? count_of(v) : std::nullopt) return n;
  }
  for (std::string_view nest : {m->inference_config, m->text_generation_config}) {
    if (auto n = nested_count(nest, {"maxTokens", "max_new_tokens", "maxTokenCount", "max_tokens"}))
      return n;
  }
  return std::nullopt;
}

latency_mode request_body::latency(std::string_view header) {
  if (iequals(header, "optimized")) return latency_mode::optimized;
  if (op_ != operation::converse && op_ != operation::converse_stream)
    return latency_mode::standard;
  if (body_.find("\"optimized\"") == std::string_view::npos) return latency_mode::standard;
  const members* m = scan();
  if (m == nullptr || !present(m->performance_config)) return latency_mode::standard;
  bool optimized = false;
  js::for_each_member(m->performance_config, [&](std::string_view key, std::string_view value) {
    if (js::key_equals(key, "latency")) optimized = value == "\"optimized\"";
  });
  return optimized ? latency_mode::optimized : latency_mode::standard;
}

/// The turns of a chat body and how many leading messages are system instructions.
namespace {

struct turn_count {
  std::size_t system_messages = 0;
  std::size_t turns = 0;
};

turn_count count_turns(std::string_view messages, std::string_view chat_history,
                       std::string_view message) {
  turn_count c;
  if (present(messages) && messages.front() == '[') {
    js::for_each_element(messages, [&](std::string_view msg) {
      if (c.turns == 0 && is_system_message(msg)) {
        ++c.system_messages;
      } else {
        ++c.turns;
      }
    });
  }
  if (present(chat_history) && chat_history.front() == '[')
    js::for_each_element(chat_history, [&](std::string_view) { ++c.turns; });
  if (present(message)) ++c.turns;
  return c;
}

}  // namespace

request_traits request_body::traits(const siphash_key* key) {
  request_traits t;
  const members* m = scan();
  if (m == nullptr) return t;
  t.max_tokens = max_tokens();
  t.tools = (present(m->tools) && m->tools != "[]") || present(m->tool_config);
  t.structured_output = m->structured_output;
  if (key != nullptr) hash_prefixes(*m, *key, t);
  return t;
}

void request_body::hash_prefixes(const members& m, const siphash_key& key, request_traits& t) {
  prefix_hasher h(key);
  if (present(m.tools)) h.part('T', m.tools);
  if (present(m.tool_config)) h.part('T', m.tool_config);
  if (present(m.system)) h.part('S', m.system);
  if (present(m.preamble)) h.part('S', m.preamble);

  // The turns: `messages` (after any leading system messages), or Cohere's `chat_history`
  // followed by its `message`. The conversation prefix ends two turns before the last.
  const turn_count c = count_turns(m.messages, m.chat_history, m.message);
  std::size_t system_seen = 0;
  std::size_t seen = 0;
  bool system_taken = false;
  const auto feed = [&](std::string_view msg) {
    if (system_seen < c.system_messages) {
      h.part('S', msg);
      ++system_seen;
      return;
    }
    if (!system_taken) {
      t.system = h.snapshot();
      system_taken = true;
    }
    h.part('M', msg);
    ++seen;
    if (c.turns >= 3 && seen == c.turns - 2) t.conversation = h.snapshot();
  };
  if (present(m.messages) && m.messages.front() == '[') js::for_each_element(m.messages, feed);
  if (present(m.chat_history) && m.chat_history.front() == '[')
    js::for_each_element(m.chat_history, feed);
  if (present(m.message)) feed(m.message);
  if (!system_taken) t.system = h.snapshot();
  if (seen > 0) t.full = h.snapshot();
}

}  // namespace bedrock_meter::metering
