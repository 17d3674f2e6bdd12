// End to end over the sim device: every verdict, cross-thread completion,
// queue-full and lost-frame paths, PASS copies, the malloc and stack
// baselines and shutdown, each with exact packet accounting and every pool at inflight 0.
//
// Runs generate a fixed number of frames per device (SimOptions::max_frames),
// wait until the forwarder has received all of them, and stop: then the
// counts are exact, not rates.
#include <gtest/gtest.h>
#include <sched.h>

#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "pagepool/devices/sim.hpp"
#include "fwd/polling.hpp"
#include "pagepool/fwd/forwarder.hpp"

namespace {

using namespace pagepool::fwd;
using std::chrono::milliseconds;

std::uint64_t dropped(const Report& r, DropReason why) { return r.packets.dropped[static_cast<std::size_t>(why)]; }
// A TX queue that a burst finds full drops frames, as the kernel's XDP_TX
// does; a forwarded frame's fate is therefore "sent or tx_full", and each
// tx_full drop is one refusal the device counted.
std::uint64_t tx_full(const Report& r) {
  std::uint64_t refused = 0;
  for (auto& d : r.devices) refused += d.tx_ring_full;
  EXPECT_EQ(refused, dropped(r, DropReason::tx_full));
  return refused;
}

// Sanitizer builds run everything several times slower: fewer frames.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr std::uint64_t kFrames = 20'000;
#else
constexpr std::uint64_t kFrames = 200'000;
#endif

struct Scenario {
  SimOptions sim;
  ForwarderOptions fwd;
  std::string prog = "redirect";
  std::unique_ptr<Program> custom;
};

// Runs until every generated frame reached the forwarder (received or lost
// for want of a buffer) or 60 s passed, then stops and returns the report.
Report run(Scenario r) {
  if (!r.sim.max_frames) r.sim.max_frames = kFrames;
  auto devs = open_sim_devices(r.sim);
  auto prog = r.custom ? std::move(r.custom) : make_builtin(r.prog, r.sim.devices);
  Forwarder f(std::move(devs), std::move(prog), r.fwd);
  f.start();
  const std::uint64_t total = r.sim.max_frames * r.sim.devices;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    std::uint64_t seen = f.counters().rx;
    for (std::size_t i = 0; i < f.device_count(); ++i) seen += f.device(i).stats().rx_no_buf;
    if (seen >= total) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "only " << seen << " of " << total << " frames arrived in 60 s";
      break;
    }
    std::this_thread::sleep_for(milliseconds(2));
  }
  return f.stop();
}

void expect_exact(const Report& r, std::uint64_t generated) {
  for (auto& e : accounting_errors(r, true)) ADD_FAILURE() << e;
  std::uint64_t sent = 0, lost = 0;
  for (auto& d : r.devices) {
    sent += d.wire_sent;
    lost += d.rx_no_buf;
  }
  EXPECT_EQ(sent, generated);
  EXPECT_EQ(r.packets.rx + lost, generated);
  EXPECT_EQ(r.inflight_at_exit, 0u);
  for (auto& p : r.pools) {
    EXPECT_EQ(p.levels.inflight, 0u) << p.name;
    EXPECT_EQ(p.levels.pending, 0u) << p.name;
  }
}

// ---- every verdict, on one and on two polling threads -----------------------

class Verdicts : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(Verdicts, DropRecyclesEveryFrameIntoItsPool) {
  Scenario r;
  r.prog = "drop";
  r.fwd.threads = GetParam();
  const Report rep = run(std::move(r));
  expect_exact(rep, 2 * kFrames);
  EXPECT_EQ(dropped(rep, DropReason::program), 2 * kFrames);
  EXPECT_EQ(rep.packets.tx, 0u);
  for (auto& p : rep.pools) {
    // Dropped pages go straight back into the owner's cache, and the pool
    // never grows past what the rings hold: 200k frames on ~1k pages.
    EXPECT_GE(p.stats.recycle.cached + p.stats.recycle.cache_full, kFrames) << p.name;
    EXPECT_LE(p.stats.hold, 4u * 1024) << p.name;
  }
}

