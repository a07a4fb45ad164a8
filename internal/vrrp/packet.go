package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Protocol constants shared by VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798).
const (
	// IPProto is the IP protocol number of VRRP.
	IPProto = 112
	// TTL is the only hop limit a multicast advert may carry.
	TTL = 255
	// PriorityStop is the priority a master sends when it gives up the role.
	PriorityStop = 0
	// PriorityOwner is the priority of the router that owns the addresses.
	PriorityOwner = 255

	typeAdvert     = 1
	headerLen      = 8
	authDataLen    = 8
	maxAddrs       = 255
	maxV3Interval  = 0x0fff // centiseconds, 12 bits
	v2AuthNone     = 0
	v2AuthPassword = 1
)

// MulticastGroup is the IPv4 group adverts are sent to unless unicast peers are set.
var MulticastGroup = netip.AddrFrom4([4]byte{224, 0, 0, 18})

// MulticastGroup6 is the IPv6 group (RFC 5798 section 5.1.2.2) adverts of
// an IPv6 instance are sent to unless unicast peers are set.
var MulticastGroup6 = netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x12})

// AuthType is the VRRPv2 authentication type.
type AuthType uint8

// Authentication types of RFC 3768 (only none and simple password remain in use).
const (
	AuthNone AuthType = v2AuthNone
	AuthPass AuthType = v2AuthPassword
)

// Packet is one decoded VRRP advertisement. Addrs holds addresses of one
// family: IPv4 when the packet travels over IPv4, IPv6 over IPv6 (VRRPv3
// only).
type Packet struct {
	Version  int // 2 or 3
	VRID     uint8
	Priority uint8
	// Interval is the advertisement interval: whole seconds in v2,
	// centiseconds on the wire in v3.
	Interval time.Duration
	AuthType AuthType // v2 only
	AuthData [authDataLen]byte
	Addrs    []netip.Addr
}

// DropReason names why a received packet was discarded; it is the key of the
// bad-packet counters in the status dump.
type DropReason string

// Reasons a received packet is dropped.
const (
	DropShort        DropReason = "short"
	DropMalformed    DropReason = "malformed"
	DropVersion      DropReason = "bad_version"
	DropType         DropReason = "bad_type"
	DropChecksum     DropReason = "bad_checksum"
	DropTTL          DropReason = "bad_ttl"
	DropVRID         DropReason = "unknown_vrid"
	DropAuthType     DropReason = "bad_auth_type"
	DropAuthPass     DropReason = "bad_auth_pass"
	DropInterval     DropReason = "interval_mismatch"
	DropAddrList     DropReason = "addr_list_mismatch"
	DropOwnPacket    DropReason = "own_packet"
	DropWrongVersion DropReason = "version_mismatch"
)

// DecodeError is returned by Decode; Reason says which counter it belongs to.
type DecodeError struct {
	Reason DropReason
	Detail string
}

func (e *DecodeError) Error() string { return "vrrp: " + string(e.Reason) + ": " + e.Detail }

