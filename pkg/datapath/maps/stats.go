package maps

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/cilium/ebpf"

	"github.com/seta-net/seta/pkg/datapath/bpf"
)

func isE2BIG(err error) bool { return errors.Is(err, syscall.E2BIG) }

// EndpointStats are an endpoint's traffic counters summed over CPUs.
type EndpointStats struct {
	RxPackets uint64 `json:"rxPackets"`
	RxBytes   uint64 `json:"rxBytes"`
	TxPackets uint64 `json:"txPackets"`
	TxBytes   uint64 `json:"txBytes"`
}

// EpStatsMap is the per-CPU map of per-endpoint counters.
type EpStatsMap struct{ m *ebpf.Map }

// NewEpStatsMap wraps an already loaded map.
func NewEpStatsMap(m *ebpf.Map) *EpStatsMap { return &EpStatsMap{m: m} }

// OpenPinnedEpStatsMap opens the agent's pinned map under bpfRoot (for the CLI).
func OpenPinnedEpStatsMap(bpfRoot string) (*EpStatsMap, error) {
	m, err := openPinned(bpfRoot, EpStatsMapName)
	if err != nil {
		return nil, err
	}
	return &EpStatsMap{m: m}, nil
}

// Close releases the map's file descriptor.
func (s *EpStatsMap) Close() error { return s.m.Close() }

// Init creates a zeroed entry for id, keeping counters that already exist
// (an agent restart must not reset them).
func (s *EpStatsMap) Init(id uint16) error {
	key := uint32(id)
	zero := make([]bpf.LxcEndpointStats, ebpf.MustPossibleCPU())
	err := s.m.Update(&key, zero, ebpf.UpdateNoExist)
	if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("init %s[%d]: %w", EpStatsMapName, id, mapFullHint(s.m, err))
	}
	return nil
}

// Delete removes id's counters; a missing entry is not an error.
func (s *EpStatsMap) Delete(id uint16) error {
	key := uint32(id)
	if err := s.m.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete %s[%d]: %w", EpStatsMapName, id, err)
	}
	return nil
}

// Get sums id's counters over all CPUs.
func (s *EpStatsMap) Get(id uint16) (EndpointStats, bool, error) {
	key := uint32(id)
	var per []bpf.LxcEndpointStats
	err := s.m.Lookup(&key, &per)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return EndpointStats{}, false, nil
	}
	if err != nil {
		return EndpointStats{}, false, fmt.Errorf("lookup %s[%d]: %w", EpStatsMapName, id, err)
	}
	return sumStats(per), true, nil
}

// Dump returns the summed counters of every endpoint.
func (s *EpStatsMap) Dump() (map[uint16]EndpointStats, error) {
	out := map[uint16]EndpointStats{}
	var key uint32
	var per []bpf.LxcEndpointStats
	it := s.m.Iterate()
	for it.Next(&key, &per) {
		out[uint16(key)] = sumStats(per)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("dump %s: %w", EpStatsMapName, err)
	}
	return out, nil
}

func sumStats(per []bpf.LxcEndpointStats) EndpointStats {
	var t EndpointStats
	for _, p := range per {
		t.RxPackets += p.RxPackets
		t.RxBytes += p.RxBytes
		t.TxPackets += p.TxPackets
		t.TxBytes += p.TxBytes
	}
	return t
}

// MetricsKey identifies a node-wide counter: a reason and a direction.
type MetricsKey struct {
	Reason    Reason `json:"reason"`
	Direction string `json:"direction"`
}

// MetricsValue is a node-wide counter summed over CPUs.
type MetricsValue struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// MetricsMap is the per-CPU map of node-wide forward/drop counters.
type MetricsMap struct{ m *ebpf.Map }

// NewMetricsMap wraps an already loaded map.
func NewMetricsMap(m *ebpf.Map) *MetricsMap { return &MetricsMap{m: m} }

// OpenPinnedMetricsMap opens the agent's pinned map under bpfRoot (for the CLI).
func OpenPinnedMetricsMap(bpfRoot string) (*MetricsMap, error) {
	m, err := openPinned(bpfRoot, MetricsMapName)
	if err != nil {
		return nil, err
	}
	return &MetricsMap{m: m}, nil
}

// Close releases the map's file descriptor.
func (mm *MetricsMap) Close() error { return mm.m.Close() }

// Dump returns every counter.
func (mm *MetricsMap) Dump() (map[MetricsKey]MetricsValue, error) {
	out := map[MetricsKey]MetricsValue{}
	var k bpf.LxcMetricsKey
	var per []bpf.LxcMetricsValue
	it := mm.m.Iterate()
	for it.Next(&k, &per) {
		var t MetricsValue
		for _, p := range per {
			t.Packets += p.Packets
			t.Bytes += p.Bytes
		}
		dir := "egress"
		if k.Dir == uint8(bpf.LxcTrafficDirDIR_INGRESS) {
			dir = "ingress"
		}
		out[MetricsKey{Reason: Reason(k.Reason), Direction: dir}] = t
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("dump %s: %w", MetricsMapName, err)
	}
	return out, nil
}
