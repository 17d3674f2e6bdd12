// Counters and levels: each counter moves exactly when its event happens,
// the levels add up, and hold/release agree with what the provider saw.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pagepool/pagepool.hpp"
#include "test_providers.hpp"
#include "test_util.hpp"

namespace {

using namespace pptest;
using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;

// A new pool has counted nothing and holds nothing.
TEST(Stats, NewPoolIsAllZero) {
  auto pool = Pool::create({});
  const pagepool::Stats z{};
  expect_delta(z, pool->stats(), {});
  const auto l = expect_consistent(*pool);
  EXPECT_EQ(l.cache + l.ring + l.carving_idle + l.inflight + l.held, 0u);
  EXPECT_EQ(pool->inflight(), 0u);
}

// alloc.empty counts refills that found the ring empty, and only those: a
// refill served by the ring counts alloc.refill instead.
TEST(Stats, EmptyOnlyWhenTheRingIsEmpty) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 64);  // cache now empty
  Page* p0 = pages[0];
  on_other_thread([p0] { pagepool::put_page(p0); });
  StatsWatch w(*pool);
  pages[0] = pool->alloc_page();  // the ring has p0
  EXPECT_EQ(pages[0], p0);
  EXPECT_MOVED(w, {.refill = 1});
  Page* p = pool->alloc_page();  // cache and ring empty: provider
  EXPECT_MOVED(w, {.slow = 1, .empty = 1, .hold = 64});
  pages.push_back(p);
  put_all(pages);
  EXPECT_CONSISTENT(pool);
}

// Every successful allocation bumps exactly one of fast / refill / slow /
// slow_high_order; failed ones bump none of them.
TEST(Stats, EachAllocationCountsOnce) {
  Params params;
  params.pool_size = 50;
  params.max_inflight = 150;
  auto pool = Pool::create(params);
  std::uint64_t ok = 0;
  std::vector<Page*> out;
  for (int round = 0; round < 40; ++round) {
    for (int i = 0; i < 37 + round % 7; ++i) {
      Page* p = pool->alloc_page();
      if (p) {
        ++ok;
        out.push_back(p);
      }
    }
    // Return some directly, some through the ring, some to the provider.
    std::vector<Page*> keep;
    std::vector<Page*> to_ring;
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (i % 3 == 0)
        pool->recycle_direct(out[i]);
      else if (i % 3 == 1)
        to_ring.push_back(out[i]);
      else if (i % 5 == 2)
        pool->release_page(out[i]);
      else
        keep.push_back(out[i]);
    }
    on_other_thread([&] { put_all(to_ring); });
    out.swap(keep);
  }
  put_all(out);
  const auto s = pool->stats();
#if PAGEPOOL_STATS
  EXPECT_EQ(s.alloc.fast + s.alloc.refill + s.alloc.slow + s.alloc.slow_high_order, ok);
  EXPECT_EQ(s.alloc.slow_high_order, 0u);
  EXPECT_GT(s.alloc.refill, 0u);
  EXPECT_GT(s.alloc.slow, 1u);
  EXPECT_EQ(s.alloc.waive, 0u);
#endif
  EXPECT_CONSISTENT(pool, 0);
}

// recycle.ring counts every page pushed onto the return ring: single
// non-direct puts (at the handover of the caller's batch, not while they wait
// in it), bulk puts from other threads and the 64 of a cache spill. Pages
// leaving the ring for the cache do not make it go down.
TEST(Stats, RingCountsEveryPagePushed) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 200);
  StatsWatch w(*pool);
  pool->put_page(pages[0], -1, false);
  EXPECT_MOVED(w, {});  // pending: not counted yet
  pagepool::flush_thread();
  EXPECT_MOVED(w, {.ring = 1});  // the handover
  on_other_thread([&] { pool->put_pages_bulk(pages.data() + 1, 9); });
  EXPECT_MOVED(w, {.ring = 9});
  // Move them into the cache: no recycle counter moves.
  std::vector<Page*> again(pool->levels().cache + 10, nullptr);
  ASSERT_EQ(pool->alloc_pages_bulk(again.data(), again.size()), again.size());
  EXPECT_EQ(pool->levels().ring, 0u);
  const auto s = pool->stats();
  EXPECT_EQ(s.recycle.ring, PAGEPOOL_STATS ? 10u : 0u);
  // Overflow the cache.
  for (std::size_t i = 10; i < 138; ++i) pool->recycle_direct(pages[i]);
  EXPECT_MOVED(w, {.fast = again.size() - 1, .refill = 1, .cached = 128});
  pool->recycle_direct(pages[138]);
  EXPECT_MOVED(w, {.cache_full = 1, .ring = 64});
  put_all(again);
  put_all(std::vector<Page*>(pages.begin() + 139, pages.end()));
  EXPECT_CONSISTENT(pool);
}

