// The counting provider shared by the unit and provider suites: it wraps
// another provider (by default a private AnonProvider), records every call
// the pool makes and the state of every page it handed out, and can be told
// to fail: run out of memory, hand out fewer pages than asked, refuse
// mappings. The failure knobs can be set up front (CountingOptions) or
// changed while a pool uses the provider. Mappings are fake device
// addresses by default; with CountingOptions::inner_map they are the inner
// provider's (io_uring slots, UMEM offsets), checked the same way.
//
// What it saw lives in a ProviderLog shared with the test, so a test can
// still read it after the pool (and with it the provider) is gone.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pagepool/pagepool.hpp"

namespace pptest::common {

using pagepool::Page;

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

// Everything the provider saw.
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
  std::atomic<std::uint64_t> duplicate_dma{0};    // map gave an address another mapped page has
  std::atomic<std::uint64_t> bad_dma{0};          // map gave an address >= CountingOptions::dma_limit
  std::atomic<bool> destroyed{false};

  std::mutex mu;
  std::vector<SyncCall> syncs;  // sync_for_device calls, in order
  std::vector<int> set_nids;    // set_nid calls, in order
  // Threads that called alloc_bulk / map (the pool calls both only from
  // its owner, on the refill path).
  std::set<std::thread::id> alloc_threads, map_threads;
  std::unordered_map<const Page*, PageState> pages;
  std::unordered_map<const Page*, std::uint64_t> dma;  // address map() stored, while mapped
  std::unordered_map<std::uint64_t, std::uint32_t> dma_users;  // mapped pages per address

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

  // Under mu: p is mapped at `addr` from now on.
  void note_mapping(const Page* p, std::uint64_t addr) {
    if (dma_users[addr]++ != 0) duplicate_dma.fetch_add(1);
    dma[p] = addr;
  }
  // Under mu: p is no longer mapped (nothing if it was not).
  void forget_mapping(const Page* p) {
    auto it = dma.find(p);
    if (it == dma.end()) return;
    auto u = dma_users.find(it->second);
    if (u != dma_users.end() && --u->second == 0) dma_users.erase(u);
    dma.erase(it);
  }
};

enum class MapFail { never, always, every_other };

struct CountingOptions {
  unsigned order = 0;
  bool needs_sync = false;
  MapFail map_fail = MapFail::never;
  // Pages the provider may have out at once (handed out by alloc_bulk and
  // not yet released); unlimited by default, 0 = it has no memory at all.
  std::size_t page_budget = std::numeric_limits<std::size_t>::max();
  // Most pages one alloc_bulk call hands out; unlimited by default.
  std::size_t per_call_cap = std::numeric_limits<std::size_t>::max();
  // map, unmap and sync_for_device go to the inner provider, whose device
  // addresses the pool then gets (a provider that registers pages, as
  // io_uring or AF_XDP do). Off: map hands out fake addresses from
  // kFakeDmaBase and the inner provider never sees a mapping.
  bool inner_map = false;
  // Every address map gives must be below this (an io_uring table's slot
  // count); others are counted in ProviderLog::bad_dma.
  std::uint64_t dma_limit = std::numeric_limits<std::uint64_t>::max();
};

// Device addresses handed out by CountingProvider::map: far from any virtual
// address, so a test can tell a mapped address from page_address().
inline constexpr std::uint64_t kFakeDmaBase = 0xD0A0'0000'0000'0000ull;

// Forwards pages to an inner provider and records every call. alloc_bulk,
// release_bulk, map, unmap and sync are safe from any thread. The failure
// knobs may be changed while a pool uses the provider. A refused map (a
// failure knob, or the inner provider's error with inner_map) is counted
// in map_refused.
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
    std::error_code ec;
    if (m == MapFail::always || (m == MapFail::every_other && seq % 2 == 1))
      ec = std::make_error_code(std::errc::io_error);
    else if (opt_.inner_map)
      ec = inner_->map(p, dma);  // outside log_->mu: may be a syscall
    else
      *dma = kFakeDmaBase + (seq << 12);
    std::lock_guard lock(log_->mu);
    log_->map_threads.insert(std::this_thread::get_id());
    PageState& s = log_->pages[p];
    if (!s.out) log_->map_of_resting.fetch_add(1);
    if (s.mapped) log_->double_maps.fetch_add(1);
    if (ec) {
      log_->map_refused.fetch_add(1);
      s.refused = true;
      return ec;
    }
    if (*dma >= opt_.dma_limit) log_->bad_dma.fetch_add(1);
    log_->forget_mapping(p);  // a double map replaces the earlier address
    log_->note_mapping(p, *dma);
    s.mapped = true;
    s.refused = false;
    return {};
  }

  void unmap(Page* p) noexcept override {
    log_->unmap_calls.fetch_add(1);
    {
      std::lock_guard lock(log_->mu);
      PageState& s = log_->pages[p];
      if (!s.mapped) log_->bad_unmaps.fetch_add(1);
      s.mapped = false;
      log_->forget_mapping(p);
    }
    if (opt_.inner_map) inner_->unmap(p);
  }

  bool needs_sync() const noexcept override { return opt_.needs_sync; }
  void sync_for_device(Page* p, std::uint32_t offset, std::uint32_t len) noexcept override {
    {
      std::lock_guard lock(log_->mu);
      if (!log_->pages[p].mapped) log_->sync_unmapped.fetch_add(1);
      log_->syncs.push_back({p, offset, len});
    }
    if (opt_.inner_map) inner_->sync_for_device(p, offset, len);
  }

  int nid(const Page* p) const noexcept override { return inner_->nid(p); }

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

// A pool over a fresh CountingProvider (over `inner`, or a private
// AnonProvider). The pool holds the only strong reference to the provider;
// `provider` lets a test see when it is freed.
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
  c.pool = pagepool::Pool::create(params);
  return c;
}

}  // namespace pptest::common
