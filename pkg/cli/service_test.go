package cli

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"

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

// serviceRoutes serves the service routes from a real service.Table, so
// validation and conflict errors are the agent's own.
func (a *fakeAgent) serviceRoutes(t *testing.T, mux *http.ServeMux, writeJSON func(http.ResponseWriter, int, any)) {
	local := func(addr string) bool { return strings.HasPrefix(addr, "10.244.1.") }
	tbl, err := service.New(slog.New(slog.NewTextHandler(io.Discard, nil)),
		service.Config{NodeName: "node1", IsLocal: func(a netip.Addr) bool { return local(a.String()) }}, nopLB{})
	if err != nil {
		t.Fatal(err)
	}
	a.services = tbl
	fail := func(w http.ResponseWriter, err error) {
		status, code := 500, v1.CodeDatapath
		switch {
		case errors.Is(err, service.ErrInvalid):
			status, code = 400, v1.CodeInvalid
		case errors.Is(err, service.ErrNotFound):
			status, code = 404, v1.CodeNotFound
		case errors.Is(err, service.ErrConflict):
			status, code = 409, v1.CodeConflict
		case errors.Is(err, service.ErrLimit):
			status, code = 503, v1.CodeLimit
		}
		writeJSON(w, status, v1.Error{Code: code, Message: err.Error()})
	}
	id := func(r *http.Request) lb.ServiceID {
		n, _ := strconv.ParseUint(r.PathValue("id"), 10, 16)
		return lb.ServiceID(n)
	}
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		if f := r.URL.Query().Get("frontend"); f != "" {
			fe, err := service.ParseL4Addr(f)
			if err != nil {
				writeJSON(w, 400, v1.Error{Code: v1.CodeInvalid, Message: err.Error()})
				return
			}
			out := []v1.ServiceDetail{}
			if d, err := tbl.Lookup(fe); err == nil {
				out = append(out, d)
			}
			writeJSON(w, 200, out)
			return
		}
		writeJSON(w, 200, tbl.List())
	})
	mux.HandleFunc("GET /v1/services/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, err := tbl.Get(id(r))
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, 200, d)
	})
	mux.HandleFunc("PUT /v1/services", func(w http.ResponseWriter, r *http.Request) {
		var s v1.Service
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			writeJSON(w, 400, v1.Error{Code: v1.CodeInvalid, Message: "malformed request body: " + err.Error()})
			return
		}
		d, created, err := tbl.Upsert(s)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, map[bool]int{true: 201, false: 200}[created], d)
	})
	mux.HandleFunc("DELETE /v1/services/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, err := tbl.Delete(id(r))
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, 200, d)
	})
	mux.HandleFunc("DELETE /v1/services", func(w http.ResponseWriter, r *http.Request) {
		fe, err := service.ParseL4Addr(r.URL.Query().Get("frontend"))
		if err != nil {
			writeJSON(w, 400, v1.Error{Code: v1.CodeInvalid, Message: err.Error()})
			return
		}
		d, err := tbl.DeleteFrontend(fe)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, 200, d)
	})
}

