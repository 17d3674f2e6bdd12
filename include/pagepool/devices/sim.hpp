// pagepool: the sim device — an in-process NIC model, the forwarder's default.
//
// open_sim_devices() makes `devices` ports of one simulated NIC. One
// "hardware" thread serves all its ports, like a NIC's DMA engine: per port
// it
//  - receives: takes posted RX buffers and writes frames into them (Ethernet
//    + IPv4 + UDP, sizes from `sizes`, `flows` distinct 5-tuples, at `rate`
//    or as fast as buffers are posted), each stamped in its last 16 bytes
//    with (port, sequence number, check word);
//  - transmits: consumes TX descriptors, checks each frame's stamp (verify)
//    and records its sequence number in a bitmap per origin port, so a frame
//    sent twice (duplicate) or overwritten while in flight (corrupt) is
//    counted. The bitmap remembers the last `verify_window` sequence numbers
//    of each origin (2 MiB per port by default): memory stays bounded however
//    long the run. A frame older than that (only possible when a frame waits
//    while 16M newer ones from its port pass it) is counted wire_unchecked:
//    its stamp is checked, a duplicate of it would not be seen;
//  - completes: hands each TX buffer back `tx_delay_ns` after consuming it.
// With the same seed, sizes and flows it generates the same frames.
//
// Where a frame lands (colouring). The driver posts each RX buffer with
// the address the hardware writes to, as a real descriptor carries one:
// rx_headroom() (256) plus a colour, 64 bytes times (the buffer's address
// / 4096) mod C, so frames in consecutive pages start on different cache
// lines. Pool pages are page-aligned: at one offset every frame's first
// line falls in the same set of the L1 (64 sets of 8 ways here), and a
// batch of 64 frames evicts itself on both threads that touch it. C is 16
// when the largest configured size leaves room (<= 2880 bytes), fewer
// down to 1 (no colouring) as it grows; `colour = false` turns it off.
// Frames from rx() carry their offset; programs see it as their headroom.
//
// Accounting (DeviceStats), exact after the forwarder stopped:
//   wire_sent  == rx_frames + rx_no_buf           (the wire = the driver)
//   tx_frames  == tx_completed + TX buffers reclaimed (each buffer sent came back;
//                 reclaimed counts RX and TX buffers together)
//   wire_received == tx_frames when the queues drained (nothing left to send)
//   wire_duplicate == wire_corrupt == 0
// The rate is per port in Mpps; 0 means as fast as the driver posts
// buffers (back-pressure, nothing lost). With a rate, a frame that finds
// no posted buffer is lost and counted (rx_no_buf), as on a real NIC.
//
// Without a rate the hardware thread competes for a CPU with the polling
// threads; when a pass over all ports finds no work it yields the CPU, and
// naps after a long idle spell.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "pagepool/fwd/device.hpp"

namespace pagepool::fwd {

struct SimOptions {
  std::uint32_t devices = 2;                // ports: 1..64
  std::vector<std::uint32_t> sizes{64};     // frame sizes in bytes (no FCS), picked at random;
                                            // repeats weight a size; each 60..3840
  std::uint32_t flows = 256;                // distinct 5-tuples per port: 1..65536, and
                                            // flows x devices <= 2^20 (56 B of template each)
  double rate_mpps = 0;                     // per port; 0 = as fast as buffers come
  std::uint64_t seed = 1;
  std::uint64_t tx_delay_ns = 0;            // TX completion delay
  std::uint32_t ring_size = 1024;           // every queue's entries: power of two, 64..65536
  std::uint64_t max_frames = 0;             // per port: stop generating after this many; 0 = no limit
  bool verify = true;                       // check stamps and duplicates on TX
  std::uint32_t verify_window = 1u << 24;   // sequence numbers per origin port the duplicate
                                            // check remembers: power of two, 64..2^30
  int hw_cpu = -1;                          // CPU of the hardware thread; -1 = any
  bool colour = true;                       // RX frames at coloured offsets (above)
};

// Control thread. Throws std::invalid_argument naming the bad field and its
// range. The ports share the hardware thread, which ends with the last one.
std::vector<std::unique_ptr<Device>> open_sim_devices(const SimOptions& options);

// "64", "64,512,1500" or "imix" (64 x7, 576 x4, 1500 x1) into a size list
// for SimOptions::sizes. Throws std::invalid_argument for anything else or
// a size outside 60..3840.
std::vector<std::uint32_t> parse_sizes(std::string_view spec);

}  // namespace pagepool::fwd
