// HugetlbProvider: chunks of MAP_HUGETLB 2 MiB pages.
#include "pagepool/providers/hugetlb.hpp"

#include <linux/mman.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#include "mem/arena.hpp"
#include "providers/map_util.hpp"

namespace pagepool {

namespace {
constexpr int kHugeFlags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB;
}

long HugetlbProvider::free_huge_pages() noexcept {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return -1;
  char line[128];
  long n = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "HugePages_Free: %ld", &n) == 1) break;
  std::fclose(f);
  return n;
}

HugetlbProvider::HugetlbProvider(unsigned order, int nid)
    : ChunkProvider(checked_order("HugetlbProvider", order), kHugePage) {
  set_nid(nid);
  // Probe: a private hugetlb mapping reserves its huge page at mmap time,
  // so this fails now, with a useful message, rather than at the first
  // allocation.
  void* p = mmap(nullptr, kHugePage, PROT_READ | PROT_WRITE, kHugeFlags, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    throw std::system_error(
        err, std::generic_category(),
        "HugetlbProvider: cannot map a 2 MiB huge page (HugePages_Free = " +
            std::to_string(free_huge_pages()) +
            "); reserve some first, e.g. `echo 64 > /proc/sys/vm/nr_hugepages` as root");
  }
  munmap(p, kHugePage);
}

HugetlbProvider::~HugetlbProvider() { release_all_chunks(); }

void* HugetlbProvider::reserve_chunk(std::size_t bytes, int* nid) noexcept {
  // Huge page mappings are aligned to the huge page size by the kernel.
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, kHugeFlags, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  if (*nid >= 0 && !detail::bind_to_node(mem, bytes, *nid)) *nid = -1;
  return mem;
}

void HugetlbProvider::unreserve_chunk(void* base, std::size_t bytes) noexcept {
  munmap(base, bytes);
}

}  // namespace pagepool
