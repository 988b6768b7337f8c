package main

import (
	"fmt"

	"github.com/seta-net/seta/pkg/datapath/progstats"
)

// Seta's datapath cost per connection comes from the kernel's BPF run
// statistics (pkg/datapath/progstats), on for the whole run: only the time
// spent inside the programs, without the noise of the connection rate.

// The programs the connection-rate table reports: the socket LB's
// connect() hook, and the tc program on every pod's host-side veth
// (every packet a pod sends).
const (
	progConnect4      = "cil_sock4_connect"
	progFromContainer = "cil_from_container"
)

// progRuns is how often programs of one name ran, and for how long.
type progRuns = progstats.Runs

// readProgStats reads the statistics of a lab node's programs: the socket
// programs' cgroup links and the tc links of the pods' veths.
func readProgStats(bpfRoot string) (progstats.Snapshot, error) {
	return progstats.Read(bpfRoot, "sock-links", "links")
}

// checkRuns catches statistics that stopped counting: every connection
// runs the connect hook.
func checkRuns(runs map[string]progRuns, conns int) error {
	if got := runs[progConnect4].Runs; got < uint64(conns) {
		return fmt.Errorf("bpf stats: %s ran %d times for %d connections; were the statistics turned off?", progConnect4, got, conns)
	}
	return nil
}
