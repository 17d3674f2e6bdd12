// The xsk device: AF_XDP sockets on one shared UMEM (see
// include/pagepool/devices/xsk.hpp for the model and the rules).
//
// Layout of this file: setup helpers (spec parsing, interface checks, the
// XDP program), the device (data path first, then teardown), and
// open_xsk_devices.
#include "pagepool/devices/xsk.hpp"

#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "pagepool/pagepool.hpp"
#include "pagepool/providers/umem.hpp"

#include "devices/libbpf_log.hpp"
#include "fwd/polling.hpp"

#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9  // Linux 6.17 uapi (linux/if_xdp.h)
#endif

namespace pagepool::fwd {

namespace {

// One UMEM frame = one order-0 pool page (aligned mode).
constexpr std::uint32_t kFrame = kBufBytes;
static_assert(kFrame == 4096, "aligned UMEM mode: a frame is a page");
// XDP_PACKET_HEADROOM: the kernel's room in front of every RX frame.
constexpr std::uint32_t kXdpHeadroom = 256;
constexpr std::size_t kTwoMiB = std::size_t{2} << 20;

using detail::LibbpfCapture;  // held by open_xsk_devices: setup's messages go to errors
// The captured messages for an error ("" if none).
std::string libbpf_said() {
  const std::string s = detail::take_libbpf_log(1024);
  return s.empty() ? "" : " [libbpf: " + s + "]";
}

[[noreturn]] void bad_arg(const std::string& what) { throw std::invalid_argument("xsk: " + what); }
[[noreturn]] void sys_fail(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), "xsk: " + what + libbpf_said());
}

std::string spec_name(const XskSpec& s) { return s.ifname + ":" + std::to_string(s.queue); }

// ---- interface checks (control thread) ------------------------------------------

// Queues an AF_XDP socket may bind on `ifname` (bind needs qid < both the
// real RX and TX queue counts), or 0 if the driver does not say (then the
// bind itself is the check).
std::uint32_t queue_count(const std::string& ifname) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  ethtool_channels ch{};
  ch.cmd = ETHTOOL_GCHANNELS;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(&ch);
  const int rc = ioctl(fd, SIOCETHTOOL, &ifr);
  close(fd);
  if (rc != 0) return 0;
  const std::uint32_t rx = ch.combined_count + ch.rx_count;
  const std::uint32_t tx = ch.combined_count + ch.tx_count;
  if (rx == 0 || tx == 0) return std::max(rx, tx);
  return std::min(rx, tx);
}

// socket(AF_XDP) as the privilege and kernel check, before anything is
// pinned or attached.
void check_af_xdp() {
  const int fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    close(fd);
    return;
  }
  const int e = errno;
  if (e == EPERM || e == EACCES)
    sys_fail(e, "AF_XDP needs root, or CAP_NET_RAW + CAP_NET_ADMIN + CAP_BPF");
  if (e == EAFNOSUPPORT) sys_fail(e, "the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)");
  sys_fail(e, "socket(AF_XDP) failed");
}

// Binds a throwaway socket (64-frame UMEM, no program) on the spec's
// interface and queue; returns 0 or the errno. Used before the first real
// socket, which is the UMEM's own: a failed bind leaves that socket with
// its rings set up, and libxdp cannot bind it again. So the probe answers
// the questions a failure would: zero-copy support (EOPNOTSUPP), and a
// queue still held by a socket closed a moment ago (EBUSY: the kernel
// releases the queue from a workqueue).
int probe_bind(const XskSpec& s, bool zero_copy) {
  constexpr std::uint32_t kFrames = 64;
  const std::size_t bytes = std::size_t{kFrames} * kFrame;
  void* area = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) return ENOMEM;
  xsk_umem* umem = nullptr;
  xsk_ring_prod fq{};
  xsk_ring_cons cq{};
  const xsk_umem_config uc{kFrames, kFrames, kFrame, 0, 0};
  int rc = xsk_umem__create(&umem, area, bytes, &fq, &cq, &uc);
  if (rc == 0) {
    xsk_socket_config sc{};
    sc.rx_size = kFrames;
    sc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
    sc.bind_flags = zero_copy ? XDP_ZEROCOPY : XDP_COPY;
    xsk_socket* xsk = nullptr;
    xsk_ring_cons rx{};
    rc = xsk_socket__create(&xsk, s.ifname.c_str(), s.queue, umem, &rx, nullptr, &sc);
    if (rc == 0) xsk_socket__delete(xsk);
    xsk_umem__delete(umem);
  }
  munmap(area, bytes);
  return -rc;
}

