#!/usr/bin/env bash
# AF_XDP forwarding demo in three private network namespaces:
#
#   [gen] veth ──── veth-a [fwd] veth-b ──── veth [sink]
#   pagepool-gen      pagepool-fwd or xsk-minfwd      pagepool-sink
#
# pagepool-gen sends UDP/IPv4 frames (10.77.0.1 -> 10.77.1.1, locally
# administered MACs 02:77:..) into the gen namespace's veth; the forwarder
# receives them on veth-a with AF_XDP and sends them out of veth-b; the
# sink counts what arrives. No addresses, routes or links outside the three
# namespaces: nothing can leave them. Everything is removed at exit, also on
# Ctrl-C or a failure (trap), and every process runs under `timeout`
# (interrupted at its limit, killed 5 s later if it does not exit).
#
#   scripts/netns-demo.sh [--fwd pagepool|minfwd] [--duration S] [--size B]
#                         [--flows N] [--rate PPS] [--build-dir DIR] [--json]
#                         [--gen-mode auto|live|packet|xsk] [--gen-cpu C] [--fwd-cpu C]
#                         [--fwd-threads N] [--xdp-mode generic|native] [--fwd-arg ARG]...
#                         [--gen-bin P] [--sink-bin P] [--fwd-bin P]
#
# The generator runs on CPU 0 and the forwarder on the other CPUs (taskset;
# --gen-cpu/--fwd-cpu "" for no pinning); pagepool-fwd with one polling
# thread for both devices (--fwd-threads), as xsk-minfwd, so the two
# forwarders compare like for like. Both attach their XDP programs in the
# same mode (--xdp-mode, generic by default: see XDP_MODE below). --fwd-arg
# passes an option through. The generator is pagepool-gen's AF_XDP socket
# (--gen-mode xsk); live frames (live, or auto at full speed) need
# --xdp-mode native, or veth drops them all, and are refused without it.
#
# Prints generated / received by the forwarder / forwarded / received at the
# sink and the forwarded rate (forwarded frames / the generator's sending
# time). --json prints one object instead (fields at the end of this file).
# Needs root, network namespaces, veth, AF_XDP and BPF: exits 77 with the
# reason where one is missing or refused.
# Needs jq (JSON of the tools).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FWD=pagepool
DURATION=5
SIZE=64
FLOWS=16
RATE=0
BUILD="$ROOT/build/release"
JSON=0
GEN="" SINK="" FWD_BIN=""
# pagepool-gen's AF_XDP TX socket. Not live frames (its fastest mode into a
# sink): with them, an AF_XDP forwarder on veth in native XDP mode receives
# its frames in late bursts and the kernel drops most for a full RX ring
# (measured: xsk-minfwd forwards 0.33 Mpps of 1.0 offered, against 0.85 of
# 0.86 from the AF_XDP generator).
GEN_MODE=xsk
NCPU=$(nproc)
# The generator (and, through its XDP transmit, the receive side of veth-a)
# on CPU 0, the forwarder on the others: sharing a CPU, each would stall
# the other and the kernel would drop frames for want of posted buffers.
GEN_CPU=0                                           # "" = any
FWD_CPU=$([[ $NCPU -ge 2 ]] && echo "1-$((NCPU - 1))" || echo "")
# The forwarders' XDP programs on veth-a and veth-b: generic (SKB) mode.
# What arrives on veth-a are socket buffers (the generator's copy-mode TX);
# native XDP on veth first copies each one into a page-pool page with XDP
# headroom (skb_pp_cow_data in perf), generic XDP only grows its head.
# Measured (5 interleaved pairs, pagepool-fwd): 0.848 Mpps forwarded
# generic against 0.752 native (median).
XDP_MODE=generic
FWD_THREADS=1   # pagepool-fwd polling threads: 1 = one thread for both devices, as xsk-minfwd
FWD_ARGS=()

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }
die() { echo "netns-demo: $*" >&2; exit 1; }
skip() { echo "netns-demo: SKIP: $*" >&2; exit 77; }
timed_out() {
  case "$1" in
    124) echo " (still running at its time limit)" ;;
    137) echo " (ignored the interrupt at its time limit and was killed)" ;;
  esac
}
# Every process runs under timeout(1): interrupted at its limit, killed
# KILL_AFTER seconds later if it does not exit. --foreground: a signal to a
# timeout reaches its tool alone. Without it, timeout sends SIGCONT after
# the signal, and a SIGCONT that arrives while a tool exits cancels the
# SIGSTOP that LeakSanitizer's exit check (ASan builds) queues with
# PTRACE_ATTACH; the check then waits for a stop that never comes (seen in
# CI: the sink, interrupted at the end of a run, killed KILL_AFTER s later,
# 1 run in ~15). The tools then share the script's process group; the
# trap's cleanup below does not depend on which of them a Ctrl-C reaches.
KILL_AFTER=5

