#!/usr/bin/env python3
"""Writes the fuzzer's seed corpus (fuzz/corpus/): one valid or cut frame
per parser path. Run once after changing it; run.sh only copies the files."""
import os
import struct

MACS = bytes.fromhex("020000000001" "020000000002")
SRC4, DST4 = bytes([10, 0, 0, 1]), bytes([192, 168, 1, 2])
SRC6 = bytes.fromhex("20010db8000000000000000000000001")
DST6 = bytes.fromhex("20010db8000000000000000000000202")


def eth(ethertype, tags=()):
    out = MACS
    for i, tpid in enumerate(tags):
        out += struct.pack("!HH", tpid, 100 + i)
    return out + struct.pack("!H", ethertype)


def udp(payload=b"hello!", sport=4242, dport=53):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(payload=b"GET /", opts=b""):
    doff = (20 + len(opts)) // 4
    return struct.pack("!HHIIBBHHH", 50000, 443, 1, 0, doff << 4, 0x18, 65535, 0, 0) + opts + payload


def ipv4(proto, l4, opts=b"", frag=0):
    ihl = (20 + len(opts)) // 4
    total = 20 + len(opts) + len(l4)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0x1234, frag, 64, proto, 0,
                       SRC4, DST4) + opts + l4


def ipv6(nh, payload):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64, SRC6, DST6) + payload


def opt_hdr(nh, nbytes=8):  # hop-by-hop / destination options with PadN
    return bytes([nh, nbytes // 8 - 1, 1, nbytes - 4]) + bytes(nbytes - 4)


def frag_hdr(nh, offset, more):
    return struct.pack("!BBHI", nh, 0, offset << 3 | int(more), 0xbeef)


SEEDS = {
    "ipv4_udp": eth(0x0800) + ipv4(17, udp()),
    "ipv4_tcp": eth(0x0800) + ipv4(6, tcp()),
    "ipv4_options_tcp_options": eth(0x0800) + ipv4(6, tcp(opts=bytes([1] * 12)), opts=bytes([1] * 8)),
    "ipv4_icmp": eth(0x0800) + ipv4(1, bytes([8, 0, 0, 0, 0, 1, 0, 1])),
    "ipv4_first_fragment": eth(0x0800) + ipv4(17, udp(b"x" * 16), frag=0x2000),
    "ipv4_later_fragment": eth(0x0800) + ipv4(17, b"y" * 16, frag=185),
    "ipv4_udp_padded": eth(0x0800) + ipv4(17, udp(b"")) + bytes(18),
    "ipv6_udp": eth(0x86DD) + ipv6(17, udp()),
    "ipv6_hbh_dstopts_udp": eth(0x86DD) + ipv6(0, opt_hdr(60) + opt_hdr(17, 16) + udp()),
    "ipv6_first_fragment_tcp": eth(0x86DD) + ipv6(44, frag_hdr(6, 0, True) + tcp()),
    "ipv6_later_fragment": eth(0x86DD) + ipv6(44, frag_hdr(17, 100, False) + b"z" * 8),
    "vlan_ipv4_udp": eth(0x0800, [0x8100]) + ipv4(17, udp()),
    "qinq_ipv6_tcp": eth(0x86DD, [0x88A8, 0x8100]) + ipv6(6, tcp()),
    "arp": eth(0x0806) + bytes(28),
    "truncated_ipv4_header": (eth(0x0800) + ipv4(17, udp()))[:24],
    "truncated_tcp_header": (eth(0x0800) + ipv4(6, tcp()))[:44],
    "truncated_ipv6_ext": (eth(0x86DD) + ipv6(0, opt_hdr(17) + udp()))[:58],
}

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
os.makedirs(here, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)
