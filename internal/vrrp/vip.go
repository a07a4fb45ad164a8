package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// vipSet is the virtual addresses of one instance, resolved to interfaces.
// Its methods are called from the instance's goroutine only.
type vipSet struct {
	vips []resolvedVIP
	// arpFD is an AF_PACKET socket kept for gratuitous ARPs (-1: none yet).
	// It is opened with protocol 0, so it receives nothing, and reused:
	// opening and closing one per ARP costs milliseconds in the kernel.
	arpFD int
	// naFD is the ICMPv6 socket for neighbour adverts (-1: none yet).
	naFD int
}

// close releases the sockets.
func (s *vipSet) close() {
	if s.arpFD >= 0 {
		unix.Close(s.arpFD)
		s.arpFD = -1
	}
	if s.naFD >= 0 {
		unix.Close(s.naFD)
		s.naFD = -1
	}
}

type resolvedVIP struct {
	VIP
	link netlink.Link
}

// resolveVIPs looks up the interface of every VIP (its dev, or the
// instance's interface).
func resolveVIPs(vips []VIP, defaultIface string) (*vipSet, error) {
	set := &vipSet{arpFD: -1, naFD: -1}
	for _, v := range vips {
		dev := v.Dev
		if dev == "" {
			dev = defaultIface
		}
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return nil, fmt.Errorf("vrrp: virtual_ipaddress %s: interface %s: %w", v.Prefix, dev, err)
		}
		if v.Label != "" && !strings.HasPrefix(v.Label, dev) {
			return nil, fmt.Errorf("vrrp: virtual_ipaddress %s: label %q must start with the interface name %s", v.Prefix, v.Label, dev)
		}
		v.Dev = dev
		set.vips = append(set.vips, resolvedVIP{VIP: v, link: l})
	}
	return set, nil
}

func (v resolvedVIP) addr() *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   v.Prefix.Addr().AsSlice(),
		Mask: net.CIDRMask(v.Prefix.Bits(), v.Prefix.Addr().BitLen()),
	}, Label: v.Label}
	if v.Prefix.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD // the address moves between hosts: no duplicate detection delay
		if v.Prefix.Bits() == 128 {
			// As keepalived: a /128 is deprecated (preferred lifetime 0)
			// so the kernel does not pick it as a source address.
			a.ValidLft, a.PreferedLft = math.MaxUint32, 0
		}
	}
	switch v.Scope {
	case "host":
		a.Scope = unix.RT_SCOPE_HOST
	case "link":
		a.Scope = unix.RT_SCOPE_LINK
	}
	return a
}

// without returns the addresses of s that are not in o (same address,
// prefix and interface), as a set without sockets of its own.
func (s *vipSet) without(o *vipSet) *vipSet {
	out := &vipSet{arpFD: -1, naFD: -1}
	for _, v := range s.vips {
		if !slices.ContainsFunc(o.vips, func(w resolvedVIP) bool { return w.Prefix == v.Prefix && w.Dev == v.Dev }) {
			out.vips = append(out.vips, v)
		}
	}
	return out
}

// add puts every address on its interface; one already there is fine.
func (s *vipSet) add() error {
	var errs []error
	for _, v := range s.vips {
		if err := netlink.AddrAdd(v.link, v.addr()); err != nil && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, fmt.Errorf("vrrp: add %s to %s: %w", v.Prefix, v.Dev, err))
		}
	}
	return errors.Join(errs...)
}

// remove takes every address off its interface; one already gone is fine.
func (s *vipSet) remove() error {
	var errs []error
	for _, v := range s.vips {
		err := netlink.AddrDel(v.link, v.addr())
		if err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("vrrp: remove %s from %s: %w", v.Prefix, v.Dev, err))
		}
	}
	return errors.Join(errs...)
}

// present returns the VIPs currently on their interfaces.
func (s *vipSet) present() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range s.vips {
		fam := netlink.FAMILY_V4
		if v.Prefix.Addr().Is6() {
			fam = netlink.FAMILY_V6
		}
		addrs, err := netlink.AddrList(v.link, fam)
		if err != nil {
			return nil, fmt.Errorf("vrrp: list addresses of %s: %w", v.Dev, err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if ok && ip.Unmap() == v.Prefix.Addr() {
				out = append(out, v.Prefix)
			}
		}
	}
	return out, nil
}

