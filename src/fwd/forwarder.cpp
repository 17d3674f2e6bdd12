// pagepool: the forwarder's polling threads, drain and reclaim.
// The data path (poll_device and what it calls) runs per batch of up to
// kBudget frames; setup and shutdown are the rest.
#include "pagepool/fwd/forwarder.hpp"

#include "fwd/polling.hpp"
#include "mem/arena.hpp"
#include "providers/map_util.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace pagepool::fwd {
namespace {

// Frames per device per poll, and buffers per fill/complete call: NAPI's
// budget, and the batch every device call is sized for.
constexpr std::uint32_t kBudget = 64;

// Per-thread counters: pagepool::detail::Counter, single writer (the
// polling thread), read anywhere.
using Count = pagepool::detail::Counter;

}  // namespace

// Stack baseline: free blocks a thread's stack holds without growing (the
// RX rings and TX queues of a few devices; 512 KiB of pointers), and the
// huge-page chunks its blocks are carved from.
constexpr std::size_t kStackReserve = 65536;
constexpr std::size_t kStackChunk = pagepool::detail::kGranule;

// Everything one polling thread writes, on its own lines.
struct alignas(64) Forwarder::Thread {
  std::uint32_t id = 0;
  std::vector<std::uint32_t> devs;  // devices this thread polls (owns their pools)
  std::thread th;

  Count rx, tx, redirect, pass, pass_bytes, completed;
  std::array<Count, kDropReasons> dropped;
  // Drain handshake: polls completed and polls that did work. Release-
  // stored after a poll; the control thread's acquire-load of `polls`
  // therefore sees every tx() of that poll (tx_outstanding) and `work`.
  std::atomic<std::uint64_t> polls{0}, work{0};
  // busy_clock() ticks spent in poll rounds that did work (idle rounds,
  // which only look at empty queues and yield, are left out). Written by
  // the thread only; read after join.
  std::uint64_t busy = 0;
  // Heap baselines: heap blocks this thread allocated / freed.
  Count heap_alloc, heap_free;
  // Stack baseline: blocks this thread has free, reused last in first out.
  // Thread-private: a block completed on another thread joins that
  // thread's stack. Counted free when the thread ends; stop() unmaps them.
  std::vector<std::byte*> stack;

  // Per-target TX bulk queues (XDP's devmap bulk queue): filled during one
  // device's RX batch, flushed with one tx() per target at its end, so
  // every frame in them came in on that one device.
  struct Bulk {
    std::uint32_t n = 0;
    Frame f[kBudget];
  };
  std::vector<Bulk> bq;  // index = target device
};

Forwarder::Forwarder(std::vector<std::unique_ptr<Device>> devices, std::unique_ptr<Program> program,
                     ForwarderOptions options)
    : devs_(std::move(devices)), prog_(std::move(program)), opt_(std::move(options)) {
  if (devs_.empty()) throw std::invalid_argument("Forwarder: no devices");
  if (!prog_) throw std::invalid_argument("Forwarder: no program");
  if (devs_.size() > 0xffff) throw std::invalid_argument("Forwarder: more than 65535 devices");
  for (auto& d : devs_)
    if (!d) throw std::invalid_argument("Forwarder: a device is null");
  const auto ndev = static_cast<std::uint32_t>(devs_.size());
  if (opt_.threads == 0) opt_.threads = ndev;
  if (opt_.threads > ndev)
    throw std::invalid_argument("Forwarder: threads " + std::to_string(opt_.threads) +
                                " > devices " + std::to_string(ndev) +
                                " (each thread polls at least one RX queue)");
  if (opt_.malloc_baseline && opt_.stack_baseline)
    throw std::invalid_argument("Forwarder: choose one baseline, malloc or stack");
  heap_ = opt_.malloc_baseline || opt_.stack_baseline;
  if (heap_) {
    for (auto& d : devs_)
      if (!d->heap_ok())
        throw std::invalid_argument(std::string("Forwarder: the ") +
                                    (opt_.stack_baseline ? "stack" : "malloc") +
                                    " baseline needs heap buffers, which device '" + d->name() +
                                    "' cannot take");
  } else {
    for (auto& d : devs_) {
      Params p;
      p.pool_size = opt_.pool_size;
      p.name = d->name();
      p.provider = d->provider();
      // The device address (page_dma_addr) is what AF_XDP descriptors
      // carry; a sim device works with virtual addresses and needs none.
      if (p.provider) p.flags = kDmaMap;
      pools_.push_back(Pool::create(p));
    }
  }
  for (std::uint32_t t = 0; t < opt_.threads; ++t) {
    auto th = std::make_unique<Thread>();
    th->id = t;
    for (std::uint32_t d = t; d < ndev; d += opt_.threads) th->devs.push_back(d);
    th->bq.resize(ndev);
    threads_.push_back(std::move(th));
  }
}

