package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/cli/output"
	"github.com/seta-net/seta/pkg/client"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/labels"
	"github.com/seta-net/seta/pkg/policy/api"
)

// stdinName names standard input ("-") in policy files and their errors.
const stdinName = "<stdin>"

func policyCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "policy",
		Short: "Manage network policies: import, validate, list, delete, trace and wait",
		Long: `Network policies decide which traffic endpoints may send and receive. Seta reads
CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy (cilium.io/v2) and
Kubernetes NetworkPolicy (networking.k8s.io/v1) documents, in YAML or JSON,
with the same schema as upstream.

Policies select endpoints by their labels. An endpoint's labels (with the pod's
namespace) make its security identity (see 'seta identity list'); the datapath
matches peers by identity. An endpoint that no policy selects in a direction
allows all traffic in that direction; once a policy with ingress (egress)
rules selects it, only what some rule allows is let in (out).

Every change of the imported policies makes a new revision; each endpoint
reports the revision its datapath runs ('seta endpoint list', POLICY REV).`,
		Example: `  seta policy validate web.yaml
  seta policy import web.yaml db.yaml
  seta policy get
  seta policy trace --src-labels app=client --dst-labels app=web --dport 80/TCP
  seta policy wait --timeout 1m
  seta policy delete web -n default`,
	})
	cmd.AddCommand(
		policyImportCmd(g),
		policyValidateCmd(),
		policyGetCmd(g),
		policyDeleteCmd(g),
		policyTraceCmd(g),
		policyWaitCmd(g),
	)
	return cmd
}

// readPolicyFiles reads every named file, "-" being standard input, and
// reports every file that cannot be read.
func readPolicyFiles(stdin io.Reader, names []string) ([]v1.PolicyFile, error) {
	var files []v1.PolicyFile
	var errs []error
	usedStdin := false
	given := map[string]bool{}
	for _, name := range names {
		if name != "-" && given[name] {
			errs = append(errs, fmt.Errorf("policy file %s is given more than once", name))
			continue
		}
		given[name] = true
		if name == "-" {
			if usedStdin {
				errs = append(errs, errors.New(`"-" (standard input) is given more than once`))
				continue
			}
			usedStdin = true
			b, err := io.ReadAll(stdin)
			if err != nil {
				errs = append(errs, fmt.Errorf("read policy from standard input: %w", err))
				continue
			}
			files = append(files, v1.PolicyFile{Name: stdinName, Content: string(b)})
			continue
		}
		if name == "" {
			errs = append(errs, errors.New("empty policy file name"))
			continue
		}
		if fi, err := os.Stat(name); err == nil && fi.IsDir() {
			errs = append(errs, fmt.Errorf("policy file %s is a directory (name the files in it, e.g. %s/*.yaml)", name, strings.TrimSuffix(name, "/")))
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("cannot read policy file: %w", err))
			continue
		}
		files = append(files, v1.PolicyFile{Name: name, Content: string(b)})
	}
	return files, errors.Join(errs...)
}

func policyImportCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import FILE...",
		Short: "Import policies from files into the agent, all or none",
		Long: `Sends every document of every FILE ("-" reads standard input) to the agent in
one request. The agent parses them and applies all of them as one new
revision, or, if any document is invalid, none: the error then names the
file, document, line and field of every problem.

A policy replaces the imported one of the same kind, namespace and name;
policies that are not in the files stay as they are. Prints the new revision
and the imported policies. 'seta policy wait' waits until every endpoint
runs it.`,
		Example: `  seta policy import web.yaml
  seta policy import policies/*.yaml
  kubectl get cnp -A -o yaml | seta policy import -
  seta policy import web.yaml -o json`,
		Args: cobra.MinimumNArgs(1),
	}
	o := output.AddFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		format, err := output.Parse(*o)
		if err != nil {
			return err
		}
		files, err := readPolicyFiles(cmd.InOrStdin(), args)
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		res, err := c.ImportPolicy(cmd.Context(), v1.PolicyImport{Files: files})
		if client.IsCode(err, v1.CodeInvalid) {
			msg := err.Error()
			if strings.Contains(msg, "request body too large") {
				msg += "\n(import the files in several smaller steps)"
			}
			return fmt.Errorf("the agent rejected the import, no policy was changed:\n%s", msg)
		}
		if err != nil {
			return err
		}
		if res.Policies == nil {
			res.Policies = []v1.PolicySummary{}
		}
		out := cmd.OutOrStdout()
		if format == output.Table {
			fmt.Fprintf(out, "Revision: %d\n", res.Revision)
		}
		return output.Print(out, *o, res, func(t *output.Tab) { policySummaryTable(t, res.Policies) })
	}
	return cmd
}

