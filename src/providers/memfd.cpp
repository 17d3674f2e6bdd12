// MemfdProvider: one memfd file, mapped contiguously chunk by chunk.
#include "pagepool/providers/memfd.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

#include "mem/arena.hpp"
#include "providers/map_util.hpp"

namespace pagepool {

namespace {
// The file grows a chunk at a time, so the chunk must divide the capacity:
// 4 MiB where it does, else 2 MiB; never less than a page.
std::size_t unit_of(unsigned order) {
  return std::max(detail::kGranule, kPageSize << std::min(order, kMaxOrder));
}
std::size_t chunk_of(unsigned order, std::size_t capacity) {
  const std::size_t big = std::max(std::size_t{4} << 20, unit_of(order));
  return capacity % big == 0 ? big : unit_of(order);
}
}  // namespace

MemfdProvider::MemfdProvider(unsigned order, std::size_t capacity, int nid)
    : ChunkProvider(order, chunk_of(checked_order("MemfdProvider", order), capacity)),
      capacity_(capacity) {
  if (capacity == 0 || capacity % unit_of(order) != 0)
    throw std::invalid_argument("MemfdProvider: capacity " + std::to_string(capacity) +
                                " must be a non-zero multiple of " +
                                std::to_string(unit_of(order) >> 20) + " MiB");
  set_nid(nid);
  fd_ = memfd_create("pagepool", MFD_CLOEXEC);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "MemfdProvider: memfd_create");
  // The whole capacity as one inaccessible reservation; chunks replace
  // parts of it with MAP_FIXED shared mappings of the file.
  void* r = detail::map_aligned(capacity, detail::kGranule, PROT_NONE, MAP_PRIVATE | MAP_NORESERVE);
  if (!r) {
    const int err = errno;
    close(fd_);
    throw std::system_error(err, std::generic_category(), "MemfdProvider: reserving address space");
  }
  base_ = static_cast<std::byte*>(r);
}

MemfdProvider::~MemfdProvider() {
  closing_ = true;  // the file keeps its size (see unreserve_chunk)
  release_all_chunks();
  munmap(base_, capacity_);
  close(fd_);
}

std::error_code MemfdProvider::map(Page* p, std::uint64_t* dma) noexcept {
  *dma = static_cast<std::uint64_t>(static_cast<std::byte*>(page_address(p)) - base_);
  return {};
}

// Called under the chunk lock: the only writer of size_, so a relaxed load
// sees its own last store.
void* MemfdProvider::reserve_chunk(std::size_t bytes, int* nid) noexcept {
  const std::size_t size = size_.load(std::memory_order_relaxed);
  if (bytes > capacity_ - size) {
    errno = ENOMEM;
    return nullptr;
  }
  const auto off = static_cast<off_t>(size);
  if (ftruncate(fd_, off + static_cast<off_t>(bytes)) != 0) return nullptr;
  void* mem = mmap(base_ + size, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd_, off);
  if (mem == MAP_FAILED) return nullptr;
  if (*nid >= 0 && !detail::bind_to_node(mem, bytes, *nid)) *nid = -1;
  // release: the file's growth and the mapping before a size() reader's
  // acquire load that sees the new size.
  size_.store(size + bytes, std::memory_order_release);
  return mem;
}

// Under the chunk lock. The range goes back to an inaccessible reservation.
// Outside the destructor, a chunk is given back only right after it was
// reserved (ChunkProvider::grow failing on metadata or registration), so it
// is the last one: size_ and the file shrink back, and the next
// reserve_chunk hands out the same range; the capacity is not lost. No page
// of it was handed out, so no one (in this process or another) uses it.
// In the destructor the file keeps its size: another process may still map
// it and read what the pages held.
void MemfdProvider::unreserve_chunk(void* base, std::size_t bytes) noexcept {
  mmap(base, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  const std::size_t size = size_.load(std::memory_order_relaxed);
  if (closing_ || static_cast<std::byte*>(base) + bytes != base_ + size) return;
  // Relaxed: shrinking publishes nothing; a size() reader may see either.
  size_.store(size - bytes, std::memory_order_relaxed);
  // Best effort: if it fails, the file stays longer than size_ until the
  // next reserve_chunk's ftruncate sets it again.
  [[maybe_unused]] const int r = ftruncate(fd_, static_cast<off_t>(size - bytes));
}

}  // namespace pagepool