func decodeErr(r DropReason, format string, args ...any) error {
	return &DecodeError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the drop reason carried by err, or DropMalformed.
func ReasonOf(err error) DropReason {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return DropMalformed
}

// Marshal appends the wire form of p to b and returns it. src and dst are the
// IP source and destination used for the v3 pseudo-header checksum (IPv4 or
// IPv6, RFC 5798 section 5.2.8); v2 ignores them. Over IPv6 (src is IPv6)
// only v3 exists and every address must be IPv6; over IPv4 every address
// must be IPv4.
func (p *Packet) Marshal(b []byte, src, dst netip.Addr) ([]byte, error) {
	if p.Version != 2 && p.Version != 3 {
		return b, fmt.Errorf("vrrp: marshal: version %d", p.Version)
	}
	v6 := src.Is6() && !src.Is4In6()
	if v6 && p.Version != 3 {
		return b, fmt.Errorf("vrrp: marshal: VRRPv%d over IPv6", p.Version)
	}
	if len(p.Addrs) > maxAddrs {
		return b, fmt.Errorf("vrrp: marshal: %d addresses, at most %d", len(p.Addrs), maxAddrs)
	}
	start := len(b)
	b = append(b, byte(p.Version<<4|typeAdvert), p.VRID, p.Priority, byte(len(p.Addrs)))
	if p.Version == 2 {
		secs := p.Interval / time.Second
		if secs < 1 || secs > 255 {
			return b[:start], fmt.Errorf("vrrp: marshal: v2 interval %s not in 1..255s", p.Interval)
		}
		b = append(b, byte(p.AuthType), byte(secs), 0, 0)
	} else {
		cs := p.Interval / (10 * time.Millisecond)
		if cs < 1 || cs > maxV3Interval {
			return b[:start], fmt.Errorf("vrrp: marshal: v3 interval %s not in 10ms..40.95s", p.Interval)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(cs))
		b = append(b, 0, 0)
	}
	for _, a := range p.Addrs {
		switch {
		case v6 && a.Is6() && !a.Is4In6():
			a16 := a.As16()
			b = append(b, a16[:]...)
		case !v6 && a.Is4():
			a4 := a.As4()
			b = append(b, a4[:]...)
		default:
			return b[:start], fmt.Errorf("vrrp: marshal: %s in an advert sent from %s", a, src)
		}
	}
	if p.Version == 2 {
		b = append(b, p.AuthData[:]...)
	}
	msg := b[start:]
	var sum uint16
	if p.Version == 2 {
		sum = checksum(msg, 0)
	} else {
		sum = checksum(msg, pseudoHeaderSum(src, dst, len(msg)))
	}
	binary.BigEndian.PutUint16(msg[6:8], sum)
	return b, nil
}

// Decode parses one VRRP message (the IP payload). src and dst are the IP
// addresses the message came with, used for the v3 checksum; their family
// says whether the address list holds IPv4 or IPv6 addresses. VRRPv2 over
// IPv6 does not exist (RFC 5798 only) and is dropped as bad_version. On
// error the returned *DecodeError names the drop reason. The returned
// packet does not retain b.
func Decode(b []byte, src, dst netip.Addr) (Packet, error) {
	var p Packet
	if len(b) < headerLen {
		return p, decodeErr(DropShort, "%d bytes, header needs %d", len(b), headerLen)
	}
	p.Version = int(b[0] >> 4)
	if p.Version != 2 && p.Version != 3 {
		return p, decodeErr(DropVersion, "version %d", p.Version)
	}
	if t := b[0] & 0x0f; t != typeAdvert {
		return p, decodeErr(DropType, "type %d", t)
	}
	v6 := src.Is6() && !src.Is4In6()
	if v6 && p.Version != 3 {
		return p, decodeErr(DropVersion, "VRRPv%d over IPv6", p.Version)
	}
	addrLen := 4
	if v6 {
		addrLen = 16
	}
	p.VRID = b[1]
	p.Priority = b[2]
	n := int(b[3])
	want := headerLen + addrLen*n
	if p.Version == 2 {
		want += authDataLen
	}
	if len(b) < want {
		return p, decodeErr(DropShort, "%d bytes, %d addresses need %d", len(b), n, want)
	}
	if p.Version == 2 {
		p.AuthType = AuthType(b[4])
		p.Interval = time.Duration(b[5]) * time.Second
		copy(p.AuthData[:], b[headerLen+4*n:want])
		if checksum(b[:want], 0) != 0 {
			return p, decodeErr(DropChecksum, "v2 checksum")
		}
	} else {
		p.Interval = time.Duration(binary.BigEndian.Uint16(b[4:6])&maxV3Interval) * 10 * time.Millisecond
		if checksum(b[:want], pseudoHeaderSum(src, dst, want)) != 0 {
			return p, decodeErr(DropChecksum, "v3 checksum")
		}
	}
	if p.Interval == 0 {
		return p, decodeErr(DropMalformed, "zero advertisement interval")
	}
	if n > 0 {
		p.Addrs = make([]netip.Addr, n)
		for i := range n {
			off := headerLen + addrLen*i
			if v6 {
				p.Addrs[i] = netip.AddrFrom16([16]byte(b[off : off+16]))
			} else {
				p.Addrs[i] = netip.AddrFrom4([4]byte(b[off : off+4]))
			}
		}
	}
	return p, nil
}

// checksum returns the Internet checksum of b, starting from the partial sum initial.
func checksum(b []byte, initial uint32) uint16 {
	sum := initial
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// pseudoHeaderSum returns the partial sum of the pseudo-header: RFC 768's
// for IPv4 (addresses, protocol, length) and RFC 8200 section 8.1's for
// IPv6 (addresses, 32-bit length, next header).
func pseudoHeaderSum(src, dst netip.Addr, length int) uint32 {
	var sum uint32
	if src.Is6() && !src.Is4In6() {
		s, d := src.As16(), dst.As16()
		for i := 0; i < 16; i += 2 {
			sum += uint32(s[i])<<8 | uint32(s[i+1])
			sum += uint32(d[i])<<8 | uint32(d[i+1])
		}
		sum += uint32(length>>16) + uint32(length&0xffff)
		sum += IPProto
		return sum
	}
	if src.Is4() {
		s := src.As4()
		sum += uint32(s[0])<<8 | uint32(s[1])
		sum += uint32(s[2])<<8 | uint32(s[3])
	}
	if dst.Is4() {
		d := dst.As4()
		sum += uint32(d[0])<<8 | uint32(d[1])
		sum += uint32(d[2])<<8 | uint32(d[3])
	}
	sum += IPProto
	sum += uint32(length)
	return sum
}

// PassAuthData returns the 8-byte v2 authentication data for a PASS password:
// the password truncated or zero padded to 8 bytes.
func PassAuthData(pass string) [authDataLen]byte {
	var d [authDataLen]byte
	copy(d[:], pass)
	return d
}
