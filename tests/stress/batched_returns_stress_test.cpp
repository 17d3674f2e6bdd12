// Batched remote returns under load. A non-owner's last put appends the page
// to that thread's batch for the pool; batches reach the ring when full, on
// flush_thread(), at thread exit, by the periodic scan, on eviction from the
// thread's 8-entry table, or at destroy, and a starved owner steals them.
//
// BatchedReturnsStress.OwnerNeverStarves (configs): the owner (test thread)
// allocates from pools whose only pages are the ones it can have out
// (max_inflight == the provider's page budget), hands every page to one of
// 4-8 returner threads, and never puts. Returners verify the data, put with
// every entry point (single puts into their batches, put_pages_bulk straight
// to the ring), now and then call flush_thread() or exit with partial
// batches pending (a new thread takes over their inbox). When the owner has
// nothing to give they sit idle, so the pages they returned wait in partial
// batches nobody hands over: the owner must steal them. Checked:
//  - the owner never starves: whenever fewer than `cap` pages of a pool are
//    out in the test's books (puts completed, acquire), an allocation
//    succeeds within a few seconds (a page can be in transit for an instant
//    between a returner's claim and its push);
//  - shadow record (no page handed out twice), data stamps, the cap;
//  - at quiescent checkpoints mid-run (every put done, returners idle, with
//    batches pending) and at the end: check(), inflight 0,
//    cache + ring + pending + carving_idle == held == hold - release, and
//    recycle.ring + ring_full + pending == pages put (a page waiting in a
//    batch is not in recycle.ring until handed over or stolen);
//  - at the end (returners exited: nothing pending): one allocation counter
//    per page, recycle.ring + ring_full == pages put, release == ring_full,
//    the provider's own count, and it gets every page back at destroy.
//
// BatchedReturnsStress.DestroyWithBatchesPending: rounds in which 4-8 threads
// put part of their pages (partial batches, some handed over, some flushed,
// some threads exiting), then the pool is destroyed while batches wait in
// several slots -- either with the threads parked (destroy must take every
// pending page at once: the provider has everything back but the pages
// still held) or racing with their puts. The threads then put the rest into
// the slots they already have (after destroy: released). The provider is
// freed after the last page, and got back every page exactly once.
#include "harness.hpp"

