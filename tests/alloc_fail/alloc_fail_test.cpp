// Heap allocation failures on the slow paths that allocate: this binary
// replaces the global operator new / delete (so it is a binary of its own)
// with versions that fail on cue, per thread:
//  - a remote put whose thread must claim a new return slot for the pool
//    and cannot allocate one: the put has already happened (the page's ref
//    is 0), so the page must still reach the pool (ring, or the provider
//    when the ring is full or the pool destroyed), never be lost;
//  - MemfdProvider growth failing after the chunk was reserved (the chunk
//    list cannot grow): the chunk's capacity is given back, so the next
//    growth can use it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "common/counting_provider.hpp"
#include "common/invariants.hpp"
#include "common/pool_test_util.hpp"
#include "common/threads.hpp"
#include "pagepool/pagepool.hpp"
#include "pagepool/providers/memfd.hpp"

// ---- operator new that fails on cue ------------------------------------------

// GCC inlines these deletes into `delete` expressions and then sees free()
// of what a `new` returned: right here, where new is malloc.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
// Per thread (so gtest and other threads are unaffected): how many of the
// next plain (default-aligned) and over-aligned allocations fail, and how
// many failed so far. Constant-initialised: usable before any constructor.
thread_local int t_fail_plain = 0;
thread_local int t_fail_aligned = 0;
thread_local int t_failed = 0;

bool fail_now(int& countdown) noexcept {
  if (countdown <= 0) return false;
  --countdown;
  ++t_failed;
  return true;
}

void* plain_alloc(std::size_t n) noexcept {
  if (fail_now(t_fail_plain)) return nullptr;
  return std::malloc(n ? n : 1);
}

void* aligned_alloc_(std::size_t n, std::align_val_t al) noexcept {
  if (fail_now(t_fail_aligned)) return nullptr;
  const auto a = static_cast<std::size_t>(al);
  const std::size_t rounded = (n + a - 1) / a * a;  // aligned_alloc wants a multiple
  return std::aligned_alloc(a, rounded ? rounded : a);
}
}  // namespace

// Every form is replaced, so each allocation and its deallocation meet in
// malloc / free (under ASan too: no new/free mismatch).
void* operator new(std::size_t n) {
  if (void* p = plain_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return plain_alloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return plain_alloc(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = aligned_alloc_(n, a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return aligned_alloc_(n, a);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return aligned_alloc_(n, a);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

using namespace ::pptest::common;
using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;

// The only over-aligned allocation on a remote put is the new return slot
// (ReturnSlot is cache-line aligned): fail it, put p, and report how many
// allocations failed. Runs on a fresh thread, which has no slot yet.
int put_without_slot_memory(std::vector<Page*> pages) {
  int failed = 0;
  on_other_thread([&] {
    t_failed = 0;
    t_fail_aligned = 1000;  // every slot claim of this thread
    put_all(pages);
    t_fail_aligned = 0;
    failed = t_failed;
  });
  return failed;
}

// The page goes to the ring in one push; the owner gets it back from there.
TEST(ReturnSlotAllocFails, PageGoesToTheRing) {
  auto c = make_counted_pool({});
  Page* p = c.pool->alloc_page();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(put_without_slot_memory({p}), 1);
  const pagepool::Levels l = expect_consistent(*c.pool, 0);
  EXPECT_EQ(l.ring, 1u);
  EXPECT_EQ(l.pending, 0u);
  EXPECT_EQ(c.log->release_pages.load(), 0u);
  // The pool serves it again (cache first, then the ring).
  std::vector<Page*> all = alloc_n(*c.pool, l.cache + 1);
  EXPECT_NE(std::find(all.begin(), all.end(), p), all.end());
  put_all(all);
  EXPECT_CONSISTENT(c.pool, 0);
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// A full ring: the page is released to the provider (ring_full), as a
// batch's handover would, and the held count drops with it.
TEST(ReturnSlotAllocFails, FullRingReleasesThePage) {
  Params params;
  params.pool_size = 1;
  auto c = make_counted_pool(params);
  std::vector<Page*> pages = alloc_n(*c.pool, 2);
  const std::uint64_t held = c.pool->levels().held;
  EXPECT_EQ(put_without_slot_memory(pages), 2);  // one per put: no slot is ever claimed
  const pagepool::Levels l = expect_consistent(*c.pool, 0);
  EXPECT_EQ(l.ring, 1u);
  EXPECT_EQ(l.held, held - 1);
  EXPECT_EQ(c.log->release_pages.load(), 1u);
  c.pool.reset();
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// The pool was destroyed with the page out: the page goes to the provider
// at its last put, and with it the pool and the provider are freed.
TEST(ReturnSlotAllocFails, AfterDestroyThePageIsReleasedAndThePoolFreed) {
  auto c = make_counted_pool({});
  Page* p = c.pool->alloc_page();
  ASSERT_NE(p, nullptr);
  c.pool.reset();
  ASSERT_FALSE(c.provider.expired());  // p holds the pool
  EXPECT_EQ(put_without_slot_memory({p}), 1);
  EXPECT_TRUE(c.provider.expired());
  EXPECT_ALL_RETURNED(c.log);
}

// ---- MemfdProvider: growth fails after the chunk was reserved ----------------

// The capacity is one chunk. Growth fails on the chunk list (its first
// push_back cannot allocate); the chunk is given back, so a second growth
// gets it. Before the rollback the second failed: capacity exhausted.
TEST(MemfdGrowAllocFails, ChunkCapacityIsGivenBack) {
  constexpr std::size_t kCap = std::size_t{4} << 20;  // one 4 MiB chunk
  {
    // The metadata arena allocates its state once, on first use: not here.
    pagepool::AnonProvider warm(0);
    Page* p = nullptr;
    ASSERT_EQ(warm.alloc_bulk(&p, 1), 1u);
    warm.release_bulk(&p, 1);
  }
  pagepool::MemfdProvider prov(0, kCap);
  std::vector<Page*> out(kCap / pagepool::kPageSize);
  t_failed = 0;
  t_fail_plain = 1;  // the chunk list's first allocation
  EXPECT_EQ(prov.alloc_bulk(out.data(), 1), 0u);
  t_fail_plain = 0;
  EXPECT_EQ(t_failed, 1);
  EXPECT_EQ(prov.size(), 0u);
  EXPECT_EQ(prov.reserved_bytes(), 0u);

  // The whole capacity is there again.
  EXPECT_EQ(prov.alloc_bulk(out.data(), out.size()), out.size());
  EXPECT_EQ(prov.size(), kCap);
  EXPECT_EQ(prov.reserved_bytes(), kCap);
  for (Page* p : out) static_cast<volatile std::byte*>(pagepool::page_address(p))[0] = std::byte{1};
  prov.release_bulk(out.data(), out.size());
}

}  // namespace
