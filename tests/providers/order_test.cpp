// Every provider rejects a page order above kMaxOrder (the range
// Pool::create accepts) at construction, before it computes a page size
// from it (kPageSize << order is undefined for large orders), with
// std::invalid_argument naming the provider, the order and the maximum.
// None of these needs privileges: the order is checked before the
// provider asks the kernel for anything (huge pages, a UMEM, a ring).
//
// Also: MemfdProvider::size() read on one thread while allocations on
// another grow the file (a TSan test).
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pagepool/pagepool.hpp"
#include "pagepool/providers/hugetlb.hpp"
#include "pagepool/providers/memfd.hpp"
#include "pagepool/providers/umem.hpp"
#include "pagepool/providers/uring.hpp"
#include "test_support.hpp"

namespace {

using pagepool::kMaxOrder;

// Orders just above the maximum and far above it (a shift by 64 or more).
const unsigned kBadOrders[] = {kMaxOrder + 1, 31, 63, 64, 1000, ~0u};

void expect_order_rejected(const std::string& who, const std::function<void(unsigned)>& make) {
  for (unsigned order : kBadOrders) {
    SCOPED_TRACE(who + " order " + std::to_string(order));
    try {
      make(order);
      ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()), who + ": order " + std::to_string(order) +
                                           " out of range [0, " + std::to_string(kMaxOrder) + "]");
    }
  }
}

TEST(ProviderOrder, AnonRejectsOrderAboveMax) {
  expect_order_rejected("AnonProvider", [](unsigned o) { pagepool::AnonProvider p(o); });
  EXPECT_NO_THROW(pagepool::AnonProvider p(kMaxOrder));
}

TEST(ProviderOrder, MemfdRejectsOrderAboveMax) {
  expect_order_rejected("MemfdProvider", [](unsigned o) { pagepool::MemfdProvider p(o); });
  EXPECT_NO_THROW(pagepool::MemfdProvider p(kMaxOrder));
}

// Checked before the probe for huge pages, so it runs without any.
TEST(ProviderOrder, HugetlbRejectsOrderAboveMax) {
  expect_order_rejected("HugetlbProvider", [](unsigned o) { pagepool::HugetlbProvider p(o); });
}

// Checked before the ring: a null ring would be rejected too, but second.
TEST(ProviderOrder, UringRejectsOrderAboveMax) {
  expect_order_rejected("UringProvider",
                        [](unsigned o) { pagepool::UringProvider p(o, nullptr, 1); });
}

// Checked before the region is reserved or registered.
TEST(ProviderOrder, UmemRejectsOrderAboveMax) {
  expect_order_rejected("UmemProvider", [](unsigned o) {
    pagepool::UmemProvider::Options opt;
    opt.unaligned = true;  // not the aligned-mode rule: the range itself
    pagepool::UmemProvider p(o, std::size_t{2} << 20, -1, opt);
  });
}

// A ChunkProvider subclass that does not check names the base.
TEST(ProviderOrder, ChunkProviderBaseRejectsOrderAboveMax) {
  expect_order_rejected("ChunkProvider", [](unsigned o) { ppprov::FakeNodeProvider p(o); });
}

// ---- MemfdProvider::size() while another thread grows the file --------------

// One thread allocates the whole capacity 64 pages at a time (each call
// that finds the free list empty grows the file); another reads size() all
// the while, at least once between two calls. Under TSan this is the race
// test; everywhere, size() only grows, stays within capacity, and ends at
// the capacity.
TEST(MemfdSize, ReadWhileAnotherThreadGrows) {
  constexpr std::size_t kCap = std::size_t{32} << 20;  // 8 chunks of 4 MiB
  pagepool::MemfdProvider prov(0, kCap);
  std::atomic<bool> done{false};
  std::atomic<std::size_t> reads{0};
  std::size_t backwards = 0, above = 0;  // the reader's; read after the join
  std::thread reader([&] {
    std::size_t last = 0;
    do {
      const std::size_t s = prov.size();
      backwards += s < last;
      above += s > kCap;
      last = s;
      reads.fetch_add(1, std::memory_order_relaxed);
    } while (!done.load(std::memory_order_relaxed));
  });
  std::vector<pagepool::Page*> pages(kCap / pagepool::kPageSize);
  std::size_t got = 0;
  while (got < pages.size()) {
    const std::size_t r = reads.load(std::memory_order_relaxed);
    errno = 0;
    const std::size_t n = prov.alloc_bulk(pages.data() + got, 64);
    if (n == 0) {
      ADD_FAILURE() << "out of pages after " << got << ", size " << prov.size() << ": "
                    << std::strerror(errno);
      break;
    }
    got += n;
    while (reads.load(std::memory_order_relaxed) == r) std::this_thread::yield();
  }
  done.store(true, std::memory_order_relaxed);
  reader.join();
  EXPECT_EQ(got, pages.size());
  EXPECT_EQ(prov.size(), kCap);
  EXPECT_EQ(backwards, 0u);
  EXPECT_EQ(above, 0u);
  EXPECT_GE(reads.load(), got / 64);
  prov.release_bulk(pages.data(), got);
}

}  // namespace
