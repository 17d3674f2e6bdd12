// Batched remote returns: a last put that cannot go to the owner's cache
// appends the page to the calling thread's batch for that pool (64 entries).
// The batch reaches the return ring when it is full (on the 65th put), on
// flush_thread(), at thread exit, by the thread's periodic scan, when a ninth
// pool evicts it from the thread's table, or when the pool is destroyed; a
// starved owner steals whole batches before asking the provider.
//
// Pages still in a returner's batch belong to the pool: Levels::pending, not
// inflight. recycle.ring does not count them while they wait: it moves when
// the batch is handed to the ring (only by the pages the ring takes; those
// released for lack of room count in ring_full) or when the owner steals
// them; pages leaving the ring for the cache do not make it go down.
// alloc.steal counts only the owner's steals at allocation time, not
// destroy()'s sweep of the batches.
//
// Most tests put from a Worker (test_util.hpp): a thread that stays alive
// between steps, so its batches stay pending until the test says otherwise.
// Levels are read on the owner (the test thread) while the worker waits.
#include <gtest/gtest.h>

#include <pthread.h>

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
using pagepool::Params;
using pagepool::Pool;

std::set<Page*> as_set(const std::vector<Page*>& v) { return {v.begin(), v.end()}; }

// ---- handover when the batch is full ------------------------------------------

// 64 puts fill the batch and stay there; the 65th hands the first 64 to the
// ring in one chain (one refill takes exactly them) and starts a new batch.
TEST(Batch, FullBatchIsHandedOverOnThe65thPut) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 128);  // two bulks, cache empty
  StatsWatch w(*pool);
  Worker t;
  t.run([&] {
    for (int i = 0; i < 64; ++i) pagepool::put_page(pages[i]);
  });
  auto l = expect_consistent(*pool);
  EXPECT_EQ(l.pending, 64u);
  EXPECT_EQ(l.ring, 0u);
  EXPECT_EQ(l.inflight, 64u);
  EXPECT_MOVED(w, {});  // pending: not counted yet

  t.run([&] { pagepool::put_page(pages[64]); });
  l = expect_consistent(*pool);
  EXPECT_EQ(l.ring, 64u);
  EXPECT_EQ(l.pending, 1u);
  EXPECT_EQ(l.inflight, 63u);
  EXPECT_MOVED(w, {.ring = 64});  // the handover counts the 64; the 65th waits

  // The ring holds exactly the first 64: one refill takes them all.
  std::vector<Page*> got(64, nullptr);
  ASSERT_EQ(pool->alloc_pages_bulk(got.data(), got.size()), 64u);
  EXPECT_MOVED(w, {.fast = 63, .refill = 1});
  EXPECT_EQ(as_set(got), as_set(std::vector<Page*>(pages.begin(), pages.begin() + 64)));
  l = expect_consistent(*pool);
  EXPECT_EQ(l.ring, 0u);
  EXPECT_EQ(l.pending, 1u);

  // The 65th is still in the worker's new batch: the starved owner steals it
  // (counted in recycle.ring now, once).
  Page* p = pool->alloc_page();
  EXPECT_EQ(p, pages[64]);
  EXPECT_MOVED(w, {.refill = 1, .steal = 1, .ring = 1});
  got.push_back(p);
  t.exit();
  EXPECT_EQ(pool->levels().ring, 0u);  // the exit had nothing left to hand over
  EXPECT_MOVED(w, {});
  put_all(got);
  put_all(std::vector<Page*>(pages.begin() + 65, pages.end()));
  EXPECT_CONSISTENT(pool);
}

// 130 puts from one thread: two full batches reach the ring, two pages wait.
TEST(Batch, EverySixtyFourPutsOneHandover) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 130);
  Worker t;
  t.run([&] { put_all(pages); });
  const auto l = expect_consistent(*pool);
  EXPECT_EQ(l.ring, 128u);
  EXPECT_EQ(l.pending, 2u);
  EXPECT_EQ(l.inflight, 0u);
}

// ---- flush_thread and thread exit ------------------------------------------------

