// Fragments: alloc_frag carves a page into 64-byte-granular pieces, each
// holding one reference on the page.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "pagepool/pagepool.hpp"
#include "test_providers.hpp"
#include "test_util.hpp"

namespace {

using namespace pptest;
using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;

struct Frag {
  Page* page;
  std::uint32_t offset;
  std::uint32_t size;
};

Frag frag(Pool& pool, std::uint32_t size) {
  std::uint32_t off = 0xdeadbeef;
  Page* p = pool.alloc_frag(size, &off);
  return {p, off, size};
}

// Sizes round up to a multiple of 64 and offsets advance by the rounded
// size, all in one page taken with one allocation.
TEST(Frag, SizesRoundUpTo64AndOffsetsAdvance) {
  auto pool = Pool::create({});
  StatsWatch w(*pool);
  const std::uint32_t sizes[] = {1, 1, 65, 64, 100, 128, 63};
  const std::uint32_t want[] = {0, 64, 128, 256, 320, 448, 576};
  std::vector<Frag> fs;
  for (std::uint32_t s : sizes) fs.push_back(frag(*pool, s));
  for (std::size_t i = 0; i < fs.size(); ++i) {
    ASSERT_NE(fs[i].page, nullptr);
    EXPECT_EQ(fs[i].page, fs[0].page);
    EXPECT_EQ(fs[i].offset, want[i]) << "fragment " << i;
  }
  EXPECT_MOVED(w, {.slow = 1, .empty = 1, .hold = 64});
  EXPECT_EQ(pool->inflight(), 1u);
  for (const Frag& f : fs) pagepool::put_page(f.page);
  EXPECT_CONSISTENT(pool);
}

// A page is carved until the next fragment does not fit; then a new page
// starts at offset 0. Here 64 fragments of 64 bytes fill an order-0 page.
TEST(Frag, PageFillsUpThenANewOneStarts) {
  auto pool = Pool::create({});
  std::vector<Frag> fs;
  for (int i = 0; i < 64; ++i) fs.push_back(frag(*pool, 64));
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(fs[i].page, fs[0].page);
    EXPECT_EQ(fs[i].offset, 64u * i);
  }
  StatsWatch w(*pool);
  Frag next = frag(*pool, 64);
  ASSERT_NE(next.page, nullptr);
  EXPECT_NE(next.page, fs[0].page);
  EXPECT_EQ(next.offset, 0u);
  EXPECT_MOVED(w, {.fast = 1});
  EXPECT_EQ(pool->inflight(), 2u);
  fs.push_back(next);
  for (const Frag& f : fs) pagepool::put_page(f.page);
  EXPECT_CONSISTENT(pool);
}

// A fragment that does not fit in the rest of the page starts a new page
// even if smaller ones would still fit.
TEST(Frag, FragmentThatDoesNotFitStartsANewPage) {
  auto pool = Pool::create({});
  Frag a = frag(*pool, 3000);   // 3008 used
  Frag b = frag(*pool, 1100);   // 1152 > 1088 left
  Frag c = frag(*pool, 1000);   // fits in b's page
  EXPECT_NE(a.page, b.page);
  EXPECT_EQ(b.offset, 0u);
  EXPECT_EQ(c.page, b.page);
  EXPECT_EQ(c.offset, 1152u);
  for (const Frag& f : {a, b, c}) pagepool::put_page(f.page);
  EXPECT_CONSISTENT(pool);
}

// A fragment of exactly the page size is the whole page.
TEST(Frag, WholePageFragment) {
  auto pool = Pool::create({});
  Frag a = frag(*pool, 4096);
  Frag b = frag(*pool, 1);
  ASSERT_NE(a.page, nullptr);
  ASSERT_NE(b.page, nullptr);
  EXPECT_EQ(a.offset, 0u);
  EXPECT_NE(b.page, a.page);
  EXPECT_EQ(b.offset, 0u);
  fill_page(a.page, 0xee);
  pagepool::put_page(a.page);
  pagepool::put_page(b.page);
  EXPECT_CONSISTENT(pool);
}

// Size 0 and sizes above the page size give nullptr; no page is taken and
// nothing is counted.
TEST(Frag, InvalidSizesGiveNullptr) {
  auto c = make_counted_pool({});
  StatsWatch w(*c.pool);
  std::uint32_t off = 0;
  EXPECT_EQ(c.pool->alloc_frag(0, &off), nullptr);
  EXPECT_EQ(c.pool->alloc_frag(4097, &off), nullptr);
  EXPECT_EQ(c.pool->alloc_frag(8192, &off), nullptr);
  EXPECT_EQ(c.pool->alloc_frag(std::numeric_limits<std::uint32_t>::max(), &off), nullptr);
  EXPECT_EQ(c.pool->alloc_frag(std::numeric_limits<std::uint32_t>::max() - 63, &off), nullptr);
  EXPECT_MOVED(w, {});
  EXPECT_EQ(c.log->alloc_calls.load(), 0u);
  EXPECT_EQ(c.pool->levels().held, 0u);
}

