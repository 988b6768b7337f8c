package container

import (
	"strconv"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Record is a flow in compact form: every field of the flow.Flow that Seta
// fills, as plain values and shared strings. The ring stores records by
// value and builds the flow.Flow only when a client reads it.
//
// Building a flow.Flow per event cost an allocation of about 1.3 KB, and
// the garbage collector had to trace every stored one: together more than
// half of the agent's CPU under a steady event load. A record costs no
// allocation: its strings and slices come from the parser's caches (the
// address text, the enricher's labels and names, the parsed policies) and
// are never modified, so records and the flows built from them share them.
type Record struct {
	// Time of the event.
	Seconds int64
	Nanos   int32

	NodeName     string
	SrcIP, DstIP string
	IPv6         bool

	Source, Destination Endpoint

	Verdict    flowpb.Verdict
	DropReason uint32 // 0: none; also the DropReasonDesc
	// EventType is Cilium's monitor message type (0: none) and
	// EventSubType its sub type.
	EventType, EventSubType int32
	ObservationPoint        flowpb.TraceObservationPoint
	TraceReason             flowpb.TraceReason
	Direction               flowpb.TrafficDirection
	PolicyMatchType         uint32
	IsReply                 bool

	// Proto is the IP protocol: 6, 17, 132, 1 and 58 have an L4 message,
	// others none.
	Proto            uint8
	SrcPort, DstPort uint16
	ICMPType         uint16
	TCPFlags         uint8 // FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80

	// Policies are the rules behind the verdict, in the field PolicyField
	// names. Shared: never modified.
	Policies    []*flowpb.Policy
	PolicyField PolicyField
}

// Endpoint is one end of a flow.
type Endpoint struct {
	ID, Identity       uint32
	Namespace, PodName string
	Labels             []string // shared: never modified
}

// PolicyField says which of the flow's policy lists a record's Policies go
// to.
type PolicyField uint8

const (
	PolicyNone PolicyField = iota
	IngressAllowedBy
	EgressAllowedBy
	IngressDeniedBy
	EgressDeniedBy
)

// Block holds a flow and every message it may point to, so building one
// is a single allocation, or none when a block is reused. A flow built
// into a block lives as long as any of its messages is referenced.
type Block struct {
	flow      flowpb.Flow
	time      timestamppb.Timestamp
	ip        flowpb.IP
	l4        flowpb.Layer4
	tcpOneof  flowpb.Layer4_TCP
	tcp       flowpb.TCP
	tcpFlags  flowpb.TCPFlags
	udpOneof  flowpb.Layer4_UDP
	udp       flowpb.UDP
	sctpOneof flowpb.Layer4_SCTP
	sctp      flowpb.SCTP
	icmp4Of   flowpb.Layer4_ICMPv4
	icmp4     flowpb.ICMPv4
	icmp6Of   flowpb.Layer4_ICMPv6
	icmp6     flowpb.ICMPv6
	src, dst  flowpb.Endpoint
	event     flowpb.CiliumEventType
	isReply   wrapperspb.BoolValue
}

// Flow builds the record's flow in a block of its own.
func (r *Record) Flow() *flowpb.Flow { return r.BuildInto(new(Block)) }

// BuildInto builds the record's flow in b, overwriting what b held: the
// caller must be done with the flow built there before. The flow shares
// the record's strings and slices.
func (r *Record) BuildInto(b *Block) *flowpb.Flow {
	*b = Block{}
	f := &b.flow
	b.time.Seconds, b.time.Nanos = r.Seconds, r.Nanos
	f.Time = &b.time
	f.NodeName = r.NodeName
	f.Type = flowpb.FlowType_L3_L4
	b.ip.Source, b.ip.Destination, b.ip.IpVersion = r.SrcIP, r.DstIP, flowpb.IPVersion_IPv4
	if r.IPv6 {
		b.ip.IpVersion = flowpb.IPVersion_IPv6
	}
	f.IP = &b.ip
	f.L4 = r.l4(b)
	f.Source = r.Source.build(&b.src)
	f.Destination = r.Destination.build(&b.dst)
	f.Verdict = r.Verdict
	f.DropReason, f.DropReasonDesc = r.DropReason, flowpb.DropReason(r.DropReason)
	if r.EventType != 0 {
		b.event.Type, b.event.SubType = r.EventType, r.EventSubType
		f.EventType = &b.event
	}
	f.TraceObservationPoint, f.TraceReason = r.ObservationPoint, r.TraceReason
	f.TrafficDirection = r.Direction
	f.PolicyMatchType = r.PolicyMatchType
	b.isReply.Value = r.IsReply
	f.IsReply = &b.isReply
	switch r.PolicyField {
	case IngressAllowedBy:
		f.IngressAllowedBy = r.Policies
	case EgressAllowedBy:
		f.EgressAllowedBy = r.Policies
	case IngressDeniedBy:
		f.IngressDeniedBy = r.Policies
	case EgressDeniedBy:
		f.EgressDeniedBy = r.Policies
	}
	f.Summary = r.summary()
	return f
}

func (e *Endpoint) build(m *flowpb.Endpoint) *flowpb.Endpoint {
	m.ID, m.Identity, m.Namespace, m.PodName, m.Labels = e.ID, e.Identity, e.Namespace, e.PodName, e.Labels
	return m
}

func (r *Record) l4(b *Block) *flowpb.Layer4 {
	switch r.Proto {
	case 6:
		b.tcp.SourcePort, b.tcp.DestinationPort = uint32(r.SrcPort), uint32(r.DstPort)
		fl, m := &b.tcpFlags, r.TCPFlags
		fl.FIN, fl.SYN, fl.RST, fl.PSH = m&0x01 != 0, m&0x02 != 0, m&0x04 != 0, m&0x08 != 0
		fl.ACK, fl.URG, fl.ECE, fl.CWR = m&0x10 != 0, m&0x20 != 0, m&0x40 != 0, m&0x80 != 0
		b.tcp.Flags = fl
		b.tcpOneof.TCP = &b.tcp
		b.l4.Protocol = &b.tcpOneof
	case 17:
		b.udp.SourcePort, b.udp.DestinationPort = uint32(r.SrcPort), uint32(r.DstPort)
		b.udpOneof.UDP = &b.udp
		b.l4.Protocol = &b.udpOneof
	case 132:
		b.sctp.SourcePort, b.sctp.DestinationPort = uint32(r.SrcPort), uint32(r.DstPort)
		b.sctpOneof.SCTP = &b.sctp
		b.l4.Protocol = &b.sctpOneof
	case 1:
		b.icmp4.Type = uint32(r.ICMPType)
		b.icmp4Of.ICMPv4 = &b.icmp4
		b.l4.Protocol = &b.icmp4Of
	case 58:
		b.icmp6.Type = uint32(r.ICMPType)
		b.icmp6Of.ICMPv6 = &b.icmp6
		b.l4.Protocol = &b.icmp6Of
	default:
		return nil
	}
	return &b.l4
}

// summary is the one-line description Hubble shows.
func (r *Record) summary() string {
	switch r.Proto {
	case 6:
		return tcpSummaries[summaryIndex(r.TCPFlags)]
	case 17:
		return "UDP"
	case 132:
		return "SCTP"
	case 1:
		return "ICMPv4 " + icmp4Name(r.ICMPType)
	case 58:
		return "ICMPv6 " + icmp6Name(r.ICMPType)
	}
	return "IP"
}

// summaryFlags are the TCP flags a summary names, in the order it names
// them, with their bits in Record.TCPFlags.
var summaryFlags = [...]struct {
	name string
	bit  uint8
}{{"SYN", 0x02}, {"ACK", 0x10}, {"FIN", 0x01}, {"RST", 0x04}, {"PSH", 0x08}}

// tcpSummaries holds the summary of every combination of summaryFlags
// (bit i set: summaryFlags[i] is on), built once so a TCP flow's summary
// costs no allocation.
var tcpSummaries = func() (out [1 << len(summaryFlags)]string) {
	for i := range out {
		var on []string
		for bit, fl := range summaryFlags {
			if i&(1<<bit) != 0 {
				on = append(on, fl.name)
			}
		}
		out[i] = "TCP Flags: " + strings.Join(on, ", ")
	}
	return out
}()

func summaryIndex(flags uint8) int {
	i := 0
	for bit, fl := range summaryFlags {
		if flags&fl.bit != 0 {
			i |= 1 << bit
		}
	}
	return i
}

func icmp4Name(t uint16) string {
	switch t {
	case 0:
		return "EchoReply"
	case 3:
		return "DestinationUnreachable"
	case 8:
		return "EchoRequest"
	case 11:
		return "TimeExceeded"
	}
	return "Type" + strconv.Itoa(int(t))
}

func icmp6Name(t uint16) string {
	switch t {
	case 1:
		return "DestinationUnreachable"
	case 3:
		return "TimeExceeded"
	case 128:
		return "EchoRequest"
	case 129:
		return "EchoReply"
	}
	return "Type" + strconv.Itoa(int(t))
}
