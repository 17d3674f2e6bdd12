// UringProvider: pool pages as io_uring fixed buffers.
//
// Every test needs io_uring (skipped with the reason if io_uring_queue_init
// fails, e.g. kernel.io_uring_disabled) and enough lockable memory to pin a
// test's pages (skipped if the kernel refuses to pin them: ENOMEM / EPERM).
// Sockets are socketpair(AF_UNIX) only; files are unnamed temp files in /tmp.
#include <fcntl.h>
#include <liburing.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "common/counting_provider.hpp"
#include "common/invariants.hpp"
#include "common/threads.hpp"
#include "pagepool/pagepool.hpp"
#include "pagepool/providers/uring.hpp"

namespace {

using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;
using pagepool::PoolPtr;
using pagepool::UringProvider;
using namespace pptest::common;  // CountingProvider, expect_consistent, on_other_thread

std::string err_text(int err) {
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

Params mapped_params(std::uint32_t pool_size = 1024) {
  Params p;
  p.flags = pagepool::kDmaMap;
  p.pool_size = pool_size;
  p.name = "uring-test";
  return p;
}

std::uint64_t alloc_fail(const Pool& pool) {
#if PAGEPOOL_STATS
  return pool.stats().alloc.fail;
#else
  (void)pool;
  return 0;
#endif
}

class UringProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const int r = io_uring_queue_init(64, &ring_, 0);
    if (r < 0)
      GTEST_SKIP() << "io_uring_queue_init failed: " << err_text(-r)
                   << "; io_uring unavailable (kernel.io_uring_disabled, seccomp or an old "
                      "kernel)";
    have_ring_ = true;
  }
  void TearDown() override {
    if (have_ring_) io_uring_queue_exit(&ring_);
  }

  // A provider on ring_ (or `ring`), or nullptr with a skip reason in
  // skip_: the table cannot be registered, or the kernel will not pin the
  // `need` pages the test registers at once (ENOMEM / EPERM: RLIMIT_MEMLOCK
  // without CAP_IPC_LOCK). The probe maps and unmaps them directly through
  // the provider interface, as a pool would.
  std::shared_ptr<UringProvider> make_provider(unsigned order, unsigned slots, unsigned need = 0,
                                               io_uring* ring = nullptr) {
    if (need == 0) need = slots < 64 ? slots : 64;
    std::shared_ptr<UringProvider> prov;
    try {
      prov = std::make_shared<UringProvider>(order, ring ? ring : &ring_, slots);
    } catch (const std::system_error& e) {
      skip_ = std::string("cannot register a sparse buffer table: ") + e.what();
      return nullptr;
    }
    std::vector<Page*> pages(need);
    for (std::size_t got = 0; got < need;) {
      const std::size_t k = prov->alloc_bulk(pages.data() + got, need - got);
      if (k == 0) {
        ADD_FAILURE() << "provider has no memory";
        return nullptr;
      }
      got += k;
    }
    std::error_code ec;
    std::size_t mapped = 0;
    for (; mapped < need; ++mapped) {
      std::uint64_t dma = ~0ull;
      if ((ec = prov->map(pages[mapped], &dma))) break;
      pages[mapped]->dma.store(dma, std::memory_order_relaxed);  // as the pool does
    }
    for (std::size_t i = 0; i < mapped; ++i) {
      prov->unmap(pages[i]);
      pages[i]->dma.store(0, std::memory_order_relaxed);
    }
    prov->release_bulk(pages.data(), need);
    EXPECT_EQ(prov->registered(), 0u);
    if (ec) {
      if (ec.value() == ENOMEM || ec.value() == EPERM) {
        skip_ = "the kernel refuses to pin " + std::to_string(need) + " registered pages of " +
                std::to_string(pagepool::kPageSize << order) + " bytes (failed at page " +
                std::to_string(mapped) + ": " + ec.message() +
                "): raise RLIMIT_MEMLOCK or run with CAP_IPC_LOCK";
      } else {
        ADD_FAILURE() << "probe map failed: " << ec.message();
      }
      return nullptr;
    }
    return prov;
  }

  io_uring ring_{};
  bool have_ring_ = false;
  std::string skip_;
};

#define MAKE_PROVIDER_OR_SKIP(var, ...)        \
  auto var = make_provider(__VA_ARGS__);       \
  if (!var) {                                  \
    if (!skip_.empty()) GTEST_SKIP() << skip_; \
    return;                                    \
  }