// sendGARP sends one gratuitous ARP (an ARP request for the address from
// the address, to the broadcast MAC) for every IPv4 VIP.
func (s *vipSet) sendGARP() error {
	var errs []error
	for _, v := range s.vips {
		if !v.Prefix.Addr().Is4() {
			continue
		}
		if s.arpFD < 0 {
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
			if err != nil {
				return fmt.Errorf("vrrp: gratuitous ARP socket: %w", err)
			}
			s.arpFD = fd
		}
		if err := sendGratuitousARP(s.arpFD, v.link.Attrs(), v.Prefix.Addr()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sendNA sends one unsolicited neighbour advertisement (override flag set)
// to all nodes for every IPv6 VIP, so neighbours update their caches.
func (s *vipSet) sendNA() error {
	var errs []error
	for _, v := range s.vips {
		if !v.Prefix.Addr().Is6() {
			continue
		}
		if s.naFD < 0 {
			fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6)
			if err != nil {
				return fmt.Errorf("vrrp: neighbour advert socket: %w", err)
			}
			s.naFD = fd
		}
		if err := sendUnsolicitedNA(s.naFD, v.link.Attrs(), v.Prefix.Addr()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *vipSet) hasIPv6() bool {
	for _, v := range s.vips {
		if v.Prefix.Addr().Is6() {
			return true
		}
	}
	return false
}

func sendUnsolicitedNA(fd int, attrs *netlink.LinkAttrs, ip netip.Addr) error {
	mac := attrs.HardwareAddr
	for _, opt := range []struct{ name, value int }{
		{unix.IPV6_MULTICAST_HOPS, 255}, // receivers drop NAs with any other hop limit
		{unix.IPV6_MULTICAST_IF, attrs.Index},
	} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, opt.name, opt.value); err != nil {
			return fmt.Errorf("vrrp: neighbour advert socket on %s: %w", attrs.Name, err)
		}
	}
	// Type 136, code 0, checksum (the kernel fills it in for ICMPv6 raw
	// sockets), flags: override; the target; then its link-layer address.
	msg := []byte{136, 0, 0, 0, 0x20, 0, 0, 0}
	t := ip.As16()
	msg = append(msg, t[:]...)
	if len(mac) == 6 {
		msg = append(msg, 2, 1)
		msg = append(msg, mac...)
	}
	allNodes := &unix.SockaddrInet6{Addr: [16]byte{0xff, 0x02, 15: 1}, ZoneId: uint32(attrs.Index)}
	if err := unix.Sendto(fd, msg, 0, allNodes); err != nil {
		return fmt.Errorf("vrrp: neighbour advert for %s on %s: %w", ip, attrs.Name, err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func sendGratuitousARP(fd int, attrs *netlink.LinkAttrs, ip netip.Addr) error {
	mac := attrs.HardwareAddr
	if len(mac) != 6 {
		return nil // no Ethernet address (e.g. a tunnel): nothing to announce
	}
	frame := make([]byte, 0, 42)
	frame = append(frame, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	frame = append(frame, mac...)
	frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_ARP)
	frame = binary.BigEndian.AppendUint16(frame, 1) // Ethernet
	frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_IP)
	frame = append(frame, 6, 4)
	frame = binary.BigEndian.AppendUint16(frame, 1) // request
	ip4 := ip.As4()
	frame = append(frame, mac...)
	frame = append(frame, ip4[:]...)
	frame = append(frame, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	frame = append(frame, ip4[:]...)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: attrs.Index, Halen: 6}
	copy(sa.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Sendto(fd, frame, 0, sa); err != nil {
		return fmt.Errorf("vrrp: gratuitous ARP for %s on %s: %w", ip, attrs.Name, err)
	}
	return nil
}

// linkLocalWait bounds how long an IPv6 instance waits at start for its
// interface's link-local address, which the kernel adds a moment after the
// link comes up.
const linkLocalWait = 3 * time.Second

// linkLocal6 returns the interface's IPv6 link-local address, the source of
// an IPv6 instance's adverts (RFC 5798 section 5.1.2.1). It may still be
// tentative (duplicate address detection running): sends fail until DAD
// ends, and are counted as send errors. It waits up to linkLocalWait for
// the address to appear. Addresses in virtual are skipped: a link-local VIP
// (fe80::100) is listed before the interface's own address once added, and
// must not become the source, for it leaves with the master state.
func linkLocal6(name string, virtual map[netip.Addr]bool) (netip.Addr, error) {
	deadline := time.Now().Add(linkLocalWait)
	for {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("vrrp: interface %s: %w", name, err)
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("vrrp: addresses of %s: %w", name, err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if ok && ip.IsLinkLocalUnicast() && !virtual[ip.WithZone("")] {
				return ip, nil
			}
		}
		if time.Now().After(deadline) {
			return netip.Addr{}, fmt.Errorf("vrrp: interface %s has no IPv6 link-local address (down, or IPv6 disabled?)", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// primaryIPv4 returns the first IPv4 address of an interface that is not in
// virtual.
func primaryIPv4(name string, virtual map[netip.Addr]bool) (netip.Addr, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vrrp: interface %s: %w", name, err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vrrp: addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if ok && !virtual[ip] {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("vrrp: interface %s has no IPv4 address", name)
}