// flush_thread hands a partial batch over and lets go of the slot; the
// thread's next put starts a new batch. A second flush has nothing to do.
TEST(Batch, FlushThreadHandsOverAPartialBatch) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 15);
  StatsWatch w(*pool);
  Worker t;
  t.run([&] { put_all(std::vector<Page*>(pages.begin(), pages.begin() + 10)); });
  EXPECT_EQ(pool->levels().pending, 10u);
  EXPECT_MOVED(w, {});  // pending: not counted yet
  t.run([] { pagepool::flush_thread(); });
  auto l = expect_consistent(*pool);
  EXPECT_EQ(l.pending, 0u);
  EXPECT_EQ(l.ring, 10u);
  EXPECT_MOVED(w, {.ring = 10});
  t.run([] { pagepool::flush_thread(); });
  EXPECT_EQ(pool->levels().ring, 10u);
  EXPECT_MOVED(w, {});

  t.run([&] { put_all(std::vector<Page*>(pages.begin() + 10, pages.end())); });
  l = expect_consistent(*pool);
  EXPECT_EQ(l.pending, 5u);
  EXPECT_EQ(l.ring, 10u);
  EXPECT_MOVED(w, {});
  t.run([] { pagepool::flush_thread(); });
  l = expect_consistent(*pool);
  EXPECT_EQ(l.pending, 0u);
  EXPECT_EQ(l.ring, 15u);
  EXPECT_MOVED(w, {.ring = 5});
}

// flush_thread covers every pool the thread returns to.
TEST(Batch, FlushThreadCoversEveryPool) {
  auto a = Pool::create({});
  auto b = Pool::create({});
  std::vector<Page*> pa = alloc_n(*a, 3);
  std::vector<Page*> pb = alloc_n(*b, 4);
  Worker t;
  t.run([&] {
    put_all(pa);
    put_all(pb);
  });
  EXPECT_EQ(a->levels().pending, 3u);
  EXPECT_EQ(b->levels().pending, 4u);
  t.run([] { pagepool::flush_thread(); });
  EXPECT_EQ(a->levels().pending, 0u);
  EXPECT_EQ(a->levels().ring, 3u);
  EXPECT_EQ(b->levels().pending, 0u);
  EXPECT_EQ(b->levels().ring, 4u);
  EXPECT_CONSISTENT(a);
  EXPECT_CONSISTENT(b);
}

// A thread that puts 10 pages and exits: its batch reaches the ring at exit.
TEST(Batch, ThreadExitHandsOver) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 10);
  StatsWatch w(*pool);
  std::thread t([&] { put_all(pages); });
  t.join();
  EXPECT_MOVED(w, {.ring = 10});
  const auto l = expect_consistent(*pool);
  EXPECT_EQ(l.pending, 0u);
  EXPECT_EQ(l.ring, 10u);
  EXPECT_EQ(l.inflight, 0u);
}

// The exit flush covers every pool, and runs after the thread's
// thread_local destructors: a page put from one of them is handed over too.
TEST(Batch, ThreadExitHandsOverEveryPoolIncludingPutsFromTlsDestructors) {
  auto a = Pool::create({});
  auto b = Pool::create({});
  std::vector<Page*> pa = alloc_n(*a, 5);
  Page* late = b->alloc_page();
  struct PutAtExit {
    Page* p = nullptr;
    ~PutAtExit() {
      if (p) pagepool::put_page(p);
    }
  };
  std::thread t([&] {
    static thread_local PutAtExit at_exit;
    at_exit.p = late;
    put_all(pa);
  });
  t.join();
  EXPECT_EQ(a->levels().pending, 0u);
  EXPECT_EQ(a->levels().ring, 5u);
  EXPECT_EQ(b->levels().pending, 0u);
  EXPECT_EQ(b->levels().ring, 1u);
  EXPECT_CONSISTENT(a);
  EXPECT_CONSISTENT(b);
}

// The exit flush is a pthread key destructor. A page put from another
// pthread key destructor that runs after it (keys are destroyed in creation
// order, and pagepool's key is created with the first pool) claims a slot
// again; the exit flush re-arms pagepool's key, so glibc runs another
// destructor round and that batch is handed over too (else the page would
// stay pending and the claimed slot would keep the Pool alive: a leak).
TEST(Batch, ThreadExitHandsOverPutsFromLaterPthreadKeyDestructors) {
  auto pool = Pool::create({});  // pagepool's exit key exists from here at the latest
  Page* early = pool->alloc_page();
  Page* late = pool->alloc_page();
  pthread_key_t key;
  ASSERT_EQ(pthread_key_create(&key, [](void* p) { pagepool::put_page(static_cast<Page*>(p)); }), 0);
  std::thread t([&] {
    pagepool::put_page(early);  // claims a slot: pagepool's key is armed
    pthread_setspecific(key, late);
  });
  t.join();
  pthread_key_delete(key);
  const auto l = expect_consistent(*pool);
  EXPECT_EQ(l.pending, 0u) << "a put from a later pthread key destructor was never handed over";
  EXPECT_EQ(l.ring, 2u);
}

