// pagepool: the xsk device — an AF_XDP socket as a forwarder device.
//
// open_xsk_devices() opens one AF_XDP socket per XskSpec (interface and
// queue), all on ONE UMEM: one UmemProvider, which every device returns
// from provider(), so the forwarder's per-device pools all carve their
// pages from the region the kernel can reach, and a frame received on one
// socket is transmitted on another without a copy. The first socket is
// created on the provider's fill and completion rings, the others with
// xsk_socket__create_shared and rings of their own (a UMEM shared across
// interfaces needs a fill/completion pair per interface and queue).
//
// The device maps the Device calls onto the socket's four rings:
//   fill()     -> fill ring        rx()       <- RX ring
//   tx()       -> TX ring + kick   complete() <- completion ring
// A buffer is a whole pool page (one 4096-byte UMEM frame, aligned mode).
// RX frames start at rx_headroom() (XDP_PACKET_HEADROOM, 256, plus the
// UMEM's frame headroom); a TX frame may sit anywhere inside its page.
//
// Ownership tracking. The device keeps a byte per UMEM frame: posted to its
// fill ring, or queued on its TX ring. An RX or completion address that
// names a frame the device did not give the kernel (foreign, a duplicate,
// out of the region) is counted (XskInfo::bad_addr) and skipped instead of
// reaching a pool; reclaim() hands back every frame still marked, which is
// exact once the socket is deleted (the kernel then holds none of them).
//
// XDP program. Per interface, the device loads a five-instruction program
// that redirects each frame to the socket of its RX queue (XSKMAP, absent
// socket: XDP_PASS) and attaches it in native mode where the driver has it,
// else in generic mode (XskOptions::attach). It refuses to replace another
// program and detaches its own when the interface's last socket goes.
//
// Modes. Zero-copy where the driver has it, else copy (XskOptions::bind).
// In copy mode the kernel transmits only inside a sendto() on the socket
// ("kick"): tx() kicks once per batch when the TX ring asks for a wakeup
// (XDP_USE_NEED_WAKEUP) and lets one kick send the whole ring
// (XDP_MAX_TX_SKB_BUDGET, Linux >= 6.17); a kick the kernel could not
// finish (completion ring full, device busy) is retried from complete().
//
// Threads, as the Device contract says: fill/rx/complete/reclaim on the
// device's polling thread; tx() from any thread, serialised by a spinlock
// once per batch; tx_outstanding() and stats() from any thread.
//
// Lifetime. Every device holds the provider (shared_ptr), so the UMEM
// outlives the sockets. reclaim() (or the destructor, which also returns
// what it still holds with put_page) deletes the socket first. The kernel
// socket of the FIRST device is the UMEM's own and stays bound until the
// provider goes (libxdp never closes it before xsk_umem__delete); its
// XSKMAP entry is removed and, when it was its interface's last socket, the
// program detached (which waits for running NAPI polls) before reclaim()
// hands its frames back, so nothing is written into them afterwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pagepool/fwd/device.hpp"

