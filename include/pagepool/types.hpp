// pagepool: constants, creation parameters and statistics.
//
// This header is the vocabulary shared by the data plane (pool.hpp), the
// provider interface (provider.hpp) and users. It has no behaviour.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace pagepool {

class Pool;
class Provider;
struct Page;

// The base page: a pool's page is kPageSize << Params::order bytes.
inline constexpr std::size_t kPageSize = 4096;

// Largest order a pool accepts: 4 MiB pages. Beyond that a "page" is a
// region, and a pool of regions is a different tool.
inline constexpr unsigned kMaxOrder = 10;

// Largest return-ring capacity: 16 Mi pages (64 GiB of order-0 pages).
inline constexpr std::uint32_t kMaxPoolSize = 1u << 24;

// Creation flags (Params::flags), with the kernel's meaning.
enum : std::uint32_t {
  // The provider maps every page for the device when it enters the pool and
  // unmaps it when it leaves; page_dma_addr() returns the mapping.
  kDmaMap = 1u << 0,
  // On recycle, sync for the device only the window the device may have
  // written: [offset, offset + min(dma_sync_size, max_len)). Needs kDmaMap.
  kDmaSyncDev = 1u << 1,
};
inline constexpr std::uint32_t kAllFlags = kDmaMap | kDmaSyncDev;

struct Params {
  unsigned order = 0;              // a page is kPageSize << order bytes; 0..kMaxOrder
  std::uint32_t pool_size = 1024;  // capacity of the return ring; 1..kMaxPoolSize
  std::uint32_t max_inflight = 0;  // hard cap on pages out of the pool; 0 = no cap
  int nid = -1;                    // NUMA node, -1 = any
  std::uint32_t flags = 0;         // kDmaMap | kDmaSyncDev
  std::uint32_t offset = 0;        // start of the device-writable window in a page
  std::uint32_t max_len = 0;       // its length (required with kDmaSyncDev)
  std::string name;                // shown in error messages and stats dumps
  // Where pages come from and how they are made device-visible. nullptr:
  // a private anonymous-memory provider of the pool's order. A provider's
  // order must equal `order`.
  std::shared_ptr<Provider> provider;
};

// Counters, named as the kernel's page_pool stats. Every successful
// allocation increments exactly one of fast / refill / slow /
// slow_high_order; `empty` counts refills that found the return ring empty.
struct AllocStats {
  std::uint64_t fast;             // served from the alloc cache. Derived, not counted
                                  // (see Pool::moved_): exact when the pool is quiescent;
                                  // read while the owner runs it may be off by one cache
                                  // move (up to 128) either way
  std::uint64_t slow;             // served by a bulk refill from the provider (order 0)
  std::uint64_t slow_high_order;  // same, order > 0
  std::uint64_t empty;            // a refill found the return ring empty
  std::uint64_t refill;           // served by a refill from the return ring
  std::uint64_t waive;            // pages not recycled because their NUMA node differs
  // Not in the kernel:
  std::uint64_t limited;          // allocations refused by max_inflight
  std::uint64_t fail;             // allocations the provider could not serve
  std::uint64_t steal;            // pages the owner claimed from returners' batches
};

struct RecycleStats {
  std::uint64_t cached;           // direct recycles into the alloc cache
  std::uint64_t cache_full;       // direct recycles that found the cache full
  std::uint64_t ring;             // pages handed to the return ring (or stolen from a batch); a
                                  // page waiting in a returner's batch counts once handed over
  std::uint64_t ring_full;        // pages released because the ring was full
  std::uint64_t released_refcnt;  // pages released at their last put after the pool was destroyed
};

struct Stats {
  AllocStats alloc;
  RecycleStats recycle;
  std::uint64_t hold;     // pages taken from the provider, ever
  std::uint64_t release;  // pages given back to the provider, ever
};

// Levels at one instant; exact when the pool is quiescent. The accounting
// invariant (docs/design.md):
//   cache + ring + pending + carving_idle + inflight + release == hold
struct Levels {
  std::uint64_t cache;         // pages in the owner's alloc cache
  std::uint64_t ring;          // pages in the return ring (including the owner's taken chain)
  std::uint64_t pending;       // pages in returning threads' batches, not yet handed over
  std::uint64_t carving_idle;  // 1 if the page being carved into fragments has none out
  std::uint64_t inflight;      // pages held outside the pool
  std::uint64_t held;          // hold - release: pages of the pool not in the provider
};

}  // namespace pagepool
