// The return path: recycle_direct, Pool::put_page, put_pages_bulk,
// release_page; the alloc cache, its overflow, the return ring and its bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

#include "pagepool/pagepool.hpp"
#include "test_providers.hpp"
#include "test_util.hpp"

namespace {

using namespace pptest;
using pagepool::Page;
using pagepool::Pool;

// recycle_direct puts the page into the cache (recycle.cached) and nothing
// else moves; the page is no longer inflight.
TEST(RecycleDirect, GoesToTheCache) {
  auto pool = Pool::create({});
  Page* p = pool->alloc_page();
  ASSERT_NE(p, nullptr);
  StatsWatch w(*pool);
  pool->recycle_direct(p);
  EXPECT_MOVED(w, {.cached = 1});
  const auto l = pool->levels();
  EXPECT_EQ(l.cache, 64u);
  EXPECT_EQ(l.inflight, 0u);
  EXPECT_CONSISTENT(pool);
}

// recycle_direct drops one reference; with others left the page stays out.
TEST(RecycleDirect, OnlyTheLastReferenceRecycles) {
  auto pool = Pool::create({});
  Page* p = pool->alloc_page();
  pagepool::get_page(p);
  StatsWatch w(*pool);
  pool->recycle_direct(p);
  EXPECT_MOVED(w, {});
  EXPECT_EQ(pool->inflight(), 1u);
  pool->recycle_direct(p);
  EXPECT_MOVED(w, {.cached = 1});
  EXPECT_CONSISTENT(pool, 0);
}

// Pool::put_page on the owner: allow_direct picks the cache, otherwise the
// remote path: the calling thread's batch, handed to the ring by
// flush_thread (counted in recycle.ring then, not at the put). The sync size
// does not matter without kDmaSyncDev.
TEST(PoolPutPage, OwnerDirectOrRing) {
  auto pool = Pool::create({});
  Page* a = pool->alloc_page();
  Page* b = pool->alloc_page();
  StatsWatch w(*pool);
  pool->put_page(a, 100, true);
  EXPECT_MOVED(w, {.cached = 1});
  pool->put_page(b, -1, false);
  EXPECT_MOVED(w, {});  // pending: not counted yet
  auto l = expect_consistent(*pool);
  EXPECT_EQ(l.cache, 63u);
  EXPECT_EQ(l.pending, 1u);
  EXPECT_EQ(l.ring, 0u);
  EXPECT_EQ(l.inflight, 0u);
  pagepool::flush_thread();
  EXPECT_MOVED(w, {.ring = 1});  // the handover counts it
  l = expect_consistent(*pool);
  EXPECT_EQ(l.cache, 63u);
  EXPECT_EQ(l.pending, 0u);
  EXPECT_EQ(l.ring, 1u);
  EXPECT_EQ(l.inflight, 0u);
}

// From another thread allow_direct is ignored: the page goes to the ring.
TEST(PoolPutPage, NonOwnerIsNeverDirect) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 3);
  StatsWatch w(*pool);
  on_other_thread([&] {
    pool->put_page(pages[0], -1, true);
    pool->put_page(pages[1], 0, false);
    pagepool::put_page(pages[2]);
  });
  EXPECT_MOVED(w, {.ring = 3});
  EXPECT_EQ(pool->levels().ring, 3u);
  EXPECT_EQ(pool->levels().cache, 61u);
  EXPECT_CONSISTENT(pool);
}

// Ring pages are reused before the provider is asked: once the cache is
// empty, the next allocation takes them (alloc.refill) and they are the
// same pages.
TEST(Ring, PagesComeBackThroughRefill) {
  auto c = make_counted_pool({});
  std::vector<Page*> pages = alloc_n(*c.pool, 64);  // cache now empty
  std::vector<Page*> back(pages.begin(), pages.begin() + 10);
  on_other_thread([&] { put_all(back); });
  StatsWatch w(*c.pool);
  std::vector<Page*> again(10, nullptr);
  ASSERT_EQ(c.pool->alloc_pages_bulk(again.data(), 10), 10u);
  EXPECT_MOVED(w, {.fast = 9, .refill = 1});
  EXPECT_EQ(std::set<Page*>(again.begin(), again.end()), std::set<Page*>(back.begin(), back.end()));
  EXPECT_EQ(c.log->alloc_calls.load(), 1u);
  for (Page* p : again) fill_page(p, 0x77);
  put_all(again);
  put_all(std::vector<Page*>(pages.begin() + 10, pages.end()));
  EXPECT_CONSISTENT(c.pool);
}

