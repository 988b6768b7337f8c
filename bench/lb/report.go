package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// report prints the run as markdown: the command, the machine, and one
// table per measurement; ratios are against the smallest N of the same
// run.
func report(w io.Writer, r *results) {
	fmt.Fprintf(w, "Command (as root, from the repository root):\n\n```sh\ngo build -o bin/ ./cmd/... ./bench/lb\n%s\n```\n\n", strings.Join(os.Args, " "))
	m := r.Machine
	fmt.Fprintf(w, "Measured %s at commit %s; %d CPUs, Linux %s, %s; load average at the start %s.\n",
		m.Date, m.Commit, m.CPUs, m.Kernel, m.IptablesVersion, m.LoadAvg)
	reportCRR(w, r)
	reportLoad(w, r)
	reportProgram(w, r)
	reportInProc(w, r)
	reportRR(w, r)
}

func crrSummary(cs []crrResult) (rate, lo, hi, c50, c99 float64) {
	var rates, p50s, p99s []float64
	for _, c := range cs {
		rates, p50s, p99s = append(rates, c.Rate), append(p50s, c.ConnectP50), append(p99s, c.ConnectP99)
	}
	rate, lo, hi = medianSpread(rates)
	c50, _, _ = medianSpread(p50s)
	c99, _, _ = medianSpread(p99s)
	return
}

