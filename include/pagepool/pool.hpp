// pagepool: the pool and its inline data plane.
//
// Rules of the pool (read these before using it):
//  - A pool has one owner thread, the thread that created it until another
//    calls bind_owner(). Only the owner allocates (alloc_*), and only the
//    owner may destroy the pool (or any thread after the owner has stopped).
//    Debug builds abort on an allocation from another thread.
//  - Any thread may drop a reference (put_page). The last reference returns
//    the page to the pool it came from: into the owner's alloc cache when the
//    put runs on the owner thread and may recycle directly, otherwise into
//    the return ring, and to the provider when the ring is full.
//  - A page is out ("inflight") from its allocation until its last put. Its
//    holder may read and write all of its data and must not touch it after
//    the last put.
//  - Destroying the pool (the PoolPtr deleter) never blocks: cache and ring
//    are released at once, pages still out are released at their last put,
//    from any thread, and the pool's memory goes when the last one has.
//
// Fast paths (alloc_page, recycle_direct, put_page when the page stays in the
// pool) are inline here and touch only the owner's cache lines; everything
// else is out of line in src/core/pool.cpp.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "pagepool/config.hpp"
#include "pagepool/detail/compiler.hpp"
#include "pagepool/page.hpp"
#include "pagepool/types.hpp"

namespace pagepool {

namespace detail {

// A counter with a single writer: a relaxed load and store (no locked
// instruction); other threads read it relaxed for stats. Never lost because
// no one else writes it.
struct Counter {
  std::atomic<std::uint64_t> v{0};
  PP_FAST_PATH void add(std::uint64_t n = 1) noexcept {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

PP_NORETURN void die_not_owner(const Pool* pool, const char* what);
PP_NORETURN void die_wrong_pool(const Page* p, const Pool* expected, const char* what);

// Drops one reference; true if it was the last (the caller now owns the
// page alone and must return it). Aborts on a put of a page nobody holds.
PP_FAST_PATH bool put_ref(Page* p, const char* what) {
  // acquire: pairs with the release half of every earlier holder's
  // fetch_sub below, so their writes to the page happen before whatever its
  // next user does. A count of 1 means the caller is the only holder and no
  // one else can change it, so a plain store finishes the job.
  std::uint32_t r = p->ref.load(std::memory_order_acquire);
  if (PP_LIKELY(r == 1)) {
    p->ref.store(0, std::memory_order_relaxed);
    return true;
  }
  if (PP_UNLIKELY(r == 0)) die_double_put(p, what);
  // acq_rel: release publishes our writes to the last holder; acquire (if we
  // are last) receives everyone else's.
  r = p->ref.fetch_sub(1, std::memory_order_acq_rel);
  if (PP_UNLIKELY(r == 0)) die_double_put(p, what);
  return r == 1;
}

}  // namespace detail

#if PAGEPOOL_STATS
#define PP_STAT(c) (c).add()
#define PP_STAT_ADD(c, n) (c).add(n)
#else
#define PP_STAT(c) ((void)0)
#define PP_STAT_ADD(c, n) ((void)0)
#endif

namespace detail {
struct ReturnSlot;
struct ThreadReturns;
}  // namespace detail

// Any thread. Hands the calling thread's pending returns (pages put on a
// non-owner path and batched per pool) to their pools now and lets go of
// every pool the thread was returning to. Runs automatically when a thread
// exits; call it before a thread goes idle for long.
void flush_thread() noexcept;

struct PoolDeleter {
  void operator()(Pool* pool) const noexcept;  // detaches the pool (see Pool rules)
};
using PoolPtr = std::unique_ptr<Pool, PoolDeleter>;

class Pool {
 public:
  // The alloc cache holds 128 pages and is refilled 64 at a time. A NAPI
  // poll handles at most 64 packets (its budget), so one refill serves a
  // whole poll, and a poll's worth of direct recycles fits in the free half.
  static constexpr std::uint32_t kCacheSize = 128;
  static constexpr std::uint32_t kRefill = 64;
  // Pages taken from the provider per slow-path call, order 0: one budget.
  // Higher orders take kBulk >> order (at least 1) to bound the memory one
  // refill pins.
  static constexpr std::uint32_t kBulk = 64;

