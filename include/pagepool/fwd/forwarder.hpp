// pagepool: the XDP-style forwarder.
//
// Devices (device.hpp) + one verdict program (program.hpp) + one page pool
// per device RX queue. Each polling thread (the NAPI context) owns the pools
// of the devices it polls and runs, per device and per poll (budget 64):
//
//   1. complete()  TX completions go back with put_pages_bulk: each page to
//                  the pool it came from, through the remote-return path
//                  when another thread owns that pool;
//   2. rx()        received frames -> program -> DROP: recycle_direct into
//                  the ingress pool; PASS: copied into a heap buffer for the
//                  slow path (counted), page recycled; TX / REDIRECT: queued
//                  per target device;
//   3. flush       each target's queue goes out with one tx() call; frames
//                  it refuses (queue full) are dropped and recycled;
//   4. fill()      the RX queue is topped up from the pool in bulk.
//
// Shutdown (stop()): the devices stop receiving (quiesce), the threads keep
// polling without filling until no thread does any work for a whole poll and
// no TX is outstanding, then each thread reclaims its devices' buffers and
// returns them. After stop() every pool reports inflight 0 (the report says
// so, and which pool did not).
//
// The malloc baseline (Options::malloc_baseline) runs the same path with a
// heap block per received frame, freed at completion, instead of pool
// pages: what a driver without a page pool does. The stack baseline
// (Options::stack_baseline) reuses blocks from a per-thread array stack
// instead, carved from huge-page chunks like the pool's memory, with no
// metadata or checks (how the AF_XDP samples keep their frames): the least
// any allocator can cost on this path, a floor to read the pool against.
// Both need devices with heap_ok().
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pagepool/fwd/device.hpp"
#include "pagepool/fwd/program.hpp"
#include "pagepool/pool.hpp"

namespace pagepool::fwd {

// Per-packet counters of the forwarding path (the sum over threads).
struct PacketCounters {
  std::uint64_t rx = 0;          // frames received from the devices
  std::uint64_t tx = 0;          // frames the target devices accepted (TX and REDIRECT)
  std::uint64_t redirect = 0;    // of tx: sent out of another device than the ingress one
  std::uint64_t pass = 0;        // frames copied to the slow path
  std::uint64_t pass_bytes = 0;  // their bytes
  std::uint64_t completed = 0;   // buffers returned by TX completion
  std::array<std::uint64_t, kDropReasons> dropped{};

  std::uint64_t dropped_total() const noexcept {
    std::uint64_t n = 0;
    for (auto d : dropped) n += d;
    return n;
  }
};

struct PoolReport {
  std::string name;
  Stats stats;
  Levels levels;
};

struct Report {
  PacketCounters packets;
  std::vector<std::string> device_names;
  std::vector<DeviceStats> devices;
  std::vector<PoolReport> pools;  // one per device; empty with a heap baseline
  double seconds = 0;             // from start() to quiesce
  std::uint64_t inflight_at_exit = 0;  // pages of all pools still out after stop()
  bool drained = false;                // queues were drained before the deadline
  std::uint64_t heap_outstanding = 0;  // heap baselines: blocks not freed (0 after stop)
  // The polling threads' own cost: TSC ticks (x86-64; ns elsewhere) spent in
  // poll rounds that did work, summed over threads, drain included. Over
  // packets.rx it is the forwarder's cycles per frame whatever bounds the
  // pipeline's rate (the sim's hardware thread, the kernel).
  std::uint64_t busy_cycles = 0;
};

struct ForwarderOptions {
  // Polling threads; 0: one per device. Thread t polls devices t, t +
  // threads, ... (threads <= devices).
  std::uint32_t threads = 0;
  // Heap blocks instead of pool pages (see the header comment): malloc and
  // free per frame, or (stack_baseline) reused from a per-thread stack; at
  // most one of the two.
  bool malloc_baseline = false;
  bool stack_baseline = false;
  // Each pool's return ring (Params::pool_size): holds the pages of one
  // device's RX ring plus what is in flight on TX.
  std::uint32_t pool_size = 8192;
  // CPUs for the polling threads: thread t runs on cpus[t % cpus.size()]
  // (like a NIC queue's IRQ affinity). Empty: wherever the scheduler puts
  // it. A CPU outside the process's affinity makes start() throw.
  std::vector<int> cpus;
  // stop(): longest wait for the queues to drain before reclaiming anyway.
  std::chrono::milliseconds drain_timeout{5000};
  // PASS: every passed frame is copied into a heap buffer and the page
  // recycled; the slow path receives the copy (ingress device, bytes) and
  // owns nothing after the call (the copy is freed). Empty: the copy is
  // counted and discarded. Runs on the polling thread; must not throw.
  // (A copy that cannot be allocated drops the frame as `aborted`.)
  std::function<void(std::uint32_t dev, const std::byte* data, std::size_t len)> pass_sink;
};

class Forwarder {
 public:
  // Control thread. Creates one pool per device (Params::provider =
  // device->provider(); kDmaMap) unless a heap baseline. Throws
  // std::invalid_argument for no devices, too many threads, both baselines,
  // a baseline on a device without heap_ok().
  Forwarder(std::vector<std::unique_ptr<Device>> devices, std::unique_ptr<Program> program,
            ForwarderOptions options = {});
  // Stops if still running.
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // Control thread, once: starts the polling threads and then the devices.
  void start();
  // Control thread, once after start(): quiesce, drain, reclaim, join.
  Report stop();

