package probe

import (
	"strings"
	"testing"
)

func TestReportErr(t *testing.T) {
	r := Report{Kernel: "5.4.0", Features: []Feature{
		{Name: FeatSchedCLS, Status: Supported, Required: true, MinKernel: "4.1"},
		{Name: FeatRedirectPeer, Status: Missing, Required: true, MinKernel: "5.10"},
		{Name: FeatTCX, Status: Missing, Required: false, MinKernel: "6.6"},
		{Name: FeatPerCPUHash, Status: Inconclusive, Required: true, MinKernel: "4.6", Detail: "permission denied"},
	}}
	err := r.Err()
	if err == nil {
		t.Fatal("missing required features gave no error")
	}
	msg := err.Error()
	for _, want := range []string{"kernel 5.4.0", "bpf_redirect_peer is missing (needs Linux 5.10)", "percpu_hash is inconclusive (needs Linux 4.6): permission denied"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "tcx") {
		t.Errorf("optional feature reported as fatal: %q", msg)
	}
	if r.Has(FeatTCX) || !r.Has(FeatSchedCLS) || r.Has("nonsense") {
		t.Error("Has answers wrongly")
	}
	ok := Report{Kernel: "6.18", Features: []Feature{{Name: FeatTCX, Status: Missing}}}
	if ok.Err() != nil {
		t.Errorf("optional feature missing must not fail: %v", ok.Err())
	}
}

func TestReportErrFor(t *testing.T) {
	r := Report{Kernel: "5.4.0", Features: []Feature{
		{Name: FeatSockAddrHooks, Status: Missing, MinKernel: "5.8"},
		{Name: FeatNetnsCookie, Status: Supported, MinKernel: "5.7"},
	}}
	err := r.ErrFor("socket load balancing", SocketLBFeatures...)
	if err == nil || !strings.Contains(err.Error(), "socket load balancing: kernel 5.4.0 lacks cgroup sock_addr hooks") ||
		strings.Contains(err.Error(), "netns_cookie") {
		t.Errorf("ErrFor = %v", err)
	}
	r.Features[0].Status = Supported
	if err := r.ErrFor("x", SocketLBFeatures...); err != nil {
		t.Errorf("all supported: %v", err)
	}
	if err := r.ErrFor("x", "unknown feature"); err == nil {
		t.Error("a feature that was not probed must not pass")
	}
}