// How long a queue may stay busy after its last socket closed (the
// kernel's deferred release), and the pause between attempts.
constexpr int kBusyTries = 100;
constexpr useconds_t kBusyPauseUs = 2000;

// ---- the XDP program, one per interface ------------------------------------------

// Redirects every frame to the AF_XDP socket of its RX queue; XDP_PASS where
// the queue has none. Shared by the devices on one interface; detached
// (and the map freed) with the last of them.
class XdpProgram {
 public:
  XdpProgram(const std::string& ifname, unsigned ifindex, std::uint32_t queues, XskAttach attach)
      : ifindex_(ifindex) {
    map_fd_ = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "pagepool_xsks", sizeof(std::uint32_t),
                             sizeof(std::int32_t), queues, nullptr);
    if (map_fd_ < 0) fail_bpf(errno, "creating the XSKMAP for '" + ifname + "'");
    const bpf_insn insns[] = {
        // r2 = ctx->rx_queue_index
        {BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1,
         static_cast<__s16>(offsetof(xdp_md, rx_queue_index)), 0},
        // r1 = the XSKMAP (a 16-byte load: two instructions)
        {BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd_},
        {0, 0, 0, 0, 0},
        // r3 = XDP_PASS: the action when the queue has no socket
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, XDP_PASS},
        // return bpf_redirect_map(r1, r2, r3)
        {BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect_map},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    char log[1024] = {};
    LIBBPF_OPTS(bpf_prog_load_opts, po, .log_level = 0, .log_size = sizeof log, .log_buf = log);
    prog_fd_ = bpf_prog_load(BPF_PROG_TYPE_XDP, "pagepool_xsk", "Dual MIT/GPL", insns,
                             sizeof insns / sizeof insns[0], &po);
    if (prog_fd_ < 0) {
      const int e = errno;
      close(map_fd_);
      fail_bpf(e, "loading the XDP program for '" + ifname + "'");
    }
    int rc = -EOPNOTSUPP;
    if (attach != XskAttach::kGeneric) {
      rc = bpf_xdp_attach(static_cast<int>(ifindex), prog_fd_,
                          XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_DRV_MODE, nullptr);
      native_ = rc == 0;
    }
    // No native XDP in the driver: generic XDP works on every interface.
    if (rc != 0 && attach != XskAttach::kNative && rc != -EBUSY && rc != -EEXIST &&
        rc != -EPERM && rc != -EACCES)
      rc = bpf_xdp_attach(static_cast<int>(ifindex), prog_fd_,
                          XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_SKB_MODE, nullptr);
    if (rc != 0) {
      close(prog_fd_);
      close(map_fd_);
      const int e = -rc;
      if (e == EBUSY || e == EEXIST)
        sys_fail(e, "'" + ifname + "' already has an XDP program (remove it: ip link set dev " +
                        ifname + " xdp off)");
      if (e == EPERM || e == EACCES)
        sys_fail(e, "attaching XDP to '" + ifname + "' needs root, or CAP_NET_ADMIN + CAP_BPF");
      sys_fail(e, std::string("attaching the XDP program to '") + ifname + "' (" +
                      (attach == XskAttach::kNative ? "native mode" : "native or generic mode") +
                      ")");
    }
  }
  XdpProgram(const XdpProgram&) = delete;
  XdpProgram& operator=(const XdpProgram&) = delete;
  ~XdpProgram() {
    // Only our program (XDP_FLAGS_REPLACE with ours as the expected one).
    // Detaching waits for running NAPI polls (native mode: the driver
    // disables its XDP path), so no frame is redirected after this.
    LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = prog_fd_);
    bpf_xdp_detach(static_cast<int>(ifindex_), native_ ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE,
                   &o);
    close(prog_fd_);
    close(map_fd_);
  }

  bool native() const noexcept { return native_; }
  int add(std::uint32_t queue, int xsk_fd) noexcept {
    return bpf_map_update_elem(map_fd_, &queue, &xsk_fd, 0) == 0 ? 0 : errno;
  }
  void remove(std::uint32_t queue) noexcept { bpf_map_delete_elem(map_fd_, &queue); }

 private:
  [[noreturn]] static void fail_bpf(int e, const std::string& what) {
    if (e == EPERM || e == EACCES)
      sys_fail(e, what + " needs root, or CAP_BPF + CAP_NET_ADMIN");
    sys_fail(e, what);
  }

  unsigned ifindex_;
  int map_fd_ = -1;
  int prog_fd_ = -1;
  bool native_ = false;
};

