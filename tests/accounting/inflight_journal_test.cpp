// The journal of requests in flight: what a process killed mid-request leaves behind comes back
// as ledger rows at the next start (live slots as `interrupted` with estimated usage, settled
// ones as they settled), freed slots do not, and each worker's region holds its own requests.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "accounting/inflight_journal.hpp"

namespace m = bedrock_meter::metering;
using bedrock_meter::accounting::inflight_journal;
namespace fs = std::filesystem;

namespace {

class InflightJournal : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("bm-inflight-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    path_ = (dir_ / "ledger.db.inflight").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  static inflight_journal::start_record start(std::string_view rid, std::uint64_t bytes_in) {
    inflight_journal::start_record r;
    r.time_ms = 1'767'225'600'000;
    r.request_id = rid;
    r.team = "search";
    r.app = "web";
    r.principal = "KEY1";
    r.model_id = "amazon.nova-micro-v1:0";
    r.region = "us-east-1";
    r.op = m::operation::converse_stream;
    r.bytes_in = bytes_in;
    return r;
  }

  std::unique_ptr<inflight_journal> create(unsigned workers) {
    auto r = inflight_journal::create(path_, workers);
    EXPECT_TRUE(r) << (r ? "" : r.error());
    return r ? std::move(*r) : nullptr;
  }

  std::vector<m::settlement> recover() {
    auto r = inflight_journal::recover(path_, nullptr, {});
    EXPECT_TRUE(r) << (r ? "" : r.error());
    return r ? *r : std::vector<m::settlement>{};
  }

  fs::path dir_;
  std::string path_;
};

}  // namespace

TEST_F(InflightJournal, NoFileMeansNothingWasInFlight) { EXPECT_TRUE(recover().empty()); }

TEST_F(InflightJournal, WhatWasLiveOrSettledComesBackAndWhatWasFreedDoesNot) {
  {
    auto j = create(2);
    const auto live = j->take(0, start("ours-1", 401));
    ASSERT_NE(live, inflight_journal::none);
    j->answered(live, 200, "upstream-1");  // the id Bedrock gave it replaces ours
    j->progress(live, 33);
    const auto settled = j->take(1, start("ours-2", 80));
    m::settlement row;
    row.request_id = "upstream-2";
    row.status = 200;
    row.outcome = m::request_outcome::ok;
    row.input_tokens = 12;
    row.output_tokens = 5;
    row.usage_source = m::usage_source::reported;
    row.service_tier = "default";
    row.stop_reason = "end_turn";
    row.duration_us = 1234;
    j->settled(settled, row);
    const auto committed = j->take(0, start("ours-3", 10));
    j->settled(committed, row);
    j->release(committed);
    // The process dies here: the journal is never closed cleanly.
  }
  const auto rows = recover();
  ASSERT_EQ(rows.size(), 2u);
  const auto& a = rows[0].request_id == "upstream-1" ? rows[0] : rows[1];
  const auto& b = rows[0].request_id == "upstream-1" ? rows[1] : rows[0];
  EXPECT_EQ(a.request_id, "upstream-1");
  EXPECT_EQ(a.outcome, m::request_outcome::interrupted);
  EXPECT_EQ(a.usage_source, m::usage_source::estimated);
  EXPECT_EQ(a.input_tokens, 101u);  // ceil(401 / 4)
  EXPECT_EQ(a.output_tokens, 9u);   // ceil(33 / 4)
  EXPECT_EQ(a.status, 200u);
  EXPECT_EQ(a.team, "search");
  EXPECT_EQ(a.principal, "KEY1");
  EXPECT_EQ(a.operation, "ConverseStream");
  EXPECT_EQ(a.model_requested, "amazon.nova-micro-v1:0");
  EXPECT_EQ(a.region, "us-east-1");
  EXPECT_EQ(a.time_ms, 1'767'225'600'000);
  EXPECT_FALSE(a.priced);  // no rate table here: unpriced, never $0
  EXPECT_EQ(b.request_id, "upstream-2");
  EXPECT_EQ(b.outcome, m::request_outcome::ok);
  EXPECT_EQ(b.usage_source, m::usage_source::reported);
  EXPECT_EQ(b.input_tokens, 12u);
  EXPECT_EQ(b.output_tokens, 5u);
  EXPECT_EQ(b.stop_reason, "end_turn");
  EXPECT_EQ(b.duration_us, 1234);
  EXPECT_EQ(b.bytes_in, 80u);

  // Recovery leaves the file as it was (the rows are not lost if this start dies too); create
  // starts it afresh.
  EXPECT_EQ(recover().size(), 2u);
  {
    const auto fresh = create(1);  // holds the lock while it lives
    ASSERT_NE(fresh, nullptr);
  }
  EXPECT_TRUE(recover().empty());
}

