package vrrp

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// observed is one advert seen on the wire by an observer.
type observed struct {
	at       time.Time
	src      netip.Addr
	vrid     uint8
	priority uint8
}

// observer records every valid IPv4 VRRP advert reaching a lab node. Its
// goroutine runs until the test's cleanup closes the socket.
type observer struct {
	mu   sync.Mutex
	seen []observed // guarded by mu
}

func newObserver(t *testing.T, n *labNode) *observer {
	t.Helper()
	var conn *ipv4.RawConn
	if err := inNS(n.ns, func() error {
		pc, err := net.ListenPacket("ip4:112", "0.0.0.0")
		if err != nil {
			return err
		}
		if conn, err = ipv4.NewRawConn(pc); err != nil {
			pc.Close()
			return err
		}
		ifi, err := net.InterfaceByName(n.iface)
		if err != nil {
			return err
		}
		return conn.JoinGroup(ifi, &net.IPAddr{IP: MulticastGroup.AsSlice()})
	}); err != nil {
		t.Fatal(err)
	}
	o := &observer{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			h, payload, _, err := conn.ReadFrom(buf)
			if err != nil {
				return // closed by the cleanup
			}
			src, _ := netip.AddrFromSlice(h.Src.To4())
			dst, _ := netip.AddrFromSlice(h.Dst.To4())
			p, err := Decode(payload, src, dst)
			if err != nil {
				continue
			}
			o.mu.Lock()
			o.seen = append(o.seen, observed{at: time.Now(), src: src, vrid: p.VRID, priority: p.Priority})
			o.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); wg.Wait() })
	return o
}

// since returns the adverts of vrid from src seen after t.
func (o *observer) since(t time.Time, src string, vrid uint8) []observed {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []observed
	for _, a := range o.seen {
		if a.at.After(t) && a.src.String() == src && a.vrid == vrid {
			out = append(out, a)
		}
	}
	return out
}

// medianGap is the median time between successive adverts.
func medianGap(as []observed) time.Duration {
	var gaps []time.Duration
	for i := 1; i < len(as); i++ {
		gaps = append(gaps, as[i].at.Sub(as[i-1].at))
	}
	if len(gaps) == 0 {
		return 0
	}
	slices.Sort(gaps)
	return gaps[len(gaps)/2]
}

// rewrite replaces the speaker's configuration file (read again on SIGHUP).
func (s *speaker) rewrite(t testing.TB, conf string) {
	t.Helper()
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sighup sends SIGHUP to the daemon and waits until its log shows the
// outcome: want is "configuration reloaded" or "reload refused".
func (s *speaker) sighup(t testing.TB, want string) {
	t.Helper()
	before := strings.Count(s.log.String(), want)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	waitFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if strings.Count(s.log.String(), want) <= before {
			return fmt.Errorf("%s logged no %q after SIGHUP", s.kind, want)
		}
		return nil
	})
}

