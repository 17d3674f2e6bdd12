#include "providers/map_util.hpp"

#include <numa.h>
#include <sys/mman.h>

#include <cstdint>

namespace pagepool::detail {

void* map_aligned(std::size_t bytes, std::size_t align, int prot, int flags) noexcept {
  const std::size_t span = bytes + align;
  void* raw = mmap(nullptr, span, prot, flags | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto r = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t a = (r + align - 1) & ~(align - 1);
  if (a > r) munmap(raw, a - r);
  if (r + span > a + bytes) munmap(reinterpret_cast<void*>(a + bytes), r + span - (a + bytes));
  return reinterpret_cast<void*>(a);
}

bool bind_to_node(void* addr, std::size_t bytes, int nid) noexcept {
  if (numa_available() < 0 || nid > numa_max_node()) return false;
  numa_tonode_memory(addr, bytes, nid);
  return true;
}

int max_node() noexcept { return numa_available() < 0 ? 0 : numa_max_node(); }

}  // namespace pagepool::detail
