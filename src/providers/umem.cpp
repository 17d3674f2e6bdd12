// AF_XDP UMEM provider (see include/pagepool/providers/umem.hpp): one
// region, registered once as a UMEM, handed to ChunkProvider 2 MiB at a time.
#include "pagepool/providers/umem.hpp"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

#include "mem/arena.hpp"
#include "providers/map_util.hpp"

namespace pagepool {

namespace {

// XDP_PACKET_HEADROOM: the kernel's own headroom in front of every buffer.
constexpr std::uint32_t kXdpPacketHeadroom = 256;
// XDP_UMEM_MIN_CHUNK_SIZE.
constexpr std::uint32_t kMinFrame = 2048;

std::size_t system_page_size() noexcept {
  const long s = sysconf(_SC_PAGESIZE);
  return s > 0 ? static_cast<std::size_t>(s) : kPageSize;
}

bool pow2(std::uint64_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument("UmemProvider: " + what);
}

// Runs before ChunkProvider's constructor computes page sizes from order.
unsigned checked_umem_order(unsigned order, const UmemProvider::Options& o) {
  Provider::checked_order("UmemProvider", order);
  const std::size_t page = kPageSize << order;
  if (!o.unaligned && page > system_page_size())
    bad("order " + std::to_string(order) + " (" + std::to_string(page) +
        "-byte pages) cannot be an AF_XDP frame: in aligned mode the kernel needs a "
        "power-of-two frame size in [2048, " +
        std::to_string(system_page_size()) +
        "] (PAGE_SIZE), and a frame is a page; use order 0, or Options::unaligned "
        "(XDP_UMEM_UNALIGNED_CHUNK_FLAG) for larger pages");
  return order;
}

std::string memlock_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0) return "unknown";
  if (rl.rlim_cur == RLIM_INFINITY) return "unlimited";
  return std::to_string(rl.rlim_cur) + " bytes";
}

// xsk_umem__create's -errno as an exception naming cause and fix.
[[noreturn]] void registration_failed(int err, std::size_t bytes, std::uint32_t frame,
                                      std::uint32_t headroom, bool unaligned) {
  std::string what = "UmemProvider: registering a " + std::to_string(bytes) +
                     "-byte AF_XDP UMEM (xsk_umem__create) failed: ";
  switch (err) {
    case EPERM:
    case EACCES:
      what +=
          "AF_XDP sockets need CAP_NET_RAW (run as root, or grant it: "
          "setcap cap_net_raw+ep <binary>)";
      break;
    case EAFNOSUPPORT:
      what += "the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)";
      break;
    case ENOBUFS:
      what += "pinning the region exceeds RLIMIT_MEMLOCK (" + memlock_limit() +
              ", shared by all of the user's locked memory and UMEMs); raise it (ulimit -l, "
              "systemd LimitMEMLOCK=, setrlimit) or run with CAP_IPC_LOCK";
      break;
    case ENOMEM:
      what += "out of memory pinning the region (or the rings); also check RLIMIT_MEMLOCK (" +
              memlock_limit() + ")";
      break;
    case EINVAL:
      what += "the kernel refused the configuration (frame size " + std::to_string(frame) +
              ", headroom " + std::to_string(headroom) + (unaligned ? ", unaligned" : ", aligned") +
              " mode); a headroom this large may not leave room for a packet";
      break;
    default:
      what += "unexpected error";
      break;
  }
  throw std::system_error(err, std::generic_category(), what);
}

}  // namespace

UmemProvider::UmemProvider(unsigned order, std::size_t region_bytes, int nid)
    : UmemProvider(order, region_bytes, nid, Options{}) {}

