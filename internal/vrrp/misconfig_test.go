package vrrp

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestUnicastMisconfigDetected reproduces the classic keepalived split
// brain: node 1 lists a wrong unicast_peer, so node 2 never hears it and
// both end up master. warren-vrrp must count and report it on both sides:
// node 1 gets adverts from an address not in its unicast_peer and sees
// another master; node 2, master, never hears its listed peer.
func TestUnicastMisconfigDetected(t *testing.T) {
	l := newLab(t, 2)
	conf := func(prio int, src, peer string) string {
		return vrrpConf{Version: 3, AdvertInt: "0.2", Priority: prio,
			Extra: fmt.Sprintf("  unicast_src_ip %s\n  unicast_peer {\n    %s\n  }\n", src, peer)}.String()
	}
	a := l.nodes[0].startWarren(t, conf(150, "10.77.0.1", "10.77.0.9")) // wrong peer
	b := l.nodes[1].startWarren(t, conf(100, "10.77.0.2", "10.77.0.1"))
	waitFor(t, 5*time.Second, 100*time.Millisecond, func() error {
		sa, sb := a.status(t), b.status(t)
		if counter(t, sa, "instance VI_1", "unknown_peer") == 0 || counter(t, sa, "instance VI_1", "other_master") == 0 {
			return fmt.Errorf("node 1 did not flag the peer:\n%s", sa)
		}
		if counter(t, sb, "instance VI_1", "peers_unheard") == 0 {
			return fmt.Errorf("node 2 did not flag its silent peer:\n%s", sb)
		}
		return nil
	})
	// Both hold the VIP: the split brain the counters warn about.
	if h := l.holders(vip); len(h) != 2 {
		t.Fatalf("expected the split brain (both masters), holders %v", h)
	}

	// With vrrp_check_unicast_src the unlisted sender's adverts are dropped:
	// still counted, but never seen as another master.
	l3 := newLab(t, 2)
	strict := l3.nodes[0].startWarren(t, strings.Replace(conf(150, "10.77.0.1", "10.77.0.9"),
		"global_defs {\n", "global_defs {\n  vrrp_check_unicast_src\n", 1))
	l3.nodes[1].startWarren(t, conf(100, "10.77.0.2", "10.77.0.1"))
	waitFor(t, 5*time.Second, 100*time.Millisecond, func() error {
		st := strict.status(t)
		if counter(t, st, "instance VI_1", "unknown_peer") < 3 {
			return fmt.Errorf("unlisted adverts not counted:\n%s", st)
		}
		if counter(t, st, "instance VI_1", "other_master") != 0 {
			return fmt.Errorf("dropped adverts reached the state machine:\n%s", st)
		}
		return nil
	})

	// Fixed configuration: one master, no warnings.
	l2 := newLab(t, 2)
	c := l2.nodes[0].startWarren(t, conf(150, "10.77.0.1", "10.77.0.2"))
	l2.nodes[1].startWarren(t, conf(100, "10.77.0.2", "10.77.0.1"))
	l2.waitHolder(vip, 0, 3*time.Second)
	time.Sleep(time.Second)
	st := c.status(t)
	if counter(t, st, "instance VI_1", "unknown_peer") != 0 || counter(t, st, "instance VI_1", "other_master") != 0 {
		t.Fatalf("false alarm:\n%s", st)
	}
}
