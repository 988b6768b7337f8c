// Package client talks to the agent's REST API over its unix socket. The
// CNI plugin and the CLI use it. Errors from the agent come back as
// *v1.Error with the agent's code; an agent that cannot be reached gives an
// error that names the socket.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/config"
	"github.com/seta-net/seta/pkg/endpoint"
)

// SocketEnv is the environment variable that names the agent socket.
const SocketEnv = "SETA_SOCKET"

// DefaultSocket returns $SETA_SOCKET or the built-in default.
func DefaultSocket() string {
	if s := os.Getenv(SocketEnv); s != "" {
		return s
	}
	return config.DefaultAPISocket
}

// ErrUnreachable means the agent's socket did not answer.
var ErrUnreachable = errors.New("agent unreachable")

// Client is an API client bound to one socket.
type Client struct {
	socket string
	hc     *http.Client
}

// New returns a client for the socket at path. timeout bounds each request.
func New(socket string, timeout time.Duration) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns: 4,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr, Timeout: timeout}}
}

// Socket returns the socket path.
func (c *Client) Socket() string { return c.socket }

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := "http://seta-agent" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: cannot reach seta-agent at %s (is it running? set --socket or %s): %v", ErrUnreachable, c.socket, SocketEnv, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read response from %s: %w", c.socket, err)
	}
	if resp.StatusCode >= 300 {
		var e v1.Error
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			return &e
		}
		return &v1.Error{Code: v1.CodeInternal, Message: fmt.Sprintf("agent answered %s: %s", resp.Status, bytes.TrimSpace(data))}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode response from %s: %w", c.socket, err)
		}
	}
	return nil
}

// IsCode reports whether err is an agent error with the given code.
func IsCode(err error, code string) bool {
	var e *v1.Error
	return errors.As(err, &e) && e.Code == code
}

// Health calls GET /v1/healthz.
func (c *Client) Health(ctx context.Context) (v1.Health, error) {
	var h v1.Health
	return h, c.do(ctx, http.MethodGet, "/v1/healthz", nil, nil, &h)
}

// Status calls GET /v1/status.
func (c *Client) Status(ctx context.Context) (v1.Status, error) {
	var s v1.Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &s)
}

// Config calls GET /v1/config.
func (c *Client) Config(ctx context.Context) (v1.Config, error) {
	var s v1.Config
	return s, c.do(ctx, http.MethodGet, "/v1/config", nil, nil, &s)
}

// ListEndpoints calls GET /v1/endpoints.
func (c *Client) ListEndpoints(ctx context.Context) ([]endpoint.Endpoint, error) {
	var eps []endpoint.Endpoint
	return eps, c.do(ctx, http.MethodGet, "/v1/endpoints", nil, nil, &eps)
}

// LookupEndpoint finds the endpoint of a container interface; ok is false if
// there is none.
func (c *Client) LookupEndpoint(ctx context.Context, containerID, ifName string) (endpoint.Endpoint, bool, error) {
	var eps []endpoint.Endpoint
	q := url.Values{"containerID": {containerID}, "ifName": {ifName}}
	if err := c.do(ctx, http.MethodGet, "/v1/endpoints", q, nil, &eps); err != nil {
		return endpoint.Endpoint{}, false, err
	}
	if len(eps) == 0 {
		return endpoint.Endpoint{}, false, nil
	}
	return eps[0], true, nil
}

// GetEndpoint calls GET /v1/endpoints/{id}.
func (c *Client) GetEndpoint(ctx context.Context, id uint16) (v1.EndpointDetail, error) {
	var d v1.EndpointDetail
	return d, c.do(ctx, http.MethodGet, "/v1/endpoints/"+strconv.Itoa(int(id)), nil, nil, &d)
}

// CreateEndpoint calls POST /v1/endpoints.
func (c *Client) CreateEndpoint(ctx context.Context, req endpoint.CreateRequest) (endpoint.Endpoint, error) {
	var ep endpoint.Endpoint
	return ep, c.do(ctx, http.MethodPost, "/v1/endpoints", nil, req, &ep)
}

// DeleteEndpoint calls DELETE /v1/endpoints/{id}.
func (c *Client) DeleteEndpoint(ctx context.Context, id uint16) error {
	return c.do(ctx, http.MethodDelete, "/v1/endpoints/"+strconv.Itoa(int(id)), nil, nil, nil)
}

// DeleteAttachment calls DELETE /v1/endpoints?containerID=&ifName=.
func (c *Client) DeleteAttachment(ctx context.Context, containerID, ifName string) error {
	q := url.Values{"containerID": {containerID}, "ifName": {ifName}}
	return c.do(ctx, http.MethodDelete, "/v1/endpoints", q, nil, nil)
}

// CheckEndpoint calls GET /v1/endpoints/{id}/check.
func (c *Client) CheckEndpoint(ctx context.Context, id uint16) (v1.CheckResult, error) {
	var r v1.CheckResult
	return r, c.do(ctx, http.MethodGet, "/v1/endpoints/"+strconv.Itoa(int(id))+"/check", nil, nil, &r)
}

// GC calls POST /v1/gc.
func (c *Client) GC(ctx context.Context, req v1.GCRequest) (v1.GCResult, error) {
	var r v1.GCResult
	return r, c.do(ctx, http.MethodPost, "/v1/gc", nil, req, &r)
}

