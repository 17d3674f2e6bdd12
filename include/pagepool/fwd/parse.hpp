// pagepool: the bounds-checked frame parser of the verdict programs.
//
// parse_frame reads one frame [data, data_end): Ethernet II with up to two
// VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8), IPv4 (options skipped through
// IHL) or IPv6 (hop-by-hop, routing, fragment and destination-options
// headers walked), and the ports of UDP and TCP. It never reads a byte
// outside [data, data_end) and loads every multi-byte field bytewise, so the
// frame may start at any address.
//
// Outcome (ParseStatus):
//   kOk         an IPv4/IPv6 packet; Parsed is filled.
//   kNotIp      the Ethernet header (and tags) fit, the payload is not IP
//               (ARP, LLDP, an 802.3 length field, a third VLAN tag);
//               ethertype, vlans and l3_off are set. Not an error.
//   kTruncated  data_end cuts a header, or the IP packet its length field
//               declares (total_length / payload_length past data_end).
//               Every prefix of a valid frame that ends before its IP
//               packet does parses as kTruncated.
//   kMalformed  an impossible field: IP version, IHL < 5, total_length <
//               IHL*4, an IPv6 extension header or L4 header that does not
//               fit in the IP packet, UDP length < 8 or past the packet, TCP
//               data offset < 5 or past the packet, hop-by-hop not first,
//               more than kMaxIpv6ExtHeaders extension headers.
// With kTruncated/kMalformed, *out is partly written and meaningless.
//
// Bytes after the IP packet (Ethernet padding up to 60 bytes, a trailer)
// are fine. Checksums are not verified.
//
// Fragments: a non-first fragment (offset != 0) carries no L4 header, so
// its ports are not read (has_ports false, ports 0). A first fragment's L4
// header must fit in it; its UDP length covers the whole datagram, so it
// is only checked against 8.
//
// Context: any thread, no allocation, no shared state. The common path
// (no IPv6 extension headers) is forced inline, so a program's dead fields
// of Parsed are never stored: GCC 12 at -O2 kept it out of line, and that
// call cost the redirect demo's polling thread 4-6 % of its cycles a frame
// (one run alternating the two every 2^27 TSC cycles, four runs). The
// extension-header walk is out of line in src/fwd/parse.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace pagepool::fwd {

enum class ParseStatus : std::uint8_t { kOk, kNotIp, kTruncated, kMalformed };

// "ok", "not-ip", "truncated", "malformed" ("unknown" out of range).
const char* parse_status_name(ParseStatus s) noexcept;

// Ethertypes (host order) and IP protocol numbers the parser knows.
inline constexpr std::uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr std::uint16_t kEtherTypeIpv6 = 0x86dd;
inline constexpr std::uint16_t kEtherTypeVlan = 0x8100;  // 802.1Q C-tag
inline constexpr std::uint16_t kEtherTypeQinq = 0x88a8;  // 802.1ad S-tag
inline constexpr std::uint8_t kIpProtoHopOpts = 0;
inline constexpr std::uint8_t kIpProtoTcp = 6;
inline constexpr std::uint8_t kIpProtoUdp = 17;
inline constexpr std::uint8_t kIpProtoRouting = 43;
inline constexpr std::uint8_t kIpProtoFragment = 44;
inline constexpr std::uint8_t kIpProtoDstOpts = 60;

// Header sizes in bytes.
inline constexpr std::size_t kEthHeaderLen = 14;
inline constexpr std::size_t kVlanTagLen = 4;
inline constexpr std::size_t kIpv4MinHeaderLen = 20;  // IHL 5
inline constexpr std::size_t kIpv6HeaderLen = 40;
inline constexpr std::size_t kUdpHeaderLen = 8;
inline constexpr std::size_t kTcpMinHeaderLen = 20;  // data offset 5

