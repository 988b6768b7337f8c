// Package daemon wires the agent together: configuration, IPAM, the
// datapath, the endpoint manager and the API server. cmd/seta-agent only
// parses flags and calls Run.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/seta-net/seta/pkg/api/server"
	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/config"
	"github.com/seta-net/seta/pkg/datapath"
	"github.com/seta-net/seta/pkg/datapath/linux"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/enforcer"
	"github.com/seta-net/seta/pkg/identity"
	"github.com/seta-net/seta/pkg/ipam"
	"github.com/seta-net/seta/pkg/labels"
	"github.com/seta-net/seta/pkg/policy"
	"github.com/seta-net/seta/pkg/service"
	"github.com/seta-net/seta/pkg/version"
)

// Run runs the agent until ctx is cancelled. On return the datapath keeps
// forwarding: programs stay attached and maps pinned, and the next agent
// picks them up.
func Run(ctx context.Context, log *slog.Logger, cfg config.Agent) error {
	started := time.Now()
	log = log.With("node", cfg.NodeName)
	log.Info("Starting seta-agent", "version", version.String())

	pools, err := buildIPAM(cfg)
	if err != nil {
		return err
	}
	if cfg.PprofAddress != "" {
		stopPprof, err := servePprof(log, cfg.PprofAddress)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	dpCfg := datapath.Config{
		BPFRoot: cfg.BPFRoot, AttachMode: cfg.AttachMode, EndpointMapSize: uint32(cfg.EndpointMapSize),
		PolicyMapSize: uint32(cfg.PolicyMapSize), AuditMode: cfg.PolicyAuditMode,
		EnableSocketLB: cfg.EnableSocketLB, CgroupRoot: cfg.CgroupRoot, LBMapSize: uint32(cfg.BPFLBMapMax),
	}
	// Validated with the config; the socket programs match NodePorts in it.
	if r, err := service.ParsePortRange(cfg.NodePortRange); err == nil {
		dpCfg.NodePortMin, dpCfg.NodePortMax = r.Min, r.Max
	}
	if err := traceConfig(cfg, &dpCfg); err != nil {
		return err
	}
	if pools.V4 != nil {
		dpCfg.GatewayV4 = pools.V4.Gateway()
	}
	if pools.V6 != nil {
		dpCfg.GatewayV6 = pools.V6.Gateway()
	}
	dpCfg.HostFirewall, dpCfg.EnableNodePort = cfg.EnableHostFirewall, cfg.EnableNodePort
	dpCfg.NATMapSize = uint32(cfg.BPFNATGlobalMax)
	dpCfg.Devices = cfg.Devices
	if len(dpCfg.Devices) == 0 {
		// Also without either feature: a previous agent's attachments
		// (clsact filters) are found on them.
		if dpCfg.Devices, err = linux.HostFirewallDevices(); err != nil {
			return err
		}
	}
	dp, err := datapath.New(log, dpCfg)
	if err != nil {
		return err
	}
	defer dp.Close()

	store, err := endpoint.NewStore(cfg.StateDir)
	if err != nil {
		return err
	}
	// Each endpoint takes one entry per address family in the endpoint map.
	perEP := 0
	if pools.V4 != nil {
		perEP++
	}
	if pools.V6 != nil {
		perEP++
	}
	mgr := endpoint.NewManager(log, endpoint.Config{MTU: cfg.MTU, MaxEndpoints: cfg.EndpointMapSize / perEP}, store, pools, dp)

	met := newMetrics()
	pol, alloc, err := buildPolicy(log, cfg, dp, met.ObserveRegeneration)
	if err != nil {
		return err
	}
	mgr.SetPolicyHook(pol)
	if err := mgr.Restore(); err != nil {
		return err
	}
	var svcs *service.Table // nil: the service routes answer 503
	if lbm := lbMapOf(dp); lbm != nil {
		if svcs, err = startServices(ctx, log, cfg, lbm, mgr); err != nil {
			return err
		}
	}
	go identityLoop(ctx, log, cfg, alloc, pol)
	if cfg.PolicyDir != "" {
		go watchPolicyDir(ctx, log, cfg.PolicyDir, pol)
	}

	var hub *hubble
	if cfg.EnableHubble {
		if hub, err = startHubble(ctx, log, cfg, dp, mgr, alloc, pol, met); err != nil {
			return err
		}
		defer hub.Stop()
	}

	status := func() v1.Status {
		rep := dp.Features()
		ps := pol.Stats()
		feats := make([]v1.Feature, 0, len(rep.Features))
		for _, f := range rep.Features {
			feats = append(feats, v1.Feature{Name: f.Name, Status: string(f.Status), Required: f.Required, MinKernel: f.MinKernel, Detail: f.Detail})
		}
		var hs *v1.HubbleStatus
		if hub != nil {
			lost, _ := dp.EventsLost()
			hs = &v1.HubbleStatus{Socket: cfg.HubbleSocketPath, ListenAddress: cfg.HubbleListenAddress,
				Flows: hub.ring.Len(), MaxFlows: hub.ring.Cap(), SeenFlows: hub.ring.Seen(), DecodeErrors: hub.decodeErrors.Load(),
				EventsLost: lost, MonitorAggregation: cfg.MonitorAggregation}
		}
		return v1.Status{
			Hubble:  hs,
			Version: version.String(), NodeName: cfg.NodeName, StartedAt: started.UTC(),
			Uptime: time.Since(started).Round(time.Second).String(), Endpoints: mgr.Count(),
			IPAM: pools.Status(),
			Datapath: v1.DatapathStatus{Mode: string(dp.Mode()), Kernel: rep.Kernel, Features: feats, BPFRoot: cfg.BPFRoot,
				NodePort: dp.NodePort(), Devices: dp.Devices()},
			Policy: &v1.PolicyStatus{
				Enforcement: cfg.PolicyEnforcement, AuditMode: cfg.PolicyAuditMode, HostFirewall: cfg.EnableHostFirewall,
				Revision: pol.Revision(), Policies: len(pol.Policies()), Identities: len(alloc.List()),
				Imports: ps.Imports, ImportErrors: ps.ImportErrors, RefusedTooLarge: ps.TooLarge,
			},
		}
	}
	srv := server.New(log, server.Backend{Endpoints: mgr, Status: status, Config: cfg, Policy: pol, Identities: alloc, Services: svcs,
		ObserveRequest: met.ObserveAPI})
	if cfg.PrometheusServeAddr != "" {
		stopMetrics, err := serveMetrics(log, cfg.PrometheusServeAddr, cfg.HubbleMetrics, met, mgr, alloc, pol, dp)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	if err := srv.Listen(cfg.APISocket); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	log.Info("Agent ready", "socket", cfg.APISocket, "endpoints", mgr.Count(), "attach", dp.Mode())

	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("API server: %w", err)
	}
	log.Info("Shutting down; the datapath keeps forwarding")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// traceConfig turns the monitor aggregation options into the datapath's.
// pkg/config keeps them as strings (it must not import the datapath); they
// are checked here, before anything on the node changes.
func traceConfig(cfg config.Agent, dp *datapath.Config) error {
	level, err := datapath.ParseMonitorAggregation(cfg.MonitorAggregation)
	if err != nil {
		return fmt.Errorf("invalid agent configuration: monitorAggregation: %w", err)
	}
	flags, err := datapath.ParseTCPFlags(cfg.MonitorAggregationFlags)
	if err != nil {
		return fmt.Errorf("invalid agent configuration: monitorAggregationFlags: %w", err)
	}
	interval, _ := time.ParseDuration(cfg.MonitorAggregationInterval) // validated by config
	dp.TraceEvents = cfg.BPFEventsTraceEnabled
	// Hubble is the event ring's only reader.
	dp.NoEvents = !cfg.EnableHubble
	dp.MonitorAggregation, dp.MonitorAggregationFlags, dp.MonitorAggregationInterval = level, flags, interval
	return nil
}

// buildIPAM parses the pod CIDRs and refuses ones that overlap addresses the
// node already uses.
func buildIPAM(cfg config.Agent) (*ipam.IPAM, error) {
	var pools ipam.IPAM
	var cidrs []netip.Prefix
	if cfg.IPv4PodCIDR != "" {
		p, err := ipam.ParsePodCIDR(cfg.IPv4PodCIDR, 4)
		if err != nil {
			return nil, err
		}
		pools.V4 = ipam.NewPool(p)
		cidrs = append(cidrs, p)
	}
	if cfg.IPv6PodCIDR != "" {
		p, err := ipam.ParsePodCIDR(cfg.IPv6PodCIDR, 6)
		if err != nil {
			return nil, err
		}
		pools.V6 = ipam.NewPool(p)
		cidrs = append(cidrs, p)
	}
	nodeAddrs, err := linux.NodeAddrs()
	if err != nil {
		return nil, err
	}
	for _, c := range cidrs {
		for _, n := range nodeAddrs {
			if c.Overlaps(n) {
				return nil, fmt.Errorf("pod CIDR %s overlaps %s, which the node already uses; choose a pod CIDR outside the node's networks", c, n)
			}
		}
	}
	return &pools, nil
}

func buildPolicy(log *slog.Logger, cfg config.Agent, dp *datapath.Datapath, onRegen func(time.Duration, error)) (*enforcer.Enforcer, *identity.Allocator, error) {
	grace, _ := time.ParseDuration(cfg.IdentityGracePeriod)
	alloc, err := identity.NewAllocator(identity.Options{StateDir: cfg.StateDir, Grace: grace})
	if err != nil {
		return nil, nil, err
	}
	filter, err := labels.NewFilter(cfg.LabelExclusions)
	if err != nil {
		return nil, nil, err
	}
	mode, err := policy.ParseMode(cfg.PolicyEnforcement)
	if err != nil {
		return nil, nil, err
	}
	pol, err := enforcer.New(log, enforcer.Config{
		Mode: mode, AuditMode: cfg.PolicyAuditMode, AllowLocalhost: cfg.AllowLocalhost,
		LabelFilter: filter, StateDir: cfg.StateDir,
		HostFirewall: cfg.EnableHostFirewall, NodeLabels: cfg.NodeLabels, OnRegenerate: onRegen,
	}, alloc, dp)
	if err != nil {
		return nil, nil, err
	}
	return pol, alloc, nil
}

// identityLoop frees identities unused past the grace period, and
// regenerates endpoint policy when identities come and go outside an
// endpoint's own creation (CIDR identities, garbage collection).
func identityLoop(ctx context.Context, log *slog.Logger, cfg config.Agent, alloc *identity.Allocator, pol *enforcer.Enforcer) {
	changed := make(chan struct{}, 1)
	alloc.OnChange(func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if freed := alloc.GC(); len(freed) > 0 {
				log.Info("Freed unused identities", "subsys", "identity", "identities", freed)
			}
		case <-changed:
			if err := pol.Regenerate(); err != nil {
				log.Warn("Regenerating endpoint policy failed", "subsys", "policy", "error", err)
			}
		}
	}
}
