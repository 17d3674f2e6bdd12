// pagepool-bench: the allocator adapters.
//
// Every adapter has the same shape, so the scenarios (scenarios.hpp) are
// templates over it and the hot loops make direct (mostly inlined) calls:
//
//   using Buf;                               a buffer handle (Page* or void*)
//   struct Local;  Local local();            per-thread state, made on the thread
//   void release(Local&);                    ...and given back before it ends
//   Buf  get(Local&);                        one 4 KiB buffer; nullptr if none
//   void put(Local&, Buf);                   any thread
//   void put_owner(Local&, Buf);             the getting thread, at once (S1)
//   static constexpr bool kBulk;             has a bulk API (S2b)
//   size_t get_bulk(Local&, Buf*, size_t);   void put_bulk(Local&, Buf*, size_t);
//   static std::byte* data(Buf);             the buffer's first byte
//   void bind_owner();                       the calling thread becomes the getter
//
// An adapter is made per case (sized by a Setup) and destroyed after it.
#pragma once

#include <malloc.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "common.hpp"
#include "mem/arena.hpp"  // kGranule
#include "pagepool/pagepool.hpp"
#include "providers/map_util.hpp"  // map_aligned

namespace ppb {

inline constexpr std::size_t kBuf = 4096;

// Return-ring capacity for a case: room for everything that can be out, at
// least the kernel drivers' usual 1024. Shared by pagepool and the locked-ring
// ablation so both have the same ring.
inline std::uint32_t ring_size_for(const Setup& s) {
  std::uint64_t n = 1024;
  while (n < s.inflight && n < pagepool::kMaxPoolSize) n <<= 1;
  return static_cast<std::uint32_t>(n);
}

// ---- pagepool ------------------------------------------------------------------
// The library as a driver uses it: alloc_page on the owner; S1 returns with
// recycle_direct, everything else with the pool-agnostic put_page (direct
// into the cache on the owner, into the return ring elsewhere).
// A template on the library's PAGEPOOL_STATS so the two builds of the
// library in one binary (nostats.cpp) get adapters of different names.
template <int kStats>
class PagePoolT {
 public:
  using Buf = pagepool::Page*;
  struct Local {};
  static constexpr bool kBulk = true;

  explicit PagePoolT(const Setup& s) {
    pagepool::Params p;
    p.name = "pagepool-bench";
    p.pool_size = ring_size_for(s);
    p.max_inflight = 0;  // no cap: S6 keeps up to 1 Mi pages out
    pool_ = pagepool::Pool::create(p);
  }
  Local local() { return {}; }
  void release(Local&) {}
  void bind_owner() { pool_->bind_owner(); }

  PPB_HOT Buf get(Local&) { return pool_->alloc_page(); }
  PPB_HOT void put(Local&, Buf p) { pagepool::put_page(p); }
  PPB_HOT void put_owner(Local&, Buf p) { pool_->recycle_direct(p); }
  PPB_HOT std::size_t get_bulk(Local&, Buf* out, std::size_t n) { return pool_->alloc_pages_bulk(out, n); }
  PPB_HOT void put_bulk(Local&, Buf* in, std::size_t n) { pool_->put_pages_bulk(in, n); }
  PPB_HOT static std::byte* data(Buf p) { return static_cast<std::byte*>(pagepool::page_address(p)); }

  pagepool::Pool& pool() { return *pool_; }

