#!/usr/bin/env bash
# e2e.xsk_forward: pagepool-fwd between two veths over AF_XDP, with exact
# packet accounting (scripts/netns-demo.sh runs gen -> fwd -> sink in
# private network namespaces). At a bounded rate:
#   frames sent        == frames the forwarder received + frames the kernel
#                         dropped before its socket (no buffer, RX ring full)
#   frames forwarded   == frames at the sink + frames veth-b dropped
#   every frame the forwarder received was forwarded (redirect, no drops)
#   the forwarder's accounting holds and its pools end at inflight 0
# Kernel drops should be 0 at this rate; they are reported, and fail the
# test only above 1 % (a forwarder starved of CPU on a loaded machine).
# Exit 77 (skip) where root, veth, AF_XDP or BPF is missing.
#   xsk_forward.sh DEMO_SCRIPT --gen-bin G --sink-bin S --fwd-bin F [demo options]
set -euo pipefail
DEMO="${1:?usage: xsk_forward.sh DEMO_SCRIPT [netns-demo options]}"
shift
command -v jq >/dev/null || { echo "xsk_forward: SKIP: needs jq" >&2; exit 77; }

# Bounded well inside ctest's 120 s, so that on a hang the demo is
# terminated (its trap then removes the namespaces) rather than killed.
out=$(timeout -s TERM -k 10 90 "$DEMO" --fwd pagepool --duration 3 --rate 100000 --flows 16 --size 64 --json "$@") \
  && rc=0 || rc=$?
[[ $rc -eq 124 || $rc -eq 137 ]] && echo "xsk_forward: the demo did not finish in 90 s (exit $rc)" >&2
[[ $rc -eq 0 ]] || exit "$rc"   # 77: skipped, with the reason on stderr
echo "$out" | jq -c 'del(.tools)'

fail=0
check() {  # check DESCRIPTION JQ-BOOLEAN
  if [[ $(echo "$out" | jq -r "$2") == true ]]; then
    echo "ok   $1"
  else
    echo "FAIL $1: $(echo "$out" | jq -c "$3")"; fail=1
  fi
}
check "frames were generated and forwarded" '.sent > 100000 and .forwarded > 0' '{sent, forwarded}'
check "sent == fwd rx + kernel drops before the socket" \
  '.sent == .fwd_rx + .kernel_drops.fwd_socket' '{sent, fwd_rx, kernel_drops}'
check "kernel drops before the socket <= 1 % of sent" \
  '.kernel_drops.fwd_socket * 100 <= .sent' '{sent, kernel_drops}'
check "every received frame forwarded (redirect, no drops)" \
  '.forwarded == .fwd_rx and .tools.fwd.packets.dropped_total == 0' '{fwd_rx, forwarded, dropped: .tools.fwd.packets.dropped}'
check "forwarded == sink + veth-b drops" \
  '.forwarded == .sink + .kernel_drops.veth_b_tx' '{forwarded, sink, kernel_drops}'
check "sink saw only generated frames" '.tools.sink.other == 0' '.tools.sink'
check "forwarder accounting holds" '.tools.fwd.accounting_ok == true' '.tools.fwd.accounting_errors'
check "forwarder inflight at exit 0" '.tools.fwd.inflight_at_exit == 0' '.tools.fwd.inflight_at_exit'
drops=$(echo "$out" | jq '.kernel_drops.fwd_socket')
[[ "$drops" == 0 ]] || echo "note: the kernel dropped $drops frames before the socket (loaded machine?)"
exit "$fail"