  // Any thread; the caller becomes the owner. Throws std::invalid_argument
  // naming the bad field and its range, std::system_error on OS failure.
  static PoolPtr create(const Params& params);

  // ---- owner thread only --------------------------------------------------

  // A page with one reference, now the caller's; nullptr if none can be had
  // (max_inflight reached: alloc.limited; provider failure: alloc.fail).
  Page* alloc_page();
  // Up to n pages into out (each with one reference, the caller's); returns
  // how many. Takes from the cache in one sweep and refills in batches.
  std::size_t alloc_pages_bulk(Page** out, std::size_t n);
  // A fragment of `size` bytes (rounded up to 64) at *offset inside the
  // returned page; the caller holds one reference for the fragment and puts
  // it with put_page like a page. nullptr if size is 0 or above page size,
  // or no page can be had.
  Page* alloc_frag(std::uint32_t size, std::uint32_t* offset);
  // Returns a page the caller holds the only reference to straight into the
  // alloc cache (syncing for the device first with kDmaSyncDev). The pool
  // owns the page after.
  void recycle_direct(Page* p);
  // The calling thread becomes the owner. The previous owner must have
  // stopped using the pool and that must be ordered before this call (a
  // join, a mutex, a release/acquire handoff). Also the way to keep a pool
  // after its owner thread exits.
  // The previous owner may keep putting pages, but only once this call is
  // ordered before its puts (e.g. the new owner signals after binding);
  // until then its put_page still finds itself the owner and recycles into
  // the alloc cache, racing with the new owner. Likewise after handing the
  // PoolPtr to another thread to destroy: no puts until the destroy is done.
  void bind_owner() noexcept;
  // Moves the pool to NUMA node nid (-1: any): new pages come from there,
  // cached pages from elsewhere are released now, and pages of another node
  // returning later are released instead of recycled (alloc.waive). Throws
  // std::invalid_argument for a node that does not exist.
  void update_nid(int nid);

  // ---- any thread ---------------------------------------------------------

  // Drops the caller's reference to a page of this pool. At the last one the
  // page returns to the pool: first synced for the device over
  // min(dma_sync_size, max_len) bytes from offset (-1: max_len) with
  // kDmaSyncDev; then into the alloc cache if allow_direct and the caller
  // is the owner, else into the return ring (released if the ring is full).
  void put_page(Page* p, std::int32_t dma_sync_size, bool allow_direct);
  // put_page(p, -1, true) for n pages, which may belong to different pools
  // (callable through any pool, or as pagepool::put_pages_bulk); runs of
  // pages of one pool go to its ring in one handover.
  static void put_pages_bulk(Page* const* pages, std::size_t n);
  // Drops the caller's reference; at the last one the page leaves the pool
  // to its provider (unmapped) instead of being recycled.
  void release_page(Page* p);

  // Counters (zero unless built with PAGEPOOL_STATS, except hold/release).
  Stats stats() const noexcept;
  // Pages out of the pool now: a snapshot, exact when the pool is quiescent.
  std::uint64_t inflight() const noexcept { return levels().inflight; }
  Levels levels() const noexcept;
  // Owner, quiescent pool: walks every structure and throws
  // std::logic_error naming the first broken invariant. For tests.
  Levels check() const;

  bool is_owner() const noexcept {
    return owner_.load(std::memory_order_relaxed) == detail::self();
  }
  // The parameters the pool was created with; immutable, so any thread may
  // read them. params().nid is the node at creation: nid() is the current
  // one after update_nid.
  const Params& params() const noexcept { return params_; }
  // The pool's NUMA node now (-1: any). Any thread; relaxed, so a reader
  // racing update_nid may see the old node.
  int nid() const noexcept { return nid_.load(std::memory_order_relaxed); }
  std::size_t page_bytes() const noexcept { return page_bytes_; }
  Provider& provider() const noexcept { return *prov_; }

  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

