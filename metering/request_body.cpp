#include "metering/request_body.hpp"

#include <boost/json/parse.hpp>

namespace bedrock_meter::metering {

namespace {

std::optional<std::uint64_t> number(const boost::json::object& o, std::string_view key) {
  const auto* x = o.if_contains(key);
  if (x == nullptr) return std::nullopt;
  if (x->is_uint64()) return x->as_uint64();
  if (x->is_int64() && x->as_int64() >= 0) return static_cast<std::uint64_t>(x->as_int64());
  if (x->is_double() && x->as_double() >= 0 && x->as_double() < 1e12)
    return static_cast<std::uint64_t>(x->as_double());
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

}  // namespace

const boost::json::object* request_body::object() {
  if (!parsed_) {
    parsed_ = true;
    if (!body_.empty() && body_.front() == '{') {
      boost::system::error_code ec;
      doc_ = boost::json::parse(body_, ec);
      if (ec) doc_ = nullptr;
    }
  }
  return doc_.if_object();
}

std::optional<std::uint64_t> request_body::max_tokens() {
  const auto* top = object();
  if (top == nullptr) return std::nullopt;
  for (std::string_view key : {"max_tokens", "max_completion_tokens", "max_gen_len", "maxTokens"})
    if (auto n = number(*top, key)) return n;
  for (std::string_view nest : {"inferenceConfig", "textGenerationConfig"}) {
    const auto* o = top->if_contains(nest);
    if (o == nullptr || !o->is_object()) continue;
    for (std::string_view key : {"maxTokens", "max_new_tokens", "maxTokenCount", "max_tokens"})
      if (auto n = number(o->as_object(), key)) return n;
  }
  return std::nullopt;
}

latency_mode request_body::latency(std::string_view header) {
  if (iequals(header, "optimized")) return latency_mode::optimized;
  if (op_ != operation::converse && op_ != operation::converse_stream)
    return latency_mode::standard;
  if (body_.find("\"optimized\"") == std::string_view::npos) return latency_mode::standard;
  const auto* top = object();
  if (top == nullptr) return latency_mode::standard;
  const auto* pc = top->if_contains("performanceConfig");
  if (pc == nullptr || !pc->is_object()) return latency_mode::standard;
  const auto* l = pc->as_object().if_contains("latency");
  return l && l->is_string() && l->as_string() == "optimized" ? latency_mode::optimized
                                                              : latency_mode::standard;
}

}  // namespace bedrock_meter::metering
