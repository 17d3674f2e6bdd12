// libFuzzer target: the frame parser and every built-in verdict program on
// arbitrary bytes. Built and run by fuzz/run.sh (ASan + UBSan).
//
// Reads past data_end are caught two ways: the parser runs on an
// allocation of exactly the input's size, and the programs run on a
// 4096-byte buffer (frame at 256 bytes of headroom, as the forwarder lays
// it out) whose bytes outside [data, data_end) are ASan-poisoned while the
// program runs. Invariants checked: parser offsets and key inside the
// frame, verdicts consistent with the parse status, targets < ndevs,
// frames not moved, only tx's MAC swap written.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "pagepool/fwd/parse.hpp"
#include "pagepool/fwd/program.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PP_FUZZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define PP_FUZZ_ASAN 1
#endif
#ifdef PP_FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace {

using namespace pagepool::fwd;

constexpr std::size_t kBuf = 4096, kHeadroom = 256;
constexpr std::uint32_t kNdevs[] = {1, 2, 3, 4, 7};

// A failed invariant: abort so libFuzzer saves the input.
#define CHECK(c)                                                          \
  do {                                                                    \
    if (!(c)) {                                                           \
      __builtin_printf("invariant failed: %s (line %d)\n", #c, __LINE__); \
      std::abort();                                                       \
    }                                                                     \
  } while (0)

struct Programs {
  // progs[i][j]: builtin_names()[j] for kNdevs[i] devices.
  std::vector<std::vector<std::unique_ptr<Program>>> progs;
  Programs() {
    for (std::uint32_t n : kNdevs) {
      progs.emplace_back();
      for (std::string_view name : builtin_names()) progs.back().push_back(make_builtin(name, n));
    }
  }
};

ParseStatus check_parse(const std::uint8_t* in, std::size_t size, Parsed* p) {
  // Exactly sized, so the allocation's end is data_end.
  std::unique_ptr<std::byte[]> copy(new std::byte[size]);
  if (size) std::memcpy(copy.get(), in, size);
  const ParseStatus st = parse_frame(copy.get(), copy.get() + size, p);
  if (st == ParseStatus::kOk || st == ParseStatus::kNotIp) {
    CHECK(size >= kEthHeaderLen);
    CHECK(p->vlans <= kMaxVlanTags);
    CHECK(p->l3_off == kEthHeaderLen + kVlanTagLen * p->vlans);
    CHECK(p->l3_off <= size);
  }
  if (st == ParseStatus::kOk) {
    const FlowKey& k = p->key;
    CHECK(p->ethertype == (k.family == 4 ? kEtherTypeIpv4 : kEtherTypeIpv6));
    CHECK(k.family == 4 || k.family == 6);
    CHECK(p->l4_off >= p->l3_off + (k.family == 4 ? kIpv4MinHeaderLen : kIpv6HeaderLen));
    CHECK(p->l4_off <= size);
    if (p->has_ports) {
      CHECK(k.proto == kIpProtoUdp || k.proto == kIpProtoTcp);
      CHECK(p->l4_off + (k.proto == kIpProtoUdp ? kUdpHeaderLen : kTcpMinHeaderLen) <= size);
      const auto* l4 = in + p->l4_off;
      CHECK(k.sport == (l4[0] << 8 | l4[1]));
      CHECK(k.dport == (l4[2] << 8 | l4[3]));
    } else {
      CHECK(k.sport == 0 && k.dport == 0);
    }
    if (k.family == 4) {
      for (int i = 4; i < 16; ++i) CHECK(k.saddr[i] == 0 && k.daddr[i] == 0);
      CHECK(std::memcmp(k.saddr, in + p->l3_off + 12, 4) == 0);
      CHECK(std::memcmp(k.daddr, in + p->l3_off + 16, 4) == 0);
    } else {
      CHECK(std::memcmp(k.saddr, in + p->l3_off + 8, 16) == 0);
      CHECK(std::memcmp(k.daddr, in + p->l3_off + 24, 16) == 0);
    }
    CHECK(flow_hash(k) == flow_hash(FlowKey(k)));
  }
  CHECK(parse_status_name(st)[0] != 'u');
  return st;
}

// The verdict a built-in must return, given the parse status.
void check_verdict(std::string_view name, ParseStatus st, const Verdict& v, std::uint32_t ndevs,
                   std::uint32_t ingress) {
  CHECK(static_cast<unsigned>(v.action) <= static_cast<unsigned>(Action::kRedirect));
  CHECK(static_cast<std::size_t>(v.reason) < kDropReasons);
  if (name == "drop") {
    CHECK(v.action == Action::kDrop && v.reason == DropReason::program);
    return;
  }
  if (st == ParseStatus::kTruncated || st == ParseStatus::kMalformed) {
    CHECK(v.action == Action::kDrop);
    CHECK(v.reason == (st == ParseStatus::kTruncated ? DropReason::truncated
                                                     : DropReason::malformed));
    return;
  }
  if (name == "tx") {
    CHECK(v.action == Action::kTx);
  } else if (name == "redirect") {
    CHECK(v.action == Action::kRedirect);
    CHECK(v.target < ndevs);
    CHECK(v.target == ((ingress ^ 1u) < ndevs ? (ingress ^ 1u) : ingress));
  } else if (name == "l3-split") {
    if (st == ParseStatus::kNotIp) {
      CHECK(v.action == Action::kPass);
    } else {
      CHECK(v.action == Action::kRedirect);
      CHECK(v.target < ndevs);
    }
  } else {
    CHECK(false && "unknown built-in");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* in, std::size_t size) {
  static Programs programs;
  static std::byte* buf = static_cast<std::byte*>(std::aligned_alloc(64, kBuf));
  static std::byte* fill = [] {  // what the buffer holds outside the frame
    auto* f = static_cast<std::byte*>(std::malloc(kBuf));
    std::memset(f, 0x5a, kBuf);
    return f;
  }();

  Parsed parsed;
  const ParseStatus st = check_parse(in, size, &parsed);

  // A frame that does not fit the buffer is never received; the parser
  // run above covers those sizes.
  if (size > kBuf - kHeadroom) return 0;
  const std::size_t len = size;
  const std::span<const std::string_view> names = builtin_names();
  for (std::size_t i = 0; i < std::size(kNdevs); ++i) {
    const std::uint32_t ndevs = kNdevs[i];
    const std::uint32_t ingress = static_cast<std::uint32_t>(size % ndevs);
    for (std::size_t j = 0; j < names.size(); ++j) {
      // drop and tx do not look at ndevs: once is enough.
      if (i > 0 && (names[j] == "drop" || names[j] == "tx")) continue;
      std::memcpy(buf, fill, kBuf);
      std::memcpy(buf + kHeadroom, in, len);
      XdpMd md{};
      md.data_hard_start = buf;
      md.data = buf + kHeadroom;
      md.data_end = md.data + len;
      md.buf_end = kBuf;
      md.ingress_dev = ingress;
      md.rx_queue = 0;
      md.ndevs = ndevs;
      Verdict v{};
      // Built-ins touch nothing outside the frame: poison the rest.
      POISON(buf, kHeadroom);
      POISON(buf + kHeadroom + len, kBuf - kHeadroom - len);
      programs.progs[i][j]->run(&md, &v, 1);
      UNPOISON(buf, kBuf);

      CHECK(md.data_hard_start == buf && md.buf_end == kBuf);
      CHECK(md.data == buf + kHeadroom && md.data_end == md.data + len);
      check_verdict(names[j], st, v, ndevs, ingress);
      // Only tx writes, and only the swap of the two MAC addresses.
      std::size_t same_from = 0;
      if (v.action == Action::kTx) {
        CHECK(len >= 12);
        CHECK(std::memcmp(md.data, in + 6, 6) == 0);
        CHECK(std::memcmp(md.data + 6, in, 6) == 0);
        same_from = 12;
      }
      CHECK(std::memcmp(md.data + same_from, in + same_from, len - same_from) == 0);
      CHECK(std::memcmp(buf, fill, kHeadroom) == 0);
      CHECK(std::memcmp(buf + kHeadroom + len, fill, kBuf - kHeadroom - len) == 0);
    }
  }
  return 0;
}
