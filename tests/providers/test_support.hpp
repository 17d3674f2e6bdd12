// Helpers for the provider tests (provider_test, fault_test, numa_test,
// umem_test):
//
//  - from tests/common, shared with the unit suite: the counting provider
//    and the checks over what it logged (every page came back, mappings
//    balance the pages the pool holds), the pool's accounting invariant,
//    counter deltas, page data helpers, threads.
//  - FakeNodeProvider: a ChunkProvider whose chunks claim to be on a NUMA
//    node the test chooses, so the NUMA logic can be tested on one node.
//  - allocating until the pool says no, a thread that stays alive with its
//    pending returns, smaps readers, and a guard that reserves huge pages
//    and restores the previous value.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/counting_provider.hpp"
#include "common/invariants.hpp"
#include "common/pool_test_util.hpp"
#include "common/threads.hpp"
#include "pagepool/pagepool.hpp"

namespace ppprov {

using namespace ::pptest::common;  // CountingProvider, expect_consistent, StatsWatch, page helpers

using pagepool::Page;
using pagepool::Pool;

// ---- a provider with fake NUMA nodes ---------------------------------------------

// Chunks of private anonymous memory that claim to be on a node the test
// chooses: `report` (kEcho: the node asked for, -1 if any). Records the node
// asked for at each reserve_chunk.
class FakeNodeProvider final : public pagepool::ChunkProvider {
 public:
  static constexpr int kEcho = -100;
  static constexpr std::size_t kChunk = std::size_t{2} << 20;

  explicit FakeNodeProvider(unsigned order, std::size_t chunk_bytes = kChunk)
      : ChunkProvider(order, chunk_bytes) {}
  ~FakeNodeProvider() override { release_all_chunks(); }
  const char* name() const noexcept override { return "fake-node"; }

  std::atomic<int> report{kEcho};
  std::atomic<bool> fail{false};  // reserve_chunk fails (ENOMEM)
  std::atomic<int> chunks_live{0};
  std::atomic<int> chunks_made{0};

  std::vector<int> asked() {
    std::lock_guard lock(mu_);
    return asked_;
  }

 protected:
  void* reserve_chunk(std::size_t bytes, int* nid) noexcept override {
    {
      std::lock_guard lock(mu_);
      asked_.push_back(*nid);
    }
    if (fail.load()) {
      errno = ENOMEM;
      return nullptr;
    }
    const std::size_t span = bytes + kChunk;
    void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    const auto r = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t a = (r + kChunk - 1) & ~(kChunk - 1);
    if (a > r) munmap(raw, a - r);
    if (r + span > a + bytes) munmap(reinterpret_cast<void*>(a + bytes), r + span - (a + bytes));
    const int rep = report.load();
    if (rep != kEcho) *nid = rep;
    chunks_live.fetch_add(1);
    chunks_made.fetch_add(1);
    return reinterpret_cast<void*>(a);
  }
  void unreserve_chunk(void* base, std::size_t bytes) noexcept override {
    munmap(base, bytes);
    chunks_live.fetch_sub(1);
  }

