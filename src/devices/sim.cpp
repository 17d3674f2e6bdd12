// pagepool: the sim device (see devices/sim.hpp): ports of one simulated NIC
// whose "hardware" is one thread.
//
// Per port, three SPSC queues and a counter connect the driver (the
// forwarder's polling thread) and the hardware thread, shaped like a NIC's
// descriptor rings: the hardware sees addresses and lengths only, and
// works in order, so the driver keeps each buffer's Buf in a ring of its
// own and pairs them up again by position.
//   post       driver -> hw   where to write each RX frame: the address of
//                             a buffer posted by fill() plus its offset
//                             (headroom and colour, see devices/sim.hpp)
//   rxd        hw -> driver   the length of the frame written at each, in
//                             posting order, taken by rx()
//   txq        driver -> hw   TX descriptors; tx() may come from any thread
//                             and serialises producers with tx_lock
//   completed  hw -> driver   TX descriptors done, in order (a count),
//                             taken by complete()
// plus `pend`, the hardware's private FIFO of consumed TX descriptors
// waiting out the completion delay. Small descriptors are the point: every
// line of a queue crosses between the two CPUs (with whole Bufs and Frames
// on the queues the hardware thread cost 1.6x as much per frame).
//
// Room is known without asking, as on a NIC, where RX write-back goes
// into the descriptor the driver posted: the driver's Buf rings bound what
// it has out. rx_bufs_ holds every buffer posted and not yet taken by
// rx(), each one in post, being written, or in rxd, so
//   |post| + |rxd| <= |rx_bufs_| <= ring_size
// and tx_bufs_ holds a Buf for every descriptor in txq, so
//   |txq| <= |tx_bufs_| <= ring_size.
// The driver therefore never reads post's or txq's consumer index, nor the
// hardware rxd's: those lines stay with the side that writes them, where
// each read of one used to pull it across once a batch (measured in
// docs/forwarding.md). The happens-before a slot's reuse needs comes the
// same way: the hardware's read of post slot i precedes its release of rxd
// entry i, which rx() acquires before rx_bufs_ has room for index
// i + ring_size; its read of txq slot i precedes the release of the
// completion count that complete() acquires before tx_bufs_ frees i; and
// rx()'s read of rxd slot i precedes fill()'s release of post entries up
// to i + ring_size, which the hardware acquires before it writes that slot.
#include "pagepool/devices/sim.hpp"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "devices/spsc_ring.hpp"
#include "fwd/polling.hpp"
#include "pagepool/pool.hpp"

