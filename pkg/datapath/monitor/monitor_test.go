package monitor

import (
	"bytes"
	"encoding/binary"
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