func TestServiceUpdateAndList(t *testing.T) {
	a := startAgent(t)
	out := mustRun(t, "service", "update", "--socket", a.socket, "--frontend", "10.96.0.10:80", "--name", "web", "-n", "default",
		"--backends", "10.244.1.2:8080,10.244.2.2:8080")
	wantContains(t, "update", out, "Created service 1.", "Frontend:", "10.96.0.10:80/TCP", "ClusterIP",
		"1 => 10.244.1.2:8080/TCP (active, local)", "2 => 10.244.2.2:8080/TCP (active)", "1 external: backends 1,2")

	mustRun(t, "svc", "update", "--socket", a.socket, "--frontend", "0.0.0.0:30080/tcp", "--type", "nodeport",
		"--backends", "10.244.2.2:8080,10.244.1.3:8080", "--external-traffic-policy", "Local", "--algorithm", "maglev",
		"--affinity", "ClientIP", "--affinity-timeout", "1h")
	out = mustRun(t, "service", "list", "--socket", a.socket)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	want := [][]string{
		{"ID", "NAME", "FRONTEND", "TYPE", "BACKENDS"},
		{"1", "default/web", "10.96.0.10:80/TCP", "ClusterIP", "1", "=>", "10.244.1.2:8080/TCP", "(active,", "local)"},
		{"2", "=>", "10.244.2.2:8080/TCP", "(active)"},
		{"2", "-", "0.0.0.0:30080/TCP", "NodePort", "2", "=>", "10.244.2.2:8080/TCP", "(active)"},
		{"3", "=>", "10.244.1.3:8080/TCP", "(active,", "local)"},
	}
	if len(lines) != len(want) {
		t.Fatalf("service list:\n%s", out)
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d = %q, want %q", i, strings.Join(got, " "), strings.Join(w, " "))
		}
	}

	// Its internal entry (ID 3) names the service too.
	for _, id := range []string{"2", "3"} {
		out = mustRun(t, "service", "get", id, "--socket", a.socket)
		wantContains(t, "get "+id, out, "ID:                        2", "NodePort", "ClientIP (timeout 1h0m0s)", "External traffic policy:   Local",
			"Algorithm:                 maglev", "2 external [nodeport,affinity,local,maglev,two-scopes]: backends 3", "3 internal [nodeport,affinity]: backends 2,3")
	}

	// Only the backend's state changes; the rest stays.
	out = mustRun(t, "service", "update", "--socket", a.socket, "--frontend", "10.96.0.10:80/TCP", "--backend-state", "10.244.1.2:8080=terminating")
	wantContains(t, "update state", out, "Updated service 1.", "default/web", "1 => 10.244.1.2:8080/TCP (terminating, local)", "1 external: backends 2")
	// A new backend list keeps the state of the backends that stay.
	out = mustRun(t, "service", "update", "--socket", a.socket, "--frontend", "10.96.0.10:80/TCP", "--backends", "10.244.1.2:8080,10.244.2.3:8080")
	wantContains(t, "update backends", out, "(terminating, local)", "4 => 10.244.2.3:8080/TCP (active)")

	for _, format := range []string{"json", "yaml"} {
		out = mustRun(t, "service", "list", "-o", format, "--socket", a.socket)
		if !strings.Contains(out, "10.96.0.10:80/TCP") || !strings.Contains(out, "terminating") {
			t.Errorf("-o %s:\n%s", format, out)
		}
	}
	var ss []v1.ServiceDetail
	if err := json.Unmarshal([]byte(mustRun(t, "service", "list", "-o", "json", "--socket", a.socket)), &ss); err != nil || len(ss) != 2 || ss[1].Entries[1].Scope != "internal" {
		t.Errorf("list -o json: %+v %v", ss, err)
	}
}

