package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

// ---------------------------------------------------------------------------
// helpers

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatalf("netip.ParsePrefix(%q): %v", s, err)
	}
	return p
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("netip.ParseAddr(%q): %v", s, err)
	}
	return a
}

func newTestPool(t *testing.T, cidr string) *Pool {
	t.Helper()
	return NewPool(mustPrefix(t, cidr))
}

// mustAllocate allocates one address or fails the test.
func mustAllocate(t *testing.T, p *Pool, owner string) netip.Addr {
	t.Helper()
	a, err := p.Allocate(owner)
	if err != nil {
		t.Fatalf("Allocate(%q) on %s: unexpected error: %v", owner, p.Prefix(), err)
	}
	return a
}

// drain allocates until the pool reports an error and returns what it got
// and the terminating error. It gives up after limit allocations.
func drain(t *testing.T, p *Pool, limit int) ([]netip.Addr, error) {
	t.Helper()
	var got []netip.Addr
	for i := 0; i < limit; i++ {
		a, err := p.Allocate(fmt.Sprintf("pod-%d", i))
		if err != nil {
			return got, err
		}
		got = append(got, a)
	}
	t.Fatalf("pool %s still handing out addresses after %d allocations", p.Prefix(), limit)
	return nil, nil
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// ---------------------------------------------------------------------------
// ParsePodCIDR

func TestParsePodCIDRValid(t *testing.T) {
	tests := []struct {
		in     string
		family int
	}{
		{"10.0.0.0/24", 4},
		{"10.244.0.0/16", 4},
		{"192.168.1.0/29", 4}, // smallest accepted IPv4 pool
		{"172.16.0.0/12", 4},
		{"100.64.0.0/10", 4},
		{"fd00::/64", 6},
		{"fd00:10:244::/48", 6},
		{"2001:db8::/120", 6},
		{"2001:db8::/125", 6}, // smallest accepted IPv6 pool
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePodCIDR(tt.in, tt.family)
			if err != nil {
				t.Fatalf("ParsePodCIDR(%q, %d) error = %v, want nil", tt.in, tt.family, err)
			}
			want := mustPrefix(t, tt.in)
			if got != want {
				t.Fatalf("ParsePodCIDR(%q, %d) = %v, want %v", tt.in, tt.family, got, want)
			}
			if got.Addr().Is4() != (tt.family == 4) {
				t.Fatalf("ParsePodCIDR(%q, %d) returned family mismatch: %v", tt.in, tt.family, got)
			}
		})
	}
}

func TestParsePodCIDRInvalid(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		family int
		// every substring must appear in the error message
		wantSubstrings []string
	}{
		// syntax
		{"empty", "", 4, []string{"invalid pod CIDR"}},
		{"garbage", "not-a-cidr", 4, []string{"invalid pod CIDR", "not-a-cidr"}},
		{"no prefix length", "10.0.0.0", 4, []string{"invalid pod CIDR"}},
		{"v4 prefix length too long", "10.0.0.0/33", 4, []string{"invalid pod CIDR"}},
		{"v4 bad octet", "10.0.0.256/24", 4, []string{"invalid pod CIDR"}},
		{"v6 prefix length too long", "fd00::/129", 6, []string{"invalid pod CIDR"}},
		{"v6 garbage", "fd00:::/64", 6, []string{"invalid pod CIDR"}},
		{"v6 zone", "fe80::1%eth0/64", 6, []string{"invalid pod CIDR"}},

		// host bits set: the message must suggest the masked prefix
		{"v4 host bits", "10.0.0.1/24", 4, []string{"host bits are set", "10.0.0.0/24"}},
		{"v4 host bits /16", "10.244.3.0/16", 4, []string{"host bits are set", "10.244.0.0/16"}},
		{"v6 host bits", "fd00::1/64", 6, []string{"host bits are set", "fd00::/64"}},
		{"v6 host bits /120", "2001:db8::1ff/120", 6, []string{"host bits are set", "2001:db8::100/120"}},

		// wrong family
		{"v4 prefix as v6", "10.0.0.0/24", 6, []string{"not an IPv6 prefix"}},
		{"v6 prefix as v4", "fd00::/64", 4, []string{"not an IPv4 prefix"}},
		{"v4-mapped as v6", "::ffff:10.0.0.0/120", 6, []string{"not an IPv6 prefix"}},
		{"v4-mapped as v4", "::ffff:10.0.0.0/120", 4, []string{"not an IPv4 prefix"}},

		// unknown family
		{"family 0", "10.0.0.0/24", 0, []string{"unknown address family 0"}},
		{"family 5", "10.0.0.0/24", 5, []string{"unknown address family 5"}},

		// too small
		{"v4 /30", "10.0.0.0/30", 4, []string{"too small", "/29"}},
		{"v4 /31", "10.0.0.0/31", 4, []string{"too small"}},
		{"v4 /32", "10.0.0.0/32", 4, []string{"too small"}},
		{"v6 /126", "fd00::/126", 6, []string{"too small", "/125"}},
		{"v6 /127", "fd00::/127", 6, []string{"too small"}},
		{"v6 /128", "fd00::/128", 6, []string{"too small"}},

		// reserved ranges
		{"v4 loopback", "127.0.0.0/8", 4, []string{"loopback"}},
		{"v4 loopback /24", "127.0.0.0/24", 4, []string{"loopback"}},
		{"v4 multicast", "224.0.0.0/4", 4, []string{"multicast"}},
		{"v4 multicast /24", "239.1.2.0/24", 4, []string{"multicast"}},
		{"v4 link-local", "169.254.0.0/16", 4, []string{"link-local"}},
		{"v4 link-local /24", "169.254.10.0/24", 4, []string{"link-local"}},
		{"v6 multicast", "ff00::/8", 6, []string{"multicast"}},
		{"v6 multicast /64", "ff02::/64", 6, []string{"multicast"}},
		{"v6 link-local", "fe80::/10", 6, []string{"link-local"}},
		{"v6 link-local /64", "fe80::/64", 6, []string{"link-local"}},
		// ::1 itself is a /128 (rejected as too small), so the loopback
		// branch for IPv6 can only be reached with a larger mask, which
		// then has host bits set. Either way it must fail.
		{"v6 loopback", "::1/128", 6, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePodCIDR(tt.in, tt.family)
			if err == nil {
				t.Fatalf("ParsePodCIDR(%q, %d) = %v, nil; want error", tt.in, tt.family, got)
			}
			if got != (netip.Prefix{}) {
				t.Errorf("ParsePodCIDR(%q, %d) returned non-zero prefix %v alongside error", tt.in, tt.family, got)
			}
			for _, sub := range tt.wantSubstrings {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("ParsePodCIDR(%q, %d) error = %q, want it to contain %q", tt.in, tt.family, err, sub)
				}
			}
		})
	}
}

