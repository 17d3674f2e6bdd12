// Helpers for the provider tests (provider_test, fault_test, numa_test):
//
//  - CountingProvider: wraps another provider (by default a private
//    AnonProvider), records every call the pool makes and the state of every
//    page it handed out, and can be told at run time to fail: run out of
//    memory, hand out fewer pages than asked, refuse mappings.
//  - FakeNodeProvider: a ChunkProvider whose chunks claim to be on a NUMA
//    node the test chooses, so the NUMA logic can be tested on one node.
//  - counter deltas, the pool's accounting invariant, page data helpers,
//    a thread that stays alive with its pending returns, smaps readers, and
//    a guard that reserves huge pages and restores the previous value.
//
// Adapted from tests/unit/test_providers.hpp and tests/unit/test_util.hpp.
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
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/pool_test_util.hpp"
#include "common/threads.hpp"
#include "pagepool/pagepool.hpp"

namespace ppprov {

using namespace ::pptest::common;  // StatsWatch, EXPECT_MOVED, page helpers

using pagepool::Page;
using pagepool::Pool;

// ---- the counting provider ------------------------------------------------------

struct SyncCall {
  const Page* page;
  std::uint32_t offset;
  std::uint32_t len;
};

// What the provider knows about one page it handed out.
struct PageState {
  bool out = false;      // handed out by alloc_bulk, not released since
  bool mapped = false;   // map succeeded, not unmapped since
  bool refused = false;  // the last map of this page was refused
};

// Everything the provider saw. Shared with the test so it can still be read
// after the pool (and with it the provider) is gone.
struct ProviderLog {
  std::atomic<std::uint64_t> alloc_calls{0};
  std::atomic<std::uint64_t> alloc_requested{0};  // sum of n over alloc_bulk calls
  std::atomic<std::uint64_t> alloc_pages{0};      // pages actually handed out
  std::atomic<std::uint64_t> alloc_short{0};      // calls that returned fewer than asked
  std::atomic<std::uint64_t> release_calls{0};
  std::atomic<std::uint64_t> release_pages{0};
  std::atomic<std::uint64_t> map_calls{0};
  std::atomic<std::uint64_t> map_refused{0};
  std::atomic<std::uint64_t> unmap_calls{0};
  std::atomic<std::uint64_t> refused_released{0};  // refused pages given back
  // Contract violations; every test expects these to stay 0.
  std::atomic<std::uint64_t> bad_unmaps{0};    // unmap of a page not mapped
  std::atomic<std::uint64_t> double_maps{0};   // map of a page already mapped
  std::atomic<std::uint64_t> bad_releases{0};  // released while referenced, in a pool or mapped
  std::atomic<std::uint64_t> double_releases{0};  // released while not out
  std::atomic<std::uint64_t> map_of_resting{0};   // map of a page not out of the provider
  std::atomic<std::uint64_t> double_allocs{0};    // handed out while already out
  std::atomic<std::uint64_t> sync_unmapped{0};    // sync_for_device of a page not mapped
  std::atomic<bool> destroyed{false};

  std::mutex mu;
  std::vector<SyncCall> syncs;  // sync_for_device calls, in order
  std::vector<int> set_nids;    // set_nid calls, in order
  // Threads that called alloc_bulk / map (the pool calls both only from
  // its owner, on the refill path).
  std::set<std::thread::id> alloc_threads, map_threads;
  std::unordered_map<const Page*, PageState> pages;
  std::unordered_map<const Page*, std::uint64_t> dma;  // address map() stored, while mapped

  std::vector<SyncCall> take_syncs() {
    std::lock_guard lock(mu);
    std::vector<SyncCall> out;
    out.swap(syncs);
    return out;
  }
  std::size_t mapped_now() {
    std::lock_guard lock(mu);
    return dma.size();
  }
  std::size_t out_now() {
    std::lock_guard lock(mu);
    std::size_t n = 0;
    for (const auto& [p, s] : pages) n += s.out;
    return n;
  }
  // The address map() stored for p; nullopt if p is not mapped.
  std::optional<std::uint64_t> dma_of(const Page* p) {
    std::lock_guard lock(mu);
    auto it = dma.find(p);
    if (it == dma.end()) return std::nullopt;
    return it->second;
  }
  PageState state_of(const Page* p) {
    std::lock_guard lock(mu);
    auto it = pages.find(p);
    return it == pages.end() ? PageState{} : it->second;
  }
  std::vector<int> take_set_nids() {
    std::lock_guard lock(mu);
    std::vector<int> out;
    out.swap(set_nids);
    return out;
  }
};

enum class MapFail { never, always, every_other };

struct CountingOptions {
  unsigned order = 0;
  bool needs_sync = false;
  MapFail map_fail = MapFail::never;
  // Pages the provider may have out at once; unlimited by default.
  std::size_t page_budget = std::numeric_limits<std::size_t>::max();
  // Most pages one alloc_bulk call hands out; unlimited by default.
  std::size_t per_call_cap = std::numeric_limits<std::size_t>::max();
};

// Device addresses handed out by CountingProvider::map: far from any virtual
// address, so a test can tell a mapped address from page_address().
inline constexpr std::uint64_t kFakeDmaBase = 0xD0A0'0000'0000'0000ull;

// Forwards pages to an inner provider and records every call. alloc_bulk,
// release_bulk, map, unmap and sync are safe from any thread. The failure
// knobs may be changed while a pool uses the provider.
class CountingProvider final : public pagepool::Provider {
 public:
  explicit CountingProvider(CountingOptions opt = {},
                            std::shared_ptr<pagepool::Provider> inner = nullptr,
                            std::shared_ptr<ProviderLog> log = std::make_shared<ProviderLog>())
      : opt_(opt),
        log_(std::move(log)),
        inner_(inner ? std::move(inner) : std::make_shared<pagepool::AnonProvider>(opt.order)),
        budget_(opt.page_budget),
        cap_(opt.per_call_cap),
        map_fail_(opt.map_fail) {}
  ~CountingProvider() override { log_->destroyed.store(true); }

