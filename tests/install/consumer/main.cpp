// Consumer of the installed package: allocate, write, recycle, check.
#include <pagepool/pagepool.hpp>

#include <cstdio>
#include <cstring>

int main() {
  pagepool::Params params;
  params.name = "consumer";
  auto pool = pagepool::Pool::create(params);
  pagepool::Page* p = pool->alloc_page();
  if (!p) return 1;
  std::memset(pagepool::page_address(p), 0x5a, pagepool::page_size(p));
  if (pagepool::virt_to_page(pagepool::page_address(p)) != p) return 2;
  pagepool::put_page(p);
  if (pool->inflight() != 0) return 3;
  std::printf("consumer ok: hold=%llu\n", static_cast<unsigned long long>(pool->stats().hold));
  return 0;
}
