// The sim's wire checks, driven through the Device interface with no
// forwarder: a frame transmitted twice is a duplicate, a frame whose stamp
// or length changed is corrupt, and the duplicate check's window slides
// (bounded memory however long a run) without forgetting recent frames;
// and the driver side pairs its buffers with the hardware's descriptors by
// position (completions in order, reclaim hands back what the device held).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pagepool/devices/sim.hpp"

namespace {

using namespace pagepool::fwd;
using Clock = std::chrono::steady_clock;

// One sim port driven by hand. Buffers are heap blocks (heap_ok()), freed
// after the device is gone: one each, or with `contiguous` consecutive
// pages of one block per receive().
class Port {
 public:
  explicit Port(SimOptions o, bool contiguous = false)
      : opt_(o), contiguous_(contiguous), devs_(open_sim_devices(o)) {}
  ~Port() {
    devs_.clear();  // the hardware leaves before the memory goes
    for (std::byte* b : heap_) std::free(b);
  }
  Device& dev() { return *devs_[0]; }

  // Posts buffers and collects frames until n arrived (or 10 s passed).
  // frames()[i] is the frame with sequence number i: one port delivers in
  // order.
  void receive(std::uint64_t n) {
    dev().start();
    std::byte* arena = nullptr;
    if (contiguous_) {
      arena = static_cast<std::byte*>(std::aligned_alloc(kBufBytes, (n - posted_) * kBufBytes));
      ASSERT_NE(arena, nullptr);
      heap_.push_back(arena);
    }
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (frames_.size() < n && Clock::now() < deadline) {
      std::uint32_t room = dev().fill_room();
      while (room && posted_ < n) {
        std::byte* b = arena;
        if (b) {
          arena += kBufBytes;
        } else {
          b = static_cast<std::byte*>(std::aligned_alloc(kBufBytes, kBufBytes));
          ASSERT_NE(b, nullptr);
          heap_.push_back(b);
        }
        std::memset(b, 0xa5, kBufBytes);  // not what the device writes (but for seq % 256 == 0xa5)
        const Buf buf{b, nullptr};
        ASSERT_EQ(dev().fill(&buf, 1), 1u);
        ++posted_;
        --room;
      }
      Frame f[64];
      const std::uint32_t k = dev().rx(f, 64);
      frames_.insert(frames_.end(), f, f + k);
      if (!k) std::this_thread::yield();
    }
    ASSERT_EQ(frames_.size(), n) << "the sim delivered too few frames in 10 s";
    for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(seq_of(frames_[i]), i) << "frame " << i;
  }
  Frame& frame(std::uint64_t seq) { return frames_.at(seq); }

  // Transmits the frames (the hardware checks them in this order), one
  // tx() call each or, with one_call, all in one (at most a ring's worth:
  // the hardware then takes them in one batch), waits for all their
  // completions, then stops the generator so the counters are final.
  void transmit(const std::vector<Frame>& fr, bool one_call = false) {
    if (one_call) {
      ASSERT_LE(fr.size(), opt_.ring_size);
      ASSERT_EQ(dev().tx(fr.data(), std::uint32_t(fr.size())), fr.size());
    } else {
      for (const Frame& f : fr) ASSERT_EQ(dev().tx(&f, 1), 1u);
    }
    std::uint64_t done = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (done < fr.size() && Clock::now() < deadline) {
      Buf b[64];
      done += dev().complete(b, 64);
    }
    ASSERT_EQ(done, fr.size()) << "completions missing after 10 s";
    dev().quiesce();  // two hardware passes: every counter of the TX pass is written
  }

  static std::uint64_t seq_of(const Frame& f) {
    std::uint64_t id;
    std::memcpy(&id, f.buf.base + f.off + f.len - 16, 8);
    return id & ((std::uint64_t{1} << 48) - 1);
  }

