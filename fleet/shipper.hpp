#pragma once
// Ships the local journal to the fleet's PostgreSQL ledger (docs/ledger.md, "PostgreSQL").
//
// The local SQLite file stays the write-ahead journal: the proxy commits every record there
// first, as with `ledger.store: sqlite`, and this thread copies the rows over in id order, a
// batch per transaction (COPY into a staging table, INSERT ... ON CONFLICT DO NOTHING, and the
// journal's shipped id moved in the same transaction). So a replayed batch never doubles a row,
// a PostgreSQL outage only grows the backlog in the local file (the spool), and a replica killed
// with SIGKILL ships the rest after its restart. Never touches the request path: workers only
// read `spool_full()`.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "config/config.hpp"

namespace bedrock_meter::fleet {

struct shipper_stats {
  std::uint64_t spool_rows = 0;  ///< rows in the local journal not yet in PostgreSQL
  double lag_seconds = 0;        ///< age of the oldest of them (0 when none)
  std::uint64_t shipped = 0;     ///< rows shipped by this process
  std::uint64_t failures = 0;    ///< failed connects and batches (each retried)
  bool connected = false;
};

class shipper {
 public:
  enum class level : std::uint8_t { info, warn, error };
  using log_fn = std::function<void(level, std::string_view)>;

  /// `journal_path`: the ledger file the proxy writes. `replica`: this replica's name.
  /// `reported`: a connection failure the caller already logged (not repeated for a minute).
  shipper(config::ledger_postgres_config cfg, std::string journal_path, std::string replica,
          log_fn log, std::string reported = {});
  ~shipper();  ///< stop(0)
  shipper(const shipper&) = delete;
  shipper& operator=(const shipper&) = delete;

  /// Stops after shipping what it can within `grace` (what is left stays in the journal and is
  /// shipped at the next start).
  void stop(std::chrono::milliseconds grace);

  /// True while the backlog exceeds `spool_max_rows`: the proxy refuses new requests.
  [[nodiscard]] const std::atomic<bool>& spool_full() const noexcept { return spool_full_; }
  [[nodiscard]] shipper_stats stats() const;

 private:
  struct state;
  void run();
  config::ledger_postgres_config cfg_;
  std::string journal_path_;
  std::string replica_;
  log_fn log_;
  std::atomic<bool> spool_full_{false};
  std::unique_ptr<state> st_;
  std::thread thread_;
};

/// This host's name, for `ledger.postgres.replica` left empty.
std::string default_replica_name();

}  // namespace bedrock_meter::fleet
