// pagepool-bench: vocabulary shared by the scenarios, the adapters and the
// report: the clock, the buffer tag, the cases and their outcomes.
#pragma once

#include <x86intrin.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

// Every adapter's get/put/bulk/data is forced inline into the scenario
// loops, so no allocator pays a call the compiler chose not to inline
// (GCC otherwise keeps some adapters' puts out of line, not others').
#define PPB_HOT [[gnu::always_inline]] inline

namespace ppb {

// ---- clock ------------------------------------------------------------------
// Cycles are TSC cycles (constant-rate on this machine: constant_tsc,
// nonstop_tsc); ns = cycles / tsc_ghz(), measured once against CLOCK_MONOTONIC.
inline std::uint64_t now() { return __rdtsc(); }
double calibrate_tsc();  // measures and remembers; returns GHz
double tsc_ghz();        // calibrate_tsc() first
inline double to_ns(double cycles) { return cycles / tsc_ghz(); }

// Back-off for a thread waiting on another: spin briefly, then yield so an
// oversubscribed run (more threads than cores) still makes progress.
struct Backoff {
  unsigned n = 0;
  void wait();
  void reset() { n = 0; }
};

// CPUs are counted and numbered within the process's allowed set
// (sched_getaffinity, read once at the first call of either function), not
// the machine's online CPUs: cpu_count() is the size of that set, and
// pin_to(i) pins the calling thread to its i-th CPU (modulo the count;
// cpu < 0: the whole set). If the kernel refuses, the thread stays where it
// was (it floats) and pin_failures() counts it, for the report.
void pin_to(int cpu);
unsigned cpu_count();
// The id of the CPU pin_to(i) pins to.
int cpu_id(int i);
// Refused pin_to calls so far; *last_errno (if given): the last refusal's code.
unsigned pin_failures(int* last_errno = nullptr);

// ---- buffer tag --------------------------------------------------------------
// Every buffer is written when got and checked before it is returned, so no
// allocator is measured on memory nobody touches (mmap's page is faulted in,
// a peer's free list cannot hide a bad block). One 8-byte tag in the first
// cache line: a page's worth of writes would measure memset, not allocators.
inline std::uint64_t tag_of(std::uint64_t seq) { return (seq + 1) * 0x9E3779B97F4A7C15ull; }

[[noreturn]] void tag_mismatch(const void* d, std::uint64_t got, std::uint64_t want);

// Where a buffer's tag goes: at its start, or (RunCfg::tag_colour,
// --tag-colour) 64 bytes times (the buffer's address / 4096 mod 16) into it,
// the way the sim device places frames. At the start, the tags of page-aligned
// buffers all fall into one L1 set and each load aliases a store 4 KiB away
// (BM_Tag32): a cost of the benchmark's tag, paid by every page-aligned
// allocator and by none whose buffers are 4160 bytes apart. Coloured, every
// allocator's tag lands somewhere in its buffer's first KiB (all buffers are
// at least 4 KiB), so the difference between allocators is theirs. The
// scenario loops take `colours` as a template argument (scen::run_case_at),
// so with 0 the call compiles to nothing.
inline constexpr std::uintptr_t kTagColours = 15;
[[gnu::always_inline]] inline std::byte* tag_at(std::byte* d, std::uintptr_t colours) {
  return d + ((reinterpret_cast<std::uintptr_t>(d) >> 12 & colours) << 6);
}

[[gnu::always_inline]] inline void tag_write(std::byte* d, std::uint64_t t) {
  std::memcpy(d, &t, sizeof t);
}
[[gnu::always_inline]] inline void tag_check(const std::byte* d, std::uint64_t t) {
  // The barrier makes the compiler reload the tag from memory even right
  // after tag_write (S1), so the check is a real read of the buffer.
  asm volatile("" : : "r"(d) : "memory");
  std::uint64_t v;
  std::memcpy(&v, d, sizeof v);
  if (v != t) [[unlikely]]
    tag_mismatch(d, v, t);
}

// ---- cases -----------------------------------------------------------------------
enum class Scen { S1, S2, S2b, S3, S4, S5, S6 };
const char* scen_name(Scen s);

struct CaseSpec {
  Scen s;
  std::uint32_t param = 0;  // S5: returner threads; S4/S6: buffers in flight
  std::string label() const;  // "S1", "S5 r2", "S6 16K"
};

// Sizing an allocator instance for a case: the most buffers that can be
// out at once and the threads that touch it.
struct Setup {
  std::uint64_t inflight;
  unsigned threads;
};
Setup setup_of(const CaseSpec& c);

// S3/S5 hand buffers over through SPSC queues of this many entries.
inline constexpr std::uint32_t kQueueCap = 1024;
// S2: one NAPI budget; S2b: the bulk size.
inline constexpr std::uint32_t kBatch = 64;
inline constexpr std::uint32_t kBulkN = 32;

struct RunCfg {
  std::uint64_t ops;      // buffers per timed run (after the allocator's divisor)
  bool prefetch = true;   // S4/S6: prefetch the tag line of the buffer 16 steps ahead
  bool tag_colour = false;  // tag_at() with kTagColours, else at the buffer's start
  // A timed run is cut to about this long (but keeps at least ops / 32
  // buffers), so a slow allocator does not stretch the whole run.
  double budget_ns = 200e6;
};

struct Outcome {
  enum Status { ok, na, fail } st = ok;
  double ns = 0;    // per buffer (S5: per page returned, on a returner)
  double mops = 0;  // buffers per µs (S3: pipeline; S5: the owner's allocation rate)
  std::string note;
  std::uint64_t ops = 0;  // buffers in the timed run
  // S3/S5: line_round_trip() between the owner's and the first returner's
  // CPUs, measured just before the run (untimed); 0 where not measured.
  double line_rt = 0;
  static Outcome not_applicable(std::string why) { return {na, 0, 0, std::move(why), 0}; }
  static Outcome failed(std::string why) { return {fail, 0, 0, std::move(why), 0}; }
};

// One allocator as the driver sees it: type-erased per case, while the
// loops inside `run` are templates over the concrete adapter.
struct Allocator {
  std::string name;
  bool present = false;
  std::string detail;          // version and how it is loaded, or why it is absent
  bool bulk = false;           // has a bulk get/put (S2b)
  bool one_thread = false;     // serves one thread only: S3 and S5 do not apply
  std::uint64_t ops_div = 1;   // mmap: each op is a system call pair and a fault
  std::function<Outcome(const CaseSpec&, const RunCfg&)> run;
  // Gives memory freed by the case back to the OS, so a 4 GiB S6 case does
  // not stay resident while the next allocator runs. Untimed.
  std::function<void()> trim = [] {};
  // Adapter check for tests: a round trip on the owner and on another
  // thread, every buffer written and verified. "" if fine, else what failed.
  std::function<std::string()> selftest;
};

inline const std::vector<std::string>& all_allocator_names() {
  static const std::vector<std::string> v{"pagepool", "pagepool-nostats", "pagepool-lockedring", "dpdk", "glibc",
                                          "jemalloc", "mimalloc", "tcmalloc", "mmap", "stack"};
  return v;
}

// Builds every named allocator; peers that cannot be loaded come back with
// present = false and the reason. `cases` sizes DPDK's memory.
std::vector<Allocator> make_allocators(const std::vector<std::string>& names,
                                       const std::vector<CaseSpec>& cases);

}  // namespace ppb
