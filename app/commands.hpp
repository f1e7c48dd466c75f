#pragma once
// One function per command of `bedrock-meter`; each returns the process exit code (0 success,
// 1 failure, 2 usage error; `price` 3 when the request is unpriced) and prints its own errors.
#include "app/args.hpp"

namespace bedrock_meter::app {

int serve_command(const args& a);          // app/serve.cpp
int check_config_command(const args& a);   // app/check_config.cpp
int keys_create_command(const args& a);    // app/keys.cpp
int price_command(const args& a);          // app/price.cpp
int report_command(const args& a);         // app/report.cpp
int ledger_export_command(const args& a);  // app/ledger_export.cpp
int ledger_prune_command(const args& a);   // app/ledger_prune.cpp
int budgets_command(const args& a);        // app/budgets.cpp
int advise_command(const args& a);         // app/advise.cpp
int rates_command(const args& a);          // app/rates.cpp: rates import, rates diff
int reconcile_command(const args& a);      // app/reconcile.cpp
int commitment_command(const args& a);     // app/commitment.cpp

}  // namespace bedrock_meter::app
