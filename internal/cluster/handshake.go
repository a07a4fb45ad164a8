package cluster

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/sockio"
)

// Service names what a connection to the cluster port is for.
type Service byte

// Services on the cluster port.
const (
	// ServiceCtl carries warrenctl's commands.
	ServiceCtl Service = 1
	// ServiceRaft carries the definitions' Raft traffic.
	ServiceRaft Service = 2
	// ServiceMeta carries definition changes forwarded to the Raft
	// leader, and membership requests.
	ServiceMeta Service = 3
	// ServiceQueue carries queue traffic from the node a client is
	// connected to to the node a queue lives on: publishes and their
	// confirms, deliveries under credit, acknowledgements and requests.
	ServiceQueue Service = 4
)

// magic opens every connection to the cluster port, with the protocol
// version in its last octet.
var magic = [4]byte{'W', 'R', 'N', 3}

const nonceLen = 32

// handshakeTimeout bounds the exchange before a connection is trusted.
const handshakeTimeout = 10 * time.Second

// Errors of the handshake.
var (
	// ErrBadCookie means the other end does not know our cookie.
	ErrBadCookie = errors.New("cluster: cookie does not match")
	// ErrProtocol means the other end does not speak the cluster protocol.
	ErrProtocol = errors.New("cluster: not a warren cluster port")
	// ErrNeedTLS means the cluster port takes TLS connections only.
	ErrNeedTLS = errors.New("cluster: TLS required")
)

func proof(cookie, role string, svc Service, nonces ...[]byte) []byte {
	m := hmac.New(sha256.New, []byte(cookie))
	m.Write([]byte(role))
	m.Write([]byte{byte(svc)})
	for _, n := range nonces {
		m.Write(n)
	}
	return m.Sum(nil)
}

// Identity is how a node or a tool introduces itself on other nodes'
// cluster ports: the cookie it proves it knows, its name (for the other
// node's log), and, where cluster ports require TLS, the TLS settings
// with its certificate and the CAs that the nodes' certificates chain to.
type Identity struct {
	Cookie string
	Name   string
	TLS    *tls.Config // nil: plain TCP
}

// Dial connects to a node's cluster port for a service, proving that it
// knows the cookie and checking that the node knows it too. The cookie
// itself never crosses the network.
func (id Identity) Dial(ctx context.Context, addr string, svc Service) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := nc
	if id.TLS != nil {
		cfg := id.TLS.Clone()
		if cfg.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(sockio.Wrap(nc), cfg)
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				return nil, fmt.Errorf("TLS handshake with %s: the node closed the connection: it refused our certificate, or its cluster port does not use TLS (see its log)", addr)
			}
			return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	if err := clientHandshake(conn, id.Cookie, id.Name, svc); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// maxNameLen bounds the caller's name in the hello.
const maxNameLen = 255

