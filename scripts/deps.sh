#!/usr/bin/env bash
# Installs the system packages glint needs to build, run and test, when
# they are missing. Debian/Ubuntu, as root or with sudo.
set -euo pipefail

need_pkgs=(
  pkg-config gcc libhwloc-dev libclang-dev clang cmake libudev-dev
  fuse3 libfuse3-dev
  rdma-core ibverbs-providers libibverbs-dev librdmacm-dev ibverbs-utils perftest
  iproute2 kmod iperf3 sockperf fio git rsync
)
if [ "${1:-}" = "--test" ]; then
  need_pkgs+=(qemu-system-x86 busybox-static python3-pip prometheus)
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "glint: run as root or install sudo" >&2; exit 1; }
  sudo_cmd=(sudo)
fi

missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "glint: installing ${missing[*]}" >&2
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "glint: installing cargo-nextest" >&2
  cargo install cargo-nextest --locked --quiet
fi
