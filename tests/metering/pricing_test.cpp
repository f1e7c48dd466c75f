// Pricing tests. Every expected amount is computed by hand in the comment beside it from the
// published per-1M-token price (AWS Bedrock pricing page), never by calling the code under
// test. Units: a rate of $X per 1M tokens is X * 1e6 micro-USD per 1M, which is also X * 1e6
// pico-USD per token; cost in pico-USD = tokens x that number.
#include "metering/money.hpp"
#include "metering/rate_table.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <vector>

// Counting global allocator: lets a test assert that the pricer's steady state does not allocate.
namespace {
std::atomic<std::uint64_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace bedrock_meter::metering {
namespace {

using namespace std::chrono_literals;
using std::chrono::sys_days;

constexpr std::string_view sonnet35 = "anthropic.claude-3-5-sonnet-20240620-v1:0";
constexpr std::string_view sonnet4 = "anthropic.claude-sonnet-4-20250514-v1:0";
constexpr std::string_view sonnet45 = "anthropic.claude-sonnet-4-5-20250929-v1:0";
constexpr std::string_view haiku35 = "anthropic.claude-3-5-haiku-20241022-v1:0";
constexpr std::string_view nova_pro = "amazon.nova-pro-v1:0";
constexpr std::string_view llama70b = "meta.llama3-1-70b-instruct-v1:0";

rate_entry make(std::string_view model, rate_micro_per_m in, rate_micro_per_m out) {
  rate_entry e;
  e.model = model;
  e.regions = {"*"};
  e.rates.input = in;
  e.rates.output = out;
  return e;
}

/// Claude prompt-cache rates from the input rate: read 0.1x, 5m write 1.25x, 1h write 2x.
rate_entry make_claude(std::string_view model, rate_micro_per_m in, rate_micro_per_m out) {
  rate_entry e = make(model, in, out);
  e.rates.cache_read = in / 10;
  e.rates.cache_write_5m = in * 5 / 4;
  e.rates.cache_write_1h = in * 2;
  return e;
}

rate_table table_of(std::vector<rate_entry> entries) {
  rate_table t;
  t.version = "test-2026-07-24.1";
  t.entries = std::move(entries);
  t.index();
  return t;
}

price_query query(std::string_view model_id, std::string_view region = "us-east-1") {
  price_query q;
  q.model_id = model_id;
  q.region = region;
  q.at = sys_days{std::chrono::year{2026} / 7 / 24} + 12h;
  return q;
}

token_usage tokens(std::uint64_t in, std::uint64_t out) {
  token_usage u;
  u.input = in;
  u.output = out;
  u.source = usage_source::reported;
  return u;
}

// ---------------------------------------------------------------------------------------------

TEST(Pricing, Sonnet35MillionInAndOutIsExactlyEighteenDollars) {
  const rate_table t = table_of({make_claude(sonnet35, 3'000'000, 15'000'000)});  // $3 / $15
  const priced p = price(t, tokens(1'000'000, 1'000'000), query(sonnet35));
  ASSERT_TRUE(p.priced) << p.note;
  EXPECT_EQ(p.cost.input, 3'000'000'000'000);    // 1e6 x 3e6 pico = $3
  EXPECT_EQ(p.cost.output, 15'000'000'000'000);  // 1e6 x 15e6 pico = $15
  EXPECT_EQ(p.cost.total(), 18 * pico_per_usd);
  EXPECT_EQ(format_usd(p.cost.total(), 2), "18.00");
  EXPECT_EQ(p.table_version, "test-2026-07-24.1");
  EXPECT_EQ(p.base_model, sonnet35);
  EXPECT_EQ(p.entry, &t.entries[0]);
  EXPECT_EQ(p.note, "");
}

TEST(Pricing, RealisticRequestToThePicoDollar) {
  const rate_table t = table_of({make_claude(sonnet35, 3'000'000, 15'000'000)});
  const priced p = price(t, tokens(1'234, 567), query(sonnet35));
  ASSERT_TRUE(p.priced);
  EXPECT_EQ(p.cost.input, 3'702'000'000);     // 1,234 x 3,000,000 = 3,702,000,000 pico ($0.003702)
  EXPECT_EQ(p.cost.output, 8'505'000'000);    // 567 x 15,000,000 = 8,505,000,000 pico ($0.008505)
  EXPECT_EQ(p.cost.total(), 12'207'000'000);  // $0.012207
  EXPECT_EQ(format_usd(p.cost.total()), "0.012207");
}

TEST(Pricing, ClaudePromptCachingPricesEachPartAtItsOwnRate) {
  // Sonnet 4.5: $3 in, $15 out, read $0.30 (0.1x), 5m write $3.75 (1.25x), 1h write $6 (2x).
  const rate_table t = table_of({make_claude(sonnet45, 3'000'000, 15'000'000)});
  ASSERT_EQ(*t.entries[0].rates.cache_read, 300'000);
  ASSERT_EQ(*t.entries[0].rates.cache_write_5m, 3'750'000);
  ASSERT_EQ(*t.entries[0].rates.cache_write_1h, 6'000'000);
  // Converse: inputTokens 100 excludes the cache; billable input = 100 + 2,000 + 1,500.
  token_usage u = tokens(100, 50);
  u.cache_read = 2'000;
  u.cache_write = 1'500;
  u.cache_write_1h = 500;
  const priced p = price(t, u, query(sonnet45));
  ASSERT_TRUE(p.priced) << p.note;
  EXPECT_EQ(p.cost.input, 300'000'000);          // 100 x 3,000,000
  EXPECT_EQ(p.cost.output, 750'000'000);         // 50 x 15,000,000
  EXPECT_EQ(p.cost.cache_read, 600'000'000);     // 2,000 x 300,000
  EXPECT_EQ(p.cost.cache_write, 6'750'000'000);  // 1,000 x 3,750,000 + 500 x 6,000,000
  EXPECT_EQ(p.cost.total(), 8'400'000'000);      // $0.0084
  EXPECT_FALSE(p.long_context);
  EXPECT_EQ(p.note, "");
}

TEST(Pricing, OneHourWritesBeyondTheTotalAreClampedToTheTotal) {
  const rate_table t = table_of({make_claude(sonnet45, 3'000'000, 15'000'000)});
  token_usage u = tokens(0, 0);
  u.cache_write = 100;
  u.cache_write_1h = 400;  // inconsistent upstream counts: at most all 100 writes are 1h
  const priced p = price(t, u, query(sonnet45));
  ASSERT_TRUE(p.priced);
  EXPECT_EQ(p.cost.cache_write, 600'000'000);  // 100 x 6,000,000
}

TEST(Pricing, ModelWithoutCacheRatesPricesCachedTokensAtInputRateAndSaysSo) {
  const rate_table t = table_of({make(llama70b, 720'000, 720'000)});  // $0.72 / $0.72
  token_usage u = tokens(10, 10);
  u.cache_read = 1'000;
  u.cache_write = 300;
  u.cache_write_1h = 100;
  const priced p = price(t, u, query(llama70b));
  ASSERT_TRUE(p.priced);
  EXPECT_EQ(p.cost.input, 7'200'000);          // 10 x 720,000
  EXPECT_EQ(p.cost.cache_read, 720'000'000);   // 1,000 x 720,000 (input rate)
  EXPECT_EQ(p.cost.cache_write, 216'000'000);  // 300 x 720,000 (input rate, 5m and 1h alike)
  EXPECT_NE(p.note.find("no cache_read rate"), std::string::npos) << p.note;
  EXPECT_NE(p.note.find("no cache_write_5m rate"), std::string::npos) << p.note;
  EXPECT_NE(p.note.find("no cache_write_1h rate"), std::string::npos) << p.note;
}

TEST(Pricing, MissingOneHourRateFallsBackToTheFiveMinuteRate) {
  rate_entry e = make_claude(sonnet4, 3'000'000, 15'000'000);
  e.rates.cache_write_1h.reset();
  const rate_table t = table_of({e});
  token_usage u = tokens(0, 1);
  u.cache_write = 10;
  u.cache_write_1h = 10;
  const priced p = price(t, u, query(sonnet4));
  ASSERT_TRUE(p.priced);
  EXPECT_EQ(p.cost.cache_write, 37'500'000);  // 10 x 3,750,000
  EXPECT_NE(p.note.find("no cache_write_1h rate: priced at 5m write rate"), std::string::npos);
}

TEST(Pricing, NovaCacheReadIsAQuarterOfInput) {
  rate_entry e = make(nova_pro, 800'000, 3'200'000);  // Nova Pro $0.80 / $3.20
  e.rates.cache_read = 800'000 / 4;                   // 0.25x -> $0.20
  const rate_table t = table_of({e});
  token_usage u = tokens(1'000, 200);
  u.cache_read = 10'000;
  const priced p = price(t, u, query("us.amazon.nova-pro-v1:0"));
  ASSERT_TRUE(p.priced);
  EXPECT_EQ(p.cost.cache_read, 2'000'000'000);  // 10,000 x 200,000 = $0.002
  EXPECT_EQ(p.cost.input, 800'000'000);         // 1,000 x 800,000
  EXPECT_EQ(p.cost.output, 640'000'000);        // 200 x 3,200,000
}

rate_entry sonnet4_with_long_context() {
  // Sonnet 4: $3 / $15; above 200k input tokens $6 (2x) / $22.50 (1.5x), read $0.60, write $7.50.
  rate_entry e = make_claude(sonnet4, 3'000'000, 15'000'000);
  e.long_context_threshold = 200'000;
  e.long_context_rates.input = 6'000'000;
  e.long_context_rates.output = 22'500'000;
  e.long_context_rates.cache_read = 600'000;
  e.long_context_rates.cache_write_5m = 7'500'000;
  return e;
}

TEST(Pricing, LongContextBoundaryIsStrictlyAboveTheThreshold) {
  const rate_table t = table_of({sonnet4_with_long_context()});
  {
    const priced p = price(t, tokens(199'999, 1'000), query(sonnet4));
    ASSERT_TRUE(p.priced);
    EXPECT_FALSE(p.long_context);
    EXPECT_EQ(p.cost.input, 599'997'000'000);  // 199,999 x 3,000,000
    EXPECT_EQ(p.cost.output, 15'000'000'000);  // 1,000 x 15,000,000
  }
  {
    const priced p = price(t, tokens(200'000, 1'000), query(sonnet4));
    EXPECT_FALSE(p.long_context);              // "above 200k": exactly 200k is not above
    EXPECT_EQ(p.cost.input, 600'000'000'000);  // 200,000 x 3,000,000
  }
  {
    const priced p = price(t, tokens(200'001, 1'000), query(sonnet4));
    ASSERT_TRUE(p.priced);
    EXPECT_TRUE(p.long_context);
    EXPECT_EQ(p.cost.input, 1'200'006'000'000);  // 200,001 x 6,000,000
    EXPECT_EQ(p.cost.output, 22'500'000'000);    // 1,000 x 22,500,000
  }
}

TEST(Pricing, CacheTokensCountTowardTheLongContextThreshold) {
  const rate_table t = table_of({sonnet4_with_long_context()});
  token_usage u = tokens(150'000, 10);
  u.cache_read = 50'000;
  u.cache_write = 1;  // 150,000 + 50,000 + 1 = 200,001 > 200,000
  const priced p = price(t, u, query(sonnet4));
  ASSERT_TRUE(p.priced);
  EXPECT_TRUE(p.long_context);
  EXPECT_EQ(p.cost.input, 900'000'000'000);      // 150,000 x 6,000,000
  EXPECT_EQ(p.cost.cache_read, 30'000'000'000);  // 50,000 x 600,000
  EXPECT_EQ(p.cost.cache_write, 7'500'000);      // 1 x 7,500,000
  EXPECT_EQ(p.cost.output, 225'000'000);         // 10 x 22,500,000
  // The same counts without the cache write stay at normal rates.
  u.cache_write = 0;
  const priced q = price(t, u, query(sonnet4));
  EXPECT_FALSE(q.long_context);
  EXPECT_EQ(q.cost.cache_read, 15'000'000'000);  // 50,000 x 300,000
}

TEST(Pricing, LongContextTypeLeftUnsetKeepsTheNormalRateWithANote) {
  rate_entry e = sonnet4_with_long_context();  // no long-context 1h write rate
  const rate_table t = table_of({e});
  token_usage u = tokens(300'000, 0);
  u.cache_write = 2;
  u.cache_write_1h = 2;
  const priced p = price(t, u, query(sonnet4));
  ASSERT_TRUE(p.priced);
  EXPECT_TRUE(p.long_context);
  EXPECT_EQ(p.cost.cache_write, 12'000'000);  // 2 x 6,000,000 (normal 1h rate)
  EXPECT_NE(p.note.find("no long-context cache_write_1h rate"), std::string::npos) << p.note;
}

TEST(Pricing, GlobalProfileEntryIsCheaperThanInRegionAndGeographic) {
  // Sonnet 4.5: in-region and geographic $3.30 / $16.50; global ~10% less, $3.00 / $15.00.
  rate_entry regional = make_claude(sonnet45, 3'300'000, 16'500'000);
  rate_entry global = make_claude(sonnet45, 3'000'000, 15'000'000);
  global.scope = inference_scope::global;
  const rate_table t = table_of({regional, global});
  const token_usage u = tokens(1'000, 1'000);

  const priced in_region = price(t, u, query(sonnet45));
  const priced us = price(t, u, query("us.anthropic.claude-sonnet-4-5-20250929-v1:0"));
  const priced glob = price(t, u, query("global.anthropic.claude-sonnet-4-5-20250929-v1:0"));
  EXPECT_EQ(in_region.cost.total(), 19'800'000'000);  // 1,000 x 3,300,000 + 1,000 x 16,500,000
  EXPECT_EQ(us.cost.total(), 19'800'000'000);
  EXPECT_EQ(glob.cost.total(), 18'000'000'000);  // 1,000 x 3,000,000 + 1,000 x 15,000,000
  EXPECT_EQ(glob.entry, &t.entries[1]);
  EXPECT_EQ(us.model.scope, inference_scope::geo);
  EXPECT_EQ(us.model.geo, "us");
}

TEST(Pricing, ScopeExactBeatsUnspecifiedAndAScopedEntryNeverServesAnotherScope) {
  rate_entry any = make(sonnet45, 3'300'000, 16'500'000);
  rate_entry geo = make(sonnet45, 3'310'000, 16'500'000);
  geo.scope = inference_scope::geo;
  rate_entry global_only = make(haiku35, 700'000, 3'500'000);
  global_only.scope = inference_scope::global;
  const rate_table t = table_of({any, geo, global_only});
  EXPECT_EQ(
      price(t, tokens(1, 0), query("eu.anthropic.claude-sonnet-4-5-20250929-v1:0")).cost.input,
      3'310'000);                                                            // 1 x $3.31 (geo row)
  EXPECT_EQ(price(t, tokens(1, 0), query(sonnet45)).cost.input, 3'300'000);  // unscoped row
  const priced p = price(t, tokens(1, 0), query(haiku35));  // in-region, only a global row
  EXPECT_FALSE(p.priced);
}

TEST(Pricing, ExactRegionRowBeatsStarAndGovCloudHasItsOwnRow) {
  // Nova Pro: $0.80 / $3.20 anywhere; GovCloud 1.2x: $0.96 / $3.84.
  rate_entry any = make(nova_pro, 800'000, 3'200'000);
  rate_entry gov = make(nova_pro, 960'000, 3'840'000);
  gov.regions = {"us-gov-west-1", "us-gov-east-1"};
  rate_entry geo_any = make(nova_pro, 800'000, 3'200'000);
  geo_any.scope = inference_scope::geo;
  const rate_table t = table_of({any, gov, geo_any});
  const token_usage u = tokens(1'000, 1'000);

  EXPECT_EQ(price(t, u, query(nova_pro, "us-east-1")).cost.total(),
            4'000'000'000);  // 1,000 x 800,000 + 1,000 x 3,200,000
  const priced g = price(t, u, query(nova_pro, "us-gov-west-1"));
  EXPECT_EQ(g.cost.total(), 4'800'000'000);  // 1,000 x 960,000 + 1,000 x 3,840,000
  EXPECT_EQ(g.entry, &t.entries[1]);
  // A us-gov. profile called in GovCloud: the region row wins over a "*" row of the exact scope,
  // because the bill follows the source region.
  const priced gp = price(t, u, query("us-gov.amazon.nova-pro-v1:0", "us-gov-east-1"));
  EXPECT_EQ(gp.cost.total(), 4'800'000'000);
  EXPECT_EQ(gp.entry, &t.entries[1]);
}

TEST(Pricing, ServiceTiersArePricedOnlyByTheirOwnRows) {
  rate_entry standard = make(sonnet45, 3'000'000, 15'000'000);
  rate_entry priority = make(sonnet45, 3'000'000 * 7 / 4, 15'000'000 * 7 / 4);  // 1.75x
  priority.tier = service_tier::priority;
  rate_entry flex = make(sonnet45, 3'000'000 / 2, 15'000'000 / 2);  // 0.5x
  flex.tier = service_tier::flex;
  const rate_table t = table_of({standard, priority, flex});
  const token_usage u = tokens(1'000, 100);

  price_query q = query(sonnet45);
  EXPECT_EQ(price(t, u, q).cost.total(), 4'500'000'000);  // 1,000 x 3,000,000 + 100 x 15,000,000
  q.tier = service_tier::priority;
  EXPECT_EQ(price(t, u, q).cost.total(), 7'875'000'000);  // 1,000 x 5,250,000 + 100 x 26,250,000
  q.tier = service_tier::flex;
  EXPECT_EQ(price(t, u, q).cost.total(), 2'250'000'000);  // 1,000 x 1,500,000 + 100 x 7,500,000
  q.tier = service_tier::reserved;  // no reserved row: unpriced, not the standard price
  const priced r = price(t, u, q);
  EXPECT_FALSE(r.priced);
  EXPECT_NE(r.note.find("tier reserved"), std::string::npos) << r.note;

  EXPECT_EQ(parse_service_tier("default"), service_tier::standard);
  EXPECT_EQ(parse_service_tier(""), service_tier::standard);
  EXPECT_EQ(parse_service_tier("priority"), service_tier::priority);
  EXPECT_EQ(parse_service_tier("Flex"), service_tier::flex);
  EXPECT_EQ(parse_service_tier("reserved"), service_tier::reserved);
  EXPECT_EQ(parse_service_tier("gold"), std::nullopt);
}

TEST(Pricing, LatencyOptimizedAndBatchRows) {
  rate_entry standard = make(haiku35, 800'000, 4'000'000);     // Claude 3.5 Haiku $0.80 / $4
  rate_entry optimized = make(haiku35, 1'000'000, 5'000'000);  // optimized $1 / $5
  optimized.latency = latency_mode::optimized;
  rate_entry batch = make(haiku35, 400'000, 2'000'000);  // batch 50%: $0.40 / $2
  batch.batch = true;
  const rate_table t = table_of({standard, optimized, batch});
  const token_usage u = tokens(2'000, 500);

  price_query q = query(haiku35, "us-east-2");
  EXPECT_EQ(price(t, u, q).cost.total(), 3'600'000'000);  // 2,000 x 800,000 + 500 x 4,000,000
  q.latency = latency_mode::optimized;
  EXPECT_EQ(price(t, u, q).cost.total(), 4'500'000'000);  // 2,000 x 1,000,000 + 500 x 5,000,000
  q.latency = latency_mode::standard;
  q.batch = true;
  EXPECT_EQ(price(t, u, q).cost.total(), 1'800'000'000);  // 2,000 x 400,000 + 500 x 2,000,000
  q.latency = latency_mode::optimized;                    // optimized batch: no such row
  EXPECT_FALSE(price(t, u, q).priced);
}

TEST(Pricing, PriceChangeAppliesFromItsEffectiveDayInUtcAndEffectiveToIsExclusive) {
  const sys_days change{std::chrono::year{2026} / 1 / 1};
  rate_entry old_price = make(sonnet35, 3'000'000, 15'000'000);
  old_price.effective_to = change;
  rate_entry new_price = make(sonnet35, 3'500'000, 15'000'000);
  new_price.effective_from = change;
  const rate_table t = table_of({old_price, new_price});
  price_query q = query(sonnet35);

  q.at = change - 1s;  // 2025-12-31T23:59:59Z
  EXPECT_EQ(price(t, tokens(1, 0), q).cost.input, 3'000'000);
  q.at = change;  // 2026-01-01T00:00:00Z
  EXPECT_EQ(price(t, tokens(1, 0), q).cost.input, 3'500'000);
}

TEST(Pricing, LatestEffectiveFromWinsAmongOpenEndedRows) {
  rate_entry always = make(nova_pro, 700'000, 3'200'000);
  rate_entry from_jan = make(nova_pro, 800'000, 3'200'000);
  from_jan.effective_from = sys_days{std::chrono::year{2025} / 1 / 1};
  rate_entry from_jun = make(nova_pro, 900'000, 3'200'000);
  from_jun.effective_from = sys_days{std::chrono::year{2025} / 6 / 1};
  // Listed out of date order on purpose: selection is by date, not position.
  const rate_table t = table_of({from_jun, always, from_jan});
  price_query q = query(nova_pro);
  q.at = sys_days{std::chrono::year{2024} / 12 / 31};
  EXPECT_EQ(price(t, tokens(1, 0), q).cost.input, 700'000);
  q.at = sys_days{std::chrono::year{2025} / 3 / 1};
  EXPECT_EQ(price(t, tokens(1, 0), q).cost.input, 800'000);
  q.at = sys_days{std::chrono::year{2025} / 6 / 1} + 1h;
  EXPECT_EQ(price(t, tokens(1, 0), q).cost.input, 900'000);
}

TEST(Pricing, BeforeAnyEffectiveDateIsUnpriced) {
  rate_entry e = make(nova_pro, 800'000, 3'200'000);
  e.effective_from = sys_days{std::chrono::year{2027} / 1 / 1};
  const rate_table t = table_of({e});
  const priced p = price(t, tokens(5, 5), query(nova_pro));
  EXPECT_FALSE(p.priced);
  EXPECT_EQ(p.cost.total(), 0);
  EXPECT_NE(p.note.find("on 2026-07-24"), std::string::npos) << p.note;
}

TEST(Pricing, FullTieIsDecidedByTablePosition) {
  rate_entry a = make(nova_pro, 800'000, 3'200'000);
  rate_entry b = make(nova_pro, 810'000, 3'200'000);
  const rate_table t = table_of({a, b});
  EXPECT_EQ(price(t, tokens(1, 0), query(nova_pro)).entry, &t.entries[0]);
}

TEST(Pricing, ContextWindowVariantFallsBackToItsBaseRow) {
  const rate_table t =
      table_of({make("anthropic.claude-3-sonnet-20240229-v1:0", 3'000'000, 15'000'000)});
  const priced p = price(t, tokens(10, 0), query("anthropic.claude-3-sonnet-20240229-v1:0:200k"));
  ASSERT_TRUE(p.priced);
  EXPECT_EQ(p.base_model, "anthropic.claude-3-sonnet-20240229-v1:0");
  EXPECT_EQ(p.model.base_model, "anthropic.claude-3-sonnet-20240229-v1:0:200k");
  EXPECT_EQ(p.cost.input, 30'000'000);  // 10 x 3,000,000
}

TEST(Pricing, UnknownModelIsUnpricedNeverASilentZero) {
  const rate_table t = table_of({make(nova_pro, 800'000, 3'200'000)});
  for (const std::string_view id : {"vendor.not-a-model-v1:0", "garbage", ""}) {
    SCOPED_TRACE(std::string(id));
    const priced p = price(t, tokens(100, 100), query(id));
    EXPECT_FALSE(p.priced);
    EXPECT_EQ(p.entry, nullptr);
    EXPECT_FALSE(p.note.empty());
    EXPECT_EQ(p.table_version, "test-2026-07-24.1");
  }
  const priced unmapped =
      price(t, tokens(1, 1),
            query("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/x1"));
  EXPECT_FALSE(unmapped.priced);
  EXPECT_NE(unmapped.note.find("no model_mapping for application_profile"), std::string::npos);
}

TEST(Pricing, MappedIdsPriceAsTheirBaseModelOrHourly) {
  const rate_table t = table_of({make_claude(sonnet35, 3'000'000, 15'000'000)});
  const std::vector<model_mapping> mappings{
      {"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc",
       std::string(sonnet35), std::nullopt, "search", "ranker"},
      {"pm1", "anthropic.claude-instant-v1", 44.0, "", ""},
  };
  price_query q = query("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc");
  q.mappings = &mappings;
  const priced app = price(t, tokens(1'234, 567), q);
  ASSERT_TRUE(app.priced) << app.note;
  EXPECT_EQ(app.cost.total(), 12'207'000'000);  // as the realistic Sonnet 3.5 request above
  EXPECT_EQ(app.model.kind, model_id_kind::application_profile);
  EXPECT_EQ(app.model.mapping, &mappings[0]);

  q.model_id = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/pm1";
  const priced pm = price(t, tokens(1'000, 1'000), q);
  EXPECT_TRUE(pm.priced);
  EXPECT_EQ(pm.cost.total(), 0);
  EXPECT_EQ(pm.note, "provisioned: billed hourly");
  EXPECT_EQ(pm.model.kind, model_id_kind::provisioned);
}

TEST(Pricing, NoTokensIsPricedZeroWhateverTheModel) {
  const rate_table t = table_of({make(nova_pro, 800'000, 3'200'000)});
  const token_usage count_tokens{};  // CountTokens / an error: source none, all zero
  for (const std::string_view id :
       {std::string_view("amazon.nova-pro-v1:0"), std::string_view("junk")}) {
    const priced p = price(t, count_tokens, query(id));
    EXPECT_TRUE(p.priced) << id;
    EXPECT_EQ(p.cost.total(), 0);
  }
}

TEST(Pricing, ProviderReportedZeroStaysZero) {
  const rate_table t = table_of({make(nova_pro, 800'000, 3'200'000)});
  const priced zero = price(t, tokens(0, 0), query(nova_pro));
  EXPECT_TRUE(zero.priced);
  EXPECT_EQ(zero.cost.total(), 0);
  const priced no_output = price(t, tokens(7, 0), query(nova_pro));
  EXPECT_TRUE(no_output.priced);
  EXPECT_EQ(no_output.cost.output, 0);
  EXPECT_EQ(no_output.cost.input, 5'600'000);  // 7 x 800,000
}

TEST(Pricing, AbsurdCountsAreUnpricedRatherThanOverflowing) {
  const rate_table t = table_of({make(sonnet35, 3'000'000, 15'000'000)});
  // 2^62 tokens x 3e6 is far past int64 pico-USD.
  const priced p = price(t, tokens(std::uint64_t{1} << 62, 0), query(sonnet35));
  EXPECT_FALSE(p.priced);
  EXPECT_EQ(p.cost.total(), 0);
  const priced max =
      price(t, tokens(std::numeric_limits<std::uint64_t>::max(), 1), query(sonnet35));
  EXPECT_FALSE(max.priced);
}

// ---------------------------------------------------------------------------------------------
// Speech tokens (Nova Sonic, InvokeModelWithBidirectionalStream)

constexpr std::string_view nova_sonic = "amazon.nova-sonic-v1:0";

/// Nova Sonic on-demand, us-east-1: text in $0.00006 / out $0.00024 per 1K (0.06 / 0.24 per 1M),
/// speech in $0.0034 / out $0.0136 per 1K (3.40 / 13.60 per 1M).
rate_entry make_sonic() {
  rate_entry e = make(nova_sonic, 60'000, 240'000);
  e.rates.speech_input = 3'400'000;
  e.rates.speech_output = 13'600'000;
  e.location = "rates.yaml:7";
  return e;
}

token_usage sonic_tokens(std::uint64_t speech_in, std::uint64_t text_in, std::uint64_t speech_out,
                         std::uint64_t text_out) {
  token_usage u = tokens(speech_in + text_in, speech_out + text_out);
  u.speech_input = speech_in;
  u.speech_output = speech_out;
  return u;
}

TEST(Pricing, SpeechAndTextTokensArePricedApartIntoInputAndOutput) {
  const rate_table t = table_of({make_sonic()});
  const priced p = price(t, sonic_tokens(1'500, 45, 2'400, 80), query(nova_sonic));
  ASSERT_TRUE(p.priced) << p.note;
  // input:  1,500 speech x 3,400,000 = 5,100,000,000 + 45 text x 60,000 = 2,700,000
  //         = 5,102,700,000 pico ($0.0051027)
  EXPECT_EQ(p.cost.input, 5'102'700'000);
  // output: 2,400 speech x 13,600,000 = 32,640,000,000 + 80 text x 240,000 = 19,200,000
  //         = 32,659,200,000 pico ($0.0326592)
  EXPECT_EQ(p.cost.output, 32'659'200'000);
  EXPECT_EQ(p.cost.total(), 37'761'900'000);  // $0.0377619
  EXPECT_EQ(format_usd(p.cost.total()), "0.037762");
  EXPECT_EQ(p.note, "");
  // Text only on the same entry: the text rates; speech beyond the direction's count is capped.
  EXPECT_EQ(price(t, tokens(1'000, 1'000), query(nova_sonic)).cost.total(),
            300'000'000);  // 1,000 x 60,000 + 1,000 x 240,000
  token_usage over = sonic_tokens(10, 0, 0, 0);
  over.speech_input = 99;  // more speech than input: only the 10 input tokens are speech
  EXPECT_EQ(price(t, over, query(nova_sonic)).cost.input, 34'000'000);  // 10 x 3,400,000
}

TEST(Pricing, SpeechTokensWithoutASpeechRateAreUnpricedNeverAtTheTextRate) {
  rate_entry no_speech = make_sonic();
  no_speech.rates.speech_input.reset();
  no_speech.rates.speech_output.reset();
  const rate_table t = table_of({no_speech});
  const priced p = price(t, sonic_tokens(1'500, 45, 2'400, 80), query(nova_sonic));
  EXPECT_FALSE(p.priced);
  EXPECT_EQ(p.cost.total(), 0);
  EXPECT_EQ(p.entry, nullptr);
  EXPECT_EQ(p.base_model, nova_sonic);
  EXPECT_EQ(p.note,
            "unpriced: no speech rate (speech_input, speech_output) for amazon.nova-sonic-v1:0 at "
            "rates.yaml:7: speech tokens are never priced at the text rate");
  EXPECT_TRUE(p.note.starts_with(speech_unpriced_note));
  // One direction missing is enough; text-only traffic on the same entry is priced.
  rate_entry out_only = make_sonic();
  out_only.rates.speech_input.reset();
  const rate_table t2 = table_of({out_only});
  const priced half = price(t2, sonic_tokens(10, 0, 20, 0), query(nova_sonic));
  EXPECT_FALSE(half.priced);
  EXPECT_NE(half.note.find("(speech_input) for"), std::string::npos) << half.note;
  EXPECT_TRUE(price(t2, sonic_tokens(0, 10, 20, 0), query(nova_sonic)).priced);
  EXPECT_TRUE(price(t, tokens(10, 10), query(nova_sonic)).priced);
}

TEST(Pricing, LongContextRatesWithoutSpeechKeepTheNormalSpeechRate) {
  rate_entry e = make_sonic();
  e.long_context_threshold = 100;
  e.long_context_rates.input = 120'000;
  e.long_context_rates.output = 480'000;
  const rate_table t = table_of({e});
  const priced p = price(t, sonic_tokens(200, 0, 0, 0), query(nova_sonic));
  ASSERT_TRUE(p.priced) << p.note;
  EXPECT_TRUE(p.long_context);
  EXPECT_EQ(p.cost.input, 680'000'000);  // 200 x 3,400,000
  EXPECT_EQ(p.note, "no long-context speech_input rate: normal rate used");
}

TEST(Pricing, FindRateOverloadsAgree) {
  rate_entry global = make(sonnet45, 3'000'000, 15'000'000);
  global.scope = inference_scope::global;
  const rate_table t = table_of({make(sonnet45, 3'300'000, 16'500'000), global});
  const price_query q = query("global.anthropic.claude-sonnet-4-5-20250929-v1:0");
  EXPECT_EQ(find_rate(t, sonnet45, q), &t.entries[1]);
  EXPECT_EQ(find_rate(t, sonnet45, inference_scope::in_region, q), &t.entries[0]);
  EXPECT_EQ(find_rate(t, "nobody.nothing", q), nullptr);
  rate_table unindexed;
  unindexed.entries = t.entries;
  EXPECT_EQ(find_rate(unindexed, sonnet45, q), nullptr);
}

// ---------------------------------------------------------------------------------------------
// capacity (`provisioned`) and prompt-caching facts (`caching`)

provisioned_entry capacity(std::string_view model, std::vector<std::string> regions,
                           pico_usd no_commit_hourly) {
  provisioned_entry p;
  p.model = model;
  p.regions = std::move(regions);
  p.model_units.push_back({commitment_term::no_commit, no_commit_hourly, "test"});
  return p;
}

caching_rule cache_rule(std::string_view model, std::uint64_t min_prefix, bool ttl_1h) {
  caching_rule c;
  c.model = model;
  c.min_prefix_tokens = min_prefix;
  c.ttl_1h = ttl_1h;
  return c;
}

TEST(Capacity, CommitmentTermSpellingsRoundTrip) {
  for (const commitment_term t : {commitment_term::no_commit, commitment_term::one_month,
                                  commitment_term::three_months, commitment_term::six_months}) {
    EXPECT_EQ(parse_commitment_term(to_string(t)), t) << to_string(t);
  }
  EXPECT_EQ(to_string(commitment_term::no_commit), "no_commit");
  EXPECT_EQ(to_string(commitment_term::one_month), "1_month");
  EXPECT_EQ(to_string(commitment_term::three_months), "3_months");
  EXPECT_EQ(to_string(commitment_term::six_months), "6_months");
  for (const std::string_view bad : {"", "1_months", "1-month", "6_month", "NO_COMMIT", "12"}) {
    EXPECT_FALSE(parse_commitment_term(bad).has_value()) << bad;
  }
}

TEST(Capacity, FindProvisionedPrefersTheExactRegionOverStar) {
  rate_table t;
  // "*" first in the table: the exact region must still win.
  t.provisioned.push_back(capacity(llama70b, {"*"}, 20'000'000'000'000));
  t.provisioned.push_back(capacity(llama70b, {"us-east-1", "us-west-2"}, 24'000'000'000'000));
  t.provisioned.push_back(capacity(llama70b, {"us-west-2"}, 25'000'000'000'000));  // later: loses
  EXPECT_EQ(find_provisioned(t, llama70b, "us-west-2"), &t.provisioned[1]);
  EXPECT_EQ(find_provisioned(t, llama70b, "us-east-1"), &t.provisioned[1]);
  EXPECT_EQ(find_provisioned(t, llama70b, "eu-west-1"), &t.provisioned[0]);
  EXPECT_EQ(find_provisioned(t, llama70b, ""), &t.provisioned[0]);  // no region: only "*"
  EXPECT_EQ(find_provisioned(t, nova_pro, "us-east-1"), nullptr);

  rate_table named_only;
  named_only.provisioned.push_back(capacity(llama70b, {"us-west-2"}, 24'000'000'000'000));
  EXPECT_EQ(find_provisioned(named_only, llama70b, "us-east-1"), nullptr);
  EXPECT_EQ(find_provisioned(rate_table{}, llama70b, "us-west-2"), nullptr);
}

TEST(Capacity, FindProvisionedTriesTheCandidateIdsInOrder) {
  constexpr std::string_view claude_v2 = "anthropic.claude-v2";
  constexpr std::string_view claude_v21 = "anthropic.claude-v2:1";
  rate_table t;
  t.provisioned.push_back(capacity(claude_v2, {"us-east-1"}, 70'000'000'000'000));
  t.provisioned.push_back(capacity(claude_v21, {"*"}, 71'000'000'000'000));
  t.provisioned.push_back(capacity(haiku35, {"*"}, 1'000'000'000'000));
  // The id itself decides when it has an entry for the region, even a "*" one: the more
  // specific candidate is tried first.
  EXPECT_EQ(find_provisioned(t, claude_v21, "us-east-1"), &t.provisioned[1]);
  // ...v2:1 -> ...v2 (version stripped) only when ...v2:1 has nothing for the region.
  rate_table regional;
  regional.provisioned.push_back(capacity(claude_v2, {"us-east-1"}, 70'000'000'000'000));
  regional.provisioned.push_back(capacity(claude_v21, {"eu-central-1"}, 79'000'000'000'000));
  EXPECT_EQ(find_provisioned(regional, claude_v21, "us-east-1"), &regional.provisioned[0]);
  EXPECT_EQ(find_provisioned(regional, claude_v21, "eu-central-1"), &regional.provisioned[1]);
  // `...-v1:0` finds its own entry, and an entry written for the version-stripped id.
  EXPECT_EQ(find_provisioned(t, haiku35, "us-east-1"), &t.provisioned[2]);
  rate_table stripped;
  stripped.provisioned.push_back(
      capacity("anthropic.claude-3-5-haiku-20241022-v1", {"*"}, 1'000'000'000'000));
  EXPECT_EQ(find_provisioned(stripped, haiku35, "us-east-1"), &stripped.provisioned[0]);
  EXPECT_EQ(find_provisioned(stripped, std::string(haiku35) + ":200k", "us-east-1"),
            &stripped.provisioned[0]);
}

TEST(Capacity, FindCachingTriesTheCandidateIdsInOrder) {
  rate_table t;
  t.caching.push_back(cache_rule("anthropic.claude-sonnet-4-5-20250929-v1", 2048, false));
  t.caching.push_back(cache_rule(sonnet45, 1024, true));
  t.caching.push_back(cache_rule(nova_pro, 1024, false));
  t.caching.push_back(cache_rule(nova_pro, 4096, false));  // a loaded table has no duplicates
  EXPECT_EQ(find_caching(t, sonnet45), &t.caching[1]);     // exact id before the stripped one
  EXPECT_EQ(find_caching(t, std::string(sonnet45) + ":200k"), &t.caching[1]);
  EXPECT_EQ(find_caching(t, "anthropic.claude-sonnet-4-5-20250929-v1:7"), &t.caching[0]);
  EXPECT_EQ(find_caching(t, nova_pro), &t.caching[2]);  // first in table order
  EXPECT_EQ(find_caching(t, haiku35), nullptr);
  EXPECT_EQ(find_caching(t, ""), nullptr);
}

TEST(Capacity, LookupsDoNotAllocate) {
  rate_table t;
  t.provisioned.push_back(capacity(llama70b, {"*"}, 20'000'000'000'000));
  t.provisioned.push_back(capacity(llama70b, {"us-west-2"}, 24'000'000'000'000));
  t.caching.push_back(cache_rule(sonnet45, 1024, true));
  const std::uint64_t before = g_allocations.load();
  const provisioned_entry* p = find_provisioned(t, llama70b, "us-west-2");
  const caching_rule* c =
      find_caching(t, std::string_view("anthropic.claude-sonnet-4-5-20250929-v1:0:200k"));
  EXPECT_EQ(g_allocations.load() - before, 0u);
  EXPECT_EQ(p, &t.provisioned[1]);
  EXPECT_EQ(c, &t.caching[0]);
}

/// A table shaped like the real one: many models, a few rows each.
rate_table big_table() {
  std::vector<rate_entry> entries;
  for (int i = 0; i < 150; ++i) {
    const std::string model = "vendor.model-" + std::to_string(i) + "-v1:0";
    entries.push_back(make(model, 1'000'000, 2'000'000));
    rate_entry gov = make(model, 1'200'000, 2'400'000);
    gov.regions = {"us-gov-west-1"};
    entries.push_back(gov);
  }
  entries.push_back(make_claude(sonnet45, 3'300'000, 16'500'000));
  rate_entry global = make_claude(sonnet45, 3'000'000, 15'000'000);
  global.scope = inference_scope::global;
  entries.push_back(global);
  rate_entry priority = make_claude(sonnet45, 5'775'000, 28'875'000);
  priority.tier = service_tier::priority;
  entries.push_back(priority);
  return table_of(std::move(entries));
}

TEST(Pricing, SteadyStateIsAllocationFreeAndFast) {
  const rate_table t = big_table();
  token_usage u = tokens(1'234, 567);
  u.cache_read = 2'000;
  const price_query q = query("us.anthropic.claude-sonnet-4-5-20250929-v1:0");
  priced out;
  price(t, u, q, out);  // grows out's strings once
  ASSERT_TRUE(out.priced);

  constexpr int iterations = 200'000;
  const std::uint64_t before = g_allocations.load();
  const auto start = std::chrono::steady_clock::now();
  pico_usd sink = 0;
  for (int i = 0; i < iterations; ++i) {
    price(t, u, q, out);
    sink += out.cost.total();
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(g_allocations.load() - before, 0u);
  // 1,234 x 3,300,000 + 567 x 16,500,000 + 2,000 x 330,000 = 4,072,200,000 + 9,355,500,000 +
  // 660,000,000
  EXPECT_EQ(sink, pico_usd{14'087'700'000} * iterations);

  const auto alloc_start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) sink += price(t, u, q).cost.total();
  const auto alloc_elapsed = std::chrono::steady_clock::now() - alloc_start;
  const double ns = std::chrono::duration<double, std::nano>(elapsed).count() / iterations;
  const double ns_value =
      std::chrono::duration<double, std::nano>(alloc_elapsed).count() / iterations;
  std::printf("price(out): %.0f ns/call, price() by value: %.0f ns/call\n", ns, ns_value);
}

// ---------------------------------------------------------------------------------------------
// money

TEST(Money, ParseRateExactly) {
  EXPECT_EQ(parse_rate_per_million("3"), 3'000'000);
  EXPECT_EQ(parse_rate_per_million("3.00"), 3'000'000);
  EXPECT_EQ(parse_rate_per_million("22.5"), 22'500'000);
  EXPECT_EQ(parse_rate_per_million("0.00875"), 8'750);  // Nova Micro cache read
  EXPECT_EQ(parse_rate_per_million("0.000001"), 1);
  EXPECT_EQ(parse_rate_per_million("0"), 0);
  EXPECT_EQ(parse_rate_per_million("007.5"), 7'500'000);
  EXPECT_EQ(parse_rate_per_million("0.1000000000"), 100'000);  // trailing zeros past 6: still exact
  // The largest value int64 micro-USD holds, and one past it.
  EXPECT_EQ(parse_rate_per_million("9223372036854.775807"),
            std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(parse_rate_per_million("9223372036854.775808"), std::nullopt);
  for (const std::string_view bad : {"",
                                     "-1",
                                     "+1",
                                     "1e3",
                                     "1E-3",
                                     ".5",
                                     "3.",
                                     "0.0000001",
                                     "0.0000005",
                                     "1..2",
                                     "1.2.3",
                                     " 1",
                                     "1 ",
                                     "abc",
                                     "1,5",
                                     "0x10",
                                     "NaN",
                                     "inf",
                                     "99999999999999999999",
                                     "$3",
                                     "3.0a"}) {
    EXPECT_EQ(parse_rate_per_million(bad), std::nullopt) << '"' << bad << '"';
  }
}

TEST(Money, FormatRoundsHalfAwayFromZero) {
  EXPECT_EQ(format_usd(12'345'678'900'000), "12.345679");  // 12.3456789 -> 12.345679
  EXPECT_EQ(format_usd(0), "0.000000");
  EXPECT_EQ(format_usd(500'000), "0.000001");  // 0.0000005 rounds up
  EXPECT_EQ(format_usd(499'999), "0.000000");
  EXPECT_EQ(format_usd(-500'000), "-0.000001");  // away from zero
  EXPECT_EQ(format_usd(-499'999), "0.000000");   // never "-0.000000"
  EXPECT_EQ(format_usd(18 * pico_per_usd, 2), "18.00");
  EXPECT_EQ(format_usd(1, 12), "0.000000000001");
  EXPECT_EQ(format_usd(1'500'000'000'000, 0), "2");
  EXPECT_EQ(format_usd(-1'500'000'000'000, 0), "-2");
  EXPECT_EQ(format_usd(1'234, 20), "0.000000001234");  // more than 12 decimals: pico is exact
  EXPECT_EQ(format_usd(995'000'000'000, 2), "1.00");   // carry into the dollars
  // 10^30 pico = 10^18 USD: past int64, fine in 128 bits.
  money_total big = 1;
  for (int i = 0; i < 30; ++i) big *= 10;
  EXPECT_EQ(format_usd(big), "1000000000000000000.000000");
  // The most negative __int128: -2^127 pico = -170141183460469231731687303.715884105728 USD.
  const money_total min =
      -static_cast<money_total>((static_cast<money_total>(1) << 126) - 1) * 2 - 2;
  EXPECT_EQ(format_usd(min), "-170141183460469231731687303.715884");
}

TEST(Money, ToDoubleForPrometheusOnly) {
  EXPECT_DOUBLE_EQ(to_usd_double(18 * pico_per_usd), 18.0);
  EXPECT_DOUBLE_EQ(to_usd_double(12'207'000'000), 0.012207);
  EXPECT_DOUBLE_EQ(to_usd_double(-2'500'000'000'000), -2.5);
  EXPECT_DOUBLE_EQ(to_usd_double(1), 1e-12);
}

TEST(Money, MillionTinyRequestsSumExactly) {
  // $0.0000001234 per request = 0.0000001234 x 1e12 = 123,400 pico-USD.
  constexpr pico_usd per_request = 123'400;
  money_total total = 0;
  for (int i = 0; i < 1'000'000; ++i) total += per_request;
  EXPECT_TRUE(total == money_total{123'400'000'000});  // 1e6 x 123,400 = $0.1234 exactly
  EXPECT_EQ(format_usd(total, 7), "0.1234000");
  EXPECT_EQ(cost_of(1'000'000, 3'000'000), 3 * pico_per_usd);
}

}  // namespace
}  // namespace bedrock_meter::metering
