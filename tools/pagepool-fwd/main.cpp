// pagepool-fwd: the XDP-style forwarder on sim or AF_XDP devices.
//
//   pagepool-fwd                      sim demo: 2 sim devices, redirect, 2 s,
//                                     then the same run with the malloc baseline,
//                                     three times interleaved; medians compared
//   pagepool-fwd --dev xsk:veth0 --dev xsk:veth1 --prog redirect --duration 10
//
// A live line per second and a final summary (or --json). Exit codes: 0;
// 1, one line: a run that cannot start (a device that cannot open: no
// such interface, missing privileges, a busy queue); 2, one line: a bad
// option (also one that a device refuses when it opens, e.g. a queue
// number past 65535 or one socket given twice); 3: the run's packet
// accounting does not add up or pages are left out.
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "pagepool/devices/sim.hpp"
#include "pagepool/devices/xsk.hpp"
#include "pagepool/fwd/forwarder.hpp"
#include "line_probe.hpp"

namespace pf = pagepool::fwd;
using json = nlohmann::json;

namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted.store(true, std::memory_order_relaxed); }

struct Config {
  std::vector<std::string> devs;
  std::string prog = "redirect";
  double duration = 2;
  double rate = 0;
  std::string size = "64";
  std::uint32_t flows = 256;
  std::uint64_t seed = 1;
  std::uint64_t tx_delay_ns = 0;
  std::uint32_t ring = 1024;
  std::uint32_t threads = 0;
  std::uint32_t repeat = 0;  // 0: 3 with a baseline (medians), else 1
  std::string baseline;  // "", "malloc", "stack", "none"
  bool json = false;
  bool quiet = false;
  bool no_pin = false;
  bool no_verify = false;
  bool no_colour = false;
  std::uint32_t xsk_ring = 2048;
  std::string xsk_bind = "auto", xsk_attach = "auto";
  bool xsk_set = false;
  std::vector<int> cpus;  // pollers' CPUs (empty: not pinned)
  int hw_cpu = -1;        // the sim hardware thread's CPU
  bool rate_set = false, size_set = false, flows_set = false, delay_set = false;
};

// One line on stderr and exit `code` (2: a bad option; see the top).
[[noreturn]] void fail(const std::string& msg, int code = 2) {
  std::fprintf(stderr, "pagepool-fwd: %s\n", msg.c_str());
  std::exit(code);
}

bool is_sim(const std::string& d) { return d == "sim"; }

// The devices of one run, fresh each time (a sim run consumes its devices).
std::vector<std::unique_ptr<pf::Device>> open_devices(const Config& c) {
  if (is_sim(c.devs[0])) {
    pf::SimOptions o;
    o.devices = static_cast<std::uint32_t>(c.devs.size());
    o.sizes = pf::parse_sizes(c.size);
    o.flows = c.flows;
    o.rate_mpps = c.rate;
    o.seed = c.seed;
    o.tx_delay_ns = c.tx_delay_ns;
    o.ring_size = c.ring;
    o.hw_cpu = c.hw_cpu;
    o.verify = !c.no_verify;
    o.colour = !c.no_colour;
    return pf::open_sim_devices(o);
  }
  std::vector<pf::XskSpec> specs;
  for (auto& d : c.devs) specs.push_back(pf::parse_xsk_spec(std::string_view(d).substr(4)));
  pf::XskOptions xo;
  xo.ring_size = c.xsk_ring;
  xo.bind = c.xsk_bind == "copy"       ? pf::XskBind::kCopy
            : c.xsk_bind == "zerocopy" ? pf::XskBind::kZeroCopy
                                       : pf::XskBind::kAuto;
  xo.attach = c.xsk_attach == "native"    ? pf::XskAttach::kNative
              : c.xsk_attach == "generic" ? pf::XskAttach::kGeneric
                                          : pf::XskAttach::kAuto;
  return pf::open_xsk_devices(specs, xo);
}

struct Snapshot {
  pf::PacketCounters pk;
  std::uint64_t fast = 0, ring = 0, slow = 0, inflight = 0;
};

