package cli

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/cli/output"
)

// statusView is the output of `seta status`: the agent's status plus where
// and how healthy it is.
type statusView struct {
	Socket string `json:"socket"`
	Health string `json:"health"`
	v1.Status
}

func statusCmd(g *globals) *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the agent's health, datapath, kernel features, endpoints and IPAM pools",
		Long: `Asks the agent whether it is healthy and prints what it runs: its node and
version, how the datapath attaches its eBPF programs (tcx on Linux 6.6 and
later, clsact before), the kernel's eBPF features as the agent probed them at
start, how many endpoints (pod interfaces) it manages, and how full each IPAM
pool (the node's pod address range) is.

--verbose lists every kernel feature with the first Linux version that has it.
Exits non-zero if the agent cannot be reached or is not healthy.`,
		Example: `  seta status
  seta status --verbose
  seta status -o json`,
		Args: cobra.NoArgs,
	}
	o := output.AddFlag(cmd)
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every kernel feature the agent probed")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		format, err := output.Parse(*o)
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		h, err := c.Health(cmd.Context())
		if err != nil {
			return err
		}
		st, err := c.Status(cmd.Context())
		if err != nil {
			return err
		}
		v := statusView{Socket: c.Socket(), Health: h.Status, Status: st}
		out := cmd.OutOrStdout()
		if err := output.Print(out, *o, v, func(t *output.Tab) { statusTable(t, v, verbose) }); err != nil {
			return err
		}
		if format == output.Table && verbose && len(st.Datapath.Features) > 0 {
			fmt.Fprintln(out)
			if err := output.Print(out, *o, nil, func(t *output.Tab) { featureTable(t, st.Datapath.Features) }); err != nil {
				return err
			}
		}
		if h.Status != "ok" {
			return fmt.Errorf("agent at %s reports health %q", c.Socket(), h.Status)
		}
		return nil
	}
	return cmd
}

func statusTable(t *output.Tab, v statusView, verbose bool) {
	t.Row("Agent:", fmt.Sprintf("%s (socket %s)", v.Health, v.Socket))
	t.Row("Node:", v.NodeName)
	t.Row("Version:", v.Version)
	t.Row("Uptime:", uptime(v.Status))
	dp := v.Datapath
	mode := dp.Mode
	switch mode {
	case "tcx":
		mode += " (eBPF programs attached with tcx links)"
	case "clsact":
		mode += " (eBPF programs attached as tc filters on a clsact qdisc)"
	}
	t.Row("Datapath:", mode)
	t.Row("Kernel:", dp.Kernel)
	t.Row("BPF root:", dp.BPFRoot)
	if dp.NodePort {
		t.Row("NodePort:", "Enabled on "+strings.Join(dp.Devices, ", "))
	} else {
		t.Row("NodePort:", "Disabled")
	}
	t.Row("Features:", featureSummary(dp.Features, !verbose))
	t.Row("Endpoints:", v.Endpoints)
	if p := v.Policy; p != nil {
		mode := p.Enforcement
		if p.AuditMode {
			mode += ", audit mode"
		}
		if p.HostFirewall {
			mode += ", host firewall"
		}
		t.Row("Policy:", fmt.Sprintf("%s; revision %d, %d policies, %d identities; %d changes applied, %d refused (%d too large for the map)",
			mode, p.Revision, p.Policies, p.Identities, p.Imports, p.ImportErrors, p.RefusedTooLarge))
	}
	if h := v.Hubble; h != nil {
		t.Row("Hubble:", fmt.Sprintf("Ok; flows %d/%d, %d seen, %d events lost, %d undecodable; monitor aggregation %s; socket %s",
			h.Flows, h.MaxFlows, h.SeenFlows, h.EventsLost, h.DecodeErrors, h.MonitorAggregation, h.Socket))
	} else {
		t.Row("Hubble:", "Disabled")
	}
	if len(v.IPAM) == 0 {
		t.Row("IPAM:", "no pools")
	}
	for _, p := range v.IPAM {
		label := "IPAM pool:"
		if pfx, err := netip.ParsePrefix(p.CIDR); err == nil {
			if pfx.Addr().Is4() {
				label = "IPv4 pool:"
			} else {
				label = "IPv6 pool:"
			}
		}
		use := fmt.Sprintf("%s  %d/%d used", p.CIDR, p.Used, p.Capacity)
		if p.Capacity > 0 {
			use += fmt.Sprintf(" (%.0f%%)", 100*float64(p.Used)/float64(p.Capacity))
		}
		if p.Gateway != "" {
			use += ", gateway " + p.Gateway
		}
		t.Row(label, use)
	}
}

func uptime(s v1.Status) string {
	up := s.Uptime
	if up == "" && !s.StartedAt.IsZero() {
		up = time.Since(s.StartedAt).Round(time.Second).String()
	}
	if !s.StartedAt.IsZero() {
		up += " (since " + s.StartedAt.Format(time.RFC3339) + ")"
	}
	return up
}

// featureSummary is the compact form, e.g. "8 supported, 0 missing" or
// "7 supported, 1 missing (optional: tcx attachment) (--verbose for details)".
func featureSummary(fs []v1.Feature, hint bool) string {
	if len(fs) == 0 {
		return "not reported"
	}
	var ok, missing, unknown int
	var notes []string
	for _, f := range fs {
		switch f.Status {
		case v1.FeatureSupported:
			ok++
			continue
		case v1.FeatureMissing:
			missing++
		default:
			unknown++
		}
		kind := "optional"
		if f.Required {
			kind = "REQUIRED"
		}
		notes = append(notes, fmt.Sprintf("%s %s: %s", kind, f.Status, f.Name))
	}
	s := fmt.Sprintf("%d supported, %d missing", ok, missing)
	if unknown > 0 {
		s += fmt.Sprintf(", %d inconclusive", unknown)
	}
	if hint && len(notes) > 0 {
		notes = append(notes, "--verbose for details")
	}
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, "; ") + ")"
	}
	return s
}

func featureTable(t *output.Tab, fs []v1.Feature) {
	t.Row("FEATURE", "STATUS", "REQUIRED", "MIN KERNEL", "DETAIL")
	for _, f := range fs {
		req := "no"
		if f.Required {
			req = "yes"
		}
		t.Row(f.Name, f.Status, req, f.MinKernel, f.Detail)
	}
}
