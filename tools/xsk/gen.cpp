// pagepool-gen: sends UDP/IPv4 frames of one size over N flows out of an
// interface, as fast as possible or at a rate, for a duration or a count.
//
// Three ways to put frames on the interface (--mode):
//  live    BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: the kernel runs
//          bpf/gen.bpf.c on copies of one template frame, many per system
//          call, and transmits each as an XDP frame (XDP_TX: out of the
//          interface given as ingress). No socket buffer is built. Needs
//          Linux >= 5.18, and on veth an XDP program (or GRO) on the peer.
//  packet  AF_PACKET socket with PACKET_QDISC_BYPASS, sendmmsg of a batch:
//          one socket buffer per frame, no qdisc.
//  xsk     AF_XDP TX socket: frames in a UMEM, copy mode (one socket buffer
//          per frame built by the kernel at sendto).
// The default, auto, is live at full speed (the fastest here) and xsk at a
// --rate: a live-frames system call costs milliseconds of set-up (the
// kernel builds a page pool per call), so only calls of thousands of frames
// pay off, and a rate made of such calls would arrive as bursts.
//
// Counting. "generated" is what the kernel accepted: the program's runs
// (live), sendmmsg's count (packet), completions (xsk). The interface's
// tx_dropped growth over the run (frames the device refused, e.g. a veth
// whose peer's ring was full) is subtracted to give "sent"; in live mode
// "sent" is at most the interface's tx_packets growth (XDP frames a veth
// cannot deliver vanish uncounted).
//
//   pagepool-gen --dev veth0 --size 64 --flows 16 --duration 10 [--rate 1e6] [--json]
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <xdp/xsk.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common.hpp"

#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9  // Linux 6.17 uapi; older kernels refuse it (ignored)
#endif

namespace {

constexpr std::uint32_t kFcs = 4;           // --size counts the Ethernet FCS, as RFC 2544 does
constexpr std::uint32_t kUdpPortOff = 34;  // UDP source port: 14 (Ethernet) + 20 (IPv4)
// The largest --batch of each mode (run() rejects more). live: the XDP
// batch of a live-frames BPF_PROG_RUN, at most the kernel's
// TEST_XDP_MAX_BATCH (net/bpf/test_run.c: E2BIG above); packet: sendmmsg
// takes at most UIO_MAXIOV messages a call (more are silently cut); xsk:
// the TX ring (XskSender::kRing).
constexpr std::uint32_t kMaxBatchLive = 256;
constexpr std::uint32_t kMaxBatchPacket = 1024;

struct Args {
  std::string dev, mode = "auto";
  std::uint32_t size = 64, flows = 1, batch = 64, repeat = 32768;
  double duration = 10, rate = 0;
  std::uint64_t count = 0;
  xt::UdpFrameSpec frame{};
  bool json = false, quiet = false;
};

// Writes the flow's source port into a frame built by build_udp_frame.
inline void set_flow(std::uint8_t* frame, std::uint16_t port) {
  frame[kUdpPortOff] = static_cast<std::uint8_t>(port >> 8);
  frame[kUdpPortOff + 1] = static_cast<std::uint8_t>(port);
}

class Sender {
 public:
  virtual ~Sender() = default;
  // Hands up to n frames to the kernel; returns how many it took.
  virtual std::uint64_t send(std::uint64_t n) = 0;
  // Frames generated so far (may lag send() until finish()).
  virtual std::uint64_t generated() = 0;
  // Waits (bounded) for frames still queued to leave.
  virtual void finish() {}
  // Largest useful n per send() call.
  virtual std::uint64_t chunk() const = 0;
};

// ---- live: BPF_PROG_RUN, live frames ------------------------------------------

// Layout of struct gen_config in bpf/gen.bpf.c.
struct GenConfig {
  std::uint32_t flows;
  std::uint32_t port_base;
};

class LiveSender final : public Sender {
 public:
  LiveSender(const Args& a, unsigned ifindex)
      : obj_(pagepool_gen_bpf, pagepool_gen_bpf_size, "pagepool_gen"),
        frame_(xt::build_udp_frame(a.frame, 0)),
        ifindex_(ifindex),
        batch_(a.batch),  // <= kMaxBatchLive: run()
        repeat_(a.repeat) {
    prog_fd_ = obj_.prog_fd("pagepool_gen");
    count_fd_ = obj_.map_fd("gen_count");
    const GenConfig cfg{a.flows, a.frame.src_port};
    std::uint32_t key = 0;
    if (bpf_map_update_elem(obj_.map_fd("gen_cfg"), &key, &cfg, 0) != 0)
      throw xt::Error(std::string("configuring the generator program: ") + std::strerror(errno));
    const int ncpu = libbpf_num_possible_cpus();
    percpu_.resize(ncpu > 0 ? static_cast<std::size_t>(ncpu) : 1);
  }

