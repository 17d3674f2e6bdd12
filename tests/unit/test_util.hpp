// Helpers shared by the unit tests: exact counter deltas, the pool's
// accounting invariant, page data checks, running code on another thread.
#pragma once

#include <gtest/gtest.h>

#include "common/threads.hpp"

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "common/pool_test_util.hpp"
#include "pagepool/pagepool.hpp"

namespace pptest {

using namespace ::pptest::common;  // StatsWatch, EXPECT_MOVED, page helpers

using pagepool::Page;
using pagepool::Pool;

// The accounting invariant, for a quiescent pool on its owner thread:
// Pool::check() finds nothing broken, the levels add up to the pages held
// (cache + ring + pending + carving_idle + inflight == held), and
// hold - release equals them too.
inline pagepool::Levels expect_consistent(const Pool& pool) {
  pagepool::Levels l{};
  try {
    l = pool.check();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "check() threw: " << e.what();
    return pool.levels();
  }
  EXPECT_EQ(l.cache + l.ring + l.pending + l.carving_idle + l.inflight, l.held)
      << "cache " << l.cache << " ring " << l.ring << " pending " << l.pending << " carving_idle "
      << l.carving_idle << " inflight " << l.inflight;
  const pagepool::Stats s = pool.stats();
  EXPECT_EQ(s.hold - s.release, l.held);
  return l;
}

#define EXPECT_CONSISTENT(pool)             \
  do {                                      \
    SCOPED_TRACE("pool invariants");        \
    ::pptest::expect_consistent(*(pool));   \
  } while (0)


using common::on_other_thread;
using common::Worker;

// Each test starts with the main thread holding no batch slots: pages a
// previous test left pending there are handed over (to that test's pool, long
// destroyed, so nothing moves) and its claims are dropped. Without this a
// test's outcome would depend on the tests run before it in the same process
// (which of its pools a ninth claim evicts from the main thread's table).
namespace detail {
class FlushAtTestStart : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo&) override { pagepool::flush_thread(); }
};
[[maybe_unused]] inline const bool kFlushAtTestStart = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new FlushAtTestStart);
  return true;
}();
}  // namespace detail

}  // namespace pptest
