#!/usr/bin/env bash
# Runs every test: the BPF drift check, vet, unit tests, and (as root) the
# privileged and end-to-end tests, which build their own namespaces and
# remove them. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "test: run as root (privileged and end-to-end tests create namespaces and load eBPF programs)" >&2
	exit 1
fi
hack/deps.sh
echo "== bpf drift check"
hack/bpf-check.sh
echo "== go vet"
go vet ./...
echo "== unit tests"
go test -count=1 ./...
echo "== stock hubble CLI for the interop test (built once, then cached)"
time hack/hubble-cli.sh
echo "== privileged and end-to-end tests"
SETA_PRIVILEGED_TESTS=1 go test -count=1 -p 1 -timeout 20m -run TestPrivileged ./...
