// pagepool-sink: counts the frames (and bytes) arriving on an interface.
//
// A BPF program (bpf/sink.bpf.c) counts each frame in a per-CPU slot and
// drops it; this process only reads the counters: a line per second
// (stderr) and a final line, or one JSON object with --json (stdout).
// Nothing is copied to user space, so the sink costs less per frame than
// anything that forwards to it. Two hooks:
//  --hook xdp  (default) XDP, returns XDP_DROP; --xdp-mode auto (default)
//              attaches in native (driver) mode where the driver has one,
//              else generic: the cheapest for XDP frames (XDP_TX/REDIRECT
//              senders);
//  --hook tc   TC ingress (clsact), returns TC_ACT_SHOT: the cheapest for
//              socket buffers (AF_XDP copy-mode and AF_PACKET senders),
//              which native XDP on veth would first copy into a page with
//              XDP headroom. scripts/netns-demo.sh counts here.
//
//   pagepool-sink --dev veth0 --duration 10 [--hook tc] [--json] [--ready-file F]
#include <bpf/bpf.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common.hpp"

namespace {

// Layout of struct sink_counters in bpf/sink.bpf.c.
struct SinkCounters {
  std::uint64_t frames, bytes, other;
};

SinkCounters read_counters(int map_fd, std::vector<SinkCounters>& percpu) {
  std::uint32_t key = 0;
  SinkCounters t{};
  if (bpf_map_lookup_elem(map_fd, &key, percpu.data()) != 0) return t;
  for (const SinkCounters& c : percpu) {
    t.frames += c.frames;
    t.bytes += c.bytes;
    t.other += c.other;
  }
  return t;
}

// --check: what scripts/netns-demo.sh and the e2e tests need besides root
// and veth. Prints "SKIP: reason" and returns 77 where something is missing.
int check_environment() {
  const int fd = socket(AF_XDP, SOCK_RAW, 0);
  if (fd < 0) {
    const int e = errno;
    if (e == EPERM || e == EACCES)
      std::fprintf(stderr, "SKIP: AF_XDP sockets need root (CAP_NET_RAW)\n");
    else if (e == EAFNOSUPPORT)
      std::fprintf(stderr, "SKIP: the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)\n");
    else
      std::fprintf(stderr, "SKIP: socket(AF_XDP): %s\n", std::strerror(e));
    return 77;
  }
  close(fd);
  try {
    xt::BpfObject obj(pagepool_sink_bpf, pagepool_sink_bpf_size, "pagepool_sink");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "SKIP: %s\n", e.what());
    return 77;
  }
  return 0;
}

int run(int argc, char** argv) {
  CLI::App app{"pagepool-sink: count frames arriving on an interface (XDP, drops them)"};
  std::string dev, ready_file, mode_s = "auto", hook = "xdp";
  double duration = 10, idle_exit = 0;
  bool json = false, quiet = false, check = false;
  auto* dev_opt = app.add_option("--dev,-i", dev, "interface to count on");
  app.add_flag("--check", check,
               "only check that AF_XDP sockets and XDP programs work here (exit 0, or 77 and why)");
  app.add_option("--duration,-d", duration, "seconds to count (0: until SIGINT/SIGTERM)")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--idle-exit", idle_exit,
                 "stop this many seconds after the last frame, once frames were seen (0: off)")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--hook", hook,
                 "xdp (in the driver; the fastest for XDP frames) or tc (TC ingress; the fastest "
                 "for socket buffers, e.g. from AF_XDP copy-mode or AF_PACKET senders)")
      ->check(CLI::IsMember({"xdp", "tc"}));
  auto* mode_opt =
      app.add_option("--xdp-mode", mode_s,
                     "with --hook xdp: auto (native, else generic), drv (native) or skb (generic)");
  app.add_option("--ready-file", ready_file, "file created once the program is attached, holding the PID");
  app.add_flag("--json", json, "print one JSON object at exit (stdout)");
  app.add_flag("--quiet,-q", quiet, "no per-second lines");
  if (const int rc = xt::parse_cli(app, argc, argv, "pagepool-sink"); rc >= 0) return rc;
  const xt::LibbpfCapture libbpf_capture;  // for the whole run
  if (check) return check_environment();
  if (dev_opt->count() == 0) {
    std::fprintf(stderr, "pagepool-sink: --dev is required (see --help)\n");
    return 2;
  }
  if (hook == "tc" && mode_opt->count() > 0)
    throw xt::UsageError("--xdp-mode applies to --hook xdp only, not --hook tc");
  const xt::XdpMode mode = xt::parse_xdp_mode(mode_s);

  xt::install_stop_handlers();
  const unsigned ifindex = xt::ifindex_of(dev);
  xt::BpfObject obj(pagepool_sink_bpf, pagepool_sink_bpf_size, "pagepool_sink");
  const int map_fd = obj.map_fd("sink_counts");
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) throw xt::Error("cannot count the possible CPUs");
  std::vector<SinkCounters> percpu(static_cast<std::size_t>(ncpu));
  std::unique_ptr<xt::XdpAttachment> xdp;
  std::unique_ptr<xt::TcAttachment> tc;
  if (hook == "xdp")
    xdp = std::make_unique<xt::XdpAttachment>(ifindex, dev, obj.prog_fd("pagepool_sink"), mode);
  else
    tc = std::make_unique<xt::TcAttachment>(ifindex, dev, obj.prog_fd("pagepool_sink_tc"));
  const std::string where = xdp ? std::string("xdp-") + xdp->mode_name() : "tc";
  xt::touch_ready_file(ready_file);

  // Sampled every 10 ms so the active window (first to last frame) is
  // known to that precision; a line per whole second.
  const double t0 = xt::now_s();
  double first = -1, last = -1;
  SinkCounters prev{};
  xt::ProgressLines lines("sink", "frames", t0, quiet);
  while (!xt::g_stop.load(std::memory_order_relaxed)) {
    usleep(10000);
    const double t = xt::now_s();
    const SinkCounters c = read_counters(map_fd, percpu);
    if (c.frames != prev.frames) {
      if (first < 0) first = t - 0.01;
      last = t;
    }
    prev = c;
    lines.tick(t, [&] { return c.frames; });
    if (duration > 0 && t - t0 >= duration) break;
    if (idle_exit > 0 && last > 0 && t - last >= idle_exit) break;
  }
  const double t_end = xt::now_s();
  const SinkCounters c = read_counters(map_fd, percpu);
  if (c.frames != prev.frames) last = t_end;
  const double active = first >= 0 && last > first ? last - first : 0;
  const double mpps = active > 0 ? static_cast<double>(c.frames) / active / 1e6 : 0;
  if (json) {
    std::printf(
        "{\"tool\":\"pagepool-sink\",\"dev\":%s,\"hook\":\"%s\",\"frames\":%" PRIu64
        ",\"bytes\":%" PRIu64 ",\"other\":%" PRIu64
        ",\"seconds\":%.3f,\"active_seconds\":%.3f,\"mpps\":%.4f}\n",
        xt::json_str(dev).c_str(), where.c_str(), c.frames, c.bytes, c.other, t_end - t0, active,
        mpps);
  } else {
    std::printf("sink: %s frames=%" PRIu64 " bytes=%" PRIu64 " other=%" PRIu64
                " seconds=%.3f active=%.3f mpps=%.4f (%s)\n",
                dev.c_str(), c.frames, c.bytes, c.other, t_end - t0, active, mpps, where.c_str());
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return xt::run_main("pagepool-sink", run, argc, argv); }