namespace {

using namespace ppstress;
using pagepool::Params;
using pagepool::PoolPtr;

// ---- OwnerNeverStarves ---------------------------------------------------------------

struct StarveConfig {
  const char* name;
  int returners;            // 4..8
  int pools;                // > 8: every returner's table evicts
  std::uint32_t cap;        // max_inflight per pool == its provider's page budget
  std::uint32_t pool_size;  // < cap: handovers overflow the ring (ring_full)
};

void PrintTo(const StarveConfig& c, std::ostream* os) { *os << c.name; }

class BatchedReturnsStress : public ::testing::TestWithParam<StarveConfig> {};

struct PoolUnderTest {
  std::shared_ptr<ProviderCounters> counters = std::make_shared<ProviderCounters>();
  std::weak_ptr<pagepool::Provider> provider;
  PoolPtr pool;
  PoolCtx ctx;
  std::uint64_t allocated = 0;              // owner-private
  std::uint64_t tally = 0;                  // pages the library counts as allocated
  std::atomic<std::uint64_t> returned{0};   // puts completed (release by the putter)
  double starving_since = -1;               // owner-private: seconds, -1 = not starving
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

TEST_P(BatchedReturnsStress, OwnerNeverStarves) {
  const StarveConfig& cfg = GetParam();
  Failures f;
  Shadow shadow(f);

  std::vector<std::unique_ptr<PoolUnderTest>> pools;
  for (int i = 0; i < cfg.pools; ++i) {
    auto u = std::make_unique<PoolUnderTest>();
    Params params;
    params.name = "starve" + std::to_string(i);
    params.pool_size = cfg.pool_size;
    params.max_inflight = cfg.cap;
    auto prov = std::make_shared<CountingProvider>(0, u->counters, false, cfg.cap);
    u->provider = prov;
    params.provider = std::move(prov);
    u->pool = Pool::create(params);
    u->ctx.init(u->pool.get(), static_cast<std::uint32_t>(i));
    pools.push_back(std::move(u));
  }

  // ---- returners ----
  struct Returner {
    Inbox inbox;
    std::thread thread;
    std::atomic<bool> exited{false};  // set before its last `returned` increment
    std::uint64_t generation = 0;
  };
  std::vector<std::unique_ptr<Returner>> rs;
  for (int i = 0; i < cfg.returners; ++i) rs.push_back(std::make_unique<Returner>());
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> n_puts{0}, n_bulk{0}, n_flush{0}, n_exit{0}, n_extra_ref{0};

  auto returner_main = [&](int id, std::uint64_t gen) {
    Returner& me = *rs[id];
    Rng rng = make_rng(0xba7c4000 + static_cast<std::uint64_t>(id) * 1000 + gen);
    std::vector<Handle> in, bulk;
    std::vector<Page*> ptrs;
    std::vector<std::uint64_t> done(pools.size());
    std::size_t bulk_target = 1 + rnd(rng, 40);
    std::uint64_t puts = 0;
    auto put_bulk = [&] {
      if (bulk.empty()) return;
      ptrs.clear();
      for (const Handle& h : bulk) {
        verify(h, f, "returner bulk put");
        shadow.release(h, "returner bulk put");
        ptrs.push_back(h.p);
        ++done[h.ctx->index];
      }
      pagepool::page_pool(ptrs[0])->put_pages_bulk(ptrs.data(), ptrs.size());
      n_bulk.fetch_add(ptrs.size(), std::memory_order_relaxed);
      puts += ptrs.size();
      bulk.clear();
      bulk_target = 1 + rnd(rng, 40);
    };
    // Publishes the completed puts; everything this thread did to the pools
    // before happens before an owner that acquires the count.
    auto publish = [&] {
      for (std::size_t i = 0; i < done.size(); ++i)
        if (done[i]) {
          pools[i]->returned.fetch_add(done[i], std::memory_order_release);
          done[i] = 0;
        }
    };
    for (;;) {
      in.clear();
      if (me.inbox.take(in, 1 + rnd(rng, 48)) == 0) {
        // Idle: put what waits for a bulk, then sit with whatever batches
        // are pending (no flush: the owner has to steal them).
        put_bulk();
        publish();
        if (stop.load(std::memory_order_acquire) && me.inbox.size() == 0) break;
        std::this_thread::yield();
        continue;
      }
      for (const Handle& h : in) {
        verify(h, f, "returner received");  // (put it anyway: the books must balance)
        if (chance(rng, 10)) {
          // A second reference dropped first: the last put is still ours.
          pagepool::get_page(h.p);
          pagepool::put_page(h.p);
          n_extra_ref.fetch_add(1, std::memory_order_relaxed);
        }
        const std::uint32_t r = rnd(rng, 100);
        if (r < 20) {
          bulk.push_back(h);
          if (bulk.size() >= bulk_target) put_bulk();
          continue;
        }
        shadow.release(h, "returner put");
        Pool* pl = pagepool::page_pool(h.p);
        if (r < 65)
          pagepool::put_page(h.p);
        else if (r < 85)
          pl->put_page(h.p, -1, false);
        else
          pl->put_page(h.p, -1, true);  // not the owner: still a batch
        ++done[h.ctx->index];
        ++puts;
      }
      n_puts.fetch_add(in.size(), std::memory_order_relaxed);
      if (chance(rng, 3)) {
        put_bulk();
        pagepool::flush_thread();
        n_flush.fetch_add(1, std::memory_order_relaxed);
      }
      if (puts > 64 && chance(rng, 2) && !stop.load(std::memory_order_relaxed)) {
        // Exit with partial batches pending: the thread-exit flush hands them
        // over after this function returns. `exited` is published before the
        // last count so an owner that sees every put done also sees it.
        put_bulk();
        me.exited.store(true, std::memory_order_relaxed);
        n_exit.fetch_add(1, std::memory_order_relaxed);
        publish();
        return;
      }
      publish();
    }
  };
  for (int i = 0; i < cfg.returners; ++i) rs[i]->thread = std::thread(returner_main, i, 0);
  // Joins returners that exited and starts a fresh thread on their inbox.
  auto replace_exited = [&] {
    for (int i = 0; i < cfg.returners; ++i) {
      Returner& r = *rs[i];
      if (!r.exited.load(std::memory_order_acquire)) continue;
      r.thread.join();  // its exit flush is done
      r.exited.store(false, std::memory_order_relaxed);
      r.thread = std::thread(returner_main, i, ++r.generation);
    }
  };

  // Quiescent checkpoint: wait until every put the owner knows of is done and
  // every exiting returner is joined, then check the books of every pool.
  std::uint64_t checkpoints = 0, pending_at_checkpoints = 0;
  auto checkpoint = [&]() -> bool {
    const bool all_back = wait_for([&] {
      replace_exited();  // an exited returner's inbox needs a new thread
      for (auto& u : pools)
        if (u->returned.load(std::memory_order_acquire) != u->allocated) return false;
      return true;
    });
    if (!all_back) {
      f.fail("checkpoint: returners did not put everything back in time");
      return false;
    }
    replace_exited();
    ++checkpoints;
    for (auto& u : pools) {
      // check(), the levels adding up to held == hold - release, their
      // bounds, nothing out. A broken one stops the run.
      const std::string where =
          "checkpoint " + std::to_string(checkpoints) + " pool " + u->pool->params().name;
      const bool failed_before = ::testing::Test::HasFailure();
      pagepool::Levels l{};
      {
        SCOPED_TRACE(where);
        l = pptest::common::expect_consistent(*u->pool, 0);
      }
      if (!failed_before && ::testing::Test::HasFailure())
        f.fail(where + ": the pool's books do not add up (see above)");
      const pagepool::Stats s = u->pool->stats();
#if PAGEPOOL_STATS
      // Every page put so far was pushed (or stolen: recycle.ring), released
      // for lack of room (ring_full), or still waits in a batch (pending).
      if (s.recycle.ring + s.recycle.ring_full + l.pending != u->allocated)
        f.fail("checkpoint " + std::to_string(checkpoints) + " pool " + u->pool->params().name +
               ": recycle.ring " + std::to_string(s.recycle.ring) + " + ring_full " +
               std::to_string(s.recycle.ring_full) + " + pending " + std::to_string(l.pending) +
               " != pages put " + std::to_string(u->allocated));
#endif
      pending_at_checkpoints += l.pending;
    }
    return !f.failed();
  };

  // ---- the owner ----
  Rng rng = make_rng(0xba7c4fff);
  const Deadline deadline(stress_seconds());
  constexpr double kStarveLimit = 5.0;  // seconds without a page while some are back
  constexpr std::uint64_t kMaxIters = 4'000'000, kMinIters = 3000, kCheckpointEvery = 1000;
  double max_wait = 0;
  std::uint64_t iters = 0, seq = 0, owner_waits = 0;
  std::vector<Page*> got(64);
  std::vector<Handle> out;
  auto starving = [&] {
    for (auto& u : pools)
      if (u->starving_since >= 0) return true;
    return false;
  };
  // A starving owner does not stop at the deadline: it waits for its page
  // (or for the starvation limit, which fails the test).
  for (; (starving() || (iters < kMaxIters && (iters < kMinIters || !deadline.passed()))) && !f.failed();
       ++iters) {
    if (iters % 64 == 0) replace_exited();
    if (iters % kCheckpointEvery == kCheckpointEvery - 1 && !checkpoint()) break;
    PoolUnderTest& u = *pools[rnd(rng, static_cast<std::uint32_t>(pools.size()))];
    // acquire: every put counted here is complete, and its page is back.
    const std::uint64_t back = u.returned.load(std::memory_order_acquire);
    const std::uint64_t out_known = u.allocated - back;
    if (out_known >= cfg.cap) {
      ++owner_waits;
      std::this_thread::yield();
      continue;
    }
    const auto room = static_cast<std::uint32_t>(cfg.cap - out_known);
    std::size_t n;
    if (chance(rng, 50)) {
      got[0] = u.pool->alloc_page();
      n = got[0] ? 1 : 0;
    } else {
      n = u.pool->alloc_pages_bulk(got.data(), 1 + rnd(rng, std::min<std::uint32_t>(room, 64)));
    }
    if (n == 0) {
      // Pages are back (in a batch, the ring or the cache) but none came:
      // allowed only for the instant a handover has them in transit.
      const double t = now_s();
      if (u.starving_since < 0) {
        u.starving_since = t;
      } else if (t - u.starving_since > kStarveLimit) {
        const pagepool::Levels l = u.pool->levels();
        f.fail("owner starved on " + u.pool->params().name + ": " + std::to_string(cfg.cap - out_known) +
               " of " + std::to_string(cfg.cap) + " pages are back, yet no allocation for " +
               std::to_string(kStarveLimit) + " s (cache " + std::to_string(l.cache) + " ring " +
               std::to_string(l.ring) + " pending " + std::to_string(l.pending) + " inflight " +
               std::to_string(l.inflight) + " held " + std::to_string(l.held) + ")");
        break;
      }
      std::this_thread::yield();
      continue;
    }
    if (u.starving_since >= 0) {
      max_wait = std::max(max_wait, now_s() - u.starving_since);
      u.starving_since = -1;
    }
    u.allocated += n;
    u.tally += n;
    out.clear();
    for (std::size_t i = 0; i < n; ++i) {
      Handle h;
      h.p = got[i];
      h.ctx = &u.ctx;
      h.len = u.ctx.page_bytes;
      h.whole = h.exclusive = true;
      if (pagepool::page_pool(h.p) != u.pool.get()) f.fail("allocated page reports another pool");
      shadow.claim(h, "owner alloc");
      stamp(h, (std::uint64_t{1} << 56) | ++seq);
      out.push_back(h);
    }
    if (u.ctx.pages_out.load(std::memory_order_relaxed) > std::int64_t{cfg.cap})
      f.fail("more than max_inflight pages of " + u.pool->params().name + " out");
    // Spread over returners in a few chunks.
    for (std::size_t i = 0; i < out.size();) {
      const std::size_t k = std::min<std::size_t>(out.size() - i, 1 + rnd(rng, 24));
      rs[rnd(rng, static_cast<std::uint32_t>(cfg.returners))]->inbox.push_all(
          std::vector<Handle>(out.begin() + i, out.begin() + i + k));
      i += k;
    }
  }
  const bool last_checkpoint = !f.failed() && checkpoint();
  EXPECT_TRUE(last_checkpoint);

  // ---- quiesce: the returners drain and exit (handing over their batches) ----
  stop.store(true, std::memory_order_release);
  for (auto& r : rs) r->thread.join();

  std::uint64_t allocated = 0, steal = 0;
  for (auto& u : pools) allocated += u->allocated;
  std::printf("[ %s ] %llu owner iterations (%llu at the cap), %llu pages allocated, %llu put + %llu bulk, "
              "%llu extra refs, %llu flushes, %llu exits, %llu checkpoints (%llu pages pending there), "
              "longest wait for a returned page %.3f s\n",
              cfg.name, (unsigned long long)iters, (unsigned long long)owner_waits,
              (unsigned long long)allocated, (unsigned long long)n_puts.load(), (unsigned long long)n_bulk.load(),
              (unsigned long long)n_extra_ref.load(), (unsigned long long)n_flush.load(),
              (unsigned long long)n_exit.load(), (unsigned long long)checkpoints,
              (unsigned long long)pending_at_checkpoints, max_wait);

  for (auto& u : pools) {
    const std::string& name = u->pool->params().name;
    SCOPED_TRACE(name);
    const pagepool::Stats s = u->pool->stats();
    if (u->ctx.index < 2) std::printf("[ %s ] %s: %s\n", cfg.name, name.c_str(), describe(s).c_str());
    EXPECT_EQ(u->returned.load(), u->allocated);
    EXPECT_EQ(u->ctx.pages_out.load(), 0);
    EXPECT_LE(u->ctx.max_pages_out.load(), std::int64_t{cfg.cap});
    expect_quiescent(*u->pool, name.c_str());
    const pagepool::Levels l = u->pool->levels();
    EXPECT_EQ(u->counters->allocd.load() - u->counters->released.load(), l.held);
    EXPECT_LE(l.held, cfg.cap);
    EXPECT_EQ(u->counters->violations.load(), 0u) << u->counters->first();
#if PAGEPOOL_STATS
    steal += s.alloc.steal;
    EXPECT_EQ(s.alloc.fast + s.alloc.slow + s.alloc.refill, u->tally);
    EXPECT_EQ(s.recycle.cached, 0u);
    EXPECT_EQ(s.recycle.cache_full, 0u);
    // Every last put is counted once: it reached the ring (or was stolen
    // from a batch) or was released because the ring was full.
    EXPECT_EQ(s.recycle.ring + s.recycle.ring_full, u->allocated);
    EXPECT_EQ(s.release, s.recycle.ring_full);
    EXPECT_EQ(s.recycle.released_refcnt, 0u);
    if (cfg.pool_size >= cfg.cap) {
      EXPECT_EQ(s.recycle.ring_full, 0u);
    }
#endif
  }
#if PAGEPOOL_STATS
  EXPECT_GT(steal, 0u) << "the owner never stole a batch: the starvation path was not exercised";
#endif
  EXPECT_GT(pending_at_checkpoints, 0u) << "no checkpoint saw pages pending in a batch";
  EXPECT_GT(checkpoints, 1u);
  EXPECT_GT(n_flush.load(), 0u);
  EXPECT_GT(n_exit.load(), 0u);

  for (auto& u : pools) {
    u->pool.reset();
    EXPECT_TRUE(u->provider.expired());
    EXPECT_EQ(u->counters->allocd.load(), u->counters->released.load());
    EXPECT_EQ(u->counters->violations.load(), 0u) << u->counters->first();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Configs, BatchedReturnsStress,
    ::testing::Values(
        // One pool, six returners, a ring that holds everything.
        StarveConfig{"x6_one_pool", 6, 1, 192, 1024},
        // Eight returners and a small ring: handovers overflow it.
        StarveConfig{"x8_small_ring", 8, 1, 128, 48},
        // Ten pools, four returners: every table evicts, batches age out (periodic scan).
        StarveConfig{"x4_ten_pools", 4, 10, 64, 256}),
    [](const ::testing::TestParamInfo<StarveConfig>& i) { return std::string(i.param.name); });

// ---- DestroyWithBatchesPending ------------------------------------------------------------

enum class Park { parked, racing };

// One round; returns false once the test has failed.
bool destroy_round(std::uint64_t round) {
  Rng rng = make_rng(0xde57000 + round);
  const Park park = (round % 3 == 2) ? Park::racing : Park::parked;
  const int threads = 4 + static_cast<int>(rnd(rng, 5));  // 4..8
  auto counters = std::make_shared<ProviderCounters>();
  std::weak_ptr<pagepool::Provider> weak_prov;
  Params params;
  params.name = "destroy";
  params.order = chance(rng, 25) ? 1 : 0;
  static constexpr std::uint32_t kSizes[] = {4, 64, 1024};
  params.pool_size = kSizes[rnd(rng, 3)];
  if (chance(rng, 50)) params.flags = pagepool::kDmaMap;
  {
    auto prov = std::make_shared<CountingProvider>(params.order, counters);
    weak_prov = prov;
    params.provider = std::move(prov);
  }
  PoolPtr pool = Pool::create(params);
  params.provider.reset();
  SCOPED_TRACE("round " + std::to_string(round) + (park == Park::parked ? " parked" : " racing") +
               " threads " + std::to_string(threads) + " order " + std::to_string(params.order) +
               " pool_size " + std::to_string(params.pool_size) + " flags " + std::to_string(params.flags));

  Failures f;
  Shadow shadow(f);
  PoolCtx ctx;
  ctx.init(pool.get(), 0);

  // Pages per thread, allocated up front and stamped.
  struct Share {
    std::vector<Handle> pages;
    std::size_t first_puts = 0;  // how many to put before the destroy
    bool exit_early = false;     // exit right after those (partial batch at exit)
    bool flush = false;          // flush_thread() after them
  };
  std::vector<Share> share(threads);
  std::uint64_t seq = 0;
  for (int t = 0; t < threads; ++t) {
    const std::size_t n = 1 + rnd(rng, 150);
    std::vector<Page*> got(n);
    const std::size_t k = pool->alloc_pages_bulk(got.data(), n);
    if (k != n) f.fail("alloc_pages_bulk gave " + std::to_string(k) + " of " + std::to_string(n));
    for (std::size_t i = 0; i < k; ++i) {
      Handle h;
      h.p = got[i];
      h.ctx = &ctx;
      h.len = ctx.page_bytes;
      h.whole = h.exclusive = true;
      shadow.claim(h, "alloc");
      stamp(h, (std::uint64_t{2} << 56) | ++seq);
      share[t].pages.push_back(h);
    }
    Share& s = share[t];
    // Mostly partial batches (< 64 puts), sometimes past a full handover.
    s.first_puts = chance(rng, 70) ? rnd(rng, static_cast<std::uint32_t>(std::min<std::size_t>(k, 63)) + 1)
                                   : rnd(rng, static_cast<std::uint32_t>(k) + 1);
    s.exit_early = park == Park::parked && chance(rng, 25);
    s.flush = chance(rng, 20);
  }

  std::atomic<int> ready{0};
  std::atomic<bool> go{false}, destroyed{false};
  auto put_one = [&](Rng& r, const Handle& h) {
    verify(h, f, "put");
    shadow.release(h, "put");
    const std::uint32_t x = rnd(r, 100);
    if (x < 60)
      pagepool::put_page(h.p);
    else if (x < 85)
      pagepool::page_pool(h.p)->put_page(h.p, -1, chance(r, 50));
    else
      pagepool::page_pool(h.p)->put_pages_bulk(&h.p, 1);
  };
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      Share& s = share[t];
      Rng r = make_rng(0xde57fff + round * 64 + static_cast<std::uint64_t>(t));
      if (park == Park::racing)
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (std::size_t i = 0; i < s.first_puts; ++i) put_one(r, s.pages[i]);
      if (s.flush) pagepool::flush_thread();
      if (s.exit_early) {
        // Pages still held go back from here anyway: a thread exiting with
        // a pending batch AND pages out hands them on to a peer. Simplest:
        // an early-exit thread puts everything it holds.
        for (std::size_t i = s.first_puts; i < s.pages.size(); ++i) put_one(r, s.pages[i]);
        s.first_puts = s.pages.size();
        return;  // the exit flush hands the partial batch over
      }
      ready.fetch_add(1, std::memory_order_release);
      if (park == Park::parked)
        while (!destroyed.load(std::memory_order_acquire)) std::this_thread::yield();
      // After (or racing with) the destroy: the rest go into the slot this
      // thread already has, or a new one.
      for (std::size_t i = s.first_puts; i < s.pages.size(); ++i) {
        put_one(r, s.pages[i]);
        if (park == Park::racing && chance(r, 5)) std::this_thread::yield();
      }
    });
  }

