package filters

import (
	"strings"
	"testing"
)

func TestLabelSelectorMatch(t *testing.T) {
	labels := []string{"k8s:app=web", "k8s:tier=front", "container:app=sidecar", "reserved:host", "k8s:empty="}
	tests := []struct {
		selector string
		want     bool
	}{
		{"app=web", true},
		{"app==web", true},
		{"k8s:app=web", true},
		{"any:app=web", true},
		{"container:app=web", false},
		{"container:app=sidecar", true},
		{"app=sidecar", true}, // any source may supply the key
		{"app=db", false},
		{"nokey=web", false},
		{"app!=db", true},
		{"app!=web", false},              // some app label has value web
		{"k8s:app!=sidecar", true},       // source restricts the check
		{"nokey!=web", true},             // absent key satisfies !=
		{"app", true},                    // exists
		{"nokey", false},                 // exists
		{"!nokey", true},                 // does not exist
		{"!app", false},                  // does not exist
		{"!cilium:app", true},            // no app label from source cilium
		{"reserved:host", true},          // label without value
		{"host", true},                   // label without value, any source
		{"reserved:world", false},        // other reserved label
		{"reserved:host=", true},         // empty value
		{"empty=", true},                 // empty value
		{"empty", true},                  // exists with empty value
		{"app=", false},                  // app never has an empty value
		{"app in (db,web)", true},        // set membership
		{"app in (db)", false},           // set membership
		{"k8s:app in (sidecar)", false},  // set with source
		{"app notin (db,cache)", true},   // set exclusion
		{"app notin (db,web)", false},    // set exclusion
		{"nokey notin (a)", true},        // absent key satisfies notin
		{"app=web,tier=front", true},     // AND
		{"app=web,tier=back", false},     // AND
		{"app=web, !nokey , tier", true}, // whitespace
		{"app in (web, db),tier!=back", true},
	}
	fls := parseFlowLabels(labels)
	for _, tc := range tests {
		t.Run(tc.selector, func(t *testing.T) {
			s, err := parseSelector(tc.selector)
			if err != nil {
				t.Fatalf("parseSelector: %v", err)
			}
			if got := s.matches(fls); got != tc.want {
				t.Errorf("matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLabelSelectorErrors(t *testing.T) {
	tests := []struct {
		selector string
		wantErr  string
	}{
		{"", "empty selector"},
		{"   ", "empty selector"},
		{"app=web,", "expected a label key, got end of selector"},
		{",app", `expected a label key, got ","`},
		{"=web", `expected a label key, got "="`},
		{"!", "expected a label key, got end of selector"},
		{"app===", `expected "," or end of selector, got "="`},
		{"app web", `expected "," or end of selector, got "web"`},
		{"app=web;tier=x", `unexpected character ';'`},
		{"app=we b", `expected "," or end of selector, got "b"`},
		{"k8s:", `invalid label key "k8s:"`},
		{"a:b:c", `invalid label key "a:b:c"`},
		{"app in web", `expected "(" after set operator, got "web"`},
		{"app in ()", `expected a value in set, got ")"`},
		{"app in (a,", "expected a value in set, got end of selector"},
		{"app in (a b)", `expected "," or ")" in set, got "b"`},
		{"app notin (a", `expected "," or ")" in set, got end of selector`},
	}
	for _, tc := range tests {
		t.Run(tc.selector, func(t *testing.T) {
			_, err := parseSelector(tc.selector)
			if err == nil {
				t.Fatalf("parseSelector(%q) succeeded, want error %q", tc.selector, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}
