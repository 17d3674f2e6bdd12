// The provider contract and the built-in providers.
//
// Contract (a counting provider watches every call):
//  - kDmaMap: map runs exactly once when a page enters the pool from its
//    provider, unmap exactly once when it leaves; recycling never maps;
//    on every teardown path.
//  - kDmaSyncDev: a fresh mapping is synced once over the whole window
//    [offset, offset + max_len); a recycle syncs only
//    [offset, offset + min(dma_sync_size, max_len)) (-1: max_len).
//  - a non-owner put is batched per thread and handed over on
//    flush_thread() or thread exit; the owner can steal a live thread's batch.
// Providers: anonymous (2 MiB-aligned chunks, THP option), hugetlb (needs
// reserved huge pages; the test reserves some as root and restores the
// previous count), memfd (pages live in a file another mapping or process
// can see).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "pagepool/pagepool.hpp"
#include "pagepool/providers/hugetlb.hpp"
#include "pagepool/providers/memfd.hpp"
#include "test_support.hpp"

namespace {

using namespace ppprov;
using pagepool::kDmaMap;
using pagepool::kDmaSyncDev;
using pagepool::kPageSize;
using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;

constexpr std::uint32_t kOffset = 256;
constexpr std::uint32_t kMaxLen = 1500;

Params dma_params(std::uint32_t flags, std::uint32_t pool_size = 1024) {
  Params p;
  p.flags = flags;
  p.pool_size = pool_size;
  if (flags & kDmaSyncDev) {
    p.offset = kOffset;
    p.max_len = kMaxLen;
  }
  return p;
}

// ============================================================================
// map / unmap
// ============================================================================

// Pages enter the pool only through refills from the provider (64 per bulk
// at order 0), and each is mapped then, once. Every recycle path after that
// -- the owner's cache, a cache spill into the ring, a non-owner batch handed
// over at thread exit or flush_thread, the owner stealing a live thread's
// batch, put_pages_bulk -- brings the page back without mapping it again.
TEST(ProviderContract, MapOncePerEntryRecyclingNeverMaps) {
  auto c = make_counted_pool(dma_params(kDmaMap));
  std::vector<Page*> pages = alloc_n(*c.pool, 256);  // 4 refills, cache empty
  ASSERT_EQ(pages.size(), 256u);
  EXPECT_EQ(c.log->map_calls.load(), 256u);
  EXPECT_EQ(c.log->alloc_pages.load(), 256u);
  for (Page* p : pages) EXPECT_EQ(pagepool::page_dma_addr(p), c.log->dma_of(p).value_or(0));

  for (int round = 0; round < 3; ++round) {
    // The owner's cache, then a spill: 129 direct puts overflow the cache.
    put_all(slice(pages, 0, 129));
    // A non-owner thread's batch, handed over at its exit.
    on_other_thread([&] { put_all(slice(pages, 129, 170)); });
    // Another thread's batch, handed over by flush_thread().
    on_other_thread([&] {
      put_all(slice(pages, 170, 200));
      pagepool::flush_thread();
    });
    // The owner's own non-direct put (batched like a remote one).
    for (std::size_t i = 200; i < 210; ++i) c.pool->put_page(pages[i], -1, false);
    // put_pages_bulk, from the owner and from another thread.
    c.pool->put_pages_bulk(&pages[210], 20);
    on_other_thread([&] { c.pool->put_pages_bulk(&pages[230], 6); });
    // A live thread's batch the owner must steal.
    Parked parked;
    parked.run([&] { put_all(slice(pages, 236, 256)); });
    EXPECT_CONSISTENT(c.pool, 0);

    // Everything comes back out of the pool without a new page entering.
    std::vector<Page*> again = alloc_n(*c.pool, 256);
    ASSERT_EQ(again.size(), 256u);
    EXPECT_EQ(std::set<Page*>(again.begin(), again.end()),
              std::set<Page*>(pages.begin(), pages.end()));
    pages = again;
    EXPECT_EQ(c.log->map_calls.load(), 256u) << "round " << round;
    EXPECT_EQ(c.log->unmap_calls.load(), 0u);
    EXPECT_EQ(c.log->alloc_pages.load(), 256u);
    for (Page* p : pages) EXPECT_EQ(pagepool::page_dma_addr(p), c.log->dma_of(p).value_or(0));
    expect_mapping_balanced(*c.pool, *c.log);
    parked.exit();
  }
  put_all(pages);
  pagepool::flush_thread();
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_EQ(c.log->unmap_calls.load(), 256u);
  EXPECT_ALL_RETURNED(c.log);
  // Refills (alloc_bulk, map) ran on the owner only.
  EXPECT_EQ(c.log->alloc_threads, std::set<std::thread::id>{std::this_thread::get_id()});
  EXPECT_EQ(c.log->map_threads, std::set<std::thread::id>{std::this_thread::get_id()});
}

// Without kDmaMap the provider is never asked to map, unmap or sync.
TEST(ProviderContract, NoMapWithoutTheFlag) {
  auto c = make_counted_pool(dma_params(0), {.needs_sync = true});
  std::vector<Page*> pages = alloc_n(*c.pool, 100);
  c.pool->release_page(pages.back());
  pages.pop_back();
  on_other_thread([&] { put_all(slice(pages, 0, 50)); });
  put_all(slice(pages, 50, 99));
  c.pool.reset();
  EXPECT_EQ(c.log->map_calls.load(), 0u);
  EXPECT_EQ(c.log->unmap_calls.load(), 0u);
  EXPECT_TRUE(c.log->take_syncs().empty());
  EXPECT_ALL_RETURNED(c.log);
}

// Every way a page leaves a live pool unmaps it once: release_page, a put
// into a full ring, a cache spill into a full ring.
TEST(ProviderContract, UnmapOncePerExitFromALivePool) {
  auto c = make_counted_pool(dma_params(kDmaMap, 8));
  std::vector<Page*> pages = alloc_n(*c.pool, 192);  // 3 refills, cache empty
  c.pool->release_page(pages[0]);
  EXPECT_EQ(c.log->unmap_calls.load(), 1u);
  EXPECT_FALSE(c.log->state_of(pages[0]).out);
  expect_mapping_balanced(*c.pool, *c.log);

  on_other_thread([&] { put_all(slice(pages, 1, 21)); });  // 8 fit the ring, 12 released
  EXPECT_EQ(c.log->unmap_calls.load(), 13u);
  expect_mapping_balanced(*c.pool, *c.log);

  put_all(slice(pages, 21, 150));  // 129 direct puts: the spill finds the ring full
  EXPECT_EQ(c.log->unmap_calls.load(), 13u + 64u);
  expect_mapping_balanced(*c.pool, *c.log);
  EXPECT_CONSISTENT(c.pool, 42);

  put_all(slice(pages, 150, 192));
  c.pool.reset();
  EXPECT_EQ(c.log->unmap_calls.load(), 192u);
  EXPECT_ALL_RETURNED(c.log);
}

// ============================================================================
// sync_for_device
// ============================================================================

Params sync_params() { return dma_params(kDmaMap | kDmaSyncDev); }

// A fresh mapping gives the device the whole window once per page, at the
// refill that maps it; allocating does not sync.
TEST(ProviderSync, MapSyncsTheWholeWindowOncePerPage) {
  auto c = make_counted_pool(sync_params(), {.needs_sync = true});
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  auto s = c.log->take_syncs();
  ASSERT_EQ(s.size(), 64u);
  std::set<const Page*> synced;
  for (const SyncCall& k : s) {
    EXPECT_EQ(k.offset, kOffset);
    EXPECT_EQ(k.len, kMaxLen);
    synced.insert(k.page);
  }
  EXPECT_EQ(synced, std::set<const Page*>(pages.begin(), pages.end()));
  Page* p = c.pool->alloc_page();  // a second refill: 64 more, one sync each
  EXPECT_EQ(c.log->take_syncs().size(), 64u);
  pagepool::put_page(p);
  c.log->take_syncs();
  p = c.pool->alloc_page();  // from the cache: no sync
  EXPECT_TRUE(c.log->take_syncs().empty());
  pages.push_back(p);
  put_all(pages);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// A recycle syncs [offset, offset + min(dma_sync_size, max_len)), -1 (or any
// negative size) meaning max_len, 0 meaning nothing; whichever path the
// page takes back.
TEST(ProviderSync, RecycleSyncsOnlyTheWindowTheDeviceMayHaveWritten) {
  auto c = make_counted_pool(sync_params(), {.needs_sync = true});
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  c.log->take_syncs();

  struct Case {
    std::int32_t size;
    std::uint32_t want;  // 0: no sync
  };
  const Case cases[] = {{-1, kMaxLen}, {0, 0},        {1, 1},
                        {100, 100},    {kMaxLen, kMaxLen}, {kMaxLen + 1, kMaxLen},
                        {INT32_MAX, kMaxLen}};
  std::size_t i = 0;
  for (const Case& k : cases) {
    for (bool direct : {true, false}) {
      SCOPED_TRACE("dma_sync_size " + std::to_string(k.size) + (direct ? " direct" : " batched"));
      Page* p = pages[i++];
      c.pool->put_page(p, k.size, direct);
      auto s = c.log->take_syncs();
      if (k.want == 0) {
        EXPECT_TRUE(s.empty());
      } else {
        ASSERT_EQ(s.size(), 1u);
        EXPECT_EQ(s[0].page, p);
        EXPECT_EQ(s[0].offset, kOffset);
        EXPECT_EQ(s[0].len, k.want);
      }
    }
  }
  // From another thread: the putting thread syncs, before batching.
  Page* remote = pages[i++];
  on_other_thread([&] { c.pool->put_page(remote, 64, false); });
  auto s = c.log->take_syncs();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].page, remote);
  EXPECT_EQ(s[0].len, 64u);

