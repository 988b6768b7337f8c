#!/usr/bin/env bash
# Builds Seta, starts a one-node lab and shows pods talking through the eBPF
# datapath. Leaves the lab running; remove it with: bin/seta lab down
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (the lab creates network namespaces and loads eBPF programs)" >&2
	exit 1
fi
hack/deps.sh runtime
echo "== building"
go build -buildvcs=auto -o bin/ ./cmd/...
export PATH="$PWD/bin:$PATH"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

run seta lab up
for p in web client; do
	seta lab pod delete "$p" >/dev/null 2>&1 || true
done
for svc in web web-np; do
	seta lab service delete "$svc" >/dev/null 2>&1 || true
done
run seta lab pod run web --labels app=web,tier=frontend -- seta-nettool serve
run seta lab pod run client --labels app=client -- sleep infinity
run seta lab pod list

web4=$(seta lab pod list -o json | sed -n '/"name": "web"/,/}/p' | sed -n 's/.*"ipv4": "\(.*\)".*/\1/p' | head -1)
web6=$(seta lab pod list -o json | sed -n '/"name": "web"/,/}/p' | sed -n 's/.*"ipv6": "\(.*\)".*/\1/p' | head -1)
for i in $(seq 50); do
	seta lab pod exec client -- seta-nettool tcp "$web4:7000" --timeout 200ms >/dev/null 2>&1 && break
	sleep 0.1
done

run seta lab pod exec client -- ping -c 2 "$web4"
run seta lab pod exec client -- ping -c 2 "$web6"
run seta lab pod exec client -- seta-nettool http "http://$web4:8080/"
run seta lab pod exec client -- seta-nettool tcp "[$web6]:7000" --count 2 --message hello
run seta lab pod exec client -- seta-nettool udp "$web4:7001" --message hello-udp

eval "$(seta lab env)"
run seta status
run seta endpoint list
run seta bpf endpoint list

echo
echo "== identity-based policy: web admits app=client on 8080/TCP only"
policy=$(mktemp --suffix=.yaml)
cat > "$policy" <<'EOT'
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-in}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
EOT
run seta policy import "$policy"
run seta policy wait
run seta lab pod exec client -- seta-nettool http "http://$web4:8080/"
say "seta lab pod exec client -- seta-nettool tcp $web4:7000 --timeout 1s   # dropped by policy"
seta lab pod exec client -- seta-nettool tcp "$web4:7000" --timeout 1s || true
run seta policy trace --src-labels app=client --dst-labels app=web --dport 7000/TCP
run seta endpoint list
run seta bpf metrics list

echo
echo "== flows: what the datapath saw, with verdicts, drop reasons and the policies behind them"
run seta observe --last 12
run seta observe --verdict DROPPED --from-pod default/client --last 3
run seta observe --type policy-verdict --last 2 -o table
run seta policy delete web-in

echo
echo "== services: a ClusterIP in eBPF (socket-level load balancing) with cluster DNS"
run seta lab service create web --port 80 --target-port 8080 --selector app=web
run seta service list
run seta lab pod exec client -- getent hosts web.default.svc.cluster.local
run seta lab pod exec client -- seta-nettool http http://web.default.svc.cluster.local/

echo
echo "== NodePort: from outside the node (a client on the lab's underlay), translated by node1's eth0 program"
run seta lab service create web-np --type NodePort --port 80 --target-port 8080 --selector app=web --node-port 30080
# The underlay bridge gets an address of its own: the "outside" client.
# It lives in the lab's underlay namespace and goes away with the lab.
underlay="seta-${SETA_LAB:-default}-underlay"
ip -n "$underlay" addr replace 198.18.0.254/24 dev br0
run ip netns exec "$underlay" seta-nettool http http://198.18.0.11:30080/
run seta bpf nat list
rm -f "$policy"

cat <<EOT

The lab is running. In your shell:
  export PATH=$PWD/bin:\$PATH
  eval "\$(seta lab env)"
  seta lab pod exec client -- ping -c1 $web4
  seta endpoint get 1
  seta observe -f        # follow flows (a stock 'hubble observe' works too: HUBBLE_SERVER is set)
  seta lab down          # removes everything the lab made
EOT
