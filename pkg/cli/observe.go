package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/seta-net/seta/pkg/hubble/filters"
)

// HubbleServerEnv names the observer API address, as the hubble CLI reads
// it.
const HubbleServerEnv = "HUBBLE_SERVER"

// DefaultHubbleServer is the agent's default observer socket.
const DefaultHubbleServer = "unix:///var/run/seta/hubble.sock"

// Cilium monitor event types as flows carry them (EventType.Type), and the
// trace observation points (EventType.SubType of a trace).
var (
	eventTypes  = map[string]int32{"drop": 1, "debug": 2, "capture": 3, "trace": 4, "policy-verdict": 5, "recorder": 6, "trace-sock": 7, "l7": 129, "agent": 130}
	tracePoints = map[string]int32{"to-endpoint": 0, "to-proxy": 1, "to-host": 2, "to-stack": 3, "to-overlay": 4,
		"from-endpoint": 5, "from-proxy": 6, "from-host": 7, "from-stack": 8, "from-overlay": 9, "from-network": 10, "to-network": 11}
)

// observeOpts are the flags of seta observe.
type observeOpts struct {
	server                       string
	timeout                      time.Duration
	last, first                  uint64
	all, follow, printRawFilters bool
	since, until, output         string

	pod, fromPod, toPod                   []string
	namespace, fromNamespace, toNamespace []string
	label, fromLabel, toLabel             []string
	ip, fromIP, toIP                      []string
	port, fromPort, toPort                []string
	identity, fromIdentity, toIdentity    []uint
	protocol, verdict, types, nodeName    []string
	tcpFlags, direction                   []string
	reply                                 string
}