// ---- periodic handover -------------------------------------------------------------

// Every 64 of its batched puts a thread hands over any batch whose first page
// has waited 256 of its puts. Here one page of pool a waits while the thread
// returns 255 pages of pool b: still pending after 255 puts in all, handed
// over by the 256th. b's own young batch (63 pages) stays.
TEST(Batch, PeriodicScanHandsOverAnOldBatch) {
  auto a = Pool::create({});
  auto b = Pool::create({});
  Page* old = a->alloc_page();
  std::vector<Page*> pb = alloc_n(*b, 255);
  Worker t;  // a fresh thread: its put count starts at 0
  t.run([&] {
    pagepool::put_page(old);  // put 1
    for (int i = 0; i < 254; ++i) pagepool::put_page(pb[i]);  // puts 2..255
  });
  EXPECT_EQ(a->levels().pending, 1u);
  EXPECT_EQ(a->levels().ring, 0u);
  EXPECT_EQ(b->levels().ring, 192u);
  EXPECT_EQ(b->levels().pending, 62u);
  t.run([&] { pagepool::put_page(pb[254]); });  // put 256: the scan
  EXPECT_EQ(a->levels().pending, 0u);
  EXPECT_EQ(a->levels().ring, 1u);
  EXPECT_EQ(b->levels().ring, 192u);
  EXPECT_EQ(b->levels().pending, 63u);
  EXPECT_CONSISTENT(a);
  EXPECT_CONSISTENT(b);
}

// ---- the owner steals ----------------------------------------------------------------

// With max_inflight and a provider that has no page beyond those out, the
// only pages the owner can get are the ones waiting in a live returner's
// partial batch: it steals them (alloc.steal, counted as a refill, not as
// empty) instead of failing, and the provider is not asked.
TEST(Steal, StarvedOwnerTakesAPartialBatch) {
  Params params;
  params.max_inflight = 64;
  auto c = make_counted_pool(params, {.page_budget = 64});
  std::vector<Page*> pages = alloc_n(*c.pool, 64);  // everything is out
  ASSERT_EQ(c.pool->levels().cache, 0u);
  StatsWatch w(*c.pool);
  EXPECT_EQ(c.pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.limited = 1});

  Worker t;
  std::vector<Page*> back(pages.begin(), pages.begin() + 10);
  t.run([&] { put_all(back); });
  EXPECT_EQ(c.pool->levels().pending, 10u);
  EXPECT_MOVED(w, {});  // pending: not counted yet

  Page* p = c.pool->alloc_page();
  ASSERT_NE(p, nullptr);
  EXPECT_MOVED(w, {.refill = 1, .steal = 10, .ring = 10});  // the steal counts them
  EXPECT_EQ(as_set(back).count(p), 1u);
  EXPECT_EQ(c.log->alloc_calls.load(), 1u);
  auto l = expect_consistent(*c.pool);
  EXPECT_EQ(l.pending, 0u);
  EXPECT_EQ(l.cache, 9u);
  EXPECT_EQ(l.inflight, 55u);

  // The worker's slot goes on: later puts are not mixed up with the stolen
  // ones (nothing handed over twice), and flush hands over only those.
  std::vector<Page*> more(pages.begin() + 10, pages.begin() + 15);
  t.run([&] { put_all(more); });
  EXPECT_MOVED(w, {});
  t.run([] { pagepool::flush_thread(); });
  l = expect_consistent(*c.pool);
  EXPECT_EQ(l.pending, 0u);
  EXPECT_EQ(l.ring, 5u);
  EXPECT_EQ(l.cache, 9u);
  EXPECT_MOVED(w, {.ring = 5});

  std::vector<Page*> held(pages.begin() + 15, pages.end());
  held.push_back(p);
  for (int i = 0; i < 9; ++i) {
    held.push_back(c.pool->alloc_page());
    ASSERT_NE(held.back(), nullptr);
  }
  EXPECT_MOVED(w, {.fast = 9});
  Page* q = c.pool->alloc_page();  // from the ring now
  ASSERT_NE(q, nullptr);
  held.push_back(q);
  EXPECT_EQ(as_set(more).count(q), 1u);
  EXPECT_MOVED(w, {.refill = 1});
  EXPECT_EQ(c.log->alloc_calls.load(), 1u);
  put_all(held);
  l = expect_consistent(*c.pool);
  EXPECT_EQ(l.inflight, 0u);
}

