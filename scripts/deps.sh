#!/usr/bin/env bash
# Installs the Debian packages pagepool needs to build, test and benchmark.
# Idempotent: only missing packages are installed. Needs root (or sudo) the
# first time on a fresh Debian 12 machine.
#
#   scripts/deps.sh           library, tests and the pagepool-bench peers
#   scripts/deps.sh --core    library, forwarder, tools and tests only
#
# The peers (jemalloc, mimalloc, tcmalloc, DPDK) and gnuplot serve only
# pagepool-bench; the library never depends on them, and a peer whose package
# is missing is reported "absent" by the tool.
set -euo pipefail

CORE=(
  g++ make cmake pkg-config       # toolchain
  libgtest-dev                    # tests (GoogleTest)
  libbenchmark-dev                # core benchmark (Google Benchmark)
  libnuma-dev                     # NUMA binding of provider memory
  liburing-dev                    # io_uring registered-buffer provider
  libxdp-dev libbpf-dev           # AF_XDP UMEM provider and the xsk device
  libcli11-dev                    # command lines (pagepool-fwd, pagepool-bench, traffic tools)
  nlohmann-json3-dev              # pagepool-fwd --json
  clang libclang-rt-14-dev        # libFuzzer target (fuzz/run.sh) and BPF objects
  iproute2 jq                     # network-namespace tests and scripts/netns-demo.sh
  procps                          # sysctl: scripts/netns-demo.sh turns IPv6 off in its namespaces
)
BENCH=(
  libjemalloc-dev                 # peer: jemalloc (dlopen'ed at run time)
  libmimalloc-dev                 # peer: mimalloc (dlopen'ed at run time)
  libgoogle-perftools-dev         # peer: tcmalloc (dlopen'ed at run time)
  libdpdk-dev                     # peer: DPDK rte_mempool (pkg-config libdpdk)
  gnuplot-nox                     # PNG chart of the results
)

PKGS=("${CORE[@]}")
[[ "${1:-}" == "--core" ]] || PKGS+=("${BENCH[@]}")

missing=()
for p in "${PKGS[@]}"; do
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
