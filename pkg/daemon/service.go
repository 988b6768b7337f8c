package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/seta-net/seta/pkg/config"
	"github.com/seta-net/seta/pkg/datapath"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/loadbalancer"
	"github.com/seta-net/seta/pkg/service"
)

// serviceRefreshInterval is how often the service table checks whether the
// node's endpoints changed (which backends are local) and retries failed
// writes. The endpoint manager has no change notification; its
// Generation is a cheap atomic read. A variable for tests.
var serviceRefreshInterval = time.Second

// lbMapOf is where the service control plane meets the datapath: the
// load-balancer maps it loaded and pinned (pkg/datapath/lb, which the
// daemon must not import itself). nil: services are not available.
func lbMapOf(dp *datapath.Datapath) loadbalancer.LBMap {
	// HOOK(datapath): the datapath's LBMap() returns *lb.Map; a nil one
	// must not become a non-nil interface.
	if m := dp.LBMap(); m != nil {
		return m
	}
	return nil
}

// endpointSource is what the service table needs of the endpoint manager.
type endpointSource = endpoint.EndpointLister

// startServices restores the service table from the state directory and
// the pinned maps, and keeps it in step with the node's endpoints until
// ctx ends. Call it after the endpoint manager restored the endpoints:
// otherwise the first sync would see no local backends and empty the
// slots of externalTrafficPolicy=Local services until the next refresh.
func startServices(ctx context.Context, log *slog.Logger, cfg config.Agent, lbm loadbalancer.LBMap, eps endpointSource) (*service.Table, error) {
	nodePorts, err := service.ParsePortRange(cfg.NodePortRange)
	if err != nil {
		return nil, err // config.Validate checked it; this is a programming error
	}
	addrs := endpoint.NewAddrCache(eps)
	isLocal := func(a netip.Addr) bool { _, ok := addrs.Lookup(a); return ok }
	tbl, err := service.New(log, service.Config{
		StateDir: cfg.StateDir, NodeName: cfg.NodeName, NodePorts: nodePorts, IsLocal: isLocal,
		// --bpf-lb-map-max sizes both the service map (entries and
		// slots) and the backend map.
		ServiceMapSize: cfg.BPFLBMapMax, BackendMapSize: cfg.BPFLBMapMax,
	}, lbm)
	if err != nil {
		return nil, err
	}
	go refreshServices(ctx, log, tbl, eps)
	return tbl, nil
}

// refreshServices calls Refresh when the endpoints changed, or while the
// last sync failed.
func refreshServices(ctx context.Context, log *slog.Logger, tbl *service.Table, eps endpointSource) {
	log = log.With("subsys", "service")
	last := eps.Generation()
	lastErr := ""
	tick := time.NewTicker(serviceRefreshInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		g := eps.Generation()
		if g == last && tbl.Err() == nil {
			continue
		}
		last = g
		err := tbl.Refresh()
		// Log a failure once, not every second while it lasts.
		switch {
		case err != nil && err.Error() != lastErr:
			log.Warn("Writing services to the datapath failed; retrying", "error", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			log.Info("Services are in the datapath again")
			lastErr = ""
		}
	}
}
