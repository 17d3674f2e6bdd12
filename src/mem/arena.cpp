// Metadata arena: one PROT_NONE reservation, committed as descriptors are
// needed, so every Page lives at base + id * 32 with a 32-bit id and a
// descriptor pointer can be validated with one range check.
#include "mem/arena.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

namespace pagepool::detail {

Arena g_arena{};
std::atomic<RadixLeaf*> g_radix[kRadixFanout];

namespace {

// 2^27 descriptors (4 GiB of address space, committed on demand): enough
// for 512 GiB of order-0 pages. Ids stay below 2^31, which the return
// ring's packed head needs.
constexpr std::size_t kArenaDescs = std::size_t{1} << 27;
// Ranges are whole 4 KiB pages of descriptors so they can be zeroed with
// madvise and never share a page.
constexpr std::uint32_t kDescsPerPage = kPageSize / sizeof(Page);
// Commit granularity: 64 KiB at a time keeps mprotect calls rare.
constexpr std::size_t kCommitStep = 64 * 1024;

struct FreeRange {
  std::uint32_t first, n;
};

struct ArenaState {
  std::mutex mu;
  std::uintptr_t base = 0;       // reservation start
  std::size_t committed = 0;     // bytes made read-write
  std::uint32_t bump = kDescsPerPage;  // next never-used id; id 0 is "none"
  std::vector<FreeRange> free;   // first-fit list of freed ranges
};

ArenaState& state() {
  static ArenaState* s = new ArenaState;  // never destroyed: pages may outlive statics
  return *s;
}

bool reserve(ArenaState& s) {
  if (s.base) return true;
  void* p = mmap(nullptr, kArenaDescs * sizeof(Page), PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  s.base = reinterpret_cast<std::uintptr_t>(p);
  g_arena.base.store(s.base, std::memory_order_relaxed);
  g_arena.end.store(s.base, std::memory_order_relaxed);
  return true;
}

}  // namespace

Page* meta_alloc(std::uint32_t n) noexcept {
  ArenaState& s = state();
  const std::uint32_t want = (n + kDescsPerPage - 1) / kDescsPerPage * kDescsPerPage;
  std::lock_guard lock(s.mu);
  if (!reserve(s)) return nullptr;
  for (auto it = s.free.begin(); it != s.free.end(); ++it) {
    if (it->n < want) continue;
    const std::uint32_t first = it->first;
    it->first += want;
    it->n -= want;
    if (it->n == 0) s.free.erase(it);
    return id_page(first);  // zeroed by meta_free
  }
  if (std::size_t{s.bump} + want > kArenaDescs) {
    errno = ENOMEM;
    return nullptr;
  }
  const std::uint32_t first = s.bump;
  const std::size_t need = (std::size_t{first} + want) * sizeof(Page);
  if (need > s.committed) {
    const std::size_t to = (need + kCommitStep - 1) / kCommitStep * kCommitStep;
    if (mprotect(reinterpret_cast<void*>(s.base + s.committed), to - s.committed,
                 PROT_READ | PROT_WRITE) != 0)
      return nullptr;
    s.committed = to;
  }
  s.bump += want;
  // Publishing the new end: relaxed is enough, a descriptor pointer reaches
  // another thread only through a synchronising handoff (see page.hpp).
  g_arena.end.store(s.base + std::size_t{s.bump} * sizeof(Page), std::memory_order_relaxed);
  return id_page(first);
}

void meta_free(Page* first, std::uint32_t n) noexcept {
  ArenaState& s = state();
  const std::uint32_t want = (n + kDescsPerPage - 1) / kDescsPerPage * kDescsPerPage;
  // Zero the range: DONTNEED on private anonymous memory reads back zeros.
  madvise(first, std::size_t{want} * sizeof(Page), MADV_DONTNEED);
  std::lock_guard lock(s.mu);
  try {
    s.free.push_back({page_id(first), want});
  } catch (const std::bad_alloc&) {
    // The range leaks (stays zeroed and valid); nothing else is affected.
  }
}

bool radix_register(const std::byte* base, std::size_t bytes, Page* first,
                    unsigned shift) noexcept {
  const auto b = reinterpret_cast<std::uintptr_t>(base);
  for (std::size_t off = 0; off < bytes; off += kGranule) {
    const std::uintptr_t a = b + off;
    auto& top = g_radix[a >> (kGranuleShift + kRadixBits)];
    RadixLeaf* leaf = top.load(std::memory_order_acquire);
    if (!leaf) {
      auto* fresh = static_cast<RadixLeaf*>(std::calloc(kRadixFanout, sizeof(RadixLeaf)));
      if (!fresh) return false;
      // release: publishes the zeroed leaf; pairs with virt_to_page's and
      // other registrars' acquire loads. A loser frees its copy.
      if (top.compare_exchange_strong(leaf, fresh, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
        leaf = fresh;
      else
        std::free(fresh);
    }
    // The granule's first page: for pages below 2 MiB, the page at the
    // granule's start; for 2 MiB and 4 MiB pages, the page covering it.
    Page* p = first + (off >> shift);
    const std::uintptr_t e = reinterpret_cast<std::uintptr_t>(p) | (shift - 12);
    // release: the descriptors are initialised before the entry is seen;
    // pairs with virt_to_page's acquire load.
    leaf[(a >> kGranuleShift) & (kRadixFanout - 1)].store(e, std::memory_order_release);
  }
  return true;
}

void radix_unregister(const std::byte* base, std::size_t bytes) noexcept {
  const auto b = reinterpret_cast<std::uintptr_t>(base);
  for (std::size_t off = 0; off < bytes; off += kGranule) {
    const std::uintptr_t a = b + off;
    RadixLeaf* leaf = g_radix[a >> (kGranuleShift + kRadixBits)].load(std::memory_order_acquire);
    if (leaf) leaf[(a >> kGranuleShift) & (kRadixFanout - 1)].store(0, std::memory_order_release);
  }
}

}  // namespace pagepool::detail
