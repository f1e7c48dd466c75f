#pragma once
/// The named spdlog loggers: `proxy` (operations), `config` (loading and reloading) and `access`
/// (one JSON line per request; telemetry/access_log.hpp builds the line). Made once at startup by
/// the application; code finds them with spdlog::get(name). Never a secret in any of them.
#include <memory>

#include "config/config.hpp"

namespace spdlog {
class logger;
}  // namespace spdlog

namespace bedrock_meter::telemetry {

struct loggers {
  std::shared_ptr<spdlog::logger> proxy;
  std::shared_ptr<spdlog::logger> config;
  std::shared_ptr<spdlog::logger> access;  ///< null when `logging.access_log: off`
};

/// Registers the loggers for `cfg` (stderr for proxy/config; the access log on stdout, a file, or
/// off). Call once per process; `proxy` becomes spdlog's default logger.
loggers make_loggers(const config::logging_config& cfg);

}  // namespace bedrock_meter::telemetry
