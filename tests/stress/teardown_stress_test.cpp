// Teardown races: the pool is destroyed (PoolPtr reset) while other threads
// still hold its pages and fragments and are concurrently putting them, taking
// extra references (get_page) and handing them on. Checked per round:
//  - no sanitizer report (ASan: nothing touches the pool or provider after
//    they are freed; TSan: destroy and the late puts are ordered),
//  - the provider got back every page it handed out, released exactly once,
//    with ref 0, no pool and unmapped (CountingProvider),
//  - the provider, whose only owner is the pool, is freed after the last put
//    (its weak_ptr has expired once every thread is done).
#include "harness.hpp"

namespace {

using namespace ppstress;
using pagepool::Params;
using pagepool::PoolPtr;

enum class Mode {
  mid_flight,  // the owner destroys at a random moment of normal traffic
  barrier,     // everything is out; workers start putting the instant destroy starts
  handoff,     // the owner stops, hands the PoolPtr to a worker, which destroys
  taken_chain, // destroy while the owner holds a chain taken from the ring
};
constexpr int kModes = 4;

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::mid_flight: return "mid_flight";
    case Mode::barrier: return "barrier";
    case Mode::handoff: return "handoff";
    case Mode::taken_chain: return "taken_chain";
  }
  return "?";
}

// One round; returns false if the test has failed (stop early).
bool teardown_round(std::uint64_t round, Mode mode) {
  Rng rng = make_rng(0x7ea2d0000 + round);
  constexpr int kWorkers = 3;

  auto counters = std::make_shared<ProviderCounters>();
  std::weak_ptr<pagepool::Provider> weak_prov;
  Params params;
  params.name = "teardown";
  params.order = chance(rng, 25) ? 1 : 0;
  static constexpr std::uint32_t kSizes[] = {1, 4, 16, 64, 1024};
  params.pool_size = kSizes[rnd(rng, 5)];
  if (chance(rng, 20)) params.max_inflight = 64 + rnd(rng, 128);
  if (mode == Mode::taken_chain) {
    params.order = 0;
    params.pool_size = 1024;
    params.max_inflight = 0;
  }
  const bool sync = chance(rng, 30);
  if (sync || chance(rng, 30)) {
    params.flags = pagepool::kDmaMap | (sync ? pagepool::kDmaSyncDev : 0u);
    params.max_len = sync ? 512 : 0;
  }
  {
    auto prov = std::make_shared<CountingProvider>(params.order, counters, sync);
    weak_prov = prov;
    params.provider = std::move(prov);
  }
  PoolPtr pool = Pool::create(params);
  params.provider.reset();  // from here the pool owns the provider alone

  World w(1 + kWorkers);
  PoolCtx ctx;
  ctx.init(pool.get(), 0);
  SCOPED_TRACE("round " + std::to_string(round) + " mode " + mode_name(mode) + " order " +
               std::to_string(params.order) + " pool_size " + std::to_string(params.pool_size) +
               " max_inflight " + std::to_string(params.max_inflight) + " flags " +
               std::to_string(params.flags));

  std::atomic<bool> go{mode != Mode::barrier && mode != Mode::taken_chain};
  // handoff mode: the PoolPtr travels to worker 1 under this mutex.
  std::mutex slot_mu;
  PoolPtr slot;
  std::atomic<bool> destroyed{false};

  std::vector<std::thread> threads;
  for (int i = 1; i <= kWorkers; ++i) {
    threads.emplace_back([&, i] {
      Actor me(w, i, /*sink=*/i == kWorkers);
      std::vector<int> peers;
      for (int j = 0; j <= kWorkers; ++j)
        if (j != i) peers.push_back(j);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      std::function<void()> tick;
      if (mode == Mode::handoff && i == 1) {
        tick = [&] {
          if (destroyed.load(std::memory_order_relaxed)) return;
          std::unique_lock lk(slot_mu);
          if (!slot) return;
          PoolPtr mine = std::move(slot);
          lk.unlock();
          mine.reset();  // destroy from a thread that never owned the pool
          destroyed.store(true, std::memory_order_release);
        };
      }
      me.run_worker(peers, tick);
    });
  }

  Actor owner(w, 0, /*sink=*/false);
  owner.set_peers({1, 2, 3});

  // taken_chain: while the workers wait, put 200 pages into the ring, empty
  // the cache and allocate once more: the refill takes the ring's whole chain
  // and moves 64 of it into the cache, the rest stays in the owner's taken
  // chain (local_head_), which destroy must release too.
  std::vector<Page*> raw;
  if (mode == Mode::taken_chain) {
    raw.resize(256);
    EXPECT_EQ(pool->alloc_pages_bulk(raw.data(), raw.size()), raw.size());
    for (std::size_t i = 0; i < 200; ++i) pool->put_page(raw[i], -1, /*allow_direct=*/false);
    pagepool::flush_thread();  // the last 8 were still in this thread's batch
    raw.erase(raw.begin(), raw.begin() + 200);
    while (pool->levels().cache != 0) raw.push_back(pool->alloc_page());
    raw.push_back(pool->alloc_page());  // the refill from the ring
    const pagepool::Levels l = pool->check();
    EXPECT_EQ(l.ring, 200u - Pool::kRefill) << "expected a taken chain of 136 pages";
    EXPECT_EQ(l.cache, Pool::kRefill - 1);
    go.store(true, std::memory_order_release);
  }

  // Phase 1: the owner allocates (and puts, shares, forwards) while the
  // workers already put (except in barrier mode, where they wait).
  const std::uint32_t steps = mode == Mode::barrier       ? 32 + rnd(rng, 192)
                              : mode == Mode::taken_chain ? 1 + rnd(rng, 3)
                                                          : rnd(rng, 320);
  for (std::uint32_t s = 0; s < steps && !w.f.failed(); ++s) {
    owner.step_incoming(4);
    if (w.live.load(std::memory_order_relaxed) < 512) owner.allocate(ctx, /*frags=*/true);
  }

  // Phase 2: destroy while pages are out and being put.
  switch (mode) {
    case Mode::mid_flight:
    case Mode::taken_chain:
      pool.reset();
      break;
    case Mode::barrier:
      go.store(true, std::memory_order_release);
      pool.reset();
      break;
    case Mode::handoff: {
      // The owner stops touching the pool entirely (its puts would recycle
      // into the cache while it is still the owner) until the destroy is done.
      {
        std::lock_guard lk(slot_mu);
        slot = std::move(pool);
      }
      if (!wait_for([&] { return destroyed.load(std::memory_order_acquire); }, 20.0))
        w.f.fail("worker 1 never destroyed the pool");
      break;
    }
  }

  for (Page* p : raw) pagepool::put_page(p);  // late puts from the (former) owner

  // Phase 3: traffic goes on among the holders (get_page, handoffs, puts) for a while.
  const std::uint32_t after = rnd(rng, 200);
  for (std::uint32_t s = 0; s < after && !w.f.failed(); ++s) {
    if (owner.step_incoming(4) == 0) {
      owner.idle_step();
      std::this_thread::yield();
    }
  }

  // Phase 4: quiesce.
  quiesce(w, owner, threads, 30.0);

  EXPECT_EQ(ctx.pages_out.load(), 0);
  EXPECT_TRUE(weak_prov.expired()) << "the provider outlived the last put (pool not freed?)";
  EXPECT_TRUE(counters->destroyed.load());
  EXPECT_EQ(counters->allocd.load(), counters->released.load()) << "pages not returned to the provider";
  EXPECT_EQ(counters->maps.load(), counters->unmaps.load());
  EXPECT_EQ(counters->violations.load(), 0u) << counters->first();
  return !w.f.failed() && !::testing::Test::HasFailure();
}

