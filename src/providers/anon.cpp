// AnonProvider: private anonymous memory in 2 MiB-aligned chunks, bound to
// a NUMA node on request (libnuma), asked for transparent huge pages
// (MADV_HUGEPAGE) unless constructed with thp = false.
#include <numa.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>

#include "mem/arena.hpp"
#include "pagepool/provider.hpp"
#include "providers/map_util.hpp"

namespace pagepool {

namespace {
// At least 4 MiB per chunk: one mmap serves 1024 order-0 pages, i.e. 16
// bulk refills, so the syscall is off every per-refill path.
constexpr std::size_t kMinChunk = 4u << 20;
}  // namespace

AnonProvider::AnonProvider(unsigned order, int nid, bool thp)
    : ChunkProvider(checked_order("AnonProvider", order), kMinChunk), thp_(thp) {
  set_nid(nid);
}

AnonProvider::~AnonProvider() { release_all_chunks(); }

void* AnonProvider::reserve_chunk(std::size_t bytes, int* nid) noexcept {
  void* mem = detail::map_aligned(bytes, detail::kGranule, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  if (!mem) return nullptr;
  if (thp_) madvise(mem, bytes, MADV_HUGEPAGE);  // a hint: failure leaves 4 KiB pages
  if (*nid >= 0 && !detail::bind_to_node(mem, bytes, *nid)) *nid = -1;
  return mem;
}

void AnonProvider::unreserve_chunk(void* base, std::size_t bytes) noexcept { munmap(base, bytes); }

}  // namespace pagepool
