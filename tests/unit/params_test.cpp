// Pool::create: parameter validation (std::invalid_argument naming the
// field and its range), valid edge values, and the accessors that echo
// what the pool was created with.
#include <gtest/gtest.h>

#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "pagepool/pagepool.hpp"
#include "test_providers.hpp"
#include "test_util.hpp"

namespace {

using namespace pptest;
using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;

// create(p) throws std::invalid_argument whose message contains every one
// of `parts`.
void expect_rejected(const Params& p, std::initializer_list<const char*> parts) {
  try {
    auto pool = Pool::create(p);
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    for (const char* part : parts) EXPECT_NE(what.find(part), std::string::npos) << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

TEST(Params, OrderAboveTenIsRejected) {
  Params p;
  p.order = 11;
  expect_rejected(p, {"order 11", "[0, 10]"});
  p.order = 64;
  expect_rejected(p, {"order 64", "[0, 10]"});
}

TEST(Params, PoolSizeZeroIsRejected) {
  Params p;
  p.pool_size = 0;
  expect_rejected(p, {"pool_size 0", "[1, 16777216]"});
}

TEST(Params, PoolSizeAboveMaxIsRejected) {
  Params p;
  p.pool_size = pagepool::kMaxPoolSize + 1;
  expect_rejected(p, {"pool_size 16777217", "[1, 16777216]"});
  p.pool_size = 0xffffffffu;
  expect_rejected(p, {"pool_size 4294967295"});
}

TEST(Params, UnknownFlagsAreRejected) {
  Params p;
  p.flags = 1u << 5;
  expect_rejected(p, {"flags", "0x20", "kDmaMap | kDmaSyncDev"});
  p.flags = pagepool::kDmaMap | (1u << 31);
  expect_rejected(p, {"flags", "0x80000000"});
}

TEST(Params, SyncDevWithoutDmaMapIsRejected) {
  Params p;
  p.flags = pagepool::kDmaSyncDev;
  p.max_len = 100;
  expect_rejected(p, {"kDmaSyncDev", "kDmaMap"});
}

TEST(Params, SyncDevWithZeroMaxLenIsRejected) {
  Params p;
  p.flags = pagepool::kDmaMap | pagepool::kDmaSyncDev;
  p.max_len = 0;
  expect_rejected(p, {"max_len 0", "[1, page size - offset]"});
}

TEST(Params, WindowBeyondThePageIsRejected) {
  Params p;
  p.flags = pagepool::kDmaMap | pagepool::kDmaSyncDev;
  p.offset = 4000;
  p.max_len = 97;
  expect_rejected(p, {"offset + max_len", "4097", "4096"});
  // Checked in 64 bits: no wrap-around.
  p.offset = 0xffffffffu;
  p.max_len = 1;
  expect_rejected(p, {"offset + max_len", "4294967296"});
  // Against the page size of the order.
  p.order = 1;
  p.offset = 0;
  p.max_len = 8193;
  expect_rejected(p, {"offset + max_len", "8193", "8192"});
}

TEST(Params, NidBelowMinusOneIsRejected) {
  Params p;
  p.nid = -2;
  expect_rejected(p, {"nid -2", "-1"});
}

TEST(Params, ProviderOfAnotherOrderIsRejected) {
  Params p;
  p.order = 0;
  p.provider = std::make_shared<pagepool::AnonProvider>(1);
  expect_rejected(p, {"provider", "anon", "order 1", "order 0"});
}

// The pool's name leads the message.
TEST(Params, MessageNamesThePool) {
  Params p;
  p.name = "rx-queue-3";
  p.pool_size = 0;
  expect_rejected(p, {"rx-queue-3", "pool_size"});
}

// A rejected create does not keep the provider it was given.
TEST(Params, RejectedCreateDropsTheProvider) {
  auto prov = std::make_shared<CountingProvider>(CountingOptions{.order = 1});
  std::weak_ptr<CountingProvider> weak = prov;
  Params p;
  p.provider = std::move(prov);
  expect_rejected(p, {"order"});
  p.provider.reset();
  EXPECT_TRUE(weak.expired());
}

// ---- valid edge values -------------------------------------------------------------

// order 10: 4 MiB pages, usable over their whole length.
TEST(ParamsValid, OrderTen) {
  Params p;
  p.order = pagepool::kMaxOrder;
  auto pool = Pool::create(p);
  EXPECT_EQ(pool->page_bytes(), std::size_t{4} << 20);
  Page* page = pool->alloc_page();
  ASSERT_NE(page, nullptr);
  EXPECT_EQ(pagepool::page_size(page), std::size_t{4} << 20);
  fill_page(page, 0x10);
  EXPECT_TRUE(page_holds(page, 0x10));
  pagepool::put_page(page);
  EXPECT_CONSISTENT(pool);
}

// The smallest and largest rings.
TEST(ParamsValid, PoolSizeOneAndMax) {
  Params p;
  p.pool_size = 1;
  EXPECT_NO_THROW(Pool::create(p));
  p.pool_size = pagepool::kMaxPoolSize;
  auto pool = Pool::create(p);
  Page* page = pool->alloc_page();
  ASSERT_NE(page, nullptr);
  pool->put_page(page, -1, false);
  pagepool::flush_thread();  // hand the batch to the ring
  EXPECT_EQ(pool->levels().ring, 1u);
  EXPECT_CONSISTENT(pool);
}

// A sync window ending exactly at the page end, and one of one byte.
TEST(ParamsValid, WindowUpToThePageEnd) {
  Params p;
  p.flags = pagepool::kDmaMap | pagepool::kDmaSyncDev;
  p.offset = 4000;
  p.max_len = 96;
  EXPECT_NO_THROW(Pool::create(p));
  p.offset = 0;
  p.max_len = 4096;
  EXPECT_NO_THROW(Pool::create(p));
  p.offset = 4095;
  p.max_len = 1;
  EXPECT_NO_THROW(Pool::create(p));
  // Without kDmaSyncDev the window is still bounded but may be empty.
  Params q;
  q.offset = 4096;
  EXPECT_NO_THROW(Pool::create(q));
}

// nid -1 (any) and a real node; every flag combination that is allowed.
TEST(ParamsValid, NidAndFlags) {
  for (int nid : {-1, 0}) {
    Params p;
    p.nid = nid;
    EXPECT_NO_THROW(Pool::create(p)) << nid;
  }
  Params p;
  p.flags = pagepool::kDmaMap;
  EXPECT_NO_THROW(Pool::create(p));
  p.flags = pagepool::kAllFlags;
  p.max_len = 1;
  EXPECT_NO_THROW(Pool::create(p));
}

// ---- accessors ---------------------------------------------------------------

// params() echoes what the pool was created with, page_bytes() the page
// size of its order; later changes to the caller's Params do not matter.
TEST(Accessors, ParamsAndPageBytes) {
  Params p;
  p.order = 3;
  p.pool_size = 77;
  p.max_inflight = 9;
  p.nid = 0;
  p.flags = pagepool::kDmaMap | pagepool::kDmaSyncDev;
  p.offset = 256;
  p.max_len = 512;
  p.name = "echo";
  auto pool = Pool::create(p);
  p.name = "changed";
  p.pool_size = 1;
  const Params& q = pool->params();
  EXPECT_EQ(q.order, 3u);
  EXPECT_EQ(q.pool_size, 77u);
  EXPECT_EQ(q.max_inflight, 9u);
  EXPECT_EQ(q.nid, 0);
  EXPECT_EQ(q.flags, pagepool::kDmaMap | pagepool::kDmaSyncDev);
  EXPECT_EQ(q.offset, 256u);
  EXPECT_EQ(q.max_len, 512u);
  EXPECT_EQ(q.name, "echo");
  EXPECT_EQ(pool->page_bytes(), 4096u << 3);
}

// provider() is the provider given in Params, or else an anonymous-memory
// provider of the pool's order whose pages report the pool's nid.
TEST(Accessors, Provider) {
  auto prov = std::make_shared<CountingProvider>(CountingOptions{.order = 2});
  Params p;
  p.order = 2;
  p.provider = prov;
  auto pool = Pool::create(p);
  EXPECT_EQ(&pool->provider(), prov.get());

  Params d;
  d.order = 4;
  d.nid = 0;
  auto anon = Pool::create(d);
  EXPECT_STREQ(anon->provider().name(), "anon");
  EXPECT_EQ(anon->provider().order(), 4u);
  Page* page = anon->alloc_page();
  ASSERT_NE(page, nullptr);
  EXPECT_EQ(anon->provider().nid(page), 0);
  pagepool::put_page(page);
}

// Two pools may share one provider; each keeps it alive.
TEST(Accessors, SharedProvider) {
  auto prov = std::make_shared<CountingProvider>();
  std::weak_ptr<CountingProvider> weak = prov;
  auto log = prov->log();
  Params p;
  p.provider = std::move(prov);
  auto a = Pool::create(p);
  auto b = Pool::create(p);
  p.provider.reset();
  Page* pa = a->alloc_page();
  Page* pb = b->alloc_page();
  EXPECT_NE(pa, pb);
  EXPECT_EQ(pagepool::page_pool(pa), a.get());
  EXPECT_EQ(pagepool::page_pool(pb), b.get());
  pagepool::put_page(pa);
  pagepool::put_page(pb);
  a.reset();
  EXPECT_FALSE(weak.expired());
  b.reset();
  EXPECT_TRUE(weak.expired());
  EXPECT_EQ(log->release_pages.load(), log->alloc_pages.load());
}

}  // namespace