// ---- 1: map once per page entering, unmap once per page leaving -------------

TEST_F(UringProviderTest, MapOncePerPageEnteringUnmapOnceLeaving) {
  MAKE_PROVIDER_OR_SKIP(uring, 0, 256, 128);
  // Checks the pool's side of the contract: map exactly once per page
  // entering, unmap exactly once per page leaving (only pages that are
  // mapped), no slot held by two pages, every slot inside the table.
  auto counting = std::make_shared<CountingProvider>(
      CountingOptions{.inner_map = true, .dma_limit = uring->table_slots()}, uring);
  const auto log = counting->log();
  Params params = mapped_params();
  params.provider = counting;
  PoolPtr pool = Pool::create(params);

  Page* p = pool->alloc_page();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(log->map_calls.load(), 64u);  // one bulk
  EXPECT_EQ(uring->registered(), 64u);
  const std::uint64_t slot = pagepool::page_dma_addr(p);
  EXPECT_LT(slot, 256u);
  EXPECT_EQ(UringProvider::buf_index(p), slot);

  // Recycling never maps again, on the owner or through the ring.
  for (int i = 0; i < 1000; ++i) {
    pagepool::put_page(p);
    p = pool->alloc_page();
    ASSERT_NE(p, nullptr);
  }
  on_other_thread([p] { pagepool::put_page(p); });
  std::vector<Page*> pages;
  for (int i = 0; i < 100; ++i) {
    Page* q = pool->alloc_page();
    ASSERT_NE(q, nullptr);
    pages.push_back(q);
  }
  EXPECT_EQ(log->map_calls.load(), 128u);  // a second bulk
  EXPECT_EQ(log->unmap_calls.load(), 0u);
  EXPECT_EQ(uring->registered(), 128u);
  EXPECT_EQ(uring->registered(), pool->levels().held);
  std::set<std::uint64_t> slots;
  for (Page* q : pages) slots.insert(pagepool::page_dma_addr(q));
  EXPECT_EQ(slots.size(), pages.size()) << "two held pages share a slot";

  for (int round = 0; round < 50; ++round) {
    // Half back on another thread (return ring), half directly, then again.
    std::vector<Page*> remote(pages.begin(), pages.begin() + 50);
    on_other_thread([&remote] {
      for (Page* q : remote) pagepool::put_page(q);
    });
    for (std::size_t i = 50; i < pages.size(); ++i) pagepool::put_page(pages[i]);
    for (Page*& q : pages) {
      q = pool->alloc_page();
      ASSERT_NE(q, nullptr);
    }
  }
  EXPECT_EQ(log->map_calls.load(), 128u);
  EXPECT_EQ(uring->registered(), 128u);
  expect_consistent(*pool);

  // Destroy with 10 pages out: everything else leaves (unmapped) now, the
  // 10 at their last put, here on another thread.
  for (std::size_t i = 10; i < pages.size(); ++i) pagepool::put_page(pages[i]);
  pages.resize(10);
  pool.reset();
  EXPECT_EQ(log->unmap_calls.load(), 118u);
  EXPECT_EQ(uring->registered(), 10u);
  on_other_thread([&pages] {
    for (Page* q : pages) pagepool::put_page(q);
  });
  EXPECT_EQ(log->map_calls.load(), 128u);
  EXPECT_EQ(log->unmap_calls.load(), 128u);
  EXPECT_EQ(log->mapped_now(), 0u);
  EXPECT_EQ(log->double_maps.load(), 0u);
  EXPECT_EQ(log->bad_unmaps.load(), 0u);
  EXPECT_EQ(log->duplicate_dma.load(), 0u);
  EXPECT_EQ(log->bad_dma.load(), 0u);
  EXPECT_ALL_RETURNED(log);
  EXPECT_EQ(uring->registered(), 0u);
  EXPECT_EQ(uring->unregister_failures(), 0u);
}

