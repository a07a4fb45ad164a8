package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/sockio"
)

// HandlerFunc serves one authenticated connection; it owns the
// connection and must close it. peer is the name the caller gave.
type HandlerFunc func(nc net.Conn, peer string)

// Server accepts connections on the cluster port, authenticates them with
// the cookie (inside TLS, when it has a TLS configuration) and hands each
// to the handler of the service it asked for.
type Server struct {
	cookie   string
	tls      *tls.Config // nil: plain TCP
	log      *slog.Logger
	handlers map[Service]HandlerFunc // set before Serve; read-only after

	mu       sync.Mutex // guards below
	listener net.Listener
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup // accept loop and connection goroutines
}

// NewServer returns a Server for a node with this cookie. With tlsCfg,
// the port takes TLS connections only, whose client certificates tlsCfg
// must verify. log may be nil.
func NewServer(cookie string, tlsCfg *tls.Config, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cookie: cookie, tls: tlsCfg, log: log, handlers: map[Service]HandlerFunc{}, conns: map[net.Conn]struct{}{}}
}

// Handle registers the handler of a service. Call it before Serve.
func (s *Server) Handle(svc Service, h HandlerFunc) { s.handlers[svc] = h }

// Serve accepts connections until Close; it then returns nil.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listener = l
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("cluster port: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, nc)
				s.mu.Unlock()
			}()
			s.serveConn(nc)
		}()
	}
}

// tlsRecord is the first octet of a TLS connection (a handshake record).
const tlsRecord = 0x16

func (s *Server) serveConn(nc net.Conn) {
	from := nc.RemoteAddr().String()
	nc.SetReadDeadline(time.Now().Add(handshakeTimeout))
	var first [1]byte
	if _, err := io.ReadFull(nc, first[:]); err != nil {
		nc.Close()
		return
	}
	nc.SetReadDeadline(time.Time{})
	pc := &prefixConn{Conn: nc, pre: first[:]}
	if s.tls != nil {
		// TLS reads and writes the socket through sockio's raw calls.
		pc.Conn = sockio.Wrap(nc)
	}
	conn := net.Conn(pc)
	switch {
	case s.tls != nil && first[0] != tlsRecord:
		s.refusePlain(pc, from)
		return
	case s.tls == nil && first[0] == tlsRecord:
		s.log.Warn("cluster port: a TLS connection attempt was refused: this node's cluster port does not use TLS (cluster.ssl_options is not set)", "from", from)
		nc.Close()
		return
	case s.tls != nil:
		tc := tls.Server(pc, s.tls)
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			s.log.Warn("cluster port: TLS handshake failed: "+tlsFailure(err), "from", from)
			nc.Close()
			return
		}
		conn = tc
	}
	svc, peer, err := serverHandshake(conn, s.cookie, func(svc Service) bool { return s.handlers[svc] != nil })
	if err == nil && s.tls == nil {
		// The hello took the octet read ahead: the handler gets the
		// socket itself, which its fast paths need.
		conn = nc
	}
	if err != nil {
		if errors.Is(err, ErrBadCookie) {
			s.log.Warn(fmt.Sprintf("cluster port: connection attempt from node '%s' rejected: its cookie is different", peer), "peer", peer, "from", from)
		} else {
			s.log.Debug("cluster port: handshake failed", "peer", peer, "from", from, "error", err)
		}
		conn.Close()
		return
	}
	s.handlers[svc](conn, peer)
}

// refusePlain answers a plain-TCP hello on a port that requires TLS,
// saying so to the caller and in the log.
func (s *Server) refusePlain(pc *prefixConn, from string) {
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(handshakeTimeout))
	h, err := readHello(pc)
	if err != nil {
		s.log.Warn("cluster port: a plain connection attempt was refused: this node's cluster port requires TLS", "from", from)
		return
	}
	s.log.Warn(fmt.Sprintf("cluster port: connection attempt from '%s' refused: it did not use TLS, which this node's cluster port requires", h.peer), "peer", h.peer, "from", from)
	refuse(pc, statusNeedTLS, "this node's cluster port requires TLS with a certificate its CA signed: set cluster.ssl_options.certfile, keyfile and cacertfile (warrenctl: --config FILE, or --certfile, --keyfile and --cacertfile)")
}

// tlsFailure says in words which side refused a TLS handshake.
func tlsFailure(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "remote error"):
		return "the connecting side refused this node's certificate (does it trust the CA in cluster.ssl_options.cacertfile?): " + msg
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "certificate"):
		return "the connecting side's certificate is not one this node accepts (signed by the CA in cluster.ssl_options.cacertfile): " + msg
	}
	return msg
}

// prefixConn is a connection whose first octets were read ahead.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Close stops accepting, closes every connection and waits for their
// handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.listener != nil {
		s.listener.Close()
	}
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