  std::uint64_t send(std::uint64_t n) override {
    xdp_md ctx{};
    ctx.data_end = static_cast<std::uint32_t>(frame_.size());
    ctx.ingress_ifindex = ifindex_;  // XDP_TX leaves through this interface
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame_.data(),
                .data_size_in = static_cast<std::uint32_t>(frame_.size()), .ctx_in = &ctx,
                .ctx_size_in = sizeof ctx, .repeat = static_cast<int>(n),
                .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = batch_);
    const int rc = bpf_prog_test_run_opts(prog_fd_, &o);
    if (rc != 0 && errno != EINTR) {
      const int e = errno;
      throw xt::Error(std::string("BPF_PROG_RUN (live frames): ") + std::strerror(e) +
                      (e == EINVAL ? " (live frames need Linux >= 5.18; try --mode packet)" : ""));
    }
    return n;  // the exact count is the program's: generated()
  }

  std::uint64_t generated() override {
    std::uint32_t key = 0;
    if (bpf_map_lookup_elem(count_fd_, &key, percpu_.data()) != 0) return 0;
    std::uint64_t t = 0;
    for (std::uint64_t v : percpu_) t += v;
    return t;
  }
  // Frames per system call (--repeat): see Args::repeat.
  std::uint64_t chunk() const override { return repeat_; }

 private:
  xt::BpfObject obj_;
  std::vector<std::uint8_t> frame_;
  unsigned ifindex_;
  std::uint32_t batch_;
  std::uint32_t repeat_;
  int prog_fd_ = -1, count_fd_ = -1;
  std::vector<std::uint64_t> percpu_;
};

// ---- packet: AF_PACKET, qdisc bypass, sendmmsg -----------------------------------

