// Core paths of the pool, measured the way the kernel's bench_page_pool_simple
// does: reference loops first (empty loop, an atomic, a lock), then the pool's
// fast path, ring path and not-recycled path, then the page allocator's
// analogue in userspace (mmap + fault-in + munmap per page). Every case
// reports ns (Google Benchmark) and TSC cycles per operation.
//
// Built twice: pagepool_bench_core_stats and pagepool_bench_core_nostats
// (PAGEPOOL_STATS=0), so the cost of the counters shows as a difference.
//
// `--demo` runs a short side-by-side comparison of the main paths.
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <x86intrin.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "pagepool/pagepool.hpp"

namespace {

using pagepool::Page;
using pagepool::Pool;

// Wraps a benchmark loop with a TSC reading; reports cycles per iteration.
struct TscScope {
  benchmark::State& st;
  std::uint64_t t0;
  explicit TscScope(benchmark::State& s) : st(s), t0(__rdtsc()) {}
  ~TscScope() {
    const double cycles = static_cast<double>(__rdtsc() - t0);
    st.counters["cycles/op"] = benchmark::Counter(cycles, benchmark::Counter::kAvgIterations);
  }
};

pagepool::PoolPtr make_pool() {
  pagepool::Params p;
  p.name = "bench";
  auto pool = Pool::create(p);
  // Warm up: take the first bulk from the provider outside the timed loop.
  Page* page = pool->alloc_page();
  pool->recycle_direct(page);
  return pool;
}

void BM_EmptyLoop(benchmark::State& st) {
  TscScope t(st);
  for (auto _ : st) benchmark::ClobberMemory();
}
BENCHMARK(BM_EmptyLoop);

void BM_AtomicInc(benchmark::State& st) {
  std::atomic<std::uint64_t> a{0};
  TscScope t(st);
  for (auto _ : st) a.fetch_add(1, std::memory_order_relaxed);
  benchmark::DoNotOptimize(a.load());
}
BENCHMARK(BM_AtomicInc);

void BM_MutexLockUnlock(benchmark::State& st) {
  std::mutex m;
  TscScope t(st);
  for (auto _ : st) {
    m.lock();
    benchmark::ClobberMemory();
    m.unlock();
  }
}
BENCHMARK(BM_MutexLockUnlock);

// alloc_page + recycle_direct: the owner's LIFO cache, no atomic RMW.
void BM_FastPath(benchmark::State& st) {
  auto pool = make_pool();
  TscScope t(st);
  for (auto _ : st) {
    Page* p = pool->alloc_page();
    benchmark::DoNotOptimize(p);
    pool->recycle_direct(p);
  }
}
BENCHMARK(BM_FastPath);

// alloc_page + put_page(page, -1, false): every page goes through the
// return ring (one CAS per put) and comes back by a batched refill.
void BM_RingPath(benchmark::State& st) {
  auto pool = make_pool();
  TscScope t(st);
  for (auto _ : st) {
    Page* p = pool->alloc_page();
    benchmark::DoNotOptimize(p);
    pool->put_page(p, -1, false);
  }
}
BENCHMARK(BM_RingPath);

// The pool-agnostic put on the owner thread (detects the owner by itself).
void BM_FreePutPage(benchmark::State& st) {
  auto pool = make_pool();
  TscScope t(st);
  for (auto _ : st) {
    Page* p = pool->alloc_page();
    benchmark::DoNotOptimize(p);
    pagepool::put_page(p);
  }
}
BENCHMARK(BM_FreePutPage);

// alloc_page + release_page: the page leaves the pool for the provider each
// time, so every allocation is a provider bulk refill's share.
void BM_NotRecycled(benchmark::State& st) {
  auto pool = make_pool();
  TscScope t(st);
  for (auto _ : st) {
    Page* p = pool->alloc_page();
    benchmark::DoNotOptimize(p);
    pool->release_page(p);
  }
}
BENCHMARK(BM_NotRecycled);

// Bulk: 64 pages (one NAPI budget) out and back per iteration; per page.
void BM_Bulk64(benchmark::State& st) {
  auto pool = make_pool();
  Page* pages[64];
  TscScope t(st);
  for (auto _ : st) {
    std::size_t n = pool->alloc_pages_bulk(pages, 64);
    benchmark::DoNotOptimize(pages);
    pool->put_pages_bulk(pages, n);
  }
  st.SetItemsProcessed(st.iterations() * 64);
}
BENCHMARK(BM_Bulk64);

// No allocator: what pagepool-bench's S2b does to its 32 buffers (an 8-byte
// tag written into each one's first cache line, then every tag read back),
// with the buffers `stride` bytes apart. At 4096 every tag line falls in the
// same L1 set and the loads alias the stores 4 KiB away; at 4160 (DPDK's
// element size for a 4 KiB object) they spread over 32 sets. The difference
// is what any page-aligned allocator pays in S2b on top of its own cost.
void BM_Tag32(benchmark::State& st) {
  const auto stride = static_cast<std::size_t>(st.range(0));
  std::vector<std::byte> mem(stride * 32 + pagepool::kPageSize);
  std::byte* base = reinterpret_cast<std::byte*>(
      (reinterpret_cast<std::uintptr_t>(mem.data()) + pagepool::kPageSize - 1) &
      ~(pagepool::kPageSize - 1));
  std::uint64_t seq = 0;
  TscScope t(st);
  for (auto _ : st) {
    for (std::size_t k = 0; k < 32; ++k) {
      const std::uint64_t v = seq + k;
      std::memcpy(base + k * stride, &v, sizeof v);
    }
    benchmark::ClobberMemory();
    for (std::size_t k = 0; k < 32; ++k) {
      std::uint64_t v;
      std::memcpy(&v, base + k * stride, sizeof v);
      if (v != seq + k) st.SkipWithError("tag overwritten");
    }
    seq += 32;
  }
  st.SetItemsProcessed(st.iterations() * 32);
}
BENCHMARK(BM_Tag32)->Arg(4096)->Arg(4160);

// The page allocator's analogue: a fresh page from the kernel (mmap,
// faulted in by MAP_POPULATE) and back (munmap) for every buffer.
void BM_PageAllocator(benchmark::State& st) {
  TscScope t(st);
  for (auto _ : st) {
    void* p = mmap(nullptr, pagepool::kPageSize, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
      st.SkipWithError("mmap failed");
      break;
    }
    benchmark::DoNotOptimize(p);
    munmap(p, pagepool::kPageSize);
  }
}
BENCHMARK(BM_PageAllocator);

// Console output plus a closing side-by-side summary for the demo.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      auto it = r.counters.find("cycles/op");
      if (it != r.counters.end()) cycles_[r.benchmark_name()] = {it->second.value, r.GetAdjustedRealTime()};
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    auto get = [&](const char* n) { return cycles_.count(n) ? cycles_[n] : std::pair<double, double>{0, 0}; };
    const auto fast = get("BM_FastPath"), ring = get("BM_RingPath"), nr = get("BM_NotRecycled"),
               pa = get("BM_PageAllocator");
    if (fast.first <= 0 || pa.first <= 0) return;
    std::printf("\npagepool core paths (TSC cycles per alloc + return, %s):\n",
                PAGEPOOL_STATS ? "stats on" : "stats off");
    std::printf("  %-42s %10s %10s %12s\n", "path", "cycles", "ns", "vs fast");
    auto row = [&](const char* what, std::pair<double, double> v) {
      std::printf("  %-42s %10.1f %10.1f %11.1fx\n", what, v.first, v.second, v.first / fast.first);
    };
    row("fast path (alloc + recycle_direct)", fast);
    row("ring path (alloc + put_page(p,-1,false))", ring);
    row("not recycled (alloc + release_page)", nr);
    row("page allocator (mmap+fault+munmap)", pa);
  }

 private:
  std::map<std::string, std::pair<double, double>> cycles_;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  bool demo = false;
  static char filter[] = "--benchmark_filter=BM_(EmptyLoop|FastPath|RingPath|NotRecycled|PageAllocator)$";
  static char min_time[] = "--benchmark_min_time=0.2";
  for (auto it = args.begin() + 1; it != args.end();) {
    if (std::strcmp(*it, "--demo") == 0) {
      demo = true;
      it = args.erase(it);
    } else {
      ++it;
    }
  }
  if (demo) {
    args.insert(args.begin() + 1, filter);
    args.insert(args.begin() + 2, min_time);
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