namespace pagepool::fwd {
namespace {

using detail::SpscRing;

// RX frames start this far into their buffer: XDP's XDP_PACKET_HEADROOM,
// room a program may grow the frame into.
constexpr std::uint32_t kHeadroom = 256;
constexpr std::uint32_t kMinFrame = 60;  // Ethernet minimum without FCS
constexpr std::uint32_t kMaxFrame = kBufBytes - kHeadroom;
constexpr std::uint32_t kBatch = 64;     // descriptors the hardware moves per queue per pass
constexpr std::uint32_t kStamp = 16;     // (port << 48 | seq, check word) at the frame's end
constexpr std::uint32_t kColourStep = 64;  // one cache line
constexpr std::uint32_t kMaxColours = 16;  // frames' first lines spread over 16 L1 sets
constexpr std::uint64_t kSeqMask = (std::uint64_t{1} << 48) - 1;
static_assert(kMaxFrame <= 0xffff, "an RX descriptor's length is 16 bits");

// What the hardware is given to transmit: the buffer's address and the
// frame's place in it (checked against the buffer by the hardware).
struct TxDesc {
  const std::byte* base;
  std::uint32_t off, len;
};

// splitmix64's finaliser: the check word and the generator's randomness.
std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The stamp's check word: one multiply and a fold. It catches a frame that
// is not the one the device wrote (bytes from another length or garbage);
// a frame replaced by another valid frame is caught by the duplicate bitmap.
std::uint64_t check_word(std::uint64_t id, std::uint32_t len) noexcept {
  const std::uint64_t x = (id ^ (std::uint64_t{len} << 48) ^ 0x5ca1ab1e) * 0x9e3779b97f4a7c15ull;
  return x ^ (x >> 29);
}

// Big-endian 16-bit store.
void put16(std::uint8_t* p, std::uint32_t v) noexcept {
  const std::uint16_t be = __builtin_bswap16(std::uint16_t(v));
  std::memcpy(p, &be, 2);
}

// The colours a port's RX frames are spread over (devices/sim.hpp): a
// power of two, as many as the largest frame leaves room for, 1 = none.
std::uint32_t colours(const SimOptions& o) noexcept {
  if (!o.colour) return 1;
  const std::uint32_t largest = *std::max_element(o.sizes.begin(), o.sizes.end());
  const std::uint32_t c = std::bit_floor(std::min(kMaxColours, (kMaxFrame - largest) / kColourStep + 1));
  assert(kHeadroom + (c - 1) * kColourStep + largest <= kBufBytes);  // the largest fits at the last colour
  return c;
}

// Range reduction without a division: r uniform in 32 bits -> [0, n).
std::uint32_t reduce(std::uint32_t r, std::uint32_t n) noexcept {
  return std::uint32_t((std::uint64_t{r} * n) >> 32);
}

// The first 48 bytes of a flow's frames (Ethernet + IPv4 + UDP, then six
// payload bytes) as six little-endian words, with the length, id, checksum
// and payload bytes zero, and the one's-complement sum of the IPv4 header
// words that do not change: a frame then costs three patched words.
struct FlowHeader {
  std::uint64_t w[6];
  std::uint32_t ip_sum;
};
static_assert(sizeof(FlowHeader) == 56);

FlowHeader make_header(std::uint32_t port, std::uint32_t flow) noexcept {
  std::uint8_t f[48] = {};
  // Ethernet: to the port's own address, from a per-flow station.
  const std::uint8_t eth[14] = {0x02, 0, 0, 0, 0, std::uint8_t(port),
                                0x02, 0, 0, 1, std::uint8_t(flow >> 8), std::uint8_t(flow),
                                0x08, 0x00};
  std::memcpy(f, eth, sizeof eth);
  // IPv4, no options, DF, UDP: 10.<port>.<flow> -> 10.200.<port>.1.
  std::uint8_t* ip = f + 14;
  ip[0] = 0x45;
  put16(ip + 6, 0x4000);
  ip[8] = 64;
  ip[9] = 17;
  const std::uint8_t addrs[8] = {10, std::uint8_t(port), std::uint8_t(flow >> 8), std::uint8_t(flow),
                                 10, 200, std::uint8_t(port), 1};
  std::memcpy(ip + 12, addrs, sizeof addrs);
  FlowHeader h{};
  for (int i = 0; i < 20; i += 2) h.ip_sum += std::uint32_t(ip[i]) << 8 | ip[i + 1];
  // UDP, no checksum (allowed for IPv4).
  put16(f + 34, 1024 + flow % 64512);
  put16(f + 36, 7777);
  std::memcpy(h.w, f, sizeof f);
  return h;
}

// Sixteen bytes in one store. The hardware thread's stores go to lines the
// polling thread held last: each waits in the store buffer for its line's
// ownership, and the buffer holds a few dozen stores, so the fewer stores a
// frame takes, the more frames' lines are fetched at once (measured: 4
// stores a 64-byte frame instead of 11 took 2-6 % off the thread's time).
using Vec16 = std::uint64_t __attribute__((vector_size(16)));
void store16(std::uint8_t* p, std::uint64_t lo, std::uint64_t hi) noexcept {
  const Vec16 v{lo, hi};
  std::memcpy(p, &v, sizeof v);
}

// The header words hold bytes in memory order on a little-endian machine.
static_assert(std::endian::native == std::endian::little, "FlowHeader::w is little-endian");
// The stamp never covers the header; every frame has payload bytes.
static_assert(kMinFrame - kStamp > 42, "every frame has a payload");

// A frame of `len` bytes of flow header h with sequence number seq: header,
// payload bytes (a NIC writes every byte: seq's low byte), and the stamp at
// the end. Bytes 0..47 are three stores composed in registers, the stamp is
// one more (it may overlap them: it is written last), and only a frame
// longer than 64 bytes has payload beyond them.
void write_frame(std::uint8_t* f, std::uint32_t len, const FlowHeader& h, std::uint32_t port,
                 std::uint64_t seq) noexcept {
  const std::uint32_t tot = len - 14, id = std::uint32_t(seq) & 0xffff;
  std::uint32_t sum = h.ip_sum + tot + id;
  sum = (sum & 0xffff) + (sum >> 16);
  sum += sum >> 16;
  const auto be = [](std::uint32_t v) { return std::uint64_t{__builtin_bswap16(std::uint16_t(v))}; };
  const std::uint64_t fill = 0x0101010101010101ull * std::uint8_t(seq);
  store16(f, h.w[0], h.w[1]);
  store16(f + 16, h.w[2] | be(tot) | be(id) << 16, h.w[3] | be(~sum));  // bytes 16, 18, 24
  store16(f + 32, h.w[4] | be(len - 34) << 48, h.w[5] | fill << 16);     // bytes 38, 42..47
  if (len > 64) {  // payload bytes 48 .. len - kStamp
    if (len - 64 <= 16)
      store16(f + 48, fill, fill);  // ends at byte 64 <= len; the stamp covers the excess
    else
      std::memset(f + 48, std::uint8_t(seq), len - 64);
  }
  const std::uint64_t sid = std::uint64_t{port} << 48 | seq;
  store16(f + len - kStamp, sid, check_word(sid, len));
}

using detail::now_ns;
using detail::SpinLock;
// Counters with one writer at a time, read anywhere.
using Count = pagepool::detail::Counter;

struct Port {
  Port(std::uint32_t i, const SimOptions& o)
      : idx(i), post(o.ring_size), rxd(o.ring_size), txq(o.ring_size), pend(o.ring_size),
        rng(mix64(o.seed * 0x9e3779b97f4a7c15ull + i)) {
    for (std::uint32_t f = 0; f < o.flows; ++f) headers.push_back(make_header(i, f));
  }

