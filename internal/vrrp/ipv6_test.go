package vrrp

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv6"
)

// Addresses of the IPv6 lab: the virtual router's link-local address comes
// first, as RFC 5798 wants, then the address clients use.
const (
	vip6LinkLocal = "fe80::100"
	vip6          = "fd00:77::100"
	vip6Host      = "fd00:77::101" // a /128
)

// v6Conf is the IPv6 instance the tests run, under warren-vrrp and keepalived.
func v6Conf(prio int, advertInt string) string {
	return vrrpConf{Version: 3, Priority: prio, AdvertInt: advertInt, VIP: vip6LinkLocal,
		MoreVIPs: []string{vip6 + "/64 dev eth0", vip6Host}}.String()
}

// TestIPv6ElectionAndFailover runs two warren-vrrp speakers of an IPv6
// instance (VRRPv3 to ff02::12) and a client in a third namespace. The
// daemons start while the link-local addresses may still be tentative. The
// higher priority wins, the backup names it by its link-local address, the
// client reaches the VIP over IPv6; after SIGKILL of the master the backup
// takes over within the master down interval and the client, told by the
// unsolicited neighbour adverts, reaches the new master at the same VIP.
// Then bad adverts from the client are dropped and counted: hop limit 254,
// a wrong checksum, and VRRPv2 over IPv6 as keepalived can send it.
func TestIPv6ElectionAndFailover(t *testing.T) {
	l := newLab(t, 3)
	l.addIPv6(t)
	for _, n := range l.nodes[:2] {
		n.serveName(t, 8080)
	}
	a := l.nodes[0].startWarren(t, v6Conf(150, "1"))
	b := l.nodes[1].startWarren(t, v6Conf(100, "1"))
	l.waitHolder(vip6, 0, 8*time.Second)
	if !l.nodes[0].hasAddr(vip6LinkLocal) || l.nodes[1].hasAddr(vip6LinkLocal) {
		t.Fatal("the link-local VIP is not with the master alone")
	}
	// As keepalived adds them: no duplicate address detection, and a /128
	// deprecated so that it is never chosen as a source address.
	for _, c := range []struct{ addr, want string }{
		{vip6LinkLocal + "/64", "nodad"}, {vip6 + "/64", "nodad"}, {vip6Host + "/128", "nodad deprecated"},
	} {
		var line string
		for _, ln := range strings.Split(run(t, "ip", "-n", l.nodes[0].ns, "-6", "-o", "addr", "show", "dev", "eth0"), "\n") {
			if strings.Contains(ln, " "+c.addr+" ") {
				line = ln
			}
		}
		if !strings.Contains(line, " "+c.want+" ") || (c.want == "nodad" && strings.Contains(line, "deprecated")) {
			t.Fatalf("%s flags: want %q:\n%s", c.addr, c.want, line)
		}
	}
	ll0 := l.nodes[0].linkLocal(t, true)
	waitFor(t, 3*time.Second, 100*time.Millisecond, func() error {
		st := b.status(t)
		if field(st, "instance VI_1", "state") != "BACKUP" || field(st, "instance VI_1", "master") != ll0 ||
			counter(t, st, "instance VI_1", "adverts_received") == 0 {
			return fmt.Errorf("backup does not follow %s:\n%s", ll0, st)
		}
		return nil
	})
	st := a.status(t)
	if field(st, "instance VI_1", "state") != "MASTER" || field(st, "instance VI_1", "version") != "3" ||
		field(st, "instance VI_1", "source") != ll0 {
		t.Fatalf("master status:\n%s", st)
	}
	waitFor(t, 3*time.Second, 50*time.Millisecond, func() error {
		got, err := l.nodes[2].askName(vip6, 8080)
		if err != nil || got != l.nodes[0].ns {
			return fmt.Errorf("client got %q, %v", got, err)
		}
		return nil
	})

	killed := time.Now()
	a.sigkill()
	waitFor(t, 8*time.Second, 10*time.Millisecond, func() error {
		if !l.nodes[1].hasAddr(vip6) {
			return fmt.Errorf("backup does not hold %s", vip6)
		}
		return nil
	})
	took := time.Since(killed)
	a.kill()
	bound := 3*time.Second + skewFor(100)
	t.Logf("IPv6 failover after SIGKILL: %s (bound %s)", took.Round(time.Millisecond), bound)
	if took > bound+time.Second {
		t.Fatalf("failover took %s, more than 3 × advert_int + skew = %s", took, bound)
	}
	waitFor(t, 3*time.Second, 50*time.Millisecond, func() error {
		got, err := l.nodes[2].askName(vip6, 8080)
		if err != nil || got != l.nodes[1].ns {
			return fmt.Errorf("client got %q, %v", got, err)
		}
		return nil
	})

	// Bad adverts for VRID 51 from the client, each counted by the new master.
	inj := newInjector6(t, l.nodes[2])
	src := netip.MustParseAddr(l.nodes[2].linkLocal(t, true))
	good, err := (&Packet{Version: 3, VRID: 51, Priority: 200, Interval: time.Second,
		Addrs: []netip.Addr{netip.MustParseAddr(vip6LinkLocal), netip.MustParseAddr(vip6)}}).Marshal(nil, src, MulticastGroup6)
	if err != nil {
		t.Fatal(err)
	}
	badSum := append([]byte{}, good...)
	badSum[2]-- // priority 199, checksum of 200
	v2 := append([]byte{0x21}, good[1:]...)
	for _, c := range []struct {
		hops   int
		msg    []byte
		reason string
	}{{254, good, "bad_ttl"}, {255, badSum, "bad_checksum"}, {255, v2, "bad_version"}} {
		before := counter(t, b.status(t), "instance VI_1", c.reason)
		inj.send(t, src, c.hops, c.msg)
		waitFor(t, 2*time.Second, 50*time.Millisecond, func() error {
			st := b.status(t)
			if counter(t, st, "instance VI_1", c.reason) <= before {
				return fmt.Errorf("%s not counted:\n%s", c.reason, st)
			}
			return nil
		})
	}
	if got := field(b.status(t), "instance VI_1", "state"); got != "MASTER" {
		t.Fatalf("a dropped advert of priority 200 moved the master to %s", got)
	}
}

