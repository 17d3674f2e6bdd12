// kDmaMap and kDmaSyncDev: map once per page entering the pool, unmap once
// per page leaving it, page_dma_addr is the mapping, and the device sync
// on recycle covers [offset, offset + min(dma_sync_size, max_len)).
#include <gtest/gtest.h>

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

Params mapped(std::uint32_t pool_size = 1024) {
  Params p;
  p.flags = pagepool::kDmaMap;
  p.pool_size = pool_size;
  return p;
}

// map runs once per page as it enters the pool (a bulk of 64 at the first
// allocation), not again when the page is recycled and reallocated.
TEST(DmaMap, MapOncePerPageEnteringThePool) {
  auto c = make_counted_pool(mapped());
  Page* p = c.pool->alloc_page();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(c.log->map_calls.load(), 64u);
  EXPECT_EQ(c.log->unmap_calls.load(), 0u);
  for (int i = 0; i < 500; ++i) {
    pagepool::put_page(p);
    p = c.pool->alloc_page();
  }
  on_other_thread([p] { pagepool::put_page(p); });  // through the ring
  std::vector<Page*> pages = alloc_n(*c.pool, 100);  // a second bulk
  EXPECT_EQ(c.log->map_calls.load(), 128u);
  EXPECT_EQ(c.log->unmap_calls.load(), 0u);
  expect_mapping_balanced(*c.pool, *c.log);
  put_all(pages);
  c.pool.reset();
  EXPECT_EQ(c.log->unmap_calls.load(), 128u);
  EXPECT_EQ(c.log->mapped_now(), 0u);
  EXPECT_EQ(c.log->bad_unmaps.load(), 0u);
}

// page_dma_addr returns what map stored for that page, for every page.
TEST(DmaMap, DmaAddrIsWhatMapStored) {
  auto c = make_counted_pool(mapped());
  std::vector<Page*> pages = alloc_n(*c.pool, 100);
  std::set<std::uint64_t> seen;
  for (Page* p : pages) {
    const std::uint64_t dma = pagepool::page_dma_addr(p);
    EXPECT_NE(dma, 0u);
    EXPECT_EQ(dma, c.log->dma_of(p));
    seen.insert(dma);
  }
  EXPECT_EQ(seen.size(), 100u);
  // Unchanged across a recycle.
  const std::uint64_t before = pagepool::page_dma_addr(pages[0]);
  pagepool::put_page(pages[0]);
  pages[0] = c.pool->alloc_page();
  EXPECT_EQ(pagepool::page_dma_addr(pages[0]), before);
  put_all(pages);
}

// Without kDmaMap the provider is never asked to map or unmap.
TEST(DmaMap, NoMappingWithoutTheFlag) {
  auto c = make_counted_pool({});
  std::vector<Page*> pages = alloc_n(*c.pool, 70);
  c.pool->release_page(pages.back());
  pages.pop_back();
  put_all(pages);
  c.pool.reset();
  EXPECT_EQ(c.log->map_calls.load(), 0u);
  EXPECT_EQ(c.log->unmap_calls.load(), 0u);
}

// Every way out of the pool unmaps exactly once: release_page, a ring-full
// handover, a cache spill into a full ring, destroy.
TEST(DmaMap, UnmapOnceOnEveryWayOut) {
  auto c = make_counted_pool(mapped(10));
  std::vector<Page*> pages = alloc_n(*c.pool, 129);  // 192 mapped, 63 cached

  c.pool->release_page(pages[0]);
  EXPECT_EQ(c.log->unmap_calls.load(), 1u);
  expect_mapping_balanced(*c.pool, *c.log);

  // Non-direct puts wait in this thread's batch, still mapped; the handover
  // puts 10 into the ring and releases (unmaps) the one that does not fit.
  for (int i = 1; i <= 11; ++i) c.pool->put_page(pages[i], -1, false);
  EXPECT_EQ(c.pool->levels().pending, 11u);
  EXPECT_EQ(c.log->unmap_calls.load(), 1u);
  expect_mapping_balanced(*c.pool, *c.log);
  pagepool::flush_thread();
  EXPECT_EQ(c.pool->levels().ring, 10u);
  EXPECT_EQ(c.log->unmap_calls.load(), 2u);
  expect_mapping_balanced(*c.pool, *c.log);

  for (int i = 12; i < 12 + 65; ++i) c.pool->recycle_direct(pages[i]);  // cache full
  c.pool->recycle_direct(pages[77]);  // spill: the ring is full, 64 released
  EXPECT_EQ(c.log->unmap_calls.load(), 66u);
  expect_mapping_balanced(*c.pool, *c.log);

  put_all(std::vector<Page*>(pages.begin() + 78, pages.end()));
  const std::uint64_t held = c.pool->levels().held;
  c.pool.reset();
  EXPECT_EQ(c.log->unmap_calls.load(), 66u + held);
  EXPECT_EQ(c.log->unmap_calls.load(), 192u);
  EXPECT_EQ(c.log->mapped_now(), 0u);
  EXPECT_EQ(c.log->bad_unmaps.load(), 0u);
}

