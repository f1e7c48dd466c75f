// redis_budget_client against real redis-server processes (unix socket and TCP), started per test
// in a temporary directory. redis-server missing is a failure, not a skip: scripts/install-deps
// installs it, and a silently skipped shared-budget suite would hide a broken enforcement path.
#include "accounting/redis_budget.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

extern char** environ;

namespace bedrock_meter::accounting {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr std::int64_t period = 1'764'547'200;  // 2025-12-01T00:00:00Z
constexpr auto long_ttl = std::chrono::milliseconds{60s};
constexpr auto key_ttl = std::chrono::milliseconds{3600s};

// The three answers a reservation can get, as the proxy tells them apart.
enum class verdict { admitted, blocked, unavailable };

verdict verdict_of(const redis_result<redis_reserve_reply>& r) {
  if (!r) return verdict::unavailable;
  return r->admitted ? verdict::admitted : verdict::blocked;
}

// A seed's outcome; nullopt when Redis could not be asked.
std::optional<redis_seed_outcome> seed_outcome(const redis_result<redis_seed_outcome>& r) {
  if (!r) return std::nullopt;
  return *r;
}

std::string find_redis_server() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/usr/sbin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = dir + "/redis-server";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  if (::access("/usr/bin/redis-server", X_OK) == 0) return "/usr/bin/redis-server";
  return {};
}

std::uint16_t free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  std::uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

// A raw hiredis connection for looking at what the client wrote.
class raw_redis {
 public:
  explicit raw_redis(const redis_endpoint& ep) {
    const timeval tv{2, 0};
    c_ = ep.unix_socket.empty() ? redisConnectWithTimeout(ep.host.c_str(), ep.port, tv)
                                : redisConnectUnixWithTimeout(ep.unix_socket.c_str(), tv);
    if (ok() && !ep.password.empty()) command({"AUTH", ep.password});
  }
  ~raw_redis() {
    if (c_ != nullptr) redisFree(c_);
  }
  raw_redis(const raw_redis&) = delete;
  raw_redis& operator=(const raw_redis&) = delete;
  bool ok() const { return c_ != nullptr && c_->err == 0; }
  // The reply as text: strings verbatim, integers in decimal, nil as "(nil)", errors "ERR:...".
  std::string command(std::initializer_list<std::string> args) {
    if (!ok()) return "(no connection)";
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (r == nullptr) return "(io error)";
    std::string out;
    switch (r->type) {
      case REDIS_REPLY_STRING:
      case REDIS_REPLY_STATUS: out.assign(r->str, r->len); break;
      case REDIS_REPLY_ERROR: out = "ERR:" + std::string(r->str, r->len); break;
      case REDIS_REPLY_INTEGER: out = std::to_string(r->integer); break;
      case REDIS_REPLY_NIL: out = "(nil)"; break;
      default: out = "(other)"; break;
    }
    freeReplyObject(r);
    return out;
  }

 private:
  redisContext* c_ = nullptr;
};

// One redis-server child process, without persistence, logging to a file in `dir`.
class redis_server {
 public:
  redis_server() = default;
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;
  ~redis_server() { stop(); }

  // Starts and waits until it answers PING (or NOAUTH, which also means it is up).
  ::testing::AssertionResult start(const std::string& dir, const redis_endpoint& ep) {
    const std::string binary = find_redis_server();
    if (binary.empty()) {
      return ::testing::AssertionFailure()
             << "redis-server is not installed (scripts/install-deps installs it)";
    }
    std::vector<std::string> args = {binary, "--save", "", "--appendonly", "no", "--daemonize",
                                     "no",   "--dir",  dir};
    if (ep.unix_socket.empty()) {
      args.insert(args.end(), {"--port", std::to_string(ep.port), "--bind", "127.0.0.1"});
    } else {
      args.insert(args.end(), {"--port", "0", "--unixsocket", ep.unix_socket});
    }
    if (!ep.password.empty()) args.insert(args.end(), {"--requirepass", ep.password});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string log = dir + "/redis.log";
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int rc = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      return ::testing::AssertionFailure() << "cannot spawn redis-server: " << rc;
    }
    // Startup takes a few ms; poll rather than sleep a fixed time.
    const auto deadline = clock_type::now() + 10s;
    while (clock_type::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return ::testing::AssertionFailure() << "redis-server exited at start; see " << log;
      }
      redis_endpoint probe = ep;
      probe.password.clear();
      raw_redis r(probe);
      if (r.ok()) {
        const std::string pong = r.command({"PING"});
        if (pong == "PONG" || pong.starts_with("ERR:NOAUTH")) return ::testing::AssertionSuccess();
      }
      std::this_thread::sleep_for(10ms);
    }
    return ::testing::AssertionFailure() << "redis-server did not answer within 10 s";
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);  // a paused server cannot act on SIGTERM
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  void pause() { ::kill(pid_, SIGSTOP); }
  void resume() { ::kill(pid_, SIGCONT); }

 private:
  pid_t pid_ = -1;
};

class RedisBudgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // hiredis writes with write(2): a closed peer must give EPIPE, not kill the test (the proxy's
    // main ignores SIGPIPE too).
    ::signal(SIGPIPE, SIG_IGN);
    std::string templ = (std::filesystem::temp_directory_path() / "bm-redis-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    server_.stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  redis_endpoint unix_endpoint() const {
    redis_endpoint ep;
    ep.unix_socket = dir_ + "/r.sock";
    ep.key_prefix = "bm-test";
    ep.timeout = 1000ms;  // generous: a loaded, sanitized build; the timeout test sets its own
    return ep;
  }
  redis_endpoint tcp_endpoint() const {
    redis_endpoint ep;
    ep.host = "127.0.0.1";
    ep.port = free_tcp_port();
    ep.key_prefix = "bm-test";
    ep.timeout = 1000ms;
    return ep;
  }

  std::string dir_;
  redis_server server_;
};

TEST_F(RedisBudgetTest, ReserveSettleChargeArithmeticAndKeyLayout) {
  const auto ep = unix_endpoint();
  ASSERT_TRUE(server_.start(dir_, ep));
  redis_budget_client c(ep);

  const auto r1 = c.reserve("team-a", period, 1000, 300, long_ttl, key_ttl);
  ASSERT_EQ(verdict_of(r1), verdict::admitted) << r1.error().message;
  EXPECT_EQ(r1->reservation_id.size(), 32u);
  EXPECT_EQ(r1->state.spent, 0);
  EXPECT_EQ(r1->state.reserved, 300);
  const auto r2 = c.reserve("team-a", period, 1000, 500, long_ttl, key_ttl);
  ASSERT_EQ(verdict_of(r2), verdict::admitted);
  EXPECT_NE(r1->reservation_id, r2->reservation_id);
  EXPECT_EQ(r2->state.reserved, 800);

  const auto s1 = c.settle("team-a", period, r1->reservation_id, 250, key_ttl);
  ASSERT_TRUE(s1);
  EXPECT_TRUE(s1->released);
  EXPECT_EQ(s1->before.spent, 0);
  EXPECT_EQ(s1->before.reserved, 800);
  EXPECT_EQ(s1->after.spent, 250);
  EXPECT_EQ(s1->after.reserved, 500);

  const auto ch = c.charge("team-a", period, 100, key_ttl);
  ASSERT_TRUE(ch);
  EXPECT_FALSE(ch->released);
  EXPECT_EQ(ch->before.spent, 250);
  EXPECT_EQ(ch->after.spent, 350);
  EXPECT_EQ(ch->after.reserved, 500);

  const auto st = c.read("team-a", period);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->spent, 350);
  EXPECT_EQ(st->reserved, 500);

  // Another budget and another period are separate accumulators.
  EXPECT_EQ(c.read("team-b", period)->spent, 0);
  EXPECT_EQ(c.read("team-a", period + 86400)->spent, 0);

  // The documented layout (docs/budgets-redis.md), as Redis integers, each key with a TTL.
  raw_redis raw(ep);
  const std::string key = "bm-test:budget:team-a:" + std::to_string(period);
  EXPECT_EQ(c.state_key("team-a", period), key);
  EXPECT_EQ(raw.command({"HGET", key, "spent"}), "350");
  EXPECT_EQ(raw.command({"HGET", key, "reserved"}), "500");
  EXPECT_EQ(raw.command({"ZCARD", key + ":reservations"}), "1");
  EXPECT_EQ(raw.command({"HGET", key + ":amounts", r2->reservation_id}), "500");
  for (const std::string& k : {key, key + ":reservations", key + ":amounts"}) {
    const long long pttl = std::stoll(raw.command({"PTTL", k}));
    EXPECT_GT(pttl, 3'500'000) << k;
    EXPECT_LE(pttl, 3'600'000) << k;
  }
  EXPECT_EQ(c.errors(), 0u);
  EXPECT_TRUE(c.connected());
}