// The owner takes whole batches, from every returner, until it has at least
// a refill's worth (64): three batches of 30 all come.
TEST(Steal, TakesWholeBatchesFromSeveralThreads) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 128);  // cache empty
  StatsWatch w(*pool);
  Worker t[3];
  for (int i = 0; i < 3; ++i)
    t[i].run([&, i] { put_all(std::vector<Page*>(pages.begin() + 30 * i, pages.begin() + 30 * (i + 1))); });
  EXPECT_EQ(pool->levels().pending, 90u);
  EXPECT_MOVED(w, {});  // pending: not counted yet
  std::vector<Page*> got(90, nullptr);
  ASSERT_EQ(pool->alloc_pages_bulk(got.data(), got.size()), 90u);
  EXPECT_MOVED(w, {.fast = 89, .refill = 1, .steal = 90, .ring = 90});
  EXPECT_EQ(as_set(got), as_set(std::vector<Page*>(pages.begin(), pages.begin() + 90)));
  EXPECT_EQ(pool->levels().pending, 0u);
  put_all(got);
  put_all(std::vector<Page*>(pages.begin() + 90, pages.end()));
  EXPECT_CONSISTENT(pool);
}

// The ring goes first: the owner steals only when cache, taken chain and ring
// are all empty.
TEST(Steal, OnlyWhenTheRingIsEmpty) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 64);  // cache empty
  StatsWatch w(*pool);
  Worker t;
  t.run([&] { put_all(std::vector<Page*>(pages.begin(), pages.begin() + 5)); });
  EXPECT_MOVED(w, {});  // pending: not counted yet
  on_other_thread([&] { put_all(std::vector<Page*>(pages.begin() + 5, pages.begin() + 8)); });
  EXPECT_MOVED(w, {.ring = 3});  // handed over at that thread's exit
  ASSERT_EQ(pool->levels().ring, 3u);
  ASSERT_EQ(pool->levels().pending, 5u);
  std::vector<Page*> got = alloc_n(*pool, 3);
  EXPECT_MOVED(w, {.fast = 2, .refill = 1});  // ring -> cache: recycle.ring stays
  EXPECT_EQ(as_set(got), as_set(std::vector<Page*>(pages.begin() + 5, pages.begin() + 8)));
  EXPECT_EQ(pool->levels().pending, 5u);
  Page* p = pool->alloc_page();
  EXPECT_MOVED(w, {.refill = 1, .steal = 5, .ring = 5});
  got.push_back(p);
  put_all(got);
  put_all(std::vector<Page*>(pages.begin() + 8, pages.end()));
  EXPECT_CONSISTENT(pool);
}

// The owner's own non-direct puts wait in its own batch; starved, it takes
// them back from there.
TEST(Steal, OwnerTakesBackItsOwnBatch) {
  auto pool = Pool::create({});
  std::vector<Page*> pages = alloc_n(*pool, 64);  // cache empty
  StatsWatch w(*pool);
  for (int i = 0; i < 4; ++i) pool->put_page(pages[i], -1, false);
  ASSERT_EQ(pool->levels().pending, 4u);
  EXPECT_MOVED(w, {});  // pending: not counted yet
  Page* p = pool->alloc_page();
  EXPECT_MOVED(w, {.refill = 1, .steal = 4, .ring = 4});
  EXPECT_EQ(as_set(std::vector<Page*>(pages.begin(), pages.begin() + 4)).count(p), 1u);
  EXPECT_EQ(pool->levels().pending, 0u);
  pagepool::flush_thread();  // nothing left to hand over
  EXPECT_EQ(pool->levels().ring, 0u);
  EXPECT_MOVED(w, {});
  pages[0] = p;
  for (int i = 1; i < 4; ++i) pages[i] = pool->alloc_page();
  put_all(pages);
  EXPECT_CONSISTENT(pool);
}

// ---- eviction ------------------------------------------------------------------------