// ---- the device ------------------------------------------------------------------

using detail::SpinLock;

// Who holds a UMEM frame, from this device's point of view. Written by the
// polling thread (posted, and back to free at RX / completion) and by
// tx() under the lock (in TX). The kernel rings order these accesses
// (a frame is handed over by a ring store-release and comes back through
// a ring load-acquire), so relaxed atomics suffice; they make the byte
// array race-free for the compiler and TSan.
enum : std::uint8_t { kFree = 0, kPosted = 1, kInTx = 2 };

// Counters with a single writer at a time (the polling thread, or tx()
// under the lock).
using Counter = pagepool::detail::Counter;

struct SocketSetup {
  std::string ifname;
  std::uint32_t queue;
  bool first;
  bool zero_copy;
  bool need_wakeup;
  std::uint32_t ring;
  std::uint32_t tx_budget;
};

class XskDevice final : public Device {
 public:
  // Control thread. Creates and binds the socket and registers it in the
  // interface's XSKMAP; throws std::system_error (nothing left open).
  XskDevice(const SocketSetup& s, std::shared_ptr<UmemProvider> umem,
            std::shared_ptr<XdpProgram> prog)
      : name_("xsk:" + s.ifname + ":" + std::to_string(s.queue)),
        ifname_(s.ifname),
        queue_(s.queue),
        umem_(std::move(umem)),
        prog_(std::move(prog)),
        base_(umem_->base()),
        frames_(static_cast<std::uint32_t>(umem_->size() / kFrame)),
        ring_(s.ring),
        headroom_(kXdpHeadroom + umem_->frame_headroom()),
        first_(s.first),
        prog_native_(prog_->native()),
        zero_copy_(s.zero_copy),
        need_wakeup_(s.need_wakeup),
        held_(std::make_unique<std::atomic<std::uint8_t>[]>(frames_)) {
    xsk_socket_config cfg{};
    cfg.rx_size = s.ring;
    cfg.tx_size = s.ring;
    cfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;  // ours: XdpProgram
    // Ignored by the kernel for all but the first socket: the others share
    // its UMEM (XDP_SHARED_UMEM) and inherit its mode.
    cfg.bind_flags = static_cast<std::uint16_t>((s.zero_copy ? XDP_ZEROCOPY : XDP_COPY) |
                                                (s.need_wakeup ? XDP_USE_NEED_WAKEUP : 0));
    if (first_) {
      fq_ = umem_->fill();
      cq_ = umem_->comp();
    } else {
      fq_ = &own_fq_;
      cq_ = &own_cq_;
    }
    const int rc = xsk_socket__create_shared(&xsk_, ifname_.c_str(), queue_, umem_->umem(), &rx_,
                                             &tx_, fq_, cq_, &cfg);
    if (rc != 0) {
      const int e = -rc;
      const std::string where = "AF_XDP socket on '" + ifname_ + "' queue " + std::to_string(queue_);
      if (e == EBUSY) sys_fail(e, where + ": the queue already has an AF_XDP socket");
      if (e == EOPNOTSUPP && s.zero_copy) sys_fail(e, where + ": the driver has no zero-copy mode");
      if (e == EINVAL) sys_fail(e, where + ": refused (queue out of range? ethtool -l " + ifname_ + ")");
      if (e == EPERM || e == EACCES) sys_fail(e, where + ": needs root, or CAP_NET_RAW");
      sys_fail(e, where);
    }
    fd_ = xsk_socket__fd(xsk_);
    alive_ = true;
    // Let one kick send up to the whole ring (copy mode; default 32).
    const unsigned budget = s.tx_budget;
    if (!zero_copy_ && setsockopt(fd_, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof budget) == 0)
      tx_budget_ = budget;
    if (const int e = prog_->add(queue_, fd_); e != 0) {
      close_socket();
      sys_fail(e, "adding the socket of '" + ifname_ + "' queue " + std::to_string(queue_) +
                      " to the XSKMAP");
    }
  }

