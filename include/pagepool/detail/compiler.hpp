// Compiler helpers shared by the inline data plane. Internal.
#pragma once

#include <cstdint>

#define PP_LIKELY(x) __builtin_expect(!!(x), 1)
#define PP_UNLIKELY(x) __builtin_expect(!!(x), 0)

// Fast paths are inline and small; slow paths are out of line and cold so the
// fast path's instruction stream stays short (the kernel's
// __page_pool_alloc_netmems_slow is noinline for the same reason).
#define PP_FAST_PATH inline __attribute__((always_inline))
#define PP_SLOW_PATH __attribute__((noinline, cold))
#define PP_NORETURN [[noreturn]] __attribute__((noinline, cold))

namespace pagepool::detail {

inline constexpr std::size_t kCacheLine = 64;

// Identity of the calling thread: its thread pointer (%fs:0 on x86-64),
// read without a TLS lookup. Unique among live threads; a new thread may
// reuse the value of one that has exited (see Pool::bind_owner).
PP_FAST_PATH std::uintptr_t self() noexcept {
  return reinterpret_cast<std::uintptr_t>(__builtin_thread_pointer());
}

}  // namespace pagepool::detail
