package observer

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/seta-net/seta/pkg/hubble/container"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// mkrecord is flow number i: at t0+i s, pod "p<i%3>", verdict dropped for
// odd i, TCP to port i (which tag reads back).
func mkrecord(i int) container.Record {
	v := flowpb.Verdict_FORWARDED
	if i%2 == 1 {
		v = flowpb.Verdict_DROPPED
	}
	return container.Record{
		Seconds: t0.Add(time.Duration(i) * time.Second).Unix(), NodeName: "node1", Verdict: v,
		Source:      container.Endpoint{Namespace: "default", PodName: []string{"p0", "p1", "p2"}[i%3]},
		Destination: container.Endpoint{Namespace: "other", PodName: "srv"},
		SrcIP:       "10.0.0.1", DstIP: "10.0.0.2", Proto: 6, SrcPort: 40000, DstPort: uint16(i),
	}
}

// mkflow is flow number i as a message.
func mkflow(i int) *flowpb.Flow {
	r := mkrecord(i)
	return r.Flow()
}

// tag names flow i "a" + i.
func tag(f *flowpb.Flow) string {
	return string(rune('a' + int(f.GetL4().GetTCP().GetDestinationPort())))
}

// The ring stores flows in two forms: records (the agent's) and messages
// (WriteFlow); the API must serve both alike.
var storeKinds = map[string]func(r *container.Ring, i int){
	"records":  func(r *container.Ring, i int) { rec := mkrecord(i); r.WriteRecord(&rec) },
	"messages": func(r *container.Ring, i int) { r.WriteFlow(mkflow(i)) },
}

// forEachStore runs a test for each form of stored flows.
func forEachStore(t *testing.T, test func(t *testing.T, write func(r *container.Ring, i int))) {
	for kind, write := range storeKinds {
		t.Run(kind, func(t *testing.T) { test(t, write) })
	}
}

type fixture struct {
	ring   *container.Ring
	write  func(i int)
	client observerpb.ObserverClient
	conn   *grpc.ClientConn
	now    time.Time
}

func setup(t *testing.T, n int, write func(r *container.Ring, i int)) *fixture {
	t.Helper()
	fx := &fixture{ring: container.NewRing(8), now: t0.Add(time.Hour)}
	fx.write = func(i int) { write(fx.ring, i) }
	for i := 0; i < n; i++ {
		fx.write(i)
	}
	srv := New(Options{NodeName: "node1", Version: "v-test", Ring: fx.ring, Started: t0, Now: func() time.Time { return fx.now }})
	sock := filepath.Join(t.TempDir(), "hubble.sock")
	l, err := Listen(srv, sock, "")
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve()
	t.Cleanup(l.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fx.client, fx.conn = observerpb.NewObserverClient(conn), conn
	return fx
}

// get runs a non-follow GetFlows and returns the tags of the flows.
func get(t *testing.T, c observerpb.ObserverClient, req *observerpb.GetFlowsRequest) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.GetFlows(ctx, req)
	if err != nil {
		return "", err
	}
	out := ""
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out += tag(r.GetFlow())
	}
}

func TestGetFlowsSelection(t *testing.T) {
	forEachStore(t, func(t *testing.T, write func(r *container.Ring, i int)) {
		fx := setup(t, 10, write) // ring of 8 keeps flows 2..9 = "cdefghij"
		ts := func(i int) *timestamppb.Timestamp { return timestamppb.New(t0.Add(time.Duration(i) * time.Second)) }
		dropped := []*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}}}
		for _, tc := range []struct {
			name string
			req  *observerpb.GetFlowsRequest
			want string
		}{
			{"all", &observerpb.GetFlowsRequest{}, "cdefghij"},
			{"last 3", &observerpb.GetFlowsRequest{Number: 3}, "hij"},
			{"first 3", &observerpb.GetFlowsRequest{Number: 3, First: true}, "cde"},
			{"last 2 dropped", &observerpb.GetFlowsRequest{Number: 2, Whitelist: dropped}, "hj"},
			{"not dropped", &observerpb.GetFlowsRequest{Blacklist: dropped}, "cegi"},
			{"pod p1 either side", &observerpb.GetFlowsRequest{Whitelist: []*flowpb.FlowFilter{{SourcePod: []string{"default/p1"}}, {DestinationPod: []string{"default/p1"}}}}, "eh"},
			{"since", &observerpb.GetFlowsRequest{Since: ts(7)}, "hij"},
			{"since until", &observerpb.GetFlowsRequest{Since: ts(4), Until: ts(6)}, "efg"},
			{"first since", &observerpb.GetFlowsRequest{Since: ts(5), Number: 1, First: true}, "f"},
			{"nothing matches", &observerpb.GetFlowsRequest{Whitelist: []*flowpb.FlowFilter{{SourceIp: []string{"192.0.2.1"}}}}, ""},
		} {
			got, err := get(t, fx.client, tc.req)
			if err != nil || got != tc.want {
				t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
			}
		}
	})
}

func TestGetFlowsRejectsBadRequests(t *testing.T) {
	fx := setup(t, 1, storeKinds["records"])
	for name, req := range map[string]*observerpb.GetFlowsRequest{
		"first+follow":  {First: true, Follow: true},
		"until<since":   {Since: timestamppb.New(t0.Add(time.Hour)), Until: timestamppb.New(t0)},
		"bad ip filter": {Whitelist: []*flowpb.FlowFilter{{SourceIp: []string{"10.0.0.300"}}}},
		"bad label":     {Whitelist: []*flowpb.FlowFilter{{SourceLabel: []string{"a in (b"}}}},
		"bad mask":      {FieldMask: &fieldmaskpb.FieldMask{Paths: []string{"no_such_field"}}},
		"bad timestamp": {Since: &timestamppb.Timestamp{Seconds: -1 << 62}},
	} {
		_, err := get(t, fx.client, req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: got %v, want InvalidArgument", name, err)
		}
	}
}