namespace pagepool::fwd {

// One AF_XDP socket: interface and queue.
struct XskSpec {
  std::string ifname;
  std::uint32_t queue = 0;
};

// "IFNAME" or "IFNAME:QUEUE" (what follows "xsk:" on the command line).
// Any thread. Throws std::invalid_argument with a one-line message for an
// empty or too long (> 15 bytes) name, a name with '/' or blanks, or a
// queue that is not a number in 0..65535.
XskSpec parse_xsk_spec(std::string_view s);

enum class XskBind : std::uint8_t {
  kAuto,      // zero-copy, else copy (veth: copy)
  kCopy,      // XDP_COPY
  kZeroCopy,  // XDP_ZEROCOPY, fail if the driver has none
};
enum class XskAttach : std::uint8_t {
  kAuto,     // native (driver) XDP, else generic
  kNative,   // XDP_FLAGS_DRV_MODE
  kGeneric,  // XDP_FLAGS_SKB_MODE
};

struct XskOptions {
  // Entries of every ring (fill, RX, TX, completion): power of two, 64..65536.
  std::uint32_t ring_size = 2048;
  // Bytes of the shared UMEM: 0 = sized for the devices — 4 rings' worth of
  // 4096-byte frames per device (a full fill ring, RX ring, TX ring and
  // completion ring) plus 2 MiB, rounded up to 2 MiB: 34 MiB per device at
  // the default ring size. Otherwise a non-zero multiple of 2 MiB. The whole
  // region is pinned (RLIMIT_MEMLOCK without CAP_IPC_LOCK). When it runs
  // out, pool allocations fail and the forwarder posts fewer buffers.
  std::size_t umem_bytes = 0;
  XskBind bind = XskBind::kAuto;
  XskAttach attach = XskAttach::kAuto;
  // XDP_USE_NEED_WAKEUP: kick the kernel only when a ring asks for it.
  // Copy-mode TX always asks; zero-copy drivers ask only when idle.
  bool need_wakeup = true;
  // Frames one kick may transmit in copy mode (XDP_MAX_TX_SKB_BUDGET,
  // 32..ring_size; 0 = ring_size). Kernels before 6.17 send 32 per kick and
  // ignore this.
  std::uint32_t tx_budget = 0;
  // Bytes the kernel leaves free before each received frame, on top of
  // XDP_PACKET_HEADROOM (UmemProvider::Options::frame_headroom).
  std::uint32_t frame_headroom = 0;
};

// Control thread, once. Opens every socket (all on one UmemProvider) and
// returns the devices in spec order. Throws, with a one-line message naming
// the missing piece and the fix:
//  std::invalid_argument  no spec, a spec given twice, a bad option;
//  std::system_error      no such interface in this network namespace, a
//                         queue out of range, missing privileges (AF_XDP
//                         needs root, or CAP_NET_RAW + CAP_NET_ADMIN +
//                         CAP_BPF), no AF_XDP in the kernel, an XDP program
//                         already on the interface, the queue already taken,
//                         the UMEM refused (RLIMIT_MEMLOCK...).
// Nothing stays open or attached after a throw. A queue whose previous
// socket closed a moment ago is still busy while the kernel releases it
// (from a workqueue): open waits up to 200 ms for it, for the zero-copy
// probe and again for each device's socket. Zero-copy support
// (XskBind::kAuto) is probed with a throwaway 64-frame UMEM and socket.
std::vector<std::unique_ptr<Device>> open_xsk_devices(const std::vector<XskSpec>& specs,
                                                      const XskOptions& options = {});

// What an xsk device chose and what the kernel counted (XDP_STATISTICS,
// read at the call; frozen at the values the socket had when reclaim()
// deleted it).
struct XskInfo {
  std::string ifname;
  std::uint32_t queue = 0;
  bool zero_copy = false;        // bound XDP_ZEROCOPY (else copy)
  bool native_xdp = false;       // program attached in driver mode (else generic)
  bool need_wakeup = false;
  bool owns_umem_socket = false; // the first socket: the UMEM's own
  std::uint32_t tx_budget = 0;   // frames per kick the kernel took; 0 = its default (32)
  // kernel, struct xdp_statistics
  std::uint64_t rx_dropped = 0;          // no fill buffer (or frame too large)
  std::uint64_t rx_invalid_descs = 0;
  std::uint64_t tx_invalid_descs = 0;
  std::uint64_t rx_ring_full = 0;        // RX ring full
  std::uint64_t rx_fill_ring_empty_descs = 0;
  std::uint64_t tx_ring_empty_descs = 0;
  // device
  std::uint64_t bad_addr = 0;  // RX/completion addresses of frames not given to the kernel here
  // Bad buffers met by fill()/tx(): not a UMEM frame, already queued, bad
  // bounds. Each ends its call's batch there: it and the rest of the batch
  // are refused (tx(): counted in DeviceStats::tx_ring_full as well, and the
  // forwarder drops them as tx_full).
  std::uint64_t bad_buf = 0;
  std::uint64_t kicks = 0;     // sendto() wakeups
  std::uint64_t kick_retries = 0;  // kicks that left frames in the TX ring (retried)
};

// Any thread. Fills *out and returns true if d is an xsk device.
bool xsk_info(const Device& d, XskInfo* out);

}  // namespace pagepool::fwd
