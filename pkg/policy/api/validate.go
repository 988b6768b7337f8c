package api

import (
	"fmt"
	"net/netip"
	"strings"
)

// parseCIDR reads a prefix ("10.0.0.0/8") or a plain address (meaning /32
// or /128). Host bits are masked off ("10.1.2.3/8" is 10.0.0.0/8), as
// Cilium and Kubernetes accept such prefixes. Zones are rejected.
func parseCIDR(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR \"\": empty")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// String returns the prefix, e.g. "10.0.0.0/8".
func (c CIDR) String() string { return c.Prefix.String() }
