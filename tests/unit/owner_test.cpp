// Ownership: the creating thread owns the pool until another calls
// bind_owner; only the owner recycles directly. Pages cross threads freely.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "pagepool/pagepool.hpp"
#include "test_providers.hpp"
#include "test_util.hpp"

namespace {

using namespace pptest;
using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;

// The creating thread is the owner; no other thread is.
TEST(Owner, CreatorIsTheOwner) {
  auto pool = Pool::create({});
  EXPECT_TRUE(pool->is_owner());
  bool other = true;
  on_other_thread([&] { other = pool->is_owner(); });
  EXPECT_FALSE(other);
}

// A pool created on another thread is owned by that thread, not by us.
TEST(Owner, CreatedElsewhereIsNotOurs) {
  pagepool::PoolPtr pool;
  bool owner_there = false;
  on_other_thread([&] {
    pool = Pool::create({});
    owner_there = pool->is_owner();
  });
  EXPECT_TRUE(owner_there);
  EXPECT_FALSE(pool->is_owner());
  pool->bind_owner();
  EXPECT_TRUE(pool->is_owner());
}

// After bind_owner on another thread, that thread allocates and recycles
// directly; the old owner's puts are no longer direct and go the remote way
// (its batch, then the ring).
TEST(Owner, BindOwnerMovesDirectRecycling) {
  auto pool = Pool::create({});
  Page* mine = pool->alloc_page();
  std::vector<Page*> theirs;
  bool bound = false;
  StatsWatch w(*pool);
  on_other_thread([&] {
    pool->bind_owner();
    bound = pool->is_owner();
    theirs = alloc_n(*pool, 4);
    pool->recycle_direct(theirs[0]);
    pagepool::put_page(theirs[1]);
    pool->put_page(theirs[2], -1, true);
  });
  EXPECT_TRUE(bound);
  EXPECT_FALSE(pool->is_owner());
  EXPECT_MOVED(w, {.fast = 4, .cached = 3});

  // The old owner is now just another thread: its puts go to its batch
  // for the pool, and from there to the ring.
  pagepool::put_page(mine);
  pool->put_page(theirs[3], -1, true);
  EXPECT_MOVED(w, {});  // pending in our batch: not counted yet
  EXPECT_EQ(pool->levels().pending, 2u);
  EXPECT_EQ(pool->levels().cache, 62u);  // 64 - 1 - 4 + the new owner's 3 recycles
  pagepool::flush_thread();
  EXPECT_MOVED(w, {.ring = 2});  // counted at the handover
  EXPECT_EQ(pool->levels().ring, 2u);
  EXPECT_EQ(pool->levels().pending, 0u);

  // Taking the pool back makes our puts direct again.
  pool->bind_owner();
  Page* p = pool->alloc_page();
  pagepool::put_page(p);
  EXPECT_MOVED(w, {.fast = 1, .cached = 1});
  EXPECT_CONSISTENT(pool);
}

// A pool can be handed along a chain of threads; each owner allocates and
// returns pages the previous owners allocated, directly.
TEST(Owner, HandedAlongThreads) {
  auto pool = Pool::create({});
  std::vector<Page*> carried = alloc_n(*pool, 10);
  StatsWatch w(*pool);
  for (int hop = 0; hop < 5; ++hop) {
    on_other_thread([&] {
      pool->bind_owner();
      for (Page* p : carried) pagepool::put_page(p);  // direct: we are the owner
      carried = alloc_n(*pool, 10);
    });
  }
  EXPECT_MOVED(w, {.fast = 50, .cached = 50});
  pool->bind_owner();
  put_all(carried);
  EXPECT_CONSISTENT(pool);
}

// The adopted pool can be destroyed by its new owner, with pages out that
// the old owner returns afterwards.
TEST(Owner, NewOwnerDestroys) {
  auto c = make_counted_pool({});
  std::vector<Page*> out = alloc_n(*c.pool, 3);
  on_other_thread([&] {
    c.pool->bind_owner();
    c.pool.reset();
  });
  EXPECT_FALSE(c.provider.expired());
  put_all(out);
  EXPECT_TRUE(c.provider.expired());
  EXPECT_EQ(c.log->release_pages.load(), c.log->alloc_pages.load());
}

// Owner allocates while several threads write to the pages and return
// them (singly and in bulk). Every page comes back, every successful
// allocation is counted once, none is direct, and the invariant holds.
TEST(Threads, ReturnsFromManyThreadsWhileTheOwnerAllocates) {
  Params params;
  params.pool_size = 256;
  params.max_inflight = 512;  // flow control: the owner waits when workers lag
  auto pool = Pool::create(params);
  constexpr int kWorkers = 3;
  constexpr int kPages = 20000;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Page*> queue;
  bool done = false;
  std::vector<std::thread> workers;
  for (int t = 0; t < kWorkers; ++t)
    workers.emplace_back([&, t] {
      std::vector<Page*> batch;
      for (;;) {
        Page* p;
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return done || !queue.empty(); });
          if (queue.empty()) break;
          p = queue.front();
          queue.pop_front();
        }
        auto* b = static_cast<unsigned char*>(pagepool::page_address(p));
        b[0] = static_cast<unsigned char>(t);
        b[pagepool::page_size(p) - 1] = static_cast<unsigned char>(t);
        if (t == 0) {
          pagepool::put_page(p);
        } else {
          batch.push_back(p);
          if (batch.size() == 8) {
            pool->put_pages_bulk(batch.data(), batch.size());
            batch.clear();
          }
        }
      }
      if (!batch.empty()) pool->put_pages_bulk(batch.data(), batch.size());
    });
  int allocated = 0;
  while (allocated < kPages) {
    Page* p = pool->alloc_page();
    if (!p) {  // max_inflight: wait for the workers
      std::this_thread::yield();
      continue;
    }
    static_cast<unsigned char*>(pagepool::page_address(p))[0] = 0xff;
    ++allocated;
    {
      std::lock_guard lock(mu);
      queue.push_back(p);
    }
    cv.notify_one();
  }
  {
    std::lock_guard lock(mu);
    done = true;
  }
  cv.notify_all();
  for (auto& t : workers) t.join();
  const auto s = pool->stats();
#if PAGEPOOL_STATS
  EXPECT_EQ(s.alloc.fast + s.alloc.refill + s.alloc.slow, std::uint64_t{kPages});
  EXPECT_EQ(s.recycle.cached, 0u);
#endif
  const auto l = expect_consistent(*pool);
  EXPECT_EQ(l.inflight, 0u);
}

}  // namespace
