// pagepool-bench "mapping" scenario (see mapping.hpp).
#include "mapping.hpp"

#include <liburing.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>
#include <system_error>

#include "pagepool/pagepool.hpp"
#include "pagepool/providers/uring.hpp"
#include "scenarios.hpp"

namespace ppb {

namespace {
constexpr std::size_t kPage = 4096;
// Fixed-buffer slots of the pool's provider: more than the pool ever maps
// (one cache refill of 64 in this loop), far below RLIMIT_MEMLOCK.
constexpr unsigned kPoolSlots = 256;

std::string errtext(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err) + " (errno " + std::to_string(err) + ")";
}
// The kernel refusing to pin (RLIMIT_MEMLOCK, no permission) is the
// machine's limit, not a failure of the benchmark.
bool pin_refused(int err) { return err == ENOMEM || err == EPERM; }

// Why the pool got no page: the pool drops its provider's map error (it
// releases the refused page and counts alloc.fail), so make the same
// registration once more on a page of the same provider and keep the
// kernel's answer. 0: the provider had no page to try, or the map now
// succeeds (nothing to learn; the caller reports a plain failure).
int probe_map_errno(pagepool::UringProvider& prov) {
  pagepool::Page* pg = nullptr;
  if (prov.alloc_bulk(&pg, 1) != 1) return 0;
  std::uint64_t dma = 0;
  const std::error_code ec = prov.map(pg, &dma);
  if (!ec) {
    pg->dma.store(dma, std::memory_order_relaxed);  // as the pool does: unmap reads the slot here
    prov.unmap(pg);
  }
  prov.release_bulk(&pg, 1);  // ref 0, no pool, unmapped: the provider's again
  return ec.value();
}
}  // namespace

const char* mapping_name(int m) {
  static const char* const n[kMappingMethods] = {"uring-pool", "uring-register", "mmap"};
  return m >= 0 && m < kMappingMethods ? n[m] : "?";
}

const char* mapping_what(int m) {
  switch (m) {
    case 0: return "kDmaMap Pool on UringProvider: alloc_page, tag, recycle_direct (page stays registered)";
    case 1: return "io_uring_register_buffers_update_tag of 1 iovec, tag, update with an empty iovec "
                   "(second ring, 1-slot sparse table; ops / 256)";
    case 2: return "mmap 1 anonymous page, tag (faults it in), munmap (ops / 256)";
  }
  return "?";
}

struct MappingBench::Rings {
  io_uring pool_ring{};   // the provider registers its own sparse table here
  io_uring reg_ring{};    // a 1-slot sparse table for register/unregister
  bool pool_ok = false, reg_ok = false;
  void* page = nullptr;   // the buffer uring-register registers
  ~Rings() {
    if (reg_ok) {
      io_uring_unregister_buffers(&reg_ring);
      io_uring_queue_exit(&reg_ring);
    }
    if (pool_ok) io_uring_queue_exit(&pool_ring);
    if (page) munmap(page, kPage);
  }
};

MappingBench::MappingBench() : rings_(std::make_unique<Rings>()) {
  Rings& r = *rings_;
  int e = io_uring_queue_init(8, &r.pool_ring, 0);
  if (e < 0) {
    skip_ = errtext("io_uring_queue_init", -e);
    return;
  }
  r.pool_ok = true;
  e = io_uring_queue_init(8, &r.reg_ring, 0);
  if (e < 0) {
    skip_ = errtext("io_uring_queue_init (second ring)", -e);
    return;
  }
  r.reg_ok = true;
  e = io_uring_register_buffers_sparse(&r.reg_ring, 1);
  if (e < 0) {
    skip_ = errtext("io_uring_register_buffers_sparse", -e);
    return;
  }
  void* p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    skip_ = errtext("mmap", errno);
    return;
  }
  std::memset(p, 0, kPage);  // faulted in once: method (b) measures the registration only
  r.page = p;
}

MappingBench::~MappingBench() = default;

