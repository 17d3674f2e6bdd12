// The bounds-checked parser: exact FlowKey values, every truncation point,
// each malformed field, VLAN/QinQ, IPv4 options, IPv6 extension headers,
// fragments, and flow_hash's mixing.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "frames.hpp"
#include "pagepool/fwd/parse.hpp"

namespace pagepool::fwd {
namespace {

using test::build;
using test::Frame;
using test::FrameSpec;
using test::put16;
using test::put8;

// Parses the first n bytes of f from an allocation of exactly n bytes, so
// ASan reports any read past data_end.
ParseStatus parse_prefix(const std::vector<std::byte>& f, std::size_t n, Parsed* out) {
  std::unique_ptr<std::byte[]> copy(new std::byte[n]);
  if (n) std::memcpy(copy.get(), f.data(), n);
  return parse_frame(copy.get(), copy.get() + n, out);
}
ParseStatus parse(const std::vector<std::byte>& f, Parsed* out) {
  return parse_prefix(f, f.size(), out);
}
ParseStatus parse(const std::vector<std::byte>& f) {
  Parsed p;
  return parse(f, &p);
}

FlowKey key4(std::array<std::uint8_t, 4> s, std::array<std::uint8_t, 4> d, std::uint8_t proto,
             std::uint16_t sport, std::uint16_t dport) {
  FlowKey k{};
  k.family = 4;
  k.proto = proto;
  k.sport = sport;
  k.dport = dport;
  std::memcpy(k.saddr, s.data(), 4);
  std::memcpy(k.daddr, d.data(), 4);
  return k;
}
FlowKey key6(const FrameSpec& s, std::uint8_t proto, std::uint16_t sport, std::uint16_t dport) {
  FlowKey k{};
  k.family = 6;
  k.proto = proto;
  k.sport = sport;
  k.dport = dport;
  std::memcpy(k.saddr, s.src6.data(), 16);
  std::memcpy(k.daddr, s.dst6.data(), 16);
  return k;
}

// ---- valid frames: exact results ----

TEST(Parse, Ipv4UdpExactKey) {
  const Frame f = build(test::udp4());
  Parsed p;
  ASSERT_EQ(parse(f.bytes, &p), ParseStatus::kOk);
  EXPECT_EQ(p.ethertype, 0x0800);
  EXPECT_EQ(p.vlans, 0);
  EXPECT_EQ(p.l3_off, 14);
  EXPECT_EQ(p.l4_off, 34);
  EXPECT_TRUE(p.has_ports);
  EXPECT_FALSE(p.fragment);
  EXPECT_EQ(p.key, key4({10, 0, 0, 1}, {192, 168, 1, 2}, 17, 4242, 53));
  // Field by field too, so a wrong operator== cannot hide a wrong key.
  EXPECT_EQ(p.key.saddr[0], 10);
  EXPECT_EQ(p.key.saddr[3], 1);
  EXPECT_EQ(p.key.daddr[0], 192);
  EXPECT_EQ(p.key.daddr[3], 2);
  for (int i = 4; i < 16; ++i) EXPECT_EQ(p.key.saddr[i] | p.key.daddr[i], 0) << i;
  EXPECT_EQ(p.key.sport, 4242);
  EXPECT_EQ(p.key.dport, 53);
}

TEST(Parse, Ipv4TcpWithIpAndTcpOptions) {
  FrameSpec s = test::tcp4();
  s.ipv4_options = 12;
  s.tcp_options = 12;
  const Frame f = build(s);
  Parsed p;
  ASSERT_EQ(parse(f.bytes, &p), ParseStatus::kOk);
  EXPECT_EQ(p.l3_off, 14);
  EXPECT_EQ(p.l4_off, 14 + 32);
  EXPECT_EQ(p.key, key4({10, 0, 0, 1}, {192, 168, 1, 2}, 6, 50000, 443));
}

TEST(Parse, Ipv4MaximalOptions) {
  FrameSpec s = test::udp4();
  s.ipv4_options = 40;  // IHL 15
  const Frame f = build(s);
  Parsed p;
  ASSERT_EQ(parse(f.bytes, &p), ParseStatus::kOk);
  EXPECT_EQ(p.l4_off, 14 + 60);
  EXPECT_EQ(p.key.sport, 4242);
}

TEST(Parse, Ipv6UdpExactKey) {
  const FrameSpec s = test::udp6();
  const Frame f = build(s);
  Parsed p;
  ASSERT_EQ(parse(f.bytes, &p), ParseStatus::kOk);
  EXPECT_EQ(p.ethertype, 0x86dd);
  EXPECT_EQ(p.l3_off, 14);
  EXPECT_EQ(p.l4_off, 54);
  EXPECT_TRUE(p.has_ports);
  EXPECT_EQ(p.key, key6(s, 17, 4242, 53));
  EXPECT_EQ(p.key.saddr[0], 0x20);
  EXPECT_EQ(p.key.saddr[15], 0x01);
  EXPECT_EQ(p.key.daddr[14], 0x02);
}

TEST(Parse, Ipv6ExtensionHeadersWalked) {
  FrameSpec s = test::tcp6();
  s.ipv6_ext = {kIpProtoHopOpts, kIpProtoDstOpts, kIpProtoRouting, kIpProtoFragment,
                kIpProtoDstOpts};
  s.ext_long = true;  // 16-byte option headers: the length field is used
  const Frame f = build(s);
  Parsed p;
  ASSERT_EQ(parse(f.bytes, &p), ParseStatus::kOk);
  EXPECT_EQ(p.l4_off, 14 + 40 + 16 * 4 + 8);
  EXPECT_EQ(p.l4_off, f.l4_off);
  EXPECT_FALSE(p.fragment);  // offset 0, M 0: an atomic fragment
  EXPECT_EQ(p.key, key6(s, 6, 50000, 443));
}

TEST(Parse, Ipv6ExtensionHeaderCountBound) {
  FrameSpec s = test::udp6();
  s.ipv6_ext.assign(kMaxIpv6ExtHeaders, kIpProtoDstOpts);
  s.ipv6_ext[0] = kIpProtoHopOpts;
  Parsed p;
  ASSERT_EQ(parse(build(s).bytes, &p), ParseStatus::kOk);
  EXPECT_EQ(p.l4_off, 14 + 40 + 8 * kMaxIpv6ExtHeaders);
  EXPECT_EQ(p.key.dport, 53);
  s.ipv6_ext.push_back(kIpProtoDstOpts);
  EXPECT_EQ(parse(build(s).bytes), ParseStatus::kMalformed);
}

TEST(Parse, OtherProtocolsHaveNoPorts) {
  for (std::uint16_t et : {kEtherTypeIpv4, kEtherTypeIpv6}) {
    for (std::uint8_t proto : {1, 47, 50, 58, 59, 132}) {
      FrameSpec s;
      s.ethertype = et;
      s.proto = proto;
      s.payload = 3;  // shorter than a UDP header: never read as one
      Parsed p;
      ASSERT_EQ(parse(build(s).bytes, &p), ParseStatus::kOk) << et << " " << int(proto);
      EXPECT_FALSE(p.has_ports);
      EXPECT_EQ(p.key.proto, proto);
      EXPECT_EQ(p.key.sport, 0);
      EXPECT_EQ(p.key.dport, 0);
    }
  }
}

TEST(Parse, EthernetPaddingAfterThePacket) {
  FrameSpec s = test::udp4();
  s.payload = 0;
  s.padding = 18;  // 42-byte frame padded to the 60-byte minimum
  const Frame f = build(s);
  ASSERT_EQ(f.bytes.size(), 60u);
  Parsed p;
  ASSERT_EQ(parse(f.bytes, &p), ParseStatus::kOk);
  EXPECT_EQ(p.key.sport, 4242);
  // A 6-byte IPv6 packet trailer is fine as well.
  s = test::tcp6();
  s.padding = 6;
  ASSERT_EQ(parse(build(s).bytes, &p), ParseStatus::kOk);
  EXPECT_EQ(p.key.dport, 443);
}

// ---- VLAN / QinQ / not IP ----

TEST(Parse, SingleVlanTag) {
  FrameSpec s = test::udp4();
  s.vlan_tpids = {kEtherTypeVlan};
  Parsed p;
  ASSERT_EQ(parse(build(s).bytes, &p), ParseStatus::kOk);
  EXPECT_EQ(p.vlans, 1);
  EXPECT_EQ(p.ethertype, kEtherTypeIpv4);
  EXPECT_EQ(p.l3_off, 18);
  EXPECT_EQ(p.l4_off, 38);
  EXPECT_EQ(p.key, key4({10, 0, 0, 1}, {192, 168, 1, 2}, 17, 4242, 53));
}

TEST(Parse, QinQ) {
  for (auto outer : {kEtherTypeQinq, kEtherTypeVlan}) {
    FrameSpec s = test::tcp6();
    s.vlan_tpids = {outer, kEtherTypeVlan};
    Parsed p;
    ASSERT_EQ(parse(build(s).bytes, &p), ParseStatus::kOk);
    EXPECT_EQ(p.vlans, 2);
    EXPECT_EQ(p.l3_off, 22);
    EXPECT_EQ(p.l4_off, 62);
    EXPECT_EQ(p.key, key6(s, 6, 50000, 443));
  }
}

TEST(Parse, ThirdVlanTagIsNotParsed) {
  FrameSpec s = test::udp4();
  s.vlan_tpids = {kEtherTypeQinq, kEtherTypeVlan, kEtherTypeVlan};
  Parsed p;
  ASSERT_EQ(parse(build(s).bytes, &p), ParseStatus::kNotIp);
  EXPECT_EQ(p.vlans, 2);
  EXPECT_EQ(p.ethertype, kEtherTypeVlan);
  EXPECT_EQ(p.l3_off, 22);
}

TEST(Parse, NonIpIsNotAnError) {
  Parsed p;
  ASSERT_EQ(parse(build(test::arp()).bytes, &p), ParseStatus::kNotIp);
  EXPECT_EQ(p.ethertype, 0x0806);
  EXPECT_EQ(p.l3_off, 14);
  FrameSpec s = test::arp();
  s.vlan_tpids = {kEtherTypeVlan};
  ASSERT_EQ(parse(build(s).bytes, &p), ParseStatus::kNotIp);
  EXPECT_EQ(p.ethertype, 0x0806);
  EXPECT_EQ(p.l3_off, 18);
  s = test::arp();
  s.ethertype = 0x002e;  // 802.3 length field
  ASSERT_EQ(parse(build(s).bytes, &p), ParseStatus::kNotIp);
  EXPECT_EQ(p.ethertype, 0x002e);
  // Exactly an Ethernet header.
  std::vector<std::byte> eth(build(test::arp()).bytes);
  eth.resize(14);
  EXPECT_EQ(parse(eth), ParseStatus::kNotIp);
}

// ---- every truncation point ----

struct TruncCase {
  const char* name;
  FrameSpec spec;
};

TruncCase tc(const char* name, FrameSpec s) { return {name, std::move(s)}; }
void PrintTo(const TruncCase& c, std::ostream* os) { *os << c.name; }

std::vector<TruncCase> trunc_cases() {
  std::vector<TruncCase> v;
  v.push_back(tc("Ipv4Udp", test::udp4()));
  v.push_back(tc("Ipv4Tcp", test::tcp4()));
  FrameSpec s = test::tcp4();
  s.ipv4_options = 8;
  s.tcp_options = 12;
  v.push_back(tc("Ipv4OptionsTcpOptions", s));
  s = test::udp4();
  s.proto = 1;
  v.push_back(tc("Ipv4Icmp", s));
  s = test::udp4();
  s.ipv4_frag = 0x2000;
  v.push_back(tc("Ipv4FirstFragment", s));
  s.ipv4_frag = 0x0010;
  v.push_back(tc("Ipv4LaterFragment", s));
  v.push_back(tc("Ipv6Udp", test::udp6()));
  v.push_back(tc("Ipv6Tcp", test::tcp6()));
  s = test::udp6();
  s.ipv6_ext = {kIpProtoHopOpts, kIpProtoRouting, kIpProtoDstOpts};
  s.ext_long = true;
  v.push_back(tc("Ipv6ExtUdp", s));
  s = test::tcp6();
  s.ipv6_ext = {kIpProtoFragment};
  s.ipv6_frag = 0x0001;
  v.push_back(tc("Ipv6FirstFragmentTcp", s));
  s.ipv6_frag = 0x0101;
  v.push_back(tc("Ipv6LaterFragment", s));
  s = test::udp4();
  s.vlan_tpids = {kEtherTypeVlan};
  v.push_back(tc("VlanIpv4Udp", s));
  s = test::tcp6();
  s.vlan_tpids = {kEtherTypeQinq, kEtherTypeVlan};
  v.push_back(tc("QinqIpv6Tcp", s));
  s = test::udp4();
  s.padding = 12;
  v.push_back(tc("Ipv4UdpPadded", s));
  return v;
}

class Truncation : public ::testing::TestWithParam<TruncCase> {};

// Every prefix shorter than the IP packet's end is truncated; from there
// to the end (padding) the frame parses, with the same key every time.
TEST_P(Truncation, EveryCutPoint) {
  const Frame f = build(GetParam().spec);
  Parsed full;
  ASSERT_EQ(parse(f.bytes, &full), ParseStatus::kOk);
  for (std::size_t n = 0; n < f.bytes.size(); ++n) {
    Parsed p;
    const ParseStatus st = parse_prefix(f.bytes, n, &p);
    if (n < f.ip_end) {
      EXPECT_EQ(st, ParseStatus::kTruncated) << "cut at " << n << " of " << f.bytes.size();
    } else {
      ASSERT_EQ(st, ParseStatus::kOk) << "cut at " << n;
      EXPECT_EQ(p.key, full.key);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Frames, Truncation, ::testing::ValuesIn(trunc_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Parse, NonIpTruncatedOnlyInsideEthernetAndTags) {
  FrameSpec s = test::arp();
  s.vlan_tpids = {kEtherTypeQinq, kEtherTypeVlan};
  const Frame f = build(s);
  for (std::size_t n = 0; n <= f.bytes.size(); ++n) {
    Parsed p;
    EXPECT_EQ(parse_prefix(f.bytes, n, &p), n < 22 ? ParseStatus::kTruncated : ParseStatus::kNotIp)
        << n;
  }
}

TEST(Parse, DataPastDataEndIsEmpty) {
  const Frame f = build(test::udp4());
  Parsed p;
  EXPECT_EQ(parse_frame(f.bytes.data() + 20, f.bytes.data() + 10, &p), ParseStatus::kTruncated);
}

// ---- malformed IPv4 ----

TEST(Parse, Ipv4BadVersion) {
  for (unsigned v : {0u, 5u, 6u, 15u}) {
    Frame f = build(test::udp4());
    put8(f.bytes, f.l3_off, v << 4 | 5);
    EXPECT_EQ(parse(f.bytes), ParseStatus::kMalformed) << v;
  }
}

TEST(Parse, Ipv4IhlBelowFive) {
  for (std::uint8_t proto : {kIpProtoUdp, kIpProtoTcp, std::uint8_t{1}}) {
    FrameSpec s = test::udp4();
    s.proto = proto;
    for (unsigned ihl = 0; ihl < 5; ++ihl) {
      Frame f = build(s);
      put8(f.bytes, f.l3_off, 0x40 | ihl);
      EXPECT_EQ(parse(f.bytes), ParseStatus::kMalformed) << ihl << " " << int(proto);
    }
  }
}

TEST(Parse, Ipv4HeaderPastFrameEnd) {
  Frame f = build(test::udp4());  // 34 bytes after L2
  put8(f.bytes, f.l3_off, 0x4f);  // 60-byte header
  EXPECT_EQ(parse(f.bytes), ParseStatus::kTruncated);
}

TEST(Parse, Ipv4TotalLength) {
  const Frame ok = build(test::udp4());
  const std::size_t ip_len = ok.ip_end - ok.l3_off;  // 34
  auto with_total = [&](std::size_t total, std::uint8_t proto = kIpProtoUdp) {
    Frame f = ok;
    put16(f.bytes, f.l3_off + 2, static_cast<unsigned>(total));
    put8(f.bytes, f.l3_off + 9, proto);
    return parse(f.bytes);
  };
  EXPECT_EQ(with_total(ip_len), ParseStatus::kOk);
  EXPECT_EQ(with_total(0), ParseStatus::kMalformed);
  EXPECT_EQ(with_total(19), ParseStatus::kMalformed);  // < IHL*4
  EXPECT_EQ(with_total(ip_len + 1), ParseStatus::kTruncated);  // past data_end
  EXPECT_EQ(with_total(0xffff), ParseStatus::kTruncated);
  // Header only: no room for the UDP header it announces; fine for ICMP.
  EXPECT_EQ(with_total(20), ParseStatus::kMalformed);
  EXPECT_EQ(with_total(27), ParseStatus::kMalformed);
  EXPECT_EQ(with_total(20, 1), ParseStatus::kOk);

  // With options, total_length must cover them.
  FrameSpec s = test::udp4();
  s.ipv4_options = 16;  // IHL 9: 36 bytes
  Frame f = build(s);
  put16(f.bytes, f.l3_off + 2, 35);
  EXPECT_EQ(parse(f.bytes), ParseStatus::kMalformed);
}

// ---- malformed UDP / TCP ----

TEST(Parse, UdpLength) {
  for (std::uint16_t et : {kEtherTypeIpv4, kEtherTypeIpv6}) {
    FrameSpec s;
    s.ethertype = et;
    s.payload = 10;
    const Frame ok = build(s);
    auto with_len = [&](unsigned ulen) {
      Frame f = ok;
      put16(f.bytes, f.l4_off + 4, ulen);
      return parse(f.bytes);
    };
    EXPECT_EQ(with_len(18), ParseStatus::kOk);
    EXPECT_EQ(with_len(8), ParseStatus::kOk);  // trailing bytes inside the IP packet
    EXPECT_EQ(with_len(7), ParseStatus::kMalformed);
    EXPECT_EQ(with_len(0), ParseStatus::kMalformed);
    EXPECT_EQ(with_len(19), ParseStatus::kMalformed);  // past the IP packet
    EXPECT_EQ(with_len(0xffff), ParseStatus::kMalformed);
  }
  // The UDP length is checked against the IP packet, not the frame: a
  // padded frame does not make room for it.
  FrameSpec s = test::udp4();
  s.padding = 20;
  Frame f = build(s);
  put16(f.bytes, f.l4_off + 4, 8 + 6 + 1);
  EXPECT_EQ(parse(f.bytes), ParseStatus::kMalformed);
}

TEST(Parse, UdpHeaderPastIpPacket) {
  FrameSpec s = test::udp6();
  s.payload = 0;
  Frame f = build(s);
  put16(f.bytes, f.l3_off + 4, 7);  // payload_length: 7 bytes of an 8-byte header
  EXPECT_EQ(parse(f.bytes), ParseStatus::kMalformed);
}

TEST(Parse, TcpDataOffset) {
  for (std::uint16_t et : {kEtherTypeIpv4, kEtherTypeIpv6}) {
    FrameSpec s = test::tcp4();
    s.ethertype = et;
    s.tcp_options = 8;
    s.payload = 4;  // 32 bytes of L4 after the IP header(s)
    const Frame ok = build(s);
    auto with_doff = [&](unsigned doff) {
      Frame f = ok;
      put8(f.bytes, f.l4_off + 12, doff << 4);
      return parse(f.bytes);
    };
    EXPECT_EQ(with_doff(7), ParseStatus::kOk);
    EXPECT_EQ(with_doff(5), ParseStatus::kOk);
    EXPECT_EQ(with_doff(8), ParseStatus::kOk);  // header == the whole L4
    EXPECT_EQ(with_doff(4), ParseStatus::kMalformed);
    EXPECT_EQ(with_doff(0), ParseStatus::kMalformed);
    EXPECT_EQ(with_doff(9), ParseStatus::kMalformed);  // past the IP packet
    EXPECT_EQ(with_doff(15), ParseStatus::kMalformed);
  }
}

TEST(Parse, L4HeaderShorterThanMinimum) {
  for (std::uint8_t proto : {kIpProtoTcp, kIpProtoUdp}) {
    FrameSpec s = test::tcp4();
    s.proto = proto;
    s.payload = 0;
    const Frame ok = build(s);
    const std::size_t min = proto == kIpProtoTcp ? 20 : 8;
    for (std::size_t l4 = 0; l4 < min; ++l4) {
      // The IP packet ends l4 bytes into the header, and so does the frame
      // (under ASan, a read past it is reported).
      std::vector<std::byte> f(ok.bytes.begin(), ok.bytes.begin() + ok.l4_off + l4);
      put16(f, ok.l3_off + 2, static_cast<unsigned>(20 + l4));
      EXPECT_EQ(parse(f), ParseStatus::kMalformed) << int(proto) << " " << l4;
    }
  }
}

// ---- malformed IPv6 ----

TEST(Parse, Ipv6BadVersion) {
  for (unsigned v : {0u, 4u, 7u}) {
    Frame f = build(test::udp6());
    put8(f.bytes, f.l3_off, v << 4);
    EXPECT_EQ(parse(f.bytes), ParseStatus::kMalformed) << v;
  }
}

TEST(Parse, Ipv6PayloadLength) {
  const Frame ok = build(test::udp6());
  const unsigned plen = static_cast<unsigned>(ok.ip_end - ok.l3_off - 40);
  Frame f = ok;
  put16(f.bytes, f.l3_off + 4, plen + 1);
  EXPECT_EQ(parse(f.bytes), ParseStatus::kTruncated);
  put16(f.bytes, f.l3_off + 4, 0xffff);
  EXPECT_EQ(parse(f.bytes), ParseStatus::kTruncated);
  // Empty payload with "no next header": a flow without ports.
  put16(f.bytes, f.l3_off + 4, 0);
  put8(f.bytes, f.l3_off + 6, 59);
  Parsed p;
  ASSERT_EQ(parse(f.bytes, &p), ParseStatus::kOk);
  EXPECT_FALSE(p.has_ports);
  EXPECT_EQ(p.key.proto, 59);
}

TEST(Parse, Ipv6ExtensionHeaderPastPacket) {
  FrameSpec s = test::udp6();
  s.ipv6_ext = {kIpProtoHopOpts, kIpProtoDstOpts};
  const Frame ok = build(s);
  Frame f = ok;
  put8(f.bytes, f.ext_offs[1] + 1, 200);  // 1608 bytes
  EXPECT_EQ(parse(f.bytes), ParseStatus::kMalformed);
  f = ok;
  put8(f.bytes, f.ext_offs[1] + 1, 2);  // 24 bytes where 22 are left
  EXPECT_EQ(parse(f.bytes), ParseStatus::kMalformed);
  // An extension header that starts but does not fit in the payload.
  f = ok;
  put16(f.bytes, f.l3_off + 4, 8 + 4);
  EXPECT_EQ(parse(f.bytes), ParseStatus::kMalformed);

  // A fragment header cut by the packet's end, a UDP header after it.
  s = test::udp6();
  s.ipv6_ext = {kIpProtoFragment};
  s.payload = 0;
  f = build(s);  // IPv6 payload: fragment(8) + UDP(8)
  put16(f.bytes, f.l3_off + 4, 4);
  EXPECT_EQ(parse(f.bytes), ParseStatus::kMalformed);

  // Overshooting into the frame's padding, where a plausible UDP header
  // sits: the packet's end bounds the walk, not data_end.
  s = test::udp6();
  s.ipv6_ext = {kIpProtoDstOpts};
  s.payload = 0;
  s.padding = 32;
  f = build(s);  // IPv6 payload: options(8) + UDP(8)
  put8(f.bytes, f.ext_offs[0] + 1, 2);  // options claim 24 bytes
  put16(f.bytes, f.ip_end + 8, 1000);   // sport, dport, length of a fake UDP header
  put16(f.bytes, f.ip_end + 10, 2000);
  put16(f.bytes, f.ip_end + 12, 8);
  EXPECT_EQ(parse(f.bytes), ParseStatus::kMalformed);
}

TEST(Parse, Ipv6HopByHopMustComeFirst) {
  FrameSpec s = test::udp6();
  s.ipv6_ext = {kIpProtoDstOpts, kIpProtoHopOpts};
  EXPECT_EQ(parse(build(s).bytes), ParseStatus::kMalformed);
  s.ipv6_ext = {kIpProtoHopOpts, kIpProtoDstOpts};
  EXPECT_EQ(parse(build(s).bytes), ParseStatus::kOk);
}

// ---- fragments ----

TEST(Parse, Ipv4Fragments) {
  FrameSpec s = test::udp4();
  Parsed p;
  s.ipv4_frag = 0x4000;  // DF only: not a fragment
  ASSERT_EQ(parse(build(s).bytes, &p), ParseStatus::kOk);
  EXPECT_FALSE(p.fragment);
  EXPECT_TRUE(p.has_ports);

  s.ipv4_frag = 0x2000;  // MF, offset 0: the first fragment has the UDP header
  Frame f = build(s);
  put16(f.bytes, f.l4_off + 4, 1480);  // the whole datagram's length
  ASSERT_EQ(parse(f.bytes, &p), ParseStatus::kOk);
  EXPECT_TRUE(p.fragment);
  EXPECT_TRUE(p.has_ports);
  EXPECT_EQ(p.key.sport, 4242);
  put16(f.bytes, f.l4_off + 4, 7);  // still at least a header
  EXPECT_EQ(parse(f.bytes), ParseStatus::kMalformed);

  for (unsigned cut : {4u, 7u}) {  // part of a UDP header only
    Frame g = build(s);
    put16(g.bytes, g.l3_off + 2, 20 + cut);
    EXPECT_EQ(parse(g.bytes), ParseStatus::kMalformed) << cut;
  }

  // Non-first fragments (with and without MF): payload bytes, no ports,
  // even where the "header" would be garbage or too short.
  for (unsigned frag : {0x00b9u, 0x20b9u, 0x0001u, 0x1fffu}) {
    s.ipv4_frag = static_cast<std::uint16_t>(frag);
    s.payload = 3;
    f = build(s);
    put16(f.bytes, f.l4_off + 4, 0);  // would be a malformed UDP length
    ASSERT_EQ(parse(f.bytes, &p), ParseStatus::kOk) << frag;
    EXPECT_TRUE(p.fragment);
    EXPECT_FALSE(p.has_ports);
    EXPECT_EQ(p.l4_off, 34);
    EXPECT_EQ(p.key, key4({10, 0, 0, 1}, {192, 168, 1, 2}, 17, 0, 0));
  }
}

TEST(Parse, Ipv4FirstFragmentMustHoldTheTcpHeader) {
  FrameSpec s = test::tcp4();
  s.ipv4_frag = 0x2000;
  s.payload = 0;
  Frame f = build(s);
  put16(f.bytes, f.l3_off + 2, 20 + 16);  // a tiny first fragment (RFC 1858)
  EXPECT_EQ(parse(f.bytes), ParseStatus::kMalformed);
}

TEST(Parse, Ipv6Fragments) {
  FrameSpec s = test::udp6();
  s.ipv6_ext = {kIpProtoHopOpts, kIpProtoFragment};
  Parsed p;
  s.ipv6_frag = 0x0001;  // offset 0, M: first fragment
  Frame f = build(s);
  put16(f.bytes, f.l4_off + 4, 3000);  // the whole datagram's length
  ASSERT_EQ(parse(f.bytes, &p), ParseStatus::kOk);
  EXPECT_TRUE(p.fragment);
  EXPECT_TRUE(p.has_ports);
  EXPECT_EQ(p.key.dport, 53);
  EXPECT_EQ(p.l4_off, 14 + 40 + 16);

  for (unsigned frag : {0x0008u, 0x0009u, 0xfff8u}) {  // offsets 1 and 8191
    s.ipv6_frag = static_cast<std::uint16_t>(frag);
    s.payload = 2;
    f = build(s);
    put8(f.bytes, f.l4_off, 0);  // garbage where a header would be
    ASSERT_EQ(parse(f.bytes, &p), ParseStatus::kOk) << frag;
    EXPECT_TRUE(p.fragment);
    EXPECT_FALSE(p.has_ports);
    EXPECT_EQ(p.l4_off, 14 + 40 + 16);
    EXPECT_EQ(p.key, key6(s, 17, 0, 0));
  }
  // Headers after a later fragment's header are payload: not walked.
  s.ipv6_ext = {kIpProtoFragment, kIpProtoDstOpts};
  s.ipv6_frag = 0x0100;
  f = build(s);
  put8(f.bytes, f.ext_offs[1] + 1, 255);  // would run far past the packet
  ASSERT_EQ(parse(f.bytes, &p), ParseStatus::kOk);
  EXPECT_EQ(p.key.proto, kIpProtoDstOpts);
  EXPECT_FALSE(p.has_ports);
}

// ---- alignment, names, hash ----

// The frame at every offset mod 8: UBSan flags any unaligned multi-byte load.
TEST(Parse, AnyAlignment) {
  FrameSpec s = test::tcp6();
  s.vlan_tpids = {kEtherTypeVlan};
  s.ipv6_ext = {kIpProtoHopOpts};
  const Frame f = build(s);
  Parsed ref;
  ASSERT_EQ(parse(f.bytes, &ref), ParseStatus::kOk);
  std::vector<std::byte> buf(f.bytes.size() + 8);
  for (std::size_t a = 0; a < 8; ++a) {
    std::memcpy(buf.data() + a, f.bytes.data(), f.bytes.size());
    Parsed p;
    ASSERT_EQ(parse_frame(buf.data() + a, buf.data() + a + f.bytes.size(), &p), ParseStatus::kOk);
    EXPECT_EQ(p.key, ref.key) << a;
    EXPECT_EQ(p.l4_off, ref.l4_off);
  }
}

TEST(Parse, StatusNames) {
  EXPECT_STREQ(parse_status_name(ParseStatus::kOk), "ok");
  EXPECT_STREQ(parse_status_name(ParseStatus::kNotIp), "not-ip");
  EXPECT_STREQ(parse_status_name(ParseStatus::kTruncated), "truncated");
  EXPECT_STREQ(parse_status_name(ParseStatus::kMalformed), "malformed");
  EXPECT_STREQ(parse_status_name(static_cast<ParseStatus>(9)), "unknown");
}

FlowKey random_key(std::mt19937_64& rng) {
  FlowKey k{};
  const std::uint64_t r = rng();
  k.family = (r & 1) ? 6 : 4;
  k.proto = (r & 2) ? kIpProtoTcp : kIpProtoUdp;
  k.sport = static_cast<std::uint16_t>(r >> 16);
  k.dport = static_cast<std::uint16_t>(r >> 32);
  const int n = k.family == 4 ? 4 : 16;
  for (int i = 0; i < n; ++i) {
    k.saddr[i] = static_cast<std::uint8_t>(rng());
    k.daddr[i] = static_cast<std::uint8_t>(rng());
  }
  return k;
}

TEST(FlowHash, SameFlowSameHashAcrossFrames) {
  // Different payload, TTL, VLAN and padding: same flow, same hash.
  FrameSpec a = test::tcp4();
  FrameSpec b = a;
  b.payload = 100;
  b.vlan_tpids = {kEtherTypeVlan};
  b.padding = 4;
  Frame fb = build(b);
  put8(fb.bytes, fb.l3_off + 8, 3);  // TTL
  Parsed pa, pb;
  ASSERT_EQ(parse(build(a).bytes, &pa), ParseStatus::kOk);
  ASSERT_EQ(parse(fb.bytes, &pb), ParseStatus::kOk);
  EXPECT_EQ(flow_hash(pa.key), flow_hash(pb.key));
  // Any field of the 5-tuple changes it.
  FlowKey k = pa.key;
  const std::uint32_t h = flow_hash(k);
  k.sport++;
  EXPECT_NE(flow_hash(k), h);
  k = pa.key;
  k.dport++;
  EXPECT_NE(flow_hash(k), h);
  k = pa.key;
  k.proto = kIpProtoUdp;
  EXPECT_NE(flow_hash(k), h);
  k = pa.key;
  k.saddr[3]++;
  EXPECT_NE(flow_hash(k), h);
  k = pa.key;
  k.daddr[0]++;
  EXPECT_NE(flow_hash(k), h);
  k = pa.key;
  std::swap(k.sport, k.dport);
  EXPECT_NE(flow_hash(k), h);  // directional
}

// Strict avalanche: flipping any one input bit flips each output bit with
// probability about 1/2 (and never leaves the hash unchanged).
TEST(FlowHash, Avalanche) {
  std::mt19937_64 rng(1);
  constexpr int kKeys = 2000;
  // Input bits: sport, dport, proto, saddr, daddr (all 16 bytes: IPv6).
  constexpr int kInBits = 16 + 16 + 8 + 128 + 128;
  std::vector<std::array<int, 32>> flips(kInBits, std::array<int, 32>{});
  int unchanged = 0;
  for (int n = 0; n < kKeys; ++n) {
    FlowKey k = random_key(rng);
    if (k.family == 4) {  // exercise all 16 address bytes
      k.family = 6;
      for (int i = 4; i < 16; ++i) {
        k.saddr[i] = static_cast<std::uint8_t>(rng());
        k.daddr[i] = static_cast<std::uint8_t>(rng());
      }
    }
    const std::uint32_t h = flow_hash(k);
    int in = 0;
    auto flip = [&](FlowKey m) {
      const std::uint32_t d = flow_hash(m) ^ h;
      unchanged += d == 0;
      for (int o = 0; o < 32; ++o) flips[in][o] += (d >> o) & 1;
      ++in;
    };
    for (int bit = 0; bit < 16; ++bit) {
      FlowKey m = k;
      m.sport ^= static_cast<std::uint16_t>(1u << bit);
      flip(m);
    }
    for (int bit = 0; bit < 16; ++bit) {
      FlowKey m = k;
      m.dport ^= static_cast<std::uint16_t>(1u << bit);
      flip(m);
    }
    for (int bit = 0; bit < 8; ++bit) {
      FlowKey m = k;
      m.proto ^= static_cast<std::uint8_t>(1u << bit);
      flip(m);
    }
    for (std::uint8_t* (*field)(FlowKey&) :
         {+[](FlowKey& m) { return m.saddr; }, +[](FlowKey& m) { return m.daddr; }})
      for (int bit = 0; bit < 128; ++bit) {
        FlowKey m = k;
        field(m)[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
        flip(m);
      }
    ASSERT_EQ(in, kInBits);
  }
  EXPECT_EQ(unchanged, 0);
  // Binomial(2000, 1/2): sd 0.011, so [0.42, 0.58] is 7 sd.
  for (int i = 0; i < kInBits; ++i)
    for (int o = 0; o < 32; ++o) {
      const double p = flips[i][o] / double(kKeys);
      EXPECT_GT(p, 0.42) << "input bit " << i << " output bit " << o;
      EXPECT_LT(p, 0.58) << "input bit " << i << " output bit " << o;
    }
}

// Sequential flows (one port apart, as a load generator makes them) fill
// buckets evenly, in the low bits and in the high bits l3-split uses.
TEST(FlowHash, SequentialFlowsSpreadEvenly) {
  FlowKey k = key4({10, 0, 0, 1}, {10, 0, 0, 2}, kIpProtoUdp, 0, 9);
  constexpr int kFlows = 64 * 1024, kBuckets = 16;
  int low[kBuckets] = {}, high[kBuckets] = {};
  std::set<std::uint32_t> seen;
  for (int i = 0; i < kFlows; ++i) {
    k.sport = static_cast<std::uint16_t>(i);
    const std::uint32_t h = flow_hash(k);
    seen.insert(h);
    low[h % kBuckets]++;
    high[h >> 28]++;
  }
  EXPECT_GT(seen.size(), kFlows - 8u);  // ~0.5 collisions expected among 64K
  for (int b = 0; b < kBuckets; ++b) {
    EXPECT_NEAR(low[b], kFlows / kBuckets, kFlows / kBuckets / 10) << b;
    EXPECT_NEAR(high[b], kFlows / kBuckets, kFlows / kBuckets / 10) << b;
  }
}

}  // namespace
}  // namespace pagepool::fwd
