#!/usr/bin/env bash
# Fails when the committed eBPF objects or bindings differ from what the C in
# bpf/ compiles to. Run in CI; fix a failure with hack/bpf-gen.sh and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -a pkg/datapath/bpf/. "$tmp/"
hack/bpf-gen.sh
if ! diff -r -q "$tmp" pkg/datapath/bpf >/dev/null; then
	diff -r -q "$tmp" pkg/datapath/bpf || true
	cp -a "$tmp/." pkg/datapath/bpf/
	echo "bpf-check: committed eBPF objects drifted from bpf/*.c; run hack/bpf-gen.sh and commit the result" >&2
	exit 1
fi
echo "bpf-check: committed eBPF objects match bpf/"