func TestFieldMask(t *testing.T) {
	forEachStore(t, func(t *testing.T, write func(r *container.Ring, i int)) {
		fx := setup(t, 1, write)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := fx.client.GetFlows(ctx, &observerpb.GetFlowsRequest{FieldMask: &fieldmaskpb.FieldMask{Paths: []string{"verdict", "source.pod_name"}}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		f := r.GetFlow()
		if f.GetVerdict() != flowpb.Verdict_FORWARDED || f.GetSource().GetPodName() != "p0" || f.GetSource().GetNamespace() != "" || f.GetIP() != nil || f.GetSummary() != "" {
			t.Errorf("masked flow: %v", f)
		}
		// The stored flow is untouched.
		if e := fx.ring.Snapshot()[0]; e.Response().GetFlow().GetSummary() != "TCP Flags: " || e.Response().GetFlow().GetSource().GetNamespace() != "default" {
			t.Error("the field mask modified the stored flow")
		}
	})
}

func TestFollowStreamsNewFlows(t *testing.T) {
	forEachStore(t, func(t *testing.T, write func(r *container.Ring, i int)) {
		fx := setup(t, 3, write)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := fx.client.GetFlows(ctx, &observerpb.GetFlowsRequest{Number: 1, Follow: true,
			Whitelist: []*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_FORWARDED}}}})
		if err != nil {
			t.Fatal(err)
		}
		recv := func() string {
			r, err := st.Recv()
			if err != nil {
				t.Fatal(err)
			}
			return tag(r.GetFlow())
		}
		if got := recv(); got != "c" { // the last matching stored flow
			t.Fatalf("history: %q", got)
		}
		// Flows written after the call started, filtered (3 and 5 are drops).
		go func() {
			time.Sleep(100 * time.Millisecond)
			for i := 3; i < 7; i++ {
				fx.write(i)
			}
		}()
		if got := recv() + recv(); got != "eg" {
			t.Fatalf("followed: %q", got)
		}
	})
}

func TestSlowFollowerGetsLostEvents(t *testing.T) {
	forEachStore(t, func(t *testing.T, write func(r *container.Ring, i int)) {
		ring := container.NewRing(16)
		s := New(Options{NodeName: "n", Ring: ring})
		_, sub := ring.SnapshotSubscribe(2)
		for i := 0; i < 10; i++ {
			write(ring, i) // the follower holds 2, loses 8
		}
		var lost uint64
		var flows int
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		r, _ := parseRequest(&observerpb.GetFlowsRequest{Follow: true})
		s.follow(ctx, r, sub, func(e *observerpb.GetFlowsResponse) error {
			if le := e.GetLostEvents(); le != nil {
				if le.Source != flowpb.LostEventSource_HUBBLE_RING_BUFFER {
					t.Errorf("source %v", le.Source)
				}
				lost += le.NumEventsLost
				cancel()
			} else {
				flows++
			}
			return nil
		})
		if lost != 8 || flows != 2 {
			t.Errorf("lost %d, flows %d; want 8 and 2", lost, flows)
		}
	})
}

func TestStatusNodesNamespaces(t *testing.T) {
	forEachStore(t, func(t *testing.T, write func(r *container.Ring, i int)) {
		fx := setup(t, 10, write)
		fx.now = t0.Add(30 * time.Second) // flows 2..9 are within the last minute
		ctx := context.Background()
		st, err := fx.client.ServerStatus(ctx, &observerpb.ServerStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if st.NumFlows != 8 || st.MaxFlows != 8 || st.SeenFlows != 10 || st.UptimeNs != uint64(30*time.Second) || st.Version != "v-test" || st.FlowsRate != 8.0/60 {
			t.Errorf("status: %v", st)
		}
		hc, err := healthpb.NewHealthClient(fx.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: HealthService})
		if err != nil || hc.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %s: %v, %v", HealthService, hc, err)
		}
		nodes, err := fx.client.GetNodes(ctx, &observerpb.GetNodesRequest{})
		if err != nil || len(nodes.Nodes) != 1 || nodes.Nodes[0].Name != "node1" || nodes.Nodes[0].SeenFlows != 10 {
			t.Errorf("nodes: %v, %v", nodes, err)
		}
		ns, err := fx.client.GetNamespaces(ctx, &observerpb.GetNamespacesRequest{})
		if err != nil || len(ns.Namespaces) != 2 || ns.Namespaces[0].Namespace != "default" || ns.Namespaces[1].Namespace != "other" {
			t.Errorf("namespaces: %v, %v", ns, err)
		}
	})
}

func TestListenErrors(t *testing.T) {
	ring := container.NewRing(1)
	sock := filepath.Join(t.TempDir(), "h.sock")
	l, err := Listen(New(Options{Ring: ring}), sock, "")
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve()
	defer l.Stop()
	if _, err := Listen(New(Options{Ring: ring}), sock, ""); err == nil {
		t.Error("a second server on a live socket was allowed")
	}
	if _, err := Listen(New(Options{Ring: ring}), filepath.Join(t.TempDir(), "x.sock"), "no-port"); err == nil {
		t.Error("a TCP address without a port was accepted")
	}
}
