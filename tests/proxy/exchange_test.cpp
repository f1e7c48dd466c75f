// The request path in-process: a whole exchange (stages, forward, settle) on a real worker, with
// a fake response sink for the client side and Beast test streams for the upstream, some with a
// fail_count. Each test reads back what the client got, what Bedrock was sent, the ledger row and
// the counters.
#include <gtest/gtest.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/beast/_experimental/test/fail_count.hpp>
#include <boost/beast/_experimental/test/stream.hpp>

#include "accounting/ledger.hpp"
#include "config/config.hpp"
#include "proxy/forward.hpp"
#include "proxy/state.hpp"
#include "proxy/worker.hpp"

namespace bedrock_meter::proxy {
namespace {

using namespace io;
namespace fs = std::filesystem;
namespace test = beast::test;
using upstream_stream = test::basic_stream<executor>;

constexpr std::string_view haiku = "anthropic.claude-3-5-haiku-20241022-v1:0";

const fs::path repo = fs::path(BM_TEST_DATA_DIR) / ".." / "..";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// The client side: records what the session would have sent.
class recording_sink final : public response_sink {
 public:
  unsigned status = 0;
  aws::sigv4::header_list headers;
  std::string body;
  std::optional<bool> finished;  ///< finish(complete) was called with this
  int fail_body_write = -1;      ///< the n-th write_body fails (the client went away)

  awaitable<error_code> write_head(unsigned s, const aws::sigv4::header_list& h,
                                   std::optional<std::uint64_t>) override {
    status = s;
    headers = h;
    co_return error_code{};
  }
  awaitable<error_code> write_body(std::string_view bytes) override {
    if (fail_body_write-- == 0) co_return net::error::broken_pipe;
    body.append(bytes);
    co_return error_code{};
  }
  awaitable<error_code> finish(bool complete) override {
    finished = complete;
    co_return error_code{};
  }
  std::string header(std::string_view name) const {
    for (const auto& [k, v] : headers)
      if (beast::iequals(k, name)) return v;
    return {};
  }
};

/// What one upstream connection was sent, kept after the exchange drops the connection.
struct transcript {
  std::string sent;
};

/// One upstream connection: a test stream whose input is Bedrock's answer, and a remote end that
/// receives what the proxy sends (copied to `record` when the connection goes).
struct test_connection {
  test_connection(net::io_context& ioc, std::string_view answer, test::fail_count* fc,
                  std::uint32_t served, transcript& rec)
      : stream(fc ? upstream_stream(ioc, *fc) : upstream_stream(ioc.get_executor())),
        remote(ioc.get_executor()),
        requests(served),
        record(rec) {
    stream.connect(remote);
    stream.append(answer);
    remote.close();  // after the answer the upstream closes: the parser sees eof there
  }
  ~test_connection() { record.sent = remote.str(); }
  test_connection(const test_connection&) = delete;
  test_connection& operator=(const test_connection&) = delete;

  template <class F>
  auto with_stream(F&& f) {
    return f(stream);
  }

  upstream_stream stream;
  upstream_stream remote;
  std::uint32_t requests;
  transcript& record;
};

/// Hands out prepared connections in order; records what came back.
struct test_connector {
  struct acquired {
    upstream_failure failure = upstream_failure::none;
    error_code ec;
    std::unique_ptr<test_connection> conn;
  };
  std::deque<transcript> transcripts;  ///< one per connection, in the order they are handed out
  std::vector<std::unique_ptr<test_connection>> ready;
  std::vector<std::unique_ptr<test_connection>> released;
  int acquired_count = 0;

  /// What the i-th connection handed out was sent (the exchange may have dropped it already).
  std::string sent(std::size_t i) {
    for (const auto& c : released)
      if (&c->record == &transcripts.at(i)) return std::string(c->remote.str());
    return transcripts.at(i).sent;
  }

  awaitable<acquired> acquire(const upstream_target&, std::chrono::milliseconds) {
    ++acquired_count;
    acquired a;
    if (ready.empty()) {
      a.failure = upstream_failure::connect;
      a.ec = net::error::connection_refused;
      co_return a;
    }
    a.conn = std::move(ready.front());
    ready.erase(ready.begin());
    co_return a;
  }
  void release(std::unique_ptr<test_connection> c) { released.push_back(std::move(c)); }
};

std::string converse_answer(std::string_view request_id, int input, int output) {
  const std::string body =
      R"({"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},)"
      R"("stopReason":"end_turn","usage":{"inputTokens":)" +
      std::to_string(input) + R"(,"outputTokens":)" + std::to_string(output) +
      R"(,"totalTokens":)" + std::to_string(input + output) + R"(},"metrics":{"latencyMs":12}})";
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-amzn-RequestId: " +
         std::string(request_id) + "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string stream_answer() {
  const std::string events =
      read_file(fs::path(BM_TEST_DATA_DIR) / "eventstream" / "converse_stream.bin");
  std::ostringstream chunked;
  chunked << "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
             "x-amzn-RequestId: stream-req-1\r\nTransfer-Encoding: chunked\r\n\r\n"
          << std::hex << events.size() << "\r\n"
          << events << "\r\n0\r\n\r\n";
  return chunked.str();
}

class ExchangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("bm-exchange-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    // Test streams must go before the worker's io_context (and before their transcripts).
    upstream_.ready.clear();
    upstream_.released.clear();
    worker_.reset();
    state_.reset();
    if (book_) book_->close();
    book_.reset();
    fs::remove_all(dir_);
  }

  /// A worker for a config made of `extra` YAML under a base that lets anonymous callers in as
  /// team research (or `auth`), prices with the shipped rate table and writes a ledger in the
  /// test's directory.
  void start(const std::string& extra = "",
             const std::string& auth =
                 "auth: {anonymous: {enabled: true, team: research, app: notebook}}\n") {
    const std::string yaml =
        "listeners: [{address: 127.0.0.1, port: 0}]\n"
        "upstream: {region: us-east-1, endpoint: 'http://127.0.0.1:9'}\n" +
        auth + "pricing: {rate_table: '" + (repo / "config" / "rates" / "bedrock.yaml").string() +
        "', reload: {watch: false}}\n" + extra;
    auto loaded = config::load_string(yaml, (dir_ / "config.yaml").string());
    ASSERT_TRUE(loaded.value) << (loaded.errors.empty() ? "" : loaded.errors[0].to_string());
    auto creds = std::make_shared<published_credentials>();
    creds->publish(std::make_shared<const aws::sigv4::credentials>(
        aws::sigv4::credentials{"AKIDUPSTREAMTEST", "upstream-secret", ""}));
    auto opened = accounting::ledger::open((dir_ / "ledger.db").string(), {});
    ASSERT_TRUE(opened) << opened.error().message;
    book_ = std::move(*opened);
    auto state = shared_state::create(
        std::make_shared<const config::config>(std::move(*loaded.value)), creds, "");
    ASSERT_TRUE(state) << state.error().message;
    state_ = std::move(*state);
    state_->sinks.ledger = book_.get();
    worker_ = std::make_unique<worker>(*state_, 0);
  }

  test_connection& add_upstream(std::string_view answer, test::fail_count* fc = nullptr,
                                std::uint32_t served = 0) {
    upstream_.ready.push_back(std::make_unique<test_connection>(
        worker_->io_context(), answer, fc, served, upstream_.transcripts.emplace_back()));
    return *upstream_.ready.back();
  }

  /// Runs one exchange to its end on the worker's io_context.
  exchange_result exchange(inbound_request req, recording_sink& sink) {
    std::optional<exchange_result> result;
    net::co_spawn(worker_->io_context(), run_exchange_with(*worker_, req, sink, upstream_),
                  [&](std::exception_ptr e, exchange_result r) {
                    EXPECT_FALSE(e);
                    result = r;
                  });
    worker_->io_context().restart();
    worker_->io_context().run();
    EXPECT_TRUE(result);
    return result.value_or(exchange_result{});
  }

  static inbound_request converse_request(std::string_view model = haiku) {
    inbound_request req;
    req.method = "POST";
    req.target = "/model/" + std::string(model) + "/converse";
    req.headers = {{"content-type", "application/json"}, {"host", "localhost"}};
    req.body = R"({"messages":[{"role":"user","content":[{"text":"hi"}]}],)"
               R"("inferenceConfig":{"maxTokens":100}})";
    req.protocol = "HTTP/1.1";
    req.remote = "127.0.0.1:50000";
    return req;
  }

  /// Every ledger row (flushed first).
  std::vector<accounting::ledger_record> ledger_rows() {
    EXPECT_TRUE(book_->flush(std::chrono::seconds(5)));
    auto recs = book_->reader().records(INT64_MIN, INT64_MAX);
    EXPECT_TRUE(recs);
    return recs ? *recs : std::vector<accounting::ledger_record>{};
  }

  telemetry::proxy_counters& counters() { return state_->counters; }

  fs::path dir_;
  std::unique_ptr<accounting::ledger> book_;
  std::shared_ptr<shared_state> state_;
  std::unique_ptr<worker> worker_;
  test_connector upstream_;
};

