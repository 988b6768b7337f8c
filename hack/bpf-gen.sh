#!/usr/bin/env bash
# Regenerates the committed eBPF objects and their Go bindings from bpf/.
# Needs clang-19 and libbpf-dev (Debian: apt-get install clang-19 libbpf-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-19 >/dev/null || { echo "bpf-gen: clang-19 not found (apt-get install clang-19 libbpf-dev)" >&2; exit 1; }
go generate ./pkg/datapath/bpf/...
