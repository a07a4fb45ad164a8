package vrrp

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// injector sends hand-made VRRP datagrams from a lab node.
type injector struct {
	conn *ipv4.RawConn
	src  netip.Addr
}

func newInjector(t *testing.T, n *labNode) *injector {
	t.Helper()
	var conn *ipv4.RawConn
	if err := inNS(n.ns, func() error {
		pc, err := net.ListenPacket("ip4:112", "0.0.0.0")
		if err != nil {
			return err
		}
		conn, err = ipv4.NewRawConn(pc)
		if err != nil {
			pc.Close()
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		return conn.SetMulticastInterface(ifi)
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &injector{conn: conn, src: n.addr}
}

func (j *injector) send(t *testing.T, ttl int, payload []byte) {
	t.Helper()
	h := &ipv4.Header{Version: 4, Len: ipv4.HeaderLen, TotalLen: ipv4.HeaderLen + len(payload), TTL: ttl,
		Protocol: IPProto, Src: j.src.AsSlice(), Dst: MulticastGroup.AsSlice()}
	if err := j.conn.WriteTo(h, payload, nil); err != nil {
		t.Fatalf("inject: %v", err)
	}
}

// TestBadPacketsDroppedAndCounted sends every kind of bad advert from a
// third node and checks each is dropped (no state change) and counted
// under its reason, then floods bad packets for longer than the master
// down interval and checks the backup never misses the master's adverts.
func TestBadPacketsDroppedAndCounted(t *testing.T) {
	l := newLab(t, 3)
	l.nodes[0].startWarren(t, vrrpConf{Priority: 150, AuthPass: "good"}.String())
	backup := l.nodes[1].startWarren(t, vrrpConf{Priority: 100, AuthPass: "good"}.String())
	l.waitHolder(vip, 0, 6*time.Second)
	j := newInjector(t, l.nodes[2])

	advert := func(mod func(p *Packet)) []byte {
		p := Packet{Version: 2, VRID: 51, Priority: 254, Interval: time.Second, AuthType: AuthPass,
			AuthData: PassAuthData("good"), Addrs: []netip.Addr{netip.MustParseAddr(vip)}}
		mod(&p)
		b, err := p.Marshal(nil, j.src, MulticastGroup)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := advert(func(*Packet) {})
	badSum := append([]byte{}, good...)
	badSum[7] ^= 0xff
	badVersion := append([]byte{}, good...)
	badVersion[0] = 0x51
	cases := []struct {
		reason  DropReason
		block   string
		ttl     int
		payload []byte
	}{
		{DropAuthPass, "instance VI_1", 255, advert(func(p *Packet) { p.AuthData = PassAuthData("wrong") })},
		{DropAuthType, "instance VI_1", 255, advert(func(p *Packet) { p.AuthType = AuthNone })},
		{DropVRID, "interface eth0", 255, advert(func(p *Packet) { p.VRID = 52 })},
		{DropChecksum, "instance VI_1", 255, badSum},
		{DropVersion, "instance VI_1", 255, badVersion},
		{DropShort, "instance VI_1", 255, good[:6]},
		{DropTTL, "instance VI_1", 64, good},
		{DropInterval, "instance VI_1", 255, advert(func(p *Packet) { p.Interval = 2 * time.Second })},
		{DropAddrList, "instance VI_1", 255, advert(func(p *Packet) { p.Addrs = []netip.Addr{netip.MustParseAddr("10.77.0.99")} })},
	}
	for _, c := range cases {
		for range 3 {
			j.send(t, c.ttl, c.payload)
		}
	}
	waitFor(t, 3*time.Second, 100*time.Millisecond, func() error {
		st := backup.status(t)
		for _, c := range cases {
			if n := counter(t, st, c.block, string(c.reason)); n != 3 {
				return fmt.Errorf("%s %s=%d, want 3\n%s", c.block, c.reason, n, st)
			}
		}
		return nil
	})
	// None of them (all claiming priority 254) may have moved anything.
	st := backup.status(t)
	if got := field(st, "instance VI_1", "master"); got != "10.77.0.1" {
		t.Fatalf("backup follows %s after bad packets\n%s", got, st)
	}
	l.waitHolder(vip, 0, time.Second)

	// Flood for 5 s (> 3.6 s master down interval) with bad checksums.
	before := counter(t, st, "instance VI_1", "transitions")
	heardBefore := counter(t, st, "instance VI_1", "adverts_received")
	end := time.Now().Add(5 * time.Second)
	sent := 0
	for time.Now().Before(end) {
		for range 200 {
			j.send(t, 255, badSum)
			sent++
		}
		time.Sleep(time.Millisecond)
	}
	st = backup.status(t)
	t.Logf("flood: %d packets in 5s; backup counted %d bad checksums", sent, counter(t, st, "instance VI_1", string(DropChecksum)))
	if n := counter(t, st, "instance VI_1", "transitions"); n != before {
		t.Fatalf("backup changed state during the flood (%d -> %d transitions)\n%s", before, n, st)
	}
	if heard := counter(t, st, "instance VI_1", "adverts_received") - heardBefore; heard < 4 {
		t.Fatalf("backup heard only %d adverts during a 5 s flood\n%s", heard, st)
	}
	l.waitHolder(vip, 0, time.Second)
}
