// Package v1 defines the wire types of the agent's REST API, version 1,
// served on the agent's unix socket under /v1. docs/api.md documents each
// route. Endpoints use endpoint.Endpoint as their model, services
// service.Service and service.Detail.
package v1

import (
	"time"

	"github.com/seta-net/seta/pkg/config"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/ipam"
	"github.com/seta-net/seta/pkg/service"
)

// Error codes in Error.Code. Clients (the CNI plugin) map them to their own
// error vocabularies.
const (
	CodeInvalid       = "invalid-request"
	CodeNotFound      = "not-found"
	CodeExists        = "already-exists"
	CodeBusy          = "busy"
	CodeNetNSNotFound = "netns-not-found"
	CodeIPAMExhausted = "ipam-exhausted"
	CodeIPAMConflict  = "ipam-conflict"
	CodeLimit         = "limit-reached"
	CodeDatapath      = "datapath-error"
	CodeInternal      = "internal-error"

	// CodeConflict: a service frontend belongs to another service.
	CodeConflict = "conflict"
)

// Error is the body of every non-2xx response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Health is GET /v1/healthz.
type Health struct {
	Status string `json:"status"`
}

// Feature probe outcomes, as in Feature.Status.
const (
	FeatureSupported    = "supported"
	FeatureMissing      = "missing"
	FeatureInconclusive = "inconclusive"
)

// Feature is the outcome of one kernel feature probe.
type Feature struct {
	Name string `json:"name"`
	// Status is supported, missing or inconclusive.
	Status   string `json:"status"`
	Required bool   `json:"required"`
	// MinKernel is the first Linux version that has the feature.
	MinKernel string `json:"minKernel"`
	Detail    string `json:"detail,omitempty"`
}

// DatapathStatus describes the kernel side.
type DatapathStatus struct {
	// Mode is how programs attach: tcx or clsact.
	Mode     string    `json:"mode"`
	Kernel   string    `json:"kernel"`
	Features []Feature `json:"features"`
	BPFRoot  string    `json:"bpfRoot"`
	// NodePort: NodePort and ExternalIP/LoadBalancer traffic from outside
	// the node is translated on Devices.
	NodePort bool `json:"nodePort"`
	// Devices carry the device programs (NodePort, host firewall).
	Devices []string `json:"devices,omitempty"`
}

// Status is GET /v1/status.
type Status struct {
	Version   string            `json:"version"`
	NodeName  string            `json:"nodeName"`
	StartedAt time.Time         `json:"startedAt"`
	Uptime    string            `json:"uptime"`
	Endpoints int               `json:"endpoints"`
	IPAM      []ipam.PoolStatus `json:"ipam"`
	Datapath  DatapathStatus    `json:"datapath"`
	Policy    *PolicyStatus     `json:"policy,omitempty"`
	Hubble    *HubbleStatus     `json:"hubble,omitempty"`
}

// HubbleStatus describes the flow pipeline and the observer API.
type HubbleStatus struct {
	Socket        string `json:"socket"`
	ListenAddress string `json:"listenAddress,omitempty"`
	Flows         int    `json:"flows"`
	MaxFlows      int    `json:"maxFlows"`
	SeenFlows     uint64 `json:"seenFlows"`
	// DecodeErrors are datapath events that could not be decoded.
	DecodeErrors uint64 `json:"decodeErrors"`
	// EventsLost are datapath events lost because the event ring was
	// full (since the datapath was loaded).
	EventsLost uint64 `json:"eventsLost"`
	// MonitorAggregation is the datapath's trace aggregation level.
	MonitorAggregation string `json:"monitorAggregation"`
}

// PolicyStatus summarises policy on the node.
type PolicyStatus struct {
	Enforcement  string `json:"enforcement"`
	AuditMode    bool   `json:"auditMode"`
	HostFirewall bool   `json:"hostFirewall"`
	Revision     uint64 `json:"revision"`
	Policies     int    `json:"policies"`
	Identities   int    `json:"identities"`
	// Changes applied, and refused (overflow counted apart).
	Imports         int `json:"imports"`
	ImportErrors    int `json:"importErrors"`
	RefusedTooLarge int `json:"refusedTooLarge"`
}

// Config is GET /v1/config.
type Config = config.Agent

// EndpointDetail is GET /v1/endpoints/{id}: the endpoint and its counters.
type EndpointDetail struct {
	endpoint.Endpoint
	Stats *endpoint.Stats `json:"stats,omitempty"`
}

// CheckResult is GET /v1/endpoints/{id}/check.
type CheckResult struct {
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// GCRequest is POST /v1/gc.
type GCRequest struct {
	Network          string                `json:"network"`
	ValidAttachments []endpoint.Attachment `json:"validAttachments"`
}

// GCResult lists the endpoints GC removed.
type GCResult struct {
	Removed []endpoint.Endpoint `json:"removed"`
}

// PolicyFile is one file of policy documents, as the user wrote it.
type PolicyFile struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// PolicyImport is POST /v1/policy and POST /v1/policy/validate: every
// document of every file is applied, or none.
type PolicyImport struct {
	Files []PolicyFile `json:"files"`
}

// PolicySummary names one policy.
type PolicySummary struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Source    string `json:"source,omitempty"`
	Rules     int    `json:"rules"`
}

// PolicyImportResult answers an import.
type PolicyImportResult struct {
	Revision uint64          `json:"revision"`
	Policies []PolicySummary `json:"policies"`
}

// PolicyList is GET /v1/policy.
type PolicyList struct {
	Revision uint64 `json:"revision"`
	// Policies are the imported documents in their parsed form.
	Policies []PolicyDetail `json:"policies"`
}

// PolicyDetail is one policy and its rules.
type PolicyDetail struct {
	PolicySummary
	Spec any `json:"spec"`
}

// PolicyDeleteResult answers DELETE /v1/policy.
type PolicyDeleteResult struct {
	Revision uint64   `json:"revision"`
	Deleted  []string `json:"deleted"`
}

// IdentityInfo is one identity.
type IdentityInfo struct {
	ID          uint32   `json:"id"`
	Labels      []string `json:"labels"`
	RefCount    int      `json:"refCount"`
	UnusedSince string   `json:"unusedSince,omitempty"`
	Reserved    bool     `json:"reserved,omitempty"`
}

// TraceStep is one direction's decision in a trace.
type TraceStep struct {
	// Direction is "egress" (the source's policy) or "ingress" (the
	// destination's).
	Direction string `json:"direction"`
	Enforced  bool   `json:"enforced"`
	// Verdict is "allowed", "denied" (a deny rule) or "dropped" (no rule
	// allowed it).
	Verdict string `json:"verdict"`
	// Entry is the map-state key that decided, if any.
	Entry string `json:"entry,omitempty"`
	// Rules are the policies behind the decision.
	Rules []string `json:"rules,omitempty"`
	// Selecting are the policies that select the endpoint.
	Selecting []string `json:"selecting,omitempty"`
}

// Trace is the answer of a policy trace.
type Trace struct {
	SrcIdentity uint32      `json:"srcIdentity"`
	DstIdentity uint32      `json:"dstIdentity"`
	Steps       []TraceStep `json:"steps"`
	Verdict     string      `json:"verdict"`
}

// Service is the body of PUT /v1/services: a frontend and its backends.
// Frontends are "IP:PORT/PROTO" strings, backend addresses "IP:PORT".
type Service = service.Service

// ServiceDetail is a service as the agent runs it (GET /v1/services, and
// the answer of PUT and DELETE): its ID, the service with defaults filled
// in, its backends with IDs and locality, and its datapath entries.
type ServiceDetail = service.Detail
