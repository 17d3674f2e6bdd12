// pagepool-bench: loading jemalloc, mimalloc and tcmalloc side by side.
//
// Each is dlopen'ed RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND: LOCAL keeps its
// malloc/free out of the global scope (the process keeps glibc's), DEEPBIND
// makes the library's own calls to malloc resolve to itself. We call only
// entry points that do not exist in glibc (mallocx, mi_malloc_aligned,
// tc_memalign, ...), so there is no ambiguity about whose allocator runs.
//
// jemalloc's libjemalloc.so.2 uses initial-exec TLS (2.6 KiB), more than the
// static TLS glibc keeps spare for dlopen (512 bytes): main() re-executes the
// tool once with GLIBC_TUNABLES=glibc.rtld.optional_static_tls raised.
#include <dlfcn.h>

#include <string>

#include "adapters.hpp"

namespace ppb {

namespace {
template <class F>
bool sym(void* h, const char* name, F* out, std::string* why) {
  *out = reinterpret_cast<F>(dlsym(h, name));
  if (!*out) *why = std::string("no symbol ") + name;
  return *out != nullptr;
}
}  // namespace

std::shared_ptr<DlFns> load_dl(Dl kind, std::string* detail, std::string* why) {
  const char* lib = kind == Dl::jemalloc   ? "libjemalloc.so.2"
                    : kind == Dl::mimalloc ? "libmimalloc.so.2"
                                           : "libtcmalloc_minimal.so.4";
  const char* pkg = kind == Dl::jemalloc   ? "libjemalloc-dev"
                    : kind == Dl::mimalloc ? "libmimalloc-dev"
                                           : "libgoogle-perftools-dev";
  void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (!h) {
    const char* e = dlerror();
    *why = std::string(e ? e : lib) + " (package " + pkg + ", scripts/deps.sh)";
    return nullptr;
  }
  auto f = std::make_shared<DlFns>();
  f->handle = h;  // never closed: a malloc's threads and TLS outlive any case
  bool ok = false;
  std::string version;
  switch (kind) {
    case Dl::jemalloc: {
      ok = sym(h, "mallocx", &f->mallocx, why) && sym(h, "dallocx", &f->dallocx, why) &&
           sym(h, "mallctl", &f->mallctl, why);
      const char* v = nullptr;
      std::size_t sz = sizeof v;
      if (ok && f->mallctl("version", &v, &sz, nullptr, 0) == 0 && v) version = v;
      if (auto n = version.find('-'); n != std::string::npos) version.resize(n);
      *detail = "jemalloc " + version + ", dlopen " + lib + ", mallocx(4096, MALLOCX_ALIGN(4096))/dallocx";
      break;
    }
    case Dl::mimalloc: {
      int (*ver)() = nullptr;
      ok = sym(h, "mi_malloc_aligned", &f->mi_malloc_aligned, why) && sym(h, "mi_free", &f->mi_free, why) &&
           sym(h, "mi_collect", &f->mi_collect, why) && sym(h, "mi_version", &ver, why);
      if (ok) {
        const int v = ver();
        version = std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) + "." + std::to_string(v % 10);
      }
      *detail = "mimalloc " + version + ", dlopen " + lib + ", mi_malloc_aligned(4096, 4096)/mi_free";
      break;
    }
    case Dl::tcmalloc: {
      const char* (*ver)(int*, int*, const char**) = nullptr;
      ok = sym(h, "tc_memalign", &f->tc_memalign, why) && sym(h, "tc_free", &f->tc_free, why) &&
           sym(h, "MallocExtension_ReleaseFreeMemory", &f->tc_release, why) &&
           sym(h, "tc_version", &ver, why);
      if (ok) {
        int ma = 0, mi = 0;
        const char* patch = nullptr;
        ver(&ma, &mi, &patch);
        version = std::to_string(ma) + "." + std::to_string(mi) + (patch ? patch : "");
      }
      *detail = "tcmalloc (gperftools) " + version + ", dlopen " + lib + ", tc_memalign(4096, 4096)/tc_free";
      break;
    }
  }
  if (!ok) return nullptr;
  return f;
}

void dl_trim(Dl kind, const DlFns& f) {
  switch (kind) {
    case Dl::jemalloc:
      f.mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);  // 4096: MALLCTL_ARENAS_ALL
      break;
    case Dl::mimalloc: f.mi_collect(true); break;
    case Dl::tcmalloc: f.tc_release(); break;
  }
}

}  // namespace ppb
