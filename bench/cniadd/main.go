// Command cniadd measures CNI ADD and DEL latency through the real seta-cni
// binary, the way a container runtime calls it (libcni), against a lab node's
// agent, and the agent's memory with the endpoints in place.
//
//	go build -o bin/ ./cmd/... ./bench/cniadd && sudo bin/cniadd --pods 100 --parallel 10
//
// It builds its own lab ("bench"), refuses to run when one is left over, and
// removes it at the end, also when interrupted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/seta-net/seta/pkg/client"
	"github.com/seta-net/seta/pkg/lab"
	"github.com/seta-net/seta/pkg/nsutil"
)

const labName = "bench"

type result struct {
	AttachMode  string    `json:"attachMode"`
	Pods        int       `json:"pods"`
	Parallel    int       `json:"parallel"`
	AddP50Ms    float64   `json:"addP50Ms"`
	AddP99Ms    float64   `json:"addP99Ms"`
	AddMaxMs    float64   `json:"addMaxMs"`
	DelP50Ms    float64   `json:"delP50Ms"`
	DelP99Ms    float64   `json:"delP99Ms"`
	WallAddS    float64   `json:"wallAddSeconds"`
	RSSIdleMB   float64   `json:"agentRssIdleMB"`
	RSSLoadedMB float64   `json:"agentRssWithPodsMB"`
	Kernel      string    `json:"kernel"`
	CPUs        int       `json:"cpus"`
	When        time.Time `json:"when"`
}

func main() { os.Exit(run()) }

func run() int {
	pods := flag.Int("pods", 100, "pods to create (1 to 1000)")
	parallel := flag.Int("parallel", 10, "ADDs in flight at once (1 to 100)")
	binDir := flag.String("bin", "bin", "directory holding seta-agent and seta-cni")
	jsonOut := flag.String("json", "", "also write the result as JSON to this file")
	attachMode := flag.String("attach-mode", "auto", "the agent's --attach-mode: auto, tcx or clsact")
	flag.Parse()
	if *pods < 1 || *pods > 1000 || *parallel < 1 || *parallel > 100 {
		fmt.Fprintln(os.Stderr, "cniadd: --pods must be 1..1000 and --parallel 1..100")
		return 2
	}
	if _, err := os.Stat(lab.Dir(labName)); err == nil {
		fmt.Fprintf(os.Stderr, "cniadd: a lab %q is left over from an earlier run (%s); remove it with: seta lab down --name %s\n", labName, lab.Dir(labName), labName)
		return 1
	}
	// SIGPIPE too: a closed stdout (| head) must not skip the cleanup.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer stop()
	agentBin, _ := filepath.Abs(filepath.Join(*binDir, "seta-agent"))
	cniDir, _ := filepath.Abs(*binDir)
	defer func() {
		if err := lab.Down(context.Background(), lab.DownOptions{Name: labName, Out: io.Discard}); err != nil {
			fmt.Fprintln(os.Stderr, "cniadd: cleanup:", err)
		}
	}()
	st, err := lab.Up(ctx, lab.UpOptions{Name: labName, Nodes: 1, AgentBin: agentBin, CNIBinDir: cniDir,
		AgentArgs: []string{"--attach-mode=" + *attachMode}, Out: io.Discard})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cniadd:", err)
		return 1
	}
	res, err := measure(ctx, st, *pods, *parallel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cniadd:", err)
		return 1
	}
	fmt.Printf("| attach | pods | parallel | ADD p50 | ADD p99 | ADD max | ADDs/s | DEL p50 | DEL p99 | agent RSS idle | agent RSS with %d pods |\n", res.Pods)
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %s | %d | %d | %.1f ms | %.1f ms | %.1f ms | %.0f | %.1f ms | %.1f ms | %.1f MB | %.1f MB |\n",
		res.AttachMode, res.Pods, res.Parallel, res.AddP50Ms, res.AddP99Ms, res.AddMaxMs, float64(res.Pods)/res.WallAddS,
		res.DelP50Ms, res.DelP99Ms, res.RSSIdleMB, res.RSSLoadedMB)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "cniadd:", err)
			return 1
		}
	}
	return 0
}

type podRef struct {
	netns string
	rt    *libcni.RuntimeConf
}

func measure(ctx context.Context, st *lab.State, n, parallel int) (*result, error) {
	node := st.Nodes[0]
	conf, err := lab.CNIConfList(node, []string{"app=bench"})
	if err != nil {
		return nil, err
	}
	cni := lab.CNI(st)
	refs := make([]podRef, n)
	for i := range refs {
		name := fmt.Sprintf("seta-%s-pod-%010x", labName, i)
		if err := nsutil.Create(name); err != nil {
			return nil, err
		}
		refs[i] = podRef{netns: name, rt: &libcni.RuntimeConf{
			ContainerID: fmt.Sprintf("bench-%04d", i), NetNS: nsutil.Path(name), IfName: "eth0",
			Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "bench"}, {"K8S_POD_NAME", fmt.Sprintf("pod-%d", i)}},
		}}
	}
	defer func() {
		for _, r := range refs {
			nsutil.Delete(r.netns)
		}
	}()
	res := &result{Pods: n, Parallel: parallel, CPUs: runtime.NumCPU(), When: time.Now().UTC()}
	res.Kernel = kernel()
	res.RSSIdleMB = rssMB(node.Agent.PID)
	if s, err := client.New(node.Socket, 5*time.Second).Status(ctx); err == nil {
		res.AttachMode = s.Datapath.Mode
	}

	run := func(op func(context.Context, podRef) error) ([]time.Duration, time.Duration, error) {
		lat := make([]time.Duration, n)
		sem := make(chan struct{}, parallel)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		start := time.Now()
		for i := range refs {
			sem <- struct{}{}
			wg.Add(1)
			go func(i int) {
				defer func() { <-sem; wg.Done() }()
				t0 := time.Now()
				if err := op(ctx, refs[i]); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				lat[i] = time.Since(t0)
			}(i)
		}
		wg.Wait()
		return lat, time.Since(start), errors.Join(errs...)
	}
	addLat, wall, err := run(func(ctx context.Context, r podRef) error {
		_, err := cni.AddNetworkList(ctx, conf, r.rt)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ADD: %w", err)
	}
	res.WallAddS = wall.Seconds()
	eps, err := client.New(node.Socket, 5*time.Second).ListEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	if len(eps) != n {
		return nil, fmt.Errorf("agent has %d endpoints after %d ADDs", len(eps), n)
	}
	runtime.GC()
	time.Sleep(time.Second)
	res.RSSLoadedMB = rssMB(node.Agent.PID)
	delLat, _, err := run(func(ctx context.Context, r podRef) error { return cni.DelNetworkList(ctx, conf, r.rt) })
	if err != nil {
		return nil, fmt.Errorf("DEL: %w", err)
	}
	res.AddP50Ms, res.AddP99Ms, res.AddMaxMs = pct(addLat, 50), pct(addLat, 99), pct(addLat, 100)
	res.DelP50Ms, res.DelP99Ms = pct(delLat, 50), pct(delLat, 99)
	return res, nil
}

// pct is the nearest-rank percentile in milliseconds.
func pct(d []time.Duration, p int) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i].Microseconds()) / 1000
}

func rssMB(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
