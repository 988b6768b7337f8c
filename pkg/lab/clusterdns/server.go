package clusterdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Source returns the current zone. The server calls it for every query, so
// it must be cheap when nothing changed.
type Source func() (*Zone, error)

// FileSource is a Source that builds the zone from a file (the lab's state)
// and rebuilds it whenever the file changes. A change is seen by a stat on
// every query: the lab replaces the file by rename, which changes its inode,
// so even two writes within one mtime tick are told apart.
func FileSource(domain, path string, parse func([]byte) ([]Service, error), log *slog.Logger) Source {
	var (
		mu   sync.Mutex
		seen fileKey
		zone *Zone
	)
	return func() (*Zone, error) {
		mu.Lock()
		defer mu.Unlock()
		st, err := os.Stat(path)
		if err != nil {
			if zone != nil {
				// Keep answering from what was read last; the lab may
				// be going down.
				return zone, nil
			}
			return nil, err
		}
		k := keyOf(st)
		if zone != nil && k == seen {
			return zone, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return zone, err
		}
		svcs, err := parse(b)
		if err != nil {
			if zone != nil {
				log.Warn("cannot read services; answering from the previous state", "file", path, "error", err)
				return zone, nil
			}
			return nil, err
		}
		zone, seen = NewZone(domain, svcs), k
		log.Info("services loaded", "file", path, "services", len(svcs))
		return zone, nil
	}
}

type fileKey struct {
	ino   uint64
	size  int64
	mtime time.Time
}

func keyOf(st os.FileInfo) fileKey {
	k := fileKey{size: st.Size(), mtime: st.ModTime()}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		k.ino = s.Ino
	}
	return k
}

// Handler answers queries from a Source.
type Handler struct {
	Source Source
	Log    *slog.Logger
}

// ServeDNS implements dns.Handler.
func (h *Handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	var m *dns.Msg
	zone, err := h.Source()
	if err != nil {
		h.Log.Error("no zone to answer from", "error", err)
		m = new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
	} else {
		m = zone.Answer(req)
	}
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
		// An EDNS query gets an EDNS answer (RFC 6891), with our own
		// buffer size; DNSSEC is not supported, so DO stays clear.
		m.SetEdns0(dns.DefaultMsgSize, false)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		m.Truncate(size)
	}
	if h.Log.Enabled(context.Background(), slog.LevelDebug) && len(req.Question) > 0 {
		q := req.Question[0]
		h.Log.Debug("query", "from", w.RemoteAddr(), "name", q.Name, "type", dns.TypeToString[q.Qtype],
			"rcode", dns.RcodeToString[m.Rcode], "answers", len(m.Answer))
	}
	if err := w.WriteMsg(m); err != nil {
		h.Log.Debug("write answer", "to", w.RemoteAddr(), "error", err)
	}
}

// Serve answers on UDP and TCP port port of every address, IPv4 and IPv6,
// until ctx is done. The sockets are open when ready is called (if not nil).
func Serve(ctx context.Context, port int, h *Handler, ready func()) error {
	// One socket per family rather than one dual-stack socket: each
	// replies from the address it was asked on (miekg/dns uses the
	// packet's destination from IP_PKTINFO / IPV6_PKTINFO), which a client
	// whose socket is connected to that address insists on.
	var servers []*dns.Server
	closeAll := func() {
		for _, s := range servers {
			if s.PacketConn != nil {
				s.PacketConn.Close()
			}
			if s.Listener != nil {
				s.Listener.Close()
			}
		}
	}
	for _, c := range []struct{ net, addr string }{
		{"udp4", fmt.Sprintf("0.0.0.0:%d", port)}, {"udp6", fmt.Sprintf("[::]:%d", port)},
		{"tcp4", fmt.Sprintf("0.0.0.0:%d", port)}, {"tcp6", fmt.Sprintf("[::]:%d", port)},
	} {
		s := &dns.Server{Net: c.net, Handler: h, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
		var err error
		if c.net[:3] == "udp" {
			s.PacketConn, err = net.ListenPacket(c.net, c.addr)
		} else {
			s.Listener, err = net.Listen(c.net, c.addr)
		}
		if err != nil {
			closeAll()
			return fmt.Errorf("listen %s %s: %w", c.net, c.addr, err)
		}
		servers = append(servers, s)
	}
	if ready != nil {
		ready()
	}
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errc <- s.ActivateAndServe() }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range servers {
		s.ShutdownContext(sctx)
	}
	closeAll()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