// "cmdstat_<name>:calls=N,..." from INFO commandstats; -1 when absent.
long long command_calls(raw_redis& raw, const std::string& name) {
  const std::string info = raw.command({"INFO", "commandstats"});
  const std::string tag = "cmdstat_" + name + ":calls=";
  const auto at = info.find(tag);
  if (at == std::string::npos) return -1;
  return std::stoll(info.substr(at + tag.size()));
}

TEST_F(RedisBudgetTest, ScriptsRunBySha1AndSurviveScriptFlush) {
  const auto ep = unix_endpoint();
  ASSERT_TRUE(server_.start(dir_, ep));
  redis_budget_client c(ep);
  raw_redis raw(ep);
  for (int i = 0; i < 3; ++i) {
    const auto st = c.read("f", period);
    ASSERT_TRUE(st.has_value()) << st.error().message;
  }
  // The full text travels once (after NOSCRIPT); later calls name it by its digest.
  EXPECT_EQ(command_calls(raw, "eval"), 1);
  EXPECT_GE(command_calls(raw, "evalsha"), 2);
  EXPECT_EQ(raw.command({"SCRIPT", "FLUSH"}), "OK");
  const auto after_flush = c.read("f", period);
  ASSERT_TRUE(after_flush.has_value()) << after_flush.error().message;
  EXPECT_EQ(command_calls(raw, "eval"), 2);
  EXPECT_EQ(c.errors(), 0u);
}

TEST_F(RedisBudgetTest, BlockedExactlyAtTheLimit) {
  const auto ep = unix_endpoint();
  ASSERT_TRUE(server_.start(dir_, ep));
  redis_budget_client c(ep);

  const auto a = c.reserve("b", period, 1000, 600, long_ttl, key_ttl);
  ASSERT_EQ(verdict_of(a), verdict::admitted);
  const auto b = c.reserve("b", period, 1000, 400, long_ttl, key_ttl);  // exactly the limit
  ASSERT_EQ(verdict_of(b), verdict::admitted);
  const auto over = c.reserve("b", period, 1000, 1, long_ttl, key_ttl);
  ASSERT_EQ(verdict_of(over), verdict::blocked);
  EXPECT_TRUE(over->reservation_id.empty());
  EXPECT_EQ(over->state.reserved, 1000);
  EXPECT_EQ(c.read("b", period)->reserved, 1000);  // a blocked request holds nothing

  // Settling below the estimate frees the difference, and only the difference.
  ASSERT_TRUE(c.settle("b", period, a->reservation_id, 600, key_ttl));
  EXPECT_EQ(verdict_of(c.reserve("b", period, 1000, 1, long_ttl, key_ttl)), verdict::blocked);
  const auto s = c.settle("b", period, b->reservation_id, 300, key_ttl);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->after.spent, 900);
  EXPECT_EQ(s->after.reserved, 0);
  EXPECT_EQ(verdict_of(c.reserve("b", period, 1000, 101, long_ttl, key_ttl)), verdict::blocked);
  EXPECT_EQ(verdict_of(c.reserve("b", period, 1000, 100, long_ttl, key_ttl)), verdict::admitted);

  // Invalid input is refused without touching Redis.
  EXPECT_EQ(verdict_of(c.reserve("b", period, 1000, -1, long_ttl, key_ttl)), verdict::blocked);
  EXPECT_EQ(c.read("b", period)->reserved, 100);
  EXPECT_EQ(c.errors(), 0u);
}

