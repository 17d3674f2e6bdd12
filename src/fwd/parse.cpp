// The out-of-line part of the frame parser (include/pagepool/fwd/parse.hpp):
// the IPv6 extension-header walk and the status names.
#include "pagepool/fwd/parse.hpp"

namespace pagepool::fwd {

const char* parse_status_name(ParseStatus s) noexcept {
  switch (s) {
    case ParseStatus::kOk: return "ok";
    case ParseStatus::kNotIp: return "not-ip";
    case ParseStatus::kTruncated: return "truncated";
    case ParseStatus::kMalformed: return "malformed";
  }
  return "unknown";
}

namespace detail {

// Called by parse_ipv6 when the fixed header's next header is an extension
// header. Bounds: ip_end (40 + payload_length) is already known to be
// inside the frame, so checking against ip_end keeps every read inside it;
// a header that runs past ip_end contradicts payload_length: kMalformed.
ParseStatus ipv6_ext_walk(const std::byte* ip, std::size_t ip_end, std::size_t* off,
                          std::uint8_t* nh, bool* fragment, bool* later_fragment) noexcept {
  std::size_t o = *off;
  std::uint8_t type = *nh;
  for (unsigned n = 0; is_ipv6_ext(type); ++n) {
    if (n == kMaxIpv6ExtHeaders) return ParseStatus::kMalformed;
    // RFC 8200 4.3: hop-by-hop options only directly after the fixed header.
    if (type == kIpProtoHopOpts && n != 0) return ParseStatus::kMalformed;
    // Every extension header is at least 8 bytes: next header, length, 6 more.
    if (ip_end - o < 8) return ParseStatus::kMalformed;
    const std::uint8_t next = load_u8(ip + o);
    if (type == kIpProtoFragment) {
      // Fixed 8 bytes; offset(13) | res(2) | M(1) in bytes 2-3.
      const std::uint16_t fo = load_be16(ip + o + 2);
      o += 8;
      type = next;
      if ((fo & 0xfff9u) != 0) *fragment = true;  // offset != 0 or more-fragments
      if ((fo & 0xfff8u) != 0) {
        *later_fragment = true;  // what follows is the middle of the datagram
        break;
      }
      continue;
    }
    // Hop-by-hop, routing, destination options: length in 8-byte units
    // after the first 8.
    const std::size_t len = (std::size_t{load_u8(ip + o + 1)} + 1) * 8;
    if (len > ip_end - o) return ParseStatus::kMalformed;
    o += len;
    type = next;
  }
  *off = o;
  *nh = type;
  return ParseStatus::kOk;
}

}  // namespace detail
}  // namespace pagepool::fwd
