// Helpers shared by the unit tests: exact counter deltas, the pool's
// accounting invariant, page data checks, running code on another thread.
#pragma once

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "pagepool/pagepool.hpp"

namespace pptest {

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
  EXPECT_EQ(b.alloc.waive - a.alloc.waive, d.waive) << "alloc.waive";
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
#define EXPECT_MOVED(watch, ...)               \
  do {                                         \
    SCOPED_TRACE("counter movement");          \
    (watch).expect(::pptest::Delta __VA_ARGS__); \
  } while (0)

// The accounting invariant, for a quiescent pool on its owner thread:
// Pool::check() finds nothing broken, the levels add up to the pages held
// (cache + ring + pending + carving_idle + inflight == held), and
// hold - release equals them too.
inline pagepool::Levels expect_consistent(const Pool& pool) {
  pagepool::Levels l{};
  try {
    l = pool.check();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "check() threw: " << e.what();
    return pool.levels();
  }
  EXPECT_EQ(l.cache + l.ring + l.pending + l.carving_idle + l.inflight, l.held)
      << "cache " << l.cache << " ring " << l.ring << " pending " << l.pending << " carving_idle "
      << l.carving_idle << " inflight " << l.inflight;
  const pagepool::Stats s = pool.stats();
  EXPECT_EQ(s.hold - s.release, l.held);
  return l;
}

#define EXPECT_CONSISTENT(pool)             \
  do {                                      \
    SCOPED_TRACE("pool invariants");        \
    ::pptest::expect_consistent(*(pool));   \
  } while (0)

// Writes `v` over every byte of the page's data.
inline void fill_page(Page* p, unsigned char v) {
  std::memset(pagepool::page_address(p), v, pagepool::page_size(p));
}

// True if every byte of the page's data is `v`.
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

// Runs f on a new thread and waits for it (the join orders everything).
// The thread exits afterwards, which hands over its pending returns.
template <class F>
void on_other_thread(F&& f) {
  std::thread t(std::forward<F>(f));
  t.join();
}

// A thread that stays alive between jobs, so the pages it put stay pending
// in its batch slots until it flushes, exits or the owner steals them.
// run() executes a job on it and waits for it to finish (a mutex handoff
// orders the job after everything before run() and before everything after).
class Worker {
 public:
  Worker() : t_([this] { loop(); }) {}
  ~Worker() { exit(); }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void run(std::function<void()> f) {
    std::unique_lock lk(mu_);
    job_ = std::move(f);
    busy_ = true;
    cv_.notify_all();
    cv_.wait(lk, [&] { return !busy_; });
  }
  // Ends the thread (running its exit-time flush) and joins it.
  void exit() {
    if (!t_.joinable()) return;
    {
      std::lock_guard lk(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    t_.join();
  }

 private:
  void loop() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return busy_ || quit_; });
      if (busy_) {
        std::function<void()> f = std::move(job_);
        lk.unlock();
        f();
        lk.lock();
        busy_ = false;
        cv_.notify_all();
      } else {
        return;
      }
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> job_;
  bool busy_ = false, quit_ = false;
  std::thread t_;  // last: starts after the fields it uses
};

// Each test starts with the main thread holding no batch slots: pages a
// previous test left pending there are handed over (to that test's pool, long
// destroyed, so nothing moves) and its claims are dropped. Without this a
// test's outcome would depend on the tests run before it in the same process
// (which of its pools a ninth claim evicts from the main thread's table).
namespace detail {
class FlushAtTestStart : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo&) override { pagepool::flush_thread(); }
};
[[maybe_unused]] inline const bool kFlushAtTestStart = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new FlushAtTestStart);
  return true;
}();
}  // namespace detail

}  // namespace pptest
