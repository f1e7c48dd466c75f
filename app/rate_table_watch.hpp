#pragma once
// Polls the rate-table file and reloads it when its modification time or size changes
// (`pricing.reload.watch`). A table that fails validation is logged and counted; the old one
// stays. Runs on its own thread, never on a worker.
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "proxy/state.hpp"

namespace bedrock_meter::app {

class rate_table_watch {
 public:
  /// Starts watching when the config asks for it; otherwise does nothing.
  rate_table_watch(proxy::shared_state& state, std::shared_ptr<spdlog::logger> log);
  ~rate_table_watch();  ///< stops and joins
  rate_table_watch(const rate_table_watch&) = delete;
  rate_table_watch& operator=(const rate_table_watch&) = delete;

 private:
  void run();

  proxy::shared_state& state_;
  std::shared_ptr<spdlog::logger> log_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace bedrock_meter::app
