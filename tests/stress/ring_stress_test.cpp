// Return-ring stress: many threads (4-8) push pages into one pool's small
// return ring (single puts through their batches, bulk chains straight to
// the ring, extra references dropped first) while the owner keeps
// allocating, i.e. refilling from the ring, stealing batches and asking the
// provider. The owner never puts, so every return ends as a ring push (or a
// steal) or a ring-full release; once the pushers have exited (handing over
// their last batches) nothing is pending and the books balance exactly:
//   pages allocated == pages put back == recycle.ring + recycle.ring_full
//   release == ring_full, hold - release == levels().held (check())
//   provider: alloc'd - released == held.
#include "harness.hpp"

namespace {

using namespace ppstress;
using pagepool::Params;
using pagepool::PoolPtr;

struct RingConfig {
  const char* name;
  std::uint32_t pool_size;
  int pushers;
};

void PrintTo(const RingConfig& c, std::ostream* os) { *os << c.name; }

class RingStress : public ::testing::TestWithParam<RingConfig> {};

TEST_P(RingStress, ManyPushersOneRefillingOwner) {
  const RingConfig& cfg = GetParam();
  auto counters = std::make_shared<ProviderCounters>();
  Params params;
  params.name = "ring";
  params.pool_size = cfg.pool_size;
  params.provider = std::make_shared<CountingProvider>(0, counters);
  PoolPtr pool = Pool::create(params);
  params.provider.reset();

  Failures f;
  Shadow shadow(f);
  PoolCtx ctx;
  ctx.init(pool.get(), 0);

  struct Pusher {
    Inbox inbox;
    std::uint64_t puts = 0, bulk_calls = 0, extra_refs = 0;
  };
  std::vector<std::unique_ptr<Pusher>> pushers;
  for (int i = 0; i < cfg.pushers; ++i) pushers.push_back(std::make_unique<Pusher>());
  std::atomic<std::int64_t> live{0};
  std::atomic<bool> stop{false};

  auto pusher_main = [&](int id) {
    Pusher& me = *pushers[id];
    Rng rng = make_rng(0x41a6000 + static_cast<std::uint64_t>(id));
    std::vector<Handle> batch;
    std::vector<Page*> ptrs;
    std::unique_ptr<Deadline> give_up;
    for (;;) {
      batch.clear();
      if (me.inbox.take(batch, 1 + rnd(rng, 64)) == 0) {
        if (stop.load(std::memory_order_acquire) || f.failed()) {
          if (live.load(std::memory_order_acquire) == 0) break;
          if (!give_up) give_up = std::make_unique<Deadline>(20.0);
          if (give_up->passed()) {
            f.fail("pusher drain timed out");
            break;
          }
        }
        std::this_thread::yield();
        continue;
      }
      for (Handle& h : batch) {
        verify(h, f, "pusher");
        if (chance(rng, 10)) {
          // A second reference dropped first: the final put is still ours.
          pagepool::get_page(h.p);
          pagepool::put_page(h.p);
          ++me.extra_refs;
        }
        shadow.release(h, "pusher");
      }
      const std::uint32_t how = rnd(rng, 100);
      if (how < 35) {
        // Chains: put_pages_bulk links runs (split at pool_size) into one push.
        ptrs.clear();
        for (const Handle& h : batch) ptrs.push_back(h.p);
        pool->put_pages_bulk(ptrs.data(), ptrs.size());
        ++me.bulk_calls;
      } else {
        for (const Handle& h : batch) {
          const std::uint32_t r = rnd(rng, 100);
          if (r < 50)
            pagepool::put_page(h.p);
          else if (r < 80)
            pool->put_page(h.p, -1, false);
          else
            pool->put_page(h.p, -1, true);  // not the owner: still the ring
        }
      }
      me.puts += batch.size();
      live.fetch_sub(static_cast<std::int64_t>(batch.size()), std::memory_order_release);
    }
  };

  std::vector<std::thread> threads;
  for (int i = 0; i < cfg.pushers; ++i) threads.emplace_back(pusher_main, i);

  // ---- owner ----
  Rng rng = make_rng(0x41a6fff);
  const Deadline deadline(stress_seconds());
  constexpr std::uint64_t kMaxIters = 4'000'000;
  const std::int64_t max_live = 4 * Pool::kCacheSize + 8 * cfg.pool_size;
  std::uint64_t allocated = 0, iters = 0, seq = 0;
  std::vector<Page*> got(64);
  std::vector<Handle> out;
  constexpr std::uint64_t kMinPages = 20000;  // however slow the build
  for (; iters < kMaxIters && (allocated < kMinPages || !deadline.passed()) && !f.failed(); ++iters) {
    if (live.load(std::memory_order_relaxed) >= max_live) {
      std::this_thread::yield();
      continue;
    }
    std::size_t n;
    if (chance(rng, 50)) {
      got[0] = pool->alloc_page();
      n = got[0] ? 1 : 0;
    } else {
      n = pool->alloc_pages_bulk(got.data(), 1 + rnd(rng, 64));
    }
    if (n == 0) {
      f.fail("allocation failed on a pool without a cap");
      break;
    }
    allocated += n;
    out.clear();
    for (std::size_t i = 0; i < n; ++i) {
      Handle h;
      h.p = got[i];
      h.ctx = &ctx;
      h.off = 0;
      h.len = ctx.page_bytes;
      h.whole = h.exclusive = true;
      shadow.claim(h, "owner alloc");
      stamp(h, (std::uint64_t{1} << 56) | ++seq);
      out.push_back(h);
    }
    live.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed);
    pushers[rnd(rng, static_cast<std::uint32_t>(cfg.pushers))]->inbox.push_all(out);
    if ((iters & 127) == 0) {
      const pagepool::Levels l = pool->levels();
      if (l.ring > cfg.pool_size || l.cache + l.ring + l.pending > l.held)
        f.fail("owner levels: ring " + std::to_string(l.ring) + " cache " + std::to_string(l.cache) +
               " pending " + std::to_string(l.pending) + " held " + std::to_string(l.held));
    }
  }
  stop.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();  // each exit hands over the pusher's batch
  EXPECT_EQ(pool->levels().pending, 0u) << "a pusher's batch outlived its thread";

