package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// rawSocket is one raw IP protocol 112 socket bound to an interface. It
// receives every advert arriving on that interface (multicast group joined)
// and sends adverts with a header we build, so the source address used in
// the v3 checksum is the one on the wire. Reads happen on one goroutine and
// writes on others; the kernel serialises them.
type rawSocket struct {
	ifi  *net.Interface
	conn *ipv4.RawConn
	pc   net.PacketConn
}

// openRawSocket opens the socket for ifi and joins 224.0.0.18 on it.
func openRawSocket(ifi *net.Interface) (*rawSocket, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifi.Name)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), fmt.Sprintf("ip4:%d", IPProto), "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("vrrp: raw socket on %s: %w", ifi.Name, err)
	}
	rc, err := ipv4.NewRawConn(pc)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("vrrp: raw socket on %s: %w", ifi.Name, err)
	}
	s := &rawSocket{ifi: ifi, conn: rc, pc: pc}
	for _, step := range []func() error{
		func() error { return rc.JoinGroup(ifi, &net.IPAddr{IP: MulticastGroup.AsSlice()}) },
		func() error { return rc.SetMulticastInterface(ifi) },
		func() error { return rc.SetMulticastLoopback(false) },
		func() error { return rc.SetMulticastTTL(TTL) },
	} {
		if err := step(); err != nil {
			rc.Close()
			return nil, fmt.Errorf("vrrp: raw socket on %s: %w", ifi.Name, err)
		}
	}
	return s, nil
}

// received is one datagram as read from the socket.
type received struct {
	ttl      int
	src, dst netip.Addr
	payload  []byte
}

// read blocks for the next datagram. The payload aliases buf and stays valid
// until the next read with the same buffer.
func (s *rawSocket) read(buf []byte) (received, error) {
	h, p, _, err := s.conn.ReadFrom(buf)
	if err != nil {
		return received{}, err
	}
	src, _ := netip.AddrFromSlice(h.Src.To4())
	dst, _ := netip.AddrFromSlice(h.Dst.To4())
	if h.TotalLen > 0 && h.TotalLen-h.Len < len(p) && h.TotalLen >= h.Len {
		p = p[:h.TotalLen-h.Len]
	}
	return received{ttl: h.TTL, src: src, dst: dst, payload: p}, nil
}

// send writes one VRRP message from src to dst with TTL 255.
func (s *rawSocket) send(src, dst netip.Addr, msg []byte) error {
	h := &ipv4.Header{
		Version:  ipv4.Version,
		Len:      ipv4.HeaderLen,
		TOS:      0xc0, // internetwork control, as routers mark their protocols
		TotalLen: ipv4.HeaderLen + len(msg),
		TTL:      TTL,
		Protocol: IPProto,
		Src:      src.AsSlice(),
		Dst:      dst.AsSlice(),
	}
	var cm *ipv4.ControlMessage
	if dst.IsMulticast() {
		cm = &ipv4.ControlMessage{IfIndex: s.ifi.Index}
	}
	if err := s.conn.WriteTo(h, msg, cm); err != nil {
		return fmt.Errorf("vrrp: send to %s on %s: %w", dst, s.ifi.Name, err)
	}
	return nil
}

func (s *rawSocket) close() error {
	err := s.conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
