// Helpers shared by the unit tests: the suites' common helpers (exact
// counter deltas, the pool's accounting invariant, page data checks,
// running code on another thread) in namespace pptest, and a clean batch
// slot table for the main thread at every test's start.
#pragma once

#include <gtest/gtest.h>

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

#include "common/invariants.hpp"
#include "common/pool_test_util.hpp"
#include "common/threads.hpp"
#include "pagepool/pagepool.hpp"

namespace pptest {

using namespace ::pptest::common;  // expect_consistent, StatsWatch, EXPECT_MOVED, page helpers

using pagepool::Page;
using pagepool::Pool;

using common::on_other_thread;
using common::Worker;

// Default params but for the return ring's capacity.
inline pagepool::Params sized(std::uint32_t pool_size) {
  pagepool::Params p;
  p.pool_size = pool_size;
  return p;
}

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
