// Pool: creation, slow paths, return ring, teardown.
//
// Ownership map (who writes what) is in pool.hpp next to the fields; the
// memory-ordering argument is in docs/design.md and next to each atomic.
#include "pagepool/pool.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <unordered_set>

#include "core/returns.hpp"
#include "providers/map_util.hpp"
#include "pagepool/provider.hpp"

namespace pagepool {

using detail::id_page;
using detail::page_id;

namespace {

std::string pool_label(const Params& p) {
  return p.name.empty() ? std::string("pagepool") : "pagepool '" + p.name + "'";
}

[[noreturn]] void bad(const Params& p, const std::string& what) {
  throw std::invalid_argument(pool_label(p) + ": " + what);
}

void validate(const Params& p) {
  if (p.order > kMaxOrder)
    bad(p, "order " + std::to_string(p.order) + " out of range [0, " + std::to_string(kMaxOrder) +
               "]");
  if (p.pool_size == 0 || p.pool_size > kMaxPoolSize)
    bad(p, "pool_size " + std::to_string(p.pool_size) + " out of range [1, " +
               std::to_string(kMaxPoolSize) + "]");
  if (p.flags & ~kAllFlags)
    bad(p, "unknown flags 0x" + [&] {
      char b[16];
      std::snprintf(b, sizeof b, "%x", p.flags & ~kAllFlags);
      return std::string(b);
    }() + " (allowed: kDmaMap | kDmaSyncDev)");
  if (p.nid < -1 || p.nid > detail::max_node())
    bad(p, "nid " + std::to_string(p.nid) + " out of range [-1, " +
               std::to_string(detail::max_node()) + "] (-1: any node)");
  const std::size_t bytes = kPageSize << p.order;
  if ((p.flags & kDmaSyncDev) && !(p.flags & kDmaMap))
    bad(p, "flags: kDmaSyncDev requires kDmaMap");
  if ((p.flags & kDmaSyncDev) && p.max_len == 0)
    bad(p, "max_len 0: kDmaSyncDev requires max_len in [1, page size - offset]");
  if (std::uint64_t{p.offset} + p.max_len > bytes)
    bad(p, "offset + max_len = " + std::to_string(std::uint64_t{p.offset} + p.max_len) +
               " exceeds the page size " + std::to_string(bytes));
  if (p.provider && p.provider->order() != p.order)
    bad(p, "provider '" + std::string(p.provider->name()) + "' serves order " +
               std::to_string(p.provider->order()) + ", not order " + std::to_string(p.order));
}

}  // namespace

// ---- creation ---------------------------------------------------------------

PoolPtr Pool::create(const Params& params) {
  validate(params);
  detail::returns_init();
  return PoolPtr(new Pool(params));
}

Pool::Pool(const Params& params) : params_(params) {
  provider_ = params.provider ? params.provider
                              : std::make_shared<AnonProvider>(params.order, params.nid);
  params_.provider.reset();  // the pool's reference is provider_
  prov_ = provider_.get();
  // As update_nid does: a supplied provider learns where new memory should
  // come from (the default one was built for params.nid already).
  if (params.provider && params.nid >= 0) prov_->set_nid(params.nid);
  owner_.store(detail::self(), std::memory_order_relaxed);
  dma_map_ = params.flags & kDmaMap;
  sync_ = (params.flags & kDmaSyncDev) && prov_->needs_sync();
  nid_.store(params.nid, std::memory_order_relaxed);
  checks_.store((sync_ ? kCheckSync : 0) | (params.nid >= 0 ? kCheckNid : 0),
                std::memory_order_relaxed);
  order_ = params.order;
  pool_size_ = params.pool_size;
  max_inflight_ = params.max_inflight;
  page_bytes_ = kPageSize << params.order;
}

Pool::~Pool() = default;

void Pool::bind_owner() noexcept { owner_.store(detail::self(), std::memory_order_relaxed); }

void Pool::update_nid(int nid) {
  assert_owner("update_nid");
  if (nid < -1 || nid > detail::max_node())
    bad(params_, "update_nid: nid " + std::to_string(nid) + " out of range [-1, " +
                     std::to_string(detail::max_node()) + "]");
  nid_.store(nid, std::memory_order_relaxed);  // params_ stays as created: other threads read it
  const std::uint8_t c = checks_.load(std::memory_order_relaxed);
  checks_.store(nid >= 0 ? c | kCheckNid : c & ~kCheckNid, std::memory_order_relaxed);
  prov_->set_nid(nid);
  if (nid >= 0) waive_foreign(0);
}

namespace {
// A page is foreign to node nid if its node is known and different.
bool foreign(const Page* p, int nid) {
  const int n = page_nid(p);
  return n >= 0 && n != nid;
}
}  // namespace

bool Pool::recycle_checks(Page* p, std::int32_t sync_size) {
  const std::uint8_t c = checks_.load(std::memory_order_relaxed);
  // After destroy the page is released anyway, and counted as such.
  if ((c & kCheckNid) && foreign(p, nid_.load(std::memory_order_relaxed)) &&
      !closed_.load(std::memory_order_relaxed)) {
    waive_.fetch_add(1, std::memory_order_relaxed);
    release_pages(&p, 1, false);
    return false;
  }
  if (c & kCheckSync) sync_for_device_slow(p, sync_size);
  return true;
}

// Owner: releases the pages of cache_[from, count) that are not on the
// pool's node (alloc.waive), keeping the others in order.
void Pool::waive_foreign(std::uint32_t from) {
  if (!(checks_.load(std::memory_order_relaxed) & kCheckNid)) return;
  const int nid = nid_.load(std::memory_order_relaxed);
  std::uint32_t n = cache_count();
  Page* out[kCacheSize];
  std::uint32_t nout = 0, keep = from;
  for (std::uint32_t i = from; i < n; ++i) {
    if (foreign(cache_[i], nid))
      out[nout++] = cache_[i];
    else
      cache_[keep++] = cache_[i];
  }
  set_cache_count(keep);
  PP_STAT_ADD(moved_, 0 - std::uint64_t{nout});
  if (nout) {
    waive_.fetch_add(nout, std::memory_order_relaxed);
    release_pages(out, nout, false);
  }
}

// ---- allocation slow path -----------------------------------------------------

Page* Pool::alloc_slow() {
  assert_owner("alloc_page");
  std::uint32_t n = cache_count();
  std::uint64_t allow = ~std::uint64_t{0};  // allocations the cap allows now
  if (max_inflight_) {
    // Re-check the cap against the exact count: pages may have come back.
    // The carving page counts as out even while idle: alloc_frag's fast
    // path hands it out again without consulting the cap.
    const Levels l = levels();
    const std::uint64_t out = l.inflight + l.carving_idle;
    allow = out < max_inflight_ ? max_inflight_ - out : 0;
    if (allow == 0) {
      floor_ = n;  // shut until a recycle raises the count or a recheck
      PP_STAT(limited_);
      return nullptr;
    }
  }
  // n != 0: only the cap sent us here and this is a cache allocation
  // (alloc.fast, derived). Otherwise refill: ring, batches, then provider.
  if (n == 0) {
    if (((n = refill_from_ring()) != 0 || (n = steal_pending(kRefill)) != 0) &&
        (waive_foreign(0), n = cache_count()) != 0) {
      PP_STAT(refill_);
    } else {
      PP_STAT(empty_);
      if ((n = refill_from_provider()) == 0) {
        PP_STAT(fail_);
        return nullptr;
      }
      if (order_ == 0)
        PP_STAT(slow_);
      else
        PP_STAT(slow_high_order_);
    }
  }
  // allow >= 1, so n - 1 >= floor_: the page below is within the cap.
  floor_ = n > allow ? static_cast<std::uint32_t>(n - allow) : 0;
  Page* p = cache_[n - 1];
  set_cache_count(n - 1);
  p->ref.store(1, std::memory_order_relaxed);
  return p;
}

std::size_t Pool::alloc_pages_bulk(Page** out, std::size_t n) {
  assert_owner("alloc_pages_bulk");
  std::size_t i = 0;
  while (i < n) {
    std::uint32_t c = cache_count();
    const auto k = c > floor_ ? static_cast<std::uint32_t>(std::min<std::uint64_t>(c - floor_, n - i)) : 0;
    for (std::uint32_t j = 0; j < k; ++j) {
      Page* p = cache_[--c];
      p->ref.store(1, std::memory_order_relaxed);
      out[i++] = p;
    }
    set_cache_count(c);  // alloc.fast: derived
    if (i == n) break;
    Page* p = alloc_slow();  // refills the cache (or fails)
    if (!p) break;
    out[i++] = p;
  }
  return i;
}

// Moves up to kRefill pages from the return ring into the empty cache.
std::uint32_t Pool::refill_from_ring() {
  if (local_head_ == 0) {
    std::uint64_t h = ring_.load(std::memory_order_relaxed);
    do {
      if ((h & kRingIdMask) == 0) return 0;
      // acquire: pairs with every pusher's release CAS (a chain of RMWs is
      // one release sequence), so the links and the pages' contents written
      // before each push are visible. The count stays: the taken chain is
      // still "in the ring" until moved into the cache.
    } while (!ring_.compare_exchange_weak(h, h & ~kRingIdMask, std::memory_order_acquire,
                                          std::memory_order_relaxed));
    local_head_ = static_cast<std::uint32_t>(h & kRingIdMask);
  }
  std::uint32_t n = 0;
  while (n < kRefill && local_head_ != 0) {
    Page* p = id_page(local_head_);
    local_head_ = p->next.load(std::memory_order_relaxed);
    cache_[n++] = p;
  }
  set_cache_count(n);
  PP_STAT_ADD(moved_, n);
  // Relaxed: the count only bounds capacity; no data travels with it.
  ring_.fetch_sub(std::uint64_t{n} << 32, std::memory_order_relaxed);
  PP_STAT_ADD(ring_collected_, n);
  return n;
}

// Takes a bulk of pages from the provider into the empty cache, mapping
// each (kDmaMap). Pages the provider refuses to map go straight back.
std::uint32_t Pool::refill_from_provider() {
  const std::uint32_t want = std::max<std::uint32_t>(1, kBulk >> order_);
  Page* got[kBulk];
  const std::size_t n = prov_->alloc_bulk(got, want);
  std::uint32_t kept = 0;
  Page* refused[kBulk];
  std::size_t nrefused = 0;
  for (std::size_t i = 0; i < n; ++i) {
    Page* p = got[i];
    if (dma_map_) {
      std::uint64_t dma = 0;
      if (prov_->map(p, &dma)) {
        refused[nrefused++] = p;
        continue;
      }
      p->dma.store(dma, std::memory_order_relaxed);
      // A fresh mapping gives the device the whole window once, as the
      // kernel does at map time; recycles then sync only what was written.
      if (sync_) prov_->sync_for_device(p, params_.offset, params_.max_len);
    }
    // Relaxed: the page reaches other threads only after the caller hands
    // it over, which orders this store.
    p->pool.store(this, std::memory_order_relaxed);
    cache_[kept++] = p;
  }
  if (nrefused) prov_->release_bulk(refused, nrefused);
  // The provider hands out pages in address order; the cache pops from the
  // top, so reversed they leave in that order too. A working set that
  // cycles through its pages then walks their descriptors and data upwards,
  // a stream the hardware prefetcher follows (S6 at 1M pages out: 34 -> 17 ns
  // per step); descending within each refill it did not.
  std::reverse(cache_, cache_ + kept);
  if (kept) {
    hold_.add(kept);
    state_.fetch_add(std::uint64_t{kept} << 1, std::memory_order_acq_rel);
  }
  set_cache_count(kept);
  PP_STAT_ADD(moved_, kept);
  return kept;
}

// ---- fragments ---------------------------------------------------------------

// Ends carving of the current page: drop the bias minus the fragments handed
// out; if they are all back already, the page returns to the cache.
void Pool::finish_frag_page() {
  Page* p = frag_page_.load(std::memory_order_relaxed);
  if (!p) return;
  const std::uint32_t drop = detail::kFragBias - frag_users_.load(std::memory_order_relaxed);
  frag_page_.store(nullptr, std::memory_order_relaxed);
  frag_users_.store(0, std::memory_order_relaxed);
  // acq_rel: as in put_ref; if this is the last reference we receive every
  // fragment holder's writes.
  if (p->ref.fetch_sub(drop, std::memory_order_acq_rel) == drop) recycle(p, -1, is_owner());
}

Page* Pool::alloc_frag_slow(std::uint32_t size, std::uint32_t* offset) {
  assert_owner("alloc_frag");
  const std::uint64_t sz = (std::uint64_t{size} + 63) & ~std::uint64_t{63};
  if (size == 0 || sz > page_bytes_) return nullptr;
  finish_frag_page();
  Page* p = alloc_page();
  if (!p) return nullptr;
  p->ref.store(detail::kFragBias, std::memory_order_relaxed);  // owner-private still
  frag_page_.store(p, std::memory_order_relaxed);
  frag_offset_ = static_cast<std::uint32_t>(sz);
  frag_users_.store(1, std::memory_order_relaxed);
  *offset = 0;
  return p;
}

// ---- return path ---------------------------------------------------------------

void Pool::sync_for_device_slow(Page* p, std::int32_t sync_size) {
  const std::uint32_t max_len = params_.max_len;
  const std::uint32_t len =
      sync_size < 0 ? max_len : std::min<std::uint32_t>(static_cast<std::uint32_t>(sync_size), max_len);
  if (len) prov_->sync_for_device(p, params_.offset, len);
}

Pool::Push Pool::ring_push(Page* first, Page* last, std::uint32_t n) {
  const std::uint32_t id = page_id(first);
  std::uint64_t h = ring_.load(std::memory_order_relaxed);
  for (;;) {
    if (h & kRingClosed) return Push::closed;
    if ((h >> 32) + n > pool_size_) return Push::full;
    last->next.store(static_cast<std::uint32_t>(h & kRingIdMask), std::memory_order_relaxed);
    const std::uint64_t nh = ((h + (std::uint64_t{n} << 32)) & ~kRingIdMask) | id;
    // release: the chain's links and the pages' contents happen before the
    // owner's acquire CAS that takes the chain. A CAS on the whole word also
    // fails against a concurrent close, so no page is pushed after it.
    // After success the pool may be freed at any moment: touch nothing.
    if (ring_.compare_exchange_weak(h, nh, std::memory_order_release, std::memory_order_relaxed))
      return Push::ok;
  }
}

// Owner, cache full: spill the older half of the cache into the ring in
// one push, so the next kRefill direct recycles stay on the fast path.
void Pool::recycle_full(Page* p) {
  PP_STAT(cache_full_);
  for (std::uint32_t i = 0; i + 1 < kRefill; ++i)
    cache_[i]->next.store(page_id(cache_[i + 1]), std::memory_order_relaxed);
  push_or_release(cache_[0], cache_[kRefill - 1], kRefill);
  std::copy(cache_ + kRefill, cache_ + kCacheSize, cache_);
  cache_[kCacheSize - kRefill] = p;
  set_cache_count(kCacheSize - kRefill + 1);
  PP_STAT_ADD(moved_, 1 - std::uint64_t{kRefill});  // kRefill out, p in
}

// Hands a chain (first .. last, n pages) to the ring; what does not fit is
// released from the chain's head, as n single puts would (the ring takes
// pages until full; the rest count as ring_full). A closed ring releases
// all. May free the pool when it releases: nothing of it is touched after.
void Pool::push_or_release(Page* first, Page* last, std::uint32_t n) {
  while (n) {
    const Push r = ring_push(first, last, n);
    if (r == Push::ok) return;
    if (r == Push::closed) {
      release_chain(first, n, true);
      return;
    }
    const std::uint64_t used = ring_.load(std::memory_order_relaxed) >> 32;
    const std::uint64_t room = used < pool_size_ ? pool_size_ - used : 0;
    if (room >= n) continue;  // the owner drained the ring meanwhile
    const auto drop = static_cast<std::uint32_t>(n - room);
    Page* rest = first;
    for (std::uint32_t i = 0; i < drop; ++i) rest = id_page(rest->next.load(std::memory_order_relaxed));
    n -= drop;
    ring_full_.fetch_add(drop, std::memory_order_relaxed);
    release_chain(first, drop, false);
    first = rest;
  }
}

void Pool::put_pages_bulk(Page* const* pages, std::size_t n) {
  // Pages whose last reference drops here and that cannot go to their
  // owner's cache are grouped by pool into chains; each chain is handed to
  // its pool's ring with one push (one CAS per pool per call). Up to
  // kGroups pools are grouped at once; a ninth flushes the oldest group.
  constexpr std::size_t kGroups = 8;
  struct Group {
    Pool* pool;
    Page* first;
    Page* last;
    std::uint32_t n;
  } g[kGroups];
  std::size_t ng = 0;
  auto flush = [](Group& gr) { gr.pool->push_or_release(gr.first, gr.last, gr.n); };
  // The common case, a driver recycling a budget of its own pool's pages:
  // one owner test per run of pages of one pool, the cache count kept in a
  // register and stored once. `run` is an owned pool without recycle checks
  // whose cache we are filling; commit() publishes its count.
  Pool* run = nullptr;
  std::uint32_t run_n = 0, run_start = 0;  // run's cache count now and when the run began
  auto commit = [&] {
    if (!run) return;
    run->set_cache_count(run_n, run_n - run_start);
    run = nullptr;
  };
  const detail::ArenaBounds arena = detail::ArenaBounds::load();
  for (std::size_t i = 0; i < n; ++i) {
    Page* p = pages[i];
    arena.check(p, "put_pages_bulk");
    if (!detail::put_ref(p, "put_pages_bulk")) continue;
    Pool* pool = p->pool.load(std::memory_order_relaxed);
    if (pool == run && run_n < kCacheSize) {
      run->cache_[run_n++] = p;
      continue;
    }
    if (pool->is_owner()) {
      commit();
      if (!pool->checks_.load(std::memory_order_relaxed)) {
        run = pool;
        run_n = run_start = pool->cache_count();
        if (run_n < kCacheSize) {
          pool->cache_[run_n++] = p;
          continue;
        }
        commit();  // cache full: the ordinary path spills
      }
      pool->recycle(p, -1, true);
      continue;
    }
    if (PP_UNLIKELY(pool->checks_.load(std::memory_order_relaxed)) && !pool->recycle_checks(p, -1))
      continue;
    std::size_t k = 0;
    while (k < ng && g[k].pool != pool) ++k;
    if (k < ng && g[k].n == pool->pool_size_) {  // a chain never exceeds the ring
      flush(g[k]);
      g[k] = g[--ng];
      k = ng;
    }
    if (k == ng) {
      if (ng == kGroups) {
        flush(g[0]);
        g[0] = g[--ng];
        k = ng;
      }
      g[ng++] = {pool, p, p, 0};
      p->next.store(0, std::memory_order_relaxed);
    } else {
      p->next.store(page_id(g[k].first), std::memory_order_relaxed);
      g[k].first = p;
    }
    ++g[k].n;
  }
  commit();
  for (std::size_t k = 0; k < ng; ++k) flush(g[k]);
}

void Pool::release_page(Page* p) {
  detail::check_page(p, "release_page");
  if (PP_UNLIKELY(p->pool.load(std::memory_order_relaxed) != this))
    detail::die_wrong_pool(p, this, "release_page");
  if (detail::put_ref(p, "release_page")) release_pages(&p, 1, false);
}

void Pool::release_chain(Page* first, std::size_t n, bool refcnt) {
  Page* batch[kBulk];
  while (n) {
    std::size_t k = 0;
    while (k < kBulk && k < n) {
      batch[k++] = first;
      first = id_page(first->next.load(std::memory_order_relaxed));
    }
    n -= k;
    // The last batch may free the pool; nothing of it is touched after.
    release_pages(batch, k, refcnt);
  }
}

// Gives pages back to the provider. refcnt: they came back after destroy.
// May free the pool (see state_): the caller must not touch it afterwards.
void Pool::release_pages(Page* const* pages, std::size_t n, bool refcnt) {
  for (std::size_t i = 0; i < n; ++i) {
    Page* p = pages[i];
    if (dma_map_) prov_->unmap(p);
    p->dma.store(0, std::memory_order_relaxed);
    p->pool.store(nullptr, std::memory_order_relaxed);
  }
  prov_->release_bulk(pages, n);
  if (refcnt) released_refcnt_.fetch_add(n, std::memory_order_relaxed);
  release_.fetch_add(n, std::memory_order_relaxed);
  // acq_rel: see state_. The thread reaching "detached, 0 held" frees.
  const std::uint64_t s = state_.fetch_sub(std::uint64_t{n} << 1, std::memory_order_acq_rel) -
                          (std::uint64_t{n} << 1);
  if (s == 1) memory_gone();
}

// Detached and no page held: the provider's memory can go now. The Pool
// object itself stays while threads still have slots claimed (refs_).
void Pool::memory_gone() noexcept {
  provider_.reset();
  prov_ = nullptr;
  unref();
}

// ---- teardown -----------------------------------------------------------------

void PoolDeleter::operator()(Pool* pool) const noexcept { pool->destroy(); }

void Pool::destroy() noexcept {
  // No direct recycles from now on: every later last-put goes to a batch,
  // and from there (closed) back to the provider.
  owner_.store(0, std::memory_order_relaxed);
  closed_.store(true, std::memory_order_relaxed);
  // Dekker with put_remote (see returns.cpp): after this, a returner either
  // sees closed_ or its entry is visible to the steal below.
  detail::returners_barrier();
  // acquire: pairs with the pushes' release CASes (we take their chain).
  // Every later push CAS fails against the new word and sees the bit.
  const std::uint64_t h = ring_.fetch_or(kRingClosed, std::memory_order_acq_rel);
  const auto ring_pages = static_cast<std::uint32_t>(h >> 32);
  ring_.store(kRingClosed, std::memory_order_relaxed);
  PP_STAT_ADD(ring_collected_, ring_pages);  // recycle.ring never goes down

  Page* p = frag_page_.load(std::memory_order_relaxed);
  if (p) {
    const std::uint32_t drop = detail::kFragBias - frag_users_.load(std::memory_order_relaxed);
    frag_page_.store(nullptr, std::memory_order_relaxed);
    if (p->ref.fetch_sub(drop, std::memory_order_acq_rel) == drop) {
      const std::uint32_t c = cache_count();
      if (c < kCacheSize) {
        cache_[c] = p;
        set_cache_count(c + 1);
        PP_STAT(moved_);
      } else {
        release_pages(&p, 1, false);
      }
    }
  }
  // The owner's taken chain and the ring's chain hold ring_pages together.
  std::uint32_t in_local = 0;
  for (std::uint32_t id = local_head_; id; id = id_page(id)->next.load(std::memory_order_relaxed))
    ++in_local;
  if (in_local) release_chain(id_page(local_head_), in_local, false);
  local_head_ = 0;
  if (ring_pages > in_local) release_chain(id_page(h & kRingIdMask), ring_pages - in_local, false);

  // Cache, then every batch still waiting in a returner's slot.
  for (;;) {
    const std::uint32_t c = cache_count();
    set_cache_count(0);
    PP_STAT_ADD(moved_, 0 - std::uint64_t{c});  // stats() still reads the pool after
    if (c) release_pages(cache_, c, false);
    if (steal_pending(kCacheSize, false) == 0) break;
  }
  // Detach. Before this the held count cannot reach the free condition.
  if (state_.fetch_add(1, std::memory_order_acq_rel) + 1 == 1) memory_gone();
}

// ---- observation ---------------------------------------------------------------

Levels Pool::levels() const noexcept {
  Levels l{};
  l.held = state_.load(std::memory_order_acquire) >> 1;
  l.cache = cache_count();
  l.ring = ring_.load(std::memory_order_relaxed) >> 32;
  l.pending = count_pending();
  if (Page* f = frag_page_.load(std::memory_order_relaxed)) {
    const std::uint64_t users = frag_users_.load(std::memory_order_relaxed);
    const std::uint64_t ref = f->ref.load(std::memory_order_relaxed);
    l.carving_idle = users + ref == detail::kFragBias;  // every fragment is back
  }
  const std::uint64_t in = l.cache + l.ring + l.pending + l.carving_idle;
  // Concurrent moves (ring -> cache) can double count for an instant.
  l.inflight = l.held > in ? l.held - in : 0;
  return l;
}

Stats Pool::stats() const noexcept {
  Stats s{};
  std::uint64_t fast = 0;
#if PAGEPOOL_STATS
  // Every page out of the cache that was not a slow-path allocation (see
  // moved_). The count and cached come from one load; a reader racing the
  // owner may still see moved_ and the slow counters at another moment: a
  // transient negative reads as 0.
  const std::uint64_t w = cache_word_.load(std::memory_order_relaxed);
  const std::uint64_t cached = w / (kCountMask + 1);
  fast = cached + moved_.get() - (w & kCountMask) - (slow_.get() + slow_high_order_.get() + refill_.get());
  if (static_cast<std::int64_t>(fast) < 0) fast = 0;
#endif
  s.alloc = {fast,         slow_.get(),    slow_high_order_.get(), empty_.get(), refill_.get(),
             waive_.load(std::memory_order_relaxed), limited_.get(), fail_.get(),
             steal_.get()};
#if PAGEPOOL_STATS
  s.recycle = {cached, cache_full_.get(),
               ring_collected_.get() + (ring_.load(std::memory_order_relaxed) >> 32),
               ring_full_.load(std::memory_order_relaxed),
               released_refcnt_.load(std::memory_order_relaxed)};
#endif
  s.hold = hold_.get();
  s.release = release_.load(std::memory_order_relaxed);
  return s;
}

Levels Pool::check() const {
  auto fail = [&](const std::string& what) {
    throw std::logic_error(pool_label(params_) + ": invariant broken: " + what);
  };
  std::unordered_set<const Page*> seen;
  auto visit = [&](const Page* p, const char* where) {
    if (p->ref.load(std::memory_order_relaxed) != 0) fail(std::string("referenced page in ") + where);
    if (p->pool.load(std::memory_order_relaxed) != this) fail(std::string("foreign page in ") + where);
    if (!seen.insert(p).second) fail(std::string("page twice, second time in ") + where);
  };
  const Levels l = levels();
  for (std::uint32_t i = 0; i < l.cache; ++i) visit(cache_[i], "the cache");
  std::uint64_t ring = 0;
  for (std::uint32_t id = local_head_; id; id = id_page(id)->next.load(std::memory_order_relaxed), ++ring)
    visit(id_page(id), "the taken chain");
  for (std::uint32_t id = static_cast<std::uint32_t>(ring_.load(std::memory_order_acquire) & kRingIdMask);
       id; id = id_page(id)->next.load(std::memory_order_relaxed), ++ring)
    visit(id_page(id), "the ring");
  if (ring != l.ring) fail("ring count " + std::to_string(l.ring) + " but " + std::to_string(ring) + " pages linked");
  std::uint64_t pending = 0;
  for (const detail::ReturnSlot* sl = slots_.load(std::memory_order_acquire); sl; sl = sl->next) {
    const std::uint32_t h = sl->head.load(std::memory_order_acquire);
    const std::uint32_t t = sl->tail.load(std::memory_order_acquire);
    if (t - h > detail::kSlotCap) fail("a returner's batch holds more than its capacity");
    for (std::uint32_t i = h; i != t; ++i, ++pending)
      visit(id_page(sl->entries[i % detail::kSlotCap].load(std::memory_order_relaxed)),
            "a returner's batch");
  }
  if (pending != l.pending) fail("pending count changed during the walk");
  if (hold_.get() - release_.load(std::memory_order_relaxed) != l.held)
    fail("hold - release != pages held");
  if (l.cache + l.ring + l.pending + l.carving_idle > l.held) fail("more pages resting than held");
  return l;
}

// ---- page functions -----------------------------------------------------------

std::size_t page_size(const Page* p) { return page_pool(p)->page_bytes(); }

}  // namespace pagepool