// A thread keeps slots for 8 pools; returning to a ninth evicts one, whose
// batch is handed over then. Its next put to the evicted pool claims again.
TEST(Batch, NinthPoolEvictsOneSlot) {
  std::vector<pagepool::PoolPtr> pools;
  std::vector<Page*> pages;
  for (int i = 0; i < 9; ++i) {
    pools.push_back(Pool::create({}));
    pages.push_back(pools.back()->alloc_page());
    pages.push_back(pools.back()->alloc_page());
  }
  Worker t;
  t.run([&] {
    for (int i = 0; i < 8; ++i) pagepool::put_page(pages[2 * i]);
  });
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(pools[i]->levels().pending, 1u) << i;
    EXPECT_EQ(pools[i]->levels().ring, 0u) << i;
  }
  t.run([&] { pagepool::put_page(pages[16]); });
  int evicted = -1, handed = 0;
  for (int i = 0; i < 8; ++i) {
    const auto l = pools[i]->levels();
    EXPECT_EQ(l.pending + l.ring, 1u) << i;
    if (l.ring == 1) {
      ++handed;
      evicted = i;
    }
  }
  EXPECT_EQ(handed, 1) << "exactly one of the eight slots is evicted";
  EXPECT_EQ(pools[8]->levels().pending, 1u);
  ASSERT_GE(evicted, 0);
  // Back to the evicted pool: a new batch (evicting another slot).
  t.run([&] { pagepool::put_page(pages[2 * evicted + 1]); });
  EXPECT_EQ(pools[evicted]->levels().pending, 1u);
  EXPECT_EQ(pools[evicted]->levels().ring, 1u);
  int pending = 0;
  for (auto& p : pools) pending += static_cast<int>(p->levels().pending);
  EXPECT_EQ(pending, 8) << "the table holds 8 batches of one page";
  t.exit();
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(pools[i]->levels().pending, 0u) << i;
    EXPECT_CONSISTENT(pools[i]);
  }
  for (int i = 0; i < 9; ++i)
    if (i != evicted) pagepool::put_page(pages[2 * i + 1]);
}

// ---- a full ring at handover --------------------------------------------------------

// A flush into a ring with room for 10 of 20 pending pages pushes 10 and
// releases 10 (ring_full). recycle.ring counts only the 10 pushed.
TEST(Batch, HandoverIntoANearlyFullRingPushesWhatFits) {
  auto c = make_counted_pool(sized(70));
  std::vector<Page*> pages = alloc_n(*c.pool, 80);
  on_other_thread([&] { put_all(std::vector<Page*>(pages.begin(), pages.begin() + 60)); });
  ASSERT_EQ(c.pool->levels().ring, 60u);
  StatsWatch w(*c.pool);
  Worker t;
  t.run([&] { put_all(std::vector<Page*>(pages.begin() + 60, pages.end())); });
  EXPECT_EQ(c.pool->levels().pending, 20u);
  EXPECT_EQ(c.log->release_pages.load(), 0u);
  EXPECT_MOVED(w, {});  // pending: not counted yet
  t.run([] { pagepool::flush_thread(); });
  EXPECT_MOVED(w, {.ring = 10, .ring_full = 10, .release = 10});
  EXPECT_EQ(c.log->release_pages.load(), 10u);
  EXPECT_EQ(c.log->bad_releases.load(), 0u);
  const auto l = expect_consistent(*c.pool);
  EXPECT_EQ(l.ring, 70u);
  EXPECT_EQ(l.pending, 0u);
  EXPECT_EQ(l.held, 118u);
  EXPECT_EQ(l.inflight, 0u);
}

// Same on the 65th put: the full batch of 64 meets a ring with room for 40.
// recycle.ring counts the 40 pushed; the 24 released count only in
// ring_full; the 65th, pending, counts nowhere yet.
TEST(Batch, FullBatchIntoANearlyFullRingPushesWhatFits) {
  auto c = make_counted_pool(sized(100));
  std::vector<Page*> pages = alloc_n(*c.pool, 125);
  on_other_thread([&] { put_all(std::vector<Page*>(pages.begin(), pages.begin() + 60)); });
  ASSERT_EQ(c.pool->levels().ring, 60u);
  StatsWatch w(*c.pool);
  Worker t;
  t.run([&] { put_all(std::vector<Page*>(pages.begin() + 60, pages.begin() + 124)); });  // 64 puts
  EXPECT_MOVED(w, {});  // all pending
  EXPECT_EQ(c.log->release_pages.load(), 0u);
  t.run([&] { pagepool::put_page(pages[124]); });  // the 65th: the handover
  EXPECT_MOVED(w, {.ring = 40, .ring_full = 24, .release = 24});
  EXPECT_EQ(c.log->release_pages.load(), 24u);
  const auto l = expect_consistent(*c.pool);
  EXPECT_EQ(l.ring, 100u);
  EXPECT_EQ(l.pending, 1u);
  EXPECT_EQ(l.inflight, 0u);
}

// ---- put_pages_bulk --------------------------------------------------------------------

