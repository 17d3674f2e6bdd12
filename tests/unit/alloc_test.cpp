// Allocation: alloc_page, alloc_pages_bulk, the provider refill size per
// order, max_inflight and provider failure.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "pagepool/pagepool.hpp"
#include "test_providers.hpp"
#include "test_util.hpp"

namespace {

using namespace pptest;
using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;

// The first allocation finds cache and ring empty and takes one bulk of 64
// order-0 pages from the provider; the other 63 stay in the cache.
TEST(Alloc, FirstAllocationRefillsSixtyFourFromProvider) {
  auto c = make_counted_pool({});
  StatsWatch w(*c.pool);
  Page* p = c.pool->alloc_page();
  ASSERT_NE(p, nullptr);
  EXPECT_MOVED(w, {.slow = 1, .empty = 1, .hold = 64});
  EXPECT_EQ(c.log->alloc_calls.load(), 1u);
  EXPECT_EQ(c.log->alloc_requested.load(), 64u);
  EXPECT_EQ(c.log->alloc_pages.load(), 64u);
  const auto l = c.pool->levels();
  EXPECT_EQ(l.cache, 63u);
  EXPECT_EQ(l.inflight, 1u);
  EXPECT_EQ(l.held, 64u);
  EXPECT_EQ(c.pool->inflight(), 1u);
  pagepool::put_page(p);
  EXPECT_CONSISTENT(c.pool);
}

// Later allocations come from the cache (alloc.fast) without asking the
// provider again, until the 64 are used up.
TEST(Alloc, CachedPagesAreServedFast) {
  auto c = make_counted_pool({});
  std::vector<Page*> pages = alloc_n(*c.pool, 1);
  StatsWatch w(*c.pool);
  for (int i = 0; i < 63; ++i) pages.push_back(c.pool->alloc_page());
  EXPECT_MOVED(w, {.fast = 63});
  EXPECT_EQ(c.log->alloc_calls.load(), 1u);
  EXPECT_EQ(c.pool->levels().cache, 0u);
  // The 65th needs a new bulk.
  pages.push_back(c.pool->alloc_page());
  ASSERT_NE(pages.back(), nullptr);
  EXPECT_MOVED(w, {.slow = 1, .empty = 1, .hold = 64});
  EXPECT_EQ(c.log->alloc_calls.load(), 2u);
  put_all(pages);
  EXPECT_CONSISTENT(c.pool);
}

// The cache is a stack: the page recycled last is allocated next.
TEST(Alloc, CacheIsLastInFirstOut) {
  auto pool = Pool::create({});
  Page* a = pool->alloc_page();
  Page* b = pool->alloc_page();
  pool->recycle_direct(a);
  pool->recycle_direct(b);
  EXPECT_EQ(pool->alloc_page(), b);
  EXPECT_EQ(pool->alloc_page(), a);
  pagepool::put_page(a);
  pagepool::put_page(b);
  EXPECT_CONSISTENT(pool);
}

// Pages are distinct, writable over their whole length, and do not alias:
// a pattern written to each survives writes to all the others.
TEST(Alloc, PagesAreDistinctWritableAndDoNotOverlap) {
  auto pool = Pool::create({});
  StatsWatch w(*pool);
  std::vector<Page*> pages = alloc_n(*pool, 300);  // fills page i with byte i
  ASSERT_EQ(pages.size(), 300u);
  // 300 pages need five bulks of 64; each allocation counted exactly once.
  EXPECT_MOVED(w, {.fast = 295, .slow = 5, .empty = 5, .hold = 320});
  std::set<Page*> descs(pages.begin(), pages.end());
  std::set<void*> addrs;
  for (Page* p : pages) addrs.insert(pagepool::page_address(p));
  EXPECT_EQ(descs.size(), 300u);
  EXPECT_EQ(addrs.size(), 300u);
  for (std::size_t i = 0; i < pages.size(); ++i)
    EXPECT_TRUE(page_holds(pages[i], static_cast<unsigned char>(i))) << "page " << i;
  EXPECT_EQ(pool->inflight(), 300u);
  put_all(pages);
  EXPECT_CONSISTENT(pool, 0);
}

// A recycled page comes back writable, and the allocation keeps working
// through many cycles without touching the provider again.
TEST(Alloc, RecycledPagesStayUsable) {
  auto c = make_counted_pool({});
  for (int round = 0; round < 50; ++round) {
    std::vector<Page*> pages = alloc_n(*c.pool, 10);
    for (std::size_t i = 0; i < pages.size(); ++i)
      EXPECT_TRUE(page_holds(pages[i], static_cast<unsigned char>(i)));
    put_all(pages);
  }
  EXPECT_EQ(c.log->alloc_calls.load(), 1u);
  EXPECT_EQ(c.pool->stats().hold, 64u);
  EXPECT_CONSISTENT(c.pool);
}

// Higher orders: a page is kPageSize << order bytes, the provider is asked
// for kBulk >> order pages (at least one) per refill, and refills count as
// alloc.slow_high_order, never alloc.slow.
class AllocOrder : public ::testing::TestWithParam<unsigned> {};

TEST_P(AllocOrder, RefillSizeAndPageSizeFollowTheOrder) {
  const unsigned order = GetParam();
  Params params;
  params.order = order;
  auto c = make_counted_pool(params);
  const std::uint64_t per_refill = std::max<std::uint64_t>(1, Pool::kBulk >> order);
  const std::uint64_t n = 3;
  const std::uint64_t refills = (n + per_refill - 1) / per_refill;

  StatsWatch w(*c.pool);
  std::vector<Page*> pages = alloc_n(*c.pool, n);  // each filled over its full size
  ASSERT_EQ(pages.size(), n);
  EXPECT_MOVED(w, {.fast = n - refills,
                   .slow_high_order = refills,
                   .empty = refills,
                   .hold = refills * per_refill});
  EXPECT_EQ(c.log->alloc_calls.load(), refills);
  EXPECT_EQ(c.log->alloc_requested.load(), refills * per_refill);
  for (Page* p : pages) {
    EXPECT_EQ(pagepool::page_size(p), pagepool::kPageSize << order);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(pagepool::page_address(p)) % pagepool::kPageSize, 0u);
  }
  for (std::size_t i = 0; i < pages.size(); ++i)
    EXPECT_TRUE(page_holds(pages[i], static_cast<unsigned char>(i)));
  EXPECT_EQ(c.pool->page_bytes(), pagepool::kPageSize << order);
  put_all(pages);
  EXPECT_CONSISTENT(c.pool);
}

