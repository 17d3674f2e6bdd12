// The required stress test: one owner and three other threads doing
// random alloc / alloc_pages_bulk / alloc_frag / get_page / put_page /
// put_pages_bulk on two pools at once, handing pages and fragments between
// threads, with a shadow record of who holds what and data stamps.
//
// Thread roles: actor 0 is the owner (the test thread; it created both pools),
// actors 1 and 2 are workers that put, stash, share (get_page) and forward to
// anyone, actor 3 is a sink that only puts and stashes, so some pages reach
// the return ring from a thread that never hands anything back to the owner
// (no test-side synchronisation that could hide a missing library edge).
//
// Failures the test detects: a page or an overlapping fragment handed out
// while held (shadow), data changed under its holder (stamps), a held byte
// not mapping back to its page (virt_to_page), more pages out than
// max_inflight, sanitizer reports, and at quiescence any broken accounting:
// check(), inflight() == 0, hold - release == cache + ring + pending +
// carving_idle (pending: the owner's own non-direct puts still in its batch;
// 0 once it flushes, the workers having exited), one allocation counter per
// allocated page, the provider's own count.
#include "harness.hpp"

namespace {

using namespace ppstress;
using pagepool::Params;
using pagepool::PoolPtr;

struct MixedConfig {
  const char* name;
  std::uint32_t a_pool_size, a_max_inflight;
  unsigned b_order;
  std::uint32_t b_pool_size, b_max_inflight;
  bool a_counting;  // A: CountingProvider, kDmaMap | kDmaSyncDev, syncs needed
};

void PrintTo(const MixedConfig& c, std::ostream* os) { *os << c.name; }

class MixedStress : public ::testing::TestWithParam<MixedConfig> {};

TEST_P(MixedStress, OwnerAndWorkersAllocShareHandOffAndPut) {
  const MixedConfig& cfg = GetParam();
  auto counters = std::make_shared<ProviderCounters>();
  std::weak_ptr<pagepool::Provider> weak_prov;

  Params pa;
  pa.name = "A";
  pa.pool_size = cfg.a_pool_size;
  pa.max_inflight = cfg.a_max_inflight;
  if (cfg.a_counting) {
    auto prov = std::make_shared<CountingProvider>(0, counters, /*needs_sync=*/true);
    weak_prov = prov;
    pa.provider = prov;
    pa.flags = pagepool::kDmaMap | pagepool::kDmaSyncDev;
    pa.offset = 256;
    pa.max_len = 1024;
  }
  Params pb;
  pb.name = "B";
  pb.order = cfg.b_order;
  pb.pool_size = cfg.b_pool_size;
  pb.max_inflight = cfg.b_max_inflight;
  PoolPtr a = Pool::create(pa);
  pa.provider.reset();  // the pool holds the only reference now
  PoolPtr b = Pool::create(pb);

  constexpr int kWorkers = 3;
  World w(1 + kWorkers);
  PoolCtx ca, cb;
  ca.init(a.get(), 0);
  cb.init(b.get(), 1);
  std::vector<PoolCtx*> pools{&ca, &cb};

  Actor owner(w, 0, /*sink=*/false);
  owner.set_peers({1, 2, 3});
  owner.set_observed(pools);

  std::vector<std::thread> threads;
  for (int i = 1; i <= kWorkers; ++i) {
    threads.emplace_back([&w, &pools, i] {
      Actor me(w, i, /*sink=*/i == kWorkers);
      me.set_observed(pools);
      std::vector<int> peers;
      for (int j = 0; j <= kWorkers; ++j)
        if (j != i) peers.push_back(j);
      me.run_worker(peers);
    });
  }

  // ---- the owner's loop ----
  const Deadline deadline(stress_seconds());
  constexpr std::uint64_t kMaxIters = 2'000'000;
  constexpr std::int64_t kMaxLive = 384;
  std::uint64_t tally[2] = {0, 0};
  std::uint64_t iters = 0;
  // At least kMinIters iterations however slow the build, so every path
  // asserted below is reached; the first bursts are placed, not drawn.
  constexpr std::uint64_t kMinIters = 2000;
  for (; iters < kMaxIters && (iters < kMinIters || !deadline.passed()) && !w.f.failed(); ++iters) {
    owner.step_incoming(8);
    if (iters >= 16 && iters < 20) {
      tally[iters & 1] += owner.burst(*pools[iters & 1], 1 + (iters >> 1 & 1));
    } else if (w.live.load(std::memory_order_relaxed) < kMaxLive) {
      const int which = chance(owner.rng(), 60) ? 0 : 1;
      const std::uint64_t refused = w.n_limited.load(std::memory_order_relaxed);
      if (rnd(owner.rng(), 1000) < 3)
        tally[which] += owner.burst(*pools[which]);
      else
        tally[which] += owner.allocate(*pools[which], /*frags=*/true);
      if (w.n_limited.load(std::memory_order_relaxed) != refused) {
        // At the cap: let the others return pages.
        owner.idle_step();
        std::this_thread::yield();
      }
    } else {
      owner.idle_step();
      std::this_thread::yield();
    }
    if ((iters & 255) == 0) {
      for (PoolCtx* c : pools) {
        // On the owner the resting counts never exceed the held count
        // (levels() reads held first, then the ring before the batches, so a
        // page moving from a batch to the ring meanwhile is missed, not
        // counted twice).
        const pagepool::Levels l = c->pool->levels();
        if (l.cache + l.ring + l.pending + l.carving_idle > l.held || l.cache > Pool::kCacheSize)
          w.f.fail("owner levels: cache " + std::to_string(l.cache) + " ring " + std::to_string(l.ring) +
                   " pending " + std::to_string(l.pending) + " idle " + std::to_string(l.carving_idle) +
                   " held " + std::to_string(l.held));
      }
    }
  }

  // ---- quiesce: no new handles; everyone puts what they hold ----
  quiesce(w, owner, threads, 30.0);
  w.observe.store(false);

  std::printf("[ %s ] %llu owner iterations, %llu allocs (%llu frags), %llu gets, %llu puts + %llu bulk, "
              "%llu forwards, %llu direct, %llu release_page, %llu refused, %llu flush_thread; "
              "max pages out A %lld B %lld\n",
              cfg.name, (unsigned long long)iters, (unsigned long long)w.n_alloc.load(),
              (unsigned long long)w.n_frag.load(), (unsigned long long)w.n_get.load(),
              (unsigned long long)w.n_put.load(), (unsigned long long)w.n_bulk_put.load(),
              (unsigned long long)w.n_forward.load(), (unsigned long long)w.n_direct.load(),
              (unsigned long long)w.n_release.load(), (unsigned long long)w.n_limited.load(),
              (unsigned long long)w.n_flush.load(), (long long)ca.max_pages_out.load(),
              (long long)cb.max_pages_out.load());
  std::printf("[ %s ] A: %s\n[ %s ] B: %s\n", cfg.name, describe(a->stats()).c_str(), cfg.name,
              describe(b->stats()).c_str());

  EXPECT_EQ(ca.pages_out.load(), 0);
  EXPECT_EQ(cb.pages_out.load(), 0);
  EXPECT_GT(w.n_flush.load(), 0u) << "no thread called flush_thread() mid-run";
  expect_quiescent(*a, "pool A");
  expect_quiescent(*b, "pool B");

#if PAGEPOOL_STATS
  const PoolCtx* cs[2] = {&ca, &cb};
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(i == 0 ? "pool A" : "pool B");
    const pagepool::Stats s = cs[i]->pool->stats();
    // Every successful allocation increments exactly one of these.
    EXPECT_EQ(s.alloc.fast + s.alloc.slow + s.alloc.slow_high_order + s.alloc.refill, tally[i]);
    EXPECT_GT(s.alloc.refill, 0u) << "the return ring never fed the owner";
    if (!cs[i]->max_inflight) {
      EXPECT_GT(s.recycle.cache_full, 0u) << "the owner's cache never spilled";
    }
    // Rings this small overflow under three pushing threads.
    if (cs[i]->pool->params().pool_size <= 16) {
      EXPECT_GT(s.recycle.ring_full, 0u);
    }
    if (cs[i]->max_inflight) {
      EXPECT_GT(s.alloc.limited, 0u);
    } else {
      EXPECT_EQ(s.alloc.limited, 0u);
    }
    EXPECT_EQ(s.alloc.fail, 0u);
  }
#endif