TEST_F(RedisBudgetTest, ConcurrentReserversFromSeveralClientsNeverExceedTheLimit) {
  const auto ep = unix_endpoint();
  ASSERT_TRUE(server_.start(dir_, ep));
  constexpr int threads = 4;
  constexpr int attempts = 60;
  constexpr std::int64_t limit = 1000;
  constexpr std::int64_t worst = 7;

  std::mutex m;
  std::set<std::string> ids;
  std::atomic<int> unavailable{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      redis_budget_client c(ep);  // one client per thread, as in the proxy's workers
      for (int i = 0; i < attempts; ++i) {
        const auto r = c.reserve("shared", period, limit, worst, long_ttl, key_ttl);
        if (verdict_of(r) == verdict::admitted) {
          std::lock_guard lock(m);
          ids.insert(r->reservation_id);
        } else if (verdict_of(r) == verdict::unavailable) {
          ++unavailable;
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  EXPECT_EQ(unavailable.load(), 0);
  // Nothing settles, so exactly floor(1000 / 7) fit and every id is distinct.
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(limit / worst));
  redis_budget_client c(ep);
  EXPECT_EQ(c.read("shared", period)->reserved, (limit / worst) * worst);
}

TEST_F(RedisBudgetTest, ConcurrentReserveAndSettleSpendsExactlyTheLimit) {
  const auto ep = tcp_endpoint();
  ASSERT_TRUE(server_.start(dir_, ep));
  constexpr int threads = 3;
  constexpr std::int64_t limit = 1000;
  std::atomic<int> admitted{0};
  std::atomic<bool> overshoot{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      redis_budget_client c(ep);
      for (int i = 0; i < 60; ++i) {
        const auto r = c.reserve("burst", period, limit, 10, long_ttl, key_ttl);
        if (verdict_of(r) != verdict::admitted) continue;
        ++admitted;
        if (r->state.spent + r->state.reserved > limit) overshoot = true;
        const auto s = c.settle("burst", period, r->reservation_id, 10, key_ttl);
        if (s && s->after.spent + s->after.reserved > limit) overshoot = true;
      }
    });
  }
  for (auto& t : pool) t.join();
  EXPECT_FALSE(overshoot.load());
  EXPECT_EQ(admitted.load(), 100);
  redis_budget_client c(ep);
  const auto st = c.read("burst", period);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->spent, limit);
  EXPECT_EQ(st->reserved, 0);
}

TEST_F(RedisBudgetTest, ExpiredReservationsAreReclaimed) {
  const auto ep = unix_endpoint();
  ASSERT_TRUE(server_.start(dir_, ep));
  redis_budget_client c(ep);

  // A zero TTL expires at once on Redis's clock: the next call reclaims it, as if the proxy
  // holding it had died.
  const auto dead = c.reserve("e", period, 1000, 600, 0ms, key_ttl);
  ASSERT_EQ(verdict_of(dead), verdict::admitted);
  const auto live = c.reserve("e", period, 1000, 600, long_ttl, key_ttl);
  ASSERT_EQ(verdict_of(live), verdict::admitted) << "the expired 600 should have been reclaimed";
  EXPECT_EQ(live->state.reserved, 600);
  // A live reservation is not reclaimed.
  EXPECT_EQ(verdict_of(c.reserve("e", period, 1000, 401, long_ttl, key_ttl)), verdict::blocked);

  raw_redis raw(ep);
  const std::string key = c.state_key("e", period);
  EXPECT_EQ(raw.command({"HEXISTS", key + ":amounts", dead->reservation_id}), "0");
  EXPECT_EQ(raw.command({"ZSCORE", key + ":reservations", dead->reservation_id}), "(nil)");

  // A late settle of the reclaimed reservation still books what was spent, and releases nothing.
  const auto late = c.settle("e", period, dead->reservation_id, 100, key_ttl);
  ASSERT_TRUE(late);
  EXPECT_FALSE(late->released);
  EXPECT_EQ(late->after.spent, 100);
  EXPECT_EQ(late->after.reserved, 600);

  // read() reclaims too.
  ASSERT_EQ(verdict_of(c.reserve("e2", period, 1000, 50, 0ms, key_ttl)), verdict::admitted);
  EXPECT_EQ(c.read("e2", period)->reserved, 0);
}

