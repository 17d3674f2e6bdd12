// pagepool: memfd provider — shared memory another process can map.
//
// Pages live in one memfd file; fd() can be passed to another process
// (SCM_RIGHTS, pidfd_getfd, fork), which maps it and finds a page at its
// device address: with kDmaMap, page_dma_addr() is the page's offset in
// the file. The file grows chunk by chunk up to `capacity` bytes; the
// virtual range for all of it is reserved at construction, so the mapping
// is contiguous and offset = address - base.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "pagepool/provider.hpp"

namespace pagepool {

class MemfdProvider final : public ChunkProvider {
 public:
  // Throws std::system_error if memfd_create or the reservation fails,
  // std::invalid_argument for an order above kMaxOrder or a capacity that
  // is 0 or not a multiple of 2 MiB (of the page size for order 10). The
  // file grows 4 MiB at a time where 4 MiB divides the capacity, else 2 MiB
  // (4 MiB for order 10).
  explicit MemfdProvider(unsigned order, std::size_t capacity = std::size_t{1} << 30,
                         int nid = -1);
  ~MemfdProvider() override;
  const char* name() const noexcept override { return "memfd"; }

  // The file. Owned by the provider: dup() it to keep it beyond.
  int fd() const noexcept { return fd_; }
  // Any thread. Bytes of the file in use (its size) and the most it may
  // grow to. size() is a snapshot: a refill on another thread may grow it.
  // acquire: pairs with reserve_chunk's release store, so the file and the
  // mapping up to the size read are in place.
  std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }
  std::size_t capacity() const noexcept { return capacity_; }
  // First byte of the file's mapping in this process.
  std::byte* base() const noexcept { return base_; }

  // Device address = offset in the file.
  std::error_code map(Page* p, std::uint64_t* dma) noexcept override;

 protected:
  void* reserve_chunk(std::size_t bytes, int* nid) noexcept override;
  void unreserve_chunk(void* base, std::size_t bytes) noexcept override;

 private:
  int fd_ = -1;
  std::byte* base_ = nullptr;
  std::size_t capacity_;
  // Written under the chunk lock only (reserve_chunk, unreserve_chunk), so
  // writers load it relaxed; atomic for size() readers on other threads.
  std::atomic<std::size_t> size_{0};
  bool closing_ = false;  // set by the destructor; read under the chunk lock
};

}  // namespace pagepool