  ~XskDevice() override {
    // Not reclaimed (an error path, or a caller that skipped reclaim): the
    // frames still marked are ours to end; put them back to their pools.
    close_socket();
    Buf bufs[64];
    while (const std::uint32_t n = reclaim(bufs, 64))
      for (std::uint32_t i = 0; i < n; ++i) put_page(bufs[i].page);
  }

  const std::string& name() const noexcept override { return name_; }
  std::shared_ptr<Provider> provider() const override { return umem_; }
  bool heap_ok() const noexcept override { return false; }
  std::uint32_t rx_ring_size() const noexcept override { return ring_; }
  std::uint32_t rx_queue() const noexcept override { return queue_; }
  std::uint32_t rx_headroom() const noexcept override { return headroom_; }

  // ---- polling thread ----------------------------------------------------------

  // After reclaim() the rings are unmapped: every polling-thread call
  // returns 0 then (one predictable test of a byte the thread owns).
  std::uint32_t fill_room() noexcept override {
    return closed_ ? 0 : xsk_prod_nb_free(fq_, ring_);
  }

  std::uint32_t fill(const Buf* bufs, std::uint32_t n) noexcept override {
    if (closed_) return 0;
    std::uint32_t k = std::min(n, xsk_prod_nb_free(fq_, n));
    if (k == 0) return 0;
    std::uint32_t idx = 0;
    xsk_ring_prod__reserve(fq_, k, &idx);  // k <= free: cannot fail
    std::uint32_t i = 0;
    for (; i < k; ++i) {
      const std::uint64_t a = frame_addr(bufs[i].base);
      if (a == kBadAddr || held(a).load(std::memory_order_relaxed) != kFree) break;
      held(a).store(kPosted, std::memory_order_relaxed);
      *xsk_ring_prod__fill_addr(fq_, idx + i) = a;
    }
    if (i < k) {
      bad_buf_.add(1);
      fq_->cached_prod -= k - i;  // give back the unused reservation
    }
    if (i) {
      xsk_ring_prod__submit(fq_, i);
      // Zero-copy drivers sleep when out of buffers; copy mode never asks.
      if (need_wakeup_ && xsk_ring_prod__needs_wakeup(fq_)) wake_rx();
    }
    return i;
  }

