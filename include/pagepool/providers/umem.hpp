// pagepool: AF_XDP UMEM provider — pool pages that AF_XDP sockets can fill.
//
// One region is reserved at construction and registered with the kernel as
// an AF_XDP UMEM (libxdp xsk_umem__create) for its whole size; the pool's
// pages are carved from it, 2 MiB at a time, until it is used up. With
// kDmaMap a page's device address (page_dma_addr) is its offset in the
// region: exactly the address AF_XDP descriptors carry, so a pool page can
// go straight into the UMEM fill ring or a TX descriptor, and page_at()
// turns an address coming back in an RX or completion descriptor into the
// page again.
//
// Which orders work. The kernel cuts a UMEM into frames ("chunks") of
// frame_size() bytes; it accepts a frame size between 2048 and the system
// page size (PAGE_SIZE, 4096 on x86-64; larger frames are refused with
// EINVAL) and, in the default aligned mode, only a power of two. Here a
// frame is a page, so:
//  - aligned mode (the default): order 0 only. frame_size() == 4096 (the
//    usual AF_XDP frame), every pool page is exactly one frame, and its
//    address is frame-aligned: the kernel masks an RX buffer's address down
//    to its frame, which is the page.
//  - unaligned chunk mode (Options::unaligned, XDP_UMEM_UNALIGNED_CHUNK_FLAG):
//    any order. frame_size() is then min(page bytes, PAGE_SIZE): the most
//    the kernel writes into one buffer. A fill/TX address may be any byte
//    of the region (e.g. several buffers inside one order-N page), and an RX
//    descriptor carries the buffer's address with the data offset in bits
//    48..63 (page_at() accepts that form). Zero-copy drivers additionally
//    need a buffer not to cross a non-contiguous 4 KiB page; copy mode (the
//    only mode veth supports) copies and does not care.
//
// Memory. The whole region is committed and pinned by the kernel at
// construction (pin_user_pages, FOLL_LONGTERM), so its size is charged to
// RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK, and it stays resident
// for the provider's life. A fork() copies the pinned pages into the child
// eagerly (they cannot be shared copy-on-write).
//
// Lifetime. The provider is shared by its pools (Params::provider) and goes
// when the last pool page has returned. Its destructor deletes the UMEM
// (xsk_umem__delete) and unmaps the region. Every xsk socket created on
// umem() must be deleted (xsk_socket__delete) before that: a socket keeps a
// pointer to the libxdp UMEM object and to the fill()/comp() ring structs
// inside the provider. If a socket is still alive at destruction anyway,
// xsk_umem__delete refuses (EBUSY) and the provider leaks the UMEM and the
// region, so the kernel's writes into frames still land in live memory;
// deleting that socket afterwards is undefined (its ring structs are gone).
//
// NUMA. The region is placed on `nid` at construction and never moves:
// Pool::update_nid cannot move it. Do not call update_nid with a node other
// than the region's on a pool of this provider. Refills would find that
// node's list empty, carve a fresh slice of the region each time while any
// is left, then take the region's pages from its own node's list
// (ChunkProvider::alloc_bulk prefers another node's pages to none), so pages
// keep coming from the region's node and the pool waives each one when it
// comes back: nothing recycles. A region not placed on a node
// (region_nid() == -1) has pages of unknown node, which every refill takes
// and no pool waives.
#pragma once

#include <xdp/xsk.h>

#include <cstddef>
#include <cstdint>

#include "pagepool/page.hpp"
#include "pagepool/provider.hpp"

namespace pagepool {

class UmemProvider final : public ChunkProvider {
 public:
  struct Options {
    // Entries of the UMEM fill and completion rings: powers of two.
    std::uint32_t fill_size = XSK_RING_PROD__DEFAULT_NUM_DESCS;
    std::uint32_t comp_size = XSK_RING_CONS__DEFAULT_NUM_DESCS;
    // Bytes the kernel leaves free at the start of every RX buffer, before
    // its own XDP_PACKET_HEADROOM (256). Must leave room for a packet:
    // less than frame_size - 256; current kernels also keep space for the
    // skb_shared_info tail and a minimum frame and refuse more (EINVAL).
    std::uint32_t frame_headroom = XSK_UMEM__DEFAULT_FRAME_HEADROOM;
    // XDP_UMEM_UNALIGNED_CHUNK_FLAG: buffers at any address (needed for
    // order > 0, see the header comment).
    bool unaligned = false;
  };

