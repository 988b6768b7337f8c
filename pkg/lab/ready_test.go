package lab

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBoundPorts(t *testing.T) {
	// Two lines of a real /proc/net/tcp6: a listener on 7000, and an
	// established connection from local port 41170.
	table := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1B58 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:A0D2 0000000000000000FFFF00000100007F:1B58 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
`
	p := filepath.Join(t.TempDir(), "tcp6")
	os.WriteFile(p, []byte(table), 0o644)
	if got := boundPorts(p, true); !slices.Equal(got, []uint16{7000}) {
		t.Errorf("listening: %v", got)
	}
	if got := boundPorts(p, false); !slices.Equal(got, []uint16{7000, 41170}) {
		t.Errorf("bound: %v", got)
	}
	if got := boundPorts(filepath.Join(t.TempDir(), "missing"), false); got != nil {
		t.Errorf("missing table: %v", got)
	}
}

func TestNotListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tcpPort := uint16(ln.Addr().(*net.TCPAddr).Port)
	udpPort := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	tcp, udp := portProto{tcpPort, "TCP"}, portProto{udpPort, "UDP"}
	// The UDP port is not a TCP listener, and the other way round.
	want := []portProto{tcp, udp, {udpPort, "TCP"}, {tcpPort, "UDP"}}
	got := notListening(os.Getpid(), want)
	if !slices.Equal(got, []portProto{{udpPort, "TCP"}, {tcpPort, "UDP"}}) {
		t.Errorf("notListening = %v", got)
	}
}

func TestWaitReady(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	self := procOf(os.Getpid())
	svc := func(target uint16) *Service {
		return &Service{Name: "s", Namespace: "default", Selector: map[string]string{"app": "web"},
			Ports: []ServicePort{{Protocol: "TCP", Port: 80, TargetPort: target}}}
	}
	pod := &Pod{Name: "p", Namespace: "default", Labels: []string{"app=web"}, Proc: self}

	// Listening already: no wait, no note.
	var out bytes.Buffer
	start := time.Now()
	waitReady(&State{Services: []*Service{svc(port)}}, pod, &out)
	if d := time.Since(start); d > time.Second || out.Len() != 0 {
		t.Errorf("ready pod: waited %v, note %q", d, out.String())
	}
	// A pod no service selects is never waited for.
	other := &Pod{Name: "q", Namespace: "default", Labels: []string{"app=db"}, Proc: self}
	start = time.Now()
	waitReady(&State{Services: []*Service{svc(1)}}, other, &out)
	if d := time.Since(start); d > time.Second || out.Len() != 0 {
		t.Errorf("unselected pod: waited %v, note %q", d, out.String())
	}
	if testing.Short() {
		return
	}
	// Never listening: bounded, with a note naming the port.
	start = time.Now()
	waitReady(&State{Services: []*Service{svc(1)}}, pod, &out)
	if d := time.Since(start); d < readyTimeout || d > readyTimeout+2*time.Second {
		t.Errorf("unready pod: waited %v, want about %v", d, readyTimeout)
	}
	if !strings.Contains(out.String(), "default/p does not serve [1/TCP]") {
		t.Errorf("note: %q", out.String())
	}
}
