// The operational sections: `limits` (client connections), `http2` (session limits and abuse
// defences), `logging` and `admin` (the metrics and admin listener).
#include "config/loader.hpp"

#include <limits>
#include <system_error>

namespace bedrock_meter::config {
namespace {

constexpr std::array<std::string_view, 9> limits_keys = {
    "max_header_bytes", "max_body_bytes", "max_connections", "max_connections_per_client",
    "header_timeout",   "body_timeout",   "idle_timeout",    "exchange_timeout",
    "shutdown_grace"};
constexpr std::array<std::string_view, 7> http2_keys = {"max_concurrent_streams",
                                                        "max_header_list_bytes",
                                                        "max_resets_per_window",
                                                        "max_settings_per_window",
                                                        "max_pings_per_window",
                                                        "max_empty_frames_per_window",
                                                        "flood_window"};
constexpr std::array<std::string_view, 2> logging_keys = {"level", "access_log"};
constexpr std::array<std::string_view, 4> admin_keys = {"enabled", "address", "port", "token_env"};

constexpr enum_table<std::string_view, 6> log_levels{
    "log level",
    {"trace", "debug", "info", "warn", "error", "off"},
    {"trace", "debug", "info", "warn", "error", "off"}};

/// `stdout`, `off`, or a file whose directory exists (the file itself is created on start).
void load_access_log(const load_context& ctx, const map_reader& s, logging_config& l) {
  std::string access_log;
  if (!s.read_string("access_log", access_log, text_rule::optional)) return;
  if (access_log.empty()) {
    s.error(*s.get("access_log"), "empty; write stdout, off, or a file path");
  } else if (access_log == "stdout" || access_log == "off") {
    l.access_log = access_log;
  } else {
    l.access_log = ctx.resolve(access_log);
    std::error_code ec;
    const auto dir = std::filesystem::path(l.access_log).parent_path();
    if (!std::filesystem::is_directory(dir, ec)) {
      s.error(*s.get("access_log"),
              "directory '" + dir.string() + "' does not exist; create it or choose another path");
    }
  }
}

}  // namespace

void load_limits(load_context& ctx, const map_entry& e, limits_config& l) {
  if (e.value.IsNull()) return;
  const map_reader s(ctx.diag(), e.value, "limits", limits_keys, e.mark());
  if (!s.is_map()) return;
  s.read_size("max_header_bytes", l.max_header_bytes);
  s.read_size("max_body_bytes", l.max_body_bytes);
  s.read_uint("max_connections", l.max_connections, 1, std::numeric_limits<std::uint32_t>::max(),
              "use a number greater than 0");
  s.read_uint("max_connections_per_client", l.max_connections_per_client, 0,
              std::numeric_limits<std::uint32_t>::max(), "use 0 (no limit) or a positive number");
  s.read_duration("header_timeout", l.header_timeout, false);
  s.read_duration("body_timeout", l.body_timeout, false);
  s.read_duration("idle_timeout", l.idle_timeout, false);
  s.read_duration("exchange_timeout", l.exchange_timeout, false);
  s.read_duration("shutdown_grace", l.shutdown_grace, false);
}

void load_http2(load_context& ctx, const map_entry& e, http2_config& h) {
  if (e.value.IsNull()) return;
  const map_reader s(ctx.diag(), e.value, "http2", http2_keys, e.mark());
  if (!s.is_map()) return;
  const std::string positive = "use a number greater than 0";
  s.read_uint("max_concurrent_streams", h.max_concurrent_streams, 1, 1u << 20, positive);
  // Below 1 KiB no real SDK request's headers fit; above 16 MiB HPACK becomes a memory lever.
  s.read_uint("max_header_list_bytes", h.max_header_list_bytes, 1024, 16u << 20,
              "use a size between 1024 and 16777216 bytes");
  s.read_uint("max_resets_per_window", h.max_resets_per_window, 1, 1u << 20, positive);
  s.read_uint("max_settings_per_window", h.max_settings_per_window, 1, 1u << 20, positive);
  s.read_uint("max_pings_per_window", h.max_pings_per_window, 1, 1u << 20, positive);
  s.read_uint("max_empty_frames_per_window", h.max_empty_frames_per_window, 1, 1u << 20, positive);
  s.read_duration("flood_window", h.flood_window, false);
}

void load_logging(load_context& ctx, const map_entry& e, logging_config& l) {
  if (e.value.IsNull()) return;
  const map_reader s(ctx.diag(), e.value, "logging", logging_keys, e.mark());
  if (!s.is_map()) return;
  if (std::string_view level; s.read_enum("level", log_levels, level, text_rule::optional)) {
    l.level = level;
  }
  load_access_log(ctx, s, l);
}

void load_admin(load_context& ctx, const map_entry& e, admin_config& a) {
  if (e.value.IsNull()) return;
  const map_reader s(ctx.diag(), e.value, "admin", admin_keys, e.mark());
  if (!s.is_map()) return;
  s.read_bool("enabled", a.enabled);
  if (s.read_string("address", a.address, text_rule::optional) && !is_ip_literal(a.address)) {
    s.error(*s.get("address"),
            "'" + a.address + "' is not an IP address; use e.g. 127.0.0.1 or 0.0.0.0");
  }
  if (s.read_port("port", a.port)) ctx.marks().admin_port = s.get("port")->mark();
  if (read_env_name(s, "token_env", a.token_env, text_rule::optional) && !a.token_env.empty() &&
      a.enabled) {
    ctx.require_env_set(*s.get("token_env"), "admin.token_env", a.token_env,
                        "it holds the token admin requests must present");
  }
}

}  // namespace bedrock_meter::config
