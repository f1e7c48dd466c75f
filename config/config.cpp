#include "config/config.hpp"

#include "config/rate_table_loader.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <array>
#include <charconv>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <span>
#include <sstream>
#include <system_error>
#include <tuple>
#include <utility>

namespace bedrock_meter::config {

std::string config_error::to_string() const {
  std::string out = file;
  out += ':';
  out += std::to_string(line);
  out += ':';
  out += std::to_string(column);
  out += ": ";
  if (!path.empty()) {
    out += path;
    out += ": ";
  }
  out += message;
  return out;
}

namespace {

constexpr std::string_view duration_hint =
    "write a whole number with a unit: 250ms, 5s, 15m, 1h (or combined, e.g. 1m30s)";
constexpr std::string_view size_hint =
    "write a whole number of bytes, optionally with KiB, MiB or GiB (e.g. 16384, 16KiB, 32MiB)";
constexpr std::string_view label_hint =
    "use 1 to 64 characters from A-Z a-z 0-9 _ . - (it becomes a Prometheus label value)";
// Timers add durations to steady_clock::now(); a week is far beyond any sensible setting and far
// from overflow.
constexpr milliseconds max_duration{std::chrono::hours(168)};

bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool all_of(std::string_view s, bool (*pred)(char)) {
  return !s.empty() && std::all_of(s.begin(), s.end(), pred);
}

std::optional<std::uint64_t> parse_uint(std::string_view s) {
  if (s.empty() || !is_digit(s.front())) return std::nullopt;
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_env_name(std::string_view s) {
  if (s.empty() || is_digit(s.front())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_upper(c) || is_lower(c) || is_digit(c) || c == '_'; });
}

bool is_ip_literal(const std::string& s) {
  std::array<unsigned char, 16> buf{};
  return inet_pton(AF_INET, s.c_str(), buf.data()) == 1 ||
         inet_pton(AF_INET6, s.c_str(), buf.data()) == 1;
}

bool is_loopback(const std::string& address) {
  return address.starts_with("127.") || address == "::1" || address == "localhost";
}

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions, so `regoin` is one
/// edit from `region`.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size();
  const std::size_t m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1, 0));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