Snapshot snap(const pf::Forwarder& f) {
  Snapshot s;
  s.pk = f.counters();
  for (std::size_t i = 0; i < f.device_count(); ++i) {
    const pagepool::Stats st = f.pool_stats(i);
    s.fast += st.alloc.fast;
    s.ring += st.alloc.refill;
    s.slow += st.alloc.slow + st.alloc.slow_high_order;
    s.inflight += f.pool_levels(i).inflight;
  }
  return s;
}

double pct(std::uint64_t part, std::uint64_t all) { return all ? 100.0 * double(part) / double(all) : 0.0; }

void live_line(FILE* out, const char* mode, double t, const Snapshot& a, const Snapshot& b, double dt,
               bool pool) {
  const double rx = double(b.pk.rx - a.pk.rx) / dt / 1e6;
  const double tx = double(b.pk.tx - a.pk.tx) / dt / 1e6;
  const double dr = double(b.pk.dropped_total() - a.pk.dropped_total()) / dt / 1e6;
  std::fprintf(out, "[%-6s] %5.1fs  rx %6.2f  tx %6.2f  drop %6.2f Mpps", mode, t, rx, tx, dr);
  if (pool) {
    // alloc.fast is derived from several counters (types.hpp): read while
    // the pollers run it may lead by a batch and then fall back.
    const std::uint64_t f = b.fast > a.fast ? b.fast - a.fast : 0, r = b.ring - a.ring, s = b.slow - a.slow;
    std::fprintf(out, "  | pool fast %5.1f%%  ring %5.1f%%  slow %5.1f%%  inflight %llu", pct(f, f + r + s),
                 pct(r, f + r + s), pct(s, f + r + s), static_cast<unsigned long long>(b.inflight));
  }
  std::fprintf(out, "\n");
  std::fflush(out);
}

struct RunResult {
  pf::Report rep;
  std::vector<std::string> errors;
  double line_rt = 0;  // line_round_trip() between the run's CPUs just before it; 0: not pinned
};

// One run: with pool pages (baseline = nullptr) or with the named heap
// baseline ("malloc" or "stack").
RunResult run_once(const Config& c, const char* baseline, FILE* live) {
  const double rt = c.hw_cpu >= 0 && !c.cpus.empty() ? pagepool_tools::line_round_trip(c.hw_cpu, c.cpus[0]) : 0;
  auto devs = open_devices(c);
  pf::ForwarderOptions fo;
  fo.threads = c.threads;
  fo.malloc_baseline = baseline && std::string_view(baseline) == "malloc";
  fo.stack_baseline = baseline && std::string_view(baseline) == "stack";
  fo.cpus = c.cpus;
  const std::uint32_t ndev = static_cast<std::uint32_t>(devs.size());
  pf::Forwarder fwd(std::move(devs), pf::make_builtin(c.prog, ndev), fo);
  const char* mode = baseline ? baseline : "pool";
  fwd.start();
  const auto t0 = std::chrono::steady_clock::now();
  const auto end = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(c.duration));
  Snapshot last = snap(fwd);
  auto last_t = t0;
  while (!g_interrupted.load(std::memory_order_relaxed)) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) break;
    const auto next = std::min(end, last_t + std::chrono::seconds(1));
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(next - now, std::chrono::milliseconds(50)));
    const auto t = std::chrono::steady_clock::now();
    if (t >= last_t + std::chrono::seconds(1)) {
      Snapshot s = snap(fwd);
      if (live)
        live_line(live, mode, std::chrono::duration<double>(t - t0).count(), last, s,
                  std::chrono::duration<double>(t - last_t).count(), !baseline);
      last = s;
      last_t = t;
    }
  }
  RunResult r;
  r.line_rt = rt;
  r.rep = fwd.stop();
  r.errors = pf::accounting_errors(r.rep, is_sim(c.devs[0]));
  return r;
}

