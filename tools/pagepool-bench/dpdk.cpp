// pagepool-bench: DPDK's rte_mempool as a peer (built when pkg-config finds
// libdpdk; dpdk_absent.cpp otherwise).
//
// The EAL runs without hugepages or devices (--no-huge --no-pci --no-shconf),
// with memory sized for the largest cases selected. Mempools hold 4 KiB
// elements and are made per size class, lazily, and kept for the run (making
// a 1 Mi-element pool takes seconds): a case uses the smallest class that
// covers its buffers in flight plus every thread's cache, as a DPDK
// application sizes its pools. Every thread (benchmark threads are not EAL
// lcores) gets its own 256-object cache from rte_mempool_cache_create and
// uses rte_mempool_generic_get/put with it.
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mempool.h>
#include <rte_version.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>

#include "adapters.hpp"
#include "scenarios.hpp"

namespace ppb {
namespace {

constexpr unsigned kCache = 256;
// A user-owned cache holds up to 1.5 x its size (RTE_MEMPOOL_CACHE_FLUSHTHRESH).
constexpr std::uint64_t kCacheMax = kCache * 3 / 2;

class Dpdk {
 public:
  using Buf = void*;
  struct Local {
    rte_mempool_cache* c = nullptr;
  };
  static constexpr bool kBulk = true;

  explicit Dpdk(rte_mempool* mp) : mp_(mp) {}
  Local local() {
    Local l{rte_mempool_cache_create(kCache, SOCKET_ID_ANY)};
    if (!l.c) throw std::runtime_error("rte_mempool_cache_create failed");
    return l;
  }
  void release(Local& l) {
    rte_mempool_cache_flush(l.c, mp_);
    rte_mempool_cache_free(l.c);
  }
  void bind_owner() {}

  PPB_HOT Buf get(Local& l) {
    void* o;
    return rte_mempool_generic_get(mp_, &o, 1, l.c) == 0 ? o : nullptr;
  }
  PPB_HOT void put(Local& l, Buf b) { rte_mempool_generic_put(mp_, &b, 1, l.c); }
  PPB_HOT void put_owner(Local& l, Buf b) { put(l, b); }
  // All or nothing, as rte_mempool_get_bulk is.
  PPB_HOT std::size_t get_bulk(Local& l, Buf* out, std::size_t n) {
    return rte_mempool_generic_get(mp_, out, static_cast<unsigned>(n), l.c) == 0 ? n : 0;
  }
  PPB_HOT void put_bulk(Local& l, Buf* in, std::size_t n) {
    rte_mempool_generic_put(mp_, in, static_cast<unsigned>(n), l.c);
  }
  PPB_HOT static std::byte* data(Buf b) { return static_cast<std::byte*>(b); }

 private:
  rte_mempool* mp_;
};

std::uint64_t elems_for(const Setup& s) {
  const std::uint64_t need = s.inflight + s.threads * (kCacheMax + kBulkN) + 64;
  return (need + 1023) / 1024 * 1024;
}

// The EAL and the pools: one per process.
struct Eal {
  std::mutex mu;
  bool ok = false;
  std::string err;
  std::map<std::uint64_t, rte_mempool*> pools;

  rte_mempool* pool(const Setup& s) {
    const std::uint64_t n = elems_for(s);
    std::lock_guard<std::mutex> g(mu);
    auto it = pools.find(n);
    if (it != pools.end()) return it->second;
    const std::string name = "ppb" + std::to_string(n);
    // No per-lcore cache (0): the benchmark's threads bring their own.
    // NO_IOVA_CONTIG: without hugepages an object that must not straddle a
    // 4 KiB page takes two (8 KiB); there is no device here, and on
    // hugepages the 4160-byte objects would pack densely, so pack them so.
    rte_mempool* mp = rte_mempool_create(name.c_str(), static_cast<unsigned>(n), kBuf, 0, 0, nullptr,
                                         nullptr, nullptr, nullptr, SOCKET_ID_ANY,
                                         RTE_MEMPOOL_F_NO_IOVA_CONTIG);
    if (!mp)
      throw std::runtime_error("rte_mempool_create(" + std::to_string(n) +
                               " x 4 KiB): " + rte_strerror(rte_errno));
    pools[n] = mp;
    return mp;
  }
};

Eal& eal() {
  static Eal e;
  return e;
}

// Brings the EAL up once, with -m covering one pool per size class the
// cases need (and some room for the test's small pools).
void eal_init(const std::vector<CaseSpec>& cases) {
  static bool tried = false;
  Eal& e = eal();
  if (tried) return;
  tried = true;
  std::set<std::uint64_t> classes{elems_for(Setup{128, 2})};
  for (const CaseSpec& c : cases) classes.insert(elems_for(setup_of(c)));
  double mib = 128;
  for (std::uint64_t n : classes) mib += n * (kBuf + 128.0) / (1 << 20) + 8;  // elements + ring
  const std::string m = std::to_string(static_cast<std::uint64_t>(mib));
  const std::string prefix = "ppb" + std::to_string(getpid());
  const char* argv[] = {"pagepool-bench", "--no-huge",  "--no-pci",   "-m",
                        m.c_str(),        "--no-shconf", "--file-prefix", prefix.c_str(),
                        "--no-telemetry", "--log-level=error", "-l",  "0"};
  // The EAL pins the calling thread to lcore 0; the benchmark places its
  // threads itself, so put this one back where it was.
  cpu_set_t before;
  sched_getaffinity(0, sizeof before, &before);
  const int r = rte_eal_init(static_cast<int>(sizeof argv / sizeof argv[0]), const_cast<char**>(argv));
  sched_setaffinity(0, sizeof before, &before);
  if (r < 0) {
    e.err = std::string("rte_eal_init failed: ") + rte_strerror(rte_errno);
    return;
  }
  e.ok = true;
  // --no-shconf still makes an (empty) runtime folder; leave nothing behind.
  static std::string runtime_dir = rte_eal_get_runtime_dir();
  std::atexit([] {
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all(runtime_dir, ec);
  });
}

}  // namespace

Allocator make_dpdk(const std::vector<CaseSpec>& cases) {
  eal_init(cases);
  Eal& e = eal();
  if (!e.ok) {
    Allocator al;
    al.name = "dpdk";
    al.detail = e.err;
    return al;
  }
  return make_allocator<Dpdk>(
      "dpdk",
      std::string(rte_version()) +
          ", rte_mempool (ring_mp_mc) of 4 KiB elements, 256-object cache per thread "
          "(rte_mempool_cache_create + generic_get/put), EAL --no-huge",
      [](const Setup& s) { return std::make_unique<Dpdk>(eal().pool(s)); });
}

}  // namespace ppb
