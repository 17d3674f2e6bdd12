// The xsk (AF_XDP) device: spec parsing and argument checks (no privileges
// needed), the one-line errors for a missing interface, missing privileges,
// a queue out of range and an interface already running XDP, and one frame
// through a veth pair (TX on one end's socket, RX on the other's) with the
// buffer ownership tracking and reclaim checked page by page.
//
// What needs root runs in a forked child inside a private network
// namespace; without root, AF_XDP or veth those tests skip with the reason.
#include <linux/capability.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "common/netns.hpp"
#include "pagepool/devices/xsk.hpp"
#include "pagepool/pagepool.hpp"

namespace {

using namespace pagepool::fwd;
using pagepool::Page;
using pagepool::Params;
using pagepool::Pool;
using pagepool::PoolPtr;

// ---- parse_xsk_spec ----------------------------------------------------------------

TEST(XskSpec, ParsesNameAndQueue) {
  XskSpec s = parse_xsk_spec("veth0");
  EXPECT_EQ(s.ifname, "veth0");
  EXPECT_EQ(s.queue, 0u);
  s = parse_xsk_spec("eth1:3");
  EXPECT_EQ(s.ifname, "eth1");
  EXPECT_EQ(s.queue, 3u);
  s = parse_xsk_spec("veth-a:65535");
  EXPECT_EQ(s.queue, 65535u);
  s = parse_xsk_spec("abcdefghijklmno");  // 15 bytes: the longest name
  EXPECT_EQ(s.ifname.size(), 15u);
}

TEST(XskSpec, RejectsBadSpecsWithOneLine) {
  const std::pair<const char*, const char*> bad[] = {
      {"", "no interface name"},
      {":1", "no interface name"},
      {"veth0:", "not a number"},
      {"veth0:x", "not a number"},
      {"veth0:-1", "not a number"},
      {"veth0:65536", "not a number"},
      {"veth0:1:2", "not a number"},
      {"veth0:123456", "not a number"},
      {"abcdefghijklmnop", "longer than 15"},
      {"a/b", "bad character"},
      {"a b", "bad character"},
  };
  for (const auto& [spec, needle] : bad) {
    try {
      parse_xsk_spec(spec);
      ADD_FAILURE() << "accepted '" << spec << "'";
    } catch (const std::invalid_argument& e) {
      const std::string w = e.what();
      EXPECT_NE(w.find(needle), std::string::npos) << spec << ": " << w;
      EXPECT_NE(w.find("IFNAME:QUEUE"), std::string::npos) << w;
      EXPECT_EQ(w.find('\n'), std::string::npos) << w;
    }
  }
}

// ---- arguments, checked before any system call ---------------------------------------

void expect_invalid(const std::vector<XskSpec>& specs, const XskOptions& o, const char* needle) {
  try {
    open_xsk_devices(specs, o);
    ADD_FAILURE() << "no exception; expected one mentioning \"" << needle << "\"";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(XskOpen, RejectsBadArguments) {
  const std::vector<XskSpec> one{{"lo", 0}};
  expect_invalid({}, {}, "no device");
  expect_invalid({{"lo", 0}, {"lo", 0}}, {}, "given twice");
  XskOptions o;
  o.ring_size = 1000;
  expect_invalid(one, o, "ring_size");
  o.ring_size = 32;
  expect_invalid(one, o, "ring_size");
  o = {};
  o.umem_bytes = 3 << 20;
  expect_invalid(one, o, "multiple of 2 MiB");
  o = {};
  o.tx_budget = 16;
  expect_invalid(one, o, "tx_budget");
}

// No privileges needed: the interface lookup comes first.
TEST(XskOpen, MissingInterfaceNamedInError) {
  try {
    open_xsk_devices({{"ppnosuchif0", 0}});
    ADD_FAILURE() << "opened a socket on a missing interface";
  } catch (const std::system_error& e) {
    const std::string w = e.what();
    EXPECT_EQ(e.code().value(), ENODEV);
    EXPECT_NE(w.find("no interface 'ppnosuchif0' in this network namespace"), std::string::npos) << w;
    EXPECT_NE(w.find("ip link show"), std::string::npos) << w;
    EXPECT_EQ(w.find('\n'), std::string::npos) << w;
  }
}

// In the child: root, a private network namespace with a veth pair
// ppx0 <-> ppx1 (both up, no IPv6 chatter) and AF_XDP sockets. "" or a
// SKIP/failure message.
std::string private_veth_pair() {
  if (geteuid() != 0) return "SKIP: needs root (network namespace, veth, AF_XDP)";
  if (std::string s = pptest::netns::enter_private_veth_pair(); !s.empty()) return s;
  const int fd = socket(AF_XDP, SOCK_RAW, 0);
  if (fd < 0) return std::string("SKIP: socket(AF_XDP): ") + std::strerror(errno);
  close(fd);
  return "";
}

// Message of the exception open_xsk_devices throws, or "" if it opens.
std::string open_error(const std::vector<XskSpec>& specs, const XskOptions& o = {}) {
  try {
    auto devs = open_xsk_devices(specs, o);
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

// ---- errors that need the kernel ---------------------------------------------------------

// Without CAP_NET_RAW (an unprivileged user, or root without it) the
// message says what AF_XDP needs. Runs as any user.
TEST(XskOpen, MissingPrivilegesNamedInError) {
  PPTEST_EXPECT_CHILD(pptest::netns::run_in_child(
      []() -> std::string {
        if (!pptest::netns::drop_effective_cap(CAP_NET_RAW)) return "SKIP: cannot drop CAP_NET_RAW";
        const int fd = socket(AF_XDP, SOCK_RAW, 0);
        if (fd >= 0) {
          close(fd);
          return "SKIP: AF_XDP sockets open without CAP_NET_RAW here";
        }
        if (errno == EAFNOSUPPORT) return "SKIP: no AF_XDP in this kernel";
        const std::string w = open_error({{"lo", 0}});
        if (w.find("AF_XDP needs root") == std::string::npos || w.find("CAP_NET_RAW") == std::string::npos ||
            w.find("CAP_BPF") == std::string::npos || w.find("CAP_NET_ADMIN") == std::string::npos)
          return "message does not name root and the capabilities: " + w;
        return "";
      },
      30));
}

TEST(XskOpen, QueueOutOfRangeNamedInError) {
  PPTEST_EXPECT_CHILD(pptest::netns::run_in_child(
      []() -> std::string {
        if (std::string s = private_veth_pair(); !s.empty()) return s;
        const std::string w = open_error({{"ppx0", 5}});
        if (w.find("queue 5 out of range") == std::string::npos || w.find("has 1 queue") == std::string::npos)
          return "unexpected message: " + w;
        return "";
      },
      30));
}

// The device's own program is on the interface: a second forwarder (or
// anything else with XDP) is refused, with the command that removes it.
TEST(XskOpen, InterfaceWithXdpProgramNamedInError) {
  PPTEST_EXPECT_CHILD(pptest::netns::run_in_child(
      []() -> std::string {
        if (std::string s = private_veth_pair(); !s.empty()) return s;
        auto devs = open_xsk_devices({{"ppx0", 0}});
        const std::string w = open_error({{"ppx0", 0}});
        if (w.find("'ppx0' already has an XDP program") == std::string::npos ||
            w.find("ip link set dev ppx0 xdp off") == std::string::npos)
          return "unexpected message: " + w;
        // And nothing of the failed attempt stays behind: after the first
        // devices go, the interface takes a socket again.
        devs.clear();
        if (std::string w2 = open_error({{"ppx0", 0}}); !w2.empty()) return "reopen failed: " + w2;
        return "";
      },
      30));
}

// ---- one frame through a veth pair ------------------------------------------------------

PoolPtr make_pool(const Device& d, const char* name) {
  Params p;
  p.order = 0;
  p.flags = pagepool::kDmaMap;
  p.pool_size = 1024;
  p.name = name;
  p.provider = d.provider();
  return Pool::create(p);
}

// Device 0 on ppx0 sends one frame; it crosses the veth and device 1's
// socket on ppx1 receives it into a posted page of its pool. Checks the
// shared provider, the headroom, the frame bytes, the counters, and that
// reclaim hands back exactly the pages still posted, so both pools end at
// inflight 0. `bind`: kAuto probes zero-copy first; kCopy binds copy mode
// straight away (its probe socket binds, and the queue stays busy a moment
// after it closes: the first socket must wait that out on a fresh UMEM).
std::string one_frame_through_veth(XskBind bind) {
  if (std::string s = private_veth_pair(); !s.empty()) return s;
  XskOptions o;
  o.ring_size = 256;
  o.bind = bind;
  auto devs = open_xsk_devices({{"ppx0", 0}, {"ppx1", 0}}, o);
  if (devs.size() != 2) return "expected 2 devices";
  Device& tx = *devs[0];
  Device& rx = *devs[1];
  if (tx.name() != "xsk:ppx0:0" || rx.name() != "xsk:ppx1:0") return "names: " + tx.name() + ", " + rx.name();
  if (!tx.provider() || tx.provider() != rx.provider()) return "the devices do not share one provider";
  if (tx.heap_ok()) return "heap_ok() on an AF_XDP device";
  if (tx.rx_headroom() != 256) return "rx_headroom " + std::to_string(tx.rx_headroom()) + ", want 256";
  if (tx.rx_ring_size() != 256) return "rx_ring_size " + std::to_string(tx.rx_ring_size());
  if (tx.rx_queue() != 0 || rx.rx_queue() != 0) return "rx_queue not 0 on queue 0";
  XskInfo i0, i1;
  if (!xsk_info(tx, &i0) || !xsk_info(rx, &i1)) return "xsk_info failed";
  if (!i0.owns_umem_socket || i1.owns_umem_socket) return "UMEM socket owner is not the first device";
  if (i0.zero_copy) return "veth bound zero-copy";
  if (!i0.native_xdp) return "veth program not attached in native mode";

  PoolPtr pool_tx = make_pool(tx, "xsk-tx");
  PoolPtr pool_rx = make_pool(rx, "xsk-rx");
  // Post 64 pages on the receiver; a heap block and a repeated page are refused.
  std::vector<Buf> posted;
  for (int k = 0; k < 64; ++k) {
    Page* p = pool_rx->alloc_page();
    if (!p) return "pool_rx alloc failed";
    posted.push_back(Buf{static_cast<std::byte*>(pagepool::page_address(p)), p});
  }
  alignas(4096) static std::byte heap_block[4096];
  const Buf heap{heap_block, nullptr};
  if (rx.fill(&heap, 1) != 0) return "fill() took a heap block";
  if (rx.fill(posted.data(), 64) != 64) return "fill() took fewer than 64 pages";
  if (rx.fill(posted.data(), 1) != 0) return "fill() took a page already posted";

  // The frame: broadcast, a local EtherType, a recognisable payload.
  Page* p = pool_tx->alloc_page();
  if (!p) return "pool_tx alloc failed";
  std::byte* base = static_cast<std::byte*>(pagepool::page_address(p));
  constexpr std::uint32_t kOff = 300, kLen = 100;
  unsigned char* f = reinterpret_cast<unsigned char*>(base + kOff);
  std::memset(f, 0xff, 6);
  const unsigned char src[6] = {0x02, 0x77, 0, 0, 0, 0x09};
  std::memcpy(f + 6, src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  for (std::uint32_t k = 14; k < kLen; ++k) f[k] = static_cast<unsigned char>(k * 13);
  std::memcpy(f + 14, "pagepool-xsk", 12);
  std::vector<unsigned char> sent(f, f + kLen);
  const Frame fr{Buf{base, p}, kOff, kLen};
  if (tx.tx(&fr, 1) != 1) return "tx() refused the frame";
  if (tx.tx(&fr, 1) != 0) return "tx() took the same page twice";
  if (tx.tx_outstanding() != 1) return "tx_outstanding " + std::to_string(tx.tx_outstanding()) + ", want 1";

  bool completed = false, received = false;
  int others = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((!completed || !received) && std::chrono::steady_clock::now() < deadline) {
    Buf done[8];
    for (std::uint32_t n = tx.complete(done, 8), k = 0; k < n; ++k) {
      if (done[k].page != p || done[k].base != base) return "completion returned another buffer";
      completed = true;
      pagepool::put_page(done[k].page);
    }
    Frame in[8];
    for (std::uint32_t n = rx.rx(in, 8), k = 0; k < n; ++k) {
      const Frame& g = in[k];
      if (g.off != rx.rx_headroom()) return "RX frame at offset " + std::to_string(g.off);
      if (pagepool::page_pool(g.buf.page) != pool_rx.get()) return "RX frame in a page not from pool_rx";
      if (g.len == kLen && std::memcmp(g.buf.base + g.off, sent.data(), kLen) == 0)
        received = true;
      else
        ++others;
      pagepool::put_page(g.buf.page);
    }
  }
  if (!completed) return "no TX completion within 5 s";
  if (!received) return "frame not received within 5 s (" + std::to_string(others) + " others)";
  if (tx.tx_outstanding() != 0) return "tx_outstanding not 0 after the completion";
  const DeviceStats st = tx.stats(), sr = rx.stats();
  // tx_ring_full: every refused frame (here the page offered twice).
  if (st.tx_frames != 1 || st.tx_completed != 1 || st.tx_ring_full != 1)
    return "TX counters: tx_frames " + std::to_string(st.tx_frames) + ", tx_completed " +
           std::to_string(st.tx_completed) + ", tx_ring_full " + std::to_string(st.tx_ring_full);
  if (sr.rx_frames != 1u + static_cast<unsigned>(others) || sr.rx_no_buf != 0) return "RX counters wrong";

  // Reclaim: the receiver hands back the 63 pages still posted, the sender none.
  tx.quiesce();
  rx.quiesce();
  std::set<Page*> back;
  for (Device* d : {&rx, &tx}) {
    Buf b[16];
    while (const std::uint32_t n = d->reclaim(b, 16))
      for (std::uint32_t k = 0; k < n; ++k) {
        if (!back.insert(b[k].page).second) return "reclaim returned a page twice";
        pagepool::put_page(b[k].page);
      }
  }
  if (back.size() != 63u - static_cast<unsigned>(others))
    return "reclaim returned " + std::to_string(back.size()) + " pages, want " + std::to_string(63 - others);
  if (rx.stats().reclaimed + tx.stats().reclaimed != back.size())
    return "reclaimed counters " + std::to_string(rx.stats().reclaimed) + " + " +
           std::to_string(tx.stats().reclaimed) + ", want " + std::to_string(back.size());
  // The socket is gone: polling calls find nothing, tx() refuses.
  Frame fx[4];
  Buf bx[4];
  if (rx.rx(fx, 4) != 0 || tx.complete(bx, 4) != 0 || rx.fill_room() != 0 || rx.fill(posted.data(), 1) != 0)
    return "a polling call did something after reclaim()";
  if (tx.tx(&fr, 1) != 0 || tx.tx_outstanding() != 0) return "tx() took a frame after reclaim()";
  if (pool_rx->inflight() != 0 || pool_tx->inflight() != 0)
    return "inflight after reclaim: rx " + std::to_string(pool_rx->inflight()) + ", tx " +
           std::to_string(pool_tx->inflight());
  XskInfo after;
  xsk_info(rx, &after);
  if (after.bad_addr != 0) return "bad addresses counted: " + std::to_string(after.bad_addr);
  if (after.bad_buf != 2) return "refused buffers " + std::to_string(after.bad_buf) + ", want 2";
  return "";
}

TEST(XskDevice, OneFrameThroughVethAndReclaim) {
  PPTEST_EXPECT_CHILD(pptest::netns::run_in_child([] { return one_frame_through_veth(XskBind::kAuto); }, 60));
}

TEST(XskDevice, OneFrameThroughVethInCopyModeAsked) {
  PPTEST_EXPECT_CHILD(pptest::netns::run_in_child([] { return one_frame_through_veth(XskBind::kCopy); }, 60));
}

}  // namespace