 private:
  friend struct PoolDeleter;
  friend void put_page(Page* p);
  friend void flush_thread() noexcept;
  friend struct detail::ThreadReturns;

  explicit Pool(const Params& params);
  ~Pool();

  PP_FAST_PATH void assert_owner([[maybe_unused]] const char* what) const {
#ifndef NDEBUG
    if (PP_UNLIKELY(!is_owner())) detail::die_not_owner(this, what);
#endif
  }
  // The last reference to p was dropped by the caller; put it back.
  PP_FAST_PATH void recycle(Page* p, std::int32_t sync_size, bool direct);
  // Sync for the device and the NUMA check; false: the page was waived.
  PP_SLOW_PATH bool recycle_checks(Page* p, std::int32_t sync_size);
  void waive_foreign(std::uint32_t from);

  PP_SLOW_PATH Page* alloc_slow();
  PP_SLOW_PATH Page* alloc_frag_slow(std::uint32_t size, std::uint32_t* offset);
  PP_SLOW_PATH void recycle_full(Page* p);
  PP_SLOW_PATH void sync_for_device_slow(Page* p, std::int32_t sync_size);
  // Remote returns (src/core/returns.cpp): a put that may not recycle
  // directly appends to the calling thread's batch for this pool.
  // put_remote is the common case and calls nothing but, in tail position,
  // put_remote_slow (no batch yet, or a full one) and put_remote_tail
  // (pool closing, or a scan due).
  void put_remote(Page* p);
  PP_SLOW_PATH void put_remote_slow(Page* p);
  PP_SLOW_PATH void put_remote_tail();
  detail::ReturnSlot* claim_slot();
  void handover(detail::ReturnSlot* s);
  void unclaim_slot(detail::ReturnSlot* s);
  // count: an allocation's steal (stats) rather than destroy's sweep.
  std::uint32_t steal_pending(std::uint32_t want, bool count = true);
  std::uint64_t count_pending() const noexcept;
  void memory_gone() noexcept;
  void unref() noexcept;
  std::uint32_t refill_from_ring();
  std::uint32_t refill_from_provider();
  enum class Push { ok, full, closed };
  Push ring_push(Page* first, Page* last, std::uint32_t n);
  void push_or_release(Page* first, Page* last, std::uint32_t n);
  void release_pages(Page* const* pages, std::size_t n, bool refcnt);
  void release_chain(Page* first, std::size_t n, bool refcnt);
  void destroy() noexcept;
  void finish_frag_page();

  // ---- read-mostly: written at creation and by bind_owner/destroy ---------
  // Owner's thread pointer; 0 once destroyed. Relaxed: a change of owner is
  // ordered by the caller's own handoff (see bind_owner).
  alignas(detail::kCacheLine) std::atomic<std::uintptr_t> owner_;
  // Set once by destroy(); read by returners after each batched put (the
  // Dekker pair with destroy's membarrier, see returns.cpp).
  std::atomic<bool> closed_{false};
  // Checks a recycle must make out of line: kCheckSync (kDmaSyncDev and the
  // provider needs syncs), kCheckNid (the pool is bound to a node). Zero for
  // a plain pool, so its recycle tests one byte. Relaxed: changed only by
  // the owner (update_nid); a putter racing it may apply the old node once.
  static constexpr std::uint8_t kCheckSync = 1, kCheckNid = 2;
  std::atomic<std::uint8_t> checks_{0};
  std::atomic<int> nid_{-1};
  bool sync_;        // kDmaSyncDev and the provider needs syncs
  bool dma_map_;     // kDmaMap
  std::uint32_t order_;
  std::uint32_t pool_size_;
  std::uint32_t max_inflight_;
  std::size_t page_bytes_;
  Provider* prov_;