// mac returns the hardware address of the node's interface.
func (n *labNode) mac(t testing.TB) string {
	t.Helper()
	ifi := ""
	if err := inNS(n.ns, func() error {
		i, err := net.InterfaceByName(n.iface)
		if err == nil {
			ifi = i.HardwareAddr.String()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ifi
}

// reloadConf is the configuration of TestReloadAppliesChanges: instances
// rendered from their bodies after a common global_defs.
func reloadConf(top string, instances ...string) string {
	var sb strings.Builder
	sb.WriteString("global_defs {\n  router_id lab\n  vrrp_version 3\n  vrrp_garp_master_delay 0\n}\n")
	sb.WriteString(top)
	for _, in := range instances {
		sb.WriteString(in)
	}
	return sb.String()
}

func reloadInstance(name string, vrid, prio int, advertInt string, vips []string, extra string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "vrrp_instance %s {\n  state BACKUP\n  interface eth0\n  virtual_router_id %d\n  priority %d\n  advert_int %s\n",
		name, vrid, prio, advertInt)
	sb.WriteString("  virtual_ipaddress {\n")
	for _, v := range vips {
		fmt.Fprintf(&sb, "    %s\n", v)
	}
	fmt.Fprintf(&sb, "  }\n%s}\n", extra)
	return sb.String()
}

// TestReloadAppliesChanges runs two warren-vrrp speakers and reloads them
// with SIGHUP, checking what keepalived 2.2.7 does on reload (seen by
// running it the same way): the master of a kept instance stays master
// without a new election, drops the address taken out of the
// configuration, adds the new ones and announces them (gratuitous ARP and
// unsolicited NA, seen in a third node's neighbour cache), and advertises
// at once with its new priority and interval (seen on the wire); a removed
// instance sends priority 0, so its backup takes over at once; a new
// instance starts. Then a track_script added by a reload lowers the
// priority below the peer's, which takes over, and a reload removing it
// brings the addresses back.
func TestReloadAppliesChanges(t *testing.T) {
	l := newLab(t, 3) // node 2 observes and is the client
	l.addIPv6(t)
	obs := newObserver(t, l.nodes[2])
	const (
		kept    = "10.77.0.100"
		dropped = "10.77.0.101"
		leaving = "10.77.0.102"
		added   = "10.77.0.103"
		fresh   = "10.77.0.104"
		added6  = "fd00:77::103"
	)
	confA := func(prio int, advertInt string, vips []string, excluded []string, top, extra string, more ...string) string {
		ex := ""
		if len(excluded) > 0 {
			ex = "  virtual_ipaddress_excluded {\n    " + strings.Join(excluded, "\n    ") + "\n  }\n"
		}
		return reloadConf(top, append([]string{reloadInstance("VI_1", 51, prio, advertInt, vips, ex+extra)}, more...)...)
	}
	vi2 := func(prio int) string { return reloadInstance("VI_2", 52, prio, "0.5", []string{leaving + "/24"}, "") }
	vi3 := reloadInstance("VI_3", 53, 150, "0.5", []string{fresh + "/24"}, "")
	before := []string{kept + "/24", dropped + "/24"}
	after := []string{kept + "/24", added + "/24"}

	a := l.nodes[0].startWarren(t, confA(150, "0.5", before, nil, "", "", vi2(150)))
	b := l.nodes[1].startWarren(t, confA(100, "0.5", before, nil, "", "", vi2(100)))
	for _, addr := range []string{kept, dropped, leaving} {
		l.waitHolder(addr, 0, 5*time.Second)
	}
	time.Sleep(time.Second)
	st := a.status(t)
	transitions := counter(t, st, "instance VI_1", "transitions")
	if field(st, "instance VI_1", "advert_int") != "500ms" {
		t.Fatalf("status before the reload:\n%s", st)
	}
	// The client knows the new addresses at a wrong MAC: only an
	// announcement from the new holder can correct that.
	const bogus = "02:00:00:00:00:99"
	run(t, "ip", "-n", l.nodes[2].ns, "neigh", "replace", added, "lladdr", bogus, "dev", "eth0", "nud", "stale")
	run(t, "ip", "-n", l.nodes[2].ns, "-6", "neigh", "replace", added6, "lladdr", bogus, "dev", "eth0", "nud", "stale")

	// Watch the kept address through the reload: it must never leave node 0.
	stopWatch := make(chan struct{})
	watchErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stopWatch:
				watchErr <- nil
				return
			case <-time.After(5 * time.Millisecond):
			}
			if h := l.holders(kept); len(h) != 1 || h[0] != 0 {
				watchErr <- fmt.Errorf("%s held by %v during the reload", kept, h)
				return
			}
		}
	}()

	// Both sides get the new address list (a backup checks it); node 1
	// keeps VI_2, node 0 removes it and adds VI_3, a higher priority
	// and a shorter interval for VI_1.
	b.rewrite(t, confA(100, "0.5", after, []string{added6 + "/64"}, "", "", vi2(100)))
	a.rewrite(t, confA(140, "0.25", after, []string{added6 + "/64"}, "", "", vi3))
	b.sighup(t, "configuration reloaded")
	reloaded := time.Now()
	a.sighup(t, "configuration reloaded")

	l.waitHolder(leaving, 1, 2*time.Second) // priority 0: the skew time, not a master down interval
	if took := time.Since(reloaded); took > time.Second {
		t.Fatalf("%s moved %s after the reload; priority 0 would take about 0.2 s", took, leaving)
	}
	stop := obs.since(reloaded, "10.77.0.1", 52)
	if len(stop) == 0 || stop[len(stop)-1].priority != 0 {
		t.Fatalf("removed VI_2 did not send priority 0: %+v", stop)
	}
	l.waitHolder(added, 0, 2*time.Second)
	l.waitHolder(added6, 0, 2*time.Second)
	if l.nodes[0].hasAddr(dropped) || l.nodes[1].hasAddr(dropped) {
		t.Fatalf("%s still held after the reload removed it", dropped)
	}
	l.waitHolder(fresh, 0, 5*time.Second) // the new instance ran its election
	mac := l.nodes[0].mac(t)
	for _, addr := range []string{added, added6} {
		waitFor(t, 2*time.Second, 50*time.Millisecond, func() error {
			out := run(t, "ip", "-n", l.nodes[2].ns, "neigh", "show", addr)
			if !strings.Contains(out, mac) {
				return fmt.Errorf("client's entry for %s not announced (want %s): %s", addr, mac, out)
			}
			return nil
		})
	}
	time.Sleep(1500 * time.Millisecond)
	close(stopWatch)
	if err := <-watchErr; err != nil {
		t.Fatal(err)
	}
	st = a.status(t)
	if field(st, "instance VI_1", "state") != "MASTER" || counter(t, st, "instance VI_1", "transitions") != transitions ||
		field(st, "instance VI_1", "priority") != "140" || field(st, "instance VI_1", "advert_int") != "250ms" {
		t.Fatalf("VI_1 after the reload (had %d transitions):\n%s", transitions, st)
	}
	if strings.Contains(st, "instance VI_2") || !strings.Contains(st, "instance VI_3") {
		t.Fatalf("instances after the reload:\n%s", st)
	}
	adverts := obs.since(reloaded, "10.77.0.1", 51)
	if len(adverts) < 4 || adverts[0].priority != 140 {
		t.Fatalf("VI_1 adverts after the reload: %+v", adverts)
	}
	if gap := medianGap(adverts); gap < 200*time.Millisecond || gap > 350*time.Millisecond {
		t.Fatalf("VI_1 adverts %s apart after the reload, want 0.25 s", gap)
	}
	if n := counter(t, b.status(t), "instance VI_1", "transitions"); n != 1 {
		t.Fatalf("backup VI_1 changed state (%d transitions)", n)
	}

	// A reload adds a failing track_script: 140 - 60 < 100, the peer takes
	// over. The reload removing it again gives the addresses back.
	flag := filepath.Join(t.TempDir(), "absent")
	script := fmt.Sprintf("vrrp_script chk {\n  script \"/usr/bin/test -f %s\"\n  interval 0.1\n  weight -60\n}\n", flag)
	a.rewrite(t, confA(140, "0.25", after, []string{added6 + "/64"}, script, "  track_script {\n    chk\n  }\n", vi3))
	a.sighup(t, "configuration reloaded")
	l.waitHolder(kept, 1, 3*time.Second)
	l.waitHolder(added, 1, time.Second)
	if got := field(a.status(t), "instance VI_1", "effective_priority"); got != "80" {
		t.Fatalf("effective priority %s, want 80", got)
	}
	a.rewrite(t, confA(140, "0.25", after, []string{added6 + "/64"}, "", "", vi3))
	a.sighup(t, "configuration reloaded")
	l.waitHolder(kept, 0, 3*time.Second)
	l.waitHolder(added6, 0, time.Second)
}

