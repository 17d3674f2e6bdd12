// pagepool: verdict programs — the XDP program of the forwarding path.
//
// A program sees each received frame through an xdp_md-like context and
// returns its fate: DROP, PASS (to the slow path), TX (back out of the
// device it came in on) or REDIRECT (out of another device). Programs run
// on the polling thread of the ingress device, a batch at a time (one
// virtual call per batch; the per-frame work inlines).
//
// Built-in programs (make_builtin): drop, tx, redirect, l3-split; see
// builtin_names(). Any callable `Verdict(XdpMd&) noexcept` becomes a
// program with make_program().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace pagepool::fwd {

// The context a program gets for one frame. The frame is
// [data, data_end); the bytes [data_hard_start, data) are headroom the
// program may grow the frame into (like bpf_xdp_adjust_head), and it may
// shrink it from either end. The forwarder takes the frame as the program
// leaves data/data_end; it drops a frame whose bounds leave the buffer
// (reason kAborted). The program may write every byte of the buffer.
struct XdpMd {
  std::byte* data;
  std::byte* data_end;
  std::byte* data_hard_start;  // first byte of the buffer
  std::uint32_t buf_end;       // bytes of the buffer from data_hard_start
  std::uint32_t ingress_dev;   // index of the ingress device in the forwarder
  std::uint32_t rx_queue;      // its RX queue
  std::uint32_t ndevs;         // devices in the forwarder (REDIRECT targets 0..ndevs-1)
};

enum class Action : std::uint8_t { kDrop, kPass, kTx, kRedirect };

// Why a frame was dropped. One list: the forwarder counts each.
#define PAGEPOOL_FWD_DROP_REASONS(X)                                                  \
  X(program)    /* the program returned DROP */                                       \
  X(truncated)  /* a header ended past data_end */                                    \
  X(malformed)  /* a header field is impossible (version, length, header size) */     \
  X(tx_full)    /* the target's TX queue was full */                                  \
  X(bad_target) /* REDIRECT to a device that does not exist */                        \
  X(aborted)    /* the program left data/data_end outside the buffer */

enum class DropReason : std::uint8_t {
#define PAGEPOOL_FWD_ENUM(n) n,
  PAGEPOOL_FWD_DROP_REASONS(PAGEPOOL_FWD_ENUM)
#undef PAGEPOOL_FWD_ENUM
  kCount
};
inline constexpr std::size_t kDropReasons = static_cast<std::size_t>(DropReason::kCount);
// "program", "truncated", ...
const char* drop_reason_name(DropReason r) noexcept;

struct Verdict {
  Action action;
  DropReason reason;     // with kDrop
  std::uint16_t target;  // with kRedirect: device index

  static constexpr Verdict drop(DropReason r = DropReason::program) noexcept {
    return {Action::kDrop, r, 0};
  }
  static constexpr Verdict pass() noexcept { return {Action::kPass, DropReason::program, 0}; }
  static constexpr Verdict tx() noexcept { return {Action::kTx, DropReason::program, 0}; }
  static constexpr Verdict redirect(std::uint16_t dev) noexcept {
    return {Action::kRedirect, DropReason::program, dev};
  }
};

class Program {
 public:
  virtual ~Program() = default;
  virtual const std::string& name() const noexcept = 0;
  // Polling thread of the ingress device: out[i] is the verdict for ctx[i],
  // i < n. May modify the frames and their bounds (see XdpMd).
  virtual void run(XdpMd* ctx, Verdict* out, std::uint32_t n) noexcept = 0;
};

// A program from a callable `Verdict f(XdpMd&) noexcept`; the per-frame call
// inlines into the batch loop.
template <class F>
std::unique_ptr<Program> make_program(std::string name, F f) {
  class Callable final : public Program {
   public:
    Callable(std::string n, F fn) : name_(std::move(n)), f_(std::move(fn)) {}
    const std::string& name() const noexcept override { return name_; }
    void run(XdpMd* ctx, Verdict* out, std::uint32_t n) noexcept override {
      for (std::uint32_t i = 0; i < n; ++i) out[i] = f_(ctx[i]);
    }

   private:
    std::string name_;
    F f_;
  };
  return std::make_unique<Callable>(std::move(name), std::move(f));
}

// Names make_builtin accepts, in a stable order.
std::span<const std::string_view> builtin_names() noexcept;
// A built-in program for a forwarder of ndevs devices (>= 1):
//  drop      every frame, reason program (no parsing)
//  tx        swaps the Ethernet addresses and sends the frame back out
//  redirect  sends the frame out of the paired device (0<->1, 2<->3, ...;
//            a device without a pair sends back out of itself)
//  l3-split  hashes the IPv4/IPv6 5-tuple over devices 0..ndevs-1 (for
//            fragments and protocols without ports: addresses and protocol,
//            so a datagram's fragments stay together, as NIC RSS does);
//            non-IP frames go to the slow path (PASS)
// All but drop parse Ethernet (up to two VLAN tags), IPv4/IPv6 (with
// extension headers) and UDP/TCP with bounds checks, and drop a truncated
// or malformed frame with that reason.
// Throws std::invalid_argument naming the known programs for an unknown
// name, or for ndevs == 0.
std::unique_ptr<Program> make_builtin(std::string_view name, std::uint32_t ndevs);

}  // namespace pagepool::fwd
