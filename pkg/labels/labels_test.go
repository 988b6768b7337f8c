package labels

import (
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in, def string
		want    Label
		err     bool
	}{
		{"k8s:app=web", "unspec", Label{"k8s", "app", "web"}, false},
		{"app=web", "k8s", Label{"k8s", "app", "web"}, false},
		{"reserved:host", "k8s", Label{"reserved", "host", ""}, false},
		{"cidr:fd00::/64", "k8s", Label{"cidr", "fd00::/64", ""}, false},
		{"example.com/tier=db", "k8s", Label{"k8s", "example.com/tier", "db"}, false},
		{"weird:key=v", "k8s", Label{"k8s", "weird:key", "v"}, false},
		{"=v", "k8s", Label{}, true},
		{"a b=c", "k8s", Label{}, true},
	}
	for _, c := range cases {
		got, err := Parse(c.in, c.def)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, err=%v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestCanonicalAndGet(t *testing.T) {
	a, _ := ParseAll([]string{"k8s:b=2", "k8s:a=1", "container:a=x"}, "k8s")
	b, _ := ParseAll([]string{"container:a=x", "a=1", "b=2"}, "k8s")
	if a.String() != b.String() || a.String() != "container:a=x,k8s:a=1,k8s:b=2" {
		t.Fatalf("canonical forms differ: %q vs %q", a, b)
	}
	if v, ok := a.Get("k8s:a"); !ok || v != "1" {
		t.Errorf("Get(k8s:a) = %q %v", v, ok)
	}
	if v, ok := a.Get("container:a"); !ok || v != "x" {
		t.Errorf("Get(container:a) = %q %v", v, ok)
	}
	if _, ok := a.Get("b"); !ok {
		t.Error("a key without source must match any source")
	}
	if _, ok := a.Get("reserved:b"); ok {
		t.Error("a key with another source must not match")
	}
	dup := New(Label{"k8s", "a", "1"}, Label{"k8s", "a", "2"})
	if len(dup) != 1 || dup[0].Value != "2" {
		t.Errorf("duplicates: %v", dup)
	}
}

func TestFilter(t *testing.T) {
	f, err := NewFilter(DefaultExclusions)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := ParseAll([]string{"app=web", "pod-template-hash=abc", "controller-revision-hash=1",
		"k8s:io.kubernetes.pod.namespace=prod", "reserved:host"}, "k8s")
	got := f.Apply(ls).String()
	if got != "k8s:app=web,k8s:io.kubernetes.pod.namespace=prod,reserved:host" {
		t.Errorf("filtered = %q", got)
	}
	if _, err := NewFilter([]string{"("}); err == nil {
		t.Error("bad regexp accepted")
	}
}
