package identity

import (
	"net/netip"
	"testing"
	"time"

	"github.com/seta-net/seta/pkg/labels"
)

func mustLabels(t *testing.T, ss ...string) labels.Labels {
	t.Helper()
	ls, err := labels.ParseAll(ss, labels.SourceK8s)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func TestReservedAndAllocation(t *testing.T) {
	a, err := NewAllocator(Options{})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := a.Get(Host)
	if host.Labels.String() != "reserved:host" {
		t.Errorf("host labels = %s", host.Labels)
	}
	if id, _ := a.Acquire(labels.New(labels.Label{Source: "reserved", Key: "world"})); id.ID != World {
		t.Errorf("reserved labels got %d", id.ID)
	}
	web1, _ := a.Acquire(mustLabels(t, "app=web", "k8s:io.kubernetes.pod.namespace=default"))
	web2, _ := a.Acquire(mustLabels(t, "k8s:io.kubernetes.pod.namespace=default", "app=web"))
	db, _ := a.Acquire(mustLabels(t, "app=db"))
	if web1.ID != MinAllocated || web2.ID != web1.ID || db.ID != MinAllocated+1 {
		t.Errorf("ids: web %d/%d db %d", web1.ID, web2.ID, db.ID)
	}
	if got, _ := a.Get(web1.ID); got.RefCount != 2 {
		t.Errorf("refcount %d, want 2", got.RefCount)
	}
}

func TestPersistenceAndGC(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	a, _ := NewAllocator(Options{StateDir: dir, Grace: time.Minute, Now: clock})
	web, _ := a.Acquire(mustLabels(t, "app=web"))
	db, _ := a.Acquire(mustLabels(t, "app=db"))

	// After a restart the same labels get the same identity.
	b, err := NewAllocator(Options{StateDir: dir, Grace: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Acquire(mustLabels(t, "app=db")); got.ID != db.ID {
		t.Errorf("after restart db = %d, want %d", got.ID, db.ID)
	}
	// web is unreferenced after the restart: it is freed once the grace
	// period has passed, not before.
	if freed := b.GC(); len(freed) != 0 {
		t.Errorf("freed %v before the grace period", freed)
	}
	now = now.Add(2 * time.Minute)
	if freed := b.GC(); len(freed) != 1 || freed[0] != web.ID {
		t.Errorf("freed %v, want [%d]", freed, web.ID)
	}
	if _, ok := b.Lookup(mustLabels(t, "app=web")); ok {
		t.Error("freed identity still present")
	}
	// Released identities wait for GC; a new reference revives them.
	b.Release(db.ID)
	now = now.Add(30 * time.Second)
	if got, _ := b.Acquire(mustLabels(t, "app=db")); got.ID != db.ID || got.Unused != nil {
		t.Errorf("revived db = %+v", got)
	}
	now = now.Add(time.Hour)
	if freed := b.GC(); len(freed) != 0 {
		t.Errorf("GC freed a referenced identity: %v", freed)
	}
}

func TestCIDRIdentities(t *testing.T) {
	a, _ := NewAllocator(Options{StateDir: t.TempDir()})
	c1, err := a.AcquireCIDR(netip.MustParsePrefix("10.0.0.0/8"))
	if err != nil || !c1.ID.IsLocal() {
		t.Fatalf("cidr identity %d %v", c1.ID, err)
	}
	c2, _ := a.AcquireCIDR(netip.MustParsePrefix("10.1.2.3/8"))
	if c2.ID != c1.ID {
		t.Errorf("same prefix got %d and %d", c1.ID, c2.ID)
	}
	a.Release(c1.ID)
	a.Release(c1.ID)
	if _, ok := a.Get(c1.ID); ok {
		t.Error("unreferenced CIDR identity kept")
	}
}

func TestChangeNotification(t *testing.T) {
	a, _ := NewAllocator(Options{})
	n := 0
	a.OnChange(func() { n++ })
	a.Acquire(mustLabels(t, "app=a"))
	a.Acquire(mustLabels(t, "app=a"))
	if n != 1 {
		t.Errorf("notified %d times, want 1 (only new identities)", n)
	}
}