// An invalid size while a page is being carved leaves that page alone: the
// next valid fragment continues where the last one ended.
TEST(Frag, InvalidSizeDoesNotEndTheCurrentPage) {
  auto pool = Pool::create({});
  Frag a = frag(*pool, 64);
  std::uint32_t off = 0;
  EXPECT_EQ(pool->alloc_frag(0, &off), nullptr);
  EXPECT_EQ(pool->alloc_frag(4097, &off), nullptr);
  Frag b = frag(*pool, 64);
  EXPECT_EQ(b.page, a.page);
  EXPECT_EQ(b.offset, 64u);
  pagepool::put_page(a.page);
  pagepool::put_page(b.page);
  EXPECT_CONSISTENT(pool);
}

// Regression (fixed): alloc_frag's inline fast path checks `frag_offset_ + sz <= page_bytes_`
// in 32-bit arithmetic. With a page in progress, a size just below 4 GiB
// wraps the sum to a small value: the call returns the page (a "fragment"
// of ~4 GiB) instead of nullptr, and resets the offset to 0 so the next
// fragment overlaps one already handed out.
TEST(Frag, HugeSizeWithAPageInProgressGivesNullptr) {
  auto pool = Pool::create({});
  Frag a = frag(*pool, 64);
  ASSERT_NE(a.page, nullptr);
  Frag huge = frag(*pool, 0xFFFFFFC0u);  // rounds to itself; 64 + it wraps to 0
  EXPECT_EQ(huge.page, nullptr) << "got a fragment of " << huge.size << " bytes at offset "
                                << huge.offset;
  Frag b = frag(*pool, 64);
  ASSERT_NE(b.page, nullptr);
  EXPECT_FALSE(b.page == a.page && b.offset < a.offset + 64) << "fragments overlap";
  pagepool::put_page(a.page);
  if (huge.page) pagepool::put_page(huge.page);
  pagepool::put_page(b.page);
  EXPECT_CONSISTENT(pool);
}

// The page being carved counts as inflight only while one of its fragments
// is out; with all of them back it is carving_idle, and carving goes on.
TEST(Frag, CarvingPageIsInflightOnlyWhileAFragmentIsOut) {
  auto pool = Pool::create({});
  Frag a = frag(*pool, 100);
  auto l = pool->levels();
  EXPECT_EQ(l.inflight, 1u);
  EXPECT_EQ(l.carving_idle, 0u);
  EXPECT_EQ(l.cache, 63u);
  StatsWatch w(*pool);
  pagepool::put_page(a.page);
  EXPECT_MOVED(w, {});  // not recycled: still being carved
  l = expect_consistent(*pool);
  EXPECT_EQ(l.inflight, 0u);
  EXPECT_EQ(l.carving_idle, 1u);
  EXPECT_EQ(l.cache, 63u);
  Frag b = frag(*pool, 100);
  EXPECT_EQ(b.page, a.page);
  EXPECT_EQ(b.offset, 128u);
  EXPECT_MOVED(w, {});
  l = pool->levels();
  EXPECT_EQ(l.inflight, 1u);
  EXPECT_EQ(l.carving_idle, 0u);
  pagepool::put_page(b.page);
  EXPECT_CONSISTENT(pool);
}

// Each fragment holds one reference: after carving moves on, the old page
// stays out until its last fragment is put, which recycles it.
TEST(Frag, PageRecyclesAtItsLastFragment) {
  auto pool = Pool::create({});
  std::vector<Frag> old;
  for (int i = 0; i < 4; ++i) old.push_back(frag(*pool, 1024));
  Frag next = frag(*pool, 1024);  // ends carving of the first page
  ASSERT_NE(next.page, old[0].page);
  EXPECT_EQ(pool->inflight(), 2u);
  StatsWatch w(*pool);
  for (int i = 0; i < 3; ++i) pagepool::put_page(old[i].page);
  EXPECT_MOVED(w, {});
  EXPECT_EQ(pool->inflight(), 2u);
  pagepool::put_page(old[3].page);
  EXPECT_MOVED(w, {.cached = 1});
  EXPECT_EQ(pool->inflight(), 1u);
  pagepool::put_page(next.page);
  EXPECT_CONSISTENT(pool, 0);
}

// If every fragment is already back when carving moves on, the old page
// is recycled into the cache right then (and, the cache being a stack, is
// the very page the new carving starts on).
TEST(Frag, IdlePageRecyclesWhenCarvingMovesOn) {
  auto pool = Pool::create({});
  Frag a = frag(*pool, 4000);
  pagepool::put_page(a.page);
  StatsWatch w(*pool);
  Frag b = frag(*pool, 200);
  ASSERT_NE(b.page, nullptr);
  EXPECT_EQ(b.page, a.page);
  EXPECT_EQ(b.offset, 0u);
  EXPECT_MOVED(w, {.fast = 1, .cached = 1});
  EXPECT_EQ(pool->inflight(), 1u);
  EXPECT_EQ(pool->levels().cache, 63u);
  pagepool::put_page(b.page);
  EXPECT_CONSISTENT(pool);
}