  std::uint32_t rx(Frame* out, std::uint32_t budget) noexcept override {
    if (closed_) return 0;
    std::uint32_t idx = 0;
    const std::uint32_t n = xsk_ring_cons__peek(&rx_, budget, &idx);
    if (n == 0) {
      if (need_wakeup_ && xsk_ring_prod__needs_wakeup(fq_)) wake_rx();
      return 0;
    }
    std::uint32_t k = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      const xdp_desc* d = xsk_ring_cons__rx_desc(&rx_, idx + i);
      const std::uint64_t a = d->addr & ~std::uint64_t{kFrame - 1};
      const std::uint64_t off = d->addr - a;
      if (a >= size() || held(a).load(std::memory_order_relaxed) != kPosted ||
          off + d->len > kFrame) {
        ++bad_now_;  // not posted here (or impossible bounds): never reaches a pool
        continue;
      }
      held(a).store(kFree, std::memory_order_relaxed);
      std::byte* b = base_ + a;
      out[k++] = Frame{Buf{b, virt_to_page(b)}, static_cast<std::uint32_t>(off), d->len};
    }
    // Released at once, frames taken: the RX ring never waits for a TX
    // reservation elsewhere (a held peek would stall the socket).
    xsk_ring_cons__release(&rx_, n);
    rx_frames_.add(k);
    if (bad_now_) flush_bad();
    return k;
  }

  std::uint32_t complete(Buf* out, std::uint32_t budget) noexcept override {
    if (closed_) return 0;
    if (kick_pending_.load(std::memory_order_relaxed) && tx_lock_.try_lock()) {
      if (alive_) kick_tx();
      tx_lock_.unlock();
    }
    std::uint32_t idx = 0;
    const std::uint32_t n = xsk_ring_cons__peek(cq_, budget, &idx);
    if (n == 0) return 0;
    std::uint32_t k = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      // The address of the TX descriptor: frame plus the data offset.
      const std::uint64_t a = *xsk_ring_cons__comp_addr(cq_, idx + i) & ~std::uint64_t{kFrame - 1};
      if (a >= size() || held(a).load(std::memory_order_relaxed) != kInTx) {
        ++bad_now_;
        continue;
      }
      held(a).store(kFree, std::memory_order_relaxed);
      std::byte* b = base_ + a;
      out[k++] = Buf{b, virt_to_page(b)};
    }
    xsk_ring_cons__release(cq_, n);
    // Release: a reader seeing the count drop also sees the frames taken.
    outstanding_.fetch_sub(k, std::memory_order_release);
    tx_completed_.add(k);
    if (bad_now_) flush_bad();
    return k;
  }

  // ---- any thread ------------------------------------------------------------------

  std::uint32_t tx(const Frame* frames, std::uint32_t n) noexcept override {
    if (n == 0) return 0;
    tx_lock_.lock();
    if (!alive_) {  // after reclaim(): nothing goes out any more
      tx_ring_full_.add(n);
      tx_lock_.unlock();
      return 0;
    }
    const std::uint32_t k = std::min(n, xsk_prod_nb_free(&tx_, n));
    std::uint32_t i = 0;
    if (k) {
      std::uint32_t idx = 0;
      xsk_ring_prod__reserve(&tx_, k, &idx);  // k <= free: cannot fail
      for (; i < k; ++i) {
        const Frame& f = frames[i];
        const std::uint64_t a = frame_addr(f.buf.base);
        // The kernel skips an invalid descriptor without completing it: the
        // frame would never come back. Refuse it here instead.
        if (a == kBadAddr || f.len == 0 || f.off > kFrame || f.len > kFrame - f.off ||
            held(a).load(std::memory_order_relaxed) != kFree)
          break;
        held(a).store(kInTx, std::memory_order_relaxed);
        xdp_desc* d = xsk_ring_prod__tx_desc(&tx_, idx + i);
        d->addr = a + f.off;
        d->len = f.len;
        d->options = 0;
      }
      if (i < k) {
        bad_buf_tx_.add(1);
        tx_.cached_prod -= k - i;  // give back the unused reservation
      }
      if (i) {
        // Counted before the kernel can complete them: complete() never
        // sees the count go below zero.
        outstanding_.fetch_add(i, std::memory_order_relaxed);
        xsk_ring_prod__submit(&tx_, i);
      }
    }
    // A full ring is also a reason to kick: the kernel has not taken it.
    if (i || k < n) kick_tx();
    tx_frames_.add(i);
    tx_ring_full_.add(n - i);  // every refusal, as the caller drops them all
    tx_lock_.unlock();
    return i;
  }

  std::uint64_t tx_outstanding() const noexcept override {
    return outstanding_.load(std::memory_order_acquire);
  }

  DeviceStats stats() const noexcept override {
    DeviceStats s;
    s.rx_frames = rx_frames_.get();
    s.tx_frames = tx_frames_.get();
    s.tx_completed = tx_completed_.get();
    s.tx_ring_full = tx_ring_full_.get();
    s.reclaimed = reclaimed_.get();
    const xdp_statistics k = kernel_stats();
    s.rx_no_buf = k.rx_dropped + k.rx_ring_full;
    return s;
  }

  void fill_info(XskInfo* o) const {
    o->ifname = ifname_;
    o->queue = queue_;
    o->zero_copy = zero_copy_;
    o->native_xdp = prog_native_;
    o->need_wakeup = need_wakeup_;
    o->owns_umem_socket = first_;
    o->tx_budget = tx_budget_;
    const xdp_statistics k = kernel_stats();
    o->rx_dropped = k.rx_dropped;
    o->rx_invalid_descs = k.rx_invalid_descs;
    o->tx_invalid_descs = k.tx_invalid_descs;
    o->rx_ring_full = k.rx_ring_full;
    o->rx_fill_ring_empty_descs = k.rx_fill_ring_empty_descs;
    o->tx_ring_empty_descs = k.tx_ring_empty_descs;
    o->bad_addr = bad_addr_.load(std::memory_order_relaxed);
    o->bad_buf = bad_buf_.get() + bad_buf_tx_.get();
    o->kicks = kicks_.get();
    o->kick_retries = kick_retries_.get();
  }

  // ---- teardown (polling thread) --------------------------------------------------

  std::uint32_t reclaim(Buf* out, std::uint32_t n) noexcept override {
    close_socket();
    // The kernel holds nothing now: every frame still marked is ours.
    std::uint32_t k = 0;
    for (; reclaim_next_ < frames_ && k < n; ++reclaim_next_) {
      std::atomic<std::uint8_t>& h = held_[reclaim_next_];
      const std::uint8_t st = h.load(std::memory_order_relaxed);
      if (st == kFree) continue;
      h.store(kFree, std::memory_order_relaxed);
      if (st == kInTx) outstanding_.fetch_sub(1, std::memory_order_release);
      std::byte* b = base_ + std::size_t{reclaim_next_} * kFrame;
      out[k++] = Buf{b, virt_to_page(b)};
    }
    reclaimed_.add(k);
    return k;
  }

 private:
  static constexpr std::uint64_t kBadAddr = ~std::uint64_t{0};

  std::size_t size() const noexcept { return std::size_t{frames_} * kFrame; }
  std::atomic<std::uint8_t>& held(std::uint64_t addr) const noexcept {
    return held_[addr / kFrame];
  }
  // UMEM address of a buffer that is a whole UMEM frame, else kBadAddr.
  std::uint64_t frame_addr(const std::byte* b) const noexcept {
    const std::uint64_t a = static_cast<std::uint64_t>(b - base_);  // wraps if below base_
    return a < size() && a % kFrame == 0 ? a : kBadAddr;
  }

  // Polling thread: publishes the bad addresses of one rx()/complete() call.
  void flush_bad() noexcept {
    bad_addr_.store(bad_addr_.load(std::memory_order_relaxed) + bad_now_, std::memory_order_relaxed);
    bad_now_ = 0;
  }

  // Polling thread.
  void wake_rx() noexcept { recvfrom(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr); }

  // Under tx_lock_, socket alive. Copy mode sends only inside sendto; the
  // ring's flag says whether the kernel wants one (always, in copy mode).
  void kick_tx() noexcept {
    if (need_wakeup_ && !xsk_ring_prod__needs_wakeup(&tx_)) {
      kick_pending_.store(false, std::memory_order_relaxed);
      return;
    }
    kicks_.add(1);
    if (sendto(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0) {
      kick_pending_.store(false, std::memory_order_relaxed);
      return;
    }
    // EAGAIN: the budget ran out, or the completion ring is full; EBUSY,
    // ENOBUFS: the device is busy. What is left stays in the TX ring and
    // the polling thread kicks again from complete().
    kick_retries_.add(1);
    kick_pending_.store(true, std::memory_order_relaxed);
  }

  xdp_statistics kernel_stats() const noexcept {
    std::lock_guard lock(sock_mu_);
    if (!closed_) {
      xdp_statistics k{};
      socklen_t len = sizeof k;
      if (getsockopt(fd_, SOL_XDP, XDP_STATISTICS, &k, &len) == 0) last_kstats_ = k;
    }
    return last_kstats_;
  }

  // Polling thread (reclaim), or the destructor. Idempotent. After it, the
  // kernel writes into none of this device's frames (see the header's
  // Lifetime note) and tx() refuses everything.
  void close_socket() noexcept {
    if (closed_) return;
    if (alive_) prog_->remove(queue_);
    {
      std::lock_guard lock(sock_mu_);
      if (xsk_) {
        xdp_statistics k{};
        socklen_t len = sizeof k;
        if (getsockopt(fd_, SOL_XDP, XDP_STATISTICS, &k, &len) == 0) last_kstats_ = k;
      }
      tx_lock_.lock();
      alive_ = false;
      tx_lock_.unlock();
      if (xsk_) xsk_socket__delete(xsk_);
      xsk_ = nullptr;
      closed_ = true;
    }
    // The last socket of the interface detaches the program, which waits
    // for NAPI polls still redirecting to the socket.
    prog_.reset();
  }

  // ---- set up once (control thread), read by all -------------------------------------
  const std::string name_;
  const std::string ifname_;
  const std::uint32_t queue_;
  std::shared_ptr<UmemProvider> umem_;  // outlives the socket: member destroyed after ~XskDevice body
  std::shared_ptr<XdpProgram> prog_;    // reset by close_socket
  std::byte* const base_;
  const std::uint32_t frames_;
  const std::uint32_t ring_;
  const std::uint32_t headroom_;
  const bool first_;
  const bool prog_native_;
  const bool zero_copy_;
  const bool need_wakeup_;
  std::uint32_t tx_budget_ = 0;
  xsk_socket* xsk_ = nullptr;
  int fd_ = -1;
  // Per UMEM frame: kFree, kPosted (on the fill ring) or kInTx (on the TX
  // ring). Relaxed loads and stores: a frame's byte is written by the
  // thread that hands the frame to the kernel (fill: the poller; tx: the
  // tx_lock holder) before the ring submit (libxdp's release barrier), and
  // read by the poller after the RX/completion peek (its acquire barrier)
  // that returns the same frame, so the kernel's ring hand-off orders them.
  const std::unique_ptr<std::atomic<std::uint8_t>[]> held_;

  // ---- polling thread -----------------------------------------------------------------
  alignas(64) xsk_ring_cons rx_{};
  xsk_ring_prod* fq_ = nullptr;
  xsk_ring_cons* cq_ = nullptr;
  xsk_ring_prod own_fq_{};  // not the first socket: its own fill/completion rings
  xsk_ring_cons own_cq_{};
  std::uint64_t bad_now_ = 0;  // bad addresses in the current rx()/complete() call
  Counter rx_frames_, tx_completed_, reclaimed_;
  std::atomic<std::uint64_t> bad_addr_{0};
  Counter bad_buf_;
  std::uint32_t reclaim_next_ = 0;
  bool closed_ = false;

  // ---- tx(), any thread, under tx_lock_ ------------------------------------------------
  alignas(64) SpinLock tx_lock_;
  xsk_ring_prod tx_{};
  bool alive_ = false;  // socket open: written under tx_lock_
  Counter tx_frames_, tx_ring_full_, bad_buf_tx_, kicks_, kick_retries_;

  // ---- shared ---------------------------------------------------------------------------
  alignas(64) std::atomic<std::uint64_t> outstanding_{0};  // tx() adds, complete()/reclaim() subtract
  std::atomic<bool> kick_pending_{false};                  // tx() sets, complete() retries
  mutable std::mutex sock_mu_;                             // socket vs stats() readers
  mutable xdp_statistics last_kstats_{};
};

}  // namespace

