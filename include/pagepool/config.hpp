// pagepool build configuration.
//
// PAGEPOOL_STATS selects whether the per-pool counters exist. The library
// target exports the value it was built with as a compile definition, so a
// consumer always sees the same value as the library (the inline fast paths
// depend on it). Defining it by hand differently from the library is an ODR
// violation.
#pragma once

#ifndef PAGEPOOL_STATS
#define PAGEPOOL_STATS 1
#endif
