package endpoint

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seta-net/seta/pkg/ipam"
)

// Stats are an endpoint's traffic counters as the datapath counts them.
type Stats struct {
	RxPackets uint64 `json:"rxPackets"`
	RxBytes   uint64 `json:"rxBytes"`
	TxPackets uint64 `json:"txPackets"`
	TxBytes   uint64 `json:"txBytes"`
}

// Datapath is what the manager needs from the kernel side.
type Datapath interface {
	// SetupEndpoint creates the endpoint's devices, programs and map
	// entries and fills in HostIfName, HostIfIndex, HostMAC and PodMAC.
	// On error it leaves nothing behind.
	SetupEndpoint(ep *Endpoint) error
	// RestoreEndpoint re-attaches a persisted endpoint after an agent
	// restart, updating HostIfIndex and MACs from the live devices. alive
	// is false when its devices are gone (the pod went away meanwhile).
	RestoreEndpoint(ep *Endpoint) (alive bool, err error)
	// RemoveEndpoint undoes SetupEndpoint; missing pieces are not errors.
	RemoveEndpoint(ep *Endpoint) error
	// CheckEndpoint returns every way the endpoint differs from its record.
	CheckEndpoint(ep *Endpoint) []string
	// Sync removes datapath state that belongs to no endpoint in eps.
	Sync(eps []*Endpoint) error
	// Stats returns the endpoint's counters.
	Stats(ep *Endpoint) (Stats, error)
	// UpdateEndpoint rewrites the endpoint's datapath entry after a
	// configuration change (policy audit).
	UpdateEndpoint(ep *Endpoint) error
}

// PolicyHook gives endpoints their identity and policy. The manager calls
// it around the datapath so that an endpoint's policy is in place before its
// first packet and removed after its last.
type PolicyHook interface {
	// Prepare runs for a new endpoint before its datapath is set up; it
	// sets ep.Identity and ep.SecurityLabels.
	Prepare(ep *Endpoint) error
	// Restore does the same for an endpoint restored after a restart.
	Restore(ep *Endpoint) error
	// RestoreDone runs once every endpoint is restored.
	RestoreDone() error
	// Remove runs after an endpoint's datapath is gone.
	Remove(ep *Endpoint)
}

// Config of the manager.
type Config struct {
	MTU int
	// MaxEndpoints caps the number of endpoints (the datapath's map size).
	MaxEndpoints int
}

// Manager owns the node's endpoints.
type Manager struct {
	log   *slog.Logger
	cfg   Config
	store *Store
	ipam  *ipam.IPAM
	dp    Datapath

	hook PolicyHook

	// gen changes whenever the set of endpoints does, so readers that
	// cache lookups (the flow decoder) know when to refresh.
	gen atomic.Uint64

	mu     sync.Mutex
	eps    map[uint16]*Endpoint
	byKey  map[string]uint16
	nextID uint16
}

// NewManager returns an empty manager; call Restore before serving.
func NewManager(log *slog.Logger, cfg Config, store *Store, pools *ipam.IPAM, dp Datapath) *Manager {
	if cfg.MaxEndpoints <= 0 || cfg.MaxEndpoints > 65535 {
		cfg.MaxEndpoints = 65535
	}
	return &Manager{
		log: log.With("subsys", "endpoint"), cfg: cfg, store: store, ipam: pools, dp: dp,
		eps: map[uint16]*Endpoint{}, byKey: map[string]uint16{}, nextID: 1,
	}
}

// SetPolicyHook installs the policy hook; call it before Restore.
func (m *Manager) SetPolicyHook(h PolicyHook) { m.hook = h }