  // put_page(Page*), recycle_direct, put_pages_bulk: max_len.
  pagepool::put_page(pages[i++]);
  c.pool->recycle_direct(pages[i++]);
  c.pool->put_pages_bulk(&pages[i], 3);
  i += 3;
  Page* const* bulk = &pages[i];
  on_other_thread([&] { c.pool->put_pages_bulk(bulk, 3); });
  i += 3;
  s = c.log->take_syncs();
  ASSERT_EQ(s.size(), 8u);
  for (const SyncCall& k : s) {
    EXPECT_EQ(k.offset, kOffset);
    EXPECT_EQ(k.len, kMaxLen);
  }
  // release_page gives the page back to the provider: no sync.
  c.pool->release_page(pages[i++]);
  EXPECT_TRUE(c.log->take_syncs().empty());

  // A non-last put syncs nothing; the last one does.
  Page* shared = pages[i++];
  pagepool::get_page(shared);
  c.pool->put_page(shared, 10, true);
  EXPECT_TRUE(c.log->take_syncs().empty());
  c.pool->put_page(shared, 20, true);
  s = c.log->take_syncs();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].len, 20u);

  put_all(slice(pages, i, pages.size()));
  pagepool::flush_thread();
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// Fragments: the page is synced once, when its last fragment is back and
// carving is over -- not once per fragment.
TEST(ProviderSync, AFragmentedPageIsSyncedOnceWhenItRecycles) {
  auto c = make_counted_pool(sync_params(), {.needs_sync = true});
  std::uint32_t off[4];
  Page* f[4];
  for (int k = 0; k < 4; ++k) f[k] = c.pool->alloc_frag(1024, &off[k]);
  ASSERT_NE(f[0], nullptr);
  for (int k = 1; k < 4; ++k) EXPECT_EQ(f[k], f[0]);
  c.log->take_syncs();
  for (int k = 0; k < 4; ++k) c.pool->put_page(f[k], 10, true);
  EXPECT_TRUE(c.log->take_syncs().empty()) << "the page is still being carved";
  std::uint32_t o = 0;
  Page* next = c.pool->alloc_frag(1024, &o);  // ends carving: the page recycles
  ASSERT_NE(next, nullptr);
  auto s = c.log->take_syncs();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].page, f[0]);
  EXPECT_EQ(s[0].len, kMaxLen);
  pagepool::put_page(next);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// No sync calls at all when the provider says it does not need them, or
