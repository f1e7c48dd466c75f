#pragma once
/// Where budgets learn the spend that happened before this process started: the ledger.
#include "accounting/budgets.hpp"
#include "accounting/ledger.hpp"

namespace bedrock_meter::accounting {

/// Period-to-date spend of a budget's scope, read from the ledger. With a writer, records still
/// queued are committed first (up to 2 s), so a budget added by a reload sees every settled
/// request. `reader` null: no ledger, and the function is empty (budgets start at zero).
budget_restore_fn restore_from_ledger(ledger* writer, ledger_reader* reader);

}  // namespace bedrock_meter::accounting