INSTANTIATE_TEST_SUITE_P(Orders, AllocOrder, ::testing::Values(1u, 2u, 5u, 6u, 7u, 9u, 10u));

// ---- alloc_pages_bulk ------------------------------------------------------

// Zero pages asked, zero given; nothing moves and the provider is not asked.
TEST(AllocBulk, ZeroRequestDoesNothing) {
  auto c = make_counted_pool({});
  StatsWatch w(*c.pool);
  Page* out[1] = {nullptr};
  EXPECT_EQ(c.pool->alloc_pages_bulk(out, 0), 0u);
  EXPECT_MOVED(w, {});
  EXPECT_EQ(c.log->alloc_calls.load(), 0u);
  EXPECT_EQ(out[0], nullptr);
}

// A request spanning several refills is served in full: the cache is
// swept (alloc.fast per page), each refill serves one page as alloc.slow.
TEST(AllocBulk, FillsTheWholeRequestAcrossRefills) {
  auto pool = Pool::create({});
  StatsWatch w(*pool);
  std::vector<Page*> out(150, nullptr);
  ASSERT_EQ(pool->alloc_pages_bulk(out.data(), out.size()), 150u);
  EXPECT_MOVED(w, {.fast = 147, .slow = 3, .empty = 3, .hold = 192});
  EXPECT_EQ(std::set<Page*>(out.begin(), out.end()).size(), 150u);
  for (std::size_t i = 0; i < out.size(); ++i) fill_page(out[i], static_cast<unsigned char>(i));
  for (std::size_t i = 0; i < out.size(); ++i)
    EXPECT_TRUE(page_holds(out[i], static_cast<unsigned char>(i)));
  EXPECT_EQ(pool->levels().cache, 42u);
  EXPECT_EQ(pool->inflight(), 150u);
  pool->put_pages_bulk(out.data(), out.size());
  EXPECT_CONSISTENT(pool, 0);
}

// Cached pages are handed out first: after recycling ten pages, a bulk of
// ten returns exactly those, all from the cache.
TEST(AllocBulk, TakesCachedPagesFirst) {
  auto pool = Pool::create({});
  std::vector<Page*> ten = alloc_n(*pool, 10);
  for (Page* p : ten) pool->recycle_direct(p);
  StatsWatch w(*pool);
  std::vector<Page*> out(10, nullptr);
  ASSERT_EQ(pool->alloc_pages_bulk(out.data(), out.size()), 10u);
  EXPECT_MOVED(w, {.fast = 10});
  EXPECT_EQ(std::set<Page*>(out.begin(), out.end()), std::set<Page*>(ten.begin(), ten.end()));
  put_all(out);
  EXPECT_CONSISTENT(pool);
}

