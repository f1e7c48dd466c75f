#pragma once
// Shared by the ledger's tests (writer, reader, retention): temporary directories, records whose
// every field differs, a ledger tuned for fast tests, and the totals a set of records must sum to.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "accounting/ledger.hpp"

namespace bedrock_meter::accounting {

using namespace std::chrono_literals;

class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] std::string file(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A record whose every field depends on (thread, i), so a swapped or truncated field shows.
ledger_record make_record(int thread, int i);

ledger_options fast_options();

std::unique_ptr<ledger> open_or_die(const std::string& path, ledger_options o = fast_options());

std::vector<ledger_record> all_records(const std::string& path);

// Waits (bounded) for a condition another thread makes true; no fixed sleeps.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

// A 128-bit amount in decimal, so failures print it.
std::string i128(metering::money_total v);

void exec_or_fail(sqlite3* db, const char* sql);

// Expects `reader.totals()` to be exactly the per-group sums of `recs`.
void expect_totals(ledger_reader& reader, const std::vector<ledger_record>& recs);

}  // namespace bedrock_meter::accounting
