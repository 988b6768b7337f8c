// Package monitor reads the datapath's events (drops, policy verdicts) from
// the seta_events ring buffer and decodes them into plain Go values, with
// the count of events the ring could not take. The decoding to flows lives
// elsewhere; this package only knows the wire format of bpf/lib/events.h.
package monitor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/seta-net/seta/pkg/datapath/bpf"
)

// Type of an event.
type Type uint8

const (
	TypeDrop          = Type(bpf.LxcEventTypeEVENT_DROP)
	TypePolicyVerdict = Type(bpf.LxcEventTypeEVENT_POLICY_VERDICT)
)

// Event is one datapath event.
type Event struct {
	Time   time.Time
	Type   Type
	Reason uint8 // enum drop_reason (Hubble's numbering)
	// Ingress is the direction of the endpoint whose policy decided.
	Ingress bool
	Audit   bool
	// EndpointID decided (0: the node itself).
	EndpointID  uint16
	SrcIdentity uint32
	DstIdentity uint32
	Cookie      uint32
	Ifindex     uint32
	Length      uint32
	Src, Dst    netip.Addr
	// SrcPort and DstPort are TCP/UDP/SCTP ports; for ICMP echoes the
	// identifier is in one of them.
	SrcPort, DstPort uint16
	Proto            uint8
	// L4Port is what policy matched: the destination port, or the ICMP type.
	L4Port   uint16
	TCPFlags uint8
}

// Decode parses one ring buffer sample.
func Decode(raw []byte, boot time.Time) (Event, error) {
	var ev bpf.LxcDatapathEvent
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &ev); err != nil {
		return Event{}, fmt.Errorf("decode datapath event (%d bytes): %w", len(raw), err)
	}
	out := Event{
		Time: boot.Add(time.Duration(ev.Timestamp)), Type: Type(ev.Type), Reason: ev.Reason,
		Ingress: ev.Dir == uint8(bpf.LxcTrafficDirDIR_INGRESS), Audit: ev.Audit != 0, EndpointID: ev.EpId,
		SrcIdentity: ev.SrcIdentity, DstIdentity: ev.DstIdentity, Cookie: ev.Cookie, Ifindex: ev.Ifindex,
		Length: ev.Len, Proto: ev.Tuple.Proto, L4Port: ntohs(ev.L4Port), TCPFlags: ev.TcpFlags,
		SrcPort: ntohs(ev.Tuple.Sport), DstPort: ntohs(ev.Tuple.Dport),
	}
	if ev.Tuple.Family == uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV4) {
		out.Src = netip.AddrFrom4([4]byte(ev.Tuple.Saddr[:4]))
		out.Dst = netip.AddrFrom4([4]byte(ev.Tuple.Daddr[:4]))
	} else {
		out.Src = netip.AddrFrom16(ev.Tuple.Saddr)
		out.Dst = netip.AddrFrom16(ev.Tuple.Daddr)
	}
	return out, nil
}

func ntohs(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

// BootTime is the wall-clock time at which the monotonic clock (the one
// bpf_ktime_get_ns reads) was zero.
func BootTime() (time.Time, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Time{}, fmt.Errorf("read the monotonic clock: %w", err)
	}
	return time.Now().Add(-time.Duration(ts.Nano())), nil
}

// Reader reads events from the ring.
type Reader struct {
	rd   *ringbuf.Reader
	lost *ebpf.Map
	boot time.Time
}

// NewReader opens the ring and the lost-event counters.
func NewReader(events, lost *ebpf.Map) (*Reader, error) {
	boot, err := BootTime()
	if err != nil {
		return nil, err
	}
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		return nil, fmt.Errorf("open event ring: %w", err)
	}
	return &Reader{rd: rd, lost: lost, boot: boot}, nil
}

// ErrClosed is returned by Read after Close.
var ErrClosed = errors.New("event reader closed")

// Read blocks for the next event.
func (r *Reader) Read() (Event, error) {
	rec, err := r.rd.Read()
	if errors.Is(err, ringbuf.ErrClosed) {
		return Event{}, ErrClosed
	}
	if err != nil {
		return Event{}, fmt.Errorf("read event ring: %w", err)
	}
	return Decode(rec.RawSample, r.boot)
}

// Lost is the number of events the datapath could not put in the ring.
func (r *Reader) Lost() (uint64, error) {
	var per []uint64
	if err := r.lost.Lookup(uint32(0), &per); err != nil {
		return 0, fmt.Errorf("read lost events: %w", err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Close stops Read.
func (r *Reader) Close() error { return r.rd.Close() }