// release_page takes a page out of the pool: its slot is freed, and the page
// (or another) is registered again when the pool next refills.
TEST_F(UringProviderTest, ReleasePageUnregistersAndRefillRegisters) {
  MAKE_PROVIDER_OR_SKIP(uring, 0, 128);
  PoolPtr pool = [&] {
    Params params = mapped_params();
    params.provider = uring;
    return Pool::create(params);
  }();
  std::vector<Page*> pages;
  for (int i = 0; i < 64; ++i) pages.push_back(pool->alloc_page());
  for (Page* q : pages) ASSERT_NE(q, nullptr);
  EXPECT_EQ(uring->registered(), 64u);
  for (Page* q : pages) pool->release_page(q);
  EXPECT_EQ(uring->registered(), 0u);
  pages.clear();
  for (int i = 0; i < 64; ++i) pages.push_back(pool->alloc_page());
  for (Page* q : pages) ASSERT_NE(q, nullptr);
  EXPECT_EQ(uring->registered(), 64u);
  for (Page* q : pages) pagepool::put_page(q);
  expect_consistent(*pool);
  pool.reset();
  EXPECT_EQ(uring->registered(), 0u);
}

// Without kDmaMap the pool never calls map: nothing is registered.
TEST_F(UringProviderTest, WithoutDmaMapNothingIsRegistered) {
  MAKE_PROVIDER_OR_SKIP(uring, 0, 64, 1);
  Params params;
  params.provider = uring;
  PoolPtr pool = Pool::create(params);
  Page* p = pool->alloc_page();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(uring->registered(), 0u);
  pagepool::put_page(p);
  pool.reset();
  EXPECT_EQ(uring->registered(), 0u);
}

// ---- 2: real I/O through the fixed buffers ------------------------------------

int temp_file() {
  int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  char name[] = "/tmp/pagepool-uring-XXXXXX";
  fd = mkstemp(name);
  if (fd >= 0) unlink(name);
  return fd;
}

// Submits what is queued and reaps n completions into res[user_data].
void submit_and_reap(io_uring* ring, unsigned n, std::vector<int>* res) {
  ASSERT_EQ(io_uring_submit(ring), static_cast<int>(n));
  for (unsigned i = 0; i < n; ++i) {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{5, 0};
    ASSERT_EQ(io_uring_wait_cqe_timeout(ring, &cqe, &ts), 0) << "no completion within 5 s";
    ASSERT_LT(cqe->user_data, res->size());
    (*res)[cqe->user_data] = cqe->res;
    io_uring_cqe_seen(ring, cqe);
  }
}

void write_read_fixed(io_uring* ring, const std::shared_ptr<UringProvider>& uring, unsigned order) {
  Params params = mapped_params();
  params.order = order;
  params.provider = uring;
  PoolPtr pool = Pool::create(params);
  const std::size_t bytes = pool->page_bytes();
  constexpr unsigned kN = 8;

  const int fd = temp_file();
  ASSERT_GE(fd, 0) << "temp file in /tmp: " << err_text(errno);

  Page* src[kN];
  for (unsigned i = 0; i < kN; ++i) {
    src[i] = pool->alloc_page();
    ASSERT_NE(src[i], nullptr);
    auto* d = static_cast<unsigned char*>(pagepool::page_address(src[i]));
    for (std::size_t j = 0; j < bytes; ++j)
      d[j] = static_cast<unsigned char>(i * 37 + j * 7 + j / 251);
  }
  for (unsigned i = 0; i < kN; ++i) {
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_write_fixed(sqe, fd, pagepool::page_address(src[i]), static_cast<unsigned>(bytes),
                              i * bytes, static_cast<int>(pagepool::page_dma_addr(src[i])));
    sqe->user_data = i;
  }
  std::vector<int> res(kN, -1);
  submit_and_reap(ring, kN, &res);
  for (unsigned i = 0; i < kN; ++i)
    ASSERT_EQ(res[i], static_cast<int>(bytes))
        << "write_fixed " << i << ": " << (res[i] < 0 ? err_text(-res[i]) : "short");

  // Back into other pool pages (the sources are still held, so these differ).
  Page* dst[kN];
  for (unsigned i = 0; i < kN; ++i) {
    dst[i] = pool->alloc_page();
    ASSERT_NE(dst[i], nullptr);
    std::memset(pagepool::page_address(dst[i]), 0, bytes);
  }
  for (unsigned i = 0; i < kN; ++i) {
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_read_fixed(sqe, fd, pagepool::page_address(dst[i]), static_cast<unsigned>(bytes),
                             i * bytes, UringProvider::buf_index(dst[i]));
    sqe->user_data = i;
  }
  res.assign(kN, -1);
  submit_and_reap(ring, kN, &res);
  for (unsigned i = 0; i < kN; ++i) {
    ASSERT_EQ(res[i], static_cast<int>(bytes)) << "read_fixed " << i;
    EXPECT_EQ(std::memcmp(pagepool::page_address(src[i]), pagepool::page_address(dst[i]), bytes), 0)
        << "page " << i << " read back differs";
  }

  // The index names that page's registration only: another page's memory
  // under it is outside the registered buffer.
  {
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    io_uring_prep_write_fixed(sqe, fd, pagepool::page_address(dst[0]), static_cast<unsigned>(bytes),
                              0, UringProvider::buf_index(src[0]));
    sqe->user_data = 0;
    res.assign(1, 0);
    submit_and_reap(ring, 1, &res);
    EXPECT_EQ(res[0], -EFAULT);
  }
  // A page that left the pool left the table: its old index is empty now.
  // The request names the page's own memory (still mapped: it rests in the
  // provider), so only an emptied slot makes it fail; a slot still
  // registered would let the kernel read the page and succeed.
  {
    const std::uint16_t old = UringProvider::buf_index(src[0]);
    void* const addr = pagepool::page_address(src[0]);
    pool->release_page(src[0]);
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    io_uring_prep_write_fixed(sqe, fd, addr, static_cast<unsigned>(bytes), 0, old);
    sqe->user_data = 0;
    res.assign(1, 0);
    submit_and_reap(ring, 1, &res);
    EXPECT_EQ(res[0], -EFAULT) << "slot " << old << " still registered after release_page";
  }
  close(fd);
  for (unsigned i = 1; i < kN; ++i) pagepool::put_page(src[i]);
  for (Page* q : dst) pagepool::put_page(q);
  EXPECT_EQ(pool->inflight(), 0u);
  expect_consistent(*pool);
  pool.reset();
  EXPECT_EQ(uring->registered(), 0u);
}

