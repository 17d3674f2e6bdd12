// pagepool-bench "mapping" scenario: what a buffer costs when its memory
// must be made device-visible (here: an io_uring fixed buffer), per buffer:
//   uring-pool      a kDmaMap Pool on UringProvider: alloc_page, write and
//                   check the tag, recycle_direct. The page stays registered
//                   while the pool holds it, so recycling never registers.
//   uring-register  register one iovec into a slot of a sparse table
//                   (io_uring_register_buffers_update_tag), write and check
//                   the tag, empty the slot again (update with an empty
//                   iovec). Uses a second io_uring instance with its own
//                   1-slot sparse table: the pool's provider owns the first
//                   ring's table. The buffer is one pre-faulted page, so
//                   this is the pin/unpin + table update, no page fault.
//   mmap            mmap of one anonymous page, write (fault in) and check
//                   the tag, munmap.
// The two per-buffer system-call methods run ops / 256 buffers.
#pragma once

#include <memory>
#include <string>

#include "common.hpp"

namespace ppb {

inline constexpr int kMappingMethods = 3;
inline constexpr std::uint64_t kMappingSyscallDiv = 256;
const char* mapping_name(int method);  // "uring-pool", "uring-register", "mmap"
const char* mapping_what(int method);

class MappingBench {
 public:
  // Opens both rings; if io_uring is unavailable, skipped() says why.
  MappingBench();
  ~MappingBench();
  MappingBench(const MappingBench&) = delete;
  MappingBench& operator=(const MappingBench&) = delete;
  const std::string& skipped() const { return skip_; }
  // One timed run of `method` (warm-up first, as the other scenarios).
  // n/a with the reason if skipped or if the kernel refuses to pin.
  Outcome run(int method, const RunCfg& c);

 private:
  struct Rings;
  std::unique_ptr<Rings> rings_;
  std::string skip_;
};

}  // namespace ppb
