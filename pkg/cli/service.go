package cli

import (
	"cmp"
	"errors"
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
	"github.com/seta-net/seta/pkg/service"
)

func serviceCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "service",
		Aliases: []string{"svc"},
		Short:   "Manage load-balanced services: list, get, update and delete",
		Long: `A service is a frontend (an address, port and protocol clients connect to)
and the backends (pod addresses and ports) that serve it; the datapath
translates each new connection to the frontend into one to a backend, in
eBPF, without kube-proxy.

Types: ClusterIP (a virtual address for the node and its pods), NodePort (a
port on the node's addresses; 0.0.0.0 or :: means all of them), LoadBalancer
and ExternalIPs (addresses routed to the node from outside). Only active
backends take new connections; terminating and quarantined ones keep the
connections they have.

The ID is the service's number in the datapath; every backend address has
an ID too (the N in "N => address" of 'seta service list'). Both survive
agent restarts, so established connections do.`,
		Example: `  seta service list
  seta service update --frontend 10.96.0.10:80/TCP --backends 10.244.1.2:8080,10.244.2.2:8080
  seta service get 1
  seta service delete 1`,
	})
	cmd.AddCommand(serviceListCmd(g), serviceGetCmd(g), serviceUpdateCmd(g), serviceDeleteCmd(g))
	return cmd
}

func serviceListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the services on this node with their backends",
		Long: `Lists every service: its ID, name, frontend, type, and its backends as
"ID => ADDRESS/PROTO (state)", with "local" for backends on this node.
-o json and -o yaml print the full records, with the datapath entries.`,
		Example: `  seta service list
  seta service ls -o json`,
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
		ss, err := c.ListServices(cmd.Context())
		if err != nil {
			return err
		}
		if ss == nil {
			ss = []v1.ServiceDetail{}
		}
		slices.SortFunc(ss, func(a, b v1.ServiceDetail) int { return cmp.Compare(a.ID, b.ID) })
		return output.Print(cmd.OutOrStdout(), *o, ss, func(t *output.Tab) {
			t.Row("ID", "NAME", "FRONTEND", "TYPE", "BACKENDS")
			for _, s := range ss {
				lines := backendLines(s)
				first := ""
				if len(lines) > 0 {
					first = lines[0]
				}
				t.Row(s.ID, s.Service.DisplayName(), s.Service.Frontend, s.Service.Type, first)
				for _, l := range lines[min(1, len(lines)):] {
					t.Row(" ", " ", " ", " ", l)
				}
			}
		})
	}
	return cmd
}

// backendLines renders a service's backends as `cilium service list` does:
// "1 => 10.244.1.2:8080/TCP (active, local)".
func backendLines(d v1.ServiceDetail) []string {
	var out []string
	for _, b := range d.Backends {
		st := b.State.String()
		if b.Local {
			st += ", local"
		}
		out = append(out, fmt.Sprintf("%d => %s/%s (%s)", b.ID, b.Addr, d.Service.Frontend.Proto, st))
	}
	return out
}

func serviceGetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one service in full, with its datapath entries",
		Long: `Shows a service: its frontend and type, session affinity, traffic policies,
algorithm, backends, and the datapath entries it became. A service whose
external and internal traffic policies differ has two entries: "external"
for traffic from outside the node and "internal" for traffic from the node
and its pods; each lists the backends (by ID) that take new connections.
ID is the number in the ID column of 'seta service list'.`,
		Example: `  seta service get 1
  seta service get 1 -o yaml`,
		Args: cobra.ExactArgs(1),
	}
	o := output.AddFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if _, err := output.Parse(*o); err != nil {
			return err
		}
		id, err := parseServiceID(args[0])
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		d, err := c.GetService(cmd.Context(), id)
		if client.IsCode(err, v1.CodeNotFound) {
			return fmt.Errorf("%w (see 'seta service list' for the services that exist)", err)
		}
		if err != nil {
			return err
		}
		return output.Print(cmd.OutOrStdout(), *o, d, func(t *output.Tab) { serviceTable(t, d) })
	}
	return cmd
}

// parseServiceID validates a service ID argument.
func parseServiceID(s string) (uint16, error) { return parseID16("service", s) }

