// pagepool-bench: built without DPDK (libdpdk not found by pkg-config at
// configure time): the peer is reported absent.
#include "common.hpp"

namespace ppb {

Allocator make_dpdk(const std::vector<CaseSpec>&) {
  Allocator al;
  al.name = "dpdk";
  al.detail = "not built: libdpdk not found at configure time (package libdpdk-dev, scripts/deps.sh)";
  return al;
}

}  // namespace ppb
