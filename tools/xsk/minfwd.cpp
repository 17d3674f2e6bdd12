// xsk-minfwd: the baseline for the forwarding benchmark — a minimal
// hand-written libxdp forwarder, the way the AF_XDP samples are written.
//
// Two AF_XDP sockets (interface A and B, same queue) share one UMEM; one
// thread moves every frame received on A to B's TX ring and every frame
// received on B to A's, without copying (the RX descriptor's address goes
// into the TX descriptor). Free frames live on a plain array stack; TX
// completions push onto it and fill-ring refills pop from it. libxdp loads
// its default XDP program (redirect to the socket of the queue).
//
// What it does not do, and pagepool-fwd does: no per-frame program, no
// buffer ownership tracking, no pools, one thread for both interfaces.
//
//   xsk-minfwd --dev vethA --dev vethB [--duration 10] [--json]
#include <linux/if_link.h>
#include <net/if.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common.hpp"

#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9  // Linux 6.17 uapi; older kernels refuse it (ignored)
#endif

namespace {

constexpr std::uint32_t kFrame = XSK_UMEM__DEFAULT_FRAME_SIZE;  // 4096

struct Port {
  std::string name;
  xsk_socket* xsk = nullptr;
  xsk_ring_cons rx{}, cq{};
  xsk_ring_prod tx{}, fq{};
  bool tx_kick = false;  // descriptors the kernel has not taken yet: kick again
  std::uint64_t rx_frames = 0, tx_frames = 0, completed = 0, dropped = 0, kicks = 0;
};

// The free-frame stack: UMEM addresses, LIFO so recently used (cached)
// frames are reused first.
struct Stack {
  std::vector<std::uint64_t> v;
  std::size_t n = 0;
  void push(std::uint64_t a) { v[n++] = a; }
  std::uint64_t pop() { return v[--n]; }
};

void kick_tx(Port& p) {
  // Copy mode transmits only inside sendto (the need_wakeup flag is always
  // set then); zero-copy drivers clear the flag while they poll.
  if (!xsk_ring_prod__needs_wakeup(&p.tx)) {
    p.tx_kick = false;
    return;
  }
  ++p.kicks;
  if (sendto(xsk_socket__fd(p.xsk), nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0) {
    p.tx_kick = false;
    return;
  }
  // EAGAIN: budget used up or completion ring full; EBUSY/ENOBUFS: device
  // busy. The rest stays in the ring: kick again on the next round.
  p.tx_kick = errno == EAGAIN || errno == EBUSY || errno == ENOBUFS || errno == ENETDOWN;
}

// One round on port `in`: its completions and fill ring, then its RX into
// `out`'s TX ring.
void poll_port(Port& in, Port& out, Stack& st, std::uint32_t batch) {
  std::uint32_t idx = 0;
  std::uint32_t n = xsk_ring_cons__peek(&in.cq, batch, &idx);
  for (std::uint32_t i = 0; i < n; ++i) st.push(*xsk_ring_cons__comp_addr(&in.cq, idx + i));
  xsk_ring_cons__release(&in.cq, n);
  in.completed += n;

  // Refill everything free, not a batch: the kernel publishes its fill-ring
  // consumer only when it has used up what it last saw, so free room
  // appears in one step of up to a whole ring, and a batch-sized refill
  // would leave the ring nearly empty (frames dropped for want of a buffer).
  const std::uint32_t k = std::min<std::uint32_t>(xsk_prod_nb_free(&in.fq, static_cast<std::uint32_t>(st.n)),
                                                  static_cast<std::uint32_t>(st.n));
  if (k && xsk_ring_prod__reserve(&in.fq, k, &idx) == k) {
    for (std::uint32_t i = 0; i < k; ++i) *xsk_ring_prod__fill_addr(&in.fq, idx + i) = st.pop();
    xsk_ring_prod__submit(&in.fq, k);
    if (xsk_ring_prod__needs_wakeup(&in.fq))
      recvfrom(xsk_socket__fd(in.xsk), nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
  }

  n = xsk_ring_cons__peek(&in.rx, batch, &idx);
  if (n) {
    // Reserve what fits; what does not is dropped (back on the stack) so
    // the RX ring is always released in full and never stalls.
    const std::uint32_t room = std::min(n, xsk_prod_nb_free(&out.tx, n));
    std::uint32_t tidx = 0;
    const std::uint32_t t = room ? xsk_ring_prod__reserve(&out.tx, room, &tidx) : 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      const xdp_desc* d = xsk_ring_cons__rx_desc(&in.rx, idx + i);
      if (i < t) {
        xdp_desc* o = xsk_ring_prod__tx_desc(&out.tx, tidx + i);
        o->addr = d->addr;  // aligned mode: the frame plus the data offset
        o->len = d->len;
        o->options = 0;
      } else {
        st.push(xsk_umem__extract_addr(d->addr));
      }
    }
    xsk_ring_cons__release(&in.rx, n);
    in.rx_frames += n;
    in.dropped += n - t;
    if (t) {
      xsk_ring_prod__submit(&out.tx, t);
      out.tx_frames += t;
      out.tx_kick = true;
    }
  }
  if (out.tx_kick) kick_tx(out);
}

std::string bind_error(int err, const std::string& dev, bool had_prog) {
  std::string s = std::strerror(err);
  if (err == EPERM) s += " (AF_XDP needs root: CAP_NET_RAW, CAP_NET_ADMIN, CAP_BPF)";
  if ((err == EBUSY || err == EEXIST) && had_prog)
    s += " ('" + dev + "' already has an XDP program: ip link set dev " + dev + " xdp off)";
  else if (err == EBUSY)
    s += " (the queue already has an AF_XDP socket)";
  if (err == EINVAL) s += " (queue out of range for '" + dev + "'?)";
  return s;
}

// Takes off the XDP program `id` if it is still the one on the interface
// (XDP_FLAGS_REPLACE with it as the expected program: one put there
// meanwhile stays). libxdp leaves its program attached when the socket goes.
void detach_xdp(unsigned ifindex, std::uint32_t id) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  if (id == 0 || bpf_xdp_query(static_cast<int>(ifindex), 0, &q) != 0 || q.prog_id != id) return;
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return;
  LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = fd);
  bpf_xdp_detach(static_cast<int>(ifindex),
                 q.attach_mode == XDP_ATTACHED_DRV ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE, &o);
  close(fd);
}

