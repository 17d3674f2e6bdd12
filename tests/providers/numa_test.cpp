// NUMA: page node tags, waive and update_nid.
//
// This machine has one node (0), so the logic is tested with a provider
// that reports fake nodes (FakeNodeProvider: its chunks claim to be on the
// node the test chooses; pages are tagged with it and page_nid() reads it).
// Pool::create and update_nid accept only real nodes (-1..max node), so the
// pool is bound to node 0 and pages tagged 1 are "foreign".
//
// What is pinned down:
//  - a pool bound to a node releases, instead of recycling, a returning page
//    of another known node (alloc.waive), on every return path: the owner's
//    puts, a remote put, put_pages_bulk, recycle_direct; pages of the pool's
//    node and of unknown node (-1) recycle normally;
//  - update_nid(n) releases cached foreign pages at once, waives foreign
//    pages met later when refilling from the ring or stealing a returner's
//    batch, and tells the provider (set_nid) so new chunks come from n;
//    update_nid(-1) stops waiving;
//  - nodes that do not exist are refused by Pool::create and update_nid
//    with std::invalid_argument naming the nid and the range.
#include <gtest/gtest.h>
#include <numa.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pagepool/pagepool.hpp"
#include "pagepool/providers/memfd.hpp"
#include "test_support.hpp"

