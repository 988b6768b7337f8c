package e2e

import (
	"bufio"
	"context"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/encoding/protojson"
)

const observePolicies = cnpHeader + `metadata: {name: web-ingress}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "7000", protocol: TCP}, {port: "7001", protocol: UDP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: db-guard}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingress: [{fromEntities: [all]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: api}}]}]
`

// flows runs seta observe with args (and -o json) and decodes the flows.
func (l *policyLab) flows(t *testing.T, args ...string) []*flowpb.Flow {
	t.Helper()
	out := l.must(append([]string{"observe", "-o", "json"}, args...)...)
	var fs []*flowpb.Flow
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		f := &flowpb.Flow{}
		if err := protojson.Unmarshal([]byte(line), f); err != nil {
			t.Fatalf("seta observe %v: %v in %q", args, err, line)
		}
		fs = append(fs, f)
	}
	return fs
}

func pod(e *flowpb.Endpoint) string { return e.GetNamespace() + "/" + e.GetPodName() }

func dport(f *flowpb.Flow) uint32 {
	if tcp := f.GetL4().GetTCP(); tcp != nil {
		return tcp.DestinationPort
	}
	return f.GetL4().GetUDP().GetDestinationPort()
}

func policyNames(ps []*flowpb.Policy) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// find returns the first flow matching all of want, or fails listing what
// there was.
func find(t *testing.T, fs []*flowpb.Flow, what string, want func(*flowpb.Flow) bool) *flowpb.Flow {
	t.Helper()
	for _, f := range fs {
		if want(f) {
			return f
		}
	}
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.GetSummary() + " " + pod(f.GetSource()) + " -> " + pod(f.GetDestination()) + " " + f.GetVerdict().String() + " " + f.GetEventType().String() + "\n")
	}
	t.Errorf("no flow: %s; %d flows:\n%s", what, len(fs), b.String())
	return nil
}

