#include "tests/accounting/ledger_test_support.hpp"

#include <unistd.h>

#include <map>
#include <random>
#include <tuple>

namespace bedrock_meter::accounting {

namespace fs = std::filesystem;
using metering::money_total;
using metering::pico_usd;

temp_dir::temp_dir() {
  std::string tmpl = (fs::temp_directory_path() / "bm-ledger-XXXXXX").string();
  path_ = ::mkdtemp(tmpl.data());
}

temp_dir::~temp_dir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

// A record whose every field depends on (thread, i), so a swapped or truncated field shows.
ledger_record make_record(int thread, int i) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(thread) * 1'000'003u +
                      static_cast<std::uint64_t>(i));
  auto pick = [&](std::uint64_t n) { return rng() % n; };
  ledger_record r;
  r.time_ms = 1'700'000'000'000 + static_cast<std::int64_t>(pick(90ull * 86'400'000));
  r.request_id = "req-" + std::to_string(thread) + "-" + std::to_string(i);
  r.team = "team-" + std::to_string(pick(3));
  r.app = "app-" + std::to_string(pick(4));
  r.principal = "AKIA" + std::to_string(thread);
  if (pick(2) == 0) {
    r.tags = {{"env", "prod"}, {"ticket", "T-" + std::to_string(i)}, {"quote\"d", "ü\n\\"}};
  }
  r.operation = pick(2) == 0 ? "Converse" : "InvokeModelWithResponseStream";
  r.model_requested = pick(2) == 0
                          ? "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
                          : "arn:aws:bedrock:us-east-1:123:application-inference-profile/x";
  r.model_base = pick(5) == 0 ? "" : "anthropic.claude-3-5-sonnet-20240620-v1:0";
  r.model_label = r.model_base.empty() ? "other" : r.model_base;
  r.region = pick(2) == 0 ? "us-east-1" : "eu-west-1";
  r.scope = pick(2) == 0 ? "geo" : "in_region";
  r.service_tier = pick(2) == 0 ? "standard" : "priority";
  r.latency_mode = pick(2) == 0 ? "standard" : "optimized";
  r.batch = pick(2) == 0;
  r.status = pick(4) == 0 ? 429u : 200u;
  r.outcome = static_cast<metering::request_outcome>(pick(5));
  r.input_tokens = pick(100'000);
  r.output_tokens = pick(8'000);
  r.cache_read_tokens = pick(50'000);
  r.cache_write_tokens = pick(10'000);
  r.cache_write_1h_tokens = r.cache_write_tokens / 2;
  r.usage_source = static_cast<metering::usage_source>(pick(3));
  r.input_cost = static_cast<pico_usd>(r.input_tokens) * 3'000'000;
  r.output_cost = static_cast<pico_usd>(r.output_tokens) * 15'000'000;
  r.cache_read_cost = static_cast<pico_usd>(r.cache_read_tokens) * 300'000;
  r.cache_write_cost = static_cast<pico_usd>(r.cache_write_tokens) * 3'750'000;
  r.total_cost = r.input_cost + r.output_cost + r.cache_read_cost + r.cache_write_cost;
  r.priced = pick(6) != 0;
  r.unpriced_reason = r.priced ? "" : "no rate for model";
  r.rate_table_version = "2025-06-01#" + std::to_string(pick(3));
  r.rate_entry = "rates.yaml:" + std::to_string(pick(400));
  r.duration_us = static_cast<std::int64_t>(pick(30'000'000));
  r.first_byte_us = pick(3) == 0 ? -1 : static_cast<std::int64_t>(pick(1'000'000));
  r.bytes_in = pick(1'000'000);
  r.bytes_out = pick(1'000'000);
  return r;
}

ledger_options fast_options() {
  ledger_options o;
  o.flush_interval = 5ms;
  o.busy_timeout = 5ms;
  o.retry_backoff_min = 1ms;
  o.retry_backoff_max = 20ms;
  return o;
}

std::unique_ptr<ledger> open_or_die(const std::string& path, ledger_options o) {
  auto l = ledger::open(path, std::move(o));
  EXPECT_TRUE(l) << l.error().message;
  return l ? std::move(*l) : nullptr;
}

std::vector<ledger_record> all_records(const std::string& path) {
  auto reader = ledger_reader::open(path);
  EXPECT_TRUE(reader) << reader.error().message;
  if (!reader) return {};
  auto recs = (*reader)->records(INT64_MIN, INT64_MAX);
  EXPECT_TRUE(recs) << recs.error().message;
  return recs ? *recs : std::vector<ledger_record>{};
}

std::string i128(money_total v) {
  if (v == 0) return "0";
  const bool neg = v < 0;
  std::string s;
  while (v != 0) {
    const int digit = static_cast<int>(v % 10);
    s.insert(s.begin(), static_cast<char>('0' + (digit < 0 ? -digit : digit)));
    v /= 10;
  }
  return neg ? "-" + s : s;
}

void exec_or_fail(sqlite3* db, const char* sql) {
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
}

namespace {

using group_key = std::tuple<std::string, std::string, std::string, std::string, std::string,
                             std::string, unsigned>;

std::map<group_key, ledger_totals_row> expected_totals(const std::vector<ledger_record>& recs) {
  std::map<group_key, ledger_totals_row> expected;
  for (const auto& r : recs) {
    auto& e =
        expected[{r.operation, r.model_label, r.region, r.service_tier, r.team, r.app, r.status}];
    const bool est = r.usage_source == metering::usage_source::estimated;
    e.requests += 1;
    e.unpriced_requests += r.priced ? 0 : 1;
    e.input_tokens += r.input_tokens;
    e.output_tokens += r.output_tokens;
    e.cache_read_tokens += r.cache_read_tokens;
    e.cache_write_tokens += r.cache_write_tokens;
    e.estimated_input_tokens += est ? r.input_tokens : 0;
    e.estimated_output_tokens += est ? r.output_tokens : 0;
    e.estimated_cache_read_tokens += est ? r.cache_read_tokens : 0;
    e.estimated_cache_write_tokens += est ? r.cache_write_tokens : 0;
    e.input_cost += r.input_cost;
    e.output_cost += r.output_cost;
    e.cache_read_cost += r.cache_read_cost;
    e.cache_write_cost += r.cache_write_cost;
    e.total_cost += r.total_cost;
  }
  return expected;
}

}  // namespace

void expect_totals(ledger_reader& reader, const std::vector<ledger_record>& recs) {
  const auto expected = expected_totals(recs);
  auto totals = reader.totals();
  ASSERT_TRUE(totals) << totals.error().message;
  ASSERT_EQ(totals->size(), expected.size());
  for (const auto& row : *totals) {
    auto it = expected.find({row.operation, row.model_label, row.region, row.service_tier, row.team,
                             row.app, row.status});
    ASSERT_NE(it, expected.end()) << row.operation << " " << row.model_label << " " << row.team;
    const auto& e = it->second;
    EXPECT_EQ(row.requests, e.requests);
    EXPECT_EQ(row.unpriced_requests, e.unpriced_requests);
    EXPECT_EQ(row.input_tokens, e.input_tokens);
    EXPECT_EQ(row.output_tokens, e.output_tokens);
    EXPECT_EQ(row.cache_read_tokens, e.cache_read_tokens);
    EXPECT_EQ(row.cache_write_tokens, e.cache_write_tokens);
    EXPECT_EQ(row.estimated_input_tokens, e.estimated_input_tokens);
    EXPECT_EQ(row.estimated_output_tokens, e.estimated_output_tokens);
    EXPECT_EQ(row.estimated_cache_read_tokens, e.estimated_cache_read_tokens);
    EXPECT_EQ(row.estimated_cache_write_tokens, e.estimated_cache_write_tokens);
    EXPECT_EQ(i128(row.input_cost), i128(e.input_cost));
    EXPECT_EQ(i128(row.output_cost), i128(e.output_cost));
    EXPECT_EQ(i128(row.cache_read_cost), i128(e.cache_read_cost));
    EXPECT_EQ(i128(row.cache_write_cost), i128(e.cache_write_cost));
    EXPECT_EQ(i128(row.total_cost), i128(e.total_cost));
  }
}

}  // namespace bedrock_meter::accounting
