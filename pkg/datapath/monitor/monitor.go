// Package monitor reads the datapath's events (drops, policy verdicts,
// traces of forwarded packets) from the seta_events ring buffer and decodes
// them into plain Go values, with the count of events the ring could not
// take. The decoding to flows lives elsewhere; this package only knows the
// wire format of bpf/lib/events.h.
package monitor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

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
	// TypeTrace is a forwarded packet, as monitor aggregation lets through.
	TypeTrace = Type(bpf.LxcEventTypeEVENT_TRACE)
)

// Observation points of trace events, Cilium's numbering (Hubble's
// TraceObservationPoint). Seta emits TraceToLxc (delivered to a local
// endpoint) and TraceToStack (passed to the node's stack).
const (
	TraceToLxc       = uint8(bpf.LxcTracePointTRACE_TO_LXC)
	TraceToProxy     = uint8(bpf.LxcTracePointTRACE_TO_PROXY)
	TraceToHost      = uint8(bpf.LxcTracePointTRACE_TO_HOST)
	TraceToStack     = uint8(bpf.LxcTracePointTRACE_TO_STACK)
	TraceToOverlay   = uint8(bpf.LxcTracePointTRACE_TO_OVERLAY)
	TraceFromLxc     = uint8(bpf.LxcTracePointTRACE_FROM_LXC)
	TraceFromProxy   = uint8(bpf.LxcTracePointTRACE_FROM_PROXY)
	TraceFromHost    = uint8(bpf.LxcTracePointTRACE_FROM_HOST)
	TraceFromStack   = uint8(bpf.LxcTracePointTRACE_FROM_STACK)
	TraceFromOverlay = uint8(bpf.LxcTracePointTRACE_FROM_OVERLAY)
	TraceFromNetwork = uint8(bpf.LxcTracePointTRACE_FROM_NETWORK)
	TraceToNetwork   = uint8(bpf.LxcTracePointTRACE_TO_NETWORK)
)

// Trace reasons: the conntrack state of a traced packet, Cilium's numbering
// (Hubble's TraceReason).
const (
	TraceReasonPolicy        = uint8(bpf.LxcTraceReasonTRACE_REASON_POLICY) // opens a connection (CT new)
	TraceReasonCTEstablished = uint8(bpf.LxcTraceReasonTRACE_REASON_CT_ESTABLISHED)
	TraceReasonCTReply       = uint8(bpf.LxcTraceReasonTRACE_REASON_CT_REPLY)
	TraceReasonCTRelated     = uint8(bpf.LxcTraceReasonTRACE_REASON_CT_RELATED)
)

// Policy match types: how the policy entry behind a verdict or drop
// matched, Cilium's numbering (Hubble's PolicyMatchType).
const (
	MatchNone      = uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_NONE)
	MatchL3Only    = uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_L3ONLY)
	MatchL3L4      = uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_L3L4)
	MatchL4Only    = uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_L4ONLY)
	MatchAll       = uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_ALL)
	MatchL3Proto   = uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_L3PROTO)
	MatchProtoOnly = uint8(bpf.LxcPolicyMatchTypePOLICY_MATCH_PROTO_ONLY)
)

// MatchTypeName names a match type as Cilium's monitor does.
func MatchTypeName(m uint8) string {
	switch m {
	case MatchNone:
		return "none"
	case MatchL3Only:
		return "L3-Only"
	case MatchL3L4:
		return "L3-L4"
	case MatchL4Only:
		return "L4-Only"
	case MatchAll:
		return "all"
	case MatchL3Proto:
		return "L3-Proto"
	case MatchProtoOnly:
		return "Proto-Only"
	}
	return fmt.Sprintf("match-type-%d", m)
}

// Event is one datapath event.
type Event struct {
	Time time.Time
	Type Type
	// Reason is the enum drop_reason (Hubble's numbering) of drops and
	// policy verdicts (0 for an allowed verdict); 0 for traces, whose
	// reason is TraceReason.
	Reason uint8
	// Ingress is the direction of the endpoint whose policy decided; for
	// traces, of EndpointID: true when delivered to it (TraceToLxc), false
	// when it sent the packet to the stack (TraceToStack).
	Ingress bool
	// Audit: a verdict for a packet the policy denies, passed because the
	// endpoint is in audit mode (Reason says how it would have been
	// dropped).
	Audit bool
	// Allowed: a verdict for a packet the endpoint's policy allowed, which
	// the datapath reports for the first packet of a connection (Reason 0,
	// not Audit). False for every other event.
	Allowed bool
	// EndpointID decided (0: the node itself); for traces, the receiver
	// (TraceToLxc) or the sender (TraceToStack).
	EndpointID  uint16
	SrcIdentity uint32
	DstIdentity uint32
	// Cookie names the rules of the matching policy entry (0: none).
	Cookie uint32
	// MatchType is how the matching policy entry matched (Match*) for
	// drops and verdicts; MatchNone when no entry matched, and for traces.
	MatchType uint8
	// TracePoint is where a trace was observed (Trace* points); only
	// meaningful for TypeTrace (0 would read as TraceToLxc).
	TracePoint uint8
	// TraceReason is a trace's conntrack state (TraceReason*); 0 for
	// other types.
	TraceReason uint8
	// IsReply: a trace of a packet that answers a tracked connection
	// (TraceReason == TraceReasonCTReply).
	IsReply bool
	// Ifindex is the device the packet arrived on; for TraceToLxc, the
	// receiving endpoint's host-side veth (as Cilium reports it).
	Ifindex  uint32
	Length   uint32
	Src, Dst netip.Addr
	// SrcPort and DstPort are TCP/UDP/SCTP ports; for ICMP echoes the
	// identifier is in one of them.
	SrcPort, DstPort uint16
	Proto            uint8
	// L4Port is what policy matched: the destination port, or the ICMP type.
	L4Port   uint16
	TCPFlags uint8
}

