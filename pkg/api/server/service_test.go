package server_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/seta-net/seta/pkg/api/server"
	v1 "github.com/seta-net/seta/pkg/api/v1"
	lb "github.com/seta-net/seta/pkg/loadbalancer"
	"github.com/seta-net/seta/pkg/service"
)

// nopLB accepts every write and holds nothing.
type nopLB struct{}

func (nopLB) UpsertBackend(lb.Backend) error                           { return nil }
func (nopLB) DeleteBackend(lb.BackendID) error                         { return nil }
func (nopLB) UpsertService(lb.LBService) error                         { return nil }
func (nopLB) DeleteService(lb.Frontend) error                          { return nil }
func (nopLB) UpsertRevNat(lb.RevNat) error                             { return nil }
func (nopLB) DeleteRevNat(lb.ServiceID) error                          { return nil }
func (nopLB) Dump() ([]lb.LBService, []lb.Backend, []lb.RevNat, error) { return nil, nil, nil, nil }

func TestServiceRoutes(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tbl, err := service.New(log, service.Config{StateDir: t.TempDir()}, nopLB{})
	if err != nil {
		t.Fatal(err)
	}
	h := server.New(log, server.Backend{Services: tbl, Status: func() v1.Status { return v1.Status{} }}).Handler()
	web := `{"name":"web","namespace":"default","frontend":"10.96.0.10:80/TCP","backends":[{"addr":"10.244.1.2:8080"},{"addr":"10.244.1.3:8080","state":"terminating"}]}`
	cases := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"empty list", "GET", "/v1/services", "", 200, `[]`},
		{"create", "PUT", "/v1/services", web, 201, `"frontend": "10.96.0.10:80/TCP"`},
		{"update", "PUT", "/v1/services", web, 200, `"slots": [`},
		{"list", "GET", "/v1/services", "", 200, `"name": "web"`},
		{"lookup", "GET", "/v1/services?frontend=10.96.0.10:80/tcp", "", 200, `"id": 1`},
		{"lookup none", "GET", "/v1/services?frontend=10.96.0.11:80", "", 200, `[]`},
		{"lookup bad", "GET", "/v1/services?frontend=nope", "", 400, `frontend: `},
		{"get", "GET", "/v1/services/1", "", 200, `"state": "terminating"`},
		{"get missing", "GET", "/v1/services/9", "", 404, `no service has ID 9`},
		{"get bad id", "GET", "/v1/services/0", "", 400, `1 to 65535`},
		{"invalid", "PUT", "/v1/services", `{"frontend":"10.96.0.11:0/TCP"}`, 400, `invalid-request`},
		{"sctp", "PUT", "/v1/services", `{"frontend":"10.96.0.11:80/SCTP"}`, 400, `SCTP is not supported`},
		{"validation message", "PUT", "/v1/services", `{"frontend":"10.96.0.11:80","backends":[{"addr":"[fd00::1]:80"}]}`, 400, `is IPv6 but the frontend`},
		{"unknown field", "PUT", "/v1/services", `{"frontend":"10.96.0.11:80","weight":3}`, 400, `unknown field`},
		{"conflict", "PUT", "/v1/services", `{"name":"api","frontend":"10.96.0.10:80"}`, 409, `"code": "conflict"`},
		{"wrong method", "POST", "/v1/services", "{}", 405, `allowed: GET, PUT, DELETE`},
		{"delete no frontend", "DELETE", "/v1/services", "", 400, `needs ?frontend=`},
		{"delete by frontend", "DELETE", "/v1/services?frontend=10.96.0.10:80", "", 200, `"name": "web"`},
		{"delete again", "DELETE", "/v1/services/1", "", 404, `not-found`},
	}
	for _, c := range cases {
		code, body := do(t, h, c.method, c.path, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %s %s = %d %s; want %d containing %q", c.name, c.method, c.path, code, body, c.code, c.want)
		}
	}

	// A GET answer's service, sent back, is the same service.
	code, body := do(t, h, "PUT", "/v1/services", web)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var d v1.ServiceDetail
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(d.Service)
	if code, body := do(t, h, "PUT", "/v1/services", string(again)); code != 200 {
		t.Errorf("round trip: %d %s", code, body)
	}
}

func TestServicesUnavailable(t *testing.T) {
	srv, _ := newServer(t)
	code, body := do(t, srv.Handler(), "GET", "/v1/services", "")
	if code != 503 || !strings.Contains(body, "not available") {
		t.Errorf("%d %s", code, body)
	}
}
