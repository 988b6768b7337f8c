package policy

import (
	"slices"

	"github.com/seta-net/seta/pkg/labels"
	"github.com/seta-net/seta/pkg/policy/api"
)

// NamespaceLabelPrefix is the key prefix under which an endpoint carries its
// namespace's labels (as Cilium does), so namespaceSelectors can match them.
const NamespaceLabelPrefix = "io.cilium.k8s.namespace.labels."

// NamespaceNameLabel is the label Kubernetes puts on every namespace.
const NamespaceNameLabel = "kubernetes.io/metadata.name"

// selector is a compiled EndpointSelector: every requirement must hold.
type selector struct {
	reqs []requirement
	// matchAll is the empty selector.
	matchAll bool
}

type requirement struct {
	key    string // selector key, may carry a source
	op     api.Operator
	values []string
}

func (r requirement) matches(ls labels.Labels) bool {
	v, ok := ls.Get(r.key)
	switch r.op {
	case api.OpIn:
		return ok && slices.Contains(r.values, v)
	case api.OpNotIn:
		return !ok || !slices.Contains(r.values, v)
	case api.OpExists:
		return ok
	case api.OpDoesNotExist:
		return !ok
	}
	return false
}

// compile turns an API selector into a selector. extra requirements (the
// namespace scoping of namespaced policies) are added to it.
func compile(s *api.EndpointSelector, extra ...requirement) selector {
	var out selector
	if s != nil {
		for k, v := range s.MatchLabels {
			out.reqs = append(out.reqs, requirement{key: k, op: api.OpIn, values: []string{v}})
		}
		for _, r := range s.MatchExpressions {
			out.reqs = append(out.reqs, requirement{key: r.Key, op: r.Operator, values: r.Values})
		}
	}
	out.reqs = append(out.reqs, extra...)
	out.matchAll = len(out.reqs) == 0
	// Deterministic order keeps traces and tests stable.
	slices.SortFunc(out.reqs, func(a, b requirement) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	return out
}

func (s selector) matches(ls labels.Labels) bool {
	for _, r := range s.reqs {
		if !r.matches(ls) {
			return false
		}
	}
	return true
}

// mentionsNamespace reports whether a selector already says which
// namespace it means, in which case no implicit scoping is added.
func mentionsNamespace(s *api.EndpointSelector) bool {
	if s == nil {
		return false
	}
	is := func(k string) bool {
		_, key := labels.SplitSelectorKey(k)
		return key == labels.NamespaceKey
	}
	for k := range s.MatchLabels {
		if is(k) {
			return true
		}
	}
	for _, r := range s.MatchExpressions {
		if is(r.Key) {
			return true
		}
	}
	return false
}

// inNamespace is the requirement "endpoint is in namespace ns".
func inNamespace(ns string) requirement {
	return requirement{key: labels.SourceK8s + ":" + labels.NamespaceKey, op: api.OpIn, values: []string{ns}}
}

// namespaceSelector compiles a Kubernetes namespaceSelector into
// requirements on the endpoint's namespace labels.
func namespaceSelector(s *api.EndpointSelector) selector {
	prefixed := &api.EndpointSelector{MatchLabels: map[string]string{}}
	for k, v := range s.MatchLabels {
		prefixed.MatchLabels[labels.SourceK8s+":"+NamespaceLabelPrefix+k] = v
	}
	for _, r := range s.MatchExpressions {
		r.Key = labels.SourceK8s + ":" + NamespaceLabelPrefix + r.Key
		prefixed.MatchExpressions = append(prefixed.MatchExpressions, r)
	}
	sel := compile(prefixed)
	if sel.matchAll {
		// {} selects every namespace, but only endpoints (which have one).
		sel = compile(nil, requirement{key: labels.SourceK8s + ":" + labels.NamespaceKey, op: api.OpExists})
	}
	return sel
}
