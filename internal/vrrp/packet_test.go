package vrrp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"
)

var (
	testSrc = netip.MustParseAddr("192.168.0.12")
	testDst = MulticastGroup
)

func TestPacketRoundTrip(t *testing.T) {
	cases := []Packet{
		{Version: 2, VRID: 51, Priority: 100, Interval: time.Second, AuthType: AuthPass,
			AuthData: PassAuthData("123456"), Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.200")}},
		{Version: 2, VRID: 1, Priority: 255, Interval: 255 * time.Second},
		{Version: 3, VRID: 255, Priority: 0, Interval: 10 * time.Millisecond,
			Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}},
		{Version: 3, VRID: 7, Priority: 150, Interval: 40950 * time.Millisecond},
	}
	for _, p := range cases {
		b, err := p.Marshal(nil, testSrc, testDst)
		if err != nil {
			t.Fatalf("marshal %+v: %v", p, err)
		}
		got, err := Decode(b, testSrc, testDst)
		if err != nil {
			t.Fatalf("decode %x: %v", b, err)
		}
		if got.Version != p.Version || got.VRID != p.VRID || got.Priority != p.Priority ||
			got.Interval != p.Interval || got.AuthType != p.AuthType || got.AuthData != p.AuthData ||
			len(got.Addrs) != len(p.Addrs) {
			t.Fatalf("round trip: got %+v want %+v", got, p)
		}
		for i := range p.Addrs {
			if got.Addrs[i] != p.Addrs[i] {
				t.Fatalf("addr %d: %s != %s", i, got.Addrs[i], p.Addrs[i])
			}
		}
	}
}

// TestPacketKnownBytes checks the encoder against adverts written out by hand
// from RFC 3768 and RFC 5798 (fields, then the checksum worked out separately).
func TestPacketKnownBytes(t *testing.T) {
	v2 := Packet{Version: 2, VRID: 51, Priority: 100, Interval: time.Second, AuthType: AuthPass,
		AuthData: PassAuthData("123456"), Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.200")}}
	b, err := v2.Marshal(nil, testSrc, testDst)
	if err != nil {
		t.Fatal(err)
	}
	// 21 33 64 01 01 01 csum | c0 a8 00 c8 | "123456\0\0"
	want := []byte{0x21, 0x33, 0x64, 0x01, 0x01, 0x01}
	sum := checksum(append(append(append([]byte{}, want...), 0, 0, 0xc0, 0xa8, 0x00, 0xc8), []byte("123456\x00\x00")...), 0)
	want = append(want, byte(sum>>8), byte(sum), 0xc0, 0xa8, 0x00, 0xc8)
	want = append(want, []byte("123456\x00\x00")...)
	if !bytes.Equal(b, want) {
		t.Fatalf("v2 bytes\n got %x\nwant %x", b, want)
	}
	// v3: 31 07 96 00 | 00 64 csum; interval 1s = 100 centiseconds.
	v3 := Packet{Version: 3, VRID: 7, Priority: 150, Interval: time.Second}
	b, err = v3.Marshal(nil, testSrc, testDst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[:6], []byte{0x31, 0x07, 0x96, 0x00, 0x00, 0x64}) {
		t.Fatalf("v3 header %x", b)
	}
	// The v3 checksum covers the pseudo-header: another source must not verify.
	if _, err := Decode(b, netip.MustParseAddr("192.168.0.13"), testDst); ReasonOf(err) != DropChecksum {
		t.Fatalf("v3 with wrong pseudo-header: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := (&Packet{Version: 2, VRID: 1, Priority: 100, Interval: time.Second,
		Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}).Marshal(nil, testSrc, testDst)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	cases := []struct {
		name string
		b    []byte
		want DropReason
	}{
		{"empty", nil, DropShort},
		{"header only", good[:8], DropShort},
		{"version 4", mut(func(b []byte) []byte { b[0] = 0x41; return b }), DropVersion},
		{"type 2", mut(func(b []byte) []byte { b[0] = 0x22; return b }), DropType},
		{"count too big", mut(func(b []byte) []byte { b[3] = 9; return b }), DropShort},
		{"checksum", mut(func(b []byte) []byte { b[2]++; return b }), DropChecksum},
	}
	for _, c := range cases {
		_, err := Decode(c.b, testSrc, testDst)
		if err == nil || ReasonOf(err) != c.want {
			t.Errorf("%s: got %v want %s", c.name, err, c.want)
		}
		var de *DecodeError
		if err != nil && !errors.As(err, &de) {
			t.Errorf("%s: error %T is not a *DecodeError", c.name, err)
		}
	}
}

// FuzzDecode decodes every input whole and as two halves joined again (as a
// reader collecting a datagram in two reads would), and checks that anything
// that decodes re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, p := range []Packet{
		{Version: 2, VRID: 51, Priority: 100, Interval: time.Second, AuthType: AuthPass, AuthData: PassAuthData("x"),
			Addrs: []netip.Addr{netip.MustParseAddr("10.1.1.1")}},
		{Version: 3, VRID: 3, Priority: 200, Interval: 100 * time.Millisecond},
	} {
		b, _ := p.Marshal(nil, testSrc, testDst)
		f.Add(b, len(b)/2)
	}
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		if cut < 0 || cut > len(b) {
			cut = len(b) / 2
		}
		joined := append(append([]byte{}, b[:cut]...), b[cut:]...)
		p1, err1 := Decode(b, testSrc, testDst)
		p2, err2 := Decode(joined, testSrc, testDst)
		if (err1 == nil) != (err2 == nil) || p1.VRID != p2.VRID {
			t.Fatalf("halves disagree: %v / %v", err1, err2)
		}
		_, _ = Decode(b[:cut], testSrc, testDst) // a truncated datagram must not panic
		if err1 != nil {
			return
		}
		out, err := p1.Marshal(nil, testSrc, testDst)
		if err != nil {
			return // e.g. a v2 interval of 0 seconds cannot be encoded
		}
		// Compare all but the checksum (0x0000 and 0xffff are the same
		// one's complement sum; Decode verified the input's) and, in v3,
		// the 4 reserved bits, which receivers ignore.
		n := len(out)
		same := bytes.Equal(out[:6], b[:6]) && bytes.Equal(out[8:], b[8:n])
		if p1.Version == 3 {
			same = bytes.Equal(out[:4], b[:4]) && out[4]&0x0f == b[4]&0x0f && out[5] == b[5] &&
				bytes.Equal(out[8:], b[8:n])
		}
		if !same {
			t.Fatalf("re-encode differs:\n in %x\nout %x", b[:n], out)
		}
	})
}