// A refill moves at most kRefill (64) pages from the ring; the rest wait in
// the ring (still counted there) for the next one.
TEST(Ring, RefillMovesAtMostSixtyFour) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 128);  // cache empty
  std::vector<Page*> back(pages.begin(), pages.begin() + 100);
  on_other_thread([&] { put_all(back); });
  EXPECT_EQ(pool->levels().ring, 100u);
  StatsWatch w(*pool);
  std::vector<Page*> got;
  got.push_back(pool->alloc_page());
  EXPECT_MOVED(w, {.refill = 1});
  auto l = pool->levels();
  EXPECT_EQ(l.cache, 63u);
  EXPECT_EQ(l.ring, 36u);
  EXPECT_CONSISTENT(pool);
  for (int i = 0; i < 63; ++i) got.push_back(pool->alloc_page());
  EXPECT_MOVED(w, {.fast = 63});
  got.push_back(pool->alloc_page());  // the remaining 36
  EXPECT_MOVED(w, {.refill = 1});
  l = pool->levels();
  EXPECT_EQ(l.cache, 35u);
  EXPECT_EQ(l.ring, 0u);
  for (int i = 0; i < 35; ++i) got.push_back(pool->alloc_page());
  EXPECT_MOVED(w, {.fast = 35});
  EXPECT_EQ(std::set<Page*>(got.begin(), got.end()), std::set<Page*>(back.begin(), back.end()));
  got.push_back(pool->alloc_page());  // ring empty: the provider
  EXPECT_MOVED(w, {.slow = 1, .empty = 1, .hold = 64});
  put_all(got);
  put_all(std::vector<Page*>(pages.begin() + 100, pages.end()));
  EXPECT_CONSISTENT(pool);
}

// The ring holds pool_size pages: a handover that would take it past
// pool_size pushes what fits and releases the rest to the provider
// (recycle.ring_full, release), as that many single puts would. Those
// pages count only in ring_full, never in recycle.ring.
TEST(Ring, FullRingReleasesToTheProvider) {
  auto c = make_counted_pool(sized(3));
  std::vector<Page*> pages = alloc_n(*c.pool, 5);
  std::vector<void*> addr;
  for (Page* p : pages) addr.push_back(pagepool::page_address(p));
  StatsWatch w(*c.pool);
  for (int i = 0; i < 4; ++i) c.pool->put_page(pages[i], -1, false);
  EXPECT_MOVED(w, {});  // pending in this thread's batch: not counted yet
  EXPECT_EQ(c.pool->levels().pending, 4u);
  EXPECT_EQ(c.log->release_pages.load(), 0u);
  pagepool::flush_thread();  // the handover: 3 fit, 1 does not
  EXPECT_MOVED(w, {.ring = 3, .ring_full = 1, .release = 1});
  EXPECT_EQ(c.log->release_pages.load(), 1u);
  EXPECT_EQ(c.log->bad_releases.load(), 0u);
  int gone = 0;
  for (int i = 0; i < 4; ++i) {
    Page* now = pagepool::virt_to_page(addr[i]);
    if (now == nullptr)
      ++gone;  // back in the provider
    else
      EXPECT_EQ(now, pages[i]);
  }
  EXPECT_EQ(gone, 1);
  auto l = expect_consistent(*c.pool);
  EXPECT_EQ(l.ring, 3u);
  EXPECT_EQ(l.pending, 0u);
  // Another thread's put reaches the ring at its exit: full, released.
  on_other_thread([&] { pagepool::put_page(pages[4]); });
  EXPECT_MOVED(w, {.ring_full = 1, .release = 1});
  EXPECT_EQ(pagepool::virt_to_page(addr[4]), nullptr);
  l = expect_consistent(*c.pool);
  EXPECT_EQ(l.ring, 3u);
  EXPECT_EQ(l.held, 62u);
  EXPECT_EQ(l.inflight, 0u);
}

// The smallest ring: one page fits, the second does not.
TEST(Ring, PoolSizeOneHoldsOnePage) {
  auto pool = Pool::create(sized(1));
  std::vector<Page*> pages = alloc_n(*pool, 2);
  StatsWatch w(*pool);
  on_other_thread([&] { put_all(pages); });
  EXPECT_MOVED(w, {.ring = 1, .ring_full = 1, .release = 1});
  EXPECT_EQ(pool->levels().ring, 1u);
  EXPECT_CONSISTENT(pool);
}

