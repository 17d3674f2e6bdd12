// ChunkProvider: pages carved from large chunks, kept on lock-free stacks
// of batches, one per NUMA node (see provider.hpp for the head and batch
// layout).
#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <string>

#include "mem/arena.hpp"
#include "pagepool/provider.hpp"

namespace pagepool {

using detail::id_page;
using detail::page_id;

namespace {
constexpr std::uint64_t kLow = 0xffffffffu;
}

unsigned Provider::checked_order(const char* who, unsigned order) {
  if (order > kMaxOrder)
    throw std::invalid_argument(std::string(who) + ": order " + std::to_string(order) +
                                " out of range [0, " + std::to_string(kMaxOrder) + "]");
  return order;
}

// order_ is declared (so initialised) before chunk_bytes_: checked first.
ChunkProvider::ChunkProvider(unsigned order, std::size_t chunk_bytes)
    : order_(checked_order("ChunkProvider", order)),
      chunk_bytes_((std::max(chunk_bytes, kPageSize << order_) + detail::kGranule - 1) /
                   detail::kGranule * detail::kGranule) {}

ChunkProvider::~ChunkProvider() = default;

Page* ChunkProvider::pop_batch(std::size_t list) noexcept {
  std::atomic<std::uint64_t>& head = free_[list].v;
  // acquire: pairs with push_batch's release CAS, so the batch's links and
  // count are visible before we follow them.
  std::uint64_t h = head.load(std::memory_order_acquire);
  for (;;) {
    const auto id = static_cast<std::uint32_t>(h & kLow);
    if (id == 0) return nullptr;
    Page* first = id_page(id);
    // May read a page another thread popped meanwhile; the tag then makes
    // the CAS fail, so a stale link is never installed.
    const std::uint64_t link = first->dma.load(std::memory_order_relaxed);
    const std::uint64_t nh = (((h >> 32) + 1) << 32) | (link & kLow);
    if (head.compare_exchange_weak(h, nh, std::memory_order_acquire, std::memory_order_acquire))
      return first;
  }
}

// Pushes a batch of n pages whose links already end in 0 at its last page.
void ChunkProvider::push_batch(std::size_t list, Page* first, std::uint32_t n) noexcept {
  std::atomic<std::uint64_t>& head = free_[list].v;
  std::uint64_t h = head.load(std::memory_order_relaxed);
  const std::uint32_t id = page_id(first);
  for (;;) {
    first->dma.store((std::uint64_t{n} << 32) | (h & kLow), std::memory_order_relaxed);
    // release: the batch's links and count happen before a pop that sees it.
    if (head.compare_exchange_weak(h, (h & ~kLow) | id, std::memory_order_release,
                                   std::memory_order_relaxed))
      return;
  }
}

std::size_t ChunkProvider::alloc_bulk(Page** out, std::size_t n) noexcept {
  const int nid = nid_.load(std::memory_order_relaxed);
  const std::size_t list = list_of(nid);
  std::size_t got = 0;
  bool grown = false;
  while (got < n) {
    Page* first = pop_batch(list);
    // Pages of unknown node suit every request (a bound request whose
    // binding failed lands there), and any page suits "any node" (a chunk
    // reports the node its memory landed on). Without this such pages sit
    // on a list nobody asks for and every refill reserves a new chunk.
    if (!first && list != 0) first = pop_batch(0);
    for (std::size_t i = 1; !first && nid < 0 && i < kNodeLists; ++i) first = pop_batch(i);
    if (!first && !grown) {
      // The wanted node's list is empty: new memory for it, once.
      grown = true;
      got += grow(out + got, n - got);
      continue;
    }
    // No memory for the wanted node (a fixed region, or the node is full):
    // better a page from another node than none; the pool waives it on
    // return if it is bound to a node.
    for (std::size_t i = 0; !first && i < kNodeLists; ++i)
      if (i != list) first = pop_batch(i);
    if (!first) return got;
    auto count = static_cast<std::uint32_t>(first->dma.load(std::memory_order_relaxed) >> 32);
    Page* p = first;
    while (count != 0 && got < n) {
      out[got++] = p;
      --count;
      p->dma.store(0, std::memory_order_relaxed);
      p = id_page(p->next.load(std::memory_order_relaxed));
    }
    if (count != 0) push_batch(list_of(page_nid(p)), p, count);  // the rest goes back whole
  }
  return got;
}

void ChunkProvider::release_bulk(Page* const* pages, std::size_t n) noexcept {
  // Runs of pages of one node become one batch each (usually one run).
  while (n != 0) {
    const std::size_t list = list_of(page_nid(pages[0]));
    std::uint32_t k = 1;
    while (k < n && k < kLow && list_of(page_nid(pages[k])) == list) ++k;
    for (std::uint32_t i = 0; i + 1 < k; ++i)
      pages[i]->next.store(page_id(pages[i + 1]), std::memory_order_relaxed);
    pages[k - 1]->next.store(0, std::memory_order_relaxed);
    push_batch(list, pages[0], k);
    pages += k;
    n -= k;
  }
}

std::size_t ChunkProvider::grow(Page** out, std::size_t n) noexcept {
  // Two callers racing here both reserve a chunk; the spare pages simply
  // wait on the free list.
  std::lock_guard lock(grow_mu_);
  int nid = nid_.load(std::memory_order_relaxed);
  void* mem = reserve_chunk(chunk_bytes_, &nid);
  if (!mem) return 0;
  if (nid > detail::kMaxNid) nid = -1;  // cannot be tagged: unknown
  const unsigned shift = static_cast<unsigned>(__builtin_ctzll(kPageSize)) + order_;
  const auto npages = static_cast<std::uint32_t>(chunk_bytes_ >> shift);
  Page* pages = detail::meta_alloc(npages);
  auto* base = static_cast<std::byte*>(mem);
  if (!pages) {
    unreserve_chunk(mem, chunk_bytes_);
    return 0;
  }
  for (std::uint32_t i = 0; i < npages; ++i) {
    pages[i].addr_nid = detail::make_addr_nid(base + (std::size_t{i} << shift), nid);
    pages[i].next.store(i + 1 < npages ? page_id(&pages[i + 1]) : 0, std::memory_order_relaxed);
  }
  try {
    chunks_.push_back({base, chunk_bytes_, pages, npages, nid});
  } catch (...) {
    detail::meta_free(pages, npages);
    unreserve_chunk(mem, chunk_bytes_);
    return 0;
  }
  if (!detail::radix_register(base, chunk_bytes_, pages, shift)) {
    chunks_.pop_back();
    detail::radix_unregister(base, chunk_bytes_);
    detail::meta_free(pages, npages);
    unreserve_chunk(mem, chunk_bytes_);
    return 0;
  }
  const std::size_t take = std::min<std::size_t>(n, npages);
  for (std::size_t i = 0; i < take; ++i) out[i] = &pages[i];
  if (take < npages)
    push_batch(list_of(nid), &pages[take], static_cast<std::uint32_t>(npages - take));
  return take;
}

std::size_t ChunkProvider::reserved_bytes() const noexcept {
  std::lock_guard lock(grow_mu_);
  return chunks_.size() * chunk_bytes_;
}

void ChunkProvider::release_all_chunks() noexcept {
  std::lock_guard lock(grow_mu_);
  for (const Chunk& c : chunks_) {
    detail::radix_unregister(c.base, c.bytes);
    detail::meta_free(c.pages, c.npages);
    unreserve_chunk(c.base, c.bytes);
  }
  chunks_.clear();
  for (Head& h : free_) h.v.store(0, std::memory_order_relaxed);
}

}  // namespace pagepool
