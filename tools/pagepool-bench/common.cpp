// pagepool-bench: clock, threads, tags and case descriptions.
#include "common.hpp"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

namespace ppb {

namespace {
double g_ghz = 0;

double mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}
}  // namespace

double calibrate_tsc() {
  // Three 100 ms windows, keep the median: one preempted window cannot skew it.
  double g[3];
  for (double& x : g) {
    const double n0 = mono_ns();
    const std::uint64_t c0 = now();
    while (mono_ns() - n0 < 100e6) {
    }
    const std::uint64_t c1 = now();
    const double n1 = mono_ns();
    x = static_cast<double>(c1 - c0) / (n1 - n0);
  }
  std::sort(g, g + 3);
  g_ghz = g[1];
  return g_ghz;
}

double tsc_ghz() {
  if (g_ghz == 0) calibrate_tsc();
  return g_ghz;
}

void Backoff::wait() {
  if (++n < 64) {
    _mm_pause();
  } else {
    sched_yield();  // oversubscribed: let the thread we wait for run
  }
}

namespace {
// The CPUs this process may run on (sched_getaffinity at first use, before
// any benchmark thread is pinned), in ascending order. A container or
// `taskset` may allow fewer CPUs than are online, or not CPU 0.
const std::vector<int>& allowed_cpus() {
  static const std::vector<int> cpus = [] {
    std::vector<int> v;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0)
      for (int i = 0; i < CPU_SETSIZE; ++i)
        if (CPU_ISSET(i, &set)) v.push_back(i);
    if (v.empty()) {  // no mask (cannot happen on Linux): assume the online CPUs
      const long c = sysconf(_SC_NPROCESSORS_ONLN);
      for (long i = 0; i < (c > 0 ? c : 1); ++i) v.push_back(static_cast<int>(i));
    }
    return v;
  }();
  return cpus;
}

// Refused pin_to calls and the last refusal's error. Relaxed: read once, by
// the report, after every benchmark thread has been joined.
std::atomic<unsigned> g_pin_failures{0};
std::atomic<int> g_pin_errno{0};
}  // namespace

void pin_to(int cpu) {
  const std::vector<int>& cpus = allowed_cpus();
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0) {
    for (int c : cpus) CPU_SET(static_cast<unsigned>(c), &set);
  } else {
    CPU_SET(static_cast<unsigned>(cpus[static_cast<unsigned>(cpu) % cpus.size()]), &set);
  }
  if (const int e = pthread_setaffinity_np(pthread_self(), sizeof set, &set); e != 0) {
    g_pin_errno.store(e, std::memory_order_relaxed);
    g_pin_failures.fetch_add(1, std::memory_order_relaxed);
  }
}

unsigned cpu_count() { return static_cast<unsigned>(allowed_cpus().size()); }

int cpu_id(int i) {
  const std::vector<int>& cpus = allowed_cpus();
  return cpus[static_cast<unsigned>(i) % cpus.size()];
}

unsigned pin_failures(int* last_errno) {
  if (last_errno) *last_errno = g_pin_errno.load(std::memory_order_relaxed);
  return g_pin_failures.load(std::memory_order_relaxed);
}

void tag_mismatch(const void* d, std::uint64_t got, std::uint64_t want) {
  std::fprintf(stderr,
               "pagepool-bench: buffer %p holds tag %#llx, expected %#llx: a buffer was handed out "
               "twice or overwritten\n",
               d, static_cast<unsigned long long>(got), static_cast<unsigned long long>(want));
  std::abort();
}

const char* scen_name(Scen s) {
  switch (s) {
    case Scen::S1: return "S1";
    case Scen::S2: return "S2";
    case Scen::S2b: return "S2b";
    case Scen::S3: return "S3";
    case Scen::S4: return "S4";
    case Scen::S5: return "S5";
    case Scen::S6: return "S6";
  }
  return "?";
}

std::string CaseSpec::label() const {
  // snprintf rather than string concatenation: g++ 12 warns falsely
  // (-Wrestrict) on `" " + std::to_string(n)`, and CI builds with -Werror.
  char b[32];
  if (s == Scen::S5) std::snprintf(b, sizeof b, "S5 r%u", param);
  else if (s == Scen::S6 && param >= (1u << 20) && param % (1u << 20) == 0) std::snprintf(b, sizeof b, "S6 %uM", param >> 20);
  else if (s == Scen::S6 && param >= 1024 && param % 1024 == 0) std::snprintf(b, sizeof b, "S6 %uK", param >> 10);
  else if (s == Scen::S6) std::snprintf(b, sizeof b, "S6 %u", param);
  else std::snprintf(b, sizeof b, "%s", scen_name(s));
  return b;
}

Setup setup_of(const CaseSpec& c) {
  switch (c.s) {
    case Scen::S1: return {1, 1};
    case Scen::S2: return {kBatch, 1};
    case Scen::S2b: return {kBulkN, 1};
    // Queue + the batch the returner holds + the one the owner is pushing.
    case Scen::S3: return {kQueueCap + kBulkN + 1, 2};
    case Scen::S5: return {std::uint64_t{c.param} * (kQueueCap + kBulkN) + 1, c.param + 1};
    case Scen::S4:
    case Scen::S6: return {c.param, 1};
  }
  return {1, 1};
}

}  // namespace ppb
