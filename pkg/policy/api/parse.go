package api

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// maxErrors caps how many problems one Parse call reports.
const maxErrors = 50

// ParseError is one problem found by Parse, with its position.
type ParseError struct {
	// Source names the input, as passed to Parse.
	Source string
	// Doc is the 1-based index of the document (or List item) in the
	// input; 0 when the problem is not inside one document.
	Doc int
	// Kind, Namespace and Name identify the document when known.
	Kind, Namespace, Name string
	// Line is 1-based; 0 if unknown.
	Line int
	// Field is the dotted path inside the document, e.g.
	// spec.ingress[0].toPorts[0].ports[0].endPort.
	Field string
	// Msg describes the problem.
	Msg string
}

// Error renders e.g.
//
//	web.yaml: document 2 (CiliumNetworkPolicy default/web): line 14: spec.ingress[0].fromEndpoint: unknown field "fromEndpoint"
func (e *ParseError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Doc > 0 {
		fmt.Fprintf(&b, "document %d", e.Doc)
		if id := e.identity(); id != "" {
			fmt.Fprintf(&b, " (%s)", id)
		}
		b.WriteString(": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *ParseError) identity() string {
	name := e.Name
	if name != "" && e.Namespace != "" {
		name = e.Namespace + "/" + name
	}
	switch {
	case e.Kind != "" && name != "":
		return e.Kind + " " + name
	case e.Kind != "":
		return e.Kind
	default:
		return name
	}
}

// Parse reads one file's worth of policy documents: multi-document YAML,
// a JSON object or array of objects, or a v1 List (as printed by kubectl get
// -o yaml). source names the input in errors and in Policy.Source.
//
// Parse is atomic: it returns either every policy of the input or, if
// anything is wrong, nil and all problems found (up to about 50) as an
// errors.Join of *ParseError.
func Parse(data []byte, source string) ([]*Policy, error) {
	p := &parser{
		source:    source,
		maxVisits: 1_000_000 + 8*len(data),
		seen:      map[string]seenPolicy{},
	}
	roots, synErr := decodeAll(data)
	if synErr != nil && looksLikeJSON(data) && bytes.Contains(data, []byte(`\/`)) {
		// JSON allows the escape \/ but YAML does not; undo it and retry.
		if r2, e2 := decodeAll(unescapeJSONSlash(data)); e2 == nil {
			roots, synErr = r2, nil
		}
	}
	for _, root := range roots {
		if p.stop() {
			break
		}
		p.top(root)
	}
	if synErr != nil {
		line, msg := splitYAMLError(synErr)
		p.add(&ParseError{Source: source, Doc: p.doc + 1, Line: line, Msg: "invalid YAML/JSON: " + msg})
	} else if p.doc == 0 && len(p.errs) == 0 {
		p.add(&ParseError{Source: source, Msg: "no policy documents"})
	}
	if len(p.errs) > 0 {
		if p.truncated {
			p.errs = append(p.errs, &ParseError{Source: source, Msg: fmt.Sprintf("too many errors (stopped after %d)", maxErrors)})
		}
		return nil, errors.Join(p.errs...)
	}
	return p.policies, nil
}

// decodeAll splits data into YAML documents, dropping empty ones. On a
// syntax error it returns the documents before it and the error.
func decodeAll(data []byte) (roots []*yaml.Node, err error) {
	defer func() {
		// The YAML library is third-party code fed arbitrary input: never
		// let a bug in it take the caller down.
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: internal decoder error: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return roots, nil
		}
		if err != nil {
			return roots, err
		}
		root := &n
		if root.Kind == yaml.DocumentNode {
			if len(root.Content) == 0 {
				continue
			}
			root = root.Content[0]
		}
		if isNull(root) {
			continue // empty document, e.g. between two "---"
		}
		roots = append(roots, root)
	}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// splitYAMLError extracts the line from a yaml syntax error.
func splitYAMLError(err error) (int, string) {
	s := err.Error()
	if m := yamlLineRE.FindStringSubmatch(s); m != nil {
		line, _ := strconv.Atoi(m[1])
		return line, m[2]
	}
	return 0, strings.TrimPrefix(s, "yaml: ")
}

func looksLikeJSON(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n\ufeff")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// unescapeJSONSlash turns every \/ escape into /. In valid JSON a backslash
// only occurs inside strings and always starts a two-character escape, so
// pairing backslashes is enough; line numbers are unchanged.
func unescapeJSONSlash(data []byte) []byte {
	out := make([]byte, 0, len(data))
	for i := 0; i < len(data); i++ {
		if data[i] == '\\' && i+1 < len(data) {
			if data[i+1] != '/' {
				out = append(out, '\\')
			}
			out = append(out, data[i+1])
			i++
			continue
		}
		out = append(out, data[i])
	}
	return out
}

type seenPolicy struct {
	doc  int
	line int
}

// parser holds the state of one Parse call.
type parser struct {
	source    string
	doc       int // documents numbered so far
	policies  []*Policy
	errs      []error
	truncated bool
	seen      map[string]seenPolicy

	// visits counts nodes looked at; aliases can make a small input
	// expand into a huge tree, so the walk is bounded.
	visits, maxVisits int
	tooComplex        bool
}

func (p *parser) full() bool { return len(p.errs) >= maxErrors }

// stop says whether to stop looking at further documents.
func (p *parser) stop() bool { return p.full() || p.tooComplex }

func (p *parser) add(e *ParseError) {
	if p.full() {
		p.truncated = true
		return
	}
	p.errs = append(p.errs, e)
}

// top handles one YAML document: a policy, a List of policies or a
// sequence of them.
func (p *parser) top(root *yaml.Node) {
	lp := &docParser{p: p} // for errors outside any single document
	root = lp.resolve(root)
	switch {
	case root.Kind == yaml.SequenceNode:
		for _, item := range root.Content {
			if p.stop() {
				return
			}
			item = lp.resolve(item)
			if item.Kind == yaml.MappingNode && isListKind(lp.peekString(item, "kind")) {
				p.list(item)
				continue
			}
			p.document(item, "", "")
		}
		lp.flush()
	case root.Kind == yaml.MappingNode && isListKind(lp.peekString(root, "kind")):
		p.list(root)
	default:
		p.document(root, "", "")
	}
}

func isListKind(kind string) bool {
	return kind == "List" || kind == KindCNP+"List" || kind == KindCCNP+"List" || kind == KindKNP+"List"
}

// list handles kind: List (apiVersion v1) and the typed lists the API
// server returns (CiliumNetworkPolicyList, ...), whose items may omit kind
// and apiVersion.
func (p *parser) list(n *yaml.Node) {
	d := &docParser{p: p}
	defer d.flush()
	f, ok := d.object(n, "", []string{"apiVersion", "kind", "metadata", "items"}, nil)
	if !ok {
		return
	}
	kind, _ := d.str(f.val("kind"), "kind")
	apiVersion, _ := d.str(f.val("apiVersion"), "apiVersion")
	itemKind, itemAPIVersion := "", ""
	if kind == "List" {
		if apiVersion != "v1" {
			d.errorf(f.keyOr("apiVersion", n), "apiVersion", "kind List needs apiVersion v1, got %q", apiVersion)
			return
		}
	} else {
		itemKind = strings.TrimSuffix(kind, "List")
		itemAPIVersion = apiVersionOf(itemKind)
		if apiVersion != itemAPIVersion {
			d.errorf(f.keyOr("apiVersion", n), "apiVersion", "kind %s needs apiVersion %s, got %q", kind, itemAPIVersion, apiVersion)
			return
		}
	}
	items, ok := d.seq(f.val("items"), "items")
	if !ok {
		return
	}
	d.flush()
	for _, item := range items {
		if p.stop() {
			return
		}
		p.document(item, itemKind, itemAPIVersion)
	}
}

func apiVersionOf(kind string) string {
	switch kind {
	case KindCNP, KindCCNP:
		return APIVersionCilium
	case KindKNP:
		return APIVersionK8s
	}
	return ""
}

var topFields = []string{"apiVersion", "kind", "metadata", "spec", "specs", "status"}

// document parses one policy object. defKind and defAPIVersion come from
// a typed List whose items may omit them.
func (p *parser) document(n *yaml.Node, defKind, defAPIVersion string) {
	p.doc++
	d := &docParser{p: p, doc: p.doc}
	defer d.flush()

	n = d.resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "", "expected a policy object (a mapping with apiVersion and kind), got %s", describe(n))
		return
	}
	if k := d.peekString(n, "kind"); isListKind(k) {
		kn, _ := d.peek(n, "kind")
		d.errorf(kn, "kind", "a %s cannot be nested in another list", k)
		return
	}
	f, _ := d.object(n, "", topFields, nil)

	// Identity first, so that every later error can name the policy.
	kind, apiVersion := defKind, defAPIVersion
	kindOK := true
	if v := f.val("kind"); v != nil && !isNull(d.resolve(v)) {
		kind, kindOK = d.str(v, "kind")
	}
	if v := f.val("apiVersion"); v != nil && !isNull(d.resolve(v)) {
		var ok bool
		apiVersion, ok = d.str(v, "apiVersion")
		kindOK = kindOK && ok
	}
	if kindOK {
		switch {
		case kind == "":
			d.errorf(n, "kind", "kind is required (%s)", acceptedKinds)
			kindOK = false
		case apiVersionOf(kind) == "":
			d.errorf(f.keyOr("kind", n), "kind", "unsupported kind %q (%s)", kind, acceptedKinds)
			kindOK = false
		case apiVersion == "":
			d.errorf(n, "apiVersion", "apiVersion is required (%s for %s)", apiVersionOf(kind), kind)
			kindOK = false
		case apiVersion != apiVersionOf(kind):
			d.errorf(f.keyOr("apiVersion", n), "apiVersion", "unsupported apiVersion %q for kind %s (want %s)", apiVersion, kind, apiVersionOf(kind))
			kindOK = false
		}
	}
	if kindOK {
		d.kind = kind
	}

	nameLine := n.Line
	if mk, mv := f.key("metadata"), f.val("metadata"); mv != nil && !isNull(d.resolve(mv)) {
		nameLine = d.metadata(mv, kindOK, kind)
	} else if !f.unknown {
		if mk == nil {
			mk = n
		}
		d.errorf(mk, "metadata.name", "name is required")
	}
	if !kindOK {
		return
	}

	pol := &Policy{Kind: kind, Name: d.name, Namespace: d.namespace, Source: fmt.Sprintf("%s#%d", p.source, p.doc)}
	switch kind {
	case KindCNP, KindCCNP:
		haveRules := false
		if v := f.val("spec"); v != nil && !isNull(d.resolve(v)) {
			haveRules = true
			if r := d.rule(v, "spec"); r != nil {
				pol.Rules = append(pol.Rules, r)
			}
		}
		if v := f.val("specs"); v != nil {
			items, ok := d.seq(v, "specs")
			haveRules = haveRules || len(items) > 0 || !ok
			for i, item := range items {
				if r := d.rule(item, index("specs", i)); r != nil {
					pol.Rules = append(pol.Rules, r)
				}
			}
		}
		if !haveRules && !f.unknown {
			d.errorf(n, "spec", "a %s needs at least one rule in spec or specs", kind)
		}
	case KindKNP:
		if k := f.key("specs"); k != nil {
			d.errorf(k, "specs", `unknown field "specs" (a NetworkPolicy has a single spec)`)
		}
		if v := f.val("spec"); v != nil && !isNull(d.resolve(v)) {
			pol.NetworkPolicy = d.networkPolicySpec(v, "spec")
		} else if !f.unknown {
			d.errorf(f.keyOr("spec", n), "spec", "spec is required")
		}
	}
	if len(d.errs) > 0 || d.name == "" {
		return
	}
	key := pol.Key()
	if prev, dup := p.seen[key]; dup {
		d.errorf(&yaml.Node{Line: nameLine}, "metadata.name", "duplicate policy %s %s: already defined in document %d (line %d)", kind, displayName(pol), prev.doc, prev.line)
		return
	}
	p.seen[key] = seenPolicy{doc: p.doc, line: nameLine}
	p.policies = append(p.policies, pol)
}

func displayName(pol *Policy) string {
	if pol.Namespace == "" {
		return pol.Name
	}
	return pol.Namespace + "/" + pol.Name
}

var acceptedKinds = "accepted: " + KindCNP + " and " + KindCCNP + " (" + APIVersionCilium + "), " +
	KindKNP + " (" + APIVersionK8s + ")"

// metadata reads name and namespace; other metadata is ignored. It returns
// the line of the name.
func (d *docParser) metadata(n *yaml.Node, kindOK bool, kind string) int {
	n = d.resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "metadata", "expected a mapping, got %s", describe(n))
		return n.Line
	}
	f, _ := d.object(n, "metadata", nil, nil) // any key is fine
	nameLine := n.Line
	if v := f.val("name"); v == nil {
		d.errorf(n, "metadata.name", "name is required")
	} else if name, ok := d.str(v, "metadata.name"); ok {
		nameLine = d.resolve(v).Line
		switch {
		case name == "":
			d.errorf(v, "metadata.name", "name is required")
		case !isDNS1123Subdomain(name):
			d.errorf(v, "metadata.name", "invalid name %q: must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)", name)
		default:
			d.name = name
		}
	}
	ns := ""
	nsNode := f.val("namespace")
	if nsNode != nil {
		var ok bool
		if ns, ok = d.str(nsNode, "metadata.namespace"); !ok {
			return nameLine
		}
	}
	if !kindOK {
		return nameLine
	}
	switch {
	case kind == KindCCNP:
		if ns != "" {
			d.errorf(nsNode, "metadata.namespace", "clusterwide policies have no namespace (got %q)", ns)
		}
	case ns == "":
		d.namespace = "default"
	case !isDNS1123Label(ns):
		d.errorf(nsNode, "metadata.namespace", "invalid namespace %q: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)", ns)
	default:
		d.namespace = ns
	}
	return nameLine
}

// docParser walks one document, collecting its errors.
type docParser struct {
	p                     *parser
	doc                   int
	kind, namespace, name string
	errs                  []*ParseError
}

// flush hands the document's errors, sorted by line and stamped with the
// policy's identity, to the parser.
func (d *docParser) flush() {
	slices.SortStableFunc(d.errs, func(a, b *ParseError) int { return cmp.Compare(a.Line, b.Line) })
	for _, e := range d.errs {
		e.Kind, e.Namespace, e.Name = d.kind, d.namespace, d.name
		d.p.add(e)
	}
	d.errs = nil
}

// errorf records a problem at node n (which gives the line; may be nil).
func (d *docParser) errorf(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	if len(d.errs) > maxErrors || d.p.tooComplex {
		return
	}
	d.errs = append(d.errs, &ParseError{Source: d.p.source, Doc: d.doc, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

var (
	dns1123LabelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123SubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

func isDNS1123Label(s string) bool {
	return len(s) <= 63 && dns1123LabelRE.MatchString(s)
}

func isDNS1123Subdomain(s string) bool {
	return len(s) <= 253 && dns1123SubdomainRE.MatchString(s)
}