/// The closest candidate within two edits (and fewer edits than the word has letters, so `x`
/// does not suggest `ca_file`), or empty. A candidate that is a prefix of the word or the other
/// way round counts as two edits, so `warning` suggests `warn`.
std::string_view closest(std::string_view word, std::span<const std::string_view> candidates) {
  std::string_view best;
  std::size_t best_distance = 3;
  for (const auto candidate : candidates) {
    std::size_t d = edit_distance(word, candidate);
    if (std::min(word.size(), candidate.size()) >= 3 &&
        (word.starts_with(candidate) || candidate.starts_with(word))) {
      d = std::min<std::size_t>(d, 2);
    }
    if (d < best_distance && d < word.size()) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

std::string join(std::span<const std::string_view> items) {
  std::string out;
  for (const auto item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

std::string_view type_name(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

constexpr std::array<std::string_view, 6> credential_source_names = {
    "default_chain", "environment", "profile", "container", "imds", "bearer"};
constexpr std::array<std::string_view, 6> log_levels = {"trace", "debug", "info",
                                                        "warn",  "error", "off"};

// Known keys per section, in the order docs/configuration.md lists them.
constexpr std::array<std::string_view, 14> top_keys = {
    "listeners", "workers", "busy_poll_us", "upstream", "auth",   "limits",   "http2",
    "logging",   "admin",   "pricing",      "models",   "ledger", "metering", "budgets"};
constexpr std::array<std::string_view, 3> listener_keys = {"address", "port", "tls"};
constexpr std::array<std::string_view, 2> tls_keys = {"cert_file", "key_file"};
constexpr std::array<std::string_view, 11> upstream_keys = {
    "region",       "allowed_client_regions", "endpoint",           "ca_file",
    "verify_tls",   "credentials",            "connect_timeout",    "first_byte_timeout",
    "idle_timeout", "max_idle_connections",   "pool_idle_time"};
constexpr std::array<std::string_view, 4> credentials_keys = {"source", "profile",
                                                              "bearer_token_env", "refresh_before"};
constexpr std::array<std::string_view, 4> auth_keys = {"access_keys", "bearer_keys", "anonymous",
                                                       "max_clock_skew"};
constexpr std::array<std::string_view, 7> access_key_keys = {
    "access_key_id", "secret_access_key", "secret_env", "team", "app", "tags", "allowed_models"};
constexpr std::array<std::string_view, 6> bearer_key_keys = {"sha256", "team", "app",
                                                             "name",   "tags", "allowed_models"};
constexpr std::array<std::string_view, 5> anonymous_keys = {"enabled", "team", "app", "tags",
                                                            "allowed_models"};
constexpr std::array<std::string_view, 8> limits_keys = {
    "max_header_bytes", "max_body_bytes", "max_connections",  "header_timeout",
    "body_timeout",     "idle_timeout",   "exchange_timeout", "shutdown_grace"};
constexpr std::array<std::string_view, 7> http2_keys = {
    "max_concurrent_streams",   "max_header_list_bytes", "max_resets_per_window",
    "max_settings_per_window",  "max_pings_per_window",  "max_empty_frames_per_window",
    "flood_window"};
constexpr std::array<std::string_view, 2> logging_keys = {"level", "access_log"};
constexpr std::array<std::string_view, 4> admin_keys = {"enabled", "address", "port", "token_env"};
constexpr std::array<std::string_view, 2> pricing_keys = {"rate_table", "reload"};
constexpr std::array<std::string_view, 2> reload_keys = {"watch", "poll_interval"};
constexpr std::array<std::string_view, 1> models_keys = {"mappings"};
constexpr std::array<std::string_view, 5> mapping_keys = {"arn", "base_model", "team", "app",
                                                          "hourly_usd"};
constexpr std::array<std::string_view, 4> ledger_keys = {"path", "queue_capacity", "batch_max",
                                                         "flush_interval"};
constexpr std::array<std::string_view, 3> metering_keys = {
    "drain_on_client_abort", "drain_timeout", "max_concurrent_drains"};
constexpr std::array<std::string_view, 7> budgets_keys = {
    "time_zone", "store", "redis", "on_store_unavailable", "default_max_output_tokens",
    "max_output_tokens", "definitions"};
constexpr std::array<std::string_view, 7> redis_keys = {
    "host", "port", "unix_socket", "password_env", "db", "timeout", "key_prefix"};
constexpr std::array<std::string_view, 9> budget_keys = {
    "name", "scope", "period", "period_start", "period_days", "time_zone", "limit_usd",
    "warn_at", "action"};
constexpr std::array<std::string_view, 4> scope_keys = {"team", "app", "identity", "model"};
constexpr std::array<std::string_view, 4> period_names = {"daily", "weekly", "monthly", "custom"};
// Resource types of Bedrock ARNs that name something a mapping can give a meaning to.
constexpr std::array<std::string_view, 6> mappable_arn_types = {
    "application-inference-profile", "provisioned-model", "imported-model", "custom-model",
    "inference-profile",             "foundation-model"};

struct entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
};

/// The YAML position an error about `e` should point at: the value, or the key when the value is
/// empty (yaml-cpp marks an empty value at the next token, often on the following line).
YAML::Mark mark_of(const entry& e) {
  return e.value.IsNull() ? e.key_node.Mark() : e.value.Mark();
}

std::string child(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string out(parent);
  out += '.';
  out += key;
  return out;
}

std::string index_path(std::string_view parent, std::size_t i) {
  std::string out(parent);
  out += '[';
  out += std::to_string(i);
  out += ']';
  return out;
}

/// Like parse_duration without the 168h cap, so the caller can say "too long" rather than
/// "malformed". Twelve digits bound every term well inside int64 milliseconds.
std::optional<milliseconds> parse_duration_uncapped(std::string_view text) {
  if (text.empty()) return std::nullopt;
  milliseconds total{0};
  while (!text.empty()) {
    std::size_t digits = 0;
    while (digits < text.size() && is_digit(text[digits])) ++digits;
    if (digits == 0 || digits > 12) return std::nullopt;
    const auto n = parse_uint(text.substr(0, digits));
    text.remove_prefix(digits);
    std::int64_t unit_ms = 0;
    if (text.starts_with("ms")) {
      unit_ms = 1;
      text.remove_prefix(2);
    } else if (text.starts_with("s")) {
      unit_ms = 1000;
      text.remove_prefix(1);
    } else if (text.starts_with("m")) {
      unit_ms = 60'000;
      text.remove_prefix(1);
    } else if (text.starts_with("h")) {
      unit_ms = 3'600'000;
      text.remove_prefix(1);
    } else {
      return std::nullopt;
    }
    total += milliseconds(static_cast<std::int64_t>(*n) * unit_ms);
    if (total > std::chrono::hours(1'000'000)) return std::nullopt;
  }
  return total;
}

/// The shortest exact spelling in our own syntax, for messages.
std::string format_duration(milliseconds d) {
  const auto count = d.count();
  if (count != 0 && count % 3'600'000 == 0) return std::to_string(count / 3'600'000) + "h";
  if (count != 0 && count % 60'000 == 0) return std::to_string(count / 60'000) + "m";
  if (count % 1000 == 0) return std::to_string(count / 1000) + "s";
  return std::to_string(count) + "ms";
}

class loader;

/// A YAML map seen as a section: unknown and duplicate keys are reported on construction, values
/// are looked up by key without yaml-cpp's inserting `operator[]`.
class section {
 public:
  section(loader& l, const YAML::Node& node, std::string path,
          std::span<const std::string_view> known, YAML::Mark fallback_mark);

  const entry* get(std::string_view key) const {
    for (const auto& e : entries_) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }
  bool is_map() const { return is_map_; }
  const YAML::Mark& mark() const { return mark_; }
  const std::string& path() const { return path_; }

 private:
  std::vector<entry> entries_;
  std::string path_;
  YAML::Mark mark_;
  bool is_map_ = false;
};

class loader {
 public:
  loader(std::string file, std::filesystem::path base_dir, env_lookup getenv)
      : file_(std::move(file)), base_dir_(std::move(base_dir)), getenv_(getenv) {}

  load_result run(std::string_view yaml, std::string source_path) {
    load_result result;
    try {
      config cfg;
      cfg.source_path = std::move(source_path);
      parse(yaml, cfg);
      if (errors_.empty()) result.value = std::move(cfg);
    } catch (const YAML::DeepRecursion& e) {
      // yaml-cpp's own message for this is "bad file".
      error(e.mark, "", "YAML nested too deeply; a config never needs more than a few levels");
    } catch (const YAML::ParserException& e) {
      error(e.mark, "", "YAML syntax error: " + e.msg);
    } catch (const YAML::Exception& e) {
      error(e.mark, "", "YAML error: " + e.msg);
    } catch (const std::exception& e) {
      error(YAML::Mark::null_mark(), "", std::string("internal error while loading: ") + e.what());
    }
    if (!errors_.empty()) result.value.reset();
    sort(errors_, file_);
    sort(warnings_, file_);
    result.errors = std::move(errors_);
    result.warnings = std::move(warnings_);
    return result;
  }

  void error(const YAML::Mark& mark, std::string path, std::string message) {
    errors_.push_back(make(mark, std::move(path), std::move(message)));
  }
  void warn(const YAML::Mark& mark, std::string path, std::string message) {
    warnings_.push_back(make(mark, std::move(path), std::move(message)));
  }

 private:
  config_error make(const YAML::Mark& mark, std::string path, std::string message) const {
    config_error e;
    e.file = file_;
    // yaml-cpp marks are 0-based and -1 when unknown; editors count from 1.
    e.line = mark.line >= 0 ? mark.line + 1 : 0;
    e.column = mark.column >= 0 ? mark.column + 1 : 0;
    e.path = std::move(path);
    e.message = std::move(message);
    return e;
  }

  /// By position; problems of other files (the rate table) after the config's own, by file.
  static void sort(std::vector<config_error>& v, const std::string& own_file) {
    std::stable_sort(v.begin(), v.end(), [&](const config_error& a, const config_error& b) {
      return std::tuple(a.file != own_file, a.file, a.line, a.column) <
             std::tuple(b.file != own_file, b.file, b.line, b.column);
    });
  }

  // ---- scalar readers: each reports its own errors and leaves `out` untouched on failure ----

  /// The scalar text of a present entry, or an error naming what was expected.
  const std::string* scalar(const entry& e, std::string_view expected, const std::string& path) {
    if (e.value.IsScalar()) return &e.value.Scalar();
    error(mark_of(e), path,
          "expected " + std::string(expected) + ", got " + std::string(type_name(e.value)));
    return nullptr;
  }

  bool read_string(const section& s, std::string_view key, std::string& out, bool required) {
    const entry* e = s.get(key);
    const std::string path = child(s.path(), key);
    if (e == nullptr) {
      if (required) missing(s, key);
      return false;
    }
    if (e->value.IsNull()) {
      // `key:` with nothing after it reads as an empty string, like `key: ""`.
      if (required) {
        error(mark_of(*e), path, "'" + std::string(key) + "' is empty; give it a value");
        return false;
      }
      out.clear();
      return true;
    }
    const std::string* text = scalar(*e, "a string", path);
    if (text == nullptr) return false;
    if (required && text->empty()) {
      error(mark_of(*e), path, "'" + std::string(key) + "' is empty; give it a value");
      return false;
    }
    out = *text;
    return true;
  }

  bool read_bool(const section& s, std::string_view key, bool& out) {
    const entry* e = s.get(key);
    if (e == nullptr) return false;
    const std::string path = child(s.path(), key);
    const std::string* text = scalar(*e, "true or false", path);
    if (text == nullptr) return false;
    bool v = false;
    if (!YAML::convert<bool>::decode(e->value, v)) {
      error(mark_of(*e), path, "'" + *text + "' is not a boolean; write true or false");
      return false;
    }
    out = v;
    return true;
  }

  template <typename T>
  bool read_uint(const section& s, std::string_view key, T& out, std::uint64_t min,
                 std::uint64_t max, std::string_view range_hint) {
    const entry* e = s.get(key);
    if (e == nullptr) return false;
    const std::string path = child(s.path(), key);
    const std::string* text = scalar(*e, "a whole number", path);
    if (text == nullptr) return false;
    const auto v = parse_uint(trim(*text));
    if (!v) {
      error(mark_of(*e), path, "'" + *text + "' is not a whole number; " + std::string(range_hint));
      return false;
    }
    if (*v < min || *v > max) {
      error(mark_of(*e), path, std::to_string(*v) + " is out of range; " + std::string(range_hint));
      return false;
    }
    out = static_cast<T>(*v);
    return true;
  }

  bool read_port(const section& s, std::string_view key, std::uint16_t& out) {
    return read_uint(s, key, out, 0, 65535,
                     "a port is 1 to 65535 (0 picks a free port, for tests)");
  }

  template <typename T>
  bool read_size(const section& s, std::string_view key, T& out) {
    const entry* e = s.get(key);
    if (e == nullptr) return false;
    const std::string path = child(s.path(), key);
    const std::string* text = scalar(*e, "a size", path);
    if (text == nullptr) return false;
    const std::string_view t = trim(*text);
    const auto v = parse_size(t);
    if (!v) {
      std::string msg = "'" + *text + "' is not a size; ";
      if (t.ends_with("KB") || t.ends_with("MB") || t.ends_with("GB") || t.ends_with("k") ||
          t.ends_with("K") || t.ends_with("M")) {
        msg += "sizes use binary units KiB, MiB, GiB (1 KiB = 1024 bytes)";
      } else {
        msg += size_hint;
      }
      error(mark_of(*e), path, std::move(msg));
      return false;
    }
    if (*v == 0 || *v > std::numeric_limits<T>::max()) {
      error(mark_of(*e), path,
            "must be between 1 and " + std::to_string(std::numeric_limits<T>::max()) + " bytes");
      return false;
    }
    out = static_cast<T>(*v);
    return true;
  }

  /// Zero is refused unless `allow_zero`; durations are capped at `max`. `Duration` coarser than
  /// milliseconds refuses values that would be truncated.
  template <typename Duration>
  bool read_duration(const section& s, std::string_view key, Duration& out, bool allow_zero,
                     milliseconds max = max_duration) {
    const entry* e = s.get(key);
    if (e == nullptr) return false;
    const std::string path = child(s.path(), key);
    const std::string* text = scalar(*e, "a duration", path);
    if (text == nullptr) return false;
    const std::string_view t = trim(*text);
    if (parse_uint(t)) {
      error(mark_of(*e), path,
            "'" + *text + "' has no unit; durations need one: write e.g. '" + std::string(t) +
                "s' for seconds or '" + std::string(t) + "ms' for milliseconds");
      return false;
    }
    const auto v = parse_duration_uncapped(t);
    if (!v) {
      error(mark_of(*e), path, "'" + *text + "' is not a duration; " + std::string(duration_hint));
      return false;
    }
    if ((!allow_zero && v->count() == 0) || *v > max) {
      error(mark_of(*e), path,
            std::string(allow_zero ? "must be at most " : "must be greater than 0 and at most ") +
                format_duration(max));
      return false;
    }
    if constexpr (std::is_same_v<Duration, milliseconds>) {
      out = *v;
    } else {
      const auto converted = std::chrono::duration_cast<Duration>(*v);
      if (converted != *v) {
        error(mark_of(*e), path, "'" + *text + "' must be a whole number of seconds (e.g. 5m, 30s)");
        return false;
      }
      out = converted;
    }
    return true;
  }

  bool read_label(const section& s, std::string_view key, std::string& out, bool required) {
    std::string v;
    if (!read_string(s, key, v, required)) return false;
    if (!is_valid_label_value(v)) {
      error(mark_of(*s.get(key)), child(s.path(), key),
            "'" + v + "' is not a valid " + std::string(key) + "; " + std::string(label_hint));
      return false;
    }
    out = std::move(v);
    return true;
  }

  bool read_env_name(const section& s, std::string_view key, std::string& out, bool required) {
    std::string v;
    if (!read_string(s, key, v, required)) return false;
    if (!v.empty() && !is_env_name(v)) {
      error(mark_of(*s.get(key)), child(s.path(), key),
            "'" + v + "' is not an environment variable name; use letters, digits and _ " +
                "(not starting with a digit), without a leading $");
      return false;
    }
    out = std::move(v);
    return true;
  }

  /// Value of `name` in the (injected) environment; empty when unset.
  std::optional<std::string> env(const std::string& name) const {
    const char* v = getenv_(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  }

  void require_env_set(const entry& e, const std::string& path, const std::string& name,
                       std::string_view purpose) {
    const auto v = env(name);
    if (!v) {
      error(mark_of(e), path,
            "environment variable '" + name + "' is not set; export it before starting the proxy (" +
                std::string(purpose) + ")");
    } else if (v->empty()) {
      error(mark_of(e), path,
            "environment variable '" + name + "' is set but empty (" + std::string(purpose) + ")");
    }
  }

  void missing(const section& s, std::string_view key) {
    error(s.mark(), child(s.path(), key),
          "missing required key '" + std::string(key) + "'; add '" + std::string(key) +
              ": ...' here");
  }

  /// Resolves `value` against the config file's directory and checks it names a readable
  /// regular file. Returns the resolved path, or empty after reporting an error.
  std::string readable_file(const entry& e, const std::string& path, const std::string& value) {
    const std::string resolved = resolve(value);
    const std::string origin =
        std::filesystem::path(value).is_relative()
            ? " (resolved from '" + value + "' relative to the config file's directory)"
            : "";
    std::error_code ec;
    const auto status = std::filesystem::status(resolved, ec);
    if (ec || !std::filesystem::exists(status)) {
      error(mark_of(e), path, "file '" + resolved + "' does not exist" + origin);
      return {};
    }
    if (!std::filesystem::is_regular_file(status)) {
      error(mark_of(e), path, "'" + resolved + "' is not a regular file" + origin);
      return {};
    }
    std::ifstream probe(resolved, std::ios::binary);
    if (!probe) {
      error(mark_of(e), path,
            "file '" + resolved + "' cannot be read; check its permissions" + origin);
      return {};
    }
    return resolved;
  }

  std::string resolve(const std::string& value) const {
    std::filesystem::path p(value);
    if (p.is_relative()) p = base_dir_ / p;
    return p.lexically_normal().string();
  }

  // ---- sections ----

  void parse(std::string_view yaml, config& cfg) {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (root.IsNull()) {
      error(YAML::Mark::null_mark(), "",
            "the config is empty; it needs at least a 'listeners' section");
      return;
    }
    const section top(*this, root, "", top_keys, root.Mark());
    if (!top.is_map()) return;

    parse_listeners(top, cfg);
    read_uint(top, "workers", cfg.workers, 0, 1024,
              "use 0 (one worker per core) or a number up to 1024");
    read_uint(top, "busy_poll_us", cfg.busy_poll_us, 0, 10000,
              "use 0 (off) or microseconds up to 10000");
    if (const entry* e = top.get("upstream")) parse_upstream(*e, cfg.upstream);
    if (const entry* e = top.get("auth")) parse_auth(*e, cfg.auth);
    if (const entry* e = top.get("limits")) parse_limits(*e, cfg.limits);
    if (const entry* e = top.get("http2")) parse_http2(*e, cfg.http2);
    if (const entry* e = top.get("logging")) parse_logging(*e, cfg.logging);
    if (const entry* e = top.get("admin")) parse_admin(*e, cfg.admin);
    if (const entry* e = top.get("pricing")) parse_pricing(*e, cfg);
    if (const entry* e = top.get("models")) parse_models(*e, cfg.models);
    if (const entry* e = top.get("ledger")) parse_ledger(*e, cfg.ledger);
    if (const entry* e = top.get("metering")) parse_metering(*e, cfg.metering);
    if (const entry* e = top.get("budgets")) parse_budgets(*e, cfg.budgets);
    cross_checks(top, cfg);
  }

  void parse_listeners(const section& top, config& cfg) {
    const entry* e = top.get("listeners");
    if (e == nullptr || e->value.IsNull()) {
      error(e != nullptr ? mark_of(*e) : top.mark(), "listeners",
            "no listeners; add at least one, e.g. 'listeners: [{address: 127.0.0.1, port: 8080}]'");
      return;
    }
    if (!e->value.IsSequence()) {
      error(mark_of(*e), "listeners",
            "expected a list of listeners, got " + std::string(type_name(e->value)));
      return;
    }
    if (e->value.size() == 0) {
      error(mark_of(*e), "listeners",
            "no listeners; add at least one, e.g. '- {address: 127.0.0.1, port: 8080}'");
      return;
    }
    struct seen_listener {
      std::string key;
      int line;
    };
    std::vector<seen_listener> seen;
    std::size_t i = 0;
    for (const auto& item : e->value) {
      const std::string path = index_path("listeners", i++);
      const section s(*this, item, path, listener_keys, item.Mark());
      if (!s.is_map()) continue;
      listener_marks_.push_back(s.mark());
      listener_config l;
      bool ok = read_string(s, "address", l.address, false);
      if (ok && !is_ip_literal(l.address)) {
        error(mark_of(*s.get("address")), child(path, "address"),
              "'" + l.address + "' is not an IP address; use e.g. 127.0.0.1, 0.0.0.0 or :: " +
                  "(IPv6 without brackets)");
      }
      const bool port_ok = s.get("port") == nullptr || read_port(s, "port", l.port);
      if (const entry* t = s.get("tls")) l.tls = parse_tls(*t, child(path, "tls"));
      cfg.listeners.push_back(std::move(l));

      // Port 0 binds a different free port each time, so two of them do not collide.
      const listener_config& added = cfg.listeners.back();
      if (port_ok && added.port != 0) {
        std::string key = added.address + ":" + std::to_string(added.port);
        const auto dup = std::find_if(seen.begin(), seen.end(),
                                      [&](const seen_listener& x) { return x.key == key; });
        const YAML::Mark mark = s.get("port") != nullptr ? mark_of(*s.get("port")) : s.mark();
        if (dup != seen.end()) {
          error(mark, path,
                "duplicate listener " + key + " (already defined on line " +
                    std::to_string(dup->line) + "); give each listener its own address:port");
        } else {
          seen.push_back({std::move(key), mark.line + 1});
        }
      }
    }
  }

  std::optional<tls_files> parse_tls(const entry& e, const std::string& path) {
    if (e.value.IsNull()) {
      error(mark_of(e), path,
            "'tls' is empty; give cert_file and key_file, or remove 'tls' for plain HTTP");
      return std::nullopt;
    }
    const section s(*this, e.value, path, tls_keys, mark_of(e));
    if (!s.is_map()) return std::nullopt;
    tls_files files;
    std::string cert;
    std::string key;
    if (read_string(s, "cert_file", cert, true)) {
      files.cert_file = readable_file(*s.get("cert_file"), child(path, "cert_file"), cert);
    }
    if (read_string(s, "key_file", key, true)) {
      files.key_file = readable_file(*s.get("key_file"), child(path, "key_file"), key);
    }
    return files;
  }

  void parse_upstream(const entry& e, upstream_config& u) {
    if (e.value.IsNull()) return;
    const section s(*this, e.value, "upstream", upstream_keys, mark_of(e));
    if (!s.is_map()) return;
    if (read_string(s, "region", u.region, false) && !is_valid_region(u.region)) {
      error(mark_of(*s.get("region")), "upstream.region",
            "'" + u.region + "' is not an AWS region name; write e.g. us-east-1 or eu-west-3");
    }
    if (const entry* r = s.get("allowed_client_regions")) {
      parse_regions(*r, u.allowed_client_regions);
    }
    if (read_string(s, "endpoint", u.endpoint, false) && !u.endpoint.empty()) {
      check_endpoint(*s.get("endpoint"), u.endpoint);
    }
    if (read_string(s, "ca_file", u.ca_file, false) && !u.ca_file.empty()) {
      u.ca_file = readable_file(*s.get("ca_file"), "upstream.ca_file", u.ca_file);
    }
    if (read_bool(s, "verify_tls", u.verify_tls) && !u.verify_tls) {
      warn(mark_of(*s.get("verify_tls")), "upstream.verify_tls",
           "upstream TLS certificates are not verified; use this only against a local simulator");
    }
    if (const entry* c = s.get("credentials")) parse_credentials(*c, u.credentials);
    read_duration(s, "connect_timeout", u.connect_timeout, false);
    read_duration(s, "first_byte_timeout", u.first_byte_timeout, false);
    read_duration(s, "idle_timeout", u.idle_timeout, false);
    read_uint(s, "max_idle_connections", u.max_idle_connections, 1, 100000,
              "use a number from 1 to 100000 (idle upstream connections kept per worker)");
    read_duration(s, "pool_idle_time", u.pool_idle_time, false);
  }

  void parse_regions(const entry& e, std::vector<std::string>& out) {
    const std::string path = "upstream.allowed_client_regions";
    if (e.value.IsNull()) return;
    if (!e.value.IsSequence()) {
      error(mark_of(e), path,
            "expected a list of regions such as [us-west-2, eu-west-1], got " +
                std::string(type_name(e.value)));
      return;
    }
    std::size_t i = 0;
    for (const auto& item : e.value) {
      const std::string item_path = index_path(path, i++);
      if (!item.IsScalar()) {
        error(item.Mark(), item_path,
              "expected a region name, got " + std::string(type_name(item)));
        continue;
      }
      if (!is_valid_region(item.Scalar())) {
        error(item.Mark(), item_path,
              "'" + item.Scalar() + "' is not an AWS region name; write e.g. us-west-2");
        continue;
      }
      out.push_back(item.Scalar());
    }
  }

  void check_endpoint(const entry& e, std::string& endpoint) {
    const std::string path = "upstream.endpoint";
    const std::string fix =
        "; write http(s)://host[:port], e.g. https://bedrock-runtime.{region}.amazonaws.com or "
        "http://127.0.0.1:9000";
    std::string_view rest = endpoint;
    if (rest.starts_with("https://")) {
      rest.remove_prefix(8);
    } else if (rest.starts_with("http://")) {
      rest.remove_prefix(7);
    } else {
      error(mark_of(e), path, "'" + endpoint + "' must start with http:// or https://" + fix);
      return;
    }
    // Only a bare origin: the proxy forwards the client's path unchanged.
    const std::size_t slash = rest.find('/');
    if (slash != std::string_view::npos) {
      if (slash + 1 != rest.size()) {
        error(mark_of(e), path,
              "'" + endpoint + "' has a path, query or fragment; the endpoint is only scheme, " +
                  "host and port" + fix);
        return;
      }
      rest = rest.substr(0, slash);
    }
    std::string authority(rest);
    // `{region}` is the only placeholder; substitute a real region to check what remains.
    for (std::size_t at = authority.find("{region}"); at != std::string::npos;
         at = authority.find("{region}")) {
      authority.replace(at, 8, "us-east-1");
    }
    std::string_view host = authority;
    std::string_view port;
    if (host.starts_with('[')) {
      const std::size_t close = host.find(']');
      if (close == std::string_view::npos ||
          !is_ip_literal(std::string(host.substr(1, close - 1)))) {
        error(mark_of(e), path, "'" + endpoint + "' has a malformed IPv6 address" + fix);
        return;
      }
      const std::string_view after = host.substr(close + 1);
      host = host.substr(0, close + 1);
      if (!after.empty()) {
        if (!after.starts_with(':')) {
          error(mark_of(e), path, "'" + endpoint + "' is malformed after ']'" + fix);
          return;
        }
        port = after.substr(1);
        if (port.empty()) port = "x";  // "[::1]:" is malformed
      }
    } else if (const std::size_t colon = host.rfind(':'); colon != std::string_view::npos) {
      port = host.substr(colon + 1);
      if (port.empty()) port = "x";
      host = host.substr(0, colon);
    }
    const bool host_ok =
        !host.empty() && (host.starts_with('[') || std::all_of(host.begin(), host.end(), [](char c) {
                            return is_lower(c) || is_upper(c) || is_digit(c) || c == '.' ||
                                   c == '-';
                          }));
    if (!host_ok) {
      const bool placeholder = authority.find_first_of("{}") != std::string::npos;
      error(mark_of(e), path,
            "'" + endpoint + "' has an invalid host" +
                (placeholder ? std::string("; {region} is the only supported placeholder")
                             : std::string()) +
                fix);
      return;
    }
    if (!port.empty()) {
      const auto p = parse_uint(port);
      if (!p || *p == 0 || *p > 65535) {
        error(mark_of(e), path,
              "'" + endpoint + "' has an invalid port; use a number from 1 to 65535" + fix);
        return;
      }
    }
    // One spelling for the proxy to work with.
    if (endpoint.ends_with('/')) endpoint.pop_back();
  }

  void parse_credentials(const entry& e, upstream_credentials& c) {
    if (e.value.IsNull()) return;
    const std::string path = "upstream.credentials";
    const section s(*this, e.value, path, credentials_keys, mark_of(e));
    if (!s.is_map()) return;
    std::string source;
    if (read_string(s, "source", source, false)) {
      if (const auto parsed = parse_credential_source(source)) {
        c.source = *parsed;
      } else {
        std::string msg = "unknown credentials source '" + source + "'";
        if (const auto near = closest(source, credential_source_names); !near.empty()) {
          msg += "; did you mean '" + std::string(near) + "'? (valid: " +
                 join(credential_source_names) + ")";
        } else {
          msg += "; use one of: " + join(credential_source_names);
        }
        error(mark_of(*s.get("source")), child(path, "source"), std::move(msg));
      }
    }
    if (read_string(s, "profile", c.profile, false) && !c.profile.empty() &&
        c.source != credential_source::profile) {
      error(mark_of(*s.get("profile")), child(path, "profile"),
            "'profile' is only used with 'source: profile'; set the source to profile or remove "
            "'profile' (the default chain honours AWS_PROFILE)");
    }
    read_env_name(s, "bearer_token_env", c.bearer_token_env, false);
    if (c.source == credential_source::bearer) {
      if (c.bearer_token_env.empty()) {
        const entry* b = s.get("bearer_token_env");
        error(b != nullptr ? mark_of(*b) : s.mark(), child(path, "bearer_token_env"),
              "source 'bearer' needs 'bearer_token_env': the variable holding the Bedrock API key");
      } else if (is_env_name(c.bearer_token_env)) {
        // Without an explicit bearer_token_env, point at `source: bearer`, which asked for it.
        const entry* b = s.get("bearer_token_env");
        require_env_set(b != nullptr ? *b : *s.get("source"), child(path, "bearer_token_env"),
                        c.bearer_token_env, "it holds the upstream Bedrock API key");
      }
    }
    read_duration(s, "refresh_before", c.refresh_before, true, milliseconds(std::chrono::hours(1)));
  }

  void parse_auth(const entry& e, auth_config& a) {
    if (e.value.IsNull()) return;
    const section s(*this, e.value, "auth", auth_keys, mark_of(e));
    if (!s.is_map()) return;
    if (const entry* k = s.get("access_keys")) parse_access_keys(*k, a.access_keys);
    if (const entry* k = s.get("bearer_keys")) parse_bearer_keys(*k, a.bearer_keys);
    if (const entry* an = s.get("anonymous"); an != nullptr && !an->value.IsNull()) {
      const section as(*this, an->value, "auth.anonymous", anonymous_keys, mark_of(*an));
      if (as.is_map()) {
        read_bool(as, "enabled", a.anonymous.enabled);
        read_label(as, "team", a.anonymous.team, false);
        read_label(as, "app", a.anonymous.app, false);
        read_attributes(as, a.anonymous.attributes);
        if (a.anonymous.enabled) {
          warn(mark_of(*as.get("enabled")), "auth.anonymous.enabled",
               "anonymous access is on: unauthenticated requests are forwarded and billed to " +
                   a.anonymous.team + "/" + a.anonymous.app);
        }
      }
    }
    read_duration(s, "max_clock_skew", a.max_clock_skew, false,
                  milliseconds(std::chrono::hours(1)));
  }

  /// Checks that `e` is a list and yields each item as a section.
  template <typename F>
  void for_each_item(const entry& e, const std::string& path,
                     std::span<const std::string_view> keys, std::string_view what, F&& f) {
    if (e.value.IsNull()) return;
    if (!e.value.IsSequence()) {
      error(mark_of(e), path,
            "expected a list of " + std::string(what) + ", got " + std::string(type_name(e.value)));
      return;
    }
    std::size_t i = 0;
    for (const auto& item : e.value) {
      const section s(*this, item, index_path(path, i++), keys, item.Mark());
      if (s.is_map()) f(s);
    }
  }

  void parse_access_keys(const entry& e, std::vector<access_key>& out) {
    std::vector<std::pair<std::string, int>> seen;  // id, line
    for_each_item(e, "auth.access_keys", access_key_keys, "access keys", [&](const section& s) {
      access_key k;
      if (read_string(s, "access_key_id", k.access_key_id, true)) {
        const entry& id = *s.get("access_key_id");
        const bool format_ok = k.access_key_id.size() >= 16 && k.access_key_id.size() <= 128 &&
                               std::all_of(k.access_key_id.begin(), k.access_key_id.end(),
                                           [](char c) { return is_upper(c) || is_digit(c); });
        if (!format_ok) {
          error(mark_of(id), child(s.path(), "access_key_id"),
                "'" + k.access_key_id + "' is not a valid access key id; use 16 to 128 " +
                    "characters from A-Z and 0-9 (e.g. BMAKSEARCH0000000001)");
        } else if (const auto dup = std::find_if(seen.begin(), seen.end(),
                                                 [&](const auto& x) { return x.first == k.access_key_id; });
                   dup != seen.end()) {
          error(mark_of(id), child(s.path(), "access_key_id"),
                "duplicate access key id '" + k.access_key_id + "' (already defined on line " +
                    std::to_string(dup->second) + "); each key needs its own id");
        } else {
          seen.emplace_back(k.access_key_id, mark_of(id).line + 1);
        }
      }
      const entry* inline_secret = s.get("secret_access_key");
      const entry* env_secret = s.get("secret_env");
      if (inline_secret != nullptr && env_secret != nullptr) {
        error(mark_of(*env_secret), child(s.path(), "secret_env"),
              "give either 'secret_access_key' or 'secret_env', not both");
      } else if (inline_secret == nullptr && env_secret == nullptr) {
        error(s.mark(), child(s.path(), "secret_access_key"),
              "missing the secret; add 'secret_access_key: ...' or 'secret_env: VARIABLE_NAME'");
      } else if (inline_secret != nullptr) {
        read_string(s, "secret_access_key", k.secret_access_key, true);
      } else if (read_env_name(s, "secret_env", k.secret_env, true)) {
        const std::string path = child(s.path(), "secret_env");
        require_env_set(*env_secret, path, k.secret_env,
                        "it holds the secret for this access key; or put the secret inline in "
                        "secret_access_key");
        if (const auto v = env(k.secret_env)) k.secret_access_key = *v;
      }
      read_label(s, "team", k.team, true);
      read_label(s, "app", k.app, true);
      read_attributes(s, k.attributes);
      out.push_back(std::move(k));
    });
  }

  /// `tags` (a map of strings) and `allowed_models` (a list of model ids, `*` suffix = prefix).
  void read_attributes(const section& s, identity_attributes& out) {
    if (const entry* t = s.get("tags"); t != nullptr && !t->value.IsNull()) {
      const std::string path = child(s.path(), "tags");
      if (!t->value.IsMap()) {
        error(mark_of(*t), path,
              "expected a map of tags such as {cost_center: CC-1234}, got " +
                  std::string(type_name(t->value)));
      } else {
        for (const auto& kv : t->value) {
          const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
          if (!is_valid_label_value(key)) {
            error(kv.first.Mark(), path,
                  "'" + key + "' is not a valid tag name; " + std::string(label_hint));
            continue;
          }
          if (!kv.second.IsScalar()) {
            error(kv.second.Mark(), child(path, key), "a tag value must be a string");
            continue;
          }
          if (kv.second.Scalar().size() > 256) {
            error(kv.second.Mark(), child(path, key), "a tag value is at most 256 characters");
            continue;
          }
          out.tags[key] = kv.second.Scalar();
        }
      }
    }
    if (const entry* m = s.get("allowed_models"); m != nullptr && !m->value.IsNull()) {
      const std::string path = child(s.path(), "allowed_models");
      if (!m->value.IsSequence()) {
        error(mark_of(*m), path,
              "expected a list of model ids, e.g. [anthropic.claude-3-5-haiku-20241022-v1:0, "
              "\"amazon.nova-*\"], got " + std::string(type_name(m->value)));
        return;
      }
      std::size_t i = 0;
      for (const auto& item : m->value) {
        const std::string ipath = index_path(path, i++);
        const std::string v = item.IsScalar() ? item.Scalar() : std::string();
        const auto star = v.find('*');
        if (v.empty() || (star != std::string::npos && star + 1 != v.size())) {
          error(item.Mark(), ipath,
                "'" + v + "' is not a model id or prefix; write e.g. "
                "anthropic.claude-3-5-haiku-20241022-v1:0 or anthropic.claude-* ('*' only at the end)");
          continue;
        }
        out.allowed_models.push_back(v);
      }
    }
  }

  void parse_bearer_keys(const entry& e, std::vector<bearer_key>& out) {
    std::vector<std::pair<std::string, int>> seen;  // hash, line
    for_each_item(e, "auth.bearer_keys", bearer_key_keys, "bearer keys", [&](const section& s) {
      bearer_key k;
      if (read_string(s, "sha256", k.sha256, true)) {
        const entry& h = *s.get("sha256");
        const bool hex = k.sha256.size() == 64 &&
                         std::all_of(k.sha256.begin(), k.sha256.end(),
                                     [](char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); });
        if (!hex) {
          const bool upper = k.sha256.size() == 64 &&
                             std::all_of(k.sha256.begin(), k.sha256.end(), [](char c) {
                               return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
                             });
          error(mark_of(h), child(s.path(), "sha256"),
                upper ? std::string("use lowercase hex digits")
                      : "not a SHA-256 hash: expected 64 lowercase hex characters (got " +
                            std::to_string(k.sha256.size()) +
                            "); compute it with: printf %s \"$TOKEN\" | sha256sum");
        } else if (const auto dup = std::find_if(seen.begin(), seen.end(),
                                                 [&](const auto& x) { return x.first == k.sha256; });
                   dup != seen.end()) {
          error(mark_of(h), child(s.path(), "sha256"),
                "duplicate bearer key hash (already defined on line " +
                    std::to_string(dup->second) + "); each token must be distinct");
        } else {
          seen.emplace_back(k.sha256, mark_of(h).line + 1);
        }
      }
      read_label(s, "team", k.team, true);
      read_label(s, "app", k.app, true);
      read_label(s, "name", k.name, false);
      read_attributes(s, k.attributes);
      out.push_back(std::move(k));
    });
  }

  void parse_limits(const entry& e, limits_config& l) {
    if (e.value.IsNull()) return;
    const section s(*this, e.value, "limits", limits_keys, mark_of(e));
    if (!s.is_map()) return;
    read_size(s, "max_header_bytes", l.max_header_bytes);
    read_size(s, "max_body_bytes", l.max_body_bytes);
    read_uint(s, "max_connections", l.max_connections, 1, std::numeric_limits<std::uint32_t>::max(),
              "use a number greater than 0");
    read_duration(s, "header_timeout", l.header_timeout, false);
    read_duration(s, "body_timeout", l.body_timeout, false);
    read_duration(s, "idle_timeout", l.idle_timeout, false);
    read_duration(s, "exchange_timeout", l.exchange_timeout, false);
    read_duration(s, "shutdown_grace", l.shutdown_grace, false);
  }

  void parse_http2(const entry& e, http2_config& h) {
    if (e.value.IsNull()) return;
    const section s(*this, e.value, "http2", http2_keys, mark_of(e));
    if (!s.is_map()) return;
    const std::string positive = "use a number greater than 0";
    read_uint(s, "max_concurrent_streams", h.max_concurrent_streams, 1, 1u << 20, positive);
    // Below 1 KiB no real SDK request's headers fit; above 16 MiB HPACK becomes a memory lever.
    read_uint(s, "max_header_list_bytes", h.max_header_list_bytes, 1024, 16u << 20,
              "use a size between 1024 and 16777216 bytes");
    read_uint(s, "max_resets_per_window", h.max_resets_per_window, 1, 1u << 20, positive);
    read_uint(s, "max_settings_per_window", h.max_settings_per_window, 1, 1u << 20, positive);
    read_uint(s, "max_pings_per_window", h.max_pings_per_window, 1, 1u << 20, positive);
    read_uint(s, "max_empty_frames_per_window", h.max_empty_frames_per_window, 1, 1u << 20,
              positive);
    read_duration(s, "flood_window", h.flood_window, false);
  }

  void parse_logging(const entry& e, logging_config& l) {
    if (e.value.IsNull()) return;
    const section s(*this, e.value, "logging", logging_keys, mark_of(e));
    if (!s.is_map()) return;
    std::string level;
    if (read_string(s, "level", level, false)) {
      if (std::find(log_levels.begin(), log_levels.end(), level) != log_levels.end()) {
        l.level = level;
      } else {
        std::string msg = "unknown log level '" + level + "'";
        if (const auto near = closest(level, log_levels); !near.empty()) {
          msg += "; did you mean '" + std::string(near) + "'? (valid: " + join(log_levels) + ")";
        } else {
          msg += "; use one of: " + join(log_levels);
        }
        error(mark_of(*s.get("level")), "logging.level", std::move(msg));
      }
    }
    std::string access_log;
    if (read_string(s, "access_log", access_log, false)) {
      if (access_log.empty()) {
        error(mark_of(*s.get("access_log")), "logging.access_log",
              "empty; write stdout, off, or a file path");
      } else if (access_log == "stdout" || access_log == "off") {
        l.access_log = access_log;
      } else {
        // The file itself may not exist yet, but its directory must.
        l.access_log = resolve(access_log);
        std::error_code ec;
        const auto dir = std::filesystem::path(l.access_log).parent_path();
        if (!std::filesystem::is_directory(dir, ec)) {
          error(mark_of(*s.get("access_log")), "logging.access_log",
                "directory '" + dir.string() + "' does not exist; create it or choose another path");
        }
      }
    }
  }

  void parse_admin(const entry& e, admin_config& a) {
    if (e.value.IsNull()) return;
    const section s(*this, e.value, "admin", admin_keys, mark_of(e));
    if (!s.is_map()) return;
    read_bool(s, "enabled", a.enabled);
    if (read_string(s, "address", a.address, false) && !is_ip_literal(a.address)) {
      error(mark_of(*s.get("address")), "admin.address",
            "'" + a.address + "' is not an IP address; use e.g. 127.0.0.1 or 0.0.0.0");
    }
    if (read_port(s, "port", a.port)) admin_port_mark_ = mark_of(*s.get("port"));
    if (read_env_name(s, "token_env", a.token_env, false) && !a.token_env.empty() && a.enabled) {
      require_env_set(*s.get("token_env"), "admin.token_env", a.token_env,
                      "it holds the token admin requests must present");
    }
  }

  void parse_pricing(const entry& e, config& cfg) {
    pricing_config& p = cfg.pricing;
    const section s(*this, e.value, "pricing", pricing_keys, mark_of(e));
    if (!s.is_map()) return;
    std::string path;
    // No default: the shipped table is one choice among several (a synced or edited copy), and
    // pricing with a table nobody chose would look authoritative.
    if (read_string(s, "rate_table", path, true)) {
      const entry& f = *s.get("rate_table");
      const std::string resolved = readable_file(f, "pricing.rate_table", path);
      if (!resolved.empty()) {
        p.rate_table = resolved;
        auto r = load_rate_table_file(resolved);
        if (!r.errors.empty()) {
          error(mark_of(f), "pricing.rate_table",
                "rate table '" + resolved + "' has " + std::to_string(r.errors.size()) +
                    (r.errors.size() == 1 ? " error" : " errors") +
                    " (listed with its own file:line); fix the table or point at another one");
        }
        for (auto& err : r.errors) errors_.push_back(std::move(err));
        for (auto& w : r.warnings) warnings_.push_back(std::move(w));
        cfg.rate_table = std::move(r.table);
      }
    }
    if (const entry* r = s.get("reload"); r != nullptr && !r->value.IsNull()) {
      const section rs(*this, r->value, "pricing.reload", reload_keys, mark_of(*r));
      if (rs.is_map()) {
        read_bool(rs, "watch", p.reload.watch);
        read_duration(rs, "poll_interval", p.reload.poll_interval, false,
                      milliseconds(std::chrono::hours(1)));
      }
    }
  }

  void parse_models(const entry& e, models_config& out) {
    if (e.value.IsNull()) return;
    const section s(*this, e.value, "models", models_keys, mark_of(e));
    if (!s.is_map()) return;
    const entry* list = s.get("mappings");
    if (list == nullptr) return;
    std::vector<std::pair<std::string, int>> seen;  // arn, line
    for_each_item(*list, "models.mappings", mapping_keys, "mappings", [&](const section& m) {
      metering::model_mapping mapping;
      bool ok = true;
      if (read_string(m, "arn", mapping.arn, true)) {
        const entry& a = *m.get("arn");
        ok &= check_mapping_arn(a, child(m.path(), "arn"), mapping.arn);
        if (const auto dup = std::find_if(seen.begin(), seen.end(),
                                          [&](const auto& x) { return x.first == mapping.arn; });
            dup != seen.end()) {
          error(mark_of(a), child(m.path(), "arn"),
                "duplicate mapping for '" + mapping.arn + "' (already mapped on line " +
                    std::to_string(dup->second) + "); keep one");
          ok = false;
        } else {
          seen.emplace_back(mapping.arn, mark_of(a).line + 1);
        }
      } else {
        ok = false;
      }
      if (read_string(m, "base_model", mapping.base_model, true)) {
        const auto resolved = metering::resolve_model(mapping.base_model);
        if (resolved.base_model.empty()) {
          error(mark_of(*m.get("base_model")), child(m.path(), "base_model"),
                "'" + mapping.base_model + "' is not a base model or inference-profile id; " +
                    "write e.g. anthropic.claude-3-5-sonnet-20240620-v1:0 or " +
                    "us.anthropic.claude-3-5-sonnet-20240620-v1:0");
          ok = false;
        } else {
          mapping_marks_.push_back({mapping.base_model, resolved.base_model,
                                    mark_of(*m.get("base_model")),
                                    child(m.path(), "base_model")});
        }
      } else {
        ok = false;
      }
      read_label(m, "team", mapping.team, false);
      read_label(m, "app", mapping.app, false);
      if (const entry* h = m.get("hourly_usd")) {
        const std::string path = child(m.path(), "hourly_usd");
        // Exact decimal text, like rate-table prices; at most 6 decimals.
        const auto micro = h->value.IsScalar()
                               ? metering::parse_rate_per_million(trim(h->value.Scalar()))
                               : std::nullopt;
        if (!micro || *micro == 0) {
          error(mark_of(*h), path,
                "expected a positive USD amount per hour such as \"44.00\" (at most 6 decimals)");
          ok = false;
        } else {
          mapping.hourly_usd = static_cast<double>(*micro) / 1e6;
        }
      }
      if (ok) out.mappings.push_back(std::move(mapping));
    });
  }

  /// A mapping names one ARN whose id carries no base model (or a bare profile id).
  bool check_mapping_arn(const entry& e, const std::string& path, const std::string& arn) {
    if (!arn.starts_with("arn:")) {
      // A bare application-profile or provisioned-model id, as some SDKs send it.
      const bool ok = std::all_of(arn.begin(), arn.end(), [](char c) {
        return is_lower(c) || is_upper(c) || is_digit(c) || c == '.' || c == '-' || c == ':' ||
               c == '_' || c == '/';
      });
      if (!ok) {
        error(mark_of(e), path,
              "'" + arn + "' is neither an ARN nor a model id; write the full ARN, e.g. " +
                  "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123");
      }
      return ok;
    }
    // arn:PARTITION:bedrock:REGION:ACCOUNT:TYPE/ID
    std::vector<std::string_view> parts;
    std::string_view rest = arn;
    for (int i = 0; i < 5; ++i) {
      const std::size_t colon = rest.find(':');
      if (colon == std::string_view::npos) break;
      parts.push_back(rest.substr(0, colon));
      rest.remove_prefix(colon + 1);
    }
    parts.push_back(rest);
    const std::string fix =
        "; write arn:aws:bedrock:REGION:ACCOUNT:TYPE/ID, e.g. "
        "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123";
    if (parts.size() != 6 || !parts[1].starts_with("aws") || parts[2] != "bedrock") {
      error(mark_of(e), path, "'" + arn + "' is not a Bedrock ARN" + fix);
      return false;
    }
    if (!is_valid_region(parts[3])) {
      error(mark_of(e), path, "'" + std::string(parts[3]) + "' in the ARN is not a region" + fix);
      return false;
    }
    const std::size_t slash = parts[5].find('/');
    const std::string_view type = parts[5].substr(0, slash);
    if (slash == std::string_view::npos || slash + 1 == parts[5].size() ||
        std::find(mappable_arn_types.begin(), mappable_arn_types.end(), type) ==
            mappable_arn_types.end()) {
      std::string msg = "'" + arn + "' has resource type '" + std::string(type) + "'";
      if (const auto near = closest(type, mappable_arn_types); !near.empty() && near != type) {
        msg += "; did you mean '" + std::string(near) + "'?";
      } else {
        msg += "; mappings take " + join(mappable_arn_types) + " ARNs ending in /ID";
      }
      error(mark_of(e), path, std::move(msg));
      return false;
    }
    return true;
  }

  void parse_ledger(const entry& e, ledger_config& l) {
    if (e.value.IsNull()) return;
    const section s(*this, e.value, "ledger", ledger_keys, mark_of(e));
    if (!s.is_map()) return;
    std::string path;
    if (read_string(s, "path", path, false) && !path.empty()) {
      // The file is created on first start; its directory must exist.
      l.path = resolve(path);
      std::error_code ec;
      const auto dir = std::filesystem::path(l.path).parent_path();
      if (!std::filesystem::is_directory(dir, ec)) {
        error(mark_of(*s.get("path")), "ledger.path",
              "directory '" + dir.string() + "' does not exist; create it or choose another path" +
                  (std::filesystem::path(path).is_relative()
                       ? " (resolved from '" + path + "' relative to the config file's directory)"
                       : std::string()));
      } else if (std::filesystem::is_directory(l.path, ec)) {
        error(mark_of(*s.get("path")), "ledger.path",
              "'" + l.path + "' is a directory; give the database file, e.g. " + path +
                  "/ledger.db");
      }
    }
    read_uint(s, "queue_capacity", l.queue_capacity, 1, 16'777'216,
              "use a number from 1 to 16777216 (records held in memory before appends wait)");
    read_uint(s, "batch_max", l.batch_max, 1, 1'000'000,
              "use a number from 1 to 1000000 (records per transaction)");
    if (l.batch_max > l.queue_capacity && s.get("batch_max") != nullptr) {
      error(mark_of(*s.get("batch_max")), "ledger.batch_max",
            "batch_max " + std::to_string(l.batch_max) + " is larger than queue_capacity " +
                std::to_string(l.queue_capacity) + "; a batch cannot exceed the queue");
    }
    read_duration(s, "flush_interval", l.flush_interval, false, milliseconds(std::chrono::minutes(1)));
  }

  void parse_metering(const entry& e, metering_config& mc) {
    if (e.value.IsNull()) return;
    const section s(*this, e.value, "metering", metering_keys, mark_of(e));
    if (!s.is_map()) return;
    read_bool(s, "drain_on_client_abort", mc.drain_on_client_abort);
    read_duration(s, "drain_timeout", mc.drain_timeout, false, milliseconds(std::chrono::hours(1)));
    read_uint(s, "max_concurrent_drains", mc.max_concurrent_drains, 1, 1'000'000,
              "use a number from 1 to 1000000 (streams drained at once after client aborts)");
  }

  bool check_zone(const entry& e, const std::string& path, const std::string& name) {
    const auto z = metering::load_zone(name);
    if (z.zone) return true;
    error(mark_of(e), path,
          "unknown time zone '" + name + "' (" + z.error +
              "); use an IANA name such as UTC, Europe/Berlin or America/New_York");
    return false;
  }

  void parse_budgets(const entry& e, budgets_config& b) {
    if (e.value.IsNull()) return;
    const section s(*this, e.value, "budgets", budgets_keys, mark_of(e));
    if (!s.is_map()) return;
    if (read_string(s, "time_zone", b.time_zone, false))
      check_zone(*s.get("time_zone"), "budgets.time_zone", b.time_zone);
    if (const entry* st = s.get("store")) {
      std::string v;
      if (read_string(s, "store", v, true)) {
        if (v == "local") b.store = budget_store_kind::local;
        else if (v == "redis") b.store = budget_store_kind::redis;
        else error(mark_of(*st), "budgets.store", "'" + v + "' is not a store; use local or redis");
      }
    }
    if (const entry* f = s.get("on_store_unavailable")) {
      std::string v;
      if (read_string(s, "on_store_unavailable", v, true)) {
        if (v == "open") b.on_store_unavailable = budget_store_fallback::open;
        else if (v == "closed") b.on_store_unavailable = budget_store_fallback::closed;
        else
          error(mark_of(*f), "budgets.on_store_unavailable",
                "'" + v + "' is not a fallback; use open (admit, count the failure) or closed "
                "(refuse requests under block budgets)");
      }
    }
    const entry* r = s.get("redis");
    if (r != nullptr && !r->value.IsNull()) {
      const section rs(*this, r->value, "budgets.redis", redis_keys, mark_of(*r));
      if (rs.is_map()) {
        read_string(rs, "host", b.redis.host, false);
        read_port(rs, "port", b.redis.port);
        if (read_string(rs, "unix_socket", b.redis.unix_socket, false) &&
            !b.redis.unix_socket.empty())
          b.redis.unix_socket = resolve(b.redis.unix_socket);
        if (read_env_name(rs, "password_env", b.redis.password_env, false) &&
            !b.redis.password_env.empty()) {
          require_env_set(*rs.get("password_env"), "budgets.redis.password_env",
                          b.redis.password_env, "it holds the Redis password");
          if (const auto v = env(b.redis.password_env)) b.redis.password = *v;
        }
        read_uint(rs, "db", b.redis.db, 0, 1'000'000, "use a Redis database number (0-15 usually)");
        read_duration(rs, "timeout", b.redis.timeout, false, milliseconds(std::chrono::seconds(10)));
        read_string(rs, "key_prefix", b.redis.key_prefix, false);
      }
    }
    if (b.store == budget_store_kind::redis && r == nullptr)
      warn(mark_of(*s.get("store")), "budgets.store",
           "store is redis without a 'redis' section: using 127.0.0.1:6379");
    read_uint(s, "default_max_output_tokens", b.default_max_output_tokens, 1, 10'000'000,
              "use a token count from 1 to 10000000");
    if (const entry* m = s.get("max_output_tokens"); m != nullptr && !m->value.IsNull()) {
      if (!m->value.IsMap()) {
        error(mark_of(*m), "budgets.max_output_tokens",
              "expected a map of base model id to output token cap, got " +
                  std::string(type_name(m->value)));
      } else {
        for (const auto& kv : m->value) {
          const std::string model = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
          const auto v = kv.second.IsScalar() ? parse_uint(trim(kv.second.Scalar())) : std::nullopt;
          if (!v || *v == 0 || *v > 10'000'000) {
            error(kv.second.Mark(), child("budgets.max_output_tokens", model),
                  "expected a token count from 1 to 10000000");
            continue;
          }
          b.max_output_tokens[model] = *v;
        }
      }
    }
    if (const entry* d = s.get("definitions")) {
      std::vector<std::pair<std::string, int>> seen;
      for_each_item(*d, "budgets.definitions", budget_keys, "budgets", [&](const section& bs) {
        budget_entry be;
        if (parse_budget(bs, b, be)) {
          const auto dup = std::find_if(seen.begin(), seen.end(),
                                        [&](const auto& x) { return x.first == be.def.name; });
          if (dup != seen.end()) {
            error(mark_of(*bs.get("name")), child(bs.path(), "name"),
                  "duplicate budget name '" + be.def.name + "' (already used on line " +
                      std::to_string(dup->second) + ")");
            return;
          }
          seen.emplace_back(be.def.name, mark_of(*bs.get("name")).line + 1);
          b.definitions.push_back(std::move(be));
        }
      });
    }
  }

  bool parse_budget(const section& bs, const budgets_config& b, budget_entry& be) {
    bool ok = read_label(bs, "name", be.def.name, true);
    if (const entry* sc = bs.get("scope"); sc != nullptr && !sc->value.IsNull()) {
      const section ss(*this, sc->value, child(bs.path(), "scope"), scope_keys, mark_of(*sc));
      if (ss.is_map()) {
        std::string v;
        if (read_label(ss, "team", v, false)) be.def.scope.team = v;
        if (read_label(ss, "app", v, false)) be.def.scope.app = v;
        if (read_string(ss, "identity", v, false)) be.def.scope.identity = v;
        if (read_string(ss, "model", v, false)) {
          const auto resolved = metering::resolve_model(v);
          be.def.scope.model = resolved.base_model.empty() ? v : resolved.base_model;
        }
      } else {
        ok = false;
      }
    }
    std::string period = "monthly";
    const entry* pe = bs.get("period");
    if (read_string(bs, "period", period, false)) {
      if (period == "daily") be.def.period.kind = metering::period_kind::daily;
      else if (period == "weekly") be.def.period.kind = metering::period_kind::weekly;
      else if (period == "monthly") be.def.period.kind = metering::period_kind::monthly;
      else if (period == "custom") be.def.period.kind = metering::period_kind::custom;
      else {
        const auto hint = closest(period, period_names);
        error(mark_of(*pe), child(bs.path(), "period"),
              "'" + period + "' is not a period; use daily, weekly, monthly or custom" +
                  (hint.empty() ? std::string() : " (did you mean '" + std::string(hint) + "'?)"));
        ok = false;
      }
    }
    const entry* ps = bs.get("period_start");
    const entry* pd = bs.get("period_days");
    if (be.def.period.kind == metering::period_kind::custom) {
      std::string start;
      if (read_string(bs, "period_start", start, true)) {
        unsigned y = 0, m = 0, d = 0;
        char tail = 0;
        const std::chrono::year_month_day ymd =
            std::sscanf(start.c_str(), "%4u-%2u-%2u%c", &y, &m, &d, &tail) == 3
                ? std::chrono::year_month_day(std::chrono::year(static_cast<int>(y)),
                                              std::chrono::month(m), std::chrono::day(d))
                : std::chrono::year_month_day{};
        if (!ymd.ok()) {
          error(mark_of(*ps), child(bs.path(), "period_start"),
                "'" + start + "' is not a date; write YYYY-MM-DD (local midnight in the budget's zone)");
          ok = false;
        } else {
          be.def.period.custom_start = ymd;
        }
      } else {
        ok = false;
      }
      if (pd == nullptr) {
        missing(bs, "period_days");
        ok = false;
      } else {
        ok &= read_uint(bs, "period_days", be.def.period.custom_days, 1, 3660,
                        "use a number of days from 1 to 3660");
      }
    } else {
      for (const entry* extra : {ps, pd}) {
        if (extra == nullptr) continue;
        error(mark_of(*extra), child(bs.path(), extra->key),
              "'" + extra->key + "' only applies to 'period: custom'");
        ok = false;
      }
    }
    be.time_zone = b.time_zone;
    if (read_string(bs, "time_zone", be.time_zone, false))
      ok &= check_zone(*bs.get("time_zone"), child(bs.path(), "time_zone"), be.time_zone);
    if (const entry* l = bs.get("limit_usd")) {
      const auto micro = l->value.IsScalar()
                             ? metering::parse_rate_per_million(trim(l->value.Scalar()))
                             : std::nullopt;
      if (!micro || *micro == 0) {
        error(mark_of(*l), child(bs.path(), "limit_usd"),
              "expected a positive USD amount such as 500 or \"1250.50\" (at most 6 decimals)");
        ok = false;
      } else {
        be.def.limit = static_cast<metering::pico_usd>(*micro) * 1'000'000;
      }
    } else {
      missing(bs, "limit_usd");
      ok = false;
    }
    be.def.warning_percents = {50, 80, 100};
    if (const entry* w = bs.get("warn_at"); w != nullptr) {
      be.def.warning_percents.clear();
      const std::string path = child(bs.path(), "warn_at");
      if (!w->value.IsNull() && !w->value.IsSequence()) {
        error(mark_of(*w), path, "expected a list of percentages such as [50, 80, 100]");
        ok = false;
      } else if (w->value.IsSequence()) {
        for (const auto& item : w->value) {
          const auto v = item.IsScalar() ? parse_uint(trim(item.Scalar())) : std::nullopt;
          if (!v || *v < 1 || *v > 1000) {
            error(item.Mark(), path, "a threshold is a whole percentage from 1 to 1000");
            ok = false;
            continue;
          }
          be.def.warning_percents.push_back(static_cast<int>(*v));
        }
        std::sort(be.def.warning_percents.begin(), be.def.warning_percents.end());
        be.def.warning_percents.erase(
            std::unique(be.def.warning_percents.begin(), be.def.warning_percents.end()),
            be.def.warning_percents.end());
      }
    }
    std::string action = "alert";
    if (read_string(bs, "action", action, false)) {
      if (action == "alert") be.def.action = metering::budget_action::alert;
      else if (action == "block") be.def.action = metering::budget_action::block;
      else {
        error(mark_of(*bs.get("action")), child(bs.path(), "action"),
              "'" + action + "' is not an action; use alert (metrics and log only) or block "
              "(refuse new requests once the limit is reached)");
        ok = false;
      }
    }
    if (ok) {
      if (const auto why = metering::validate_budget(be.def); !why.empty()) {
        error(bs.mark(), bs.path(), why);
        ok = false;
      }
    }
    return ok;
  }

  void cross_checks(const section& top, const config& cfg) {
    if (cfg.admin.enabled && cfg.admin.port != 0) {
      for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
        const auto& l = cfg.listeners[i];
        if (l.port == cfg.admin.port && l.address == cfg.admin.address) {
          error(admin_port_mark_, "admin.port",
                "admin listener " + l.address + ":" + std::to_string(l.port) +
                    " is the same as listeners[" + std::to_string(i) +
                    "]; give the admin endpoint another port");
        }
      }
    }
    for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
      const auto& l = cfg.listeners[i];
      if (!l.tls && !is_loopback(l.address)) {
        warn(listener_marks_.at(i), index_path("listeners", i),
             "plain HTTP on non-loopback address '" + l.address +
                 "': bearer tokens would travel unencrypted; add 'tls' or bind 127.0.0.1");
      }
    }
    if (top.get("pricing") == nullptr) {
      warn(top.mark(), "pricing",
           "no pricing section: every request is counted as unpriced and no spend is recorded; "
           "add 'pricing: {rate_table: rates/bedrock.yaml}'");
    }
    if (cfg.ledger.path.empty()) {
      const entry* l = top.get("ledger");
      warn(l != nullptr ? l->key_node.Mark() : top.mark(), "ledger.path",
           "no ledger: spend lives only in Prometheus counters, which restart from zero with the "
           "process; add 'ledger: {path: ledger.db}'");
    }
    if (!cfg.budgets.definitions.empty() && cfg.ledger.path.empty()) {
      warn(top.get("budgets")->key_node.Mark(), "budgets",
           "budgets without a ledger start every process at zero spend; add 'ledger: {path: ...}' "
           "so period-to-date spend survives restarts");
    }
    if (!cfg.budgets.definitions.empty() && cfg.rate_table == nullptr) {
      warn(top.get("budgets")->key_node.Mark(), "budgets",
           "budgets without a rate table never see any spend; add 'pricing: {rate_table: ...}'");
    }
    if (cfg.rate_table != nullptr) {
      for (const auto& m : mapping_marks_) {
        bool priced = false;
        for (const auto& candidate : metering::base_model_candidates(m.base)) {
          priced |= cfg.rate_table->by_model.contains(candidate);
        }
        if (!priced) {
          warn(m.mark, m.path,
               "the rate table has no entry for '" + m.base + "' (from '" + m.written +
                   "'): requests through this mapping will be unpriced");
        }
      }
    }
    if (cfg.auth.access_keys.empty() && cfg.auth.bearer_keys.empty() &&
        !cfg.auth.anonymous.enabled) {
      const entry* auth = top.get("auth");
      warn(auth != nullptr ? auth->key_node.Mark() : top.mark(), "auth",
           "no access_keys, no bearer_keys and anonymous off: every request will be refused");
    }
  }

  std::string file_;
  std::filesystem::path base_dir_;
  env_lookup getenv_;
  std::vector<config_error> errors_;
  std::vector<config_error> warnings_;
  std::vector<YAML::Mark> listener_marks_;  // parallel to config::listeners, for later checks
  YAML::Mark admin_port_mark_ = YAML::Mark::null_mark();
  struct mapping_mark {
    std::string written;  // base_model as written
    std::string base;     // resolved base model
    YAML::Mark mark;
    std::string path;
  };
  std::vector<mapping_mark> mapping_marks_;  // checked against the rate table once it is loaded
};

section::section(loader& l, const YAML::Node& node, std::string path,
                 std::span<const std::string_view> known, YAML::Mark fallback_mark)
    : path_(std::move(path)), mark_(node.IsNull() ? fallback_mark : node.Mark()) {
  if (node.IsNull()) {
    // An empty section (`auth:`) is a map with no keys: everything takes its default.
    is_map_ = true;
    return;
  }
  if (!node.IsMap()) {
    l.error(mark_, path_,
            "expected a map of keys (" + join(known) + "), got " + std::string(type_name(node)));
    return;
  }
  is_map_ = true;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) {
      l.error(kv.first.Mark(), path_, "keys must be plain names, got " + std::string(type_name(kv.first)));
      continue;
    }
    const std::string& key = kv.first.Scalar();
    const std::string key_path = child(path_, key);
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string msg = std::string(path_.empty() ? "unknown section '" : "unknown key '") + key + "'";
      if (const auto near = closest(key, known); !near.empty()) {
        msg += "; did you mean '" + std::string(near) + "'?";
      } else {
        msg += "; valid keys here: " + join(known);
      }
      l.error(kv.first.Mark(), key_path, std::move(msg));
      continue;
    }
    if (const entry* first = get(key)) {
      // yaml-cpp keeps both and lookups would silently take the first.
      l.error(kv.first.Mark(), key_path,
              "duplicate key '" + key + "' (first on line " +
                  std::to_string(first->key_node.Mark().line + 1) + "); remove one");
      continue;
    }
    entries_.push_back({key, kv.first, kv.second});
  }
}

