package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/seta-net/seta/pkg/hubble/container"
	"github.com/seta-net/seta/pkg/hubble/observer"
)

func rawFilters(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	out := mustRun(t, append([]string{"observe", "--print-raw-filters"}, args...)...)
	var v struct{ Whitelist []map[string]any }
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return v.Whitelist
}

func TestObserveFilters(t *testing.T) {
	// Either-end flags make two filters, one per end; one-ended and
	// neutral flags go into both.
	fs := rawFilters(t, "--pod", "default/web", "--to-port", "80", "--protocol", "tcp")
	if len(fs) != 2 {
		t.Fatalf("want 2 filters, got %v", fs)
	}
	wantContains(t, "filter 0", mustJSON(fs[0]), `"sourcePod":["default/web"]`, `"destinationPort":["80"]`, `"protocol":["tcp"]`)
	wantContains(t, "filter 1", mustJSON(fs[1]), `"destinationPod":["default/web"]`, `"destinationPort":["80"]`, `"protocol":["tcp"]`)
	if strings.Contains(mustJSON(fs[0]), "destinationPod") {
		t.Errorf("--pod leaked into the source filter's destination: %v", fs[0])
	}
	// One-ended flags only: one filter.
	fs = rawFilters(t, "--from-label", "app=client", "--to-label", "app=web", "--verdict", "DROPPED", "--type", "drop")
	if len(fs) != 1 {
		t.Fatalf("want 1 filter, got %v", fs)
	}
	wantContains(t, "filter", mustJSON(fs[0]), `"sourceLabel":["app=client"]`, `"destinationLabel":["app=web"]`, `"verdict":["DROPPED"]`, `"eventType":[{"type":1}]`)
	// No flags: no filter (everything).
	if fs := rawFilters(t); len(fs) != 0 {
		t.Errorf("no flags gave filters %v", fs)
	}
	fs = rawFilters(t, "-n", "prod", "--type", "trace:to-stack", "--tcp-flags", "SYN,ACK")
	wantContains(t, "namespace filter", mustJSON(fs[0]), `"sourcePod":["prod/"]`, `"type":4`, `"subType":3`, `"SYN":true`, `"ACK":true`)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestObserveBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"--verdict", "NOPE"}, {"--type", "nope"}, {"--type", "trace:sideways"}, {"--tcp-flags", "SYN,XYZ"},
		{"--ip", "1.2.3"}, {"--label", "a in (b"}, {"--since", "soon"}, {"--last", "1", "--all"},
		{"--first", "1", "--follow"}, {"-o", "yaml"}, {"--traffic-direction", "up"}, {"--is-reply", "maybe"},
		{"--no-such-flag"},
	} {
		if _, _, err := run(t, append([]string{"observe", "--print-raw-filters"}, args...)...); err == nil {
			t.Errorf("seta observe %v: no error", args)
		}
	}
	_, _, err := run(t, "observe", "--server", "unix://"+filepath.Join(t.TempDir(), "none.sock"), "--timeout", "1s")
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Hubble server") {
		t.Errorf("unreachable server: %v", err)
	}
}