// A prefix that merely contains a reserved range (or whose gateway would be
// the IPv6 loopback address) is refused, not just one that starts in it.
func TestParsePodCIDRRejectsPrefixesCoveringReservedRanges(t *testing.T) {
	for _, tc := range []struct {
		in     string
		family int
	}{
		{"::/64", 6},
		{"126.0.0.0/7", 4},
		{"0.0.0.0/0", 4},
	} {
		if p, err := ParsePodCIDR(tc.in, tc.family); err == nil {
			t.Errorf("ParsePodCIDR(%q, %d) = %v, nil; want error (range overlaps loopback)", tc.in, tc.family, p)
		}
	}
}

func TestOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"10.0.0.0/24", "10.0.0.0/24", true},
		{"10.0.0.0/16", "10.0.5.0/24", true},
		{"10.0.5.0/24", "10.0.0.0/16", true},
		{"10.0.0.0/24", "10.0.1.0/24", false},
		{"fd00::/64", "fd00::/120", true},
		{"fd00::/64", "fd01::/64", false},
		{"10.0.0.0/24", "fd00::/64", false},
	}
	for _, tt := range tests {
		if got := Overlaps(mustPrefix(t, tt.a), mustPrefix(t, tt.b)); got != tt.want {
			t.Errorf("Overlaps(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// ---------------------------------------------------------------------------
// Pool basics

func TestPoolPrefixAndGateway(t *testing.T) {
	tests := []struct {
		cidr, gateway string
	}{
		{"10.0.0.0/24", "10.0.0.1"},
		{"10.0.0.8/29", "10.0.0.9"},
		{"10.244.0.0/16", "10.244.0.1"},
		{"fd00::/64", "fd00::1"},
		{"2001:db8::100/120", "2001:db8::101"},
		{"2001:db8::/125", "2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.cidr, func(t *testing.T) {
			p := newTestPool(t, tt.cidr)
			if got, want := p.Prefix(), mustPrefix(t, tt.cidr); got != want {
				t.Errorf("Prefix() = %v, want %v", got, want)
			}
			if got, want := p.Gateway(), mustAddr(t, tt.gateway); got != want {
				t.Errorf("Gateway() = %v, want %v", got, want)
			}
			if p.Used() != 0 {
				t.Errorf("Used() on a fresh pool = %d, want 0", p.Used())
			}
		})
	}
}

func TestPoolCapacity(t *testing.T) {
	tests := []struct {
		cidr string
		want uint64
	}{
		{"10.0.0.0/29", 5},     // 8 - network - gateway - broadcast
		{"10.0.0.0/28", 13},    // 16 - 3
		{"10.0.0.0/24", 253},   // 256 - 3
		{"10.0.0.0/16", 65533}, // 65536 - 3
		{"10.0.0.0/8", 1<<24 - 3},
		{"0.0.0.0/0", 1<<32 - 3},
		{"fd00::/125", 6},   // 8 - network - gateway (no broadcast in v6)
		{"fd00::/120", 254}, // 256 - 2
		{"fd00::/112", 65534},
		{"fd00::/65", 1<<63 - 2},
		{"fd00::/64", math.MaxUint64}, // saturates
		{"fd00::/48", math.MaxUint64},
		{"::/0", math.MaxUint64},
	}
	for _, tt := range tests {
		t.Run(tt.cidr, func(t *testing.T) {
			if got := newTestPool(t, tt.cidr).Capacity(); got != tt.want {
				t.Errorf("Capacity() = %d, want %d", got, tt.want)
			}
		})
	}
}

// Allocating everything from a small pool yields exactly the assignable
// addresses, in order, and never the network, gateway or broadcast address.
func TestPoolAllocateAllThenExhausted(t *testing.T) {
	tests := []struct {
		cidr     string
		want     []string
		reserved []string
	}{
		{
			cidr:     "10.0.0.0/29",
			want:     []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"},
			reserved: []string{"10.0.0.0", "10.0.0.1", "10.0.0.7"},
		},
		{
			cidr:     "192.168.7.248/29",
			want:     []string{"192.168.7.250", "192.168.7.251", "192.168.7.252", "192.168.7.253", "192.168.7.254"},
			reserved: []string{"192.168.7.248", "192.168.7.249", "192.168.7.255"},
		},
		{
			// IPv6 has no broadcast: the last address is assignable.
			cidr:     "fd00::/125",
			want:     []string{"fd00::2", "fd00::3", "fd00::4", "fd00::5", "fd00::6", "fd00::7"},
			reserved: []string{"fd00::", "fd00::1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.cidr, func(t *testing.T) {
			p := newTestPool(t, tt.cidr)
			if got := p.Capacity(); got != uint64(len(tt.want)) {
				t.Fatalf("Capacity() = %d, want %d", got, len(tt.want))
			}
			got, err := drain(t, p, 100)
			if !errors.Is(err, ErrExhausted) {
				t.Fatalf("error after draining = %v, want ErrExhausted", err)
			}
			if !reflect.DeepEqual(addrStrings(got), tt.want) {
				t.Fatalf("allocated %v, want %v", addrStrings(got), tt.want)
			}
			if uint64(len(got)) != p.Capacity() {
				t.Fatalf("allocated %d addresses, Capacity() = %d", len(got), p.Capacity())
			}
			if p.Used() != len(tt.want) {
				t.Fatalf("Used() = %d, want %d", p.Used(), len(tt.want))
			}
			for _, a := range got {
				if !p.Prefix().Contains(a) {
					t.Errorf("allocated %s outside %s", a, p.Prefix())
				}
			}
			for _, r := range tt.reserved {
				ra := mustAddr(t, r)
				for _, a := range got {
					if a == ra {
						t.Errorf("reserved address %s was handed out", r)
					}
				}
				if _, ok := p.Owner(ra); ok {
					t.Errorf("reserved address %s has an owner", r)
				}
			}
			// Still exhausted on repeat, error message mentions the pool.
			a, err := p.Allocate("late")
			if !errors.Is(err, ErrExhausted) {
				t.Fatalf("Allocate on a full pool = %v, %v; want ErrExhausted", a, err)
			}
			if a.IsValid() {
				t.Errorf("Allocate on a full pool returned a valid address %s", a)
			}
			if !strings.Contains(err.Error(), tt.cidr) {
				t.Errorf("exhausted error %q does not mention %s", err, tt.cidr)
			}
			if p.Used() != len(tt.want) {
				t.Errorf("failed Allocate changed Used() to %d", p.Used())
			}
		})
	}
}

// A larger pool must also never hand out reserved addresses, including
// across the wrap-around of the cursor.
func TestPoolNeverHandsOutReservedAcrossWrap(t *testing.T) {
	p := newTestPool(t, "10.1.2.0/28")
	network, gw, bcast := mustAddr(t, "10.1.2.0"), mustAddr(t, "10.1.2.1"), mustAddr(t, "10.1.2.15")
	seen := map[netip.Addr]bool{}
	// Allocate and release many times so the cursor wraps several times.
	for i := 0; i < 100; i++ {
		a := mustAllocate(t, p, "churn")
		if a == network || a == gw || a == bcast {
			t.Fatalf("iteration %d: reserved address %s handed out", i, a)
		}
		if !p.Prefix().Contains(a) {
			t.Fatalf("iteration %d: %s outside %s", i, a, p.Prefix())
		}
		seen[a] = true
		p.Release(a)
	}
	if uint64(len(seen)) != p.Capacity() {
		t.Errorf("round-robin visited %d distinct addresses, want all %d", len(seen), p.Capacity())
	}
}

func TestPoolReleaseThenAllocate(t *testing.T) {
	p := newTestPool(t, "10.0.0.0/29")
	got, err := drain(t, p, 100)
	if !errors.Is(err, ErrExhausted) || len(got) != 5 {
		t.Fatalf("drain: %d addresses, err %v; want 5, ErrExhausted", len(got), err)
	}
	freed := mustAddr(t, "10.0.0.4")
	p.Release(freed)
	if p.Used() != 4 {
		t.Fatalf("Used() after Release = %d, want 4", p.Used())
	}
	if _, ok := p.Owner(freed); ok {
		t.Fatalf("Owner(%s) still set after Release", freed)
	}
	// The only free address must be reused.
	a, err := p.Allocate("new")
	if err != nil {
		t.Fatalf("Allocate after Release: %v", err)
	}
	if a != freed {
		t.Fatalf("Allocate after Release = %s, want the only free address %s", a, freed)
	}
	if o, _ := p.Owner(a); o != "new" {
		t.Fatalf("Owner(%s) = %q, want %q", a, o, "new")
	}
	if _, err := p.Allocate("more"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("Allocate on refilled pool = %v, want ErrExhausted", err)
	}
}

func TestPoolReleaseIsIdempotentAndIgnoresForeign(t *testing.T) {
	p := newTestPool(t, "10.0.0.0/29")
	a := mustAllocate(t, p, "a")
	b := mustAllocate(t, p, "b")
	p.Release(a)
	p.Release(a)                          // double release: no-op
	p.Release(mustAddr(t, "10.0.0.6"))    // never allocated
	p.Release(mustAddr(t, "192.168.0.2")) // outside the pool
	p.Release(mustAddr(t, "10.0.0.1"))    // gateway
	p.Release(netip.Addr{})               // zero value
	if p.Used() != 1 {
		t.Fatalf("Used() = %d, want 1", p.Used())
	}
	if o, ok := p.Owner(b); !ok || o != "b" {
		t.Fatalf("Owner(%s) = %q, %v; want b, true", b, o, ok)
	}
}

func TestPoolRoundRobin(t *testing.T) {
	tests := []struct {
		name string
		// ops: "a" allocates (expecting want), "r X" releases X
		ops []string
		// the expected result of each "a" op, in order
		want []string
	}{
		{
			name: "released address not reused at once",
			ops:  []string{"a", "r 10.0.0.2", "a", "a"},
			want: []string{"10.0.0.2", "10.0.0.3", "10.0.0.4"},
		},
		{
			name: "released address reused after wrap",
			ops:  []string{"a", "r 10.0.0.2", "a", "a", "a", "a", "a"},
			want: []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.2"},
		},
		{
			name: "middle release skipped until wrap",
			ops:  []string{"a", "a", "a", "r 10.0.0.3", "a", "a", "a"},
			want: []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.3"},
		},
		{
			name: "only free address is reused",
			ops:  []string{"a", "a", "a", "a", "a", "r 10.0.0.6", "a", "r 10.0.0.2", "a"},
			want: []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.6", "10.0.0.2"},
		},
		{
			name: "cursor skips taken addresses",
			ops:  []string{"a", "a", "r 10.0.0.2", "a", "a", "a", "a"},
			want: []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t, "10.0.0.0/29")
			var got []string
			for i, op := range tt.ops {
				switch {
				case op == "a":
					a, err := p.Allocate(fmt.Sprintf("op-%d", i))
					if err != nil {
						t.Fatalf("op %d: Allocate: %v", i, err)
					}
					got = append(got, a.String())
				case strings.HasPrefix(op, "r "):
					p.Release(mustAddr(t, strings.TrimPrefix(op, "r ")))
				default:
					t.Fatalf("bad op %q", op)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("allocations = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPoolRoundRobinV6(t *testing.T) {
	p := newTestPool(t, "fd00::/125")
	first := mustAllocate(t, p, "a")
	if first != mustAddr(t, "fd00::2") {
		t.Fatalf("first allocation = %s, want fd00::2", first)
	}
	p.Release(first)
	if got := mustAllocate(t, p, "b"); got != mustAddr(t, "fd00::3") {
		t.Fatalf("after release, Allocate = %s, want fd00::3 (no immediate reuse)", got)
	}
}

// Addresses claimed with AllocateIP are skipped by Allocate.
func TestPoolAllocateSkipsClaimed(t *testing.T) {
	p := newTestPool(t, "10.0.0.0/29")
	for _, s := range []string{"10.0.0.2", "10.0.0.4"} {
		if err := p.AllocateIP(mustAddr(t, s), "restored"); err != nil {
			t.Fatalf("AllocateIP(%s): %v", s, err)
		}
	}
	var got []string
	for i := 0; i < 3; i++ {
		got = append(got, mustAllocate(t, p, "new").String())
	}
	want := []string{"10.0.0.3", "10.0.0.5", "10.0.0.6"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("allocations = %v, want %v", got, want)
	}
	if _, err := p.Allocate("x"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("Allocate on full pool = %v, want ErrExhausted", err)
	}
}

// ---------------------------------------------------------------------------
// AllocateIP and Owner

func TestPoolAllocateIP(t *testing.T) {
	const v4 = "10.0.0.0/29"
	const v6 = "fd00::/125"
	tests := []struct {
		name    string
		cidr    string
		pre     map[string]string // address -> owner, claimed before the test
		addr    string
		owner   string
		wantErr error // nil for success
	}{
		{name: "v4 free address", cidr: v4, addr: "10.0.0.3", owner: "p"},
		{name: "v4 first assignable", cidr: v4, addr: "10.0.0.2", owner: "p"},
		{name: "v4 last assignable", cidr: v4, addr: "10.0.0.6", owner: "p"},
		{name: "v4 network", cidr: v4, addr: "10.0.0.0", owner: "p", wantErr: ErrConflict},
		{name: "v4 gateway", cidr: v4, addr: "10.0.0.1", owner: "p", wantErr: ErrConflict},
		{name: "v4 broadcast", cidr: v4, addr: "10.0.0.7", owner: "p", wantErr: ErrConflict},
		{name: "v4 below range", cidr: v4, addr: "9.255.255.255", owner: "p", wantErr: ErrOutOfRange},
		{name: "v4 above range", cidr: v4, addr: "10.0.0.8", owner: "p", wantErr: ErrOutOfRange},
		{name: "v4 other subnet", cidr: v4, addr: "192.168.0.2", owner: "p", wantErr: ErrOutOfRange},
		{name: "v6 addr in v4 pool", cidr: v4, addr: "fd00::2", owner: "p", wantErr: ErrOutOfRange},
		{name: "v4-mapped addr in v4 pool is unmapped", cidr: v4, addr: "::ffff:10.0.0.3", owner: "p"},
		{name: "v4 taken by other", cidr: v4, pre: map[string]string{"10.0.0.3": "a"}, addr: "10.0.0.3", owner: "b", wantErr: ErrConflict},
		{name: "v4 taken by same owner", cidr: v4, pre: map[string]string{"10.0.0.3": "a"}, addr: "10.0.0.3", owner: "a"},
		{name: "v4-mapped taken by same owner", cidr: v4, pre: map[string]string{"10.0.0.3": "a"}, addr: "::ffff:10.0.0.3", owner: "a"},
		{name: "v4-mapped taken by other", cidr: v4, pre: map[string]string{"10.0.0.3": "a"}, addr: "::ffff:10.0.0.3", owner: "b", wantErr: ErrConflict},

		{name: "v6 free address", cidr: v6, addr: "fd00::4", owner: "p"},
		{name: "v6 last address assignable", cidr: v6, addr: "fd00::7", owner: "p"},
		{name: "v6 network", cidr: v6, addr: "fd00::", owner: "p", wantErr: ErrConflict},
		{name: "v6 gateway", cidr: v6, addr: "fd00::1", owner: "p", wantErr: ErrConflict},
		{name: "v6 above range", cidr: v6, addr: "fd00::8", owner: "p", wantErr: ErrOutOfRange},
		{name: "v4 addr in v6 pool", cidr: v6, addr: "10.0.0.2", owner: "p", wantErr: ErrOutOfRange},
		{name: "v6 taken by other", cidr: v6, pre: map[string]string{"fd00::4": "a"}, addr: "fd00::4", owner: "b", wantErr: ErrConflict},
		{name: "v6 taken by same owner", cidr: v6, pre: map[string]string{"fd00::4": "a"}, addr: "fd00::4", owner: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t, tt.cidr)
			for a, o := range tt.pre {
				if err := p.AllocateIP(mustAddr(t, a), o); err != nil {
					t.Fatalf("setup AllocateIP(%s, %s): %v", a, o, err)
				}
			}
			usedBefore := p.Used()
			addr := mustAddr(t, tt.addr)
			err := p.AllocateIP(addr, tt.owner)

			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("AllocateIP(%s, %q) = %v, want nil", tt.addr, tt.owner, err)
				}
				o, ok := p.Owner(addr)
				if !ok || o != tt.owner {
					t.Fatalf("Owner(%s) = %q, %v; want %q, true", tt.addr, o, ok, tt.owner)
				}
				// Owner must also answer for the canonical (unmapped) form.
				if o, ok := p.Owner(addr.Unmap()); !ok || o != tt.owner {
					t.Fatalf("Owner(%s) = %q, %v; want %q, true", addr.Unmap(), o, ok, tt.owner)
				}
				wantUsed := usedBefore + 1
				if _, wasPre := tt.pre[addr.Unmap().String()]; wasPre {
					wantUsed = usedBefore // idempotent re-claim
				}
				if p.Used() != wantUsed {
					t.Fatalf("Used() = %d, want %d", p.Used(), wantUsed)
				}
				return
			}

			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("AllocateIP(%s, %q) = %v, want %v", tt.addr, tt.owner, err, tt.wantErr)
			}
			// The error sentinels are distinct.
			for _, other := range []error{ErrExhausted, ErrConflict, ErrOutOfRange} {
				if other != tt.wantErr && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
			if p.Used() != usedBefore {
				t.Fatalf("failed AllocateIP changed Used() from %d to %d", usedBefore, p.Used())
			}
			// A failed claim must not steal or create ownership.
			o, ok := p.Owner(addr)
			if preOwner, wasPre := tt.pre[addr.Unmap().String()]; wasPre {
				if !ok || o != preOwner {
					t.Fatalf("Owner(%s) = %q, %v after failed claim; want %q, true", tt.addr, o, ok, preOwner)
				}
			} else if ok {
				t.Fatalf("Owner(%s) = %q after failed claim; want none", tt.addr, o)
			}
		})
	}
}

func TestPoolAllocateIPErrorMentionsHolder(t *testing.T) {
	p := newTestPool(t, "10.0.0.0/29")
	if err := p.AllocateIP(mustAddr(t, "10.0.0.3"), "pod-a"); err != nil {
		t.Fatal(err)
	}
	err := p.AllocateIP(mustAddr(t, "10.0.0.3"), "pod-b")
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	if !strings.Contains(err.Error(), "pod-a") || !strings.Contains(err.Error(), "10.0.0.3") {
		t.Errorf("conflict error %q should name the address and current holder", err)
	}
}

func TestPoolOwner(t *testing.T) {
	p := newTestPool(t, "10.0.0.0/29")
	a := mustAllocate(t, p, "pod-a")
	b := mustAllocate(t, p, "pod-b")

	tests := []struct {
		addr      netip.Addr
		wantOwner string
		wantOK    bool
	}{
		{a, "pod-a", true},
		{b, "pod-b", true},
		{netip.AddrFrom16(a.As16()), "pod-a", true}, // v4-mapped form
		{mustAddr(t, "10.0.0.6"), "", false},        // free
		{mustAddr(t, "10.0.0.1"), "", false},        // gateway
		{mustAddr(t, "10.0.0.0"), "", false},        // network
		{mustAddr(t, "172.16.0.2"), "", false},      // outside
		{netip.Addr{}, "", false},                   // zero
	}
	for _, tt := range tests {
		o, ok := p.Owner(tt.addr)
		if o != tt.wantOwner || ok != tt.wantOK {
			t.Errorf("Owner(%v) = %q, %v; want %q, %v", tt.addr, o, ok, tt.wantOwner, tt.wantOK)
		}
	}

	p.Release(a)
	if o, ok := p.Owner(a); ok {
		t.Errorf("Owner(%s) after Release = %q, true; want none", a, o)
	}
	// Release via the v4-mapped form works too.
	p.Release(netip.AddrFrom16(b.As16()))
	if o, ok := p.Owner(b); ok {
		t.Errorf("Owner(%s) after mapped Release = %q, true; want none", b, o)
	}
	if p.Used() != 0 {
		t.Errorf("Used() = %d, want 0", p.Used())
	}
}

// ---------------------------------------------------------------------------
// IPAM

func newDualStack(t *testing.T, v4, v6 string) *IPAM {
	t.Helper()
	m := &IPAM{}
	if v4 != "" {
		m.V4 = newTestPool(t, v4)
	}
	if v6 != "" {
		m.V6 = newTestPool(t, v6)
	}
	return m
}

func TestIPAMAllocate(t *testing.T) {
	tests := []struct {
		name       string
		v4, v6     string
		wantV4     string // "" means invalid/zero
		wantV6     string
		wantErr    error
		wantV4Used int
		wantV6Used int
		prefillV4  bool
		prefillV6  bool
	}{
		{
			name: "dual stack", v4: "10.0.0.0/29", v6: "fd00::/120",
			wantV4: "10.0.0.2", wantV6: "fd00::2", wantV4Used: 1, wantV6Used: 1,
		},
		{
			name: "v4 only", v4: "10.0.0.0/29",
			wantV4: "10.0.0.2", wantV4Used: 1,
		},
		{
			name: "v6 only", v6: "fd00::/120",
			wantV6: "fd00::2", wantV6Used: 1,
		},
		{
			name: "v6 exhausted releases v4", v4: "10.0.0.0/29", v6: "fd00::/125",
			prefillV6: true, wantErr: ErrExhausted, wantV4Used: 0, wantV6Used: 6,
		},
		{
			name: "v4 exhausted leaves v6 alone", v4: "10.0.0.0/29", v6: "fd00::/120",
			prefillV4: true, wantErr: ErrExhausted, wantV4Used: 5, wantV6Used: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newDualStack(t, tt.v4, tt.v6)
			if tt.prefillV4 {
				drain(t, m.V4, 1000)
			}
			if tt.prefillV6 {
				drain(t, m.V6, 1000)
			}
			v4, v6, err := m.Allocate("pod")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Allocate err = %v, want %v", err, tt.wantErr)
				}
				if v4.IsValid() || v6.IsValid() {
					t.Fatalf("Allocate returned %v, %v alongside error; want zero addresses", v4, v6)
				}
			} else {
				if err != nil {
					t.Fatalf("Allocate err = %v", err)
				}
				checkAddr := func(fam string, got netip.Addr, want string) {
					t.Helper()
					if want == "" {
						if got.IsValid() {
							t.Errorf("%s = %v, want invalid", fam, got)
						}
						return
					}
					if got != mustAddr(t, want) {
						t.Errorf("%s = %v, want %s", fam, got, want)
					}
				}
				checkAddr("v4", v4, tt.wantV4)
				checkAddr("v6", v6, tt.wantV6)
				if v4.IsValid() {
					if o, _ := m.V4.Owner(v4); o != "pod" {
						t.Errorf("V4.Owner(%s) = %q, want pod", v4, o)
					}
				}
				if v6.IsValid() {
					if o, _ := m.V6.Owner(v6); o != "pod" {
						t.Errorf("V6.Owner(%s) = %q, want pod", v6, o)
					}
				}
			}
			if m.V4 != nil && m.V4.Used() != tt.wantV4Used {
				t.Errorf("V4.Used() = %d, want %d", m.V4.Used(), tt.wantV4Used)
			}
			if m.V6 != nil && m.V6.Used() != tt.wantV6Used {
				t.Errorf("V6.Used() = %d, want %d", m.V6.Used(), tt.wantV6Used)
			}
		})
	}
}