  if (park == Park::parked) {
    // Wait for every thread to stop after its first puts; join the ones
    // that exited (their exit flush is done then).
    int early = 0;
    for (int t = 0; t < threads; ++t) early += share[t].exit_early;
    if (!wait_for([&] { return ready.load(std::memory_order_acquire) == threads - early; }))
      f.fail("threads did not reach the destroy point");
    for (int t = 0; t < threads; ++t)
      if (share[t].exit_early) ts[t].join();
    std::uint64_t still_out = 0;
    for (const Share& s : share) still_out += s.pages.size() - s.first_puts;
    // Quiescent: the books with batches pending, and inflight == the pages
    // the threads still hold.
    const bool failed_before = ::testing::Test::HasFailure();
    pagepool::Levels l{};
    {
      SCOPED_TRACE("before destroy");
      l = pptest::common::expect_consistent(*pool, still_out);
    }
    if (!failed_before && ::testing::Test::HasFailure())
      f.fail("before destroy: the pool's books do not add up (see above)");
    const std::uint64_t pending = l.pending;
    Pool* raw = pool.get();
    const std::uint64_t steal_before = raw->stats().alloc.steal;
    pool.reset();
    // destroy() takes the pending batches, but that is no owner's steal.
    // (Readable only while the threads still hold pages: they keep it alive.)
    if (PAGEPOOL_STATS && still_out != 0 && raw->stats().alloc.steal != steal_before)
      f.fail("destroy moved alloc.steal from " + std::to_string(steal_before) + " to " +
             std::to_string(raw->stats().alloc.steal));
    // Every resting page, the pending ones included, is back at once.
    const std::uint64_t allocd = counters->allocd.load(), released = counters->released.load();
    if (allocd - released != still_out)
      f.fail("destroy left " + std::to_string(allocd - released) + " pages out of the provider, but the " +
             "threads hold " + std::to_string(still_out) + " (" + std::to_string(pending) +
             " were pending in batches)");
    if (still_out == 0 && !weak_prov.expired()) f.fail("nothing out, yet the provider outlived destroy");
    destroyed.store(true, std::memory_order_release);
  } else {
    go.store(true, std::memory_order_release);
    // Destroy at a random moment of the puts.
    for (std::uint32_t spin = rnd(rng, 2000); spin; --spin)
      if (spin % 64 == 0) std::this_thread::yield();
    pool.reset();
  }
  for (int t = 0; t < threads; ++t)
    if (ts[t].joinable()) ts[t].join();

  EXPECT_EQ(ctx.pages_out.load(), 0);
  EXPECT_TRUE(weak_prov.expired()) << "the provider outlived the last put";
  EXPECT_EQ(counters->allocd.load(), counters->released.load()) << "pages not returned to the provider";
  EXPECT_EQ(counters->maps.load(), counters->unmaps.load());
  EXPECT_EQ(counters->violations.load(), 0u) << counters->first();
  return !f.failed() && !::testing::Test::HasFailure();
}

TEST(BatchedReturnsStress, DestroyWithBatchesPending) {
  const Deadline deadline(stress_seconds());
  std::uint64_t rounds = 0;
  for (; rounds < 5000 && (rounds < 30 || !deadline.passed()); ++rounds)
    if (!destroy_round(rounds)) break;
  std::printf("[ destroy_with_batches ] %llu rounds\n", (unsigned long long)rounds);
}

}  // namespace
