package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seta-net/seta/pkg/api/server"
	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/client"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/ipam"
)

type nopDP struct{}

func (nopDP) SetupEndpoint(ep *endpoint.Endpoint) error {
	ep.HostIfName, ep.HostMAC, ep.PodMAC = "lxc0", "02:00:00:00:00:01", "02:00:00:00:00:02"
	return nil
}
func (nopDP) RestoreEndpoint(*endpoint.Endpoint) (bool, error) { return true, nil }
func (nopDP) RemoveEndpoint(*endpoint.Endpoint) error          { return nil }
func (nopDP) CheckEndpoint(*endpoint.Endpoint) []string        { return nil }
func (nopDP) Sync([]*endpoint.Endpoint) error                  { return nil }
func (nopDP) UpdateEndpoint(*endpoint.Endpoint) error          { return nil }
func (nopDP) Stats(*endpoint.Endpoint) (endpoint.Stats, error) {
	return endpoint.Stats{RxPackets: 3}, nil
}

func newServer(t *testing.T) (*server.Server, string) {
	t.Helper()
	dir := t.TempDir()
	netns := filepath.Join(dir, "ns")
	os.WriteFile(netns, nil, 0o644)
	store, err := endpoint.NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pools := &ipam.IPAM{V4: ipam.NewPool(netip.MustParsePrefix("10.9.0.0/29"))}
	mgr := endpoint.NewManager(log, endpoint.Config{MTU: 1500}, store, pools, nopDP{})
	srv := server.New(log, server.Backend{Endpoints: mgr, Status: func() v1.Status { return v1.Status{NodeName: "n1"} }})
	return srv, netns
}

func do(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestHandlers(t *testing.T) {
	srv, netns := newServer(t)
	h := srv.Handler()
	create := `{"containerID":"c1","ifName":"eth0","netns":"` + netns + `"}`
	cases := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"health", "GET", "/v1/healthz", "", 200, `"ok"`},
		{"status", "GET", "/v1/status", "", 200, `"n1"`},
		{"create", "POST", "/v1/endpoints", create, 201, `"10.9.0.2"`},
		{"duplicate", "POST", "/v1/endpoints", create, 409, `already-exists`},
		{"malformed", "POST", "/v1/endpoints", `{"containerID":`, 400, `invalid-request`},
		{"unknown field", "POST", "/v1/endpoints", `{"containerID":"x","bogus":1}`, 400, `unknown field`},
		{"trailing", "POST", "/v1/endpoints", create + `{}`, 400, `trailing`},
		{"missing netns", "POST", "/v1/endpoints", `{"containerID":"c2","ifName":"eth0","netns":"/nope/ns"}`, 400, `netns-not-found`},
		{"list", "GET", "/v1/endpoints", "", 200, `"c1"`},
		{"lookup none", "GET", "/v1/endpoints?containerID=zz", "", 200, `[]`},
		{"get", "GET", "/v1/endpoints/1", "", 200, `"rxPackets": 3`},
		{"get bad id", "GET", "/v1/endpoints/abc", "", 400, `1 to 65535`},
		{"get zero", "GET", "/v1/endpoints/0", "", 400, `1 to 65535`},
		{"get missing", "GET", "/v1/endpoints/42", "", 404, `not-found`},
		{"check", "GET", "/v1/endpoints/1/check", "", 200, `"ok": true`},
		{"delete no params", "DELETE", "/v1/endpoints", "", 400, `containerID and ifName`},
		{"gc no network", "POST", "/v1/gc", `{}`, 400, `network is required`},
		{"no route", "GET", "/v2/things", "", 404, `no such API route`},
		{"wrong method", "PUT", "/v1/healthz", "", 405, `allowed: GET`},
		{"delete", "DELETE", "/v1/endpoints?containerID=c1&ifName=eth0", "", 200, `"c1"`},
		{"delete again", "DELETE", "/v1/endpoints?containerID=c1&ifName=eth0", "", 404, `not-found`},
	}
	for _, c := range cases {
		code, body := do(t, h, c.method, c.path, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %s %s = %d %s; want %d containing %q", c.name, c.method, c.path, code, body, c.code, c.want)
		}
	}
}

func TestExhaustionOverSocket(t *testing.T) {
	srv, netns := newServer(t)
	sock := filepath.Join(t.TempDir(), "a.sock")
	if err := srv.Listen(sock); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Shutdown(context.Background())

	// A second server on the same socket is refused, not silently stolen.
	srv2, _ := newServer(t)
	if err := srv2.Listen(sock); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("second listen: %v", err)
	}

	c := client.New(sock, 5*time.Second)
	ctx := context.Background()
	podNS := func(name string) string {
		p := netns + "-" + name
		os.WriteFile(p, nil, 0o644)
		return p
	}
	for i := 0; i < 5; i++ {
		id := string(rune('a' + i))
		if _, err := c.CreateEndpoint(ctx, endpoint.CreateRequest{ContainerID: id, IfName: "eth0", NetNS: podNS(id)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.CreateEndpoint(ctx, endpoint.CreateRequest{ContainerID: "z", IfName: "eth0", NetNS: podNS("z")})
	if !client.IsCode(err, v1.CodeIPAMExhausted) {
		t.Fatalf("err = %v, want %s", err, v1.CodeIPAMExhausted)
	}
	eps, err := c.ListEndpoints(ctx)
	if err != nil || len(eps) != 5 {
		t.Fatalf("list: %d %v", len(eps), err)
	}
}

func TestUnreachableNamesSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "missing.sock")
	_, err := client.New(sock, time.Second).Status(context.Background())
	if !errors.Is(err, client.ErrUnreachable) || !strings.Contains(err.Error(), sock) {
		t.Fatalf("err = %v", err)
	}
}
