// The built-in verdict programs and make_program: verdicts, the MAC swap,
// redirect pairing, l3-split's spread and determinism, errors.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "frames.hpp"
#include "pagepool/fwd/parse.hpp"
#include "pagepool/fwd/program.hpp"

namespace pagepool::fwd {

// Test-only: gtest needs == and a printer; found by ADL next to Verdict.
bool operator==(const Verdict& a, const Verdict& b) {
  return a.action == b.action && a.reason == b.reason && a.target == b.target;
}
void PrintTo(const Verdict& v, std::ostream* os) {
  static const char* const kActions[] = {"DROP", "PASS", "TX", "REDIRECT"};
  *os << kActions[static_cast<int>(v.action)] << "(" << drop_reason_name(v.reason) << ", "
      << v.target << ")";
}

namespace {

using test::build;
using test::Frame;
using test::FrameSpec;
using test::Rx;

// Runs p on one frame received on device `ingress`; returns the verdict and
// leaves the frame (as the program left it) in *after.
Verdict run1(Program& p, const std::vector<std::byte>& frame, std::uint32_t ingress = 0,
             std::uint32_t ndevs = 1, std::vector<std::byte>* after = nullptr) {
  Rx rx(frame, ingress, ndevs);
  Verdict v{};
  p.run(&rx.md, &v, 1);
  if (after) *after = rx.frame();
  // No built-in moves the frame.
  EXPECT_EQ(rx.md.data, rx.buf.data() + Rx::kHeadroom);
  EXPECT_EQ(rx.md.data_end, rx.md.data + frame.size());
  return v;
}

std::vector<std::byte> truncated_frame() {
  std::vector<std::byte> f = build(test::udp4()).bytes;
  f.resize(30);  // inside the IPv4 header
  return f;
}
std::vector<std::byte> malformed_frame() {
  Frame f = build(test::udp4());
  test::put8(f.bytes, f.l3_off, 0x44);  // IHL 4
  return f.bytes;
}

TEST(Builtins, NamesInStableOrder) {
  const auto names = builtin_names();
  ASSERT_EQ(names.size(), 4u);
  EXPECT_EQ(names[0], "drop");
  EXPECT_EQ(names[1], "tx");
  EXPECT_EQ(names[2], "redirect");
  EXPECT_EQ(names[3], "l3-split");
  for (std::string_view n : names) EXPECT_EQ(make_builtin(n, 2)->name(), n);
}

TEST(Builtins, UnknownNameListsTheKnownOnes) {
  try {
    make_builtin("l4-split", 2);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("l4-split"), std::string::npos) << msg;
    for (std::string_view n : builtin_names())
      EXPECT_NE(msg.find(std::string(n)), std::string::npos) << n << " missing in: " << msg;
  }
  EXPECT_THROW(make_builtin("", 1), std::invalid_argument);
  EXPECT_THROW(make_builtin("DROP", 1), std::invalid_argument);
}

TEST(Builtins, NdevsOutOfRangeThrows) {
  for (std::string_view n : builtin_names()) {
    EXPECT_THROW(make_builtin(n, 0), std::invalid_argument) << n;
    EXPECT_THROW(make_builtin(n, 65537), std::invalid_argument) << n;
    EXPECT_NO_THROW(make_builtin(n, 65536)) << n;
  }
  try {
    make_builtin("tx", 0);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("ndevs"), std::string::npos) << e.what();
  }
}

TEST(Builtins, DropReasonNames) {
  EXPECT_STREQ(drop_reason_name(DropReason::program), "program");
  EXPECT_STREQ(drop_reason_name(DropReason::truncated), "truncated");
  EXPECT_STREQ(drop_reason_name(DropReason::malformed), "malformed");
  EXPECT_STREQ(drop_reason_name(DropReason::tx_full), "tx_full");
  EXPECT_STREQ(drop_reason_name(DropReason::bad_target), "bad_target");
  EXPECT_STREQ(drop_reason_name(DropReason::aborted), "aborted");
  EXPECT_STREQ(drop_reason_name(DropReason::kCount), "unknown");
}

TEST(Builtins, DropDropsEverythingUntouched) {
  auto p = make_builtin("drop", 4);
  for (const auto& frame : {build(test::udp4()).bytes, build(test::arp()).bytes,
                            truncated_frame(), malformed_frame(), std::vector<std::byte>{}}) {
    std::vector<std::byte> after;
    EXPECT_EQ(run1(*p, frame, 1, 4, &after), Verdict::drop(DropReason::program));
    EXPECT_EQ(after, frame);
  }
}