func clientHandshake(nc net.Conn, cookie, self string, svc Service) error {
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	defer nc.SetDeadline(time.Time{})
	mine := make([]byte, nonceLen)
	if _, err := rand.Read(mine); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if len(self) > maxNameLen {
		self = self[:maxNameLen]
	}
	hello := append(append(magic[:], byte(svc)), mine...)
	hello = append(append(hello, byte(len(self))), self...)
	if _, err := nc.Write(hello); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if err := readStatus(nc); err != nil {
		return err
	}
	theirs := make([]byte, nonceLen)
	if _, err := io.ReadFull(nc, theirs); err != nil {
		return fmt.Errorf("handshake: %w (is this a warren cluster port?)", err)
	}
	if _, err := nc.Write(proof(cookie, "client", svc, theirs, mine)); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if err := readStatus(nc); err != nil {
		return err
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(nc, got); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if !hmac.Equal(got, proof(cookie, "server", svc, mine, theirs)) {
		return fmt.Errorf("%w: the node could not prove it knows our cookie", ErrBadCookie)
	}
	return nil
}

// Handshake status octets: the server sends one before its nonce, and
// one after checking the client's proof.
const (
	statusOK         = 0
	statusBadCookie  = 1
	statusNoService  = 2
	statusBadVersion = 3
	statusNeedTLS    = 4
)

// readStatus reads a status octet and, unless it is statusOK, the
// refusal that follows it.
func readStatus(nc net.Conn) error {
	var status [1]byte
	if _, err := io.ReadFull(nc, status[:]); err != nil {
		return fmt.Errorf("handshake: %w (is this a warren cluster port?)", err)
	}
	if status[0] == statusOK {
		return nil
	}
	var n [2]byte
	io.ReadFull(nc, n[:])
	msg := make([]byte, binary.BigEndian.Uint16(n[:]))
	io.ReadFull(nc, msg)
	switch status[0] {
	case statusBadCookie:
		return fmt.Errorf("%w: %s", ErrBadCookie, msg)
	case statusNeedTLS:
		return fmt.Errorf("%w: %s", ErrNeedTLS, msg)
	}
	return fmt.Errorf("handshake refused: %s", msg)
}

// hello is what a client says first.
type hello struct {
	svc    Service
	nonce  []byte
	peer   string
	status byte   // statusOK, or why it is refused
	why    string // the refusal's text
}

// readHello reads a client's hello.
func readHello(nc net.Conn) (hello, error) {
	b := make([]byte, len(magic)+1+nonceLen+1)
	if _, err := io.ReadFull(nc, b); err != nil {
		return hello{}, fmt.Errorf("handshake: %w", err)
	}
	if !bytes.Equal(b[:3], magic[:3]) {
		return hello{}, ErrProtocol
	}
	h := hello{svc: Service(b[4]), nonce: b[5 : 5+nonceLen]}
	name := make([]byte, b[5+nonceLen])
	if _, err := io.ReadFull(nc, name); err != nil {
		return hello{}, fmt.Errorf("handshake: %w", err)
	}
	h.peer = string(name)
	if b[3] != magic[3] {
		h.status, h.why = statusBadVersion, fmt.Sprintf("cluster protocol version %d is not supported (this node speaks %d)", b[3], magic[3])
	}
	return h, nil
}

// serverHandshake checks a client's proof and proves the cookie back. It
// returns the service asked for and the name the client gave.
func serverHandshake(nc net.Conn, cookie string, known func(Service) bool) (Service, string, error) {
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	defer nc.SetDeadline(time.Time{})
	h, err := readHello(nc)
	if err != nil {
		return 0, "", err
	}
	svc, theirs, peer := h.svc, h.nonce, h.peer
	if h.status != statusOK {
		refuse(nc, h.status, h.why)
		return 0, peer, fmt.Errorf("%w: %s", ErrProtocol, h.why)
	}
	mine := make([]byte, nonceLen)
	if _, err := rand.Read(mine); err != nil {
		return 0, peer, fmt.Errorf("handshake: %w", err)
	}
	if _, err := nc.Write(append([]byte{statusOK}, mine...)); err != nil {
		return 0, peer, fmt.Errorf("handshake: %w", err)
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(nc, got); err != nil {
		return 0, peer, fmt.Errorf("handshake: %w", err)
	}
	if !hmac.Equal(got, proof(cookie, "client", svc, mine, theirs)) {
		refuse(nc, statusBadCookie, "the node's cookie is different: use the node's cookie file (--cookie-file)")
		return 0, peer, ErrBadCookie
	}
	if !known(svc) {
		refuse(nc, statusNoService, fmt.Sprintf("service %d is not offered by this node", svc))
		return 0, peer, fmt.Errorf("cluster: unknown service %d", svc)
	}
	if _, err := nc.Write(append([]byte{statusOK}, proof(cookie, "server", svc, theirs, mine)...)); err != nil {
		return 0, peer, fmt.Errorf("handshake: %w", err)
	}
	return svc, peer, nil
}

func refuse(nc net.Conn, status byte, msg string) {
	b := []byte{status, 0, 0}
	binary.BigEndian.PutUint16(b[1:], uint16(len(msg)))
	nc.Write(append(b, msg...))
}
