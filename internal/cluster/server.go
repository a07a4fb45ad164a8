package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
)

// HandlerFunc serves one authenticated connection; it owns the
// connection and must close it. peer is the name the caller gave.
type HandlerFunc func(nc net.Conn, peer string)

// Server accepts connections on the cluster port, authenticates them with
// the cookie and hands each to the handler of the service it asked for.
type Server struct {
	cookie   string
	log      *slog.Logger
	handlers map[Service]HandlerFunc // set before Serve; read-only after

	mu       sync.Mutex // guards below
	listener net.Listener
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup // accept loop and connection goroutines
}

// NewServer returns a Server for a node with this cookie. log may be nil.
func NewServer(cookie string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cookie: cookie, log: log, handlers: map[Service]HandlerFunc{}, conns: map[net.Conn]struct{}{}}
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

func (s *Server) serveConn(nc net.Conn) {
	svc, peer, err := serverHandshake(nc, s.cookie, func(svc Service) bool { return s.handlers[svc] != nil })
	if err != nil {
		if errors.Is(err, ErrBadCookie) {
			s.log.Warn(fmt.Sprintf("cluster port: connection attempt from node '%s' rejected: its cookie is different", peer), "peer", peer, "from", nc.RemoteAddr().String())
		} else {
			s.log.Debug("cluster port: handshake failed", "peer", peer, "from", nc.RemoteAddr().String(), "error", err)
		}
		nc.Close()
		return
	}
	s.handlers[svc](nc, peer)
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
