// pagepool: io_uring registered-buffer provider.
//
// Pool pages become fixed buffers of an io_uring instance, so the pool's
// users can submit IORING_OP_READ_FIXED / WRITE_FIXED (and other *_FIXED
// operations) on them without the kernel pinning and unpinning the memory
// per request. The device handle of a page (page_dma_addr, the `*dma` of
// map) is its index in the ring's fixed-buffer table:
//
//   io_uring_prep_write_fixed(sqe, fd, page_address(p), len, off,
//                             UringProvider::buf_index(p));
//
// Table: the constructor registers a sparse table of `table_slots` empty
// slots (io_uring_register_buffers_sparse, once). map() registers the page
// into a free slot (io_uring_register_buffers_update_tag of one iovec),
// unmap() empties that slot again (an update with an empty iovec). The pool
// calls map once when a page enters it and unmap once when it leaves, so a
// page stays registered for as long as the pool holds it — recycling never
// touches the table. The provider's memory: private anonymous chunks of at
// least 4 MiB, 2 MiB-aligned, without AnonProvider's MADV_HUGEPAGE advice.
//
// Requirements on the caller:
//  - Create the pools with Params::flags |= kDmaMap. Without it the pool
//    never calls map/unmap: pages are not registered and page_dma_addr is
//    not a buffer index.
//  - The ring is the caller's, not the provider's. It must outlive the
//    provider, i.e. every pool using it and every page such a pool handed
//    out (a destroyed pool releases its pages out at their last put, which
//    unregisters them through the ring). It must not have a fixed-buffer
//    table of its own: the provider owns the ring's table (the constructor
//    fails with EBUSY otherwise) and unregisters it in its destructor.
//  - map/unmap run on whichever thread makes a page enter or leave a pool
//    (the owner at refill; any thread whose put releases a page). Do not
//    create the ring with IORING_SETUP_SINGLE_ISSUER (or DEFER_TASKRUN,
//    which implies it) unless every allocation and every last put happens
//    on the submitter thread: the kernel refuses io_uring_register from
//    another task with EEXIST, which fails the allocation (map) or leaks
//    the slot (unmap, see below).
//  - Pinned memory: each registered page is pinned and, without
//    CAP_IPC_LOCK, counted against RLIMIT_MEMLOCK. Where transparent huge
//    pages back a chunk the kernel accounts the whole 2 MiB folio of a
//    registered page (once per folio).
//
// Failure: map returns the error and the pool gives the page back (an
// allocation that gets no page at all counts alloc.fail and returns
// nullptr). ENOSPC: every slot is in use — the pool holds table_slots pages
// (recycled pages keep their slot; release_page or pool destruction frees
// it). Any other code is io_uring_register's (ENOMEM / EPERM: pinning limit;
// EEXIST: single-issuer ring, wrong thread; EFAULT ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <vector>

#include "pagepool/provider.hpp"

struct io_uring;

namespace pagepool {

class UringProvider final : public ChunkProvider {
 public:
  // Any thread (a syscall). Pages of kPageSize << order bytes whose memory
  // comes from node nid (-1: any), registered into a sparse table of
  // table_slots buffers of `ring` (not owned; see the requirements above).
  // table_slots is at most the kernel's limit (16384 on Linux 6.x), so a
  // slot index always fits an SQE's 16-bit buf_index.
  // Throws std::invalid_argument for an order above kMaxOrder, a null ring
  // or table_slots outside [1, 65536], std::system_error with
  // io_uring_register's code if the table cannot be registered (EBUSY: the
  // ring already has one; EINVAL: too many slots, or a kernel without
  // sparse tables, before 5.19).
  UringProvider(unsigned order, io_uring* ring, unsigned table_slots, int nid = -1);
  // Unregisters the whole table, then unmaps the chunks. Runs on the thread
  // that drops the last shared_ptr: the caller's own, or a pool's (a
  // destroyed pool lets go of its provider at the last put of its last
  // page, on whichever thread makes it). The ring must still be open then.
  ~UringProvider() override;
  const char* name() const noexcept override { return "uring"; }

  // Any thread (the pool calls it when a page enters; the page is the
  // caller's, ref 0, not yet in a pool). Registers the page into a free slot
  // and stores the slot index in *dma. ENOSPC if the table is full,
  // otherwise io_uring_register's error, leaving the table unchanged.
  std::error_code map(Page* p, std::uint64_t* dma) noexcept override;
  // Any thread (the pool calls it when a page leaves; the page is the
  // caller's and no I/O may still use its slot). Empties the page's slot and
  // makes it free for the next map. If the kernel refuses (only EEXIST, a
  // single-issuer ring on the wrong thread, is expected), the slot stays
  // registered and in use rather than be handed out twice: registered()
  // then stays above 0 and unregister_failures() counts it.
  void unmap(Page* p) noexcept override;

  // Any thread, a page the caller holds from a kDmaMap pool on this
  // provider: its fixed-buffer index, for io_uring_prep_{read,write}_fixed.
  // The same as page_dma_addr(p), narrowed to the SQE's field.
  static std::uint16_t buf_index(const Page* p) noexcept {
    return static_cast<std::uint16_t>(page_dma_addr(p));
  }

  // Any thread; snapshots. Slots in use (pages registered now, plus slots
  // whose unregistration failed), the table's size, and the number of
  // unmaps the kernel refused.
  std::uint32_t registered() const noexcept;
  std::uint32_t table_slots() const noexcept { return slots_; }
  std::uint64_t unregister_failures() const noexcept;
  io_uring* ring() const noexcept { return ring_; }

 protected:
  void* reserve_chunk(std::size_t bytes, int* nid) noexcept override;
  void unreserve_chunk(void* base, std::size_t bytes) noexcept override;

 private:
  io_uring* const ring_;
  const std::uint32_t slots_;
  // The free-slot set and who holds each slot, under one mutex. A lock is
  // acceptable here: every map and unmap is an io_uring_register system
  // call (~1 µs each; 3-5k cycles the pair, measured on Linux 6.18) that
  // the kernel serialises on the ring's own uring_lock anyway, so an
  // uncontended mutex around a push or pop costs nothing measurable and a
  // lock-free set would buy no parallelism. The system call itself runs
  // outside the mutex, on a slot already reserved.
  mutable std::mutex mu_;
  std::vector<std::uint32_t> free_;  // LIFO of free slot indices
  std::vector<const Page*> holder_;  // slot -> registered page (nullptr: free or in flux)
  std::uint64_t unregister_failures_ = 0;
};

}  // namespace pagepool
