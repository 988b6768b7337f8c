package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/seta-net/seta/pkg/client"
	"github.com/seta-net/seta/pkg/datapath/lb"
	"github.com/seta-net/seta/pkg/datapath/progstats"
	"github.com/seta-net/seta/pkg/lab"
	lbt "github.com/seta-net/seta/pkg/loadbalancer"
	"github.com/seta-net/seta/pkg/nsutil"
	"github.com/seta-net/seta/pkg/service"
)

// maxServiceIDs is the agent's ID space: a frontend entry's ServiceID is
// also its reverse-NAT ID, 16 bits wide in the datapath (as in Cilium).
const maxServiceIDs = 1<<16 - 1

// lbMapMax is the capacity the bench gives the agent's service and
// backend maps (--bpf-lb-map-max): each service takes one entry plus one
// per backend slot, three here, so 65,535 services need 196,605.
const lbMapMax = 262144

// setaSide is the lab: a client pod and two server pods on one node.
type setaSide struct {
	b        *bench
	backends []netip.AddrPort
	// loaded is how many of the measured services the agent holds.
	loaded int
	// base is the number of frontend entries the lab itself has (its
	// cluster DNS service) and the TCP_RR service, which count against
	// the ID space.
	base int
}

func (s *setaSide) upOptions() lab.UpOptions {
	args := append(strings.Fields(*agentArgs), "--bpf-lb-map-max="+strconv.Itoa(lbMapMax))
	return lab.UpOptions{Name: labName, Nodes: 1, AgentBin: s.b.bin("seta-agent"), CNIBinDir: abs(*binDir),
		SetaBin: s.b.bin("seta"), AgentArgs: args, Out: io.Discard}
}

func setupSeta(ctx context.Context, b *bench) (*setaSide, error) {
	s := &setaSide{b: b}
	st, err := lab.Up(ctx, s.upOptions())
	if err != nil {
		return nil, err
	}
	serve := []string{"taskset", "-c", strconv.Itoa(*serverCPU), b.bin("seta-nettool"), "serve", "--udp", "", "--http", ""}
	for _, name := range []string{"web-0", "web-1"} {
		p, err := lab.RunPod(ctx, lab.RunOptions{Lab: labName, Name: name, Namespace: "default", Labels: []string{"app=web"}, Command: serve})
		if err != nil {
			return nil, err
		}
		s.backends = append(s.backends, netip.AddrPortFrom(netip.MustParseAddr(p.IPv4), backendPort))
	}
	cli, err := lab.RunPod(ctx, lab.RunOptions{Lab: labName, Name: "client", Namespace: "default", Labels: []string{"app=client"}})
	if err != nil {
		return nil, err
	}
	if err := clientSysctls(cli.NetNS); err != nil {
		return nil, err
	}
	c := s.client(st)
	rr := s.service("rr", rrVIP)
	rr.Backends = rr.Backends[:1]
	if _, err := c.UpsertService(ctx, rr); err != nil {
		return nil, fmt.Errorf("the TCP_RR service: %w", err)
	}
	ds, err := c.ListServices(ctx)
	if err != nil {
		return nil, err
	}
	s.base = len(ds)
	return s, nil
}

func (s *setaSide) state() (*lab.State, error) { return lab.Load(labName) }

func (s *setaSide) name() string                    { return "seta" }
func (s *setaSide) holds(n int) bool                { return n <= s.maxN() }
func (s *setaSide) direct() string                  { return s.backends[0].String() }
func (s *setaSide) rr(addr string) (float64, error) { return rrInPod(s.b, addr) }

func (s *setaSide) crr(addr string, count int) (crrResult, error) {
	return s.crrWithAgentCPU(addr, count)
}