namespace {

using namespace ppprov;
using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;

int max_node() { return numa_available() < 0 ? 0 : numa_max_node(); }

Params on_node(int nid) {
  Params p;
  p.nid = nid;
  return p;
}

void expect_nodes(const std::vector<Page*>& pages, int nid) {
  for (const Page* p : pages) EXPECT_EQ(pagepool::page_nid(p), nid);
}

// 64 pages of node `a` then 64 of node `b`, from a pool that does not waive
// (nid -1): the provider is steered directly, as if bound to each in turn.
std::vector<Page*> pages_of_two_nodes(CountedPool& c, FakeNodeProvider& fake, int a, int b) {
  fake.set_nid(a);
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  fake.set_nid(b);
  std::vector<Page*> more = alloc_n(*c.pool, 64);
  expect_nodes(pages, a);
  expect_nodes(more, b);
  pages.insert(pages.end(), more.begin(), more.end());
  return pages;
}

// ---- waive ------------------------------------------------------------------

// A pool on node 0 whose provider hands out pages of node 1: every return
// path releases them (alloc.waive) instead of recycling; release_page is a
// release, not a waive. Pages of node 0 recycle normally.
TEST(NumaWaive, ForeignPagesAreReleasedLocalPagesRecycle) {
  auto fake = std::make_shared<FakeNodeProvider>(0);
  fake->set_nid(0);      // bound to node 0 ...
  fake->report.store(1);  // ... but the memory is on node 1
  auto c = make_counted_pool(on_node(0), {}, fake);
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  expect_nodes(pages, 1);
  EXPECT_EQ(c.prov->nid(pages[0]), 1);
  StatsWatch w(*c.pool);

  put_all(slice(pages, 0, 10));
  EXPECT_MOVED(w, {.waive = 10, .release = 10});
  on_other_thread([&] { put_all(slice(pages, 10, 20)); });
  EXPECT_MOVED(w, {.waive = 10, .release = 10});
  for (std::size_t i = 20; i < 25; ++i) c.pool->put_page(pages[i], -1, false);
  EXPECT_MOVED(w, {.waive = 5, .release = 5});
  c.pool->put_pages_bulk(&pages[25], 5);
  EXPECT_MOVED(w, {.waive = 5, .release = 5});
  on_other_thread([&] { c.pool->put_pages_bulk(&pages[30], 5); });
  EXPECT_MOVED(w, {.waive = 5, .release = 5});
  for (std::size_t i = 35; i < 40; ++i) c.pool->recycle_direct(pages[i]);
  EXPECT_MOVED(w, {.waive = 5, .release = 5});
  c.pool->release_page(pages[40]);
  EXPECT_MOVED(w, {.release = 1});
  for (std::size_t i = 0; i <= 40; ++i) EXPECT_FALSE(c.log->state_of(pages[i]).out);
  const pagepool::Levels l = expect_consistent(*c.pool, 23);
  EXPECT_EQ(l.cache + l.ring + l.pending, 0u);

  // Memory of node 0 from now on: it recycles.
  fake->report.store(FakeNodeProvider::kEcho);
  std::vector<Page*> local = alloc_n(*c.pool, 64);
  expect_nodes(local, 0);
  EXPECT_EQ(fake->asked(), (std::vector<int>{0, 0}));
  EXPECT_MOVED(w, {.fast = 63, .slow = 1, .empty = 1, .hold = 64});
  put_all(local);
  local = alloc_n(*c.pool, 64);
  EXPECT_MOVED(w, {.fast = 64, .cached = 64});
  put_all(local);
  put_all(slice(pages, 41, 64));
  EXPECT_MOVED(w, {.waive = 23, .cached = 64, .release = 23});
  EXPECT_CONSISTENT(c.pool, 0);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// Pages of unknown node (-1) are never waived: not on return, not by
// update_nid, not on a refill from the ring.
TEST(NumaWaive, PagesOfUnknownNodeAreNeverWaived) {
  auto fake = std::make_shared<FakeNodeProvider>(0);
  fake->set_nid(0);
  fake->report.store(-1);
  auto c = make_counted_pool(on_node(0), {}, fake);
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  expect_nodes(pages, -1);
  StatsWatch w(*c.pool);
  on_other_thread([&] { put_all(slice(pages, 0, 32)); });
  put_all(slice(pages, 32, 64));
  EXPECT_MOVED(w, {.cached = 32, .ring = 32});
  c.pool->update_nid(0);
  EXPECT_MOVED(w, {});
  pages = alloc_n(*c.pool, 64);
  EXPECT_MOVED(w, {.fast = 63, .refill = 1});
  put_all(pages);
  EXPECT_EQ(c.pool->stats().alloc.waive, 0u);
  EXPECT_CONSISTENT(c.pool, 0);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// After destroy a foreign page's last put is a plain release (counted as
// released_refcnt), not a waive.
TEST(NumaWaive, PutAfterDestroyIsAReleaseNotAWaive) {
  auto fake = std::make_shared<FakeNodeProvider>(0);
  fake->set_nid(0);
  fake->report.store(1);
  auto c = make_counted_pool(on_node(0), {}, fake);
  std::vector<Page*> pages = alloc_n(*c.pool, 3);
  Pool* raw = c.pool.get();
  c.pool.reset();
  const pagepool::Stats s0 = raw->stats();
  pagepool::put_page(pages[0]);
  on_other_thread([&] { pagepool::put_page(pages[1]); });
  const pagepool::Stats s1 = raw->stats();
  EXPECT_EQ(s1.alloc.waive, s0.alloc.waive);
  EXPECT_EQ(s1.release - s0.release, 2u);
#if PAGEPOOL_STATS
  EXPECT_EQ(s1.recycle.released_refcnt - s0.recycle.released_refcnt, 2u);
#endif
  pagepool::put_page(pages[2]);  // the last: frees the pool
  EXPECT_TRUE(c.provider.expired());
  pagepool::flush_thread();
  EXPECT_ALL_RETURNED(c.log);
}

// ---- update_nid -----------------------------------------------------------------

// update_nid(0) on a pool of any node: the cached pages of node 1 are
// released at once (alloc.waive), those of node 0 stay, in order; the
// provider is told (set_nid(0)).
TEST(NumaUpdate, ReleasesCachedForeignPagesAndTellsTheProvider) {
  auto fake = std::make_shared<FakeNodeProvider>(0);
  auto c = make_counted_pool(on_node(-1), {}, fake);
  std::vector<Page*> pages = pages_of_two_nodes(c, *fake, 1, 0);
  // Interleave the nodes in the cache.
  std::vector<Page*> order;
  for (std::size_t i = 0; i < 64; ++i) {
    order.push_back(pages[i]);
    order.push_back(pages[64 + i]);
  }
  put_all(order);
  EXPECT_EQ(c.pool->levels().cache, 128u);
  EXPECT_TRUE(c.log->take_set_nids().empty());
  StatsWatch w(*c.pool);

  c.pool->update_nid(0);
  EXPECT_MOVED(w, {.waive = 64, .release = 64});
  EXPECT_EQ(c.log->take_set_nids(), std::vector<int>{0});
  EXPECT_EQ(c.pool->nid(), 0);
  EXPECT_EQ(c.pool->levels().cache, 64u);
  for (std::size_t i = 0; i < 64; ++i) EXPECT_FALSE(c.log->state_of(pages[i]).out);
  // The kept pages come out in LIFO order of their puts, all node 0.
  std::vector<Page*> got = alloc_n(*c.pool, 64);
  for (std::size_t i = 0; i < 64; ++i) EXPECT_EQ(got[i], pages[127 - i]);
  EXPECT_MOVED(w, {.fast = 64});
  put_all(got);
  EXPECT_CONSISTENT(c.pool, 0);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// After update_nid(0), the provider reserves its new chunks on node 0.
TEST(NumaUpdate, NewChunksComeFromTheNewNode) {
  auto fake = std::make_shared<FakeNodeProvider>(0);
  fake->report.store(1);  // any node asked; the memory lands on node 1
  auto c = make_counted_pool(on_node(-1), {}, fake);
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  expect_nodes(pages, 1);
  put_all(pages);  // the pool does not care about nodes yet: cached
  EXPECT_EQ(c.pool->stats().alloc.waive, 0u);
  fake->report.store(FakeNodeProvider::kEcho);
  c.pool->update_nid(0);
  EXPECT_EQ(c.pool->nid(), 0);
  EXPECT_EQ(c.pool->params().nid, -1) << "params() are the creation parameters";
  EXPECT_EQ(c.pool->stats().alloc.waive, 64u);
  pages = alloc_n(*c.pool, 10);
  expect_nodes(pages, 0);
  EXPECT_EQ(fake->asked(), (std::vector<int>{-1, 0}));
  put_all(pages);
  EXPECT_EQ(c.pool->stats().alloc.waive, 64u);

  // Back to any node: no more waiving, the provider is told.
  c.log->take_set_nids();
  c.pool->update_nid(-1);
  EXPECT_EQ(c.log->take_set_nids(), std::vector<int>{-1});
  EXPECT_EQ(c.pool->nid(), -1);
  fake->set_nid(0);
  fake->report.store(1);
  // Past what is left of the node-0 chunk, into chunks of node 1.
  std::vector<Page*> mixed = alloc_until_fail(*c.pool, 600);
  ASSERT_EQ(mixed.size(), 600u);
  EXPECT_TRUE(std::any_of(mixed.begin(), mixed.end(),
                          [](const Page* p) { return pagepool::page_nid(p) == 1; }));
  const std::uint64_t waived = c.pool->stats().alloc.waive;
  put_all(mixed);
  EXPECT_EQ(c.pool->stats().alloc.waive, waived);
  EXPECT_CONSISTENT(c.pool, 0);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

TEST(NumaUpdate, RejectsNodesThatDoNotExist) {
  auto c = make_counted_pool(on_node(-1));
  std::vector<Page*> pages = alloc_n(*c.pool, 10);
  const std::string range = "[-1, " + std::to_string(max_node()) + "]";
  for (int bad : {5, max_node() + 1, -2, 4094}) {
    if (bad >= 0 && bad <= max_node()) continue;
    SCOPED_TRACE("nid " + std::to_string(bad));
    try {
      c.pool->update_nid(bad);
      ADD_FAILURE() << "update_nid(" << bad << ") did not throw";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("nid " + std::to_string(bad)), std::string::npos) << what;
      EXPECT_NE(what.find(range), std::string::npos) << what;
    }
  }
  // Nothing changed.
  EXPECT_EQ(c.pool->nid(), -1);
  EXPECT_TRUE(c.log->take_set_nids().empty());
  put_all(pages);
  put_all(alloc_n(*c.pool, 10));
  EXPECT_EQ(c.pool->stats().alloc.waive, 0u);
  EXPECT_CONSISTENT(c.pool, 0);
}

// Other threads may read params() and nid() while the owner moves the pool:
// params() never changes after create and nid() is atomic (TSan checks the
// absence of a race in the tsan build).
TEST(NumaUpdate, ReadersDoNotRaceTheOwner) {
  auto pool = Pool::create(on_node(-1));
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    long seen = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      EXPECT_EQ(pool->params().nid, -1);
      const int n = pool->nid();
      EXPECT_TRUE(n == -1 || n == 0) << n;
      seen += n;
    }
    (void)seen;
  });
  for (int i = 0; i < 2000; ++i) pool->update_nid(i % 2 == 0 ? 0 : -1);
  stop.store(true);
  reader.join();
  EXPECT_EQ(pool->nid(), -1);
}

TEST(NumaCreate, RejectsNodesThatDoNotExist) {
  const std::string range = "[-1, " + std::to_string(max_node()) + "]";
  for (int bad : {5, max_node() + 1, -2}) {
    if (bad >= 0 && bad <= max_node()) continue;
    SCOPED_TRACE("nid " + std::to_string(bad));
    Params p = on_node(bad);
    p.name = "numa-test";
    try {
      Pool::create(p);
      ADD_FAILURE() << "Pool::create with nid " << bad << " did not throw";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("nid " + std::to_string(bad)), std::string::npos) << what;
      EXPECT_NE(what.find(range), std::string::npos) << what;
      EXPECT_NE(what.find("numa-test"), std::string::npos) << what;
    }
  }
  for (int good = -1; good <= max_node(); ++good) {
    auto pool = Pool::create(on_node(good));
    EXPECT_EQ(pool->params().nid, good);
    EXPECT_EQ(pool->nid(), good);
  }
}

