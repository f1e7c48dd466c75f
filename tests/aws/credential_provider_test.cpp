#include "aws/credentials.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/aws/credentials_test_support.hpp"

namespace bedrock_meter::aws {
namespace {

using namespace std::chrono_literals;
using test_support::fake_clock;

// --- refresh -------------------------------------------------------------------------------------

// A scripted source: each fetch returns the next key id with the expiration the test chose, or
// fails while `failing` is set.
struct scripted_source {
  fake_clock* clock = nullptr;
  std::chrono::minutes lifetime{60};
  std::atomic<bool> failing{false};
  std::atomic<int> fetches{0};
  fetch_fn fn() {
    return [this]() -> credential_result<aws_credentials> {
      const int n = ++fetches;
      if (failing) return credential_error{credential_errc::http, "imds: connect timed out"};
      aws_credentials c;
      c.creds = {"AKID" + std::to_string(n), "secret" + std::to_string(n), "token"};
      c.expiration = clock->now() + lifetime;
      c.source = "scripted";
      return c;
    };
  }
};

class CredentialRefresh : public ::testing::Test {
 protected:
  provider_options options(bool background = false) {
    provider_options opt;
    opt.now = clock_.fn();
    opt.background_refresh = background;
    opt.policy.refresh_before = 5min;
    opt.policy.min_interval = 10s;
    opt.policy.retry_initial = 1s;
    opt.policy.retry_max = 8s;
    return opt;
  }
  std::unique_ptr<credential_provider> make(bool background = false) {
    auto r = credential_provider::create(source_.fn(), options(background));
    EXPECT_TRUE(r) << r.error().message;
    return r ? std::move(*r) : nullptr;
  }

  fake_clock clock_;
  scripted_source source_{.clock = &clock_};
};

TEST_F(CredentialRefresh, RefreshesRefreshBeforeExpiry) {
  auto p = make();
  ASSERT_TRUE(p);
  const auto first = p->current();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->creds.access_key_id, "AKID1");
  const auto expiry = *first->expiration;

  clock_.advance(54min);
  EXPECT_EQ(p->refresh_if_due(), refresh_result::not_due);
  EXPECT_EQ(source_.fetches, 1);

  clock_.advance(1min);  // exactly expiry - refresh_before
  EXPECT_EQ(p->refresh_if_due(), refresh_result::refreshed);
  EXPECT_EQ(source_.fetches, 2);
  const auto second = p->current();
  EXPECT_EQ(second->creds.access_key_id, "AKID2");
  EXPECT_LT(clock_.now(), expiry);  // refreshed while the old ones were still valid
  EXPECT_EQ(p->status().next_attempt, *second->expiration - 5min);
  EXPECT_EQ(p->status().refreshes, 1u);
}

TEST_F(CredentialRefresh, FailureKeepsOldSnapshotAndBacksOff) {
  auto p = make();
  ASSERT_TRUE(p);
  const auto held = p->current();  // a request in flight holds this
  clock_.advance(55min);
  source_.failing = true;

  // Failures: the published snapshot does not change; retries at +1s, +2s, +4s, +8s, +8s.
  std::vector<std::chrono::seconds> delays;
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(p->refresh_if_due(), refresh_result::failed);
    EXPECT_EQ(p->current(), held);
    const auto st = p->status();
    ASSERT_TRUE(st.next_attempt);
    delays.push_back(
        std::chrono::duration_cast<std::chrono::seconds>(*st.next_attempt - clock_.now()));
    EXPECT_EQ(p->refresh_if_due(), refresh_result::not_due);  // not before the backoff
    clock_.advance(*st.next_attempt - clock_.now());
  }
  EXPECT_EQ(delays, (std::vector<std::chrono::seconds>{1s, 2s, 4s, 8s, 8s}));
  auto st = p->status();
  EXPECT_EQ(st.consecutive_failures, 5u);
  EXPECT_EQ(st.refresh_failures, 5u);
  ASSERT_TRUE(st.last_error);
  EXPECT_EQ(st.last_error->code, credential_errc::http);