TEST_F(UringProviderTest, WriteFixedThenReadFixedRoundTrip) {
  // One table per ring: each order gets its own provider in turn.
  for (unsigned order : {0u, 2u}) {
    SCOPED_TRACE("order " + std::to_string(order));
    MAKE_PROVIDER_OR_SKIP(uring, order, 64);
    write_read_fixed(&ring_, uring, order);
    if (HasFatalFailure()) return;
  }
}

// ---- 3: pool pages as a provided-buffer ring for multishot receive ------------

TEST_F(UringProviderTest, ProvidedBufferRingMultishotRecv) {
  MAKE_PROVIDER_OR_SKIP(uring, 0, 64);
  Params params = mapped_params();
  params.provider = uring;
  PoolPtr pool = Pool::create(params);
  const auto bytes = static_cast<unsigned>(pool->page_bytes());

  // The buffer ring: 8 entries, page-aligned memory of our own (liburing 2.3
  // has no io_uring_setup_buf_ring).
  constexpr unsigned kEntries = 8;
  constexpr std::uint16_t kBgid = 7;
  const int mask = io_uring_buf_ring_mask(kEntries);
  void* ring_mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(ring_mem, MAP_FAILED);
  auto* br = static_cast<io_uring_buf_ring*>(ring_mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(ring_mem);
  reg.ring_entries = kEntries;
  reg.bgid = kBgid;
  int r = io_uring_register_buf_ring(&ring_, &reg, 0);
  if (r < 0) {
    munmap(ring_mem, 4096);
    GTEST_SKIP() << "provided-buffer rings unsupported: io_uring_register_buf_ring: "
                 << err_text(-r);
  }
  io_uring_buf_ring_init(br);
  Page* bufs[kEntries];  // bid -> the pool page the kernel may fill
  for (unsigned i = 0; i < kEntries; ++i) {
    bufs[i] = pool->alloc_page();
    ASSERT_NE(bufs[i], nullptr);
    io_uring_buf_ring_add(br, pagepool::page_address(bufs[i]), bytes,
                          static_cast<unsigned short>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br, kEntries);

  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0) << err_text(errno);
  auto arm = [&] {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_recv_multishot(sqe, sv[0], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBgid;
    sqe->user_data = 1;
    ASSERT_EQ(io_uring_submit(&ring_), 1);
  };
  arm();

  std::string sent, received;
  unsigned completions = 0, rearms = 0, used_pages = 0;
  bool armed = true, unsupported = false;
  // Reaps until `want` bytes have arrived (or, want == npos, until the
  // multishot request ends).
  auto reap = [&](std::size_t want) {
    while (want == std::string::npos ? armed : received.size() < want) {
      io_uring_cqe* cqe = nullptr;
      __kernel_timespec ts{5, 0};
      ASSERT_EQ(io_uring_wait_cqe_timeout(&ring_, &cqe, &ts), 0)
          << "no completion within 5 s (" << received.size() << " of " << want << " bytes)";
      const int res = cqe->res;
      const unsigned flags = cqe->flags;
      io_uring_cqe_seen(&ring_, cqe);
      ++completions;
      if (!(flags & IORING_CQE_F_MORE)) armed = false;
      if (res == -EINVAL && completions == 1) {
        unsupported = true;
        return;
      }
      if (res < 0) {
        ASSERT_EQ(res, -ENOBUFS) << "recv: " << err_text(-res);
      }
      if (flags & IORING_CQE_F_BUFFER) {
        const unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        ASSERT_LT(bid, kEntries);
        Page* p = bufs[bid];
        ASSERT_GE(res, 0);
        ASSERT_LE(static_cast<unsigned>(res), bytes);
        received.append(static_cast<const char*>(pagepool::page_address(p)),
                        static_cast<std::size_t>(res));
        ++used_pages;
        // Done with it: back to the pool; a fresh pool page takes its bid.
        pagepool::put_page(p);
        bufs[bid] = pool->alloc_page();
        ASSERT_NE(bufs[bid], nullptr);
        io_uring_buf_ring_add(br, pagepool::page_address(bufs[bid]), bytes,
                              static_cast<unsigned short>(bid), mask, 0);
        io_uring_buf_ring_advance(br, 1);
      }
      if (!armed && want != std::string::npos) {
        ++rearms;
        arm();
        armed = true;
      }
    }
  };

  for (unsigned m = 0; m < 40 && !unsupported; ++m) {
    // Messages of varying size; every 10th spans several pages.
    std::string msg = "msg " + std::to_string(m) + ":";
    const std::size_t len = (m % 10 == 9) ? 3 * bytes + 123 : 50 + m * 97;
    while (msg.size() < len) msg.push_back(static_cast<char>('a' + (msg.size() * 31 + m) % 26));
    std::size_t off = 0;
    while (off < msg.size()) {
      const ssize_t w = send(sv[1], msg.data() + off, msg.size() - off, MSG_NOSIGNAL);
      ASSERT_GT(w, 0) << err_text(errno);
      off += static_cast<std::size_t>(w);
    }
    sent += msg;
    reap(sent.size());
    if (HasFatalFailure()) break;
  }
  if (unsupported) {
    io_uring_unregister_buf_ring(&ring_, kBgid);
    for (Page* p : bufs) pagepool::put_page(p);
    close(sv[0]);
    close(sv[1]);
    munmap(ring_mem, 4096);
    GTEST_SKIP() << "multishot recv with provided buffers unsupported (EINVAL)";
  }
  // End the request: EOF completes it without IORING_CQE_F_MORE.
  shutdown(sv[1], SHUT_WR);
  reap(std::string::npos);

  EXPECT_EQ(received, sent);
  EXPECT_GT(used_pages, 40u);  // the big messages took several buffers each
  RecordProperty("completions", static_cast<int>(completions));
  RecordProperty("rearms", static_cast<int>(rearms));

  // The kernel lets go of the ring; then every page goes back.
  EXPECT_EQ(io_uring_unregister_buf_ring(&ring_, kBgid), 0);
  munmap(ring_mem, 4096);
  close(sv[0]);
  close(sv[1]);
  EXPECT_EQ(pool->inflight(), kEntries);
  for (Page* p : bufs) pagepool::put_page(p);
  EXPECT_EQ(pool->inflight(), 0u);
  expect_consistent(*pool);
  EXPECT_EQ(uring->registered(), pool->levels().held);
  pool.reset();
  EXPECT_EQ(uring->registered(), 0u);
}

// ---- 4: table full and registration failures -----------------------------------

// A table smaller than one bulk (64): the first refill registers 16 pages and
// hands the other 48 back; once 16 are out, allocation fails (alloc.fail)
// until a page returns or leaves.
TEST_F(UringProviderTest, TableFullFailsAllocationUntilPagesReturn) {
  MAKE_PROVIDER_OR_SKIP(uring, 0, 16);
  Params params = mapped_params();
  params.provider = uring;
  PoolPtr pool = Pool::create(params);

  std::vector<Page*> pages;
  for (int i = 0; i < 16; ++i) {
    Page* p = pool->alloc_page();
    ASSERT_NE(p, nullptr) << "allocation " << i;
    pages.push_back(p);
  }
  EXPECT_EQ(uring->registered(), 16u);
  EXPECT_EQ(pool->stats().hold, 16u);  // refused pages never entered the pool
  const std::uint64_t fail0 = alloc_fail(*pool);
  (void)fail0;

  EXPECT_EQ(pool->alloc_page(), nullptr);  // every map: ENOSPC
#if PAGEPOOL_STATS
  EXPECT_EQ(alloc_fail(*pool), fail0 + 1);
#endif
  EXPECT_EQ(pool->inflight(), 16u);
  EXPECT_EQ(uring->registered(), 16u);
  expect_consistent(*pool);

  // A page back in the pool keeps its slot: allocation works, no new map.
  pagepool::put_page(pages.back());
  pages.back() = pool->alloc_page();
  ASSERT_NE(pages.back(), nullptr);
  EXPECT_EQ(uring->registered(), 16u);
  EXPECT_EQ(pool->alloc_page(), nullptr);

  // A page that leaves frees its slot for a new page.
  pool->release_page(pages.back());
  pages.pop_back();
  EXPECT_EQ(uring->registered(), 15u);
  Page* p = pool->alloc_page();
  ASSERT_NE(p, nullptr);
  pages.push_back(p);
  EXPECT_EQ(uring->registered(), 16u);
  EXPECT_EQ(pool->alloc_page(), nullptr);
#if PAGEPOOL_STATS
  EXPECT_EQ(alloc_fail(*pool), fail0 + 3);
#endif
  expect_consistent(*pool);

  // Bulk allocation stops at the same wall.
  for (Page* q : pages) pagepool::put_page(q);
  pages.assign(32, nullptr);
  EXPECT_EQ(pool->alloc_pages_bulk(pages.data(), 32), 16u);
  pages.resize(16);
  for (Page* q : pages) pagepool::put_page(q);
  EXPECT_EQ(pool->inflight(), 0u);
  expect_consistent(*pool);
  pool.reset();
  EXPECT_EQ(uring->registered(), 0u);
}

// io_uring_register itself fails: a single-issuer ring refuses registration
// from any task but its submitter (EEXIST). map returns that error, the
// allocation fails and the pool stays consistent; on the submitter thread
// the same provider works. An unmap refused the same way leaks its slot
// (counted), never hands it out twice.
TEST_F(UringProviderTest, RegistrationFailureFailsAllocationCleanly) {
  io_uring si{};
  const int r = io_uring_queue_init(8, &si, IORING_SETUP_SINGLE_ISSUER);
  if (r < 0) GTEST_SKIP() << "IORING_SETUP_SINGLE_ISSUER unavailable: " << err_text(-r);
  struct Exit {
    io_uring* r;
    ~Exit() { io_uring_queue_exit(r); }
  } exit_si{&si};  // after the provider (declared below) is gone
  MAKE_PROVIDER_OR_SKIP(uring, 0, 128, 64, &si);

  on_other_thread([&] {
    Params params = mapped_params();
    params.provider = uring;
    PoolPtr pool = Pool::create(params);  // owned by this thread: not the submitter
    const std::uint64_t fail0 = alloc_fail(*pool);
    EXPECT_EQ(pool->alloc_page(), nullptr);
#if PAGEPOOL_STATS
    EXPECT_EQ(alloc_fail(*pool), fail0 + 1);
#endif
    (void)fail0;
    EXPECT_EQ(pool->levels().held, 0u);
    EXPECT_EQ(pool->inflight(), 0u);
    expect_consistent(*pool);
    EXPECT_EQ(uring->registered(), 0u);  // every failed slot went back
    // Still failing, still consistent.
    EXPECT_EQ(pool->alloc_page(), nullptr);
    expect_consistent(*pool);
  });

  // On the submitter thread the same provider registers.
  Params params = mapped_params();
  params.provider = uring;
  PoolPtr pool = Pool::create(params);
  Page* p = pool->alloc_page();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(uring->registered(), 64u);
  expect_consistent(*pool);

  // The last put of this page, after destroy, happens on another thread:
  // its unmap is refused, so the slot stays in use and is counted.
  pool.reset();
  EXPECT_EQ(uring->registered(), 1u);
  on_other_thread([p] { pagepool::put_page(p); });
  EXPECT_EQ(uring->unregister_failures(), 1u);
  EXPECT_EQ(uring->registered(), 1u);
  // The destructor (here, on the submitter) unregisters the whole table.
}

// ---- threads ---------------------------------------------------------------------

// Two pools on one provider, each on its own thread, registering and
// unregistering concurrently (release_page forces a page out, the next
// refill brings new ones in), with cross-thread puts on top.
TEST_F(UringProviderTest, ConcurrentPoolsShareTheTable) {
  MAKE_PROVIDER_OR_SKIP(uring, 0, 1024, 1024);
  constexpr int kIters = 40;
  std::atomic<int> errors{0};
  auto worker = [&](int seed) {
    Params params = mapped_params(256);
    params.provider = uring;
    PoolPtr pool = Pool::create(params);
    std::vector<Page*> held;
    for (int it = 0; it < kIters; ++it) {
      for (int i = 0; i < 70; ++i) {
        Page* p = pool->alloc_page();
        if (!p) {
          ++errors;
          return;
        }
        held.push_back(p);
      }
      // A third leaves the pool, a third recycles, a third is put by a
      // helper thread.
      std::vector<Page*> remote;
      for (std::size_t i = 0; i < held.size(); ++i) {
        if ((i + static_cast<std::size_t>(seed + it)) % 3 == 0)
          pool->release_page(held[i]);
        else if (i % 3 == 1)
          pagepool::put_page(held[i]);
        else
          remote.push_back(held[i]);
      }
      held.clear();
      std::thread([&remote] {
        for (Page* p : remote) pagepool::put_page(p);
      }).join();
    }
    expect_consistent(*pool, 0);  // on this pool's owner thread
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(uring->registered(), 0u);
  EXPECT_EQ(uring->unregister_failures(), 0u);
}

// unmap of a page this provider never registered aborts instead of
// emptying a slot another page holds.
using UringProviderDeathTest = UringProviderTest;
TEST_F(UringProviderDeathTest, UnmapOfUnregisteredPageAborts) {
  // io_uring's io-wq workers are threads of this process: re-exec, not
  // fork. Restored after, so other suites in this binary keep their style.
  struct Style {
    std::string saved = GTEST_FLAG_GET(death_test_style);
    Style() { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
    ~Style() { GTEST_FLAG_SET(death_test_style, saved); }
  } style;
  MAKE_PROVIDER_OR_SKIP(uring, 0, 16, 1);
  Params params = mapped_params();
  params.provider = uring;
  PoolPtr pool = Pool::create(params);
  Page* p = pool->alloc_page();  // registered, holds its slot
  ASSERT_NE(p, nullptr);
  Page* other = nullptr;
  ASSERT_EQ(uring->alloc_bulk(&other, 1), 1u);  // never mapped
  other->dma.store(pagepool::page_dma_addr(p), std::memory_order_relaxed);
  EXPECT_DEATH(uring->unmap(other), "does not hold slot");
  other->dma.store(0, std::memory_order_relaxed);
  uring->release_bulk(&other, 1);
  pagepool::put_page(p);
  EXPECT_EQ(uring->registered(), 16u);
  pool.reset();
  EXPECT_EQ(uring->registered(), 0u);
}

// ---- construction ----------------------------------------------------------------

TEST_F(UringProviderTest, ConstructionErrors) {
  EXPECT_THROW(UringProvider(0, nullptr, 16), std::invalid_argument);
  EXPECT_THROW(UringProvider(0, &ring_, 0), std::invalid_argument);
  EXPECT_THROW(UringProvider(0, &ring_, 65537), std::invalid_argument);
  MAKE_PROVIDER_OR_SKIP(uring, 0, 16);
  EXPECT_STREQ(uring->name(), "uring");
  EXPECT_EQ(uring->table_slots(), 16u);
  EXPECT_EQ(uring->ring(), &ring_);
  // One table per ring: a second provider on the same ring is refused.
  try {
    UringProvider second(0, &ring_, 16);
    ADD_FAILURE() << "a second table on one ring was accepted";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EBUSY) << e.what();
  }
}

}  // namespace