func observeCmd(g *globals) *cobra.Command {
	o := &observeOpts{}
	cmd := &cobra.Command{
		Use:   "observe",
		Short: "Show flows from the node's Hubble observer API",
		Long: `Shows flows that the datapath saw: forwarded packets (trace events, at the
monitor aggregation level the agent runs with), drops with their reason, and
policy verdicts with the policies that decided.

The flags are the hubble CLI's. Flags of one kind are alternatives (two
--pod flags: either pod); flags of different kinds must all hold. The
--pod, --namespace, --label, --ip, --port and --identity flags match either
end of a flow; their --from-/--to- forms one end.

A pod is NAME (a name prefix, any namespace) or NAMESPACE/NAME. Times for
--since/--until are RFC 3339 (2026-11-25T12:00:00Z) or a duration meaning
"that long ago" (5m). Without --last, --first, --all, --since or --follow,
the last 20 flows are shown.

The server is --server, else $HUBBLE_SERVER (which 'seta lab env' sets),
else ` + DefaultHubbleServer + `.`,
		Example: `  seta observe --last 50
  seta observe --verdict DROPPED -f
  seta observe --from-pod default/client --to-port 80 --protocol tcp -o json
  seta observe --type policy-verdict --label app=web
  seta observe --since 5m --type trace:to-endpoint -o table`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("server") {
				if v := os.Getenv(HubbleServerEnv); v != "" {
					o.server = v
				}
			}
			o.timeout = g.timeout
			return o.run(cmd)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", DefaultHubbleServer, "observer API address: unix:///path or host:port (default: $HUBBLE_SERVER, else the agent's socket)")
	f.Uint64Var(&o.last, "last", 0, "show the last N matching flows")
	f.Uint64Var(&o.first, "first", 0, "show the first (oldest) N matching flows")
	f.BoolVar(&o.all, "all", false, "show every stored matching flow")
	f.BoolVarP(&o.follow, "follow", "f", false, "keep streaming new flows")
	f.StringVar(&o.since, "since", "", "only flows at or after this time (RFC 3339, or a duration ago like 5m)")
	f.StringVar(&o.until, "until", "", "only flows at or before this time (RFC 3339, or a duration ago)")
	f.StringVarP(&o.output, "output", "o", "compact", "output format: compact, table, json (one flow a line) or jsonpb (one GetFlowsResponse a line)")
	f.BoolVar(&o.printRawFilters, "print-raw-filters", false, "print the filters that would be sent, as JSON, and exit")

	f.StringArrayVar(&o.pod, "pod", nil, "flows from or to this pod ([NAMESPACE/]NAME prefix)")
	f.StringArrayVar(&o.fromPod, "from-pod", nil, "flows from this pod")
	f.StringArrayVar(&o.toPod, "to-pod", nil, "flows to this pod")
	f.StringArrayVarP(&o.namespace, "namespace", "n", nil, "flows from or to pods in this namespace")
	f.StringArrayVar(&o.fromNamespace, "from-namespace", nil, "flows from pods in this namespace")
	f.StringArrayVar(&o.toNamespace, "to-namespace", nil, "flows to pods in this namespace")
	f.StringArrayVarP(&o.label, "label", "l", nil, "flows from or to endpoints with these labels (selector, e.g. app=web,tier!=db)")
	f.StringArrayVar(&o.fromLabel, "from-label", nil, "flows from endpoints with these labels")
	f.StringArrayVar(&o.toLabel, "to-label", nil, "flows to endpoints with these labels")
	f.StringArrayVar(&o.ip, "ip", nil, "flows from or to this IP address or CIDR")
	f.StringArrayVar(&o.fromIP, "from-ip", nil, "flows from this IP address or CIDR")
	f.StringArrayVar(&o.toIP, "to-ip", nil, "flows to this IP address or CIDR")
	f.StringArrayVar(&o.port, "port", nil, "flows from or to this L4 port")
	f.StringArrayVar(&o.fromPort, "from-port", nil, "flows from this L4 port")
	f.StringArrayVar(&o.toPort, "to-port", nil, "flows to this L4 port")
	f.UintSliceVar(&o.identity, "identity", nil, "flows from or to this security identity")
	f.UintSliceVar(&o.fromIdentity, "from-identity", nil, "flows from this security identity")
	f.UintSliceVar(&o.toIdentity, "to-identity", nil, "flows to this security identity")
	f.StringArrayVar(&o.protocol, "protocol", nil, "L4 protocol: tcp, udp, sctp, icmp (v4 and v6), icmpv4, icmpv6")
	f.StringArrayVar(&o.verdict, "verdict", nil, "FORWARDED, DROPPED, AUDIT, ERROR, REDIRECTED or TRANSLATED")
	f.StringArrayVarP(&o.types, "type", "t", nil, "event type: trace, drop, policy-verdict (with :SUBTYPE, e.g. trace:to-endpoint or drop:133)")
	f.StringArrayVar(&o.nodeName, "node-name", nil, "flows seen on this node (glob patterns allowed)")
	f.StringArrayVar(&o.tcpFlags, "tcp-flags", nil, "TCP flags that must all be set, comma separated (e.g. SYN or SYN,ACK)")
	f.StringArrayVar(&o.direction, "traffic-direction", nil, "ingress or egress")
	f.StringVar(&o.reply, "is-reply", "", "true: only replies; false: only requests")
	return cmd
}

// filterPair builds Hubble's filters: "left" holds the source side of the
// either-end flags, "right" their destination side; the one-ended and
// neutral flags go into both. Without either-end flags only left is sent.
type filterPair struct {
	left, right *flowpb.FlowFilter
	both        bool
}

func (o *observeOpts) filters() ([]*flowpb.FlowFilter, error) {
	p := filterPair{left: &flowpb.FlowFilter{}, right: &flowpb.FlowFilter{}}
	both := func(fn func(f *flowpb.FlowFilter)) { fn(p.left); fn(p.right) }
	either := func(n int, src, dst func(f *flowpb.FlowFilter)) {
		if n > 0 {
			p.both = true
			src(p.left)
			dst(p.right)
		}
	}
	either(len(o.pod), func(f *flowpb.FlowFilter) { f.SourcePod = append(f.SourcePod, o.pod...) },
		func(f *flowpb.FlowFilter) { f.DestinationPod = append(f.DestinationPod, o.pod...) })
	either(len(o.namespace), func(f *flowpb.FlowFilter) { f.SourcePod = append(f.SourcePod, nsPrefixes(o.namespace)...) },
		func(f *flowpb.FlowFilter) { f.DestinationPod = append(f.DestinationPod, nsPrefixes(o.namespace)...) })
	either(len(o.label), func(f *flowpb.FlowFilter) { f.SourceLabel = append(f.SourceLabel, o.label...) },
		func(f *flowpb.FlowFilter) { f.DestinationLabel = append(f.DestinationLabel, o.label...) })
	either(len(o.ip), func(f *flowpb.FlowFilter) { f.SourceIp = append(f.SourceIp, o.ip...) },
		func(f *flowpb.FlowFilter) { f.DestinationIp = append(f.DestinationIp, o.ip...) })
	either(len(o.port), func(f *flowpb.FlowFilter) { f.SourcePort = append(f.SourcePort, o.port...) },
		func(f *flowpb.FlowFilter) { f.DestinationPort = append(f.DestinationPort, o.port...) })
	either(len(o.identity), func(f *flowpb.FlowFilter) { f.SourceIdentity = append(f.SourceIdentity, u32s(o.identity)...) },
		func(f *flowpb.FlowFilter) { f.DestinationIdentity = append(f.DestinationIdentity, u32s(o.identity)...) })

	both(func(f *flowpb.FlowFilter) {
		f.SourcePod = append(f.SourcePod, o.fromPod...)
		f.SourcePod = append(f.SourcePod, nsPrefixes(o.fromNamespace)...)
		f.DestinationPod = append(f.DestinationPod, o.toPod...)
		f.DestinationPod = append(f.DestinationPod, nsPrefixes(o.toNamespace)...)
		f.SourceLabel = append(f.SourceLabel, o.fromLabel...)
		f.DestinationLabel = append(f.DestinationLabel, o.toLabel...)
		f.SourceIp = append(f.SourceIp, o.fromIP...)
		f.DestinationIp = append(f.DestinationIp, o.toIP...)
		f.SourcePort = append(f.SourcePort, o.fromPort...)
		f.DestinationPort = append(f.DestinationPort, o.toPort...)
		f.SourceIdentity = append(f.SourceIdentity, u32s(o.fromIdentity)...)
		f.DestinationIdentity = append(f.DestinationIdentity, u32s(o.toIdentity)...)
		f.Protocol = append(f.Protocol, o.protocol...)
		f.NodeName = append(f.NodeName, o.nodeName...)
	})
	for _, v := range o.verdict {
		n, ok := flowpb.Verdict_value[strings.ToUpper(v)]
		if !ok || n == 0 {
			return nil, fmt.Errorf("--verdict: unknown verdict %q (want FORWARDED, DROPPED, AUDIT, ERROR, REDIRECTED or TRANSLATED)", v)
		}
		both(func(f *flowpb.FlowFilter) { f.Verdict = append(f.Verdict, flowpb.Verdict(n)) })
	}
	for _, v := range o.types {
		et, err := parseEventType(v)
		if err != nil {
			return nil, err
		}
		both(func(f *flowpb.FlowFilter) { f.EventType = append(f.EventType, et) })
	}
	for _, v := range o.tcpFlags {
		fl, err := parseTCPFlags(v)
		if err != nil {
			return nil, err
		}
		both(func(f *flowpb.FlowFilter) { f.TcpFlags = append(f.TcpFlags, fl) })
	}
	for _, v := range o.direction {
		var d flowpb.TrafficDirection
		switch strings.ToLower(v) {
		case "ingress":
			d = flowpb.TrafficDirection_INGRESS
		case "egress":
			d = flowpb.TrafficDirection_EGRESS
		default:
			return nil, fmt.Errorf("--traffic-direction: %q is neither ingress nor egress", v)
		}
		both(func(f *flowpb.FlowFilter) { f.TrafficDirection = append(f.TrafficDirection, d) })
	}
	if o.reply != "" {
		r, err := strconv.ParseBool(o.reply)
		if err != nil {
			return nil, fmt.Errorf("--is-reply: want true or false, got %q", o.reply)
		}
		both(func(f *flowpb.FlowFilter) { f.Reply = append(f.Reply, r) })
	}
	var out []*flowpb.FlowFilter
	empty := &flowpb.FlowFilter{}
	if p.left.String() != empty.String() || p.both {
		out = append(out, p.left)
	}
	if p.both {
		out = append(out, p.right)
	}
	return out, nil
}

func u32s(v []uint) []uint32 {
	out := make([]uint32, 0, len(v))
	for _, x := range v {
		out = append(out, uint32(x))
	}
	return out
}

// nsPrefixes turns namespaces into pod filters matching every pod in them.
func nsPrefixes(nss []string) []string {
	out := make([]string, 0, len(nss))
	for _, ns := range nss {
		out = append(out, strings.TrimSuffix(ns, "/")+"/")
	}
	return out
}

func parseEventType(s string) (*flowpb.EventTypeFilter, error) {
	name, sub, hasSub := strings.Cut(s, ":")
	t, ok := eventTypes[strings.ToLower(name)]
	if !ok {
		if n, err := strconv.ParseInt(name, 10, 32); err == nil {
			t, ok = int32(n), true
		}
	}
	if !ok {
		return nil, fmt.Errorf("--type: unknown event type %q (want trace, drop, policy-verdict, l7, capture, debug, agent, trace-sock or a number)", name)
	}
	f := &flowpb.EventTypeFilter{Type: t}
	if !hasSub {
		return f, nil
	}
	f.MatchSubType = true
	if n, err := strconv.ParseInt(sub, 10, 32); err == nil {
		f.SubType = int32(n)
		return f, nil
	}
	if t == eventTypes["trace"] {
		if n, ok := tracePoints[strings.ToLower(sub)]; ok {
			f.SubType = n
			return f, nil
		}
		return nil, fmt.Errorf("--type: unknown trace observation point %q (want to-endpoint, to-stack, to-host, from-endpoint, ... or a number)", sub)
	}
	return nil, fmt.Errorf("--type: subtype %q of %q must be a number", sub, name)
}

func parseTCPFlags(s string) (*flowpb.TCPFlags, error) {
	f := &flowpb.TCPFlags{}
	for _, n := range strings.Split(s, ",") {
		switch strings.ToUpper(strings.TrimSpace(n)) {
		case "SYN":
			f.SYN = true
		case "ACK":
			f.ACK = true
		case "FIN":
			f.FIN = true
		case "RST":
			f.RST = true
		case "PSH":
			f.PSH = true
		case "URG":
			f.URG = true
		case "ECE":
			f.ECE = true
		case "CWR":
			f.CWR = true
		case "NS":
			f.NS = true
		default:
			return nil, fmt.Errorf("--tcp-flags: unknown flag %q (want SYN, ACK, FIN, RST, PSH, URG, ECE, CWR or NS)", n)
		}
	}
	return f, nil
}

// parseTime takes RFC 3339 or a duration meaning "that long ago".
func parseTime(flag, s string, now time.Time) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(strings.TrimSuffix(strings.TrimSpace(s), " ago")); err == nil {
		if d < 0 {
			return nil, fmt.Errorf("--%s: the duration must not be negative, got %q", flag, s)
		}
		return timestamppb.New(now.Add(-d)), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return timestamppb.New(t), nil
		}
	}
	return nil, fmt.Errorf("--%s: %q is neither an RFC 3339 time (2026-11-25T12:00:00Z) nor a duration (5m)", flag, s)
}

