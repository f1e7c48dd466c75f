#include "telemetry/logging.hpp"

#include <cstdio>
#include <vector>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace bedrock_meter::telemetry {

namespace {

/// The access log file: stdio's default buffer is one 4 KiB block, a write(2) every seven lines
/// or so: 2-4% of the proxy's CPU under load (docs/performance.md). A 256 KiB buffer, flushed every
/// second, makes that a few writes a second. The sink keeps the handlers, so the buffer lives as
/// long as the FILE it is given to.
std::shared_ptr<spdlog::logger> access_file(const std::string& path) {
  auto buffer = std::make_shared<std::vector<char>>(std::size_t{256} << 10);
  spdlog::file_event_handlers handlers;
  handlers.after_open = [buffer](const spdlog::filename_t&, std::FILE* f) {
    std::setvbuf(f, buffer->data(), _IOFBF, buffer->size());
  };
  auto log = spdlog::basic_logger_mt("access", path, false, handlers);
  // Flushed every second (and at exit), not per line: a write(2) per request was 4% of the
  // proxy's CPU in the benchmark. The ledger, not this log, is the durable record of each request.
  log->flush_on(spdlog::level::warn);
  spdlog::flush_every(std::chrono::seconds(1));
  return log;
}

}  // namespace

loggers make_loggers(const config::logging_config& cfg) {
  loggers out;
  const auto level = spdlog::level::from_str(cfg.level);
  out.proxy = spdlog::stderr_logger_mt("proxy");
  out.config = spdlog::stderr_logger_mt("config");
  for (const auto& l : {out.proxy, out.config}) {
    l->set_level(level);
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%n] %v");
  }
  spdlog::set_default_logger(out.proxy);
  if (cfg.access_log == "off") return out;
  if (cfg.access_log == "stdout") {
    out.access = spdlog::stdout_logger_mt("access");
    // stdout is usually a pipe to a collector that expects whole lines as they happen.
    out.access->flush_on(spdlog::level::info);
  } else {
    out.access = access_file(cfg.access_log);
  }
  out.access->set_pattern("%v");  // the line is already JSON
  out.access->set_level(spdlog::level::info);
  return out;
}

}  // namespace bedrock_meter::telemetry