TEST_F(InflightJournal, AFullRegionIsCountedAndOtherWorkersAreUnaffected) {
  auto j = create(2);
  for (std::size_t i = 0; i < inflight_journal::slots_per_worker; ++i)
    ASSERT_NE(j->take(0, start("r", 1)), inflight_journal::none) << i;
  EXPECT_EQ(j->take(0, start("r", 1)), inflight_journal::none);
  EXPECT_EQ(j->full_count(), 1u);
  const auto other = j->take(1, start("r", 1));
  EXPECT_NE(other, inflight_journal::none);
  j->release(5);  // the ledger committed one of worker 0's rows: its slot is free again
  EXPECT_EQ(j->take(0, start("r", 1)), 5);
  EXPECT_EQ(j->take(7, start("r", 1)), inflight_journal::none);  // no such worker
}

TEST_F(InflightJournal, LongTextIsCutAtACharacterBoundary) {
  {
    auto j = create(1);
    std::string model(1023, 'm');
    model += "é";  // two bytes across the 1024-byte place: cut before it, not through it
    auto r = start("r", 4);
    r.model_id = model;
    (void)j->take(0, r);
  }
  const auto rows = recover();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].model_requested, std::string(1023, 'm'));
}

// A second `serve` on the same ledger would read the first's live slots as leftovers and write
// them twice: the journal is locked while its process lives.
TEST_F(InflightJournal, ASecondProcessOnTheSameLedgerIsRefused) {
  {
    auto first = create(1);
    ASSERT_NE(first, nullptr);
    (void)first->take(0, start("live", 8));
    const auto second = inflight_journal::create(path_, 1);
    ASSERT_FALSE(second);
    EXPECT_NE(second.error().find("in use by another running bedrock-meter serve"),
              std::string::npos)
        << second.error();
    const auto peek = inflight_journal::recover(path_, nullptr, {});
    ASSERT_FALSE(peek);
    EXPECT_NE(peek.error().find(path_), std::string::npos);
  }
  EXPECT_EQ(recover().size(), 1u);  // the first is gone: its live slot is a leftover now
  EXPECT_NE(create(1), nullptr);
}

TEST_F(InflightJournal, AFileItDidNotWriteIsRefusedNamingIt) {
  std::ofstream(path_) << std::string(8192, 'x');
  const auto r = inflight_journal::recover(path_, nullptr, {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find(path_), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("move it aside"), std::string::npos) << r.error();
}

TEST_F(InflightJournal, ASettledSonicSessionKeepsItsSpeechTokens) {
  {
    auto j = create(1);
    auto s = start("sonic-1", 96'000);
    s.op = m::operation::invoke_model_with_bidirectional_stream;
    s.model_id = "amazon.nova-sonic-v1:0";
    const auto slot = j->take(0, s);
    ASSERT_NE(slot, inflight_journal::none);
    m::settlement row;
    row.request_id = "sonic-1";
    row.status = 200;
    row.input_tokens = 1'545;
    row.speech_input_tokens = 1'500;
    row.output_tokens = 2'480;
    row.speech_output_tokens = 2'400;
    row.usage_source = m::usage_source::reported;
    j->settled(slot, row);
    // A live session has no estimate: its body is audio, not text (billed_by_tokens is false).
    EXPECT_NE(j->take(0, s), inflight_journal::none);
  }
  const auto rows = recover();
  ASSERT_EQ(rows.size(), 2u);
  const auto& done = rows[0].outcome == m::request_outcome::ok ? rows[0] : rows[1];
  const auto& live = rows[0].outcome == m::request_outcome::ok ? rows[1] : rows[0];
  EXPECT_EQ(done.operation, "InvokeModelWithBidirectionalStream");
  EXPECT_EQ(done.input_tokens, 1'545u);
  EXPECT_EQ(done.speech_input_tokens, 1'500u);
  EXPECT_EQ(done.output_tokens, 2'480u);
  EXPECT_EQ(done.speech_output_tokens, 2'400u);
  EXPECT_EQ(live.outcome, m::request_outcome::interrupted);
  EXPECT_EQ(live.input_tokens, 0u);
  EXPECT_EQ(live.speech_input_tokens, 0u);
}
