// What no single section can tell: the admin port colliding with a listener, and warnings about
// pieces that are legal alone but risky or useless together (plain HTTP in the open, budgets
// without a ledger or a rate table, mappings the rate table cannot price, nobody allowed in).
#include "config/loader.hpp"

namespace bedrock_meter::config {
namespace {

bool is_loopback(const std::string& address) {
  return address.starts_with("127.") || address == "::1" || address == "localhost";
}

void check_admin_port(const load_context& ctx, const config& cfg) {
  if (!cfg.admin.enabled || cfg.admin.port == 0) return;
  for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
    const auto& l = cfg.listeners[i];
    if (l.port == cfg.admin.port && l.address == cfg.admin.address) {
      ctx.diag().error(ctx.marks().admin_port, "admin.port",
                       "admin listener " + l.address + ":" + std::to_string(l.port) +
                           " is the same as listeners[" + std::to_string(i) +
                           "]; give the admin endpoint another port");
    }
  }
}

void warn_plain_http(const load_context& ctx, const config& cfg) {
  for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
    const auto& l = cfg.listeners[i];
    if (!l.tls && !is_loopback(l.address)) {
      ctx.diag().warn(ctx.marks().listeners.at(i), index_path("listeners", i),
                      "plain HTTP on non-loopback address '" + l.address +
                          "': bearer tokens would travel unencrypted; add 'tls' or bind 127.0.0.1");
    }
  }
}

/// Where a warning about a whole section points: its key, or the top of the file without it.
YAML::Mark section_mark(const map_reader& top, std::string_view key) {
  const map_entry* e = top.get(key);
  return e != nullptr ? e->key_node.Mark() : top.mark();
}

/// Spend is only recorded with a rate table, and only survives restarts with a ledger.
void warn_unrecorded_spend(const load_context& ctx, const map_reader& top, const config& cfg) {
  diagnostics& diag = ctx.diag();
  if (top.get("pricing") == nullptr) {
    diag.warn(top.mark(), "pricing",
              "no pricing section: every request is counted as unpriced and no spend is recorded; "
              "add 'pricing: {rate_table: rates/bedrock.yaml}'");
  }
  if (cfg.ledger.path.empty()) {
    diag.warn(section_mark(top, "ledger"), "ledger.path",
              "no ledger: spend lives only in Prometheus counters, which restart from zero with "
              "the process; add 'ledger: {path: ledger.db}'");
  }
  if (cfg.budgets.definitions.empty()) return;
  if (cfg.ledger.path.empty()) {
    diag.warn(section_mark(top, "budgets"), "budgets",
              "budgets without a ledger start every process at zero spend; add 'ledger: {path: "
              "...}' so period-to-date spend survives restarts");
  }
  if (cfg.rate_table == nullptr) {
    diag.warn(section_mark(top, "budgets"), "budgets",
              "budgets without a rate table never see any spend; add 'pricing: {rate_table: ...}'");
  }
}

void warn_unpriced_mappings(const load_context& ctx, const config& cfg) {
  if (cfg.rate_table == nullptr) return;
  for (const auto& m : ctx.marks().mappings) {
    bool priced = false;
    for (const auto& candidate : metering::base_model_candidates(m.base)) {
      priced |= cfg.rate_table->by_model.contains(candidate);
    }
    if (!priced) {
      ctx.diag().warn(m.mark, m.path,
                      "the rate table has no entry for '" + m.base + "' (from '" + m.written +
                          "'): requests through this mapping will be unpriced");
    }
  }
}

}  // namespace

void cross_checks(load_context& ctx, const map_reader& top, const config& cfg) {
  check_admin_port(ctx, cfg);
  warn_plain_http(ctx, cfg);
  warn_unrecorded_spend(ctx, top, cfg);
  warn_unpriced_mappings(ctx, cfg);
  if (cfg.auth.access_keys.empty() && cfg.auth.bearer_keys.empty() && !cfg.auth.anonymous.enabled) {
    ctx.diag().warn(section_mark(top, "auth"), "auth",
                    "no access_keys, no bearer_keys and anonymous off: every request will be "
                    "refused");
  }
}

}  // namespace bedrock_meter::config