env_lookup effective(env_lookup getenv) {
  if (getenv != nullptr) return getenv;
  return [](const char* name) -> const char* { return std::getenv(name); };
}

}  // namespace

std::string_view closest_match(std::string_view word, std::span<const std::string_view> candidates) {
  return closest(word, candidates);
}

bool models_config::operator==(const models_config& other) const {
  return std::equal(mappings.begin(), mappings.end(), other.mappings.begin(), other.mappings.end(),
                    [](const metering::model_mapping& a, const metering::model_mapping& b) {
                      return a.arn == b.arn && a.base_model == b.base_model &&
                             a.hourly_usd == b.hourly_usd && a.team == b.team && a.app == b.app;
                    });
}

std::optional<milliseconds> parse_duration(std::string_view text) {
  const auto d = parse_duration_uncapped(text);
  if (!d || *d > max_duration) return std::nullopt;
  return d;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && is_digit(text[digits])) ++digits;
  const auto n = parse_uint(text.substr(0, digits));
  if (!n) return std::nullopt;
  const std::string_view unit = text.substr(digits);
  std::uint64_t multiplier = 0;
  if (unit.empty() || unit == "B") {
    multiplier = 1;
  } else if (unit == "KiB") {
    multiplier = 1024;
  } else if (unit == "MiB") {
    multiplier = 1024 * 1024;
  } else if (unit == "GiB") {
    multiplier = 1024 * 1024 * 1024;
  } else {
    return std::nullopt;
  }
  if (*n > std::numeric_limits<std::uint64_t>::max() / multiplier) return std::nullopt;
  return *n * multiplier;
}

