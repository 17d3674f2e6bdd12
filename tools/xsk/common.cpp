// Helpers shared by the traffic tools; see common.hpp.
#include "common.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace xt {

int run_main(const char* tool, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s (see --help)\n", tool, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", tool, e.what());
    return 1;
  }
}

int parse_cli(CLI::App& app, int argc, char** argv, const char* tool) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s (see --help)\n", tool, e.what());
    return 2;
  }
  return -1;
}

std::atomic<bool> g_stop{false};

namespace {
void on_stop_signal(int) { g_stop.store(true, std::memory_order_relaxed); }
}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

double now_s() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void sleep_until_s(double t) noexcept {
  const double left = t - now_s();
  if (left <= 0) return;
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(left);
  ts.tv_nsec = static_cast<long>((left - static_cast<double>(ts.tv_sec)) * 1e9);
  nanosleep(&ts, nullptr);
}

void ProgressLines::print(double t, std::uint64_t n) {
  std::fprintf(stderr, "%s: t=%.0f %s=%" PRIu64 " (+%" PRIu64 ") %.3f Mpps\n", tag_, t - t0_,
               counter_, n, n - prev_, static_cast<double>(n - prev_) / 1e6 / (t - line_t_));
  prev_ = n;
}

unsigned ifindex_of(const std::string& name) {
  const unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0)
    throw Error("no interface '" + name + "' in this network namespace (ip link show)");
  return idx;
}

Mac parse_mac(std::string_view s) {
  Mac m{};
  unsigned v[6];
  char tail;
  const std::string str(s);
  if (std::sscanf(str.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4],
                  &v[5], &tail) != 6)
    throw Error("bad MAC address '" + str + "' (want xx:xx:xx:xx:xx:xx)");
  for (int i = 0; i < 6; ++i) m[i] = static_cast<std::uint8_t>(v[i]);
  return m;
}

std::uint32_t parse_ipv4(std::string_view s) {
  const std::string str(s);
  in_addr a{};
  if (inet_pton(AF_INET, str.c_str(), &a) != 1)
    throw Error("bad IPv4 address '" + str + "' (want a.b.c.d)");
  return ntohl(a.s_addr);
}

std::string mac_str(const Mac& m) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return b;
}

namespace {
void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t* p, std::uint32_t v) {
  put16(p, static_cast<std::uint16_t>(v >> 16));
  put16(p + 2, static_cast<std::uint16_t>(v));
}
}  // namespace