TEST_F(RedisBudgetTest, SettleIsIdempotentPerReservation) {
  const auto ep = unix_endpoint();
  ASSERT_TRUE(server_.start(dir_, ep));
  redis_budget_client c(ep);

  const auto a = c.reserve("i", period, 1000, 500, long_ttl, key_ttl);
  const auto b = c.reserve("i", period, 1000, 200, long_ttl, key_ttl);
  ASSERT_EQ(verdict_of(a), verdict::admitted);
  ASSERT_EQ(verdict_of(b), verdict::admitted);
  const auto first = c.settle("i", period, a->reservation_id, 300, key_ttl);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->released);
  EXPECT_EQ(first->after.reserved, 200);
  const auto again = c.settle("i", period, a->reservation_id, 0, key_ttl);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->released);
  EXPECT_EQ(again->after.reserved, 200);  // b's hold is untouched, not 200 - 500
  EXPECT_EQ(again->after.spent, 300);
  const auto unknown = c.settle("i", period, "no-such-reservation", 0, key_ttl);
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(unknown->released);
  EXPECT_EQ(unknown->after.reserved, 200);
}

TEST_F(RedisBudgetTest, SeedAppliesOncePerPeriodAndKeepsEarlierSpend) {
  const auto ep = unix_endpoint();
  ASSERT_TRUE(server_.start(dir_, ep));
  redis_budget_client c(ep);

  EXPECT_FALSE(c.read("s", period)->seeded);
  EXPECT_EQ(seed_outcome(c.seed("s", period, 1000, key_ttl)), redis_seed_outcome::applied);
  const auto st = c.read("s", period);
  EXPECT_EQ(st->spent, 1000);
  EXPECT_TRUE(st->seeded);
  // A second proxy (or a restart) seeding again changes nothing.
  redis_budget_client other(ep);
  EXPECT_EQ(seed_outcome(other.seed("s", period, 5000, key_ttl)),
            redis_seed_outcome::already_seeded);
  EXPECT_EQ(c.read("s", period)->spent, 1000);
  const auto r = c.reserve("s", period, 2000, 10, long_ttl, key_ttl);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->state.seeded);

  // Spend booked before the seed (Redis lost its data mid-period) is added to, not overwritten.
  const auto ch = c.charge("s2", period, 50, key_ttl);
  ASSERT_TRUE(ch);
  EXPECT_FALSE(ch->after.seeded);
  EXPECT_EQ(seed_outcome(c.seed("s2", period, 1000, key_ttl)), redis_seed_outcome::applied);
  EXPECT_EQ(c.read("s2", period)->spent, 1050);
  raw_redis raw(ep);
  EXPECT_GT(std::stoll(raw.command({"PTTL", c.state_key("s2", period)})), 0);
}

TEST_F(RedisBudgetTest, AmountsAbove2To53AreExact) {
  const auto ep = unix_endpoint();
  ASSERT_TRUE(server_.start(dir_, ep));
  redis_budget_client c(ep);

  // 2^62 pico-USD is about 4.6 million USD. As doubles 2^62 + 1 == 2^62 + 2 == 2^62, so a naive
  // Lua comparison would admit the third reservation below.
  constexpr std::int64_t p62 = std::int64_t{1} << 62;
  const auto big = c.reserve("x", period, p62 + 1, p62, long_ttl, key_ttl);
  ASSERT_EQ(verdict_of(big), verdict::admitted) << big.error().message;
  const auto one = c.reserve("x", period, p62 + 1, 1, long_ttl, key_ttl);
  ASSERT_EQ(verdict_of(one), verdict::admitted);
  EXPECT_EQ(one->state.reserved, p62 + 1);
  const auto another = c.reserve("x", period, p62 + 1, 1, long_ttl, key_ttl);
  EXPECT_EQ(verdict_of(another), verdict::blocked);
  const auto s = c.settle("x", period, big->reservation_id, p62 + 3, key_ttl);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->after.spent, p62 + 3);
  EXPECT_EQ(s->after.reserved, 1);
  raw_redis raw(ep);
  EXPECT_EQ(raw.command({"HGET", c.state_key("x", period), "spent"}), "4611686018427387907");

  // At the very top of int64: the limit itself fits, one more does not, and spend saturates
  // instead of failing on overflow.
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  const auto full = c.reserve("y", period, max, max, long_ttl, key_ttl);
  ASSERT_EQ(verdict_of(full), verdict::admitted);
  EXPECT_EQ(verdict_of(c.reserve("y", period, max, 1, long_ttl, key_ttl)), verdict::blocked);
  EXPECT_EQ(c.settle("y", period, full->reservation_id, max - 1, key_ttl)->after.spent, max - 1);
  const auto sat = c.charge("y", period, 5, key_ttl);
  ASSERT_TRUE(sat);
  EXPECT_EQ(sat->after.spent, max);
  EXPECT_EQ(c.errors(), 0u);
}

