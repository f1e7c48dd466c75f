// The recording sections: `ledger` (the durable SQLite record of every request), `metering`
// (what happens to a streamed answer whose client went away) and `advice` (the advisor's
// background run over the ledger).
#include "config/loader.hpp"

#include <algorithm>
#include <system_error>

namespace bedrock_meter::config {
namespace {

constexpr std::array<std::string_view, 8> ledger_keys = {"path",
                                                         "queue_capacity",
                                                         "batch_max",
                                                         "store",
                                                         "flush_interval",
                                                         "prompt_fingerprints",
                                                         "fingerprint_key_file",
                                                         "postgres"};
constexpr std::array<std::string_view, 11> postgres_keys = {
    "host",          "port",        "database", "user",      "password_env",
    "sslmode",       "sslrootcert", "replica",  "batch_max", "connect_timeout",
    "spool_max_rows"};
constexpr enum_table<ledger_store_kind, 2> stores{
    "store",
    {"sqlite", "postgres"},
    {ledger_store_kind::sqlite, ledger_store_kind::postgres},
    [](std::string_view word, std::span<const std::string_view>) {
      return "'" + std::string(word) +
             "' is not a ledger store; use sqlite (one machine) or postgres (a fleet)";
    }};
constexpr std::array<std::string_view, 6> sslmodes = {"disable", "allow",     "prefer",
                                                      "require", "verify-ca", "verify-full"};

void load_postgres(load_context& ctx, const map_entry& e, ledger_postgres_config& pg) {
  const map_reader s(ctx.diag(), e.value, "ledger.postgres", postgres_keys, e.mark());
  if (!s.is_map()) return;
  s.read_string("host", pg.host, text_rule::non_empty);
  s.read_port("port", pg.port);
  s.read_string("database", pg.database, text_rule::non_empty);
  s.read_string("user", pg.user, text_rule::non_empty);
  if (read_env_name(s, "password_env", pg.password_env, text_rule::optional) &&
      !pg.password_env.empty()) {
    ctx.require_env_set(*s.get("password_env"), "ledger.postgres.password_env", pg.password_env,
                        "the PostgreSQL password");
    if (const auto v = ctx.env(pg.password_env)) pg.password = *v;
  }
  if (s.read_string("sslmode", pg.sslmode, text_rule::non_empty) &&
      std::find(sslmodes.begin(), sslmodes.end(), pg.sslmode) == sslmodes.end()) {
    s.error(*s.get("sslmode"), "'" + pg.sslmode +
                                   "' is not an sslmode; use disable, allow, prefer, require, "
                                   "verify-ca or verify-full");
  }
  if (s.read_string("sslrootcert", pg.sslrootcert, text_rule::optional) &&
      !pg.sslrootcert.empty()) {
    pg.sslrootcert = ctx.resolve(pg.sslrootcert);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(pg.sslrootcert, ec))
      s.error(*s.get("sslrootcert"), "no file at '" + pg.sslrootcert + "'");
  }
  if (s.read_string("replica", pg.replica, text_rule::optional) && !pg.replica.empty() &&
      !is_valid_label_value(pg.replica)) {
    s.error(*s.get("replica"), "use 1 to 64 of A-Z a-z 0-9 _ . - (it names this replica's rows)");
  }
  s.read_uint("batch_max", pg.batch_max, 1, 100'000,
              "use a number from 1 to 100000 (rows per insert)");
  s.read_duration("connect_timeout", pg.connect_timeout, false, std::chrono::minutes(5));
  s.read_uint("spool_max_rows", pg.spool_max_rows, 1000, 4'000'000'000U,
              "use a number from 1000 to 4000000000 (unshipped rows before requests are refused)");
}
constexpr std::array<std::string_view, 2> advice_keys = {"window", "refresh_interval"};
constexpr std::array<std::string_view, 3> metering_keys = {"drain_on_client_abort", "drain_timeout",
                                                           "max_concurrent_drains"};

/// The database file is created on first start; its directory must exist.
void load_ledger_path(const load_context& ctx, const map_reader& s, ledger_config& l) {
  std::string path;
  if (!s.read_string("path", path, text_rule::optional) || path.empty()) return;
  l.path = ctx.resolve(path);
  std::error_code ec;
  const auto dir = std::filesystem::path(l.path).parent_path();
  if (!std::filesystem::is_directory(dir, ec)) {
    s.error(*s.get("path"),
            "directory '" + dir.string() + "' does not exist; create it or choose another path" +
                (std::filesystem::path(path).is_relative()
                     ? " (resolved from '" + path + "' relative to the config file's directory)"
                     : std::string()));
  } else if (std::filesystem::is_directory(l.path, ec)) {
    s.error(*s.get("path"),
            "'" + l.path + "' is a directory; give the database file, e.g. " + path + "/ledger.db");
  }
}

}  // namespace

