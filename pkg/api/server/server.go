// Package server serves the agent's REST API (pkg/api/v1) on a unix socket.
// Handlers decode strictly (unknown fields are errors), never change state
// on a bad request, and map domain errors to status codes and API error
// codes in one place (errorCode).
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/enforcer"
	"github.com/seta-net/seta/pkg/identity"
	"github.com/seta-net/seta/pkg/ipam"
	"github.com/seta-net/seta/pkg/service"
)

// Backend is what the handlers need from the agent.
type Backend struct {
	Endpoints  *endpoint.Manager
	Status     func() v1.Status
	Config     v1.Config
	Policy     *enforcer.Enforcer  // nil: policy routes answer 503
	Identities *identity.Allocator // nil: identity routes answer 503
	Services   *service.Table      // nil: service routes answer 503
	// ObserveRequest, if set, is told about every request (metrics).
	ObserveRequest func(route, method string, code int, d time.Duration)
}

// Server is the API server.
type Server struct {
	log  *slog.Logger
	b    Backend
	srv  *http.Server
	ln   net.Listener
	path string
}

// maxBody caps request bodies; the largest legitimate one (GC with many
// attachments) is far below it.
const maxBody = 4 << 20

// New builds the server; Listen opens the socket.
func New(log *slog.Logger, b Backend) *Server {
	s := &Server{log: log.With("subsys", "api"), b: b}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Handler returns the routes, for tests.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/healthz", s.healthz)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/config", s.config)
	mux.HandleFunc("GET /v1/endpoints", s.listEndpoints)
	mux.HandleFunc("POST /v1/endpoints", s.createEndpoint)
	mux.HandleFunc("DELETE /v1/endpoints", s.deleteByAttachment)
	mux.HandleFunc("GET /v1/endpoints/{id}", s.getEndpoint)
	mux.HandleFunc("DELETE /v1/endpoints/{id}", s.deleteEndpoint)
	mux.HandleFunc("GET /v1/endpoints/{id}/check", s.checkEndpoint)
	mux.HandleFunc("PATCH /v1/endpoints/{id}/config", s.configureEndpoint)
	mux.HandleFunc("POST /v1/gc", s.gc)
	mux.HandleFunc("GET /v1/policy", s.listPolicy)
	mux.HandleFunc("POST /v1/policy", s.importPolicy)
	mux.HandleFunc("POST /v1/policy/validate", s.validatePolicy)
	mux.HandleFunc("DELETE /v1/policy", s.deletePolicy)
	mux.HandleFunc("GET /v1/policy/trace", s.tracePolicy)
	mux.HandleFunc("GET /v1/identities", s.listIdentities)
	mux.HandleFunc("GET /v1/identities/{id}", s.getIdentity)
	mux.HandleFunc("GET /v1/services", s.listServices)
	mux.HandleFunc("PUT /v1/services", s.upsertService)
	mux.HandleFunc("DELETE /v1/services", s.deleteServiceByFrontend)
	mux.HandleFunc("GET /v1/services/{id}", s.getService)
	mux.HandleFunc("DELETE /v1/services/{id}", s.deleteService)
	// Without a catch-all, ServeMux answers in plain text; with one, it
	// stops answering 405. This keeps both: JSON errors, and 405 for a
	// known path with the wrong method.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeErr(w, http.StatusMethodNotAllowed, v1.CodeInvalid, fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		writeErr(w, http.StatusNotFound, v1.CodeNotFound, fmt.Sprintf("no such API route: %s %s (see docs/api.md)", r.Method, r.URL.Path))
	})
	return s.logRequests(mux)
}

// Listen opens the unix socket at path, replacing a stale one.
func (s *Server) Listen(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create API socket directory: %w", err)
	}
	// A socket file left by a crashed agent would make Listen fail; one
	// that still answers belongs to a running agent.
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("another agent is already serving %s", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on API socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return fmt.Errorf("chmod API socket: %w", err)
	}
	s.ln, s.path = ln, path
	return nil
}

// Serve serves until Shutdown.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, waits for requests in flight, and removes the socket.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if s.path != "" {
		os.Remove(s.path)
	}
	return err
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		d := time.Since(start)
		s.log.Debug("API request", "method", r.Method, "path", r.URL.Path, "status", rec.code, "duration", d)
		if f := s.b.ObserveRequest; f != nil {
			// The matched pattern, not the path: IDs must not make labels.
			route := r.Pattern
			if route == "" || route == "/" {
				route = "unknown"
			}
			f(route, r.Method, rec.code, d)
		}
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, v1.Error{Code: code, Message: msg})
}

