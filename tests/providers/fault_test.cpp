// Fault injection: the provider runs out of memory (alloc_bulk returns 0,
// or fewer pages than asked), or refuses the device mapping for some or all
// pages. Whatever fails, and wherever (alloc_page, alloc_pages_bulk,
// alloc_frag; the first refill or a later one):
//  - the allocation returns nullptr (or fewer pages) only when no page can
//    be had, and alloc.fail counts it;
//  - the pool stays consistent: check() passes and the levels add up;
//  - nothing leaks: after teardown the provider got back every page it
//    handed out, each refused page exactly once and never unmapped (it was
//    never mapped), each mapped page unmapped exactly once.
#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

#include "pagepool/pagepool.hpp"
#include "test_support.hpp"

namespace {

using namespace ppprov;
using pagepool::kDmaMap;
using pagepool::kDmaSyncDev;
using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;

Params params(std::uint32_t flags = kDmaMap | kDmaSyncDev) {
  Params p;
  p.flags = flags;
  if (flags & kDmaSyncDev) p.max_len = 2048;
  return p;
}

CountingOptions counting(std::size_t budget = SIZE_MAX, MapFail map = MapFail::never) {
  return {.needs_sync = true, .map_fail = map, .page_budget = budget};
}

// Each of the three allocation entry points fails alone, counted once each.
void expect_every_entry_point_fails(CountedPool& c) {
  StatsWatch w(*c.pool);
  EXPECT_EQ(c.pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  Page* out[10];
  EXPECT_EQ(c.pool->alloc_pages_bulk(out, 10), 0u);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  std::uint32_t off = 0;
  EXPECT_EQ(c.pool->alloc_frag(100, &off), nullptr);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
}

// ---- out of memory ---------------------------------------------------------

// No memory at the very first refill.
TEST(FaultOom, AtTheFirstRefill) {
  auto c = make_counted_pool(params(), counting());
  c.prov->set_oom(true);
  expect_every_entry_point_fails(c);
  EXPECT_EQ(c.log->alloc_calls.load(), 3u);
  EXPECT_EQ(c.log->map_calls.load(), 0u);
  EXPECT_TRUE(c.log->take_syncs().empty());
  EXPECT_EQ(expect_consistent(*c.pool, 0).held, 0u);

  // Memory again: the pool works as if nothing happened.
  c.prov->set_oom(false);
  StatsWatch w(*c.pool);
  std::vector<Page*> pages = alloc_n(*c.pool, 10);
  EXPECT_MOVED(w, {.fast = 9, .slow = 1, .empty = 1, .hold = 64});
  EXPECT_CONSISTENT(c.pool, 10);
  put_all(pages);
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// Memory runs out after some success: the provider may have 100 pages out.
// The second refill gets 36 of the 64 asked, the third nothing. Pages coming
// back (to the cache, or through the ring from another thread) serve again
// without the provider.
TEST(FaultOom, AfterSomeSuccess) {
  auto c = make_counted_pool(params(), counting(100));
  StatsWatch w(*c.pool);
  std::vector<Page*> pages = alloc_n(*c.pool, 100);
  ASSERT_EQ(pages.size(), 100u);
  EXPECT_MOVED(w, {.fast = 98, .slow = 2, .empty = 2, .hold = 100});
  EXPECT_EQ(c.log->alloc_short.load(), 1u);
  EXPECT_EQ(c.pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  EXPECT_CONSISTENT(c.pool, 100);

  put_all(slice(pages, 90, 100));
  pages.resize(90);
  EXPECT_MOVED(w, {.cached = 10});
  for (int i = 0; i < 10; ++i) pages.push_back(c.pool->alloc_page());
  EXPECT_EQ(c.pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.fast = 10, .empty = 1, .fail = 1});

  on_other_thread([&] { put_all(slice(pages, 0, 20)); });
  std::vector<Page*> back = alloc_until_fail(*c.pool);
  EXPECT_EQ(back.size(), 20u);
  EXPECT_MOVED(w, {.fast = 19, .empty = 1, .refill = 1, .fail = 1, .ring = 20});
  EXPECT_CONSISTENT(c.pool, 100);
  EXPECT_EQ(c.log->alloc_pages.load(), 100u);
  expect_mapping_balanced(*c.pool, *c.log);

  put_all(slice(pages, 20, 100));
  put_all(back);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// The provider hands out fewer pages than asked (5 per call): the pool takes
// what it gets and asks again when they are used up.
TEST(FaultOom, FewerThanAsked) {
  auto c = make_counted_pool(params(), counting());
  c.prov->set_per_call_cap(5);
  StatsWatch w(*c.pool);
  std::vector<Page*> pages = alloc_n(*c.pool, 12);
  EXPECT_MOVED(w, {.fast = 9, .slow = 3, .empty = 3, .hold = 15});
  EXPECT_EQ(c.log->alloc_calls.load(), 3u);
  EXPECT_EQ(c.log->alloc_requested.load(), 3u * Pool::kBulk);
  EXPECT_EQ(c.log->alloc_short.load(), 3u);
  EXPECT_EQ(c.log->map_calls.load(), 15u);
  EXPECT_EQ(c.log->take_syncs().size(), 15u);
  EXPECT_CONSISTENT(c.pool, 12);

  // Then only 2 more at all: 3 from the cache, a refill of 2, then nothing.
  c.prov->set_budget(17);
  std::vector<Page*> more = alloc_until_fail(*c.pool);
  EXPECT_EQ(more.size(), 5u);
  EXPECT_MOVED(w, {.fast = 4, .slow = 1, .empty = 2, .fail = 1, .hold = 2});
  EXPECT_CONSISTENT(c.pool, 17);
  std::set<Page*> all(pages.begin(), pages.end());
  all.insert(more.begin(), more.end());
  EXPECT_EQ(all.size(), 17u);

  put_all(pages);
  put_all(more);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// The chunk reservation itself fails (a ChunkProvider's reserve_chunk
// returns nullptr): first at the very first chunk, then after a chunk's
// pages are all out.
TEST(FaultOom, ChunkReservationFails) {
  auto fake = std::make_shared<FakeNodeProvider>(0);  // 2 MiB chunks: 512 pages
  auto c = make_counted_pool(params(), counting(), fake);
  fake->fail.store(true);
  EXPECT_EQ(c.pool->alloc_page(), nullptr);
  EXPECT_EQ(fake->chunks_made.load(), 0);
  fake->fail.store(false);
  std::vector<Page*> pages = alloc_n(*c.pool, 512);
  EXPECT_EQ(fake->chunks_made.load(), 1);
  fake->fail.store(true);
  StatsWatch w(*c.pool);
  EXPECT_EQ(c.pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  EXPECT_CONSISTENT(c.pool, 512);
  put_all(slice(pages, 0, 100));
  std::vector<Page*> again = alloc_n(*c.pool, 100);
  EXPECT_EQ(fake->chunks_made.load(), 1);
  put_all(again);
  put_all(slice(pages, 100, 512));
  c.pool.reset();
  EXPECT_EQ(fake->chunks_live.load(), 1) << "the caller's reference keeps the chunks";
  EXPECT_ALL_RETURNED(c.log);
}

// An out-of-memory provider under a max_inflight cap: a refused allocation
// is a failure (alloc.fail), a capped one is not (alloc.limited) and does
// not ask the provider.
TEST(FaultOom, FailIsNotLimited) {
  Params p = params();
  p.max_inflight = 10;
  auto c = make_counted_pool(p, counting());
  c.prov->set_oom(true);
  StatsWatch w(*c.pool);
  EXPECT_EQ(c.pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  c.prov->set_oom(false);
  std::vector<Page*> pages = alloc_n(*c.pool, 10);
  EXPECT_MOVED(w, {.fast = 9, .slow = 1, .empty = 1, .hold = 64});
  const std::uint64_t calls = c.log->alloc_calls.load();
  EXPECT_EQ(c.pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.limited = 1});
  EXPECT_EQ(c.log->alloc_calls.load(), calls);
  EXPECT_CONSISTENT(c.pool, 10);
  put_all(pages);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// ---- mapping refused -----------------------------------------------------------

// Every mapping refused: the pages go straight back to the provider, each
// once, never unmapped and never synced; every entry point fails.
TEST(FaultMap, RefusedForEveryPage) {
  auto c = make_counted_pool(params(), counting(SIZE_MAX, MapFail::always));
  expect_every_entry_point_fails(c);
  EXPECT_EQ(c.log->map_calls.load(), 3u * 64u);
  EXPECT_EQ(c.log->map_refused.load(), 3u * 64u);
  EXPECT_EQ(c.log->release_pages.load(), 3u * 64u);
  EXPECT_EQ(c.log->refused_released.load(), 3u * 64u);
  EXPECT_EQ(c.log->unmap_calls.load(), 0u);
  EXPECT_EQ(c.log->out_now(), 0u);
  EXPECT_TRUE(c.log->take_syncs().empty());
  EXPECT_EQ(expect_consistent(*c.pool, 0).held, 0u);
  EXPECT_EQ(c.pool->stats().hold, 0u);
  EXPECT_EQ(c.pool->stats().release, 0u) << "refused pages never entered the pool";
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_EQ(c.log->unmap_calls.load(), 0u);
  EXPECT_ALL_RETURNED(c.log);
}

// Every other mapping refused: the refill keeps the mapped half; each kept
// page carries its own mapping; only mapped pages are synced.
TEST(FaultMap, RefusedForEveryOtherPage) {
  auto c = make_counted_pool(params(), counting(SIZE_MAX, MapFail::every_other));
  StatsWatch w(*c.pool);
  std::vector<Page*> pages = alloc_n(*c.pool, 32);
  EXPECT_MOVED(w, {.fast = 31, .slow = 1, .empty = 1, .hold = 32});
  EXPECT_EQ(c.log->map_calls.load(), 64u);
  EXPECT_EQ(c.log->refused_released.load(), 32u);
  EXPECT_EQ(c.log->take_syncs().size(), 32u);
  for (Page* p : pages) {
    EXPECT_TRUE(c.log->state_of(p).mapped);
    EXPECT_EQ(pagepool::page_dma_addr(p), c.log->dma_of(p).value_or(0));
  }
  pages.push_back(c.pool->alloc_page());  // the 33rd needs another refill
  ASSERT_NE(pages.back(), nullptr);
  EXPECT_MOVED(w, {.slow = 1, .empty = 1, .hold = 32});
  EXPECT_CONSISTENT(c.pool, 33);
  expect_mapping_balanced(*c.pool, *c.log);
  put_all(pages);
  c.pool.reset();
  EXPECT_EQ(c.log->unmap_calls.load(), 64u);
  EXPECT_EQ(c.log->refused_released.load(), 64u);
  EXPECT_ALL_RETURNED(c.log);
}

// Mapping works at first, then is refused: the allocation needing a new
// page fails, while the pages already mapped keep recycling, never mapped
// again.
TEST(FaultMap, RefusedAfterSomeSuccess) {
  auto c = make_counted_pool(params(), counting());
  std::vector<Page*> pages = alloc_n(*c.pool, 64);
  c.prov->set_map_fail(MapFail::always);
  StatsWatch w(*c.pool);
  EXPECT_EQ(c.pool->alloc_page(), nullptr);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  EXPECT_EQ(c.log->map_refused.load(), 64u);
  EXPECT_CONSISTENT(c.pool, 64);
  for (int round = 0; round < 3; ++round) {
    on_other_thread([&] { put_all(slice(pages, 0, 32)); });
    put_all(slice(pages, 32, 64));
    pages = alloc_n(*c.pool, 64);  // all recycled: no provider call
    EXPECT_EQ(pages.size(), 64u);
  }
  EXPECT_EQ(c.log->map_calls.load(), 128u);
  EXPECT_EQ(c.log->mapped_now(), 64u);
  EXPECT_CONSISTENT(c.pool, 64);
  put_all(pages);
  c.pool.reset();
  EXPECT_EQ(c.log->unmap_calls.load(), 64u);
  EXPECT_ALL_RETURNED(c.log);
}

// ---- alloc_pages_bulk and alloc_frag ------------------------------------------

// alloc_pages_bulk returns what it could get (70 of 100: the provider may
// have 70 out), every page valid and distinct, one failure counted.
TEST(FaultBulk, ReturnsWhatItGot) {
  auto c = make_counted_pool(params(), counting(70));
  StatsWatch w(*c.pool);
  std::vector<Page*> out(100);
  ASSERT_EQ(c.pool->alloc_pages_bulk(out.data(), 100), 70u);
  out.resize(70);
  EXPECT_MOVED(w, {.fast = 68, .slow = 2, .empty = 3, .fail = 1, .hold = 70});
  EXPECT_EQ(std::set<Page*>(out.begin(), out.end()).size(), 70u);
  for (std::size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i]->ref.load(), 1u);
    EXPECT_EQ(pagepool::page_pool(out[i]), c.pool.get());
    fill_page(out[i], static_cast<unsigned char>(i));
  }
  EXPECT_CONSISTENT(c.pool, 70);

  Page* more[10];
  EXPECT_EQ(c.pool->alloc_pages_bulk(more, 10), 0u);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  put_all(slice(out, 65, 70));
  out.resize(65);
  EXPECT_MOVED(w, {.cached = 5});
  ASSERT_EQ(c.pool->alloc_pages_bulk(more, 10), 5u);
  EXPECT_MOVED(w, {.fast = 5, .empty = 1, .fail = 1});
  out.insert(out.end(), more, more + 5);
  EXPECT_CONSISTENT(c.pool, 70);
  put_all(out);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// alloc_pages_bulk with every mapping refused returns 0.
TEST(FaultBulk, MapRefused) {
  auto c = make_counted_pool(params(), counting(SIZE_MAX, MapFail::always));
  Page* out[100];
  EXPECT_EQ(c.pool->alloc_pages_bulk(out, 100), 0u);
  EXPECT_EQ(c.pool->stats().alloc.fail, PAGEPOOL_STATS ? 1u : 0u);
  EXPECT_CONSISTENT(c.pool, 0);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// alloc_frag when the carved page is used up and no new page can be had:
// nullptr, counted; the finished page's fragments stay valid and it
// recycles at its last put; carving resumes when memory is back.
TEST(FaultFrag, NoNewPageToCarve) {
  auto c = make_counted_pool(params(), counting(1));
  StatsWatch w(*c.pool);
  std::uint32_t off[4];
  Page* f[4];
  for (int k = 0; k < 4; ++k) {
    f[k] = c.pool->alloc_frag(1024, &off[k]);
    ASSERT_NE(f[k], nullptr);
    EXPECT_EQ(off[k], 1024u * static_cast<unsigned>(k));
  }
  EXPECT_MOVED(w, {.slow = 1, .empty = 1, .hold = 1});
  std::uint32_t o = 0;
  EXPECT_EQ(c.pool->alloc_frag(1024, &o), nullptr);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  const pagepool::Levels l = expect_consistent(*c.pool, 1);
  EXPECT_EQ(l.carving_idle, 0u);
  // Bad sizes are refused without touching anything.
  EXPECT_EQ(c.pool->alloc_frag(0, &o), nullptr);
  EXPECT_EQ(c.pool->alloc_frag(4097, &o), nullptr);
  EXPECT_MOVED(w, {});
  // The fragments are still the holders' to use.
  auto* data = static_cast<unsigned char*>(pagepool::page_address(f[0]));
  for (int k = 0; k < 4; ++k) data[off[k]] = static_cast<unsigned char>(k);
  for (int k = 0; k < 4; ++k) pagepool::put_page(f[k]);
  EXPECT_MOVED(w, {.cached = 1});
  EXPECT_CONSISTENT(c.pool, 0);
  Page* g = c.pool->alloc_frag(2048, &o);
  EXPECT_EQ(g, f[0]);
  EXPECT_EQ(o, 0u);
  EXPECT_MOVED(w, {.fast = 1});
  pagepool::put_page(g);
  c.pool.reset();
  EXPECT_ALL_RETURNED(c.log);
}

// alloc_frag with the mapping refused, at the first page and at a later one.
TEST(FaultFrag, MapRefused) {
  auto c = make_counted_pool(params(), counting(SIZE_MAX, MapFail::always));
  std::uint32_t o = 0;
  EXPECT_EQ(c.pool->alloc_frag(100, &o), nullptr);
  EXPECT_EQ(c.log->refused_released.load(), 64u);
  c.prov->set_map_fail(MapFail::never);
  std::vector<Page*> frags;
  for (int i = 0; i < 64 * 2; ++i) {  // 64 pages' worth of 2048-byte fragments
    Page* f = c.pool->alloc_frag(2048, &o);
    ASSERT_NE(f, nullptr);
    frags.push_back(f);
  }
  c.prov->set_map_fail(MapFail::always);
  EXPECT_EQ(c.pool->alloc_frag(2048, &o), nullptr);
  EXPECT_CONSISTENT(c.pool, 64);
  put_all(frags);
  EXPECT_CONSISTENT(c.pool, 0);
  c.pool.reset();
  EXPECT_EQ(c.log->refused_released.load(), 128u);
  EXPECT_ALL_RETURNED(c.log);
}

// Failures interleaved with returns from other threads, then a teardown
// with pages out: still nothing leaks.
TEST(FaultMixed, FailuresReturnsAndTeardown) {
  auto c = make_counted_pool(params(), counting(200, MapFail::every_other));
  std::vector<Page*> held;
  for (int round = 0; round < 20; ++round) {
    std::vector<Page*> got = alloc_until_fail(*c.pool, 150);
    held.insert(held.end(), got.begin(), got.end());
    EXPECT_CONSISTENT(c.pool, held.size());
    const std::size_t give = held.size() / 2;
    std::vector<Page*> back = slice(held, 0, give);
    held.erase(held.begin(), held.begin() + static_cast<std::ptrdiff_t>(give));
    if (round % 2)
      on_other_thread([&] { put_all(back); });
    else
      put_all(back);
    if (round == 10) c.prov->set_map_fail(MapFail::never);
    if (round == 15) c.prov->set_oom(true);
  }
  EXPECT_CONSISTENT(c.pool, held.size());
  c.pool.reset();
  on_other_thread([&] { put_all(held); });
  EXPECT_TRUE(c.provider.expired());
  EXPECT_GT(c.log->refused_released.load(), 0u);
  EXPECT_ALL_RETURNED(c.log);
}

}  // namespace