void load_ledger(load_context& ctx, const map_entry& e, ledger_config& l) {
  if (e.value.IsNull()) return;
  const map_reader s(ctx.diag(), e.value, "ledger", ledger_keys, e.mark());
  if (!s.is_map()) return;
  load_ledger_path(ctx, s, l);
  s.read_enum("store", stores, l.store, text_rule::non_empty);
  const map_entry* pg = s.get("postgres");
  if (pg != nullptr && !pg->value.IsNull()) load_postgres(ctx, *pg, l.postgres);
  if (l.store == ledger_store_kind::postgres && l.path.empty() && s.get("store") != nullptr) {
    s.error(*s.get("store"),
            "store postgres needs ledger.path too: the local file is the journal and the spool "
            "while PostgreSQL is away");
  }
  s.read_uint("queue_capacity", l.queue_capacity, 1, 16'777'216,
              "use a number from 1 to 16777216 (records held in memory before appends wait)");
  s.read_uint("batch_max", l.batch_max, 1, 1'000'000,
              "use a number from 1 to 1000000 (records per transaction)");
  if (l.batch_max > l.queue_capacity && s.get("batch_max") != nullptr) {
    s.error(*s.get("batch_max"),
            "batch_max " + std::to_string(l.batch_max) + " is larger than queue_capacity " +
                std::to_string(l.queue_capacity) + "; a batch cannot exceed the queue");
  }
  s.read_duration("flush_interval", l.flush_interval, false, std::chrono::minutes(1));
  s.read_bool("prompt_fingerprints", l.prompt_fingerprints);
  std::string key_file;
  if (s.read_string("fingerprint_key_file", key_file, text_rule::optional) && !key_file.empty()) {
    l.fingerprint_key_file = ctx.resolve(key_file);
  } else if (!l.path.empty()) {
    l.fingerprint_key_file = l.path + ".key";
  }
}

void load_metering(load_context& ctx, const map_entry& e, metering_config& mc) {
  if (e.value.IsNull()) return;
  const map_reader s(ctx.diag(), e.value, "metering", metering_keys, e.mark());
  if (!s.is_map()) return;
  s.read_bool("drain_on_client_abort", mc.drain_on_client_abort);
  s.read_duration("drain_timeout", mc.drain_timeout, false, std::chrono::hours(1));
  s.read_uint("max_concurrent_drains", mc.max_concurrent_drains, 1, 1'000'000,
              "use a number from 1 to 1000000 (streams drained at once after client aborts)");
}

void load_advice(load_context& ctx, const map_entry& e, advice_config& a) {
  if (e.value.IsNull()) return;
  const map_reader s(ctx.diag(), e.value, "advice", advice_keys, e.mark());
  if (!s.is_map()) return;
  s.read_duration("window", a.window, false, std::chrono::hours(24 * 400));
  s.read_duration("refresh_interval", a.refresh_interval, true, std::chrono::hours(24 * 7));
}

}  // namespace bedrock_meter::config
