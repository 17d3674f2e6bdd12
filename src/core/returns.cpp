// Batched remote returns (see returns.hpp for the structure).
//
// Ordering summary:
//  - Page contents and entry ids: returner writes entry (relaxed), then
//    release-stores tail; a stealer acquire-loads tail before reading entries.
//  - Handover: the returner claims [head, tail) by CAS, links the pages and
//    pushes the chain onto the ring with a release CAS (see Pool::ring_push).
//    A returner with no slot (none free and no memory for one) pushes its
//    page alone through the same CAS (push_or_release, as put_pages_bulk).
//  - Teardown (Dekker): a returner release-stores tail, then loads closed_;
//    destroy() stores closed_, runs returners_barrier() (membarrier: every
//    running thread executes a full barrier), then steals every slot. Either
//    the destroyer sees the entry, or the returner sees closed_ and takes the
//    entry back itself. The returner pays only a compiler barrier.
#include "core/returns.hpp"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>
#include <new>

#include "pagepool/provider.hpp"

// TSan does not model fences (-Wtsan); the fences here order only atomics,
// so nothing TSan checks depends on them.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wtsan"
#endif

namespace pagepool {

namespace detail {

thread_local ThreadReturns t_returns __attribute__((tls_model("initial-exec")));
bool g_returner_fence = true;

namespace {
pthread_key_t g_exit_key;

// A later key destructor may put pages again (claiming a slot): re-arm the
// key so glibc runs another destructor round for them.
void thread_exit(void*) {
  flush_thread();
  t_returns.key_set = false;
}

long membarrier(int cmd) { return syscall(SYS_membarrier, cmd, 0, 0); }
}  // namespace

void returns_init() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    pthread_key_create(&g_exit_key, thread_exit);
    g_returner_fence = membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0;
  });
}