double mpps(std::uint64_t n, double s) { return s > 0 ? double(n) / s / 1e6 : 0; }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// The polling threads' busy TSC cycles per received frame (0 without frames).
double per_frame(const pf::Report& r) {
  return r.packets.rx ? double(r.busy_cycles) / double(r.packets.rx) : 0.0;
}

// The sim hardware thread's busy TSC cycles per received frame (0 without
// frames, and with xsk devices, which do not count them).
double hw_per_frame(const pf::Report& r) {
  std::uint64_t busy = 0;
  for (const auto& d : r.devices) busy += d.wire_busy_cycles;
  return r.packets.rx ? double(busy) / double(r.packets.rx) : 0.0;
}

// One mode's figures over its runs (pool or baseline), for the medians.
struct Series {
  std::vector<double> rx, cpf, hw;  // rx Mpps, poller and sim hardware cycles per frame
  std::vector<double> probe;        // line_round_trip() before the run, 0 where not measured
  void add(const RunResult& rr) {
    const pf::Report& r = rr.rep;
    rx.push_back(mpps(r.packets.rx, r.seconds));
    cpf.push_back(per_frame(r));
    hw.push_back(hw_per_frame(r));
    probe.push_back(rr.line_rt);
  }
  // The round trips measured (pinned runs), in run order.
  std::vector<double> measured() const {
    std::vector<double> m;
    for (double x : probe)
      if (x > 0) m.push_back(x);
    return m;
  }
};

// The rx ratio of each interleaved pair (pool run i and the baseline run
// right after it), and its medians by placement. The round trips before
// the runs are bimodal on these VMs (~170 or ~900 TSC cycles): a run is
// "near" when its probe is within kFarFactor of the lowest probe of the
// whole set, and a pair counts as near (far) when both its runs are. A
// set whose runs straddle the two has a ratio of medians that compares
// runs of one kind with runs of the other; the pairs' do not.
struct Pairs {
  static constexpr double kFarFactor = 2.0;
  std::vector<double> ratio;
  double median = 0, min = 0, max = 0;
  std::vector<double> near, far;  // ratios of the pairs of each kind
  bool mixed = false;             // some runs' probes near, some far
};

Pairs pair_ratios(const Series& pool, const Series& base) {
  Pairs p;
  const std::size_t n = std::min(pool.rx.size(), base.rx.size());
  double lowest = 0;
  for (const Series* s : {&pool, &base})
    for (std::size_t i = 0; i < n; ++i)
      if (s->probe[i] > 0 && (lowest == 0 || s->probe[i] < lowest)) lowest = s->probe[i];
  const auto far_run = [&](double rt) { return rt > Pairs::kFarFactor * lowest; };
  for (std::size_t i = 0; i < n; ++i) {
    const double r = base.rx[i] > 0 ? pool.rx[i] / base.rx[i] : 0.0;
    p.ratio.push_back(r);
    const double a = pool.probe[i], b = base.probe[i];
    if (a <= 0 || b <= 0) continue;  // not pinned: no placement to tell
    p.mixed |= far_run(a) || far_run(b);
    if (!far_run(a) && !far_run(b)) p.near.push_back(r);
    if (far_run(a) && far_run(b)) p.far.push_back(r);
  }
  if (!p.ratio.empty()) {
    p.median = median(p.ratio);
    p.min = *std::min_element(p.ratio.begin(), p.ratio.end());
    p.max = *std::max_element(p.ratio.begin(), p.ratio.end());
  }
  return p;
}

