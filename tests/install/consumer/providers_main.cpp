// Consumer of the installed pagepool::uring, pagepool::xdp and
// pagepool::fwd_xsk: each library's code is called (so the link against it
// and against liburing / libxdp / libbpf is real), but nothing is opened —
// the arguments are refused before any system call.
#include <liburing.h>
#include <pagepool/devices/xsk.hpp>
#include <pagepool/providers/umem.hpp>
#include <pagepool/providers/uring.hpp>

#include <cstdio>
#include <stdexcept>

int main() {
  int rc = 0;
  try {
    pagepool::UringProvider p(0, /*ring=*/nullptr, 1);
    rc = 1;  // a null ring must be refused
  } catch (const std::invalid_argument&) {
  }
  try {
    pagepool::UmemProvider p(0, /*region_bytes=*/0);
    rc = 1;  // an empty region must be refused
  } catch (const std::invalid_argument&) {
  }
  const pagepool::fwd::XskSpec spec = pagepool::fwd::parse_xsk_spec("veth0:3");
  if (spec.ifname != "veth0" || spec.queue != 3) rc = 1;
  // liburing's and libxdp's headers come through the imported targets.
  int (*volatile uring_init)(unsigned, io_uring*, unsigned) = &io_uring_queue_init;
  auto* volatile umem_create = &xsk_umem__create;
  if (!uring_init || !umem_create) rc = 1;
  std::printf("providers consumer %s\n", rc ? "FAILED" : "ok");
  return rc;
}
