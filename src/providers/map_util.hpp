// Mapping helpers shared by the providers. Internal.
#pragma once

#include <cstddef>

namespace pagepool::detail {

// Anonymous mmap of `bytes` aligned to `align` (a power of two):
// over-reserves and trims. nullptr with errno on failure.
void* map_aligned(std::size_t bytes, std::size_t align, int prot, int flags) noexcept;

// Binds [addr, addr + bytes) to NUMA node nid before it is touched
// (libnuma, MPOL_BIND). False if NUMA is unavailable or the node invalid.
bool bind_to_node(void* addr, std::size_t bytes, int nid) noexcept;

// Highest NUMA node id, 0 where libnuma reports NUMA unavailable.
int max_node() noexcept;

}  // namespace pagepool::detail
