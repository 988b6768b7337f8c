package datapath

import (
	"strings"
	"testing"

	"github.com/seta-net/seta/pkg/datapath/attach"
	"github.com/seta-net/seta/pkg/datapath/probe"
)

func TestChooseMode(t *testing.T) {
	withTCX := probe.Report{Kernel: "6.18", Features: []probe.Feature{{Name: probe.FeatTCX, Status: probe.Supported}}}
	without := probe.Report{Kernel: "6.1", Features: []probe.Feature{{Name: probe.FeatTCX, Status: probe.Missing}}}
	cases := []struct {
		want   string
		report probe.Report
		mode   attach.Mode
		err    string
	}{
		{"auto", withTCX, attach.ModeTCX, ""},
		{"", withTCX, attach.ModeTCX, ""},
		{"auto", without, attach.ModeClsact, ""},
		{"clsact", withTCX, attach.ModeClsact, ""},
		{"tcx", without, "", "needs Linux 6.6"},
		{"xdp", withTCX, "", "unknown attach mode"},
	}
	for _, c := range cases {
		m, err := chooseMode(c.want, c.report)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("chooseMode(%q, kernel %s) err = %v, want %q", c.want, c.report.Kernel, err, c.err)
			}
			continue
		}
		if err != nil || m != c.mode {
			t.Errorf("chooseMode(%q, kernel %s) = %s, %v; want %s", c.want, c.report.Kernel, m, err, c.mode)
		}
	}
}
