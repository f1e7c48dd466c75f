// Lever tests: prompt caching (the simulated cache), output caps, prompt trimming, model
// substitution, batch, global profiles, flex and priority tiers. Every expected amount is worked
// out by hand beside it from the hand-built rate tables below; never copied from the output.
// Units: a rate of $X per 1M tokens is X * 1e6 micro-USD per 1M, which is also X * 1e6 pico-USD
// per token; cost in pico-USD = tokens x that number; $1 = 1e12 pico-USD. The window is 73 hours,
// so monthly figures (730 hours a month) are exactly 10x the window's.
#include "advice/levers.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "advice/histogram.hpp"
#include "advice/prompt_cache.hpp"

namespace bedrock_meter::advice {
namespace {

namespace json = boost::json;
using metering::rate_entry;
using metering::rate_table;

constexpr std::int64_t minute = 60'000;
constexpr std::int64_t hour = 60 * minute;
constexpr std::int64_t t0 = 20'454LL * 86'400'000;  // 2026-01-01T00:00:00Z
constexpr std::int64_t window = 73 * hour;          // 730 / 73 = 10 windows a month

constexpr std::string_view big = "anthropic.claude-big-v1:0";      // $3 / $15, cache, 1h TTL
constexpr std::string_view small = "anthropic.claude-small-v1:0";  // $1 / $5, cache, 5m only
constexpr std::string_view llama = "meta.llama-big-v1:0";          // $5 / $20
constexpr std::string_view nova = "amazon.nova-lite-v1:0";         // $0.06 / $0.24

rate_entry entry(std::string_view model, std::int64_t input, std::int64_t output) {
  rate_entry e;
  e.model = std::string(model);
  e.regions = {"us-east-1"};
  e.rates.input = input;
  e.rates.output = output;
  e.source = "test";
  return e;
}

metering::caching_rule caching(std::string_view model, std::uint64_t min, bool ttl_1h) {
  metering::caching_rule r;
  r.model = std::string(model);
  r.min_prefix_tokens = min;
  r.ttl_1h = ttl_1h;
  return r;
}

/// big: $3 in, $15 out, read $0.30, write 5m $3.75, write 1h $6; caches from 1024 tokens, 1h TTL.
/// small: $1 in, $5 out, read $0.10, write 5m $1.25; caches from 2048 tokens, 5m TTL only.
/// llama: $5 in, $20 out (another provider, no caching). nova: $0.06 in, $0.24 out.
rate_table base_table() {
  rate_table t;
  t.version = "test.1";
  rate_entry b = entry(big, 3'000'000, 15'000'000);
  b.rates.cache_read = 300'000;
  b.rates.cache_write_5m = 3'750'000;
  b.rates.cache_write_1h = 6'000'000;
  rate_entry s = entry(small, 1'000'000, 5'000'000);
  s.rates.cache_read = 100'000;
  s.rates.cache_write_5m = 1'250'000;
  t.entries = {b, s, entry(llama, 5'000'000, 20'000'000), entry(nova, 60'000, 240'000)};
  t.caching = {caching(big, 1024, true), caching(small, 2048, false)};
  t.index();
  return t;
}

/// One Converse request of team "search", app "bot", 4 bytes of body per input token, with
/// request traits (max_tokens set, stop_reason end_turn) and no prefixes.
request_row row(std::int64_t at, std::string_view model, std::uint64_t input,
                std::uint64_t output) {
  request_row r;
  r.time_ms = t0 + at;
  r.team = "search";
  r.app = "bot";
  r.operation = "Converse";
  r.model_requested = model;
  r.model_base = model;
  r.region = "us-east-1";
  r.scope = "in_region";
  r.service_tier = "default";
  r.latency_mode = "standard";
  r.outcome = "ok";
  r.status = 200;
  r.priced = true;
  r.input_tokens = input;
  r.output_tokens = output;
  r.bytes_in = input * 4;
  r.max_tokens = 4096;
  r.stop_reason = "end_turn";
  return r;
}

/// The meter's price of `r` at the given rates (micro-USD per 1M = pico-USD per token).
void bill(request_row& r, std::int64_t input, std::int64_t output, std::int64_t read = 0,
          std::int64_t write = 0) {
  r.total_cost = static_cast<std::int64_t>(r.input_tokens) * input +
                 static_cast<std::int64_t>(r.output_tokens) * output +
                 static_cast<std::int64_t>(r.cache_read_tokens) * read +
                 static_cast<std::int64_t>(r.cache_write_tokens) * write;
}

/// A request of the caching tests: `input` tokens over 4 bytes each; the system prefix and the
/// full prompt given in tokens (x 4 bytes), so the estimate P = bytes x input / bytes_in is
/// exactly those tokens.
request_row prompt(std::int64_t at, std::string_view model, std::uint64_t input,
                   std::uint64_t system_hash, std::uint64_t system_tokens, std::uint64_t full_hash,
                   std::uint64_t full_tokens) {
  request_row r = row(at, model, input, 0);
  r.system_prefix = {system_hash, system_tokens * 4};
  r.full_prompt = {full_hash, full_tokens * 4};
  return r;
}

struct run {
  rate_table table = base_table();
  std::vector<metering::model_mapping> mappings;
  std::vector<std::string> reprice_as;
  report r;