// TestObserveAgainstServer runs seta observe against a real observer API
// on a unix socket.
func TestObserveAgainstServer(t *testing.T) {
	ring := container.NewRing(100)
	now := time.Now()
	ring.WriteFlow(&flowpb.Flow{
		Time: timestamppb.New(now.Add(-time.Second)), NodeName: "node1", Verdict: flowpb.Verdict_DROPPED,
		DropReasonDesc: flowpb.DropReason_POLICY_DENIED, EventType: &flowpb.CiliumEventType{Type: 1, SubType: 133},
		IP:          &flowpb.IP{Source: "10.244.1.5", Destination: "10.244.1.6"},
		L4:          &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: 40000, DestinationPort: 80, Flags: &flowpb.TCPFlags{SYN: true}}}},
		Source:      &flowpb.Endpoint{ID: 7, Identity: 300, Namespace: "default", PodName: "client"},
		Destination: &flowpb.Endpoint{ID: 8, Identity: 301, Namespace: "default", PodName: "web"},
		IsReply:     wrapperspb.Bool(false), Summary: "TCP Flags: SYN",
		IngressDeniedBy: []*flowpb.Policy{{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "web-deny"}},
	})
	ring.WriteFlow(&flowpb.Flow{
		Time: timestamppb.New(now), NodeName: "node1", Verdict: flowpb.Verdict_FORWARDED,
		EventType:   &flowpb.CiliumEventType{Type: 4, SubType: 3},
		IP:          &flowpb.IP{Source: "10.244.1.5", Destination: "198.18.0.12"},
		L4:          &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv4{ICMPv4: &flowpb.ICMPv4{Type: 8}}},
		Source:      &flowpb.Endpoint{ID: 7, Identity: 300, Namespace: "default", PodName: "client"},
		Destination: &flowpb.Endpoint{Identity: 2, Labels: []string{"reserved:world"}},
		IsReply:     wrapperspb.Bool(false), Summary: "ICMPv4 EchoRequest",
	})
	sock := filepath.Join(t.TempDir(), "hubble.sock")
	l, err := observer.Listen(observer.New(observer.Options{NodeName: "node1", Ring: ring}), sock, "")
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve()
	defer l.Stop()
	t.Setenv(HubbleServerEnv, "unix://"+sock)

	out := mustRun(t, "observe")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 flows:\n%s", out)
	}
	wantContains(t, "drop line", lines[0], "[node1]: default/client:40000 (ID:300) -> default/web:80 (ID:301) POLICY DENIED DROPPED (TCP Flags: SYN; policy CiliumNetworkPolicy/default/web-deny)")
	wantContains(t, "trace line", lines[1], "default/client (ID:300) -> 198.18.0.12 (world) to-stack FORWARDED (ICMPv4 EchoRequest)")

	out = mustRun(t, "observe", "--verdict", "FORWARDED", "-o", "json")
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"verdict":"FORWARDED"`) {
		t.Errorf("json, forwarded only:\n%s", out)
	}
	out = mustRun(t, "observe", "--to-pod", "default/web", "-o", "table")
	wantContains(t, "table", out, "TIMESTAMP", "SOURCE", "default/web:80", "DROPPED")
	if strings.Contains(out, "198.18.0.12") {
		t.Errorf("--to-pod let another flow through:\n%s", out)
	}
	out = mustRun(t, "observe", "--last", "1", "-o", "jsonpb")
	wantContains(t, "jsonpb", out, `"flow":{`, `"nodeName":"node1"`, "198.18.0.12")
}

// The event type numbers are Cilium's monitor message types.
func TestObserveEventTypeNumbers(t *testing.T) {
	for name, want := range map[string]string{"drop": `"type":1`, "trace": `"type":4`, "policy-verdict": `"type":5`, "agent": `"type":130`} {
		fs := rawFilters(t, "--type", name)
		wantContains(t, name, mustJSON(fs[0]), want)
	}
}

func TestSummaryNamesPolicyOrItsAbsence(t *testing.T) {
	f := &flowpb.Flow{Summary: "TCP Flags: SYN", Verdict: flowpb.Verdict_DROPPED, DropReasonDesc: flowpb.DropReason_POLICY_DENIED}
	if got := summaryString(f); got != "TCP Flags: SYN; no policy allows it" {
		t.Errorf("denied, no rule: %q", got)
	}
	f.EgressDeniedBy = []*flowpb.Policy{{Kind: "CiliumClusterwideNetworkPolicy", Name: "no-egress"}}
	if got := summaryString(f); got != "TCP Flags: SYN; policy CiliumClusterwideNetworkPolicy/no-egress" {
		t.Errorf("denied by a rule: %q", got)
	}
}