// When V6 is exhausted the v4 address allocated in the same call is rolled
// back: V4.Used() is unchanged and the address has no owner.
func TestIPAMAllocateRollbackV4OnV6Exhaustion(t *testing.T) {
	m := newDualStack(t, "10.0.0.0/29", "fd00::/125")
	// One pod already has both addresses.
	v4a, v6a, err := m.Allocate("pod-a")
	if err != nil {
		t.Fatal(err)
	}
	// Fill V6 directly.
	drain(t, m.V6, 100)

	usedV4 := m.V4.Used()
	usedV6 := m.V6.Used()
	for i := 0; i < 3; i++ { // repeated failures must not leak either
		v4, v6, err := m.Allocate(fmt.Sprintf("pod-b-%d", i))
		if !errors.Is(err, ErrExhausted) {
			t.Fatalf("Allocate err = %v, want ErrExhausted", err)
		}
		if v4.IsValid() || v6.IsValid() {
			t.Fatalf("Allocate returned %v, %v with an error", v4, v6)
		}
		if m.V4.Used() != usedV4 {
			t.Fatalf("V4.Used() = %d after failed Allocate, want %d (v4 not rolled back)", m.V4.Used(), usedV4)
		}
		if m.V6.Used() != usedV6 {
			t.Fatalf("V6.Used() = %d, want %d", m.V6.Used(), usedV6)
		}
	}
	// No v4 address other than pod-a's is owned.
	for _, s := range []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"} {
		a := mustAddr(t, s)
		o, ok := m.V4.Owner(a)
		if a == v4a {
			if !ok || o != "pod-a" {
				t.Errorf("V4.Owner(%s) = %q, %v; want pod-a", a, o, ok)
			}
			continue
		}
		if ok {
			t.Errorf("V4.Owner(%s) = %q; leaked by a failed Allocate", a, o)
		}
	}
	// pod-a untouched in V6.
	if o, ok := m.V6.Owner(v6a); !ok || o != "pod-a" {
		t.Errorf("V6.Owner(%s) = %q, %v; want pod-a", v6a, o, ok)
	}
}

