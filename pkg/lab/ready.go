package lab

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// readyTimeout bounds how long a new pod is held back from its services
// while its command starts listening.
const readyTimeout = 3 * time.Second

// portProto is a service's target port: what a selected pod must serve.
type portProto struct {
	port  uint16
	proto string // "TCP" or "UDP"
}

func (pp portProto) String() string { return strconv.Itoa(int(pp.port)) + "/" + pp.proto }

// waitReady holds a new pod back from the services that select it until
// its command listens on their target ports, as a kubelet tcpSocket
// readiness probe would. Without it the pod becomes a backend a few
// milliseconds before its server has opened its socket, and the load
// balancer's first picks of it are refused. A pod that does not listen
// within readyTimeout (or whose command exits) becomes a backend anyway,
// with a note on out (nil discards it): the lab has no way to keep a pod
// unready for good.
func waitReady(st *State, p *Pod, out io.Writer) {
	want := readinessPorts(st, p)
	if len(want) == 0 || p.Proc.PID <= 0 {
		return
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		missing := notListening(p.Proc.PID, want)
		if len(missing) == 0 {
			return
		}
		if !p.Proc.Alive() || time.Now().After(deadline) {
			if out != nil {
				fmt.Fprintf(out, "note: pod %s does not serve %v (its services' target ports); it is their backend anyway\n", p.Key(), missing)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readinessPorts lists the target ports of the services that select p.
func readinessPorts(st *State, p *Pod) []portProto {
	var out []portProto
	for _, s := range st.Services {
		if !s.selects(p) {
			continue
		}
		for _, sp := range s.Ports {
			if pp := (portProto{sp.TargetPort, sp.Protocol}); !slices.Contains(out, pp) {
				out = append(out, pp)
			}
		}
	}
	return out
}

// notListening returns the ports of want that no socket in pid's network
// namespace serves: a listening TCP socket, or a UDP socket bound to the
// port. /proc/PID/net shows the sockets of the process's namespace, so the
// lab needs not enter it.
func notListening(pid int, want []portProto) []portProto {
	have := map[portProto]bool{}
	for _, f := range []struct {
		file, proto string
		listenOnly  bool
	}{{"tcp", "TCP", true}, {"tcp6", "TCP", true}, {"udp", "UDP", false}, {"udp6", "UDP", false}} {
		for _, port := range boundPorts("/proc/"+strconv.Itoa(pid)+"/net/"+f.file, f.listenOnly) {
			have[portProto{port, f.proto}] = true
		}
	}
	var missing []portProto
	for _, pp := range want {
		if !have[pp] {
			missing = append(missing, pp)
		}
	}
	return missing
}

// tcpListen is the state column of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// boundPorts reads the local ports of a /proc/net/{tcp,udp}[6] table
// ("sl local_address rem_address st ...", the address as HEX:PORTHEX),
// only those of listening sockets when listenOnly. A table that cannot be
// read gives none.
func boundPorts(path string, listenOnly bool) []uint16 {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []uint16
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || listenOnly && fields[3] != tcpListen {
			continue
		}
		_, portHex, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		if port, err := strconv.ParseUint(portHex, 16, 16); err == nil {
			out = append(out, uint16(port))
		}
	}
	return out
}