bool is_valid_region(std::string_view region) {
  std::vector<std::string_view> parts;
  while (true) {
    const std::size_t dash = region.find('-');
    parts.push_back(region.substr(0, dash));
    if (dash == std::string_view::npos) break;
    region.remove_prefix(dash + 1);
  }
  if (parts.size() != 3 && parts.size() != 4) return false;
  if (parts[0].size() != 2 || !all_of(parts[0], is_lower)) return false;
  if (parts.size() == 4) {
    const std::string_view partition = parts[1];
    const bool iso = partition.starts_with("iso") &&
                     std::all_of(partition.begin() + 3, partition.end(), is_lower);
    if (partition != "gov" && !iso) return false;
  }
  return all_of(parts[parts.size() - 2], is_lower) && all_of(parts.back(), is_digit);
}

bool is_valid_label_value(std::string_view value) {
  return !value.empty() && value.size() <= 64 &&
         std::all_of(value.begin(), value.end(), [](char c) {
           return is_lower(c) || is_upper(c) || is_digit(c) || c == '_' || c == '.' || c == '-';
         });
}

std::string_view to_string(credential_source source) {
  return credential_source_names.at(static_cast<std::size_t>(source));
}

std::optional<credential_source> parse_credential_source(std::string_view text) {
  for (std::size_t i = 0; i < credential_source_names.size(); ++i) {
    if (credential_source_names[i] == text) return static_cast<credential_source>(i);
  }
  return std::nullopt;
}