func policySummaryTable(t *output.Tab, ps []v1.PolicySummary) {
	t.Row("KIND", "NAMESPACE", "NAME", "RULES", "SOURCE")
	for _, p := range ps {
		t.Row(p.Kind, p.Namespace, p.Name, p.Rules, p.Source)
	}
}

// validatedFile is one file's outcome in `seta policy validate -o json`.
type validatedFile struct {
	File     string             `json:"file"`
	OK       bool               `json:"ok"`
	Policies []v1.PolicySummary `json:"policies"`
	Errors   []string           `json:"errors,omitempty"`
}

func policyValidateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check policy files without the agent and without changing anything",
		Long: `Parses every FILE ("-" reads standard input) the way the agent does on import,
here, without the agent: nothing is sent and nothing changes. Prints how many
policies each valid file holds; any problem (with its file, document, line
and field) goes to standard error and the exit status is 1. The same policy
(kind, namespace and name) defined twice, in one file or two, is a problem,
as it is on import.

-o json and -o yaml list each file's policies (and errors).`,
		Example: `  seta policy validate web.yaml
  seta policy validate policies/*.yaml
  seta policy validate web.yaml -o json`,
		Args: cobra.MinimumNArgs(1),
	}
	o := output.AddFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		format, err := output.Parse(*o)
		if err != nil {
			return err
		}
		files, err := readPolicyFiles(cmd.InOrStdin(), args)
		if err != nil {
			return err
		}
		var results []validatedFile
		var errs []string
		seen := map[string]string{} // policy key -> where it was first defined
		for _, f := range files {
			r := validatedFile{File: f.Name, Policies: []v1.PolicySummary{}}
			ps, err := api.Parse([]byte(f.Content), f.Name)
			if err != nil {
				r.Errors = strings.Split(err.Error(), "\n")
			}
			for _, p := range ps {
				if prev, dup := seen[p.Key()]; dup {
					r.Errors = append(r.Errors, fmt.Sprintf("%s: %s %s is also defined in %s", p.Source, p.Kind, qualifiedName(p.Namespace, p.Name), prev))
					continue
				}
				seen[p.Key()] = p.Source
				r.Policies = append(r.Policies, policySummary(p))
			}
			r.OK = len(r.Errors) == 0
			errs = append(errs, r.Errors...)
			results = append(results, r)
		}
		out := cmd.OutOrStdout()
		if format == output.Table {
			for _, r := range results {
				if r.OK {
					fmt.Fprintf(out, "%s: %s OK\n", r.File, plural(len(r.Policies), "policy", "policies"))
				}
			}
		} else if err := output.Print(out, *o, results, nil); err != nil {
			return err
		}
		if len(errs) == 0 {
			return nil
		}
		bad := 0
		for _, r := range results {
			if !r.OK {
				bad++
			}
		}
		return fmt.Errorf("%d of %s invalid:\n%s", bad, plural(len(results), "policy file is", "policy files are"), strings.Join(errs, "\n"))
	}
	return cmd
}

// policySummary is what the agent reports for a parsed policy.
func policySummary(p *api.Policy) v1.PolicySummary {
	n := len(p.Rules)
	if p.NetworkPolicy != nil {
		n = 1
	}
	return v1.PolicySummary{Kind: p.Kind, Namespace: p.Namespace, Name: p.Name, Source: p.Source, Rules: n}
}

