// pagepool-bench: "pagepool-lockedring", the Linux kernel's own page_pool
// design rebuilt on pagepool's page memory, as an ablation.
//
// The kernel returns pages freed on other CPUs through a ptr_ring: a fixed
// array of pointers whose producer side is protected by a spinlock
// (ptr_ring_produce takes producer_lock), and the NAPI owner refills its
// 128-entry alloc cache from it 64 at a time under the consumer lock
// (page_pool_refill_alloc_cache). pagepool replaces that ring with a
// lock-free handover stack (one CAS per remote put, one CAS per refill).
// Everything else here is the same as pagepool — same pages, same cache
// size, same refill batch, same ring capacity, and the same per-page work
// (reference count set on alloc, pool check and reference drop on put,
// the fast/cached counters when stats are on) — so the difference in S3 and
// S5 between "pagepool" and this adapter is the remote-return design alone.
// Only pagepool's public API and Page fields are used.
//
// Pages come from a pagepool Pool and stay "out" of it while they cycle
// through this adapter (resting with ref 0 as in pagepool's own cache);
// drain() and the destructor give every one back.
#pragma once

#include <atomic>
#include <cstdlib>
#include <cstdint>
#include <memory>

#include "adapters.hpp"

namespace ppb {

// A test-and-test-and-set spinlock: uncontended it is one locked exchange
// and a store, like the kernel's spin_lock/spin_unlock.
class SpinLock {
 public:
  void lock() {
    while (f_.exchange(true, std::memory_order_acquire))
      while (f_.load(std::memory_order_relaxed)) _mm_pause();
  }
  void unlock() { f_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> f_{false};
};

class LockedRing {
 public:
  using Buf = pagepool::Page*;
  struct Local {};
  static constexpr bool kBulk = true;  // the kernel has page_pool_put_page_bulk
  static constexpr std::uint32_t kCacheSize = 128;  // PP_ALLOC_CACHE_SIZE
  static constexpr std::uint32_t kRefill = 64;      // PP_ALLOC_CACHE_REFILL

  explicit LockedRing(const Setup& s)
      : size_(ring_size_for(s)), slots_(new std::atomic<Buf>[size_]) {
    for (std::uint32_t i = 0; i < size_; ++i) slots_[i].store(nullptr, std::memory_order_relaxed);
    pagepool::Params p;
    p.name = "pagepool-bench-lockedring";
    p.pool_size = size_;
    pool_ = pagepool::Pool::create(p);
  }
  ~LockedRing() { drain(); }
  LockedRing(const LockedRing&) = delete;
  LockedRing& operator=(const LockedRing&) = delete;

  Local local() { return {}; }
  void release(Local&) {}
  void bind_owner() { pool_->bind_owner(); }

  // Owner only (page_pool_alloc_pages).
  PPB_HOT Buf get(Local&) {
    if (count_ == 0) [[unlikely]] {
      if (!refill()) return nullptr;
    }
    Buf p = cache_[--count_];
    p->ref.store(1, std::memory_order_relaxed);  // as Pool::alloc_page
    stat(fast_);
    return p;
  }
  // Any thread (page_pool_put_page with allow_direct when on the owner).
  PPB_HOT void put(Local&, Buf p) {
    if (drop_ref(p)) recycle(p, pool_->is_owner());
  }
  // Owner (page_pool_recycle_direct).
  PPB_HOT void put_owner(Local&, Buf p) {
    if (drop_ref(p)) recycle(p, true);
  }

  PPB_HOT std::size_t get_bulk(Local& l, Buf* out, std::size_t n) {
    std::size_t i = 0;
    for (; i < n; ++i)
      if (!(out[i] = get(l))) break;
    return i;
  }
  // page_pool_put_page_bulk: one producer-lock hold for the whole batch,
  // never into the cache; what does not fit is released.
  PPB_HOT void put_bulk(Local&, Buf* in, std::size_t n) {
    std::size_t k = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (drop_ref(in[i])) in[k++] = in[i];
    std::size_t i = 0;
    prod_lock_.lock();
    for (; i < k; ++i)
      if (!produce_locked(in[i])) break;
    prod_lock_.unlock();
    for (; i < k; ++i) give_back(in[i]);
  }
  PPB_HOT static std::byte* data(Buf p) { return static_cast<std::byte*>(pagepool::page_address(p)); }

