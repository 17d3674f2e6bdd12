// pagepool: a bounded single-producer / single-consumer ring of descriptors,
// the queues between the sim device's "hardware" thread and its driver.
//
// Shape of an AF_XDP ring: free-running 32-bit producer and consumer
// indexes on their own cache lines, each side keeping a private copy of the
// other's index and re-reading the shared one only when the copy says the
// ring is full (producer) or empty (consumer).
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>
#include <memory>
#include <stdexcept>

namespace pagepool::fwd::detail {

template <class T>
class SpscRing {
 public:
  // size: a power of two >= 2.
  explicit SpscRing(std::uint32_t size) : mask_(size - 1), slots_(new T[size]) {
    if (size < 2 || (size & (size - 1)))
      throw std::invalid_argument("SpscRing: size must be a power of two >= 2");
  }

  // ---- producer -------------------------------------------------------------

  // Free slots (a lower bound; exact for the producer).
  std::uint32_t free_slots() noexcept {
    std::uint32_t free = mask_ + 1 - (prod_.tail - prod_.cached_head);
    if (free == 0) {
      // Acquire: pairs with the consumer's release-store of head, so its
      // reads of the slots we are about to overwrite are done.
      prod_.cached_head = head_.load(std::memory_order_acquire);
      free = mask_ + 1 - (prod_.tail - prod_.cached_head);
    }
    return free;
  }
  // In place: up to n free slots, returned as k; fill prod_slot(0..k) and
  // publish them with submit(k). Nothing is visible to the consumer before.
  // A producer that knows the room by other means (the sim's driver and
  // hardware: see the top of devices/sim.cpp) may skip reserve() and say
  // so with known_room(n), and then must also know that the consumer's
  // reads of those slots happen before its writes, which reserve()'s
  // acquire-load would otherwise provide.
  std::uint32_t reserve(std::uint32_t n) noexcept {
    std::uint32_t free = mask_ + 1 - (prod_.tail - prod_.cached_head);
    if (free < n) {
      prod_.cached_head = head_.load(std::memory_order_acquire);  // as in free_slots()
      free = mask_ + 1 - (prod_.tail - prod_.cached_head);
    }
    return n < free ? n : free;
  }
  // Instead of reserve(n): n slots are free, as the caller knows; debug
  // builds check it (reading both indexes, which the hot path never does).
  void known_room([[maybe_unused]] std::uint32_t n) const noexcept { assert(size_approx() + n <= capacity()); }
  T& prod_slot(std::uint32_t i) noexcept { return slots_[(prod_.tail + i) & mask_]; }
  void submit(std::uint32_t k) noexcept {
    prod_.tail += k;
    // Release: the slots written before are visible before the new tail;
    // pairs with the consumer's acquire-load in peek().
    if (k) tail_.store(prod_.tail, std::memory_order_release);
  }
  // Pushes v[0..k), k = min(n, free), and returns k.
  std::uint32_t push(const T* v, std::uint32_t n) noexcept {
    n = reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) prod_slot(i) = v[i];
    submit(n);
    return n;
  }

  // ---- consumer -------------------------------------------------------------

  // In place: up to n filled slots, returned as k; read cons_slot(0..k)
  // and give them back with release(k).
  std::uint32_t peek(std::uint32_t n) noexcept {
    std::uint32_t avail = cons_.cached_tail - cons_.head;
    if (avail < n) {
      // Acquire: pairs with the producer's release-store of tail.
      cons_.cached_tail = tail_.load(std::memory_order_acquire);
      avail = cons_.cached_tail - cons_.head;
    }
    return n < avail ? n : avail;
  }
  const T& cons_slot(std::uint32_t i) const noexcept { return slots_[(cons_.head + i) & mask_]; }
  void release(std::uint32_t k) noexcept {
    cons_.head += k;
    // Release: our reads of the slots happen before the producer may reuse
    // them; pairs with the producer's acquire-load of head.
    if (k) head_.store(cons_.head, std::memory_order_release);
  }
  // Pops up to n entries into out and returns how many.
  std::uint32_t pop(T* out, std::uint32_t n) noexcept {
    n = peek(n);
    for (std::uint32_t i = 0; i < n; ++i) out[i] = cons_slot(i);
    release(n);
    return n;
  }

  // Any thread: entries in the ring at some instant.
  std::uint32_t size_approx() const noexcept {
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }
  std::uint32_t capacity() const noexcept { return mask_ + 1; }

 private:
  // Shared indexes, one line each: the producer writes tail_, the consumer head_.
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  alignas(64) std::atomic<std::uint32_t> head_{0};
  // Side-private state, one line per side.
  alignas(64) struct {
    std::uint32_t tail = 0, cached_head = 0;
  } prod_;
  alignas(64) struct {
    std::uint32_t head = 0, cached_tail = 0;
  } cons_;
  alignas(64) const std::uint32_t mask_;
  std::unique_ptr<T[]> slots_;
};

}  // namespace pagepool::fwd::detail
