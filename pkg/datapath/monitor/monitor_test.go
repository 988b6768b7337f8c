package monitor

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/seta-net/seta/pkg/datapath/bpf"
)

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func TestDecode(t *testing.T) {
	ev := bpf.LxcDatapathEvent{
		Timestamp: uint64(5 * time.Second), Type: uint8(bpf.LxcEventTypeEVENT_DROP), Reason: 133,
		Dir: uint8(bpf.LxcTrafficDirDIR_INGRESS), EpId: 7, SrcIdentity: 256, DstIdentity: 257, Cookie: 3,
		Ifindex: 9, Len: 74, L4Port: htons(7000), TcpFlags: 0x02,
	}
	ev.Tuple.Family = uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV4)
	copy(ev.Tuple.Saddr[:], []byte{10, 244, 1, 3})
	copy(ev.Tuple.Daddr[:], []byte{10, 244, 1, 2})
	ev.Tuple.Sport, ev.Tuple.Dport, ev.Tuple.Proto = htons(40000), htons(7000), 6
	var buf bytes.Buffer
	binary.Write(&buf, binary.NativeEndian, &ev)
	boot := time.Unix(1000, 0)
	got, err := Decode(buf.Bytes(), boot)
	if err != nil {
		t.Fatal(err)
	}
	want := Event{
		Time: boot.Add(5 * time.Second), Type: TypeDrop, Reason: 133, Ingress: true, EndpointID: 7,
		SrcIdentity: 256, DstIdentity: 257, Cookie: 3, Ifindex: 9, Length: 74,
		Src: netip.MustParseAddr("10.244.1.3"), Dst: netip.MustParseAddr("10.244.1.2"),
		SrcPort: 40000, DstPort: 7000, Proto: 6, L4Port: 7000, TCPFlags: 0x02,
	}
	if got != want {
		t.Errorf("Decode =\n%+v\nwant\n%+v", got, want)
	}
	if _, err := Decode(buf.Bytes()[:10], boot); err == nil {
		t.Error("a truncated sample decoded")
	}
	ev.Tuple.Family = uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV6)
	copy(ev.Tuple.Saddr[:], netip.MustParseAddr("fd00::3").AsSlice())
	buf.Reset()
	binary.Write(&buf, binary.NativeEndian, &ev)
	if got, _ := Decode(buf.Bytes(), boot); got.Src != netip.MustParseAddr("fd00::3") {
		t.Errorf("IPv6 source %s", got.Src)
	}
}

func encode(t *testing.T, ev *bpf.LxcDatapathEvent) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, ev); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The reason byte means a trace reason for traces and a drop reason
// otherwise; the obs_point and match_type bytes took over the old padding.
func TestDecodeTraceAndVerdict(t *testing.T) {
	boot := time.Unix(1000, 0)
	ev := bpf.LxcDatapathEvent{
		Type: uint8(bpf.LxcEventTypeEVENT_TRACE), Reason: uint8(bpf.LxcTraceReasonTRACE_REASON_CT_REPLY),
		Dir: uint8(bpf.LxcTrafficDirDIR_INGRESS), EpId: 3, ObsPoint: uint8(bpf.LxcTracePointTRACE_TO_LXC),
		Ifindex: 11, TcpFlags: 0x12,
	}
	ev.Tuple.Family = uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV4)
	got, err := Decode(encode(t, &ev), boot)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != TypeTrace || got.TracePoint != TraceToLxc || got.TraceReason != TraceReasonCTReply ||
		!got.IsReply || got.Reason != 0 || got.Allowed || got.MatchType != MatchNone || !got.Ingress ||
		got.EndpointID != 3 || got.Ifindex != 11 || got.TCPFlags != 0x12 {
		t.Errorf("trace decoded as %+v", got)
	}

	ev.ObsPoint, ev.Reason = uint8(bpf.LxcTracePointTRACE_TO_STACK), uint8(bpf.LxcTraceReasonTRACE_REASON_POLICY)
	got, _ = Decode(encode(t, &ev), boot)
	if got.TracePoint != TraceToStack || got.TraceReason != TraceReasonPolicy || got.IsReply {
		t.Errorf("new-connection trace decoded as %+v", got)
	}

	// An allowed verdict: reason 0, not audited, with the entry's match type.
	ev = bpf.LxcDatapathEvent{Type: uint8(bpf.LxcEventTypeEVENT_POLICY_VERDICT), Cookie: 9,
		MatchType: uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_L3L4), ObsPoint: 0}
	got, _ = Decode(encode(t, &ev), boot)
	if got.Type != TypePolicyVerdict || !got.Allowed || got.Audit || got.MatchType != MatchL3L4 || got.Cookie != 9 ||
		got.TraceReason != 0 || got.IsReply {
		t.Errorf("allowed verdict decoded as %+v", got)
	}
	// An audit verdict is not "allowed": the policy denied it.
	ev.Reason, ev.Audit = 133, 1
	got, _ = Decode(encode(t, &ev), boot)
	if got.Allowed || !got.Audit || got.Reason != 133 || got.MatchType != MatchL3L4 {
		t.Errorf("audit verdict decoded as %+v", got)
	}
	// A drop by a deny rule carries its match type; a drop with reason 2
	// is not a reply.
	ev = bpf.LxcDatapathEvent{Type: uint8(bpf.LxcEventTypeEVENT_DROP), Reason: 181,
		MatchType: uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_L4ONLY)}
	got, _ = Decode(encode(t, &ev), boot)
	if got.Allowed || got.Reason != 181 || got.MatchType != MatchL4Only || got.IsReply {
		t.Errorf("deny drop decoded as %+v", got)
	}
}