// request builds the GetFlows request from the flags.
func (o *observeOpts) request(cmd *cobra.Command, now time.Time) (*observerpb.GetFlowsRequest, error) {
	switch o.output {
	case "compact", "table", "json", "jsonpb":
	default:
		return nil, fmt.Errorf("unknown output format %q (want compact, table, json or jsonpb)", o.output)
	}
	n := 0
	for _, set := range []bool{cmd.Flags().Changed("last"), cmd.Flags().Changed("first"), o.all} {
		if set {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("--last, --first and --all cannot be combined")
	}
	if o.first > 0 && o.follow {
		return nil, errors.New("--first cannot be combined with --follow")
	}
	req := &observerpb.GetFlowsRequest{Follow: o.follow}
	var err error
	if req.Since, err = parseTime("since", o.since, now); err != nil {
		return nil, err
	}
	if req.Until, err = parseTime("until", o.until, now); err != nil {
		return nil, err
	}
	switch {
	case cmd.Flags().Changed("first"):
		req.Number, req.First = o.first, true
	case cmd.Flags().Changed("last"):
		req.Number = o.last
	case o.all, o.follow, req.Since != nil:
	default:
		req.Number = 20
	}
	for flag, ids := range map[string][]uint{"identity": o.identity, "from-identity": o.fromIdentity, "to-identity": o.toIdentity} {
		for _, id := range ids {
			if id > 1<<32-1 {
				return nil, fmt.Errorf("--%s: %d is not a security identity (at most %d)", flag, id, uint32(1<<32-1))
			}
		}
	}
	if req.Whitelist, err = o.filters(); err != nil {
		return nil, err
	}
	// The server checks too; checking here names the mistake before any
	// connection is made.
	if _, err := filters.NewSet(req.Whitelist, nil); err != nil {
		return nil, fmt.Errorf("invalid filter: %w", err)
	}
	return req, nil
}

// dialHubble connects to a Hubble server and checks that it answers.
func dialHubble(ctx context.Context, server string, timeout time.Duration) (*grpc.ClientConn, error) {
	target := server
	if strings.HasPrefix(server, "/") {
		target = "unix://" + server
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("invalid Hubble server address %q: %w", server, err)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := observerpb.NewObserverClient(conn).ServerStatus(cctx, &observerpb.ServerStatusRequest{}, grpc.WaitForReady(true)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot reach the Hubble server at %s (is the agent running with --enable-hubble? $%s or --server select another): %s",
			server, HubbleServerEnv, status.Convert(err).Message())
	}
	return conn, nil
}

func (o *observeOpts) run(cmd *cobra.Command) error {
	req, err := o.request(cmd, time.Now())
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if o.printRawFilters {
		b, err := protojson.MarshalOptions{Multiline: true}.Marshal(&observerpb.GetFlowsRequest{Whitelist: req.Whitelist})
		if err != nil {
			return err
		}
		fmt.Fprintln(out, string(b))
		return nil
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, err := dialHubble(ctx, o.server, o.timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := observerpb.NewObserverClient(conn).GetFlows(ctx, req)
	if err != nil {
		return fmt.Errorf("get flows: %s", status.Convert(err).Message())
	}
	p := newFlowPrinter(out, cmd.ErrOrStderr(), o.output)
	defer p.flush()
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get flows: %s", status.Convert(err).Message())
		}
		if err := p.print(resp); err != nil {
			return err
		}
	}
}

// flowPrinter renders GetFlows responses.
type flowPrinter struct {
	out, errOut io.Writer
	format      string
	tw          *tabwriter.Writer
	header      bool
}

func newFlowPrinter(out, errOut io.Writer, format string) *flowPrinter {
	p := &flowPrinter{out: out, errOut: errOut, format: format}
	if format == "table" {
		p.tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	}
	return p
}

func (p *flowPrinter) flush() {
	if p.tw != nil {
		p.tw.Flush()
	}
}

func (p *flowPrinter) print(resp *observerpb.GetFlowsResponse) error {
	if p.format == "jsonpb" {
		b, err := protojson.Marshal(resp)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(p.out, string(b))
		return err
	}
	if le := resp.GetLostEvents(); le != nil {
		// Losses are never silent, whatever the format.
		fmt.Fprintf(p.errOut, "EVENTS LOST: %s %d\n", le.GetSource(), le.GetNumEventsLost())
		return nil
	}
	f := resp.GetFlow()
	if f == nil {
		return nil
	}
	switch p.format {
	case "json":
		b, err := protojson.Marshal(f)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(p.out, string(b))
		return err
	case "table":
		if !p.header {
			fmt.Fprintln(p.tw, "TIMESTAMP\tSOURCE\tDESTINATION\tTYPE\tVERDICT\tSUMMARY")
			p.header = true
		}
		fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.GetTime().AsTime().Local().Format(time.StampMilli),
			endpointString(f.GetSource(), f.GetIP().GetSource(), srcPort(f)), endpointString(f.GetDestination(), f.GetIP().GetDestination(), dstPort(f)),
			eventTypeString(f), f.GetVerdict(), summaryString(f))
		// Following: show rows as they come.
		return p.tw.Flush()
	}
	_, err := fmt.Fprintln(p.out, compactFlow(f))
	return err
}

