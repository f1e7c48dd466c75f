#include "telemetry/access_log.hpp"

#include "metering/money.hpp"

namespace bedrock_meter::telemetry {

namespace {

void json_escape_into(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\u00";
          out += hex[(c >> 4) & 0xf];
          out += hex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
}

/// Appends `,"key":"value"` (value escaped), `,"key":number` or `,"key":true|false`.
class json_line {
 public:
  explicit json_line(std::string& out) : out_(out) {}
  void add(std::string_view key, std::string_view value) {
    start(key);
    out_ += '"';
    json_escape_into(out_, value);
    out_ += '"';
  }
  void add(std::string_view key, std::uint64_t value) {
    start(key);
    out_ += std::to_string(value);
  }
  /// `true`/`false` as JSON booleans, so `jq 'select(.priced | not)'` works.
  void add_bool(std::string_view key, bool value) {
    start(key);
    out_ += value ? "true" : "false";
  }

 private:
  void start(std::string_view key) {
    out_ += ",\"";
    out_ += key;
    out_ += "\":";
  }
  std::string& out_;
};

std::string_view or_dash(std::string_view v) { return v.empty() ? std::string_view("-") : v; }

}  // namespace

std::string access_log_line(const metering::settlement& s, const connection_info& conn) {
  std::string line;
  line.reserve(640);
  line += "{\"request_id\":\"";
  json_escape_into(line, s.request_id);
  line += '"';
  json_line f(line);
  const bool identified = !s.principal.empty();
  f.add("conn", conn.id);
  f.add("protocol", conn.protocol);
  f.add("remote", conn.remote);
  f.add("principal", or_dash(s.principal));
  f.add("team", identified ? std::string_view(s.team) : "-");
  f.add("app", identified ? std::string_view(s.app) : "-");
  f.add("operation", s.operation);
  f.add("model", or_dash(s.model_requested));
  f.add("region", s.region);
  f.add("status", s.status);
  f.add("outcome", to_string(s.outcome));
  f.add("bytes_in", s.bytes_in);
  f.add("bytes_out", s.bytes_out);
  f.add("duration_us", static_cast<std::uint64_t>(s.duration_us));
  if (s.first_byte_us >= 0) f.add("first_byte_us", static_cast<std::uint64_t>(s.first_byte_us));
  f.add("input_tokens", s.input_tokens);
  f.add("output_tokens", s.output_tokens);
  f.add("cache_read_tokens", s.cache_read_tokens);
  f.add("cache_write_tokens", s.cache_write_tokens);
  // Only Nova Sonic sessions have speech: other lines stay as they were.
  if (s.speech_input_tokens != 0) f.add("speech_input_tokens", s.speech_input_tokens);
  if (s.speech_output_tokens != 0) f.add("speech_output_tokens", s.speech_output_tokens);
  f.add("usage_source", to_string(s.usage_source));
  if (s.service_tier != "default") f.add("service_tier", s.service_tier);
  if (s.latency_mode != "standard") f.add("latency", s.latency_mode);
  f.add_bool("priced", s.priced);
  f.add("cost_usd", metering::format_usd(s.total_cost, 9));
  if (!s.unpriced_reason.empty()) f.add("pricing_note", s.unpriced_reason);
  if (!s.rate_table_version.empty()) f.add("rate_table_version", s.rate_table_version);
  line += '}';
  return line;
}

}  // namespace bedrock_meter::telemetry