func TestMatchTypeNames(t *testing.T) {
	for m, want := range map[uint8]string{MatchNone: "none", MatchL3Only: "L3-Only", MatchL3L4: "L3-L4",
		MatchL4Only: "L4-Only", MatchAll: "all", MatchL3Proto: "L3-Proto", MatchProtoOnly: "Proto-Only", 9: "match-type-9"} {
		if got := MatchTypeName(m); got != want {
			t.Errorf("MatchTypeName(%d) = %q, want %q", m, got, want)
		}
	}
	// Cilium's numbering.
	if MatchL3Only != 1 || MatchL3L4 != 2 || MatchL4Only != 3 || MatchAll != 4 || MatchL3Proto != 5 || MatchProtoOnly != 6 {
		t.Error("match types do not follow Cilium's numbering")
	}
	if TraceToLxc != 0 || TraceToStack != 3 || TraceFromNetwork != 10 || TraceToNetwork != 11 ||
		TraceReasonCTReply != 2 || TraceReasonCTRelated != 3 || TypeTrace != 3 {
		t.Error("trace points or reasons do not follow Cilium's numbering")
	}
}

// referenceDecode is Decode written against the generated mirror's fields,
// read with binary.Read: the field decoder must agree with it on every
// byte of the wire format.
func referenceDecode(t *testing.T, raw []byte, boot time.Time) Event {
	t.Helper()
	var ev bpf.LxcDatapathEvent
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &ev); err != nil {
		t.Fatal(err)
	}
	ntohs := func(v uint16) uint16 { return htons(v) }
	out := Event{
		Time: boot.Add(time.Duration(ev.Timestamp)), Type: Type(ev.Type),
		Ingress: ev.Dir == uint8(bpf.LxcTrafficDirDIR_INGRESS), Audit: ev.Audit != 0, EndpointID: ev.EpId,
		SrcIdentity: ev.SrcIdentity, DstIdentity: ev.DstIdentity, Cookie: ev.Cookie, Ifindex: ev.Ifindex,
		Length: ev.Len, Proto: ev.Tuple.Proto, L4Port: ntohs(ev.L4Port), TCPFlags: ev.TcpFlags,
		SrcPort: ntohs(ev.Tuple.Sport), DstPort: ntohs(ev.Tuple.Dport),
	}
	if out.Type == TypeTrace {
		out.TracePoint, out.TraceReason = ev.ObsPoint, ev.Reason
		out.IsReply = ev.Reason == TraceReasonCTReply
	} else {
		out.Reason, out.MatchType = ev.Reason, ev.MatchType
		out.Allowed = out.Type == TypePolicyVerdict && ev.Reason == 0 && ev.Audit == 0
	}
	if ev.Tuple.Family == uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV4) {
		out.Src = netip.AddrFrom4([4]byte(ev.Tuple.Saddr[:4]))
		out.Dst = netip.AddrFrom4([4]byte(ev.Tuple.Daddr[:4]))
	} else {
		out.Src = netip.AddrFrom16(ev.Tuple.Saddr)
		out.Dst = netip.AddrFrom16(ev.Tuple.Daddr)
	}
	return out
}

// Random events, every field random (the type, the family and the verdict
// bits drawn from their interesting values so every branch is taken),
// encoded with binary.Write from the mirror: the field decoder reads what
// binary.Read of the mirror reads, so its offsets cannot drift from the C.
func TestDecodeMatchesMirror(t *testing.T) {
	if eventSize != binary.Size(bpf.LxcDatapathEvent{}) {
		t.Fatalf("the mirror has %d bytes in memory and %d on the wire: implicit padding",
			eventSize, binary.Size(bpf.LxcDatapathEvent{}))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	boot := time.Unix(1000, 0)
	types := []uint8{uint8(TypeDrop), uint8(TypePolicyVerdict), uint8(TypeTrace), 0, 9}
	families := []uint8{uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV4), uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV6)}
	for i := range 2000 {
		raw := make([]byte, eventSize)
		for j := range raw {
			raw[j] = byte(rng.Uint32())
		}
		var ev bpf.LxcDatapathEvent
		binary.Read(bytes.NewReader(raw), binary.NativeEndian, &ev)
		ev.Type, ev.Tuple.Family = types[i%len(types)], families[(i/len(types))%2]
		if i%3 == 0 {
			ev.Reason, ev.Audit = 0, 0
		}
		enc := encode(t, &ev)
		got, err := Decode(enc, boot)
		if err != nil {
			t.Fatal(err)
		}
		if want := referenceDecode(t, enc, boot); got != want {
			t.Fatalf("event %d (% x):\nDecode    %+v\nreference %+v", i, enc, got, want)
		}
		// A longer sample decodes the same (the ring pads to 8 bytes).
		if got2, err := Decode(append(enc, 0, 0, 0), boot); err != nil || got2 != got {
			t.Fatalf("event %d with trailing bytes: %+v, %v", i, got2, err)
		}
	}
	for _, n := range []int{0, 1, eventSize - 1} {
		if _, err := Decode(make([]byte, n), boot); err == nil {
			t.Errorf("a %d-byte sample decoded", n)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	ev := bpf.LxcDatapathEvent{Type: uint8(bpf.LxcEventTypeEVENT_TRACE), EpId: 3, Len: 74, TcpFlags: 0x12}
	ev.Tuple.Family = uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV4)
	var buf bytes.Buffer
	binary.Write(&buf, binary.NativeEndian, &ev)
	raw, boot := buf.Bytes(), time.Unix(1000, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(raw, boot); err != nil {
			b.Fatal(err)
		}
	}
}
