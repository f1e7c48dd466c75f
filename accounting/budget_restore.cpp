#include "accounting/budget_restore.hpp"

#include <chrono>

namespace bedrock_meter::accounting {

budget_restore_fn restore_from_ledger(ledger* writer, ledger_reader* reader) {
  if (reader == nullptr) return {};
  return [writer, reader](const metering::budget_def& def,
                          metering::instant from) -> std::optional<metering::money_total> {
    if (writer != nullptr) writer->flush(std::chrono::seconds(2));
    spend_filter f;
    f.team = def.scope.team;
    f.app = def.scope.app;
    f.principal = def.scope.identity;
    f.model_base = def.scope.model;
    const auto from_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(from.time_since_epoch()).count();
    auto r = reader->spend_since(from_ms, f);
    if (!r) return std::nullopt;
    return *r;
  };
}

}  // namespace bedrock_meter::accounting
