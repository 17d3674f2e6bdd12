#!/bin/bash
# scripts/netns-demo.sh refuses bad options with exit 1 and a one-line
# reason, before it needs root or touches any namespace, and prints its
# usage with --help. Runs anywhere (no privileges).
set -uo pipefail
DEMO="${1:?usage: netns_demo_options.sh DEMO_SCRIPT}"
fail=0
expect() {  # expect "message part" args...
  local want="$1"; shift
  local err rc
  err=$("$DEMO" "$@" 2>&1 >/dev/null); rc=$?
  if [[ $rc -ne 1 || "$err" != *"$want"* || $(wc -l <<<"$err") -ne 1 ]]; then
    echo "FAIL: netns-demo $* -> rc $rc, stderr: $err (wanted rc 1 and '$want')"
    fail=1
  else
    echo "ok: netns-demo $* -> $err"
  fi
}
expect "--fwd must be pagepool or minfwd" --fwd dpdk
expect "--xdp-mode must be generic or native" --xdp-mode skb
expect "--duration must be 1..600" --duration 0
expect "--size must be 64..1518" --size 63
expect "--rate must be frames per second" --rate 1k
expect "--gen-mode must be auto, live, packet or xsk" --gen-mode pktgen
expect "--gen-mode live needs --xdp-mode native" --gen-mode live
expect "--gen-mode auto (live at full speed) needs --xdp-mode native" --gen-mode auto
expect "--gen-mode auto (live at full speed) needs --xdp-mode native" --gen-mode auto --rate 00
expect "unknown option '--bogus'" --bogus
help=$("$DEMO" --help) || { echo "FAIL: --help exited non-zero"; fail=1; }
[[ "$help" == *"--gen-mode auto|live|packet|xsk"* ]] || { echo "FAIL: --help lacks the usage line"; fail=1; }
exit $fail
