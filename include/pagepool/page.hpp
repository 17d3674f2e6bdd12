// pagepool: the page descriptor and the pool-agnostic page functions.
//
// A Page is the 32-byte descriptor of one pool page. It lives in a global
// metadata arena, never inside the page's data, so the device may own every
// byte of the data and a descriptor pointer can be validated in O(1).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "pagepool/detail/compiler.hpp"
#include "pagepool/types.hpp"

namespace pagepool {

struct alignas(32) Page {
  // Holders of the page. 0 while the page rests in a cache, ring or
  // provider; 1..n while out; kFragBias + n while the owner carves it.
  std::atomic<std::uint32_t> ref;
  // Id of the next page in the list that holds the page (return ring,
  // owner's chain, provider free list). Meaningless while the page is out.
  std::atomic<std::uint32_t> next;
  // The pool the page belongs to; nullptr while it rests in a provider.
  // Written by the owner when the page enters the pool, before the page is
  // published to anyone (the handoff orders it).
  std::atomic<Pool*> pool;
  // First byte of the page's data, with the page's NUMA node + 1 in the low
  // 12 bits (0: unknown); pages are at least 4 KiB aligned. Constant for the
  // descriptor's life. Read it through page_address() / page_nid().
  std::uintptr_t addr_nid;
  // Device address, written by Provider::map when the page enters a pool;
  // the provider free list reuses it as a batch link while the page rests.
  std::atomic<std::uint64_t> dma;
};
static_assert(sizeof(Page) == 32, "page metadata must stay at 32 bytes");

namespace detail {

// The metadata arena: one reservation holding every Page of every provider.
// [base, end) is the part ever committed; a descriptor pointer is valid iff
// it lies there and is 32-byte aligned. Both grow monotonically; relaxed
// loads suffice because a caller's Page* came to it through a
// synchronising handoff that also carries the commit.
struct Arena {
  std::atomic<std::uintptr_t> base;
  std::atomic<std::uintptr_t> end;
};
extern Arena g_arena;

// virt_to_page radix: 2 MiB granules, 2 levels of 8192 (47-bit user space).
// A leaf entry is (Page* of the granule's first page) | (page shift - 12).
inline constexpr unsigned kGranuleShift = 21;
inline constexpr unsigned kRadixBits = 13;
inline constexpr std::size_t kRadixFanout = std::size_t{1} << kRadixBits;
using RadixLeaf = std::atomic<std::uintptr_t>;
extern std::atomic<RadixLeaf*> g_radix[kRadixFanout];

PP_NORETURN void die_bad_page(const void* p, const char* what);
PP_NORETURN void die_double_put(const Page* p, const char* what);

// The arena's bounds, read once for a batch of checks: they only grow, and
// every page of the batch reached the caller before the read.
struct ArenaBounds {
  std::uintptr_t base, end;

  PP_FAST_PATH static ArenaBounds load() {
    return {g_arena.base.load(std::memory_order_relaxed), g_arena.end.load(std::memory_order_relaxed)};
  }
  // Always-on: a put of something that is not a pool page descriptor aborts
  // here instead of corrupting a list.
  PP_FAST_PATH void check(const Page* p, const char* what) const {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    if (PP_UNLIKELY(a - base >= end - base || (a & (sizeof(Page) - 1)) != 0)) die_bad_page(p, what);
  }
};

PP_FAST_PATH void check_page(const Page* p, const char* what) { ArenaBounds::load().check(p, what); }

PP_FAST_PATH std::uint32_t page_id(const Page* p) {
  return static_cast<std::uint32_t>(
      (reinterpret_cast<std::uintptr_t>(p) - g_arena.base.load(std::memory_order_relaxed)) /
      sizeof(Page));
}
PP_FAST_PATH Page* id_page(std::uint32_t id) {
  return reinterpret_cast<Page*>(g_arena.base.load(std::memory_order_relaxed) +
                                 std::uintptr_t{id} * sizeof(Page));
}

// Fragment bias (the kernel's trick): while the owner carves a page its
// reference count is kFragBias + fragments returned-to-go, so a fragment's
// put can never drop the last reference before carving ends.
inline constexpr std::uint32_t kFragBias = 1u << 30;

}  // namespace detail

namespace detail {
inline constexpr std::uintptr_t kNidMask = kPageSize - 1;
inline constexpr int kMaxNid = static_cast<int>(kNidMask) - 1;
PP_FAST_PATH std::uintptr_t make_addr_nid(const void* addr, int nid) {
  return reinterpret_cast<std::uintptr_t>(addr) | static_cast<std::uintptr_t>(nid + 1);
}
}  // namespace detail

// Any thread, a page the caller holds. Returns the first byte of its data.
inline void* page_address(const Page* p) {
  return reinterpret_cast<void*>(p->addr_nid & ~detail::kNidMask);
}

// Any thread, any page descriptor. NUMA node of the page's memory as its
// provider placed it; -1 if unknown.
inline int page_nid(const Page* p) { return static_cast<int>(p->addr_nid & detail::kNidMask) - 1; }

// Any thread, a page the caller holds. Bytes of data (kPageSize << order).
std::size_t page_size(const Page* p);

// Any thread, a page the caller holds. The device address the provider
// mapped (pools with kDmaMap); for the anonymous provider, the virtual address.
inline std::uint64_t page_dma_addr(const Page* p) {
  return p->dma.load(std::memory_order_relaxed);
}

// Any thread, a page the caller holds. The pool it returns to.
inline Pool* page_pool(const Page* p) { return p->pool.load(std::memory_order_relaxed); }

// Any thread. Any byte of a page held by a pool -> that page's descriptor;
// nullptr for any other address. O(1): two radix loads. Pairs with the
// release-store that publishes a segment's radix entries.
inline Page* virt_to_page(const void* addr) {
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  if (a >> (detail::kGranuleShift + 2 * detail::kRadixBits)) return nullptr;
  detail::RadixLeaf* leaf = detail::g_radix[a >> (detail::kGranuleShift + detail::kRadixBits)].load(
      std::memory_order_acquire);
  if (!leaf) return nullptr;
  const std::uintptr_t e =
      leaf[(a >> detail::kGranuleShift) & (detail::kRadixFanout - 1)].load(std::memory_order_acquire);
  if (!e) return nullptr;
  Page* first = reinterpret_cast<Page*>(e & ~std::uintptr_t{31});
  const unsigned shift = static_cast<unsigned>(e & 31) + 12;
  Page* p = shift >= detail::kGranuleShift
                ? first
                : first + ((a & ((std::uintptr_t{1} << detail::kGranuleShift) - 1)) >> shift);
  return p->pool.load(std::memory_order_relaxed) ? p : nullptr;
}

// Any thread, a page the caller holds (or a fragment of one). Takes one more
// reference; each reference needs its own put_page. Relaxed: the caller
// already holds a reference, so the page cannot be recycled concurrently.
inline void get_page(Page* p) {
  detail::check_page(p, "get_page");
  if (PP_UNLIKELY(p->ref.load(std::memory_order_relaxed) == 0))
    detail::die_double_put(p, "get_page of a page nobody holds");
  p->ref.fetch_add(1, std::memory_order_relaxed);
}

// put_page(Page*) lives in pool.hpp: it needs the pool's recycle path.

}  // namespace pagepool
