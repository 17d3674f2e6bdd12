// The built-in verdict programs (include/pagepool/fwd/program.hpp).
//
// Each is a small function object whose call inlines, together with
// parse_frame, into make_program's batch loop: one virtual call per batch,
// no call per frame.
#include <array>
#include <stdexcept>
#include <string>

#include "pagepool/fwd/parse.hpp"
#include "pagepool/fwd/program.hpp"

namespace pagepool::fwd {

const char* drop_reason_name(DropReason r) noexcept {
  static constexpr const char* kNames[] = {
#define PAGEPOOL_FWD_NAME(n) #n,
      PAGEPOOL_FWD_DROP_REASONS(PAGEPOOL_FWD_NAME)
#undef PAGEPOOL_FWD_NAME
  };
  static_assert(std::size(kNames) == kDropReasons);
  const auto i = static_cast<std::size_t>(r);
  return i < kDropReasons ? kNames[i] : "unknown";
}

namespace {

// Maximum forwarder size a program can address: Verdict::target is 16 bits.
constexpr std::uint32_t kMaxDevs = 65536;

constexpr std::array<std::string_view, 4> kBuiltinNames = {"drop", "tx", "redirect", "l3-split"};

// The verdict for a frame the parser rejected. Only kTruncated and
// kMalformed reach here.
[[gnu::always_inline]] inline Verdict parse_error(ParseStatus s) noexcept {
  return Verdict::drop(s == ParseStatus::kTruncated ? DropReason::truncated
                                                    : DropReason::malformed);
}

[[gnu::always_inline]] inline bool parse_failed(ParseStatus s) noexcept {
  return s == ParseStatus::kTruncated || s == ParseStatus::kMalformed;
}

struct DropProgram {
  Verdict operator()(XdpMd&) const noexcept { return Verdict::drop(DropReason::program); }
};

// Swap the Ethernet addresses and send the frame back where it came from
// (the classic XDP_TX reflector). The parser guarantees 14 bytes.
struct TxProgram {
  Verdict operator()(XdpMd& ctx) const noexcept {
    Parsed p;
    const ParseStatus s = parse_frame(ctx.data, ctx.data_end, &p);
    if (parse_failed(s)) [[unlikely]] return parse_error(s);
    std::byte tmp[6];
    std::memcpy(tmp, ctx.data, 6);
    std::memmove(ctx.data, ctx.data + 6, 6);
    std::memcpy(ctx.data + 6, tmp, 6);
    return Verdict::tx();
  }
};

// Devices in pairs 0<->1, 2<->3, ...; the last of an odd count sends back
// out of itself.
struct RedirectProgram {
  std::uint32_t ndevs;
  Verdict operator()(XdpMd& ctx) const noexcept {
    Parsed p;
    const ParseStatus s = parse_frame(ctx.data, ctx.data_end, &p);
    if (parse_failed(s)) [[unlikely]] return parse_error(s);
    const std::uint32_t peer = ctx.ingress_dev ^ 1u;
    return Verdict::redirect(static_cast<std::uint16_t>(peer < ndevs ? peer : ctx.ingress_dev));
  }
};

// Spread flows over all devices by hash, so one flow keeps one device (and
// its order). Non-IP goes to the slow path.
struct L3SplitProgram {
  std::uint32_t ndevs;
  Verdict operator()(XdpMd& ctx) const noexcept {
    Parsed p;
    const ParseStatus s = parse_frame(ctx.data, ctx.data_end, &p);
    if (s != ParseStatus::kOk) [[unlikely]]
      return s == ParseStatus::kNotIp ? Verdict::pass() : parse_error(s);
    // Every fragment of a datagram hashes like the others, by addresses and
    // protocol (as NIC RSS does): only the first carries the ports, and
    // splitting a datagram's fragments over devices would reorder them.
    if (p.fragment) p.key.sport = p.key.dport = 0;
    // hash * ndevs / 2^32: a uniform hash maps uniformly to [0, ndevs)
    // without a division.
    const std::uint64_t t = (std::uint64_t{flow_hash(p.key)} * ndevs) >> 32;
    return Verdict::redirect(static_cast<std::uint16_t>(t));
  }
};

}  // namespace

std::span<const std::string_view> builtin_names() noexcept { return kBuiltinNames; }

std::unique_ptr<Program> make_builtin(std::string_view name, std::uint32_t ndevs) {
  if (ndevs == 0 || ndevs > kMaxDevs)
    throw std::invalid_argument("make_builtin: ndevs must be in [1, " + std::to_string(kMaxDevs) +
                                "], got " + std::to_string(ndevs));
  std::string n(name);
  if (name == "drop") return make_program(std::move(n), DropProgram{});
  if (name == "tx") return make_program(std::move(n), TxProgram{});
  if (name == "redirect") return make_program(std::move(n), RedirectProgram{ndevs});
  if (name == "l3-split") return make_program(std::move(n), L3SplitProgram{ndevs});
  std::string msg = "make_builtin: unknown program '" + n + "'; known:";
  for (std::string_view b : kBuiltinNames) (msg += ' ') += b;
  throw std::invalid_argument(msg);
}

}  // namespace pagepool::fwd