  const std::uint32_t idx;
  SpscRing<std::byte*> post;       // frame addresses: buffer + offset
  SpscRing<std::uint16_t> rxd;     // frame lengths, in posting order
  SpscRing<TxDesc> txq;
  // TX descriptors done: the hardware's release-store after its last read
  // of their frames; the driver's acquire-load before it hands the buffers
  // back. Its own line: it is the one field the driver polls for TX.
  alignas(64) std::atomic<std::uint64_t> completed{0};

  // Each group below has lines of its own: a line one thread writes and the
  // other reads or writes crosses between the CPUs every time (a few times
  // per batch when the two groups of counters and the TX lock shared one).

  // ---- hardware thread only (the polling thread after `stopped`) ----
  // seq is also read by the stamp check of frames from other ports: that is
  // the hardware thread too.
  alignas(64) std::vector<std::uint64_t> pend;  // FIFO of due times (now_ns()), pend.size() a power of two
  std::uint32_t pend_head = 0, pend_n = 0;
  const std::uint32_t pend_mask = std::uint32_t(pend.size()) - 1;
  std::vector<FlowHeader> headers;  // one per flow
  std::uint64_t seq = 0;   // frames delivered (next sequence number)
  std::uint64_t sent = 0;  // frames generated, delivered or lost
  std::uint64_t rng;
  double credit = 0;       // frames the rate allows now
  std::uint64_t last_ns = 0;
  // Counters the hardware thread writes (DeviceStats).
  Count rx_no_buf, wire_sent, wire_received, wire_duplicate, wire_corrupt, wire_unchecked, hw_busy;

  // ---- control: written once or twice a run, read by the hardware every pass ----
  // seq_cst, with the hardware's epoch: see SimDevice::quiesce().
  alignas(64) std::atomic<bool> gen{false};
  // Polling thread -> hardware: leave this port for good (seq_cst store,
  // seq_cst load); hardware -> polling thread: done (release; acquire).
  std::atomic<bool> stop_req{false}, stopped{false};

  // ---- the polling thread, and TX producers under tx_lock ----
  alignas(64) SpinLock tx_lock;
  bool tx_closed = false;  // reclaim() started: tx() refuses everything
  // Counters (DeviceStats). Writers: rx/tx_completed/reclaimed the polling
  // thread; tx_frames/tx_ring_full the tx_lock holder.
  Count rx_frames, tx_frames, tx_completed, tx_ring_full, reclaimed, reclaimed_tx;
};

// Hardware thread only: the sequence numbers of one origin port's frames
// transmitted so far, for the duplicate check. While every number is below
// the window the bitmap grows by doubling; after that it is a ring of
// window bits covering [base, base + window), base a multiple of 64, and
// sliding it forward forgets the oldest words.
class SeenWindow {
 public:
  explicit SeenWindow(std::uint64_t window_bits) : words_(window_bits / 64) {}

  struct Counts {
    std::uint32_t duplicate = 0, too_old = 0;  // the rest were fresh
  };
  // Records the numbers word * 64 + b for every bit b of mask (not 0): one
  // bitmap update for a run of frames, which on a link in order is a whole
  // batch. The same as recording them one at a time in any order: they
  // share one word, and base_ is a multiple of 64, so sliding for the
  // highest of them never leaves another behind.
  Counts record_word(std::uint64_t word, std::uint64_t mask) {
    const std::uint64_t first = word * 64, last = first + 63 - std::uint64_t(__builtin_clzll(mask));
    if (first < base_) return {0, std::uint32_t(__builtin_popcountll(mask))};
    if (last - base_ >= words_ * 64) slide(last);
    const std::uint64_t w = word & (words_ - 1);  // == word while growing
    if (w >= bits_.size()) bits_.resize(std::min(std::max<std::uint64_t>(w + 1, bits_.size() * 2), words_));
    const std::uint64_t seen = bits_[w] & mask;
    bits_[w] |= mask;
    return {std::uint32_t(__builtin_popcountll(seen)), 0};
  }