 private:
  SimOptions opt_;
  bool contiguous_;
  std::vector<std::unique_ptr<Device>> devs_;
  std::vector<std::byte*> heap_;
  std::vector<Frame> frames_;
  std::uint64_t posted_ = 0;
};

// The wire counters after a transmit(), all four at once.
struct Wire {
  std::uint64_t received, duplicate, corrupt, unchecked;
};
void expect_wire(const DeviceStats& st, Wire w) {
  EXPECT_EQ(st.wire_received, w.received) << "frames the hardware transmitted and checked";
  EXPECT_EQ(st.wire_duplicate, w.duplicate) << "frames seen before";
  EXPECT_EQ(st.wire_corrupt, w.corrupt) << "frames whose stamp did not verify";
  EXPECT_EQ(st.wire_unchecked, w.unchecked) << "frames behind the duplicate window";
}

SimOptions one_port(std::uint64_t frames) {
  SimOptions o;
  o.devices = 1;
  o.ring_size = 64;
  o.max_frames = frames;
  return o;
}

TEST(SimWire, AFrameTransmittedTwiceIsADuplicate) {
  Port p(one_port(8));
  ASSERT_NO_FATAL_FAILURE(p.receive(8));
  std::vector<Frame> tx;
  for (std::uint64_t s = 0; s < 8; ++s) tx.push_back(p.frame(s));
  tx.push_back(p.frame(3));
  ASSERT_NO_FATAL_FAILURE(p.transmit(tx));
  expect_wire(p.dev().stats(), {.received = 9, .duplicate = 1, .corrupt = 0, .unchecked = 0});
}

TEST(SimWire, AFrameChangedInFlightIsCorrupt) {
  Port p(one_port(4));
  ASSERT_NO_FATAL_FAILURE(p.receive(4));
  Frame f1 = p.frame(1), f2 = p.frame(2), f3 = p.frame(3);
  f1.buf.base[f1.off + f1.len - 1] ^= std::byte{1};  // the check word's last byte
  f2.len -= 1;                                       // a frame cut short
  f3.off += f3.len;                                  // an empty frame: no stamp at all
  f3.len = 0;
  ASSERT_NO_FATAL_FAILURE(p.transmit({p.frame(0), f1, f2, f3}));
  expect_wire(p.dev().stats(), {.received = 4, .duplicate = 0, .corrupt = 3, .unchecked = 0});
}

// A window of 128 sequence numbers: the check slides with the newest frame
// and still catches duplicates inside the window; frames behind it are
// counted as unchecked, never as duplicates or corrupt.
// Both one frame per tx() call and all in one batch.
TEST(SimWire, TheDuplicateWindowSlidesAndKeepsRecentFrames) {
  for (bool one_call : {false, true}) {
    SCOPED_TRACE(one_call ? "one batch" : "one frame per call");
    SimOptions o = one_port(320);
    o.verify_window = 128;
    Port p(o);
    ASSERT_NO_FATAL_FAILURE(p.receive(320));
    std::vector<Frame> tx;
    for (std::uint64_t s : {5, 5, 100, 200, 100, 130, 200, 300, 200, 130, 319}) tx.push_back(p.frame(s));
    // 5 new, 5 dup, 100 new, 200 new (window now [128, 256)), 100 behind
    // it, 130 new, 200 dup, 300 new (window [192, 320)), 200 still a dup,
    // 130 behind it, 319 new.
    ASSERT_NO_FATAL_FAILURE(p.transmit(tx, one_call));
    expect_wire(p.dev().stats(), {.received = 11, .duplicate = 3, .corrupt = 0, .unchecked = 2});
  }
}

// The hardware records a batch's sequence numbers a run at a time (frames
// inside one 64-number word): repeats inside a run, across runs and after
// a corrupt frame are all found, in one batch.
TEST(SimWire, DuplicatesInsideOneBatchAreAllFound) {
  Port p(one_port(200));
  ASSERT_NO_FATAL_FAILURE(p.receive(200));
  Frame cut = p.frame(3);
  cut.len -= 1;  // the stamp moves: corrupt, and not recorded
  std::vector<Frame> tx;
  for (std::uint64_t s : {0, 1, 2, 2, 63, 64, 65}) tx.push_back(p.frame(s));
  tx.push_back(cut);
  for (std::uint64_t s : {3, 1, 127, 128, 0, 191, 64, 3}) tx.push_back(p.frame(s));
  // Repeats: the second 2 (same run), 1 and 0 (earlier runs of word 0), 64
  // (word 1), the second 3 (after the first, which followed the cut one).
  ASSERT_NO_FATAL_FAILURE(p.transmit(tx, true));
  expect_wire(p.dev().stats(), {.received = 16, .duplicate = 5, .corrupt = 1, .unchecked = 0});
}

// The device writes every byte of every frame: the payload between the
// 42-byte header and the 16-byte stamp is the sequence number's low byte,
// for every length from the shortest (2 payload bytes) up, across the
// lengths where the writer changes method (64, 80, 81). The header's
// length fields and IPv4 checksum are right for each.
TEST(SimWire, EveryPayloadByteIsWritten) {
  SimOptions o = one_port(512);
  o.sizes = {60, 61, 64, 65, 66, 69, 74, 75, 80, 81, 200};
  Port p(o);
  ASSERT_NO_FATAL_FAILURE(p.receive(512));
  std::vector<std::uint32_t> seen_len;
  for (std::uint64_t s = 0; s < 512; ++s) {
    const Frame& f = p.frame(s);
    seen_len.push_back(f.len);
    const std::byte want = std::byte(s & 0xff);
    for (std::uint32_t i = 42; i < f.len - 16; ++i)
      ASSERT_EQ(f.buf.base[f.off + i], want) << "frame " << s << " of " << f.len << " bytes, byte " << i;
    const auto* b = reinterpret_cast<const std::uint8_t*>(f.buf.base + f.off);
    const auto be16 = [&](std::uint32_t at) { return std::uint32_t(b[at]) << 8 | b[at + 1]; };
    ASSERT_EQ(be16(16), f.len - 14) << "IPv4 total length, frame " << s;
    ASSERT_EQ(be16(18), s & 0xffff) << "IPv4 id, frame " << s;
    ASSERT_EQ(be16(38), f.len - 34) << "UDP length, frame " << s;
    std::uint32_t sum = 0;
    for (std::uint32_t i = 14; i < 34; i += 2) sum += be16(i);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    ASSERT_EQ(sum, 0xffffu) << "IPv4 header checksum, frame " << s;
  }
  for (std::uint32_t len : o.sizes)
    EXPECT_NE(std::find(seen_len.begin(), seen_len.end(), len), seen_len.end()) << "no frame of " << len;
}

// RX frames start at the headroom plus the buffer's colour, 64 bytes times
// (address / 4096) mod C, with C = 16 while the largest size leaves room,
// fewer (a power of two) as it grows, 1 with colouring off; the device
// writes there and nowhere else in the buffer.
TEST(SimWire, RxFramesStartAtTheBuffersColour) {
  struct Case {
    std::vector<std::uint32_t> sizes;
    bool colour;
    std::uint32_t colours;
  };
  const Case cases[] = {
      {{64}, true, 16},    {{60, 1500}, true, 16}, {{2880}, true, 16}, {{2881}, true, 8},
      {{3777}, true, 1},   {{3776}, true, 2},      {{3840}, true, 1},  {{64}, false, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("largest size " + std::to_string(c.sizes.back()) + (c.colour ? "" : ", colour off"));
    SimOptions o = one_port(128);
    o.sizes = c.sizes;
    o.colour = c.colour;
    Port p(o, true);  // 128 consecutive pages: every colour 8 times
    ASSERT_NO_FATAL_FAILURE(p.receive(128));
    std::vector<std::uint32_t> offs;
    for (std::uint64_t s = 0; s < 128; ++s) {
      const Frame& f = p.frame(s);
      const auto page = reinterpret_cast<std::uintptr_t>(f.buf.base) / kBufBytes;
      const std::uint32_t want = 256 + 64 * std::uint32_t(page % c.colours);
      ASSERT_EQ(f.off, want) << "frame " << s;
      ASSERT_LE(f.off + f.len, kBufBytes) << "frame " << s;
      for (std::uint32_t i = 0; i < kBufBytes; ++i) {
        if (i >= f.off && i < f.off + f.len) continue;
        ASSERT_EQ(f.buf.base[i], std::byte{0xa5}) << "frame " << s << ": byte " << i << " outside it written";
      }
      offs.push_back(f.off);
    }
    std::sort(offs.begin(), offs.end());
    const auto distinct = std::unique(offs.begin(), offs.end()) - offs.begin();
    EXPECT_EQ(distinct, c.colours);
  }
}

// The device sees addresses and lengths; the driver side pairs its buffers
// back up by position. Completions come back in transmission order, each
// buffer once, and after a stop reclaim() hands back exactly what the
// device still held: the posted buffers no frame was written into and the
// TX buffers not completed (here held by a 1 s completion delay).
// Page-aligned heap blocks, freed on destruction: declared before a Port,
// they outlive its device.
struct Blocks {
  explicit Blocks(std::size_t n) : v(n) {
    for (auto& b : v) b = static_cast<std::byte*>(std::aligned_alloc(kBufBytes, kBufBytes));
  }
  ~Blocks() {
    for (std::byte* b : v) std::free(b);
  }
  std::vector<std::byte*> v;
};

TEST(SimWire, CompletionsInOrderAndReclaimHandsBackWhatTheDeviceHeld) {
  {
    const Blocks blocks(8);
    const std::vector<std::byte*>& extra = blocks.v;
    Port p(one_port(16));  // 16 frames, then the wire is quiet
    ASSERT_NO_FATAL_FAILURE(p.receive(16));
    Device& dev = p.dev();
    for (std::byte* b : extra) {
      const Buf buf{b, nullptr};
      ASSERT_EQ(dev.fill(&buf, 1), 1u);
    }
    // 10 frames in two calls, in an order unrelated to their sequence.
    std::vector<Frame> tx;
    std::vector<std::byte*> want;
    for (std::uint64_t s : {9, 0, 8, 1, 7, 2, 6, 3, 5, 4}) {
      tx.push_back(p.frame(s));
      want.push_back(p.frame(s).buf.base);
    }
    ASSERT_EQ(dev.tx(tx.data(), 4), 4u);
    ASSERT_EQ(dev.tx(tx.data() + 4, 6), 6u);
    std::vector<std::byte*> done;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (done.size() < want.size() && Clock::now() < deadline) {
      Buf b[3];  // fewer than one batch per call
      for (std::uint32_t i = 0, n = dev.complete(b, 3); i < n; ++i) done.push_back(b[i].base);
    }
    EXPECT_EQ(done, want) << "completions in transmission order, each buffer once";
    EXPECT_EQ(dev.tx_outstanding(), 0u);
    dev.quiesce();
    expect_wire(dev.stats(), {.received = 10, .duplicate = 0, .corrupt = 0, .unchecked = 0});
    Buf got[64];
    std::uint32_t n = 0;
    while (std::uint32_t k = dev.reclaim(got + n, 64 - n)) n += k;
    EXPECT_EQ(n, extra.size()) << "reclaim: the posted buffers without a frame";
  }
  {
    const Blocks blocks(8);
    const std::vector<std::byte*>& extra = blocks.v;
    SimOptions o = one_port(16);
    o.tx_delay_ns = 1'000'000'000;
    Port p(o);
    ASSERT_NO_FATAL_FAILURE(p.receive(16));
    Device& dev = p.dev();
    for (std::byte* b : extra) {
      const Buf buf{b, nullptr};
      ASSERT_EQ(dev.fill(&buf, 1), 1u);
    }
    std::vector<Frame> tx{p.frame(2), p.frame(11), p.frame(5)};
    ASSERT_EQ(dev.tx(tx.data(), 3), 3u);
    // Normally nothing completes before the delay; a thread stalled for a
    // second would see some, and they count as handed back all the same.
    Buf got[64];
    const std::uint32_t early = dev.complete(got, 64);
    std::vector<std::byte*> back;
    for (std::uint32_t i = 0; i < early; ++i) back.push_back(got[i].base);
    dev.quiesce();
    while (std::uint32_t n = dev.reclaim(got, 5))  // a few at a time
      for (std::uint32_t i = 0; i < n; ++i) back.push_back(got[i].base);
    std::vector<std::byte*> want(extra);
    for (const Frame& f : tx) want.push_back(f.buf.base);
    std::sort(back.begin(), back.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(back, want) << "reclaim: the 8 posted buffers without a frame and the 3 pending TX";
    EXPECT_EQ(dev.tx_outstanding(), 0u);
    EXPECT_EQ(dev.stats().reclaimed, 11u - early);
  }
}

TEST(SimWire, VerifyWindowMustBeAPowerOfTwoInRange) {
  for (std::uint32_t w : {0u, 32u, 100u, (1u << 30) + 1, 1u << 31}) {
    SimOptions o;
    o.verify_window = w;
    try {
      open_sim_devices(o);
      ADD_FAILURE() << "verify_window " << w << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("verify_window"), std::string::npos) << e.what();
    }
  }
  SimOptions o;
  o.verify_window = 64;
  EXPECT_NO_THROW(open_sim_devices(o));
}

}  // namespace
