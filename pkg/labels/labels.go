// Package labels models endpoint labels with their source prefix
// ("k8s:app=web", "reserved:host"), the canonical sorted form that identity
// allocation keys on, and the filter that keeps only security-relevant
// labels. It is plain Go.
package labels

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Label sources.
const (
	SourceK8s      = "k8s"
	SourceReserved = "reserved"
	SourceCIDR     = "cidr"
	SourceUnspec   = "unspec"
	// SourceAny in a selector key matches every source.
	SourceAny = "any"
)

// NamespaceKey is the label key that carries a pod's namespace, with source k8s.
const NamespaceKey = "io.kubernetes.pod.namespace"

// Label is one source-prefixed key/value pair.
type Label struct {
	Source string
	Key    string
	Value  string
}

// String renders "source:key=value" ("source:key" when the value is empty).
func (l Label) String() string {
	s := l.Source + ":" + l.Key
	if l.Value != "" {
		s += "=" + l.Value
	}
	return s
}

var knownSources = map[string]bool{SourceK8s: true, SourceReserved: true, SourceCIDR: true, SourceUnspec: true, "container": true}

// Parse reads "source:key=value", "key=value" or "key". A missing source
// becomes defaultSource. Only a known source is split off, so a key may
// itself contain ':' (e.g. CIDR labels "cidr:fd00::/64").
func Parse(s, defaultSource string) (Label, error) {
	l := Label{Source: defaultSource}
	rest := s
	if src, after, ok := strings.Cut(s, ":"); ok && knownSources[src] {
		l.Source, rest = src, after
	}
	l.Key, l.Value, _ = strings.Cut(rest, "=")
	if l.Key == "" {
		return Label{}, fmt.Errorf("invalid label %q: empty key", s)
	}
	if strings.ContainsAny(l.Key, " \t\n,") || strings.ContainsAny(l.Value, "\n,") {
		return Label{}, fmt.Errorf("invalid label %q: key or value contains white space or ','", s)
	}
	return l, nil
}

// Labels is a set of labels, sorted by source then key, one value per
// (source, key).
type Labels []Label

// ParseAll parses and normalises a list of labels.
func ParseAll(ss []string, defaultSource string) (Labels, error) {
	out := make(Labels, 0, len(ss))
	for _, s := range ss {
		l, err := Parse(s, defaultSource)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return New(out...), nil
}

// New returns the normalised set of ls; a later duplicate key wins.
func New(ls ...Label) Labels {
	m := map[[2]string]Label{}
	for _, l := range ls {
		m[[2]string{l.Source, l.Key}] = l
	}
	out := make(Labels, 0, len(m))
	for _, l := range m {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Label) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

// Strings renders each label.
func (ls Labels) Strings() []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.String()
	}
	return out
}

// String is the canonical form: sorted labels joined by ','. Equal sets
// give equal strings, so it keys identity allocation.
func (ls Labels) String() string { return strings.Join(ls.Strings(), ",") }

// Get looks a selector key up: "source:key" matches that source only,
// "key" (or "any:key") matches any source.
func (ls Labels) Get(selectorKey string) (string, bool) {
	src, key := SplitSelectorKey(selectorKey)
	for _, l := range ls {
		if l.Key == key && (src == "" || src == SourceAny || l.Source == src) {
			return l.Value, true
		}
	}
	return "", false
}

// Has reports whether the set holds exactly label l.
func (ls Labels) Has(l Label) bool {
	for _, m := range ls {
		if m == l {
			return true
		}
	}
	return false
}

// SplitSelectorKey splits "k8s:app" into ("k8s", "app"); a key with no
// known source prefix has source "".
func SplitSelectorKey(k string) (source, key string) {
	if src, after, ok := strings.Cut(k, ":"); ok && (knownSources[src] || src == SourceAny) {
		return src, after
	}
	return "", k
}

// Namespace returns the k8s namespace label's value.
func (ls Labels) Namespace() (string, bool) {
	for _, l := range ls {
		if l.Source == SourceK8s && l.Key == NamespaceKey {
			return l.Value, true
		}
	}
	return "", false
}

// Filter decides which labels are security-relevant, i.e. take part in
// identities. Labels whose key matches an exclusion are dropped; reserved
// and CIDR labels and the namespace label are always kept.
type Filter struct {
	exclude []*regexp.Regexp
}

// DefaultExclusions drop labels that differ between replicas of the same
// workload, which would give every pod its own identity.
var DefaultExclusions = []string{
	`^pod-template-hash$`,
	`^controller-revision-hash$`,
	`^pod-template-generation$`,
	`^statefulset\.kubernetes\.io/pod-name$`,
	`^apps\.kubernetes\.io/pod-index$`,
	`^batch\.kubernetes\.io/controller-uid$`,
	`^controller-uid$`,
	`^io\.kubernetes\.pod\.uid$`,
}

// NewFilter compiles exclusion patterns (regular expressions on the key).
func NewFilter(exclusions []string) (*Filter, error) {
	f := &Filter{}
	for _, e := range exclusions {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("invalid label filter %q: %w", e, err)
		}
		f.exclude = append(f.exclude, re)
	}
	return f, nil
}

// Apply returns the security-relevant subset of ls.
func (f *Filter) Apply(ls Labels) Labels {
	out := make(Labels, 0, len(ls))
	for _, l := range ls {
		if l.Source == SourceReserved || l.Source == SourceCIDR || (l.Source == SourceK8s && l.Key == NamespaceKey) {
			out = append(out, l)
			continue
		}
		drop := false
		for _, re := range f.exclude {
			if re.MatchString(l.Key) {
				drop = true
				break
			}
		}
		if !drop {
			out = append(out, l)
		}
	}
	return out
}