 private:
  // Moves base up to the smallest multiple of 64 with seq < base + window,
  // clearing the words of the numbers it leaves behind.
  void slide(std::uint64_t seq) {
    bits_.resize(words_);  // a full ring from now on (zero-filled growth)
    const std::uint64_t nb = (seq - words_ * 64 + 64) & ~std::uint64_t{63};
    const std::uint64_t drop = (nb - base_) / 64;
    if (drop >= words_) {
      std::fill(bits_.begin(), bits_.end(), 0);
    } else {
      for (std::uint64_t w = base_ / 64; w < nb / 64; ++w) bits_[w & (words_ - 1)] = 0;
    }
    base_ = nb;
  }

  const std::uint64_t words_;       // window / 64, a power of two
  std::uint64_t base_ = 0;
  std::vector<std::uint64_t> bits_;
};

class SimHw {
 public:
  explicit SimHw(const SimOptions& o)
      : opt_(o), nports_(o.devices), timed_(o.rate_mpps > 0 || o.tx_delay_ns > 0),
        seen_(o.devices, SeenWindow(o.verify_window)) {
    for (std::uint32_t i = 0; i < o.devices; ++i) ports_.push_back(std::make_unique<Port>(i, o));
    thread_ = std::thread([this] { run(); });
    if (o.hw_cpu >= 0) {  // checked by open_sim_devices
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(o.hw_cpu, &set);
      (void)pthread_setaffinity_np(thread_.native_handle(), sizeof set, &set);
    }
  }
  ~SimHw() {
    quit_.store(true, std::memory_order_relaxed);
    thread_.join();
  }
  Port& port(std::uint32_t i) noexcept { return *ports_[i]; }
  const SimOptions& options() const noexcept { return opt_; }
  // Hardware passes completed; seq_cst store per pass (see quiesce()).
  std::uint64_t epoch() const noexcept { return epoch_.load(std::memory_order_seq_cst); }

 private:
  void run();
  std::uint32_t generate(Port& p, std::uint64_t now);
  // Starts the loads of the stamps verify() will read in this visit's
  // transmit().
  static void prefetch_stamps(Port& p) noexcept;
  std::uint32_t transmit(Port& p, std::uint64_t now);
  std::uint32_t complete(Port& p, std::uint64_t now);
  // A transmitted frame's stamp id (origin << 48 | seq) if the stamp
  // verifies, else kBadId.
  static constexpr std::uint64_t kBadId = ~std::uint64_t{0};  // origin 0xffff: never a port
  std::uint64_t stamp_id(const TxDesc& f) const;
  // Checks k transmitted frames and records their sequence numbers;
  // returns how many did not verify.
  std::uint32_t verify(const TxDesc* fr, std::uint32_t k);