// The wire format is the generated mirror of struct datapath_event
// (bpf/lib/events.h): Decode reads each field at the mirror's offset, so the
// C struct stays the one source of the layout, and a test compares Decode
// with binary.Read of the mirror on random events. Reading fields in place
// instead of through binary.Read (reflection, and an allocation per event)
// took a quarter of the decoder's time.
var layout bpf.LxcDatapathEvent

const (
	eventSize      = int(unsafe.Sizeof(layout))
	offTimestamp   = unsafe.Offsetof(layout.Timestamp)
	offType        = unsafe.Offsetof(layout.Type)
	offReason      = unsafe.Offsetof(layout.Reason)
	offDir         = unsafe.Offsetof(layout.Dir)
	offAudit       = unsafe.Offsetof(layout.Audit)
	offEpID        = unsafe.Offsetof(layout.EpId)
	offObsPoint    = unsafe.Offsetof(layout.ObsPoint)
	offMatchType   = unsafe.Offsetof(layout.MatchType)
	offSrcIdentity = unsafe.Offsetof(layout.SrcIdentity)
	offDstIdentity = unsafe.Offsetof(layout.DstIdentity)
	offCookie      = unsafe.Offsetof(layout.Cookie)
	offIfindex     = unsafe.Offsetof(layout.Ifindex)
	offLen         = unsafe.Offsetof(layout.Len)
	offL4Port      = unsafe.Offsetof(layout.L4Port)
	offTCPFlags    = unsafe.Offsetof(layout.TcpFlags)
	offTuple       = unsafe.Offsetof(layout.Tuple)
	offSaddr       = offTuple + unsafe.Offsetof(layout.Tuple.Saddr)
	offDaddr       = offTuple + unsafe.Offsetof(layout.Tuple.Daddr)
	offSport       = offTuple + unsafe.Offsetof(layout.Tuple.Sport)
	offDport       = offTuple + unsafe.Offsetof(layout.Tuple.Dport)
	offProto       = offTuple + unsafe.Offsetof(layout.Tuple.Proto)
	offFamily      = offTuple + unsafe.Offsetof(layout.Tuple.Family)
)