// Restore loads persisted endpoints, reclaims their addresses and re-attaches
// their datapath. Endpoints whose pod is gone, and half-created ones from a
// crash, are removed. An endpoint whose address no longer fits the node's
// pod CIDRs is a fatal error: the operator changed the CIDR under live pods.
func (m *Manager) Restore() error {
	eps, errs := m.store.LoadAll()
	for _, err := range errs {
		m.log.Error("Skipping unreadable endpoint record", "error", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var maxID uint16
	for _, ep := range eps {
		if ep.State != StateReady {
			m.log.Info("Removing endpoint left half-created by an earlier agent", "endpoint", ep.ID, "container", ep.ContainerID)
			m.dp.RemoveEndpoint(ep)
			m.store.Delete(ep.ID)
			continue
		}
		if err := m.ipam.Claim(ep.Key(), ep.IPv4, ep.IPv6); err != nil {
			return fmt.Errorf("restore endpoint %d (container %s): %w; was the pod CIDR changed while pods exist?", ep.ID, ep.ContainerID, err)
		}
		if m.hook != nil {
			if err := m.hook.Restore(ep); err != nil {
				m.ipam.Release(ep.IPv4, ep.IPv6)
				return fmt.Errorf("restore endpoint %d (container %s): %w", ep.ID, ep.ContainerID, err)
			}
		}
		alive, err := m.dp.RestoreEndpoint(ep)
		if err != nil {
			m.ipam.Release(ep.IPv4, ep.IPv6)
			return fmt.Errorf("restore endpoint %d (container %s): %w", ep.ID, ep.ContainerID, err)
		}
		if !alive {
			if m.hook != nil {
				m.hook.Remove(ep)
			}
			m.log.Info("Removing endpoint whose pod is gone", "endpoint", ep.ID, "container", ep.ContainerID, "netns", ep.NetNS)
			m.dp.RemoveEndpoint(ep)
			m.ipam.Release(ep.IPv4, ep.IPv6)
			m.store.Delete(ep.ID)
			continue
		}
		if err := m.store.Save(ep); err != nil {
			return err
		}
		m.eps[ep.ID] = ep
		m.byKey[ep.Key()] = ep.ID
		m.gen.Add(1)
		maxID = max(maxID, ep.ID)
	}
	if maxID < 65535 {
		m.nextID = maxID + 1
	}
	live := make([]*Endpoint, 0, len(m.eps))
	for _, ep := range m.eps {
		live = append(live, ep)
	}
	if err := m.dp.Sync(live); err != nil {
		return fmt.Errorf("remove stale datapath state: %w", err)
	}
	if m.hook != nil {
		if err := m.hook.RestoreDone(); err != nil {
			return fmt.Errorf("restore policy: %w", err)
		}
	}
	m.log.Info("Restored endpoints", "count", len(m.eps))
	return nil
}

// ValidIfName checks an interface name as the kernel would.
func ValidIfName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return fmt.Errorf("%w: interface name %q must be 1 to 15 characters and not . or ..", ErrInvalid, name)
	}
	if strings.ContainsAny(name, "/: \t\n") {
		return fmt.Errorf("%w: interface name %q contains '/', ':' or white space", ErrInvalid, name)
	}
	return nil
}

func validateCreate(req *CreateRequest) error {
	if req.ContainerID == "" {
		return fmt.Errorf("%w: containerID is required", ErrInvalid)
	}
	if strings.ContainsAny(req.ContainerID, "/\x00") || len(req.ContainerID) > 256 {
		return fmt.Errorf("%w: containerID %q must be at most 256 characters without '/'", ErrInvalid, req.ContainerID)
	}
	if err := ValidIfName(req.IfName); err != nil {
		return err
	}
	if req.NetNS == "" || !filepath.IsAbs(req.NetNS) {
		return fmt.Errorf("%w: netns must be an absolute path, got %q", ErrInvalid, req.NetNS)
	}
	for _, l := range req.Labels {
		if l == "" || strings.ContainsAny(l, "\n\x00") {
			return fmt.Errorf("%w: bad label %q", ErrInvalid, l)
		}
	}
	return nil
}

func (m *Manager) allocID() (uint16, error) {
	if len(m.eps) >= m.cfg.MaxEndpoints {
		return 0, fmt.Errorf("%w: the node has %d endpoints, the configured maximum", ErrTooManyEndpoints, len(m.eps))
	}
	for i := 0; i < 65535; i++ {
		id := m.nextID
		m.nextID++
		if m.nextID == 0 {
			m.nextID = 1
		}
		if _, used := m.eps[id]; !used && id != 0 {
			return id, nil
		}
	}
	return 0, ErrTooManyEndpoints
}

