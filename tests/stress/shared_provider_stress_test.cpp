// Several pools, each with its own owner thread, share one provider
// (Params::provider): the provider's lock-free free list then sees concurrent
// bulk allocations (pops) from every owner and releases (pushes) from every
// thread, which a single-owner pool never produces. Tiny rings make nearly
// every return a release, so pages cycle through the provider constantly and
// move between pools. Every thread also puts the other pools' pages.
//
// Checked: no page handed out twice by the provider (CountingProvider) or by
// a pool (shadow), stamps, map/unmap pairing across pools with different
// flags, and at the end the provider's count equals the pools' held pages and
// everything returns to it when the pools go.
#include "harness.hpp"

namespace {

using namespace ppstress;
using pagepool::Params;
using pagepool::PoolPtr;

TEST(SharedProviderStress, OwnersOfSeveralPoolsShareOneProvider) {
  constexpr int kOwners = 3, kActors = kOwners + 1;  // + one sink
  auto counters = std::make_shared<ProviderCounters>();
  std::weak_ptr<pagepool::Provider> weak_prov;
  std::vector<PoolPtr> pools;
  {
    auto prov = std::make_shared<CountingProvider>(0, counters, /*needs_sync=*/true);
    weak_prov = prov;
    for (int i = 0; i < kOwners; ++i) {
      Params p;
      p.name = "shared" + std::to_string(i);
      p.provider = prov;
      p.pool_size = i == 0 ? 2 : i == 1 ? 8 : 64;
      if (i >= 1) p.flags |= pagepool::kDmaMap;
      if (i == 2) {
        p.flags |= pagepool::kDmaSyncDev;
        p.max_len = 2048;
        p.max_inflight = 160;
      }
      pools.push_back(Pool::create(p));
    }
  }
  World w(kActors);
  PoolCtx ctx[kOwners];
  std::vector<PoolCtx*> observed;
  for (int i = 0; i < kOwners; ++i) {
    ctx[i].init(pools[i].get(), static_cast<std::uint32_t>(i));
    observed.push_back(&ctx[i]);
  }

  std::atomic<int> allocating{kOwners};
  std::atomic<std::uint64_t> tally[kOwners] = {};
  const Deadline deadline(stress_seconds());
  std::vector<int> everyone;
  for (int j = 0; j < kActors; ++j) everyone.push_back(j);

  std::vector<std::thread> threads;
  for (int i = 0; i < kOwners; ++i) {
    threads.emplace_back([&, i] {
      // The test thread created the pools; the thread start orders that.
      ctx[i].pool->bind_owner();
      Actor me(w, i, /*sink=*/false);
      std::vector<int> peers;
      for (int j : everyone)
        if (j != i) peers.push_back(j);
      me.set_peers(peers);
      me.set_observed(observed);
      std::uint64_t mine = 0;
      for (std::uint64_t it = 0; it < 2'000'000 && (it < 1000 || !deadline.passed()) && !w.f.failed(); ++it) {
        me.step_incoming(8);
        if (w.live.load(std::memory_order_relaxed) < 512) {
          const std::uint64_t refused = w.n_limited.load(std::memory_order_relaxed);
          mine += rnd(me.rng(), 1000) < 3 ? me.burst(ctx[i]) : me.allocate(ctx[i], /*frags=*/true);
          if (w.n_limited.load(std::memory_order_relaxed) != refused) me.idle_step();
        } else {
          me.idle_step();
          std::this_thread::yield();
        }
      }
      tally[i].store(mine);
      // The last owner to stop allocating lets everyone drain.
      if (allocating.fetch_sub(1) == 1) w.stop.store(true, std::memory_order_release);
      me.run_worker(peers);
    });
  }
  threads.emplace_back([&] {
    Actor me(w, kOwners, /*sink=*/true);
    me.set_observed(observed);
    me.run_worker({});
  });
  for (auto& t : threads) t.join();
  w.observe.store(false);

  std::printf("[ shared_provider ] %llu allocs (%llu frags), %llu gets, %llu puts + %llu bulk, provider "
              "alloc'd %llu released %llu maps %llu syncs %llu\n",
              (unsigned long long)w.n_alloc.load(), (unsigned long long)w.n_frag.load(),
              (unsigned long long)w.n_get.load(), (unsigned long long)w.n_put.load(),
              (unsigned long long)w.n_bulk_put.load(), (unsigned long long)counters->allocd.load(),
              (unsigned long long)counters->released.load(), (unsigned long long)counters->maps.load(),
              (unsigned long long)counters->syncs.load());

  EXPECT_EQ(w.live.load(), 0);
  std::uint64_t held = 0, mapped_held = 0;
  for (int i = 0; i < kOwners; ++i) {
    pools[i]->bind_owner();  // the join ordered the owners' last use before this
    EXPECT_EQ(ctx[i].pages_out.load(), 0);
    expect_quiescent(*pools[i], pools[i]->params().name.c_str());
    const pagepool::Levels l = pools[i]->levels();
    held += l.held;
    if (pools[i]->params().flags & pagepool::kDmaMap) mapped_held += l.held;
#if PAGEPOOL_STATS
    const pagepool::Stats s = pools[i]->stats();
    std::printf("[ shared_provider ] pool %d: %s\n", i, describe(s).c_str());
    EXPECT_EQ(s.alloc.fast + s.alloc.slow + s.alloc.refill, tally[i].load());
#endif
  }
  EXPECT_EQ(counters->allocd.load() - counters->released.load(), held);
  EXPECT_EQ(counters->maps.load() - counters->unmaps.load(), mapped_held);
  EXPECT_GT(counters->syncs.load(), 0u);
  EXPECT_EQ(counters->violations.load(), 0u) << counters->first();

  pools.clear();
  EXPECT_TRUE(weak_prov.expired());
  EXPECT_EQ(counters->allocd.load(), counters->released.load());
  EXPECT_EQ(counters->maps.load(), counters->unmaps.load());
  EXPECT_EQ(counters->violations.load(), 0u) << counters->first();
}

}  // namespace