TEST_F(ExchangeTest, AnsweredConverseIsRelayedSignedAndSettledOnce) {
  start();
  add_upstream(converse_answer("bedrock-req-7", 1000, 200));
  recording_sink sink;
  const auto result = exchange(converse_request(), sink);
  EXPECT_EQ(result.status, 0u);  // the session reads status from the sink; not the result's job
  EXPECT_TRUE(result.keep_alive);
  EXPECT_EQ(sink.status, 200u);
  EXPECT_NE(sink.body.find("\"outputTokens\":200"), std::string::npos);
  EXPECT_EQ(sink.finished, true);

  // Bedrock was sent the same request, re-signed with the proxy's own key.
  ASSERT_EQ(upstream_.acquired_count, 1);
  const std::string sent = upstream_.sent(0);
  EXPECT_TRUE(sent.starts_with("POST /model/" + std::string(haiku) + "/converse HTTP/1.1\r\n"));
  EXPECT_NE(sent.find("host: 127.0.0.1:9\r\n"), std::string::npos);
  EXPECT_NE(sent.find("Credential=AKIDUPSTREAMTEST/"), std::string::npos);
  EXPECT_NE(sent.find(R"("maxTokens":100)"), std::string::npos);
  // The connection was read to its end and goes back to the pool.
  ASSERT_EQ(upstream_.released.size(), 1u);
  EXPECT_EQ(upstream_.released[0]->requests, 1u);

  const auto rows = ledger_rows();
  ASSERT_EQ(rows.size(), 1u);
  const auto& r = rows[0];
  EXPECT_EQ(r.request_id, "bedrock-req-7");  // Bedrock's id, not the proxy's
  EXPECT_EQ(r.operation, "Converse");
  EXPECT_EQ(r.team, "research");
  EXPECT_EQ(r.principal, "anonymous");
  EXPECT_EQ(r.input_tokens, 1000u);
  EXPECT_EQ(r.output_tokens, 200u);
  EXPECT_EQ(r.outcome, metering::request_outcome::ok);
  EXPECT_TRUE(r.priced);
  // Haiku 3.5 in us-east-1 (shipped table): $0.80 in, $4.00 out per 1M tokens.
  EXPECT_EQ(r.total_cost, 1000 * 800'000 + 200 * 4'000'000);
  EXPECT_EQ(r.bytes_in, converse_request().body.size());
  EXPECT_GT(r.bytes_out, 0u);
  EXPECT_EQ(counters().inflight.load(), 0);
}

TEST_F(ExchangeTest, UnknownRouteIsRefusedWithoutReachingBedrock) {
  start();
  recording_sink sink;
  auto req = converse_request();
  req.target = "/v1/chat/completions";
  exchange(std::move(req), sink);
  EXPECT_EQ(sink.status, 404u);
  EXPECT_EQ(sink.header("x-amzn-ErrorType").substr(0, 25), "UnknownOperationException");
  EXPECT_EQ(upstream_.acquired_count, 0);
  EXPECT_EQ(counters().unknown_routes.load(), 1u);
  const auto rows = ledger_rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].outcome, metering::request_outcome::refused);
  EXPECT_EQ(rows[0].operation, "-");
  EXPECT_EQ(rows[0].total_cost, 0);
}

TEST_F(ExchangeTest, BadCredentialsAreRefusedBeforeTheUpstream) {
  start();
  recording_sink sink;
  auto req = converse_request();
  req.headers.emplace_back("authorization", "Bearer not-a-key-of-ours");
  exchange(std::move(req), sink);
  EXPECT_EQ(sink.status, 403u);
  EXPECT_EQ(upstream_.acquired_count, 0);
  EXPECT_EQ(counters().auth_failures.load(), 1u);
  const auto rows = ledger_rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].principal, "");  // nobody was authenticated
  EXPECT_EQ(rows[0].outcome, metering::request_outcome::refused);
}

TEST_F(ExchangeTest, APooledConnectionDeadBeforeTheWriteIsRetriedOnceOnAFreshOne) {
  start();
  test::fail_count first_op_fails(0);
  add_upstream(converse_answer("never", 1, 1), &first_op_fails, /*served=*/3);
  add_upstream(converse_answer("bedrock-req-8", 10, 5));
  recording_sink sink;
  exchange(converse_request(), sink);
  EXPECT_EQ(sink.status, 200u);
  EXPECT_EQ(upstream_.acquired_count, 2);
  EXPECT_EQ(upstream_.sent(0), "");  // Bedrock never saw the first attempt
  const auto rows = ledger_rows();
  ASSERT_EQ(rows.size(), 1u);  // one request, billed once
  EXPECT_EQ(rows[0].request_id, "bedrock-req-8");
  EXPECT_EQ(counters().upstream_reset.load(), 0u);  // a retried pooled connection is no error
}