TEST_P(Verdicts, TxSendsBackOutOfTheIngressDevice) {
  Scenario r;
  r.prog = "tx";
  r.fwd.threads = GetParam();
  const Report rep = run(std::move(r));
  expect_exact(rep, 2 * kFrames);
  EXPECT_EQ(rep.packets.tx + tx_full(rep), 2 * kFrames);
  EXPECT_EQ(rep.packets.redirect, 0u);
  for (auto& d : rep.devices) EXPECT_EQ(d.tx_frames + d.tx_ring_full, d.rx_frames);
}

TEST_P(Verdicts, RedirectSendsOutOfThePairedDevice) {
  Scenario r;
  r.prog = "redirect";
  r.fwd.threads = GetParam();
  const Report rep = run(std::move(r));
  expect_exact(rep, 2 * kFrames);
  EXPECT_EQ(rep.packets.tx + tx_full(rep), 2 * kFrames);
  EXPECT_EQ(rep.packets.redirect, rep.packets.tx);
  EXPECT_EQ(rep.devices[1].tx_frames + rep.devices[1].tx_ring_full, rep.devices[0].rx_frames);
  EXPECT_EQ(rep.devices[0].tx_frames + rep.devices[0].tx_ring_full, rep.devices[1].rx_frames);
  if (GetParam() == 2) {
    // Every page completes on the other device's thread: it comes home
    // through the remote-return path, so each pool's ring saw pages.
    for (auto& p : rep.pools) EXPECT_GT(p.stats.recycle.ring, 0u) << p.name;
  }
}

TEST_P(Verdicts, L3SplitSpreadsFlowsOverAllDevices) {
  Scenario r;
  r.prog = "l3-split";
  r.sim.devices = 4;
  r.sim.flows = 1024;
  r.fwd.threads = GetParam() == 1 ? 1 : 2;
  const Report rep = run(std::move(r));
  expect_exact(rep, 4 * kFrames);
  EXPECT_EQ(rep.packets.tx + tx_full(rep), 4 * kFrames);
  // What the program sent each device: accepted or refused by a full TX
  // queue, which depends on how the threads were scheduled, not on it.
  for (std::size_t i = 0; i < 4; ++i)
    EXPECT_GT(rep.devices[i].tx_frames + rep.devices[i].tx_ring_full, kFrames / 2) << rep.device_names[i];
  EXPECT_GT(rep.packets.redirect, 0u);
  EXPECT_LT(rep.packets.redirect, rep.packets.tx);  // a quarter stay on their ingress device
}

INSTANTIATE_TEST_SUITE_P(Threads, Verdicts, ::testing::Values(1u, 2u),
                         [](const auto& i) { return std::to_string(i.param) + "threads"; });

// ---- queue full, lost frames, PASS, bad programs ---------------------------

TEST(SimE2e, TxQueueFullDropsAndRecycles) {
  // A stalled wire: TX buffers complete 300 ms after the device took them,
  // so once a port's 64-entry TX queue and its 64 in-flight slots are taken
  // (128 frames) the forwarder must drop the rest of the 2000 (tx_full).
  Scenario r;
  r.sim.ring_size = 64;
  r.sim.tx_delay_ns = 300'000'000;
  r.sim.max_frames = 2000;
  r.fwd.threads = 2;
  const Report rep = run(std::move(r));
  expect_exact(rep, 2 * 2000);
  EXPECT_GT(dropped(rep, DropReason::tx_full), 0u);
  EXPECT_GT(rep.packets.tx, 0u);
  std::uint64_t refused = 0;
  for (auto& d : rep.devices) refused += d.tx_ring_full;
  EXPECT_EQ(refused, dropped(rep, DropReason::tx_full));
}