// keepalivedV6Advert is a VRRPv3 advert over IPv6 as Debian's keepalived
// 2.2.7 sent it (captured with tcpdump): VRID 51, priority 255, 1 s, two
// addresses, from the interface's link-local address to ff02::12.
var (
	keepalivedV6Src    = netip.MustParseAddr("fe80::d8be:3eff:fe17:fcc8")
	keepalivedV6Advert = []byte{
		0x31, 0x33, 0xff, 0x02, 0x00, 0x64, 0xc2, 0x95,
		0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
		0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x01,
	}
)

// TestPacketIPv6 checks the IPv6 codec against keepalived's own bytes: the
// decoder accepts them (the checksum covers the IPv6 pseudo-header) and
// the encoder produces the same bytes from the decoded fields.
func TestPacketIPv6(t *testing.T) {
	p, err := Decode(keepalivedV6Advert, keepalivedV6Src, MulticastGroup6)
	if err != nil {
		t.Fatalf("decode keepalived's advert: %v", err)
	}
	want := []netip.Addr{netip.MustParseAddr("fd00::100"), netip.MustParseAddr("fd00::101")}
	if p.Version != 3 || p.VRID != 51 || p.Priority != 255 || p.Interval != time.Second || len(p.Addrs) != 2 ||
		p.Addrs[0] != want[0] || p.Addrs[1] != want[1] {
		t.Fatalf("decoded %+v", p)
	}
	b, err := p.Marshal(nil, keepalivedV6Src, MulticastGroup6)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, keepalivedV6Advert) {
		t.Fatalf("re-encoded\n got %x\nwant %x", b, keepalivedV6Advert)
	}
	// Another source address changes the pseudo-header: the sum must fail.
	if _, err := Decode(b, netip.MustParseAddr("fe80::1"), MulticastGroup6); ReasonOf(err) != DropChecksum {
		t.Fatalf("wrong pseudo-header: %v", err)
	}
	// The same message read as IPv4 is a different (short) packet.
	if _, err := Decode(b, testSrc, testDst); err == nil {
		t.Fatal("IPv6 advert decoded as IPv4")
	}
	// keepalived 2.2.7 sends VRRPv2 over IPv6 when "version 2" precedes an
	// IPv6 address in an instance; no RFC defines it, so it is dropped.
	v2 := []byte{0x21, 0x33, 0xff, 0x01, 0x00, 0x01, 0xd1, 0x0b,
		0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00}
	if _, err := Decode(v2, keepalivedV6Src, MulticastGroup6); ReasonOf(err) != DropVersion {
		t.Fatalf("v2 over IPv6: %v", err)
	}
	for _, bad := range []Packet{
		{Version: 2, VRID: 1, Priority: 100, Interval: time.Second},
		{Version: 3, VRID: 1, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
	} {
		if _, err := bad.Marshal(nil, keepalivedV6Src, MulticastGroup6); err == nil {
			t.Errorf("marshal %+v over IPv6 succeeded", bad)
		}
	}
	if _, err := (&Packet{Version: 3, VRID: 1, Priority: 100, Interval: time.Second,
		Addrs: want}).Marshal(nil, testSrc, testDst); err == nil {
		t.Error("IPv6 addresses in an IPv4 advert marshalled")
	}
}
