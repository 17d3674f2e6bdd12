// The checks every suite runs on a pool and on the counting provider's
// books, one copy each (unit, provider and stress suites):
//
//  - expect_consistent / EXPECT_CONSISTENT: the pool's accounting invariant
//    on a quiescent pool, on its owner thread:
//      cache + ring + pending + carving_idle + inflight == held == hold - release
//    plus Pool::check()'s walk and the bounds each level has.
//  - expect_all_returned / EXPECT_ALL_RETURNED: after teardown, every page
//    the counting provider handed out came back, unmapped, exactly once.
//  - expect_mapping_balanced: while a pool lives, pages mapped and pages out
//    of the provider match the pages the pool holds.
//
// Each assertion's message names the invariant it checks.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <string>

#include "common/counting_provider.hpp"
#include "pagepool/pagepool.hpp"

namespace pptest::common {

inline std::string levels_text(const pagepool::Levels& l) {
  return "cache " + std::to_string(l.cache) + ", ring " + std::to_string(l.ring) + ", pending " +
         std::to_string(l.pending) + ", carving_idle " + std::to_string(l.carving_idle) +
         ", inflight " + std::to_string(l.inflight) + ", held " + std::to_string(l.held);
}

// Quiescent pool, owner thread: Pool::check() walks every structure without
// finding anything broken, the levels add up to the pages held, and each
// level is within its bound. `inflight`: pages the test holds, if it knows.
// Returns the levels (levels() if check() threw; the other checks still run
// on them).
inline pagepool::Levels expect_consistent(const pagepool::Pool& pool,
                                          std::optional<std::uint64_t> inflight = std::nullopt) {
  pagepool::Levels l{};
  try {
    l = pool.check();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "Pool::check() threw: " << e.what();
    l = pool.levels();
  }
  const std::string at = " (" + levels_text(l) + ")";
  EXPECT_EQ(l.cache + l.ring + l.pending + l.carving_idle + l.inflight, l.held)
      << "cache + ring + pending + carving_idle + inflight != held" << at;
  EXPECT_LE(l.cache + l.ring + l.pending + l.carving_idle, l.held)
      << "more pages resting in the pool than it holds" << at;
  const pagepool::Stats s = pool.stats();
  EXPECT_EQ(s.hold - s.release, l.held)
      << "hold - release != held: hold " << s.hold << ", release " << s.release << at;
  EXPECT_LE(l.cache, pagepool::Pool::kCacheSize) << "alloc cache above kCacheSize" << at;
  EXPECT_LE(l.ring, pool.params().pool_size) << "return ring above pool_size" << at;
  EXPECT_LE(l.carving_idle, 1u) << "more than one idle carving page" << at;
  EXPECT_EQ(pool.inflight(), l.inflight) << "inflight() disagrees with check()" << at;
  if (inflight) {
    EXPECT_EQ(l.inflight, *inflight) << "pages out of the pool != pages the test holds" << at;
  }
  return l;
}

// EXPECT_CONSISTENT(pool) or EXPECT_CONSISTENT(pool, pages_the_test_holds);
// pool: a pointer (PoolPtr, Pool*).
#define EXPECT_CONSISTENT(pool, ...)                                           \
  do {                                                                         \
    SCOPED_TRACE("pool invariants");                                           \
    ::pptest::common::expect_consistent(*(pool) __VA_OPT__(, ) __VA_ARGS__);   \
  } while (0)

// The counting provider's contract checks; every test expects them at 0.
inline void expect_no_contract_violation(ProviderLog& log) {
  EXPECT_EQ(log.bad_unmaps.load(), 0u) << "unmap of a page not mapped";
  EXPECT_EQ(log.double_maps.load(), 0u) << "map of a page already mapped";
  EXPECT_EQ(log.bad_releases.load(), 0u)
      << "page released while referenced, in a pool or mapped";
  EXPECT_EQ(log.double_releases.load(), 0u) << "page released while not out of the provider";
  EXPECT_EQ(log.map_of_resting.load(), 0u) << "map of a page not out of the provider";
  EXPECT_EQ(log.double_allocs.load(), 0u) << "page handed out while already out";
  EXPECT_EQ(log.sync_unmapped.load(), 0u) << "sync_for_device of a page not mapped";
  EXPECT_EQ(log.duplicate_dma.load(), 0u) << "two mapped pages at one device address";
  EXPECT_EQ(log.bad_dma.load(), 0u) << "device address at or above dma_limit";
}

// Every page the provider handed out came back, each exactly once, unmapped,
// and nothing broke the contract on the way. For after teardown.
inline void expect_all_returned(ProviderLog& log) {
  EXPECT_EQ(log.release_pages.load(), log.alloc_pages.load()) << "pages handed out vs released";
  EXPECT_EQ(log.out_now(), 0u) << "pages still out of the provider";
  EXPECT_EQ(log.unmap_calls.load(), log.map_calls.load() - log.map_refused.load())
      << "every successful map unmapped once";
  EXPECT_EQ(log.mapped_now(), 0u) << "pages still mapped";
  expect_no_contract_violation(log);
}

// log: a pointer (std::shared_ptr<ProviderLog>).
#define EXPECT_ALL_RETURNED(log)                    \
  do {                                              \
    SCOPED_TRACE("provider balance");               \
    ::pptest::common::expect_all_returned(*(log));  \
  } while (0)

// While the pool lives, with the provider to itself: pages out of the
// provider == pages the pool holds; with kDmaMap, also pages mapped now ==
// pages held and every page the pool gave back was unmapped first (refused
// pages never count in hold or release). No contract violation so far.
inline void expect_mapping_balanced(const pagepool::Pool& pool, ProviderLog& log) {
  const pagepool::Levels l = pool.levels();
  if (pool.params().flags & pagepool::kDmaMap) {
    EXPECT_EQ(log.mapped_now(), l.held) << "pages mapped != pages the pool holds";
    EXPECT_EQ(log.unmap_calls.load(), pool.stats().release)
        << "unmaps != pages the pool gave back";
  }
  EXPECT_EQ(log.out_now(), l.held) << "pages out of the provider != pages the pool holds";
  expect_no_contract_violation(log);
}

}  // namespace pptest::common
