// Shared by the tools: how far apart two CPUs are, right now.
//
// line_round_trip(a, b): TSC cycles for one cache line to go from CPU a to
// CPU b and back. Two threads pinned there take turns writing it, 4096
// times; the median of five such rounds (a few milliseconds). On these VMs
// it is bimodal: about 130-240 cycles at some times and 900-1200 at others,
// when the host has put the two vCPUs far apart (another die or socket).
// Every line that crosses between two benchmark threads makes that trip, so
// the probe says what a two-CPU run at that moment could reach. 0 when
// either CPU cannot be pinned.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace pagepool_tools {

inline double line_round_trip(int a, int b) {
  constexpr int kTrips = 4096, kRounds = 5;
  alignas(64) std::atomic<std::uint32_t> ball{0};
  // Both threads pin themselves, then meet here; if either could not, both
  // leave (two spinning threads sharing one CPU would take a scheduler
  // slice per turn).
  std::atomic<int> arrived{0};
  std::atomic<bool> pinned{true};
  auto pin_and_meet = [&](int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) pinned.store(false);
    arrived.fetch_add(1);
    while (arrived.load() < 2) sched_yield();
    return pinned.load();
  };
  std::vector<double> rounds;
  // Acquire/release: each side's turn is the other's store; the loads spin
  // on the line until it arrives.
  std::thread peer([&] {
    if (!pin_and_meet(b)) return;
    for (std::uint32_t i = 0; i < std::uint32_t(kTrips * kRounds); ++i) {
      while (ball.load(std::memory_order_acquire) != 2 * i + 1) _mm_pause();
      ball.store(2 * i + 2, std::memory_order_release);
    }
  });
  std::thread self([&] {
    if (!pin_and_meet(a)) return;
    std::uint32_t i = 0;
    for (int r = 0; r < kRounds; ++r) {
      const std::uint64_t t0 = __rdtsc();
      for (int k = 0; k < kTrips; ++k, ++i) {
        ball.store(2 * i + 1, std::memory_order_release);
        while (ball.load(std::memory_order_acquire) != 2 * i + 2) _mm_pause();
      }
      rounds.push_back(double(__rdtsc() - t0) / kTrips);
    }
  });
  self.join();
  peer.join();
  if (rounds.empty()) return 0;
  std::sort(rounds.begin(), rounds.end());
  return rounds[kRounds / 2];
}

}  // namespace pagepool_tools