// when the pool did not ask for kDmaSyncDev.
TEST(ProviderSync, NoSyncWhenNotNeededOrNotAskedFor) {
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant == 0 ? "needs_sync false" : "no kDmaSyncDev");
    auto c = variant == 0 ? make_counted_pool(sync_params(), {.needs_sync = false})
                          : make_counted_pool(dma_params(kDmaMap), {.needs_sync = true});
    std::vector<Page*> pages = alloc_n(*c.pool, 100);
    on_other_thread([&] { put_all(slice(pages, 0, 50)); });
    for (std::size_t i = 50; i < 100; ++i) c.pool->put_page(pages[i], 100, true);
    put_all(alloc_n(*c.pool, 100));
    c.pool.reset();
    EXPECT_TRUE(c.log->take_syncs().empty());
    EXPECT_ALL_RETURNED(c.log);
  }
}

// ============================================================================
// non-owner returns: batched per thread, handed over on flush or exit
// ============================================================================

TEST(Returns, NonOwnerPutIsBatchedUntilFlushThread) {
  auto c = make_counted_pool(dma_params(kDmaMap));
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  Parked t;
  t.run([&] { put_all(slice(pages, 0, 10)); });
  pagepool::Levels l = expect_consistent(*c.pool, 54);
  EXPECT_EQ(l.pending, 10u);
  EXPECT_EQ(l.ring, 0u);
  t.run([] { pagepool::flush_thread(); });
  l = expect_consistent(*c.pool, 54);
  EXPECT_EQ(l.pending, 0u);
  EXPECT_EQ(l.ring, 10u);
  t.exit();
  put_all(slice(pages, 10, 64));
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

TEST(Returns, NonOwnerBatchIsHandedOverAtThreadExit) {
  auto c = make_counted_pool(dma_params(kDmaMap));
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  on_other_thread([&] { put_all(slice(pages, 0, 10)); });
  const pagepool::Levels l = expect_consistent(*c.pool, 54);
  EXPECT_EQ(l.pending, 0u);
  EXPECT_EQ(l.ring, 10u);
  put_all(slice(pages, 10, 64));
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// A starved owner takes a live thread's batch itself rather than asking the
// provider.
TEST(Returns, StarvedOwnerStealsALiveThreadsBatch) {
  auto c = make_counted_pool(dma_params(kDmaMap));
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  Parked t;
  t.run([&] { put_all(slice(pages, 0, 10)); });
  StatsWatch w(*c.pool);
  Page* p = c.pool->alloc_page();
  ASSERT_NE(p, nullptr);
  EXPECT_MOVED(w, {.refill = 1, .steal = 10, .ring = 10});
  EXPECT_EQ(c.log->alloc_pages.load(), 64u);
  EXPECT_CONSISTENT(c.pool, 55);
  t.exit();
  pagepool::put_page(p);
  put_all(slice(pages, 10, 64));
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// ============================================================================
// every teardown path, with and without mapping and syncing
// ============================================================================

struct Mode {
  const char* name;
  std::uint32_t flags;
  bool needs_sync;
};

class Teardown : public ::testing::TestWithParam<Mode> {
 protected:
  CountedPool make(std::uint32_t pool_size = 1024) {
    return make_counted_pool(dma_params(GetParam().flags, pool_size),
                             {.needs_sync = GetParam().needs_sync});
  }
};

TEST_P(Teardown, UnusedPool) {
  auto c = make();
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_EQ(c.log->alloc_calls.load(), 0u);
  EXPECT_ALL_RETURNED(c.log);
}

TEST_P(Teardown, NothingOut) {
  auto c = make();
  put_all(alloc_n(*c.pool, 100));
  EXPECT_EQ(c.log->release_pages.load(), 0u);
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_EQ(c.log->alloc_pages.load(), 128u);
  EXPECT_ALL_RETURNED(c.log);
}

// Cache, ring and the owner's taken chain at once.
TEST_P(Teardown, PagesInCacheRingAndTakenChain) {
  auto c = make();
  std::vector<Page*> pages = alloc_n(*c.pool, 192);
  on_other_thread([&] { put_all(slice(pages, 0, 100)); });
  Page* p = c.pool->alloc_page();  // takes the ring's chain: 36 stay taken
  ASSERT_NE(p, nullptr);
  pagepool::put_page(p);
  on_other_thread([&] { put_all(slice(pages, 100, 150)); });
  put_all(slice(pages, 150, 192));
  const pagepool::Levels l = expect_consistent(*c.pool, 0);
  EXPECT_EQ(l.ring, 86u);
  EXPECT_EQ(l.cache, 106u);
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// Pages out at destroy, returned later on the thread that owned the pool:
// each last put releases its page (unmapped once); the provider lives until
// the last.
TEST_P(Teardown, PagesOutReturnedByTheFormerOwner) {
  auto c = make();
  std::vector<Page*> pages = alloc_n(*c.pool, 100);
  put_all(slice(pages, 0, 60));
  c.pool.reset();
  EXPECT_FALSE(c.provider.expired());
  EXPECT_EQ(c.log->release_pages.load(), 128u - 40u);
  EXPECT_EQ(c.log->out_now(), 40u);
  for (std::size_t i = 60; i < 100; ++i) {
    EXPECT_TRUE(page_holds(pages[i], static_cast<unsigned char>(i)));
    EXPECT_FALSE(c.provider.expired());
    if (i % 2)
      pagepool::put_page(pages[i]);
    else
      pagepool::page_pool(pages[i])->put_page(pages[i], 64, true);
    EXPECT_EQ(c.log->release_pages.load(), 128u - 40u + (i - 59));
  }
  EXPECT_TRUE(c.provider.expired());
  pagepool::flush_thread();
  EXPECT_ALL_RETURNED(c.log);
}

// Pages out at destroy, returned by several other threads at once.
TEST_P(Teardown, PagesOutReturnedByOtherThreads) {
  auto c = make();
  std::vector<Page*> pages = alloc_n(*c.pool, 200);
  c.pool.reset();
  EXPECT_FALSE(c.provider.expired());
  std::vector<std::thread> ts;
  for (std::size_t k = 0; k < 4; ++k)
    ts.emplace_back([&, k] {
      for (std::size_t i = k; i < pages.size(); i += 4) pagepool::put_page(pages[i]);
    });
  for (auto& t : ts) t.join();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// A live thread's pending batch at destroy: destroy claims it and releases
// the pages; the thread's later flush finds nothing to hand over.
TEST_P(Teardown, PendingBatchOfALiveThread) {
  auto c = make();
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  Parked t;
  t.run([&] { put_all(slice(pages, 0, 30)); });
  Parked u;
  u.run([&] {
    for (std::size_t i = 30; i < 64; ++i) c.pool->put_page(pages[i], 32, false);
  });
  EXPECT_EQ(c.pool->levels().pending, 64u);
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
  t.run([] { pagepool::flush_thread(); });
  t.exit();
  u.exit();  // exits without flushing first
  EXPECT_ALL_RETURNED(c.log);
}

// The owner's own non-direct puts are batched too; destroy claims them.
TEST_P(Teardown, OwnersOwnPendingBatch) {
  auto c = make();
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  for (Page* p : pages) c.pool->put_page(p, -1, false);
  EXPECT_EQ(c.pool->levels().pending, 64u);
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  pagepool::flush_thread();
  EXPECT_ALL_RETURNED(c.log);
}

// A thread with a pending batch and pages still out at destroy: the batch
// goes at destroy, each later put releases at once, and its exit hands over
// nothing twice.
TEST_P(Teardown, PendingBatchAndPagesOutOnALiveThread) {
  auto c = make();
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  Parked t;
  t.run([&] { put_all(slice(pages, 0, 20)); });
  c.pool.reset();
  EXPECT_EQ(c.log->release_pages.load(), 20u);
  EXPECT_FALSE(c.provider.expired());
  t.run([&] {
    for (std::size_t i = 20; i < 40; ++i) {
      pagepool::put_page(pages[i]);
      EXPECT_EQ(c.log->release_pages.load(), i + 1);
    }
  });
  t.exit();
  on_other_thread([&] { put_all(slice(pages, 40, 64)); });
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// Threads returning pages while the owner destroys the pool.
TEST_P(Teardown, ConcurrentReturnsDuringDestroy) {
  for (int round = 0; round < 5; ++round) {
    auto c = make(64);
    std::vector<Page*> pages = alloc_n(*c.pool, 512);
    std::atomic<int> started{0};
    std::vector<std::thread> ts;
    for (std::size_t k = 0; k < 3; ++k)
      ts.emplace_back([&, k] {
        started.fetch_add(1);
        for (std::size_t i = k; i < pages.size(); i += 3) {
          if (i % 7 == 0) pagepool::flush_thread();
          pagepool::put_page(pages[i]);
        }
      });
    while (started.load() < 3) std::this_thread::yield();
    c.pool.reset();
    for (auto& t : ts) t.join();
    EXPECT_TRUE(c.provider.expired());
    EXPECT_ALL_RETURNED(c.log);
  }
}

// The page being carved, with fragments out: it leaves at its last
// fragment's put, from the owner or another thread, once.
TEST_P(Teardown, CarvingPageWithFragmentsOut) {
  for (bool last_on_other : {false, true}) {
    auto c = make();
    std::uint32_t off = 0;
    Page* f[3];
    for (auto& x : f) x = c.pool->alloc_frag(512, &off);
    ASSERT_NE(f[0], nullptr);
    ASSERT_EQ(f[1], f[0]);
    ASSERT_EQ(f[2], f[0]);
    c.pool.reset();
    EXPECT_EQ(c.log->release_pages.load(), 63u);
    pagepool::put_page(f[0]);
    on_other_thread([&] { pagepool::put_page(f[1]); });
    EXPECT_FALSE(c.provider.expired());
    EXPECT_TRUE(c.log->state_of(f[2]).out);
    if (last_on_other)
      on_other_thread([&] { pagepool::put_page(f[2]); });
    else
      pagepool::put_page(f[2]);
    EXPECT_TRUE(c.provider.expired());
    pagepool::flush_thread();
    EXPECT_ALL_RETURNED(c.log);
  }
}

// The page being carved with every fragment back (idle): released at
// destroy.
TEST_P(Teardown, IdleCarvingPage) {
  auto c = make();
  std::uint32_t off = 0;
  Page* f = c.pool->alloc_frag(512, &off);
  ASSERT_NE(f, nullptr);
  pagepool::put_page(f);
  EXPECT_EQ(expect_consistent(*c.pool, 0).carving_idle, 1u);
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// Everything at once: cache, ring, a live thread's batch, the owner's batch,
// pages out on two threads, a carved page with a fragment out.
TEST_P(Teardown, EverythingAtOnce) {
  auto c = make(100);
  std::vector<Page*> pages = alloc_n(*c.pool, 300);
  std::uint32_t off = 0;
  Page* frag = c.pool->alloc_frag(100, &off);
  ASSERT_NE(frag, nullptr);
  on_other_thread([&] { put_all(slice(pages, 0, 120)); });  // ring 100, 20 released
  Parked t;
  t.run([&] { put_all(slice(pages, 120, 150)); });
  for (std::size_t i = 150; i < 160; ++i) c.pool->put_page(pages[i], 0, false);
  put_all(slice(pages, 160, 200));
  EXPECT_CONSISTENT(c.pool, 101);
  c.pool.reset();
  EXPECT_FALSE(c.provider.expired());
  on_other_thread([&] { put_all(slice(pages, 200, 250)); });
  t.run([&] { put_all(slice(pages, 250, 300)); });
  EXPECT_FALSE(c.provider.expired());
  pagepool::put_page(frag);
  EXPECT_TRUE(c.provider.expired());
  t.exit();
  pagepool::flush_thread();
  EXPECT_ALL_RETURNED(c.log);
}

INSTANTIATE_TEST_SUITE_P(Modes, Teardown,
                         ::testing::Values(Mode{"plain", 0, false}, Mode{"map", kDmaMap, false},
                                           Mode{"map_sync", kDmaMap | kDmaSyncDev, true}),
                         [](const auto& info) { return std::string(info.param.name); });

// ============================================================================
// anonymous memory
// ============================================================================

constexpr std::uintptr_t k2M = std::uintptr_t{2} << 20;

std::uintptr_t addr_of(const Page* p) { return reinterpret_cast<std::uintptr_t>(pagepool::page_address(p)); }

// Every byte of a pool page resolves to its descriptor.
void expect_virt_to_page(Page* p) {
  auto* b = static_cast<std::byte*>(pagepool::page_address(p));
  const std::size_t n = pagepool::page_size(p);
  EXPECT_EQ(pagepool::virt_to_page(b), p);
  EXPECT_EQ(pagepool::virt_to_page(b + n / 2), p);
  EXPECT_EQ(pagepool::virt_to_page(b + n - 1), p);
}

class Anon : public ::testing::TestWithParam<unsigned> {};

// Chunks are 2 MiB-aligned and at least 4 MiB; pages are aligned to their
// size, the first page of a chunk at its start; virt_to_page resolves every
// byte; the pages of a refill are contiguous in one chunk.
TEST_P(Anon, PagesComeFrom2MiBAlignedChunks) {
  const unsigned order = GetParam();
  auto prov = std::make_shared<pagepool::AnonProvider>(order);
  Params params;
  params.order = order;
  params.provider = prov;
  auto pool = Pool::create(params);
  const std::size_t bytes = kPageSize << order;
  const std::size_t per_refill = std::max<std::size_t>(1, 64 >> order);
  std::vector<Page*> pages = alloc_n(*pool, per_refill * 3);
  ASSERT_EQ(pages.size(), per_refill * 3);
  EXPECT_EQ(prov->reserved_bytes() % (std::size_t{4} << 20), 0u);
  EXPECT_GE(prov->reserved_bytes(), std::size_t{4} << 20);
  // Allocation is LIFO from the cache; the lowest address of the first
  // refill is the chunk's first byte.
  std::uintptr_t lowest = UINTPTR_MAX;
  for (std::size_t i = 0; i < per_refill; ++i) lowest = std::min(lowest, addr_of(pages[i]));
  EXPECT_EQ(lowest % k2M, 0u) << "chunk start not 2 MiB-aligned";
  for (Page* p : pages) {
    // Aligned to the page size up to 2 MiB (an order-10 page is only
    // 2 MiB-aligned: chunks are).
    EXPECT_EQ(addr_of(p) % std::min<std::size_t>(bytes, k2M), 0u);
    EXPECT_EQ(pagepool::page_size(p), bytes);
    EXPECT_EQ(pagepool::page_nid(p), -1);
    expect_virt_to_page(p);
  }
  std::vector<std::uintptr_t> first(per_refill);
  for (std::size_t i = 0; i < per_refill; ++i) first[i] = addr_of(pages[i]);
  std::sort(first.begin(), first.end());
  for (std::size_t i = 1; i < first.size(); ++i) EXPECT_EQ(first[i] - first[i - 1], bytes);
  // Addresses that are not pool pages resolve to nothing.
  int local = 0;
  EXPECT_EQ(pagepool::virt_to_page(&local), nullptr);
  EXPECT_EQ(pagepool::virt_to_page(nullptr), nullptr);
  for (std::size_t i = 0; i < pages.size(); ++i)
    EXPECT_TRUE(page_holds(pages[i], static_cast<unsigned char>(i)));
  put_all(pages);
  EXPECT_CONSISTENT(pool, 0);
}

INSTANTIATE_TEST_SUITE_P(Orders, Anon, ::testing::Values(0u, 1u, 3u, 9u, 10u));

// thp: the chunks are advised for transparent huge pages (VmFlags "hg");
// nothing else changes. Without it, no advice.
TEST(AnonThp, ThpOptionWorks) {
  for (bool thp : {false, true}) {
    SCOPED_TRACE(thp ? "thp" : "no thp");
    auto prov = std::make_shared<pagepool::AnonProvider>(0, -1, thp);
    Params params;
    params.provider = prov;
    auto pool = Pool::create(params);
    std::vector<Page*> pages = alloc_n(*pool, 1024);
    ASSERT_EQ(pages.size(), 1024u);
    for (std::size_t i = 0; i < pages.size(); ++i)
      EXPECT_TRUE(page_holds(pages[i], static_cast<unsigned char>(i)));
    for (Page* p : pages) expect_virt_to_page(p);
    const std::string block = smaps_block(pagepool::page_address(pages[0]));
    ASSERT_FALSE(block.empty());
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0) {
      EXPECT_EQ(smaps_vmflag(block, "hg"), thp) << block;  // MADV_HUGEPAGE was applied
    }
    put_all(pages);
    put_all(alloc_n(*pool, 1024));  // recycled
    EXPECT_EQ(pool->stats().hold, 1024u);
    EXPECT_CONSISTENT(pool, 0);
  }
}

// ============================================================================
// hugetlb
// ============================================================================

// Without huge pages reserved the constructor throws a system_error that
// tells the user what to do.
TEST(Hugetlb, ThrowsWithoutReservedPagesNamingNrHugepages) {
  HugePagesGuard guard(0);
  if (!guard.ok()) {
    // Not root: only meaningful if there are no huge pages to be had anyway.
    const auto over = read_long(HugePagesGuard::kOver);
    if (pagepool::HugetlbProvider::free_huge_pages() != 0 || over.value_or(1) != 0)
      GTEST_SKIP() << guard.why();
  }
  EXPECT_EQ(pagepool::HugetlbProvider::free_huge_pages(), 0);
  for (unsigned order : {0u, 9u}) {
    try {
      pagepool::HugetlbProvider prov(order);
      ADD_FAILURE() << "HugetlbProvider(" << order << ") did not throw";
    } catch (const std::system_error& e) {
      EXPECT_NE(std::string(e.what()).find("nr_hugepages"), std::string::npos) << e.what();
    }
  }
}

// KernelPageSize and Private_Hugetlb of the mapping holding the page.
void expect_huge_backed(const Page* p) {
  const std::string block = smaps_block(pagepool::page_address(p));
  ASSERT_FALSE(block.empty());
  EXPECT_EQ(smaps_kb(block, "KernelPageSize"), 2048) << block;
  EXPECT_GE(smaps_kb(block, "Private_Hugetlb"), 2048) << block;
}

class HugetlbPool : public ::testing::TestWithParam<unsigned> {};

// With huge pages reserved (as root; restored after): a pool works, every
// byte of a page can be written, virt_to_page resolves it, pages recycle,
// and the memory is really hugetlb-backed.
TEST_P(HugetlbPool, PoolOnReservedHugePages) {
  HugePagesGuard guard(8);
  if (!guard.ok()) GTEST_SKIP() << guard.why();
  const unsigned order = GetParam();
  const long free0 = pagepool::HugetlbProvider::free_huge_pages();
  EXPECT_GE(free0, 8);
  {
    auto prov = std::make_shared<pagepool::HugetlbProvider>(order);
    EXPECT_EQ(pagepool::HugetlbProvider::free_huge_pages(), free0) << "the probe gave its page back";
    Params params;
    params.order = order;
    params.flags = kDmaMap;
    params.provider = prov;
    auto pool = Pool::create(params);
    const std::size_t n = order == 0 ? 600 : 4;  // two huge pages / four
    std::vector<Page*> pages = alloc_n(*pool, n);  // writes every byte
    ASSERT_EQ(pages.size(), n);
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_TRUE(page_holds(pages[i], static_cast<unsigned char>(i)));
      EXPECT_EQ(addr_of(pages[i]) % (kPageSize << order), 0u);
      EXPECT_EQ(pagepool::page_dma_addr(pages[i]), addr_of(pages[i]));
      expect_virt_to_page(pages[i]);
      expect_huge_backed(pages[i]);
    }
    const std::size_t huge_used = prov->reserved_bytes() / pagepool::HugetlbProvider::kHugePage;
    EXPECT_EQ(pagepool::HugetlbProvider::free_huge_pages(), free0 - static_cast<long>(huge_used));
    const std::uint64_t hold = pool->stats().hold;
    put_all(pages);
    pages = alloc_n(*pool, n);
    EXPECT_EQ(pool->stats().hold, hold) << "recycled, no new page";
    EXPECT_EQ(prov->reserved_bytes() / pagepool::HugetlbProvider::kHugePage, huge_used);
    put_all(pages);
    EXPECT_CONSISTENT(pool, 0);
  }
  EXPECT_EQ(pagepool::HugetlbProvider::free_huge_pages(), free0) << "every huge page given back";
}

INSTANTIATE_TEST_SUITE_P(Orders, HugetlbPool, ::testing::Values(0u, 9u));

// The reservation runs out: the allocation fails (alloc.fail), the pool
// stays consistent, and pages coming back make it work again.
TEST(HugetlbExhaustion, ReservationRunsOut) {
  HugePagesGuard guard(4);
  if (!guard.ok()) GTEST_SKIP() << guard.why();
  auto prov = std::make_shared<pagepool::HugetlbProvider>(9);
  Params params;
  params.order = 9;
  params.provider = prov;
  auto pool = Pool::create(params);
  std::vector<Page*> pages = alloc_until_fail(*pool, 64);
  EXPECT_GE(pages.size(), 1u);
  EXPECT_LE(pages.size(), 4u);
  EXPECT_EQ(pool->stats().alloc.fail, PAGEPOOL_STATS ? 1u : 0u);
  EXPECT_CONSISTENT(pool, pages.size());
  pagepool::put_page(pages.back());
  pages.back() = pool->alloc_page();
  EXPECT_NE(pages.back(), nullptr);
  put_all(pages);
  EXPECT_CONSISTENT(pool, 0);
}

// ============================================================================
// memfd
// ============================================================================

Params memfd_params(const std::shared_ptr<pagepool::MemfdProvider>& prov, unsigned order = 0) {
  Params p;
  p.order = order;
  p.flags = kDmaMap;
  p.provider = prov;
  return p;
}

// Pages are in the file: dma = offset in the file = address - base, within
// the file's size.
TEST(Memfd, DmaAddrIsTheOffsetInTheFile) {
  for (unsigned order : {0u, 2u, 10u}) {
    SCOPED_TRACE("order " + std::to_string(order));
    auto prov = std::make_shared<pagepool::MemfdProvider>(order, std::size_t{64} << 20);
    EXPECT_EQ(prov->capacity(), std::size_t{64} << 20);
    EXPECT_EQ(prov->size(), 0u);
    EXPECT_GE(prov->fd(), 0);
    auto pool = Pool::create(memfd_params(prov, order));
    std::vector<Page*> pages = alloc_n(*pool, 100 >> (order / 2));
    std::set<std::uint64_t> offsets;
    for (Page* p : pages) {
      const std::uint64_t dma = pagepool::page_dma_addr(p);
      EXPECT_EQ(dma, addr_of(p) - reinterpret_cast<std::uintptr_t>(prov->base()));
      EXPECT_EQ(dma % (kPageSize << order), 0u);
      EXPECT_LE(dma + (kPageSize << order), prov->size());
      EXPECT_EQ(pagepool::page_nid(p), -1);
      expect_virt_to_page(p);
      offsets.insert(dma);
    }
    EXPECT_EQ(offsets.size(), pages.size());
    EXPECT_EQ(prov->size() % (std::size_t{4} << 20), 0u);
    struct stat st {};
    ASSERT_EQ(fstat(prov->fd(), &st), 0);
    EXPECT_EQ(static_cast<std::size_t>(st.st_size), prov->size());
    put_all(pages);
  }
}

// A second mapping of fd() at another address, and pread at the page's dma
// offset, see the bytes written through page_address; writes through the
// second mapping show up in the page.
TEST(Memfd, SecondMappingAndPreadSeeThePage) {
  auto prov = std::make_shared<pagepool::MemfdProvider>(0, std::size_t{16} << 20);
  auto pool = Pool::create(memfd_params(prov));
  std::vector<Page*> pages = alloc_n(*pool, 200);
  const std::size_t size = prov->size();
  void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, prov->fd(), 0);
  ASSERT_NE(m, MAP_FAILED);
  auto* view = static_cast<unsigned char*>(m);
  EXPECT_NE(static_cast<void*>(view), static_cast<void*>(prov->base()));
  std::vector<unsigned char> buf(kPageSize);
  for (std::size_t i = 0; i < pages.size(); ++i) {
    const std::uint64_t dma = pagepool::page_dma_addr(pages[i]);
    const auto v = static_cast<unsigned char>(i);
    EXPECT_EQ(view[dma], v);
    EXPECT_EQ(view[dma + kPageSize - 1], v);
    ASSERT_EQ(pread(prov->fd(), buf.data(), buf.size(), static_cast<off_t>(dma)),
              static_cast<ssize_t>(buf.size()));
    EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [v](unsigned char b) { return b == v; }));
    view[dma + 7] = static_cast<unsigned char>(v ^ 0xff);
    EXPECT_EQ(static_cast<unsigned char*>(pagepool::page_address(pages[i]))[7], v ^ 0xff);
  }
  munmap(m, size);
  put_all(pages);
}

// A forked child sees the parent's bytes at the dma offset (through the
// inherited fd, not the parent's mapping) and its writes land in the
// parent's page.
TEST(Memfd, ForkedChildSharesThePages) {
  auto prov = std::make_shared<pagepool::MemfdProvider>(0, std::size_t{8} << 20);
  auto pool = Pool::create(memfd_params(prov));
  std::vector<Page*> pages = alloc_n(*pool, 2);
  ASSERT_EQ(pages.size(), 2u);
  fill_page(pages[0], 0x5a);
  fill_page(pages[1], 0x00);
  const int fd = prov->fd();
  const auto off0 = static_cast<off_t>(pagepool::page_dma_addr(pages[0]));
  const auto off1 = static_cast<off_t>(pagepool::page_dma_addr(pages[1]));
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    unsigned char b[4096];
    if (pread(fd, b, sizeof b, off0) != static_cast<ssize_t>(sizeof b)) _exit(2);
    for (unsigned char x : b)
      if (x != 0x5a) _exit(3);
    std::memset(b, 0xc3, sizeof b);
    if (pwrite(fd, b, sizeof b, off1) != static_cast<ssize_t>(sizeof b)) _exit(4);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: short read, 3: wrong bytes, 4: short write";
  EXPECT_TRUE(page_holds(pages[1], 0xc3));
  put_all(pages);
}

// The file cannot grow past its capacity: the allocation fails
// (alloc.fail), the pool stays consistent, returned pages serve again.
TEST(Memfd, CapacityExhaustionFailsTheAllocation) {
  auto prov = std::make_shared<pagepool::MemfdProvider>(0, std::size_t{4} << 20);
  auto pool = Pool::create(memfd_params(prov));
  StatsWatch w(*pool);
  std::vector<Page*> pages = alloc_until_fail(*pool, 4096);
  EXPECT_EQ(pages.size(), 1024u);
  EXPECT_EQ(prov->size(), prov->capacity());
  EXPECT_MOVED(w, {.fast = 1008, .slow = 16, .empty = 17, .fail = 1, .hold = 1024});
  EXPECT_CONSISTENT(pool, 1024);
  EXPECT_EQ(pool->alloc_page(), nullptr);
  pagepool::put_page(pages.back());
  pages.back() = pool->alloc_page();
  EXPECT_NE(pages.back(), nullptr);
  put_all(pages);
  EXPECT_CONSISTENT(pool, 0);
}

TEST(Memfd, InvalidCapacityThrows) {
  for (std::size_t cap : {std::size_t{0}, std::size_t{1} << 20, (std::size_t{2} << 20) + 4096,
                          (std::size_t{4} << 20) - 1}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    EXPECT_THROW(pagepool::MemfdProvider(0, cap), std::invalid_argument);
  }
}

// Regression (fixed): a capacity the constructor accepts (a multiple of 2 MiB) is not all
// usable: the file grows in fixed 4 MiB chunks, so a 2 MiB capacity serves
// no page at all and a 6 MiB one only 4 MiB. Either every accepted byte
// serves pages or the constructor rejects the capacity.
TEST(Memfd, EveryAcceptedCapacityIsUsable) {
  for (std::size_t mib : {2u, 6u}) {
    SCOPED_TRACE("capacity " + std::to_string(mib) + " MiB");
    std::shared_ptr<pagepool::MemfdProvider> prov;
    try {
      prov = std::make_shared<pagepool::MemfdProvider>(0, mib << 20);
    } catch (const std::invalid_argument&) {
      continue;  // rejected up front: fine too
    }
    auto pool = Pool::create(memfd_params(prov));
    std::vector<Page*> pages = alloc_until_fail(*pool, 4096);
    EXPECT_EQ(pages.size(), (mib << 20) / kPageSize);
    put_all(pages);
  }
}

}  // namespace