TEST(TeardownStress, DestroyWhileOtherThreadsHoldAndPutPages) {
  const Deadline deadline(stress_seconds());
  constexpr std::uint64_t kMaxRounds = 2000;
  std::uint64_t rounds = 0, per_mode[kModes] = {};
  for (; rounds < kMaxRounds && (rounds < 2 * kModes || !deadline.passed()); ++rounds) {
    const Mode mode = static_cast<Mode>(rounds % kModes);
    ++per_mode[rounds % kModes];
    if (!teardown_round(rounds, mode)) break;
  }
  std::printf("[ teardown ] %llu rounds (mid_flight %llu, barrier %llu, handoff %llu, taken_chain %llu)\n",
              (unsigned long long)rounds, (unsigned long long)per_mode[0],
              (unsigned long long)per_mode[1], (unsigned long long)per_mode[2],
              (unsigned long long)per_mode[3]);
}

// The smallest form of the race, many times: one page, two extra references
// on two threads, destroy on the owner at the same instant as both puts.
TEST(TeardownStress, LastPutRacesDestroy) {
  const Deadline deadline(stress_seconds() / 2);
  std::uint64_t rounds = 0;
  for (; rounds < 20000 && (rounds < 50 || !deadline.passed()); ++rounds) {
    auto counters = std::make_shared<ProviderCounters>();
    std::weak_ptr<pagepool::Provider> weak_prov;
    Params params;
    params.pool_size = (rounds & 1) ? 1 : 64;
    {
      auto prov = std::make_shared<CountingProvider>(0, counters);
      weak_prov = prov;
      params.provider = std::move(prov);
    }
    PoolPtr pool = Pool::create(params);
    params.provider.reset();
    Page* p = pool->alloc_page();
    ASSERT_NE(p, nullptr);
    std::uint32_t off = 0;
    Page* f = pool->alloc_frag(100, &off);  // a carving page with one fragment out
    ASSERT_NE(f, nullptr);
    pagepool::get_page(p);
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    auto putter = [&](bool frag) {
      ready.fetch_add(1);
      for (unsigned spin = 0; !go.load(std::memory_order_acquire); ++spin)
        if (spin > 64) std::this_thread::yield();
      if (frag) {
        pagepool::put_page(f);
      } else {
        pagepool::Pool* pl = pagepool::page_pool(p);
        pl->put_page(p, -1, true);
      }
    };
    std::thread t1(putter, false), t2(putter, true);
    while (ready.load() != 2) std::this_thread::yield();
    go.store(true, std::memory_order_release);
    if (rounds & 2) pagepool::put_page(p);  // the owner's own reference, before destroy
    pool.reset();
    if (!(rounds & 2)) pagepool::put_page(p);  // ... or after it
    t1.join();
    t2.join();
    ASSERT_TRUE(weak_prov.expired()) << "round " << rounds;
    ASSERT_EQ(counters->allocd.load(), counters->released.load()) << "round " << rounds;
    ASSERT_EQ(counters->violations.load(), 0u) << counters->first();
  }
  std::printf("[ last_put_races_destroy ] %llu rounds\n", (unsigned long long)rounds);
}

}  // namespace