TEST(Builtins, TxSwapsMacs) {
  auto p = make_builtin("tx", 2);
  for (FrameSpec s : {test::udp4(), test::tcp6(), test::arp()}) {
    s.dst_mac = {0x11, 0x12, 0x13, 0x14, 0x15, 0x16};
    s.src_mac = {0x21, 0x22, 0x23, 0x24, 0x25, 0x26};
    const std::vector<std::byte> frame = build(s).bytes;
    std::vector<std::byte> after;
    EXPECT_EQ(run1(*p, frame, 1, 2, &after), Verdict::tx());
    ASSERT_EQ(after.size(), frame.size());
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(std::to_integer<int>(after[i]), 0x21 + i);
      EXPECT_EQ(std::to_integer<int>(after[6 + i]), 0x11 + i);
    }
    EXPECT_TRUE(std::equal(after.begin() + 12, after.end(), frame.begin() + 12));
  }
}

TEST(Builtins, ParseErrorsDropWithTheirReasonAndLeaveTheFrame) {
  for (std::string_view n : {"tx", "redirect", "l3-split"}) {
    auto p = make_builtin(n, 4);
    std::vector<std::byte> after;
    const std::vector<std::byte> t = truncated_frame(), m = malformed_frame();
    EXPECT_EQ(run1(*p, t, 0, 4, &after), Verdict::drop(DropReason::truncated)) << n;
    EXPECT_EQ(after, t);
    EXPECT_EQ(run1(*p, m, 0, 4, &after), Verdict::drop(DropReason::malformed)) << n;
    EXPECT_EQ(after, m);
    EXPECT_EQ(run1(*p, {}, 0, 4), Verdict::drop(DropReason::truncated)) << n;
    std::vector<std::byte> short_eth(13);
    EXPECT_EQ(run1(*p, short_eth, 0, 4), Verdict::drop(DropReason::truncated)) << n;
  }
}

TEST(Builtins, RedirectPairsDevices) {
  // expected[ndevs - 1][ingress]
  const std::vector<std::vector<std::uint16_t>> expected = {
      {0}, {1, 0}, {1, 0, 2}, {1, 0, 3, 2}};
  const auto frame = build(test::tcp4()).bytes;
  const auto arp = build(test::arp()).bytes;
  for (std::uint32_t ndevs = 1; ndevs <= 4; ++ndevs) {
    auto p = make_builtin("redirect", ndevs);
    for (std::uint32_t in = 0; in < ndevs; ++in) {
      const Verdict want = Verdict::redirect(expected[ndevs - 1][in]);
      std::vector<std::byte> after;
      EXPECT_EQ(run1(*p, frame, in, ndevs, &after), want) << ndevs << " " << in;
      EXPECT_EQ(after, frame);  // forwarded as is
      EXPECT_EQ(run1(*p, arp, in, ndevs), want) << "non-IP is forwarded too";
    }
  }
}

TEST(Builtins, L3SplitNonIpGoesToSlowPath) {
  auto p = make_builtin("l3-split", 4);
  EXPECT_EQ(run1(*p, build(test::arp()).bytes, 0, 4), Verdict::pass());
  FrameSpec s = test::udp4();
  s.vlan_tpids = {kEtherTypeQinq, kEtherTypeVlan, kEtherTypeVlan};  // not parsed
  EXPECT_EQ(run1(*p, build(s).bytes, 0, 4), Verdict::pass());
}

// 1000 flows (each a different source port or address) over 4 devices:
// every device gets a fair share, and a flow always gets the same one.
TEST(Builtins, L3SplitSpreadsFlowsDeterministically) {
  constexpr std::uint32_t kDevs = 4;
  constexpr int kFlows = 1000;
  auto p = make_builtin("l3-split", kDevs);
  auto p2 = make_builtin("l3-split", kDevs);  // a second instance agrees
  for (int family : {4, 6}) {
    int count[kDevs] = {};
    for (int i = 0; i < kFlows; ++i) {
      FrameSpec s = family == 4 ? test::udp4() : test::tcp6();
      s.sport = static_cast<std::uint16_t>(1024 + i);
      s.src4[3] = static_cast<std::uint8_t>(i / 7);
      s.src6[15] = static_cast<std::uint8_t>(i / 7);
      const auto frame = build(s).bytes;
      const Verdict v = run1(*p, frame, 0, kDevs);
      ASSERT_EQ(v.action, Action::kRedirect);
      ASSERT_LT(v.target, kDevs);
      count[v.target]++;
      // Same flow: another payload size, another ingress, another instance.
      s.payload = 40;
      EXPECT_EQ(run1(*p2, build(s).bytes, 3, kDevs), v) << i;
    }
    for (std::uint32_t d = 0; d < kDevs; ++d) {
      EXPECT_GT(count[d], kFlows / kDevs * 3 / 4) << "IPv" << family << " device " << d;
      EXPECT_LT(count[d], kFlows / kDevs * 5 / 4) << "IPv" << family << " device " << d;
    }
  }
}