func serviceTable(t *output.Tab, d v1.ServiceDetail) {
	s := d.Service
	t.Row("ID:", d.ID)
	t.Row("Name:", s.DisplayName())
	t.Row("Frontend:", s.Frontend)
	t.Row("Type:", s.Type)
	aff := string(s.SessionAffinity)
	if s.SessionAffinity == service.AffinityClientIP {
		aff += fmt.Sprintf(" (timeout %s)", time.Duration(s.SessionAffinityTimeout)*time.Second)
	}
	t.Row("Session affinity:", aff)
	t.Row("External traffic policy:", s.ExternalTrafficPolicy)
	t.Row("Internal traffic policy:", s.InternalTrafficPolicy)
	t.Row("Algorithm:", s.Algorithm)
	multi := func(label string, lines []string) {
		if len(lines) == 0 {
			t.Row(label, "")
		}
		for i, l := range lines {
			if i > 0 {
				label = " "
			}
			t.Row(label, l)
		}
	}
	multi("Backends:", backendLines(d))
	var entries []string
	for _, e := range d.Entries {
		slots := make([]string, len(e.Slots))
		for i, id := range e.Slots {
			slots[i] = strconv.FormatUint(uint64(id), 10)
		}
		line := fmt.Sprintf("%d %s", e.ID, e.Scope)
		if len(e.Flags) > 0 {
			line += " [" + strings.Join(e.Flags, ",") + "]"
		}
		if len(slots) == 0 {
			line += ": no backend takes new connections"
		} else {
			line += ": backends " + strings.Join(slots, ",")
		}
		entries = append(entries, line)
	}
	multi("Datapath entries:", entries)
}

// serviceUpdateFlags are the flags of `seta service update`.
type serviceUpdateFlags struct {
	frontend, typ, affinity, affinityTimeout string
	etp, itp, algorithm, name, namespace     string
	backends, backendStates, backendNodes    []string
}