void returners_barrier() noexcept {
  if (g_returner_fence || membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

// Unclaims entry i (handing its batch over) and removes it from the table.
void ThreadReturns::drop(ThreadReturns& t, std::uint32_t i) {
  Entry e = t.e[i];
  t.e[i] = t.e[--t.n];
  t.e[t.n] = {};
  if (t.last >= t.n) t.last = 0;
  e.pool->unclaim_slot(e.slot);
}

// Periodic: hand over batches that waited too long; let go of closed pools.
void ThreadReturns::scan(ThreadReturns& t) {
  for (std::uint32_t i = 0; i < t.n;) {
    Pool* pool = t.e[i].pool;
    ReturnSlot* s = t.e[i].slot;
    if (pool->closed_.load(std::memory_order_relaxed)) {
      drop(t, i);  // re-examine index i: drop moved the last entry there
      continue;
    }
    const std::uint32_t tail = s->tail.load(std::memory_order_relaxed);
    if (tail != s->head_seen && t.ops - s->first_op >= kMaxPendingOps) pool->handover(s);
    ++i;
  }
}

}  // namespace detail

using detail::ReturnSlot;
using detail::ThreadReturns;
using detail::id_page;
using detail::page_id;

// Returner: append to this thread's batch for this pool. The common case:
// the pool is the one this thread returned to last and its batch has room.
// It calls nothing except in tail position, so it saves no registers.
void Pool::put_remote(Page* p) {
  ThreadReturns& t = detail::t_returns;
  if (PP_UNLIKELY(t.n == 0 || t.e[t.last].pool != this)) return put_remote_slow(p);
  ReturnSlot* s = t.e[t.last].slot;
  const std::uint32_t tail = s->tail.load(std::memory_order_relaxed);
  if (PP_UNLIKELY(tail - s->head_seen == detail::kSlotCap)) return put_remote_slow(p);
  if (tail == s->head_seen) s->first_op = t.ops;
  s->entries[tail % detail::kSlotCap].store(page_id(p), std::memory_order_relaxed);
  // release: the entry and the page's contents happen before a stealer's
  // acquire load of tail.
  s->tail.store(tail + 1, std::memory_order_release);
  // Dekker with destroy(): tail store, then the closed_ load. A compiler
  // barrier suffices when destroy() uses membarrier; otherwise a full fence.
  if (PP_UNLIKELY(detail::g_returner_fence))
    std::atomic_thread_fence(std::memory_order_seq_cst);
  else
    std::atomic_signal_fence(std::memory_order_seq_cst);
  if (PP_UNLIKELY(closed_.load(std::memory_order_relaxed) || ++t.ops % detail::kScanEvery == 0))
    return put_remote_tail();
}

// Returner: make put_remote's common case hold (this pool the thread's
// last, claiming a slot if it has none; room in the batch, handing a full
// one over), then append through it.
void Pool::put_remote_slow(Page* p) {
  ThreadReturns& t = detail::t_returns;
  ReturnSlot* s = t.n != 0 && t.e[t.last].pool == this ? t.e[t.last].slot : claim_slot();
  if (PP_UNLIKELY(!s)) {
    // No slot and no memory for one. The put has happened (the page's ref
    // is 0 and the caller let go of it), so failing now would lose the
    // page: hand it over alone, as put_pages_bulk hands over a chain. The
    // ring's release CAS publishes it like a batch's handover; a full ring
    // releases it (ring_full), a closed one too (released_refcnt).
    push_or_release(p, p, 1);
    return;
  }
  if (s->tail.load(std::memory_order_relaxed) - s->head_seen == detail::kSlotCap) handover(s);
  put_remote(p);  // claim_slot made this pool t.last; handover left head_seen == tail
}

// After an append that found the pool closing (give back what is ours now)
// or that is due for the periodic scan.
void Pool::put_remote_tail() {
  ThreadReturns& t = detail::t_returns;
  if (closed_.load(std::memory_order_relaxed)) {
    for (std::uint32_t i = 0; i < t.n; ++i)
      if (t.e[i].pool == this) {
        ThreadReturns::drop(t, i);
        break;
      }
    return;
  }
  ThreadReturns::scan(t);
}

// Finds or claims this thread's slot for the pool, evicting one if the
// table is full. nullptr if a new slot was needed and could not be
// allocated: the table then has no entry for this pool and no reference
// was taken.
ReturnSlot* Pool::claim_slot() {
  ThreadReturns& t = detail::t_returns;
  for (std::uint32_t i = 0; i < t.n; ++i)
    if (t.e[i].pool == this) {
      t.last = i;
      return t.e[i].slot;
    }
  if (!t.key_set) {
    detail::returns_init();
    // Any non-null value: the destructor only needs to run.
    pthread_setspecific(detail::g_exit_key, &t);
    t.key_set = true;
  }
  if (t.n == detail::kThreadSlots) ThreadReturns::drop(t, static_cast<std::uint32_t>(t.ops % t.n));
  ReturnSlot* s = nullptr;
  for (ReturnSlot* c = slots_.load(std::memory_order_acquire); c; c = c->next) {
    bool expect = false;
    if (!c->claimed.load(std::memory_order_relaxed) &&
        c->claimed.compare_exchange_strong(expect, true, std::memory_order_acquire)) {
      s = c;
      break;
    }
  }
  if (!s) {
    // Not a throwing new: the caller's put has already happened (ref 0),
    // so an exception would lose the page. put_remote_slow hands it over
    // without a slot instead.
    s = new (std::nothrow) ReturnSlot;
    if (PP_UNLIKELY(!s)) return nullptr;
    s->claimed.store(true, std::memory_order_relaxed);
    ReturnSlot* head = slots_.load(std::memory_order_relaxed);
    do {
      s->next = head;
      // release: the slot's initialisation before any list walker sees it.
    } while (!slots_.compare_exchange_weak(head, s, std::memory_order_release,
                                           std::memory_order_relaxed));
  }
  s->head_seen = s->head.load(std::memory_order_acquire);
  refs_.fetch_add(1, std::memory_order_relaxed);  // we already hold one (a page)
  t.e[t.n] = {this, s};
  t.last = t.n++;
  return s;
}

// Returner: claim every entry of its batch still there and push them onto
// the ring as one chain (one CAS), or release them if it is full or closed.
void Pool::handover(ReturnSlot* s) {
  const std::uint32_t tail = s->tail.load(std::memory_order_relaxed);
  std::uint32_t h = s->head.load(std::memory_order_acquire);
  while (h != tail &&
         !s->head.compare_exchange_weak(h, tail, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
  }
  s->head_seen = tail;
  if (h == tail) return;  // the owner took them all
  const std::uint32_t n = tail - h;
  Page* first = id_page(s->entries[h % detail::kSlotCap].load(std::memory_order_relaxed));
  Page* prev = first;
  for (std::uint32_t i = h + 1; i != tail; ++i) {
    const std::uint32_t id = s->entries[i % detail::kSlotCap].load(std::memory_order_relaxed);
    prev->next.store(id, std::memory_order_relaxed);
    prev = id_page(id);
  }
  push_or_release(first, prev, n);
}

// The slot's thread lets go of it: hand over, then the slot is free for
// another thread; drop the reference the claim took (may delete the pool).
void Pool::unclaim_slot(ReturnSlot* s) {
  handover(s);
  // release: head_seen / first_op written before the next claimer's acquire.
  s->claimed.store(false, std::memory_order_release);
  unref();
}

// Owner (or destroyer): claim pages waiting in returners' batches, up to
// `want`, into the cache. Returns how many.
std::uint32_t Pool::steal_pending(std::uint32_t want, bool count) {
  std::uint32_t n = cache_count();
  const std::uint32_t start = n;
  std::uint32_t ids[detail::kSlotCap];
  for (ReturnSlot* s = slots_.load(std::memory_order_acquire); s && n - start < want; s = s->next) {
    std::uint32_t h = s->head.load(std::memory_order_acquire);
    // acquire: pairs with the returner's release store of tail.
    const std::uint32_t t = s->tail.load(std::memory_order_acquire);
    if (h == t || t - h > detail::kSlotCap || n + (t - h) > kCacheSize) continue;
    // Read before claiming: the returner cannot overwrite entries [h, t)
    // until head has moved past h, and if it has, the CAS below fails.
    for (std::uint32_t i = h; i != t; ++i)
      ids[i - h] = s->entries[i % detail::kSlotCap].load(std::memory_order_relaxed);
    if (!s->head.compare_exchange_strong(h, t, std::memory_order_acq_rel,
                                         std::memory_order_relaxed))
      continue;
    for (std::uint32_t i = 0; i != t - h; ++i) cache_[n++] = id_page(ids[i]);
  }
  set_cache_count(n);
  PP_STAT_ADD(moved_, n - start);
  if (count) {
    PP_STAT_ADD(steal_, n - start);
    PP_STAT_ADD(ring_collected_, n - start);
  }
  return n - start;
}

std::uint64_t Pool::count_pending() const noexcept {
  std::uint64_t n = 0;
  for (ReturnSlot* s = slots_.load(std::memory_order_acquire); s; s = s->next) {
    const std::uint32_t h = s->head.load(std::memory_order_relaxed);
    const std::uint32_t t = s->tail.load(std::memory_order_acquire);
    if (t - h <= detail::kSlotCap) n += t - h;
  }
  return n;
}

void Pool::unref() noexcept {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  for (ReturnSlot* s = slots_.load(std::memory_order_acquire); s;) {
    ReturnSlot* next = s->next;
    delete s;
    s = next;
  }
  delete this;
}

void flush_thread() noexcept {
  ThreadReturns& t = detail::t_returns;
  while (t.n) ThreadReturns::drop(t, t.n - 1);
}

}  // namespace pagepool
