#include "app/ledger_window.hpp"

#include <iostream>

#include "fleet/postgres_reader.hpp"

namespace bedrock_meter::app {

accounting::ledger_result<std::unique_ptr<accounting::ledger_reader>> open_ledger_reader(
    const config::config& cfg) {
  if (cfg.ledger.store == config::ledger_store_kind::postgres)
    return fleet::open_reader(cfg.ledger.postgres);
  return accounting::ledger_reader::open(cfg.ledger.path);
}

accounting::ledger_result<std::unique_ptr<accounting::ledger_reader>> ledger_window::open() const {
  if (cfg) return open_ledger_reader(*cfg);
  return accounting::ledger_reader::open(ledger_path);
}

std::optional<ledger_window> ledger_window::from(const args& a, std::string_view command,
                                                 std::string_view default_since) {
  ledger_window w;
  if (const auto l = a.get("ledger"); !l.empty()) {
    w.ledger_path = l;
  } else if (const auto path = a.get("config"); !path.empty()) {
    w.cfg = load_or_report(path);
    if (w.cfg) w.ledger_path = w.cfg->ledger.path;
  }
  if (w.ledger_path.empty()) {
    std::cerr << command << ": give --config FILE (with ledger.path) or --ledger PATH\n";
    return std::nullopt;
  }
  const auto now = now_ms();
  const auto since = parse_when(a.get("since", default_since), now);
  const auto until = a.get("until").empty() ? std::optional<std::int64_t>(now + 1)
                                            : parse_when(a.get("until"), now);
  if (!since || !until) {
    std::cerr << command << ": --since/--until take 30m, 24h, 7d or a date YYYY-MM-DD\n";
    return std::nullopt;
  }
  w.since_ms = *since;
  w.until_ms = *until;
  return w;
}

}  // namespace bedrock_meter::app
