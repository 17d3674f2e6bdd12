// The pool-agnostic page functions: page_address, page_size, page_dma_addr,
// page_pool, virt_to_page, get_page and put_page(Page*).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "pagepool/pagepool.hpp"
#include "test_providers.hpp"
#include "test_util.hpp"

namespace {

using namespace pptest;
using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;

// page_address is the first byte of the page's data, page_size its length,
// page_pool the pool it came from; two pools never share a page.
TEST(PageFunctions, AddressSizeAndPool) {
  auto a = Pool::create({});
  Params p1;
  p1.order = 1;
  auto b = Pool::create(p1);
  Page* pa = a->alloc_page();
  Page* pb = b->alloc_page();
  ASSERT_NE(pa, nullptr);
  ASSERT_NE(pb, nullptr);
  EXPECT_EQ(pagepool::page_pool(pa), a.get());
  EXPECT_EQ(pagepool::page_pool(pb), b.get());
  EXPECT_EQ(pagepool::page_size(pa), 4096u);
  EXPECT_EQ(pagepool::page_size(pb), 8192u);
  EXPECT_EQ(pagepool::page_address(pa), reinterpret_cast<void*>(pa->addr_nid & ~std::uintptr_t{4095}));
  EXPECT_NE(pagepool::page_address(pa), pagepool::page_address(pb));
  fill_page(pa, 1);
  fill_page(pb, 2);
  EXPECT_TRUE(page_holds(pa, 1));
  EXPECT_TRUE(page_holds(pb, 2));
  pagepool::put_page(pa);
  pagepool::put_page(pb);
  EXPECT_CONSISTENT(a);
  EXPECT_CONSISTENT(b);
}

// Without kDmaMap no mapping is made: page_dma_addr is 0.
TEST(PageFunctions, DmaAddrIsZeroWithoutDmaMap) {
  auto pool = Pool::create({});
  Page* p = pool->alloc_page();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(pagepool::page_dma_addr(p), 0u);
  pagepool::put_page(p);
}

// With kDmaMap and the anonymous provider the device address is the
// virtual address.
TEST(PageFunctions, DmaAddrOfAnonProviderIsTheVirtualAddress) {
  Params params;
  params.flags = pagepool::kDmaMap;
  auto pool = Pool::create(params);
  std::vector<Page*> pages = alloc_n(*pool, 70);
  for (Page* p : pages)
    EXPECT_EQ(pagepool::page_dma_addr(p), reinterpret_cast<std::uintptr_t>(pagepool::page_address(p)));
  put_all(pages);
  EXPECT_CONSISTENT(pool);
}

// ---- virt_to_page ----------------------------------------------------------

// Any byte of any page -> that page's descriptor, for small and huge
// orders: first byte, last byte, a byte in between, and the last byte of
// one page next to the first byte of the next.
class VirtToPage : public ::testing::TestWithParam<unsigned> {};

TEST_P(VirtToPage, EveryByteOfAPageMapsToIt) {
  Params params;
  params.order = GetParam();
  auto pool = Pool::create(params);
  const std::size_t size = pool->page_bytes();
  // Two refills' worth for order 0, a few pages for huge orders.
  const std::size_t n = params.order == 0 ? 130 : 3;
  std::vector<Page*> pages = alloc_n(*pool, n);
  ASSERT_EQ(pages.size(), n);
  for (Page* p : pages) {
    auto* b = static_cast<unsigned char*>(pagepool::page_address(p));
    ASSERT_EQ(pagepool::virt_to_page(b), p);
    ASSERT_EQ(pagepool::virt_to_page(b + size - 1), p);
    ASSERT_EQ(pagepool::virt_to_page(b + size / 2), p);
    ASSERT_EQ(pagepool::virt_to_page(b + size / 2 + 1), p);
    ASSERT_EQ(pagepool::virt_to_page(b + 63), p);
    // A 2 MiB step inside a 4 MiB page crosses into its second granule.
    if (size > (std::size_t{2} << 20)) {
      ASSERT_EQ(pagepool::virt_to_page(b + (2u << 20)), p);
    }
  }
  // Neighbours: where page i ends and page j begins, each side maps to its own.
  for (Page* p : pages)
    for (Page* q : pages) {
      auto* pe = static_cast<unsigned char*>(pagepool::page_address(p)) + size;
      if (pe == pagepool::page_address(q)) {
        EXPECT_EQ(pagepool::virt_to_page(pe - 1), p);
        EXPECT_EQ(pagepool::virt_to_page(pe), q);
      }
    }
  // Every byte of one page (order 0 only: 4096 lookups).
  if (params.order == 0) {
    auto* b = static_cast<unsigned char*>(pagepool::page_address(pages[7]));
    for (std::size_t i = 0; i < size; ++i) {
      ASSERT_EQ(pagepool::virt_to_page(b + i), pages[7]) << i;
    }
  }
  put_all(pages);
}

INSTANTIATE_TEST_SUITE_P(Orders, VirtToPage, ::testing::Values(0u, 1u, 9u, 10u));

// Pages resting in the pool's cache, in a returner's batch or in the ring
// still belong to the pool and resolve; a page released back to the
// provider does not.
TEST(VirtToPageState, RestingPagesResolveReleasedPagesDoNot) {
  auto pool = Pool::create({});
  Page* cached = pool->alloc_page();
  Page* ringed = pool->alloc_page();
  Page* released = pool->alloc_page();
  void* ac = pagepool::page_address(cached);
  void* ar = pagepool::page_address(ringed);
  void* al = pagepool::page_address(released);
  pool->recycle_direct(cached);
  pool->put_page(ringed, -1, false);
  pool->release_page(released);
  EXPECT_EQ(pool->levels().pending, 1u);
  EXPECT_EQ(pagepool::virt_to_page(ac), cached);
  EXPECT_EQ(pagepool::virt_to_page(ar), ringed);
  EXPECT_EQ(pagepool::virt_to_page(al), nullptr);
  EXPECT_CONSISTENT(pool);
  pagepool::flush_thread();
  EXPECT_EQ(pool->levels().ring, 1u);
  EXPECT_EQ(pagepool::virt_to_page(ar), ringed);
  EXPECT_CONSISTENT(pool);
}

// Addresses that are no pool page's: nullptr, a stack variable, heap memory
// (small and large), addresses beyond user space.
TEST(VirtToPageState, ForeignAddressesGiveNullptr) {
  auto pool = Pool::create({});
  Page* p = pool->alloc_page();  // make sure some page is registered
  ASSERT_NE(p, nullptr);
  int on_stack = 0;
  auto small = std::make_unique<char[]>(64);
  void* big = std::malloc(8u << 20);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(pagepool::virt_to_page(nullptr), nullptr);
  EXPECT_EQ(pagepool::virt_to_page(&on_stack), nullptr);
  EXPECT_EQ(pagepool::virt_to_page(small.get()), nullptr);
  EXPECT_EQ(pagepool::virt_to_page(big), nullptr);
  EXPECT_EQ(pagepool::virt_to_page(static_cast<char*>(big) + (4u << 20)), nullptr);
  EXPECT_EQ(pagepool::virt_to_page(reinterpret_cast<void*>(std::uintptr_t{1} << 47)), nullptr);
  EXPECT_EQ(pagepool::virt_to_page(reinterpret_cast<void*>(~std::uintptr_t{0})), nullptr);
  // The descriptor itself is not page data.
  EXPECT_EQ(pagepool::virt_to_page(p), nullptr);
  std::free(big);
  pagepool::put_page(p);
}

// Once the pool and its provider are gone, the old addresses resolve to
// nothing (the provider unregistered its chunks).
TEST(VirtToPageState, AddressesOfAFreedProviderGiveNullptr) {
  auto pool = Pool::create({});
  Page* p = pool->alloc_page();
  ASSERT_NE(p, nullptr);
  const void* addr = pagepool::page_address(p);
  pagepool::put_page(p);
  pool.reset();
  EXPECT_EQ(pagepool::virt_to_page(addr), nullptr);
}

// ---- get_page / put_page(Page*) ------------------------------------------------

// Each get_page adds a reference that needs its own put; the page stays out
// (inflight) until the last one, which recycles it.
TEST(GetPage, EachReferenceNeedsItsOwnPut) {
  auto pool = Pool::create({});
  Page* p = pool->alloc_page();
  ASSERT_NE(p, nullptr);
  pagepool::get_page(p);
  pagepool::get_page(p);
  StatsWatch w(*pool);
  pagepool::put_page(p);
  pagepool::put_page(p);
  EXPECT_MOVED(w, {});
  EXPECT_EQ(pool->inflight(), 1u);
  fill_page(p, 0x33);  // still ours
  pagepool::put_page(p);
  EXPECT_MOVED(w, {.cached = 1});
  EXPECT_CONSISTENT(pool, 0);
}

// References taken on one thread may be dropped on others; only the last
// put, wherever it runs, returns the page (here: from a non-owner, so to
// the ring).
TEST(GetPage, ReferencesDroppedOnOtherThreads) {
  auto pool = Pool::create({});
  Page* p = pool->alloc_page();
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 4; ++i) pagepool::get_page(p);
  StatsWatch w(*pool);
  std::vector<std::thread> ts;
  for (int i = 0; i < 5; ++i) ts.emplace_back([p] { pagepool::put_page(p); });
  for (auto& t : ts) t.join();
  EXPECT_MOVED(w, {.ring = 1});
  EXPECT_EQ(pool->inflight(), 0u);
  EXPECT_EQ(pool->levels().ring, 1u);
  EXPECT_CONSISTENT(pool);
}

// put_page(Page*) recycles into the cache on the owner thread and into the
// return ring on any other.
TEST(PutPageFree, DirectOnlyOnTheOwnerThread) {
  auto pool = Pool::create({});
  Page* a = pool->alloc_page();
  Page* b = pool->alloc_page();
  StatsWatch w(*pool);
  pagepool::put_page(a);
  EXPECT_MOVED(w, {.cached = 1});
  on_other_thread([b] { pagepool::put_page(b); });
  EXPECT_MOVED(w, {.ring = 1});
  const auto l = pool->levels();
  EXPECT_EQ(l.cache, 63u);
  EXPECT_EQ(l.ring, 1u);
  EXPECT_CONSISTENT(pool);
}

}  // namespace