class PacketSender final : public Sender {
 public:
  // a.batch <= kMaxBatchPacket: run().
  PacketSender(const Args& a, unsigned ifindex) : a_(a), batch_(a.batch) {
    fd_ = socket(AF_PACKET, SOCK_RAW, 0);  // protocol 0: sends only, receives nothing
    if (fd_ < 0) {
      const int e = errno;
      throw xt::Error(std::string("socket(AF_PACKET): ") + std::strerror(e) +
                      (e == EPERM ? " (needs CAP_NET_RAW: run as root)" : ""));
    }
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = static_cast<int>(ifindex);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0)
      throw xt::Error(std::string("bind(AF_PACKET): ") + std::strerror(errno));
    const int one = 1;
    // Straight to the driver: the qdisc would only add a lock and a queue.
    if (setsockopt(fd_, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) != 0)
      throw xt::Error(std::string("PACKET_QDISC_BYPASS: ") + std::strerror(errno));
    const std::vector<std::uint8_t> tmpl = xt::build_udp_frame(a.frame, 0);
    bufs_.resize(batch_, tmpl);
    iov_.resize(batch_);
    msgs_.resize(batch_);
    for (std::uint32_t i = 0; i < batch_; ++i) {
      iov_[i] = {bufs_[i].data(), bufs_[i].size()};
      msgs_[i] = {};
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
    }
  }
  ~PacketSender() override { close(fd_); }

  std::uint64_t send(std::uint64_t n) override {
    const std::uint32_t k = static_cast<std::uint32_t>(std::min<std::uint64_t>(n, batch_));
    for (std::uint32_t i = 0; i < k; ++i)
      set_flow(bufs_[i].data(),
               static_cast<std::uint16_t>(a_.frame.src_port + (seq_ + i) % a_.flows));
    const int r = sendmmsg(fd_, msgs_.data(), k, 0);
    if (r < 0) {
      if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) return 0;  // device busy: retry
      throw xt::Error(std::string("sendmmsg: ") + std::strerror(errno));
    }
    seq_ += static_cast<std::uint64_t>(r);
    return static_cast<std::uint64_t>(r);
  }
  std::uint64_t generated() override { return seq_; }
  std::uint64_t chunk() const override { return batch_; }

 private:
  const Args& a_;
  std::uint32_t batch_;
  int fd_ = -1;
  std::uint64_t seq_ = 0;
  std::vector<std::vector<std::uint8_t>> bufs_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msgs_;
};

// ---- xsk: AF_XDP TX socket, copy mode --------------------------------------------

class XskSender final : public Sender {
 public:
  static constexpr std::uint32_t kRing = 2048;
  static constexpr std::uint32_t kFrames = 2 * kRing;  // TX ring + completion ring: never short
  static constexpr std::uint32_t kFrame = 4096;

  // a.batch <= kRing: run().
  XskSender(const Args& a, unsigned queue) : a_(a), batch_(a.batch) {
    const std::size_t bytes = std::size_t{kFrames} * kFrame;
    void* area = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) throw xt::Error("mmap of the UMEM failed");
    area_ = static_cast<std::uint8_t*>(area);
    xsk_umem_config uc{};
    uc.fill_size = kRing;
    uc.comp_size = kRing;
    uc.frame_size = kFrame;
    if (int rc = xsk_umem__create(&umem_, area_, bytes, &fq_, &cq_, &uc); rc != 0)
      throw xt::Error(std::string("xsk_umem__create: ") + std::strerror(-rc) +
                      (rc == -EPERM ? " (needs CAP_NET_RAW: run as root)" : ""));
    xsk_socket_config sc{};
    sc.rx_size = 0;
    sc.tx_size = kRing;
    sc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;  // TX only: no program
    sc.bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP;
    if (int rc = xsk_socket__create(&xsk_, a.dev.c_str(), queue, umem_, nullptr, &tx_, &sc);
        rc != 0)
      throw xt::Error("xsk_socket__create on '" + a.dev + "': " + std::strerror(-rc));
    // One sendto may send the whole ring (Linux >= 6.17; 32 before).
    const unsigned budget = kRing;
    setsockopt(xsk_socket__fd(xsk_), SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof budget);
    const std::vector<std::uint8_t> tmpl = xt::build_udp_frame(a.frame, 0);
    for (std::uint32_t i = 0; i < kFrames; ++i) {
      std::memcpy(area_ + std::size_t{i} * kFrame, tmpl.data(), tmpl.size());
      free_.push_back(std::uint64_t{i} * kFrame);
    }
    len_ = static_cast<std::uint32_t>(tmpl.size());
  }
  ~XskSender() override {
    if (xsk_) xsk_socket__delete(xsk_);
    if (umem_) xsk_umem__delete(umem_);
    munmap(area_, std::size_t{kFrames} * kFrame);
  }

  std::uint64_t send(std::uint64_t n) override {
    reap();
    std::uint32_t k = static_cast<std::uint32_t>(
        std::min<std::uint64_t>({n, batch_, free_.size()}));
    k = std::min(k, xsk_prod_nb_free(&tx_, k));
    std::uint32_t idx = 0;
    if (k && xsk_ring_prod__reserve(&tx_, k, &idx) == k) {
      for (std::uint32_t i = 0; i < k; ++i) {
        const std::uint64_t addr = free_.back();
        free_.pop_back();
        set_flow(area_ + addr, static_cast<std::uint16_t>(a_.frame.src_port + (seq_ + i) % a_.flows));
        xdp_desc* d = xsk_ring_prod__tx_desc(&tx_, idx + i);
        d->addr = addr;
        d->len = len_;
        d->options = 0;
      }
      xsk_ring_prod__submit(&tx_, k);
      seq_ += k;
    } else {
      k = 0;
    }
    kick();
    return k;
  }
  std::uint64_t generated() override { return done_; }
  void finish() override {
    const double until = xt::now_s() + 1.0;
    while (done_ < seq_ && xt::now_s() < until) {
      kick();
      reap();
    }
  }
  std::uint64_t chunk() const override { return batch_; }

 private:
  void kick() {
    // Copy mode transmits only inside sendto; the flag is always set then.
    if (xsk_ring_prod__needs_wakeup(&tx_)) sendto(xsk_socket__fd(xsk_), nullptr, 0, MSG_DONTWAIT, nullptr, 0);
  }
  void reap() {
    std::uint32_t idx = 0;
    const std::uint32_t n = xsk_ring_cons__peek(&cq_, kRing, &idx);
    for (std::uint32_t i = 0; i < n; ++i) free_.push_back(*xsk_ring_cons__comp_addr(&cq_, idx + i));
    xsk_ring_cons__release(&cq_, n);
    done_ += n;
  }

  const Args& a_;
  std::uint32_t batch_;
  std::uint8_t* area_ = nullptr;
  xsk_umem* umem_ = nullptr;
  xsk_socket* xsk_ = nullptr;
  xsk_ring_prod fq_{}, tx_{};
  xsk_ring_cons cq_{};
  std::vector<std::uint64_t> free_;
  std::uint32_t len_ = 0;
  std::uint64_t seq_ = 0, done_ = 0;
};

