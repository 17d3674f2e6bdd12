// pagepool: the Linux kernel's page_pool for userspace I/O.
//
// Umbrella header. Audiences:
//   types.hpp     constants, Params, Stats (vocabulary)
//   page.hpp      the page descriptor and pool-agnostic page functions
//   pool.hpp      the pool and its inline data plane
//   provider.hpp  the memory-provider interface (for provider authors)
#pragma once

#include "pagepool/config.hpp"
#include "pagepool/page.hpp"
#include "pagepool/pool.hpp"
#include "pagepool/provider.hpp"
#include "pagepool/types.hpp"