  if (cfg.a_counting) {
    const pagepool::Levels l = a->levels();
    EXPECT_EQ(counters->allocd.load() - counters->released.load(), l.held);
    EXPECT_EQ(counters->maps.load() - counters->unmaps.load(), l.held);
    EXPECT_GT(counters->syncs.load(), 0u);
  }

  a.reset();
  b.reset();
  if (cfg.a_counting) {
    EXPECT_TRUE(weak_prov.expired()) << "pool A's provider outlived the pool";
    EXPECT_EQ(counters->allocd.load(), counters->released.load());
    EXPECT_EQ(counters->maps.load(), counters->unmaps.load());
  }
  EXPECT_EQ(counters->violations.load(), 0u) << counters->first();
}

INSTANTIATE_TEST_SUITE_P(
    Configs, MixedStress,
    ::testing::Values(
        // Large rings: pages mostly circulate cache <-> ring.
        MixedConfig{"roomy", 1024, 0, 1, 256, 0, false},
        // Tiny rings: pushes and the owner's spill overflow to the provider.
        MixedConfig{"tiny_ring", 8, 0, 0, 16, 0, false},
        // Caps: allocations are refused and the budget is recounted.
        MixedConfig{"limited", 64, 40, 1, 32, 24, false},
        // Counting provider, mapping and device syncs on every recycle.
        MixedConfig{"dma_sync", 32, 0, 0, 1024, 0, true}),
    [](const ::testing::TestParamInfo<MixedConfig>& i) { return std::string(i.param.name); });

}  // namespace
