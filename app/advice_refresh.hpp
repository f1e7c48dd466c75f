#pragma once
// The FinOps advisor's background run: every `advice.refresh_interval` it analyses the last
// `advice.window` of the ledger (its own read connection, its own thread, never a worker),
// publishes the savings gauges and keeps the report that GET /api/advice answers without
// parameters. Requests with parameters are analysed on demand (`analyse`).
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <spdlog/logger.h>

#include "app/advice_run.hpp"
#include "proxy/state.hpp"
#include "telemetry/metrics.hpp"

namespace bedrock_meter::app {

class advice_refresh {
 public:
  /// Starts the background run when the config has a ledger, a rate table and a non-zero
  /// `advice.refresh_interval`; otherwise only `analyse` works (or says why it cannot).
  advice_refresh(proxy::shared_state& state, telemetry::metrics& m, std::string ledger_path,
                 std::shared_ptr<spdlog::logger> log);
  ~advice_refresh();  ///< stops and joins
  advice_refresh(const advice_refresh&) = delete;
  advice_refresh& operator=(const advice_refresh&) = delete;

  /// The last background report as JSON, or null before the first run finished.
  [[nodiscard]] std::shared_ptr<const std::string> latest_json() const;

  /// One analysis now, over the current config's rate table and mappings. Thread-safe.
  boost::system::result<advice::report, std::string> analyse(const advice_query& q) const;

  /// The window of the background run, ending now.
  [[nodiscard]] advice_query default_query() const;

 private:
  void run();
  void refresh_once();
  /// The commitments' burn-down gauges (bedrock_commitment_*), from the same thread.
  void refresh_commitments();

  proxy::shared_state& state_;
  telemetry::metrics& metrics_;
  std::string ledger_path_;
  std::shared_ptr<spdlog::logger> log_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool had_commitments_ = false;  // this thread only: drop the gauges once the last one goes
  std::shared_ptr<const std::string> latest_;  // guarded by mutex_
  std::thread thread_;                         // last: started once everything above exists
};

}  // namespace bedrock_meter::app