func (s *setaSide) program(ctx context.Context, _ int) ([]programResult, error) {
	var out []programResult
	for _, f := range []func(context.Context) (programResult, error){s.programAPI, s.programCLI} {
		r, err := f(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *setaSide) client(st *lab.State) *client.Client {
	return client.New(st.Nodes[0].Socket, 2*time.Minute)
}

// maxN is the largest number of measured services the agent can hold.
func (s *setaSide) maxN() int { return maxServiceIDs - s.base }

// vip is the address of the i-th measured service (0-based).
func vip(i int) netip.Addr {
	v := uint32(10<<24|112<<16) + uint32(i) + 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// rrVIP is the ClusterIP of the service TCP_RR goes through: one backend,
// the one TCP_RR's direct path goes to, so the two differ only in the
// translation.
var rrVIP = netip.AddrFrom4([4]byte{10, 126, 255, 1})

// extraVIP is the address of the k-th service added to time programming.
func extraVIP(k int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 126, byte(k >> 8), byte(k)})
}

func (s *setaSide) service(name string, a netip.Addr) service.Service {
	svc := service.Service{Name: name, Namespace: "benchlb",
		Frontend: service.L4Addr{Addr: a, Port: vipPort, Proto: lbt.TCP}, Type: service.ClusterIP}
	for _, be := range s.backends {
		svc.Backends = append(svc.Backends, service.Backend{Addr: be, NodeName: "node1"})
	}
	return svc
}

func svcName(i int) string { return fmt.Sprintf("svc-%06d", i+1) }

// savedServices mirrors the agent's <state-dir>/services.json (format
// version 1, pkg/service/store.go). The agent refuses any other version,
// so a change of format stops the bench instead of going unnoticed.
type savedServices struct {
	Version  int `json:"version"`
	Services []struct {
		ID         uint16          `json:"id"`
		InternalID uint16          `json:"internalID,omitempty"`
		Service    service.Service `json:"service"`
	} `json:"services"`
	Backends      json.RawMessage `json:"backends"`
	LastServiceID uint16          `json:"lastServiceID"`
	LastBackendID uint32          `json:"lastBackendID"`
}

// loadResult is what loading N services into the agent took and left.
type loadResult struct {
	N int
	// Restart: from starting the agent with N services in its state until
	// its API answers for the last of them (it restores the table and
	// writes the maps before it serves).
	RestartSeconds float64
	AgentRSSMB     float64
	// From the agent's Go runtime metrics: live heap objects, and what
	// the heap holds from the OS (freed but not yet returned included).
	AgentHeapAllocMB, AgentHeapSysMB float64
	Maps                             []mapUsage
}

type mapUsage struct {
	Name           string
	Entries, Max   int
	MemlockMB      float64
	PerService     float64 `json:",omitempty"` // entries per measured service, against the lab without them
	entriesAtStart int
}

// load makes the agent hold the first n measured services. Programming
// tens of thousands of services one PUT at a time takes minutes (each PUT
// is an HTTP round trip plus an fsync'd journal record), so the bench uses
// the agent's own restore path: with the
// agent stopped it adds the services to the agent's state file, then
// starts the agent, which validates them, gives them IDs and writes the
// maps through the same table and lb map code that serves the API.
func (s *setaSide) load(ctx context.Context, n int, st *step) error {
	res, err := s.loadServices(ctx, n)
	if err == nil {
		st.Seta = &res
	}
	return err
}

func (s *setaSide) loadServices(ctx context.Context, n int) (loadResult, error) {
	res := loadResult{N: n}
	st, err := s.state()
	if err != nil {
		return res, err
	}
	node := st.Nodes[0]
	if err := node.Agent.Stop(30 * time.Second); err != nil {
		return res, err
	}
	if err := s.writeState(filepath.Join(node.StateDir, "services.json"), n); err != nil {
		return res, err
	}
	t0 := time.Now()
	if st, err = lab.Up(ctx, s.upOptions()); err != nil {
		return res, err
	}
	c := s.client(st)
	last := service.L4Addr{Addr: vip(n - 1), Port: vipPort, Proto: lbt.TCP}.String()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if _, ok, err := c.LookupService(ctx, last); err == nil && ok {
			break
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			return res, fmt.Errorf("the agent does not have service %s after a restart with %d services (lookup: %v); its log: %s", last, n, err, node.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.RestartSeconds = time.Since(t0).Seconds()
	s.loaded = n
	// Let the restarted agent finish what follows its start (GC of the
	// restore's garbage) before its memory is read.
	time.Sleep(2 * time.Second)
	st, err = s.state()
	if err != nil {
		return res, err
	}
	if res.AgentRSSMB, err = vmRSSMB(st.Nodes[0].Agent.PID); err != nil {
		return res, err
	}
	gm, err := agentGoMetrics(st.Nodes[0].NetNS)
	if err != nil {
		return res, err
	}
	res.AgentHeapAllocMB, res.AgentHeapSysMB = gm["go_memstats_heap_alloc_bytes"]/(1<<20), gm["go_memstats_heap_sys_bytes"]/(1<<20)
	res.Maps, err = mapUsageOf(st.Nodes[0].BPFRoot)
	return res, err
}

// agentGoMetrics reads the go_memstats_* gauges from the agent's
// Prometheus endpoint (lab.MetricsAddr in the node's namespace). The
// connection is made on a thread inside that namespace; the socket stays
// in it afterwards.
func agentGoMetrics(netns string) (map[string]float64, error) {
	var conn net.Conn
	err := nsutil.Do(nsutil.Path(netns), func() error {
		var err error
		conn, err = net.DialTimeout("tcp", lab.MetricsAddr, 5*time.Second)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("agent metrics: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET /metrics HTTP/1.0\r\nHost: agent\r\n\r\n"); err != nil {
		return nil, fmt.Errorf("agent metrics: %w", err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if ok && strings.HasPrefix(name, "go_memstats_") {
			if v, err := strconv.ParseFloat(val, 64); err == nil {
				out[name] = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("agent metrics: %w", err)
	}
	if _, ok := out["go_memstats_heap_alloc_bytes"]; !ok {
		return nil, fmt.Errorf("agent metrics at %s have no go_memstats_heap_alloc_bytes", lab.MetricsAddr)
	}
	return out, nil
}

// procCPUSeconds is a process's user+system CPU time (/proc/PID/stat).
func procCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces: fields
	// count from after its closing one (utime, stime are fields 14, 15).
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / clkTck, nil
}

// clkTck is sysconf(_SC_CLK_TCK) on Linux.
const clkTck = 100

// writeState adds measured services up to n to the agent's state file;
// what is in it already (the lab's services, services of an earlier step)
// stays with its IDs.
func (s *setaSide) writeState(path string, n int) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read the agent's services: %w", err)
	}
	var saved savedServices
	if err := json.Unmarshal(raw, &saved); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	if saved.Version != 1 {
		return fmt.Errorf("%s has format version %d; this bench writes version 1", path, saved.Version)
	}
	have := map[netip.Addr]bool{}
	for _, ss := range saved.Services {
		have[ss.Service.Frontend.Addr] = true
	}
	for i := 0; i < n; i++ {
		if have[vip(i)] {
			continue
		}
		saved.Services = append(saved.Services, struct {
			ID         uint16          `json:"id"`
			InternalID uint16          `json:"internalID,omitempty"`
			Service    service.Service `json:"service"`
		}{Service: s.service(svcName(i), vip(i))})
	}
	out, err := json.Marshal(saved)
	if err != nil {
		return err
	}
	tmp := path + ".benchlb"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func vmRSSMB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 2 && fs[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(fs[1], 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// mapUsageOf counts the entries of the agent's pinned lb maps and reads
// their locked memory (preallocated hash maps cost their capacity, not
// their fill).
func mapUsageOf(bpfRoot string) ([]mapUsage, error) {
	m, err := lb.OpenPinned(bpfRoot)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	us, err := m.Usage()
	if err != nil {
		return nil, err
	}
	maps := m.Maps()
	byName := map[string]interface{ FD() int }{
		lb.ServicesMapName: maps.Services, lb.BackendsMapName: maps.Backends, lb.RevNatMapName: maps.RevNat,
		lb.MaglevMapName: maps.Maglev, lb.AffinityMapName: maps.Affinity, lb.SockRevNatMapName: maps.SockRevNat,
	}
	var out []mapUsage
	for _, u := range us {
		mu := mapUsage{Name: u.Name, Entries: u.Entries, Max: int(u.MaxEntries)}
		if fd, ok := byName[u.Name]; ok {
			mu.MemlockMB = memlockMB(fd.FD())
		}
		out = append(out, mu)
	}
	return out, nil
}

func memlockMB(fd int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "memlock:"); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n / (1 << 20)
		}
	}
	return 0
}

// programResult is the time to add one service (and to remove it again)
// with N present, over --program-repeats tries.
type programResult struct {
	Method          string
	N               int
	AddMs, RemoveMs []float64
	AddMedianMs     float64
	AddMin, AddMax  float64
	RemoveMedianMs  float64
	Note            string `json:",omitempty"`
}

// programAPI times PUT /v1/services for a new service and DELETE for it,
// through the Go client (HTTP on the agent's unix socket). The first
// added service is checked to carry traffic.
func (s *setaSide) programAPI(ctx context.Context) (programResult, error) {
	r := programResult{Method: "Seta: REST API (PUT /v1/services)", N: s.loaded}
	st, err := s.state()
	if err != nil {
		return r, err
	}
	c := s.client(st)
	t0 := time.Now()
	for k := 0; moreRepeats(k, t0); k++ {
		svc := s.service(fmt.Sprintf("extra-%d", k), extraVIP(k))
		t0 := time.Now()
		if _, err := c.UpsertService(ctx, svc); err != nil {
			return r, fmt.Errorf("add a service with %d present: %w", s.loaded, err)
		}
		r.AddMs = append(r.AddMs, ms(time.Since(t0)))
		if k == 0 {
			if _, err := s.crrCheck(svc.Frontend.AddrPort().String()); err != nil {
				return r, fmt.Errorf("the added service %s carries no traffic: %w", svc.Frontend, err)
			}
		}
		t0 = time.Now()
		if _, err := c.DeleteServiceFrontend(ctx, svc.Frontend.String()); err != nil {
			return r, fmt.Errorf("remove the added service: %w", err)
		}
		r.RemoveMs = append(r.RemoveMs, ms(time.Since(t0)))
	}
	r.summarize()
	return r, nil
}

// programCLI times `seta service update` as a user runs it (a process:
// start, look the frontend up, PUT, print); the service is removed again
// through the API, untimed.
func (s *setaSide) programCLI(ctx context.Context) (programResult, error) {
	r := programResult{Method: "Seta: `seta service update` (CLI process, end to end)", N: s.loaded}
	st, err := s.state()
	if err != nil {
		return r, err
	}
	c := s.client(st)
	var bes []string
	for _, be := range s.backends {
		bes = append(bes, be.String())
	}
	start := time.Now()
	for k := 0; moreRepeats(k, start); k++ {
		fe := service.L4Addr{Addr: extraVIP(k), Port: vipPort, Proto: lbt.TCP}
		cmd := exec.CommandContext(ctx, s.b.bin("seta"), "--socket", st.Nodes[0].Socket, "service", "update",
			"--frontend", fe.String(), "--backends", strings.Join(bes, ","), "--name", fmt.Sprintf("cli-%d", k), "--namespace", "benchlb")
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(t0)
		if err != nil {
			return r, fmt.Errorf("seta service update: %v: %s", err, out)
		}
		r.AddMs = append(r.AddMs, ms(d))
		if _, err := c.DeleteServiceFrontend(ctx, fe.String()); err != nil {
			return r, fmt.Errorf("remove the added service: %w", err)
		}
	}
	r.summarize()
	return r, nil
}

// crrWithAgentCPU is a CRR measurement from the client pod, with the
// agent's CPU use over it and, with BPF statistics on, what the node's
// programs ran.
func (s *setaSide) crrWithAgentCPU(addr string, count int) (crrResult, error) {
	st, err := s.state()
	if err != nil {
		return crrResult{}, err
	}
	pid, bpfRoot := st.Nodes[0].Agent.PID, st.Nodes[0].BPFRoot
	var runs0 progstats.Snapshot
	if s.b.bpfStats != nil {
		if runs0, err = readProgStats(bpfRoot); err != nil {
			return crrResult{}, err
		}
	}
	cpu0, err := procCPUSeconds(pid)
	if err != nil {
		return crrResult{}, err
	}
	t0 := time.Now()
	res, err := crrInPod("client", addr, count)
	if err != nil {
		return res, err
	}
	cpu1, err := procCPUSeconds(pid)
	if err != nil {
		return res, err
	}
	res.AgentCPU = (cpu1 - cpu0) / time.Since(t0).Seconds()
	if runs0 != nil {
		runs1, err := readProgStats(bpfRoot)
		if err != nil {
			return res, err
		}
		if res.BPF, err = runs1.Since(runs0); err != nil {
			return res, err
		}
		if err := checkRuns(res.BPF, res.OK); err != nil {
			return res, err
		}
	}
	return res, nil
}

// crrCheck makes a few connections from the client pod to addr.
func (s *setaSide) crrCheck(addr string) (crrResult, error) {
	res, err := crrInPod("client", addr, 10)
	if err == nil && res.Failed > 0 {
		err = errors.New(res.FirstError)
	}
	return res, err
}

// moreRepeats says whether to make the k-th (0-based) try of a method
// that started at t0: up to --program-repeats, fewer once --program-time
// has passed, never fewer than two.
func moreRepeats(k int, t0 time.Time) bool {
	return k < *programRepeats && (k < 2 || time.Since(t0) < *programTime)
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func (r *programResult) summarize() {
	r.AddMedianMs, r.AddMin, r.AddMax = medianSpread(r.AddMs)
	if len(r.RemoveMs) > 0 {
		r.RemoveMedianMs, _, _ = medianSpread(r.RemoveMs)
	}
}
