#pragma once
// What a ledger file looks like: how one is recognised and opened, its tables and their
// migrations, how a record maps to a `requests` row, and how rows are summed into the per-series
// groups that `totals()` reports and retention keeps in `rollup`. docs/ledger.md describes the
// same schema for people. Internal to bm_accounting; the rest of the program uses
// accounting/ledger.hpp.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "accounting/ledger.hpp"
#include "accounting/ledger_sqlite.hpp"

namespace bedrock_meter::accounting {

// --- opening and migrating ----------------------------------------------------------------------

/// A connection to a file that is a ledger (or still empty), and its schema version.
struct opened_ledger {
  connection db;
  int version = 0;
};

/// Opens `path` with `flags` (SQLITE_OPEN_*), waits up to `busy_timeout` on other connections'
/// locks, and checks the file is a ledger this build can read: empty, or ours at a version no
/// newer than `ledger_schema_version`. Errors name the file and what to do.
ledger_result<opened_ledger> open_ledger_file(const std::string& path, int flags,
                                              std::chrono::milliseconds busy_timeout);

/// Brings a ledger at `from_version` up to `ledger_schema_version`, one transaction per step.
ledger_result<void> migrate_ledger(sqlite3* db, const std::string& path, int from_version);

// --- one record, one `requests` row -------------------------------------------------------------

/// Every `requests` column but `id`, in the order `bind_record` and `read_record` use.
inline constexpr std::string_view record_columns =
    "time_ms, request_id, team, app, principal, tags, operation, model_requested, model_base, "
    "model_label, region, scope, service_tier, latency_mode, batch, status, outcome, input_tokens, "
    "output_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, usage_source, "
    "input_cost, output_cost, cache_read_cost, cache_write_cost, total_cost, priced, "
    "unpriced_reason, rate_table_version, rate_entry, duration_us, first_byte_us, bytes_in, "
    "bytes_out, has_traits, max_tokens, stop_reason, tools, structured_output, system_prefix_hash, "
    "system_prefix_bytes, conversation_prefix_hash, conversation_prefix_bytes, prompt_hash, "
    "prompt_bytes, speech_input_tokens, speech_output_tokens";
/// How many columns `record_columns` names (a query's next column comes after them).
inline constexpr std::size_t record_column_count =
    static_cast<std::size_t>(std::ranges::count(record_columns, ',')) + 1;

/// "INSERT INTO requests (id, <record_columns>) VALUES (?, ...)", for `bind_record`.
std::string insert_record_sql();
/// Binds id (1) and the record (2..); `tags_json` must outlive the step.
void bind_record(sqlite3_stmt* s, std::int64_t id, const ledger_record& r,
                 const std::string& tags_json);
/// Reads the record from the `record_columns` starting at column `base`.
void read_record(sqlite3_stmt* s, int base, ledger_record& r);
/// The `tags` column back into tags (non-string values as their JSON text).
std::map<std::string, std::string> tags_from_json(std::string_view text);
/// The `tags` column: a JSON object of strings ("{}" when there are none).
std::string tags_to_json(const std::map<std::string, std::string>& tags);

// --- sums per Prometheus series group -----------------------------------------------------------

/// The money columns of `requests`, each kept in `rollup` as <name>_hi and <name>_lo.
inline constexpr std::array<std::string_view, 5> cost_columns = {
    "input_cost", "output_cost", "cache_read_cost", "cache_write_cost", "total_cost"};

/// The Prometheus series groups: what `totals()` groups by and `rollup` is unique on.
inline constexpr std::string_view group_columns =
    "operation, model_label, region, service_tier, team, app, status";

/// Every rollup column after the group keys, in order: counts, then money as hi/lo halves.
std::vector<std::string> rollup_value_columns();

/// Aggregates `requests` rows (optionally restricted by `where`) into rollup-shaped rows, named as
/// the rollup columns so the two can be UNIONed.
std::string group_sums_sql(std::string_view where);

/// The exact sum of a money column as two result columns (see `read_money`).
std::string money_sum_sql(std::string_view column);
/// ", <money_sum_sql(c)>" for each of `cost_columns`, in order.
std::string money_sums_sql();
/// Recombines the two halves `money_sum_sql` produced at columns i and i + 1.
metering::money_total read_money(sqlite3_stmt* s, int i);

}  // namespace bedrock_meter::accounting
