package datapath

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/seta-net/seta/pkg/datapath/bpf"
	"github.com/seta-net/seta/pkg/datapath/loader"
)

// Monitor aggregation levels, Cilium's --monitor-aggregation numbering (one
// source: enum monitor_aggregation in bpf/lib/trace.h). Seta traces a packet
// once, where it forwards it, so there is no receive-side duplicate to hide:
// None, Lowest and Low trace every forwarded packet; Medium and Maximum
// trace a packet only when conntrack says it is news (a connection's first
// packet, its first reply, TCP flags not yet seen in the packet's direction,
// or MonitorAggregationInterval passed since that direction's last trace).
// Medium and Maximum differ only in the default flag mask.
const (
	MonitorAggregationNone    = int(bpf.LxcMonitorAggregationMONITOR_AGGREGATION_NONE)
	MonitorAggregationLowest  = int(bpf.LxcMonitorAggregationMONITOR_AGGREGATION_LOWEST)
	MonitorAggregationLow     = int(bpf.LxcMonitorAggregationMONITOR_AGGREGATION_LOW)
	MonitorAggregationMedium  = int(bpf.LxcMonitorAggregationMONITOR_AGGREGATION_MEDIUM)
	MonitorAggregationMaximum = int(bpf.LxcMonitorAggregationMONITOR_AGGREGATION_MAXIMUM)
)

// TCP flags, as bits of the TCP header's flags byte (and of
// Config.MonitorAggregationFlags).
const (
	TCPFlagFIN uint8 = 0x01
	TCPFlagSYN uint8 = 0x02
	TCPFlagRST uint8 = 0x04
	TCPFlagPSH uint8 = 0x08
	TCPFlagACK uint8 = 0x10
	TCPFlagURG uint8 = 0x20
	TCPFlagECE uint8 = 0x40
	TCPFlagCWR uint8 = 0x80
)

// Defaults of the agent, as Cilium's: medium aggregation, a 5 s report
// interval. The datapath's zero Config has trace events off; an agent that
// turns them on passes these unless configured otherwise.
const (
	DefaultMonitorAggregation         = MonitorAggregationMedium
	DefaultMonitorAggregationInterval = 5 * time.Second
	// MaxMonitorAggregationInterval bounds the interval: conntrack keeps
	// report times in 16-bit ticks of 2^30 ns (~19.5 h before wrapping).
	MaxMonitorAggregationInterval = 12 * time.Hour
)

// DefaultMonitorAggregationFlags is the flag mask used when none is
// configured: SYN, FIN and RST, Cilium's default. A connection's first
// packet and first reply are traced whatever the mask, so by default a TCP
// connection shows up as its opening, its close and the periodic reminder,
// not once more for its first ACK and its first data in each direction
// (which nearly doubled the events of short connections).
const DefaultMonitorAggregationFlags = TCPFlagSYN | TCPFlagFIN | TCPFlagRST

var errAggregationLevel = errors.New("monitor aggregation level must be one of none, lowest, low, medium, maximum (or 0..4)")

// ParseMonitorAggregation parses a level as Cilium's --monitor-aggregation
// takes it: none (or disabled), lowest, low, medium, max (or maximum), or
// the number 0..4. Case and surrounding blanks are ignored.
func ParseMonitorAggregation(s string) (int, error) {
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case "none", "disabled":
		return MonitorAggregationNone, nil
	case "lowest":
		return MonitorAggregationLowest, nil
	case "low":
		return MonitorAggregationLow, nil
	case "medium":
		return MonitorAggregationMedium, nil
	case "max", "maximum":
		return MonitorAggregationMaximum, nil
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < MonitorAggregationNone || n > MonitorAggregationMaximum {
			return 0, errAggregationLevel
		}
		return n, nil
	}
}

// MonitorAggregationName names a level as ParseMonitorAggregation takes it.
func MonitorAggregationName(level int) string {
	switch level {
	case MonitorAggregationNone:
		return "none"
	case MonitorAggregationLowest:
		return "lowest"
	case MonitorAggregationLow:
		return "low"
	case MonitorAggregationMedium:
		return "medium"
	case MonitorAggregationMaximum:
		return "maximum"
	}
	return strconv.Itoa(level)
}

var tcpFlagNames = map[string]uint8{
	"fin": TCPFlagFIN, "syn": TCPFlagSYN, "rst": TCPFlagRST, "psh": TCPFlagPSH,
	"ack": TCPFlagACK, "urg": TCPFlagURG, "ece": TCPFlagECE, "cwr": TCPFlagCWR,
	"all": 0xff,
}

// ParseTCPFlags parses TCP flag names (syn, ack, fin, rst, psh, urg, ece,
// cwr, or all; any case) into a mask, as --monitor-aggregation-flags takes
// them. An element may itself be a comma-separated list (a config file's
// single string); empty names are skipped, so no names give 0, which
// Config.MonitorAggregationFlags reads as the level's default.
func ParseTCPFlags(names []string) (uint8, error) {
	var mask uint8
	for _, el := range names {
		for _, n := range strings.Split(el, ",") {
			n = strings.ToLower(strings.TrimSpace(n))
			if n == "" {
				continue
			}
			f, ok := tcpFlagNames[n]
			if !ok {
				return 0, fmt.Errorf("unknown TCP flag %q (want syn, ack, fin, rst, psh, urg, ece, cwr or all)", n)
			}
			mask |= f
		}
	}
	return mask, nil
}

// traceOptions validates the trace configuration and resolves its
// defaults into what the programs are loaded with.
func traceOptions(cfg Config) (loader.Trace, error) {
	level := cfg.MonitorAggregation
	if level < MonitorAggregationNone || level > MonitorAggregationMaximum {
		return loader.Trace{}, errAggregationLevel
	}
	iv := cfg.MonitorAggregationInterval
	switch {
	case iv == 0:
		iv = DefaultMonitorAggregationInterval
	case iv < 0 || iv > MaxMonitorAggregationInterval:
		return loader.Trace{}, fmt.Errorf("monitor aggregation interval %s out of range (0 < interval <= %s)", iv, MaxMonitorAggregationInterval)
	}
	flags := cfg.MonitorAggregationFlags
	if flags == 0 {
		flags = DefaultMonitorAggregationFlags
	}
	return loader.Trace{Enabled: cfg.TraceEvents, NoEvents: cfg.NoEvents, Aggregation: uint8(level), Flags: flags, Interval: iv}, nil
}
