package server

import (
	"fmt"
	"net/http"
	"strconv"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	lb "github.com/seta-net/seta/pkg/loadbalancer"
	"github.com/seta-net/seta/pkg/service"
)

func (s *Server) needServices(w http.ResponseWriter) bool {
	if s.b.Services == nil {
		writeErr(w, http.StatusServiceUnavailable, v1.CodeInternal, "services are not available on this agent (its datapath has no load-balancer maps)")
		return false
	}
	return true
}

// serviceID reads {id}: the ID of one of a service's datapath entries.
func serviceID(w http.ResponseWriter, r *http.Request) (lb.ServiceID, bool) {
	raw := r.PathValue("id")
	id, err := strconv.ParseUint(raw, 10, 16)
	if err != nil || id == 0 {
		writeErr(w, http.StatusBadRequest, v1.CodeInvalid, fmt.Sprintf("service ID must be a number from 1 to 65535, got %q", raw))
		return 0, false
	}
	return lb.ServiceID(id), true
}

// frontendParam reads ?frontend=IP:PORT/PROTO; ok is false when it was
// malformed (and answered).
func frontendParam(w http.ResponseWriter, r *http.Request) (f service.L4Addr, given, ok bool) {
	raw := r.URL.Query().Get("frontend")
	if raw == "" {
		return service.L4Addr{}, false, true
	}
	f, err := service.ParseL4Addr(raw)
	if err != nil {
		writeErr(w, http.StatusBadRequest, v1.CodeInvalid, "frontend: "+err.Error())
		return service.L4Addr{}, true, false
	}
	return f, true, true
}

// listServices answers every service, or with ?frontend= a list of zero
// or one.
func (s *Server) listServices(w http.ResponseWriter, r *http.Request) {
	if !s.needServices(w) {
		return
	}
	f, given, ok := frontendParam(w, r)
	if !ok {
		return
	}
	if given {
		d, err := s.b.Services.Lookup(f)
		if err != nil {
			writeJSON(w, http.StatusOK, []v1.ServiceDetail{})
			return
		}
		writeJSON(w, http.StatusOK, []v1.ServiceDetail{d})
		return
	}
	writeJSON(w, http.StatusOK, s.b.Services.List())
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) {
	if !s.needServices(w) {
		return
	}
	id, ok := serviceID(w, r)
	if !ok {
		return
	}
	d, err := s.b.Services.Get(id)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// upsertService creates the service of the body's frontend (201) or
// replaces it (200).
func (s *Server) upsertService(w http.ResponseWriter, r *http.Request) {
	if !s.needServices(w) {
		return
	}
	var svc v1.Service
	if !decode(w, r, &svc) {
		return
	}
	d, created, err := s.b.Services.Upsert(svc)
	if err != nil {
		s.fail(w, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, d)
}

func (s *Server) deleteService(w http.ResponseWriter, r *http.Request) {
	if !s.needServices(w) {
		return
	}
	id, ok := serviceID(w, r)
	if !ok {
		return
	}
	d, err := s.b.Services.Delete(id)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) deleteServiceByFrontend(w http.ResponseWriter, r *http.Request) {
	if !s.needServices(w) {
		return
	}
	f, given, ok := frontendParam(w, r)
	if !ok {
		return
	}
	if !given {
		writeErr(w, http.StatusBadRequest, v1.CodeInvalid, "DELETE /v1/services needs ?frontend=IP:PORT/PROTO, or use /v1/services/{id}")
		return
	}
	d, err := s.b.Services.DeleteFrontend(f)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}