// Pages of three pools mixed in one call from a non-owner go straight to
// each pool's ring (one chain per pool), not through the caller's batches:
// nothing is pending while the caller is still alive. A chain larger than
// the ring's room is cut like single puts would be.
TEST(PutPagesBulk, ThreePoolsMixedGoStraightToEachRing) {
  auto a = Pool::create({});
  auto b = Pool::create({});
  auto c = make_counted_pool(sized(2));
  std::vector<Page*> mixed;
  for (int i = 0; i < 7; ++i) {
    if (i < 5) mixed.push_back(a->alloc_page());
    mixed.push_back(b->alloc_page());
    if (i < 3) mixed.push_back(c.pool->alloc_page());
  }
  StatsWatch wa(*a), wb(*b), wc(*c.pool);
  Worker t;
  t.run([&] { b->put_pages_bulk(mixed.data(), mixed.size()); });
  EXPECT_MOVED(wa, {.ring = 5});
  EXPECT_MOVED(wb, {.ring = 7});
  EXPECT_MOVED(wc, {.ring = 2, .ring_full = 1, .release = 1});
  EXPECT_EQ(a->levels().ring, 5u);
  EXPECT_EQ(b->levels().ring, 7u);
  EXPECT_EQ(c.pool->levels().ring, 2u);
  EXPECT_EQ(a->levels().pending + b->levels().pending + c.pool->levels().pending, 0u);
  EXPECT_EQ(c.log->release_pages.load(), 1u);
  EXPECT_CONSISTENT(a);
  EXPECT_CONSISTENT(b);
  EXPECT_CONSISTENT(c.pool);
}

// ---- teardown -----------------------------------------------------------------------------

// Batches pending in several live threads' slots at destroy: destroy takes
// them, releases them with everything else at once, and (nothing being out)
// frees the provider. The threads' later exit only lets go of their slots.
TEST(BatchTeardown, DestroyTakesEveryPendingBatch) {
  auto c = make_counted_pool({});
  std::vector<Page*> pages = alloc_n(*c.pool, 15);
  Worker t[3];
  for (int i = 0; i < 3; ++i)
    t[i].run([&, i] { put_all(std::vector<Page*>(pages.begin() + 5 * i, pages.begin() + 5 * (i + 1))); });
  ASSERT_EQ(c.pool->levels().pending, 15u);
  ASSERT_EQ(c.pool->levels().inflight, 0u);
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_EQ(c.log->release_pages.load(), 64u);
  EXPECT_EQ(c.log->bad_releases.load(), 0u);
  for (auto& w : t) w.exit();
  EXPECT_EQ(c.log->release_pages.load(), 64u);
}

// A thread whose slot holds a batch at destroy puts again afterwards: the
// page goes into its existing slot, the thread sees the pool closed, gives
// the slot up and the page is released (released_refcnt). The pool lives on
// (readable through a page still out) until the last page is back.
TEST(BatchTeardown, PutAfterDestroyFromAThreadWithASlot) {
  auto c = make_counted_pool({});
  std::vector<Page*> pages = alloc_n(*c.pool, 4);
  Pool* raw = c.pool.get();
  Worker t;
  t.run([&] { pagepool::put_page(pages[0]); });
  ASSERT_EQ(c.pool->levels().pending, 1u);
  const pagepool::Stats before = c.pool->stats();
  c.pool.reset();  // releases the 60 cached and the pending one
  EXPECT_EQ(c.log->release_pages.load(), 61u);
  EXPECT_FALSE(c.provider.expired());
  const pagepool::Stats s0 = raw->stats();
  // destroy()'s sweep of the batches is no steal and no handover.
  expect_delta(before, s0, {.release = 61});
  t.run([&] { pagepool::put_page(pages[1]); });
  EXPECT_EQ(c.log->release_pages.load(), 62u);
  const pagepool::Stats s1 = raw->stats();
  expect_delta(s0, s1, {.released_refcnt = 1, .release = 1});
  t.run([&] { raw->put_page(pages[2], -1, false); });  // claims anew: same outcome
  EXPECT_EQ(c.log->release_pages.load(), 63u);
  EXPECT_FALSE(c.provider.expired());
  t.run([&] { pagepool::put_page(pages[3]); });  // the last page frees the provider
  EXPECT_TRUE(c.provider.expired());
  EXPECT_EQ(c.log->release_pages.load(), c.log->alloc_pages.load());
  EXPECT_EQ(c.log->bad_releases.load(), 0u);
}

}  // namespace