Outcome MappingBench::run(int method, const RunCfg& c) {
  if (!skip_.empty()) return Outcome::not_applicable("skipped: " + skip_);
  Rings& r = *rings_;
  std::string err;
  int err_no = 0;
  Outcome o;
  std::uint64_t seq = 0;
  if (method == 0) {
    // Declared before the pool, so the pool lets go of its pages first.
    std::shared_ptr<pagepool::UringProvider> prov;
    pagepool::PoolPtr pool;
    try {
      pagepool::Params p;
      p.name = "pagepool-bench-mapping";
      p.pool_size = kPoolSlots;
      p.flags = pagepool::kDmaMap;
      prov = std::make_shared<pagepool::UringProvider>(0, &r.pool_ring, kPoolSlots);
      p.provider = prov;
      pool = pagepool::Pool::create(p);
    } catch (const std::system_error& e) {
      return Outcome::not_applicable(std::string("skipped: ") + e.what());
    } catch (const std::exception& e) {
      return Outcome::failed(e.what());
    }
    // The tag's place as a template argument, as in scenarios.hpp's
    // run_case: this loop is a few ns a buffer.
    const auto time_loop = [&]<std::uintptr_t kCol>() {
      return scen::warm_then_time(c, [&](std::uint64_t n) {
        for (std::uint64_t i = 0; i < n; ++i, ++seq) {
          pagepool::Page* pg = pool->alloc_page();
          if (!pg) [[unlikely]] {
            err = "alloc_page returned no page";
            return false;
          }
          std::byte* const d = tag_at(static_cast<std::byte*>(pagepool::page_address(pg)), kCol);
          tag_write(d, tag_of(seq));
          tag_check(d, tag_of(seq));
          pool->recycle_direct(pg);
        }
        return true;
      });
    };
    o = c.tag_colour ? time_loop.template operator()<kTagColours>() : time_loop.template operator()<0>();
    if (o.st == Outcome::fail && !err.empty()) {
      err_no = probe_map_errno(*prov);
      if (err_no)
        err = errtext("alloc_page returned no page: the provider's map "
                      "(io_uring_register_buffers_update_tag)",
                      err_no);
      else
        err += " (and a probe map of one of the provider's pages did not fail)";
    }
  } else if (method == 1) {
    std::byte* const d = tag_at(static_cast<std::byte*>(r.page), c.tag_colour ? kTagColours : 0);
    o = scen::warm_then_time(c, [&](std::uint64_t n) {
      for (std::uint64_t i = 0; i < n; ++i, ++seq) {
        iovec iov{r.page, kPage};
        int e = io_uring_register_buffers_update_tag(&r.reg_ring, 0, &iov, nullptr, 1);
        if (e != 1) [[unlikely]] {
          err_no = e < 0 ? -e : EIO;
          err = errtext("io_uring_register_buffers_update_tag (register)", err_no);
          return false;
        }
        tag_write(d, tag_of(seq));
        tag_check(d, tag_of(seq));
        iovec empty{nullptr, 0};
        e = io_uring_register_buffers_update_tag(&r.reg_ring, 0, &empty, nullptr, 1);
        if (e != 1) [[unlikely]] {
          err_no = e < 0 ? -e : EIO;
          err = errtext("io_uring_register_buffers_update_tag (unregister)", err_no);
          return false;
        }
      }
      return true;
    });
  } else if (method == 2) {
    o = scen::warm_then_time(c, [&](std::uint64_t n) {
      for (std::uint64_t i = 0; i < n; ++i, ++seq) {
        void* p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) [[unlikely]] {
          err = errtext("mmap", errno);
          return false;
        }
        std::byte* const d = tag_at(static_cast<std::byte*>(p), c.tag_colour ? kTagColours : 0);
        tag_write(d, tag_of(seq));
        tag_check(d, tag_of(seq));
        munmap(p, kPage);
      }
      return true;
    });
  } else {
    return Outcome::failed("unknown mapping method");
  }
  if (o.st == Outcome::fail && !err.empty())
    o = pin_refused(err_no) ? Outcome::not_applicable("skipped: " + err) : Outcome::failed(err);
  return o;
}

}  // namespace ppb