// injector6 sends hand-made VRRP datagrams over IPv6 from a lab node.
type injector6 struct {
	conn *ipv6.PacketConn
	ifi  *net.Interface
}

func newInjector6(t *testing.T, n *labNode) *injector6 {
	t.Helper()
	j := &injector6{}
	if err := inNS(n.ns, func() error {
		pc, err := net.ListenPacket("ip6:112", "::")
		if err != nil {
			return err
		}
		j.conn = ipv6.NewPacketConn(pc)
		j.ifi, err = net.InterfaceByName(n.iface)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.conn.Close() })
	return j
}

func (j *injector6) send(t *testing.T, src netip.Addr, hops int, msg []byte) {
	t.Helper()
	cm := &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: j.ifi.Index, HopLimit: hops}
	// A numeric zone: a name would be looked up in the test's namespace.
	to := &net.IPAddr{IP: MulticastGroup6.AsSlice(), Zone: strconv.Itoa(j.ifi.Index)}
	if _, err := j.conn.WriteTo(msg, cm, to); err != nil {
		t.Fatalf("inject: %v", err)
	}
}

// TestIPv6Unicast runs an IPv6 instance with unicast_src_ip and
// unicast_peer: adverts go to the peer's global address instead of
// ff02::12. The higher priority wins, the backup hears every advert from
// its listed peer (no unknown_peer), and a graceful stop hands over.
func TestIPv6Unicast(t *testing.T) {
	l := newLab(t, 2)
	l.addIPv6(t)
	conf := func(prio int, self, peer string) string {
		return vrrpConf{Version: 3, Priority: prio, AdvertInt: "0.2", VIP: vip6LinkLocal, MoreVIPs: []string{vip6 + "/64"},
			Extra: fmt.Sprintf("  unicast_src_ip %s\n  unicast_peer {\n    %s\n  }\n", self, peer)}.String()
	}
	a := l.nodes[0].startWarren(t, conf(150, "fd00:77::1", "fd00:77::2"))
	b := l.nodes[1].startWarren(t, conf(100, "fd00:77::2", "fd00:77::1"))
	l.waitHolder(vip6, 0, 3*time.Second)
	waitFor(t, 2*time.Second, 50*time.Millisecond, func() error {
		st := b.status(t)
		if field(st, "instance VI_1", "master") != "fd00:77::1" || counter(t, st, "instance VI_1", "adverts_received") < 3 ||
			counter(t, st, "instance VI_1", "unknown_peer") != 0 || counter(t, st, "instance VI_1", "bad_packets") != 0 {
			return fmt.Errorf("backup status:\n%s", st)
		}
		return nil
	})
	a.stop(t)
	l.waitHolder(vip6, 1, 2*time.Second)
}

