#!/usr/bin/env bash
# Installs the Debian packages Seta uses, when they are missing. Safe to run
# again. Needs root.
#   hack/deps.sh runtime   what the lab and demo need
#   hack/deps.sh           also the BPF toolchain and test/benchmark tools
set -euo pipefail
pkgs=(iproute2 iputils-ping util-linux)
if [ "${1:-all}" != runtime ]; then
	pkgs+=(clang-19 llvm-19 libbpf-dev iperf3 iptables nftables containernetworking-plugins)
fi
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
