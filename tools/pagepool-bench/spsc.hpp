// pagepool-bench: the single-producer single-consumer queue of S3/S5 (the
// RX CPU handing buffers to the TX-completion CPU).
//
// Lamport's ring with each side caching the other's index, so a push or pop
// reads the shared line of the other side only when its cached view says
// full or empty. The queue is the same for every allocator; its cost is part
// of every S3/S5 number alike.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace ppb {

template <class T>
class Spsc {
 public:
  explicit Spsc(std::uint32_t cap) : mask_(cap - 1), slots_(new T[cap]) {}  // cap: power of 2

  bool push(T v) {
    const std::uint64_t t = tail_.load(std::memory_order_relaxed);
    if (t - head_cache_ > mask_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (t - head_cache_ > mask_) return false;
    }
    slots_[t & mask_] = v;
    tail_.store(t + 1, std::memory_order_release);  // publishes the slot
    return true;
  }

  // Up to max entries into out; returns how many.
  std::size_t pop(T* out, std::size_t max) {
    const std::uint64_t h = head_.load(std::memory_order_relaxed);
    if (tail_cache_ == h) {
      tail_cache_ = tail_.load(std::memory_order_acquire);  // pairs with push
      if (tail_cache_ == h) return 0;
    }
    std::size_t n = tail_cache_ - h;
    if (n > max) n = max;
    for (std::size_t i = 0; i < n; ++i) out[i] = slots_[(h + i) & mask_];
    head_.store(h + n, std::memory_order_release);  // frees the slots for push
    return n;
  }

 private:
  const std::uint64_t mask_;
  std::unique_ptr<T[]> slots_;
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  std::uint64_t head_cache_ = 0;  // producer's view of head_
  alignas(64) std::atomic<std::uint64_t> head_{0};
  std::uint64_t tail_cache_ = 0;  // consumer's view of tail_
};

}  // namespace ppb