  // ---- owner-written, hot --------------------------------------------------
  // The cache count and the recycle.cached counter in one word:
  // [cached : 56 | count : 8]. A direct recycle publishes the new count and
  // counts itself with one store instead of two, and a stats reader gets
  // the count and the counter from one load. Owner-written; atomic so
  // stats readers may load it (relaxed). 2^56 recycles do not wrap in years
  // of one thread recycling back to back. Without PAGEPOOL_STATS the cached
  // field stays 0.
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> cache_word_{0};
  static constexpr std::uint64_t kCountMask = 0xff;
  static constexpr std::uint64_t kCachedOne = PAGEPOOL_STATS ? kCountMask + 1 : 0;
  static_assert(kCacheSize <= kCountMask, "the cache count must fit its field");
  // The fast path pops only while the count is above floor_. Always 0
  // without max_inflight. With it, the slow path sets floor_ = count -
  // (allocations the cap still allows); a direct recycle then adds one to
  // the count and one to the allowance alike, so count - floor_ never
  // exceeds the allowance until the next slow path recomputes it. Other
  // moves out of the cache (spill, waive) only lower the count: the safe
  // side. Owner-private.
  std::uint32_t floor_ = 0;
  // alloc.fast is not counted where it happens: it is derived (stats()) as
  // cached + moved_ - count - the slow path's allocations, moved_ being the
  // net of every other move into or out of the cache (refills and steals
  // in; spills and waives out; modulo 2^64). The fast paths then store
  // nothing but the word above.
  detail::Counter moved_;
  std::uint32_t cache_count() const noexcept {
    return static_cast<std::uint32_t>(cache_word_.load(std::memory_order_relaxed) & kCountMask);
  }
  // Owner: sets the count to n, adding `cached` direct recycles.
  void set_cache_count(std::uint32_t n, std::uint64_t cached = 0) noexcept {
    const std::uint64_t w = cache_word_.load(std::memory_order_relaxed);
    cache_word_.store(((w & ~kCountMask) + cached * kCachedOne) | n, std::memory_order_relaxed);
  }
  Page* cache_[kCacheSize];

  // ---- owner-written, slow path -------------------------------------------
  alignas(detail::kCacheLine) std::uint32_t local_head_ = 0;  // chain taken from the ring
  std::atomic<Page*> frag_page_{nullptr};  // page being carved; relaxed (levels())
  std::uint32_t frag_offset_ = 0;
  std::atomic<std::uint32_t> frag_users_{0};  // fragments handed out of frag_page_
  detail::Counter slow_, slow_high_order_, empty_, refill_, limited_, fail_, steal_,
      cache_full_, ring_collected_, hold_;

  // ---- written by returning threads -----------------------------------------
  // Return ring: a handover stack of pages linked through Page::next.
  // [count:32 | closed:1 | first page id:31]. count covers the pages pushed
  // and not yet moved into the cache, including the owner's taken chain, so
  // it bounds the ring at pool_size.
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> ring_{0};
  static constexpr std::uint64_t kRingClosed = 1u << 31;
  static constexpr std::uint64_t kRingIdMask = kRingClosed - 1;
  std::atomic<std::uint64_t> ring_full_{0}, released_refcnt_{0}, waive_{0};
  // Returning threads' batch slots: a push-only list (release CAS; readers
  // acquire-load the head), freed with the pool.
  std::atomic<detail::ReturnSlot*> slots_{nullptr};

  // [pages held (hold - release) : 63 | detached : 1]. The thread that moves
  // it to exactly "detached, 0 held" frees the pool; acq_rel on every change
  // so that thread sees all other work on the pool.
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> state_{0};
  std::atomic<std::uint64_t> release_{0};
  // Lifetime of the Pool object itself: 1 for the pool's memory (dropped
  // when state_ reaches "detached, 0 held") + 1 per slot claimed by a thread.
  // acq_rel; the thread that drops it to 0 deletes the pool and its slots.
  std::atomic<std::uint64_t> refs_{1};

