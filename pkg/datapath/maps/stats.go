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

// EpStatsMap is the per-CPU array of per-endpoint counters, one slot per
// endpoint ID. Every slot always exists; a slot nobody counted on reads as
// zero.
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

// Reset zeroes id's counters, so an ID used again starts from zero.
func (s *EpStatsMap) Reset(id uint16) error {
	key := uint32(id)
	zero := make([]bpf.LxcEndpointStats, ebpf.MustPossibleCPU())
	if err := s.m.Update(&key, zero, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("reset %s[%d]: %w", EpStatsMapName, id, err)
	}
	return nil
}

// Get sums id's counters over all CPUs; ok is false when they are all zero.
func (s *EpStatsMap) Get(id uint16) (EndpointStats, bool, error) {
	key := uint32(id)
	var per []bpf.LxcEndpointStats
	if err := s.m.Lookup(&key, &per); err != nil {
		return EndpointStats{}, false, fmt.Errorf("lookup %s[%d]: %w", EpStatsMapName, id, err)
	}
	t := sumStats(per)
	return t, t != (EndpointStats{}), nil
}

// Dump returns the summed counters of every endpoint ID whose counters are
// not all zero.
func (s *EpStatsMap) Dump() (map[uint16]EndpointStats, error) {
	out := map[uint16]EndpointStats{}
	err := dumpPerCPU(s.m, func(key uint32, per []bpf.LxcEndpointStats) {
		if t := sumStats(per); t != (EndpointStats{}) {
			out[uint16(key)] = t
		}
	})
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", EpStatsMapName, err)
	}
	return out, nil
}

// dumpPerCPU reads every slot of a per-CPU array in batches (a 64k-slot
// array would otherwise cost a syscall per slot) and calls fn with each
// slot's per-CPU values.
func dumpPerCPU[V any](m *ebpf.Map, fn func(key uint32, per []V)) error {
	const batch = 4096
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	keys := make([]uint32, batch)
	vals := make([]V, batch*ncpu)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			fn(keys[i], vals[i*ncpu:(i+1)*ncpu])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
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

// MetricsMap is the per-CPU array of node-wide forward/drop counters,
// indexed by reason and direction (metrics_index in bpf/lib/maps.h).
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

// metricsSlot splits a slot index into reason and direction, the inverse
// of metrics_index.
func metricsSlot(idx uint32) (Reason, string) {
	dir := "egress"
	if idx&1 == uint32(bpf.LxcTrafficDirDIR_INGRESS) {
		dir = "ingress"
	}
	return Reason(idx >> 1), dir
}

// Dump returns every counter that has counted something.
func (mm *MetricsMap) Dump() (map[MetricsKey]MetricsValue, error) {
	out := map[MetricsKey]MetricsValue{}
	err := dumpPerCPU(mm.m, func(idx uint32, per []bpf.LxcMetricsValue) {
		var t MetricsValue
		for _, p := range per {
			t.Packets += p.Packets
			t.Bytes += p.Bytes
		}
		if t.Packets == 0 {
			return
		}
		reason, dir := metricsSlot(idx)
		out[MetricsKey{Reason: reason, Direction: dir}] = t
	})
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", MetricsMapName, err)
	}
	return out, nil
}