// errorCode maps domain errors to HTTP status and API code.
func errorCode(err error) (int, string) {
	switch {
	case errors.Is(err, endpoint.ErrInvalid):
		return http.StatusBadRequest, v1.CodeInvalid
	case errors.Is(err, endpoint.ErrNotFound):
		return http.StatusNotFound, v1.CodeNotFound
	case errors.Is(err, endpoint.ErrExists):
		return http.StatusConflict, v1.CodeExists
	case errors.Is(err, endpoint.ErrBusy):
		return http.StatusConflict, v1.CodeBusy
	case errors.Is(err, endpoint.ErrNetNSNotFound):
		return http.StatusBadRequest, v1.CodeNetNSNotFound
	case errors.Is(err, ipam.ErrExhausted):
		return http.StatusServiceUnavailable, v1.CodeIPAMExhausted
	case errors.Is(err, ipam.ErrConflict), errors.Is(err, ipam.ErrOutOfRange):
		return http.StatusConflict, v1.CodeIPAMConflict
	case errors.Is(err, endpoint.ErrTooManyEndpoints), errors.Is(err, enforcer.ErrTooLarge), errors.Is(err, service.ErrLimit):
		return http.StatusServiceUnavailable, v1.CodeLimit
	case errors.Is(err, service.ErrInvalid):
		return http.StatusBadRequest, v1.CodeInvalid
	case errors.Is(err, service.ErrNotFound):
		return http.StatusNotFound, v1.CodeNotFound
	case errors.Is(err, service.ErrConflict):
		return http.StatusConflict, v1.CodeConflict
	}
	return http.StatusInternalServerError, v1.CodeDatapath
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	status, code := errorCode(err)
	if status >= 500 {
		s.log.Error("API request failed", "error", err)
	}
	writeErr(w, status, code, err.Error())
}

// decode reads a JSON body strictly into v.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, v1.CodeInvalid, "malformed request body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeErr(w, http.StatusBadRequest, v1.CodeInvalid, "malformed request body: trailing data after the JSON object")
		return false
	}
	return true
}

func pathID(w http.ResponseWriter, r *http.Request) (uint16, bool) {
	raw := r.PathValue("id")
	id, err := strconv.ParseUint(raw, 10, 16)
	if err != nil || id == 0 {
		writeErr(w, http.StatusBadRequest, v1.CodeInvalid, fmt.Sprintf("endpoint ID must be a number from 1 to 65535, got %q", raw))
		return 0, false
	}
	return uint16(id), true
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, v1.Health{Status: "ok"})
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.b.Status())
}

func (s *Server) config(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.b.Config)
}

func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) {
	cid, ifn := r.URL.Query().Get("containerID"), r.URL.Query().Get("ifName")
	if cid != "" {
		if ifn == "" {
			ifn = "eth0"
		}
		ep, err := s.b.Endpoints.Lookup(cid, ifn)
		if err != nil {
			if errors.Is(err, endpoint.ErrNotFound) {
				writeJSON(w, http.StatusOK, []*endpoint.Endpoint{})
				return
			}
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, []*endpoint.Endpoint{s.withPolicy(ep)})
		return
	}
	eps := s.b.Endpoints.List()
	for _, ep := range eps {
		s.withPolicy(ep)
	}
	writeJSON(w, http.StatusOK, eps)
}

// withPolicy fills in how policy applies to ep.
func (s *Server) withPolicy(ep *endpoint.Endpoint) *endpoint.Endpoint {
	if s.b.Policy != nil {
		if st, ok := s.b.Policy.Status(ep.ID); ok {
			if ep.PolicyAudit {
				for _, dir := range []*string{&st.Ingress, &st.Egress} {
					if *dir == "enabled" {
						*dir = "audit"
					}
				}
			}
			ep.Policy = st
		}
	}
	return ep
}

func (s *Server) createEndpoint(w http.ResponseWriter, r *http.Request) {
	var req endpoint.CreateRequest
	if !decode(w, r, &req) {
		return
	}
	ep, err := s.b.Endpoints.Create(req)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, ep)
}

func (s *Server) deleteByAttachment(w http.ResponseWriter, r *http.Request) {
	cid, ifn := r.URL.Query().Get("containerID"), r.URL.Query().Get("ifName")
	if cid == "" || ifn == "" {
		writeErr(w, http.StatusBadRequest, v1.CodeInvalid, "DELETE /v1/endpoints needs containerID and ifName query parameters, or use /v1/endpoints/{id}")
		return
	}
	ep, err := s.b.Endpoints.DeleteByAttachment(cid, ifn)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ep)
}

func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	ep, err := s.b.Endpoints.Get(id)
	if err != nil {
		s.fail(w, err)
		return
	}
	d := v1.EndpointDetail{Endpoint: *s.withPolicy(ep)}
	if st, err := s.b.Endpoints.Stats(id); err == nil {
		d.Stats = &st
	} else {
		s.log.Warn("Reading endpoint counters failed", "endpoint", id, "error", err)
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	ep, err := s.b.Endpoints.Get(id)
	if err == nil {
		err = s.b.Endpoints.Delete(id)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ep)
}

func (s *Server) checkEndpoint(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	probs, err := s.b.Endpoints.Check(id)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v1.CheckResult{OK: len(probs) == 0, Problems: probs})
}

func (s *Server) gc(w http.ResponseWriter, r *http.Request) {
	var req v1.GCRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Network == "" {
		writeErr(w, http.StatusBadRequest, v1.CodeInvalid, "gc: network is required")
		return
	}
	removed, err := s.b.Endpoints.GC(req.Network, req.ValidAttachments)
	res := v1.GCResult{Removed: []endpoint.Endpoint{}}
	for _, ep := range removed {
		res.Removed = append(res.Removed, *ep)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) configureEndpoint(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var c endpoint.EndpointConfig
	if !decode(w, r, &c) {
		return
	}
	ep, err := s.b.Endpoints.Configure(id, c)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.withPolicy(ep))
}
