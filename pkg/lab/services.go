package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"
)

// CreateService adds a service to the lab and pushes every service's
// frontends to every node's agent.
func CreateService(ctx context.Context, lab string, sp ServiceSpec) (*Service, error) {
	if err := checkRoot(); err != nil {
		return nil, err
	}
	unlock, err := lock(lab, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := Load(lab)
	if err != nil {
		return nil, err
	}
	svc, err := newService(st, sp)
	if err != nil {
		return nil, err
	}
	st.Services = append(st.Services, svc)
	if err := st.Save(); err != nil {
		return nil, err
	}
	// The service is in the state (and so in DNS) whatever happens to the
	// push; `seta lab up` pushes again.
	if err := syncServices(ctx, st); err != nil {
		return svc, fmt.Errorf("service %s created, but not every agent has it: %w", svc.Key(), err)
	}
	return svc, nil
}

// DeleteService removes a service from the lab and from every agent.
func DeleteService(ctx context.Context, lab, namespace, name string) error {
	if err := checkRoot(); err != nil {
		return err
	}
	unlock, err := lock(lab, false)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := Load(lab)
	if err != nil {
		return err
	}
	svc := st.Service(namespace, name)
	if svc == nil {
		return fmt.Errorf("lab %q has no service %s/%s", lab, namespace, name)
	}
	if svc.NodeDNS {
		return fmt.Errorf("service %s is the lab's cluster DNS; it goes with the lab (seta lab down)", svc.Key())
	}
	st.Services = slices.DeleteFunc(st.Services, func(s *Service) bool { return s == svc })
	if err := st.Save(); err != nil {
		return err
	}
	if err := syncServices(ctx, st); err != nil {
		return fmt.Errorf("service %s deleted, but not from every agent: %w", svc.Key(), err)
	}
	return nil
}

// ensureDNSService adds the cluster DNS service to a lab that lacks it.
func ensureDNSService(st *State) {
	if st.Service(DNSServiceNamespace, DNSServiceName) == nil {
		st.Services = append([]*Service{dnsService()}, st.Services...)
	}
}

// syncServices pushes the desired frontends to every node's agent; each
// agent gets the full set (each node load-balances every service itself)
// and replaces what it had from the lab. All nodes are tried; the errors
// are joined.
func syncServices(ctx context.Context, st *State) error {
	fes := Frontends(st)
	var errs []string
	for _, n := range st.Nodes {
		if !n.Agent.Alive() {
			errs = append(errs, n.Name+": seta-agent is not running (seta lab up starts it)")
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := pushFrontends(pctx, n, fes)
		cancel()
		if err != nil {
			errs = append(errs, n.Name+": "+strings.ReplaceAll(err.Error(), "\n", "; "))
		}
	}
	if len(errs) > 0 {
		// One line: it ends up in a step or a warning.
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// syncIfChanged pushes the frontends when a pod change altered them (a pod
// that no service selects changes nothing, and costs no API call).
// Failures are notes on out, not errors: the pod itself is fine, and the
// next change or `seta lab up` pushes again.
func syncIfChanged(ctx context.Context, st *State, before []Frontend, out io.Writer) {
	if reflect.DeepEqual(before, Frontends(st)) {
		return
	}
	if err := syncServices(ctx, st); err != nil && out != nil {
		fmt.Fprintf(out, "warning: service backends not updated on every node: %v\n", err)
	}
}
