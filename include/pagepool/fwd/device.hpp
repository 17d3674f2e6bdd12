// pagepool: the device interface of the forwarding path.
//
// A Device is one RX queue, one TX queue and one TX-completion queue of a
// NIC, seen from its driver:
//
//   fill()      driver -> device   empty buffers the device may receive into
//   rx()        device -> driver   received frames, each in one of those buffers
//   tx()        driver -> device   frames to send (buffers go to the device)
//   complete()  device -> driver   buffers whose transmission is finished
//
// Ownership. A buffer belongs to exactly one side at a time. fill() and tx()
// give buffers to the device (for the accepted prefix only); rx() and
// complete() give them back. A buffer of a Pool (Buf::page set) carries the
// reference the driver got from the pool: while the device has it, nobody
// else may touch it; whoever gets it back from rx()/complete() owns that
// reference and ends it with put_page (or passes it on with tx()).
//
// Threads. One polling thread (the NAPI context) calls fill, rx, complete
// and reclaim: they are single-consumer/producer by contract and take no
// lock. tx() may be called by any thread (a REDIRECT from another device's
// polling thread): a device serialises it inside, once per batch.
//
// Every call takes and returns batches (at most 64 per call in the
// forwarder, the NAPI budget). Devices: sim (devices/sim.hpp, in-process,
// the default) and xsk (devices/xsk.hpp, AF_XDP).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "pagepool/page.hpp"
#include "pagepool/provider.hpp"

namespace pagepool::fwd {

// Bytes the forwarder's buffers have: one order-0 page.
inline constexpr std::uint32_t kBufBytes = 4096;

// One receive/transmit buffer: a pool page, or (malloc baseline, devices
// with heap_ok()) a heap block of kBufBytes. base is the buffer's first
// byte (page_address(page) for a page).
struct Buf {
  std::byte* base;
  Page* page;  // nullptr for a heap block
};

// A frame inside a buffer: bytes [off, off + len) of buf.
struct Frame {
  Buf buf;
  std::uint32_t off;
  std::uint32_t len;
};

// Counters a device keeps about itself (its "hardware" side), read by any
// thread; exact once the device is stopped.
struct DeviceStats {
  std::uint64_t rx_frames = 0;     // frames delivered by rx()
  std::uint64_t tx_frames = 0;     // frames accepted by tx()
  std::uint64_t tx_completed = 0;  // buffers returned by complete()
  std::uint64_t tx_ring_full = 0;  // frames tx() refused (queue full)
  std::uint64_t rx_no_buf = 0;     // frames the device lost on receive: no posted buffer
                                   // (xsk: also the kernel's RX ring full)
  std::uint64_t reclaimed = 0;     // buffers handed back by reclaim() (posted RX, unsent TX)
  // sim only: what the wire saw
  std::uint64_t wire_sent = 0;      // frames the device generated
  std::uint64_t wire_received = 0;  // frames the device transmitted and checked
  std::uint64_t wire_duplicate = 0; // transmitted frames seen before
  std::uint64_t wire_corrupt = 0;   // transmitted frames whose stamp did not verify
  std::uint64_t wire_unchecked = 0; // transmitted frames older than the verify window:
                                    // stamp checked, duplicate not (see SimOptions)
  // The hardware thread's own cost on this port: TSC ticks (x86-64; ns
  // elsewhere) of its visits to the port that moved frames (generate,
  // transmit and verify, complete). Over the frames received it says
  // whether the sim or the forwarder bounds a run's rate.
  std::uint64_t wire_busy_cycles = 0;
};

class Device {
 public:
  virtual ~Device() = default;

  // "sim0", "xsk:veth1:0"...
  virtual const std::string& name() const noexcept = 0;

  // ---- setup, before start() ------------------------------------------

  // The provider the RX pool of this device must take its pages from
  // (xsk: the UMEM's), or nullptr for any (an anonymous pool).
  virtual std::shared_ptr<Provider> provider() const { return nullptr; }
  // Whether heap blocks work as buffers (the malloc baseline): sim yes, xsk
  // no (the kernel can only reach UMEM pages).
  virtual bool heap_ok() const noexcept { return false; }
  // RX buffers the device can hold posted at most.
  virtual std::uint32_t rx_ring_size() const noexcept = 0;
  // The interface queue this device receives on (xsk: the socket's queue;
  // sim: 0). Programs see it as XdpMd::rx_queue.
  virtual std::uint32_t rx_queue() const noexcept { return 0; }
  // Bytes at least before the frame in every RX buffer: frames from rx()
  // start at buf.base + off with off >= rx_headroom() (xsk: equal; sim may
  // colour: see devices/sim.hpp), and the verdict program may grow a frame
  // into that room (XDP's headroom).
  virtual std::uint32_t rx_headroom() const noexcept = 0;

  // ---- polling thread ----------------------------------------------------

  // Free posting slots now.
  virtual std::uint32_t fill_room() noexcept = 0;
  // Posts bufs[0..k) for RX and returns k <= n (fill_room() at least, if no
  // other call intervenes).
  virtual std::uint32_t fill(const Buf* bufs, std::uint32_t n) noexcept = 0;
  // Up to budget received frames; they are the caller's.
  virtual std::uint32_t rx(Frame* out, std::uint32_t budget) noexcept = 0;
  // Up to budget buffers whose transmission completed; they are the
  // caller's. A buffer comes back from the device it was sent on.
  virtual std::uint32_t complete(Buf* out, std::uint32_t budget) noexcept = 0;

  // ---- any thread ----------------------------------------------------------

  // Queues frames[0..k) for transmission and returns k; the rest stay the
  // caller's (queue full: it drops and recycles them). Serialised inside.
  virtual std::uint32_t tx(const Frame* frames, std::uint32_t n) noexcept = 0;
  // Frames accepted by tx() and not yet returned by complete().
  virtual std::uint64_t tx_outstanding() const noexcept = 0;

  // ---- lifecycle (forwarder's control thread unless said) ---------------

  // The device starts receiving: sim starts generating frames.
  virtual void start() {}
  // The device stops receiving new traffic (sim: the generator stops; xsk:
  // nothing to do, the forwarder stops posting buffers). TX and completions
  // keep working so the forwarder can drain.
  virtual void quiesce() {}
  // Polling thread, after quiesce() and after its last rx()/complete():
  // stops the device for good and hands back every buffer it still has
  // (posted RX buffers; TX buffers never completed, which a well-behaved
  // device has none of once tx_outstanding() is 0). Returns how many were
  // written to out, which holds at most n; called until it returns 0.
  virtual std::uint32_t reclaim(Buf* out, std::uint32_t n) noexcept = 0;

  virtual DeviceStats stats() const noexcept = 0;
};

}  // namespace pagepool::fwd