TEST(SimE2e, FramesWithoutAPostedBufferAreLostAndCounted) {
  // 1000 Mpps offered into 64-entry rings: the wire outruns any poller.
  Scenario r;
  r.sim.ring_size = 64;
  r.sim.rate_mpps = 1000;
  r.sim.max_frames = kFrames / 4;
  r.prog = "drop";
  const Report rep = run(std::move(r));
  expect_exact(rep, 2 * (kFrames / 4));
  std::uint64_t lost = 0;
  for (auto& d : rep.devices) lost += d.rx_no_buf;
  EXPECT_GT(lost, 0u);
}

TEST(SimE2e, PassCopiesTheFrameToTheSlowPathAndRecyclesThePage) {
  std::mutex mu;
  std::map<std::uint32_t, std::uint64_t> frames_per_dev;
  std::uint64_t bytes = 0;
  bool udp_ok = true;
  Scenario r;
  r.sim.sizes = {60, 200};
  r.sim.max_frames = kFrames / 10;
  r.fwd.threads = 2;
  r.fwd.pass_sink = [&](std::uint32_t dev, const std::byte* d, std::size_t len) {
    std::lock_guard<std::mutex> g(mu);
    ++frames_per_dev[dev];
    bytes += len;
    // The copy is the frame: Ethernet type IPv4, protocol UDP.
    udp_ok &= len >= 42 && d[12] == std::byte{8} && d[13] == std::byte{0} && d[23] == std::byte{17};
  };
  // Every other frame to the slow path, the rest dropped.
  r.custom = make_program("pass-odd", [](XdpMd& c) noexcept {
    return (c.data[19] & std::byte{1}) != std::byte{} ? Verdict::pass() : Verdict::drop();  // IPv4 id
  });
  const Report rep = run(std::move(r));
  expect_exact(rep, 2 * (kFrames / 10));
  EXPECT_TRUE(udp_ok);
  EXPECT_EQ(frames_per_dev[0] + frames_per_dev[1], rep.packets.pass);
  EXPECT_EQ(bytes, rep.packets.pass_bytes);
  // The id is the low 16 bits of the sequence number: exactly half are odd.
  EXPECT_EQ(rep.packets.pass, kFrames / 10);
  EXPECT_EQ(dropped(rep, DropReason::program), kFrames / 10);
}

// A sim device that says it receives on interface queue 3 + its index, as
// an xsk device on another queue would: programs must see that queue.
class OnQueue final : public Device {
 public:
  OnQueue(std::unique_ptr<Device> d, std::uint32_t q) : d_(std::move(d)), q_(q) {}
  const std::string& name() const noexcept override { return d_->name(); }
  bool heap_ok() const noexcept override { return d_->heap_ok(); }
  std::uint32_t rx_ring_size() const noexcept override { return d_->rx_ring_size(); }
  std::uint32_t rx_queue() const noexcept override { return q_; }
  std::uint32_t rx_headroom() const noexcept override { return d_->rx_headroom(); }
  std::uint32_t fill_room() noexcept override { return d_->fill_room(); }
  std::uint32_t fill(const Buf* b, std::uint32_t n) noexcept override { return d_->fill(b, n); }
  std::uint32_t rx(Frame* f, std::uint32_t n) noexcept override { return d_->rx(f, n); }
  std::uint32_t complete(Buf* b, std::uint32_t n) noexcept override { return d_->complete(b, n); }
  std::uint32_t tx(const Frame* f, std::uint32_t n) noexcept override { return d_->tx(f, n); }
  std::uint64_t tx_outstanding() const noexcept override { return d_->tx_outstanding(); }
  void start() override { d_->start(); }
  void quiesce() override { d_->quiesce(); }
  std::uint32_t reclaim(Buf* b, std::uint32_t n) noexcept override { return d_->reclaim(b, n); }
  DeviceStats stats() const noexcept override { return d_->stats(); }

 private:
  std::unique_ptr<Device> d_;
  std::uint32_t q_;
};