 private:
  std::mutex mu_;
  std::vector<int> asked_;
};

// ---- pages ---------------------------------------------------------------------------

// Allocates until the pool says no; returns what it got.
inline std::vector<Page*> alloc_until_fail(Pool& pool, std::size_t limit = 1u << 20) {
  std::vector<Page*> out;
  while (out.size() < limit) {
    Page* p = pool.alloc_page();
    if (!p) break;
    out.push_back(p);
  }
  return out;
}

inline std::vector<Page*> slice(const std::vector<Page*>& v, std::size_t from, std::size_t to) {
  return std::vector<Page*>(v.begin() + static_cast<std::ptrdiff_t>(from),
                            v.begin() + static_cast<std::ptrdiff_t>(to));
}

using pptest::common::on_other_thread;
// A thread that runs steps on request and stays alive between them, so the
// pages it put stay in its pending batch until it flushes or exits.
using Parked = pptest::common::Worker;

// ---- /proc/self/smaps ----------------------------------------------------------------

// The smaps block of the mapping that contains addr ("" if none).
inline std::string smaps_block(const void* addr) {
  std::ifstream f("/proc/self/smaps");
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  std::string line, block;
  bool in = false;
  while (std::getline(f, line)) {
    unsigned long lo = 0, hi = 0;
    char dash = 0;
    std::istringstream hs(line);
    const bool header =
        (hs >> std::hex >> lo >> dash >> hi) && dash == '-' && line.find(':') > line.find(' ');
    if (header) {
      if (in) return block;
      in = a >= lo && a < hi;
      block.clear();
    }
    if (in) block += line + "\n";
  }
  return in ? block : std::string();
}

// Value (in kB) of a "Field:   N kB" line of the block; -1 if missing.
inline long smaps_kb(const std::string& block, const std::string& field) {
  std::istringstream s(block);
  std::string line;
  while (std::getline(s, line))
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  return -1;
}

// Whether the block's VmFlags line has the two-letter flag.
inline bool smaps_vmflag(const std::string& block, const std::string& flag) {
  std::istringstream s(block);
  std::string line;
  while (std::getline(s, line))
    if (line.rfind("VmFlags:", 0) == 0) {
      std::istringstream f(line.substr(8));
      std::string w;
      while (f >> w)
        if (w == flag) return true;
    }
  return false;
}

// ---- huge page reservations ---------------------------------------------------------

inline std::optional<long> read_long(const char* path) {
  std::ifstream f(path);
  long v = 0;
  if (!(f >> v)) return std::nullopt;
  return v;
}

inline bool write_long(const char* path, long v) {
  std::ofstream f(path);
  f << v << "\n";
  f.flush();
  return static_cast<bool>(f);
}

// Sets /proc/sys/vm/nr_hugepages (and nr_overcommit_hugepages to 0, so only
// the reservation counts) for the guard's life and restores both on every
// way out. Holds an flock so test processes run in parallel (ctest -j) do
// not change the reservation under each other. ok() false: could not (not
// root, or the kernel gave fewer pages than asked); why() says which.
class HugePagesGuard {
 public:
  static constexpr const char* kNr = "/proc/sys/vm/nr_hugepages";
  static constexpr const char* kOver = "/proc/sys/vm/nr_overcommit_hugepages";

  explicit HugePagesGuard(long want) {
    lock_fd_ = open("/tmp/pagepool-hugetlb-test.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (lock_fd_ >= 0) flock(lock_fd_, LOCK_EX);
    const auto nr = read_long(kNr);
    const auto over = read_long(kOver);
    if (!nr || !over) {
      why_ = "cannot read /proc/sys/vm/nr_hugepages";
      return;
    }
    prev_nr_ = *nr;
    prev_over_ = *over;
    if (geteuid() != 0) {
      why_ = "needs root to change /proc/sys/vm/nr_hugepages (it is " + std::to_string(*nr) + ")";
      return;
    }
    touched_ = true;
    if (*over != 0 && !write_long(kOver, 0)) {
      why_ = "cannot write " + std::string(kOver);
      return;
    }
    if (!write_long(kNr, want)) {
      why_ = "the kernel refused nr_hugepages = " + std::to_string(want);
      return;
    }
    const auto got = read_long(kNr);
    if (!got || *got < want) {
      why_ = "the kernel reserved " + std::to_string(got.value_or(-1)) + " of " +
             std::to_string(want) + " huge pages (memory too fragmented?)";
      return;
    }
    ok_ = true;
  }
  ~HugePagesGuard() {
    if (touched_) {
      write_long(kNr, prev_nr_);
      write_long(kOver, prev_over_);
    }
    if (lock_fd_ >= 0) close(lock_fd_);  // drops the flock
  }
  HugePagesGuard(const HugePagesGuard&) = delete;
  HugePagesGuard& operator=(const HugePagesGuard&) = delete;

  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  long previous() const { return prev_nr_; }

 private:
  int lock_fd_ = -1;
  bool touched_ = false;
  bool ok_ = false;
  long prev_nr_ = 0;
  long prev_over_ = 0;
  std::string why_;
};

}  // namespace ppprov