// ---- public functions ------------------------------------------------------------------

XskSpec parse_xsk_spec(std::string_view s) {
  const std::string whole(s);
  const auto fail = [&](const std::string& why) {
    bad_arg("'" + whole + "': " + why + " (want IFNAME or IFNAME:QUEUE)");
  };
  XskSpec spec;
  const std::size_t colon = s.find(':');
  std::string_view name = s.substr(0, colon);
  if (name.empty()) fail("no interface name");
  if (name.size() >= IFNAMSIZ) fail("interface name longer than " + std::to_string(IFNAMSIZ - 1) + " bytes");
  for (char c : name)
    if (c == '/' || c == ' ' || c == '\t' || c == '\n') fail("bad character in the interface name");
  spec.ifname = std::string(name);
  if (colon == std::string_view::npos) return spec;
  const std::string_view q = s.substr(colon + 1);
  if (q.empty() || q.size() > 5 || !std::all_of(q.begin(), q.end(), [](char c) { return c >= '0' && c <= '9'; }))
    fail("queue '" + std::string(q) + "' is not a number 0..65535");
  const unsigned long v = std::stoul(std::string(q));
  if (v > 65535) fail("queue '" + std::string(q) + "' is not a number 0..65535");
  spec.queue = static_cast<std::uint32_t>(v);
  return spec;
}