  std::uint64_t puts = 0, bulk_calls = 0, extra = 0;
  for (auto& p : pushers) {
    puts += p->puts;
    bulk_calls += p->bulk_calls;
    extra += p->extra_refs;
  }
  const pagepool::Stats s = pool->stats();
  std::printf("[ %s ] %llu owner iterations, %llu pages allocated, %llu put (%llu bulk calls, %llu extra refs)\n"
              "[ %s ] %s\n",
              cfg.name, (unsigned long long)iters, (unsigned long long)allocated, (unsigned long long)puts,
              (unsigned long long)bulk_calls, (unsigned long long)extra, cfg.name, describe(s).c_str());

  EXPECT_EQ(live.load(), 0);
  EXPECT_EQ(puts, allocated) << "pages lost between owner and pushers";
  EXPECT_EQ(ctx.pages_out.load(), 0);
  expect_quiescent(*pool, cfg.name);
  const pagepool::Levels l = pool->levels();
  EXPECT_EQ(s.hold - s.release, l.held);
  EXPECT_EQ(counters->allocd.load() - counters->released.load(), l.held);
  EXPECT_EQ(counters->violations.load(), 0u) << counters->first();
#if PAGEPOOL_STATS
  // Every last put on a non-owner thread is a push or a ring-full release.
  EXPECT_EQ(s.recycle.ring + s.recycle.ring_full, allocated);
  EXPECT_EQ(s.release, s.recycle.ring_full);
  EXPECT_EQ(s.recycle.cached, 0u);
  EXPECT_EQ(s.alloc.fast + s.alloc.slow + s.alloc.refill, allocated);
  EXPECT_GT(s.alloc.refill, 0u) << "the owner never refilled from the ring";
  EXPECT_GT(s.recycle.ring_full, 0u) << "the ring never overflowed";
#endif
  pool.reset();
  EXPECT_EQ(counters->allocd.load(), counters->released.load());
}

INSTANTIATE_TEST_SUITE_P(Configs, RingStress,
                         ::testing::Values(RingConfig{"ring8_x8", 8, 8}, RingConfig{"ring64_x4", 64, 4}),
                         [](const ::testing::TestParamInfo<RingConfig>& i) {
                           return std::string(i.param.name);
                         });

}  // namespace
