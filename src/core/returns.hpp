// Batched remote returns: per-(thread, pool) slots. Internal.
//
// A page whose last put cannot go to the owner's cache is appended to the
// calling thread's slot for that pool: one relaxed store of its id and one
// release store of the slot's tail, both to cache lines only that thread
// writes. The batch is handed to the pool's return ring with one CAS when it
// holds kSlotCap pages, on flush_thread(), at thread exit, when the thread's
// periodic scan finds it older than kMaxPendingOps, or when the slot is
// evicted from the thread's table. The owner, starved, can claim a batch
// itself (steal). Claims of a range of entries are a CAS on `head`, so the
// returner's handover and the owner's steal never both take a page.
#pragma once

#include <atomic>
#include <cstdint>

#include "pagepool/pool.hpp"

namespace pagepool::detail {

// One NAPI budget per handover: the owner refills 64 at a time, so a full
// batch is exactly one refill.
inline constexpr std::uint32_t kSlotCap = 64;
// A thread keeps slots for up to 8 pools at once (a forwarder returning to
// the RX pools of a few devices); a ninth pool evicts one (handed over).
inline constexpr std::uint32_t kThreadSlots = 8;
// Every 64 of its own batched puts a thread scans its slots and hands over
// any batch whose first page has waited more than kMaxPendingOps puts.
inline constexpr std::uint64_t kScanEvery = 64;
inline constexpr std::uint64_t kMaxPendingOps = 256;

struct alignas(kCacheLine) ReturnSlot {
  // ---- written by the claiming thread only ----
  // Entries written up to here. Release-stored after the entry; pairs with
  // the acquire load of a stealer (owner or destroyer).
  std::atomic<std::uint32_t> tail{0};
  std::uint32_t head_seen = 0;   // claimer's last view of head (<= head)
  std::uint64_t first_op = 0;    // claimer's op count when the batch began
  std::atomic<std::uint32_t> entries[kSlotCap];  // page ids; relaxed

  // ---- written by whoever claims entries ----
  // Entries consumed up to here; moved only by a CAS from a value the
  // claimer read, so each entry is taken once (acq_rel: a taker sees the
  // entries written before the tail it read).
  alignas(kCacheLine) std::atomic<std::uint32_t> head{0};
  // The slot belongs to a thread. acquire on claim, release on unclaim:
  // head_seen / first_op pass from one claimer to the next.
  std::atomic<bool> claimed{false};
  ReturnSlot* next = nullptr;  // in the pool's list; immutable once pushed
};

// The calling thread's table of slots. POD in initial-exec TLS: a lookup is
// a %fs-relative load, no __tls_get_addr, and nothing runs at thread exit
// except the pthread key destructor that flushes it.
struct ThreadReturns {
  struct Entry {
    Pool* pool;
    ReturnSlot* slot;
  };
  Entry e[kThreadSlots];
  std::uint32_t n;     // entries in use
  std::uint32_t last;  // index of the last pool returned to
  std::uint64_t ops;   // batched puts by this thread
  bool key_set;        // thread-exit flush registered

  static void scan(ThreadReturns& t);
  static void drop(ThreadReturns& t, std::uint32_t i);
};

extern thread_local ThreadReturns t_returns __attribute__((tls_model("initial-exec")));

// Registers for membarrier(PRIVATE_EXPEDITED) once; false if unavailable
// (returners then fence after each batched put instead).
void returns_init() noexcept;
extern bool g_returner_fence;
// destroy()'s half of the Dekker pair with returners (see returns.cpp).
void returners_barrier() noexcept;

}  // namespace pagepool::detail