  const SimOptions opt_;
  const std::uint32_t nports_;
  const bool timed_;  // a rate or a completion delay: passes read the clock
  std::vector<std::unique_ptr<Port>> ports_;
  // Hardware thread only: per origin port, the sequence numbers
  // transmitted (duplicate detection).
  std::vector<SeenWindow> seen_;
  std::atomic<bool> quit_{false};
  std::atomic<std::uint64_t> epoch_{0};
  std::thread thread_;
};

void SimHw::run() {
  detail::IdleBackoff backoff;
  while (!quit_.load(std::memory_order_relaxed)) {
    // The clock paces a rate and times completions; without either it is
    // not read (a vDSO call per pass: 2.4 % of a default run's profile,
    // about 5 % of this thread's).
    const std::uint64_t now = timed_ ? now_ns() : 0;
    std::uint32_t work = 0;
    for (auto& pp : ports_) {
      Port& p = *pp;
      if (p.stopped.load(std::memory_order_relaxed)) continue;
      if (p.stop_req.load(std::memory_order_seq_cst)) {
        // Release: everything this thread did to the port's queues and
        // pend happens before the polling thread takes them over.
        p.stopped.store(true, std::memory_order_release);
        continue;
      }
      // Timed per port, counted only when frames moved (as the pollers'
      // busy time: idle visits are the wait for work, not its cost).
      const std::uint64_t t0 = detail::busy_clock();
      if (opt_.verify) prefetch_stamps(p);
      const std::uint32_t w = generate(p, now) + transmit(p, now) + complete(p, now);
      if (w) p.hw_busy.add(detail::busy_clock() - t0);
      work += w;
    }
    epoch_.store(epoch_.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
    if (work)
      backoff.work();
    else
      backoff.idle();
  }
}

// The stamps of the TX descriptors waiting now, before the RX batch is
// generated. They are transmit()'s first loads, and they miss: since this
// thread wrote a frame, the polling thread, on another CPU, has read its
// first line (a 64-byte frame's stamp is on it), and a ring's worth of
// other frames has passed through this thread's cache. In a profile of a
// far placement, half of transmit()'s samples waited on that load. Started
// here, the misses overlap the generation instead of stalling the check
// (measured in docs/forwarding.md). The descriptors are only peeked
// (transmit() pops them and checks each against its buffer before reading
// the stamp); the address is computed as an integer, as a bad descriptor's
// may lie outside any object, and a prefetch of it is harmless.
void SimHw::prefetch_stamps(Port& p) noexcept {
  const std::uint32_t n = p.txq.peek(kBatch);
  for (std::uint32_t i = 0; i < n; ++i) {
    const TxDesc& d = p.txq.cons_slot(i);
    const std::uintptr_t s = reinterpret_cast<std::uintptr_t>(d.base) + d.off + d.len - kStamp;
    __builtin_prefetch(reinterpret_cast<const void*>(s), 0, 3);
  }
}

std::uint32_t SimHw::generate(Port& p, std::uint64_t now) {
  const std::uint64_t dt = now - p.last_ns;
  p.last_ns = now;
  if (!p.gen.load(std::memory_order_seq_cst)) {
    p.credit = 0;
    return 0;
  }
  std::uint64_t want = kBatch;
  if (opt_.max_frames) want = std::min(want, opt_.max_frames - p.sent);
  if (opt_.rate_mpps > 0) {
    // A burst of at most one batch: the wire does not save up frames.
    p.credit = std::min(p.credit + double(dt) * opt_.rate_mpps / 1000.0, double(kBatch));
    want = std::min<std::uint64_t>(want, std::uint64_t(p.credit));
  }
  if (want == 0) return 0;
  std::byte* at[kBatch];
  // No room to check in rxd: |post| + |rxd| <= ring_size (top of file),
  // hence known_room() below.
  const std::uint32_t k = p.post.pop(at, std::uint32_t(want));
  std::uint16_t lens[kBatch];
  const std::uint32_t nsizes = std::uint32_t(opt_.sizes.size());
  {
    // Locals: the frame stores are byte stores, which may alias anything,
    // so fields read in the loop would be read again after each frame.
    std::uint64_t rng = p.rng;
    const std::uint64_t seq = p.seq;
    const std::uint32_t* const sizes = opt_.sizes.data();
    const std::uint32_t flows = opt_.flows, port = p.idx;
    const FlowHeader* const headers = p.headers.data();
    for (std::uint32_t i = 0; i < k; ++i) {
      rng += 0x9e3779b97f4a7c15ull;  // a Weyl sequence through one multiply-fold
      const std::uint64_t r = (rng ^ (rng >> 32)) * 0xd6e8feb86659fd93ull;
      const std::uint32_t len = sizes[reduce(std::uint32_t(r), nsizes)];
      const std::uint32_t flow = reduce(std::uint32_t(r >> 32), flows);
      // Where the driver said: every size fits there (SimDevice's colours).
      write_frame(reinterpret_cast<std::uint8_t*>(at[i]), len, headers[flow], port, seq + i);
      lens[i] = std::uint16_t(len);
    }
    p.rng = rng;
  }
  p.rxd.known_room(k);
  for (std::uint32_t i = 0; i < k; ++i) p.rxd.prod_slot(i) = lens[i];
  p.rxd.submit(k);
  p.seq += k;
  std::uint64_t lost = 0;
  if (opt_.rate_mpps > 0) {
    // With a rate the wire does not wait: frames beyond the posted
    // buffers are lost, as on a NIC whose RX ring ran dry.
    lost = want - k;
    p.credit -= double(want);
    if (lost) p.rx_no_buf.add(lost);
  }
  p.sent += k + lost;
  p.wire_sent.add(k + lost);
  return k;
}

std::uint64_t SimHw::stamp_id(const TxDesc& f) const {
  if (f.len < kStamp || f.off > kBufBytes || f.len > kBufBytes - f.off) return kBadId;
  const std::byte* s = f.base + f.off + f.len - kStamp;
  std::uint64_t id, chk;
  std::memcpy(&id, s, 8);
  std::memcpy(&chk, s + 8, 8);
  const std::uint64_t origin = id >> 48, seq = id & kSeqMask;
  if (origin >= nports_ || chk != check_word(id, f.len) || seq >= ports_[origin]->seq) return kBadId;
  return id;
}

std::uint32_t SimHw::verify(const TxDesc* fr, std::uint32_t k) {
  // Every stamp first: independent loads, so their cache misses overlap.
  std::uint64_t id[kBatch];
  std::uint32_t bad = 0;
  for (std::uint32_t i = 0; i < k; ++i) {
    id[i] = stamp_id(fr[i]);
    bad += id[i] == kBadId;
  }
  // Then the sequence numbers, one record_word per run of frames of one
  // origin inside one word with no number twice (a repeat starts a new
  // run, whose record finds it). Counters: this thread is the one writer.
  for (std::uint32_t i = 0; i < k;) {
    if (id[i] == kBadId) {
      ++i;
      continue;
    }
    // (id % 64 is the sequence number's: the origin sits above bit 48, so
    // id / 64 is origin and word together; kBadId's is no valid id's.)
    const std::uint64_t origin = id[i] >> 48, word = (id[i] & kSeqMask) / 64, run = id[i] / 64;
    std::uint64_t mask = std::uint64_t{1} << (id[i] % 64);
    std::uint32_t j = i + 1;
    for (; j < k && id[j] / 64 == run; ++j) {
      const std::uint64_t bit = std::uint64_t{1} << (id[j] % 64);
      if (mask & bit) break;
      mask |= bit;
    }
    const SeenWindow::Counts c = seen_[origin].record_word(word, mask);
    if (c.duplicate) ports_[origin]->wire_duplicate.add(c.duplicate);
    if (c.too_old) ports_[origin]->wire_unchecked.add(c.too_old);
    i = j;
  }
  return bad;
}

// Adds n to a count with one writer at a time (relaxed load: the writer
// sees its own last store) and publishes it with a release-store: no locked
// instruction, which would wait for every store before it, ring stores to
// lines the other CPU holds among them.
void add_release(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_release);
}

// Completes k more TX descriptors, in order. Release: this thread's reads
// of their frames (verify) happen before the driver reuses the buffers;
// pairs with the acquire-load in SimDevice::complete(). This thread is the
// only writer.
void complete_n(Port& p, std::uint32_t k) noexcept { add_release(p.completed, k); }

std::uint32_t SimHw::transmit(Port& p, std::uint64_t now) {
  // Without a completion delay and with nothing waiting, a descriptor
  // completes as it is consumed. The driver holds at most ring_size
  // descriptors out, so `pend` (ring_size entries) never overflows.
  const bool direct = opt_.tx_delay_ns == 0 && p.pend_n == 0;
  TxDesc d[kBatch];
  const std::uint32_t k = p.txq.pop(d, kBatch);
  if (!k) return 0;
  const std::uint64_t bad = opt_.verify ? verify(d, k) : 0;
  if (direct) {
    complete_n(p, k);
  } else {
    const std::uint64_t due = now + opt_.tx_delay_ns;
    for (std::uint32_t i = 0; i < k; ++i) p.pend[(p.pend_head + p.pend_n++) & p.pend_mask] = due;
  }
  p.wire_received.add(k);
  if (bad) p.wire_corrupt.add(bad);
  return k;
}

std::uint32_t SimHw::complete(Port& p, std::uint64_t now) {
  // Due times only grow (one delay for all), so the first not due ends it.
  std::uint32_t k = 0;
  while (k < p.pend_n && p.pend[p.pend_head] <= now) {
    p.pend_head = (p.pend_head + 1) & p.pend_mask;
    ++k;
  }
  if (!k) return 0;
  p.pend_n -= k;
  complete_n(p, k);
  return k;
}

class SimDevice final : public Device {
 public:
  SimDevice(std::shared_ptr<SimHw> hw, std::uint32_t idx)
      : hw_(std::move(hw)), p_(hw_->port(idx)), name_("sim" + std::to_string(idx)),
        colour_mask_(colours(hw_->options()) - 1), rx_bufs_(hw_->options().ring_size),
        tx_bufs_(hw_->options().ring_size) {}
  ~SimDevice() override { stop_port(); }

