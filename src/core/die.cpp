// Always-on contract checks end here: one line on stderr, then abort, like
// glibc's "double free detected". Never silent corruption.
#include <cstdio>
#include <cstdlib>

#include "pagepool/pool.hpp"

namespace pagepool::detail {

namespace {
const char* name_of(const Pool* pool) {
  if (!pool) return "(none)";
  const std::string& n = pool->params().name;
  return n.empty() ? "(unnamed)" : n.c_str();
}
}  // namespace

void die_bad_page(const void* p, const char* what) {
  std::fprintf(stderr, "pagepool: %s: %p is not a pool page descriptor\n", what, p);
  std::abort();
}

void die_double_put(const Page* p, const char* what) {
  std::fprintf(stderr, "pagepool: %s: double put detected (page %p holds no reference)\n", what,
               static_cast<const void*>(p));
  std::abort();
}

void die_not_owner(const Pool* pool, const char* what) {
  std::fprintf(stderr, "pagepool: %s on pool %s from a thread that is not its owner\n", what,
               name_of(pool));
  std::abort();
}

void die_wrong_pool(const Page* p, const Pool* expected, const char* what) {
  std::fprintf(stderr, "pagepool: %s: page %p belongs to pool %s, not to pool %s\n", what,
               static_cast<const void*>(p), name_of(p->pool.load(std::memory_order_relaxed)),
               name_of(expected));
  std::abort();
}

}  // namespace pagepool::detail
