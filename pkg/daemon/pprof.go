package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// servePprof serves Go's runtime profiles (CPU, heap, goroutines, ...) at
// addr under /debug/pprof/, as Cilium's --pprof does: measuring where the
// agent spends its time needs the running agent, under real load. The
// handlers are on a mux of their own, so nothing else is exposed, and the
// endpoint exists only when asked for.
func servePprof(log *slog.Logger, addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("Serving Go runtime profiles", "address", ln.Addr().String())
	return serveHTTP(log, "pprof", ln, mux), nil
}

// serveHTTP serves h on ln until the returned stop is called (which waits
// up to 5 s for requests in flight); what is named what in the log.
func serveHTTP(log *slog.Logger, what string, ln net.Listener, h http.Handler) (stop func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "server", what, "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
}
