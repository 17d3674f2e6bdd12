// pagepool-bench: "pagepool-nostats", the library built without its
// counters (PAGEPOOL_STATS=0), measured in the same run as the default
// build. DPDK's mempool as Debian ships it has its statistics compiled out
// (RTE_LIBRTE_MEMPOOL_STATS is not set), so this is the like-for-like row.
//
// Two builds of the library cannot share a process under one name: this
// file and a second copy of the library's sources are compiled with
// -Dpagepool=pagepool_ns0 (tools/pagepool-bench/CMakeLists.txt), so every
// symbol of this copy lives in namespace pagepool_ns0, with its own
// descriptor arena, radix and thread batches. Nothing of it meets the
// default build's pools. Quoted #include paths are not macro-expanded.
#if PAGEPOOL_STATS
#error "nostats.cpp must be built with PAGEPOOL_STATS=0"
#endif

#include "adapters.hpp"
#include "scenarios.hpp"

namespace ppb {

Allocator make_pagepool_nostats() {
  return make_allocator<PagePool>(
      "pagepool-nostats",
      "the same library built with PAGEPOOL_STATS=OFF (counters compiled out, as DPDK's "
      "mempool stats are in Debian's build); same calls as pagepool",
      [](const Setup& s) { return std::make_unique<PagePool>(s); });
}

}  // namespace ppb