// A provider that refuses every mapping: the pages go straight back to it
// (never unmapped, never held), the allocation fails with alloc.fail.
TEST(DmaMap, RefusedMappingFailsTheAllocation) {
  auto c = make_counted_pool(mapped(), {.map_fail = MapFail::always});
  StatsWatch w(*c.pool);
  EXPECT_EQ(c.pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  EXPECT_EQ(c.log->map_calls.load(), 64u);
  EXPECT_EQ(c.log->release_pages.load(), 64u);
  EXPECT_EQ(c.log->bad_releases.load(), 0u);
  EXPECT_EQ(c.log->unmap_calls.load(), 0u);
  EXPECT_EQ(c.pool->levels().held, 0u);
  EXPECT_CONSISTENT(c.pool);
  c.pool.reset();
  EXPECT_EQ(c.log->unmap_calls.load(), 0u);
  EXPECT_TRUE(c.provider.expired());
}

// Some mappings refused: the refill keeps the mapped pages only.
TEST(DmaMap, PartlyRefusedMappingKeepsTheMappedPages) {
  auto c = make_counted_pool(mapped(), {.map_fail = MapFail::every_other});
  StatsWatch w(*c.pool);
  std::vector<Page*> pages = alloc_n(*c.pool, 32);
  EXPECT_MOVED(w, {.fast = 31, .slow = 1, .empty = 1, .hold = 32});
  EXPECT_EQ(c.log->release_pages.load(), 32u);
  for (Page* p : pages) EXPECT_EQ(pagepool::page_dma_addr(p), c.log->dma_of(p));
  pages.push_back(c.pool->alloc_page());  // the 33rd needs a new refill
  EXPECT_MOVED(w, {.slow = 1, .empty = 1, .hold = 32});
  expect_mapping_balanced(*c.pool, *c.log);
  put_all(pages);
  c.pool.reset();
  EXPECT_EQ(c.log->unmap_calls.load(), 64u);
  EXPECT_EQ(c.log->mapped_now(), 0u);
  EXPECT_EQ(c.log->bad_unmaps.load(), 0u);
}

// ---- kDmaSyncDev ----------------------------------------------------------------

constexpr std::uint32_t kOffset = 128;
constexpr std::uint32_t kMaxLen = 1024;

Params syncing() {
  Params p;
  p.flags = pagepool::kDmaMap | pagepool::kDmaSyncDev;
  p.offset = kOffset;
  p.max_len = kMaxLen;
  return p;
}

void expect_one_sync(ProviderLog& log, const Page* p, std::uint32_t len) {
  const auto s = log.take_syncs();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].page, p);
  EXPECT_EQ(s[0].offset, kOffset);
  EXPECT_EQ(s[0].len, len);
}

// Pool::put_page syncs the page at its last put over
// min(dma_sync_size, max_len) bytes from offset; -1 means max_len.
TEST(DmaSync, PutPageSyncsTheClampedWindow) {
  auto c = make_counted_pool(syncing(), {.needs_sync = true});
  Page* p = c.pool->alloc_page();
  // At map time every page of the bulk got the whole window once...
  const auto mapped = c.log->take_syncs();
  ASSERT_EQ(mapped.size(), pagepool::Pool::kBulk);
  for (const auto& m : mapped) {
    EXPECT_EQ(m.offset, kOffset);
    EXPECT_EQ(m.len, kMaxLen);
  }
  // ...and an allocation from the cache syncs nothing.
  pagepool::Page* q = c.pool->alloc_page();
  EXPECT_TRUE(c.log->take_syncs().empty());
  c.pool->put_page(q, 0, true);
  const struct {
    std::int32_t size;
    std::uint32_t len;
  } cases[] = {{1, 1}, {100, 100}, {1023, 1023}, {1024, 1024}, {1025, 1024}, {5000, 1024},
               {INT32_MAX, 1024}, {-1, 1024}};
  for (const auto& k : cases) {
    SCOPED_TRACE(k.size);
    c.pool->put_page(p, k.size, true);
    expect_one_sync(*c.log, p, k.len);
    p = c.pool->alloc_page();
  }
  c.pool->put_page(p, 300, false);  // to this thread's batch: synced at the put
  expect_one_sync(*c.log, p, 300);
  EXPECT_EQ(c.pool->levels().pending, 1u);
  pagepool::flush_thread();  // the handover to the ring does not sync again
  EXPECT_TRUE(c.log->take_syncs().empty());
  EXPECT_EQ(c.pool->levels().ring, 1u);
  EXPECT_CONSISTENT(c.pool);
}