func TestPrivilegedObserveFlows(t *testing.T) {
	l := newPolicyLab(t)
	l.apply(t, observePolicies)
	if st := l.must("status"); !strings.Contains(st, "Hubble:") || !strings.Contains(st, "Ok; flows") {
		t.Errorf("seta status does not show Hubble:\n%s", st)
	}
	for _, p := range []probe{
		allow("client", "web", "tcp"), allow("client", "web", "udp"), allow("client", "db", "icmp"),
		deny("other", "web", "tcp"), deny("other", "web", "udp"), deny("other", "web", "icmp"), deny("api", "db", "tcp"),
	} {
		if got, out := l.check(p); got != p.allow {
			t.Fatalf("%s: got through = %v\n%s", p, got, out)
		}
	}
	time.Sleep(500 * time.Millisecond) // events reach the ring asynchronously
	fs := l.flows(t, "--all")
	web, client, db := l.pods["web"].IPv4, l.pods["client"].IPv4, l.pods["db"].IPv4

	// Drops: the reason, both endpoints with identities and labels, L4.
	d := find(t, fs, "other->web TCP 7000 dropped, POLICY_DENIED", func(f *flowpb.Flow) bool {
		return f.Verdict == flowpb.Verdict_DROPPED && pod(f.Source) == "default/other" && pod(f.Destination) == "default/web" &&
			f.GetL4().GetTCP().GetDestinationPort() == 7000
	})
	if d != nil {
		if d.DropReasonDesc != flowpb.DropReason_POLICY_DENIED || d.EventType.GetType() != 1 || d.EventType.GetSubType() != 133 ||
			d.TrafficDirection != flowpb.TrafficDirection_INGRESS || !d.L4.GetTCP().GetFlags().GetSYN() ||
			d.IP.GetDestination() != web || d.Source.Identity < 256 || d.Destination.Identity < 256 ||
			!slices.Contains(d.Source.Labels, "k8s:app=other") || !slices.Contains(d.Destination.Labels, "k8s:app=web") ||
			d.Destination.ID == 0 || d.NodeName != "node1" || d.GetIsReply().GetValue() || len(d.IngressDeniedBy) != 0 {
			t.Errorf("drop flow is wrong: %v", d)
		}
	}
	find(t, fs, "other->web UDP 7001 dropped", func(f *flowpb.Flow) bool {
		return f.Verdict == flowpb.Verdict_DROPPED && pod(f.Source) == "default/other" && f.GetL4().GetUDP().GetDestinationPort() == 7001 &&
			f.DropReasonDesc == flowpb.DropReason_POLICY_DENIED
	})
	find(t, fs, "other->web ICMP echo dropped", func(f *flowpb.Flow) bool {
		return f.Verdict == flowpb.Verdict_DROPPED && pod(f.Source) == "default/other" && f.GetL4().GetICMPv4().GetType() == 8 &&
			f.GetSummary() == "ICMPv4 EchoRequest"
	})
	// A deny rule names itself: "which policy dropped my traffic?"
	find(t, fs, "api->db dropped by the deny rule of db-guard", func(f *flowpb.Flow) bool {
		return f.Verdict == flowpb.Verdict_DROPPED && pod(f.Source) == "prod/api" && pod(f.Destination) == "prod/db" &&
			f.DropReasonDesc == flowpb.DropReason_POLICY_DENY && slices.Contains(policyNames(f.IngressDeniedBy), "db-guard")
	})

	// Allowed: a policy verdict naming the allowing rule and its match.
	find(t, fs, "policy verdict: client->web 7000 allowed by web-ingress, L3-L4", func(f *flowpb.Flow) bool {
		return f.EventType.GetType() == 5 && f.Verdict == flowpb.Verdict_FORWARDED && pod(f.Source) == "default/client" &&
			pod(f.Destination) == "default/web" && dport(f) == 7000 && f.TrafficDirection == flowpb.TrafficDirection_INGRESS &&
			slices.Contains(policyNames(f.IngressAllowedBy), "web-ingress") && f.PolicyMatchType == 2
	})
	// Forwarded packets: trace events, with replies marked.
	find(t, fs, "trace client->web SYN to-endpoint", func(f *flowpb.Flow) bool {
		return f.EventType.GetType() == 4 && f.EventType.GetSubType() == 0 && f.Verdict == flowpb.Verdict_FORWARDED &&
			f.TraceObservationPoint == flowpb.TraceObservationPoint_TO_ENDPOINT && f.IP.GetSource() == client &&
			f.IP.GetDestination() == web && f.GetL4().GetTCP().GetFlags().GetSYN() && !f.GetIsReply().GetValue()
	})
	find(t, fs, "trace web->client SYN-ACK reply", func(f *flowpb.Flow) bool {
		fl := f.GetL4().GetTCP().GetFlags()
		return f.EventType.GetType() == 4 && pod(f.Source) == "default/web" && pod(f.Destination) == "default/client" &&
			fl.GetSYN() && fl.GetACK() && f.GetIsReply().GetValue()
	})
	find(t, fs, "trace client->web UDP 7001", func(f *flowpb.Flow) bool {
		return f.EventType.GetType() == 4 && f.IP.GetSource() == client && f.GetL4().GetUDP().GetDestinationPort() == 7001
	})
	find(t, fs, "trace db->client echo reply", func(f *flowpb.Flow) bool {
		return f.EventType.GetType() == 4 && f.IP.GetSource() == db && f.IP.GetDestination() == client &&
			f.GetL4().GetICMPv4().GetType() == 0 && f.GetIsReply().GetValue()
	})

	// Filters select exactly what they say.
	check := func(what string, fs []*flowpb.Flow, min int, ok func(*flowpb.Flow) bool) {
		t.Helper()
		if len(fs) < min {
			t.Errorf("%s: %d flows, want at least %d", what, len(fs), min)
		}
		for _, f := range fs {
			if !ok(f) {
				t.Errorf("%s: unexpected flow %v", what, f)
			}
		}
	}
	check("--from-pod default/other --verdict DROPPED", l.flows(t, "--all", "--from-pod", "default/other", "--verdict", "DROPPED"), 3,
		func(f *flowpb.Flow) bool {
			return f.Verdict == flowpb.Verdict_DROPPED && pod(f.Source) == "default/other"
		})
	check("--to-port 7001 --protocol udp", l.flows(t, "--all", "--to-port", "7001", "--protocol", "udp"), 2,
		func(f *flowpb.Flow) bool { return f.GetL4().GetUDP().GetDestinationPort() == 7001 })
	check("--type policy-verdict", l.flows(t, "--all", "--type", "policy-verdict"), 1,
		func(f *flowpb.Flow) bool { return f.EventType.GetType() == 5 })
	check("--type trace:to-endpoint --from-pod default/client", l.flows(t, "--all", "--type", "trace:to-endpoint", "--from-pod", "default/client"), 2,
		func(f *flowpb.Flow) bool {
			return f.EventType.GetType() == 4 && f.EventType.GetSubType() == 0 && pod(f.Source) == "default/client"
		})
	check("--label app=db (either end)", l.flows(t, "--all", "--label", "app=db"), 3, func(f *flowpb.Flow) bool {
		return slices.Contains(f.Source.GetLabels(), "k8s:app=db") || slices.Contains(f.Destination.GetLabels(), "k8s:app=db")
	})
	check("--ip web", l.flows(t, "--all", "--ip", web), 4, func(f *flowpb.Flow) bool {
		return f.IP.GetSource() == web || f.IP.GetDestination() == web
	})
	check("--last 2", l.flows(t, "--last", "2"), 2, func(*flowpb.Flow) bool { return true })
	if n := len(l.flows(t, "--last", "2")); n != 2 {
		t.Errorf("--last 2 gave %d flows", n)
	}

	// Aggregation (medium, the default): one connection with 200 round
	// trips is reported on open, on new TCP flags and at close, not per
	// packet.
	since := time.Now().UTC().Format(time.RFC3339Nano)
	if out, err := l.execIn("client", "seta-nettool", "tcp", hostport(web, "7000"), "--count", "200"); err != nil {
		t.Fatalf("200 echoes: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	traces := l.flows(t, "--since", since, "--type", "trace", "--ip", web, "--protocol", "tcp")
	if len(traces) < 3 || len(traces) > 30 {
		t.Errorf("one connection with 200 round trips gave %d trace flows at medium aggregation; want 3..30", len(traces))
	}

	// Hubble's flow metrics move with traffic.
	drops := l.metricValue(t, "hubble_drop_total", `reason="POLICY_DENIED"`, `protocol="TCP"`)
	fwd := l.metricValue(t, "hubble_flows_processed_total", `verdict="FORWARDED"`)
	if drops < 1 || fwd < 1 {
		t.Errorf("hubble metrics before: drops %v, forwarded flows %v", drops, fwd)
	}
	l.check(deny("other", "web", "tcp"))
	l.check(allow("client", "web", "tcp"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		d2 := l.metricValue(t, "hubble_drop_total", `reason="POLICY_DENIED"`, `protocol="TCP"`)
		f2 := l.metricValue(t, "hubble_flows_processed_total", `verdict="FORWARDED"`)
		if d2 > drops && f2 > fwd {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("hubble metrics did not move: drops %v -> %v, forwarded %v -> %v", drops, d2, fwd, f2)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := l.metricValue(t, "hubble_policy_verdicts_total", `action="forwarded"`, `direction="ingress"`); v < 1 {
		t.Errorf("no forwarded ingress policy verdicts counted (%v)", v)
	}
}

// metricValue sums the samples of a metric whose label set contains every
// one of labels (e.g. `reason="POLICY_DENIED"`), from seta lab metrics.
func (l *policyLab) metricValue(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	sum := 0.0
	for _, line := range strings.Split(l.must("lab", "metrics"), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, lb := range labels {
			ok = ok && strings.Contains(line, lb)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// TestPrivilegedObserveFollow streams new flows as they happen.
func TestPrivilegedObserveFollow(t *testing.T) {
	l := newPolicyLab(t)
	l.apply(t, observePolicies)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := l.cmd("observe", "-f", "--from-pod", "default/other", "--verdict", "DROPPED", "-o", "json")
	cmd := exec.CommandContext(ctx, c.Path, c.Args[1:]...)
	cmd.Env = l.env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	started := time.Now()
	time.Sleep(time.Second) // let the stream open
	if got, out := l.check(deny("other", "web", "tcp")); got {
		t.Fatalf("other reached web:\n%s", out)
	}
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatal("seta observe -f ended without a flow")
		}
		f := &flowpb.Flow{}
		if err := protojson.Unmarshal([]byte(line), f); err != nil {
			t.Fatal(err)
		}
		if f.Verdict != flowpb.Verdict_DROPPED || pod(f.Source) != "default/other" || f.Time.AsTime().Before(started) {
			t.Errorf("followed flow is not the new drop: %v", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no flow streamed within 10 s of a drop")
	}
}