// The pages the owner has taken from the ring but not yet moved into the
// cache still count against pool_size.
TEST(Ring, TakenChainCountsAgainstTheBound) {
  auto pool = Pool::create(sized(100));
  std::vector<Page*> pages = alloc_n(*pool, 192);  // three bulks, cache empty
  std::vector<Page*> first(pages.begin(), pages.begin() + 100);
  on_other_thread([&] { put_all(first); });
  Page* p = pool->alloc_page();  // takes the chain, moves 64 into the cache
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(pool->levels().ring, 36u);
  EXPECT_CONSISTENT(pool);
  StatsWatch w(*pool);
  std::vector<Page*> more(pages.begin() + 100, pages.begin() + 165);  // 65 pages
  on_other_thread([&] { put_all(more); });
  EXPECT_MOVED(w, {.ring = 64, .ring_full = 1, .release = 1});
  EXPECT_EQ(pool->levels().ring, 100u);
  pagepool::put_page(p);
  put_all(std::vector<Page*>(pages.begin() + 165, pages.end()));
  EXPECT_CONSISTENT(pool);
}

// ---- cache overflow ------------------------------------------------------------

// A direct recycle into a full cache (128) counts cache_full once and
// spills the oldest 64 cached pages into the ring in one go (they count in
// recycle.ring); the recycled page and the newer 64 stay in the cache.
TEST(CacheOverflow, SpillsTheOldestHalfIntoTheRing) {
  auto pool = Pool::create({});
  std::vector<Page*> out = alloc_n(*pool, 129);  // three bulks: 63 fresh pages cached
  for (int i = 0; i < 65; ++i) pool->recycle_direct(out[i]);
  ASSERT_EQ(pool->levels().cache, Pool::kCacheSize);
  StatsWatch w(*pool);
  pool->recycle_direct(out[65]);
  EXPECT_MOVED(w, {.cache_full = 1, .ring = 64});
  auto l = expect_consistent(*pool);
  EXPECT_EQ(l.cache, 65u);
  EXPECT_EQ(l.ring, 64u);

  // The cache kept out[1..65], the newest 65.
  std::vector<Page*> cached(65, nullptr);
  ASSERT_EQ(pool->alloc_pages_bulk(cached.data(), 65), 65u);
  EXPECT_MOVED(w, {.fast = 65});
  EXPECT_EQ(std::set<Page*>(cached.begin(), cached.end()),
            std::set<Page*>(out.begin() + 1, out.begin() + 66));
  // The ring got the 63 never-used pages and out[0], the oldest.
  std::vector<Page*> ringed(64, nullptr);
  ASSERT_EQ(pool->alloc_pages_bulk(ringed.data(), 64), 64u);
  EXPECT_MOVED(w, {.fast = 63, .refill = 1});
  std::set<Page*> rs(ringed.begin(), ringed.end());
  EXPECT_EQ(rs.size(), 64u);
  EXPECT_EQ(rs.count(out[0]), 1u);
  for (int i = 1; i < 129; ++i) EXPECT_EQ(rs.count(out[i]), 0u) << i;

  put_all(cached);
  put_all(ringed);
  put_all(std::vector<Page*>(out.begin() + 66, out.end()));
  EXPECT_CONSISTENT(pool);
}

// Only a recycle into a full cache counts cache_full: filling the cache to
// exactly 128 does not.
TEST(CacheOverflow, FillingToCapacityIsNotFull) {
  auto pool = Pool::create({});
  std::vector<Page*> out = alloc_n(*pool, 128);  // cache empty
  StatsWatch w(*pool);
  for (Page* p : out) pool->recycle_direct(p);
  EXPECT_MOVED(w, {.cached = 128});
  EXPECT_EQ(pool->levels().cache, 128u);
  EXPECT_EQ(pool->levels().ring, 0u);
  EXPECT_CONSISTENT(pool);
}

// If the ring is full, the 64 spilled pages are released to the provider
// (ring_full counts each of them).
TEST(CacheOverflow, SpillIntoAFullRingReleases) {
  auto c = make_counted_pool(sized(10));
  std::vector<Page*> out = alloc_n(*c.pool, 139);  // three bulks: 53 fresh pages cached
  on_other_thread([&] { put_all(std::vector<Page*>(out.begin() + 129, out.end())); });
  ASSERT_EQ(c.pool->levels().ring, 10u);
  for (int i = 0; i < 75; ++i) c.pool->recycle_direct(out[i]);
  ASSERT_EQ(c.pool->levels().cache, Pool::kCacheSize);
  StatsWatch w(*c.pool);
  c.pool->recycle_direct(out[75]);
  EXPECT_MOVED(w, {.cache_full = 1, .ring_full = 64, .release = 64});
  EXPECT_EQ(c.log->release_pages.load(), 64u);
  EXPECT_EQ(c.log->bad_releases.load(), 0u);
  const auto l = expect_consistent(*c.pool);
  EXPECT_EQ(l.cache, 65u);
  EXPECT_EQ(l.ring, 10u);
  EXPECT_EQ(l.held, 128u);
  put_all(std::vector<Page*>(out.begin() + 76, out.begin() + 129));
  EXPECT_CONSISTENT(c.pool);
}

