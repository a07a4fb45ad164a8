package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// advertConn is a raw VRRP socket of one address family bound to one
// interface: rawSocket for IPv4, rawSocket6 for IPv6. read is called from one
// goroutine only (the link's receiver); send from the instances'
// goroutines, which the kernel serialises; close makes a blocked read
// return net.ErrClosed.
type advertConn interface {
	read(buf []byte) (received, error)
	send(src, dst netip.Addr, msg []byte) error
	close() error
}

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

// bindToDevice is a ListenConfig.Control that binds the socket to the
// interface named name (SO_BINDTODEVICE), so it sends and receives there
// only.
func bindToDevice(name string) func(_, _ string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, name)
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// openRawSocket opens the socket for ifi and joins 224.0.0.18 on it.
func openRawSocket(ifi *net.Interface) (*rawSocket, error) {
	lc := net.ListenConfig{Control: bindToDevice(ifi.Name)}
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
	ttl      int // the IPv4 TTL or the IPv6 hop limit
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

// rawSocket6 is the IPv6 counterpart of rawSocket: a raw IPv6 socket for
// next header 112 bound to an interface, joined to ff02::12 there. IPv6 raw
// sockets carry no header, so the source address, interface and hop limit
// go in ancillary data (IPV6_PKTINFO, IPV6_HOPLIMIT), and the hop limit and
// destination of a received advert come back the same way. The checksum is
// computed and verified by the codec, not by the kernel (no IPV6_CHECKSUM),
// so a bad one is counted rather than silently dropped.
type rawSocket6 struct {
	ifi  *net.Interface
	conn *ipv6.PacketConn
}

// openRawSocket6 opens the IPv6 socket for ifi and joins ff02::12 on it.
func openRawSocket6(ifi *net.Interface) (*rawSocket6, error) {
	lc := net.ListenConfig{Control: bindToDevice(ifi.Name)}
	pc, err := lc.ListenPacket(context.Background(), fmt.Sprintf("ip6:%d", IPProto), "::")
	if err != nil {
		return nil, fmt.Errorf("vrrp: raw IPv6 socket on %s: %w", ifi.Name, err)
	}
	conn := ipv6.NewPacketConn(pc)
	for _, step := range []func() error{
		func() error {
			return conn.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true)
		},
		func() error { return conn.JoinGroup(ifi, &net.IPAddr{IP: MulticastGroup6.AsSlice()}) },
		func() error { return conn.SetMulticastInterface(ifi) },
		func() error { return conn.SetMulticastLoopback(false) },
		func() error { return conn.SetMulticastHopLimit(TTL) },
		func() error { return conn.SetHopLimit(TTL) },
		// Traffic class 0xc0 (internetwork control), as keepalived marks them.
		func() error { return conn.SetTrafficClass(0xc0) },
	} {
		if err := step(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("vrrp: raw IPv6 socket on %s: %w", ifi.Name, err)
		}
	}
	return &rawSocket6{ifi: ifi, conn: conn}, nil
}

// read blocks for the next datagram. The payload aliases buf and stays
// valid until the next read with the same buffer. Addresses come back
// without their zone.
func (s *rawSocket6) read(buf []byte) (received, error) {
	n, cm, from, err := s.conn.ReadFrom(buf)
	if err != nil {
		return received{}, err
	}
	var r received
	if ia, ok := from.(*net.IPAddr); ok {
		r.src, _ = netip.AddrFromSlice(ia.IP)
	}
	r.ttl = -1 // no ancillary data: fails the hop limit check
	if cm != nil {
		r.ttl = cm.HopLimit
		r.dst, _ = netip.AddrFromSlice(cm.Dst)
	}
	r.payload = buf[:n]
	return r, nil
}

// send writes one VRRP message from src to dst with hop limit 255.
func (s *rawSocket6) send(src, dst netip.Addr, msg []byte) error {
	cm := &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: s.ifi.Index, HopLimit: TTL}
	to := &net.IPAddr{IP: dst.AsSlice()}
	if dst.IsLinkLocalMulticast() || dst.IsLinkLocalUnicast() {
		to.Zone = strconv.Itoa(s.ifi.Index) // numeric: no lookup by name
	}
	if _, err := s.conn.WriteTo(msg, cm, to); err != nil {
		return fmt.Errorf("vrrp: send to %s on %s: %w", dst, s.ifi.Name, err)
	}
	return nil
}

func (s *rawSocket6) close() error {
	err := s.conn.Close()
	if err == nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return fmt.Errorf("vrrp: close IPv6 socket on %s: %w", s.ifi.Name, err)
}
