// Test frames for the parser and program tests: real Ethernet/VLAN/IPv4/
// IPv6/UDP/TCP headers with consistent length fields, and their offsets so
// a test can break one field. Checksums stay 0 (the parser ignores them).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "pagepool/fwd/parse.hpp"
#include "pagepool/fwd/program.hpp"

namespace pagepool::fwd::test {

struct FrameSpec {
  std::array<std::uint8_t, 6> dst_mac{0x02, 0, 0, 0, 0, 0x01};
  std::array<std::uint8_t, 6> src_mac{0x02, 0, 0, 0, 0, 0x02};
  std::vector<std::uint16_t> vlan_tpids;     // outer first; tag i gets TCI 0x0064 + i
  std::uint16_t ethertype = kEtherTypeIpv4;  // after the tags; not IPv4/IPv6: raw bytes
  std::uint8_t proto = kIpProtoUdp;          // L4 protocol (after IPv6 extension headers)
  std::array<std::uint8_t, 4> src4{10, 0, 0, 1};
  std::array<std::uint8_t, 4> dst4{192, 168, 1, 2};
  // 2001:db8::1 and 2001:db8::202
  std::array<std::uint8_t, 16> src6{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  std::array<std::uint8_t, 16> dst6{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2};
  std::uint16_t sport = 4242;
  std::uint16_t dport = 53;
  std::size_t ipv4_options = 0;   // bytes of IPv4 options (multiple of 4, <= 40)
  std::uint16_t ipv4_frag = 0;    // IPv4 flags/fragment-offset field
  // IPv6 extension headers in order (0, 43, 44, 60); option headers are 8
  // bytes (16 if ext_long), the fragment header carries ipv6_frag.
  std::vector<std::uint8_t> ipv6_ext;
  bool ext_long = false;
  std::uint16_t ipv6_frag = 0;    // offset(13) | res(2) | M(1) of a fragment header
  std::size_t tcp_options = 0;    // bytes of TCP options (multiple of 4, <= 40)
  std::size_t payload = 6;        // L4 payload bytes (pattern 0xa0, 0xa1, ...)
  std::size_t padding = 0;        // bytes after the IP packet (Ethernet padding)
};

struct Frame {
  std::vector<std::byte> bytes;
  std::size_t l3_off = 0;    // IP header (or raw payload)
  std::size_t l4_off = 0;    // L4 header (after extension headers)
  std::size_t ip_end = 0;    // end of the IP packet (before padding)
  std::vector<std::size_t> ext_offs;  // each IPv6 extension header
};

inline void put8(std::vector<std::byte>& b, std::size_t at, unsigned v) {
  b[at] = static_cast<std::byte>(v & 0xff);
}
inline void put16(std::vector<std::byte>& b, std::size_t at, unsigned v) {
  put8(b, at, v >> 8);
  put8(b, at + 1, v);
}
inline unsigned get8(const std::vector<std::byte>& b, std::size_t at) {
  return std::to_integer<unsigned>(b[at]);
}

inline Frame build(const FrameSpec& s) {
  Frame f;
  std::vector<std::byte>& b = f.bytes;
  auto grow = [&](std::size_t n) {
    const std::size_t at = b.size();
    b.resize(at + n);
    return at;
  };
  std::size_t at = grow(12);
  for (int i = 0; i < 6; ++i) put8(b, at + i, s.dst_mac[i]);
  for (int i = 0; i < 6; ++i) put8(b, at + 6 + i, s.src_mac[i]);
  for (std::size_t i = 0; i < s.vlan_tpids.size(); ++i) {
    at = grow(4);
    put16(b, at, s.vlan_tpids[i]);
    put16(b, at + 2, 0x0064 + static_cast<unsigned>(i));
  }
  at = grow(2);
  put16(b, at, s.ethertype);
  f.l3_off = b.size();

  const bool v4 = s.ethertype == kEtherTypeIpv4, v6 = s.ethertype == kEtherTypeIpv6;
  if (!v4 && !v6) {  // raw payload (ARP-like)
    at = grow(28);
    for (std::size_t i = 0; i < 28; ++i) put8(b, at + i, 0x30 + static_cast<unsigned>(i));
    f.l4_off = f.ip_end = b.size();
    grow(s.padding);
    return f;
  }
  if (v4) {
    const std::size_t ihl = 20 + s.ipv4_options;
    at = grow(ihl);
    put8(b, at, 0x40 | static_cast<unsigned>(ihl / 4));
    put16(b, at + 4, 0x1234);  // id
    put16(b, at + 6, s.ipv4_frag);
    put8(b, at + 8, 64);  // ttl
    put8(b, at + 9, s.proto);
    for (int i = 0; i < 4; ++i) put8(b, at + 12 + i, s.src4[i]);
    for (int i = 0; i < 4; ++i) put8(b, at + 16 + i, s.dst4[i]);
    for (std::size_t i = 20; i < ihl; ++i) put8(b, at + i, 0x01);  // NOP options
  } else {
    at = grow(40);
    put8(b, at, 0x60);
    put8(b, at + 6, s.ipv6_ext.empty() ? s.proto : s.ipv6_ext[0]);
    put8(b, at + 7, 64);  // hop limit
    for (int i = 0; i < 16; ++i) put8(b, at + 8 + i, s.src6[i]);
    for (int i = 0; i < 16; ++i) put8(b, at + 24 + i, s.dst6[i]);
    for (std::size_t i = 0; i < s.ipv6_ext.size(); ++i) {
      const unsigned next = i + 1 < s.ipv6_ext.size() ? s.ipv6_ext[i + 1] : s.proto;
      const bool frag = s.ipv6_ext[i] == kIpProtoFragment;
      const std::size_t len = frag || !s.ext_long ? 8 : 16;
      at = grow(len);
      f.ext_offs.push_back(at);
      put8(b, at, next);
      if (frag) {
        put16(b, at + 2, s.ipv6_frag);
        put16(b, at + 6, 0xbeef);  // identification (low half)
      } else {
        put8(b, at + 1, static_cast<unsigned>(len / 8 - 1));
        put8(b, at + 2, 0x01);  // PadN over the rest
        put8(b, at + 3, static_cast<unsigned>(len - 4));
      }
    }
  }
  f.l4_off = b.size();
  if (s.proto == kIpProtoUdp) {
    at = grow(8);
    put16(b, at, s.sport);
    put16(b, at + 2, s.dport);
    put16(b, at + 4, static_cast<unsigned>(8 + s.payload));
  } else if (s.proto == kIpProtoTcp) {
    const std::size_t hlen = 20 + s.tcp_options;
    at = grow(hlen);
    put16(b, at, s.sport);
    put16(b, at + 2, s.dport);
    put8(b, at + 12, static_cast<unsigned>(hlen / 4) << 4);
    put8(b, at + 13, 0x18);  // PSH|ACK
    for (std::size_t i = 20; i < hlen; ++i) put8(b, at + i, 0x01);  // NOP options
  }
  at = grow(s.payload);
  for (std::size_t i = 0; i < s.payload; ++i) put8(b, at + i, 0xa0 + static_cast<unsigned>(i));
  f.ip_end = b.size();
  if (v4)
    put16(b, f.l3_off + 2, static_cast<unsigned>(f.ip_end - f.l3_off));
  else
    put16(b, f.l3_off + 4, static_cast<unsigned>(f.ip_end - f.l3_off - 40));
  grow(s.padding);
  return f;
}

inline FrameSpec udp4() { return {}; }
inline FrameSpec tcp4() {
  FrameSpec s;
  s.proto = kIpProtoTcp;
  s.sport = 50000;
  s.dport = 443;
  return s;
}
inline FrameSpec udp6() {
  FrameSpec s;
  s.ethertype = kEtherTypeIpv6;
  return s;
}
inline FrameSpec tcp6() {
  FrameSpec s = tcp4();
  s.ethertype = kEtherTypeIpv6;
  return s;
}
inline FrameSpec arp() {
  FrameSpec s;
  s.ethertype = 0x0806;
  return s;
}

// A receive buffer as the forwarder hands it to a program: kBuf bytes,
// the frame at kHeadroom.
struct Rx {
  static constexpr std::size_t kBuf = 4096, kHeadroom = 256;
  std::vector<std::byte> buf = std::vector<std::byte>(kBuf);
  XdpMd md{};

  Rx(const Rx&) = delete;  // md points into buf
  Rx& operator=(const Rx&) = delete;
  explicit Rx(const std::vector<std::byte>& frame, std::uint32_t ingress = 0,
              std::uint32_t ndevs = 1) {
    std::copy(frame.begin(), frame.end(), buf.begin() + kHeadroom);
    md.data_hard_start = buf.data();
    md.data = buf.data() + kHeadroom;
    md.data_end = md.data + frame.size();
    md.buf_end = kBuf;
    md.ingress_dev = ingress;
    md.ndevs = ndevs;
  }
  std::vector<std::byte> frame() const { return {md.data, md.data_end}; }
};

}  // namespace pagepool::fwd::test
