package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/seta-net/seta/pkg/datapath/lb"
	lbt "github.com/seta-net/seta/pkg/loadbalancer"
	"github.com/seta-net/seta/pkg/service"
)

// inprocResult splits the time to add one service with N present into
// its parts. It runs the agent's service table (pkg/service) in this
// process: once over real lb maps (fresh, unpinned, the agent's layout)
// with its state file on disk, as the agent runs it; once over maps that
// do nothing, which leaves the table's own work plus the state file; and
// it times encoding and writing a state file of the same size alone.
type inprocResult struct {
	N int
	// Upsert with real maps and the state file (what the agent's PUT
	// does, without HTTP).
	UpsertMs float64
	// Upsert with no-op maps: the table and the state file.
	UpsertNoMapsMs float64
	// Encoding the services as JSON, and writing and fsyncing the file,
	// each alone.
	MarshalMs, WriteSyncMs float64
	StateFileMB            float64
	// RestoreMs: New() restoring N services from the state file and
	// writing all of them to empty maps.
	RestoreMs float64
}

// inprocBreakdown measures the table at n services. backends are the
// addresses the services point at (any will do: nothing connects).
// With profile set, the adds over real maps are CPU-profiled into it.
func inprocBreakdown(n int, backends []netip.AddrPort, profile string) (inprocResult, error) {
	r := inprocResult{N: n}
	dir, err := os.MkdirTemp("", "benchlb-table-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	side := &setaSide{backends: backends}
	if err := writeFreshState(filepath.Join(dir, "services.json"), side, n); err != nil {
		return r, err
	}
	maps, err := lb.NewUnpinned(lb.Sizes{Map: lbMapMax})
	if err != nil {
		return r, err
	}
	defer maps.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := service.Config{StateDir: dir, NodeName: "node1", ServiceMapSize: lbMapMax, BackendMapSize: lbMapMax}
	t0 := time.Now()
	tbl, err := service.New(log, cfg, maps)
	if err != nil {
		return r, err
	}
	r.RestoreMs = ms(time.Since(t0))
	if tbl.Len() != n {
		return r, fmt.Errorf("the table restored %d services, want %d", tbl.Len(), n)
	}
	stop, err := startProfile(profile)
	if err != nil {
		return r, err
	}
	r.UpsertMs, err = timeUpserts(tbl, side)
	stop()
	if err != nil {
		return r, err
	}

	// The same table over maps that accept everything and hold nothing.
	dir2, err := os.MkdirTemp("", "benchlb-table-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir2)
	if err := writeFreshState(filepath.Join(dir2, "services.json"), side, n); err != nil {
		return r, err
	}
	cfg.StateDir = dir2
	tbl2, err := service.New(log, cfg, noopLBMap{})
	if err != nil {
		return r, err
	}
	if r.UpsertNoMapsMs, err = timeUpserts(tbl2, side); err != nil {
		return r, err
	}
	r.MarshalMs, r.WriteSyncMs, r.StateFileMB, err = timeStateFile(filepath.Join(dir2, "services.json"))
	return r, err
}

// startProfile starts a CPU profile into path (nothing without a path)
// and returns what stops it.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// writeFreshState writes a state file holding the first n measured
// services and nothing else.
func writeFreshState(path string, side *setaSide, n int) error {
	if err := os.WriteFile(path, []byte(`{"version":1,"services":[],"backends":[],"lastServiceID":0,"lastBackendID":0}`), 0o600); err != nil {
		return err
	}
	return side.writeState(path, n)
}

// timeUpserts adds a service and removes it again, --program-repeats
// times, and returns the median time of an add.
func timeUpserts(tbl *service.Table, side *setaSide) (float64, error) {
	var adds []float64
	for k := 0; k < *programRepeats; k++ {
		svc := side.service(fmt.Sprintf("extra-%d", k), extraVIP(k))
		t0 := time.Now()
		if _, _, err := tbl.Upsert(svc); err != nil {
			return 0, err
		}
		adds = append(adds, ms(time.Since(t0)))
		if _, err := tbl.DeleteFrontend(svc.Frontend); err != nil {
			return 0, err
		}
	}
	med, _, _ := medianSpread(adds)
	return med, nil
}

// timeStateFile times encoding the table's state file (as the agent does,
// indented) and writing it with fsync, the two parts of saving it.
func timeStateFile(path string) (marshalMs, writeMs, sizeMB float64, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0, err
	}
	var saved savedServices
	if err := json.Unmarshal(raw, &saved); err != nil {
		return 0, 0, 0, err
	}
	var ms1, ms2 []float64
	for k := 0; k < *programRepeats; k++ {
		t0 := time.Now()
		b, err := json.MarshalIndent(saved, "", "  ")
		if err != nil {
			return 0, 0, 0, err
		}
		ms1 = append(ms1, ms(time.Since(t0)))
		t0 = time.Now()
		if err := writeSync(path+".copy", b); err != nil {
			return 0, 0, 0, err
		}
		ms2 = append(ms2, ms(time.Since(t0)))
		sizeMB = float64(len(b)) / (1 << 20)
	}
	marshalMs, _, _ = medianSpread(ms1)
	writeMs, _, _ = medianSpread(ms2)
	return marshalMs, writeMs, sizeMB, nil
}

func writeSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	if serr != nil {
		return serr
	}
	return cerr
}

// noopLBMap accepts every write and holds nothing.
type noopLBMap struct{}

func (noopLBMap) UpsertBackend(lbt.Backend) error   { return nil }
func (noopLBMap) DeleteBackend(lbt.BackendID) error { return nil }
func (noopLBMap) UpsertService(lbt.LBService) error { return nil }
func (noopLBMap) DeleteService(lbt.Frontend) error  { return nil }
func (noopLBMap) UpsertRevNat(lbt.RevNat) error     { return nil }
func (noopLBMap) DeleteRevNat(lbt.ServiceID) error  { return nil }
func (noopLBMap) Dump() ([]lbt.LBService, []lbt.Backend, []lbt.RevNat, error) {
	return nil, nil, nil, nil
}
