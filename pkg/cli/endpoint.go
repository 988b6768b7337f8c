package cli

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/cli/output"
	"github.com/seta-net/seta/pkg/client"
	"github.com/seta-net/seta/pkg/endpoint"
)

func endpointCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "endpoint",
		Aliases: []string{"ep"},
		Short:   "Inspect endpoints: the pod network interfaces the agent manages",
		Long: `An endpoint is one network interface of a pod: a veth pair whose pod side
holds the pod's addresses and whose host side (the INTERFACE column, lxc...)
carries the eBPF programs that forward its traffic. The agent numbers
endpoints from 1 to 65535; the datapath's maps use that ID.`,
		Example: `  seta endpoint list
  seta endpoint get 3
  seta endpoint get 3 -o json`,
	})
	cmd.AddCommand(endpointListCmd(g, "list"), endpointGetCmd(g), endpointConfigCmd(g))
	return cmd
}

// endpointsCmd is `seta endpoints`, a shortcut for `seta endpoint list`.
func endpointsCmd(g *globals) *cobra.Command {
	cmd := endpointListCmd(g, "endpoints")
	cmd.Short = "List endpoints (same as 'seta endpoint list')"
	cmd.Example = "  seta endpoints\n  seta endpoints -o yaml"
	cmd.Aliases = nil
	// Tolerate the habit of `seta endpoints list`.
	cmd.ValidArgs = []string{"list", "ls"}
	cmd.Args = cobra.MatchAll(cobra.MaximumNArgs(1), cobra.OnlyValidArgs)
	return cmd
}

func endpointListCmd(g *globals, use string) *cobra.Command {
	cmd := &cobra.Command{
		Use:     use,
		Aliases: []string{"ls"},
		Short:   "List the endpoints on this node",
		Long: `Lists the agent's endpoints, one per pod interface: the pod, its container
ID, addresses, host-side device, state, security identity, whether policy
is enforced for its INGRESS and EGRESS (enabled, disabled, or audit: drops
are reported but not made), the POLICY REV(ision) its datapath runs, and its
labels. -o json and -o yaml print the agent's full endpoint records.`,
		Example: `  seta endpoint list
  seta endpoint ls -o json
  seta endpoint list -o yaml`,
		Args: cobra.NoArgs,
	}
	o := output.AddFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if _, err := output.Parse(*o); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		eps, err := c.ListEndpoints(cmd.Context())
		if err != nil {
			return err
		}
		if eps == nil {
			eps = []endpoint.Endpoint{}
		}
		slices.SortFunc(eps, func(a, b endpoint.Endpoint) int { return int(a.ID) - int(b.ID) })
		return output.Print(cmd.OutOrStdout(), *o, eps, func(t *output.Tab) {
			t.Row("ID", "POD", "CONTAINER", "IPV4", "IPV6", "INTERFACE", "STATE", "IDENTITY", "INGRESS", "EGRESS", "POLICY REV", "LABELS")
			for _, ep := range eps {
				ingress, egress, rev := policyColumns(ep.Policy)
				t.Row(ep.ID, podName(ep), shortID(ep.ContainerID), addr(ep.IPv4), addr(ep.IPv6),
					ep.HostIfName, ep.State, identityColumn(ep.Identity), ingress, egress, rev, strings.Join(ep.Labels, ","))
			}
		})
	}
	return cmd
}

func endpointGetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one endpoint in full, with its traffic counters",
		Long: `Shows everything the agent knows about one endpoint, and its counters from
the datapath: RX is traffic delivered to the pod, TX traffic the pod sent.
ID is the number in the ID column of 'seta endpoint list'.`,
		Example: `  seta endpoint get 3
  seta endpoint get 3 -o json`,
		Args: cobra.ExactArgs(1),
	}
	o := output.AddFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if _, err := output.Parse(*o); err != nil {
			return err
		}
		id, err := parseEndpointID(args[0])
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		d, err := c.GetEndpoint(cmd.Context(), id)
		if client.IsCode(err, v1.CodeNotFound) {
			return fmt.Errorf("%w (see 'seta endpoint list' for the endpoints that exist)", err)
		}
		if err != nil {
			return err
		}
		return output.Print(cmd.OutOrStdout(), *o, d, func(t *output.Tab) { endpointTable(t, d) })
	}
	return cmd
}

// parseEndpointID validates an endpoint ID argument.
func parseEndpointID(s string) (uint16, error) { return parseID16("endpoint", s) }

// parseID16 validates the ID argument of a kind listed by 'seta KIND list'
// (endpoints and services number from 1 to 65535).
func parseID16(kind, s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("invalid %s ID %q: it is a number from 1 to 65535 (the ID column of 'seta %s list')", kind, s, kind)
	}
	return uint16(n), nil
}

