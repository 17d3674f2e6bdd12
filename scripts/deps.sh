#!/usr/bin/env bash
# Installs the Debian packages pagepool needs to build, test and benchmark.
# Idempotent: only missing packages are installed. Needs root (or sudo) the
# first time on a fresh Debian 12 machine.
set -euo pipefail

PKGS=(
  g++ make cmake pkg-config       # toolchain
  libgtest-dev                    # tests (GoogleTest)
  libbenchmark-dev                # benchmarks (Google Benchmark)
  libnuma-dev                     # NUMA binding of provider memory
  liburing-dev                    # io_uring registered-buffer provider
  libxdp-dev libbpf-dev           # AF_XDP UMEM provider
)

missing=()
for p in "${PKGS[@]}"; do
  [[ "$p" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "deps: installing ${missing[*]}"
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "deps: need root to apt-get install ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
