// Helpers shared by the unit and provider suites: exact counter movement
// (StatsWatch / EXPECT_MOVED) and page data checks.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "pagepool/pagepool.hpp"

namespace pptest::common {

using pagepool::Page;
using pagepool::Pool;

// Expected movement of every counter; anything not named must not move.
struct Delta {
  std::uint64_t fast = 0, slow = 0, slow_high_order = 0, empty = 0, refill = 0, waive = 0,
                limited = 0, fail = 0, steal = 0;
  std::uint64_t cached = 0, cache_full = 0, ring = 0, ring_full = 0, released_refcnt = 0;
  std::uint64_t hold = 0, release = 0;
};

inline void expect_delta(const pagepool::Stats& a, const pagepool::Stats& b, const Delta& d) {
#if PAGEPOOL_STATS
  EXPECT_EQ(b.alloc.fast - a.alloc.fast, d.fast) << "alloc.fast";
  EXPECT_EQ(b.alloc.slow - a.alloc.slow, d.slow) << "alloc.slow";
  EXPECT_EQ(b.alloc.slow_high_order - a.alloc.slow_high_order, d.slow_high_order)
      << "alloc.slow_high_order";
  EXPECT_EQ(b.alloc.empty - a.alloc.empty, d.empty) << "alloc.empty";
  EXPECT_EQ(b.alloc.refill - a.alloc.refill, d.refill) << "alloc.refill";
  EXPECT_EQ(b.alloc.limited - a.alloc.limited, d.limited) << "alloc.limited";
  EXPECT_EQ(b.alloc.fail - a.alloc.fail, d.fail) << "alloc.fail";
  EXPECT_EQ(b.alloc.steal - a.alloc.steal, d.steal) << "alloc.steal";
  EXPECT_EQ(b.recycle.cached - a.recycle.cached, d.cached) << "recycle.cached";
  EXPECT_EQ(b.recycle.cache_full - a.recycle.cache_full, d.cache_full) << "recycle.cache_full";
  EXPECT_EQ(b.recycle.ring - a.recycle.ring, d.ring) << "recycle.ring";
  EXPECT_EQ(b.recycle.ring_full - a.recycle.ring_full, d.ring_full) << "recycle.ring_full";
  EXPECT_EQ(b.recycle.released_refcnt - a.recycle.released_refcnt, d.released_refcnt)
      << "recycle.released_refcnt";
#endif
  // waive, hold and release are kept whatever PAGEPOOL_STATS says.
  EXPECT_EQ(b.alloc.waive - a.alloc.waive, d.waive) << "alloc.waive";
  EXPECT_EQ(b.hold - a.hold, d.hold) << "hold";
  EXPECT_EQ(b.release - a.release, d.release) << "release";
}

// Remembers a pool's counters; each check asserts the exact movement since
// the previous check (or construction) and re-arms.
class StatsWatch {
 public:
  explicit StatsWatch(const Pool& pool) : pool_(pool), last_(pool.stats()) {}
  void expect(const Delta& d) {
    const pagepool::Stats now = pool_.stats();
    expect_delta(last_, now, d);
    last_ = now;
  }

 private:
  const Pool& pool_;
  pagepool::Stats last_;
};

// EXPECT_MOVED(watch, {.fast = 1, .hold = 64}): exactly these moved.
#define EXPECT_MOVED(watch, ...)                  \
  do {                                            \
    SCOPED_TRACE("counter movement");             \
    (watch).expect(::pptest::common::Delta __VA_ARGS__);  \
  } while (0)

// ---- pages ----------------------------------------------------------------------

// Writes `v` over every byte of the page's data; page_holds checks it.
inline void fill_page(Page* p, unsigned char v) {
  std::memset(pagepool::page_address(p), v, pagepool::page_size(p));
}

inline bool page_holds(const Page* p, unsigned char v) {
  const auto* b = static_cast<const unsigned char*>(pagepool::page_address(p));
  const std::size_t n = pagepool::page_size(p);
  for (std::size_t i = 0; i < n; ++i)
    if (b[i] != v) return false;
  return true;
}

// n pages from the pool, each written over its whole length. Fails the test
// (and returns fewer) if the pool runs out.
inline std::vector<Page*> alloc_n(Pool& pool, std::size_t n) {
  std::vector<Page*> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    Page* p = pool.alloc_page();
    EXPECT_NE(p, nullptr) << "allocation " << i << " of " << n;
    if (!p) break;
    fill_page(p, static_cast<unsigned char>(i));
    out.push_back(p);
  }
  return out;
}

inline void put_all(const std::vector<Page*>& pages) {
  for (Page* p : pages) pagepool::put_page(p);
}

}  // namespace pptest::common
