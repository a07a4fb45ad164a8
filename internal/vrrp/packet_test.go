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