json report_json(const pf::Report& r, const std::vector<std::string>& errors) {
  json j;
  j["seconds"] = r.seconds;
  const auto& p = r.packets;
  json drops;
  for (std::size_t i = 0; i < pf::kDropReasons; ++i)
    drops[pf::drop_reason_name(static_cast<pf::DropReason>(i))] = p.dropped[i];
  j["packets"] = {{"rx", p.rx},       {"tx", p.tx},        {"redirect", p.redirect}, {"pass", p.pass},
                  {"pass_bytes", p.pass_bytes}, {"completed", p.completed},
                  {"dropped_total", p.dropped_total()}, {"dropped", drops}};
  j["mpps"] = {{"rx", mpps(p.rx, r.seconds)}, {"tx", mpps(p.tx, r.seconds)}};
  j["busy_cycles"] = r.busy_cycles;
  j["cycles_per_frame"] = per_frame(r);
  j["hw_cycles_per_frame"] = hw_per_frame(r);
  j["devices"] = json::array();
  for (std::size_t i = 0; i < r.devices.size(); ++i) {
    const auto& d = r.devices[i];
    j["devices"].push_back({{"name", r.device_names[i]},
                            {"rx", d.rx_frames},
                            {"tx", d.tx_frames},
                            {"tx_completed", d.tx_completed},
                            {"tx_ring_full", d.tx_ring_full},
                            {"rx_no_buf", d.rx_no_buf},
                            {"reclaimed", d.reclaimed},
                            {"wire_sent", d.wire_sent},
                            {"wire_received", d.wire_received},
                            {"wire_duplicate", d.wire_duplicate},
                            {"wire_corrupt", d.wire_corrupt},
                            {"wire_unchecked", d.wire_unchecked},
                            {"wire_busy_cycles", d.wire_busy_cycles}});
  }
  j["pools"] = json::array();
  for (const auto& pr : r.pools) {
    const auto& s = pr.stats;
    j["pools"].push_back(
        {{"name", pr.name},
         {"alloc",
          {{"fast", s.alloc.fast}, {"slow", s.alloc.slow}, {"slow_high_order", s.alloc.slow_high_order},
           {"empty", s.alloc.empty}, {"refill", s.alloc.refill}, {"waive", s.alloc.waive},
           {"limited", s.alloc.limited}, {"fail", s.alloc.fail}, {"steal", s.alloc.steal}}},
         {"recycle",
          {{"cached", s.recycle.cached}, {"cache_full", s.recycle.cache_full}, {"ring", s.recycle.ring},
           {"ring_full", s.recycle.ring_full}, {"released_refcnt", s.recycle.released_refcnt}}},
         {"hold", s.hold},
         {"release", s.release},
         {"inflight", pr.levels.inflight}});
  }
  j["inflight_at_exit"] = r.inflight_at_exit;
  j["heap_outstanding"] = r.heap_outstanding;
  j["drained"] = r.drained;
  j["accounting_ok"] = errors.empty();
  j["accounting_errors"] = errors;
  return j;
}