// TestReloadKeepsRunningOnBadConfig sends SIGHUP with a configuration whose
// included file has errors, then with one that parses but cannot run here
// (a missing interface). keepalived 2.2.7 exits on a reload with an error it
// cannot run with (its VRRP child stops, leaving its addresses behind);
// warren-vrrp logs every error with its file:line and keeps running the
// configuration it has, master and addresses untouched. Then a good
// configuration, changed only in the included file, applies.
func TestReloadKeepsRunningOnBadConfig(t *testing.T) {
	l := newLab(t, 2)
	good := vrrpConf{Version: 3, AdvertInt: "0.2", Priority: 150}.String()
	split := strings.Index(good, "vrrp_instance")
	included := l.nodes[0].writeConf(t, "vi.conf", good[split:])
	a := l.nodes[0].startWarren(t, good[:split]+"include vi.conf\n")
	l.nodes[1].startWarren(t, vrrpConf{Version: 3, AdvertInt: "0.2", Priority: 100}.String())
	l.waitHolder(vip, 0, 3*time.Second)
	transitions := counter(t, a.status(t), "instance VI_1", "transitions")

	bad := strings.Replace(good[split:], "  priority 150\n", "  priority 150\n  colour blue\n  advert_int x\n", 1)
	line := 1 + strings.Count(bad[:strings.Index(bad, "colour")], "\n")
	l.nodes[0].writeConf(t, "vi.conf", bad)
	a.sighup(t, "reload refused")
	for _, want := range []string{
		fmt.Sprintf("reload: config: unknown keyword \\\"colour\\\" in vrrp_instance\" at=%s:%d", included, line),
		fmt.Sprintf("at=%s:%d", included, line+1),
	} {
		if !strings.Contains(a.log.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, a.log.String())
		}
	}

	l.nodes[0].writeConf(t, "vi.conf", strings.Replace(good[split:], "interface eth0", "interface nosuch0", 1))
	a.sighup(t, "reload refused")
	if !strings.Contains(a.log.String(), "interface nosuch0") {
		t.Fatalf("the refused reload does not say why:\n%s", a.log.String())
	}
	time.Sleep(time.Second) // > the master down interval: nothing may move
	l.waitHolder(vip, 0, time.Second)
	st := a.status(t)
	if field(st, "instance VI_1", "state") != "MASTER" || counter(t, st, "instance VI_1", "transitions") != transitions {
		t.Fatalf("the refused reloads changed the instance:\n%s", st)
	}
	select {
	case <-a.done:
		t.Fatalf("warren-vrrp exited: %v", a.waitErr)
	default:
	}

	// A good configuration applies: priority 90 < 100 hands over.
	l.nodes[0].writeConf(t, "vi.conf", strings.Replace(good[split:], "priority 150", "priority 90", 1))
	a.sighup(t, "configuration reloaded")
	l.waitHolder(vip, 1, 3*time.Second)
}

