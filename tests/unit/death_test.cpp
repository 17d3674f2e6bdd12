// Contract violations abort with a message instead of corrupting a list.
// The page checks are always on; the owner check is a debug-build check.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <thread>

#include "pagepool/pagepool.hpp"
#include "test_util.hpp"

namespace {

using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;

class PoolDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// A second put of a page nobody holds any more.
TEST_F(PoolDeathTest, DoublePut) {
  auto pool = Pool::create({});
  Page* p = pool->alloc_page();
  pagepool::put_page(p);
  EXPECT_DEATH(pagepool::put_page(p), "double put");
  EXPECT_DEATH(pool->put_page(p, -1, true), "double put");
  EXPECT_DEATH(pool->recycle_direct(p), "double put");
  EXPECT_DEATH(pool->release_page(p), "double put");
  EXPECT_DEATH(pool->put_pages_bulk(&p, 1), "double put");
}

// A double put from another thread, after the page went to the return
// path: while it waits in the putter's batch, and once in the ring.
TEST_F(PoolDeathTest, DoublePutThroughTheRing) {
  auto pool = Pool::create({});
  Page* p = pool->alloc_page();
  pool->put_page(p, -1, false);
  ASSERT_EQ(pool->levels().pending, 1u);
  EXPECT_DEATH(
      {
        std::thread t([p] { pagepool::put_page(p); });
        t.join();
      },
      "double put");
  pagepool::flush_thread();
  ASSERT_EQ(pool->levels().ring, 1u);
  EXPECT_DEATH(
      {
        std::thread t([p] { pagepool::put_page(p); });
        t.join();
      },
      "double put");
}

// Something that is not a page descriptor: a stack object, heap memory, a
// misaligned pointer into the descriptor arena, nullptr.
TEST_F(PoolDeathTest, ForeignPointer) {
  auto pool = Pool::create({});
  Page* real = pool->alloc_page();
  alignas(32) unsigned char on_stack[sizeof(Page)] = {};
  Page* fake = reinterpret_cast<Page*>(on_stack);
  void* heap = std::malloc(sizeof(Page));
  Page* fake_heap = static_cast<Page*>(heap);
  Page* misaligned = reinterpret_cast<Page*>(reinterpret_cast<char*>(real) + 8);
  // Through a volatile so the optimiser does not see (and warn about) the
  // null dereference past the check.
  Page* volatile null_page = nullptr;
  EXPECT_DEATH(pagepool::put_page(fake), "not a pool page");
  EXPECT_DEATH(pagepool::put_page(fake_heap), "not a pool page");
  EXPECT_DEATH(pagepool::put_page(misaligned), "not a pool page");
  EXPECT_DEATH(pagepool::put_page(null_page), "not a pool page");
  EXPECT_DEATH(pool->put_page(fake, -1, true), "not a pool page");
  EXPECT_DEATH(pool->recycle_direct(fake_heap), "not a pool page");
  EXPECT_DEATH(pool->release_page(fake), "not a pool page");
  EXPECT_DEATH(pool->put_pages_bulk(&fake_heap, 1), "not a pool page");
  EXPECT_DEATH(pagepool::get_page(fake), "not a pool page");
  // Page data is not the descriptor either.
  EXPECT_DEATH(pagepool::put_page(static_cast<Page*>(pagepool::page_address(real))),
               "not a pool page");
  std::free(heap);
  pagepool::put_page(real);
}

// Pool member functions refuse a page of another pool.
TEST_F(PoolDeathTest, WrongPool) {
  Params pa;
  pa.name = "alpha";
  Params pb;
  pb.name = "beta";
  auto a = Pool::create(pa);
  auto b = Pool::create(pb);
  Page* p = a->alloc_page();
  EXPECT_DEATH(b->put_page(p, -1, true), "belongs to pool alpha, not to pool beta");
  EXPECT_DEATH(b->recycle_direct(p), "belongs to pool");
  EXPECT_DEATH(b->release_page(p), "belongs to pool");
  pagepool::put_page(p);
}

// get_page needs a reference to copy: a page resting in the cache has none.
TEST_F(PoolDeathTest, GetPageOfAPageNobodyHolds) {
  auto pool = Pool::create({});
  Page* p = pool->alloc_page();
  pagepool::put_page(p);
  EXPECT_DEATH(pagepool::get_page(p), "nobody holds");
}

// A descriptor whose provider is gone reads as unreferenced: a put through
// it is a double put, not a corruption.
TEST_F(PoolDeathTest, StalePointerAfterTheProviderIsGone) {
  auto pool = Pool::create({});
  Page* p = pool->alloc_page();
  pagepool::put_page(p);
  pool.reset();
  EXPECT_DEATH(pagepool::put_page(p), "double put");
}

// Only the owner thread allocates (debug builds check).
TEST_F(PoolDeathTest, AllocationFromANonOwnerThread) {
#ifdef NDEBUG
  GTEST_SKIP() << "the owner check is compiled out with NDEBUG";
#else
  auto pool = Pool::create({});
  auto from_other_thread = [&](auto&& f) {
    std::thread t(f);
    t.join();
  };
  EXPECT_DEATH(from_other_thread([&] { (void)pool->alloc_page(); }),
               "alloc_page .*not its owner");
  EXPECT_DEATH(from_other_thread([&] {
                 Page* out[4];
                 (void)pool->alloc_pages_bulk(out, 4);
               }),
               "alloc_pages_bulk .*not its owner");
  EXPECT_DEATH(from_other_thread([&] {
                 std::uint32_t off;
                 (void)pool->alloc_frag(64, &off);
               }),
               "alloc_frag .*not its owner");
#endif
}

// recycle_direct is owner-only too.
TEST_F(PoolDeathTest, RecycleDirectFromANonOwnerThread) {
#ifdef NDEBUG
  GTEST_SKIP() << "the owner check is compiled out with NDEBUG";
#else
  auto pool = Pool::create({});
  Page* p = pool->alloc_page();
  EXPECT_DEATH(
      {
        std::thread t([&] { pool->recycle_direct(p); });
        t.join();
      },
      "recycle_direct .*not its owner");
  pagepool::put_page(p);
#endif
}

// After bind_owner on another thread the old owner may not allocate.
TEST_F(PoolDeathTest, OldOwnerAfterBindOwner) {
#ifdef NDEBUG
  GTEST_SKIP() << "the owner check is compiled out with NDEBUG";
#else
  Params params;
  params.name = "moved";
  auto pool = Pool::create(params);
  std::thread t([&] { pool->bind_owner(); });
  t.join();
  EXPECT_DEATH((void)pool->alloc_page(), "pool moved from a thread that is not its owner");
  pool->bind_owner();
  Page* p = pool->alloc_page();
  EXPECT_NE(p, nullptr);
  pagepool::put_page(p);
#endif
}

}  // namespace
