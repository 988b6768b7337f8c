#!/usr/bin/env bash
# Builds the stock, unmodified Hubble CLI (github.com/cilium/cilium/hubble at
# the version Seta's Hubble API comes from) from the Go module proxy, into a
# cache that outlives one run, and prints where it is. Used by the interop
# e2e test (test/e2e/hubble_cli_test.go) and by hand:
#
#   hack/hubble-cli.sh [OUT]
#   eval "$(bin/seta lab env)"; "$(hack/hubble-cli.sh | tail -1)" observe
#
# OUT defaults to $SETA_CACHE/bin/hubble-$VERSION, SETA_CACHE to
# /var/cache/seta as root and ~/.cache/seta otherwise. Safe to run again:
# when OUT exists and runs, nothing is done. The build happens in a
# throwaway module in a temporary directory; the repository's go.mod is
# never touched. The first build takes a few minutes (downloads and
# compiles the CLI's dependencies); later builds of a new version reuse the
# Go build cache.
set -euo pipefail

version=${HUBBLE_VERSION:-v1.20.2}
if [ -z "${SETA_CACHE:-}" ]; then
	if [ "$(id -u)" = 0 ]; then
		SETA_CACHE=/var/cache/seta
	else
		SETA_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/seta
	fi
fi
out=${1:-$SETA_CACHE/bin/hubble-$version}
case $out in /*) ;; *) out=$PWD/$out ;; esac

if [ -x "$out" ] && "$out" version >/dev/null 2>&1; then
	echo "hubble-cli: $("$out" version) already built" >&2
	echo "$out"
	exit 0
fi

mkdir -p "$(dirname "$out")"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/seta-hubble-cli.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
start=$(date +%s)
echo "hubble-cli: building github.com/cilium/cilium/hubble@$version (first time: a few minutes)" >&2
(
	cd "$scratch"
	# The scratch module is the main module here: the repository's go.mod
	# and go.work play no part, and -mod=mod lets go resolve the CLI's
	# dependency graph. Other GOFLAGS (e.g. -buildvcs=false) are kept.
	export GOWORK=off GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
	go mod init hubblecli >/dev/null 2>&1
	go get "github.com/cilium/cilium/hubble@$version" >&2
	# As upstream's hubble/Makefile does: stamp the version, nothing else.
	go build -trimpath -ldflags "-s -w -X github.com/cilium/cilium/hubble/pkg.Version=$version" \
		-o "$scratch/hubble" github.com/cilium/cilium/hubble >&2
)
"$scratch/hubble" version >/dev/null
mv -f "$scratch/hubble" "$out"
echo "hubble-cli: built $("$out" version) in $(($(date +%s) - start))s" >&2
echo "$out"