UmemProvider::UmemProvider(unsigned order, std::size_t region_bytes, int nid, const Options& o)
    : ChunkProvider(checked_umem_order(order, o), detail::kGranule),
      size_(region_bytes),
      headroom_(o.frame_headroom),
      unaligned_(o.unaligned) {
  const std::size_t page = kPageSize << order;
  const std::size_t chunk = page > detail::kGranule ? page : detail::kGranule;
  if (region_bytes == 0 || region_bytes % chunk != 0)
    bad("region of " + std::to_string(region_bytes) + " bytes must be a non-zero multiple of " +
        std::to_string(chunk) + " bytes");
  if (!pow2(o.fill_size) || !pow2(o.comp_size))
    bad("fill ring size " + std::to_string(o.fill_size) + " and completion ring size " +
        std::to_string(o.comp_size) + " must be powers of two");
  const std::size_t sys_page = system_page_size();
  frame_size_ = static_cast<std::uint32_t>(page < sys_page ? page : sys_page);
  if (frame_size_ < kMinFrame) bad("frame size below 2048 bytes");  // not with 4 KiB pages
  if (o.frame_headroom >= frame_size_ - kXdpPacketHeadroom)
    bad("frame headroom " + std::to_string(o.frame_headroom) + " must be below frame size " +
        std::to_string(frame_size_) + " - XDP_PACKET_HEADROOM (256)");
  if (nid < -1 || nid > detail::max_node())
    bad("nid " + std::to_string(nid) + " out of range [-1, " + std::to_string(detail::max_node()) +
        "]");

  void* r =
      detail::map_aligned(region_bytes, detail::kGranule, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  if (!r)
    throw std::system_error(
        errno, std::generic_category(),
        "UmemProvider: reserving " + std::to_string(region_bytes) + " bytes of address space");
  base_ = static_cast<std::byte*>(r);
  // Bind before the registration faults the pages in.
  if (nid >= 0 && detail::bind_to_node(r, region_bytes, nid)) region_nid_ = nid;
  set_nid(region_nid_);

  xsk_umem_config cfg{};
  cfg.fill_size = o.fill_size;
  cfg.comp_size = o.comp_size;
  cfg.frame_size = frame_size_;
  cfg.frame_headroom = o.frame_headroom;
  cfg.flags = o.unaligned ? XDP_UMEM_UNALIGNED_CHUNK_FLAG : 0;
  int rc = xsk_umem__create(&umem_, r, region_bytes, &fill_, &comp_, &cfg);
  // ENOBUFS is RLIMIT_MEMLOCK. The kernel unaccounts a closed UMEM's pages
  // from a workqueue, so a UMEM deleted just before (a provider replaced by
  // a new one) may still count for a moment: retry briefly, ~30 ms in all.
  for (unsigned ms = 1; rc == -ENOBUFS && ms <= 16; ms *= 2) {
    usleep(ms * 1000);
    rc = xsk_umem__create(&umem_, r, region_bytes, &fill_, &comp_, &cfg);
  }
  if (rc != 0) {
    munmap(r, region_bytes);
    registration_failed(-rc, region_bytes, frame_size_, o.frame_headroom, o.unaligned);
  }
}

UmemProvider::~UmemProvider() {
  // Descriptors and virt_to_page entries go first: no page is out any more
  // (the pools hold the provider until their last page returned).
  release_all_chunks();
  if (xsk_umem__delete(umem_) != 0) {
    // -EBUSY: a socket still uses the UMEM, against the contract (header,
    // Lifetime). The kernel may still write frames into the region and the
    // socket's user read them there: leak the UMEM and the region rather
    // than unmap memory from under them.
    return;
  }
  munmap(base_, size_);
}

std::error_code UmemProvider::map(Page* p, std::uint64_t* dma) noexcept {
  *dma = static_cast<std::uint64_t>(static_cast<std::byte*>(page_address(p)) - base_);
  return {};
}

// Called under the chunk lock: next_ needs no other protection.
void* UmemProvider::reserve_chunk(std::size_t bytes, int* nid) noexcept {
  if (bytes > size_ - next_) {
    errno = ENOMEM;
    return nullptr;
  }
  void* mem = base_ + next_;
  next_ += bytes;
  *nid = region_nid_;
  return mem;
}

// The region stays registered and pinned until the destructor. A chunk
// given back right after it was reserved (ChunkProvider::grow failing on
// metadata) is handed out again next time; otherwise nothing to do.
void UmemProvider::unreserve_chunk(void* base, std::size_t bytes) noexcept {
  if (static_cast<std::byte*>(base) + bytes == base_ + next_) next_ -= bytes;
}

}  // namespace pagepool