TEST(Builtins, L3SplitUsesEveryDeviceForOtherCounts) {
  for (std::uint32_t ndevs : {1u, 2u, 3u, 5u, 16u}) {
    auto p = make_builtin("l3-split", ndevs);
    std::vector<int> count(ndevs);
    for (int i = 0; i < 100 * static_cast<int>(ndevs); ++i) {
      FrameSpec s = test::tcp4();
      s.dport = static_cast<std::uint16_t>(i);
      const Verdict v = run1(*p, build(s).bytes, 0, ndevs);
      ASSERT_EQ(v.action, Action::kRedirect);
      ASSERT_LT(v.target, ndevs);
      count[v.target]++;
    }
    for (std::uint32_t d = 0; d < ndevs; ++d) EXPECT_GT(count[d], 0) << ndevs << " " << d;
  }
}

// Fragments hash by addresses (and protocol) only: the bytes where a later
// fragment's ports would be do not matter, and the first fragment (which
// has the ports) goes where its later fragments go.
TEST(Builtins, L3SplitLaterFragmentsIgnorePayload) {
  auto p = make_builtin("l3-split", 64);
  FrameSpec s = test::udp4();
  s.ipv4_frag = 0x00b9;
  Verdict first{};
  for (int i = 0; i < 50; ++i) {
    s.sport = static_cast<std::uint16_t>(i * 977);  // "ports" in the payload
    const Verdict v = run1(*p, build(s).bytes, 0, 64);
    ASSERT_EQ(v.action, Action::kRedirect);
    if (i == 0) first = v;
    EXPECT_EQ(v, first) << i;
  }
  {
    FrameSpec head = test::udp4();
    head.ipv4_frag = 0x2000;  // more fragments, offset 0: the first fragment
    head.sport = 4242;
    EXPECT_EQ(run1(*p, build(head).bytes, 0, 64), first);
  }
  // ... while whole datagrams of those ports spread.
  s.ipv4_frag = 0;
  std::map<std::uint16_t, int> targets;
  for (int i = 0; i < 50; ++i) {
    s.sport = static_cast<std::uint16_t>(i * 977);
    targets[run1(*p, build(s).bytes, 0, 64).target]++;
  }
  EXPECT_GT(targets.size(), 10u);
}

// A batch: one verdict per frame, in order, each as if run alone.
TEST(Builtins, BatchVerdictsMatchSingleRuns) {
  const std::vector<std::vector<std::byte>> frames = {
      build(test::udp4()).bytes, truncated_frame(),        build(test::arp()).bytes,
      build(test::tcp6()).bytes, malformed_frame(),        build(test::udp6()).bytes};
  for (std::string_view n : builtin_names()) {
    auto p = make_builtin(n, 3);
    std::vector<std::unique_ptr<Rx>> rx;
    std::vector<XdpMd> md;
    for (std::size_t i = 0; i < frames.size(); ++i) {
      rx.push_back(std::make_unique<Rx>(frames[i], static_cast<std::uint32_t>(i % 3), 3));
      md.push_back(rx.back()->md);
    }
    std::vector<Verdict> out(frames.size(), Verdict::pass());
    p->run(md.data(), out.data(), static_cast<std::uint32_t>(md.size()));
    for (std::size_t i = 0; i < frames.size(); ++i)
      EXPECT_EQ(out[i], run1(*p, frames[i], static_cast<std::uint32_t>(i % 3), 3)) << n << " " << i;
    p->run(md.data(), out.data(), 0);  // an empty batch is fine
  }
}

TEST(MakeProgram, Lambda) {
  int calls = 0;
  auto p = make_program("short-is-pass", [&calls](XdpMd& ctx) noexcept {
    ++calls;
    const auto len = ctx.data_end - ctx.data;
    if (len < 64) return Verdict::pass();
    ctx.data += 14;  // strip Ethernet, as a decap program would
    return Verdict::redirect(static_cast<std::uint16_t>(ctx.ingress_dev + 1));
  });
  EXPECT_EQ(p->name(), "short-is-pass");
  Rx small(std::vector<std::byte>(60), 0, 2), big(std::vector<std::byte>(100), 0, 2);
  XdpMd md[2] = {small.md, big.md};
  Verdict out[2];
  p->run(md, out, 2);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(out[0], Verdict::pass());
  EXPECT_EQ(out[1], Verdict::redirect(1));
  EXPECT_EQ(md[1].data, big.md.data + 14);  // the program's change to the context stays
  EXPECT_EQ(md[0].data, small.md.data);
}

}  // namespace
}  // namespace pagepool::fwd