Forwarder::~Forwarder() {
  if (started_ && !stopped_) stop();
}

void Forwarder::start() {
  if (started_) throw std::logic_error("Forwarder::start: already started");
  // Check the CPUs before any thread exists: nothing to undo on a throw.
  cpu_set_t allowed;
  if (!opt_.cpus.empty() && sched_getaffinity(0, sizeof allowed, &allowed) == 0)
    for (int cpu : opt_.cpus)
      if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed))
        throw std::invalid_argument("Forwarder: CPU " + std::to_string(cpu) +
                                    " is not one this process may run on");
  started_ = true;
  for (auto& t : threads_) {
    t->th = std::thread([this, tp = t.get()] { run(*tp); });
    if (!opt_.cpus.empty()) {
      // Best effort past the check above (a cpuset change in between).
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(opt_.cpus[t->id % opt_.cpus.size()], &set);
      (void)pthread_setaffinity_np(t->th.native_handle(), sizeof set, &set);
    }
  }
  // The pollers bind their pools and post RX buffers before traffic starts.
  while (ready_.load(std::memory_order_acquire) < threads_.size()) sched_yield();
  t0_ = std::chrono::steady_clock::now();
  for (auto& d : devs_) d->start();
}

// ---- data path -------------------------------------------------------------

namespace {

// Heap baselines' blocks: kBufBytes starting on a cache line, carved from
// one malloc block whose address is kept in the 8 bytes below the start.
// malloc alone gives 16-byte alignment, and a 64-byte frame at the headroom
// would then straddle two cache lines where a pool page's frame touches
// one: the baseline would pay for that, not for malloc. Lines, not pages:
// page-aligned blocks (aligned_alloc) take glibc's much slower memalign
// path, and this baseline is meant to be malloc at its best.
std::byte* heap_block_new() {
  constexpr std::size_t kLine = 64;
  auto* raw = static_cast<std::byte*>(std::malloc(kBufBytes + kLine + sizeof(void*)));
  if (!raw) return nullptr;
  const auto a = (reinterpret_cast<std::uintptr_t>(raw) + sizeof(void*) + kLine - 1) & ~(kLine - 1);
  auto* b = reinterpret_cast<std::byte*>(a);
  std::memcpy(b - sizeof(void*), &raw, sizeof raw);
  return b;
}

void heap_block_free(std::byte* b) {
  void* raw;
  std::memcpy(&raw, b - sizeof(void*), sizeof raw);
  std::free(raw);
}

}  // namespace