// The bulk stops at max_inflight (one alloc.limited per refused call) and
// picks up again once pages come back.
TEST(AllocBulk, StopsAtMaxInflight) {
  Params params;
  params.max_inflight = 20;
  auto pool = Pool::create(params);
  StatsWatch w(*pool);
  std::vector<Page*> out(50, nullptr);
  ASSERT_EQ(pool->alloc_pages_bulk(out.data(), 50), 20u);
  EXPECT_MOVED(w, {.fast = 19, .slow = 1, .empty = 1, .limited = 1, .hold = 64});
  EXPECT_EQ(pool->inflight(), 20u);
  for (int i = 0; i < 5; ++i) pool->recycle_direct(out[i]);
  EXPECT_MOVED(w, {.cached = 5});
  std::vector<Page*> more(10, nullptr);
  ASSERT_EQ(pool->alloc_pages_bulk(more.data(), 10), 5u);
  EXPECT_MOVED(w, {.fast = 5, .limited = 1});
  EXPECT_EQ(pool->inflight(), 20u);
  put_all(std::vector<Page*>(out.begin() + 5, out.begin() + 20));
  put_all(std::vector<Page*>(more.begin(), more.begin() + 5));
  EXPECT_CONSISTENT(pool);
}

// Provider out of memory: nothing is returned, one alloc.fail (and the
// empty ring it found) per call.
TEST(AllocBulk, ReturnsZeroWhenTheProviderHasNothing) {
  auto c = make_counted_pool({}, {.page_budget = 0});
  StatsWatch w(*c.pool);
  std::vector<Page*> out(8, nullptr);
  EXPECT_EQ(c.pool->alloc_pages_bulk(out.data(), out.size()), 0u);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  EXPECT_EQ(c.pool->levels().held, 0u);
  EXPECT_CONSISTENT(c.pool);
}

// A provider that runs dry part way: the bulk returns what it got, each
// page counted once, then one alloc.fail.
TEST(AllocBulk, ReturnsWhatTheProviderHad) {
  auto c = make_counted_pool({}, {.page_budget = 70});
  StatsWatch w(*c.pool);
  std::vector<Page*> out(100, nullptr);
  ASSERT_EQ(c.pool->alloc_pages_bulk(out.data(), out.size()), 70u);
  EXPECT_MOVED(w, {.fast = 68, .slow = 2, .empty = 3, .fail = 1, .hold = 70});
  for (std::size_t i = 0; i < 70; ++i) fill_page(out[i], 0x5a);
  c.pool->put_pages_bulk(out.data(), 70);
  EXPECT_CONSISTENT(c.pool);
}

// ---- max_inflight ---------------------------------------------------------

// With max_inflight = 3 the fourth allocation fails with alloc.limited and
// nothing else; every later attempt counts again; a page coming back (to
// the cache, through the ring or released) makes room for exactly one more.
TEST(MaxInflight, RefusesAtTheCapAndRecoversWhenPagesReturn) {
  Params params;
  params.max_inflight = 3;
  auto pool = Pool::create(params);
  std::vector<Page*> pages = alloc_n(*pool, 3);
  ASSERT_EQ(pages.size(), 3u);
  StatsWatch w(*pool);
  EXPECT_EQ(pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.limited = 1});
  EXPECT_EQ(pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.limited = 1});
  EXPECT_EQ(pool->inflight(), 3u);

  // Back to the cache.
  pool->recycle_direct(pages[0]);
  pages[0] = pool->alloc_page();
  ASSERT_NE(pages[0], nullptr);
  EXPECT_EQ(pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.fast = 1, .limited = 1, .cached = 1});

  // Back through the ring, from another thread.
  Page* q = pages[1];
  on_other_thread([&] { pagepool::put_page(q); });
  pages[1] = pool->alloc_page();
  ASSERT_NE(pages[1], nullptr);
  EXPECT_EQ(pool->alloc_page(), nullptr);

  // Released to the provider.
  pool->release_page(pages[2]);
  pages[2] = pool->alloc_page();
  ASSERT_NE(pages[2], nullptr);
  EXPECT_EQ(pool->alloc_page(), nullptr);
  EXPECT_EQ(pool->inflight(), 3u);
  put_all(pages);
  EXPECT_CONSISTENT(pool);
}