 private:
  pagepool::PoolPtr pool_;
};
using PagePool = PagePoolT<PAGEPOOL_STATS>;

// ---- peers with a plain pointer and no per-thread state -------------------------
template <class D>
struct PlainPeer {
  using Buf = void*;
  struct Local {};
  static constexpr bool kBulk = false;
  Local local() { return {}; }
  void release(Local&) {}
  void bind_owner() {}
  PPB_HOT void put_owner(Local& l, Buf b) { static_cast<D*>(this)->put(l, b); }
  PPB_HOT std::size_t get_bulk(Local&, Buf*, std::size_t) { return 0; }
  PPB_HOT void put_bulk(Local&, Buf*, std::size_t) {}
  PPB_HOT static std::byte* data(Buf b) { return static_cast<std::byte*>(b); }
};

// glibc malloc: page-aligned 4 KiB blocks, as an application wanting
// DMA-able buffers would ask for them.
struct Glibc : PlainPeer<Glibc> {
  explicit Glibc(const Setup&) {}
  PPB_HOT Buf get(Local&) { return std::aligned_alloc(kBuf, kBuf); }
  PPB_HOT void put(Local&, Buf b) { std::free(b); }
  static void trim() { malloc_trim(0); }
};

// The page allocator's userspace analogue: a fresh page from the kernel per
// buffer (mmap; faulted in by the tag write) and back (munmap).
struct Mmap : PlainPeer<Mmap> {
  explicit Mmap(const Setup&) {}
  PPB_HOT Buf get(Local&) {
    void* p = mmap(nullptr, kBuf, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
  PPB_HOT void put(Local&, Buf b) { munmap(b, kBuf); }
};

// The floor: the least an allocator can do. One region of buffers mapped
// up front (2 MiB aligned, transparent huge pages, as pagepool's default
// provider) and an array of free pointers used as a stack: a get is a load
// and a decrement, a put a store and an increment, no metadata and no
// checks; bulk calls copy the pointers. This is how the AF_XDP samples
// keep UMEM frames. It serves one thread only, so the cross-thread
// scenarios (S3, S5) do not apply. It is a reference, not a peer: what a
// scenario costs with it is the benchmark's own work on page-aligned
// buffers (the tag line, the loop, the memory the working set walks), and
// a page-aligned allocator's figure minus this one is what that allocator
// adds.
struct Stack : PlainPeer<Stack> {
  static constexpr bool kOneThread = true;
  explicit Stack(const Setup& s) : n_(s.inflight + kSlack), free_(n_), bytes_(n_ * kBuf) {
    void* m = pagepool::detail::map_aligned(bytes_, pagepool::detail::kGranule, PROT_READ | PROT_WRITE,
                                            MAP_PRIVATE);
    if (!m) throw std::bad_alloc();  // the driver reports the case as failed
    base_ = static_cast<std::byte*>(m);
    madvise(base_, bytes_, MADV_HUGEPAGE);  // a hint, as in pagepool's AnonProvider
    // Pushed from the top down, so pops leave in address order (as
    // pagepool's fresh pages do).
    for (std::size_t i = 0; i < n_; ++i) free_[i] = base_ + (n_ - 1 - i) * kBuf;
    top_ = n_;
  }
  ~Stack() { munmap(base_, bytes_); }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  PPB_HOT Buf get(Local&) { return top_ ? free_[--top_] : nullptr; }
  PPB_HOT void put(Local&, Buf b) { free_[top_++] = b; }  // at most n_ are ever out
  // Bulk: one copy of pointers each way (S2b).
  static constexpr bool kBulk = true;
  PPB_HOT std::size_t get_bulk(Local&, Buf* out, std::size_t n) {
    n = std::min(n, top_);
    top_ -= n;
    std::memcpy(out, free_.data() + top_, n * sizeof(Buf));
    return n;
  }
  PPB_HOT void put_bulk(Local&, Buf* in, std::size_t n) {
    std::memcpy(free_.data() + top_, in, n * sizeof(Buf));
    top_ += n;
  }

 private:
  static constexpr std::size_t kSlack = 1024;  // beyond the case's in-flight count
  const std::size_t n_;
  std::vector<void*> free_;
  const std::size_t bytes_;
  std::size_t top_ = 0;
  std::byte* base_ = nullptr;
};

// ---- dlopen'ed malloc replacements ------------------------------------------------
// jemalloc, mimalloc and tcmalloc each replace malloc when linked, so they
// cannot share a process that way. Each is dlopen'ed RTLD_LOCAL|RTLD_DEEPBIND
// (its malloc stays private to it) and called through its non-overriding
// entry points: one indirect call per get or put, the same for all three.
enum class Dl { jemalloc, mimalloc, tcmalloc };

struct DlFns {
  void* handle = nullptr;
  // jemalloc
  void* (*mallocx)(std::size_t, int) = nullptr;
  void (*dallocx)(void*, int) = nullptr;
  int (*mallctl)(const char*, void*, std::size_t*, void*, std::size_t) = nullptr;
  // mimalloc
  void* (*mi_malloc_aligned)(std::size_t, std::size_t) = nullptr;
  void (*mi_free)(void*) = nullptr;
  void (*mi_collect)(bool) = nullptr;
  // tcmalloc (gperftools)
  void* (*tc_memalign)(std::size_t, std::size_t) = nullptr;
  void (*tc_free)(void*) = nullptr;
  void (*tc_release)() = nullptr;  // MallocExtension_ReleaseFreeMemory
};

// Loads one of the three; nullptr with *why set if it cannot be. *detail:
// version, library and entry points.
std::shared_ptr<DlFns> load_dl(Dl kind, std::string* detail, std::string* why);
// Gives the library's free memory back to the OS (untimed, between cases).
void dl_trim(Dl kind, const DlFns& f);

// jemalloc's MALLOCX_ALIGN(4096): log2 of the alignment in the low bits.
inline constexpr int kJemallocAlign4K = 12;

template <Dl K>
struct DlPeer : PlainPeer<DlPeer<K>> {
  using Buf = void*;
  using Local = typename PlainPeer<DlPeer<K>>::Local;
  DlPeer(const Setup&, const DlFns& f) : f_(f) {}
  PPB_HOT Buf get(Local&) {
    if constexpr (K == Dl::jemalloc) return f_.mallocx(kBuf, kJemallocAlign4K);
    if constexpr (K == Dl::mimalloc) return f_.mi_malloc_aligned(kBuf, kBuf);
    if constexpr (K == Dl::tcmalloc) return f_.tc_memalign(kBuf, kBuf);
  }
  PPB_HOT void put(Local&, Buf b) {
    if constexpr (K == Dl::jemalloc) f_.dallocx(b, 0);
    if constexpr (K == Dl::mimalloc) f_.mi_free(b);
    if constexpr (K == Dl::tcmalloc) f_.tc_free(b);
  }
  const DlFns& f_;
};

}  // namespace ppb
