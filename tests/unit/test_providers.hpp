// Providers for the unit tests: a wrapper around AnonProvider that counts
// and records every call the pool makes, and can be told to fail.
//
// What it saw lives in a ProviderLog shared with the test, so a test can
// still read it after the pool (and with it the provider) is gone.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "pagepool/pagepool.hpp"

namespace pptest {

using pagepool::Page;

struct SyncCall {
  const Page* page;
  std::uint32_t offset;
  std::uint32_t len;
};

struct ProviderLog {
  std::atomic<std::uint64_t> alloc_calls{0};
  std::atomic<std::uint64_t> alloc_requested{0};  // sum of n over alloc_bulk calls
  std::atomic<std::uint64_t> alloc_pages{0};      // pages actually handed out
  std::atomic<std::uint64_t> release_calls{0};
  std::atomic<std::uint64_t> release_pages{0};
  std::atomic<std::uint64_t> map_calls{0};
  std::atomic<std::uint64_t> map_refused{0};
  std::atomic<std::uint64_t> unmap_calls{0};
  // unmap of a page that is not mapped (never mapped, or unmapped twice).
  std::atomic<std::uint64_t> bad_unmaps{0};
  // map of a page that is already mapped.
  std::atomic<std::uint64_t> double_maps{0};
  // A page given back to the provider while still referenced or in a pool.
  std::atomic<std::uint64_t> bad_releases{0};
  std::atomic<bool> destroyed{false};

  std::mutex mu;
  std::vector<SyncCall> syncs;                         // sync_for_device calls, in order
  std::unordered_map<const Page*, std::uint64_t> mapped;  // page -> dma address it got

  std::vector<SyncCall> take_syncs() {
    std::lock_guard lock(mu);
    std::vector<SyncCall> out;
    out.swap(syncs);
    return out;
  }
  std::size_t mapped_now() {
    std::lock_guard lock(mu);
    return mapped.size();
  }
  // The address map() stored for p; 0 if p is not mapped.
  std::uint64_t dma_of(const Page* p) {
    std::lock_guard lock(mu);
    auto it = mapped.find(p);
    return it == mapped.end() ? 0 : it->second;
  }
};

enum class MapFail { never, always, every_other };

struct CountingOptions {
  unsigned order = 0;
  bool needs_sync = false;
  // Pages the provider may have out at once (handed out by alloc_bulk and
  // not yet released); 0 = it has no memory at all.
  std::size_t page_budget = std::numeric_limits<std::size_t>::max();
  MapFail map_fail = MapFail::never;
};

// Device addresses handed out by CountingProvider::map: far from any
// virtual address, so a test can tell a mapped address from page_address().
inline constexpr std::uint64_t kFakeDmaBase = 0xD0A0'0000'0000'0000ull;

// Forwards pages to a private AnonProvider and records every call.
// alloc_bulk / release_bulk / unmap are safe from any thread.
class CountingProvider final : public pagepool::Provider {
 public:
  explicit CountingProvider(CountingOptions opt = {},
                            std::shared_ptr<ProviderLog> log = std::make_shared<ProviderLog>())
      : opt_(opt), log_(std::move(log)), inner_(opt.order), left_(opt.page_budget) {}
  ~CountingProvider() override { log_->destroyed.store(true); }

  const std::shared_ptr<ProviderLog>& log() const { return log_; }

  unsigned order() const noexcept override { return opt_.order; }
  const char* name() const noexcept override { return "counting"; }

  std::size_t alloc_bulk(Page** out, std::size_t n) noexcept override {
    log_->alloc_calls.fetch_add(1);
    log_->alloc_requested.fetch_add(n);
    // Take up to n from the remaining budget.
    std::size_t left = left_.load();
    std::size_t take;
    do {
      take = left < n ? left : n;
    } while (!left_.compare_exchange_weak(left, left - take));
    const std::size_t got = take ? inner_.alloc_bulk(out, take) : 0;
    if (got < take) left_.fetch_add(take - got);
    log_->alloc_pages.fetch_add(got);
    return got;
  }

  void release_bulk(Page* const* pages, std::size_t n) noexcept override {
    log_->release_calls.fetch_add(1);
    log_->release_pages.fetch_add(n);
    for (std::size_t i = 0; i < n; ++i)
      if (pages[i]->ref.load() != 0 || pages[i]->pool.load() != nullptr)
        log_->bad_releases.fetch_add(1);
    inner_.release_bulk(pages, n);
    if (opt_.page_budget != std::numeric_limits<std::size_t>::max()) left_.fetch_add(n);
  }

  std::error_code map(Page* p, std::uint64_t* dma) noexcept override {
    const std::uint64_t seq = log_->map_calls.fetch_add(1);
    const bool refuse = opt_.map_fail == MapFail::always ||
                        (opt_.map_fail == MapFail::every_other && seq % 2 == 1);
    if (refuse) {
      log_->map_refused.fetch_add(1);
      return std::make_error_code(std::errc::io_error);
    }
    *dma = kFakeDmaBase + (seq << 12);
    std::lock_guard lock(log_->mu);
    if (!log_->mapped.emplace(p, *dma).second) log_->double_maps.fetch_add(1);
    return {};
  }

  void unmap(Page* p) noexcept override {
    log_->unmap_calls.fetch_add(1);
    std::lock_guard lock(log_->mu);
    if (log_->mapped.erase(p) != 1) log_->bad_unmaps.fetch_add(1);
  }

  bool needs_sync() const noexcept override { return opt_.needs_sync; }
  void sync_for_device(Page* p, std::uint32_t offset, std::uint32_t len) noexcept override {
    std::lock_guard lock(log_->mu);
    log_->syncs.push_back({p, offset, len});
  }

 private:
  CountingOptions opt_;
  std::shared_ptr<ProviderLog> log_;
  pagepool::AnonProvider inner_;
  std::atomic<std::size_t> left_;
};

// A provider that never has a page (out of memory from the start).
class EmptyProvider final : public pagepool::Provider {
 public:
  explicit EmptyProvider(unsigned order = 0) : order_(order) {}
  unsigned order() const noexcept override { return order_; }
  const char* name() const noexcept override { return "empty"; }
  std::size_t alloc_bulk(Page**, std::size_t) noexcept override {
    calls.fetch_add(1);
    return 0;
  }
  void release_bulk(Page* const*, std::size_t) noexcept override { released.fetch_add(1); }
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> released{0};

 private:
  unsigned order_;
};

// A pool over a fresh CountingProvider. The pool holds the only strong
// reference to the provider; `provider` lets a test see when it is freed.
struct CountedPool {
  pagepool::PoolPtr pool;
  std::shared_ptr<ProviderLog> log;
  std::weak_ptr<CountingProvider> provider;
};

inline CountedPool make_counted_pool(pagepool::Params params, CountingOptions opt = {}) {
  opt.order = params.order;
  auto prov = std::make_shared<CountingProvider>(opt);
  CountedPool c;
  c.log = prov->log();
  c.provider = prov;
  params.provider = std::move(prov);
  c.pool = pagepool::Pool::create(params);
  return c;
}

}  // namespace pptest
