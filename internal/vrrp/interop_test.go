package vrrp

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// keepalivedComplaints matches keepalived's log lines about adverts it
// rejected; an interoperating peer must cause none.
var keepalivedComplaints = regexp.MustCompile(`(?i)invalid|bogus|checksum|mismatch|wrong|not matching|ignoring`)

// TestInteropKeepalived runs warren-vrrp and Debian's keepalived 2.2 as the
// two speakers of one virtual router, in v2 (with PASS authentication) and
// v3, with either as master. The master stops gracefully (the backup takes
// over at once on priority 0), comes back and preempts, then is SIGKILLed
// (the backup takes over within the master down interval).
func TestInteropKeepalived(t *testing.T) {
	for _, version := range []int{2, 3} {
		for _, warrenMaster := range []bool{true, false} {
			name := fmt.Sprintf("v%d/warren_master=%t", version, warrenMaster)
			t.Run(name, func(t *testing.T) { interop(t, version, false, warrenMaster) })
		}
	}
}

// TestInteropKeepalivedIPv6 runs the same scenario as TestInteropKeepalived
// with an IPv6 instance: VRRPv3 over IPv6 to ff02::12 from the link-local
// addresses, a link-local virtual address first and a global one after it.
// keepalived must accept warren-vrrp's adverts (hop limit, pseudo-header
// checksum, address list) and the reverse, either one being master.
func TestInteropKeepalivedIPv6(t *testing.T) {
	for _, warrenMaster := range []bool{true, false} {
		t.Run(fmt.Sprintf("warren_master=%t", warrenMaster), func(t *testing.T) { interop(t, 3, true, warrenMaster) })
	}
}

func interop(t *testing.T, version int, v6, warrenMaster bool) {
	l := newLab(t, 2)
	conf := func(prio int) string {
		return vrrpConf{Version: version, Priority: prio, AuthPass: "interop"}.String()
	}
	vip, masterAddr := vip, "10.77.0.1"
	if v6 {
		l.addIPv6(t)
		conf = func(prio int) string { return v6Conf(prio, "1") }
		vip, masterAddr = vip6, l.nodes[0].linkLocal(t, false)
	}
	start := func(idx int) *speaker {
		prio := 100
		if idx == 0 {
			prio = 150
		}
		if (idx == 0) == warrenMaster {
			return l.nodes[idx].startWarren(t, conf(prio))
		}
		return l.nodes[idx].startKeepalived(t, conf(prio))
	}
	master, backup := start(0), start(1)
	warren := master
	if !warrenMaster {
		warren = backup
	}
	l.waitHolder(vip, 0, 8*time.Second)
	time.Sleep(1500 * time.Millisecond) // let a few adverts cross
	st := warren.status(t)
	if got := field(st, "instance VI_1", "master"); got != masterAddr {
		t.Fatalf("warren-vrrp sees master %q\n%s", got, st)
	}
	if !warrenMaster && counter(t, st, "instance VI_1", "adverts_received") == 0 {
		t.Fatalf("warren-vrrp heard no keepalived adverts\n%s", st)
	}
	if n := counter(t, st, "instance VI_1", "bad_packets"); n != 0 {
		t.Fatalf("warren-vrrp dropped %d of keepalived's adverts\n%s", n, st)
	}

	// Graceful stop: priority 0, the backup takes over after its skew time.
	t0 := time.Now()
	master.sigterm()
	l.waitHolder(vip, 1, 3*time.Second)
	took := time.Since(t0)
	master.stop(t) // keepalived takes about a second more to exit
	t.Logf("%s master graceful stop -> %s backup took over in %s", master.kind, backup.kind, took.Round(time.Millisecond))
	if bound := skewFor(100) + time.Second; took > bound {
		t.Fatalf("graceful handover took %s, more than skew + 1 s", took)
	}

	// The master comes back and preempts.
	master = start(0)
	if warrenMaster {
		warren = master
	}
	l.waitHolder(vip, 0, 8*time.Second)
	time.Sleep(1500 * time.Millisecond)

	// Hard kill: the backup takes over within 3 × advert_int + skew.
	t0 = time.Now()
	master.sigkill()
	waitFor(t, 8*time.Second, 10*time.Millisecond, func() error {
		if !l.nodes[1].hasAddr(vip) {
			return fmt.Errorf("%s backup did not take over", backup.kind)
		}
		return nil
	})
	took = time.Since(t0)
	master.kill()
	t.Logf("%s master SIGKILL -> %s backup took over in %s", master.kind, backup.kind, took.Round(time.Millisecond))
	if bound := 3*time.Second + skewFor(100); took > bound+time.Second {
		t.Fatalf("takeover took %s, bound %s", took, bound)
	}
	for _, s := range []*speaker{master, backup} {
		if s.kind == "keepalived" {
			if m := keepalivedComplaints.FindString(s.log.String()); m != "" {
				t.Fatalf("keepalived complained (%q):\n%s", m, s.log.String())
			}
		}
	}
	if !warrenMaster {
		waitFor(t, time.Second, 20*time.Millisecond, func() error {
			st := warren.status(t)
			if field(st, "instance VI_1", "state") != "MASTER" || counter(t, st, "instance VI_1", "bad_packets") != 0 {
				return fmt.Errorf("warren-vrrp after takeover:\n%s", st)
			}
			return nil
		})
	}
}