void summary(const Config& c, const RunResult& pool, const std::optional<RunResult>& base) {
  const auto& r = pool.rep;
  std::printf("\npagepool-fwd: %zu x %s, prog %s, %u polling thread(s), size %s, %.1f s\n", c.devs.size(),
              is_sim(c.devs[0]) ? "sim" : "xsk", c.prog.c_str(), c.threads, c.size.c_str(), r.seconds);
  auto row = [&](const char* what, double a, std::optional<double> b, const char* fmt) {
    std::printf("  %-22s", what);
    std::printf(fmt, a);
    if (b) std::printf(fmt, *b);
    std::printf("\n");
  };
  std::printf("  %-22s%14s", "", "pool");
  if (base) std::printf("%14s", c.baseline.c_str());
  std::printf("\n");
  auto bm = [&](auto f) -> std::optional<double> {
    if (!base) return std::nullopt;
    return f(base->rep);
  };
  row("rx Mpps", mpps(r.packets.rx, r.seconds), bm([](auto& b) { return mpps(b.packets.rx, b.seconds); }), "%14.2f");
  row("tx Mpps", mpps(r.packets.tx, r.seconds), bm([](auto& b) { return mpps(b.packets.tx, b.seconds); }), "%14.2f");
  row("poller cycles/frame", per_frame(r), bm([](auto& b) { return per_frame(b); }), "%14.1f");
  if (is_sim(c.devs[0]))
    row("sim hw cycles/frame", hw_per_frame(r), bm([](auto& b) { return hw_per_frame(b); }), "%14.1f");
  row("frames rx", double(r.packets.rx), bm([](auto& b) { return double(b.packets.rx); }), "%14.0f");
  row("frames tx", double(r.packets.tx), bm([](auto& b) { return double(b.packets.tx); }), "%14.0f");
  row("passed", double(r.packets.pass), bm([](auto& b) { return double(b.packets.pass); }), "%14.0f");
  row("dropped", double(r.packets.dropped_total()), bm([](auto& b) { return double(b.packets.dropped_total()); }),
      "%14.0f");
  for (std::size_t i = 0; i < pf::kDropReasons; ++i) {
    const std::uint64_t a = r.packets.dropped[i], b = base ? base->rep.packets.dropped[i] : 0;
    if (a || b) {
      const std::string name = std::string("  ") + pf::drop_reason_name(static_cast<pf::DropReason>(i));
      row(name.c_str(), double(a), base ? std::optional<double>(double(b)) : std::nullopt, "%14.0f");
    }
  }
  std::uint64_t fast = 0, ring = 0, slow = 0;
  for (auto& p : r.pools) {
    fast += p.stats.alloc.fast;
    ring += p.stats.alloc.refill;
    slow += p.stats.alloc.slow + p.stats.alloc.slow_high_order;
  }
  std::printf("  pool allocations: fast %.1f%%, ring %.1f%%, slow %.1f%%; inflight at exit %llu\n",
              pct(fast, fast + ring + slow), pct(ring, fast + ring + slow), pct(slow, fast + ring + slow),
              static_cast<unsigned long long>(r.inflight_at_exit));
  auto acct = [](const char* what, const RunResult& rr) {
    if (rr.errors.empty()) {
      std::printf("  accounting (%s): every frame accounted for, nothing left out\n", what);
    } else {
      for (auto& e : rr.errors) std::printf("  accounting (%s): FAILED %s\n", what, e.c_str());
    }
    std::uint64_t unchecked = 0;
    for (auto& d : rr.rep.devices) unchecked += d.wire_unchecked;
    if (unchecked)
      std::printf("  accounting (%s): %llu frames were older than the sim's duplicate-check window "
                  "(stamps checked, duplicates not)\n",
                  what, static_cast<unsigned long long>(unchecked));
  };
  acct("pool", pool);
  if (base) acct(c.baseline.c_str(), *base);
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"pagepool-fwd: XDP-style forwarding over page pools (sim or AF_XDP devices)"};
  app.add_option("--dev", c.devs,
                 "device, twice for two: sim | xsk:IFNAME[:QUEUE] (default: sim twice)")
      ->type_name("DEV");
  app.add_option("--prog", c.prog, "verdict program: drop | tx | redirect | l3-split")->capture_default_str();
  app.add_option("--duration", c.duration, "seconds to run (each of pool and baseline)")
      ->check(CLI::Range(0.05, 86400.0))
      ->capture_default_str();
  auto* o_rate = app.add_option("--rate", c.rate, "sim: offered Mpps per device, 0 = as fast as it runs")
                     ->check(CLI::Range(0.0, 1000.0));
  auto* o_size = app.add_option("--size", c.size, "sim: frame bytes: N, N,N,... or imix")->capture_default_str();
  auto* o_flows = app.add_option("--flows", c.flows, "sim: flows per device")->check(CLI::Range(1, 65536));
  auto* o_seed = app.add_option("--seed", c.seed, "sim: generator seed");
  auto* o_delay = app.add_option("--tx-delay", c.tx_delay_ns, "sim: TX completion delay, ns")
                      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1'000'000'000}));
  auto* o_ring = app.add_option("--ring", c.ring, "sim: queue entries (power of two, 64..65536)")->capture_default_str();
  app.add_option("--threads", c.threads,
                 "polling threads (default: one per device; with sim devices at most CPUs - 1, as the sim's "
                 "hardware thread needs a CPU of its own)")
      ->check(CLI::Range(1, 64));
  app.add_option("--baseline", c.baseline,
                 "sim: also run a baseline and compare: malloc (a malloc'd buffer per frame, freed at "
                 "completion; the default with sim), stack (buffers reused from a plain array stack: the "
                 "floor any allocator could reach), or none")
      ->check(CLI::IsMember({"malloc", "stack", "none"}));
  app.add_option("--repeat", c.repeat,
                 "run pool and baseline this many times, interleaved, and compare medians (default: 3 with "
                 "a baseline, which these shared machines need: a slow spell can halve one run; else 1)")
      ->check(CLI::Range(1, 100));
  app.add_flag("--json", c.json, "print a JSON summary on stdout (live lines go to stderr)");
  app.add_flag("--quiet", c.quiet, "no live lines");
  auto* o_noverify = app.add_flag("--no-verify", c.no_verify,
               "sim: the hardware does not check the stamps of transmitted frames (no duplicate/corruption "
               "proof; the wire side costs less)");
  auto* o_nocolour = app.add_flag("--no-colour", c.no_colour,
               "sim: every RX frame at the 256-byte headroom, instead of spread over up to 16 cache-line offsets "
               "by page (see devices/sim.hpp)");
  auto* o_xring = app.add_option("--xsk-ring", c.xsk_ring, "xsk: entries of every AF_XDP ring (power of two)")
                      ->check(CLI::Range(64, 65536))
                      ->capture_default_str();
  auto* o_xbind = app.add_option("--xsk-bind", c.xsk_bind, "xsk: auto (zero-copy, else copy), copy or zerocopy")
                      ->check(CLI::IsMember({"auto", "copy", "zerocopy"}))
                      ->capture_default_str();
  auto* o_xattach =
      app.add_option("--xsk-attach", c.xsk_attach, "xsk: XDP program mode: auto (native, else generic), native, generic")
          ->check(CLI::IsMember({"auto", "native", "generic"}))
          ->capture_default_str();
  auto* o_nopin = app.add_flag("--no-pin", c.no_pin,
               "sim: do not pin the hardware thread and the pollers to CPUs of their own (pinned by default "
               "when there are enough CPUs)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fail(std::string(e.what()) + " (see --help)");
  }
  c.rate_set = o_rate->count() > 0;
  c.size_set = o_size->count() > 0;
  c.flows_set = o_flows->count() > 0;
  c.delay_set = o_delay->count() > 0;
  c.xsk_set = o_xring->count() + o_xbind->count() + o_xattach->count() > 0;

  if (c.devs.empty()) c.devs = {"sim", "sim"};
  bool any_sim = false, any_xsk = false;
  for (auto& d : c.devs) {
    if (is_sim(d)) {
      any_sim = true;
    } else if (d.rfind("xsk:", 0) == 0 && d.size() > 4) {
      any_xsk = true;
    } else {
      fail("--dev '" + d + "': expected sim or xsk:IFNAME[:QUEUE]");
    }
  }
  if (any_sim && any_xsk) fail("--dev: sim and xsk devices cannot be mixed in one run");
  if (any_xsk && (c.rate_set || c.size_set || c.flows_set || c.delay_set || o_seed->count()))
    fail("--rate, --size, --flows, --tx-delay and --seed shape the sim's traffic; with xsk devices the traffic "
         "comes from the interfaces (see scripts/netns-demo.sh)");
  if (any_xsk && (o_ring->count() || o_noverify->count() || o_nocolour->count() || o_nopin->count()))
    fail("--ring, --no-verify, --no-colour and --no-pin apply to sim devices only (xsk: --xsk-ring; xsk "
         "pollers are not pinned)");
  if (any_sim && c.xsk_set) fail("--xsk-ring, --xsk-bind and --xsk-attach apply to xsk devices only");
  if (any_xsk && (c.xsk_ring & (c.xsk_ring - 1)))
    fail("--xsk-ring " + std::to_string(c.xsk_ring) + ": a power of two in 64..65536");
  if (c.baseline.empty()) c.baseline = any_sim ? "malloc" : "none";
  if (c.repeat == 0) c.repeat = c.baseline != "none" ? 3 : 1;
  if (any_xsk && c.baseline != "none")
    fail("--baseline " + c.baseline + " needs sim devices: AF_XDP can only receive into UMEM pages");
  if (c.threads == 0) {
    // One per device, as long as every busy-polling thread gets a CPU:
    // oversubscribed pollers stall their devices' completions for whole
    // scheduler slices, and the run measures the scheduler.
    cpu_set_t set;
    const long cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    const long room = std::max(1L, any_sim ? cpus - 1 : cpus);
    c.threads = static_cast<std::uint32_t>(std::min<long>(static_cast<long>(c.devs.size()), room));
  }
  if (any_sim && !c.no_pin) {
    // A CPU each for the sim's hardware thread and every poller, when the
    // process has that many: stable numbers instead of the scheduler's
    // placement of busy-polling threads.
    cpu_set_t set;
    std::vector<int> mine;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
      for (int i = 0; i < CPU_SETSIZE; ++i)
        if (CPU_ISSET(i, &set)) mine.push_back(i);
    if (mine.size() >= c.threads + 1) {
      c.hw_cpu = mine[0];
      c.cpus.assign(mine.begin() + 1, mine.begin() + 1 + c.threads);
    }
  }
  if (c.threads > c.devs.size())
    fail("--threads " + std::to_string(c.threads) + " > devices " + std::to_string(c.devs.size()) +
         " (a polling thread serves at least one device)");
  try {
    (void)pf::make_builtin(c.prog, static_cast<std::uint32_t>(c.devs.size()));
    if (any_sim) {
      pf::SimOptions o;
      o.devices = static_cast<std::uint32_t>(c.devs.size());
      o.sizes = pf::parse_sizes(c.size);
      o.ring_size = c.ring;
      if (o.ring_size < 64 || o.ring_size > 65536 || (o.ring_size & (o.ring_size - 1)))
        fail("--ring " + std::to_string(c.ring) + ": a power of two in 64..65536");
    }
  } catch (const std::invalid_argument& e) {
    fail(e.what());
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  FILE* live = c.quiet ? nullptr : (c.json ? stderr : stdout);
  RunResult pool;
  std::optional<RunResult> base;
  Series pool_runs, base_runs;  // per run, for the medians
  bool all_ok = true;
  try {
    for (std::uint32_t i = 0; i < c.repeat && !g_interrupted.load(); ++i) {
      pool = run_once(c, nullptr, live);
      pool_runs.add(pool);
      all_ok &= pool.errors.empty();
      if (c.baseline != "none" && !g_interrupted.load()) {
        base = run_once(c, c.baseline.c_str(), live);
        base_runs.add(*base);
        all_ok &= base->errors.empty();
      }
    }
  } catch (const std::invalid_argument& e) {
    fail(e.what());  // an option a device refused (see the top)
  } catch (const std::exception& e) {
    fail(e.what(), 1);  // a device that cannot open: the message says which and how to fix it
  }
  const double pool_med = median(pool_runs.rx), base_med = median(base_runs.rx);
  const double pool_cpf_med = median(pool_runs.cpf), base_cpf_med = median(base_runs.cpf);
  const double pool_hw_med = median(pool_runs.hw), base_hw_med = median(base_runs.hw);
  const std::size_t runs = pool_runs.rx.size();
  const Pairs pairs = pair_ratios(pool_runs, base_runs);

  if (c.json) {
    json j = report_json(pool.rep, pool.errors);
    j["config"] = {{"devices", c.devs}, {"prog", c.prog},     {"duration", c.duration},
                   {"threads", c.threads},
                   {"rate_mpps", c.rate},  {"size", c.size},   {"flows", c.flows},
                   {"seed", c.seed},       {"tx_delay_ns", c.tx_delay_ns}, {"baseline", c.baseline}};
    if (base) {
      j["baseline"] = report_json(base->rep, base->errors);
      j["runs"] = {{"pool_rx_mpps", pool_runs.rx}, {c.baseline + "_rx_mpps", base_runs.rx},
                   {"pool_cycles_per_frame", pool_runs.cpf}, {c.baseline + "_cycles_per_frame", base_runs.cpf},
                   {"pool_hw_cycles_per_frame", pool_runs.hw}, {c.baseline + "_hw_cycles_per_frame", base_runs.hw},
                   {"pool_line_round_trip_cycles", pool_runs.measured()},
                   {c.baseline + "_line_round_trip_cycles", base_runs.measured()}};
      j["speedup_rx"] = base_med > 0 ? pool_med / base_med : 0.0;
      j["cycles_per_frame_ratio"] = pool_cpf_med > 0 ? base_cpf_med / pool_cpf_med : 0.0;
      j["pairs"] = {{"speedup_rx", pairs.ratio},
                    {"median", pairs.median},
                    {"near", {{"pairs", pairs.near.size()}, {"median", median(pairs.near)}}},
                    {"far", {{"pairs", pairs.far.size()}, {"median", median(pairs.far)}}},
                    {"far_factor", Pairs::kFarFactor}};
    }
    std::cout << j.dump(2) << std::endl;
  } else {
    summary(c, pool, base);
    const char* bn = c.baseline.c_str();
    if (base && runs == 1)
      std::printf("  pool vs %s baseline: %.2fx the rx rate (%.2f vs %.2f Mpps; --repeat N for medians)\n", bn,
                  base_med > 0 ? pool_med / base_med : 0.0, pool_med, base_med);
    else if (base)
      std::printf("  pool vs %s baseline: %.2fx the rx rate (medians of %zu interleaved runs each: "
                  "%.2f vs %.2f Mpps)\n",
                  bn, base_med > 0 ? pool_med / base_med : 0.0, runs, pool_med, base_med);
    if (base && pool_cpf_med > 0)
      std::printf("  polling thread's own cost: %.1f (pool) vs %.1f (%s) TSC cycles a frame, %s / pool = "
                  "%.2fx%s\n",
                  pool_cpf_med, base_cpf_med, bn, bn, base_cpf_med / pool_cpf_med,
                  runs > 1 ? " (medians)" : "");
    if (base && pool_hw_med > 0)
      std::printf("  the sim's hardware thread: %.1f (pool) vs %.1f (%s) TSC cycles a frame%s; a run goes at "
                  "the pace of the slower of it and the polling thread\n",
                  pool_hw_med, base_hw_med, bn, runs > 1 ? " (medians)" : "");
    std::vector<double> rts = pool_runs.measured();
    for (double x : base_runs.measured()) rts.push_back(x);
    if (base && !rts.empty())
      std::printf("  a cache line between the two threads' CPUs and back: %.0f TSC cycles (median before each "
                  "run, %.0f..%.0f); both threads' costs follow it (see docs/forwarding.md)\n",
                  median(rts), *std::min_element(rts.begin(), rts.end()), *std::max_element(rts.begin(), rts.end()));
    if (base && runs > 1)
      std::printf("  per interleaved pair (pool run / the %s run after it): median %.2fx (%.2f..%.2f)\n", bn,
                  pairs.median, pairs.min, pairs.max);
    if (base && pairs.mixed) {
      // "2.97x (median of 5)", or "none" for a kind no pair had.
      const auto kind = [](const std::vector<double>& r) {
        if (r.empty()) return std::string("none");
        char b[64];
        std::snprintf(b, sizeof b, "%.2fx (median of %zu)", median(r), r.size());
        return std::string(b);
      };
      std::printf("  the placements differed between runs (round trips more than %.0fx the lowest): pairs with "
                  "both near %s, both far %s; the ratio of medians above mixes them\n",
                  Pairs::kFarFactor, kind(pairs.near).c_str(), kind(pairs.far).c_str());
    }
    if (!all_ok) std::printf("  accounting FAILED in at least one run (exit 3)\n");
  }
  return all_ok ? 0 : 3;
}