// A spill into a ring with room for fewer than 64 pushes what fits and
// releases the rest, like 64 single pushes would.
TEST(CacheOverflow, SpillIntoAPartlyFullRingTakesWhatFits) {
  auto c = make_counted_pool(sized(10));
  std::vector<Page*> out = alloc_n(*c.pool, 133);  // three bulks: 59 fresh pages cached
  on_other_thread([&] { put_all(std::vector<Page*>(out.begin() + 129, out.end())); });
  ASSERT_EQ(c.pool->levels().ring, 4u);
  for (int i = 0; i < 69; ++i) c.pool->recycle_direct(out[i]);
  ASSERT_EQ(c.pool->levels().cache, Pool::kCacheSize);
  StatsWatch w(*c.pool);
  c.pool->recycle_direct(out[69]);
  EXPECT_MOVED(w, {.cache_full = 1, .ring = 6, .ring_full = 58, .release = 58});
  EXPECT_EQ(c.log->release_pages.load(), 58u);
  EXPECT_EQ(c.log->bad_releases.load(), 0u);
  const auto l = expect_consistent(*c.pool);
  EXPECT_EQ(l.cache, 65u);
  EXPECT_EQ(l.ring, 10u);
  EXPECT_EQ(l.held, 192u - 58u);
  put_all(std::vector<Page*>(out.begin() + 70, out.begin() + 129));
  EXPECT_CONSISTENT(c.pool);
}

// ---- put_pages_bulk -----------------------------------------------------------

// On the owner thread every page goes into the cache.
TEST(PutPagesBulk, OwnerRecyclesIntoTheCache) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 10);
  StatsWatch w(*pool);
  pool->put_pages_bulk(pages.data(), pages.size());
  EXPECT_MOVED(w, {.cached = 10});
  EXPECT_CONSISTENT(pool, 0);
}

// From another thread all pages go into the ring, and come back by refill.
TEST(PutPagesBulk, NonOwnerGoesToTheRing) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 64);
  StatsWatch w(*pool);
  on_other_thread([&] { pool->put_pages_bulk(pages.data(), pages.size()); });
  EXPECT_MOVED(w, {.ring = 64});
  EXPECT_EQ(pool->levels().ring, 64u);
  EXPECT_CONSISTENT(pool);
  std::vector<Page*> again = alloc_n(*pool, 64);
  EXPECT_MOVED(w, {.fast = 63, .refill = 1});
  EXPECT_EQ(std::set<Page*>(again.begin(), again.end()), std::set<Page*>(pages.begin(), pages.end()));
  put_all(again);
}

// Pages of several pools may be mixed: each returns to its own pool.
TEST(PutPagesBulk, MixedPoolsEachGetTheirOwn) {
  auto a = Pool::create({});
  auto b = Pool::create({});
  std::vector<Page*> mixed;
  for (int i = 0; i < 6; ++i) {
    mixed.push_back(a->alloc_page());
    mixed.push_back(b->alloc_page());
    if (i % 2) mixed.push_back(a->alloc_page());
  }
  StatsWatch wa(*a);
  StatsWatch wb(*b);
  on_other_thread([&] { a->put_pages_bulk(mixed.data(), mixed.size()); });
  EXPECT_MOVED(wa, {.ring = 9});
  EXPECT_MOVED(wb, {.ring = 6});
  EXPECT_EQ(a->inflight(), 0u);
  EXPECT_EQ(b->inflight(), 0u);
  EXPECT_CONSISTENT(a);
  EXPECT_CONSISTENT(b);
}

// One call, two pools: the caller owns one (its pages go to its cache) but
// not the other (its pages go to that pool's ring).
TEST(PutPagesBulk, OwnerAndNonOwnerPoolsInOneCall) {
  auto mine = Pool::create({});
  pagepool::PoolPtr theirs;
  std::vector<Page*> their_pages;
  on_other_thread([&] {  // that thread creates and owns `theirs`, then stops
    theirs = Pool::create({});
    for (int i = 0; i < 4; ++i) their_pages.push_back(theirs->alloc_page());
  });
  std::vector<Page*> mixed;
  for (int i = 0; i < 4; ++i) {
    mixed.push_back(mine->alloc_page());
    mixed.push_back(their_pages[i]);
  }
  StatsWatch wm(*mine);
  StatsWatch wt(*theirs);
  mine->put_pages_bulk(mixed.data(), mixed.size());
  EXPECT_MOVED(wm, {.cached = 4});
  EXPECT_MOVED(wt, {.ring = 4});
  theirs->bind_owner();  // its owner has stopped; adopt it for the checks
  EXPECT_CONSISTENT(mine);
  EXPECT_CONSISTENT(theirs);
}

