// Shared helpers for the pagepool stress tests (tests/stress/*.cpp).
//
//  - Budget: every stress loop is bounded by an iteration count AND a wall-clock
//    deadline (PAGEPOOL_STRESS_SECONDS, default 2 s per test), so a slow
//    sanitizer build stays fast and a fast build still does real work.
//  - Shadow: a side table recording which byte ranges of which pages the test
//    threads hold. Claiming a range that overlaps a held one (a page or a
//    fragment handed out twice) fails the test. It uses only relaxed atomics,
//    so it adds no happens-before edges that could hide a missing one in the
//    library from ThreadSanitizer.
//  - Stamps: a holder writes a pattern derived from (thread, sequence) into its
//    bytes and verifies it before every handoff and put, so data changed under
//    a holder (a page recycled while still held) is caught.
//  - CountingProvider: forwards to an AnonProvider and counts pages in and
//    out, checks the provider contract on every call (ref 0, pool nullptr, no
//    page released twice or handed out twice), can ask for device syncs and
//    can be limited to a number of pages out at once. Relaxed atomics only,
//    like the shadow: the unit and provider suites' counting provider
//    (common/counting_provider.hpp) logs under a mutex, which would order
//    the threads calling it and could hide a race from ThreadSanitizer.
//  - expect_quiescent: the accounting every suite checks
//    (common/invariants.hpp), at quiescence, before and after the caller's
//    flush.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/invariants.hpp"
#include "pagepool/pagepool.hpp"

namespace ppstress {

using pagepool::Page;
using pagepool::Pool;

// ---- budget -------------------------------------------------------------------

inline double stress_seconds() {
  static const double s = [] {
    const char* e = std::getenv("PAGEPOOL_STRESS_SECONDS");
    const double v = e ? std::atof(e) : 0.0;
    return v > 0 ? v : 2.0;
  }();
  return s;
}

inline std::uint64_t stress_seed() {
  static const std::uint64_t s = [] {
    const char* e = std::getenv("PAGEPOOL_STRESS_SEED");
    return e ? std::strtoull(e, nullptr, 0) : std::uint64_t{0x5eed0f9a9e9001};
  }();
  return s;
}

class Deadline {
 public:
  explicit Deadline(double seconds)
      : end_(std::chrono::steady_clock::now() +
             std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                 std::chrono::duration<double>(seconds))) {}
  bool passed() const { return std::chrono::steady_clock::now() >= end_; }

 private:
  std::chrono::steady_clock::time_point end_;
};