// Everything run() sets up, undone by the destructor in reverse on every
// way out (a failed setup throws through it, a run ends normally): the
// sockets, the UMEM, the XDP programs libxdp attached for them, the UMEM's
// memory. The interfaces are left as they were found.
struct Setup {
  Port ports[2];
  unsigned ifindex[2] = {0, 0};
  std::uint32_t our_prog[2] = {0, 0};  // program id attached for this run, 0: none
  void* area = MAP_FAILED;
  std::size_t bytes = 0;
  xsk_umem* umem = nullptr;

  Setup() = default;
  Setup(const Setup&) = delete;
  Setup& operator=(const Setup&) = delete;
  ~Setup() {
    for (Port& p : ports)
      if (p.xsk) xsk_socket__delete(p.xsk);
    if (umem) xsk_umem__delete(umem);  // after its sockets: refuses (EBUSY) while they exist
    for (int i = 0; i < 2; ++i) detach_xdp(ifindex[i], our_prog[i]);
    if (area != MAP_FAILED) munmap(area, bytes);
  }
};

int run(int argc, char** argv) {
  std::vector<std::string> devs;
  unsigned queue = 0;
  std::uint32_t ring = 2048, frames = 8192, batch = 64;
  double duration = 10;
  std::string bind_s = "copy", mode_s = "auto", ready_file;
  bool json = false, quiet = false, no_wakeup = false;
  CLI::App app{"xsk-minfwd: minimal AF_XDP forwarder between two interfaces (baseline)"};
  app.add_option("--dev,-i", devs, "the two interfaces (give --dev twice)")->required()->expected(2);
  app.add_option("--queue,-q", queue, "queue on both interfaces");
  app.add_option("--duration,-d", duration, "seconds (0: until SIGINT/SIGTERM)")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--ring", ring, "entries of every ring (power of two)")
      ->check(CLI::Range(64u, 16384u));
  app.add_option("--frames", frames, "UMEM frames of 4096 bytes")->check(CLI::Range(256u, 262144u));
  app.add_option("--batch,-b", batch, "frames per ring operation")->check(CLI::Range(1u, 1024u));
  app.add_option("--bind", bind_s, "copy, zerocopy or auto (zero-copy, else copy)")
      ->check(CLI::IsMember({"copy", "zerocopy", "auto"}));
  app.add_option("--xdp-mode", mode_s, "XDP attach mode: auto (native, else generic), drv or skb")
      ->check(CLI::IsMember({"auto", "drv", "skb"}));
  app.add_flag("--no-need-wakeup", no_wakeup, "bind without XDP_USE_NEED_WAKEUP (kick every time)");
  app.add_option("--ready-file", ready_file, "file created once both sockets are bound, holding the PID");
  app.add_flag("--json", json, "print one JSON object at exit (stdout)");
  app.add_flag("--quiet", quiet, "no per-second lines");
  if (const int rc = xt::parse_cli(app, argc, argv, "xsk-minfwd"); rc >= 0) return rc;
  if (ring & (ring - 1))
    throw xt::UsageError("--ring " + std::to_string(ring) + ": want a power of two (64..16384)");
  if (devs[0] == devs[1]) throw xt::UsageError("the two --dev must differ (both '" + devs[0] + "')");
  if (frames < 4 * ring)
    throw xt::UsageError("--frames " + std::to_string(frames) + ": want at least 4 x --ring = " +
                         std::to_string(4 * ring) + " (fill+RX, TX+completion, both ports)");
  Setup su;  // from here on, every way out goes through ~Setup
  auto& ports = su.ports;
  bool had_prog[2];
  for (int i = 0; i < 2; ++i) {
    const unsigned idx = xt::ifindex_of(devs[i]);
    std::uint32_t id = 0;
    had_prog[i] = bpf_xdp_query_id(static_cast<int>(idx), 0, &id) == 0 && id != 0;
    su.ifindex[i] = idx;
  }

  // One program per interface, attached directly: libxdp's multi-program
  // dispatcher needs bpffs pins that would outlive a test namespace.
  setenv("LIBXDP_SKIP_DISPATCHER", "1", 0);
  const xt::LibbpfCapture libbpf_capture;  // for the whole run
  libxdp_set_print([](libxdp_print_level, const char*, va_list) { return 0; });
  xt::install_stop_handlers();

  su.bytes = std::size_t{frames} * kFrame;
  su.area = mmap(nullptr, su.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (su.area == MAP_FAILED) throw xt::Error("mmap of the UMEM failed");
  xsk_umem_config uc{};
  uc.fill_size = ring;
  uc.comp_size = ring;
  uc.frame_size = kFrame;
  // The UMEM's fill and completion rings are the first port's.
  auto create_umem = [&] {
    ports[0].fq = {};
    ports[0].cq = {};
    if (int rc = xsk_umem__create(&su.umem, su.area, su.bytes, &ports[0].fq, &ports[0].cq, &uc); rc != 0)
      throw xt::Error(std::string("xsk_umem__create: ") + bind_error(-rc, devs[0], false));
  };
  create_umem();

  // xdp_flags 0 (--xdp-mode auto): the kernel attaches in native mode where
  // the driver has it, else in generic mode.
  std::uint32_t xdp_flags = 0;
  if (mode_s == "drv") xdp_flags = XDP_FLAGS_DRV_MODE;
  if (mode_s == "skb") xdp_flags = XDP_FLAGS_SKB_MODE;
  const std::uint16_t wake = no_wakeup ? 0 : XDP_USE_NEED_WAKEUP;
  std::string bound = bind_s == "copy" ? "copy" : "zerocopy";
  for (int i = 0; i < 2; ++i) {
    Port& p = ports[i];
    p.name = devs[i];
    xsk_socket_config sc{};
    sc.rx_size = ring;
    sc.tx_size = ring;
    sc.xdp_flags = xdp_flags;
    // The second socket inherits the first one's mode (XDP_SHARED_UMEM).
    sc.bind_flags = static_cast<std::uint16_t>((bound == "copy" ? XDP_COPY : XDP_ZEROCOPY) | wake);
    int rc = xsk_socket__create_shared(&p.xsk, p.name.c_str(), queue, su.umem, &p.rx, &p.tx,
                                       &p.fq, &p.cq, &sc);
    if (rc == -EOPNOTSUPP && bind_s == "auto" && i == 0) {
      // Zero-copy refused (veth, most drivers): copy mode, on a fresh UMEM
      // over the same memory. The failed socket is the UMEM's own, and
      // binding it again relies on libxdp's record of which of its rings
      // are set up: libxdp 1.3.1 keeps it (the retry works), versions that
      // lose track of the TX ring set it up again and fail (EINVAL). The
      // failed bind left nothing registered on the queue, so the fresh
      // socket binds at once. (src/devices/xsk.cpp avoids a failed bind
      // on the UMEM's own socket by probing with a throw-away one.)
      xsk_umem__delete(su.umem);
      su.umem = nullptr;
      p.rx = {};
      p.tx = {};
      create_umem();
      bound = "copy";
      sc.bind_flags = static_cast<std::uint16_t>(XDP_COPY | wake);
      rc = xsk_socket__create_shared(&p.xsk, p.name.c_str(), queue, su.umem, &p.rx, &p.tx, &p.fq,
                                     &p.cq, &sc);
    }
    if (rc != 0) {
      std::string hint;
      if (rc == -EOPNOTSUPP)
        hint = bound == "zerocopy" ? " (zero-copy refused? --bind copy or auto)"
                                   : " (native XDP refused? --xdp-mode skb)";
      throw xt::Error("AF_XDP socket on '" + p.name + "' queue " + std::to_string(queue) + ": " +
                      bind_error(-rc, p.name, had_prog[i]) + hint + " " + xt::take_libbpf_log(300));
    }
    // The program libxdp attached for this socket (none where one was
    // there before: libxdp then uses it), for ~Setup to take off.
    if (!had_prog[i]) bpf_xdp_query_id(static_cast<int>(su.ifindex[i]), 0, &su.our_prog[i]);
    // Let one sendto send the whole ring (Linux >= 6.17; 32 frames before).
    const unsigned budget = ring;
    setsockopt(xsk_socket__fd(p.xsk), SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof budget);
  }

  Stack st;
  st.v.resize(frames);
  for (std::uint32_t f = frames; f-- > 0;) st.push(std::uint64_t{f} * kFrame);
  xt::touch_ready_file(ready_file);

  const double t0 = xt::now_s();
  double first = -1, last = -1;
  std::uint64_t prev_fwd = 0;
  xt::ProgressLines lines("minfwd", "forwarded", t0, quiet);
  for (std::uint64_t round = 0;; ++round) {
    poll_port(ports[0], ports[1], st, batch);
    poll_port(ports[1], ports[0], st, batch);
    if ((round & 1023) != 0) continue;  // the clock and the flags every 1024 rounds
    if (xt::g_stop.load(std::memory_order_relaxed)) break;
    const double t = xt::now_s();
    const std::uint64_t fwd = ports[0].tx_frames + ports[1].tx_frames;
    if (fwd != prev_fwd) {
      if (first < 0) first = t;
      last = t;
      prev_fwd = fwd;
    }
    lines.tick(t, [&] { return fwd; });
    if (duration > 0 && t - t0 >= duration) break;
  }
  const double t_end = xt::now_s();
  // The frames still in TX rings: let them go, so the counts settle.
  for (const double until = xt::now_s() + 0.2; xt::now_s() < until;) {
    poll_port(ports[0], ports[1], st, batch);
    poll_port(ports[1], ports[0], st, batch);
  }

  xdp_statistics ks[2]{};
  for (int i = 0; i < 2; ++i) {
    socklen_t len = sizeof ks[i];
    getsockopt(xsk_socket__fd(ports[i].xsk), SOL_XDP, XDP_STATISTICS, &ks[i], &len);
  }
  const std::uint64_t fwd = ports[0].tx_frames + ports[1].tx_frames;
  const double active = first >= 0 && last > first ? last - first : t_end - t0;
  const double mpps = active > 0 ? static_cast<double>(fwd) / active / 1e6 : 0;
  if (json) {
    std::printf("{\"tool\":\"xsk-minfwd\",\"bind\":\"%s\",\"forwarded\":%" PRIu64
                ",\"seconds\":%.3f,\"active_seconds\":%.3f,\"mpps\":%.4f,\"devices\":[",
                bound.c_str(), fwd, t_end - t0, active, mpps);
    for (int i = 0; i < 2; ++i)
      std::printf("%s{\"name\":%s,\"rx\":%" PRIu64 ",\"tx\":%" PRIu64 ",\"tx_completed\":%" PRIu64
                  ",\"dropped\":%" PRIu64 ",\"kicks\":%" PRIu64 ",\"rx_dropped\":%llu"
                  ",\"rx_ring_full\":%llu,\"rx_fill_ring_empty\":%llu,\"tx_invalid\":%llu}",
                  i ? "," : "", xt::json_str(ports[i].name).c_str(), ports[i].rx_frames,
                  ports[i].tx_frames, ports[i].completed, ports[i].dropped, ports[i].kicks,
                  static_cast<unsigned long long>(ks[i].rx_dropped),
                  static_cast<unsigned long long>(ks[i].rx_ring_full),
                  static_cast<unsigned long long>(ks[i].rx_fill_ring_empty_descs),
                  static_cast<unsigned long long>(ks[i].tx_invalid_descs));
    std::printf("]}\n");
  } else {
    std::printf("minfwd: forwarded=%" PRIu64 " seconds=%.3f active=%.3f mpps=%.4f bind=%s", fwd,
                t_end - t0, active, mpps, bound.c_str());
    for (int i = 0; i < 2; ++i)
      std::printf(" | %s rx=%" PRIu64 " tx=%" PRIu64 " dropped=%" PRIu64
                  " kernel_rx_dropped=%llu kernel_rx_ring_full=%llu",
                  ports[i].name.c_str(), ports[i].rx_frames, ports[i].tx_frames, ports[i].dropped,
                  static_cast<unsigned long long>(ks[i].rx_dropped),
                  static_cast<unsigned long long>(ks[i].rx_ring_full));
    std::printf("\n");
  }
  std::fflush(stdout);
  return 0;  // ~Setup: sockets, UMEM, XDP programs, memory
}

}  // namespace

int main(int argc, char** argv) { return xt::run_main("xsk-minfwd", run, argc, argv); }