// A cap larger than one bulk: exactly max_inflight pages can be out.
TEST(MaxInflight, CapAboveOneBulkIsExact) {
  Params params;
  params.max_inflight = 100;
  auto pool = Pool::create(params);
  std::vector<Page*> pages = alloc_n(*pool, 100);
  ASSERT_EQ(pages.size(), 100u);
  StatsWatch w(*pool);
  EXPECT_EQ(pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.limited = 1});
  put_all(pages);
  pages = alloc_n(*pool, 100);
  EXPECT_EQ(pages.size(), 100u);
  EXPECT_EQ(pool->alloc_page(), nullptr);
  put_all(pages);
  EXPECT_CONSISTENT(pool);
}

// The fast path's floor against a model: random owner-side allocations
// (single and bulk) and returns (direct recycles that fill and spill the
// cache, bulk puts, releases) under a cap. An allocation succeeds exactly
// while fewer than the cap are out, and alloc.fast (derived, not counted on
// the fast path) matches the allocations no refill served.
TEST(MaxInflight, ExactUnderRandomOwnerTraffic) {
  constexpr std::size_t kCap = 150;  // above the cache: spills and refills happen
  Params params;
  params.max_inflight = kCap;
  auto pool = Pool::create(params);
  std::vector<Page*> out;
  std::uint64_t allocs = 0;
  std::uint64_t rng = 42;
  auto next = [&](std::uint64_t n) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (rng >> 33) % n;
  };
  for (int step = 0; step < 20000; ++step) {
    const std::uint64_t op = next(6);
    if (op == 0) {
      Page* p = pool->alloc_page();
      ASSERT_EQ(p != nullptr, out.size() < kCap) << "step " << step << ", " << out.size() << " out";
      if (p) out.push_back(p);
      allocs += p != nullptr;
    } else if (op == 1) {
      Page* b[40];
      const std::size_t want = 1 + next(40);
      const std::size_t got = pool->alloc_pages_bulk(b, want);
      ASSERT_EQ(got, std::min(want, kCap - out.size())) << "step " << step;
      out.insert(out.end(), b, b + got);
      allocs += got;
    } else if (!out.empty()) {
      const std::size_t k = 1 + next(std::min<std::size_t>(out.size(), op == 4 ? 40 : 1));
      std::vector<Page*> back(out.end() - static_cast<std::ptrdiff_t>(k), out.end());
      out.resize(out.size() - k);
      if (op == 2 || op == 3)
        for (Page* p : back) pool->recycle_direct(p);
      else if (op == 4)
        pool->put_pages_bulk(back.data(), back.size());
      else
        for (Page* p : back) pool->release_page(p);
    }
    ASSERT_EQ(pool->inflight(), out.size()) << "step " << step;
  }
#if PAGEPOOL_STATS
  const pagepool::Stats s = pool->stats();
  EXPECT_GT(s.recycle.cache_full, 0u);  // the cache did spill
  EXPECT_GT(s.alloc.limited, 0u);       // the cap was reached
  // Every allocation is fast or one of the refilling kinds.
  EXPECT_EQ(s.alloc.fast + s.alloc.slow + s.alloc.refill, allocs);
  EXPECT_GT(s.alloc.refill, 0u);  // spilled pages came back through the ring
#else
  (void)allocs;
#endif
  put_all(out);
  EXPECT_CONSISTENT(pool);
}

// ---- provider failure -----------------------------------------------------

// A provider with no memory: alloc_page returns nullptr and counts
// alloc.fail (after finding the ring empty) on every attempt.
TEST(AllocFail, ProviderWithoutPages) {
  auto prov = std::make_shared<EmptyProvider>();
  Params params;
  params.provider = prov;
  auto pool = Pool::create(params);
  StatsWatch w(*pool);
  EXPECT_EQ(pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  EXPECT_EQ(pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  EXPECT_EQ(prov->calls.load(), 2u);
  EXPECT_EQ(prov->released.load(), 0u);
  EXPECT_CONSISTENT(pool, 0);
}

// Allocation works again when the provider has pages again (here: pages
// released back to it).
TEST(AllocFail, RecoversWhenTheProviderHasPagesAgain) {
  auto c = make_counted_pool({}, {.page_budget = 64});
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  ASSERT_EQ(pages.size(), 64u);
  StatsWatch w(*c.pool);
  EXPECT_EQ(c.pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  // Give one page back to the provider, not the pool.
  c.pool->release_page(pages.back());
  pages.pop_back();
  EXPECT_MOVED(w, {.release = 1});
  Page* p = c.pool->alloc_page();
  EXPECT_NE(p, nullptr);
  EXPECT_MOVED(w, {.slow = 1, .empty = 1, .hold = 1});
  pages.push_back(p);
  put_all(pages);
  EXPECT_CONSISTENT(c.pool);
}

}  // namespace
