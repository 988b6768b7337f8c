package lab

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/seta-net/seta/pkg/cli/output"
)

func serviceCmd(name *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "service",
		Aliases: []string{"svc"},
		Short:   "Create, list and delete lab services (ClusterIP, NodePort) with DNS names",
		Long: `A lab service is a Kubernetes-style Service: the lab allocates its ClusterIPs
(from 10.96.0.0/16 and fd00:5e7a:96::/112) and, for a NodePort, a node port
(30000-32767); its backends are the pods whose labels match the selector in
the service's namespace, kept up to date as pods come and go and pushed to
every node's agent. Pods resolve NAME.NAMESPACE.svc.cluster.local (or just
NAME from the same namespace) through the cluster DNS.`,
	}
	var namespace string
	cmd.PersistentFlags().StringVarP(&namespace, "namespace", "n", "default", "service namespace")

	var sp ServiceSpec
	var selector string
	create := &cobra.Command{
		Use:   "create NAME --port P [--target-port T] [--protocol TCP|UDP] --selector k=v[,k=v]",
		Short: "Create a service whose backends are the pods its selector matches",
		Example: `  seta lab service create web --port 80 --target-port 8080 --selector app=web
  seta lab service create dns --port 53 --protocol UDP --selector app=dns
  seta lab service create web-np --type NodePort --port 80 --target-port 8080 --selector app=web --external-traffic-policy Local
  seta lab service create sticky --port 7000 --selector app=web --affinity ClientIP --algorithm maglev`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sel, err := ParseSelector(selector)
			if err != nil {
				return fmt.Errorf("--selector: %w", err)
			}
			sp.Name, sp.Namespace, sp.Selector = args[0], namespace, sel
			svc, err := CreateService(cmd.Context(), *name, sp)
			if svc != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "service %s: %s %s %s (%s)\n", svc.Key(), svc.Type,
					strings.Join(svc.ClusterIPs, ","), svc.portsString(), svc.FQDN())
			}
			return err
		},
	}
	create.Flags().IntVar(&sp.Port, "port", 0, "service port (required)")
	create.Flags().IntVar(&sp.TargetPort, "target-port", 0, "port of the pods (default: --port)")
	create.Flags().StringVar(&sp.Protocol, "protocol", "TCP", "TCP or UDP")
	create.Flags().StringVar(&selector, "selector", "", "pod labels k=v[,k=v] that pick the backends (required)")
	create.Flags().StringVar(&sp.Type, "type", TypeClusterIP, "ClusterIP or NodePort")
	create.Flags().IntVar(&sp.NodePort, "node-port", 0, "node port for --type NodePort (default: the lowest free one)")
	create.Flags().StringVar(&sp.SessionAffinity, "affinity", AffinityNone, "session affinity: None or ClientIP")
	create.Flags().StringVar(&sp.ExternalTrafficPolicy, "external-traffic-policy", "", "Cluster or Local (NodePort only; default Cluster)")
	create.Flags().StringVar(&sp.Algorithm, "algorithm", "", "backend selection: random or maglev (default: the agent's)")
	create.MarkFlagRequired("port")
	create.MarkFlagRequired("selector")

	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the lab's services and their backends (all namespaces)",
		Example: "  seta lab service list\n  seta lab service list -o json",
		Args:    cobra.NoArgs,
	}
	lo := output.AddFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		st, err := Load(*name)
		if err != nil {
			return err
		}
		type row struct {
			*Service
			Backends []string `json:"backends"`
		}
		rows := []row{}
		for _, s := range st.Services {
			r := row{Service: s, Backends: []string{}}
			for _, sp := range s.Ports {
				for _, fam := range []int{4, 6} {
					for _, b := range backends(st, s, sp, fam) {
						v := b.Addr.String() + "/" + sp.Protocol + "@" + b.Node
						if b.Terminating {
							v += " (terminating)"
						}
						r.Backends = append(r.Backends, v)
					}
				}
			}
			rows = append(rows, r)
		}
		return output.Print(cmd.OutOrStdout(), *lo, rows, func(t *output.Tab) {
			t.Row("NAMESPACE", "NAME", "TYPE", "CLUSTER-IPS", "PORTS", "TARGET", "SELECTOR", "BACKENDS")
			for _, r := range rows {
				var sel []string
				for k, v := range r.Selector {
					sel = append(sel, k+"="+v)
				}
				slices.Sort(sel)
				var targets []string
				for _, p := range r.Ports {
					targets = append(targets, strconv.Itoa(int(p.TargetPort)))
				}
				if r.NodeDNS {
					sel = []string{"(every node's DNS)"}
				}
				t.Row(r.Namespace, r.Name, r.Type, strings.Join(r.ClusterIPs, ","), r.portsString(),
					strings.Join(targets, ","), strings.Join(sel, ","), len(r.Backends))
			}
		})
	}

	del := &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete services, from the lab and from every agent",
		Example: "  seta lab service delete web",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if err := DeleteService(cmd.Context(), *name, namespace, a); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "service %s/%s deleted\n", namespace, a)
			}
			return nil
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}