while [[ $# -gt 0 ]]; do
  case "$1" in
    --fwd) FWD="${2:?}"; shift 2 ;;
    --duration) DURATION="${2:?}"; shift 2 ;;
    --size) SIZE="${2:?}"; shift 2 ;;
    --flows) FLOWS="${2:?}"; shift 2 ;;
    --rate) RATE="${2:?}"; shift 2 ;;
    --gen-mode) GEN_MODE="${2:?}"; shift 2 ;;
    --gen-cpu) GEN_CPU="${2?}"; shift 2 ;;
    --fwd-cpu) FWD_CPU="${2?}"; shift 2 ;;
    --fwd-threads) FWD_THREADS="${2:?}"; shift 2 ;;
    --xdp-mode) XDP_MODE="${2:?}"; shift 2 ;;
    --fwd-arg) FWD_ARGS+=("${2:?}"); shift 2 ;;
    --build-dir) BUILD="${2:?}"; shift 2 ;;
    --gen-bin) GEN="${2:?}"; shift 2 ;;
    --sink-bin) SINK="${2:?}"; shift 2 ;;
    --fwd-bin) FWD_BIN="${2:?}"; shift 2 ;;
    --json) JSON=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[[ "$FWD" == pagepool || "$FWD" == minfwd ]] || die "--fwd must be pagepool or minfwd, not '$FWD'"