// Create reserves addresses and an ID, then sets up the datapath. When any
// step fails, everything done so far is undone.
func (m *Manager) Create(req CreateRequest) (*Endpoint, error) {
	if err := validateCreate(&req); err != nil {
		return nil, err
	}
	if _, err := os.Stat(req.NetNS); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNetNSNotFound, req.NetNS, err)
	}
	key := AttachmentKey(req.ContainerID, req.IfName)

	m.mu.Lock()
	if id, ok := m.byKey[key]; ok {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: container %s interface %s is endpoint %d", ErrExists, req.ContainerID, req.IfName, id)
	}
	// One Seta interface per pod: a second one would compete for the
	// pod's default routes.
	for _, other := range m.eps {
		if other.ContainerID == req.ContainerID || other.NetNS == req.NetNS {
			m.mu.Unlock()
			return nil, fmt.Errorf("%w: the pod already has Seta interface %s (endpoint %d); one Seta interface per pod is supported",
				ErrExists, other.IfName, other.ID)
		}
	}
	id, err := m.allocID()
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	v4, v6, err := m.ipam.Allocate(key)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	ep := &Endpoint{
		ID: id, ContainerID: req.ContainerID, IfName: req.IfName, NetNS: req.NetNS,
		Network: req.Network, PodName: req.PodName, Namespace: req.Namespace,
		Labels: slices.Clone(req.Labels), IPv4: v4, IPv6: v6, MTU: m.cfg.MTU,
		State: StateCreating, CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
	if m.ipam.V4 != nil {
		ep.GatewayV4 = m.ipam.V4.Gateway()
	}
	if m.ipam.V6 != nil {
		ep.GatewayV6 = m.ipam.V6.Gateway()
	}
	// Persist the reservation first: if the agent dies during setup, the
	// next start finds a "creating" record and cleans up after it.
	if err := m.store.Save(ep); err != nil {
		m.ipam.Release(v4, v6)
		m.mu.Unlock()
		return nil, err
	}
	m.eps[id] = ep
	m.byKey[key] = id
	m.gen.Add(1)
	m.mu.Unlock()

	// The kernel work runs outside the lock so CNI ADDs proceed in parallel.
	// Policy goes in before the datapath, so no packet passes unchecked.
	work := *ep
	var setupErr error
	if m.hook != nil {
		setupErr = m.hook.Prepare(&work)
	}
	if setupErr == nil {
		setupErr = m.dp.SetupEndpoint(&work)
		if setupErr != nil && m.hook != nil {
			m.hook.Remove(&work)
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if setupErr == nil {
		work.State = StateReady
		setupErr = m.store.Save(&work)
		if setupErr != nil {
			m.dp.RemoveEndpoint(&work)
			if m.hook != nil {
				m.hook.Remove(&work)
			}
		}
	}
	if setupErr != nil {
		delete(m.eps, id)
		delete(m.byKey, key)
		m.gen.Add(1)
		m.ipam.Release(v4, v6)
		m.store.Delete(id)
		return nil, setupErr
	}
	*ep = work
	m.log.Info("Endpoint created", "endpoint", id, "container", req.ContainerID, "pod", req.Namespace+"/"+req.PodName,
		"ipv4", v4, "ipv6", v6, "device", ep.HostIfName)
	out := *ep
	return &out, nil
}

// ErrBusy means the endpoint is being created or deleted.
var ErrBusy = errors.New("endpoint is busy")

// Delete removes endpoint id and everything it holds.
func (m *Manager) Delete(id uint16) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, ok := m.eps[id]
	if !ok {
		return fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if ep.State != StateReady {
		return fmt.Errorf("%w: endpoint %d is %s; try again", ErrBusy, id, ep.State)
	}
	return m.deleteLocked(ep)
}

// DeleteByAttachment removes the endpoint of a container interface.
func (m *Manager) DeleteByAttachment(containerID, ifName string) (*Endpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.byKey[AttachmentKey(containerID, ifName)]
	if !ok {
		return nil, fmt.Errorf("%w: container %s interface %s", ErrNotFound, containerID, ifName)
	}
	ep := m.eps[id]
	if ep.State != StateReady {
		return nil, fmt.Errorf("%w: endpoint %d is %s; try again", ErrBusy, id, ep.State)
	}
	out := *ep
	return &out, m.deleteLocked(ep)
}

// deleteLocked removes a ready endpoint. It is called with m.mu held and
// releases it while the kernel work runs (deleting a device waits for RCU
// grace periods), so deletes do not queue behind each other or block
// creates; meanwhile the endpoint is "deleting" and refuses other changes.
func (m *Manager) deleteLocked(ep *Endpoint) error {
	ep.State = StateDeleting
	work := *ep
	m.mu.Unlock()
	err := m.dp.RemoveEndpoint(&work)
	m.mu.Lock()
	if err != nil {
		ep.State = StateReady
		return fmt.Errorf("remove endpoint %d: %w", ep.ID, err)
	}
	if m.hook != nil {
		m.hook.Remove(&work)
	}
	if err := m.store.Delete(ep.ID); err != nil {
		ep.State = StateReady
		return err
	}
	m.ipam.Release(ep.IPv4, ep.IPv6)
	delete(m.eps, ep.ID)
	delete(m.byKey, ep.Key())
	m.gen.Add(1)
	m.log.Info("Endpoint deleted", "endpoint", ep.ID, "container", ep.ContainerID)
	return nil
}

// Get returns a copy of endpoint id.
func (m *Manager) Get(id uint16) (*Endpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, ok := m.eps[id]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	out := *ep
	return &out, nil
}

// Lookup returns the endpoint of a container interface.
func (m *Manager) Lookup(containerID, ifName string) (*Endpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.byKey[AttachmentKey(containerID, ifName)]
	if !ok {
		return nil, fmt.Errorf("%w: container %s interface %s", ErrNotFound, containerID, ifName)
	}
	out := *m.eps[id]
	return &out, nil
}

// List returns copies of every endpoint, by ID.
func (m *Manager) List() []*Endpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Endpoint, 0, len(m.eps))
	for _, ep := range m.eps {
		c := *ep
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *Endpoint) int { return int(a.ID) - int(b.ID) })
	return out
}

