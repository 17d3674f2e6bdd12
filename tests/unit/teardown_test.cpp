// Teardown: destroying the pool (PoolPtr reset) never waits. Resting pages
// go back to the provider at once; pages still out go back at their last
// put, from any thread; the pool (and the provider it holds) is freed when
// the last page is back. Stats cannot be read after destroy, so these
// tests watch the provider: its log outlives it, and a weak_ptr tells when
// the pool let go of it.
#include <gtest/gtest.h>

#include <atomic>
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

// Nothing out: destroy gives every page back and frees the pool, and with
// it the provider, before reset() returns.
TEST(Teardown, NothingOutFreesEverythingAtOnce) {
  auto c = make_counted_pool({});
  put_all(alloc_n(*c.pool, 100));
  ASSERT_FALSE(c.provider.expired());
  EXPECT_EQ(c.log->release_pages.load(), 0u);
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_TRUE(c.log->destroyed.load());
  EXPECT_EQ(c.log->alloc_pages.load(), 128u);
  EXPECT_ALL_RETURNED(c.log);
}

// A pool that never allocated is freed at once too.
TEST(Teardown, UnusedPoolIsFreedAtOnce) {
  auto c = make_counted_pool({});
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_EQ(c.log->alloc_calls.load(), 0u);
  EXPECT_EQ(c.log->release_calls.load(), 0u);
}

// Pages in the cache, in the ring and in the owner's taken chain (taken
// from the ring, not yet moved into the cache) are all given back.
TEST(Teardown, CacheRingAndTakenChainAreReleased) {
  auto c = make_counted_pool({});
  std::vector<Page*> pages = alloc_n(*c.pool, 192);  // cache empty
  std::vector<Page*> to_ring(pages.begin(), pages.begin() + 100);
  on_other_thread([&] { put_all(to_ring); });
  Page* p = c.pool->alloc_page();  // takes the ring's chain; 36 stay in it
  ASSERT_NE(p, nullptr);
  pagepool::put_page(p);
  // More into the ring on top of the taken chain, and some into the cache.
  std::vector<Page*> more(pages.begin() + 100, pages.begin() + 150);
  on_other_thread([&] { put_all(more); });
  put_all(std::vector<Page*>(pages.begin() + 150, pages.end()));
  const auto l = expect_consistent(*c.pool);
  EXPECT_EQ(l.ring, 86u);
  EXPECT_EQ(l.cache, 106u);
  EXPECT_EQ(l.inflight, 0u);
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_EQ(c.log->alloc_pages.load(), 192u);
  EXPECT_ALL_RETURNED(c.log);
}

