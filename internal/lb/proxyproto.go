package lb

import (
	"encoding/binary"
	"fmt"
	"net"
)

// proxyV2Signature starts every PROXY protocol v2 header.
var proxyV2Signature = [12]byte{'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n'}

// proxyHeader builds the PROXY protocol header (v1 text or v2 binary) that
// tells a server the client's address (src) and the address it connected
// to (dst).
func proxyHeader(v2 bool, src, dst net.Addr) []byte {
	s, sok := src.(*net.TCPAddr)
	d, dok := dst.(*net.TCPAddr)
	if !v2 {
		if !sok || !dok {
			return []byte("PROXY UNKNOWN\r\n")
		}
		fam := "TCP4"
		sip, dip := s.IP.To4(), d.IP.To4()
		if sip == nil || dip == nil {
			fam, sip, dip = "TCP6", s.IP.To16(), d.IP.To16()
		}
		return []byte(fmt.Sprintf("PROXY %s %s %s %d %d\r\n", fam, sip, dip, s.Port, d.Port))
	}
	h := append([]byte(nil), proxyV2Signature[:]...)
	if !sok || !dok {
		return append(h, 0x20, 0x00, 0, 0) // LOCAL command, no address
	}
	h = append(h, 0x21) // version 2, PROXY command
	if sip, dip := s.IP.To4(), d.IP.To4(); sip != nil && dip != nil {
		h = append(h, 0x11, 0, 12) // TCP over IPv4, 12 bytes of addresses
		h = append(h, sip...)
		h = append(h, dip...)
	} else {
		h = append(h, 0x21, 0, 36) // TCP over IPv6
		h = append(h, s.IP.To16()...)
		h = append(h, d.IP.To16()...)
	}
	h = binary.BigEndian.AppendUint16(h, uint16(s.Port))
	return binary.BigEndian.AppendUint16(h, uint16(d.Port))
}