  const std::string& name() const noexcept override { return name_; }
  bool heap_ok() const noexcept override { return true; }
  std::uint32_t rx_ring_size() const noexcept override { return hw_->options().ring_size; }
  std::uint32_t rx_headroom() const noexcept override { return kHeadroom; }

  // Every posted buffer has its entry in rx_bufs_ until rx() or reclaim()
  // takes it, and post's entries are a suffix of them: room in rx_bufs_ is
  // room in post.
  std::uint32_t fill_room() noexcept override { return reclaiming_ ? 0 : rx_bufs_.free_slots(); }
  std::uint32_t fill(const Buf* bufs, std::uint32_t n) noexcept override {
    if (reclaiming_) return 0;
    n = rx_bufs_.push(bufs, n);
    // In place, one ring after the other: each loop streams its stores
    // (interleaving the two rings' stores measured 20 % slower).
    p_.post.known_room(n);  // |post| <= |rx_bufs_| (top of file)
    for (std::uint32_t i = 0; i < n; ++i) p_.post.prod_slot(i) = bufs[i].base + rx_off(bufs[i].base);
    p_.post.submit(n);
    return n;
  }
  std::uint32_t rx(Frame* out, std::uint32_t budget) noexcept override {
    if (reclaiming_) return 0;
    // Read in place: both rings are consumed here, and only the lengths'
    // lines are shared with the hardware.
    const std::uint32_t n = p_.rxd.peek(budget);
    [[maybe_unused]] const std::uint32_t got = rx_bufs_.peek(n);
    assert(got == n);  // the oldest posted are the ones written
    for (std::uint32_t j = 0; j < n; ++j) {
      const Buf& b = rx_bufs_.cons_slot(j);
      out[j] = {b, rx_off(b.base), p_.rxd.cons_slot(j)};
    }
    p_.rxd.release(n);
    rx_bufs_.release(n);
    if (n) p_.rx_frames.add(n);
    return n;
  }
  std::uint32_t complete(Buf* out, std::uint32_t budget) noexcept override {
    if (reclaiming_) return 0;
    // Acquire: pairs with the hardware's release in complete_n().
    const std::uint64_t c = p_.completed.load(std::memory_order_acquire);
    // tx_completed: the completions taken so far (this thread writes it).
    const std::uint64_t ready = c - p_.tx_completed.get();
    const std::uint32_t n = tx_bufs_.pop(out, std::uint32_t(std::min<std::uint64_t>(budget, ready)));
    if (n) {
      p_.tx_completed.add(n);
      add_release(done_, n);  // pairs with tx_outstanding()
    }
    return n;
  }

