#!/usr/bin/env bash
# pagepool-fwd's command line: bad options exit non-zero with one line on
# stderr naming the problem; a short sim run (pool and malloc baseline)
# exits 0 with a JSON summary whose accounting holds.
# Usage: cli_test.sh PAGEPOOL_FWD
set -uo pipefail
fwd=$1
fails=0

# expect_error CODE PATTERN ARGS...: exit code CODE and one stderr line matching PATTERN.
expect_error() {
  local code=$1 pattern=$2
  shift 2
  local err rc
  err=$(timeout 20 "$fwd" "$@" 2>&1 >/dev/null)
  rc=$?
  if [[ $rc -ne $code ]] || [[ $(printf '%s\n' "$err" | wc -l) -ne 1 ]] || ! grep -qE -- "$pattern" <<<"$err"; then
    echo "FAIL: pagepool-fwd $* -> exit $rc (want $code), stderr: $err"
    fails=$((fails + 1))
  fi
}

expect_error 2 "not expected: --bogus" --bogus
expect_error 2 "--dev 'foo': expected sim or xsk" --dev foo
expect_error 2 "unknown program 'nope'.*redirect" --prog nope
expect_error 2 "--threads 3 > devices 2" --threads 3
expect_error 2 "--duration" --duration 0
expect_error 2 "frame size 10 outside 60..3840" --size 10
expect_error 2 "frame size 'x' is not a number" --size 64,x
expect_error 2 "--ring 100: a power of two" --ring 100
expect_error 2 "cannot be mixed" --dev sim --dev xsk:lo
expect_error 2 "shape the sim's traffic" --dev xsk:lo --rate 1
expect_error 2 "needs sim devices" --dev xsk:lo --baseline malloc
expect_error 2 "--baseline" --baseline jemalloc
expect_error 1 "no interface 'pp-no-such-if'" --dev xsk:pp-no-such-if
expect_error 2 "queue '99999'|99999" --dev xsk:lo:99999
expect_error 2 "given twice" --dev xsk:lo --dev xsk:lo
expect_error 2 "devices 65 outside 1..64" $(printf -- '--dev sim %.0s' {1..65})
expect_error 2 "apply to sim devices only" --dev xsk:lo --ring 512
expect_error 2 "apply to sim devices only" --dev xsk:lo --no-pin
expect_error 2 "apply to sim devices only" --dev xsk:lo --no-colour
expect_error 2 "shape the sim's traffic" --dev xsk:lo --seed 3
expect_error 2 "apply to xsk devices only" --xsk-ring 512
expect_error 2 "--xsk-ring 100: a power of two" --dev xsk:lo --xsk-ring 100
expect_error 2 "--xsk-bind" --dev xsk:lo --xsk-bind fast

# A short run of every built-in program: exit 0, JSON with exact accounting.
for prog in drop tx redirect l3-split; do
  # One run without the stamp check, one with every frame at the headroom.
  extra=$([[ $prog == tx ]] && echo --no-verify; [[ $prog == drop ]] && echo --no-colour)
  out=$(timeout 60 "$fwd" --prog "$prog" --duration 0.3 --json --quiet --dev sim --dev sim --dev sim $extra)
  rc=$?
  if [[ $rc -ne 0 ]] || ! jq -e '.accounting_ok and .baseline.accounting_ok and .inflight_at_exit == 0
        and .packets.rx > 0 and .packets.rx == .packets.tx + .packets.pass + .packets.dropped_total' \
        >/dev/null <<<"$out"; then
    echo "FAIL: --prog $prog run: exit $rc, summary: $out"
    fails=$((fails + 1))
  fi
done

# The human summary of the default demo (shortened) names both runs.
out=$(timeout 60 "$fwd" --duration 0.3 --quiet)
if [[ $? -ne 0 ]] || ! grep -q "pool vs malloc baseline" <<<"$out" || ! grep -q "accounting (pool): every frame" <<<"$out"; then
  echo "FAIL: default run summary: $out"
  fails=$((fails + 1))
fi

