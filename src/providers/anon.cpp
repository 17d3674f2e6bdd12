// AnonProvider: private anonymous memory in 2 MiB-aligned chunks.
#include <sys/mman.h>

#include <cstdint>

#include "mem/arena.hpp"
#include "pagepool/provider.hpp"

namespace pagepool {

namespace {
// At least 4 MiB per chunk: one mmap serves 1024 order-0 pages, i.e. 16
// bulk refills, so the syscall is off every per-refill path.
constexpr std::size_t kMinChunk = 4u << 20;
}  // namespace

AnonProvider::AnonProvider(unsigned order, int nid) : ChunkProvider(order, kMinChunk), nid_(nid) {}

AnonProvider::~AnonProvider() { release_all_chunks(); }

void* AnonProvider::reserve_chunk(std::size_t bytes, int* nid) noexcept {
  // Over-reserve by one granule and trim both ends to get 2 MiB alignment.
  const std::size_t span = bytes + detail::kGranule;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto r = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t a = (r + detail::kGranule - 1) & ~(detail::kGranule - 1);
  if (a > r) munmap(raw, a - r);
  if (r + span > a + bytes) munmap(reinterpret_cast<void*>(a + bytes), r + span - (a + bytes));
  *nid = nid_;
  return reinterpret_cast<void*>(a);
}

void AnonProvider::unreserve_chunk(void* base, std::size_t bytes) noexcept { munmap(base, bytes); }

}  // namespace pagepool
