package datapath

import (
	"strings"
	"testing"
	"time"

	"github.com/seta-net/seta/pkg/datapath/loader"
	"github.com/seta-net/seta/pkg/datapath/maps"
	"github.com/seta-net/seta/pkg/policy"
)

func TestParseMonitorAggregation(t *testing.T) {
	for in, want := range map[string]int{
		"none": 0, "disabled": 0, "lowest": 1, "low": 2, "medium": 3, "max": 4, "maximum": 4,
		"0": 0, "1": 1, "2": 2, "3": 3, "4": 4, " Medium ": 3, "MAXIMUM": 4,
	} {
		got, err := ParseMonitorAggregation(in)
		if err != nil || got != want {
			t.Errorf("ParseMonitorAggregation(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "high", "5", "-1", "med", "3.0"} {
		_, err := ParseMonitorAggregation(in)
		if err == nil || err.Error() != "monitor aggregation level must be one of none, lowest, low, medium, maximum (or 0..4)" {
			t.Errorf("ParseMonitorAggregation(%q): err = %v", in, err)
		}
	}
	for l := MonitorAggregationNone; l <= MonitorAggregationMaximum; l++ {
		if got, err := ParseMonitorAggregation(MonitorAggregationName(l)); err != nil || got != l {
			t.Errorf("level %d does not round-trip through its name %q", l, MonitorAggregationName(l))
		}
	}
}

func TestParseTCPFlags(t *testing.T) {
	cases := []struct {
		in   []string
		want uint8
	}{
		{nil, 0},
		{[]string{}, 0},
		{[]string{"syn"}, 0x02},
		{[]string{"syn", "fin", "rst"}, 0x07},
		{[]string{"SYN,Fin", " rst "}, 0x07},
		{[]string{"ack", "psh", "urg", "ece", "cwr"}, 0x10 | 0x08 | 0x20 | 0x40 | 0x80},
		{[]string{"all"}, 0xff},
		{[]string{"syn", ""}, 0x02},
	}
	for _, c := range cases {
		got, err := ParseTCPFlags(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseTCPFlags(%q) = %#x, %v; want %#x", c.in, got, err, c.want)
		}
	}
	_, err := ParseTCPFlags([]string{"syn", "foo"})
	if err == nil || !strings.Contains(err.Error(), `unknown TCP flag "foo"`) || !strings.Contains(err.Error(), "syn, ack, fin") {
		t.Errorf("unknown flag: err = %v", err)
	}
}

func TestTraceOptions(t *testing.T) {
	cases := []struct {
		cfg  Config
		want loader.Trace
		err  string
	}{
		// The zero Config: traces off; the other values resolved anyway.
		{Config{}, loader.Trace{Flags: TCPFlagSYN | TCPFlagFIN | TCPFlagRST, Interval: 5 * time.Second}, ""},
		{Config{TraceEvents: true, MonitorAggregation: MonitorAggregationMedium},
			loader.Trace{Enabled: true, Aggregation: 3, Flags: TCPFlagSYN | TCPFlagFIN | TCPFlagRST, Interval: 5 * time.Second}, ""},
		{Config{TraceEvents: true, MonitorAggregation: MonitorAggregationMaximum},
			loader.Trace{Enabled: true, Aggregation: 4, Flags: TCPFlagSYN | TCPFlagFIN | TCPFlagRST, Interval: 5 * time.Second}, ""},
		{Config{TraceEvents: true, MonitorAggregation: MonitorAggregationMaximum, MonitorAggregationFlags: TCPFlagACK,
			MonitorAggregationInterval: time.Minute},
			loader.Trace{Enabled: true, Aggregation: 4, Flags: TCPFlagACK, Interval: time.Minute}, ""},
		{Config{MonitorAggregation: 5}, loader.Trace{}, "monitor aggregation level must be"},
		{Config{MonitorAggregation: -1}, loader.Trace{}, "monitor aggregation level must be"},
		{Config{MonitorAggregationInterval: -time.Second}, loader.Trace{}, "out of range"},
		{Config{MonitorAggregationInterval: 13 * time.Hour}, loader.Trace{}, "out of range"},
	}
	for _, c := range cases {
		got, err := traceOptions(c.cfg)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: err = %v, want %q", c.cfg, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%+v: got %+v, %v; want %+v", c.cfg, got, err, c.want)
		}
	}
}

// The match type follows from the key the writer puts in the map; the
// allow-all entry of an unenforced direction has none, and reading the map
// back gives the same Value.
func TestPolicyMatchType(t *testing.T) {
	cases := []struct {
		k    policy.Key
		want uint8
	}{
		{policy.Key{Dir: policy.Ingress}, 4},                                                 // all
		{policy.Key{Dir: policy.Ingress, Identity: 300}, 1},                                  // L3-only
		{policy.Key{Dir: policy.Ingress, Identity: 300, Proto: 6}, 5},                        // L3-proto
		{policy.Key{Dir: policy.Ingress, Proto: 6}, 6},                                       // proto-only
		{policy.Key{Dir: policy.Egress, Identity: 300, Proto: 6, Port: 80, PortBits: 16}, 2}, // L3-L4
		{policy.Key{Dir: policy.Egress, Proto: 17, Port: 1024, PortBits: 6}, 3},              // L4-only (a port block)
		{policy.Key{Dir: policy.Egress, Proto: 1, Port: 8, PortBits: 16}, 3},                 // ICMP type
	}
	for _, c := range cases {
		mk := policyKey(7, c.k)
		if got := maps.KeyMatchType(mk); got != c.want {
			t.Errorf("%s: match type %d, want %d", c.k, got, c.want)
		}
		if got := matchType(mk, policy.Value{Cookie: 1}); got != c.want {
			t.Errorf("%s: enforced entry gets %d", c.k, got)
		}
		if got := matchType(mk, policy.Value{Unenforced: true}); got != 0 {
			t.Errorf("%s: unenforced entry gets match type %d, want none", c.k, got)
		}
	}
}
