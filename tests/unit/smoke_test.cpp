#include <gtest/gtest.h>

#include <cstring>

#include "pagepool/pagepool.hpp"

TEST(Smoke, AllocPutRoundTrip) {
  auto pool = pagepool::Pool::create({});
  pagepool::Page* p = pool->alloc_page();
  ASSERT_NE(p, nullptr);
  std::memset(pagepool::page_address(p), 0xab, pagepool::page_size(p));
  EXPECT_EQ(pagepool::virt_to_page(static_cast<char*>(pagepool::page_address(p)) + 100), p);
  EXPECT_EQ(pool->inflight(), 1u);
  pagepool::put_page(p);
  EXPECT_EQ(pool->inflight(), 0u);
  pool->check();
}