func serviceUpdateCmd(g *globals) *cobra.Command {
	var f serviceUpdateFlags
	cmd := &cobra.Command{
		Use:   "update --frontend IP:PORT/PROTO [--backends IP:PORT,...] [flags]",
		Short: "Create a service, or change the one of a frontend",
		Long: `Creates the service of --frontend, or changes it if it exists: what no flag
says stays as it was (a new service starts from the defaults: ClusterIP, no
session affinity, Cluster traffic policies, random). A new service needs
--backends (it may be empty: --backends "").

--backends replaces the list of backends; backends that were already there
keep their state and node unless --backend-state or --backend-node say
otherwise. --backend-state IP:PORT=terminating takes a backend out of
the slots (no new connections) while its connections go on; =active puts
it back. --backend-node IP:PORT=NODE says which node a backend runs on (a
backend on this node is local; without it, a backend is local when its
address is one of this node's endpoints).

--external-traffic-policy Local sends traffic from outside the node only
to local backends (NodePort, LoadBalancer, ExternalIPs);
--internal-traffic-policy Local does the same for traffic from the node and
its pods. --algorithm maglev picks backends for traffic from outside the
node by consistent hashing, so every node picks the same one.

A frontend belongs to one service name: giving it another --name or
--namespace than it has is refused.`,
		Example: `  seta service update --frontend 10.96.0.10:80/TCP --backends 10.244.1.2:8080,10.244.2.2:8080 --name web --namespace default
  seta service update --frontend 0.0.0.0:30080/TCP --type NodePort --backends 10.244.1.2:8080 --external-traffic-policy Local
  seta service update --frontend 10.96.0.10:80/TCP --backend-state 10.244.1.2:8080=terminating
  seta service update --frontend 192.0.2.10:443/TCP --type LoadBalancer --backends 10.244.1.2:8443 --algorithm maglev --affinity ClientIP --affinity-timeout 3h`,
		Args: cobra.NoArgs,
	}
	o := output.AddFlag(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.frontend, "frontend", "", "the service's frontend, IP:PORT/PROTO (PROTO TCP or UDP; IPv6 in brackets)")
	fl.StringSliceVar(&f.backends, "backends", nil, "the backends, IP:PORT,... (replaces the list)")
	fl.StringVar(&f.typ, "type", "", "ClusterIP, NodePort, LoadBalancer or ExternalIPs")
	fl.StringVar(&f.affinity, "affinity", "", "session affinity: None or ClientIP")
	fl.StringVar(&f.affinityTimeout, "affinity-timeout", "", "how long ClientIP affinity lasts, e.g. 3h or 10800 (seconds); 1s to 24h, default 3h")
	fl.StringVar(&f.etp, "external-traffic-policy", "", "Cluster or Local: which backends traffic from outside the node reaches")
	fl.StringVar(&f.itp, "internal-traffic-policy", "", "Cluster or Local: which backends traffic from the node and its pods reaches")
	fl.StringVar(&f.algorithm, "algorithm", "", "random or maglev: how traffic from outside the node picks a backend")
	fl.StringVar(&f.name, "name", "", "the service's name")
	fl.StringVarP(&f.namespace, "namespace", "n", "", "the service's namespace")
	fl.StringSliceVar(&f.backendStates, "backend-state", nil, "IP:PORT=STATE,...: set backends active, terminating or quarantined")
	fl.StringSliceVar(&f.backendNodes, "backend-node", nil, "IP:PORT=NODE,...: the node a backend runs on")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if _, err := output.Parse(*o); err != nil {
			return err
		}
		if f.frontend == "" {
			return errors.New("--frontend is required (IP:PORT/PROTO, e.g. 10.96.0.10:80/TCP)")
		}
		front, err := service.ParseL4Addr(f.frontend)
		if err != nil {
			return fmt.Errorf("--frontend: %w", err)
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		cur, exists, err := c.LookupService(cmd.Context(), front.String())
		if err != nil {
			return err
		}
		svc := v1.Service{Frontend: front}
		if exists {
			svc = cur.Service
		} else if !cmd.Flags().Changed("backends") {
			return fmt.Errorf("there is no service with frontend %s yet; give its --backends to create it", front)
		}
		if err := f.apply(cmd, &svc); err != nil {
			return err
		}
		d, err := c.UpsertService(cmd.Context(), svc)
		if err != nil {
			return err
		}
		if format, _ := output.Parse(*o); format == output.Table {
			verb := "Created"
			if exists {
				verb = "Updated"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s service %d.\n", verb, d.ID)
		}
		return output.Print(cmd.OutOrStdout(), *o, d, func(t *output.Tab) { serviceTable(t, d) })
	}
	return cmd
}

// apply changes svc as the flags that were given say.
func (f *serviceUpdateFlags) apply(cmd *cobra.Command, svc *v1.Service) error {
	changed := cmd.Flags().Changed
	var errs []error
	if changed("name") {
		svc.Name = f.name
	}
	if changed("namespace") {
		svc.Namespace = f.namespace
	}
	if changed("type") {
		t, err := service.ParseType(f.typ)
		errs = append(errs, prefixed("--type", err))
		svc.Type = t
	}
	if changed("affinity") {
		a, err := service.ParseAffinity(f.affinity)
		errs = append(errs, prefixed("--affinity", err))
		if a != svc.SessionAffinity {
			// The old timeout belongs to the old affinity.
			svc.SessionAffinityTimeout = 0
		}
		svc.SessionAffinity = a
	}
	if changed("affinity-timeout") {
		secs, err := parseAffinityTimeout(f.affinityTimeout)
		errs = append(errs, prefixed("--affinity-timeout", err))
		svc.SessionAffinityTimeout = secs
	}
	if changed("external-traffic-policy") {
		p, err := service.ParseTrafficPolicy(f.etp)
		errs = append(errs, prefixed("--external-traffic-policy", err))
		svc.ExternalTrafficPolicy = p
	}
	if changed("internal-traffic-policy") {
		p, err := service.ParseTrafficPolicy(f.itp)
		errs = append(errs, prefixed("--internal-traffic-policy", err))
		svc.InternalTrafficPolicy = p
	}
	if changed("algorithm") {
		a, err := service.ParseAlgorithm(f.algorithm)
		errs = append(errs, prefixed("--algorithm", err))
		svc.Algorithm = a
	}
	if changed("backends") {
		old := map[netip.AddrPort]service.Backend{}
		for _, b := range svc.Backends {
			old[b.Addr] = b
		}
		svc.Backends = []service.Backend{}
		for _, raw := range f.backends {
			ap, err := service.ParseAddrPort(strings.TrimSpace(raw))
			if err != nil {
				errs = append(errs, fmt.Errorf("--backends: %w", err))
				continue
			}
			b, ok := old[ap]
			if !ok {
				b = service.Backend{Addr: ap}
			}
			svc.Backends = append(svc.Backends, b)
		}
	}
	set := func(flag string, list []string, apply func(b *service.Backend, v string) error) {
		for _, kv := range list {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				errs = append(errs, fmt.Errorf("--%s %q: want IP:PORT=VALUE", flag, kv))
				continue
			}
			ap, err := service.ParseAddrPort(k)
			if err != nil {
				errs = append(errs, fmt.Errorf("--%s: %w", flag, err))
				continue
			}
			i := slices.IndexFunc(svc.Backends, func(b service.Backend) bool { return b.Addr == ap })
			if i < 0 {
				errs = append(errs, fmt.Errorf("--%s: %s is not a backend of the service (give it in --backends)", flag, ap))
				continue
			}
			if err := apply(&svc.Backends[i], v); err != nil {
				errs = append(errs, fmt.Errorf("--%s %s: %w", flag, kv, err))
			}
		}
	}
	set("backend-state", f.backendStates, func(b *service.Backend, v string) error {
		return b.State.UnmarshalText([]byte(v))
	})
	set("backend-node", f.backendNodes, func(b *service.Backend, v string) error {
		b.NodeName, b.Local = v, false
		return nil
	})
	return errors.Join(errs...)
}

