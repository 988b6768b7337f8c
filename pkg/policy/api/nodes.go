package api

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// This file holds the helpers that walk yaml.Node trees: alias and merge
// key resolution, typed access with errors, and unknown-field checks.

var nullNode = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}

// resolve follows aliases and counts the visit against the parser's
// budget. Past the budget it returns a null node, so the walk ends quickly.
// It never returns nil.
func (d *docParser) resolve(n *yaml.Node) *yaml.Node {
	for hops := 0; n != nil && n.Kind == yaml.AliasNode; hops++ {
		if hops > 100 {
			n = nil
			break
		}
		n = n.Alias
	}
	if n == nil {
		return &nullNode
	}
	d.p.visits++
	if d.p.visits > d.p.maxVisits {
		if !d.p.tooComplex {
			d.errorf(n, "", "input too complex (aliases expand to too many nodes)")
			d.p.tooComplex = true // errors past this point are noise
		}
		return &nullNode
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names a node's type (and short value) for "expected X, got Y".
func describe(n *yaml.Node) string {
	if n == nil {
		return "null"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!int", "!!float":
			return "a number (" + v + ")"
		case "!!bool":
			return "a boolean (" + v + ")"
		default:
			return "a string (" + strconv.Quote(v) + ")"
		}
	case yaml.AliasNode:
		return "an alias"
	}
	return "an unexpected YAML node"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

type kv struct {
	key, val *yaml.Node
}

// fields is a mapping's known keys.
type fields struct {
	m map[string]kv
	// unknown is set when the mapping had unknown keys; checks for
	// missing keys are skipped then, as the key is likely misspelt.
	unknown bool
}

// val returns the (unresolved) value of key, nil if the key is absent.
func (f *fields) val(key string) *yaml.Node {
	if e, ok := f.m[key]; ok {
		return e.val
	}
	return nil
}

// key returns the key node, nil if absent.
func (f *fields) key(key string) *yaml.Node {
	if e, ok := f.m[key]; ok {
		return e.key
	}
	return nil
}

// keyOr returns the key node, or def when the key is absent.
func (f *fields) keyOr(key string, def *yaml.Node) *yaml.Node {
	if k := f.key(key); k != nil {
		return k
	}
	return def
}

// has reports whether key is present (with any value, even null).
func (f *fields) has(key string) bool {
	_, ok := f.m[key]
	return ok
}

// missing reports whether key is absent or null, and no misspelt key can
// explain it.
func (d *docParser) missing(f *fields, key string) bool {
	v := f.val(key)
	return !f.unknown && (v == nil || isNull(d.resolve(v)))
}

// pairs lists a mapping's entries in order, expanding merge keys (<<) and
// reporting duplicate and non-string keys.
func (d *docParser) pairs(n *yaml.Node, path string) []kv {
	seen := map[string]int{}
	var out []kv
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "mapping keys must be strings, got %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.errorf(k, join(path, k.Value), "duplicate field %q (first at line %d)", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, kv{k, v})
	}
	for _, m := range merges {
		out = d.merge(out, seen, m, path, 0)
	}
	return out
}

// merge adds the entries of a merge key's value (a mapping or a list of
// mappings) that are not already set.
func (d *docParser) merge(out []kv, seen map[string]int, m *yaml.Node, path string, depth int) []kv {
	m = d.resolve(m)
	if depth > 10 {
		d.errorf(m, path, "merge keys (<<) nested too deeply")
		return out
	}
	var maps []*yaml.Node
	switch m.Kind {
	case yaml.MappingNode:
		maps = []*yaml.Node{m}
	case yaml.SequenceNode:
		for _, c := range m.Content {
			maps = append(maps, d.resolve(c))
		}
	}
	for _, mm := range maps {
		if mm.Kind != yaml.MappingNode {
			d.errorf(mm, path, "a merge key (<<) needs a mapping or a list of mappings, got %s", describe(mm))
			continue
		}
		var nested []*yaml.Node
		for i := 0; i+1 < len(mm.Content); i += 2 {
			k, v := d.resolve(mm.Content[i]), mm.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				continue // reported where the mapping is defined
			}
			if k.ShortTag() == "!!merge" {
				nested = append(nested, v)
				continue
			}
			if _, dup := seen[k.Value]; dup {
				continue
			}
			seen[k.Value] = k.Line
			out = append(out, kv{k, v})
		}
		for _, v := range nested {
			out = d.merge(out, seen, v, path, depth+1)
		}
	}
	return out
}

// object checks that n is a mapping whose keys are all in known, and
// returns them. A key in unsupported is a known upstream field this
// implementation does not support; its value is the message. known == nil
// accepts any key. On a non-mapping it reports and returns false.
func (d *docParser) object(n *yaml.Node, path string, known []string, unsupported map[string]string) (*fields, bool) {
	n = d.resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return &fields{}, false
	}
	f := &fields{m: map[string]kv{}}
	for _, e := range d.pairs(n, path) {
		name := e.key.Value
		switch {
		case known == nil || slices.Contains(known, name):
			f.m[name] = e
		case unsupported[name] != "":
			f.unknown = true
			d.errorf(e.key, join(path, name), "%s", unsupported[name])
		default:
			f.unknown = true
			d.errorf(e.key, join(path, name), "unknown field %q%s", name, suggest(name, known))
		}
	}
	return f, true
}

// suggest returns ` (did you mean "x"?)` for a close known name.
func suggest(name string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if strings.EqualFold(k, name) {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
		if dist := editDistance(strings.ToLower(name), strings.ToLower(k), bestDist); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		if len(known) == 0 {
			return ""
		}
		return " (known fields: " + strings.Join(known, ", ") + ")"
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b, or max if it is at
// least max.
func editDistance(a, b string, max int) int {
	if len(a) > 64 || len(b) > 64 {
		return max
	}
	d := abs(len(a) - len(b))
	if d >= max {
		return max
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], max)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// str reads a scalar as a string. Null reads as "". Numbers and booleans
// read as their text (YAML `app: 1` is the label value "1").
func (d *docParser) str(n *yaml.Node, path string) (string, bool) {
	n = d.resolve(n)
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected a string, got %s", describe(n))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	return n.Value, true
}

// seq reads a list. Null reads as an empty list.
func (d *docParser) seq(n *yaml.Node, path string) ([]*yaml.Node, bool) {
	n = d.resolve(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a list, got %s", describe(n))
		return nil, false
	}
	return n.Content, true
}

// strList reads a list of strings.
func (d *docParser) strList(n *yaml.Node, path string) ([]string, bool) {
	items, ok := d.seq(n, path)
	var out []string
	for i, item := range items {
		s, sok := d.str(item, index(path, i))
		ok = ok && sok
		out = append(out, s)
	}
	return out, ok
}

// peek finds key in mapping n without reporting anything; nil, nil if
// absent.
func (d *docParser) peek(n *yaml.Node, key string) (k, v *yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.resolve(n.Content[i])
		if k.Kind == yaml.ScalarNode && k.Value == key && k.ShortTag() != "!!merge" {
			return k, d.resolve(n.Content[i+1])
		}
	}
	return nil, nil
}

// peekString returns the string value of key in mapping n without
// reporting anything ("" if absent or not a string).
func (d *docParser) peekString(n *yaml.Node, key string) string {
	if _, v := d.peek(n, key); v != nil && v.Kind == yaml.ScalarNode && !isNull(v) {
		return v.Value
	}
	return ""
}