// ImportPolicy calls POST /v1/policy: the agent applies every document of
// every file, or none of them.
func (c *Client) ImportPolicy(ctx context.Context, req v1.PolicyImport) (v1.PolicyImportResult, error) {
	var r v1.PolicyImportResult
	return r, c.do(ctx, http.MethodPost, "/v1/policy", nil, req, &r)
}

// ValidatePolicy calls POST /v1/policy/validate: the agent parses the files
// and changes nothing.
func (c *Client) ValidatePolicy(ctx context.Context, req v1.PolicyImport) (v1.PolicyImportResult, error) {
	var r v1.PolicyImportResult
	return r, c.do(ctx, http.MethodPost, "/v1/policy/validate", nil, req, &r)
}

// ListPolicy calls GET /v1/policy; an empty name or namespace does not
// filter.
func (c *Client) ListPolicy(ctx context.Context, name, namespace string) (v1.PolicyList, error) {
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	var l v1.PolicyList
	return l, c.do(ctx, http.MethodGet, "/v1/policy", q, nil, &l)
}

// DeletePolicy calls DELETE /v1/policy: every policy if all, else the one
// named name (narrowed by namespace and kind when not empty).
func (c *Client) DeletePolicy(ctx context.Context, name, namespace, kind string, all bool) (v1.PolicyDeleteResult, error) {
	q := url.Values{}
	if all {
		q.Set("all", "true")
	} else {
		q.Set("name", name)
		if namespace != "" {
			q.Set("namespace", namespace)
		}
		if kind != "" {
			q.Set("kind", kind)
		}
	}
	var r v1.PolicyDeleteResult
	return r, c.do(ctx, http.MethodDelete, "/v1/policy", q, nil, &r)
}

// TracePolicy calls GET /v1/policy/trace for a packet from an endpoint with
// labels src to one with labels dst; dport is "PORT/PROTO" or "" for any.
func (c *Client) TracePolicy(ctx context.Context, src, dst []string, dport string) (v1.Trace, error) {
	q := url.Values{"src": {strings.Join(src, ",")}, "dst": {strings.Join(dst, ",")}}
	if dport != "" {
		q.Set("dport", dport)
	}
	var t v1.Trace
	return t, c.do(ctx, http.MethodGet, "/v1/policy/trace", q, nil, &t)
}

// ListIdentities calls GET /v1/identities.
func (c *Client) ListIdentities(ctx context.Context) ([]v1.IdentityInfo, error) {
	var ids []v1.IdentityInfo
	return ids, c.do(ctx, http.MethodGet, "/v1/identities", nil, nil, &ids)
}

// GetIdentity calls GET /v1/identities/{id}.
func (c *Client) GetIdentity(ctx context.Context, id uint32) (v1.IdentityInfo, error) {
	var info v1.IdentityInfo
	return info, c.do(ctx, http.MethodGet, "/v1/identities/"+strconv.FormatUint(uint64(id), 10), nil, nil, &info)
}

// ConfigureEndpoint calls PATCH /v1/endpoints/{id}/config.
func (c *Client) ConfigureEndpoint(ctx context.Context, id uint16, cfg endpoint.EndpointConfig) (endpoint.Endpoint, error) {
	var ep endpoint.Endpoint
	return ep, c.do(ctx, http.MethodPatch, "/v1/endpoints/"+strconv.Itoa(int(id))+"/config", nil, cfg, &ep)
}

// ListServices calls GET /v1/services.
func (c *Client) ListServices(ctx context.Context) ([]v1.ServiceDetail, error) {
	var ss []v1.ServiceDetail
	return ss, c.do(ctx, http.MethodGet, "/v1/services", nil, nil, &ss)
}

// LookupService finds the service of a frontend ("IP:PORT/PROTO"); ok is
// false if there is none.
func (c *Client) LookupService(ctx context.Context, frontend string) (v1.ServiceDetail, bool, error) {
	var ss []v1.ServiceDetail
	if err := c.do(ctx, http.MethodGet, "/v1/services", url.Values{"frontend": {frontend}}, nil, &ss); err != nil {
		return v1.ServiceDetail{}, false, err
	}
	if len(ss) == 0 {
		return v1.ServiceDetail{}, false, nil
	}
	return ss[0], true, nil
}

// GetService calls GET /v1/services/{id}.
func (c *Client) GetService(ctx context.Context, id uint16) (v1.ServiceDetail, error) {
	var d v1.ServiceDetail
	return d, c.do(ctx, http.MethodGet, "/v1/services/"+strconv.Itoa(int(id)), nil, nil, &d)
}

// UpsertService calls PUT /v1/services: it creates the service of the
// frontend or replaces it.
func (c *Client) UpsertService(ctx context.Context, svc v1.Service) (v1.ServiceDetail, error) {
	var d v1.ServiceDetail
	return d, c.do(ctx, http.MethodPut, "/v1/services", nil, svc, &d)
}

// DeleteService calls DELETE /v1/services/{id} and returns the removed
// service.
func (c *Client) DeleteService(ctx context.Context, id uint16) (v1.ServiceDetail, error) {
	var d v1.ServiceDetail
	return d, c.do(ctx, http.MethodDelete, "/v1/services/"+strconv.Itoa(int(id)), nil, nil, &d)
}

// DeleteServiceFrontend calls DELETE /v1/services?frontend= and returns the
// removed service.
func (c *Client) DeleteServiceFrontend(ctx context.Context, frontend string) (v1.ServiceDetail, error) {
	var d v1.ServiceDetail
	return d, c.do(ctx, http.MethodDelete, "/v1/services", url.Values{"frontend": {frontend}}, nil, &d)
}