// TestInteropKeepalivedSyncGroup runs the sync group of syncConf with
// keepalived as the other speaker, either side being master: failing A's
// tracked script on the master moves both addresses to the backup, recovery
// moves both back. Then, on the warren-vrrp master's peer, keepalived's A
// outranks it and its B does not: keepalived keeps its group in BACKUP, as
// warren-vrrp does, and the addresses stay together.
func TestInteropKeepalivedSyncGroup(t *testing.T) {
	for _, warrenMaster := range []bool{true, false} {
		t.Run(fmt.Sprintf("warren_master=%t", warrenMaster), func(t *testing.T) {
			l := newLab(t, 2)
			flag := filepath.Join(t.TempDir(), "ok")
			if err := os.WriteFile(flag, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			var kas []*speaker
			start := func(idx int, conf string) *speaker {
				if (idx == 0) == warrenMaster {
					return l.nodes[idx].startWarren(t, conf)
				}
				s := l.nodes[idx].startKeepalived(t, conf)
				kas = append(kas, s)
				return s
			}
			defer func() {
				for _, s := range kas {
					if m := keepalivedComplaints.FindString(s.log.String()); m != "" {
						t.Errorf("keepalived complained (%q):\n%s", m, s.log.String())
					}
				}
			}()
			start(0, syncConf(150, 150, flag, ""))
			l.waitBoth(0, 8*time.Second)
			backup := start(1, syncConf(100, 100, "", ""))
			time.Sleep(time.Second)
			l.waitBoth(0, time.Second)

			os.Remove(flag)
			l.waitBoth(1, 5*time.Second)
			if err := os.WriteFile(flag, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			l.waitBoth(0, 5*time.Second)
			if !warrenMaster {
				return
			}
			backup.stop(t)
			start(1, syncConf(200, 100, "", ""))
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
				for _, a := range []string{"10.77.0.100", "10.77.0.101"} {
					if h := l.holders(a); len(h) != 1 || h[0] != 0 {
						t.Fatalf("%s held by nodes %v, want only 0", a, h)
					}
				}
			}
		})
	}
}

// TestInteropKeepalivedReload reloads both speakers of a group, warren-vrrp
// master and keepalived backup, with a changed address list: keepalived
// keeps following the master through the reloads (it accepts the new list
// and the advert warren-vrrp sends at once) and complains about nothing;
// warren-vrrp stays master without an election and holds the new address.
// A second reload lowers warren-vrrp's priority below keepalived's, which
// then takes over.
func TestInteropKeepalivedReload(t *testing.T) {
	l := newLab(t, 2)
	conf := func(prio int, more ...string) string {
		return vrrpConf{Version: 3, Priority: prio, MoreVIPs: more}.String()
	}
	const added = "10.77.0.103"
	w := l.nodes[0].startWarren(t, conf(150))
	k := l.nodes[1].startKeepalived(t, conf(100))
	l.waitHolder(vip, 0, 8*time.Second)
	time.Sleep(1500 * time.Millisecond)
	transitions := counter(t, w.status(t), "instance VI_1", "transitions")

	k.rewrite(t, conf(100, added+"/24"))
	w.rewrite(t, conf(150, added+"/24"))
	k.sighup(t, "Reload complete")
	w.sighup(t, "configuration reloaded")
	l.waitHolder(added, 0, 2*time.Second)
	// Longer than keepalived's master down interval: it must not take over.
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, a := range []string{vip, added} {
			if h := l.holders(a); len(h) != 1 || h[0] != 0 {
				t.Fatalf("%s held by %v after the reloads", a, h)
			}
		}
	}
	st := w.status(t)
	if field(st, "instance VI_1", "state") != "MASTER" || counter(t, st, "instance VI_1", "transitions") != transitions ||
		counter(t, st, "instance VI_1", "bad_packets") != 0 {
		t.Fatalf("warren-vrrp after the reloads (had %d transitions):\n%s", transitions, st)
	}
	if m := keepalivedComplaints.FindString(k.log.String()); m != "" {
		t.Fatalf("keepalived complained (%q):\n%s", m, k.log.String())
	}

	w.rewrite(t, conf(90, added+"/24"))
	w.sighup(t, "configuration reloaded")
	l.waitHolder(vip, 1, 5*time.Second)
	l.waitHolder(added, 1, time.Second)
}