func reportCRR(w io.Writer, r *results) {
	fmt.Fprintf(w, "\n### Connection rate and first-packet latency to the last of N services\n\n")
	fmt.Fprintf(w, "One client (pinned to CPU %s) makes connections one after the other to the last service's ClusterIP (connect, one request line and its echo, half-close, wait for the server's close; up to %s connections or %s per measurement), %s rounds per setup and N in alternating order, after an unrecorded warm-up. Rate: median of the rounds (min–max). Connect: how long the blocking connect() took (SYN → SYN-ACK), median over the rounds of each round's p50 / p99. Ratios are to the smallest N of this run. Seta agent CPU: the agent's CPU time over the measurement per second (100%% = one core). Seta BPF: the mean time of one run of the socket LB's connect() hook (%s, once per connection) and of the tc program on the pods' host-side veths (%s, once per packet a pod sends, servers' included), from the kernel's BPF run statistics over all rounds (total run time / runs; statistics on for the run through BPF_ENABLE_STATS).\n\n",
		r.Flags["client-cpu"], r.Flags["crr-count"], r.Flags["crr-duration"], r.Flags["rounds"], progConnect4, progFromContainer)
	fmt.Fprintln(w, "| N | Seta conn/s | Seta ratio | Seta connect p50 / p99 | Seta agent CPU | Seta BPF ns/run: connect4 / from_container | iptables conn/s | iptables ratio | iptables connect p50 / p99 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	var seta0, ipt0 float64
	for _, st := range r.Steps {
		row := fmt.Sprintf("| %d |", st.N)
		if len(st.CRR["seta"]) > 0 {
			rate, lo, hi, c50, c99 := crrSummary(st.CRR["seta"])
			if seta0 == 0 {
				seta0 = rate
			}
			row += fmt.Sprintf(" %.0f (%.0f–%.0f) | %.3f | %.0f / %.0f µs | %.1f%% | %s / %s |", rate, lo, hi, rate/seta0, c50, c99, 100*agentCPU(st.CRR["seta"]),
				bpfNsPerRun(st.CRR["seta"], progConnect4), bpfNsPerRun(st.CRR["seta"], progFromContainer))
		} else if st.N > r.SetaMaxServices {
			row += fmt.Sprintf(" n/a (at most %d services) | | | | |", r.SetaMaxServices)
		} else {
			row += " — | | | | |"
		}
		if len(st.CRR["iptables"]) > 0 {
			rate, lo, hi, c50, c99 := crrSummary(st.CRR["iptables"])
			if ipt0 == 0 {
				ipt0 = rate
			}
			row += fmt.Sprintf(" %.0f (%.0f–%.0f) | %.3f | %.0f / %.0f µs |", rate, lo, hi, rate/ipt0, c50, c99)
		} else {
			row += " — | | |"
		}
		fmt.Fprintln(w, row)
	}
	var failed int
	for _, st := range r.Steps {
		for _, c := range append(append([]crrResult{}, st.CRR["seta"]...), st.CRR["iptables"]...) {
			failed += c.Failed
		}
	}
	fmt.Fprintf(w, "\nFailed connections over all measurements: %d.\n", failed)
}

// agentCPU is the median of the agent's CPU share over the measurements.
func agentCPU(cs []crrResult) float64 {
	var v []float64
	for _, c := range cs {
		v = append(v, c.AgentCPU)
	}
	m, _, _ := medianSpread(v)
	return m
}

// bpfNsPerRun is a program's mean run time over the measurements: their
// total run time over their total runs, "—" without statistics.
func bpfNsPerRun(cs []crrResult, prog string) string {
	var sum progRuns
	for _, c := range cs {
		sum.Runs += c.BPF[prog].Runs
		sum.RunNs += c.BPF[prog].RunNs
	}
	if sum.Runs == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", sum.NsPerRun())
}

func reportLoad(w io.Writer, r *results) {
	fmt.Fprintf(w, "\n### Holding N services\n\n")
	fmt.Fprintln(w, "Seta: the agent restarted with N services in its state (from its start until the API answers for the last one: restore, IDs, every map write), its RSS 2 s later, its Go heap (live objects / held from the OS, from its go_memstats metrics), and its service map's fill. iptables: one `iptables-restore` of the whole nat table with N services (not --noflush: with nf_tables that takes hours at this size), and its rule count.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| N | Seta agent restart | agent RSS | agent heap live / held | seta_lb_services entries | seta_lb_revnat entries | iptables-restore (whole table) | nat rules |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, st := range r.Steps {
		row := fmt.Sprintf("| %d |", st.N)
		if st.Seta != nil {
			row += fmt.Sprintf(" %.2f s | %.1f MB | %.1f / %.1f MB | %d | %d |", st.Seta.RestartSeconds, st.Seta.AgentRSSMB,
				st.Seta.AgentHeapAllocMB, st.Seta.AgentHeapSysMB,
				mapEntries(st.Seta, "seta_lb_services"), mapEntries(st.Seta, "seta_lb_revnat"))
		} else {
			row += " n/a | | | | |"
		}
		if st.IptablesRules > 0 {
			row += fmt.Sprintf(" %.2f s | %d |", st.IptablesLoadSeconds, st.IptablesRules)
		} else {
			row += " — | |"
		}
		fmt.Fprintln(w, row)
	}
	// Entries per service: the difference between the smallest and the
	// largest N Seta held, so the lab's own services cancel out.
	var first, last *loadResult
	for _, st := range r.Steps {
		if st.Seta != nil {
			if first == nil {
				first = st.Seta
			}
			last = st.Seta
		}
	}
	if first != nil && last != nil && last.N > first.N {
		fmt.Fprintf(w, "\nSeta's map cost per service (each with 2 backends), from N=%d to N=%d:", first.N, last.N)
		var parts, conn []string
		for _, m := range last.Maps {
			if m.Name == "seta_lb_affinity" || m.Name == "seta_lb_sock_revnat" {
				// Filled per client or connection, not per service.
				conn = append(conn, fmt.Sprintf("%s (capacity %d, %.1f MB)", m.Name, m.Max, m.MemlockMB))
				continue
			}
			d := float64(m.Entries-mapEntries(first, m.Name)) / float64(last.N-first.N)
			parts = append(parts, fmt.Sprintf(" %s %.2f entries (capacity %d, %.1f MB locked)", m.Name, d, m.Max, m.MemlockMB))
		}
		fmt.Fprintf(w, "%s. Preallocated hash maps lock their capacity whatever they hold; the per-connection maps %s do not grow with services.\n",
			strings.Join(parts, ";"), strings.Join(conn, " and "))
	}
}

func mapEntries(l *loadResult, name string) int {
	for _, m := range l.Maps {
		if m.Name == name {
			return m.Entries
		}
	}
	return 0
}

func reportProgram(w io.Writer, r *results) {
	fmt.Fprintf(w, "\n### Time to program one more service with N present\n\n")
	fmt.Fprintf(w, "Median of %s adds (min–max), each removed again the same way before the next; the first one is checked to carry traffic. Goal: < 1 ms for Seta at N=%d.\n\n", r.Flags["program-repeats"], *programGoalAt)
	fmt.Fprintln(w, "| N | method | add | remove |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, st := range r.Steps {
		for _, p := range st.Program {
			rem := "—"
			if len(p.RemoveMs) > 0 {
				rem = fmtMs(p.RemoveMedianMs)
			}
			n := fmt.Sprint(st.N)
			if st.N == *programGoalAt {
				n = fmt.Sprintf("**%d**", st.N)
			}
			fmt.Fprintf(w, "| %s | %s | %s (%s–%s) | %s |\n", n, p.Method, fmtMs(p.AddMedianMs), fmtMs(p.AddMin), fmtMs(p.AddMax), rem)
		}
	}
}

func fmtMs(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%.0f µs", v*1000)
	case v < 100:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func reportInProc(w io.Writer, r *results) {
	if len(r.InProc) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Where Seta's programming time goes (service table in-process)\n\n")
	fmt.Fprintln(w, "pkg/service's Table in this process, restored from a state file with N services, over fresh lb maps of the agent's layout (state file on this machine's disk, as the agent keeps it), then over maps that do nothing; and encoding and writing+fsyncing a state file of the same size alone. Medians of the adds.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| N | add (table + maps + state file) | add with no-op maps | of which: encode state | write + fsync state | state file | restore N (New) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, x := range r.InProc {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %.1f MB | %s |\n", x.N, fmtMs(x.UpsertMs), fmtMs(x.UpsertNoMapsMs),
			fmtMs(x.MarshalMs), fmtMs(x.WriteSyncMs), x.StateFileMB, fmtMs(x.RestoreMs))
	}
}

func reportRR(w io.Writer, r *results) {
	if len(r.RR) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### TCP_RR through a ClusterIP vs straight to the backend\n\n")
	fmt.Fprintf(w, "`seta-nettool rr` (one connection, %s per measurement, client pinned to CPU %s) through the ClusterIP of a service whose one backend is web-0, and straight to web-0; %s rounds alternating which path goes first; ratio per round, median (min–max). Goal for Seta ≥ 0.97.\n\n",
		r.Flags["rr-duration"], r.Flags["client-cpu"], r.Flags["rr-rounds"])
	fmt.Fprintln(w, "| N | setup | ClusterIP RR/s | direct RR/s | ratio |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, x := range r.RR {
		c, _, _ := medianSpread(x.ClusterIP)
		d, _, _ := medianSpread(x.Direct)
		q, lo, hi := medianSpread(x.Ratios)
		fmt.Fprintf(w, "| %d | %s | %.0f | %.0f | %.3f (%.3f–%.3f) |\n", x.N, x.Setup, c, d, q, lo, hi)
	}
}
