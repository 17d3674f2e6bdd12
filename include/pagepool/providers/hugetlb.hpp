// pagepool: hugetlb provider — pages carved from 2 MiB huge pages.
//
// For higher-order pools and TLB relief: one TLB entry covers 512 order-0
// pages. The huge pages must be reserved by the administrator first
// (echo N > /proc/sys/vm/nr_hugepages); without any, construction throws a
// std::system_error that says so.
#pragma once

#include "pagepool/provider.hpp"

namespace pagepool {

class HugetlbProvider final : public ChunkProvider {
 public:
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;
  // Pages of kPageSize << order on node nid (-1 any). Throws
  // std::invalid_argument for an order above kMaxOrder.
  explicit HugetlbProvider(unsigned order, int nid = -1);
  ~HugetlbProvider() override;
  const char* name() const noexcept override { return "hugetlb"; }

  // Free 2 MiB huge pages in the system now (HugePages_Free), -1 if unknown.
  static long free_huge_pages() noexcept;

 protected:
  void* reserve_chunk(std::size_t bytes, int* nid) noexcept override;
  void unreserve_chunk(void* base, std::size_t bytes) noexcept override;
};

}  // namespace pagepool