func qualifiedName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// plural renders "1 policy" or "3 policies".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func policyGetCmd(g *globals) *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:     "get [NAME]",
		Aliases: []string{"list", "ls"},
		Short:   "List the imported policies, or show those named NAME",
		Long: `Lists the policies the agent enforces, with the repository's revision. NAME
shows only the policies of that name (of any kind); -n narrows to one
namespace (cluster-wide policies have none). -o json and -o yaml print the
policies in full, with their parsed rules.`,
		Example: `  seta policy get
  seta policy get web -n default
  seta policy get -n prod -o yaml`,
		Args: cobra.MaximumNArgs(1),
	}
	o := output.AddFlag(cmd)
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "show only the policies of this namespace")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		format, err := output.Parse(*o)
		if err != nil {
			return err
		}
		name := ""
		if len(args) == 1 {
			if name = args[0]; name == "" {
				return errors.New("policy name must not be empty")
			}
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		l, err := c.ListPolicy(cmd.Context(), name, namespace)
		if err != nil {
			return err
		}
		if l.Policies == nil {
			l.Policies = []v1.PolicyDetail{}
		}
		slices.SortStableFunc(l.Policies, func(a, b v1.PolicyDetail) int {
			return strings.Compare(a.Kind+"/"+a.Namespace+"/"+a.Name, b.Kind+"/"+b.Namespace+"/"+b.Name)
		})
		out := cmd.OutOrStdout()
		if format == output.Table {
			fmt.Fprintf(out, "Revision: %d\n", l.Revision)
			if len(l.Policies) == 0 {
				if namespace != "" {
					fmt.Fprintf(out, "No policies in namespace %s.\n", namespace)
				} else {
					fmt.Fprintln(out, "No policies imported (see 'seta policy import').")
				}
				return nil
			}
		}
		return output.Print(out, *o, l, func(t *output.Tab) {
			ps := make([]v1.PolicySummary, len(l.Policies))
			for i, p := range l.Policies {
				ps[i] = p.PolicySummary
			}
			policySummaryTable(t, ps)
		})
	}
	return cmd
}

// policyKind maps a --kind value, full or short, to the kind's name.
func policyKind(s string) (string, error) {
	switch strings.ToLower(s) {
	case "":
		return "", nil
	case "cnp", "ciliumnetworkpolicy":
		return api.KindCNP, nil
	case "ccnp", "ciliumclusterwidenetworkpolicy":
		return api.KindCCNP, nil
	case "netpol", "knp", "networkpolicy":
		return api.KindKNP, nil
	}
	return "", fmt.Errorf("unknown policy kind %q (want %s (cnp), %s (ccnp) or %s (netpol))", s, api.KindCNP, api.KindCCNP, api.KindKNP)
}

func policyDeleteCmd(g *globals) *cobra.Command {
	var namespace, kind string
	var all bool
	cmd := &cobra.Command{
		Use:   "delete (NAME [-n NAMESPACE] [--kind KIND] | --all)",
		Short: "Delete the policy named NAME, or every policy",
		Long: `Deletes one imported policy, or with --all every one, as one new revision.
If NAME is the name of several policies (in different namespaces or of
different kinds), -n and --kind say which; the agent refuses to guess.
--kind takes CiliumNetworkPolicy (cnp), CiliumClusterwideNetworkPolicy
(ccnp) or NetworkPolicy (netpol). Prints what was deleted and the new
revision.`,
		Example: `  seta policy delete web
  seta policy delete web -n prod --kind cnp
  seta policy delete --all`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return fmt.Errorf("give a policy NAME or --all, not both")
			case !all && len(args) == 0:
				return fmt.Errorf("give the NAME of the policy to delete, or --all")
			case len(args) > 1:
				return fmt.Errorf("accepts one policy NAME, received %d (delete them one by one, or use --all)", len(args))
			case all && (namespace != "" || kind != ""):
				return fmt.Errorf("--all deletes every policy; it takes no --namespace or --kind")
			case len(args) == 1 && args[0] == "":
				return errors.New("policy name must not be empty")
			}
			return nil
		},
	}
	o := output.AddFlag(cmd)
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the policy (when NAME is ambiguous)")
	cmd.Flags().StringVar(&kind, "kind", "", "kind of the policy (when NAME is ambiguous): cnp, ccnp or netpol")
	cmd.Flags().BoolVar(&all, "all", false, "delete every policy")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		format, err := output.Parse(*o)
		if err != nil {
			return err
		}
		k, err := policyKind(kind)
		if err != nil {
			return err
		}
		name := ""
		if len(args) == 1 {
			name = args[0]
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		res, err := c.DeletePolicy(cmd.Context(), name, namespace, k, all)
		if client.IsCode(err, v1.CodeNotFound) && name != "" {
			return fmt.Errorf("%w (see 'seta policy get')", err)
		}
		if err != nil {
			return err
		}
		if res.Deleted == nil {
			res.Deleted = []string{}
		}
		if format != output.Table {
			return output.Print(cmd.OutOrStdout(), *o, res, nil)
		}
		out := cmd.OutOrStdout()
		if len(res.Deleted) == 0 {
			fmt.Fprintln(out, "No policies to delete.")
		}
		for _, key := range res.Deleted {
			fmt.Fprintf(out, "Deleted %s\n", key)
		}
		fmt.Fprintf(out, "Revision: %d\n", res.Revision)
		return nil
	}
	return cmd
}