  source_.failing = false;
  ASSERT_EQ(p->refresh_if_due(), refresh_result::refreshed);
  EXPECT_EQ(p->current()->creds.access_key_id, "AKID7");
  st = p->status();
  EXPECT_EQ(st.consecutive_failures, 0u);
  EXPECT_FALSE(st.last_error);
  // The reader's snapshot was never touched.
  EXPECT_EQ(held->creds.access_key_id, "AKID1");
  EXPECT_EQ(held->creds.secret_access_key, "secret1");
}

TEST_F(CredentialRefresh, ShortLivedCredentialsRespectMinInterval) {
  source_.lifetime = 2min;  // already inside the 5-minute window when fetched
  auto p = make();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->refresh_if_due(), refresh_result::not_due);
  clock_.advance(9s);
  EXPECT_EQ(p->refresh_if_due(), refresh_result::not_due);
  clock_.advance(1s);
  EXPECT_EQ(p->refresh_if_due(), refresh_result::refreshed);
  EXPECT_EQ(source_.fetches, 2);
}

TEST_F(CredentialRefresh, LongTermKeysAreNotRefreshed) {
  int fetches = 0;
  auto r = credential_provider::create(
      [&]() -> credential_result<aws_credentials> {
        ++fetches;
        return aws_credentials{{"AKIDSTATIC", "s", ""}, std::nullopt, "environment"};
      },
      options());
  ASSERT_TRUE(r);
  auto& p = *r;
  clock_.advance(24h * 365);
  EXPECT_EQ(p->refresh_if_due(), refresh_result::not_due);
  EXPECT_EQ(fetches, 1);
  EXPECT_FALSE(p->status().next_attempt);
  EXPECT_EQ(p->refresh_now(), refresh_result::refreshed);  // forced
  EXPECT_EQ(fetches, 2);
}

TEST_F(CredentialRefresh, StartupFailureIsAnError) {
  source_.failing = true;
  auto r = credential_provider::create(source_.fn(), options(true));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, credential_errc::http);
}

TEST_F(CredentialRefresh, BackgroundThreadRefreshesWhenDue) {
  std::mutex mu;
  std::vector<refresh_event> events;
  std::promise<void> refreshed;
  auto opt = options(true);
  opt.on_refresh = [&](const refresh_event& ev) {
    const std::lock_guard lock(mu);
    events.push_back(ev);
    if (ev.result == refresh_result::refreshed) refreshed.set_value();
  };
  auto r = credential_provider::create(source_.fn(), opt);
  ASSERT_TRUE(r);
  auto& p = *r;
  auto done = refreshed.get_future();

  clock_.advance(56min);
  p->wake();
  ASSERT_EQ(done.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(p->current()->creds.access_key_id, "AKID2");
  p->stop();
  const std::lock_guard lock(mu);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].source, "scripted");
  EXPECT_EQ(events[0].expiration, clock_.now() + 60min);
  EXPECT_EQ(events[0].next_attempt, clock_.now() + 55min);
}

TEST_F(CredentialRefresh, ReadersNeverSeeNullOrTornSnapshots) {
  auto p = make();
  ASSERT_TRUE(p);
  std::atomic<bool> done{false};
  std::atomic<long> reads{0};
  std::atomic<long> bad{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&] {
      while (!done) {
        const auto c = p->current();
        // Each snapshot is self-consistent: key n goes with secret n.
        if (!c || "secret" + c->creds.access_key_id.substr(4) != c->creds.secret_access_key) ++bad;
        ++reads;
      }
    });
  }
  while (reads == 0) std::this_thread::yield();  // readers are running before we swap
  for (int i = 0; i < 200; ++i) EXPECT_EQ(p->refresh_now(), refresh_result::refreshed);
  const long reads_during = reads;
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad, 0);
  EXPECT_GT(reads_during, 0);
  EXPECT_EQ(p->current()->creds.access_key_id, "AKID201");
}

}  // namespace
}  // namespace bedrock_meter::aws