std::vector<std::unique_ptr<Device>> open_xsk_devices(const std::vector<XskSpec>& specs,
                                                      const XskOptions& o) {
  // ---- arguments: before any system call ----
  if (specs.empty()) bad_arg("no device given");
  if (o.ring_size < 64 || o.ring_size > 65536 || (o.ring_size & (o.ring_size - 1)))
    bad_arg("ring_size " + std::to_string(o.ring_size) + " must be a power of two in 64..65536");
  if (o.umem_bytes % kTwoMiB != 0)
    bad_arg("umem_bytes " + std::to_string(o.umem_bytes) + " must be a multiple of 2 MiB (0: sized for the devices)");
  if (o.tx_budget != 0 && (o.tx_budget < 32 || o.tx_budget > o.ring_size))
    bad_arg("tx_budget " + std::to_string(o.tx_budget) + " must be 0 or in 32..ring_size");
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].ifname.empty() || specs[i].ifname.size() >= IFNAMSIZ)
      bad_arg("bad interface name '" + specs[i].ifname + "'");
    for (std::size_t j = 0; j < i; ++j)
      if (specs[j].ifname == specs[i].ifname && specs[j].queue == specs[i].queue)
        bad_arg(spec_name(specs[i]) + " given twice (one socket per interface and queue)");
  }

  // ---- the interfaces and the kernel ----
  const LibbpfCapture capture;
  std::map<std::string, std::pair<unsigned, std::uint32_t>> ifs;  // name -> (ifindex, map entries)
  for (const XskSpec& s : specs) {
    const unsigned idx = if_nametoindex(s.ifname.c_str());
    if (idx == 0)
      sys_fail(ENODEV, "no interface '" + s.ifname + "' in this network namespace (ip link show)");
    const std::uint32_t nq = queue_count(s.ifname);
    if (nq != 0 && s.queue >= nq)
      sys_fail(EINVAL, "queue " + std::to_string(s.queue) + " out of range: '" + s.ifname + "' has " +
                           std::to_string(nq) + " queue" + (nq == 1 ? "" : "s") + " (0.." +
                           std::to_string(nq - 1) + "; ethtool -l " + s.ifname + ")");
    auto& e = ifs[s.ifname];
    e.first = idx;
    e.second = std::max(e.second, s.queue + 1);
  }
  check_af_xdp();

  // ---- the UMEM, the programs, the sockets ----
  std::size_t bytes = o.umem_bytes;
  if (bytes == 0) {
    const std::size_t per_dev = std::size_t{4} * o.ring_size * kFrame + kTwoMiB;
    bytes = (specs.size() * per_dev + kTwoMiB - 1) / kTwoMiB * kTwoMiB;
  }
  UmemProvider::Options uo;
  uo.fill_size = o.ring_size;
  uo.comp_size = o.ring_size;
  uo.frame_headroom = o.frame_headroom;
  std::shared_ptr<UmemProvider> umem;  // made with the first socket, below

  std::map<std::string, std::shared_ptr<XdpProgram>> progs;
  for (const auto& [name, e] : ifs)
    progs[name] = std::make_shared<XdpProgram>(name, e.first, e.second, o.attach);

  // The first socket decides the mode for all (they share its UMEM); the
  // probe also waits out a queue still busy from a socket just closed.
  int probe = EBUSY;
  for (int t = 0; probe == EBUSY && t < kBusyTries; ++t) {
    if (t) usleep(kBusyPauseUs);
    probe = probe_bind(specs[0], o.bind != XskBind::kCopy);
  }
  const bool zero_copy = o.bind == XskBind::kZeroCopy || (o.bind == XskBind::kAuto && probe == 0);
  std::vector<std::unique_ptr<Device>> devs;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const SocketSetup ss{specs[i].ifname, specs[i].queue, i == 0, zero_copy, o.need_wakeup,
                         o.ring_size, o.tx_budget ? o.tx_budget : o.ring_size};
    for (int t = 0;; ++t) {
      try {
        if (!umem) umem = std::make_shared<UmemProvider>(0, bytes, -1, uo);
        devs.push_back(std::make_unique<XskDevice>(ss, umem, progs[specs[i].ifname]));
        break;
      } catch (const std::system_error& e) {
        // A queue still busy (released by the kernel a moment after the
        // probe's socket, when the probe bound) is tried again. The others
        // are sockets of their own: a failed bind leaves nothing behind.
        // The first is the UMEM's own socket, which a failed bind leaves
        // unusable: it is tried again on a fresh UMEM.
        if (e.code().value() != EBUSY || t + 1 >= kBusyTries) throw;
        if (i == 0) umem.reset();
        usleep(kBusyPauseUs);
      }
    }
  }
  return devs;
}

bool xsk_info(const Device& d, XskInfo* out) {
  const auto* x = dynamic_cast<const XskDevice*>(&d);
  if (!x || !out) return false;
  x->fill_info(out);
  return true;
}

}  // namespace pagepool::fwd