// Stacked tags the parser skips: QinQ (S-tag + C-tag) is what providers
// use; a third tag is rare enough to leave to the slow path (kNotIp).
inline constexpr unsigned kMaxVlanTags = 2;
// Extension headers walked before an IPv6 packet counts as malformed. RFC
// 8200's recommended order has at most 6 (hop-by-hop, dest-opts, routing,
// fragment, AH/ESP, dest-opts); 8 leaves room and bounds the walk.
inline constexpr unsigned kMaxIpv6ExtHeaders = 8;

// The flow of an IP packet: what l3-split hashes.
struct FlowKey {
  std::uint8_t family;     // 4 or 6
  std::uint8_t proto;      // IP protocol after IPv6 extension headers
  std::uint16_t sport;     // host order; 0 without ports
  std::uint16_t dport;     // host order; 0 without ports
  std::uint8_t saddr[16];  // network order; IPv4 in [0, 4), the rest 0
  std::uint8_t daddr[16];  // network order; IPv4 in [0, 4), the rest 0

  friend bool operator==(const FlowKey&, const FlowKey&) = default;
};

struct Parsed {
  std::uint16_t ethertype;  // of the payload after the VLAN tags, host order
  std::uint8_t vlans;       // VLAN tags skipped, 0..kMaxVlanTags
  bool fragment;            // IP fragment, first or not (offset != 0 or more-fragments)
  std::uint16_t l3_off;     // from data: the IP header (kNotIp: the payload)
  std::uint16_t l4_off;     // from data: the first byte after the IP header
                            // and extension headers (the L4 header if any)
  bool has_ports;           // UDP or TCP header read; key.sport/dport valid
  FlowKey key;
};

namespace detail {

[[gnu::always_inline]] inline std::uint8_t load_u8(const std::byte* p) noexcept {
  return std::to_integer<std::uint8_t>(*p);
}
// Bytewise: frames sit at any offset in their buffer (VLAN tags shift the
// IP header by 4), so no unaligned casts.
[[gnu::always_inline]] inline std::uint16_t load_be16(const std::byte* p) noexcept {
  return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) |
                                    std::to_integer<unsigned>(p[1]));
}

[[gnu::always_inline]] inline bool is_ipv6_ext(std::uint8_t nh) noexcept {
  return nh == kIpProtoHopOpts || nh == kIpProtoRouting || nh == kIpProtoFragment ||
         nh == kIpProtoDstOpts;
}

// The IPv6 extension-header walk; out of line because most IPv6 packets
// carry none. ip points at the fixed header, ip_end = 40 + payload_length
// (already checked against data_end). On entry *off = 40 and *nh is the
// fixed header's next header (an extension header); on kOk *off is the
// first byte after the last extension header, *nh the protocol there,
// *fragment/*later_fragment tell whether a fragment header was seen and
// whether its offset was != 0 (the walk stops there: the rest is payload).
[[gnu::noinline, gnu::cold]]
ParseStatus ipv6_ext_walk(const std::byte* ip, std::size_t ip_end, std::size_t* off,
                          std::uint8_t* nh, bool* fragment, bool* later_fragment) noexcept;

// UDP/TCP ports of an L4 header of l4_len bytes (the rest of the IP
// packet). fragment: a first fragment, whose UDP length covers more than
// this packet.
[[gnu::always_inline]] inline
ParseStatus parse_l4(const std::byte* l4, std::size_t l4_len, bool fragment, Parsed* out) noexcept {
  const std::uint8_t proto = out->key.proto;
  if (proto == kIpProtoUdp) {
    if (l4_len < kUdpHeaderLen) [[unlikely]] return ParseStatus::kMalformed;
    const std::size_t ulen = load_be16(l4 + 4);
    if (ulen < kUdpHeaderLen || (!fragment && ulen > l4_len)) [[unlikely]]
      return ParseStatus::kMalformed;
  } else if (proto == kIpProtoTcp) {
    if (l4_len < kTcpMinHeaderLen) [[unlikely]] return ParseStatus::kMalformed;
    const std::size_t hlen = static_cast<std::size_t>(load_u8(l4 + 12) >> 4) * 4;
    if (hlen < kTcpMinHeaderLen || hlen > l4_len) [[unlikely]] return ParseStatus::kMalformed;
  } else {
    return ParseStatus::kOk;  // ICMP, GRE, ESP, ...: a flow without ports
  }
  out->key.sport = load_be16(l4);
  out->key.dport = load_be16(l4 + 2);
  out->has_ports = true;
  return ParseStatus::kOk;
}

