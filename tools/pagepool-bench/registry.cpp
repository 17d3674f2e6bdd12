// pagepool-bench: the allocators, each wrapped for the driver. The scenario
// templates are instantiated here (and in dpdk.cpp for DPDK).
#include <gnu/libc-version.h>

#include <memory>

#include "adapters.hpp"
#include "locked_ring.hpp"
#include "scenarios.hpp"

namespace ppb {

Allocator make_dpdk(const std::vector<CaseSpec>& cases);  // dpdk.cpp or dpdk_absent.cpp
#if PPB_NOSTATS
Allocator make_pagepool_nostats();  // nostats.cpp
#endif

namespace {

Allocator absent(const std::string& name, std::string why) {
  Allocator al;
  al.name = name;
  al.detail = std::move(why);
  return al;
}

template <Dl K>
Allocator make_dl(const std::string& name) {
  std::string detail, why;
  std::shared_ptr<DlFns> f = load_dl(K, &detail, &why);
  if (!f) return absent(name, why);
  Allocator al = make_allocator<DlPeer<K>>(name, detail, [f](const Setup& s) {
    return std::make_unique<DlPeer<K>>(s, *f);
  });
  al.trim = [f] { dl_trim(K, *f); };
  return al;
}

Allocator make_one(const std::string& name, const std::vector<CaseSpec>& cases) {
  const std::string stats = PAGEPOOL_STATS ? "stats on" : "stats off";
  if (name == "pagepool")
    return make_allocator<PagePool>(
        name, "linked, " + stats + "; alloc_page, recycle_direct (S1), put_page, bulk APIs",
        [](const Setup& s) { return std::make_unique<PagePool>(s); });
  if (name == "pagepool-nostats") {
#if PPB_NOSTATS
    return make_pagepool_nostats();
#else
    return absent(name, PAGEPOOL_STATS ? "not built (PPB_NOSTATS off)"
                                       : "the library is built with PAGEPOOL_STATS=OFF: see pagepool");
#endif
  }
  if (name == "pagepool-lockedring")
    return make_allocator<LockedRing>(
        name, "ablation: pagepool pages, kernel-style ptr_ring with producer spinlock, " + stats,
        [](const Setup& s) { return std::make_unique<LockedRing>(s); });
  if (name == "glibc") {
    Allocator al = make_allocator<Glibc>(name, std::string("glibc ") + gnu_get_libc_version() +
                                                    ", aligned_alloc(4096, 4096)/free",
                                         [](const Setup& s) { return std::make_unique<Glibc>(s); });
    al.trim = &Glibc::trim;
    return al;
  }
  if (name == "mmap") {
    Allocator al = make_allocator<Mmap>(name, "mmap + fault-in + munmap per buffer; ops / 64",
                                        [](const Setup& s) { return std::make_unique<Mmap>(s); });
    al.ops_div = 64;
    return al;
  }
  if (name == "stack")
    return make_allocator<Stack>(name, "reference floor: an array stack over one premapped region, one thread",
                                 [](const Setup& s) { return std::make_unique<Stack>(s); });
  if (name == "jemalloc") return make_dl<Dl::jemalloc>(name);
  if (name == "mimalloc") return make_dl<Dl::mimalloc>(name);
  if (name == "tcmalloc") return make_dl<Dl::tcmalloc>(name);
  if (name == "dpdk") return make_dpdk(cases);
  return absent(name, "unknown allocator");
}

}  // namespace

std::vector<Allocator> make_allocators(const std::vector<std::string>& names,
                                       const std::vector<CaseSpec>& cases) {
  std::vector<Allocator> v;
  for (const std::string& n : names) v.push_back(make_one(n, cases));
  return v;
}

}  // namespace ppb