// The last fragment put from another thread sends the page to the ring.
TEST(Frag, LastFragmentFromAnotherThreadGoesToTheRing) {
  auto pool = Pool::create({});
  Frag a = frag(*pool, 2048);
  Frag b = frag(*pool, 2048);
  Frag c = frag(*pool, 64);  // next page
  ASSERT_EQ(a.page, b.page);
  StatsWatch w(*pool);
  on_other_thread([&] {
    pagepool::put_page(a.page);
    pagepool::put_page(b.page);
  });
  EXPECT_MOVED(w, {.ring = 1});
  EXPECT_EQ(pool->levels().ring, 1u);
  pagepool::put_page(c.page);
  EXPECT_CONSISTENT(pool);
}

// get_page on a fragment adds a reference like on a page; release_page of
// the last reference gives the page to the provider.
TEST(Frag, GetPageAndReleasePageOnFragments) {
  auto pool = Pool::create({});
  Frag a = frag(*pool, 2048);
  pagepool::get_page(a.page);
  Frag b = frag(*pool, 4096);  // ends carving of a's page
  ASSERT_NE(b.page, a.page);
  StatsWatch w(*pool);
  pool->release_page(a.page);
  EXPECT_MOVED(w, {});
  pool->release_page(a.page);
  EXPECT_MOVED(w, {.release = 1});
  pagepool::put_page(b.page);
  EXPECT_CONSISTENT(pool);
}

// Fragments never overlap and each is writable over its length; the page
// of any fragment byte is found by virt_to_page.
TEST(Frag, FragmentsAreDisjointAndWritable) {
  auto pool = Pool::create({});
  std::vector<Frag> fs;
  for (std::uint32_t i = 0; i < 200; ++i) fs.push_back(frag(*pool, 1 + (i * 97) % 900));
  for (std::size_t i = 0; i < fs.size(); ++i) {
    ASSERT_NE(fs[i].page, nullptr);
    ASSERT_EQ(fs[i].offset % 64, 0u);
    ASSERT_LE(fs[i].offset + fs[i].size, pagepool::page_size(fs[i].page));
    auto* b = static_cast<unsigned char*>(pagepool::page_address(fs[i].page)) + fs[i].offset;
    std::memset(b, static_cast<int>(i & 0xff), fs[i].size);
    EXPECT_EQ(pagepool::virt_to_page(b), fs[i].page);
    EXPECT_EQ(pagepool::virt_to_page(b + fs[i].size - 1), fs[i].page);
  }
  for (std::size_t i = 0; i < fs.size(); ++i) {
    const auto* b =
        static_cast<const unsigned char*>(pagepool::page_address(fs[i].page)) + fs[i].offset;
    for (std::uint32_t k = 0; k < fs[i].size; ++k)
      ASSERT_EQ(b[k], static_cast<unsigned char>(i & 0xff)) << "fragment " << i << " byte " << k;
  }
  for (const Frag& f : fs) pagepool::put_page(f.page);
  EXPECT_CONSISTENT(pool, 0);
}

// Higher orders carve the bigger page.
TEST(Frag, HigherOrderPagesHoldMoreFragments) {
  Params params;
  params.order = 2;
  auto pool = Pool::create(params);
  std::vector<Frag> fs;
  for (int i = 0; i < 16; ++i) fs.push_back(frag(*pool, 1024));
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(fs[i].page, fs[0].page);
    EXPECT_EQ(fs[i].offset, 1024u * i);
  }
  Frag next = frag(*pool, 1024);
  EXPECT_NE(next.page, fs[0].page);
  std::uint32_t off = 0;
  EXPECT_EQ(pool->alloc_frag(16385, &off), nullptr);
  fs.push_back(next);
  for (const Frag& f : fs) pagepool::put_page(f.page);
  EXPECT_CONSISTENT(pool);
}

// max_inflight applies to fragment pages: with a cap of one page, a new
// page cannot start while the old one has a fragment out
// (alloc.limited), and can once the fragment is back.
TEST(Frag, MaxInflightLimitsNewPages) {
  Params params;
  params.max_inflight = 1;
  auto pool = Pool::create(params);
  Frag a = frag(*pool, 4096);
  ASSERT_NE(a.page, nullptr);
  StatsWatch w(*pool);
  std::uint32_t off = 0;
  EXPECT_EQ(pool->alloc_frag(64, &off), nullptr);
  EXPECT_MOVED(w, {.limited = 1});
  pagepool::put_page(a.page);
  EXPECT_MOVED(w, {.cached = 1});
  Frag b = frag(*pool, 64);
  EXPECT_NE(b.page, nullptr);
  EXPECT_MOVED(w, {.fast = 1});
  if (b.page) pagepool::put_page(b.page);
  EXPECT_CONSISTENT(pool);
}

// Provider out of memory: alloc_frag gives nullptr and counts alloc.fail.
TEST(Frag, ProviderFailureGivesNullptr) {
  auto c = make_counted_pool({}, {.page_budget = 0});
  StatsWatch w(*c.pool);
  std::uint32_t off = 0;
  EXPECT_EQ(c.pool->alloc_frag(64, &off), nullptr);
  EXPECT_MOVED(w, {.empty = 1, .fail = 1});
  EXPECT_CONSISTENT(c.pool);
}

}  // namespace
