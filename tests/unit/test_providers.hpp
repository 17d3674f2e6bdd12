// Providers for the unit tests: the counting provider shared with the
// provider suite (common/counting_provider.hpp: counts and records every
// call the pool makes, and can be told to fail), and one that never has a
// page.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/counting_provider.hpp"
#include "pagepool/pagepool.hpp"

namespace pptest {

using namespace ::pptest::common;  // CountingProvider, ProviderLog, make_counted_pool

using pagepool::Page;

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

}  // namespace pptest