// TestPlanRefusesDuplicateVRID hands New a configuration (not from a file,
// so the parser's check does not run) whose two new instances claim VRID
// 51 on the same interface and family, one VRRPv2 and one VRRPv3: the
// plan must refuse it rather than let one silently replace the other.
func TestPlanRefusesDuplicateVRID(t *testing.T) {
	l := newLab(t, 1)
	cfg, err := ParseConfigFile(writeConf(t, map[string]string{"keepalived.conf": reloadConf("",
		reloadInstance("VI_1", 51, 100, "1", []string{"10.77.0.100/24"}, "  version 2\n"),
		reloadInstance("VI_2", 52, 100, "1", []string{"10.77.0.101/24"}, ""))}))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Instances[1].VRID = 51
	err = inNS(l.nodes[0].ns, func() error {
		_, err := New(Options{Config: cfg})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "vrrp_instance VI_2: virtual_router_id 51 already used on") {
		t.Fatalf("New: %v", err)
	}
}

// TestReloadMovesAddressBetweenMasters moves an address from one kept
// master to another on the same node, back and forth. Kept instances take
// their settings in no fixed order; whichever order, the address must end
// up on the interface with its new owner, not removed by the old one after
// the new one added it.
func TestReloadMovesAddressBetweenMasters(t *testing.T) {
	l := newLab(t, 1)
	n := l.nodes[0]
	const moving = "10.77.0.110"
	conf := func(first bool) string {
		v1 := []string{"10.77.0.100/24"}
		v2 := []string{"10.77.0.101/24"}
		if first {
			v1 = append(v1, moving+"/24")
		} else {
			v2 = append(v2, moving+"/24")
		}
		return reloadConf("", reloadInstance("VI_1", 51, 150, "0.5", v1, ""), reloadInstance("VI_2", 52, 150, "0.5", v2, ""))
	}
	a := n.startWarren(t, conf(true))
	for _, addr := range []string{"10.77.0.100", "10.77.0.101", moving} {
		l.waitHolder(addr, 0, 5*time.Second)
	}
	// Each move goes wrong in one of the two orders; eight moves all
	// going right by chance is a 1 in 256 event.
	for i := range 8 {
		a.rewrite(t, conf(i%2 == 1))
		a.sighup(t, "configuration reloaded")
		time.Sleep(100 * time.Millisecond)
		if !n.hasAddr(moving) {
			t.Fatalf("move %d: %s is gone from the node:\n%s", i+1, moving, a.status(t))
		}
	}
	for _, name := range []string{"VI_1", "VI_2"} {
		if st := a.status(t); field(st, "instance "+name, "state") != "MASTER" {
			t.Fatalf("%s is no longer master:\n%s", name, st)
		}
	}
}