func TestIPAMClaim(t *testing.T) {
	type claimed struct{ v4, v6 string }
	tests := []struct {
		name    string
		v4Pool  string
		v6Pool  string
		pre     map[string]claimed // owner -> addresses claimed beforehand
		owner   string
		v4, v6  string
		wantErr error
		// expected ownership after the call: address -> owner ("" = free)
		wantOwners map[string]string
		wantV4Used int
		wantV6Used int
	}{
		{
			name: "restore dual stack", v4Pool: "10.0.0.0/29", v6Pool: "fd00::/120",
			owner: "pod", v4: "10.0.0.4", v6: "fd00::9",
			wantOwners: map[string]string{"10.0.0.4": "pod", "fd00::9": "pod"},
			wantV4Used: 1, wantV6Used: 1,
		},
		{
			name: "restore v4 only on dual-stack node", v4Pool: "10.0.0.0/29", v6Pool: "fd00::/120",
			owner: "pod", v4: "10.0.0.4",
			wantOwners: map[string]string{"10.0.0.4": "pod"},
			wantV4Used: 1, wantV6Used: 0,
		},
		{
			name: "restore v6 only on v6 node", v6Pool: "fd00::/120",
			owner: "pod", v6: "fd00::9",
			wantOwners: map[string]string{"fd00::9": "pod"},
			wantV6Used: 1,
		},
		{
			name: "idempotent re-claim", v4Pool: "10.0.0.0/29", v6Pool: "fd00::/120",
			pre:   map[string]claimed{"pod": {"10.0.0.4", "fd00::9"}},
			owner: "pod", v4: "10.0.0.4", v6: "fd00::9",
			wantOwners: map[string]string{"10.0.0.4": "pod", "fd00::9": "pod"},
			wantV4Used: 1, wantV6Used: 1,
		},
		{
			name: "nothing to claim", v4Pool: "10.0.0.0/29", v6Pool: "fd00::/120",
			owner: "pod", wantV4Used: 0, wantV6Used: 0,
		},
		{
			name: "v6 with no V6 pool fails and leaves V4 untouched", v4Pool: "10.0.0.0/29",
			owner: "pod", v4: "10.0.0.4", v6: "fd00::9", wantErr: ErrOutOfRange,
			wantOwners: map[string]string{"10.0.0.4": ""},
			wantV4Used: 0,
		},
		{
			name: "v6 with no V6 pool leaves other V4 claims alone", v4Pool: "10.0.0.0/29",
			pre:   map[string]claimed{"other": {"10.0.0.3", ""}},
			owner: "pod", v4: "10.0.0.4", v6: "fd00::9", wantErr: ErrOutOfRange,
			wantOwners: map[string]string{"10.0.0.3": "other", "10.0.0.4": ""},
			wantV4Used: 1,
		},
		{
			name: "v4 with no V4 pool", v6Pool: "fd00::/120",
			owner: "pod", v4: "10.0.0.4", v6: "fd00::9", wantErr: ErrOutOfRange,
			wantOwners: map[string]string{"fd00::9": ""},
			wantV6Used: 0,
		},
		{
			name: "v4 conflict leaves everything", v4Pool: "10.0.0.0/29", v6Pool: "fd00::/120",
			pre:   map[string]claimed{"other": {"10.0.0.4", ""}},
			owner: "pod", v4: "10.0.0.4", v6: "fd00::9", wantErr: ErrConflict,
			wantOwners: map[string]string{"10.0.0.4": "other", "fd00::9": ""},
			wantV4Used: 1, wantV6Used: 0,
		},
		{
			name: "v6 conflict rolls back v4", v4Pool: "10.0.0.0/29", v6Pool: "fd00::/120",
			pre:   map[string]claimed{"other": {"", "fd00::9"}},
			owner: "pod", v4: "10.0.0.4", v6: "fd00::9", wantErr: ErrConflict,
			wantOwners: map[string]string{"10.0.0.4": "", "fd00::9": "other"},
			wantV4Used: 0, wantV6Used: 1,
		},
		{
			name: "v6 out of range rolls back v4", v4Pool: "10.0.0.0/29", v6Pool: "fd00::/120",
			owner: "pod", v4: "10.0.0.4", v6: "fd01::9", wantErr: ErrOutOfRange,
			wantOwners: map[string]string{"10.0.0.4": ""},
			wantV4Used: 0, wantV6Used: 0,
		},
		{
			name: "v6 reserved rolls back v4", v4Pool: "10.0.0.0/29", v6Pool: "fd00::/120",
			owner: "pod", v4: "10.0.0.4", v6: "fd00::1", wantErr: ErrConflict,
			wantOwners: map[string]string{"10.0.0.4": ""},
			wantV4Used: 0, wantV6Used: 0,
		},
		{
			name: "v4 out of range", v4Pool: "10.0.0.0/29", v6Pool: "fd00::/120",
			owner: "pod", v4: "10.0.1.4", v6: "fd00::9", wantErr: ErrOutOfRange,
			wantOwners: map[string]string{"fd00::9": ""},
			wantV4Used: 0, wantV6Used: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newDualStack(t, tt.v4Pool, tt.v6Pool)
			parse := func(s string) netip.Addr {
				if s == "" {
					return netip.Addr{}
				}
				return mustAddr(t, s)
			}
			for o, c := range tt.pre {
				if err := m.Claim(o, parse(c.v4), parse(c.v6)); err != nil {
					t.Fatalf("setup Claim(%s): %v", o, err)
				}
			}
			err := m.Claim(tt.owner, parse(tt.v4), parse(tt.v6))
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Claim = %v, want nil", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Claim = %v, want %v", err, tt.wantErr)
			}
			for s, want := range tt.wantOwners {
				a := mustAddr(t, s)
				pool := m.V4
				if a.Is6() {
					pool = m.V6
				}
				if pool == nil {
					continue
				}
				o, ok := pool.Owner(a)
				if want == "" {
					if ok {
						t.Errorf("Owner(%s) = %q, want free", s, o)
					}
				} else if !ok || o != want {
					t.Errorf("Owner(%s) = %q, %v; want %q", s, o, ok, want)
				}
			}
			if m.V4 != nil && m.V4.Used() != tt.wantV4Used {
				t.Errorf("V4.Used() = %d, want %d", m.V4.Used(), tt.wantV4Used)
			}
			if m.V6 != nil && m.V6.Used() != tt.wantV6Used {
				t.Errorf("V6.Used() = %d, want %d", m.V6.Used(), tt.wantV6Used)
			}
		})
	}
}

