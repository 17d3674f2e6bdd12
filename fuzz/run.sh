#!/usr/bin/env bash
# Builds the parser fuzzer (libFuzzer, ASan + UBSan) into OUT_DIR and runs
# it for SECONDS (default 20) on a copy of fuzz/corpus/.
#   fuzz/run.sh OUT_DIR [SECONDS]
# Exit: 0 no finding; 77 clang++ or libFuzzer missing (one line why);
# anything else: a build failure or a finding (crash-* / leak-* /
# timeout-* input left in OUT_DIR). Writes nothing outside OUT_DIR.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 OUT_DIR [SECONDS]" >&2
  exit 2
fi
out=$1
secs=${2:-20}
src=$(cd "$(dirname "$0")/.." && pwd)
cxx=${CLANGXX:-clang++}

if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "SKIP: $cxx not found (needed for libFuzzer)"
  exit 77
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)

# libFuzzer ships as libclang_rt.fuzzer in compiler-rt; a probe link tells
# whether this clang has it, whatever its runtime directory layout.
cat >"$out/probe.cpp" <<'PROBE'
#include <cstddef>
#include <cstdint>
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }
PROBE
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$out/probe.cpp" -o "$out/probe" \
    >"$out/probe.log" 2>&1; then
  echo "SKIP: $cxx cannot link -fsanitize=fuzzer (libclang_rt.fuzzer missing; see $out/probe.log)"
  exit 77
fi

# -fno-sanitize-recover: a UBSan finding must stop the run like a crash.
"$cxx" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -std=c++20 -O1 -g -Wall -Wextra -I "$src/include" \
  "$src/src/fwd/parse.cpp" "$src/src/fwd/programs.cpp" "$src/fuzz/parse_fuzz.cpp" \
  -o "$out/parse_fuzz"

# libFuzzer adds what it finds to the first corpus directory: a scratch
# copy, never the checked-in seeds.
rm -rf "$out/corpus"
mkdir -p "$out/corpus"
cp "$src"/fuzz/corpus/* "$out/corpus/"

cd "$out"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# -error_exitcode: libFuzzer's default (77) would read as SKIP to ctest.
./parse_fuzz -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -error_exitcode=1 -timeout_exitcode=2 -artifact_prefix="$out/" "$out/corpus"