func endpointTable(t *output.Tab, d v1.EndpointDetail) {
	ep := d.Endpoint
	t.Row("ID:", ep.ID)
	t.Row("Pod:", podName(ep))
	t.Row("Labels:", strings.Join(ep.Labels, ","))
	t.Row("State:", ep.State)
	t.Row("Network:", ep.Network)
	t.Row("Container ID:", ep.ContainerID)
	t.Row("Pod interface:", ep.IfName)
	t.Row("Pod netns:", ep.NetNS)
	t.Row("Pod MAC:", ep.PodMAC)
	t.Row("IPv4:", withGateway(ep.IPv4, ep.GatewayV4))
	t.Row("IPv6:", withGateway(ep.IPv6, ep.GatewayV6))
	t.Row("Host interface:", fmt.Sprintf("%s (ifindex %d)", ep.HostIfName, ep.HostIfIndex))
	t.Row("Host MAC:", ep.HostMAC)
	t.Row("MTU:", ep.MTU)
	created := ""
	if !ep.CreatedAt.IsZero() {
		created = fmt.Sprintf("%s (%s ago)", ep.CreatedAt.Format(time.RFC3339), age(time.Since(ep.CreatedAt)))
	}
	t.Row("Created:", created)
	t.Row("Identity:", identityColumn(ep.Identity))
	t.Row("Security labels:", strings.Join(ep.SecurityLabels, ","))
	if ep.Policy == nil {
		t.Row("Policy:", "not available (the agent reports no policy for this endpoint)")
	} else {
		t.Row("Ingress policy:", ep.Policy.Ingress)
		t.Row("Egress policy:", ep.Policy.Egress)
		t.Row("Policy revision:", ep.Policy.Revision)
		t.Row("Selected by:", strings.Join(ep.Policy.Policies, ","))
	}
	if ep.PolicyAudit {
		t.Row("Policy audit:", "yes (policy drops are reported, not made)")
	}
	if d.Stats == nil {
		t.Row("Counters:", "not available (the agent could not read the datapath's counters)")
		return
	}
	t.Row("RX (to pod):", fmt.Sprintf("%d packets, %d bytes", d.Stats.RxPackets, d.Stats.RxBytes))
	t.Row("TX (from pod):", fmt.Sprintf("%d packets, %d bytes", d.Stats.TxPackets, d.Stats.TxBytes))
}

// policyColumns renders an endpoint's ingress and egress enforcement and
// policy revision; all "" (shown as "-") when the agent reports none.
func policyColumns(p *endpoint.PolicyStatus) (ingress, egress, revision string) {
	if p == nil {
		return "", "", ""
	}
	return p.Ingress, p.Egress, strconv.FormatUint(p.Revision, 10)
}

// identityColumn renders a security identity, "" (shown as "-") for none.
func identityColumn(id uint32) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(id), 10)
}

func podName(ep endpoint.Endpoint) string {
	switch {
	case ep.PodName == "":
		return ""
	case ep.Namespace == "":
		return ep.PodName
	}
	return ep.Namespace + "/" + ep.PodName
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// addr renders an address, or "" (shown as "-") for none.
func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func withGateway(a, gw netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	if gw.IsValid() {
		return a.String() + " (gateway " + gw.String() + ")"
	}
	return a.String()
}

// age renders a duration the way people read an age: "45s", "12m", "5h3m", "3d4h".
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

func endpointConfigCmd(g *globals) *cobra.Command {
	var audit string
	cmd := &cobra.Command{
		Use:   "config ID --policy-audit=true|false",
		Short: "Change an endpoint's configuration (policy audit mode)",
		Long: `In policy audit mode the endpoint's policy verdicts are computed and
reported, but nothing is dropped: a way to try a policy on live traffic.`,
		Example: "  seta endpoint config 3 --policy-audit=true",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseEndpointID(args[0])
			if err != nil {
				return err
			}
			var cfg endpoint.EndpointConfig
			switch audit {
			case "true", "false":
				v := audit == "true"
				cfg.PolicyAudit = &v
			case "":
				return fmt.Errorf("nothing to change: give --policy-audit=true or --policy-audit=false")
			default:
				return fmt.Errorf("--policy-audit must be true or false, got %q", audit)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ep, err := c.ConfigureEndpoint(cmd.Context(), id, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "endpoint %d: policy audit %v\n", ep.ID, ep.PolicyAudit)
			return nil
		},
	}
	cmd.Flags().StringVar(&audit, "policy-audit", "", "true: report policy drops without dropping; false: enforce")
	return cmd
}
