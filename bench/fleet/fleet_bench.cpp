// Records per second one replica ships to the fleet's PostgreSQL ledger, against the SQLite
// journal's own commit rate measured in the same run (bench/fleet_ship starts the server).
//
//   bm_fleet_bench HOST PORT DATABASE USER ROWS     (password in BM_PG_PASSWORD)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "accounting/ledger.hpp"
#include "fleet/shipper.hpp"

using namespace bedrock_meter;

namespace {

accounting::ledger_record record(int i) {
  accounting::ledger_record r;
  r.time_ms = 1'750'000'000'000 + i;
  r.request_id = "bench-" + std::to_string(i);
  r.team = "team-" + std::to_string(i % 7);
  r.app = "app-" + std::to_string(i % 13);
  r.principal = "BMAKBENCH";
  r.operation = "Converse";
  r.model_requested = r.model_base = r.model_label = "amazon.nova-pro-v1:0";
  r.region = "us-east-1";
  r.scope = "in_region";
  r.service_tier = "default";
  r.latency_mode = "standard";
  r.status = 200;
  r.input_tokens = 1000 + static_cast<std::uint64_t>(i % 500);
  r.output_tokens = 200;
  r.usage_source = metering::usage_source::reported;
  r.input_cost = 800'000'000;
  r.output_cost = 640'000'000;
  r.total_cost = r.input_cost + r.output_cost;
  r.priced = true;
  r.rate_table_version = "bench";
  r.duration_us = 1234;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s HOST PORT DATABASE USER ROWS\n", argv[0]);
    return 2;
  }
  const int rows = std::atoi(argv[5]);
  const auto dir = std::filesystem::temp_directory_path() / "bm-fleet-bench";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto path = (dir / "journal.db").string();

  // Baseline: the SQLite journal committing the same rows (what the proxy must sustain anyway).
  accounting::ledger_options o;
  o.batch_max = 512;
  auto l = accounting::ledger::open(path, o);
  if (!l) {
    std::fprintf(stderr, "%s\n", l.error().message.c_str());
    return 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < rows; ++i) (*l)->append(record(i));
  (*l)->flush();
  const double sqlite_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  (*l)->close();

  config::ledger_postgres_config pg;
  pg.host = argv[1];
  pg.port = static_cast<std::uint16_t>(std::atoi(argv[2]));
  pg.database = argv[3];
  pg.user = argv[4];
  if (const char* p = std::getenv("BM_PG_PASSWORD")) pg.password = p;
  pg.sslmode = "disable";
  const auto t1 = std::chrono::steady_clock::now();
  fleet::shipper s(pg, path, "bench", [](fleet::shipper::level, std::string_view m) {
    std::fprintf(stderr, "shipper: %.*s\n", static_cast<int>(m.size()), m.data());
  });
  for (;;) {
    const auto st = s.stats();
    if (st.shipped >= static_cast<std::uint64_t>(rows) && st.spool_rows == 0) break;
    if (std::chrono::steady_clock::now() - t1 > std::chrono::minutes(10)) {
      std::fprintf(stderr, "timed out: %llu shipped\n",
                   static_cast<unsigned long long>(st.shipped));
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double pg_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  s.stop(std::chrono::milliseconds(0));
  std::printf(
      "rows %d\nsqlite journal: %.0f records/s\npostgresql shipping: %.0f records/s "
      "(batch_max %u: at most that many rows in memory)\nratio shipping/journal: %.2fx\n",
      rows, rows / sqlite_s, rows / pg_s, pg.batch_max, sqlite_s / pg_s);
  std::filesystem::remove_all(dir);
  return 0;
}