  // Any thread, while running or after: a snapshot of the counters.
  PacketCounters counters() const noexcept;
  // Any thread: pool i's counters (zeros with a heap baseline).
  Stats pool_stats(std::size_t i) const noexcept;
  Levels pool_levels(std::size_t i) const noexcept;

  std::size_t device_count() const noexcept { return devs_.size(); }
  Device& device(std::size_t i) const noexcept { return *devs_[i]; }
  const Program& program() const noexcept { return *prog_; }
  const ForwarderOptions& options() const noexcept { return opt_; }

 private:
  struct Thread;  // one polling thread and its per-thread state
  void run(Thread& t);
  void poll_device(Thread& t, std::uint32_t d, bool filling);
  void flush_tx(Thread& t, std::uint32_t ingress);
  void fill(Thread& t, std::uint32_t d);
  void free_bufs(Thread& t, const Buf* bufs, std::uint32_t n);
  void recycle(Thread& t, const Buf& b);
  std::byte* heap_get(Thread& t);
  void heap_put(Thread& t, std::byte* b);
  bool stack_grow(Thread& t);
  void reclaim(Thread& t);

  std::vector<std::unique_ptr<Device>> devs_;
  std::unique_ptr<Program> prog_;
  ForwarderOptions opt_;
  bool heap_ = false;                        // a heap baseline: malloc_baseline or stack_baseline
  std::vector<PoolPtr> pools_;               // index = device
  std::vector<std::unique_ptr<Thread>> threads_;
  // Control -> pollers: 0 run, 1 drain (no fill), 2 reclaim and exit.
  // Release-store by the control thread; acquire-load once per poll round.
  std::atomic<int> phase_{0};
  std::atomic<std::uint32_t> ready_{0};  // pollers that bound their pools
  std::chrono::steady_clock::time_point t0_, t1_;
  // Stack baseline: the mappings its blocks are carved from (stack_grow).
  std::mutex chunk_mu_;
  std::vector<void*> chunks_;
  bool started_ = false, stopped_ = false;
};

// The equations a stopped forwarder's report must satisfy, each violated
// one as a line ("rx vs tx + pass + dropped: 10 != 9"); empty when all hold:
//   rx == tx + pass + dropped_total           (every frame has one fate)
//   completed == tx, per device tx_frames == tx_completed   (all TX came back)
//   sum of device rx_frames == rx, device tx_frames == tx
//   inflight_at_exit == 0, heap_outstanding == 0, drained
// With `wire` (sim devices, which count their wire side) also:
//   wire_sent == rx_frames + rx_no_buf, wire_received == tx_frames,
//   wire_duplicate == wire_corrupt == 0 (per device).
std::vector<std::string> accounting_errors(const Report& r, bool wire);

}  // namespace pagepool::fwd