// Claim is documented as "all or nothing" and AllocateIP as idempotent for
// the same owner. A re-claim whose v6 half fails must therefore leave the
// owner's pre-existing v4 claim in place: the rollback may only release what
// this call claimed.
func TestIPAMClaimFailureKeepsPreexistingV4(t *testing.T) {
	for _, tc := range []struct {
		name   string
		v6Pool string
		v6     string
	}{
		{"no V6 pool", "", "fd00::9"},
		{"v6 out of range", "fd00::/120", "fd01::9"},
		{"v6 reserved", "fd00::/120", "fd00::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newDualStack(t, "10.0.0.0/29", tc.v6Pool)
			v4 := mustAddr(t, "10.0.0.4")
			if err := m.Claim("pod", v4, netip.Addr{}); err != nil {
				t.Fatal(err)
			}
			if err := m.Claim("pod", v4, mustAddr(t, tc.v6)); err == nil {
				t.Fatal("Claim with a bad v6 address succeeded")
			}
			if o, ok := m.V4.Owner(v4); !ok || o != "pod" {
				t.Fatalf("V4.Owner(%s) = %q, %v after failed re-claim; want pod, true (pre-existing claim lost)", v4, o, ok)
			}
			if m.V4.Used() != 1 {
				t.Fatalf("V4.Used() = %d, want 1", m.V4.Used())
			}
		})
	}
}