  const std::shared_ptr<ProviderLog>& log() const { return log_; }
  pagepool::Provider& inner() const { return *inner_; }

  // ---- failure knobs ----
  // alloc_bulk hands out nothing while set (out of memory).
  void set_oom(bool v) { oom_.store(v); }
  // Pages that may be out at once from now on (counting those out now).
  void set_budget(std::size_t pages) { budget_.store(pages); }
  void set_per_call_cap(std::size_t n) { cap_.store(n); }
  void set_map_fail(MapFail m) { map_fail_.store(m); }

  unsigned order() const noexcept override { return inner_->order(); }
  const char* name() const noexcept override { return "counting"; }

  std::size_t alloc_bulk(Page** out, std::size_t n) noexcept override {
    log_->alloc_calls.fetch_add(1);
    log_->alloc_requested.fetch_add(n);
    std::size_t want = oom_.load() ? 0 : std::min(n, cap_.load());
    {
      std::lock_guard lock(budget_mu_);
      const std::size_t b = budget_.load();
      const std::size_t left = b > out_ ? b - out_ : 0;
      want = std::min(want, left);
      out_ += want;  // reserved; corrected below
    }
    const std::size_t got = want ? inner_->alloc_bulk(out, want) : 0;
    {
      std::lock_guard lock(budget_mu_);
      out_ -= want - got;
    }
    if (got < n) log_->alloc_short.fetch_add(1);
    log_->alloc_pages.fetch_add(got);
    std::lock_guard lock(log_->mu);
    log_->alloc_threads.insert(std::this_thread::get_id());
    for (std::size_t i = 0; i < got; ++i) {
      PageState& s = log_->pages[out[i]];
      if (s.out) log_->double_allocs.fetch_add(1);
      s = PageState{};
      s.out = true;
    }
    return got;
  }

  void release_bulk(Page* const* pages, std::size_t n) noexcept override {
    log_->release_calls.fetch_add(1);
    log_->release_pages.fetch_add(n);
    {
      std::lock_guard lock(log_->mu);
      for (std::size_t i = 0; i < n; ++i) {
        const Page* p = pages[i];
        if (p->ref.load() != 0 || p->pool.load() != nullptr) log_->bad_releases.fetch_add(1);
        PageState& s = log_->pages[p];
        if (!s.out) log_->double_releases.fetch_add(1);
        if (s.mapped) log_->bad_releases.fetch_add(1);
        if (s.refused) log_->refused_released.fetch_add(1);
        s.out = false;
      }
    }
    inner_->release_bulk(pages, n);
    std::lock_guard lock(budget_mu_);
    out_ -= n;
  }

  std::error_code map(Page* p, std::uint64_t* dma) noexcept override {
    const std::uint64_t seq = log_->map_calls.fetch_add(1);
    const MapFail m = map_fail_.load();
    const bool refuse = m == MapFail::always || (m == MapFail::every_other && seq % 2 == 1);
    std::lock_guard lock(log_->mu);
    log_->map_threads.insert(std::this_thread::get_id());
    PageState& s = log_->pages[p];
    if (!s.out) log_->map_of_resting.fetch_add(1);
    if (s.mapped) log_->double_maps.fetch_add(1);
    if (refuse) {
      log_->map_refused.fetch_add(1);
      s.refused = true;
      return std::make_error_code(std::errc::io_error);
    }
    *dma = kFakeDmaBase + (seq << 12);
    s.mapped = true;
    s.refused = false;
    log_->dma[p] = *dma;
    return {};
  }

  void unmap(Page* p) noexcept override {
    log_->unmap_calls.fetch_add(1);
    std::lock_guard lock(log_->mu);
    PageState& s = log_->pages[p];
    if (!s.mapped) log_->bad_unmaps.fetch_add(1);
    s.mapped = false;
    log_->dma.erase(p);
  }

