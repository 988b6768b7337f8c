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
	"github.com/seta-net/seta/pkg/ipam"
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
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	dpCfg := datapath.Config{
		BPFRoot: cfg.BPFRoot, AttachMode: cfg.AttachMode, EndpointMapSize: uint32(cfg.EndpointMapSize),
	}
	if pools.V4 != nil {
		dpCfg.GatewayV4 = pools.V4.Gateway()
	}
	if pools.V6 != nil {
		dpCfg.GatewayV6 = pools.V6.Gateway()
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
	if err := mgr.Restore(); err != nil {
		return err
	}

	status := func() v1.Status {
		rep := dp.Features()
		feats := make([]v1.Feature, 0, len(rep.Features))
		for _, f := range rep.Features {
			feats = append(feats, v1.Feature{Name: f.Name, Status: string(f.Status), Required: f.Required, MinKernel: f.MinKernel, Detail: f.Detail})
		}
		return v1.Status{
			Version: version.String(), NodeName: cfg.NodeName, StartedAt: started.UTC(),
			Uptime: time.Since(started).Round(time.Second).String(), Endpoints: mgr.Count(),
			IPAM:     pools.Status(),
			Datapath: v1.DatapathStatus{Mode: string(dp.Mode()), Kernel: rep.Kernel, Features: feats, BPFRoot: cfg.BPFRoot},
		}
	}
	srv := server.New(log, server.Backend{Endpoints: mgr, Status: status, Config: cfg})
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