std::vector<std::uint8_t> build_udp_frame(const UdpFrameSpec& s, std::uint32_t flow) {
  constexpr std::uint32_t kEth = 14, kIp = 20, kUdp = 8;
  if (s.bytes < 60 || s.bytes > 1514)
    throw Error("frame of " + std::to_string(s.bytes) + " bytes: want 60..1514 (no FCS)");
  std::vector<std::uint8_t> f(s.bytes, 0);
  std::uint8_t* p = f.data();
  std::memcpy(p, s.dst_mac.data(), 6);
  std::memcpy(p + 6, s.src_mac.data(), 6);
  put16(p + 12, 0x0800);
  std::uint8_t* ip = p + kEth;
  const std::uint32_t ip_len = s.bytes - kEth;
  ip[0] = 0x45;  // IPv4, 20-byte header: gen.bpf.c relies on it
  put16(ip + 2, static_cast<std::uint16_t>(ip_len));
  put16(ip + 6, 0x4000);  // don't fragment
  ip[8] = 64;             // TTL
  ip[9] = IPPROTO_UDP;
  put32(ip + 12, s.src_ip);
  put32(ip + 16, s.dst_ip);
  std::uint32_t sum = 0;
  for (std::uint32_t i = 0; i < kIp; i += 2) sum += static_cast<std::uint32_t>(ip[i] << 8 | ip[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  put16(ip + 10, static_cast<std::uint16_t>(~sum));
  std::uint8_t* udp = ip + kIp;
  put16(udp, static_cast<std::uint16_t>(s.src_port + flow));
  put16(udp + 2, s.dst_port);
  put16(udp + 4, static_cast<std::uint16_t>(ip_len - kIp));
  // checksum 0: none
  std::uint8_t* pl = udp + kUdp;
  const std::uint32_t room = s.bytes - kEth - kIp - kUdp;  // >= 18
  std::memcpy(pl, "PPGEN", 5);
  put32(pl + 6, flow);
  for (std::uint32_t i = 10; i < room; ++i) pl[i] = static_cast<std::uint8_t>(i);
  return f;
}

// ---- BPF objects ---------------------------------------------------------------------

namespace {
std::string errno_hint(int err) {
  if (err == EPERM || err == EACCES)
    return " (loading BPF programs needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN: run as root)";
  return "";
}
}  // namespace

BpfObject::BpfObject(const unsigned char* bytes, std::size_t size, const char* name) : name_(name) {
  LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = name);
  obj_ = bpf_object__open_mem(bytes, size, &oo);
  if (!obj_) {
    const int e = errno;
    throw Error(std::string("opening BPF object ") + name + ": " + std::strerror(e) + " " +
                take_libbpf_log(300));
  }
  if (const int rc = bpf_object__load(obj_); rc != 0) {
    const std::string log = take_libbpf_log(300);
    bpf_object__close(obj_);
    obj_ = nullptr;
    throw Error(std::string("loading BPF object ") + name + ": " + std::strerror(-rc) +
                errno_hint(-rc) + (log.empty() ? "" : "; libbpf: " + log));
  }
}

BpfObject::~BpfObject() {
  if (obj_) bpf_object__close(obj_);
}

int BpfObject::prog_fd(const char* prog) const {
  bpf_program* p = bpf_object__find_program_by_name(obj_, prog);
  if (!p) throw Error("BPF object " + name_ + " has no program " + prog);
  return bpf_program__fd(p);
}

int BpfObject::map_fd(const char* map) const {
  bpf_map* m = bpf_object__find_map_by_name(obj_, map);
  if (!m) throw Error("BPF object " + name_ + " has no map " + map);
  return bpf_map__fd(m);
}

// ---- XDP attachment ---------------------------------------------------------------

XdpMode parse_xdp_mode(std::string_view s) {
  if (s == "auto") return XdpMode::kAuto;
  if (s == "drv" || s == "native") return XdpMode::kDrv;
  if (s == "skb" || s == "generic") return XdpMode::kSkb;
  throw UsageError("bad XDP mode '" + std::string(s) + "' (want auto, drv or skb)");
}

XdpAttachment::XdpAttachment(unsigned ifindex, const std::string& ifname, int prog_fd,
                             XdpMode mode)
    : ifindex_(ifindex), prog_fd_(prog_fd) {
  auto attach = [&](std::uint32_t flag) {
    return bpf_xdp_attach(static_cast<int>(ifindex), prog_fd, XDP_FLAGS_UPDATE_IF_NOEXIST | flag,
                          nullptr);
  };
  int rc = -EOPNOTSUPP;
  if (mode != XdpMode::kSkb) {
    rc = attach(XDP_FLAGS_DRV_MODE);
    drv_ = rc == 0;
  }
  // Native mode unsupported by the driver: generic mode works everywhere.
  if (rc != 0 && mode == XdpMode::kAuto && rc != -EBUSY && rc != -EEXIST && rc != -EPERM)
    rc = attach(XDP_FLAGS_SKB_MODE);
  else if (mode == XdpMode::kSkb)
    rc = attach(XDP_FLAGS_SKB_MODE);
  if (rc == 0) return;
  std::string why;
  switch (-rc) {
    case EBUSY:
    case EEXIST:
      why = "it already has an XDP program (remove it: ip link set dev " + ifname +
            " xdp off; or xdpgeneric off)";
      break;
    case EPERM:
    case EACCES:
      why = "attaching XDP needs CAP_NET_ADMIN and CAP_BPF: run as root";
      break;
    default:
      why = std::strerror(-rc);
      break;
  }
  throw Error("attaching the XDP program to '" + ifname + "': " + why);
}

XdpAttachment::~XdpAttachment() {
  LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = prog_fd_);
  // Only our program: another one put there meanwhile stays.
  bpf_xdp_detach(static_cast<int>(ifindex_), drv_ ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE, &o);
}

TcAttachment::TcAttachment(unsigned ifindex, const std::string& ifname, int prog_fd)
    : ifindex_(ifindex), prog_fd_(prog_fd) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
              .attach_point = BPF_TC_INGRESS);
  int rc = bpf_tc_hook_create(&hook);
  if (rc != 0 && rc != -EEXIST)
    throw Error("creating the clsact qdisc on '" + ifname + "': " + std::strerror(-rc) +
                (rc == -EPERM ? " (needs CAP_NET_ADMIN: run as root)" : ""));
  created_qdisc_ = rc == 0;
  LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = prog_fd);
  rc = bpf_tc_attach(&hook, &o);
  if (rc != 0) {
    if (created_qdisc_) bpf_tc_hook_destroy(&hook);
    throw Error("attaching the TC program to '" + ifname + "': " + std::strerror(-rc));
  }
  handle_ = o.handle;
  priority_ = o.priority;
}

TcAttachment::~TcAttachment() {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex_),
              .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, o, .handle = handle_, .priority = priority_);
  bpf_tc_detach(&hook, &o);
  if (created_qdisc_) bpf_tc_hook_destroy(&hook);
  (void)prog_fd_;
}

// ---- misc -------------------------------------------------------------------------------

LinkCounters link_counters(const std::string& ifname) {
  LinkCounters c;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return c;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_PACKET || !a->ifa_data) continue;
    if (ifname != a->ifa_name) continue;
    const auto* s = static_cast<const rtnl_link_stats*>(a->ifa_data);
    c.rx_packets = s->rx_packets;
    c.tx_packets = s->tx_packets;
    c.rx_dropped = s->rx_dropped;
    c.tx_dropped = s->tx_dropped;
    break;
  }
  freeifaddrs(list);
  return c;
}

void touch_ready_file(const std::string& path) {
  if (path.empty()) return;
  // Written aside and renamed: whoever sees the file sees its PID.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << getpid() << '\n';
    if (!f.flush()) throw Error("cannot write the ready file " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
}

std::string json_str(std::string_view s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += c;
    }
  }
  return o + "\"";
}

}  // namespace xt
