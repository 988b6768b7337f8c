package lab

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/client"
	lb "github.com/seta-net/seta/pkg/loadbalancer"
	"github.com/seta-net/seta/pkg/service"
)

// This file is the lab's only contact with the agents' service API: it
// turns the lab's frontends into the agent's services (one per frontend,
// service.Service) and makes an agent hold exactly them.

// serviceAPI is what the lab needs of one agent's service API.
type serviceAPI interface {
	ListServices(ctx context.Context) ([]service.Detail, error)
	UpsertService(ctx context.Context, s service.Service) (service.Detail, error)
	DeleteService(ctx context.Context, id lb.ServiceID) error
}

// errNoServiceAPI: the agent does not serve the service API (an agent
// built before it existed answers 404).
var errNoServiceAPI = errors.New("the agent has no service API")

// agentAPI adapts the API client to serviceAPI.
type agentAPI struct{ c *client.Client }

func (a agentAPI) ListServices(ctx context.Context) ([]service.Detail, error) {
	ds, err := a.c.ListServices(ctx)
	if err != nil && strings.Contains(err.Error(), "404 Not Found") {
		return nil, errNoServiceAPI
	}
	return ds, err
}

func (a agentAPI) UpsertService(ctx context.Context, s service.Service) (service.Detail, error) {
	return a.c.UpsertService(ctx, s)
}

func (a agentAPI) DeleteService(ctx context.Context, id lb.ServiceID) error {
	_, err := a.c.DeleteService(ctx, uint16(id))
	if client.IsCode(err, v1.CodeNotFound) {
		return nil // gone already: what was wanted
	}
	return err
}

// pushFrontends makes a node's agent hold exactly the lab's frontends.
func pushFrontends(ctx context.Context, n *Node, fes []Frontend) error {
	return syncAgent(ctx, agentAPI{client.New(n.Socket, 10*time.Second)}, fes)
}

// toService is the agent's form of a frontend.
func toService(f Frontend) service.Service {
	s := service.Service{
		Name: f.Name, Namespace: f.Namespace,
		Frontend:              service.L4Addr{Addr: f.Addr.Addr(), Port: f.Addr.Port(), Proto: protoOf(f.Protocol)},
		Type:                  service.Type(f.Type),
		Backends:              make([]service.Backend, 0, len(f.Backends)),
		SessionAffinity:       service.Affinity(f.SessionAffinity),
		InternalTrafficPolicy: service.TrafficPolicy(f.InternalTrafficPolicy),
	}
	// The external traffic policy and Maglev concern traffic from outside
	// the node, which only the NodePort frontend gets; the agent refuses
	// them on a ClusterIP (as Kubernetes refuses externalTrafficPolicy).
	if f.Type == TypeNodePort {
		s.ExternalTrafficPolicy = service.TrafficPolicy(f.ExternalTrafficPolicy)
		s.Algorithm = service.Algorithm(f.Algorithm)
	}
	for _, b := range f.Backends {
		st := service.Active
		if b.Terminating {
			st = service.Terminating
		}
		s.Backends = append(s.Backends, service.Backend{Addr: b.Addr, State: st, NodeName: b.Node})
	}
	return s
}

func protoOf(s string) lb.Proto {
	p, _ := lb.ParseProto(s) // the lab only makes TCP and UDP
	return p
}

// labOwned says whether an agent service is the lab's to replace or remove:
// its frontend is in the lab's service ranges, or it is a NodePort on every
// node address. Services someone added by hand elsewhere are left alone.
func labOwned(s service.Service) bool {
	a := s.Frontend.Addr
	return serviceCIDRv4.Contains(a) || serviceCIDRv6.Contains(a) ||
		(s.Type == service.NodePort && a.IsUnspecified())
}

// syncAgent makes api hold exactly fes among the lab-owned services.
// Stale services go first: a frontend belongs to one (namespace, name) on
// the agent, so a ClusterIP reused by a new service is only free once the
// old one is gone. Services that are already as wanted are not written.
func syncAgent(ctx context.Context, api serviceAPI, fes []Frontend) error {
	have, err := api.ListServices(ctx)
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	want := map[service.L4Addr]service.Service{}
	for _, f := range fes {
		s := toService(f)
		want[s.Frontend] = s
	}
	current := map[service.L4Addr]service.Service{}
	var errs []error
	for _, d := range have {
		s := d.Service
		w, ok := want[s.Frontend]
		if ok && w.Name == s.Name && w.Namespace == s.Namespace {
			current[s.Frontend] = s
			continue
		}
		if !ok && !labOwned(s) {
			continue
		}
		if err := api.DeleteService(ctx, d.ID); err != nil {
			errs = append(errs, fmt.Errorf("delete service %s: %w", s.Frontend, err))
		}
	}
	for _, f := range fes {
		s := want[toService(f).Frontend]
		if cur, ok := current[s.Frontend]; ok && sameService(cur, s) {
			continue
		}
		if _, err := api.UpsertService(ctx, s); err != nil {
			errs = append(errs, fmt.Errorf("service %s/%s %s: %w", f.Namespace, f.Name, s.Frontend, err))
		}
	}
	return errors.Join(errs...)
}

// sameService compares an agent's service with a desired one, with the
// agent's defaults filled into the latter.
func sameService(have, want service.Service) bool {
	n, err := service.Normalize(want, service.DefaultNodePortRange)
	if err != nil {
		return false // let the agent say what is wrong
	}
	return reflect.DeepEqual(have, n)
}
