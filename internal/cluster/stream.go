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
	addr   net.Addr
	cookie string
	self   string

	incoming  chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

// NewStreamLayer returns the Raft stream layer of the node self, whose
// cluster port others reach at advertise.
func NewStreamLayer(advertise, cookie, self string) *StreamLayer {
	return &StreamLayer{addr: stringAddr(advertise), cookie: cookie, self: self,
		incoming: make(chan net.Conn), closed: make(chan struct{})}
}

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

// Handoff gives an authenticated ServiceRaft connection to Raft; once the
// layer is closed it closes the connection instead.
func (l *StreamLayer) Handoff(nc net.Conn, _ string) {
	select {
	case l.incoming <- nc:
	case <-l.closed:
		nc.Close()
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

// Close implements net.Listener: Accept returns and Handoff refuses.
func (l *StreamLayer) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

// Addr implements net.Listener: the address other nodes dial.
func (l *StreamLayer) Addr() net.Addr { return l.addr }

// Dial implements raft.StreamLayer.
func (l *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return Dial(ctx, string(address), l.cookie, l.self, ServiceRaft)
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
func Call(ctx context.Context, addr, cookie, self string, svc Service, req, resp any) error {
	nc, err := Dial(ctx, addr, cookie, self, svc)
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