func prefixed(flag string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", flag, err)
}

// parseAffinityTimeout reads a duration ("3h", "90s") or seconds ("10800")
// into whole seconds; the agent checks the range.
func parseAffinityTimeout(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (3h, 90m) or a number of seconds", s)
	}
	if d%time.Second != 0 || d < time.Second || d > service.MaxAffinityTimeout*time.Second {
		return 0, fmt.Errorf("%s: want whole seconds from 1s to 24h", d)
	}
	return int(d / time.Second), nil
}

func serviceDeleteCmd(g *globals) *cobra.Command {
	var frontend string
	cmd := &cobra.Command{
		Use:   "delete ID | --frontend IP:PORT/PROTO",
		Short: "Delete a service",
		Long: `Deletes the service with ID (the ID column of 'seta service list') or of
--frontend. Its datapath entry goes first, then its backends that no other
service has; connections that were established through it lose their
translation.`,
		Example: `  seta service delete 3
  seta service delete --frontend 10.96.0.10:80/TCP`,
		Args: cobra.MaximumNArgs(1),
	}
	o := output.AddFlag(cmd)
	cmd.Flags().StringVar(&frontend, "frontend", "", "delete the service of this frontend (IP:PORT/PROTO)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		format, err := output.Parse(*o)
		if err != nil {
			return err
		}
		switch {
		case len(args) == 1 && frontend != "":
			return errors.New("give a service ID or --frontend, not both")
		case len(args) == 0 && frontend == "":
			return errors.New("give the ID of the service to delete, or its --frontend")
		}
		var id uint16
		var front service.L4Addr
		if len(args) == 1 {
			if id, err = parseServiceID(args[0]); err != nil {
				return err
			}
		} else if front, err = service.ParseL4Addr(frontend); err != nil {
			return fmt.Errorf("--frontend: %w", err)
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		var d v1.ServiceDetail
		if id != 0 {
			d, err = c.DeleteService(cmd.Context(), id)
		} else {
			d, err = c.DeleteServiceFrontend(cmd.Context(), front.String())
		}
		if client.IsCode(err, v1.CodeNotFound) {
			return fmt.Errorf("%w (see 'seta service list' for the services that exist)", err)
		}
		if err != nil {
			return err
		}
		if format == output.Table {
			name := ""
			if n := d.Service.DisplayName(); n != "" {
				name = n + ", "
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted service %d (%s%s).\n", d.ID, name, d.Service.Frontend)
			return nil
		}
		return output.Print(cmd.OutOrStdout(), *o, d, nil)
	}
	return cmd
}
