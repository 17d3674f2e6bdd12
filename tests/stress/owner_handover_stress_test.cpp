// bind_owner under load: ownership of two pools moves back and forth between
// two threads while two workers (one a sink) keep putting, sharing and
// forwarding pages, and the previous owner keeps putting the pages it still
// holds (and those it receives) as an ordinary thread.
//
// The handoff protocol, per generation g (owner of g is candidate g % 2):
//   old owner: stops every owner action, then handed = g + 1 (release);
//              then touches no page until bound >= g + 1 (acquire), because
//              until it knows the new owner has bound, a put of its own would
//              still find itself the owner and recycle into the alloc cache,
//              racing with the new owner's allocations;
//   new owner: handed >= g + 1 (acquire), bind_owner() on both pools,
//              bound = g + 1 (release), then allocates.
// Checked: shadow (no page or fragment handed out twice across owners), data
// stamps, is_owner() on both sides of every handoff, TSan cleanliness of the
// owner-private state moving between threads, and the accounting at the end.
#include "harness.hpp"

namespace {

using namespace ppstress;
using pagepool::Params;
using pagepool::PoolPtr;

TEST(OwnerHandoverStress, BindOwnerPingPongWhileOldOwnerKeepsPutting) {
  Params pa;
  pa.name = "A";
  pa.pool_size = 64;
  Params pb;
  pb.name = "B";
  pb.pool_size = 16;
  pb.max_inflight = 96;
  PoolPtr a = Pool::create(pa);
  PoolPtr b = Pool::create(pb);

  constexpr int kCandidates = 2, kWorkers = 2, kActors = kCandidates + kWorkers;
  World w(kActors);
  PoolCtx ca, cb;
  ca.init(a.get(), 0);
  cb.init(b.get(), 1);
  std::vector<PoolCtx*> pools{&ca, &cb};

  std::atomic<std::uint64_t> handed{0};  // generation whose owner may bind
  std::atomic<std::uint64_t> bound{0};   // latest generation bound (0: candidate 0 at start)
  std::atomic<std::uint64_t> handovers{0};
  std::atomic<std::uint64_t> tally[2] = {0, 0};
  const Deadline deadline(stress_seconds());
  constexpr std::uint64_t kMinGenerations = 24, kMaxGenerations = 20000;

  auto candidate = [&](int c) {
    Actor me(w, c, /*sink=*/false);
    std::vector<int> peers;
    for (int j = 0; j < kActors; ++j)
      if (j != c) peers.push_back(j);
    me.set_peers(peers);
    me.set_observed(pools);
    std::uint64_t local_tally[2] = {0, 0};
    std::uint64_t wait_bound = 0;  // after handing over: until bound reaches this, touch nothing
    std::unique_ptr<Deadline> give_up;

    if (c == 0) {
      // Generation 0: the test thread created the pools and stopped; the
      // thread start orders that before this.
      for (PoolCtx* p : pools) p->pool->bind_owner();
    }
    for (;;) {
      const std::uint64_t g = handed.load(std::memory_order_acquire);
      if (w.f.failed() && !w.stop.load()) w.stop.store(true, std::memory_order_release);
      if (static_cast<int>(g % 2) == c && !w.stop.load(std::memory_order_acquire)) {
        // ---- my generation ----
        wait_bound = 0;  // (a handoff of mine completed: the pools came back)
        if (g != 0 && bound.load(std::memory_order_relaxed) < g) {
          for (PoolCtx* p : pools) p->pool->bind_owner();
          bound.store(g, std::memory_order_release);
        }
        for (PoolCtx* p : pools)
          if (!p->pool->is_owner()) w.f.fail("new owner does not see itself as owner after bind_owner");
        const std::uint32_t ops = 1 + rnd(me.rng(), 300);
        for (std::uint32_t i = 0; i < ops && !w.f.failed(); ++i) {
          me.step_incoming(4);
          if (w.live.load(std::memory_order_relaxed) < 384) {
            const int which = chance(me.rng(), 60) ? 0 : 1;
            if (rnd(me.rng(), 1000) < 4)
              local_tally[which] += me.burst(*pools[which]);
            else
              local_tally[which] += me.allocate(*pools[which], /*frags=*/true);
          } else {
            me.idle_step();
          }
        }
        if ((deadline.passed() && g >= kMinGenerations) || g + 1 >= kMaxGenerations || w.f.failed()) {
          w.stop.store(true, std::memory_order_release);  // keep ownership; everyone drains
          continue;
        }
        // Hand over: stop owner actions, publish, then wait to learn of the bind.
        wait_bound = g + 1;
        handovers.fetch_add(1, std::memory_order_relaxed);
        handed.store(g + 1, std::memory_order_release);
        continue;
      }
      if (wait_bound && w.f.failed()) wait_bound = 0;  // the new owner may never bind now
      if (wait_bound && bound.load(std::memory_order_acquire) < wait_bound) {
        std::this_thread::yield();  // the new owner has not bound yet: hands off the pages
        continue;
      }
      if (wait_bound) {
        for (PoolCtx* p : pools)
          if (p->pool->is_owner()) w.f.fail("old owner still sees itself as owner after the handoff");
        wait_bound = 0;
      }
      // ---- not my generation: an ordinary thread that keeps putting ----
      if (me.step_incoming(8) == 0) {
        me.idle_step();
        if (w.stopping()) {
          me.drain();
          if (w.live.load(std::memory_order_acquire) == 0) break;
          if (!give_up) give_up = std::make_unique<Deadline>(20.0);
          if (give_up->passed()) {
            w.f.fail("candidate drain timed out");
            break;
          }
        }
        std::this_thread::yield();
      }
    }
    tally[0].fetch_add(local_tally[0]);
    tally[1].fetch_add(local_tally[1]);
  };

  std::vector<std::thread> threads;
  for (int c = 0; c < kCandidates; ++c) threads.emplace_back(candidate, c);
  for (int i = kCandidates; i < kActors; ++i) {
    threads.emplace_back([&, i] {
      Actor me(w, i, /*sink=*/i == kActors - 1);
      me.set_observed(pools);
      std::vector<int> peers;
      for (int j = 0; j < kActors; ++j)
        if (j != i) peers.push_back(j);
      me.run_worker(peers);
    });
  }
  for (auto& t : threads) t.join();
  w.observe.store(false);

  // The join orders every thread's use of the pools before this.
  for (PoolCtx* p : pools) p->pool->bind_owner();
  std::printf("[ handover ] %llu handovers, %llu allocs (%llu frags), %llu gets, %llu puts + %llu bulk, "
              "%llu direct, %llu refused\n[ handover ] A: %s\n[ handover ] B: %s\n",
              (unsigned long long)handovers.load(), (unsigned long long)w.n_alloc.load(),
              (unsigned long long)w.n_frag.load(), (unsigned long long)w.n_get.load(),
              (unsigned long long)w.n_put.load(), (unsigned long long)w.n_bulk_put.load(),
              (unsigned long long)w.n_direct.load(), (unsigned long long)w.n_limited.load(),
              describe(a->stats()).c_str(), describe(b->stats()).c_str());

  EXPECT_GE(handovers.load(), kMinGenerations);
  EXPECT_EQ(w.live.load(), 0);
  EXPECT_EQ(ca.pages_out.load(), 0);
  EXPECT_EQ(cb.pages_out.load(), 0);
  expect_quiescent(*a, "pool A");
  expect_quiescent(*b, "pool B");
#if PAGEPOOL_STATS
  for (int i = 0; i < 2; ++i) {
    const pagepool::Stats s = pools[i]->pool->stats();
    EXPECT_EQ(s.alloc.fast + s.alloc.slow + s.alloc.slow_high_order + s.alloc.refill, tally[i].load())
        << (i ? "pool B" : "pool A");
    EXPECT_EQ(s.alloc.fail, 0u);
  }
#endif
}

}  // namespace
