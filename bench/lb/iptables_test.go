package main

import (
	"regexp"
	"strings"
	"testing"
)

func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

// The measured service's rule must be the last one a new connection
// reaches in KUBE-SERVICES: right before the KUBE-NODEPORTS rule, which
// kube-proxy requires to be last.
func TestFullSyncOrder(t *testing.T) {
	svcs := []kpService{kpServiceN(0), kpServiceN(1), kpServiceN(2)}
	var inServices []string
	for _, l := range lines(kpFullSync(svcs, nil).String()) {
		if strings.HasPrefix(l, "-A KUBE-SERVICES ") {
			inServices = append(inServices, l)
		}
	}
	if len(inServices) != 4 {
		t.Fatalf("KUBE-SERVICES has %d rules, want 4:\n%s", len(inServices), strings.Join(inServices, "\n"))
	}
	if !strings.Contains(inServices[2], "-d 10.112.0.3/32 --dport 80 -j "+svcs[2].svcChain()) {
		t.Errorf("third rule is not the last service's: %s", inServices[2])
	}
	if !strings.Contains(inServices[3], "--dst-type LOCAL -j KUBE-NODEPORTS") {
		t.Errorf("last rule is not the nodeports one: %s", inServices[3])
	}
}

func TestChainNames(t *testing.T) {
	s := kpServiceN(0)
	re := regexp.MustCompile(`^KUBE-(SVC|SEP)-[A-Z2-7]{16}$`)
	names := map[string]bool{s.svcChain(): true}
	for _, b := range s.backends {
		names[s.sepChain(b)] = true
	}
	if len(names) != 3 {
		t.Fatalf("chain names collide: %v", names)
	}
	for n := range names {
		if !re.MatchString(n) {
			t.Errorf("chain %q is not KUBE-SVC/SEP- and 16 base32 characters", n)
		}
		if len(n) > 28 {
			t.Errorf("chain %q is longer than iptables allows (28)", n)
		}
	}
	if kpServiceN(1).svcChain() == s.svcChain() {
		t.Error("two services share a KUBE-SVC chain")
	}
}

// Each service: 3 rules in KUBE-SVC (masquerade from outside the pods, the
// statistic jump, the fallthrough jump), 2 in each KUBE-SEP; the first
// backend is chosen with probability 1/2, the last unconditionally.
func TestServiceChains(t *testing.T) {
	s := kpServiceN(4)
	out := kpFullSync([]kpService{s}, nil).String()
	svcRules := strings.Count(out, "-A "+s.svcChain()+" ")
	if svcRules != 3 {
		t.Errorf("KUBE-SVC has %d rules, want 3", svcRules)
	}
	for _, b := range s.backends {
		if n := strings.Count(out, "-A "+s.sepChain(b)+" "); n != 2 {
			t.Errorf("%s has %d rules, want 2", s.sepChain(b), n)
		}
		if !strings.Contains(out, "-j DNAT --to-destination "+b.String()) {
			t.Errorf("no DNAT to %s", b)
		}
	}
	if !strings.Contains(out, "-m statistic --mode random --probability 0.5000000000 -j "+s.sepChain(s.backends[0])) {
		t.Error("first backend is not picked with probability 0.5")
	}
}

// A partial sync rewrites KUBE-SERVICES in full but only the changed
// service's chains; removing a service declares its chains and deletes
// them in the same transaction.
func TestPartialSyncAndDelete(t *testing.T) {
	old := []kpService{kpServiceN(0), kpServiceN(1)}
	extra := kpServiceN(2)
	with := append(old, extra)
	add := kpPartialSync(with, []kpService{extra}, nil).String()
	if strings.Contains(add, ":"+old[0].svcChain()) || strings.Contains(add, "-A "+old[0].svcChain()) {
		t.Error("partial sync rewrites an unchanged service's chain")
	}
	if n := strings.Count(add, "-A KUBE-SERVICES "); n != 4 {
		t.Errorf("partial sync has %d KUBE-SERVICES rules, want 4", n)
	}
	del := kpPartialSync(old, nil, []kpService{extra}).String()
	for _, c := range []string{extra.svcChain(), extra.sepChain(extra.backends[0]), extra.sepChain(extra.backends[1])} {
		if !strings.Contains(del, ":"+c+" - [0:0]") || !strings.Contains(del, "-X "+c+"\n") {
			t.Errorf("removal does not declare and delete %s", c)
		}
	}
	if strings.Contains(del, extra.vip.String()) {
		t.Error("removal still routes the removed service's VIP")
	}
}

func TestWholeTableHasBuiltinJumps(t *testing.T) {
	out := kpWholeTable([]kpService{kpServiceN(0)}).String()
	for _, want := range []string{":PREROUTING ACCEPT", "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
		"-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES", "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"} {
		if !strings.Contains(out, want) {
			t.Errorf("whole table lacks %q", want)
		}
	}
	if !strings.HasPrefix(out, "*nat\n") || !strings.HasSuffix(out, "COMMIT\n") {
		t.Error("not one nat table transaction")
	}
}

func TestVIPs(t *testing.T) {
	if got := vip(0).String(); got != "10.112.0.1" {
		t.Errorf("vip(0) = %s", got)
	}
	if got := vip(99_999).String(); got != "10.113.134.160" {
		t.Errorf("vip(99999) = %s", got)
	}
	if got := vip(maxServices - 1); !got.IsValid() || got.As4()[0] != 10 || got.As4()[1] > 127 {
		t.Errorf("vip(max) = %s leaves 10.112.0.0/12", got)
	}
}

// kpRules is what the bench checks a loaded table against; it must agree
// with what the generator writes.
func TestRuleCount(t *testing.T) {
	p := &iptSide{svcs: []kpService{kpServiceN(0), kpServiceN(1), kpServiceN(2)}}
	got := strings.Count(kpWholeTable(p.all()).String(), "\n-A ")
	if want := kpRules(p.all()); got != want {
		t.Errorf("the whole table has %d rules, kpRules says %d", got, want)
	}
	if want := 3 + 4 + 1 + 5 + 3*8; kpRules(p.all()) != want {
		t.Errorf("kpRules = %d, want %d (the TCP_RR service has 5 rules, each measured one 8)", kpRules(p.all()), want)
	}
}
