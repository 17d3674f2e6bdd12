// AF_XDP UMEM provider: device address = UMEM offset, page_at, exhaustion
// at the region's end, the fill ring taking pool pages' addresses, a real
// packet received into a pool page (veth in a private network namespace),
// teardown with pages out, and the registration errors.
//
// Needs socket(AF_XDP): without CAP_NET_RAW or kernel support every test
// that registers a UMEM skips with the reason.
#include <linux/capability.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/netns.hpp"
#include "pagepool/pagepool.hpp"
#include "pagepool/providers/umem.hpp"
#include "test_support.hpp"

namespace {

using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;
using pagepool::PoolPtr;
using pagepool::Provider;
using pagepool::UmemProvider;
using namespace ppprov;  // CountingProvider, alloc_n, alloc_until_fail, EXPECT_CONSISTENT

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Whether AF_XDP sockets can be created here; if not, why, and whether that
// is a reason to skip (no privilege, no kernel support) or a failure.
struct XdpCheck {
  bool ok;
  bool skip;
  std::string why;
};

XdpCheck check_xdp() {
  const int fd = socket(AF_XDP, SOCK_RAW, 0);
  if (fd >= 0) {
    close(fd);
    return {true, false, {}};
  }
  const int e = errno;
  if (e == EPERM || e == EACCES)
    return {false, true, "socket(AF_XDP) needs CAP_NET_RAW: run the test as root"};
  if (e == EAFNOSUPPORT)
    return {false, true, "the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)"};
  return {false, false, std::string("socket(AF_XDP) failed: ") + std::strerror(e)};
}

#define UMEM_REQUIRE_XDP()                     \
  do {                                         \
    const XdpCheck xdp_ = check_xdp();         \
    if (!xdp_.ok) {                            \
      if (xdp_.skip) GTEST_SKIP() << xdp_.why; \
      FAIL() << xdp_.why;                      \
    }                                          \
  } while (0)

PoolPtr make_pool(std::shared_ptr<Provider> prov, std::uint32_t pool_size = 1024) {
  Params p;
  p.order = prov->order();
  p.flags = pagepool::kDmaMap;
  p.pool_size = pool_size;
  p.name = "umem-test";
  p.provider = std::move(prov);
  return Pool::create(p);
}

// ---- arguments --------------------------------------------------------------

// Checked before any syscall, so this runs without privileges too.
TEST(UmemProvider, RejectsBadArguments) {
  auto expect_invalid = [](const std::function<void()>& f, const char* needle) {
    try {
      f();
      ADD_FAILURE() << "no exception; expected one mentioning \"" << needle << "\"";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  // Aligned mode: a frame is a page, and frames above PAGE_SIZE are refused.
  expect_invalid([] { UmemProvider(1, 2 * kMiB); }, "order 1");
  expect_invalid([] { UmemProvider(11, 4 * kMiB); }, "order 11");
  expect_invalid([] { UmemProvider(0, 0); }, "multiple of");
  expect_invalid([] { UmemProvider(0, 3 * kMiB); }, "multiple of");
  expect_invalid([] { UmemProvider(0, kMiB); }, "multiple of");
  UmemProvider::Options o;
  o.unaligned = true;
  // Order 10 pages are 4 MiB: the region must hold whole pages.
  expect_invalid([&] { UmemProvider(10, 2 * kMiB, -1, o); }, "multiple of");
  o = {};
  o.fill_size = 100;
  expect_invalid([&] { UmemProvider(0, 2 * kMiB, -1, o); }, "powers of two");
  o = {};
  o.comp_size = 0;
  expect_invalid([&] { UmemProvider(0, 2 * kMiB, -1, o); }, "powers of two");
  o = {};
  o.frame_headroom = 4096 - 256;
  expect_invalid([&] { UmemProvider(0, 2 * kMiB, -1, o); }, "headroom");
  expect_invalid([] { UmemProvider(0, 2 * kMiB, 100000); }, "nid");
}

// ---- device addresses ---------------------------------------------------------

// Every page's device address is its UMEM offset: frame-aligned, inside the
// region, base() + dma is the page, page_at() finds the page from any of its
// bytes; map once per page entering the pool, unmap once per page leaving.
TEST(UmemProvider, DmaAddressIsUmemOffset) {
  UMEM_REQUIRE_XDP();
  auto umem = std::make_shared<UmemProvider>(0, 4 * kMiB);
  ASSERT_NE(umem->umem(), nullptr);
  EXPECT_EQ(umem->frame_size(), 4096u);
  EXPECT_EQ(umem->size(), 4 * kMiB);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(umem->base()) % (2 * kMiB), 0u);
  EXPECT_STREQ(umem->name(), "umem");
  // Sees that each page is mapped exactly once on entering the pool and
  // unmapped exactly once on leaving it.
  auto counting = std::make_shared<CountingProvider>(CountingOptions{.inner_map = true}, umem);
  const auto log = counting->log();
  PoolPtr pool = make_pool(counting);

  // 700 pages: more than one 2 MiB chunk (512 pages).
  const std::vector<Page*> pages = alloc_n(*pool, 700);
  ASSERT_EQ(pages.size(), 700u);
  std::unordered_set<std::uint64_t> addrs;
  for (Page* p : pages) {
    const std::uint64_t dma = pagepool::page_dma_addr(p);
    ASSERT_EQ(dma % umem->frame_size(), 0u) << dma;
    ASSERT_LT(dma, umem->size());
    ASSERT_EQ(pagepool::page_address(p), umem->base() + dma);
    ASSERT_EQ(umem->page_at(dma), p);
    ASSERT_EQ(umem->page_at(dma + 100), p);
    ASSERT_EQ(umem->page_at(dma + umem->frame_size() - 1), p);
    // The unaligned-mode form (offset in bits 48..63) names the same byte.
    ASSERT_EQ(umem->page_at(dma | (std::uint64_t{256} << XSK_UNALIGNED_BUF_OFFSET_SHIFT)), p);
    ASSERT_EQ(pagepool::page_pool(p), pool.get());
    ASSERT_TRUE(addrs.insert(dma).second) << "two pages at UMEM address " << dma;
    std::memset(pagepool::page_address(p), 0x5a, 4096);  // the memory is usable
  }
  // Outside the region, or in a part of it not held by a pool.
  EXPECT_EQ(umem->page_at(umem->size()), nullptr);
  EXPECT_EQ(umem->page_at(~std::uint64_t{0}), nullptr);
  EXPECT_EQ(umem->page_at(umem->size() - 1), nullptr);  // 1024 pages, 704 carved
  EXPECT_EQ(umem->reserved_bytes(), 4 * kMiB);

  // Bulk refills of 64: 704 pages entered, each mapped once.
  EXPECT_EQ(log->map_calls.load(), pool->stats().hold);
  EXPECT_EQ(log->map_calls.load(), 704u);
  EXPECT_EQ(log->unmap_calls.load(), 0u);
  EXPECT_EQ(log->double_maps.load(), 0u);
  // Recycling does not map again.
  put_all(pages);
  const std::vector<Page*> again = alloc_n(*pool, 700);
  ASSERT_EQ(again.size(), 700u);
  EXPECT_EQ(log->map_calls.load(), 704u);
  for (Page* p : again) ASSERT_EQ(umem->page_at(pagepool::page_dma_addr(p)), p);
  put_all(again);
  EXPECT_CONSISTENT(pool, 0);
  const std::uint64_t former = pagepool::page_dma_addr(pages[0]);
  pool.reset();
  EXPECT_EQ(log->unmap_calls.load(), log->map_calls.load());
  EXPECT_EQ(log->mapped_now(), 0u);
  EXPECT_EQ(log->bad_unmaps.load(), 0u);
  EXPECT_EQ(log->bad_releases.load(), 0u) << "pages must be unmapped before they go back";
  EXPECT_ALL_RETURNED(log);
  // Back in the provider: no pool holds it.
  EXPECT_EQ(umem->page_at(former), nullptr);
}

// ---- exhaustion -------------------------------------------------------------------

// A 2 MiB region is 512 frames: exactly 512 pages can be out, the 513th
// allocation fails (alloc.fail), and a page coming back makes room again.
TEST(UmemProvider, ExhaustsAtRegionSize) {
  UMEM_REQUIRE_XDP();
  auto umem = std::make_shared<UmemProvider>(0, 2 * kMiB);
  PoolPtr pool = make_pool(umem);
  std::vector<Page*> pages = alloc_n(*pool, 512);
  ASSERT_EQ(pages.size(), 512u);
  EXPECT_EQ(std::set<Page*>(pages.begin(), pages.end()).size(), 512u);
  EXPECT_EQ(pool->inflight(), 512u);
  EXPECT_EQ(umem->reserved_bytes(), 2 * kMiB);

  const pagepool::Stats before = pool->stats();
  EXPECT_EQ(pool->alloc_page(), nullptr);
  EXPECT_EQ(pool->alloc_page(), nullptr);
  const pagepool::Stats after = pool->stats();
#if PAGEPOOL_STATS
  EXPECT_EQ(after.alloc.fail - before.alloc.fail, 2u);
#endif
  EXPECT_EQ(after.hold, before.hold);
  EXPECT_EQ(umem->reserved_bytes(), 2 * kMiB);  // no chunk beyond the region

  // A page recycled into the pool serves the next allocation...
  Page* back = pages.back();
  pages.pop_back();
  pagepool::put_page(back);
  Page* p = pool->alloc_page();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p, back);
  EXPECT_EQ(pool->alloc_page(), nullptr);
  // ...and so does one released to the provider, through a refill.
  pool->release_page(p);
  p = pool->alloc_page();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(umem->page_at(pagepool::page_dma_addr(p)), p);
  pages.push_back(p);
  EXPECT_EQ(pool->alloc_page(), nullptr);
  EXPECT_EQ(pool->inflight(), 512u);

  put_all(pages);
  EXPECT_CONSISTENT(pool, 0);  // includes held == hold - release
}

// ---- rings --------------------------------------------------------------------------

// The fill ring takes pool pages' UMEM addresses. No socket is bound, so
// nothing consumes them: the ring fills up and stays full.
TEST(UmemProvider, FillRingTakesPageAddresses) {
  UMEM_REQUIRE_XDP();
  UmemProvider::Options o;
  o.fill_size = 64;
  o.comp_size = 32;
  auto umem = std::make_shared<UmemProvider>(0, 2 * kMiB, -1, o);
  PoolPtr pool = make_pool(umem);
  std::vector<Page*> pages = alloc_n(*pool, 64);
  ASSERT_EQ(pages.size(), 64u);

  xsk_ring_prod* fq = umem->fill();
  EXPECT_EQ(xsk_prod_nb_free(fq, 64), 64u);
  std::uint32_t idx = 0;
  ASSERT_EQ(xsk_ring_prod__reserve(fq, 64, &idx), 64u);
  for (std::uint32_t i = 0; i < 64; ++i)
    *xsk_ring_prod__fill_addr(fq, idx + i) = pagepool::page_dma_addr(pages[i]);
  xsk_ring_prod__submit(fq, 64);
  for (std::uint32_t i = 0; i < 64; ++i) {
    const std::uint64_t a = *xsk_ring_prod__fill_addr(fq, idx + i);
    EXPECT_EQ(umem->page_at(a), pages[i]);
  }
  // Full: the kernel has consumed nothing.
  std::uint32_t idx2 = 0;
  EXPECT_EQ(xsk_ring_prod__reserve(fq, 1, &idx2), 0u);
  EXPECT_EQ(xsk_prod_nb_free(fq, 1), 0u);
  // And nothing has completed.
  std::uint32_t cidx = 0;
  EXPECT_EQ(xsk_ring_cons__peek(umem->comp(), 32, &cidx), 0u);
  put_all(pages);
}

// Unaligned chunk mode takes higher orders: order-1 pages (8 KiB), frames
// of PAGE_SIZE, addresses anywhere inside a page.
TEST(UmemProvider, UnalignedModeTakesHigherOrders) {
  UMEM_REQUIRE_XDP();
  UmemProvider::Options o;
  o.unaligned = true;
  auto umem = std::make_shared<UmemProvider>(1, 2 * kMiB, -1, o);
  EXPECT_TRUE(umem->unaligned());
  EXPECT_EQ(umem->frame_size(), static_cast<std::uint32_t>(sysconf(_SC_PAGESIZE)));
  PoolPtr pool = make_pool(umem);
  std::vector<Page*> pages = alloc_n(*pool, 256);
  ASSERT_EQ(pages.size(), 256u);  // 2 MiB / 8 KiB
  EXPECT_EQ(pool->alloc_page(), nullptr);
  for (Page* p : pages) {
    const std::uint64_t dma = pagepool::page_dma_addr(p);
    ASSERT_EQ(dma % 8192, 0u);
    ASSERT_EQ(umem->page_at(dma + 5000), p);  // in the page's second 4 KiB
    ASSERT_EQ(pagepool::page_address(p), umem->base() + dma);
  }
  std::uint32_t idx = 0;
  ASSERT_EQ(xsk_ring_prod__reserve(umem->fill(), 2, &idx), 2u);
  *xsk_ring_prod__fill_addr(umem->fill(), idx) = pagepool::page_dma_addr(pages[0]) + 100;
  *xsk_ring_prod__fill_addr(umem->fill(), idx + 1) = pagepool::page_dma_addr(pages[0]) + 4096;
  xsk_ring_prod__submit(umem->fill(), 2);
  put_all(pages);
}

// ---- a packet into a pool page (bonus) ----------------------------------------

// libbpf / libxdp messages in the child, kept for a failure message
// instead of cluttering the test output.
std::string g_lib_log;

int capture_log(const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  g_lib_log += buf;
  return 0;
}
int capture_libbpf(libbpf_print_level, const char* fmt, va_list ap) { return capture_log(fmt, ap); }
int capture_libxdp(libxdp_print_level, const char* fmt, va_list ap) { return capture_log(fmt, ap); }

// In the forked child: a private network namespace with a veth pair
// ppx0 <-> ppx1, an xsk socket in copy mode on ppx0 queue 0 on this UMEM,
// pool pages in the fill ring, a frame sent on ppx1 through AF_PACKET.
// Nothing leaves the namespace; it and the veths vanish with the child.
std::string receive_into_pool_page() {
  if (std::string s = pptest::netns::enter_private_veth_pair(); !s.empty()) return s;
  // libxdp: attach the one program directly, no multiprog dispatcher (it
  // would want bpffs pins, which outlive this namespace).
  setenv("LIBXDP_SKIP_DISPATCHER", "1", 1);
  libbpf_set_print(capture_libbpf);
  libxdp_set_print(capture_libxdp);

  UmemProvider::Options o;
  o.fill_size = 64;
  o.comp_size = 64;
  auto umem = std::make_shared<UmemProvider>(0, 2 * kMiB, -1, o);
  PoolPtr pool = make_pool(umem);

  xsk_socket_config cfg{};
  cfg.rx_size = 64;
  cfg.tx_size = 0;
  cfg.xdp_flags = XDP_FLAGS_SKB_MODE;
  cfg.bind_flags = XDP_COPY;
  xsk_ring_cons rx{};
  xsk_socket* xsk = nullptr;
  const int rc = xsk_socket__create(&xsk, "ppx0", 0, umem->umem(), &rx, nullptr, &cfg);
  if (rc != 0)
    return std::string("SKIP: xsk_socket__create on veth (copy mode): ") + std::strerror(-rc) +
           "; libxdp said: " + g_lib_log;

  std::string result;
  std::vector<Page*> posted = alloc_until_fail(*pool, 32);
  std::set<Page*> posted_set(posted.begin(), posted.end());
  std::uint32_t idx = 0;
  if (posted.size() != 32 || xsk_ring_prod__reserve(umem->fill(), 32, &idx) != 32) {
    result = "could not post 32 pages to the fill ring";
  } else {
    for (std::uint32_t i = 0; i < 32; ++i)
      *xsk_ring_prod__fill_addr(umem->fill(), idx + i) = pagepool::page_dma_addr(posted[i]);
    xsk_ring_prod__submit(umem->fill(), 32);
  }

  // Broadcast frame, local experimental EtherType, a recognisable payload.
  unsigned char frame[14 + 64];
  std::memset(frame, 0xff, 6);
  const unsigned char src[6] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(frame + 6, src, 6);
  frame[12] = 0x88;
  frame[13] = 0xb5;
  for (std::size_t i = 14; i < sizeof frame; ++i) frame[i] = static_cast<unsigned char>(i * 7);
  std::memcpy(frame + 14, "pagepool-umem", 13);

  const int ps = socket(AF_PACKET, SOCK_RAW, 0);  // protocol 0: sends only
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_ifindex = static_cast<int>(if_nametoindex("ppx1"));
  sll.sll_halen = 6;
  std::memset(sll.sll_addr, 0xff, 6);
  if (result.empty() && (ps < 0 || sll.sll_ifindex == 0))
    result = std::string("AF_PACKET socket on ppx1: ") + std::strerror(errno);

  bool got = false;
  int others = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (result.empty() && !got && std::chrono::steady_clock::now() < deadline) {
    if (sendto(ps, frame, sizeof frame, 0, reinterpret_cast<sockaddr*>(&sll), sizeof sll) !=
        static_cast<ssize_t>(sizeof frame)) {
      result = std::string("sendto on ppx1: ") + std::strerror(errno);
      break;
    }
    pollfd pfd{xsk_socket__fd(xsk), POLLIN, 0};
    poll(&pfd, 1, 200);
    std::uint32_t ri = 0;
    const std::uint32_t n = xsk_ring_cons__peek(&rx, 64, &ri);
    for (std::uint32_t i = 0; i < n; ++i) {
      const xdp_desc* d = xsk_ring_cons__rx_desc(&rx, ri + i);
      Page* p = umem->page_at(d->addr);
      if (!p || !posted_set.count(p)) {
        result = "RX descriptor address " + std::to_string(d->addr) + " is not a posted pool page";
        break;
      }
      const std::uint64_t off = d->addr - pagepool::page_dma_addr(p);
      if (off + d->len > umem->frame_size()) {
        result = "RX buffer crosses its page";
        break;
      }
      const auto* data = static_cast<const unsigned char*>(pagepool::page_address(p)) + off;
      if (d->len == sizeof frame && std::memcmp(data, frame, sizeof frame) == 0)
        got = true;
      else
        ++others;
    }
    xsk_ring_cons__release(&rx, n);
  }
  if (result.empty() && !got)
    result = "no frame arrived within 5 s (" + std::to_string(others) + " other frames)";
  if (ps >= 0) close(ps);
  xsk_socket__delete(xsk);  // before the provider: it adopted umem->fill()
  put_all(posted);
  pool.reset();
  umem.reset();
  if (!result.empty() && !g_lib_log.empty()) result += "; libbpf/libxdp said: " + g_lib_log;
  return result;
}

TEST(UmemProvider, ReceivesIntoPoolPageOnVeth) {
  UMEM_REQUIRE_XDP();
  PPTEST_EXPECT_CHILD(pptest::netns::run_in_child(receive_into_pool_page, 30));
}

// ---- registration errors ---------------------------------------------------------

// Without CAP_IPC_LOCK the pinned region counts against RLIMIT_MEMLOCK; a
// region above it is refused, and the message says how to fix it.
TEST(UmemProvider, MemlockLimitNamedInError) {
  UMEM_REQUIRE_XDP();
  PPTEST_EXPECT_CHILD(pptest::netns::run_in_child(
      []() -> std::string {
        if (!pptest::netns::drop_effective_cap(CAP_IPC_LOCK))
          return "SKIP: cannot drop CAP_IPC_LOCK";
        const rlimit rl{kMiB, kMiB};
        if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0) return "SKIP: cannot lower RLIMIT_MEMLOCK";
        try {
          UmemProvider u(0, 4 * kMiB);
          return "a 4 MiB UMEM registered with RLIMIT_MEMLOCK at 1 MiB";
        } catch (const std::system_error& e) {
          const std::string w = e.what();
          if (e.code().value() != ENOBUFS)
            return "errno " + std::to_string(e.code().value()) + ": " + w;
          if (w.find("RLIMIT_MEMLOCK") == std::string::npos ||
              w.find("CAP_IPC_LOCK") == std::string::npos)
            return "message does not name the limit and the fix: " + w;
        }
        return "";
      },
      30));
}