// Pages out at destroy: the resting ones go back at once; each later last
// put gives its page back (the released_refcnt path); the provider stays
// alive until the very last one, which frees the pool.
TEST(Teardown, PagesOutKeepThePoolUntilTheLastPut) {
  auto c = make_counted_pool({});
  std::vector<Page*> out = alloc_n(*c.pool, 5);
  c.pool.reset();
  EXPECT_FALSE(c.provider.expired());
  EXPECT_EQ(c.log->release_pages.load(), 59u);
  for (int i = 0; i < 4; ++i) {
    // Still ours: readable, writable, still resolvable.
    EXPECT_TRUE(page_holds(out[i], static_cast<unsigned char>(i)));
    fill_page(out[i], 0xab);
    EXPECT_EQ(pagepool::virt_to_page(pagepool::page_address(out[i])), out[i]);
    void* addr = pagepool::page_address(out[i]);
    pagepool::put_page(out[i]);
    EXPECT_EQ(c.log->release_pages.load(), 60u + i);  // released, not recycled
    EXPECT_EQ(pagepool::virt_to_page(addr), nullptr);
    EXPECT_FALSE(c.provider.expired());
  }
  pagepool::put_page(out[4]);
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// After destroy every way of returning a page releases it: put_page(Page*),
// Pool::put_page (even with allow_direct), release_page, put_pages_bulk.
TEST(Teardown, EveryKindOfPutAfterDestroyReleases) {
  auto c = make_counted_pool({});
  std::vector<Page*> out = alloc_n(*c.pool, 8);
  Pool* raw = c.pool.get();
  c.pool.reset();
  std::uint64_t released = c.log->release_pages.load();
  EXPECT_EQ(released, 56u);
  ASSERT_EQ(pagepool::page_pool(out[0]), raw);  // the pool lives on, detached
  EXPECT_FALSE(raw->is_owner());

  pagepool::put_page(out[0]);
  EXPECT_EQ(c.log->release_pages.load(), ++released);
  raw->put_page(out[1], -1, true);
  EXPECT_EQ(c.log->release_pages.load(), ++released);
  raw->put_page(out[2], 0, false);
  EXPECT_EQ(c.log->release_pages.load(), ++released);
  raw->release_page(out[3]);
  EXPECT_EQ(c.log->release_pages.load(), ++released);
  on_other_thread([&] { pagepool::put_page(out[4]); });
  EXPECT_EQ(c.log->release_pages.load(), ++released);
  // A page with two references goes back at the second put only.
  pagepool::get_page(out[5]);
  pagepool::put_page(out[5]);
  EXPECT_EQ(c.log->release_pages.load(), released);
  raw->put_pages_bulk(&out[5], 2);  // may free the pool: nothing of it is used after
  released += 2;
  EXPECT_EQ(c.log->release_pages.load(), released);
  EXPECT_FALSE(c.provider.expired());
  Page* last = out[7];
  on_other_thread([last] { pagepool::put_page(last); });
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// recycle.released_refcnt counts the pages released at their last put
// after destroy (and release_page, which always releases, does not). Read
// through a page still out: the detached pool lives until the last one is
// back, so its counters stay readable until then.
TEST(Teardown, ReleasedRefcntCountsLastPutsAfterDestroy) {
  auto c = make_counted_pool({});
  std::vector<Page*> out = alloc_n(*c.pool, 6);
  Pool* raw = c.pool.get();
  c.pool.reset();
  const pagepool::Stats s0 = raw->stats();
  pagepool::put_page(out[0]);
  raw->put_page(out[1], -1, true);
  on_other_thread([&] { pagepool::put_page(out[2]); });
  raw->put_pages_bulk(&out[3], 1);
  raw->release_page(out[4]);
  const pagepool::Stats s1 = raw->stats();
  expect_delta(s0, s1, {.released_refcnt = 4, .release = 5});
  EXPECT_EQ(c.log->release_pages.load(), 63u);
  pagepool::put_page(out[5]);
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// Many pages out at destroy, returned later by several threads at once.
TEST(Teardown, PagesReturnedLaterFromManyThreads) {
  auto c = make_counted_pool({});
  std::vector<Page*> out = alloc_n(*c.pool, 400);
  c.pool.reset();
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (std::size_t i = t; i < out.size(); i += 4) {
        fill_page(out[i], static_cast<unsigned char>(t));  // data still usable
        pagepool::put_page(out[i]);
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// Pages returned by threads racing with destroy: whichever side comes
// last frees the pool, nothing leaks, nothing is released twice.
TEST(Teardown, PutsRacingWithDestroy) {
  for (int round = 0; round < 20; ++round) {
    auto c = make_counted_pool({});
    std::vector<Page*> out = alloc_n(*c.pool, 256);
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> ts;
    for (int t = 0; t < 2; ++t)
      ts.emplace_back([&, t] {
        ready.fetch_add(1);
        while (!go.load()) std::this_thread::yield();
        std::vector<Page*> mine;
        for (std::size_t i = t; i < out.size(); i += 2) mine.push_back(out[i]);
        // Half singly, half in bulk.
        for (std::size_t i = 0; i < mine.size() / 2; ++i) pagepool::put_page(mine[i]);
        Pool* any = pagepool::page_pool(mine.back());
        any->put_pages_bulk(mine.data() + mine.size() / 2, mine.size() - mine.size() / 2);
      });
    while (ready.load() != 2) std::this_thread::yield();
    go.store(true);
    c.pool.reset();
    for (auto& t : ts) t.join();
    ASSERT_TRUE(c.provider.expired()) << "round " << round;
    EXPECT_ALL_RETURNED(c.log);
  }
}

// Fragments out at destroy: the carving page stays until its last
// fragment is put.
TEST(Teardown, FragmentsOutstandingAtDestroy) {
  auto c = make_counted_pool({});
  std::uint32_t off[3];
  Page* f0 = c.pool->alloc_frag(1000, &off[0]);
  Page* f1 = c.pool->alloc_frag(1000, &off[1]);
  Page* f2 = c.pool->alloc_frag(1000, &off[2]);
  ASSERT_TRUE(f0 && f0 == f1 && f1 == f2);
  c.pool.reset();
  EXPECT_EQ(c.log->release_pages.load(), 63u);
  pagepool::put_page(f0);
  on_other_thread([f1] { pagepool::put_page(f1); });
  EXPECT_FALSE(c.provider.expired());
  EXPECT_EQ(c.log->release_pages.load(), 63u);
  pagepool::put_page(f2);
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// Fragments of a page that carving has left, and of the carving page,
// both out at destroy.
TEST(Teardown, FragmentsOfTwoPagesOutstanding) {
  auto c = make_counted_pool({});
  std::uint32_t off;
  Page* a = c.pool->alloc_frag(3000, &off);
  Page* b = c.pool->alloc_frag(3000, &off);  // second page
  ASSERT_NE(a, b);
  c.pool.reset();
  EXPECT_EQ(c.log->release_pages.load(), 62u);
  pagepool::put_page(a);
  EXPECT_FALSE(c.provider.expired());
  pagepool::put_page(b);
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// A carving page whose fragments are all back is resting: destroy gives it
// back at once.
TEST(Teardown, IdleCarvingPageIsReleasedAtOnce) {
  auto c = make_counted_pool({});
  std::uint32_t off;
  Page* a = c.pool->alloc_frag(100, &off);
  pagepool::put_page(a);
  ASSERT_EQ(c.pool->levels().carving_idle, 1u);
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// With a full cache at destroy, the idle carving page is released as well.
TEST(Teardown, IdleCarvingPageWithAFullCache) {
  auto c = make_counted_pool({});
  std::uint32_t off;
  Page* f = c.pool->alloc_frag(100, &off);  // first bulk: 63 left in the cache
  pagepool::put_page(f);
  std::vector<Page*> pages = alloc_n(*c.pool, 191);  // those 63 and two more bulks
  ASSERT_EQ(c.pool->levels().cache, 0u);
  for (int i = 0; i < 128; ++i) c.pool->recycle_direct(pages[i]);
  on_other_thread([&] { put_all(std::vector<Page*>(pages.begin() + 128, pages.end())); });
  const auto l = expect_consistent(*c.pool);
  ASSERT_EQ(l.cache, Pool::kCacheSize);
  ASSERT_EQ(l.ring, 63u);
  ASSERT_EQ(l.carving_idle, 1u);
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_EQ(c.log->alloc_pages.load(), 192u);
  EXPECT_ALL_RETURNED(c.log);
}

// kDmaMap pools unmap every page on its way out, including those returned
// after destroy.
TEST(Teardown, MappedPagesAreUnmappedOnTheirWayOut) {
  Params params;
  params.flags = pagepool::kDmaMap;
  auto c = make_counted_pool(params);
  std::vector<Page*> out = alloc_n(*c.pool, 70);
  c.pool.reset();
  EXPECT_EQ(c.log->unmap_calls.load(), 58u);
  EXPECT_EQ(c.log->mapped_now(), 70u);
  on_other_thread([&] { put_all(out); });
  EXPECT_TRUE(c.provider.expired());
  EXPECT_EQ(c.log->mapped_now(), 0u);
  EXPECT_ALL_RETURNED(c.log);
}

// The default provider works the same way: a pool with pages out outlives
// its PoolPtr and goes away with the last page (ASan/LSan see no leak).
TEST(Teardown, DefaultProviderPagesOutlivePoolPtr) {
  auto pool = Pool::create({});
  std::vector<Page*> out = alloc_n(*pool, 3);
  pool.reset();
  on_other_thread([&] {
    for (std::size_t i = 0; i < out.size(); ++i) {
      EXPECT_TRUE(page_holds(out[i], static_cast<unsigned char>(i)));
      pagepool::put_page(out[i]);
    }
  });
}

}  // namespace