// CLI11 check that an option's text parses with parse (xt::parse_mac,
// xt::parse_ipv4): a bad address is a bad command line (exit 2), named by
// its option.
template <class Parse>
CLI::Validator parses(const char* what, Parse parse) {
  return CLI::Validator(
      [parse](std::string& s) -> std::string {
        try {
          parse(s);
          return {};
        } catch (const xt::Error& e) {
          return e.what();
        }
      },
      what);
}

int run(int argc, char** argv) {
  Args a;
  std::string src_mac = "02:77:00:00:00:01", dst_mac = "02:77:00:00:00:02";
  std::string src_ip = "10.77.0.1", dst_ip = "10.77.1.1";
  std::uint32_t sport = 10000, dport = 9;
  unsigned queue = 0;
  CLI::App app{"pagepool-gen: send UDP/IPv4 frames out of an interface"};
  app.add_option("--dev,-i", a.dev, "interface to send on")->required();
  app.add_option("--mode,-m", a.mode,
                 "live (XDP live frames), packet (AF_PACKET), xsk (AF_XDP) or auto (live, xsk at a --rate)")
      ->check(CLI::IsMember({"auto", "live", "packet", "xsk"}));
  app.add_option("--size,-s", a.size, "frame size in bytes with the 4-byte FCS (64..1518)")
      ->check(CLI::Range(64u, 1518u));
  app.add_option("--flows,-f", a.flows, "UDP source ports used in turn (1..4096)")
      ->check(CLI::Range(1u, 4096u));
  app.add_option("--duration,-d", a.duration, "seconds to send (0: until --count or a signal)")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--count,-n", a.count, "frames to send (0: no limit)");
  app.add_option("--rate,-r", a.rate, "frames per second (0: as fast as possible)")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--batch,-b", a.batch,
                 "frames per system call (packet: 1..1024, xsk: 1..2048) or XDP batch (live: 1..256)")
      ->check(CLI::Range(1u, XskSender::kRing));
  auto* repeat_opt = app.add_option("--repeat", a.repeat, "live mode only: frames per BPF_PROG_RUN call")
      ->check(CLI::Range(64u, 1u << 20));
  auto* queue_opt = app.add_option("--queue", queue, "xsk mode only: TX queue");
  app.add_option("--src-mac", src_mac, "source MAC")->check(parses("MAC", xt::parse_mac));
  app.add_option("--dst-mac", dst_mac, "destination MAC")->check(parses("MAC", xt::parse_mac));
  app.add_option("--src-ip", src_ip, "source IPv4 address")->check(parses("IPV4", xt::parse_ipv4));
  app.add_option("--dst-ip", dst_ip, "destination IPv4 address")->check(parses("IPV4", xt::parse_ipv4));
  app.add_option("--src-port", sport, "first UDP source port")->check(CLI::Range(1u, 65535u));
  app.add_option("--dst-port", dport, "UDP destination port")->check(CLI::Range(1u, 65535u));
  app.add_flag("--json", a.json, "print one JSON object at exit (stdout)");
  app.add_flag("--quiet,-q", a.quiet, "no per-second lines");
  if (const int rc = xt::parse_cli(app, argc, argv, "pagepool-gen"); rc >= 0) return rc;
  if (sport + a.flows - 1 > 65535)
    throw xt::UsageError("--src-port " + std::to_string(sport) + " + --flows " +
                         std::to_string(a.flows) + " - 1 exceeds port 65535");
  a.frame = {xt::parse_mac(src_mac), xt::parse_mac(dst_mac), xt::parse_ipv4(src_ip),
             xt::parse_ipv4(dst_ip), static_cast<std::uint16_t>(sport),
             static_cast<std::uint16_t>(dport), a.size - kFcs};

  // The mode's own limits: the mode as chosen, so auto is checked as what
  // it resolves to (and the message says so).
  std::string chosen = a.mode;
  if (a.mode == "auto") {
    a.mode = a.rate > 0 ? "xsk" : "live";
    chosen = a.mode + (a.rate > 0 ? " (--mode auto with a --rate)" : " (--mode auto without --rate)");
  }
  const std::uint32_t max_batch = a.mode == "live"     ? kMaxBatchLive
                                  : a.mode == "packet" ? kMaxBatchPacket
                                                       : XskSender::kRing;
  if (a.batch > max_batch)
    throw xt::UsageError("--batch " + std::to_string(a.batch) + ": mode " + chosen + " takes 1.." +
                         std::to_string(max_batch));
  if (queue_opt->count() > 0 && a.mode != "xsk")
    throw xt::UsageError("--queue applies to --mode xsk only, not mode " + chosen);
  if (repeat_opt->count() > 0 && a.mode != "live")
    throw xt::UsageError("--repeat applies to --mode live only, not mode " + chosen);
  if (a.duration == 0 && a.count == 0 && !a.quiet)
    std::fprintf(stderr, "pagepool-gen: no --duration or --count: sending until interrupted\n");

  const xt::LibbpfCapture libbpf_capture;  // for the whole run
  xt::install_stop_handlers();
  const unsigned ifindex = xt::ifindex_of(a.dev);
  std::unique_ptr<Sender> s;
  if (a.mode == "live")
    s = std::make_unique<LiveSender>(a, ifindex);
  else if (a.mode == "packet")
    s = std::make_unique<PacketSender>(a, ifindex);
  else
    s = std::make_unique<XskSender>(a, queue);

  const xt::LinkCounters l0 = xt::link_counters(a.dev);
  const double t0 = xt::now_s();
  std::uint64_t handed = 0;
  xt::ProgressLines lines("gen", "generated", t0, a.quiet);
  // Pacing: by time t, rate * (t - tp) frames may have gone; sends happen
  // in chunks of at least `batch` so a low rate still costs one system call
  // per batch, not per frame. After a stall (the generator descheduled) the
  // backlog is capped at max_burst (5 ms of frames, 4 batches at least) by
  // moving tp: longer stalls are lost time rather than one line-rate burst
  // that would overrun the receiver's rings.
  const std::uint64_t min_chunk = std::min<std::uint64_t>(a.batch, s->chunk());
  const std::uint64_t max_burst =
      std::max<std::uint64_t>(4 * min_chunk, static_cast<std::uint64_t>(a.rate * 0.005));
  double tp = t0;
  for (;;) {
    if (xt::g_stop.load(std::memory_order_relaxed)) break;
    const double t = xt::now_s();
    if (a.duration > 0 && t - t0 >= a.duration) break;
    if (a.count > 0 && handed >= a.count) break;
    std::uint64_t n = s->chunk();
    if (a.count > 0) n = std::min(n, a.count - handed);
    if (a.rate > 0) {
      auto allowed = static_cast<std::uint64_t>(a.rate * (t - tp));
      if (allowed > handed + max_burst) {
        tp += static_cast<double>(allowed - handed - max_burst) / a.rate;
        allowed = handed + max_burst;
      }
      const std::uint64_t want = std::min(n, min_chunk);
      if (allowed < handed + want) {
        const double due = tp + static_cast<double>(handed + want) / a.rate;
        if (due - t > 200e-6) xt::sleep_until_s(due - 100e-6);  // spin the last 100 us
        continue;
      }
      n = std::min(n, allowed - handed);
    }
    handed += s->send(n);
    lines.tick(t, [&] { return s->generated(); });
  }
  const double t_end = xt::now_s();
  s->finish();
  usleep(50000);  // let the receiver's NAPI run before reading the counters
  const std::uint64_t gen = s->generated();
  const xt::LinkCounters l1 = xt::link_counters(a.dev);
  const std::uint64_t dropped = l1.tx_dropped - l0.tx_dropped;
  std::uint64_t sent = gen > dropped ? gen - dropped : 0;
  const std::uint64_t if_tx = l1.tx_packets - l0.tx_packets;
  if (a.mode == "live" && if_tx < sent) {
    // XDP frames a driver could not queue may vanish without a drop count
    // (a veth whose peer has no NAPI): trust the interface's own count.
    if (if_tx == 0 && sent > 0)
      std::fprintf(stderr,
                   "pagepool-gen: warning: %s transmitted none of the frames; XDP frames into a "
                   "veth need an XDP program (or GRO) on its peer\n",
                   a.dev.c_str());
    sent = if_tx;
  }
  const double secs = t_end - t0;
  const double mpps = secs > 0 ? static_cast<double>(sent) / secs / 1e6 : 0;
  if (a.json)
    std::printf("{\"tool\":\"pagepool-gen\",\"dev\":%s,\"mode\":\"%s\",\"size\":%u,\"flows\":%u,"
                "\"generated\":%" PRIu64 ",\"dropped_at_dev\":%" PRIu64 ",\"sent\":%" PRIu64
                ",\"if_tx_packets\":%" PRIu64 ",\"seconds\":%.3f,\"mpps\":%.4f}\n",
                xt::json_str(a.dev).c_str(), a.mode.c_str(), a.size, a.flows, gen, dropped, sent,
                if_tx, secs, mpps);
  else
    std::printf("gen: %s mode=%s size=%u flows=%u generated=%" PRIu64 " dropped_at_dev=%" PRIu64
                " sent=%" PRIu64 " seconds=%.3f mpps=%.4f\n",
                a.dev.c_str(), a.mode.c_str(), a.size, a.flows, gen, dropped, sent, secs, mpps);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return xt::run_main("pagepool-gen", run, argc, argv); }