TEST(SimE2e, ProgramsSeeTheDevicesRxQueue) {
  SimOptions so;
  so.max_frames = kFrames / 10;
  std::vector<std::unique_ptr<Device>> devs;
  for (auto& d : open_sim_devices(so)) devs.push_back(std::make_unique<OnQueue>(std::move(d), 3 + std::uint32_t(devs.size())));
  // Redirect when the context names the right queue, drop otherwise.
  auto prog = make_program("queue-check", [](XdpMd& c) noexcept {
    if (c.rx_queue != 3 + c.ingress_dev) return Verdict::drop(DropReason::program);
    return Verdict::redirect(static_cast<std::uint16_t>(c.ingress_dev ^ 1u));
  });
  Forwarder f(std::move(devs), std::move(prog));
  f.start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (f.counters().rx < 2 * so.max_frames && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(2));
  const Report rep = f.stop();
  expect_exact(rep, 2 * so.max_frames);
  EXPECT_EQ(dropped(rep, DropReason::program), 0u);
  EXPECT_EQ(rep.packets.tx + tx_full(rep), 2 * so.max_frames);
}

TEST(SimE2e, ProgramsThatBreakTheRulesAreDroppedAsSuch) {
  Scenario r;
  r.sim.max_frames = kFrames / 10;
  r.custom = make_program("rogue", [](XdpMd& c) noexcept {
    const auto id = std::to_integer<unsigned>(c.data[19]) % 4;  // IPv4 id, low byte
    if (id == 0) return Verdict::redirect(7);                      // no such device
    if (id == 1) {
      c.data_end = c.data_hard_start + c.buf_end + 1;  // past the buffer
      return Verdict::tx();
    }
    if (id == 2) {
      c.data -= 14;  // grows into the headroom: allowed
      std::memcpy(c.data, c.data + 14, 12);
      return Verdict::tx();
    }
    return Verdict::redirect(static_cast<std::uint16_t>(c.ingress_dev));  // to itself: like TX
  });
  // A frame grown at the head keeps its stamp at the end, but its length
  // changed and the stamp's check word covers the length: no verify.
  r.sim.verify = false;
  const Report rep = run(std::move(r));
  for (auto& e : accounting_errors(rep, false)) ADD_FAILURE() << e;
  const std::uint64_t n = 2 * (kFrames / 10);
  EXPECT_EQ(dropped(rep, DropReason::bad_target), n / 4);
  EXPECT_EQ(dropped(rep, DropReason::aborted), n / 4);
  EXPECT_EQ(rep.packets.tx, n / 2);
  EXPECT_EQ(rep.packets.redirect, 0u);
  EXPECT_EQ(rep.inflight_at_exit, 0u);
}

TEST(SimE2e, PinnedThreadsRunOnTheirCpus) {
  // Poller and hardware thread pinned (as pagepool-fwd does when there are
  // enough CPUs); the run is the same, on CPU 0 for both here so it works
  // on any machine.
  Scenario r;
  r.sim.hw_cpu = 0;
  r.fwd.cpus = {0};
  r.sim.max_frames = kFrames / 10;
  const Report rep = run(std::move(r));
  expect_exact(rep, 2 * (kFrames / 10));
}

TEST(SimE2e, MallocBaselineAccountsForEveryBlock) {
  Scenario r;
  r.fwd.malloc_baseline = true;
  r.fwd.threads = 2;
  const Report rep = run(std::move(r));
  expect_exact(rep, 2 * kFrames);
  EXPECT_TRUE(rep.pools.empty());
  EXPECT_EQ(rep.heap_outstanding, 0u);
  EXPECT_EQ(rep.packets.tx + tx_full(rep), 2 * kFrames);
}

