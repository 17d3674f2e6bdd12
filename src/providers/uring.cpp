// UringProvider: anonymous chunks whose pages are registered, one slot each,
// into an io_uring's sparse fixed-buffer table (see
// include/pagepool/providers/uring.hpp for the contract).
#include "pagepool/providers/uring.hpp"

#include <liburing.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "mem/arena.hpp"
#include "providers/map_util.hpp"

namespace pagepool {

namespace {
// As AnonProvider: one mmap serves 1024 order-0 pages, so chunk growth is
// off the per-refill path (which here is dominated by the registrations).
constexpr std::size_t kMinChunk = 4u << 20;
// An SQE names a fixed buffer by a 16-bit index.
constexpr unsigned kMaxSlots = 1u << 16;

// io_uring_register_buffers_update_tag for one slot: 0 or a positive errno.
// Tags stay 0 (no CQE when the kernel drops the old buffer), which is also
// what the kernel requires for an empty slot.
int update_slot(io_uring* ring, std::uint32_t slot, void* base, std::size_t len) noexcept {
  iovec iov{base, len};
  const int r = io_uring_register_buffers_update_tag(ring, slot, &iov, nullptr, 1);
  if (r == 1) return 0;
  return r < 0 ? -r : EIO;  // 0 slots updated without an error: not expected
}
}  // namespace

UringProvider::UringProvider(unsigned order, io_uring* ring, unsigned table_slots, int nid)
    : ChunkProvider(checked_order("UringProvider", order), kMinChunk),
      ring_(ring),
      slots_(table_slots) {
  if (!ring) throw std::invalid_argument("UringProvider: ring is null");
  if (table_slots == 0 || table_slots > kMaxSlots)
    throw std::invalid_argument("UringProvider: table_slots " + std::to_string(table_slots) +
                                " out of range [1, " + std::to_string(kMaxSlots) + "]");
  free_.reserve(table_slots);
  for (std::uint32_t s = table_slots; s-- > 0;) free_.push_back(s);  // slot 0 is handed out first
  holder_.assign(table_slots, nullptr);
  const int r = io_uring_register_buffers_sparse(ring, table_slots);
  if (r < 0)
    throw std::system_error(-r, std::generic_category(),
                            "UringProvider: io_uring_register_buffers_sparse(" +
                                std::to_string(table_slots) + ")" +
                                (r == -EBUSY ? " (the ring already has a buffer table)" : ""));
  set_nid(nid);
}

UringProvider::~UringProvider() {
  // Unpin first (every slot at once; normally all are empty by now: pools
  // unmap each page as it leaves), then give the memory back.
  io_uring_unregister_buffers(ring_);
  release_all_chunks();
}

std::error_code UringProvider::map(Page* p, std::uint64_t* dma) noexcept {
  std::uint32_t slot;
  {
    std::lock_guard lock(mu_);
    if (free_.empty()) return std::make_error_code(std::errc::no_space_on_device);
    slot = free_.back();
    free_.pop_back();
    holder_[slot] = p;
  }
  // Outside the lock: the slot is ours; the kernel orders concurrent
  // updates of different slots on the ring's uring_lock.
  const int err = update_slot(ring_, slot, page_address(p), kPageSize << order());
  if (err) {
    std::lock_guard lock(mu_);
    holder_[slot] = nullptr;
    free_.push_back(slot);
    return {err, std::generic_category()};
  }
  *dma = slot;
  return {};
}

void UringProvider::unmap(Page* p) noexcept {
  const std::uint64_t slot = page_dma_addr(p);
  {
    std::lock_guard lock(mu_);
    // The pool pairs map and unmap, so this only fires on a page that was
    // never mapped here (or whose dma was overwritten): emptying a slot
    // another page holds would pull its buffer from under that page's I/O.
    if (slot >= slots_ || holder_[slot] != p) {
      std::fprintf(stderr,
                   "pagepool: uring unmap: page %p does not hold slot %llu (never mapped by "
                   "this provider)\n",
                   static_cast<const void*>(p), static_cast<unsigned long long>(slot));
      std::abort();
    }
    holder_[slot] = nullptr;  // in flux: neither free nor any page's
  }
  const int err = update_slot(ring_, static_cast<std::uint32_t>(slot), nullptr, 0);
  std::lock_guard lock(mu_);
  if (err) {
    // Still registered to the old memory: never hand it out again.
    ++unregister_failures_;
    return;
  }
  free_.push_back(static_cast<std::uint32_t>(slot));
}

std::uint32_t UringProvider::registered() const noexcept {
  std::lock_guard lock(mu_);
  return slots_ - static_cast<std::uint32_t>(free_.size());
}

std::uint64_t UringProvider::unregister_failures() const noexcept {
  std::lock_guard lock(mu_);
  return unregister_failures_;
}

// Under the chunk lock (ChunkProvider::grow).
void* UringProvider::reserve_chunk(std::size_t bytes, int* nid) noexcept {
  void* mem = detail::map_aligned(bytes, detail::kGranule, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  if (!mem) return nullptr;
  if (*nid >= 0 && !detail::bind_to_node(mem, bytes, *nid)) *nid = -1;
  return mem;
}

void UringProvider::unreserve_chunk(void* base, std::size_t bytes) noexcept { munmap(base, bytes); }

}  // namespace pagepool
