package container

import (
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/proto"
)

func sampleRecords() []Record {
	pols := []*flowpb.Policy{{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "p"}}
	return []Record{
		{Seconds: 5, Nanos: 6, NodeName: "n", SrcIP: "10.0.0.1", DstIP: "10.0.0.2", Proto: 6, SrcPort: 1, DstPort: 2, TCPFlags: 0x12,
			Source:  Endpoint{ID: 1, Identity: 256, Namespace: "default", PodName: "a", Labels: []string{"k8s:app=a"}},
			Verdict: flowpb.Verdict_FORWARDED, EventType: 4, ObservationPoint: flowpb.TraceObservationPoint_TO_ENDPOINT,
			TraceReason: flowpb.TraceReason_REPLY, IsReply: true},
		{NodeName: "n", SrcIP: "fd00::1", DstIP: "fd00::2", IPv6: true, Proto: 17, SrcPort: 3, DstPort: 53,
			Verdict: flowpb.Verdict_DROPPED, DropReason: 181, EventType: 1, EventSubType: 181,
			Direction: flowpb.TrafficDirection_INGRESS, Policies: pols, PolicyField: IngressDeniedBy},
		{Proto: 1, ICMPType: 8, Verdict: flowpb.Verdict_FORWARDED, EventType: 5, PolicyMatchType: 2, Policies: pols, PolicyField: EgressAllowedBy},
		{Proto: 58, ICMPType: 129, Verdict: flowpb.Verdict_AUDIT, DropReason: 133, EventType: 5, Policies: pols, PolicyField: IngressAllowedBy},
		{Proto: 132, SrcPort: 9, DstPort: 10, Policies: pols, PolicyField: EgressDeniedBy},
		{Proto: 47},
	}
}

// A reused block gives the same flows as fresh ones, whatever it held
// before: nothing of an earlier flow (its L4, its policies) survives.
func TestBuildIntoReusedBlock(t *testing.T) {
	recs := sampleRecords()
	var b Block
	for round := range 2 {
		for i := range recs {
			got, want := recs[i].BuildInto(&b), recs[i].Flow()
			if !proto.Equal(got, want) {
				t.Errorf("round %d, record %d: reused block gives\n%v\nwant\n%v", round, i, got, want)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { recs[0].BuildInto(&b) }); n != 0 {
		t.Errorf("building into a reused block costs %.1f allocations", n)
	}
}

func TestBuildFields(t *testing.T) {
	recs := sampleRecords()
	f := recs[1].Flow()
	if f.GetIP().GetIpVersion() != flowpb.IPVersion_IPv6 || f.GetL4().GetUDP().GetDestinationPort() != 53 || f.GetSummary() != "UDP" {
		t.Errorf("UDP flow: %v", f)
	}
	if f.GetDropReasonDesc() != flowpb.DropReason_POLICY_DENY || f.GetEventType().GetSubType() != 181 || len(f.GetIngressDeniedBy()) != 1 || len(f.GetEgressDeniedBy()) != 0 {
		t.Errorf("drop fields: %v", f)
	}
	f = recs[0].Flow()
	if f.GetTime().GetSeconds() != 5 || f.GetTime().GetNanos() != 6 || f.GetSummary() != "TCP Flags: SYN, ACK" || !f.GetIsReply().GetValue() || f.GetSource().GetLabels()[0] != "k8s:app=a" {
		t.Errorf("TCP flow: %v", f)
	}
	for i, want := range map[int]string{2: "ICMPv4 EchoRequest", 3: "ICMPv6 EchoReply", 4: "SCTP", 5: "IP"} {
		if got := recs[i].Flow().GetSummary(); got != want {
			t.Errorf("record %d: summary %q, want %q", i, got, want)
		}
	}
	if f := recs[5].Flow(); f.GetL4() != nil || f.GetEventType() != nil {
		t.Errorf("unknown protocol and event type: %v", f)
	}
	if f := recs[2].Flow(); len(f.GetEgressAllowedBy()) != 1 || f.GetL4().GetICMPv4().GetType() != 8 {
		t.Errorf("egress allowed: %v", f)
	}
}