TEST_F(ExchangeTest, AFreshConnectionThatFailsIsA503AndCounted) {
  start();
  test::fail_count first_op_fails(0);
  add_upstream(converse_answer("never", 1, 1), &first_op_fails);
  recording_sink sink;
  exchange(converse_request(), sink);
  EXPECT_EQ(sink.status, 503u);
  EXPECT_EQ(sink.header("x-amzn-ErrorType").substr(0, 27), "ServiceUnavailableException");
  EXPECT_EQ(upstream_.acquired_count, 1);
  EXPECT_EQ(counters().upstream_reset.load(), 1u);
  const auto rows = ledger_rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].outcome, metering::request_outcome::upstream_error);
}

TEST_F(ExchangeTest, NoUpstreamAtAllIsA503WithTheReason) {
  start();
  recording_sink sink;
  exchange(converse_request(), sink);
  EXPECT_EQ(sink.status, 503u);
  EXPECT_NE(sink.body.find("could not reach Bedrock (connect)"), std::string::npos);
  EXPECT_EQ(counters().upstream_connect.load(), 1u);
  EXPECT_EQ(ledger_rows().at(0).outcome, metering::request_outcome::upstream_error);
}

TEST_F(ExchangeTest, AnAnswerCutMidBodyReachesTheClientTruncated) {
  start();
  const std::string whole = converse_answer("bedrock-req-9", 10, 5);
  add_upstream(whole.substr(0, whole.size() - 20));  // then the upstream closes
  recording_sink sink;
  const auto result = exchange(converse_request(), sink);
  EXPECT_EQ(sink.finished, false);
  EXPECT_FALSE(result.keep_alive);
  EXPECT_TRUE(upstream_.released.empty());  // a broken connection is never pooled
  EXPECT_EQ(ledger_rows().at(0).outcome, metering::request_outcome::upstream_cut);
}

TEST_F(ExchangeTest, AClientGoneMidStreamIsDrainedForTheExactUsage) {
  start();
  auto& conn = add_upstream(stream_answer());
  conn.stream.read_size(64);  // the answer arrives in small pieces, as a stream does
  recording_sink sink;
  sink.fail_body_write = 1;  // the second piece finds the client gone
  auto req = converse_request();
  req.target = "/model/" + std::string(haiku) + "/converse-stream";
  const auto result = exchange(std::move(req), sink);
  EXPECT_FALSE(result.keep_alive);
  EXPECT_EQ(counters().drains.load(), 1u);
  EXPECT_EQ(counters().client_aborts.load(), 1u);
  EXPECT_EQ(counters().draining.load(), 0);
  const auto rows = ledger_rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].outcome, metering::request_outcome::client_abort);
  // The metadata event came after the client left; draining read on to it.
  EXPECT_EQ(rows[0].usage_source, metering::usage_source::reported);
  EXPECT_EQ(rows[0].input_tokens, 31u);
  EXPECT_EQ(rows[0].output_tokens, 9u);
  EXPECT_EQ(rows[0].cache_read_tokens, 128u);
}

TEST_F(ExchangeTest, AnExhaustedBlockBudgetRefusesBeforeTheUpstream) {
  start(
      "budgets:\n"
      "  definitions:\n"
      "    - {name: tiny, scope: {team: research}, period: daily, limit_usd: '0.000001',"
      " action: block}\n");
  recording_sink sink;
  exchange(converse_request(), sink);
  EXPECT_EQ(sink.status, 400u);
  EXPECT_EQ(sink.header("x-amzn-ErrorType").substr(0, 29), "ServiceQuotaExceededException");
  EXPECT_NE(sink.body.find("Budget 'tiny'"), std::string::npos);
  EXPECT_EQ(upstream_.acquired_count, 0);
  EXPECT_EQ(ledger_rows().at(0).outcome, metering::request_outcome::refused);
}

TEST_F(ExchangeTest, AModelOutsideTheAllowListIsDenied) {
  start("",
        "auth: {anonymous: {enabled: true, team: research, app: notebook,"
        " allowed_models: ['amazon.nova-*']}}\n");
  recording_sink sink;
  exchange(converse_request(), sink);
  EXPECT_EQ(sink.status, 403u);
  EXPECT_EQ(counters().model_denied.load(), 1u);
  EXPECT_EQ(upstream_.acquired_count, 0);
}

}  // namespace
}  // namespace bedrock_meter::proxy