// The stack baseline reuses its blocks: on one thread, after the rings are
// primed, no frame costs a malloc; on two, blocks migrate between the
// threads' stacks (each completes the other's frames) and every one is
// freed at the end.
TEST(SimE2e, StackBaselineReusesAndFreesEveryBlock) {
  for (std::uint32_t threads : {1u, 2u}) {
    Scenario r;
    r.fwd.stack_baseline = true;
    r.fwd.threads = threads;
    const Report rep = run(std::move(r));
    expect_exact(rep, 2 * kFrames);
    EXPECT_TRUE(rep.pools.empty());
    EXPECT_EQ(rep.heap_outstanding, 0u) << threads << " threads";
    EXPECT_EQ(rep.packets.tx + tx_full(rep), 2 * kFrames);
  }
}

// Busy time: only poll rounds that did work count, so it is positive after
// traffic and never more than the polling threads' wall time.
TEST(SimE2e, BusyCyclesCountThePollersAndTheHardwaresWork) {
  Scenario r;
  r.fwd.threads = 2;
  // The clock Report::busy_cycles and DeviceStats::wire_busy_cycles count in.
  const std::uint64_t c0 = detail::busy_clock();
  const Report rep = run(std::move(r));
  const std::uint64_t wall = detail::busy_clock() - c0;
  expect_exact(rep, 2 * kFrames);
  EXPECT_GT(rep.busy_cycles, 0u);
  EXPECT_LE(rep.busy_cycles, 2 * wall);
  // One hardware thread serves both ports: their busy times add up to at
  // most the wall time, and each port moved frames, so each has some.
  std::uint64_t hw = 0;
  for (const auto& d : rep.devices) {
    EXPECT_GT(d.wire_busy_cycles, 0u);
    hw += d.wire_busy_cycles;
  }
  EXPECT_LE(hw, wall);
}

TEST(SimE2e, ImixAndDelayedCompletionsOnTwoThreads) {
  Scenario r;
  r.sim.sizes = parse_sizes("imix");
  r.sim.tx_delay_ns = 20'000;
  r.sim.max_frames = kFrames / 4;
  r.fwd.threads = 2;
  const Report rep = run(std::move(r));
  expect_exact(rep, 2 * (kFrames / 4));
  EXPECT_EQ(rep.packets.tx + tx_full(rep), 2 * (kFrames / 4));
}

// ---- shutdown --------------------------------------------------------------

TEST(SimE2e, StopWhileTrafficFlowsDrainsEverything) {
  for (std::uint32_t threads : {1u, 2u}) {
    SimOptions so;
    so.tx_delay_ns = 50'000;  // TX in flight at the moment of stop
    // At a bounded rate, so that the RX rings are full of posted buffers
    // when the stop comes: unbounded, the hardware can use every posted
    // buffer while a poller waits for a CPU (two pollers and the hardware
    // thread on two CPUs), and then there is nothing posted to reclaim.
    // 0.1 Mpps: a poller would have to miss 10 ms (at 1 Mpps, 1 ms, it
    // did 1 time in 30 while two builds shared the machine).
    so.rate_mpps = 0.1;
    ForwarderOptions fo;
    fo.threads = threads;
    Forwarder f(open_sim_devices(so), make_builtin("redirect", 2), fo);
    f.start();
    std::this_thread::sleep_for(milliseconds(100));
    const Report rep = f.stop();
    for (auto& e : accounting_errors(rep, true)) ADD_FAILURE() << threads << " threads: " << e;
    EXPECT_GT(rep.packets.rx, 0u) << threads << " threads";
    EXPECT_EQ(rep.inflight_at_exit, 0u) << threads << " threads";
    std::uint64_t reclaimed = 0;
    for (auto& d : rep.devices) reclaimed += d.reclaimed;
    EXPECT_GT(reclaimed, 0u) << threads << " threads: the posted RX buffers come back at stop";
  }
}

TEST(SimE2e, StopRightAfterStartAndDestroyWithoutStop) {
  {
    Forwarder f(open_sim_devices({}), make_builtin("tx", 2));
    f.start();
    const Report rep = f.stop();
    EXPECT_TRUE(accounting_errors(rep, true).empty());
    EXPECT_EQ(rep.inflight_at_exit, 0u);
  }
  {
    Forwarder f(open_sim_devices({}), make_builtin("redirect", 2));
    f.start();
    std::this_thread::sleep_for(milliseconds(20));
  }  // the destructor stops, drains and joins
  {
    Forwarder f(open_sim_devices({}), make_builtin("drop", 2));  // never started
  }
}

