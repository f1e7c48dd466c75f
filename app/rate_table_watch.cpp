#include "app/rate_table_watch.hpp"

#include <sys/stat.h>

#include <spdlog/spdlog.h>

namespace bedrock_meter::app {

namespace {

/// What a change looks like from outside: modification time and size.
struct stamp {
  std::int64_t mtime_ns = 0;
  std::int64_t size = -1;
  bool operator==(const stamp&) const = default;
};

stamp stat_of(const std::string& path) {
  struct ::stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
          static_cast<std::int64_t>(st.st_size)};
}

}  // namespace

rate_table_watch::rate_table_watch(proxy::shared_state& state, std::shared_ptr<spdlog::logger> log)
    : state_(state), log_(std::move(log)) {
  const auto cfg = state_.snapshot()->cfg;
  if (cfg->pricing.rate_table.empty() || !cfg->pricing.reload.watch) return;
  thread_ = std::thread([this] { run(); });
}

rate_table_watch::~rate_table_watch() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void rate_table_watch::run() {
  auto cfg = state_.snapshot()->cfg;
  stamp last = stat_of(cfg->pricing.rate_table);
  std::unique_lock lock(mutex_);
  while (!cv_.wait_for(lock, cfg->pricing.reload.poll_interval, [this] { return stopping_; })) {
    cfg = state_.snapshot()->cfg;  // a config reload may have moved or re-timed the file
    const stamp now = stat_of(cfg->pricing.rate_table);
    if (now == last) continue;
    last = now;
    const auto reloaded = state_.reload_rate_table();
    if (reloaded)
      log_->info("rate table reloaded from {} (version {})", cfg->pricing.rate_table, *reloaded);
    else
      for (const auto& e : reloaded.error().problems)
        log_->error("rate table reload rejected: {}", e);
  }
}

}  // namespace bedrock_meter::app