// normalizeDport checks a --dport value, PORT[/PROTOCOL], and returns it as
// the agent reads it ("" means any port).
func normalizeDport(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	p, proto, ok := strings.Cut(s, "/")
	if !ok {
		proto = "TCP"
	}
	if _, err := strconv.ParseUint(p, 10, 16); err != nil {
		return "", fmt.Errorf("invalid --dport %q: want PORT/PROTOCOL, e.g. 80/TCP or 53/UDP (an ICMP type for ICMP)", s)
	}
	for _, known := range []string{"TCP", "UDP", "SCTP", "ICMP", "ICMPv6"} {
		if strings.EqualFold(proto, known) {
			return p + "/" + known, nil
		}
	}
	return "", fmt.Errorf("invalid --dport %q: unknown protocol %q (TCP, UDP, SCTP, ICMP or ICMPv6)", s, proto)
}

// traceLabels checks one side's labels the way the agent reads them, and
// returns the namespace they put the endpoint in.
func traceLabels(flag string, raw []string) (string, error) {
	ls, err := labels.ParseAll(raw, labels.SourceK8s)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	if ns, ok := ls.Namespace(); ok {
		return ns, nil
	}
	return "default", nil
}

func policyTraceCmd(g *globals) *cobra.Command {
	var src, dst []string
	var dport string
	cmd := &cobra.Command{
		Use:   "trace --src-labels K=V,... --dst-labels K=V,... [--dport PORT/PROTO]",
		Short: "Explain whether the policies let a packet from one endpoint reach another",
		Long: `Asks the agent how its current policies decide a packet from an endpoint with
the --src-labels to one with the --dst-labels, as the datapath would: first
the source's egress policy, then the destination's ingress policy. For each
it shows whether policy is enforced in that direction, the policies that
select the endpoint, the verdict, and the policy map entry and policies that
decided it. The endpoints need not exist.

Labels are KEY=VALUE, comma-separated or repeated; without a source prefix
they are k8s labels (k8s:app=web). The endpoint is in namespace "default"
unless a label io.kubernetes.pod.namespace=NS says otherwise. --dport is
PORT/PROTOCOL (TCP, UDP, SCTP; for ICMP and ICMPv6 the ICMP type); without
it, only rules that allow all ports apply.

The exit status is 0 whatever the verdict: the trace is an explanation.`,
		Example: `  seta policy trace --src-labels app=client --dst-labels app=web --dport 80/TCP
  seta policy trace --src-labels app=client,io.kubernetes.pod.namespace=prod \
      --dst-labels app=db,io.kubernetes.pod.namespace=prod --dport 5432
  seta policy trace --src-labels app=client --dst-labels app=web --dport 53/UDP -o json`,
		Args: cobra.NoArgs,
	}
	o := output.AddFlag(cmd)
	cmd.Flags().StringSliceVar(&src, "src-labels", nil, "labels of the source endpoint, e.g. app=client,tier=front")
	cmd.Flags().StringSliceVar(&dst, "dst-labels", nil, "labels of the destination endpoint, e.g. app=web")
	cmd.Flags().StringVar(&dport, "dport", "", "destination port and protocol, e.g. 80/TCP (default: any port)")
	cmd.MarkFlagRequired("src-labels")
	cmd.MarkFlagRequired("dst-labels")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		format, err := output.Parse(*o)
		if err != nil {
			return err
		}
		srcNS, err := traceLabels("src-labels", src)
		if err != nil {
			return err
		}
		dstNS, err := traceLabels("dst-labels", dst)
		if err != nil {
			return err
		}
		port, err := normalizeDport(dport)
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		tr, err := c.TracePolicy(cmd.Context(), src, dst, port)
		if err != nil {
			return err
		}
		if format != output.Table {
			return output.Print(cmd.OutOrStdout(), *o, tr, nil)
		}
		printTrace(cmd.OutOrStdout(), tr, traceEnd{src, srcNS}, traceEnd{dst, dstNS}, port)
		return nil
	}
	return cmd
}