// The other recycling calls sync max_len: recycle_direct, put_page(Page*),
// put_pages_bulk (owner and non-owner), a put from another thread.
TEST(DmaSync, OtherRecyclePathsSyncMaxLen) {
  auto c = make_counted_pool(syncing(), {.needs_sync = true});
  std::vector<Page*> pages = alloc_n(*c.pool, 8);
  c.log->take_syncs();  // map-time syncs
  c.pool->recycle_direct(pages[0]);
  expect_one_sync(*c.log, pages[0], kMaxLen);
  pagepool::put_page(pages[1]);
  expect_one_sync(*c.log, pages[1], kMaxLen);
  on_other_thread([&] { pagepool::put_page(pages[2]); });
  expect_one_sync(*c.log, pages[2], kMaxLen);
  on_other_thread([&] { c.pool->put_page(pages[3], 10, true); });
  expect_one_sync(*c.log, pages[3], 10);

  c.pool->put_pages_bulk(&pages[4], 2);
  on_other_thread([&] { c.pool->put_pages_bulk(&pages[6], 2); });
  const auto s = c.log->take_syncs();
  ASSERT_EQ(s.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(s[i].page, pages[4 + i]);
    EXPECT_EQ(s[i].offset, kOffset);
    EXPECT_EQ(s[i].len, kMaxLen);
  }
  EXPECT_CONSISTENT(c.pool);
}

// Only the last reference syncs; earlier puts drop a reference and nothing
// else.
TEST(DmaSync, OnlyTheLastPutSyncs) {
  auto c = make_counted_pool(syncing(), {.needs_sync = true});
  Page* p = c.pool->alloc_page();
  c.log->take_syncs();  // map-time syncs
  pagepool::get_page(p);
  pagepool::get_page(p);
  c.pool->put_page(p, 10, true);
  pagepool::put_page(p);
  EXPECT_TRUE(c.log->take_syncs().empty());
  c.pool->put_page(p, 20, true);
  expect_one_sync(*c.log, p, 20);
}

// A fragmented page is synced once, when it is recycled, not per fragment.
TEST(DmaSync, FragmentPageSyncsOnceWhenRecycled) {
  auto c = make_counted_pool(syncing(), {.needs_sync = true});
  std::uint32_t off;
  Page* a = c.pool->alloc_frag(2048, &off);
  Page* b = c.pool->alloc_frag(2048, &off);
  Page* next = c.pool->alloc_frag(64, &off);  // ends carving of a's page
  c.log->take_syncs();  // map-time syncs
  ASSERT_EQ(a, b);
  pagepool::put_page(a);
  EXPECT_TRUE(c.log->take_syncs().empty());
  pagepool::put_page(b);
  expect_one_sync(*c.log, a, kMaxLen);
  pagepool::put_page(next);
  EXPECT_TRUE(c.log->take_syncs().empty());  // still carving
}

// A zero-byte sync request has nothing to sync: the provider is not called.
TEST(DmaSync, ZeroSizeIsNotSynced) {
  auto c = make_counted_pool(syncing(), {.needs_sync = true});
  Page* p = c.pool->alloc_page();
  c.log->take_syncs();  // map-time syncs
  c.pool->put_page(p, 0, true);
  EXPECT_TRUE(c.log->take_syncs().empty());
  EXPECT_CONSISTENT(c.pool);
}

// A provider that says it needs no syncs (coherent memory) is never asked,
// even with kDmaSyncDev.
TEST(DmaSync, NeverWhenTheProviderNeedsNoSync) {
  auto c = make_counted_pool(syncing(), {.needs_sync = false});
  std::vector<Page*> pages = alloc_n(*c.pool, 10);
  c.pool->recycle_direct(pages[0]);
  c.pool->put_page(pages[1], 100, true);
  c.pool->put_page(pages[2], -1, false);
  on_other_thread([&] { put_all(std::vector<Page*>(pages.begin() + 3, pages.end())); });
  EXPECT_TRUE(c.log->take_syncs().empty());
  EXPECT_CONSISTENT(c.pool);
}

// Without kDmaSyncDev a provider that needs syncs is not asked either.
TEST(DmaSync, NeverWithoutTheFlag) {
  Params params = mapped();
  params.max_len = kMaxLen;
  auto c = make_counted_pool(params, {.needs_sync = true});
  std::vector<Page*> pages = alloc_n(*c.pool, 10);
  c.pool->recycle_direct(pages[0]);
  c.pool->put_page(pages[1], 100, true);
  on_other_thread([&] { put_all(std::vector<Page*>(pages.begin() + 2, pages.end())); });
  EXPECT_TRUE(c.log->take_syncs().empty());
  EXPECT_CONSISTENT(c.pool);
}

}  // namespace
