#pragma once
// The fleet ledger's PostgreSQL schema (docs/ledger.md, "PostgreSQL"): `requests` as in the
// SQLite file plus the journal and replica that wrote each row, partitioned by month on time_ms;
// `journals`, how far each replica's journal has been shipped; `bm_meta`, the schema version.
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "fleet/pg.hpp"

namespace bedrock_meter::fleet {

/// The schema version this build writes.
inline constexpr int pg_schema_version = 3;

/// Creates or migrates the schema. Many replicas may call it at once: a transaction-scoped
/// advisory lock lets one migrate while the others wait, then find nothing left to do.
/// Refuses a database whose schema is newer than this build.
accounting::ledger_result<void> ensure_schema(connection& c);

/// The months whose partitions exist (cached per connection owner).
class partitions {
 public:
  /// Creates the partition holding `time_ms` if this process has not seen it (under the same
  /// advisory lock, so replicas creating one month at once do not collide).
  accounting::ledger_result<void> ensure(connection& c, std::int64_t time_ms);
  void forget() { known_.clear(); }

 private:
  std::set<std::int64_t> known_;  // first ms of each month known to exist
};

/// What `prune_months` dropped.
struct pruned_months {
  std::vector<std::string> partitions;  ///< "requests_2026_01", oldest first
  std::uint64_t rows = 0;               ///< rows they held
  std::int64_t before_ms = 0;           ///< everything before this is gone (0: nothing dropped)
};

/// Retention for the fleet: drops every monthly partition that ends at or before `before_ms`
/// (whole months only; a month the cut-off falls inside is kept), in one transaction under the
/// schema's advisory lock, and records `pruned_before_ms` in bm_meta for the readers.
/// `dry_run`: counts and names them, drops nothing.
accounting::ledger_result<pruned_months> prune_months(connection& c, std::int64_t before_ms,
                                                      bool dry_run);

/// "journal, local_id, replica, <the SQLite record columns>": the COPY column list.
std::string copy_columns();

}  // namespace bedrock_meter::fleet