// Decode parses one ring buffer sample. Ports and the policy port are in
// network byte order on the wire, the rest in the host's.
func Decode(raw []byte, boot time.Time) (Event, error) {
	if len(raw) < eventSize {
		return Event{}, fmt.Errorf("decode datapath event (%d bytes): shorter than an event (%d bytes)", len(raw), eventSize)
	}
	ne, be := binary.NativeEndian, binary.BigEndian
	reason, audit := raw[offReason], raw[offAudit]
	out := Event{
		Time:        boot.Add(time.Duration(ne.Uint64(raw[offTimestamp:]))),
		Type:        Type(raw[offType]),
		Ingress:     raw[offDir] == uint8(bpf.LxcTrafficDirDIR_INGRESS),
		Audit:       audit != 0,
		EndpointID:  ne.Uint16(raw[offEpID:]),
		SrcIdentity: ne.Uint32(raw[offSrcIdentity:]),
		DstIdentity: ne.Uint32(raw[offDstIdentity:]),
		Cookie:      ne.Uint32(raw[offCookie:]),
		Ifindex:     ne.Uint32(raw[offIfindex:]),
		Length:      ne.Uint32(raw[offLen:]),
		Proto:       raw[offProto],
		L4Port:      be.Uint16(raw[offL4Port:]),
		TCPFlags:    raw[offTCPFlags],
		SrcPort:     be.Uint16(raw[offSport:]),
		DstPort:     be.Uint16(raw[offDport:]),
	}
	// The reason byte is a trace reason for traces and a drop reason for
	// the rest; each goes to its own field so neither is misread.
	if out.Type == TypeTrace {
		out.TracePoint, out.TraceReason = raw[offObsPoint], reason
		out.IsReply = reason == TraceReasonCTReply
	} else {
		out.Reason, out.MatchType = reason, raw[offMatchType]
		out.Allowed = out.Type == TypePolicyVerdict && reason == 0 && audit == 0
	}
	if raw[offFamily] == uint8(bpf.LxcAddrFamilyADDR_FAMILY_IPV4) {
		out.Src = netip.AddrFrom4([4]byte(raw[offSaddr : offSaddr+4]))
		out.Dst = netip.AddrFrom4([4]byte(raw[offDaddr : offDaddr+4]))
	} else {
		out.Src = netip.AddrFrom16([16]byte(raw[offSaddr : offSaddr+16]))
		out.Dst = netip.AddrFrom16([16]byte(raw[offDaddr : offDaddr+16]))
	}
	return out, nil
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

// PollInterval bounds how long an event can wait in the ring before the
// reader sees it. The datapath submits events without waking the reader
// (bpf/lib/events.h, EVENTS_WAKEUP_BYTES): the reader wakes on this timer,
// or earlier when the unread data passes an eighth of the ring. A lone
// event (a single drop on a quiet node) is therefore delivered within
// PollInterval plus scheduling delay; at high rates one wakeup drains many
// events instead of one each.
const PollInterval = 50 * time.Millisecond

// Reader reads events from the ring. It is not safe for concurrent Reads.
//
// It never blocks an OS thread. The ring is drained with non-blocking
// reads, and between drains Read waits in the Go runtime's network poller
// (on a duplicate of the ring's descriptor, which becomes readable when the
// datapath forces a wakeup) with a deadline of PollInterval. Waiting in a
// blocking epoll_wait instead, as the ring library does, kept a thread in a
// system call between drains, and the runtime's monitor thread, which
// watches such threads, woke up to every 20 µs to hand their processor to
// others: a fifth of the agent's CPU under a steady event load.
type Reader struct {
	// rd reads the ring's records; its deadline is in the past, so
	// ReadInto returns what is there and never waits.
	rd   *ringbuf.Reader
	rec  ringbuf.Record // reused: Read copies what it needs out of it
	wake *os.File       // the ring's descriptor, in the runtime's poller
	conn syscall.RawConn
	poll time.Duration
	// closed makes every error of a wait that Close interrupted ErrClosed.
	closed atomic.Bool
	lost   *ebpf.Map
	boot   time.Time
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
	rd.SetDeadline(time.Unix(1, 0))
	r := &Reader{rd: rd, lost: lost, boot: boot, poll: PollInterval}
	if err := r.openWake(events.FD()); err != nil {
		rd.Close()
		return nil, err
	}
	return r, nil
}

// openWake puts a duplicate of the ring's descriptor into the runtime's
// poller. The duplicate shares the open file (and so its non-blocking
// flag) with the map's descriptor; nothing reads or writes a ring buffer
// map's descriptor, so the flag changes nothing else.
func (r *Reader) openWake(fd int) error {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("duplicate the event ring's descriptor: %w", err)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return fmt.Errorf("event ring descriptor: set non-blocking: %w", err)
	}
	r.wake = os.NewFile(uintptr(dup), "seta_events")
	// Deadlines work only on descriptors the poller took: without it a
	// wait could neither time out nor be woken.
	if err := r.wake.SetReadDeadline(time.Time{}); err != nil {
		r.wake.Close()
		return fmt.Errorf("the event ring cannot be waited on in the Go runtime's poller: %w", err)
	}
	if r.conn, err = r.wake.SyscallConn(); err != nil {
		r.wake.Close()
		return fmt.Errorf("event ring descriptor: %w", err)
	}
	return nil
}

// ErrClosed is returned by Read after Close.
var ErrClosed = errors.New("event reader closed")

// Read blocks for the next event.
func (r *Reader) Read() (Event, error) {
	for {
		err := r.rd.ReadInto(&r.rec)
		switch {
		case err == nil:
			return Decode(r.rec.RawSample, r.boot)
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The ring is empty.
			if err := r.wait(); err != nil {
				return Event{}, err
			}
		case errors.Is(err, ringbuf.ErrClosed):
			return Event{}, ErrClosed
		default:
			return Event{}, fmt.Errorf("read event ring: %w", err)
		}
	}
}

// wait returns when the datapath woke the ring's readers or the poll
// interval passed, whichever comes first.
func (r *Reader) wait() error {
	err := r.wake.SetReadDeadline(time.Now().Add(r.poll))
	if err == nil {
		// The first call finds nothing to do, so the poller waits for
		// readiness or the deadline; the call after the wait ends it.
		waited := false
		err = r.conn.Read(func(uintptr) bool {
			done := waited
			waited = true
			return done
		})
	}
	switch {
	case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	case r.closed.Load():
		return ErrClosed
	default:
		return fmt.Errorf("wait for the event ring: %w", err)
	}
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

// Close stops Read, also one that is waiting.
func (r *Reader) Close() error {
	r.closed.Store(true)
	err := r.rd.Close() // waits for a ReadInto in progress
	r.wake.Close()      // ends a wait
	return err
}