// ip points at the IPv4 header, avail = bytes from there to data_end.
[[gnu::always_inline]] inline
ParseStatus parse_ipv4(const std::byte* ip, std::size_t avail, Parsed* out) noexcept {
  if (avail < kIpv4MinHeaderLen) [[unlikely]] return ParseStatus::kTruncated;
  const std::uint8_t vihl = load_u8(ip);
  if ((vihl >> 4) != 4) [[unlikely]] return ParseStatus::kMalformed;
  const std::size_t hlen = static_cast<std::size_t>(vihl & 0xfu) * 4;
  if (hlen < kIpv4MinHeaderLen) [[unlikely]] return ParseStatus::kMalformed;
  if (hlen > avail) [[unlikely]] return ParseStatus::kTruncated;
  const std::size_t total = load_be16(ip + 2);
  if (total < hlen) [[unlikely]] return ParseStatus::kMalformed;
  if (total > avail) [[unlikely]] return ParseStatus::kTruncated;

  // flags(3) | fragment offset(13): more-fragments is 0x2000.
  const std::uint16_t frag = load_be16(ip + 6);
  const bool later_fragment = (frag & 0x1fffu) != 0;
  out->fragment = (frag & 0x3fffu) != 0;
  FlowKey& k = out->key;
  k.family = 4;
  k.proto = load_u8(ip + 9);
  k.sport = 0;
  k.dport = 0;
  // Each address as two 8-byte stores, the shape flow_hash loads them in:
  // a 4-byte copy over a memset would make its loads miss store forwarding.
  std::byte a[16] = {};
  std::memcpy(a, ip + 12, 4);
  std::memcpy(k.saddr, a, 16);
  std::memcpy(a, ip + 16, 4);
  std::memcpy(k.daddr, a, 16);
  out->l4_off = static_cast<std::uint16_t>(out->l3_off + hlen);
  if (later_fragment) return ParseStatus::kOk;  // payload bytes, not a header
  return parse_l4(ip + hlen, total - hlen, out->fragment, out);
}

// ip points at the IPv6 header, avail = bytes from there to data_end.
[[gnu::always_inline]] inline
ParseStatus parse_ipv6(const std::byte* ip, std::size_t avail, Parsed* out) noexcept {
  if (avail < kIpv6HeaderLen) [[unlikely]] return ParseStatus::kTruncated;
  if ((load_u8(ip) >> 4) != 6) [[unlikely]] return ParseStatus::kMalformed;
  const std::size_t ip_end = kIpv6HeaderLen + load_be16(ip + 4);
  if (ip_end > avail) [[unlikely]] return ParseStatus::kTruncated;

  FlowKey& k = out->key;
  k.family = 6;
  k.sport = 0;
  k.dport = 0;
  std::memcpy(k.saddr, ip + 8, 16);
  std::memcpy(k.daddr, ip + 24, 16);
  std::uint8_t nh = load_u8(ip + 6);
  std::size_t off = kIpv6HeaderLen;
  bool fragment = false, later_fragment = false;
  if (is_ipv6_ext(nh)) [[unlikely]] {
    // Locals, not out's fields: a pointer into *out passed to a call that
    // does not inline would keep every store to *out alive, where a
    // program that reads only some of Parsed needs the others never stored.
    const ParseStatus st = ipv6_ext_walk(ip, ip_end, &off, &nh, &fragment, &later_fragment);
    if (st != ParseStatus::kOk) return st;
  }
  out->fragment = fragment;
  k.proto = nh;
  // off <= 40 + 8 * 2048 (kMaxIpv6ExtHeaders headers of at most 2048 bytes).
  out->l4_off = static_cast<std::uint16_t>(out->l3_off + off);
  if (later_fragment) return ParseStatus::kOk;
  return parse_l4(ip + off, ip_end - off, out->fragment, out);
}

}  // namespace detail