TEST(UmemProvider, MissingCapNetRawNamedInError) {
  UMEM_REQUIRE_XDP();
  PPTEST_EXPECT_CHILD(pptest::netns::run_in_child(
      []() -> std::string {
        if (!pptest::netns::drop_effective_cap(CAP_NET_RAW)) return "SKIP: cannot drop CAP_NET_RAW";
        try {
          UmemProvider u(0, 2 * kMiB);
          return "registered a UMEM without CAP_NET_RAW";
        } catch (const std::system_error& e) {
          const std::string w = e.what();
          if (e.code().value() != EPERM)
            return "errno " + std::to_string(e.code().value()) + ": " + w;
          if (w.find("CAP_NET_RAW") == std::string::npos)
            return "message does not name CAP_NET_RAW: " + w;
        }
        return "";
      },
      30));
}

// ---- teardown -------------------------------------------------------------------

bool socket_inode_mapped(ino_t ino) {
  std::ifstream maps("/proc/self/maps");
  const std::string needle = "socket:[" + std::to_string(ino) + "]";
  for (std::string line; std::getline(maps, line);)
    if (line.find(needle) != std::string::npos) return true;
  return false;
}

// The pool goes with pages out; they come back later from another thread;
// the provider (held only by the pool) is freed after the last one, and
// with it the UMEM (its socket closed, its rings unmapped) and the region.
TEST(UmemProvider, TeardownAfterLastPage) {
  UMEM_REQUIRE_XDP();
  auto umem = std::make_shared<UmemProvider>(0, 2 * kMiB);
  std::weak_ptr<UmemProvider> weak = umem;
  const int fd = xsk_umem__fd(umem->umem());
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  const ino_t ino = st.st_ino;
  EXPECT_TRUE(socket_inode_mapped(ino)) << "the fill/completion rings are mapped";
  std::byte* const base = umem->base();

  PoolPtr pool = make_pool(std::move(umem));
  std::vector<Page*> pages = alloc_n(*pool, 300);
  ASSERT_EQ(pages.size(), 300u);
  for (Page* p : pages) std::memset(pagepool::page_address(p), 0xa5, 4096);
  Page* last = pages.back();
  pages.pop_back();

  pool.reset();  // 300 pages out
  EXPECT_FALSE(weak.expired());

  std::thread([&] {
    for (Page* p : pages) {
      EXPECT_EQ(static_cast<unsigned char*>(pagepool::page_address(p))[17], 0xa5);
      pagepool::put_page(p);
    }
    pagepool::flush_thread();
  }).join();
  EXPECT_FALSE(weak.expired()) << "freed with a page still out";

  std::thread([last] { pagepool::put_page(last); }).join();
  EXPECT_TRUE(weak.expired()) << "not freed after the last page";

  // The UMEM is gone: its socket is closed and its rings unmapped.
  EXPECT_FALSE(socket_inode_mapped(ino));
  struct stat st2 {};
  EXPECT_TRUE(fstat(fd, &st2) != 0 || st2.st_ino != ino) << "UMEM socket still open";
  // So is the region.
  unsigned char vec = 0;
  EXPECT_EQ(mincore(base, 4096, &vec), -1);
  EXPECT_EQ(errno, ENOMEM);
}

}  // namespace