TEST_F(RedisBudgetTest, TcpEndpointAndDatabaseSelection) {
  auto ep = tcp_endpoint();
  ep.db = 2;
  ASSERT_TRUE(server_.start(dir_, ep));
  redis_budget_client c(ep);
  const auto charged = c.charge("t", period, 42, key_ttl);
  ASSERT_TRUE(charged) << charged.error().message;
  raw_redis raw(ep);
  const std::string key = c.state_key("t", period);
  EXPECT_EQ(raw.command({"EXISTS", key}), "0");  // db 0
  EXPECT_EQ(raw.command({"SELECT", "2"}), "OK");
  EXPECT_EQ(raw.command({"HGET", key, "spent"}), "42");
}

TEST_F(RedisBudgetTest, AuthWithPasswordAndNeverLogsIt) {
  auto ep = unix_endpoint();
  ep.password = "s3cret-budget-pw";
  ASSERT_TRUE(server_.start(dir_, ep));

  redis_budget_client good(ep);
  const auto charged = good.charge("a", period, 7, key_ttl);
  ASSERT_TRUE(charged) << charged.error().message;
  EXPECT_EQ(good.read("a", period)->spent, 7);

  auto none = ep;
  none.password.clear();
  redis_budget_client anonymous(none);
  const auto refused = anonymous.charge("a", period, 7, key_ttl);
  ASSERT_FALSE(refused);
  EXPECT_EQ(anonymous.errors(), 1u);
  EXPECT_NE(refused.error().message.find("NOAUTH"), std::string::npos) << refused.error().message;

  auto wrong = ep;
  wrong.password = "wrong-pw-do-not-print";
  redis_budget_client intruder(wrong);
  const auto intruded = intruder.reserve("a", period, 100, 1, long_ttl, key_ttl);
  ASSERT_EQ(verdict_of(intruded), verdict::unavailable);
  EXPECT_EQ(intruder.errors(), 1u);
  EXPECT_FALSE(intruder.connected());
  EXPECT_FALSE(intruded.error().message.empty());
  EXPECT_EQ(intruded.error().message.find("wrong-pw-do-not-print"), std::string::npos);
  EXPECT_EQ(good.read("a", period)->spent, 7);
}

TEST_F(RedisBudgetTest, ErrorReplyIsUnavailableAndCounted) {
  auto ep = unix_endpoint();
  ep.reconnect_interval = 0ms;
  ASSERT_TRUE(server_.start(dir_, ep));
  redis_budget_client c(ep);
  raw_redis raw(ep);
  // Someone else's string where the budget hash should be: Redis answers WRONGTYPE.
  EXPECT_EQ(raw.command({"SET", c.state_key("w", period), "not-a-hash"}), "OK");
  const auto r = c.reserve("w", period, 100, 1, long_ttl, key_ttl);
  ASSERT_EQ(verdict_of(r), verdict::unavailable);
  EXPECT_EQ(c.errors(), 1u);
  EXPECT_NE(r.error().message.find("WRONGTYPE"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("unix:" + ep.unix_socket), std::string::npos);
  // Other budgets are unaffected, over a fresh connection.
  EXPECT_EQ(verdict_of(c.reserve("ok", period, 100, 1, long_ttl, key_ttl)), verdict::admitted);
  EXPECT_EQ(c.errors(), 1u);
}

TEST_F(RedisBudgetTest, ReconnectAttemptsAreRateLimited) {
  auto ep = unix_endpoint();  // nobody listens: the server is never started
  ep.reconnect_interval = 1000ms;
  redis_budget_client c(ep);
  const auto t0 = clock_type::now();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(verdict_of(c.reserve("r", period, 100, 1, long_ttl, key_ttl)), verdict::unavailable);
  }
  EXPECT_FALSE(c.read("r", period).has_value());
  EXPECT_FALSE(c.seed("r", period, 1, key_ttl));
  // One attempt, one error; the rest answered at once without touching the network.
  EXPECT_EQ(c.connect_attempts(), 1u);
  EXPECT_EQ(c.errors(), 1u);
  EXPECT_LT(clock_type::now() - t0, 1000ms);
}