// A wait that never hangs the suite: spins with yields, then sleeps, and
// gives up (returning false) after `seconds`.
template <class Pred>
bool wait_for(Pred pred, double seconds = 20.0) {
  Deadline d(seconds);
  for (unsigned i = 0; !pred(); ++i) {
    if (d.passed()) return false;
    if (i < 64)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return true;
}

using Rng = std::mt19937_64;
inline Rng make_rng(std::uint64_t salt) { return Rng(stress_seed() * 0x9e3779b97f4a7c15ull + salt); }
inline std::uint32_t rnd(Rng& r, std::uint32_t n) {  // [0, n)
  return static_cast<std::uint32_t>(r() % n);
}
inline bool chance(Rng& r, unsigned percent) { return rnd(r, 100) < percent; }

// ---- failure recording ----------------------------------------------------------

// First failure wins the message; every thread polls failed() to stop early.
// (GoogleTest assertions are thread-safe on pthreads; we still keep the
// message count bounded so a cascade does not flood the log.)
class Failures {
 public:
  void fail(const std::string& msg) {
    if (count_.fetch_add(1, std::memory_order_relaxed) < 8) ADD_FAILURE() << msg;
    failed_.store(true, std::memory_order_relaxed);
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> failed_{false};
  std::atomic<int> count_{0};
};

inline std::string hex(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

// ---- a lazily grown table indexed by page id --------------------------------------

// Page ids are the descriptor's index in the metadata arena
// (pagepool::detail::page_id, a public inline): small and dense in practice.
template <class T>
class PageTable {
 public:
  static constexpr std::uint32_t kBlockBits = 12;
  static constexpr std::uint32_t kBlock = 1u << kBlockBits;
  static constexpr std::uint32_t kTop = 1u << (27 - kBlockBits);  // 2^27 ids, as the arena

  PageTable() : top_(new std::atomic<T*>[kTop]) {
    for (std::uint32_t i = 0; i < kTop; ++i) top_[i].store(nullptr, std::memory_order_relaxed);
  }
  ~PageTable() {
    for (std::uint32_t i = 0; i < kTop; ++i) delete[] top_[i].load(std::memory_order_relaxed);
  }
  PageTable(const PageTable&) = delete;
  PageTable& operator=(const PageTable&) = delete;

  T& at(const Page* p) {
    const std::uint32_t id = pagepool::detail::page_id(p);
    std::atomic<T*>& slot = top_[(id >> kBlockBits) % kTop];
    T* b = slot.load(std::memory_order_acquire);
    if (!b) {
      T* fresh = new T[kBlock]();
      if (slot.compare_exchange_strong(b, fresh, std::memory_order_acq_rel, std::memory_order_acquire))
        b = fresh;
      else
        delete[] fresh;
    }
    return b[id & (kBlock - 1)];
  }

 private:
  std::unique_ptr<std::atomic<T*>[]> top_;
};

// ---- pools under test and the handles the test holds ----------------------------------

struct PoolCtx {
  Pool* pool = nullptr;          // may dangle once the pool is destroyed
  std::uint32_t page_bytes = 0;
  std::uint32_t gran = 0;        // shadow granule: page_bytes / 64
  std::uint32_t max_inflight = 0;
  std::uint32_t index = 0;       // for messages
  // Pages of this pool with at least one range held by the test (shadow).
  std::atomic<std::int64_t> pages_out{0};
  std::atomic<std::int64_t> max_pages_out{0};

  void init(Pool* p, std::uint32_t idx) {
    pool = p;
    page_bytes = static_cast<std::uint32_t>(p->page_bytes());
    gran = page_bytes / 64;
    max_inflight = p->params().max_inflight;
    index = idx;
  }
};

// One reference the test holds: the whole page or a fragment [off, off + len).
// exclusive: the only reference to that range; the holder may write it.
// Otherwise the range is frozen (extra references exist) and holders only read.
struct Handle {
  Page* p = nullptr;
  PoolCtx* ctx = nullptr;
  std::uint32_t off = 0;
  std::uint32_t len = 0;
  std::uint64_t key = 0;
  bool whole = false;
  bool exclusive = false;
};

// ---- shadow record of held ranges ------------------------------------------------------

class Shadow {
 public:
  explicit Shadow(Failures& f) : f_(f) {}

  // After an allocation: the range must not overlap anything the test holds.
  void claim(const Handle& h, const char* what) {
    Entry& e = table_.at(h.p);
    const std::uint64_t m = mask(h);
    if (h.off % h.ctx->gran != 0 || h.len == 0 || h.off + h.len > h.ctx->page_bytes) {
      f_.fail(std::string(what) + ": bad range off=" + std::to_string(h.off) +
              " len=" + std::to_string(h.len) + " page_bytes=" + std::to_string(h.ctx->page_bytes));
      return;
    }
    const std::uint64_t old = e.mask.fetch_or(m, std::memory_order_relaxed);
    if (old & m) {
      f_.fail(std::string(what) + ": page " + hex(h.p) + " of pool#" + std::to_string(h.ctx->index) +
              " range [" + std::to_string(h.off) + ", " + std::to_string(h.off + h.len) +
              ") handed out while (part of) it is still held (held mask " + std::to_string(old) + ")");
      return;
    }
    e.refs[h.off / h.ctx->gran].store(1, std::memory_order_relaxed);
    if (old == 0) {
      const std::int64_t n = h.ctx->pages_out.fetch_add(1, std::memory_order_relaxed) + 1;
      std::int64_t mx = h.ctx->max_pages_out.load(std::memory_order_relaxed);
      while (n > mx && !h.ctx->max_pages_out.compare_exchange_weak(mx, n, std::memory_order_relaxed)) {
      }
    }
  }
  // After get_page: one more reference to a held range.
  void addref(const Handle& h) {
    table_.at(h.p).refs[h.off / h.ctx->gran].fetch_add(1, std::memory_order_relaxed);
  }
  // Before a put: drop one reference; the last one frees the range.
  void release(const Handle& h, const char* what) {
    Entry& e = table_.at(h.p);
    const std::uint32_t r = e.refs[h.off / h.ctx->gran].fetch_sub(1, std::memory_order_relaxed);
    if (r == 0) {
      f_.fail(std::string(what) + ": shadow refcount underflow on page " + hex(h.p));
      return;
    }
    if (r != 1) return;
    const std::uint64_t m = mask(h);
    const std::uint64_t old = e.mask.fetch_and(~m, std::memory_order_relaxed);
    if ((old & m) != m) f_.fail(std::string(what) + ": shadow range not held on page " + hex(h.p));
    if ((old & ~m) == 0) h.ctx->pages_out.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  struct Entry {
    std::atomic<std::uint64_t> mask{0};
    std::atomic<std::uint32_t> refs[64];  // value-initialised (C++20)
  };
  static std::uint64_t mask(const Handle& h) {
    const std::uint32_t first = h.off / h.ctx->gran;
    const std::uint32_t n = (h.len + h.ctx->gran - 1) / h.ctx->gran;
    return n >= 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << n) - 1) << first;
  }
  // One process-wide table: every range is free again when a test ends
  // quiescent, and building a table per run costs more than a run under TSan.
  static PageTable<Entry>& table() {
    static auto* t = new PageTable<Entry>;
    return *t;
  }
  Failures& f_;
  PageTable<Entry>& table_ = table();
};

// ---- data stamps -----------------------------------------------------------------------

inline constexpr std::size_t kMaxStampBytes = pagepool::kPageSize << 1;  // orders 0 and 1

inline std::uint8_t stamp_byte(std::uint64_t key) {
  return static_cast<std::uint8_t>((key * 0x9e3779b97f4a7c15ull) >> 56);
}

// 256 reference buffers, one per fill byte, so verification is one memcmp
// (intercepted by the sanitizers: a range check rather than per-byte work).
inline const std::uint8_t* fill_ref(std::uint8_t b) {
  static const std::vector<std::uint8_t>* table = [] {
    auto* t = new std::vector<std::uint8_t>(256 * kMaxStampBytes);
    for (std::size_t i = 0; i < 256; ++i)
      std::memset(t->data() + i * kMaxStampBytes, static_cast<int>(i), kMaxStampBytes);
    return t;
  }();
  return table->data() + std::size_t{b} * kMaxStampBytes;
}

struct StampHeader {
  std::uint64_t key;
  std::uint64_t check;  // ~key ^ offset: catches a header copied to a wrong place
};

inline std::uint8_t* range_addr(const Handle& h) {
  return static_cast<std::uint8_t*>(pagepool::page_address(h.p)) + h.off;
}

// Holder writes its key over its whole range.
inline void stamp(Handle& h, std::uint64_t key) {
  h.key = key;
  std::uint8_t* a = range_addr(h);
  const StampHeader hdr{key, ~key ^ h.off};
  const std::size_t hb = std::min<std::size_t>(sizeof hdr, h.len);
  std::memcpy(a, &hdr, hb);
  if (h.len > hb) std::memset(a + hb, stamp_byte(key), h.len - hb);
}

// Holder checks its range still holds its key. Returns false (and reports) if not.
inline bool verify(const Handle& h, Failures& f, const char* where) {
  const std::uint8_t* a = range_addr(h);
  const StampHeader want{h.key, ~h.key ^ h.off};
  const std::size_t hb = std::min<std::size_t>(sizeof want, h.len);
  bool ok = std::memcmp(a, &want, hb) == 0;
  if (ok && h.len > hb) ok = std::memcmp(a + hb, fill_ref(stamp_byte(h.key)), h.len - hb) == 0;
  if (!ok) {
    StampHeader got{};
    std::memcpy(&got, a, hb);
    f.fail(std::string(where) + ": data of page " + hex(h.p) + " [" + std::to_string(h.off) + ", " +
           std::to_string(h.off + h.len) + ") changed under its holder: want key " +
           std::to_string(h.key) + ", found header key " + std::to_string(got.key));
  }
  return ok;
}

// ---- handoff between threads -------------------------------------------------------------

// Mutex-protected MPMC queue of handles (test-side locks are fine: the point
// is the library, not the queue).
class Inbox {
 public:
  void push(const Handle& h) {
    std::lock_guard lk(mu_);
    q_.push_back(h);
    size_.store(q_.size(), std::memory_order_relaxed);
  }
  void push_all(const std::vector<Handle>& hs) {
    std::lock_guard lk(mu_);
    q_.insert(q_.end(), hs.begin(), hs.end());
    size_.store(q_.size(), std::memory_order_relaxed);
  }
  // Moves up to max handles into out; returns how many.
  std::size_t take(std::vector<Handle>& out, std::size_t max) {
    if (size_.load(std::memory_order_relaxed) == 0) return 0;
    std::lock_guard lk(mu_);
    std::size_t n = 0;
    while (n < max && !q_.empty()) {
      out.push_back(q_.front());
      q_.pop_front();
      ++n;
    }
    size_.store(q_.size(), std::memory_order_relaxed);
    return n;
  }
  std::size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  std::mutex mu_;
  std::deque<Handle> q_;
  std::atomic<std::size_t> size_{0};
};

// ---- a counting provider ---------------------------------------------------------------------

struct ProviderCounters {
  std::atomic<std::uint64_t> allocd{0};     // pages handed to pools
  std::atomic<std::uint64_t> released{0};   // pages given back
  std::atomic<std::uint64_t> maps{0}, unmaps{0}, syncs{0};
  std::atomic<std::uint64_t> violations{0}; // provider-contract breaches seen
  std::atomic<bool> destroyed{false};
  std::mutex mu;
  std::string first_violation;

  void violation(const std::string& what) {
    if (violations.fetch_add(1, std::memory_order_relaxed) == 0) {
      std::lock_guard lk(mu);
      first_violation = what;
    }
  }
  std::string first() {
    std::lock_guard lk(mu);
    return first_violation;
  }
};

// AnonProvider is final, so wrap it. Tracks per page whether it is out of the
// provider: alloc'ing a page twice or releasing one twice is a violation.
// page_budget: pages it may have out at once (handed out and not released);
// beyond that alloc_bulk hands out fewer, or none.
class CountingProvider final : public pagepool::Provider {
 public:
  CountingProvider(unsigned order, std::shared_ptr<ProviderCounters> c, bool needs_sync = false,
                   std::uint64_t page_budget = ~std::uint64_t{0})
      : inner_(std::make_unique<pagepool::AnonProvider>(order)),
        c_(std::move(c)),
        needs_sync_(needs_sync),
        page_bytes_(static_cast<std::uint32_t>(pagepool::kPageSize << order)),
        left_(page_budget) {}
  ~CountingProvider() override { c_->destroyed.store(true, std::memory_order_relaxed); }

  unsigned order() const noexcept override { return inner_->order(); }
  const char* name() const noexcept override { return "counting"; }

  std::size_t alloc_bulk(Page** out, std::size_t n) noexcept override {
    std::uint64_t left = left_.load(std::memory_order_relaxed);
    std::uint64_t take;
    do {
      take = std::min<std::uint64_t>(left, n);
    } while (!left_.compare_exchange_weak(left, left - take, std::memory_order_relaxed));
    const std::size_t got = take ? inner_->alloc_bulk(out, static_cast<std::size_t>(take)) : 0;
    if (got < take) left_.fetch_add(take - got, std::memory_order_relaxed);
    for (std::size_t i = 0; i < got; ++i) {
      Page* p = out[i];
      if (p->ref.load(std::memory_order_relaxed) != 0 || p->pool.load(std::memory_order_relaxed))
        c_->violation("alloc_bulk: page " + hex(p) + " handed out with ref/pool set");
      if (out_.at(p).exchange(1, std::memory_order_relaxed) != 0)
        c_->violation("alloc_bulk: page " + hex(p) + " handed out twice");
    }
    c_->allocd.fetch_add(got, std::memory_order_relaxed);
    return got;
  }
  void release_bulk(Page* const* pages, std::size_t n) noexcept override {
    for (std::size_t i = 0; i < n; ++i) {
      Page* p = pages[i];
      if (p->ref.load(std::memory_order_relaxed) != 0)
        c_->violation("release_bulk: page " + hex(p) + " released with ref " +
                      std::to_string(p->ref.load(std::memory_order_relaxed)));
      if (p->pool.load(std::memory_order_relaxed))
        c_->violation("release_bulk: page " + hex(p) + " released with its pool still set");
      if (out_.at(p).exchange(0, std::memory_order_relaxed) != 1)
        c_->violation("release_bulk: page " + hex(p) + " released twice (or never handed out)");
    }
    c_->released.fetch_add(n, std::memory_order_relaxed);
    inner_->release_bulk(pages, n);
    left_.fetch_add(n, std::memory_order_relaxed);
  }
  std::error_code map(Page* p, std::uint64_t* dma) noexcept override {
    c_->maps.fetch_add(1, std::memory_order_relaxed);
    return inner_->map(p, dma);
  }
  void unmap(Page* p) noexcept override {
    c_->unmaps.fetch_add(1, std::memory_order_relaxed);
    inner_->unmap(p);
  }
  bool needs_sync() const noexcept override { return needs_sync_; }
  void sync_for_device(Page* p, std::uint32_t offset, std::uint32_t len) noexcept override {
    c_->syncs.fetch_add(1, std::memory_order_relaxed);
    if (std::uint64_t{offset} + len > page_bytes_ || len == 0)
      c_->violation("sync_for_device: bad window on page " + hex(p));
  }
  int nid(const Page* p) const noexcept override { return inner_->nid(p); }

 private:
  std::unique_ptr<pagepool::AnonProvider> inner_;
  std::shared_ptr<ProviderCounters> c_;
  bool needs_sync_;
  std::uint32_t page_bytes_;
  std::atomic<std::uint64_t> left_;  // page budget left (wraps harmlessly when unlimited)
  // Whether a page is out of its provider; process-wide like the page ids.
  static PageTable<std::atomic<std::uint8_t>>& out_table() {
    static auto* t = new PageTable<std::atomic<std::uint8_t>>;
    return *t;
  }
  PageTable<std::atomic<std::uint8_t>>& out_ = out_table();
};

// ---- known library bugs -----------------------------------------------------------------------

// Probes (on a private pool of the calling thread) whether an idle carving
// page can still take max_inflight one page over the cap (see
// MaxInflight.IdleCarvingPageBypassesTheCap). While it can, the concurrent
// tests tolerate exactly one page over the cap; once fixed they are exact.
inline bool idle_carving_page_bypasses_cap() {
  static const bool bug = [] {
    pagepool::Params params;
    params.max_inflight = 1;
    auto pool = Pool::create(params);
    std::uint32_t off = 0;
    Page* f = pool->alloc_frag(64, &off);
    if (!f) return false;
    pagepool::put_page(f);
    Page* p = pool->alloc_page();
    Page* g = pool->alloc_frag(64, &off);
    const bool over = pool->inflight() > 1;
    if (g) pagepool::put_page(g);
    if (p) pagepool::put_page(p);
    return over;
  }();
  return bug;
}

// ---- invariants at quiescence ------------------------------------------------------------------

// Owner thread, pool quiescent, the test holds nothing of it, and every
// other thread that returned pages to it has exited or called
// pagepool::flush_thread(). Only the calling thread's own non-direct puts may
// still wait in a batch: the accounting is checked with them (pending), then
// the caller flushes and it is checked again, now with nothing pending.
// (flush_thread hands over the caller's batches of every pool, not only
// this one's.)
inline void expect_quiescent(Pool& pool, const char* name) {
  SCOPED_TRACE(name);
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "as left" : "after the caller's flush_thread()");
    // check(), the levels adding up to held == hold - release, their
    // bounds, and nothing out (inflight 0).
    const pagepool::Levels l = pptest::common::expect_consistent(pool, 0);
    if (pass == 0)
      pagepool::flush_thread();
    else
      EXPECT_EQ(l.pending, 0u) << "pages still pending after every returner exited or flushed";
  }
}

inline std::string describe(const pagepool::Stats& s) {
  char b[512];
  std::snprintf(b, sizeof b,
                "alloc fast=%" PRIu64 " slow=%" PRIu64 " slow_ho=%" PRIu64 " empty=%" PRIu64
                " refill=%" PRIu64 " steal=%" PRIu64 " limited=%" PRIu64 " fail=%" PRIu64
                " | recycle cached=%" PRIu64
                " cache_full=%" PRIu64 " ring=%" PRIu64 " ring_full=%" PRIu64
                " released_refcnt=%" PRIu64 " | hold=%" PRIu64 " release=%" PRIu64,
                s.alloc.fast, s.alloc.slow, s.alloc.slow_high_order, s.alloc.empty, s.alloc.refill,
                s.alloc.steal, s.alloc.limited, s.alloc.fail, s.recycle.cached, s.recycle.cache_full, s.recycle.ring,
                s.recycle.ring_full, s.recycle.released_refcnt, s.hold, s.release);
  return b;
}

}  // namespace ppstress
