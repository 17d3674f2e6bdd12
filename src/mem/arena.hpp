// Metadata arena and virt_to_page radix. Internal to the library.
//
// Layer: src/mem may include only public headers; src/providers and
// src/core build on it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "pagepool/page.hpp"

namespace pagepool::detail {

// n zeroed, committed descriptors in one contiguous range, or nullptr
// (errno set) when the arena is exhausted or cannot be committed.
// Slow path: takes the arena mutex.
Page* meta_alloc(std::uint32_t n) noexcept;
// Gives a range back: its memory is zeroed, so a stale descriptor pointer
// reads ref == 0 and a put through it aborts as a double put.
void meta_free(Page* first, std::uint32_t n) noexcept;

// Publishes [base, base + bytes) (2 MiB-aligned) in the radix: any address
// inside resolves to first + (offset >> shift). False if a leaf could not be
// allocated.
bool radix_register(const std::byte* base, std::size_t bytes, Page* first, unsigned shift) noexcept;
void radix_unregister(const std::byte* base, std::size_t bytes) noexcept;

inline constexpr std::size_t kGranule = std::size_t{1} << kGranuleShift;

}  // namespace pagepool::detail
