// pagepool-sink's programs: count every frame and its bytes in a per-CPU
// slot and drop it, either at XDP (pagepool_sink: in the driver, before
// any socket buffer) or at TC ingress (pagepool_sink_tc: on the socket
// buffer the stack already has). Which is cheaper depends on what arrives:
// see sink.cpp.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Layout shared with sink.cpp (struct SinkCounters).
struct sink_counters {
  __u64 frames;  // every frame
  __u64 bytes;   // their lengths (no FCS)
  __u64 other;   // frames that are not UDP over IPv4 (pagepool-gen sends only those)
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct sink_counters);
} sink_counts SEC(".maps");

SEC("xdp")
int pagepool_sink(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* end = (void*)(long)ctx->data_end;
  __u32 key = 0;
  struct sink_counters* c = bpf_map_lookup_elem(&sink_counts, &key);
  if (!c) return XDP_DROP;
  c->frames++;
  c->bytes += bpf_xdp_get_buff_len(ctx);
  struct ethhdr* eth = data;
  struct iphdr* ip = (void*)(eth + 1);
  if ((void*)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP)
    c->other++;
  return XDP_DROP;
}

// The same at TC ingress (clsact, direct action).
SEC("tc")
int pagepool_sink_tc(struct __sk_buff* skb) {
  __u32 key = 0;
  struct sink_counters* c = bpf_map_lookup_elem(&sink_counts, &key);
  if (!c) return TC_ACT_SHOT;
  c->frames++;
  c->bytes += skb->len;
  __u8 proto = 0;
  if (skb->protocol != bpf_htons(ETH_P_IP) ||
      bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, protocol), &proto, 1) != 0 ||
      proto != IPPROTO_UDP)
    c->other++;
  return TC_ACT_SHOT;
}

char _license[] SEC("license") = "Dual MIT/GPL";