// ---- waive on the refill paths ----------------------------------------------------

// Pages returned by another thread before the pool was bound, mixed nodes in
// every batch: refills from the ring after update_nid(0) release the node-1
// pages and serve the node-0 ones.
TEST(NumaRefill, RingRefillWaivesForeignPages) {
  auto fake = std::make_shared<FakeNodeProvider>(0);
  auto c = make_counted_pool(on_node(-1), {}, fake);
  std::vector<Page*> pages = pages_of_two_nodes(c, *fake, 0, 1);
  std::vector<Page*> order;
  for (std::size_t i = 0; i < 64; ++i) {
    order.push_back(pages[i]);
    order.push_back(pages[64 + i]);
  }
  on_other_thread([&] { put_all(order); });
  EXPECT_EQ(c.pool->levels().ring, 128u);
  StatsWatch w(*c.pool);
  c.pool->update_nid(0);
  EXPECT_MOVED(w, {});  // nothing cached: nothing waived yet
  std::vector<Page*> got = alloc_n(*c.pool, 64);
  expect_nodes(got, 0);
  EXPECT_MOVED(w, {.fast = 62, .refill = 2, .waive = 64, .release = 64});
  EXPECT_EQ(std::set<Page*>(got.begin(), got.end()),
            std::set<Page*>(pages.begin(), pages.begin() + 64));
  EXPECT_CONSISTENT(c.pool, 64);
  put_all(got);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// A bound pool's remote returns are waived on the returning thread, so
// foreign pages never reach the ring.
TEST(NumaRefill, RemoteReturnsOfABoundPoolAreWaivedBeforeTheRing) {
  auto fake = std::make_shared<FakeNodeProvider>(0);
  auto c = make_counted_pool(on_node(-1), {}, fake);
  std::vector<Page*> pages = pages_of_two_nodes(c, *fake, 0, 1);
  c.pool->update_nid(0);
  StatsWatch w(*c.pool);
  on_other_thread([&] { put_all(pages); });
  EXPECT_MOVED(w, {.waive = 64, .ring = 64, .release = 64});
  EXPECT_EQ(c.pool->levels().ring, 64u);
  std::vector<Page*> got = alloc_n(*c.pool, 64);
  expect_nodes(got, 0);
  EXPECT_MOVED(w, {.fast = 63, .refill = 1});
  put_all(got);
  EXPECT_CONSISTENT(c.pool, 0);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// Pages waiting in a live thread's batch when the pool is bound: the
// owner's steal waives the foreign ones.
TEST(NumaRefill, StealWaivesForeignPages) {
  auto fake = std::make_shared<FakeNodeProvider>(0);
  auto c = make_counted_pool(on_node(-1), {}, fake);
  std::vector<Page*> pages = pages_of_two_nodes(c, *fake, 0, 1);
  std::vector<Page*> batch;
  for (std::size_t i = 0; i < 20; ++i) {
    batch.push_back(pages[i]);
    batch.push_back(pages[64 + i]);
  }
  Parked t;
  t.run([&] { put_all(batch); });
  EXPECT_EQ(c.pool->levels().pending, 40u);
  c.pool->update_nid(0);
  StatsWatch w(*c.pool);
  std::vector<Page*> got = alloc_n(*c.pool, 20);
  expect_nodes(got, 0);
  EXPECT_MOVED(w, {.fast = 19, .refill = 1, .waive = 20, .steal = 40, .ring = 40, .release = 20});
  EXPECT_CONSISTENT(c.pool, 128 - 40 + 20);
  t.exit();
  put_all(got);
  put_all(slice(pages, 20, 64));
  put_all(slice(pages, 84, 128));
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// ---- real providers on node 0 ---------------------------------------------------

// The node of a page's memory, as the kernel says (-1 if it cannot).
int kernel_node_of(void* addr) {
  int status = -1;
  void* pages[1] = {addr};
  if (numa_available() < 0 || numa_move_pages(0, 1, pages, nullptr, &status, 0) != 0) return -1;
  return status;
}

// Built-in providers tag their pages with the node they were bound to, and
// the memory is there; unbound, the node is unknown (-1).
TEST(NumaProviders, BoundProvidersTagTheirPages) {
  if (numa_available() < 0) GTEST_SKIP() << "libnuma reports NUMA unavailable";
  struct Case {
    const char* name;
    std::shared_ptr<pagepool::Provider> prov;
    int want;
  };
  const Case cases[] = {
      {"anon bound", std::make_shared<pagepool::AnonProvider>(0, 0), 0},
      {"anon any", std::make_shared<pagepool::AnonProvider>(0, -1), -1},
      {"memfd bound", std::make_shared<pagepool::MemfdProvider>(0, std::size_t{8} << 20, 0), 0},
      {"default provider of a pool on node 0", nullptr, 0},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    Params p = on_node(k.want < 0 ? -1 : 0);
    p.provider = k.prov;
    auto pool = Pool::create(p);
    std::vector<Page*> pages = alloc_n(*pool, 100);  // touched
    expect_nodes(pages, k.want);
    if (k.want >= 0) {
      for (Page* pg : pages) EXPECT_EQ(kernel_node_of(pagepool::page_address(pg)), k.want);
    }
    put_all(pages);
    put_all(alloc_n(*pool, 100));
    EXPECT_EQ(pool->stats().alloc.waive, 0u);
    EXPECT_EQ(pool->stats().hold, 128u);
  }
}

// ---- bugs ---------------------------------------------------------------------------

// Regression (fixed): Pool::create with nid >= 0 does not tell a supplied provider
// (Params::provider) where new memory should come from, while update_nid
// does: create(nid 0) and create(nid -1) + update_nid(0) should leave the
// provider in the same state. Today the provider keeps allocating from any
// node and, if it reports where its memory landed, every page of another
// node is waived at its first return.
TEST(NumaRegression, CreateOnANodeTellsTheProvider) {
  auto fake = std::make_shared<FakeNodeProvider>(0);
  auto c = make_counted_pool(on_node(0), {}, fake);
  EXPECT_EQ(c.log->take_set_nids(), std::vector<int>{0});
  Page* p = c.pool->alloc_page();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(fake->asked(), std::vector<int>{0}) << "the chunk was reserved for any node";
  pagepool::put_page(p);
}

// Regression (fixed): ChunkProvider::alloc_bulk takes pages only from the free list of
// the node it was asked for (set_nid), but a chunk's pages go to the list of
// the node reserve_chunk reported. When the two differ -- asked for any node
// (-1) and the memory reported on node 0, as provider.hpp allows ("*nid
// out: the node the memory is on"), or bound to node 0 and the binding
// failed (-1: unknown; e.g. AnonProvider/MemfdProvider where libnuma reports
// NUMA unavailable) -- no page is ever reused: every refill reserves a new
// chunk, and the rest of each chunk is stranded. A MemfdProvider hits its
// capacity after capacity / 4 MiB refills.
TEST(NumaRegression, ChunkPagesAreReusedWhateverNodeTheChunkReported) {
  struct Case {
    const char* name;
    int bound;     // set_nid
    int reported;  // what reserve_chunk reports
  };
  for (const Case& k : {Case{"any node asked, node 0 reported", -1, 0},
                        Case{"node 0 asked, unknown reported", 0, -1}}) {
    SCOPED_TRACE(k.name);
    auto fake = std::make_shared<FakeNodeProvider>(0);  // 512 pages a chunk
    fake->set_nid(k.bound);
    fake->report.store(k.reported);
    Params p;  // any node: no waive
    p.provider = fake;
    auto pool = Pool::create(p);
    std::vector<Page*> pages = alloc_n(*pool, 600);
    EXPECT_EQ(fake->chunks_made.load(), 2) << "600 pages need 2 chunks of 512";
    put_all(pages);
    // Pages given back to the provider are reused, too.
    Page* direct[64];
    for (int round = 0; round < 4; ++round) {
      const std::size_t n = fake->alloc_bulk(direct, 64);
      ASSERT_EQ(n, 64u);
      fake->release_bulk(direct, n);
    }
    EXPECT_LE(fake->chunks_made.load(), 2);
  }
}

}  // namespace