// Claim restores addresses handed out by a previous Allocate, e.g. after an
// agent restart that rebuilds pools from persisted endpoints.
func TestIPAMClaimRestoresAfterRestart(t *testing.T) {
	old := newDualStack(t, "10.0.0.0/28", "fd00::/120")
	type ep struct {
		owner  string
		v4, v6 netip.Addr
	}
	var eps []ep
	for i := 0; i < 5; i++ {
		v4, v6, err := old.Allocate(fmt.Sprintf("pod-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep{fmt.Sprintf("pod-%d", i), v4, v6})
	}

	fresh := newDualStack(t, "10.0.0.0/28", "fd00::/120")
	for _, e := range eps {
		if err := fresh.Claim(e.owner, e.v4, e.v6); err != nil {
			t.Fatalf("Claim(%s, %s, %s): %v", e.owner, e.v4, e.v6, err)
		}
		// Restore is idempotent.
		if err := fresh.Claim(e.owner, e.v4, e.v6); err != nil {
			t.Fatalf("second Claim(%s): %v", e.owner, err)
		}
	}
	if fresh.V4.Used() != len(eps) || fresh.V6.Used() != len(eps) {
		t.Fatalf("Used() = %d/%d, want %d/%d", fresh.V4.Used(), fresh.V6.Used(), len(eps), len(eps))
	}
	for _, e := range eps {
		if o, _ := fresh.V4.Owner(e.v4); o != e.owner {
			t.Errorf("V4.Owner(%s) = %q, want %q", e.v4, o, e.owner)
		}
		if o, _ := fresh.V6.Owner(e.v6); o != e.owner {
			t.Errorf("V6.Owner(%s) = %q, want %q", e.v6, o, e.owner)
		}
	}
	// New allocations never collide with restored ones.
	restored := map[netip.Addr]bool{}
	for _, e := range eps {
		restored[e.v4], restored[e.v6] = true, true
	}
	for i := 0; i < 5; i++ {
		v4, v6, err := fresh.Allocate(fmt.Sprintf("new-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if restored[v4] || restored[v6] {
			t.Fatalf("new allocation %s/%s collides with a restored address", v4, v6)
		}
	}
	// Another owner cannot claim a restored address.
	if err := fresh.Claim("intruder", eps[0].v4, netip.Addr{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("Claim of a restored v4 by another owner = %v, want ErrConflict", err)
	}
	if err := fresh.Claim("intruder", netip.Addr{}, eps[0].v6); !errors.Is(err, ErrConflict) {
		t.Fatalf("Claim of a restored v6 by another owner = %v, want ErrConflict", err)
	}
}

func TestIPAMRelease(t *testing.T) {
	t.Run("dual stack", func(t *testing.T) {
		m := newDualStack(t, "10.0.0.0/29", "fd00::/120")
		v4, v6, err := m.Allocate("a")
		if err != nil {
			t.Fatal(err)
		}
		b4, b6, err := m.Allocate("b")
		if err != nil {
			t.Fatal(err)
		}
		m.Release(v4, v6)
		if m.V4.Used() != 1 || m.V6.Used() != 1 {
			t.Fatalf("Used() = %d/%d, want 1/1", m.V4.Used(), m.V6.Used())
		}
		if _, ok := m.V4.Owner(v4); ok {
			t.Errorf("%s still owned", v4)
		}
		if _, ok := m.V6.Owner(v6); ok {
			t.Errorf("%s still owned", v6)
		}
		if o, _ := m.V4.Owner(b4); o != "b" {
			t.Errorf("V4.Owner(%s) = %q, want b", b4, o)
		}
		if o, _ := m.V6.Owner(b6); o != "b" {
			t.Errorf("V6.Owner(%s) = %q, want b", b6, o)
		}
		// Double release is a no-op.
		m.Release(v4, v6)
		if m.V4.Used() != 1 || m.V6.Used() != 1 {
			t.Fatalf("Used() after double release = %d/%d, want 1/1", m.V4.Used(), m.V6.Used())
		}
	})
	t.Run("invalid addresses skipped", func(t *testing.T) {
		m := newDualStack(t, "10.0.0.0/29", "fd00::/120")
		v4, v6, err := m.Allocate("a")
		if err != nil {
			t.Fatal(err)
		}
		m.Release(netip.Addr{}, v6)
		if m.V4.Used() != 1 || m.V6.Used() != 0 {
			t.Fatalf("Used() = %d/%d, want 1/0", m.V4.Used(), m.V6.Used())
		}
		m.Release(v4, netip.Addr{})
		if m.V4.Used() != 0 {
			t.Fatalf("V4.Used() = %d, want 0", m.V4.Used())
		}
		m.Release(netip.Addr{}, netip.Addr{})
	})
	t.Run("missing pools do not panic", func(t *testing.T) {
		v4only := newDualStack(t, "10.0.0.0/29", "")
		v4, _, err := v4only.Allocate("a")
		if err != nil {
			t.Fatal(err)
		}
		v4only.Release(v4, mustAddr(t, "fd00::2"))
		if v4only.V4.Used() != 0 {
			t.Fatalf("V4.Used() = %d, want 0", v4only.V4.Used())
		}
		v6only := newDualStack(t, "", "fd00::/120")
		_, v6, err := v6only.Allocate("a")
		if err != nil {
			t.Fatal(err)
		}
		v6only.Release(mustAddr(t, "10.0.0.2"), v6)
		if v6only.V6.Used() != 0 {
			t.Fatalf("V6.Used() = %d, want 0", v6only.V6.Used())
		}
		(&IPAM{}).Release(mustAddr(t, "10.0.0.2"), mustAddr(t, "fd00::2"))
	})
}

func TestIPAMStatus(t *testing.T) {
	tests := []struct {
		name   string
		v4, v6 string
		allocs int
		want   []PoolStatus
	}{
		{
			name: "no pools",
			want: nil,
		},
		{
			name: "dual stack", v4: "10.0.0.0/29", v6: "fd00::/120", allocs: 2,
			want: []PoolStatus{
				{CIDR: "10.0.0.0/29", Gateway: "10.0.0.1", Used: 2, Capacity: 5},
				{CIDR: "fd00::/120", Gateway: "fd00::1", Used: 2, Capacity: 254},
			},
		},
		{
			name: "v4 only", v4: "10.244.1.0/24", allocs: 3,
			want: []PoolStatus{
				{CIDR: "10.244.1.0/24", Gateway: "10.244.1.1", Used: 3, Capacity: 253},
			},
		},
		{
			name: "v6 only /64", v6: "fd00:10:244:1::/64", allocs: 1,
			want: []PoolStatus{
				{CIDR: "fd00:10:244:1::/64", Gateway: "fd00:10:244:1::1", Used: 1, Capacity: math.MaxUint64},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newDualStack(t, tt.v4, tt.v6)
			for i := 0; i < tt.allocs; i++ {
				if _, _, err := m.Allocate(fmt.Sprintf("pod-%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			got := m.Status()
			if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
				t.Fatalf("Status() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestIPAMStatusTracksReleaseAndJSON(t *testing.T) {
	m := newDualStack(t, "10.0.0.0/29", "fd00::/120")
	v4, v6, err := m.Allocate("a")
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); st[0].Used != 1 || st[1].Used != 1 {
		t.Fatalf("Status() used = %d/%d, want 1/1", st[0].Used, st[1].Used)
	}
	m.Release(v4, v6)
	st := m.Status()
	if st[0].Used != 0 || st[1].Used != 0 {
		t.Fatalf("Status() used after release = %d/%d, want 0/0", st[0].Used, st[1].Used)
	}
	b, err := json.Marshal(st[0])
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"cidr":"10.0.0.0/29","gateway":"10.0.0.1","used":0,"capacity":5}`
	if string(b) != want {
		t.Fatalf("json = %s, want %s", b, want)
	}
}

// ---------------------------------------------------------------------------
// Concurrency (run with -race)

func TestPoolConcurrentAllocateNoDuplicates(t *testing.T) {
	const workers = 8
	const perWorker = 100
	p := newTestPool(t, "10.8.0.0/22") // 1021 addresses, enough for 800

	var (
		wg      sync.WaitGroup
		results [workers][]netip.Addr
		errs    [workers]error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				a, err := p.Allocate(fmt.Sprintf("w%d-%d", w, i))
				if err != nil {
					errs[w] = err
					return
				}
				results[w] = append(results[w], a)
			}
		}(w)
	}
	wg.Wait()

	seen := map[netip.Addr]string{}
	for w := 0; w < workers; w++ {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		for i, a := range results[w] {
			who := fmt.Sprintf("w%d-%d", w, i)
			if prev, dup := seen[a]; dup {
				t.Fatalf("address %s handed to both %s and %s", a, prev, who)
			}
			seen[a] = who
			if o, _ := p.Owner(a); o != who {
				t.Errorf("Owner(%s) = %q, want %q", a, o, who)
			}
		}
	}
	if len(seen) != workers*perWorker || p.Used() != workers*perWorker {
		t.Fatalf("distinct = %d, Used() = %d, want %d", len(seen), p.Used(), workers*perWorker)
	}
}

// Racing to exhaustion: exactly Capacity() allocations succeed overall, all
// distinct, and every worker ends with ErrExhausted.
func TestPoolConcurrentAllocateToExhaustion(t *testing.T) {
	const workers = 8
	p := newTestPool(t, "10.9.0.0/24") // 253 addresses

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		all     []netip.Addr
		badErrs []error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []netip.Addr
			for {
				a, err := p.Allocate(fmt.Sprintf("w%d", w))
				if err != nil {
					if !errors.Is(err, ErrExhausted) {
						mu.Lock()
						badErrs = append(badErrs, err)
						mu.Unlock()
					}
					break
				}
				mine = append(mine, a)
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()

	if len(badErrs) > 0 {
		t.Fatalf("unexpected errors: %v", badErrs)
	}
	if uint64(len(all)) != p.Capacity() {
		t.Fatalf("%d successful allocations, want Capacity() = %d", len(all), p.Capacity())
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Less(all[j]) })
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			t.Fatalf("duplicate address %s", all[i])
		}
	}
	if all[0] != mustAddr(t, "10.9.0.2") || all[len(all)-1] != mustAddr(t, "10.9.0.254") {
		t.Fatalf("range = %s..%s, want 10.9.0.2..10.9.0.254", all[0], all[len(all)-1])
	}
}

// Mixed allocate/release/claim/status churn from many goroutines: no two
// live holders ever share an address.
func TestPoolConcurrentChurn(t *testing.T) {
	const workers = 8
	const rounds = 200
	m := newDualStack(t, "10.10.0.0/26", "fd00:10::/120")

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		live = map[netip.Addr]string{}
		fail []string
	)
	hold := func(a netip.Addr, who string) {
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := live[a]; ok {
			fail = append(fail, fmt.Sprintf("%s given to %s while held by %s", a, who, prev))
		}
		live[a] = who
	}
	drop := func(a netip.Addr) {
		mu.Lock()
		defer mu.Unlock()
		delete(live, a)
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			who := fmt.Sprintf("w%d", w)
			for i := 0; i < rounds; i++ {
				v4, v6, err := m.Allocate(who)
				if err != nil {
					mu.Lock()
					fail = append(fail, fmt.Sprintf("%s: %v", who, err))
					mu.Unlock()
					return
				}
				hold(v4, who)
				hold(v6, who)
				if err := m.Claim(who, v4, v6); err != nil { // idempotent
					mu.Lock()
					fail = append(fail, fmt.Sprintf("%s re-claim: %v", who, err))
					mu.Unlock()
					return
				}
				_ = m.Status()
				drop(v4)
				drop(v6)
				m.Release(v4, v6)
			}
		}(w)
	}
	wg.Wait()
	if len(fail) > 0 {
		t.Fatalf("%d failures, first: %s", len(fail), fail[0])
	}
	if m.V4.Used() != 0 || m.V6.Used() != 0 {
		t.Fatalf("Used() = %d/%d after churn, want 0/0", m.V4.Used(), m.V6.Used())
	}
}
