// pagepool-gen's XDP program for live-frame generation (BPF_PROG_RUN with
// BPF_F_TEST_XDP_LIVE_FRAMES): the kernel runs it on copies of one
// template frame and transmits what it returns XDP_TX for out of the
// ingress interface given in the run's context. It spreads the frames over
// `flows` UDP source ports, one per frame in turn, so a receiver sees
// several flows. The UDP checksum is 0 (none, allowed for IPv4) and the
// IPv4 header does not change, so no checksum needs fixing.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Layout shared with gen.cpp (struct GenConfig): written once before the
// first run.
struct gen_config {
  __u32 flows;      // >= 1
  __u32 port_base;  // first UDP source port
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct gen_config);
} gen_cfg SEC(".maps");

// Frames this CPU generated: picks the flow, and gen.cpp reads it as the
// number of frames the program handed to the kernel.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} gen_count SEC(".maps");

SEC("xdp")
int pagepool_gen(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* end = (void*)(long)ctx->data_end;
  __u32 key = 0;
  struct gen_config* cfg = bpf_map_lookup_elem(&gen_cfg, &key);
  __u64* n = bpf_map_lookup_elem(&gen_count, &key);
  if (!cfg || !n) return XDP_ABORTED;
  __u64 seq = (*n)++;
  if (cfg->flows > 1) {
    struct ethhdr* eth = data;
    struct iphdr* ip = (void*)(eth + 1);
    struct udphdr* udp = (void*)(ip + 1);  // gen.cpp builds a 20-byte IPv4 header
    if ((void*)(udp + 1) > end) return XDP_ABORTED;
    udp->source = bpf_htons((__u16)(cfg->port_base + seq % cfg->flows));
  }
  return XDP_TX;
}

char _license[] SEC("license") = "Dual MIT/GPL";
