#pragma once
// The fleet ledger read back: every replica's rows in PostgreSQL, behind the same interface as
// the local file (accounting::ledger_reader), so report, ledger export, budgets, advise,
// reconcile and commitment read the whole fleet when `ledger.store: postgres`.
#include <memory>

#include "accounting/ledger.hpp"
#include "config/config.hpp"

namespace bedrock_meter::fleet {

/// Connects once and creates or migrates the schema (a replica at start, before its readers).
accounting::ledger_result<void> prepare_schema(const config::ledger_postgres_config& cfg);

/// Connects (one connection, its own) and checks the schema exists. The error is one line.
accounting::ledger_result<std::unique_ptr<accounting::ledger_reader>> open_reader(
    const config::ledger_postgres_config& cfg);

}  // namespace bedrock_meter::fleet