// Stack baseline: the thread's stack ran dry; carve a new chunk into it.
// Chunks are 2 MiB-aligned and asked for transparent huge pages, as the
// pool's default provider does, so the floor has the same TLB reach as the
// pool. They are unmapped by stop() once every thread has ended. Returns
// false when out of memory.
bool Forwarder::stack_grow(Thread& t) {
  void* m = pagepool::detail::map_aligned(kStackChunk, kStackChunk, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  if (!m) return false;
  madvise(m, kStackChunk, MADV_HUGEPAGE);  // a hint
  {
    std::lock_guard lock(chunk_mu_);
    chunks_.push_back(m);
  }
  auto* base = static_cast<std::byte*>(m);
  constexpr std::size_t kBlocks = kStackChunk / kBufBytes;
  // Pushed from the top, so they leave in address order.
  for (std::size_t i = kBlocks; i-- > 0;) t.stack.push_back(base + i * kBufBytes);
  t.heap_alloc.add(kBlocks);
  return true;
}

// A heap baseline's block: the thread's stack (stack baseline) or malloc;
// nullptr when out of memory.
std::byte* Forwarder::heap_get(Thread& t) {
  if (opt_.stack_baseline) {
    if (t.stack.empty() && !stack_grow(t)) return nullptr;
    std::byte* b = t.stack.back();
    t.stack.pop_back();
    return b;
  }
  std::byte* b = heap_block_new();
  if (b) t.heap_alloc.add(1);
  return b;
}

void Forwarder::heap_put(Thread& t, std::byte* b) {
  if (opt_.stack_baseline) {
    t.stack.push_back(b);  // kStackReserve entries reserved in run(): rarely grows
    return;
  }
  heap_block_free(b);
  t.heap_free.add(1);
}

void Forwarder::recycle(Thread& t, const Buf& b) {
  if (heap_) {
    heap_put(t, b.base);
  } else {
    put_page(b.page);  // the caller's pool's owner: straight into its cache
  }
}

void Forwarder::free_bufs(Thread& t, const Buf* bufs, std::uint32_t n) {
  if (heap_) {
    for (std::uint32_t i = 0; i < n; ++i) heap_put(t, bufs[i].base);
    return;
  }
  Page* pages[kBudget];
  while (n) {
    const std::uint32_t k = std::min(n, kBudget);
    for (std::uint32_t i = 0; i < k; ++i) pages[i] = bufs[i].page;
    put_pages_bulk(pages, k);  // each page to its own pool
    bufs += k;
    n -= k;
  }
}

void Forwarder::fill(Thread& t, std::uint32_t d) {
  Device& dev = *devs_[d];
  std::uint32_t room = dev.fill_room();
  Buf bufs[kBudget];
  Page* pages[kBudget];
  while (room) {
    std::uint32_t k = std::min(room, kBudget);
    if (heap_) {
      std::uint32_t got = 0;
      for (; got < k; ++got) {
        std::byte* b = heap_get(t);
        if (!b) break;
        bufs[got] = {b, nullptr};
      }
      k = got;
    } else {
      k = static_cast<std::uint32_t>(pools_[d]->alloc_pages_bulk(pages, k));
      for (std::uint32_t i = 0; i < k; ++i) bufs[i] = {static_cast<std::byte*>(page_address(pages[i])), pages[i]};
    }
    if (k == 0) return;  // pool limited or out of memory: try again next poll
    const std::uint32_t acc = dev.fill(bufs, k);
    for (std::uint32_t i = acc; i < k; ++i) recycle(t, bufs[i]);
    if (acc < k) return;
    room -= acc;
  }
}

void Forwarder::flush_tx(Thread& t, std::uint32_t ingress) {
  for (std::uint32_t tg = 0; tg < t.bq.size(); ++tg) {
    Thread::Bulk& q = t.bq[tg];
    if (!q.n) continue;
    const std::uint32_t k = devs_[tg]->tx(q.f, q.n);
    t.tx.add(k);
    if (tg != ingress) t.redirect.add(k);
    if (k < q.n) {
      t.dropped[static_cast<std::size_t>(DropReason::tx_full)].add(q.n - k);
      for (std::uint32_t i = k; i < q.n; ++i) recycle(t, q.f[i].buf);
    }
    q.n = 0;
  }
}

void Forwarder::poll_device(Thread& t, std::uint32_t d, bool filling) {
  Device& dev = *devs_[d];
  bool work = false;

  // 1. TX completions first: they free the pages the fill below may need.
  Buf done[kBudget];
  if (const std::uint32_t n = dev.complete(done, kBudget)) {
    free_bufs(t, done, n);
    t.completed.add(n);
    work = true;
  }

  // 2. RX -> program -> verdicts.
  Frame fr[kBudget];
  const std::uint32_t n = dev.rx(fr, kBudget);
  if (n) {
    work = true;
    const auto ndev = static_cast<std::uint32_t>(devs_.size());
    XdpMd ctx[kBudget];
    Verdict v[kBudget];
    const std::uint32_t q = dev.rx_queue();
    // Each frame's first line is prefetched here, as drivers do before
    // building their XDP buffers: the device wrote it from another CPU, so
    // the program's first load of it misses, and the batch's misses
    // overlap instead of waiting one after the other in the program.
    // Measured (docs/forwarding.md): the poller 2.5 % cheaper a frame with
    // pool pages, 8.5 % with the malloc baseline's colder buffers.
    for (std::uint32_t i = 0; i < n; ++i) {
      std::byte* base = fr[i].buf.base;
      ctx[i] = {base + fr[i].off, base + fr[i].off + fr[i].len, base, kBufBytes, d, q, ndev};
      __builtin_prefetch(ctx[i].data, 0, 3);
    }
    prog_->run(ctx, v, n);

    std::uint64_t pass = 0, pass_bytes = 0;
    std::array<std::uint32_t, kDropReasons> drops{};
    for (std::uint32_t i = 0; i < n; ++i) {
      const Buf& b = fr[i].buf;
      const XdpMd& c = ctx[i];
      Verdict vi = v[i];
      // The program may move the frame's bounds, but only inside its buffer:
      // base <= data <= data_end <= base + kBufBytes. As unsigned differences
      // (a bound below its lower limit wraps to a huge value), two compares.
      const auto off = reinterpret_cast<std::uintptr_t>(c.data) - reinterpret_cast<std::uintptr_t>(b.base);
      const auto len = reinterpret_cast<std::uintptr_t>(c.data_end) - reinterpret_cast<std::uintptr_t>(c.data);
      if (off > kBufBytes || len > kBufBytes - off)
        vi = Verdict::drop(DropReason::aborted);
      else if (vi.action == Action::kRedirect && vi.target >= ndev)
        vi = Verdict::drop(DropReason::bad_target);
      switch (vi.action) {
        case Action::kTx:
        case Action::kRedirect: {
          const std::uint32_t tg = vi.action == Action::kTx ? d : vi.target;
          Thread::Bulk& q = t.bq[tg];
          q.f[q.n++] = {b, static_cast<std::uint32_t>(off), static_cast<std::uint32_t>(len)};
          continue;
        }
        case Action::kPass: {
          // The slow path gets its own copy; the page goes back at once.
          auto* copy = static_cast<std::byte*>(std::malloc(len ? len : 1));
          if (!copy) {
            ++drops[static_cast<std::size_t>(DropReason::aborted)];  // no memory for the slow path
            break;
          }
          std::memcpy(copy, c.data, len);
          if (opt_.pass_sink) opt_.pass_sink(d, copy, len);
          std::free(copy);
          ++pass;
          pass_bytes += len;
          break;
        }
        case Action::kDrop:
        default: {
          auto r = static_cast<std::size_t>(vi.reason);
          ++drops[r < kDropReasons ? r : static_cast<std::size_t>(DropReason::aborted)];
          break;
        }
      }
      // DROP and PASS: the page is the ingress pool's, owned here.
      if (heap_) {
        heap_put(t, b.base);
      } else {
        pools_[d]->recycle_direct(b.page);
      }
    }
    t.rx.add(n);
    if (pass) {
      t.pass.add(pass);
      t.pass_bytes.add(pass_bytes);
    }
    for (std::size_t r = 0; r < kDropReasons; ++r)
      if (drops[r]) t.dropped[r].add(drops[r]);
    // 3. One tx() per target for the whole batch (xdp_do_flush).
    flush_tx(t, d);
  }

  // 4. Top the RX ring up.
  if (filling) fill(t, d);
  if (work) t.work.store(t.work.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void Forwarder::run(Thread& t) {
  if (opt_.stack_baseline) t.stack.reserve(kStackReserve);
  for (std::uint32_t d : t.devs)
    if (!heap_) pools_[d]->bind_owner();
  for (std::uint32_t d : t.devs) fill(t, d);
  ready_.fetch_add(1, std::memory_order_release);  // pairs with start()'s acquire

  detail::IdleBackoff backoff;
  for (;;) {
    // Acquire: pairs with stop()'s release-stores of the phase.
    const int phase = phase_.load(std::memory_order_acquire);
    if (phase == 2) break;
    const std::uint64_t w0 = t.work.load(std::memory_order_relaxed);
    const std::uint64_t c0 = detail::busy_clock();
    for (std::uint32_t d : t.devs) poll_device(t, d, phase == 0);
    // Release: the control thread's acquire-load of polls sees this poll's
    // counters and its tx() calls.
    t.polls.store(t.polls.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    if (t.work.load(std::memory_order_relaxed) != w0) {
      t.busy += detail::busy_clock() - c0;
      backoff.work();
    } else {
      backoff.idle();
    }
  }
  reclaim(t);
}

void Forwarder::reclaim(Thread& t) {
  Buf bufs[kBudget];
  for (std::uint32_t d : t.devs) {
    Device& dev = *devs_[d];
    // Frames still queued on RX (the drain timed out) go back unprocessed.
    while (std::uint32_t n = dev.reclaim(bufs, kBudget)) free_bufs(t, bufs, n);
  }
  // Pages this thread put to pools it does not own go to their rings now.
  flush_thread();
  // Stack baseline: the thread's free blocks are all it holds; each is
  // counted free (stop() unmaps the chunks they live in).
  t.heap_free.add(t.stack.size());
  t.stack.clear();
}

// ---- control path --------------------------------------------------------------

Report Forwarder::stop() {
  if (!started_) throw std::logic_error("Forwarder::stop: not started");
  if (stopped_) throw std::logic_error("Forwarder::stop: already stopped");
  stopped_ = true;
  t1_ = std::chrono::steady_clock::now();
  for (auto& d : devs_) d->quiesce();
  phase_.store(1, std::memory_order_release);

  // Drained: across a window in which every poller completed two polls
  // (so at least one whole poll started inside it), no poller did any work
  // and nothing is outstanding on TX. Devices are quiesced, so nothing new
  // arrives from a sim device; an xsk device may still receive into buffers
  // already posted, which reclaim() takes back.
  Report rep;
  const auto deadline = t1_ + opt_.drain_timeout;
  const std::size_t nt = threads_.size();
  std::vector<std::uint64_t> polls(nt), work(nt);
  while (std::chrono::steady_clock::now() < deadline) {
    for (std::size_t i = 0; i < nt; ++i) {
      polls[i] = threads_[i]->polls.load(std::memory_order_acquire);
      work[i] = threads_[i]->work.load(std::memory_order_relaxed);
    }
    for (std::size_t i = 0; i < nt; ++i)
      while (threads_[i]->polls.load(std::memory_order_acquire) < polls[i] + 2 &&
             std::chrono::steady_clock::now() < deadline)
        sched_yield();
    bool quiet = true;
    for (std::size_t i = 0; i < nt; ++i) quiet &= threads_[i]->work.load(std::memory_order_relaxed) == work[i];
    std::uint64_t outstanding = 0;
    for (auto& d : devs_) outstanding += d->tx_outstanding();
    if (quiet && outstanding == 0) {
      rep.drained = true;
      break;
    }
  }
  phase_.store(2, std::memory_order_release);
  for (auto& t : threads_) t->th.join();
  for (void* m : chunks_) munmap(m, kStackChunk);  // stack_grow's mappings
  chunks_.clear();

  rep.packets = counters();
  rep.seconds = std::chrono::duration<double>(t1_ - t0_).count();
  for (auto& d : devs_) {
    rep.device_names.push_back(d->name());
    rep.devices.push_back(d->stats());
  }
  for (std::size_t i = 0; i < pools_.size(); ++i) {
    rep.pools.push_back({devs_[i]->name(), pools_[i]->stats(), pools_[i]->levels()});
    rep.inflight_at_exit += rep.pools.back().levels.inflight;
  }
  std::uint64_t ha = 0, hf = 0;
  for (auto& t : threads_) {
    ha += t->heap_alloc.get();
    hf += t->heap_free.get();
    rep.busy_cycles += t->busy;  // the join ordered the thread's writes
  }
  rep.heap_outstanding = ha - hf;
  return rep;
}

PacketCounters Forwarder::counters() const noexcept {
  PacketCounters c;
  for (auto& t : threads_) {
    c.rx += t->rx.get();
    c.tx += t->tx.get();
    c.redirect += t->redirect.get();
    c.pass += t->pass.get();
    c.pass_bytes += t->pass_bytes.get();
    c.completed += t->completed.get();
    for (std::size_t r = 0; r < kDropReasons; ++r) c.dropped[r] += t->dropped[r].get();
  }
  return c;
}

Stats Forwarder::pool_stats(std::size_t i) const noexcept {
  return i < pools_.size() ? pools_[i]->stats() : Stats{};
}

Levels Forwarder::pool_levels(std::size_t i) const noexcept {
  return i < pools_.size() ? pools_[i]->levels() : Levels{};
}

std::vector<std::string> accounting_errors(const Report& r, bool wire) {
  std::vector<std::string> err;
  auto eq = [&](std::uint64_t a, std::uint64_t b, const std::string& what) {
    if (a != b) err.push_back(what + ": " + std::to_string(a) + " != " + std::to_string(b));
  };
  const PacketCounters& p = r.packets;
  if (!r.drained) err.push_back("queues did not drain before the deadline");
  eq(p.rx, p.tx + p.pass + p.dropped_total(), "rx vs tx + pass + dropped");
  eq(p.completed, p.tx, "completed vs tx");
  std::uint64_t drx = 0, dtx = 0;
  for (std::size_t i = 0; i < r.devices.size(); ++i) {
    const DeviceStats& d = r.devices[i];
    const std::string& n = r.device_names[i];
    drx += d.rx_frames;
    dtx += d.tx_frames;
    eq(d.tx_frames, d.tx_completed, n + " tx_frames vs tx_completed");
    if (wire) {
      eq(d.wire_sent, d.rx_frames + d.rx_no_buf, n + " wire_sent vs rx_frames + rx_no_buf");
      eq(d.wire_received, d.tx_frames, n + " wire_received vs tx_frames");
      eq(d.wire_duplicate, 0, n + " wire_duplicate");
      eq(d.wire_corrupt, 0, n + " wire_corrupt");
    }
  }
  eq(drx, p.rx, "device rx_frames vs rx");
  eq(dtx, p.tx, "device tx_frames vs tx");
  eq(r.inflight_at_exit, 0, "inflight at exit");
  eq(r.heap_outstanding, 0, "heap blocks not freed");
  return err;
}

}  // namespace pagepool::fwd
