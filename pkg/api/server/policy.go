package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/identity"
	"github.com/seta-net/seta/pkg/labels"
	"github.com/seta-net/seta/pkg/policy"
	"github.com/seta-net/seta/pkg/policy/api"
)

func (s *Server) needPolicy(w http.ResponseWriter) bool {
	if s.b.Policy == nil {
		writeErr(w, http.StatusServiceUnavailable, v1.CodeInternal, "policy is not available on this agent")
		return false
	}
	return true
}

func summary(p *api.Policy) v1.PolicySummary {
	n := len(p.Rules)
	if p.NetworkPolicy != nil {
		n = 1
	}
	return v1.PolicySummary{Kind: p.Kind, Namespace: p.Namespace, Name: p.Name, Source: p.Source, Rules: n}
}

// parseFiles parses every file; all errors are reported together.
func parseFiles(req v1.PolicyImport) ([]*api.Policy, error) {
	if len(req.Files) == 0 {
		return nil, errors.New("no policy files in the request")
	}
	var all []*api.Policy
	var errs []error
	seen := map[string]string{}
	for _, f := range req.Files {
		ps, err := api.Parse([]byte(f.Content), f.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range ps {
			if prev, dup := seen[p.Key()]; dup {
				errs = append(errs, fmt.Errorf("%s: %s %s/%s is also defined in %s", p.Source, p.Kind, p.Namespace, p.Name, prev))
			}
			seen[p.Key()] = p.Source
		}
		all = append(all, ps...)
	}
	return all, errors.Join(errs...)
}

func (s *Server) importPolicy(w http.ResponseWriter, r *http.Request) {
	if !s.needPolicy(w) {
		return
	}
	var req v1.PolicyImport
	if !decode(w, r, &req) {
		return
	}
	ps, err := parseFiles(req)
	if err != nil {
		writeErr(w, http.StatusBadRequest, v1.CodeInvalid, err.Error())
		return
	}
	rev, err := s.b.Policy.Import(ps)
	if err != nil {
		s.fail(w, err)
		return
	}
	res := v1.PolicyImportResult{Revision: rev}
	for _, p := range ps {
		res.Policies = append(res.Policies, summary(p))
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) validatePolicy(w http.ResponseWriter, r *http.Request) {
	var req v1.PolicyImport
	if !decode(w, r, &req) {
		return
	}
	ps, err := parseFiles(req)
	if err != nil {
		writeErr(w, http.StatusBadRequest, v1.CodeInvalid, err.Error())
		return
	}
	res := v1.PolicyImportResult{}
	for _, p := range ps {
		res.Policies = append(res.Policies, summary(p))
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) listPolicy(w http.ResponseWriter, r *http.Request) {
	if !s.needPolicy(w) {
		return
	}
	name, ns := r.URL.Query().Get("name"), r.URL.Query().Get("namespace")
	out := v1.PolicyList{Revision: s.b.Policy.Revision(), Policies: []v1.PolicyDetail{}}
	for _, p := range s.b.Policy.Policies() {
		if name != "" && p.Name != name || ns != "" && p.Namespace != ns {
			continue
		}
		d := v1.PolicyDetail{PolicySummary: summary(p)}
		if p.NetworkPolicy != nil {
			d.Spec = p.NetworkPolicy
		} else {
			d.Spec = p.Rules
		}
		out.Policies = append(out.Policies, d)
	}
	if name != "" && len(out.Policies) == 0 {
		writeErr(w, http.StatusNotFound, v1.CodeNotFound, fmt.Sprintf("no policy named %q", name))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// deletePolicy removes ?all=true, or the policies named ?name= (narrowed by
// ?namespace= and ?kind=); a name that matches several policies of
// different kinds or namespaces is refused unless narrowed.
func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request) {
	if !s.needPolicy(w) {
		return
	}
	q := r.URL.Query()
	if q.Get("all") == "true" {
		var keys []string
		for _, p := range s.b.Policy.Policies() {
			keys = append(keys, p.Key())
		}
		rev, err := s.b.Policy.DeleteAll()
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v1.PolicyDeleteResult{Revision: rev, Deleted: keys})
		return
	}
	name, ns, kind := q.Get("name"), q.Get("namespace"), q.Get("kind")
	if name == "" {
		writeErr(w, http.StatusBadRequest, v1.CodeInvalid, "DELETE /v1/policy needs ?name= (with optional namespace and kind) or ?all=true")
		return
	}
	var keys []string
	for _, p := range s.b.Policy.Policies() {
		if p.Name == name && (ns == "" || p.Namespace == ns) && (kind == "" || strings.EqualFold(p.Kind, kind)) {
			keys = append(keys, p.Key())
		}
	}
	switch {
	case len(keys) == 0:
		writeErr(w, http.StatusNotFound, v1.CodeNotFound, fmt.Sprintf("no policy named %q", name))
		return
	case len(keys) > 1:
		writeErr(w, http.StatusConflict, v1.CodeInvalid, fmt.Sprintf("%q names %d policies (%s); give --namespace or --kind", name, len(keys), strings.Join(keys, ", ")))
		return
	}
	rev, err := s.b.Policy.Delete(keys...)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v1.PolicyDeleteResult{Revision: rev, Deleted: keys})
}

// tracePolicy answers ?src=k=v,...&dst=k=v,...&dport=80/TCP.
func (s *Server) tracePolicy(w http.ResponseWriter, r *http.Request) {
	if !s.needPolicy(w) {
		return
	}
	q := r.URL.Query()
	parse := func(name string) (labels.Labels, bool) {
		var raw []string
		if v := q.Get(name); v != "" {
			raw = strings.Split(v, ",")
		}
		ls, err := s.b.Policy.TraceLabels(raw)
		if err != nil {
			writeErr(w, http.StatusBadRequest, v1.CodeInvalid, name+": "+err.Error())
			return nil, false
		}
		return ls, true
	}
	src, ok := parse("src")
	if !ok {
		return
	}
	dst, ok := parse("dst")
	if !ok {
		return
	}
	proto, port, err := ParseDport(q.Get("dport"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, v1.CodeInvalid, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.b.Policy.Trace(src, dst, proto, port))
}

// ParseDport reads "80/TCP", "53/udp", "8/ICMP" (ICMP type) or "" (any).
func ParseDport(s string) (uint8, uint16, error) {
	if s == "" {
		return policy.ProtoTCP, 0, nil
	}
	p, proto, ok := strings.Cut(s, "/")
	if !ok {
		proto = "TCP"
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("dport %q: want PORT/PROTOCOL, e.g. 80/TCP", s)
	}
	switch strings.ToUpper(proto) {
	case "TCP":
		return policy.ProtoTCP, uint16(n), nil
	case "UDP":
		return policy.ProtoUDP, uint16(n), nil
	case "SCTP":
		return policy.ProtoSCTP, uint16(n), nil
	case "ICMP":
		return policy.ProtoICMP, uint16(n), nil
	case "ICMPV6":
		return policy.ProtoICMPv6, uint16(n), nil
	}
	return 0, 0, fmt.Errorf("dport %q: unknown protocol %q (TCP, UDP, SCTP, ICMP, ICMPv6)", s, proto)
}

func identityInfo(id identity.Identity) v1.IdentityInfo {
	out := v1.IdentityInfo{ID: uint32(id.ID), Labels: id.LabelStrings, RefCount: id.RefCount, Reserved: id.ID.IsReserved()}
	if id.Unused != nil {
		out.UnusedSince = id.Unused.UTC().Format(time.RFC3339)
	}
	return out
}

func (s *Server) listIdentities(w http.ResponseWriter, _ *http.Request) {
	if s.b.Identities == nil {
		writeErr(w, http.StatusServiceUnavailable, v1.CodeInternal, "identities are not available on this agent")
		return
	}
	out := []v1.IdentityInfo{}
	for _, id := range s.b.Identities.List() {
		out = append(out, identityInfo(id))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getIdentity(w http.ResponseWriter, r *http.Request) {
	if s.b.Identities == nil {
		writeErr(w, http.StatusServiceUnavailable, v1.CodeInternal, "identities are not available on this agent")
		return
	}
	n, err := strconv.ParseUint(r.PathValue("id"), 10, 32)
	if err != nil {
		writeErr(w, http.StatusBadRequest, v1.CodeInvalid, fmt.Sprintf("identity must be a number, got %q", r.PathValue("id")))
		return
	}
	id, ok := s.b.Identities.Get(identity.ID(n))
	if !ok {
		writeErr(w, http.StatusNotFound, v1.CodeNotFound, fmt.Sprintf("no identity %d", n))
		return
	}
	writeJSON(w, http.StatusOK, identityInfo(id))
}