  // A frame's Buf goes to tx_bufs_ before its descriptor goes to the
  // hardware, so complete() finds it there. Every descriptor in txq or pend
  // has its Buf in tx_bufs_: room in tx_bufs_ is room in txq, and pend
  // (ring_size entries) cannot overflow.
  std::uint32_t tx(const Frame* frames, std::uint32_t n) noexcept override {
    p_.tx_lock.lock();
    std::uint32_t k = 0;
    if (!p_.tx_closed) {
      // In place, one ring after the other, as fill().
      k = tx_bufs_.reserve(n);
      for (std::uint32_t j = 0; j < k; ++j) tx_bufs_.prod_slot(j) = frames[j].buf;
      tx_bufs_.submit(k);
      p_.txq.known_room(k);  // |txq| <= |tx_bufs_| (top of file)
      for (std::uint32_t j = 0; j < k; ++j) p_.txq.prod_slot(j) = {frames[j].buf.base, frames[j].off, frames[j].len};
      p_.txq.submit(k);
    }
    p_.tx_frames.add(k);
    if (k < n) p_.tx_ring_full.add(n - k);
    add_release(accepted_, k);
    p_.tx_lock.unlock();
    return k;
  }
  std::uint64_t tx_outstanding() const noexcept override {
    // Read done first: accepted only grows, so the difference never wraps.
    const std::uint64_t done = done_.load(std::memory_order_acquire);
    return accepted_.load(std::memory_order_acquire) - done;
  }

  void start() override { p_.gen.store(true, std::memory_order_seq_cst); }

  void quiesce() override {
    // After gen=false, wait for two hardware passes. In the seq_cst order:
    // our store < our load of epoch (e) < the hardware's store of e + 1 <
    // its load of gen in pass e + 2, which therefore sees false; when the
    // epoch reaches e + 2 that pass is over and no frame is generated again.
    p_.gen.store(false, std::memory_order_seq_cst);
    const std::uint64_t e = hw_->epoch();
    while (hw_->epoch() < e + 2) sched_yield();
  }

  std::uint32_t reclaim(Buf* out, std::uint32_t n) noexcept override {
    if (!reclaiming_) {
      p_.tx_lock.lock();
      p_.tx_closed = true;
      p_.tx_lock.unlock();
      stop_port();
      reclaiming_ = true;
    }
    // The hardware has left the port and what it held is ours: every RX
    // buffer posted and not taken by rx(), and every TX buffer not taken by
    // complete() (in txq, pending, or completed), are in the two Buf rings.
    std::uint32_t k = rx_bufs_.pop(out, n);
    const std::uint32_t tx = tx_bufs_.pop(out + k, n - k);
    k += tx;
    if (tx) {
      p_.reclaimed_tx.add(tx);
      add_release(done_, tx);
    }
    p_.reclaimed.add(k);
    return k;
  }

  DeviceStats stats() const noexcept override {
    DeviceStats s;
    s.rx_frames = p_.rx_frames.get();
    s.tx_frames = p_.tx_frames.get();
    s.tx_completed = p_.tx_completed.get();
    s.tx_ring_full = p_.tx_ring_full.get();
    s.rx_no_buf = p_.rx_no_buf.get();
    s.reclaimed = p_.reclaimed.get();
    s.wire_sent = p_.wire_sent.get();
    s.wire_received = p_.wire_received.get();
    s.wire_duplicate = p_.wire_duplicate.get();
    s.wire_corrupt = p_.wire_corrupt.get();
    s.wire_unchecked = p_.wire_unchecked.get();
    s.wire_busy_cycles = p_.hw_busy.get();
    return s;
  }