func TestServiceUpdateErrors(t *testing.T) {
	a := startAgent(t)
	mustRun(t, "service", "update", "--socket", a.socket, "--frontend", "10.96.0.10:80", "--name", "web", "--backends", "10.244.1.2:80")
	before := len(a.requestsTo("PUT", "/v1/services"))
	cases := []struct {
		args []string
		want string
	}{
		// Refused before asking the agent.
		{[]string{"--backends", "10.0.0.1:80"}, "--frontend is required"},
		{[]string{"--frontend", "10.96.0.11:80/SCTP", "--backends", ""}, "SCTP is not supported"},
		{[]string{"--frontend", "10.96.0.11:0", "--backends", ""}, "port 0 is out of range"},
		{[]string{"--frontend", "10.96.0.11:80"}, "give its --backends to create it"},
		{[]string{"--frontend", "10.96.0.11:80", "--backends", "10.0.0.1"}, "want IP:PORT"},
		{[]string{"--frontend", "10.96.0.11:80", "--backends", "", "--type", "Headless"}, "--type: unknown service type"},
		{[]string{"--frontend", "10.96.0.11:80", "--backends", "", "--affinity-timeout", "1.5s"}, "whole seconds"},
		{[]string{"--frontend", "10.96.0.10:80", "--backend-state", "10.244.9.9:80=terminating"}, "is not a backend of the service"},
		{[]string{"--frontend", "10.96.0.10:80", "--backend-state", "10.244.1.2:80=gone"}, "unknown backend state"},
		{[]string{"--frontend", "10.96.0.11:80", "--backends", "", "--affinity", "ClientIP", "--affinity-timeout", "48h"}, "whole seconds from 1s to 24h"},
		// Refused by the agent.
		{[]string{"--frontend", "10.96.0.11:80", "--backends", "[fd00::1]:80"}, "is IPv6 but the frontend"},
		{[]string{"--frontend", "10.96.0.11:80", "--backends", "", "--affinity", "ClientIP", "--affinity-timeout", "100000"}, "must be 1 to 86400 seconds"},
		{[]string{"--frontend", "10.96.0.11:80", "--backends", "", "--affinity-timeout", "60"}, "only with sessionAffinity ClientIP"},
		{[]string{"--frontend", "0.0.0.0:80", "--type", "NodePort", "--backends", ""}, "outside the node port range 30000-32767"},
		{[]string{"--frontend", "10.96.0.10:80", "--name", "api"}, "belongs to service web (ID 1)"},
	}
	for _, c := range cases {
		_, _, err := run(t, append([]string{"service", "update", "--socket", a.socket}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
		}
	}
	if n := len(a.requestsTo("PUT", "/v1/services")); n != before+5 {
		t.Errorf("%d PUTs reached the agent, want the 5 it refuses", n-before)
	}
	if d, _ := a.services.Get(1); d.Service.Name != "web" || len(d.Backends) != 1 {
		t.Errorf("service changed: %+v", d)
	}
}

func TestServiceGetAndDelete(t *testing.T) {
	a := startAgent(t)
	mustRun(t, "service", "update", "--socket", a.socket, "--frontend", "10.96.0.10:80", "--name", "web", "--backends", "10.244.2.2:80")
	mustRun(t, "service", "update", "--socket", a.socket, "--frontend", "[fd00::10]:53/UDP", "--backends", "[fd00::2]:53")

	if _, _, err := run(t, "service", "get", "7", "--socket", a.socket); err == nil || !strings.Contains(err.Error(), "no service has ID 7") ||
		!strings.Contains(err.Error(), "seta service list") {
		t.Errorf("get 7: %v", err)
	}
	for _, id := range []string{"0", "x", "65536"} {
		if _, _, err := run(t, "service", "get", id, "--socket", a.socket); err == nil || !strings.Contains(err.Error(), "invalid service ID") {
			t.Errorf("get %s: %v", id, err)
		}
	}
	out := mustRun(t, "service", "get", "2", "-o", "json", "--socket", a.socket)
	var d v1.ServiceDetail
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.Service.Frontend.String() != "[fd00::10]:53/UDP" {
		t.Errorf("get 2 -o json: %+v %v", d, err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "give the ID of the service to delete"},
		{[]string{"1", "--frontend", "10.96.0.10:80"}, "not both"},
		{[]string{"--frontend", "nope"}, "--frontend:"},
		{[]string{"9"}, "no service has ID 9"},
	} {
		if _, _, err := run(t, append([]string{"service", "delete", "--socket", a.socket}, c.args...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("delete %v: %v", c.args, err)
		}
	}
	out = mustRun(t, "service", "delete", "1", "--socket", a.socket)
	wantContains(t, "delete 1", out, "Deleted service 1 (web, 10.96.0.10:80/TCP).")
	out = mustRun(t, "service", "delete", "--frontend", "[fd00::10]:53/udp", "-o", "json", "--socket", a.socket)
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.ID != 2 {
		t.Errorf("delete -o json: %+v %v", d, err)
	}
	if a.services.Len() != 0 {
		t.Error("services left")
	}
}

func TestServiceCommandsAgentErrors(t *testing.T) {
	sock := t.TempDir() + "/nobody.sock"
	a := startAgent(t)
	for _, args := range [][]string{{"service", "list"}, {"service", "get", "1"}, {"service", "delete", "1"},
		{"service", "update", "--frontend", "10.96.0.10:80", "--backends", ""}} {
		if _, _, err := run(t, append(args, "--socket", sock)...); err == nil || !strings.Contains(err.Error(), sock) {
			t.Errorf("%v: err = %v, want one naming %s", args, err, sock)
		}
		_, _, err := run(t, append(args, "-o", "xml", "--socket", a.socket)...)
		if err == nil || !strings.Contains(err.Error(), `unknown output format "xml"`) {
			t.Errorf("%v -o xml: err = %v", args, err)
		}
	}
	if got := a.requests(); len(got) != 0 {
		t.Errorf("commands with a bad -o reached the agent: %v", got)
	}
	out := mustRun(t, "service")
	wantContains(t, "seta service", out, "Available Commands:", "list", "get", "update", "delete")
}

func TestParseAffinityTimeout(t *testing.T) {
	for in, want := range map[string]int{"3h": 10800, "90s": 90, "10800": 10800, "24h": 86400} {
		if got, err := parseAffinityTimeout(in); err != nil || got != want {
			t.Errorf("%s = %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1ms", "25h", "soon", "-1s"} {
		if _, err := parseAffinityTimeout(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