// hold and release are what the provider handed out and took back,
// across refills, ring-full releases, spills and release_page.
TEST(Stats, HoldAndReleaseMatchTheProvider) {
  Params params;
  params.pool_size = 16;
  auto c = make_counted_pool(params);
  std::vector<Page*> pages = alloc_n(*c.pool, 300);
  for (int i = 0; i < 20; ++i) c.pool->release_page(pages[i]);
  on_other_thread([&] { put_all(std::vector<Page*>(pages.begin() + 20, pages.begin() + 60)); });
  put_all(std::vector<Page*>(pages.begin() + 60, pages.end()));
  const auto s = c.pool->stats();
  EXPECT_EQ(s.hold, c.log->alloc_pages.load());
  EXPECT_EQ(s.release, c.log->release_pages.load());
  EXPECT_EQ(c.log->bad_releases.load(), 0u);
  EXPECT_GT(s.release, 20u);  // ring-full and spill releases came on top
  const auto l = expect_consistent(*c.pool);
  EXPECT_EQ(l.held, s.hold - s.release);
  EXPECT_EQ(l.inflight, 0u);
}

// stats() and levels() may be read from any thread; on a quiescent pool
// they agree with the owner's view.
TEST(Stats, ReadableFromAnyThread) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 70);
  pool->put_page(pages[0], -1, false);  // pending in this thread's batch
  const auto s = pool->stats();
  const auto l = pool->levels();
  EXPECT_EQ(l.pending, 1u);
  pagepool::Stats s2{};
  pagepool::Levels l2{};
  std::uint64_t in2 = 0;
  on_other_thread([&] {
    s2 = pool->stats();
    l2 = pool->levels();
    in2 = pool->inflight();
  });
  expect_delta(s, s2, {});
  EXPECT_EQ(l2.cache, l.cache);
  EXPECT_EQ(l2.ring, l.ring);
  EXPECT_EQ(l2.pending, l.pending);
  EXPECT_EQ(l2.inflight, l.inflight);
  EXPECT_EQ(l2.held, l.held);
  EXPECT_EQ(in2, 69u);
  put_all(std::vector<Page*>(pages.begin() + 1, pages.end()));
  EXPECT_CONSISTENT(pool);
}

// The levels track each place a page can be: cache, ring, out.
TEST(Levels, FollowPagesAround) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 10);
  auto l = expect_consistent(*pool);
  EXPECT_EQ(l.cache, 54u);
  EXPECT_EQ(l.ring, 0u);
  EXPECT_EQ(l.inflight, 10u);
  EXPECT_EQ(l.held, 64u);
  on_other_thread([&] { put_all(std::vector<Page*>(pages.begin(), pages.begin() + 3)); });
  l = expect_consistent(*pool);
  EXPECT_EQ(l.ring, 3u);
  EXPECT_EQ(l.inflight, 7u);
  put_all(std::vector<Page*>(pages.begin() + 3, pages.begin() + 5));
  l = expect_consistent(*pool);
  EXPECT_EQ(l.cache, 56u);
  EXPECT_EQ(l.inflight, 5u);
  pool->release_page(pages[5]);
  l = expect_consistent(*pool);
  EXPECT_EQ(l.held, 63u);
  EXPECT_EQ(l.inflight, 4u);
  put_all(std::vector<Page*>(pages.begin() + 6, pages.end()));
  l = expect_consistent(*pool);
  EXPECT_EQ(l.inflight, 0u);
  EXPECT_EQ(l.cache + l.ring, 63u);
}

}  // namespace

namespace {

using pagepool::Page;
using pagepool::Pool;

// check() throws std::logic_error naming what it found broken.
void expect_check_fails(const Pool& pool, const char* what) {
  try {
    pool.check();
    ADD_FAILURE() << "check() passed; expected: " << what;
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

// check() is not a rubber stamp: a resting page that claims a holder or
// another pool is reported, in the cache, in a returner's batch and in the
// ring. (The tests tamper with a resting page's descriptor and then repair
// it.)
TEST(Check, ReportsTheBrokenInvariant) {
  auto pool = Pool::create({});
  auto other = Pool::create({});
  Page* a = pool->alloc_page();
  Page* b = pool->alloc_page();
  pool->recycle_direct(a);
  pool->put_page(b, -1, false);
  EXPECT_NO_THROW(pool->check());

  a->ref.store(1);
  expect_check_fails(*pool, "referenced page in the cache");
  a->ref.store(0);
  a->pool.store(other.get());
  expect_check_fails(*pool, "foreign page in the cache");
  a->pool.store(pool.get());

  ASSERT_EQ(pool->levels().pending, 1u);  // b waits in this thread's batch
  b->ref.store(2);
  expect_check_fails(*pool, "referenced page in a returner's batch");
  b->ref.store(0);
  b->pool.store(other.get());
  expect_check_fails(*pool, "foreign page in a returner's batch");
  b->pool.store(pool.get());
  EXPECT_NO_THROW(pool->check());

  pagepool::flush_thread();
  ASSERT_EQ(pool->levels().ring, 1u);
  b->ref.store(2);
  expect_check_fails(*pool, "referenced page in the ring");
  b->ref.store(0);
  EXPECT_NO_THROW(pool->check());
}

}  // namespace
