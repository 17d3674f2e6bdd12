// pagepool: what the forwarding path's busy-polling threads (forwarder
// pollers, the sim's hardware thread) and the devices' TX producers share:
// a clock, the idle back-off and a spinlock. Internal to src/.
//
// IdleBackoff: how a busy-polling thread waits when it finds no work.
// For kPauseNs after the last work it found it polls again after a few
// pause instructions: the other end of a loaded pipeline delivers its next
// batch within a microsecond or two, and a sched_yield costs about that
// much here, so yielding at once left each thread idle for part of every
// gap (measured: the sim pipeline ran at 0.95 of its polling thread's
// pace, now 1.0). Then, up to kSpinNs, it yields the CPU between polls
// (another thread on the CPU can run): a loaded pipeline always has work
// within a few microseconds, so it never sleeps. After that the queues
// are idle and it naps kNapNs per poll, so an idle forwarder costs little
// CPU; the first frame after a pause then waits one nap (tens of µs; a
// 1024-entry ring absorbs that). Counting empty polls instead of time
// fails when both ends of a queue poll fast: each empties the other's work
// in fewer polls than the limit, both start napping, and they stay in step
// at one batch a nap.
#pragma once

#include <sched.h>
#include <time.h>

#include <atomic>
#include <cstdint>

namespace pagepool::fwd::detail {

inline std::uint64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::uint64_t(ts.tv_sec) * 1'000'000'000u + std::uint64_t(ts.tv_nsec);
}

// A cheap timestamp for busy-time accounting: TSC ticks on x86-64 (read
// without serialising; an error of a few tens of cycles per poll round),
// nanoseconds elsewhere.
inline std::uint64_t busy_clock() noexcept {
#if defined(__x86_64__)
  return __builtin_ia32_rdtsc();
#else
  return now_ns();
#endif
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// A device's tx() callers are other devices' polling threads: short
// critical sections, one per batch, rarely contended. Free, it costs one
// atomic exchange.
class SpinLock {
 public:
  void lock() noexcept {
    // Acquire: pairs with unlock()'s release; the last holder's ring writes
    // are seen.
    while (locked_.exchange(true, std::memory_order_acquire))
      while (locked_.load(std::memory_order_relaxed)) cpu_relax();
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

class IdleBackoff {
 public:
  static constexpr std::uint64_t kSpinNs = 1'000'000;  // 1 ms of idle polling
  static constexpr long kNapNs = 20'000;
  static constexpr std::uint64_t kPauseNs = 5'000;  // first 5 µs idle: pause, no yield
  static constexpr int kPauses = 8;                  // 0.2-0.5 µs on current x86

  void work() noexcept { idle_since_ = 0; }
  void idle() noexcept {
    const std::uint64_t now = now_ns();
    if (!idle_since_) idle_since_ = now;
    if (now - idle_since_ < kPauseNs) {
      for (int i = 0; i < kPauses; ++i) cpu_relax();
    } else if (now - idle_since_ < kSpinNs) {
      sched_yield();
    } else {
      timespec ts{0, kNapNs};
      nanosleep(&ts, nullptr);
    }
  }

 private:
  std::uint64_t idle_since_ = 0;  // 0: the last poll found work
};

}  // namespace pagepool::fwd::detail
