// pagepool: the memory-provider interface.
//
// A provider supplies a pool with pages and makes them device-visible. It is
// called only on slow paths (bulk refill, release, map/unmap at a page's
// entry to and exit from a pool, sync when the pool has kDmaSyncDev), so a
// virtual interface chosen at creation costs nothing on the alloc/recycle
// fast path.
//
// Rules for every provider:
//  - alloc_bulk / release_bulk may be called from any thread concurrently
//    (pages are released by whichever thread drops them last).
//  - A page handed out by alloc_bulk has ref == 0 and pool == nullptr; a page
//    given to release_bulk is in the same state. The provider owns it then.
//  - map runs exactly once when a page enters a pool (kDmaMap), unmap
//    exactly once when it leaves; the pool guarantees the pairing.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <vector>

#include "pagepool/page.hpp"
#include "pagepool/types.hpp"

namespace pagepool {

class Provider {
 public:
  virtual ~Provider() = default;

  // Order of every page this provider hands out (kPageSize << order bytes).
  virtual unsigned order() const noexcept = 0;
  // Short name for messages ("anon", "memfd", ...).
  virtual const char* name() const noexcept = 0;

  // Up to n pages into out; returns how many (0: out of memory, errno-free).
  virtual std::size_t alloc_bulk(Page** out, std::size_t n) noexcept = 0;
  // Takes back n pages (ref 0, pool nullptr, unmapped).
  virtual void release_bulk(Page* const* pages, std::size_t n) noexcept = 0;

  // Makes the page device-visible; stores the device address or handle in
  // *dma. A non-zero error code refuses the page (the pool releases it and
  // counts a failed allocation).
  virtual std::error_code map(Page* p, std::uint64_t* dma) noexcept {
    *dma = reinterpret_cast<std::uintptr_t>(page_address(p));
    return {};
  }
  virtual void unmap(Page*) noexcept {}

  // Whether sync_for_device does anything; asked once at pool creation so a
  // pool on coherent memory never calls it.
  virtual bool needs_sync() const noexcept { return false; }
  virtual void sync_for_device(Page*, std::uint32_t /*offset*/, std::uint32_t /*len*/) noexcept {}
  virtual void sync_for_cpu(Page*, std::uint32_t /*offset*/, std::uint32_t /*len*/) noexcept {}

  // NUMA node of a page's memory, -1 if unknown.
  virtual int nid(const Page* p) const noexcept { return page_nid(p); }
  // Where new memory should come from from now on (Pool::update_nid); -1:
  // anywhere. Pages already handed out keep their node.
  virtual void set_nid(int /*nid*/) noexcept {}

  // For a provider's constructor, before anything computes kPageSize <<
  // order (undefined for large orders): returns order, or throws
  // std::invalid_argument "<who>: order N out of range [0, kMaxOrder]", the
  // range Pool::create accepts.
  static unsigned checked_order(const char* who, unsigned order);
};

// Base for providers that carve pages out of large, 2 MiB-aligned chunks:
// descriptors in the metadata arena, virt_to_page registration, and a
// lock-free free list of page batches. A subclass supplies the chunks.
//
// Free list: a Treiber stack of batches. The head packs [tag:32 | id:32] of
// a batch's first page; the batch's pages are linked through Page::next and
// the first page's `dma` holds [count:32 | next batch id:32]. One CAS pushes
// or pops a whole batch; pops bump the tag so a page recycled between a
// pop's load and its CAS cannot make the CAS succeed (ABA).
class ChunkProvider : public Provider {
 public:
  // Throws std::invalid_argument for an order above kMaxOrder (subclasses
  // check it first, with checked_order, to name themselves).
  ChunkProvider(unsigned order, std::size_t chunk_bytes);
  ~ChunkProvider() override;
  ChunkProvider(const ChunkProvider&) = delete;
  ChunkProvider& operator=(const ChunkProvider&) = delete;

  unsigned order() const noexcept final { return order_; }
  std::size_t alloc_bulk(Page** out, std::size_t n) noexcept final;
  void release_bulk(Page* const* pages, std::size_t n) noexcept final;
  void set_nid(int nid) noexcept final { nid_.store(nid, std::memory_order_relaxed); }

  // Bytes of chunks reserved so far.
  std::size_t reserved_bytes() const noexcept;

 protected:
  // A chunk of at least `bytes`, aligned to 2 MiB, or nullptr with errno.
  // *nid: in, the node wanted (-1: any); out, the node the memory is on
  // (-1: unknown).
  virtual void* reserve_chunk(std::size_t bytes, int* nid) noexcept = 0;
  virtual void unreserve_chunk(void* base, std::size_t bytes) noexcept = 0;
  // Subclasses call this from their destructor: it gives every chunk back
  // through unreserve_chunk while the subclass still exists.
  void release_all_chunks() noexcept;

 private:
  struct Chunk {
    std::byte* base;
    std::size_t bytes;
    Page* pages;
    std::uint32_t npages;
    int nid;
  };
  // One free list per node: index nid + 1, nodes beyond kNodeLists - 2
  // share the last list; index 0 is memory of unknown node.
  static constexpr int kNodeLists = 65;
  static std::size_t list_of(int nid) noexcept {
    return static_cast<std::size_t>(nid + 1 < kNodeLists ? nid + 1 : kNodeLists - 1);
  }
  Page* pop_batch(std::size_t list) noexcept;
  void push_batch(std::size_t list, Page* first, std::uint32_t n) noexcept;
  std::size_t grow(Page** out, std::size_t n) noexcept;

  const unsigned order_;
  const std::size_t chunk_bytes_;
  // Node new memory should come from (set_nid); relaxed, a hint.
  std::atomic<int> nid_{-1};
  // Free-list heads [tag:32 | first page id:32], each on its own line.
  // Pushes are release CASes, pops acquire CASes: a pop sees the links its
  // batch was pushed with.
  struct alignas(detail::kCacheLine) Head {
    std::atomic<std::uint64_t> v{0};
  };
  Head free_[kNodeLists];
  // Chunk list; mutated only while growing, a syscall path.
  alignas(detail::kCacheLine) mutable std::mutex grow_mu_;
  std::vector<Chunk> chunks_;
};

// Private anonymous memory (the default provider): chunks of at least
// 4 MiB, 2 MiB-aligned so transparent huge pages can back them.
class AnonProvider final : public ChunkProvider {
 public:
  // nid >= 0 binds the memory to that node (libnuma); thp asks for
  // transparent huge pages on the chunks (madvise MADV_HUGEPAGE). On by
  // default: the kernel's page_pool pages sit in the huge-page-mapped
  // linear map, and a pool with many pages in flight needs the same TLB
  // reach in userspace (chunks are 2 MiB aligned for it). Throws
  // std::invalid_argument for an order above kMaxOrder.
  explicit AnonProvider(unsigned order, int nid = -1, bool thp = true);
  ~AnonProvider() override;
  const char* name() const noexcept override { return "anon"; }

 protected:
  void* reserve_chunk(std::size_t bytes, int* nid) noexcept override;
  void unreserve_chunk(void* base, std::size_t bytes) noexcept override;

 private:
  bool thp_;
};

}  // namespace pagepool
