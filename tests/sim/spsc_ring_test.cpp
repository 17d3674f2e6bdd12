// The sim device's SPSC descriptor ring (src/devices/spsc_ring.hpp): one
// producer and one consumer thread move a counted sequence through a small
// ring, mixing the copying calls (push/pop) with the in-place ones
// (reserve/prod_slot/submit, peek/cons_slot/release). Every value must
// arrive once, in order; under TSan this also checks the ordering of the
// slot writes against the index stores.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <thread>

#include "devices/spsc_ring.hpp"

namespace {

using pagepool::fwd::detail::SpscRing;

// Two words, so a torn or early read of a slot shows as a mismatch.
struct Item {
  std::uint64_t seq;
  std::uint64_t check;
};
constexpr std::uint64_t check_of(std::uint64_t s) { return ~s * 0x9e3779b97f4a7c15ull; }

TEST(SpscRing, RejectsSizesThatAreNotPowersOfTwo) {
  EXPECT_THROW(SpscRing<int>(0), std::invalid_argument);
  EXPECT_THROW(SpscRing<int>(1), std::invalid_argument);
  EXPECT_THROW(SpscRing<int>(48), std::invalid_argument);
  EXPECT_EQ(SpscRing<int>(64).capacity(), 64u);
}

TEST(SpscRing, InPlaceAndCopyingCallsShareOneOrder) {
  SpscRing<int> r(8);
  const int a[3] = {1, 2, 3};
  EXPECT_EQ(r.push(a, 3), 3u);
  ASSERT_EQ(r.reserve(10), 5u);  // 8 - 3 free: reserve gives what fits
  for (std::uint32_t i = 0; i < 5; ++i) r.prod_slot(i) = 4 + int(i);
  EXPECT_EQ(r.peek(8), 3u);  // nothing reserved is visible before submit
  r.submit(5);
  EXPECT_EQ(r.reserve(1), 0u);  // full
  EXPECT_EQ(r.size_approx(), 8u);
  ASSERT_EQ(r.peek(2), 2u);
  EXPECT_EQ(r.cons_slot(0), 1);
  EXPECT_EQ(r.cons_slot(1), 2);
  r.release(2);
  int out[8];
  ASSERT_EQ(r.pop(out, 8), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[i], 3 + i);
  EXPECT_EQ(r.peek(1), 0u);
  EXPECT_EQ(r.free_slots(), 8u);
}

TEST(SpscRing, StressTwoThreadsEveryValueOnceInOrder) {
  constexpr std::uint64_t kItems = 2'000'000;
  SpscRing<Item> r(64);
  std::thread producer([&] {
    std::uint64_t next = 0;
    Item buf[24];
    while (next < kItems) {
      // Alternate the copying and the in-place producer calls, with batch
      // sizes that do not divide the ring, so both wrap at every offset.
      const auto want = std::uint32_t(std::min<std::uint64_t>(1 + next % 23, kItems - next));
      std::uint32_t k;
      if ((next / 7) % 2) {
        for (std::uint32_t i = 0; i < want; ++i) buf[i] = {next + i, check_of(next + i)};
        k = r.push(buf, want);
      } else {
        k = r.reserve(want);
        for (std::uint32_t i = 0; i < k; ++i) r.prod_slot(i) = {next + i, check_of(next + i)};
        r.submit(k);
      }
      next += k;
      if (!k) std::this_thread::yield();
    }
  });
  std::uint64_t expect = 0, bad = 0;
  Item out[19];
  while (expect < kItems) {
    std::uint32_t k;
    if ((expect / 5) % 2) {
      k = r.pop(out, 1 + std::uint32_t(expect % 19));
      for (std::uint32_t i = 0; i < k; ++i) bad += out[i].seq != expect + i || out[i].check != check_of(expect + i);
    } else {
      k = r.peek(1 + std::uint32_t(expect % 17));
      for (std::uint32_t i = 0; i < k; ++i) {
        const Item& it = r.cons_slot(i);
        bad += it.seq != expect + i || it.check != check_of(expect + i);
      }
      r.release(k);
    }
    expect += k;
    if (!k) std::this_thread::yield();
  }
  producer.join();
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(expect, kItems);
  EXPECT_EQ(r.size_approx(), 0u);
}

}  // namespace