  // ---- cold -----------------------------------------------------------------
  Params params_;
  std::shared_ptr<Provider> provider_;
};

// ---- inline data plane --------------------------------------------------

PP_FAST_PATH Page* Pool::alloc_page() {
  assert_owner("alloc_page");
  const std::uint64_t w = cache_word_.load(std::memory_order_relaxed);
  const auto n = static_cast<std::uint32_t>(w & kCountMask);
  if (PP_LIKELY(n > floor_)) {
    cache_word_.store(w - 1, std::memory_order_relaxed);  // n >= 1: no borrow
    Page* p = cache_[n - 1];
    // Relaxed: no other thread can reach a cached page.
    p->ref.store(1, std::memory_order_relaxed);
    return p;  // alloc.fast: derived, see cache_word_
  }
  return alloc_slow();
}

PP_FAST_PATH void Pool::recycle(Page* p, std::int32_t sync_size, bool direct) {
  if (PP_UNLIKELY(checks_.load(std::memory_order_relaxed)) && !recycle_checks(p, sync_size))
    return;
  // Test `direct` before touching the count: a remote put must not pull
  // the owner's hot cache line.
  if (PP_LIKELY(direct)) {
    const std::uint64_t w = cache_word_.load(std::memory_order_relaxed);
    const auto n = static_cast<std::uint32_t>(w & kCountMask);
    if (PP_LIKELY(n < kCacheSize)) {
      cache_[n] = p;
      cache_word_.store(w + 1 + kCachedOne, std::memory_order_relaxed);  // count + 1, cached + 1
      return;
    }
    recycle_full(p);
    return;
  }
  put_remote(p);
}

PP_FAST_PATH void Pool::recycle_direct(Page* p) {
  assert_owner("recycle_direct");
  detail::check_page(p, "recycle_direct");
  if (PP_UNLIKELY(p->pool.load(std::memory_order_relaxed) != this))
    detail::die_wrong_pool(p, this, "recycle_direct");
  if (detail::put_ref(p, "recycle_direct")) recycle(p, -1, true);
}

PP_FAST_PATH void Pool::put_page(Page* p, std::int32_t dma_sync_size, bool allow_direct) {
  detail::check_page(p, "put_page");
  if (PP_UNLIKELY(p->pool.load(std::memory_order_relaxed) != this))
    detail::die_wrong_pool(p, this, "put_page");
  if (detail::put_ref(p, "put_page")) recycle(p, dma_sync_size, allow_direct && is_owner());
}

PP_FAST_PATH Page* Pool::alloc_frag(std::uint32_t size, std::uint32_t* offset) {
  assert_owner("alloc_frag");
  Page* p = frag_page_.load(std::memory_order_relaxed);
  const std::uint32_t sz = (size + 63u) & ~63u;
  // sz <= page_bytes_ - frag_offset_, not frag_offset_ + sz <= page_bytes_:
  // the sum is 32-bit and wraps for sizes near 4 GiB.
  if (PP_LIKELY(p && size != 0 && sz >= size && sz <= page_bytes_ - frag_offset_)) {
    *offset = frag_offset_;
    frag_offset_ += sz;
    frag_users_.store(frag_users_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return p;
  }
  return alloc_frag_slow(size, offset);
}

// Any thread. See page.hpp: drops one reference; the last returns the page
// to its pool, directly into the cache when the caller is its owner.
PP_FAST_PATH void put_page(Page* p) {
  detail::check_page(p, "put_page");
  if (detail::put_ref(p, "put_page")) {
    Pool* pool = p->pool.load(std::memory_order_relaxed);
    pool->recycle(p, -1, pool->is_owner());
  }
}

// Any thread: Pool::put_pages_bulk, for pages of any pools (a driver's TX
// completions: each page goes back to the pool it came from).
inline void put_pages_bulk(Page* const* pages, std::size_t n) { Pool::put_pages_bulk(pages, n); }

}  // namespace pagepool