// ---- determinism and options ------------------------------------------------

std::vector<std::uint64_t> first_frames(std::uint64_t seed) {
  std::mutex mu;
  std::vector<std::uint64_t> h;
  Scenario r;
  r.sim.devices = 1;
  r.sim.seed = seed;
  r.sim.sizes = {64, 128, 1500};
  r.sim.flows = 100;
  r.sim.max_frames = 500;
  r.fwd.pass_sink = [&](std::uint32_t, const std::byte* d, std::size_t len) {
    std::uint64_t x = len;
    for (std::size_t i = 0; i < 42; ++i) x = x * 131 + std::to_integer<unsigned>(d[i]);
    std::lock_guard<std::mutex> g(mu);
    h.push_back(x);
  };
  r.custom = make_program("pass", [](XdpMd&) noexcept { return Verdict::pass(); });
  run(std::move(r));
  return h;
}

TEST(SimE2e, SameSeedSameFrames) {
  const auto a = first_frames(42), b = first_frames(42), c = first_frames(43);
  ASSERT_EQ(a.size(), 500u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(SimE2e, BadOptionsAreRefusedWithTheirName) {
  auto msg = [](auto f) -> std::string {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(msg([] { SimOptions o; o.devices = 0; open_sim_devices(o); }).find("devices"), std::string::npos);
  EXPECT_NE(msg([] { SimOptions o; o.sizes = {59}; open_sim_devices(o); }).find("59"), std::string::npos);
  EXPECT_NE(msg([] { SimOptions o; o.ring_size = 100; open_sim_devices(o); }).find("ring_size"), std::string::npos);
  EXPECT_NE(msg([] { SimOptions o; o.flows = 0; open_sim_devices(o); }).find("flows"), std::string::npos);
  EXPECT_NE(msg([] { SimOptions o; o.rate_mpps = -1; open_sim_devices(o); }).find("rate"), std::string::npos);
  EXPECT_NE(msg([] { parse_sizes("64,abc"); }).find("abc"), std::string::npos);
  EXPECT_NE(msg([] { parse_sizes("64,"); }).find("not a number"), std::string::npos);
  EXPECT_NE(msg([] { parse_sizes("4000"); }).find("4000"), std::string::npos);
  EXPECT_EQ(parse_sizes("64,512,1500"), (std::vector<std::uint32_t>{64, 512, 1500}));
  EXPECT_EQ(parse_sizes("imix").size(), 12u);
  EXPECT_NE(msg([] {
              ForwarderOptions fo;
              fo.threads = 3;
              Forwarder f(open_sim_devices({}), make_builtin("tx", 2), fo);
            }).find("threads"),
            std::string::npos);
  EXPECT_NE(msg([] { Forwarder f({}, make_builtin("tx", 2)); }).find("no devices"), std::string::npos);
  EXPECT_NE(msg([] {
              ForwarderOptions fo;
              fo.malloc_baseline = fo.stack_baseline = true;
              Forwarder f(open_sim_devices({}), make_builtin("tx", 2), fo);
            }).find("one baseline"),
            std::string::npos);
  EXPECT_NE(msg([] { SimOptions o; o.hw_cpu = CPU_SETSIZE; open_sim_devices(o); }).find("hw_cpu"),
            std::string::npos);
  EXPECT_NE(msg([] {
              ForwarderOptions fo;
              fo.cpus = {0, CPU_SETSIZE + 1};
              Forwarder f(open_sim_devices({}), make_builtin("tx", 2), fo);
              f.start();  // throws before any thread exists; the destructor has nothing to stop
            }).find("CPU"),
            std::string::npos);
}

}  // namespace
