package monitor

import (
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/seta-net/seta/pkg/testutils"
)

// ringbufProducer is a program that writes one zeroed event of the given
// type to ring with bpf_ringbuf_output and the given flags, as the
// datapath's emitter does with BPF_RB_NO_WAKEUP below the watermark.
func ringbufProducer(t *testing.T, ring *ebpf.Map, typ Type, flags int64) *ebpf.Program {
	t.Helper()
	insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0)}
	for off := -eventSize; off < 0; off += 8 {
		insns = append(insns, asm.StoreMem(asm.R10, int16(off), asm.R0, asm.DWord))
	}
	insns = append(insns,
		asm.StoreImm(asm.R10, int16(-eventSize+int(offType)), int64(typ), asm.Byte),
		asm.LoadMapPtr(asm.R1, ring.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(-eventSize)),
		asm.Mov.Imm(asm.R3, int32(eventSize)),
		asm.Mov.Imm(asm.R4, int32(flags)),
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

func newTestReader(t *testing.T) (*Reader, *ebpf.Map) {
	t.Helper()
	ring, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	lost, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	rd, err := NewReader(ring, lost)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close(); ring.Close(); lost.Close() })
	return rd, ring
}

const (
	bpfRBNoWakeup    = 1 // BPF_RB_NO_WAKEUP
	bpfRBForceWakeup = 2 // BPF_RB_FORCE_WAKEUP
)

// An event submitted without a wakeup, alone in the ring, still reaches
// Read: within PollInterval of its submission (and some scheduling slack),
// not only once more events push the ring past the watermark.
func TestPrivilegedReaderDeliversUnwokenEvent(t *testing.T) {
	testutils.Privileged(t)
	rd, ring := newTestReader(t)
	prog := ringbufProducer(t, ring, TypeDrop, bpfRBNoWakeup)
	got := make(chan time.Time, 1)
	go func() {
		ev, err := rd.Read()
		if err != nil || ev.Type != TypeDrop {
			t.Errorf("Read = %+v, %v", ev, err)
		}
		got <- time.Now()
	}()
	// Let Read block in its poll before the event is written.
	time.Sleep(2 * PollInterval)
	start := time.Now()
	if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14)}); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-got:
		if d := at.Sub(start); d > PollInterval+100*time.Millisecond {
			t.Errorf("a lone event took %v to arrive, more than PollInterval (%v)", d, PollInterval)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a lone event submitted without a wakeup was never read")
	}
}

// An event whose submission wakes the reader (as the datapath's does once
// the unread data passes the watermark) is read at once, not at the next
// poll: the reader's wait in the runtime's poller sees the wakeup.
func TestPrivilegedReaderWakesOnWakeup(t *testing.T) {
	testutils.Privileged(t)
	rd, ring := newTestReader(t)
	rd.poll = time.Minute // only a wakeup can end the wait in time
	prog := ringbufProducer(t, ring, TypePolicyVerdict, bpfRBForceWakeup)
	got := make(chan time.Time, 1)
	go func() {
		ev, err := rd.Read()
		if err != nil || ev.Type != TypePolicyVerdict {
			t.Errorf("Read = %+v, %v", ev, err)
		}
		got <- time.Now()
	}()
	time.Sleep(200 * time.Millisecond) // Read waits by now
	start := time.Now()
	if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14)}); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-got:
		t.Logf("woken event read after %v", at.Sub(start))
	case <-time.After(10 * time.Second):
		t.Fatal("an event submitted with a wakeup was not read within 10s (the poll interval is a minute)")
	}
}

// Many events without wakeups arrive complete and in order, and Close ends
// a Read that is waiting.
func TestPrivilegedReaderBatchesAndCloses(t *testing.T) {
	testutils.Privileged(t)
	rd, ring := newTestReader(t)
	drop := ringbufProducer(t, ring, TypeDrop, bpfRBNoWakeup)
	trace := ringbufProducer(t, ring, TypeTrace, bpfRBNoWakeup)
	const n = 500 // 500 × 88 bytes fit in the 64 KiB ring
	for i := range n {
		p := drop
		if i%2 == 1 {
			p = trace
		}
		if _, err := p.Run(&ebpf.RunOptions{Data: make([]byte, 14)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		ev, err := rd.Read()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if want := []Type{TypeDrop, TypeTrace}[i%2]; ev.Type != want {
			t.Fatalf("event %d has type %d, want %d", i, ev.Type, want)
		}
	}
	done := make(chan error, 1)
	go func() { _, err := rd.Read(); done <- err }()
	time.Sleep(3 * PollInterval) // Read polls a few times, finding nothing
	rd.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Read after Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Read")
	}
}