// TestIPv6ReloadKeepsMaster reloads the master of an IPv6 instance whose
// first virtual address is link-local (fe80::100, listed by the kernel
// before the interface's own link-local address once added) with an
// unrelated change. The source stays the interface's own link-local
// address, so the instance is kept: no transition on either node, and no
// priority 0 that would hand the addresses to the backup.
func TestIPv6ReloadKeepsMaster(t *testing.T) {
	l := newLab(t, 2)
	l.addIPv6(t)
	a := l.nodes[0].startWarren(t, v6Conf(150, "0.5"))
	b := l.nodes[1].startWarren(t, v6Conf(100, "0.5"))
	l.waitHolder(vip6LinkLocal, 0, 5*time.Second)
	ll0 := l.nodes[0].linkLocal(t, false)
	waitFor(t, 3*time.Second, 50*time.Millisecond, func() error {
		if st := b.status(t); field(st, "instance VI_1", "master") != ll0 {
			return fmt.Errorf("backup does not follow %s:\n%s", ll0, st)
		}
		return nil
	})
	before := map[*speaker]int{}
	for _, s := range []*speaker{a, b} {
		before[s] = counter(t, s.status(t), "instance VI_1", "transitions")
	}

	a.rewrite(t, v6Conf(160, "0.5"))
	a.sighup(t, "configuration reloaded")
	time.Sleep(2 * time.Second) // four advert intervals: time for a backup to take over
	st := a.status(t)
	if field(st, "instance VI_1", "state") != "MASTER" || field(st, "instance VI_1", "source") != ll0 ||
		counter(t, st, "instance VI_1", "transitions") != before[a] {
		t.Fatalf("master after the reload (source was %s, transitions %d):\n%s", ll0, before[a], st)
	}
	if st := b.status(t); counter(t, st, "instance VI_1", "transitions") != before[b] {
		t.Fatalf("backup changed state during the master's reload (transitions were %d):\n%s", before[b], st)
	}
	if got := l.holders(vip6LinkLocal); !slices.Equal(got, []int{0}) {
		t.Fatalf("%s held by nodes %v after the reload", vip6LinkLocal, got)
	}
}

// TestIPv6ReloadWhileLinkDown reloads an IPv6 instance in FAULT because its
// interface is down, which takes the link-local address with it. The
// instance keeps its source address, so the reload is not refused for
// want of one, and when the link comes back the instance is master again
// with the new priority, from the same address.
func TestIPv6ReloadWhileLinkDown(t *testing.T) {
	l := newLab(t, 1)
	l.addIPv6(t)
	n := l.nodes[0]
	a := n.startWarren(t, v6Conf(150, "0.5"))
	l.waitHolder(vip6LinkLocal, 0, 5*time.Second)
	ll0 := n.linkLocal(t, false)

	run(t, "ip", "-n", n.ns, "link", "set", n.iface, "down")
	waitFor(t, 3*time.Second, 50*time.Millisecond, func() error {
		if st := a.status(t); field(st, "instance VI_1", "state") != "FAULT" {
			return fmt.Errorf("not in FAULT with the link down:\n%s", st)
		}
		return nil
	})
	a.rewrite(t, v6Conf(160, "0.5"))
	a.sighup(t, "configuration reloaded")

	run(t, "ip", "-n", n.ns, "link", "set", n.iface, "up")
	waitFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		st := a.status(t)
		if field(st, "instance VI_1", "state") != "MASTER" || field(st, "instance VI_1", "source") != ll0 ||
			field(st, "instance VI_1", "priority") != "160" {
			return fmt.Errorf("after the link came back (source was %s):\n%s", ll0, st)
		}
		return nil
	})
}