[[ "$XDP_MODE" == generic || "$XDP_MODE" == native ]] || die "--xdp-mode must be generic or native, not '$XDP_MODE'"
[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 1 && "$DURATION" -le 600 ]] || die "--duration must be 1..600 seconds"
[[ "$SIZE" =~ ^[0-9]+$ && "$SIZE" -ge 64 && "$SIZE" -le 1518 ]] || die "--size must be 64..1518"
[[ "$RATE" =~ ^[0-9]+$ ]] || die "--rate must be frames per second (0: full speed), not '$RATE'"
RATE=$((10#$RATE))  # "00" is 0 below and for pagepool-gen
[[ "$GEN_MODE" =~ ^(auto|live|packet|xsk)$ ]] || die "--gen-mode must be auto, live, packet or xsk, not '$GEN_MODE'"
# Live frames leave the gen veth as XDP frames, which veth hands to its peer
# only when the peer has a native XDP program: in generic mode every one is
# dropped and nothing is forwarded (measured: 10.1M generated, 0 sent).
# pagepool-gen's auto mode is live at full speed.
if [[ "$XDP_MODE" == generic && ( "$GEN_MODE" == live || ( "$GEN_MODE" == auto && "$RATE" == 0 ) ) ]]; then
  die "--gen-mode $GEN_MODE$([[ $GEN_MODE == auto ]] && echo ' (live at full speed)') needs --xdp-mode native: veth drops XDP frames into a peer without a native XDP program"
fi
[[ "$BUILD" = /* ]] || BUILD="$PWD/$BUILD"

[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, veth, AF_XDP, BPF)"
command -v ip >/dev/null || skip "iproute2 (ip) is not installed"

GEN="${GEN:-$BUILD/tools/xsk/pagepool-gen}"
SINK="${SINK:-$BUILD/tools/xsk/pagepool-sink}"
if [[ "$FWD" == pagepool ]]; then
  FWD_BIN="${FWD_BIN:-$BUILD/tools/pagepool-fwd/pagepool-fwd}"; FWD_TARGET=pagepool-fwd
else
  FWD_BIN="${FWD_BIN:-$BUILD/tools/xsk/xsk-minfwd}"; FWD_TARGET=xsk-minfwd
fi
for b in "$GEN" "$SINK" "$FWD_BIN"; do
  [[ -x "$b" ]] || die "missing $b (build: cmake --build $BUILD --target pagepool-gen pagepool-sink $FWD_TARGET)"
done

command -v jq >/dev/null || die "needs jq (apt-get install jq)"
# AF_XDP sockets and BPF programs work here (pagepool-sink --check).
why=$("$SINK" --check 2>&1 >/dev/null) && rc=0 || rc=$?
[[ $rc -eq 77 ]] && skip "${why#SKIP: }"
[[ $rc -eq 0 ]] || die "pagepool-sink --check: $why"

# ---- setup, undone by cleanup() whatever happens ----------------------------------
# A run killed outright (SIGKILL: no trap runs) leaves its namespaces,
# named after its PID. Remove those whose script is gone and that hold no
# process; anything else is left alone and named.
while read -r ns _; do
  [[ "$ns" =~ ^ppd([0-9]+)-(gen|fwd|sink)$ ]] || continue
  kill -0 "${BASH_REMATCH[1]}" 2>/dev/null && continue
  if [[ -z "$(ip netns pids "$ns" 2>/dev/null)" ]]; then
    ip netns del "$ns" 2>/dev/null && echo "netns-demo: removed $ns, left by a run that was killed" >&2
  else
    echo "netns-demo: $ns was left by a run that was killed and still holds processes; not touched" >&2
  fi
done < <(ip netns list 2>/dev/null)
P="ppd$$"
NS_GEN="${P}-gen" NS_FWD="${P}-fwd" NS_SINK="${P}-sink"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/netns-demo.XXXXXX")
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in "$NS_GEN" "$NS_FWD" "$NS_SINK"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for ns in "$NS_GEN" "$NS_FWD" "$NS_SINK"; do
  # Refused where the caller may not make namespaces (no CAP_SYS_ADMIN, a
  # container without /run/netns, a kernel without them): a skip, like a
  # missing veth driver below.
  ip netns add "$ns" 2>"$WORK/netns.err" ||
    skip "cannot create network namespace $ns: $(head -n 1 "$WORK/netns.err")"
  # No IPv6 autoconfiguration or neighbour discovery on the new links.
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
    >/dev/null 2>&1 || true
done
# Created directly inside the namespaces: nothing is ever in the caller's.
ip link add veth netns "$NS_GEN" type veth peer name veth-a netns "$NS_FWD" 2>/dev/null ||
  skip "cannot create a veth pair (no veth driver?)"
ip link add veth-b netns "$NS_FWD" type veth peer name veth netns "$NS_SINK" ||
  die "cannot create the second veth pair"
ip -n "$NS_GEN" link set veth address 02:77:00:00:00:01 up
ip -n "$NS_FWD" link set veth-a address 02:77:00:00:00:02 up
ip -n "$NS_FWD" link set veth-b address 02:77:00:00:01:02 up
ip -n "$NS_SINK" link set veth address 02:77:00:00:01:01 up

pin() { if [[ -n "$1" ]]; then echo taskset -c "$1"; fi; }

# ---- run -----------------------------------------------------------------------------
# The sink first (its XDP program counts from the start), then the
# forwarder, then, once the forwarder's sockets are ready, the generator.
# The forwarder runs DURATION + 4 s: up to 2 s of start-up and 1 s after
# the generator stops, to drain. The sink is stopped after the forwarder.
# The sink counts at TC ingress: what the forwarder sends (AF_XDP copy mode)
# arrives as socket buffers, which native XDP on veth would first copy into
# a page with XDP headroom (measured: 1.15-1.20 Mpps at TC, 0.94-0.96 at
# XDP). The sink's work runs on the forwarder's CPU (the veth's NAPI runs
# where the sender is), so the cheaper hook leaves the forwarder more.
timeout --foreground -s INT -k "$KILL_AFTER" $((DURATION + 30)) ip netns exec "$NS_SINK" "$SINK" --dev veth --hook tc \
  --duration $((DURATION + 20)) --json --quiet --ready-file "$WORK/sink.ready" \
  >"$WORK/sink.json" 2>"$WORK/sink.err" &
SINK_PID=$!; PIDS+=("$SINK_PID")
for _ in $(seq 100); do [[ -f "$WORK/sink.ready" ]] && break; kill -0 "$SINK_PID" 2>/dev/null || break; sleep 0.05; done
[[ -f "$WORK/sink.ready" ]] || die "pagepool-sink did not start: $(cat "$WORK/sink.err")"

FWD_SECS=$((DURATION + 4))
if [[ "$FWD" == pagepool ]]; then
  FWD_CMD=("$FWD_BIN" --dev xsk:veth-a --dev xsk:veth-b --prog redirect --duration "$FWD_SECS"
           --threads "$FWD_THREADS" --xsk-attach "$XDP_MODE" --json --quiet "${FWD_ARGS[@]}")
else
  FWD_CMD=("$FWD_BIN" --dev veth-a --dev veth-b --duration "$FWD_SECS" --json --quiet
           --xdp-mode "$([[ "$XDP_MODE" == generic ]] && echo skb || echo drv)"
           --ready-file "$WORK/fwd.ready" "${FWD_ARGS[@]}")
fi
# shellcheck disable=SC2046
timeout --foreground -s INT -k "$KILL_AFTER" $((FWD_SECS + 20)) ip netns exec "$NS_FWD" $(pin "$FWD_CPU") "${FWD_CMD[@]}" \
  >"$WORK/fwd.json" 2>"$WORK/fwd.err" &
FWD_PID=$!; PIDS+=("$FWD_PID")
T_FWD=$(date +%s%N)
# Ready: minfwd says so; pagepool-fwd has attached XDP programs to both
# interfaces (its sockets are bound right after), plus a moment to fill.
for _ in $(seq 200); do
  kill -0 "$FWD_PID" 2>/dev/null || break
  if [[ "$FWD" == minfwd ]]; then
    [[ -f "$WORK/fwd.ready" ]] && break
  elif ip -n "$NS_FWD" link show veth-a | grep -q 'prog/xdp' &&
       ip -n "$NS_FWD" link show veth-b | grep -q 'prog/xdp'; then
    sleep 0.3; break
  fi
  sleep 0.05
done
kill -0 "$FWD_PID" 2>/dev/null || die "$FWD_TARGET exited early: $(tail -n 3 "$WORK/fwd.err")"
# The forwarder must outlive the generator by a second at least.
(( ($(date +%s%N) - T_FWD) / 1000000 <= (FWD_SECS - DURATION - 1) * 1000 )) ||
  die "$FWD_TARGET took more than $((FWD_SECS - DURATION - 1)) s to start"

GEN_ARGS=(--dev veth --mode "$GEN_MODE" --size "$SIZE" --flows "$FLOWS" --duration "$DURATION" --json --quiet
          --src-mac 02:77:00:00:00:01 --dst-mac 02:77:00:00:00:02 --src-ip 10.77.0.1 --dst-ip 10.77.1.1)
[[ "$RATE" != 0 ]] && GEN_ARGS+=(--rate "$RATE")
# shellcheck disable=SC2046
timeout --foreground -s INT -k "$KILL_AFTER" $((DURATION + 20)) ip netns exec "$NS_GEN" $(pin "$GEN_CPU") "$GEN" "${GEN_ARGS[@]}" \
  >"$WORK/gen.json" 2>"$WORK/gen.err" || { rc=$?; die "pagepool-gen failed with $rc$(timed_out "$rc"): $(tail -n 3 "$WORK/gen.err")"; }

FWD_RC=0
wait "$FWD_PID" || FWD_RC=$?
kill -INT "$SINK_PID" 2>/dev/null || true
SINK_RC=0
wait "$SINK_PID" || SINK_RC=$?
PIDS=()
# timeout(1): 124 = still running at its limit (interrupted), 137 = it
# then ignored the interrupt for KILL_AFTER s and was killed.
[[ $FWD_RC -eq 0 ]] || die "$FWD_TARGET exited with $FWD_RC$(timed_out "$FWD_RC"): $(tail -n 3 "$WORK/fwd.err")"
[[ $SINK_RC -eq 0 ]] || die "pagepool-sink exited with $SINK_RC$(timed_out "$SINK_RC"): $(tail -n 3 "$WORK/sink.err")"
jq -e . "$WORK/fwd.json" >/dev/null 2>&1 || die "$FWD_TARGET printed no JSON: $(head -c 300 "$WORK/fwd.json")"

# Kernel counters of the links: frames dropped on the way into the
# forwarder (veth-a's rx_dropped: its XDP ring full) and out of it.
link_json() { timeout -k 2 10 ip -n "$1" -s -j link show "$2" || die "ip link show $2 in $1 did not answer"; }
VA=$(link_json "$NS_FWD" veth-a)
VB=$(link_json "$NS_FWD" veth-b)

if [[ "$FWD" == pagepool ]]; then
  FWD_RX=$(jq '.packets.rx' "$WORK/fwd.json"); FWD_TX=$(jq '.packets.tx' "$WORK/fwd.json")
  # Frames the kernel dropped before the forwarder saw them: no posted
  # buffer or RX ring full on the socket (the device's rx_no_buf).
  FWD_KDROP=$(jq '[.devices[]? | (.rx_no_buf // 0)] | add // 0' "$WORK/fwd.json")
else
  FWD_RX=$(jq '.devices[0].rx' "$WORK/fwd.json"); FWD_TX=$(jq '.forwarded' "$WORK/fwd.json")
  FWD_KDROP=$(jq '[.devices[] | .rx_dropped + .rx_ring_full] | add' "$WORK/fwd.json")
fi

jq -n --arg fwd "$FWD" --arg xdp_mode "$XDP_MODE" --argjson size "$SIZE" --argjson flows "$FLOWS" --argjson duration "$DURATION" \
  --argjson rate "$RATE" \
  --slurpfile gen "$WORK/gen.json" --slurpfile fj "$WORK/fwd.json" --slurpfile sink "$WORK/sink.json" \
  --argjson fwd_rx "$FWD_RX" --argjson fwd_tx "$FWD_TX" --argjson fwd_kdrop "$FWD_KDROP" \
  --argjson va "$VA" --argjson vb "$VB" '
  ($gen[0]) as $g | ($sink[0]) as $s |
  {
    fwd: $fwd, xdp_mode: $xdp_mode, size: $size, flows: $flows, duration: $duration, rate: $rate,
    gen_mode: $g.mode,
    generated: $g.generated,            # frames the generator handed to the kernel
    sent: $g.sent,                      # minus those its veth dropped
    fwd_rx: $fwd_rx,                    # frames the forwarder received
    forwarded: $fwd_tx,                 # frames the forwarder transmitted
    sink: $s.frames,                    # frames that reached the sink
    kernel_drops: {
      fwd_socket: $fwd_kdrop,           # no buffer / RX ring full on the forwarder socket
      veth_a_rx: $va[0].stats64.rx.dropped,
      veth_b_tx: $vb[0].stats64.tx.dropped
    },
    gen_seconds: $g.seconds,
    mpps: { generated: $g.mpps,
            forwarded: (if $g.seconds > 0 then $fwd_tx / $g.seconds / 1e6 else 0 end),
            sink: $s.mpps },
    tools: { gen: $g, fwd: $fj[0], sink: $s }
  }' >"$WORK/summary.json"

if [[ $JSON -eq 1 ]]; then
  jq -c . "$WORK/summary.json"
else
  jq -r '"netns-demo: fwd=\(.fwd) xdp=\(.xdp_mode) size=\(.size) flows=\(.flows) duration=\(.duration)s gen=\(.gen_mode)\n" +
         "  generated  \(.generated)  (\(.mpps.generated | .*1000 | round / 1000) Mpps)\n" +
         "  fwd rx     \(.fwd_rx)\n" +
         "  forwarded  \(.forwarded)  (\(.mpps.forwarded | .*1000 | round / 1000) Mpps)\n" +
         "  sink       \(.sink)  (\(.mpps.sink | .*1000 | round / 1000) Mpps while active)\n" +
         "  kernel drops: socket \(.kernel_drops.fwd_socket), veth-a rx \(.kernel_drops.veth_a_rx), veth-b tx \(.kernel_drops.veth_b_tx)"' \
    "$WORK/summary.json"
fi
# --json fields: fwd, xdp_mode, size, flows, duration, rate, gen_mode, generated, sent,
# fwd_rx, forwarded, sink, kernel_drops{fwd_socket, veth_a_rx, veth_b_tx},
# gen_seconds, mpps{generated, forwarded, sink}, tools{gen, fwd, sink}: the
# tools' own JSON objects.