// Parses [data, data_end) into *out (see the top of this file). Any
// thread; reads only inside the frame; data > data_end counts as empty.
// Always inlined (see the top of this file).
[[gnu::always_inline]] inline ParseStatus parse_frame(const std::byte* data,
                                                      const std::byte* data_end,
                                                      Parsed* out) noexcept {
  const std::size_t len = data_end > data ? static_cast<std::size_t>(data_end - data) : 0;
  if (len < kEthHeaderLen) [[unlikely]] return ParseStatus::kTruncated;
  std::size_t off = kEthHeaderLen;
  std::uint16_t type = detail::load_be16(data + 12);
  std::uint8_t vlans = 0;
  while ((type == kEtherTypeVlan || type == kEtherTypeQinq) && vlans < kMaxVlanTags) {
    if (len - off < kVlanTagLen) [[unlikely]] return ParseStatus::kTruncated;
    type = detail::load_be16(data + off + 2);  // TCI(2) then the inner type
    off += kVlanTagLen;
    ++vlans;
  }
  out->ethertype = type;
  out->vlans = vlans;
  out->l3_off = static_cast<std::uint16_t>(off);
  out->l4_off = static_cast<std::uint16_t>(off);
  out->fragment = false;
  out->has_ports = false;
  if (type == kEtherTypeIpv4) return detail::parse_ipv4(data + off, len - off, out);
  if (type == kEtherTypeIpv6) return detail::parse_ipv6(data + off, len - off, out);
  return ParseStatus::kNotIp;
}

namespace detail {
// Odd multipliers: each hash step below is a bijection of the 64-bit state.
inline constexpr std::uint64_t kHashMul1 = 0x9e3779b97f4a7c15ull;  // 2^64 / golden ratio
inline constexpr std::uint64_t kHashMul2 = 0xd6e8feb86659fd93ull;
[[gnu::always_inline]] inline std::uint64_t hash_step(std::uint64_t h, std::uint64_t w) noexcept {
  h = (h ^ w) * kHashMul2;
  return h ^ (h >> 32);
}
}  // namespace detail

// A 32-bit hash of a flow: equal keys hash equal in every process (no
// seed), and every key bit reaches every hash bit. Not keyed: an attacker
// who controls addresses can aim flows at one device, as with RSS and the
// default Toeplitz key. Any thread.
inline std::uint32_t flow_hash(const FlowKey& k) noexcept {
  std::uint64_t s0, s1, d0, d1;
  std::memcpy(&s0, k.saddr, 8);
  std::memcpy(&s1, k.saddr + 8, 8);
  std::memcpy(&d0, k.daddr, 8);
  std::memcpy(&d1, k.daddr + 8, 8);
  const std::uint64_t meta = std::uint64_t{k.sport} | std::uint64_t{k.dport} << 16 |
                             std::uint64_t{k.proto} << 32 | std::uint64_t{k.family} << 40;
  // Each step is a bijection of the state for fixed w, so keys differing in
  // one word differ in h before the final fold to 32 bits.
  std::uint64_t h = meta * detail::kHashMul1;
  h = detail::hash_step(h, s0);
  h = detail::hash_step(h, d0);
  h = detail::hash_step(h, s1);
  h = detail::hash_step(h, d1);
  // Final avalanche (the last words have had one step only): two more
  // multiply/xorshift rounds so each of them reaches every output bit.
  h ^= h >> 29;
  h *= detail::kHashMul1;
  h ^= h >> 32;
  h *= detail::kHashMul2;
  return static_cast<std::uint32_t>(h >> 32);
}

}  // namespace pagepool::fwd