  // Any thread. Reserves region_bytes (a non-zero multiple of 2 MiB, and of
  // the page size for order 10) 2 MiB-aligned, places it on node nid (-1:
  // anywhere; libnuma) and registers all of it as one UMEM with fill and
  // completion rings. Throws std::invalid_argument for an order AF_XDP
  // cannot use (above kMaxOrder; aligned mode needs order 0), a bad region
  // size, ring size or headroom; std::system_error when the kernel
  // refuses, with the cause and the fix in the message: no CAP_NET_RAW
  // (EPERM: run as root or grant CAP_NET_RAW), RLIMIT_MEMLOCK too low for
  // the region (ENOBUFS: raise it, e.g. `ulimit -l`, LimitMEMLOCK=, or run
  // with CAP_IPC_LOCK; retried for ~30 ms first, as the kernel unaccounts a
  // deleted UMEM asynchronously), a kernel without AF_XDP (EAFNOSUPPORT:
  // CONFIG_XDP_SOCKETS), or a configuration it rejects (EINVAL).
  UmemProvider(unsigned order, std::size_t region_bytes, int nid = -1);
  UmemProvider(unsigned order, std::size_t region_bytes, int nid, const Options& options);
  // Whichever thread drops the last reference (usually the last page's
  // put). Deletes the UMEM and unmaps the region; see Lifetime above.
  ~UmemProvider() override;
  const char* name() const noexcept override { return "umem"; }

  // Pool slow path, any thread (the pool calls it). Device address = the
  // page's offset in the region, the UMEM address AF_XDP rings carry.
  // Never fails: the UMEM registration already covers every page.
  std::error_code map(Page* p, std::uint64_t* dma) noexcept override;
  // Nothing to undo: the registration lives as long as the provider.
  void unmap(Page*) noexcept override {}

  // ---- accessors, any thread; valid for the provider's life ----------------

  // The libxdp UMEM, for xsk_socket__create / xsk_socket__create_shared.
  // Owned by the provider: do not xsk_umem__delete it.
  xsk_umem* umem() const noexcept { return umem_; }
  // The UMEM's own fill and completion rings (fill_size / comp_size
  // entries). Single-producer / single-consumer: one thread at a time (the
  // data-path thread), with its own synchronisation otherwise. The first
  // socket bound with xsk_socket__create (or create_shared given these
  // rings) adopts them; libxdp unmaps them when that socket is deleted, so
  // do not touch them after deleting it.
  xsk_ring_prod* fill() noexcept { return &fill_; }
  xsk_ring_cons* comp() noexcept { return &comp_; }
  // First byte of the region: UMEM address a is at base() + a.
  std::byte* base() const noexcept { return base_; }
  // Bytes of the region (all registered; pages are carved up to this).
  std::size_t size() const noexcept { return size_; }
  // The UMEM's frame (chunk) size; the page size in aligned mode.
  std::uint32_t frame_size() const noexcept { return frame_size_; }
  std::uint32_t frame_headroom() const noexcept { return headroom_; }
  bool unaligned() const noexcept { return unaligned_; }
  // NUMA node the region was placed on, -1 if unknown or not requested.
  int region_nid() const noexcept { return region_nid_; }

  // Any thread, O(1) (virt_to_page). The pool page holding UMEM address
  // addr: any byte inside the page, in aligned form or in the unaligned
  // form with the offset in bits 48..63 (as RX descriptors carry it).
  // nullptr if the address is outside the region or its page is not held
  // by a pool (resting in the provider, never carved). The caller must
  // hold the page (e.g. it came back in an RX or completion descriptor of
  // a buffer the caller posted), as for every page function.
  Page* page_at(std::uint64_t addr) const noexcept {
    addr = (addr & XSK_UNALIGNED_BUF_ADDR_MASK) + (addr >> XSK_UNALIGNED_BUF_OFFSET_SHIFT);
    return addr < size_ ? virt_to_page(base_ + addr) : nullptr;
  }

 protected:
  // Under the chunk lock (ChunkProvider::grow): the next 2 MiB-aligned
  // slice of the region, nullptr with ENOMEM once it is used up.
  void* reserve_chunk(std::size_t bytes, int* nid) noexcept override;
  void unreserve_chunk(void* base, std::size_t bytes) noexcept override;

 private:
  std::byte* base_ = nullptr;
  std::size_t size_;
  std::size_t next_ = 0;  // first byte not yet handed out; under the chunk lock
  int region_nid_ = -1;
  std::uint32_t frame_size_ = 0;
  std::uint32_t headroom_;
  bool unaligned_;
  xsk_umem* umem_ = nullptr;
  xsk_ring_prod fill_{};
  xsk_ring_cons comp_{};
};

}  // namespace pagepool