type traceEnd struct {
	labels    []string
	namespace string
}

func (e traceEnd) String() string {
	return fmt.Sprintf("%s (namespace %s)", strings.Join(e.labels, ","), e.namespace)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(ss []string) string {
	if len(ss) == 0 {
		return "-"
	}
	return strings.Join(ss, ", ")
}

// stepName says whose policy a trace step is.
func stepName(s v1.TraceStep) string {
	switch s.Direction {
	case "egress":
		return "egress of the source"
	case "ingress":
		return "ingress of the destination"
	}
	return s.Direction
}

func printTrace(w io.Writer, tr v1.Trace, src, dst traceEnd, port string) {
	if port == "" {
		port = "any"
	}
	fmt.Fprintf(w, "Source:       %s, identity %d\n", src, tr.SrcIdentity)
	fmt.Fprintf(w, "Destination:  %s, identity %d\n", dst, tr.DstIdentity)
	fmt.Fprintf(w, "Port:         %s\n", port)
	for _, s := range tr.Steps {
		title := stepName(s)
		fmt.Fprintf(w, "\n%s%s:\n", strings.ToUpper(title[:1]), title[1:])
		fmt.Fprintf(w, "  enforced:     %s\n", yesNo(s.Enforced))
		fmt.Fprintf(w, "  selected by:  %s\n", orDash(s.Selecting))
		fmt.Fprintf(w, "  verdict:      %s\n", s.Verdict)
		entry := s.Entry
		if entry == "" {
			entry = "- (no entry matches)"
		}
		fmt.Fprintf(w, "  entry:        %s\n", entry)
		fmt.Fprintf(w, "  rules:        %s\n", orDash(s.Rules))
	}
	fmt.Fprintf(w, "\nFinal verdict: %s\n", finalVerdict(tr))
}

// finalVerdict renders the trace's verdict with the step that decided it.
func finalVerdict(tr v1.Trace) string {
	var decisive *v1.TraceStep
	for i := range tr.Steps {
		if tr.Steps[i].Verdict != "allowed" {
			decisive = &tr.Steps[i]
			break
		}
	}
	switch tr.Verdict {
	case "allowed":
		return "ALLOWED"
	case "denied":
		if decisive == nil {
			return "DENIED"
		}
		return fmt.Sprintf("DENIED (deny rule in %s, %s)", orDash(decisive.Rules), stepName(*decisive))
	case "dropped":
		if decisive == nil {
			return "DROPPED (no rule allowed it)"
		}
		by := orDash(decisive.Selecting)
		if len(decisive.Selecting) == 0 {
			by = "the agent's policy enforcement mode"
		}
		return fmt.Sprintf("DROPPED (no rule allowed it; default deny by %s, %s)", by, stepName(*decisive))
	}
	return strings.ToUpper(tr.Verdict)
}

// maxWait bounds `seta policy wait --timeout`.
const maxWait = 10 * time.Minute

// pollInterval is how often `seta policy wait` asks the agent.
const pollInterval = 100 * time.Millisecond

// lag is an endpoint that does not run the wanted revision yet.
type lag struct {
	id       uint16
	revision uint64
	noPolicy bool
}

func (l lag) String() string {
	if l.noPolicy {
		return fmt.Sprintf("endpoint %d (no policy status)", l.id)
	}
	return fmt.Sprintf("endpoint %d (revision %d)", l.id, l.revision)
}

// lagging returns the endpoints that do not run revision target yet and how
// many endpoints were checked. Endpoints being deleted do not count, nor do
// endpoints still being created that have no policy yet: they get the
// newest policy before they carry traffic.
func lagging(eps []endpoint.Endpoint, target uint64) (lags []lag, checked int) {
	for _, ep := range eps {
		if ep.State == endpoint.StateDeleting || ep.Policy == nil && ep.State == endpoint.StateCreating {
			continue
		}
		checked++
		switch {
		case ep.Policy == nil:
			lags = append(lags, lag{id: ep.ID, noPolicy: true})
		case ep.Policy.Revision < target:
			lags = append(lags, lag{id: ep.ID, revision: ep.Policy.Revision})
		}
	}
	slices.SortFunc(lags, func(a, b lag) int { return int(a.id) - int(b.id) })
	return lags, checked
}

func policyWaitCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	var revision uint64
	cmd := &cobra.Command{
		Use:   "wait [--timeout 30s] [--revision N]",
		Short: "Wait until every endpoint runs the current policy revision",
		Long: `Waits until the datapath of every endpoint on this node enforces policy
revision N (--revision) or later; by default N is the agent's current
revision, e.g. the one 'seta policy import' just printed. Asks the agent
every 100ms. Endpoints being deleted, and new ones without a policy yet
(they get the newest one before carrying traffic), do not count.

--timeout bounds the whole wait (at most 10m); on timeout the exit status is
non-zero and the error names the endpoints that lag, with the revision they
run.`,
		Example: `  seta policy import web.yaml && seta policy wait
  seta policy wait --timeout 2m
  seta policy wait --revision 12`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait at most (up to 10m)")
	cmd.Flags().Uint64Var(&revision, "revision", 0, "the revision to wait for (default: the agent's current revision)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if timeout <= 0 || timeout > maxWait {
			return fmt.Errorf("--timeout must be more than 0 and at most %s, got %s", maxWait, timeout)
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
		defer cancel()
		timedOut := func() bool { return errors.Is(ctx.Err(), context.DeadlineExceeded) }

		l, err := c.ListPolicy(ctx, "", "")
		if err != nil {
			if timedOut() {
				return fmt.Errorf("timed out after %s asking the agent at %s for its policy revision", timeout, c.Socket())
			}
			return err
		}
		target := l.Revision
		if cmd.Flags().Changed("revision") {
			target = revision
			if target > l.Revision {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: the agent is at policy revision %d; waiting for revision %d to be imported and enforced\n", l.Revision, target)
			}
		}

		tick := time.NewTicker(pollInterval)
		defer tick.Stop()
		var lags []lag
		checked, polled := 0, false
		for {
			eps, err := c.ListEndpoints(ctx)
			switch {
			case err == nil:
				polled = true
				lags, checked = lagging(eps, target)
				if len(lags) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "all %d endpoints run policy revision %d\n", checked, target)
					return nil
				}
			case timedOut():
			default:
				return err
			}
			select {
			case <-tick.C:
				continue
			case <-ctx.Done():
			}
			if !timedOut() {
				return ctx.Err()
			}
			if !polled {
				return fmt.Errorf("timed out after %s asking the agent at %s for its endpoints", timeout, c.Socket())
			}
			names := make([]string, len(lags))
			for i, l := range lags {
				names[i] = l.String()
			}
			return fmt.Errorf("timed out after %s: %d of %d endpoints do not run policy revision %d yet: %s",
				timeout, len(lags), checked, target, strings.Join(names, ", "))
		}
	}
	return cmd
}