// compactFlow is Hubble's one-line form:
// TIME [NODE]: SRC -> DST TYPE VERDICT (SUMMARY)
func compactFlow(f *flowpb.Flow) string {
	arrow := "->"
	if f.GetIsReply().GetValue() {
		arrow = "<-"
	}
	src := endpointString(f.GetSource(), f.GetIP().GetSource(), srcPort(f))
	dst := endpointString(f.GetDestination(), f.GetIP().GetDestination(), dstPort(f))
	if arrow == "<-" {
		src, dst = dst, src
	}
	return fmt.Sprintf("%s [%s]: %s %s %s %s %s (%s)", f.GetTime().AsTime().Local().Format(time.StampMilli), f.GetNodeName(),
		src, arrow, dst, eventTypeString(f), f.GetVerdict(), summaryString(f))
}

func srcPort(f *flowpb.Flow) uint32 {
	switch l := f.GetL4().GetProtocol().(type) {
	case *flowpb.Layer4_TCP:
		return l.TCP.GetSourcePort()
	case *flowpb.Layer4_UDP:
		return l.UDP.GetSourcePort()
	case *flowpb.Layer4_SCTP:
		return l.SCTP.GetSourcePort()
	}
	return 0
}

func dstPort(f *flowpb.Flow) uint32 {
	switch l := f.GetL4().GetProtocol().(type) {
	case *flowpb.Layer4_TCP:
		return l.TCP.GetDestinationPort()
	case *flowpb.Layer4_UDP:
		return l.UDP.GetDestinationPort()
	case *flowpb.Layer4_SCTP:
		return l.SCTP.GetDestinationPort()
	}
	return 0
}