  // Owner (or after every other thread stopped): every page in the cache and
  // the ring back to the pool.
  void drain() {
    auto back = [](Buf p) {
      p->ref.store(1, std::memory_order_relaxed);  // resting pages have 0; the pool's put wants ours
      pagepool::put_page(p);
    };
    while (count_) back(cache_[--count_]);
    for (std::uint32_t i = 0; i < size_; ++i)
      if (Buf p = slots_[i].exchange(nullptr, std::memory_order_acquire)) back(p);
    prod_ = cons_ = 0;
  }

  pagepool::Pool& pool() { return *pool_; }
  // Pages released because the ring was full.
  std::uint64_t released() const { return released_.load(std::memory_order_relaxed); }

 private:
  // Owner-private counter, as pagepool's (a relaxed load and store).
  static void stat([[maybe_unused]] std::atomic<std::uint64_t>& c) {
#if PAGEPOOL_STATS
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
#endif
  }

  // What Pool::put_page does to a page before choosing where it goes: the
  // pool check and the reference drop (see pool.hpp: acquire load, plain
  // store when the caller is the only holder). True if it was the last.
  bool drop_ref(Buf p) {
    if (p->pool.load(std::memory_order_relaxed) != pool_.get()) [[unlikely]]
      std::abort();
    const std::uint32_t r = p->ref.load(std::memory_order_acquire);
    if (r == 1) [[likely]] {
      p->ref.store(0, std::memory_order_relaxed);
      return true;
    }
    return p->ref.fetch_sub(1, std::memory_order_acq_rel) == 1;
  }

  void recycle(Buf p, bool direct) {
    if (direct && count_ < kCacheSize) {
      cache_[count_++] = p;
      stat(cached_);
      return;
    }
    prod_lock_.lock();
    const bool ok = produce_locked(p);
    prod_lock_.unlock();
    if (!ok) give_back(p);
  }

  // Ring full: the page leaves the pool (page_pool_return_page).
  void give_back(Buf p) {
    released_.fetch_add(1, std::memory_order_relaxed);
    p->ref.store(1, std::memory_order_relaxed);
    pool_->release_page(p);
  }

  // __ptr_ring_produce: a slot still holding a pointer means the ring is full.
  bool produce_locked(Buf p) {
    if (slots_[prod_].load(std::memory_order_relaxed)) return false;
    slots_[prod_].store(p, std::memory_order_release);  // pairs with refill's acquire
    if (++prod_ == size_) prod_ = 0;
    return true;
  }

  // page_pool_refill_alloc_cache, then the slow path's bulk allocation from
  // the page allocator (here: the pool) when the ring is empty.
  bool refill() {
    cons_lock_.lock();
    while (count_ < kRefill) {
      Buf p = slots_[cons_].load(std::memory_order_acquire);
      if (!p) break;
      slots_[cons_].store(nullptr, std::memory_order_relaxed);
      if (++cons_ == size_) cons_ = 0;
      cache_[count_++] = p;
    }
    cons_lock_.unlock();
    if (count_ == 0) {
      count_ = static_cast<std::uint32_t>(pool_->alloc_pages_bulk(cache_, kRefill));
      for (std::uint32_t i = 0; i < count_; ++i) cache_[i]->ref.store(0, std::memory_order_relaxed);
    }
    return count_ != 0;
  }

  const std::uint32_t size_;
  std::unique_ptr<std::atomic<Buf>[]> slots_;
  pagepool::PoolPtr pool_;
  // Owner-private alloc cache.
  alignas(64) std::uint32_t count_ = 0;
  std::atomic<std::uint64_t> fast_{0}, cached_{0};
  Buf cache_[kCacheSize];
  // ptr_ring's two sides, each on its own line with its lock.
  alignas(64) SpinLock prod_lock_;
  std::uint32_t prod_ = 0;
  alignas(64) SpinLock cons_lock_;
  std::uint32_t cons_ = 0;
  alignas(64) std::atomic<std::uint64_t> released_{0};
};

}  // namespace ppb