// Pages with other references left are only dropped, not recycled.
TEST(PutPagesBulk, PagesStillReferencedStayOut) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 6);
  for (int i = 0; i < 6; i += 2) pagepool::get_page(pages[i]);
  StatsWatch w(*pool);
  on_other_thread([&] { pool->put_pages_bulk(pages.data(), pages.size()); });
  EXPECT_MOVED(w, {.ring = 3});
  EXPECT_EQ(pool->inflight(), 3u);
  std::vector<Page*> rest = {pages[0], pages[2], pages[4]};
  pool->put_pages_bulk(rest.data(), rest.size());
  EXPECT_MOVED(w, {.cached = 3});
  EXPECT_CONSISTENT(pool, 0);
}

// More pages than the ring holds: pool_size fit, the rest are released.
TEST(PutPagesBulk, MoreThanTheRingHolds) {
  auto c = make_counted_pool(sized(8));
  std::vector<Page*> pages = alloc_n(*c.pool, 20);
  StatsWatch w(*c.pool);
  on_other_thread([&] { c.pool->put_pages_bulk(pages.data(), pages.size()); });
  EXPECT_MOVED(w, {.ring = 8, .ring_full = 12, .release = 12});
  EXPECT_EQ(c.log->release_pages.load(), 12u);
  EXPECT_EQ(c.log->bad_releases.load(), 0u);
  const auto l = expect_consistent(*c.pool);
  EXPECT_EQ(l.ring, 8u);
  EXPECT_EQ(l.inflight, 0u);
}

// put_pages_bulk is documented as put_page(p, -1, true) for each page: when
// a pool's chain does not fit entirely into the ring's free room, the ring
// takes what fits and the rest is released. With 6 of 8 ring slots used, 4
// single puts would put 2 into the ring and release 2; so does the bulk put.
// (It used to release the whole chain.)
TEST(PutPagesBulk, PartlyFullRingTakesWhatFits) {
  auto pool = Pool::create(sized(8));
  std::vector<Page*> pages = alloc_n(*pool, 10);
  on_other_thread([&] { put_all(std::vector<Page*>(pages.begin(), pages.begin() + 6)); });
  ASSERT_EQ(pool->levels().ring, 6u);
  StatsWatch w(*pool);
  on_other_thread([&] { pool->put_pages_bulk(pages.data() + 6, 4); });
  EXPECT_MOVED(w, {.ring = 2, .ring_full = 2, .release = 2});
  EXPECT_EQ(pool->levels().ring, 8u);
  EXPECT_CONSISTENT(pool);
}

// ---- release_page ------------------------------------------------------------------

// release_page hands the page to the provider (release +1) instead of
// recycling it: no recycle counter moves, the pool holds one page less.
TEST(ReleasePage, LeavesThePoolForTheProvider) {
  auto c = make_counted_pool({});
  Page* p = c.pool->alloc_page();
  void* addr = pagepool::page_address(p);
  StatsWatch w(*c.pool);
  c.pool->release_page(p);
  EXPECT_MOVED(w, {.release = 1});
  EXPECT_EQ(c.log->release_calls.load(), 1u);
  EXPECT_EQ(c.log->release_pages.load(), 1u);
  EXPECT_EQ(c.log->bad_releases.load(), 0u);
  EXPECT_EQ(pagepool::virt_to_page(addr), nullptr);
  const auto l = expect_consistent(*c.pool);
  EXPECT_EQ(l.held, 63u);
  EXPECT_EQ(l.inflight, 0u);
  EXPECT_EQ(l.cache, 63u);
}

// With other references left, release_page only drops the caller's; the
// last holder's release hands the page back. Works from any thread.
TEST(ReleasePage, OnlyTheLastReferenceReleases) {
  auto c = make_counted_pool({});
  Page* p = c.pool->alloc_page();
  pagepool::get_page(p);
  StatsWatch w(*c.pool);
  c.pool->release_page(p);
  EXPECT_MOVED(w, {});
  EXPECT_EQ(c.pool->inflight(), 1u);
  on_other_thread([&] { c.pool->release_page(p); });
  EXPECT_MOVED(w, {.release = 1});
  EXPECT_EQ(c.log->release_pages.load(), 1u);
  EXPECT_CONSISTENT(c.pool, 0);
}

}  // namespace