load_result load_string(std::string_view yaml, std::string_view file_name, env_lookup getenv) {
  std::error_code ec;
  auto base = std::filesystem::absolute(std::filesystem::path(file_name), ec).parent_path();
  if (ec) base = std::filesystem::current_path(ec);
  loader l(std::string(file_name), base.lexically_normal(), effective(getenv));
  return l.run(yaml, std::string(file_name));
}

load_result load_file(const std::string& path, env_lookup getenv) {
  std::error_code ec;
  const auto absolute = std::filesystem::absolute(path, ec).lexically_normal();
  const auto fail = [&](std::string message) {
    load_result r;
    config_error e;
    e.file = path;
    e.message = std::move(message);
    r.errors.push_back(std::move(e));
    return r;
  };
  const auto status = std::filesystem::status(absolute, ec);
  if (ec || !std::filesystem::exists(status)) return fail("config file does not exist");
  if (!std::filesystem::is_regular_file(status)) return fail("config path is not a regular file");
  std::ifstream in(absolute, std::ios::binary);
  if (!in) return fail("config file cannot be read; check its permissions");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail("error while reading the config file");
  loader l(path, absolute.parent_path(), effective(getenv));
  return l.run(text.str(), absolute.string());
}

}  // namespace bedrock_meter::config
