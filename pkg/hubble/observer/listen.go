package observer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// HealthService is the name Hubble clients ask the gRPC health service
// about.
const HealthService = "hubble.server.Observer"

// Listener serves the observer API on a unix socket and, optionally, a TCP
// address.
type Listener struct {
	srv  *grpc.Server
	lns  []net.Listener
	path string
}

// Listen opens the unix socket at path (required) and tcpAddr (host:port,
// optional; plaintext, so keep it on a trusted network or loopback).
func Listen(s *Server, path, tcpAddr string) (*Listener, error) {
	if path == "" {
		return nil, errors.New("hubble socket path is empty")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create hubble socket directory: %w", err)
	}
	// A socket left by a crashed agent would make Listen fail; one that
	// still answers belongs to a running agent.
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("another agent is already serving %s", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on hubble socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod hubble socket: %w", err)
	}
	l := &Listener{lns: []net.Listener{ln}, path: path}
	if tcpAddr != "" {
		if _, _, err := net.SplitHostPort(tcpAddr); err != nil {
			ln.Close()
			return nil, fmt.Errorf("invalid hubble listen address %q (want host:port): %w", tcpAddr, err)
		}
		tl, err := net.Listen("tcp", tcpAddr)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen on hubble address %s: %w", tcpAddr, err)
		}
		l.lns = append(l.lns, tl)
	}
	l.srv = grpc.NewServer()
	observerpb.RegisterObserverServer(l.srv, s)
	// Hubble clients (hubble status, Hubble Relay) check the standard gRPC
	// health service for the observer before they call it.
	hs := health.NewServer()
	hs.SetServingStatus(HealthService, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(l.srv, hs)
	return l, nil
}

// Addrs are the addresses served.
func (l *Listener) Addrs() []net.Addr {
	var out []net.Addr
	for _, ln := range l.lns {
		out = append(out, ln.Addr())
	}
	return out
}

// Serve serves every listener until Stop; it returns the first error.
func (l *Listener) Serve() error {
	errc := make(chan error, len(l.lns))
	for _, ln := range l.lns {
		go func() { errc <- l.srv.Serve(ln) }()
	}
	for range l.lns {
		if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return err
		}
	}
	return nil
}

// Stop ends every stream (following clients included) and removes the
// socket.
func (l *Listener) Stop() {
	l.srv.Stop()
	os.Remove(l.path)
}
