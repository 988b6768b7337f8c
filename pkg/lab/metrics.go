package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/seta-net/seta/pkg/nsutil"
)

// FetchMetrics reads a node agent's /metrics from inside the node's
// network namespace.
func FetchMetrics(n *Node) ([]byte, error) {
	// The socket is made on a thread inside the node's namespace and stays
	// there; http.Transport would dial on another goroutine (and thread).
	var conn net.Conn
	err := nsutil.Do(nsutil.Path(n.NetNS), func() error {
		var err error
		conn, err = net.DialTimeout("tcp", MetricsAddr, 5*time.Second)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fetch metrics of %s: %w", n.Name, err)
	}
	used := false
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			if used {
				return nil, fmt.Errorf("connection already used")
			}
			used = true
			return conn, nil
		},
	}}
	resp, err := c.Get("http://" + MetricsAddr + "/metrics")
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("fetch metrics of %s: %w", n.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch metrics of %s: agent answered %s", n.Name, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}