// Count returns the number of endpoints.
func (m *Manager) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.eps)
}

// Check verifies endpoint id against the kernel and returns the problems.
func (m *Manager) Check(id uint16) ([]string, error) {
	ep, err := m.Get(id)
	if err != nil {
		return nil, err
	}
	if ep.State != StateReady {
		return []string{fmt.Sprintf("endpoint is %s", ep.State)}, nil
	}
	var probs []string
	for _, a := range ep.Addrs() {
		pool := m.ipam.V4
		if a.Is6() {
			pool = m.ipam.V6
		}
		if pool == nil {
			probs = append(probs, fmt.Sprintf("address %s has no pool", a))
		} else if owner, ok := pool.Owner(a); !ok || owner != ep.Key() {
			probs = append(probs, fmt.Sprintf("address %s is not held by this endpoint in IPAM", a))
		}
	}
	return append(probs, m.dp.CheckEndpoint(ep)...), nil
}

// Stats returns the counters of endpoint id.
func (m *Manager) Stats(id uint16) (Stats, error) {
	ep, err := m.Get(id)
	if err != nil {
		return Stats{}, err
	}
	return m.dp.Stats(ep)
}

// GC removes the endpoints of network that are not in valid, as CNI GC asks.
func (m *Manager) GC(network string, valid []Attachment) ([]*Endpoint, error) {
	keep := map[string]bool{}
	for _, a := range valid {
		keep[AttachmentKey(a.ContainerID, a.IfName)] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var doomed []*Endpoint
	for _, ep := range m.eps {
		if ep.Network == network && !keep[ep.Key()] && ep.State == StateReady {
			doomed = append(doomed, ep)
		}
	}
	var removed []*Endpoint
	var errs []error
	for _, ep := range doomed {
		if ep.State != StateReady { // changed while the lock was released
			continue
		}
		c := *ep
		if err := m.deleteLocked(ep); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, &c)
	}
	return removed, errors.Join(errs...)
}

// Generation changes whenever an endpoint is added or removed.
func (m *Manager) Generation() uint64 { return m.gen.Load() }

// AddrOwner returns the endpoint holding addr, if any.
func (m *Manager) AddrOwner(addr netip.Addr) (*Endpoint, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ep := range m.eps {
		if ep.IPv4 == addr || ep.IPv6 == addr {
			c := *ep
			return &c, true
		}
	}
	return nil, false
}

// Config is the per-endpoint configuration a user may change.
type EndpointConfig struct {
	// PolicyAudit reports policy drops of this endpoint without dropping.
	PolicyAudit *bool `json:"policyAudit,omitempty"`
}

// Configure changes an endpoint's configuration and applies it.
func (m *Manager) Configure(id uint16, c EndpointConfig) (*Endpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, ok := m.eps[id]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if ep.State != StateReady {
		return nil, fmt.Errorf("%w: endpoint %d is %s; try again", ErrBusy, id, ep.State)
	}
	next := *ep
	if c.PolicyAudit != nil {
		next.PolicyAudit = *c.PolicyAudit
	}
	if err := m.dp.UpdateEndpoint(&next); err != nil {
		return nil, err
	}
	if err := m.store.Save(&next); err != nil {
		m.dp.UpdateEndpoint(ep)
		return nil, err
	}
	*ep = next
	out := next
	return &out, nil
}
