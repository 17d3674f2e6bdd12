// max_inflight: "hard cap on pages out of the pool" (types.hpp), "the cap is
// never exceeded" (docs/design.md).
#include "harness.hpp"

namespace {

using namespace ppstress;
using pagepool::Params;
using pagepool::PoolPtr;

// Whole pages only, strict cap: the owner's budget must never let the test
// hold more than max_inflight pages at once, while other threads return
// pages concurrently (the budget is recounted from levels() on the slow path).
TEST(MaxInflight, CapHoldsUnderConcurrentReturns) {
  Params params;
  params.name = "capped";
  params.pool_size = 32;
  params.max_inflight = 48;
  PoolPtr pool = Pool::create(params);

  constexpr int kWorkers = 3;
  World w(1 + kWorkers);
  w.inflight_slack = 0;  // exact
  PoolCtx ctx;
  ctx.init(pool.get(), 0);
  Actor owner(w, 0, false);
  owner.set_peers({1, 2, 3});

  std::vector<std::thread> threads;
  for (int i = 1; i <= kWorkers; ++i) {
    threads.emplace_back([&w, i] {
      Actor me(w, i, /*sink=*/i == kWorkers);
      std::vector<int> peers;
      for (int j = 0; j <= kWorkers; ++j)
        if (j != i) peers.push_back(j);
      me.run_worker(peers);
    });
  }
  const Deadline deadline(stress_seconds() / 2);
  std::uint64_t tally = 0;
  for (std::uint64_t it = 0; it < 1'000'000 && (it < 2000 || !deadline.passed()) && !w.f.failed(); ++it) {
    owner.step_incoming(8);
    const std::uint64_t refused = w.n_limited.load(std::memory_order_relaxed);
    tally += owner.allocate(ctx, /*frags=*/false);
    if (w.n_limited.load(std::memory_order_relaxed) != refused) {
      owner.idle_step();
      std::this_thread::yield();
    }
  }
  quiesce(w, owner, threads, 20.0);

  std::printf("[ cap ] %llu allocs, %llu refused, max pages held %lld of %u\n",
              (unsigned long long)w.n_alloc.load(), (unsigned long long)w.n_limited.load(),
              (long long)ctx.max_pages_out.load(), params.max_inflight);
  EXPECT_LE(ctx.max_pages_out.load(), std::int64_t{params.max_inflight});
  EXPECT_GT(w.n_limited.load(), 0u);
  expect_quiescent(*pool, "capped");
#if PAGEPOOL_STATS
  const pagepool::Stats s = pool->stats();
  EXPECT_EQ(s.alloc.fast + s.alloc.slow + s.alloc.refill, tally);
  EXPECT_GT(s.alloc.limited, 0u);
#endif
}

// Regression test (the bug is fixed): an idle carving page -- the page being
// carved into fragments, all of whose fragments have come back -- must count
// as out when the slow path recounts the budget, since alloc_frag's fast path
// hands fragments of it out again without consulting the budget. Before the
// fix the pool lent the "idle" page's budget slot to alloc_page and then put
// the carving page back out too: max_inflight + 1 pages out. Deterministic,
// single-threaded. World::inflight_slack probes for the bug at run time and is
// 0 now, so the concurrent tests above check the cap exactly.
TEST(MaxInflight, IdleCarvingPageBypassesTheCap) {
  Params params;
  params.name = "cap1";
  params.max_inflight = 1;
  PoolPtr pool = Pool::create(params);

  std::uint32_t off = 0;
  Page* frag = pool->alloc_frag(64, &off);  // the one page the cap allows, being carved
  ASSERT_NE(frag, nullptr);
  EXPECT_EQ(pool->inflight(), 1u);
  pagepool::put_page(frag);                 // its only fragment is back: carving_idle
  EXPECT_EQ(pool->levels().carving_idle, 1u);

  Page* page = pool->alloc_page();          // budget recount: 0 out -> allowed
  std::uint32_t off2 = 0;
  Page* frag2 = pool->alloc_frag(64, &off2);  // fast path on the carving page: no budget check
  const std::uint64_t out = pool->inflight();
  EXPECT_LE(out, params.max_inflight) << "max_inflight 1, but " << out << " pages are out (page "
                                      << (page ? "granted" : "refused") << ", fragment "
                                      << (frag2 ? "granted" : "refused") << ")";
  if (frag2) pagepool::put_page(frag2);
  if (page) pagepool::put_page(page);
  expect_quiescent(*pool, "cap1");
}

}  // namespace
