package filters

import (
	"errors"
	"fmt"
	"strings"
)

// flowLabel is one flow label such as "k8s:app=web" split into its parts.
type flowLabel struct {
	source, key, value string
}

// parseFlowLabels splits flow label strings ("source:key=value"); a label
// without a source gets source "" and one without "=" gets an empty value.
func parseFlowLabels(labels []string) []flowLabel {
	out := make([]flowLabel, 0, len(labels))
	for _, l := range labels {
		kv, value, _ := strings.Cut(l, "=")
		source, key := splitSource(kv)
		out = append(out, flowLabel{source: source, key: key, value: value})
	}
	return out
}

// splitSource splits "source:key" at the first colon; without one the
// source is empty.
func splitSource(s string) (source, key string) {
	if src, k, ok := strings.Cut(s, ":"); ok {
		return src, k
	}
	return "", s
}

type operator int

const (
	opExists operator = iota
	opNotExists
	opEquals
	opNotEquals
	opIn
	opNotIn
)

// requirement is one comma-separated part of a label selector.
type requirement struct {
	source string // "" matches every source
	key    string
	op     operator
	values []string
}

// selector is a parsed label selector: all requirements must hold.
type selector []requirement

func (s selector) matches(labels []flowLabel) bool {
	for _, r := range s {
		if !r.matches(labels) {
			return false
		}
	}
	return true
}

// matches evaluates r. Positive operators (exists, =, in) need some label
// with the key that satisfies them; negative ones (!key, !=, notin) need no
// label with the key to have a forbidden value, so an absent key passes.
func (r requirement) matches(labels []flowLabel) bool {
	found := false
	for _, l := range labels {
		if l.key != r.key || (r.source != "" && l.source != r.source) {
			continue
		}
		valueHit := false
		switch r.op {
		case opExists, opNotExists:
			valueHit = true
		default:
			for _, v := range r.values {
				if l.value == v {
					valueHit = true
					break
				}
			}
		}
		if valueHit {
			found = true
			break
		}
	}
	switch r.op {
	case opExists, opEquals, opIn:
		return found
	default:
		return !found
	}
}

type tokenKind int

const (
	tokIdent tokenKind = iota
	tokEq              // = or ==
	tokNotEq           // !=
	tokNot             // !
	tokLParen
	tokRParen
	tokComma
	tokEOF
)

type token struct {
	kind tokenKind
	text string
}

func isIdentChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-' || c == '/' || c == ':'
}

func tokenize(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '=':
			if i+1 < len(s) && s[i+1] == '=' {
				i++
			}
			toks = append(toks, token{kind: tokEq, text: "="})
			i++
		case c == '!':
			if i+1 < len(s) && s[i+1] == '=' {
				toks = append(toks, token{kind: tokNotEq, text: "!="})
				i += 2
			} else {
				toks = append(toks, token{kind: tokNot, text: "!"})
				i++
			}
		case c == '(':
			toks = append(toks, token{kind: tokLParen, text: "("})
			i++
		case c == ')':
			toks = append(toks, token{kind: tokRParen, text: ")"})
			i++
		case c == ',':
			toks = append(toks, token{kind: tokComma, text: ","})
			i++
		case isIdentChar(c):
			j := i
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			toks = append(toks, token{kind: tokIdent, text: s[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return append(toks, token{kind: tokEOF}), nil
}

type selParser struct {
	toks []token
	pos  int
}

func (p *selParser) peek() token { return p.toks[p.pos] }

func (p *selParser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func describe(t token) string {
	if t.kind == tokEOF {
		return "end of selector"
	}
	return fmt.Sprintf("%q", t.text)
}

// parseSelector parses a comma-separated list of requirements.
func parseSelector(s string) (selector, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty selector")
	}
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	p := &selParser{toks: toks}
	var sel selector
	for {
		r, err := p.requirement()
		if err != nil {
			return nil, err
		}
		sel = append(sel, r)
		switch t := p.next(); t.kind {
		case tokEOF:
			return sel, nil
		case tokComma:
		default:
			return nil, fmt.Errorf("expected \",\" or end of selector, got %s", describe(t))
		}
	}
}

func (p *selParser) key() (source, key string, err error) {
	t := p.next()
	if t.kind != tokIdent {
		return "", "", fmt.Errorf("expected a label key, got %s", describe(t))
	}
	source, key = splitSource(t.text)
	if source == "any" {
		source = ""
	}
	if key == "" || strings.Contains(key, ":") {
		return "", "", fmt.Errorf("invalid label key %q", t.text)
	}
	return source, key, nil
}

func (p *selParser) requirement() (requirement, error) {
	if p.peek().kind == tokNot {
		p.next()
		src, key, err := p.key()
		if err != nil {
			return requirement{}, err
		}
		return requirement{source: src, key: key, op: opNotExists}, nil
	}
	src, key, err := p.key()
	if err != nil {
		return requirement{}, err
	}
	r := requirement{source: src, key: key, op: opExists}
	switch t := p.peek(); {
	case t.kind == tokEq || t.kind == tokNotEq:
		p.next()
		r.op = opEquals
		if t.kind == tokNotEq {
			r.op = opNotEquals
		}
		// An empty value ("app=") is allowed and matches an empty label value.
		value := ""
		if p.peek().kind == tokIdent {
			value = p.next().text
		}
		r.values = []string{value}
	case t.kind == tokIdent && (t.text == "in" || t.text == "notin"):
		p.next()
		r.op = opIn
		if t.text == "notin" {
			r.op = opNotIn
		}
		values, err := p.valueList()
		if err != nil {
			return requirement{}, err
		}
		r.values = values
	}
	return r, nil
}

func (p *selParser) valueList() ([]string, error) {
	if t := p.next(); t.kind != tokLParen {
		return nil, fmt.Errorf("expected \"(\" after set operator, got %s", describe(t))
	}
	var values []string
	for {
		t := p.next()
		if t.kind != tokIdent {
			return nil, fmt.Errorf("expected a value in set, got %s", describe(t))
		}
		values = append(values, t.text)
		switch t := p.next(); t.kind {
		case tokRParen:
			return values, nil
		case tokComma:
		default:
			return nil, fmt.Errorf("expected \",\" or \")\" in set, got %s", describe(t))
		}
	}
}