# The stack baseline: both runs account for every frame, the JSON names the
# baseline's runs, and both report the polling thread's and the sim
# hardware thread's cycles per frame.
out=$(timeout 60 "$fwd" --baseline stack --repeat 1 --duration 0.3 --json --quiet)
if [[ $? -ne 0 ]] || ! jq -e '.accounting_ok and .baseline.accounting_ok and .baseline.heap_outstanding == 0
      and (.runs.stack_rx_mpps | length) == 1 and .cycles_per_frame > 0 and .baseline.cycles_per_frame > 0
      and .busy_cycles > 0 and .hw_cycles_per_frame > 0 and .baseline.hw_cycles_per_frame > 0
      and (.runs.stack_hw_cycles_per_frame | length) == 1
      and ([.devices[].wire_busy_cycles] | all(. > 0))' >/dev/null <<<"$out"; then
  echo "FAIL: --baseline stack run: $out"
  fails=$((fails + 1))
fi
# With a CPU each for the hardware thread and the poller (pinned), every run
# reports the cache-line round trip between them, measured just before it.
if [[ $(nproc) -ge 2 ]] && ! jq -e '[.runs.pool_line_round_trip_cycles, .runs.stack_line_round_trip_cycles]
      | all(length == 1 and .[0] > 0)' >/dev/null <<<"$out"; then
  echo "FAIL: --baseline stack run: no line round trip per run: $out"
  fails=$((fails + 1))
fi
out=$(timeout 60 "$fwd" --baseline stack --repeat 1 --duration 0.3 --quiet)
if [[ $? -ne 0 ]] || ! grep -q "pool vs stack baseline" <<<"$out" || ! grep -q "accounting (stack): every frame" <<<"$out" \
    || ! grep -q "polling thread's own cost" <<<"$out" || ! grep -q "sim's hardware thread" <<<"$out"; then
  echo "FAIL: --baseline stack summary: $out"
  fails=$((fails + 1))
fi
if [[ $(nproc) -ge 2 ]] && ! grep -q "a cache line between the two threads' CPUs and back: [0-9]* TSC cycles" <<<"$out"; then
  echo "FAIL: --baseline stack summary without the line round trip: $out"
  fails=$((fails + 1))
fi
expect_error 2 "needs sim devices" --dev xsk:lo --baseline stack

# Per interleaved pair: the rx ratio of pool run i to baseline run i, their
# median, and (pinned runs) the pairs split by the round-trip probe: near
# when both runs' probes are within far_factor of the set's lowest, far
# when both are above it. Recomputed here from the per-run figures.
out=$(timeout 60 "$fwd" --baseline stack --repeat 3 --duration 0.2 --json --quiet)
if [[ $? -ne 0 ]] || ! jq -e '
      .runs as $r | .pairs as $p
      | ([range(3) | $r.pool_rx_mpps[.] / $r.stack_rx_mpps[.]]) as $want
      | ($p.speedup_rx | length) == 3
      and ([range(3) | (($p.speedup_rx[.] - $want[.]) | fabs) < 1e-9 * $want[.]] | all)
      and $p.median == ($p.speedup_rx | sort | .[1])
      and (if ($r.pool_line_round_trip_cycles | length) == 3 then
             ([$r.pool_line_round_trip_cycles[], $r.stack_line_round_trip_cycles[]] | min) as $lo
             | [range(3) | [$r.pool_line_round_trip_cycles[.], $r.stack_line_round_trip_cycles[.]]
                         | map(. > $p.far_factor * $lo)] as $far
             | $p.near.pairs == ([$far[] | select(any | not)] | length)
               and $p.far.pairs == ([$far[] | select(all)] | length)
           else $p.near.pairs == 0 and $p.far.pairs == 0 end)' >/dev/null <<<"$out"; then
  echo "FAIL: --repeat 3 pairs: $out"
  fails=$((fails + 1))
fi
out=$(timeout 60 "$fwd" --baseline stack --repeat 2 --duration 0.2 --quiet)
if [[ $? -ne 0 ]] || ! grep -q "per interleaved pair (pool run / the stack run after it): median [0-9.]*x" <<<"$out"; then
  echo "FAIL: --repeat 2 summary without the per-pair ratio: $out"
  fails=$((fails + 1))
fi

[[ $fails -eq 0 ]] && echo "cli_test: all passed"
exit $((fails > 0))