 private:
  // Where the frame starts in an RX buffer: the headroom and the buffer's
  // colour (devices/sim.hpp), the same at fill() and rx().
  std::uint32_t rx_off(const std::byte* base) const noexcept {
    return kHeadroom + std::uint32_t((reinterpret_cast<std::uintptr_t>(base) / kBufBytes) & colour_mask_) * kColourStep;
  }

  // The hardware leaves the port and never touches it again.
  void stop_port() noexcept {
    p_.stop_req.store(true, std::memory_order_seq_cst);
    // Acquire: pairs with the hardware's release-store of stopped.
    while (!p_.stopped.load(std::memory_order_acquire)) sched_yield();
  }

  std::shared_ptr<SimHw> hw_;
  Port& p_;
  std::string name_;
  const std::uint32_t colour_mask_;  // colours(options) - 1
  bool reclaiming_ = false;  // polling thread
  // Driver side of the descriptor rings (see the top of this file).
  // rx_bufs_: posted RX buffers in posting order; polling thread only.
  // tx_bufs_: TX buffers in transmission order; tx_lock holders push, the
  // polling thread pops.
  SpscRing<Buf> rx_bufs_;
  SpscRing<Buf> tx_bufs_;
  // TX accepted (tx_lock holders) and returned (complete/reclaim: the
  // polling thread). One writer at a time each (the lock orders
  // successive holders), so add_release counts them.
  std::atomic<std::uint64_t> accepted_{0}, done_{0};
};

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("sim: " + what); }

}  // namespace

std::vector<std::unique_ptr<Device>> open_sim_devices(const SimOptions& o) {
  if (o.devices < 1 || o.devices > 64) bad("devices " + std::to_string(o.devices) + " outside 1..64");
  if (o.sizes.empty()) bad("no frame sizes");
  for (auto s : o.sizes)
    if (s < kMinFrame || s > kMaxFrame)
      bad("frame size " + std::to_string(s) + " outside " + std::to_string(kMinFrame) + ".." +
          std::to_string(kMaxFrame));
  if (o.flows < 1 || o.flows > 65536) bad("flows " + std::to_string(o.flows) + " outside 1..65536");
  // A header template (56 bytes) per flow and port.
  if (std::uint64_t{o.flows} * o.devices > (1u << 20))
    bad("flows x devices " + std::to_string(std::uint64_t{o.flows} * o.devices) + " above 1048576");
  if (!(o.rate_mpps >= 0) || o.rate_mpps > 1000) bad("rate " + std::to_string(o.rate_mpps) + " Mpps outside 0..1000");
  if (o.ring_size < 64 || o.ring_size > 65536 || (o.ring_size & (o.ring_size - 1)))
    bad("ring_size " + std::to_string(o.ring_size) + " is not a power of two in 64..65536");
  if (o.tx_delay_ns > 1'000'000'000) bad("tx_delay_ns above 1 s");
  if (o.verify_window < 64 || o.verify_window > (1u << 30) || (o.verify_window & (o.verify_window - 1)))
    bad("verify_window " + std::to_string(o.verify_window) + " is not a power of two in 64..2^30");
  if (o.hw_cpu >= 0) {
    cpu_set_t allowed;
    if (o.hw_cpu >= CPU_SETSIZE ||
        (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && !CPU_ISSET(o.hw_cpu, &allowed)))
      bad("hw_cpu " + std::to_string(o.hw_cpu) + " is not one this process may run on");
  }
  auto hw = std::make_shared<SimHw>(o);
  std::vector<std::unique_ptr<Device>> devs;
  for (std::uint32_t i = 0; i < o.devices; ++i) devs.push_back(std::make_unique<SimDevice>(hw, i));
  return devs;
}

std::vector<std::uint32_t> parse_sizes(std::string_view spec) {
  if (spec == "imix") {
    std::vector<std::uint32_t> v(7, 64);
    v.insert(v.end(), 4, 576);
    v.push_back(1500);
    return v;
  }
  std::vector<std::uint32_t> v;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t comma = spec.find(',', pos);
    const std::string_view item = spec.substr(pos, comma == std::string_view::npos ? spec.npos : comma - pos);
    std::uint32_t s = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), s);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size())
      bad("frame size '" + std::string(item) + "' is not a number (sizes: N[,N...] or imix)");
    if (s < kMinFrame || s > kMaxFrame)
      bad("frame size " + std::to_string(s) + " outside " + std::to_string(kMinFrame) + ".." +
          std::to_string(kMaxFrame));
    v.push_back(s);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return v;
}

}  // namespace pagepool::fwd
