package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// StreamLayer carries hashicorp/raft's transport over the cluster port:
// outgoing streams are dialled with the cookie handshake for ServiceRaft,
// and incoming ones are handed to it by the node's Server through Handoff.
// It implements raft.StreamLayer.
type StreamLayer struct {
	addr net.Addr
	id   Identity

	incoming  chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once

	mu    sync.Mutex
	conns map[*layerConn]struct{} // open streams, closed with the layer
}

// layerConn is a stream the layer closes when it closes: Raft's transport
// keeps pooled connections open past its own Close, and a stopped node
// must not leave its peers reading from them.
type layerConn struct {
	net.Conn
	l    *StreamLayer
	once sync.Once
}

func (c *layerConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// track registers nc, or closes it and returns nil if the layer is closed.
func (l *StreamLayer) track(nc net.Conn) *layerConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns == nil {
		nc.Close()
		return nil
	}
	c := &layerConn{Conn: nc, l: l}
	l.conns[c] = struct{}{}
	return c
}

// NewStreamLayer returns the Raft stream layer of the node self, whose
// cluster port others reach at advertise.
func NewStreamLayer(advertise string, id Identity) *StreamLayer {
	return &StreamLayer{addr: stringAddr(advertise), id: id,
		incoming: make(chan net.Conn), closed: make(chan struct{}), conns: make(map[*layerConn]struct{})}
}

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

// Handoff gives an authenticated ServiceRaft connection to Raft; once the
// layer is closed it closes the connection instead.
func (l *StreamLayer) Handoff(nc net.Conn, _ string) {
	c := l.track(nc)
	if c == nil {
		return
	}
	select {
	case l.incoming <- c:
	case <-l.closed:
		c.Close()
	}
}

// Accept implements net.Listener for Raft.
func (l *StreamLayer) Accept() (net.Conn, error) {
	select {
	case nc := <-l.incoming:
		return nc, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: Accept returns, Handoff and Dial refuse,
// and every stream still open in either direction is closed.
func (l *StreamLayer) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	l.mu.Lock()
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	return nil
}

// Addr implements net.Listener: the address other nodes dial.
func (l *StreamLayer) Addr() net.Addr { return l.addr }

// Dial implements raft.StreamLayer.
func (l *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	nc, err := l.id.Dial(ctx, string(address), ServiceRaft)
	if err != nil {
		return nil, err
	}
	c := l.track(nc)
	if c == nil {
		return nil, fmt.Errorf("dial %s: %w", address, net.ErrClosed)
	}
	return c, nil
}

// maxMessage bounds one JSON message on the cluster port.
const maxMessage = 256 << 20

// WriteJSON writes v as one length-prefixed JSON message, the framing of
// the cluster port's request-response services.
func WriteJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := w.Write(append(n[:], b...)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// ReadJSON reads one message written by WriteJSON into v.
func ReadJSON(r io.Reader, v any) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxMessage {
		return fmt.Errorf("receive: message of %d octets is too large", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// Call dials a service at addr, sends req, reads one answer into resp
// and closes the connection. ctx bounds the whole exchange.
func (id Identity) Call(ctx context.Context, addr string, svc Service, req, resp any) error {
	nc, err := id.Dial(ctx, addr, svc)
	if err != nil {
		return err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	if err := WriteJSON(nc, req); err != nil {
		return err
	}
	if err := ReadJSON(nc, resp); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}