TEST_F(RedisBudgetTest, ErrorsSayWhetherAConnectionWasAttempted) {
  auto ep = unix_endpoint();  // nobody listens: the server is never started
  ep.reconnect_interval = 1000ms;
  redis_budget_client c(ep);
  const auto first = c.charge("k", period, 1, key_ttl);
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().what, redis_error::kind::connect);
  EXPECT_NE(first.error().message.find("unix:" + ep.unix_socket + ": connect: "), std::string::npos)
      << first.error().message;
  const auto waiting = c.read("k", period);
  ASSERT_FALSE(waiting);
  EXPECT_EQ(waiting.error().what, redis_error::kind::not_connected);
  EXPECT_NE(waiting.error().message.find("unix:" + ep.unix_socket), std::string::npos)
      << waiting.error().message;
  EXPECT_EQ(c.errors(), 1u);
}

TEST_F(RedisBudgetTest, UnavailableWhenStoppedAndReconnectsAfterRestart) {
  auto ep = unix_endpoint();
  ep.reconnect_interval = 100ms;
  ASSERT_TRUE(server_.start(dir_, ep));
  redis_budget_client c(ep);
  ASSERT_EQ(seed_outcome(c.seed("d", period, 500, key_ttl)), redis_seed_outcome::applied);
  ASSERT_TRUE(c.connected());

  server_.stop();
  const auto t0 = clock_type::now();
  const auto lost = c.charge("d", period, 1, key_ttl);
  EXPECT_FALSE(lost);
  EXPECT_LE(clock_type::now() - t0, ep.timeout);
  EXPECT_FALSE(c.connected());
  EXPECT_EQ(c.errors(), 1u);
  EXPECT_FALSE(lost.error().message.empty());

  ASSERT_TRUE(server_.start(dir_, ep));
  // Reconnection is lazy and rate limited; poll until the interval has passed.
  auto st = c.read("d", period);
  const auto deadline = clock_type::now() + 5s;
  while (!st && clock_type::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    st = c.read("d", period);
  }
  ASSERT_TRUE(st.has_value()) << st.error().message;
  EXPECT_TRUE(c.connected());
  // Without persistence the restarted Redis forgot everything, and says so: the proxy re-seeds.
  EXPECT_FALSE(st->seeded);
  EXPECT_EQ(st->spent, 0);
  EXPECT_EQ(seed_outcome(c.seed("d", period, 500, key_ttl)), redis_seed_outcome::applied);
  EXPECT_EQ(c.read("d", period)->spent, 500);
}

TEST_F(RedisBudgetTest, HungRedisTimesOutAndRecovers) {
  auto ep = unix_endpoint();
  ep.timeout = 100ms;
  ep.reconnect_interval = 0ms;
  ASSERT_TRUE(server_.start(dir_, ep));
  redis_budget_client c(ep);
  const auto charged = c.charge("h", period, 5, key_ttl);
  ASSERT_TRUE(charged) << charged.error().message;

  server_.pause();
  const auto t0 = clock_type::now();
  EXPECT_FALSE(c.read("h", period).has_value());
  const auto took = clock_type::now() - t0;
  EXPECT_GE(took, 90ms);
  EXPECT_LT(took, 1000ms);
  EXPECT_EQ(c.errors(), 1u);
  server_.resume();

  const auto st = c.read("h", period);
  ASSERT_TRUE(st.has_value()) << st.error().message;
  EXPECT_EQ(st->spent, 5);
}

}  // namespace
}  // namespace bedrock_meter::accounting