  bool needs_sync() const noexcept override { return opt_.needs_sync; }
  void sync_for_device(Page* p, std::uint32_t offset, std::uint32_t len) noexcept override {
    std::lock_guard lock(log_->mu);
    if (!log_->pages[p].mapped) log_->sync_unmapped.fetch_add(1);
    log_->syncs.push_back({p, offset, len});
  }

  void set_nid(int nid) noexcept override {
    {
      std::lock_guard lock(log_->mu);
      log_->set_nids.push_back(nid);
    }
    inner_->set_nid(nid);
  }

 private:
  CountingOptions opt_;
  std::shared_ptr<ProviderLog> log_;
  std::shared_ptr<pagepool::Provider> inner_;
  std::mutex budget_mu_;
  std::size_t out_ = 0;  // pages out now (under budget_mu_)
  std::atomic<std::size_t> budget_;
  std::atomic<std::size_t> cap_;
  std::atomic<MapFail> map_fail_;
  std::atomic<bool> oom_{false};
};

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

// A pool over a fresh CountingProvider. The pool holds the only strong
// reference to the provider; `provider` lets a test see when it is freed.
struct CountedPool {
  pagepool::PoolPtr pool;
  std::shared_ptr<ProviderLog> log;
  std::weak_ptr<CountingProvider> provider;
  CountingProvider* prov = nullptr;  // valid while the pool holds it
};

inline CountedPool make_counted_pool(pagepool::Params params, CountingOptions opt = {},
                                     std::shared_ptr<pagepool::Provider> inner = nullptr) {
  opt.order = params.order;
  auto prov = std::make_shared<CountingProvider>(opt, std::move(inner));
  CountedPool c;
  c.log = prov->log();
  c.provider = prov;
  c.prov = prov.get();
  params.provider = std::move(prov);
  c.pool = Pool::create(params);
  return c;
}

// Every page the provider handed out came back, each exactly once, unmapped,
// and nothing broke the contract on the way. For after teardown.
inline void expect_all_returned(ProviderLog& log) {
  EXPECT_EQ(log.release_pages.load(), log.alloc_pages.load()) << "pages handed out vs released";
  EXPECT_EQ(log.out_now(), 0u) << "pages still out of the provider";
  EXPECT_EQ(log.unmap_calls.load(), log.map_calls.load() - log.map_refused.load())
      << "every successful map unmapped once";
  EXPECT_EQ(log.mapped_now(), 0u);
  EXPECT_EQ(log.bad_unmaps.load(), 0u);
  EXPECT_EQ(log.double_maps.load(), 0u);
  EXPECT_EQ(log.bad_releases.load(), 0u);
  EXPECT_EQ(log.double_releases.load(), 0u);
  EXPECT_EQ(log.map_of_resting.load(), 0u);
  EXPECT_EQ(log.double_allocs.load(), 0u);
  EXPECT_EQ(log.sync_unmapped.load(), 0u);
}

#define EXPECT_ALL_RETURNED(log)         \
  do {                                   \
    SCOPED_TRACE("provider balance");    \
    ::ppprov::expect_all_returned(*(log)); \
  } while (0)

// While the pool lives: pages mapped now == pages the pool holds (kDmaMap),
// and no contract violation so far.
inline void expect_mapping_balanced(const Pool& pool, ProviderLog& log) {
  if (pool.params().flags & pagepool::kDmaMap) {
    EXPECT_EQ(log.mapped_now(), pool.levels().held);
  }
  EXPECT_EQ(log.out_now(), pool.levels().held);
  EXPECT_EQ(log.bad_unmaps.load(), 0u);
  EXPECT_EQ(log.double_maps.load(), 0u);
  EXPECT_EQ(log.bad_releases.load(), 0u);
  EXPECT_EQ(log.double_releases.load(), 0u);
}

// ---- counters ---------------------------------------------------------------------

// The accounting invariant, for a quiescent pool on its owner thread:
// Pool::check() finds nothing broken, the levels add up to the pages held,
// and hold - release equals them too. `inflight`: pages the test holds, if
// it knows.
inline pagepool::Levels expect_consistent(const Pool& pool,
                                          std::optional<std::uint64_t> inflight = std::nullopt) {
  pagepool::Levels l{};
  try {
    l = pool.check();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "check() threw: " << e.what();
    return pool.levels();
  }
  EXPECT_EQ(l.cache + l.ring + l.pending + l.carving_idle + l.inflight, l.held);
  EXPECT_LE(l.cache + l.ring + l.pending + l.carving_idle, l.held);
  const pagepool::Stats s = pool.stats();
  EXPECT_EQ(s.hold - s.release, l.held);
  if (inflight) {
    EXPECT_EQ(l.inflight, *inflight) << "pages out of the pool";
  }
  return l;
}

#define EXPECT_CONSISTENT(pool, ...)                   \
  do {                                                 \
    SCOPED_TRACE("pool invariants");                   \
    ::ppprov::expect_consistent(*(pool) __VA_OPT__(, ) __VA_ARGS__); \
  } while (0)

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