  options opts() const {
    options o;
    o.since_ms = t0;
    o.until_ms = t0 + window;
    o.rates = &table;
    o.mappings = &mappings;
    o.reprice_as = reprice_as;
    return o;
  }
  report& analyse(const std::vector<request_row>& rows) {
    lever_analysis a{opts()};
    for (const request_row& x : rows) a.add(x);
    a.finish(r);
    return r;
  }
};

const lever* find(const report& r, std::string_view name, std::string_view model = {}) {
  for (const lever& l : r.levers) {
    if (l.name == name && (model.empty() || l.model == model)) return &l;
  }
  return nullptr;
}

json::object evidence(const lever& l) { return json::parse(l.evidence_json).as_object(); }

std::int64_t num(const json::object& o, std::string_view key) {
  return json::value_to<std::int64_t>(o.at(key));
}
/// A JSON number of any kind as a double (a ratio of 1 is written "1").
double real(const json::object& o, std::string_view key) {
  const json::value& v = o.at(key);
  if (v.is_int64()) return static_cast<double>(v.as_int64());
  if (v.is_uint64()) return static_cast<double>(v.as_uint64());
  return v.as_double();
}
std::string str(const json::object& o, std::string_view key) {
  return std::string(o.at(key).as_string());
}

// ---- prompt caching ---------------------------------------------------------------------------

TEST(PromptCaching, SharedSystemPromptWithinFiveMinutes) {
  // Four requests a minute apart, 4000 input tokens each: the same 3200-token system prompt, a
  // 3600-token full prompt (each one different), 400 tokens of inference config outside both.
  run t;
  std::vector<request_row> rows;
  for (int i = 0; i < 4; ++i) {
    rows.push_back(prompt(i * minute, big, 4000, 0xAAAA, 3200, 0x100 + i, 3600));
    bill(rows.back(), 3'000'000, 15'000'000);
  }
  const lever* l = find(t.analyse(rows), "prompt_caching");
  ASSERT_NE(l, nullptr);
  // 1st: nothing live -> write the whole 3600-token prompt, 400 uncached.
  // 2nd-4th: system live -> read 3200, write 3600 - 3200 = 400, 400 uncached.
  // reads 3 x 3200 = 9600, writes 3600 + 3 x 400 = 4800, uncached 4 x 400 = 1600 (sum 16000).
  // now: 16000 x 3e6 = 48e9. 5m: 9600 x 0.3e6 + 4800 x 3.75e6 + 1600 x 3e6
  //    = 2.88e9 + 18e9 + 4.8e9 = 25.68e9 -> saves 22.32e9.
  // 1h: 2.88e9 + 4800 x 6e6 + 4.8e9 = 36.48e9 -> saves 11.52e9: 5m is better.
  EXPECT_EQ(l->savings, money_total{22'320'000'000});
  EXPECT_EQ(l->monthly_savings, money_total{223'200'000'000});
  const json::object ev = evidence(*l);
  EXPECT_EQ(num(ev, "requests"), 4);
  EXPECT_EQ(num(ev, "candidate_requests"), 4);
  EXPECT_EQ(num(ev, "below_minimum_requests"), 0);
  EXPECT_EQ(num(ev, "distinct_prefixes"), 1);
  EXPECT_EQ(num(ev, "simulated_reads"), 3);
  EXPECT_EQ(num(ev, "simulated_writes"), 4);
  EXPECT_EQ(num(ev, "read_tokens"), 9600);
  EXPECT_EQ(num(ev, "write_tokens"), 4800);
  EXPECT_EQ(str(ev, "ttl"), "5m");
  EXPECT_EQ(num(ev, "min_prefix_tokens"), 1024);
  EXPECT_DOUBLE_EQ(real(ev, "hit_rate"), 0.6);  // 9600 / 16000
  EXPECT_FALSE(ev.contains("already_caching"));
  EXPECT_NE(l->caveat.find("estimated from bytes"), std::string::npos);
}

TEST(PromptCaching, SpreadBeyondTheTtlSavesNothing) {
  // The same four requests two hours apart: every one writes its 3600 tokens again (5m and 1h),
  // 3600 x 3.75e6 + 400 x 3e6 = 14.7e9 > 4000 x 3e6 = 12e9: caching would cost more.
  run t;
  std::vector<request_row> rows;
  for (int i = 0; i < 4; ++i) {
    rows.push_back(prompt(i * 2 * hour, big, 4000, 0xAAAA, 3200, 0x100 + i, 3600));
    bill(rows.back(), 3'000'000, 15'000'000);
  }
  EXPECT_EQ(find(t.analyse(rows), "prompt_caching"), nullptr);
}

TEST(PromptCaching, MultiTurnChatReadsThePreviousFullPrompt) {
  // Turn n's conversation prefix is turn n-1's full prompt. 1200-token system prompt.
  run t;
  std::vector<request_row> rows;
  rows.push_back(prompt(0, big, 2000, 0x5, 1200, 0x71, 1800));
  rows.push_back(prompt(1 * minute, big, 3000, 0x5, 1200, 0x72, 2700));
  rows.back().conversation_prefix = {0x71, 1800 * 4};
  rows.push_back(prompt(2 * minute, big, 4000, 0x5, 1200, 0x73, 3600));
  rows.back().conversation_prefix = {0x72, 2700 * 4};
  for (request_row& r : rows) bill(r, 3'000'000, 15'000'000);
  const lever* l = find(t.analyse(rows), "prompt_caching");
  ASSERT_NE(l, nullptr);
  // Turn 1: write 1800, 200 uncached. Turn 2: read 1800 (0x71), write 2700 - 1800 = 900, 300
  // uncached. Turn 3: read 2700 (0x72), write 900, 400 uncached.
  // reads 4500, writes 3600, uncached 900 (sum 9000). now: 9000 x 3e6 = 27e9.
  // 5m: 4500 x 0.3e6 + 3600 x 3.75e6 + 900 x 3e6 = 1.35e9 + 13.5e9 + 2.7e9 = 17.55e9
  //   -> saves 9.45e9 (1h: 1.35e9 + 21.6e9 + 2.7e9 = 25.65e9 -> 1.35e9).
  EXPECT_EQ(l->savings, money_total{9'450'000'000});
  const json::object ev = evidence(*l);
  EXPECT_EQ(num(ev, "simulated_reads"), 2);
  EXPECT_EQ(num(ev, "simulated_writes"), 3);
  EXPECT_EQ(num(ev, "read_tokens"), 4500);
  EXPECT_EQ(num(ev, "write_tokens"), 3600);
  EXPECT_EQ(str(ev, "ttl"), "5m");
  EXPECT_DOUBLE_EQ(real(ev, "hit_rate"), 0.5);  // 4500 / 9000
}

TEST(PromptCaching, BelowTheModelMinimumNothingIsCached) {
  // small caches from 2048 tokens: 900-token prompts are never written, so never read.
  run t;
  std::vector<request_row> rows;
  for (int i = 0; i < 4; ++i) {
    rows.push_back(prompt(i * minute, small, 1000, 0xB, 800, 0x200 + i, 900));
    bill(rows.back(), 1'000'000, 5'000'000);
  }
  EXPECT_EQ(find(t.analyse(rows), "prompt_caching"), nullptr);
}

TEST(PromptCaching, BelowMinimumRequestsAreCounted) {
  // Three 4000-token requests of small share a 3200-token system prompt (3600-token prompts);
  // two 1000-token ones (900-token prompts, below 2048) come in between.
  run t;
  std::vector<request_row> rows;
  rows.push_back(prompt(0, small, 4000, 0xC, 3200, 0x300, 3600));
  rows.push_back(prompt(30'000, small, 1000, 0xD, 800, 0x301, 900));
  rows.push_back(prompt(1 * minute, small, 4000, 0xC, 3200, 0x302, 3600));
  rows.push_back(prompt(90'000, small, 1000, 0xD, 800, 0x303, 900));
  rows.push_back(prompt(2 * minute, small, 4000, 0xC, 3200, 0x304, 3600));
  for (request_row& r : rows) bill(r, 1'000'000, 5'000'000);
  const lever* l = find(t.analyse(rows), "prompt_caching");
  ASSERT_NE(l, nullptr);
  // Large ones: write 3600 | read 3200 + write 400 | read 3200 + write 400; 3 x 400 uncached.
  // Small ones: 1000 uncached each, the same now and under the policy (they add 0).
  // now: 12000 x 1e6 = 12e9; policy: 6400 x 0.1e6 + 4400 x 1.25e6 + 1200 x 1e6
  //    = 0.64e9 + 5.5e9 + 1.2e9 = 7.34e9 -> saves 4.66e9. No 1h TTL on small.
  EXPECT_EQ(l->savings, money_total{4'660'000'000});
  const json::object ev = evidence(*l);
  EXPECT_EQ(num(ev, "candidate_requests"), 5);
  EXPECT_EQ(num(ev, "below_minimum_requests"), 2);
  EXPECT_EQ(num(ev, "distinct_prefixes"), 2);
  EXPECT_EQ(num(ev, "min_prefix_tokens"), 2048);
  EXPECT_EQ(str(ev, "ttl"), "5m");
  EXPECT_DOUBLE_EQ(real(ev, "hit_rate"), 0.4571);  // 6400 / 14000 = 0.45714...
}

TEST(PromptCaching, OneHourTtlBeatsFiveMinutesForTenMinuteGaps) {
  run t;
  std::vector<request_row> rows;
  for (int i = 0; i < 4; ++i) {
    rows.push_back(prompt(i * 10 * minute, big, 4000, 0xE, 3200, 0x400 + i, 3600));
    bill(rows.back(), 3'000'000, 15'000'000);
  }
  const lever* l = find(t.analyse(rows), "prompt_caching");
  ASSERT_NE(l, nullptr);
  // 5m: every request writes 3600: 4 x (3600 x 3.75e6 + 400 x 3e6) = 4 x 14.7e9 = 58.8e9 > 48e9.
  // 1h: 1st: 3600 x 6e6 + 400 x 3e6 = 22.8e9; others: 3200 x 0.3e6 + 400 x 6e6 + 400 x 3e6
  //   = 0.96e9 + 2.4e9 + 1.2e9 = 4.56e9 each -> 22.8e9 + 13.68e9 = 36.48e9; saves 48e9 - 36.48e9.
  EXPECT_EQ(l->savings, money_total{11'520'000'000});
  const json::object ev = evidence(*l);
  EXPECT_EQ(str(ev, "ttl"), "1h");
  EXPECT_EQ(num(ev, "simulated_reads"), 3);
  EXPECT_EQ(num(ev, "simulated_writes"), 4);
  EXPECT_EQ(num(ev, "read_tokens"), 9600);
  EXPECT_EQ(num(ev, "write_tokens"), 4800);
}

TEST(PromptCaching, AlreadyCachingIsEvidenceOnly) {
  // A 3000-token prefix written once, read once; 100 uncached tokens each.
  run t;
  request_row w = row(0, big, 100, 0);
  w.cache_write_tokens = 3000;
  bill(w, 3'000'000, 15'000'000, 300'000, 3'750'000);
  request_row r = row(minute, big, 100, 0);
  r.cache_read_tokens = 3000;
  bill(r, 3'000'000, 15'000'000, 300'000, 3'750'000);
  const lever* l = find(t.analyse({w, r}), "prompt_caching");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->savings, 0);
  EXPECT_EQ(l->monthly_savings, 0);
  EXPECT_EQ(l->caveat.rfind("already caching: ", 0), 0u);
  const json::object ev = evidence(*l);
  EXPECT_EQ(num(ev, "requests"), 2);
  EXPECT_DOUBLE_EQ(real(ev, "hit_ratio"), 0.4839);  // 3000 / 6200 = 0.48387...
  // At the input rate: 6200 x 3e6 = 18.6e9. Paid: 200 x 3e6 + 3000 x 3.75e6 + 3000 x 0.3e6
  //   = 0.6e9 + 11.25e9 + 0.9e9 = 12.75e9. Saved: 5.85e9.
  EXPECT_EQ(str(ev, "saved_usd"), "0.005850");
}

TEST(PromptCaching, EvictionKeepsTheLiveSetSmall) {
  // 100,000 requests, each with its own system prompt and prompt, one every 360 ms for 10 hours.
  run t;
  lever_analysis a{t.opts()};
  for (std::uint64_t i = 0; i < 100'000; ++i) {
    request_row r = prompt(static_cast<std::int64_t>(i) * 360, small, 4000, 0x10'0000 + i, 3200,
                           0x20'0000 + i, 3600);
    bill(r, 1'000'000, 5'000'000);
    a.add(r);
  }
  // small has the 5-minute TTL only: what is live is the last 5 minutes' requests (833), two
  // prefixes each (system, full).
  EXPECT_GT(a.live_prefixes(), 0u);
  EXPECT_LE(a.live_prefixes(), 2u * (300'000 / 360 + 2));
}

TEST(PromptCaching, EvictionWithTheOneHourTtl) {
  run t;
  lever_analysis a{t.opts()};
  for (std::uint64_t i = 0; i < 100'000; ++i) {
    request_row r = prompt(static_cast<std::int64_t>(i) * 360, big, 4000, 0x10'0000 + i, 3200,
                           0x20'0000 + i, 3600);
    bill(r, 3'000'000, 15'000'000);
    a.add(r);
  }
  // 1h cache: 10,000 requests x 2 prefixes; 5m cache: 834 x 2.
  EXPECT_LE(a.live_prefixes(), 2u * (3'600'000 / 360 + 2) + 2u * (300'000 / 360 + 2));
}

TEST(PromptCache, LiveUntilTheTtlAndReadsRefresh) {
  prefix_cache c{cache_ttl_5m_ms};
  c.touch(1, 0);
  EXPECT_TRUE(c.live(1, 5 * minute));       // exactly the TTL: still live
  EXPECT_FALSE(c.live(1, 5 * minute + 1));  // a millisecond later: gone
  c.touch(1, 4 * minute);                   // a read refreshes it
  EXPECT_TRUE(c.live(1, 9 * minute));
  c.evict(9 * minute + 1);
  EXPECT_EQ(c.size(), 0u);
}

TEST(PromptCache, MatchesAPlainMapUnderRandomTouches) {
  // Few distinct hashes, so probe runs collide and backward-shift deletion is exercised; times
  // advance by random steps so prefixes expire, get refreshed, and the table grows and shrinks.
  prefix_cache c{cache_ttl_5m_ms};
  std::map<std::uint64_t, std::int64_t> last;  // the reference: hash -> last touch
  std::mt19937_64 rng(7);
  std::int64_t now = 0;
  for (int i = 0; i < 200'000; ++i) {
    now += static_cast<std::int64_t>(rng() % 4'000);
    const std::uint64_t h = 1 + rng() % (i < 100'000 ? 5'000 : 50);
    c.evict(now);
    ASSERT_EQ(c.live(h, now), last.count(h) != 0 && now - last[h] <= cache_ttl_5m_ms) << i;
    c.touch(h, now);
    last[h] = now;
  }
  // Only the last 5 minutes' hashes (at most 50 distinct by now) and stragglers within 2 TTLs.
  c.evict(now);
  EXPECT_LE(c.size(), 50u);
}

TEST(PromptCache, RefreshedPrefixesOutliveTheirNeighbours) {
  prefix_cache c{cache_ttl_5m_ms};
  for (std::uint64_t h = 1; h <= 10'000; ++h) c.touch(h, 0);
  c.touch(7, 4 * minute);
  c.evict(6 * minute);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_TRUE(c.live(7, 6 * minute));
  c.evict(10 * minute);
  EXPECT_EQ(c.size(), 0u);
}

// ---- output cap, trimming ---------------------------------------------------------------------

/// 100 requests of big with outputs 10, 20, ..., 1000 tokens (and 100 input tokens each).
std::vector<request_row> outputs() {
  std::vector<request_row> rows;
  for (int i = 1; i <= 100; ++i) {
    rows.push_back(row(i * minute, big, 100, static_cast<std::uint64_t>(i) * 10));
    bill(rows.back(), 3'000'000, 15'000'000);
  }
  return rows;
}

TEST(OutputCap, P99CapSavingsAndAnswersCut) {
  run t;
  std::vector<request_row> rows = outputs();
  for (int i = 0; i < 30; ++i) rows[static_cast<std::size_t>(i)].max_tokens.reset();
  rows[98].stop_reason = "max_tokens";
  rows[99].stop_reason = "max_tokens";
  const lever* l = find(t.analyse(rows), "output_cap");
  ASSERT_NE(l, nullptr);
  // p99 = the 99th of 100 values = 990: only 1000 is above, by 10 tokens, at $15:
  // 10 x 15e6 = 150e6. p95 = 950: (960..1000) - 950 = 10 + 20 + 30 + 40 + 50 = 150 tokens
  // -> 150 x 15e6 = 2.25e9, 5 answers cut.
  EXPECT_EQ(l->savings, money_total{150'000'000});
  EXPECT_EQ(l->monthly_savings, money_total{1'500'000'000});
  const json::object ev = evidence(*l);
  EXPECT_EQ(num(ev, "requests"), 100);
  EXPECT_EQ(num(ev, "uncapped_requests"), 30);
  EXPECT_EQ(num(ev, "cap_hits"), 2);
  EXPECT_EQ(num(ev, "output_p50"), 500);
  EXPECT_EQ(num(ev, "output_p95"), 950);
  EXPECT_EQ(num(ev, "output_p99"), 990);
  const json::object& p99 = ev.at("cap_p99").as_object();
  EXPECT_EQ(str(p99, "savings_usd"), "0.000150");
  EXPECT_EQ(num(p99, "answers_cut"), 1);
  const json::object& p95 = ev.at("cap_p95").as_object();
  EXPECT_EQ(str(p95, "savings_usd"), "0.002250");
  EXPECT_EQ(num(p95, "answers_cut"), 5);
}

TEST(OutputCap, RowsWithoutTraitsAreNotedAndNotCountedAsUncapped) {
  run t;
  std::vector<request_row> rows = outputs();
  // 20 rows written before ledger schema v2: no max_tokens, no stop_reason, no prefixes.
  for (int i = 0; i < 20; ++i) {
    request_row r = row(2 * hour + i * minute, big, 100, 5000);
    r.max_tokens.reset();
    r.stop_reason = {};
    bill(r, 3'000'000, 15'000'000);
    rows.push_back(r);
  }
  const report& r = t.analyse(rows);
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_EQ(r.notes[0],
            "20 requests predate request traits: caching and output-cap levers ignore them");
  const lever* l = find(r, "output_cap");
  ASSERT_NE(l, nullptr);
  const json::object ev = evidence(*l);
  EXPECT_EQ(num(ev, "requests"), 100);
  EXPECT_EQ(num(ev, "uncapped_requests"), 0);
  EXPECT_EQ(num(ev, "output_p99"), 990);  // the 5000-token rows are not in the histogram
  // The output rate is still $15 (every row is on big): 10 x 15e6.
  EXPECT_EQ(l->savings, money_total{150'000'000});
}

TEST(PromptTrimming, PromptsAboveTheMedianTrimmedToIt) {
  run t;
  std::vector<request_row> rows = {row(0, big, 100, 100), row(minute, big, 200, 100),
                                   row(2 * minute, big, 300, 100), row(3 * minute, big, 1000, 100)};
  rows[3].operation = "InvokeModel";
  for (request_row& r : rows) bill(r, 3'000'000, 15'000'000);
  const lever* l = find(t.analyse(rows), "prompt_trimming");
  ASSERT_NE(l, nullptr);
  // p50 = 200 (the 2nd of 4). Above it: (300 - 200) + (1000 - 200) = 900 tokens x 3e6 = 2.7e9.
  EXPECT_EQ(l->savings, money_total{2'700'000'000});
  const json::object ev = evidence(*l);
  EXPECT_EQ(num(ev, "requests"), 4);
  EXPECT_EQ(num(ev, "input_tokens_per_request_p50"), 200);
  EXPECT_EQ(num(ev, "input_tokens_per_request_p95"), 1000);
  EXPECT_DOUBLE_EQ(real(ev, "input_tokens_per_request_mean"), 400.0);  // 1600 / 4
  // input 1600 x 3e6 = 4.8e9; output 400 x 15e6 = 6e9; 4.8 / 10.8 = 0.4444.
  EXPECT_DOUBLE_EQ(real(ev, "share_of_spend_input"), 0.4444);
  const json::object& ops = ev.at("operations").as_object();
  EXPECT_EQ(num(ops, "InvokeModel"), 1000);
  EXPECT_EQ(num(ops, "Converse"), 600);
}

// ---- model substitution -----------------------------------------------------------------------

/// 10 requests of big, 1000 input and 100 output tokens each:
/// now 10 x (1000 x 3e6 + 100 x 15e6) = 10 x 4.5e9 = 45e9.
std::vector<request_row> ten_on_big() {
  std::vector<request_row> rows;
  for (int i = 0; i < 10; ++i) {
    rows.push_back(row(i * minute, big, 1000, 100));
    bill(rows.back(), 3'000'000, 15'000'000);
  }
  return rows;
}

TEST(ModelSubstitution, CheaperModelOfTheSameProvider) {
  run t;
  const lever* l = find(t.analyse(ten_on_big()), "model_substitution");
  ASSERT_NE(l, nullptr);
  // small: 10 x (1000 x 1e6 + 100 x 5e6) = 15e9 -> saves 30e9. llama, nova: other providers.
  EXPECT_EQ(l->savings, money_total{30'000'000'000});
  const json::object ev = evidence(*l);
  EXPECT_EQ(str(ev, "current_usd"), "0.045000");
  EXPECT_EQ(num(ev, "requests"), 10);
  EXPECT_EQ(num(ev, "tokens"), 11000);
  const json::array& c = ev.at("candidates").as_array();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(str(c[0].as_object(), "model"), small);
  EXPECT_EQ(str(c[0].as_object(), "cost_usd"), "0.015000");
  EXPECT_EQ(str(c[0].as_object(), "savings_usd"), "0.030000");
}

TEST(ModelSubstitution, NamedModelsAppearEvenWhenDearer) {
  run t;
  t.reprice_as = {std::string(llama), "us." + std::string(nova)};  // a profile id: its base
  const lever* l = find(t.analyse(ten_on_big()), "model_substitution");
  ASSERT_NE(l, nullptr);
  // nova: 10 x (1000 x 0.06e6 + 100 x 0.24e6) = 10 x 84e6 = 0.84e9 -> saves 44.16e9 (the best).
  // small: 15e9 (saves 30e9). llama: 10 x (1000 x 5e6 + 100 x 20e6) = 70e9 -> -25e9.
  EXPECT_EQ(l->savings, money_total{44'160'000'000});
  const json::object ev = evidence(*l);
  const json::array& c = ev.at("candidates").as_array();
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(str(c[0].as_object(), "model"), nova);
  EXPECT_EQ(str(c[0].as_object(), "savings_usd"), "0.044160");
  EXPECT_EQ(str(c[1].as_object(), "model"), small);
  EXPECT_EQ(str(c[2].as_object(), "model"), llama);
  EXPECT_EQ(str(c[2].as_object(), "cost_usd"), "0.070000");
  EXPECT_EQ(str(c[2].as_object(), "savings_usd"), "-0.025000");
}

TEST(ModelSubstitution, NoCheaperModelButANamedOneIsShownAtZero) {
  run t;
  t.reprice_as = {std::string(llama)};
  std::vector<request_row> rows;
  for (int i = 0; i < 10; ++i) {
    rows.push_back(row(i * minute, small, 1000, 100));
    bill(rows.back(), 1'000'000, 5'000'000);
  }
  const lever* l = find(t.analyse(rows), "model_substitution");
  ASSERT_NE(l, nullptr);
  // now 10 x (1e9 + 0.5e9) = 15e9; big 45e9 (-30e9), llama 70e9 (-55e9): nothing cheaper.
  EXPECT_EQ(l->savings, 0);
  const json::object ev = evidence(*l);
  const json::array& c = ev.at("candidates").as_array();
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(str(c[0].as_object(), "model"), big);
  EXPECT_EQ(str(c[0].as_object(), "savings_usd"), "-0.030000");
  EXPECT_EQ(str(c[1].as_object(), "savings_usd"), "-0.055000");
}

// ---- batch, global, flex, priority ------------------------------------------------------------

/// big in us-east-1: standard ($3 / $15, cache rates), batch ($1.50 / $7.50, no cache rates),
/// flex ($1.50 / $7.50), priority ($3.75 / $18.75); geo-scoped $3.30 / $16.50 and
/// global-scoped $3 / $15 entries for the inference profiles.
rate_table tiers_table() {
  rate_table t;
  t.version = "test.tiers";
  rate_entry standard = entry(big, 3'000'000, 15'000'000);
  standard.scope = metering::inference_scope::in_region;
  standard.rates.cache_read = 300'000;
  standard.rates.cache_write_5m = 3'750'000;
  rate_entry batch = entry(big, 1'500'000, 7'500'000);
  batch.batch = true;
  rate_entry flex = entry(big, 1'500'000, 7'500'000);
  flex.tier = metering::service_tier::flex;
  rate_entry priority = entry(big, 3'750'000, 18'750'000);
  priority.tier = metering::service_tier::priority;
  rate_entry geo = entry(big, 3'300'000, 16'500'000);
  geo.scope = metering::inference_scope::geo;
  rate_entry global = entry(big, 3'000'000, 15'000'000);
  global.scope = metering::inference_scope::global;
  t.entries = {standard, batch, flex, priority, geo, global};
  t.index();
  return t;
}

TEST(Batch, EligibleRequestsVersusStreamingAndTools) {
  run t;
  t.table = tiers_table();
  std::vector<request_row> rows;
  for (int i = 0; i < 3; ++i) rows.push_back(row(i * minute, big, 1000, 100));
  request_row cached = row(3 * minute, big, 100, 100);  // reads 900 cached tokens
  cached.cache_read_tokens = 900;
  rows.push_back(cached);
  for (int i = 0; i < 2; ++i) {
    rows.push_back(row((4 + i) * minute, big, 1000, 100));
    rows.back().streaming = true;
  }
  rows.push_back(row(6 * minute, big, 1000, 100));
  rows.back().tools = true;
  for (request_row& r : rows) bill(r, 3'000'000, 15'000'000, 300'000);
  const lever* l = find(t.analyse(rows), "batch");
  ASSERT_NE(l, nullptr);
  // Eligible: 3 x (1000 x 3e6 + 100 x 15e6) = 13.5e9, plus the cached one:
  // 100 x 3e6 + 900 x 0.3e6 + 100 x 15e6 = 2.07e9 -> now 15.57e9.
  // Batch: 3 x (1000 x 1.5e6 + 100 x 7.5e6) = 6.75e9, cached one with its reads at the batch
  // input rate (no cache rate): 1000 x 1.5e6 + 100 x 7.5e6 = 2.25e9 (dearer than now: the lost
  // cache saving is netted) -> 9e9. Saves 6.57e9.
  EXPECT_EQ(l->savings, money_total{6'570'000'000});
  const json::object ev = evidence(*l);
  EXPECT_EQ(num(ev, "eligible_requests"), 4);
  EXPECT_EQ(num(ev, "ineligible_streaming"), 2);
  EXPECT_EQ(num(ev, "ineligible_tools"), 1);
  EXPECT_EQ(str(ev, "current_usd"), "0.015570");
  EXPECT_EQ(str(ev, "batch_usd"), "0.009000");
}

TEST(GlobalProfile, GeoProfileMovedToGlobal) {
  run t;
  t.table = tiers_table();
  std::vector<request_row> rows;
  for (int i = 0; i < 5; ++i) {
    rows.push_back(row(i * minute, big, 1000, 100));
    rows.back().model_requested = "us.anthropic.claude-big-v1:0";
    rows.back().scope = "geo";
    bill(rows.back(), 3'300'000, 16'500'000);
  }
  const lever* l = find(t.analyse(rows), "global_profile");
  ASSERT_NE(l, nullptr);
  // now 5 x (1000 x 3.3e6 + 100 x 16.5e6) = 5 x 4.95e9 = 24.75e9; global 5 x 4.5e9 = 22.5e9.
  EXPECT_EQ(l->savings, money_total{2'250'000'000});
  const json::object ev = evidence(*l);
  EXPECT_EQ(num(ev, "requests"), 5);
  EXPECT_EQ(str(ev, "current_usd"), "0.024750");
  EXPECT_EQ(str(ev, "global_usd"), "0.022500");
  EXPECT_EQ(str(ev, "scope"), "geo");
  EXPECT_NE(l->caveat.find("data residency"), std::string::npos);
}

TEST(FlexTier, StandardRowsMovedToFlex) {
  run t;
  t.table = tiers_table();
  std::vector<request_row> rows;
  for (int i = 0; i < 2; ++i) {
    rows.push_back(row(i * minute, big, 1000, 100));
    rows.back().streaming = true;  // not batchable: only flex applies
    bill(rows.back(), 3'000'000, 15'000'000);
  }
  const lever* l = find(t.analyse(rows), "flex_tier");
  ASSERT_NE(l, nullptr);
  // now 2 x 4.5e9 = 9e9; flex 2 x (1000 x 1.5e6 + 100 x 7.5e6) = 4.5e9.
  EXPECT_EQ(l->savings, money_total{4'500'000'000});
  EXPECT_EQ(str(evidence(*l), "flex_usd"), "0.004500");
  EXPECT_EQ(find(t.r, "priority_tier"), nullptr);
}

TEST(PriorityTier, ThePremiumPaid) {
  run t;
  t.table = tiers_table();
  std::vector<request_row> rows;
  for (int i = 0; i < 2; ++i) {
    rows.push_back(row(i * minute, big, 1000, 100));
    rows.back().service_tier = "priority";
    bill(rows.back(), 3'750'000, 18'750'000);
  }
  const lever* l = find(t.analyse(rows), "priority_tier");
  ASSERT_NE(l, nullptr);
  // now 2 x (1000 x 3.75e6 + 100 x 18.75e6) = 2 x 5.625e9 = 11.25e9; standard 9e9.
  EXPECT_EQ(l->savings, money_total{2'250'000'000});
  const json::object ev = evidence(*l);
  EXPECT_EQ(str(ev, "current_usd"), "0.011250");
  EXPECT_EQ(str(ev, "standard_usd"), "0.009000");
  EXPECT_EQ(find(t.r, "flex_tier"), nullptr);  // priority rows are not moved to flex
}

// ---- which rows take part ---------------------------------------------------------------------

TEST(Levers, RefusedUnpricedAndProvisionedRowsTakeNoPart) {
  run t;
  metering::model_mapping pt;
  pt.arn = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc";
  pt.base_model = std::string(big);
  pt.hourly_usd = 40.0;
  t.mappings = {pt};
  std::vector<request_row> rows = ten_on_big();
  for (request_row& r : rows) r.model_requested = pt.arn;  // provisioned
  request_row refused = row(0, big, 1000, 100);
  refused.outcome = "refused";
  request_row unpriced = row(0, big, 1000, 100);
  unpriced.priced = false;
  rows.push_back(refused);
  rows.push_back(unpriced);
  const report& r = t.analyse(rows);
  EXPECT_TRUE(r.levers.empty());
  EXPECT_TRUE(r.notes.empty());
}

TEST(Levers, NoRateTableNoLevers) {
  options o;
  o.since_ms = t0;
  o.until_ms = t0 + window;
  lever_analysis a{o};
  for (const request_row& x : ten_on_big()) a.add(x);
  report r;
  a.finish(r);
  EXPECT_TRUE(r.levers.empty());
}

TEST(Levers, MinimumMonthlySavingsLeavesSmallLeversOut) {
  run t;
  options o = t.opts();
  o.min_monthly_savings = money_total{300'000'000'001};  // substitution is 30e9 x 10 = 300e9
  lever_analysis a{o};
  for (const request_row& x : ten_on_big()) a.add(x);
  a.finish(t.r);
  EXPECT_EQ(find(t.r, "model_substitution"), nullptr);
}

// ---- the histogram ----------------------------------------------------------------------------

TEST(LogHistogram, ExactBelow1024ThenWithinOneSixtyFourth) {
  log_histogram h;
  EXPECT_EQ(log_histogram::bucket_of(1023), 1023u);
  EXPECT_EQ(log_histogram::lowest(log_histogram::bucket_of(1024)), 1024u);
  EXPECT_EQ(log_histogram::highest(log_histogram::bucket_of(1024)), 1039u);  // 16 wide at 2^10
  EXPECT_EQ(log_histogram::highest(log_histogram::bucket_of(~std::uint64_t{0})), ~std::uint64_t{0});
  EXPECT_LE(log_histogram::bucket_of(~std::uint64_t{0}) + 1, log_histogram::max_buckets);
  for (std::uint64_t v : {3000u, 3001u, 3010u, 5000u}) h.add(v);
  // Buckets are 32 wide between 2^11 and 2^12: 3000 and 3001 share [2976, 3007]; 3010 is in
  // [3008, 3039]; 5000 in [4992, 5055] (64 wide).
  EXPECT_EQ(h.quantile(0.5), 3007u);
  EXPECT_EQ(h.count_above(3007), 2u);
  // Above 3007: (3010 - 3007) + (5000 - 3007) = 3 + 1993, exact (both buckets wholly above).
  EXPECT_EQ(h.excess_above(3007), token_sum{1996});
  EXPECT_EQ(h.quantile(1.0), log_histogram::highest(log_histogram::bucket_of(5000)));
}

}  // namespace
}  // namespace bedrock_meter::advice