// endpointString is ns/pod:port (ID:n), or the address with the identity's
// reserved name (world, host, ...).
func endpointString(e *flowpb.Endpoint, ip string, port uint32) string {
	name := ip
	if e.GetPodName() != "" {
		name = e.GetNamespace() + "/" + e.GetPodName()
	}
	if port != 0 {
		if strings.Contains(name, ":") {
			name = "[" + name + "]"
		}
		name += ":" + strconv.FormatUint(uint64(port), 10)
	}
	for _, l := range e.GetLabels() {
		if r, ok := strings.CutPrefix(l, "reserved:"); ok {
			return name + " (" + r + ")"
		}
	}
	if e.GetIdentity() != 0 {
		return fmt.Sprintf("%s (ID:%d)", name, e.GetIdentity())
	}
	return name
}

func traceName(sub int32) string {
	for n, v := range tracePoints {
		if v == sub {
			return n
		}
	}
	return "trace:" + strconv.Itoa(int(sub))
}

var matchNames = map[uint32]string{0: "none", 1: "L3-Only", 2: "L3-L4", 3: "L4-Only", 4: "all", 5: "L3-Proto", 6: "Proto-Only"}

// eventTypeString names what happened: the observation point of a trace,
// the policy verdict with its match, or the drop reason.
func eventTypeString(f *flowpb.Flow) string {
	et := f.GetEventType()
	switch et.GetType() {
	case eventTypes["trace"]:
		return traceName(et.GetSubType())
	case eventTypes["policy-verdict"]:
		action := "ALLOWED"
		switch f.GetVerdict() {
		case flowpb.Verdict_DROPPED:
			action = "DENIED"
		case flowpb.Verdict_AUDIT:
			action = "AUDITED"
		}
		return fmt.Sprintf("policy-verdict:%s %s %s", matchNames[f.GetPolicyMatchType()], f.GetTrafficDirection(), action)
	case eventTypes["drop"]:
		return strings.ReplaceAll(f.GetDropReasonDesc().String(), "_", " ")
	}
	return "event:" + strconv.Itoa(int(et.GetType()))
}

// summaryString is the flow's summary plus the policies that decided it.
func summaryString(f *flowpb.Flow) string {
	s := f.GetSummary()
	var pols []string
	for _, list := range [][]*flowpb.Policy{f.GetIngressAllowedBy(), f.GetEgressAllowedBy(), f.GetIngressDeniedBy(), f.GetEgressDeniedBy()} {
		for _, p := range list {
			var parts []string
			for _, x := range []string{p.GetKind(), p.GetNamespace(), p.GetName()} {
				if x != "" {
					parts = append(parts, x)
				}
			}
			pols = append(pols, strings.Join(parts, "/"))
		}
	}
	switch {
	case len(pols) > 0:
		s += "; policy " + strings.Join(pols, ", ")
	case f.GetDropReasonDesc() == flowpb.DropReason_POLICY_DENIED:
		// The answer to "which policy dropped it?" is: none allows it.
		s += "; no policy allows it"
	}
	return s
}
