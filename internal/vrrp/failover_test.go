package vrrp

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const vip = "10.77.0.100"

// skewFor is the skew time at priority p and advert interval 1 s.
func skewFor(p int) time.Duration { return time.Duration(256-p) * time.Second / 256 }

func TestElectionThreeSpeakers(t *testing.T) {
	l := newLab(t, 3)
	prios := []int{100, 150, 120}
	var sp []*speaker
	for i, p := range prios {
		sp = append(sp, l.nodes[i].startWarren(t, vrrpConf{Version: 3, AdvertInt: "0.2", Priority: p}.String()))
	}
	l.waitHolder(vip, 1, 5*time.Second)
	// Stay settled: the VIP must remain on the highest priority only.
	for range 10 {
		if h := l.holders(vip); len(h) != 1 || h[0] != 1 {
			t.Fatalf("VIP held by %v", h)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, s := range sp {
		st := s.status(t)
		want := "BACKUP"
		if i == 1 {
			want = "MASTER"
		}
		if got := field(st, "instance VI_1", "state"); got != want {
			t.Fatalf("node %d state %s, want %s\n%s", i, got, want, st)
		}
		if got := field(st, "instance VI_1", "master"); got != "10.77.0.2" {
			t.Fatalf("node %d sees master %s\n%s", i, got, st)
		}
		if i != 1 && counter(t, st, "instance VI_1", "adverts_received") == 0 {
			t.Fatalf("node %d heard nothing\n%s", i, st)
		}
	}
	// The highest goes away gracefully: the next highest (120) takes over.
	sp[1].stop(t)
	l.waitHolder(vip, 2, 2*time.Second)
}

// TestKillMasterMovesVIP kills the master with SIGKILL and checks that the
// backup holds the VIP within the master down interval (3 × advert_int +
// skew; the bound adds 1 s for polling on a loaded machine) and that a
// client reaches the new master through the VIP. The old master returns,
// removes its stale VIP at start and preempts.
func TestKillMasterMovesVIP(t *testing.T) {
	l := newLab(t, 3) // node 2 is the client
	for _, n := range l.nodes[:2] {
		n.serveName(t, 8080)
	}
	a := l.nodes[0].startWarren(t, vrrpConf{Priority: 150, AuthPass: "s3cret"}.String())
	l.nodes[1].startWarren(t, vrrpConf{Priority: 100, AuthPass: "s3cret"}.String())
	l.waitHolder(vip, 0, 6*time.Second)
	waitFor(t, 3*time.Second, 50*time.Millisecond, func() error {
		got, err := l.nodes[2].askName(vip, 8080)
		if err != nil || got != l.nodes[0].ns {
			return fmt.Errorf("client got %q, %v", got, err)
		}
		return nil
	})

	killed := time.Now()
	a.sigkill()
	waitFor(t, 6*time.Second, 10*time.Millisecond, func() error {
		if !l.nodes[1].hasAddr(vip) {
			return fmt.Errorf("backup does not hold the VIP")
		}
		return nil
	})
	took := time.Since(killed)
	a.kill()
	bound := 3*time.Second + skewFor(100)
	t.Logf("failover after SIGKILL: %s (bound %s)", took.Round(time.Millisecond), bound)
	if took > bound+time.Second {
		t.Fatalf("failover took %s, more than 3 × advert_int + skew = %s", took, bound)
	}
	waitFor(t, 3*time.Second, 50*time.Millisecond, func() error {
		got, err := l.nodes[2].askName(vip, 8080)
		if err != nil || got != l.nodes[1].ns {
			return fmt.Errorf("client got %q, %v", got, err)
		}
		return nil
	})
	if !l.nodes[0].hasAddr(vip) {
		t.Fatal("a SIGKILLed daemon cannot have removed its VIP; the test lab is wrong")
	}
	// The old master returns: stale VIP removed, then it preempts.
	l.nodes[0].startWarren(t, vrrpConf{Priority: 150, AuthPass: "s3cret"}.String())
	l.waitHolder(vip, 0, 6*time.Second)
}

func TestNoPreempt(t *testing.T) {
	l := newLab(t, 2)
	conf := func(p int) string {
		return vrrpConf{Version: 3, AdvertInt: "0.2", Priority: p, NoPreempt: true}.String()
	}
	low := l.nodes[0].startWarren(t, conf(100))
	l.waitHolder(vip, 0, 3*time.Second)
	high := l.nodes[1].startWarren(t, conf(200))
	// The higher priority joins and must not take over.
	waitFor(t, 3*time.Second, 50*time.Millisecond, func() error {
		if got := field(high.status(t), "instance VI_1", "state"); got != "BACKUP" {
			return fmt.Errorf("high is %s", got)
		}
		return nil
	})
	time.Sleep(time.Second) // > master down interval: nothing may change
	l.waitHolder(vip, 0, time.Second)
	low.kill() // leaves its VIP behind, as any SIGKILLed daemon does
	waitFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		if !l.nodes[1].hasAddr(vip) {
			return fmt.Errorf("nopreempt backup did not take over from a dead master")
		}
		return nil
	})

	// With preempt (the default), a returning higher priority takes over.
	l2 := newLab(t, 2)
	l2.nodes[0].startWarren(t, vrrpConf{Version: 3, AdvertInt: "0.2", Priority: 100}.String())
	l2.waitHolder(vip, 0, 3*time.Second)
	l2.nodes[1].startWarren(t, vrrpConf{Version: 3, AdvertInt: "0.2", Priority: 200}.String())
	l2.waitHolder(vip, 1, 3*time.Second)
}

func TestTrackScriptMovesVIP(t *testing.T) {
	l := newLab(t, 2)
	flag := filepath.Join(t.TempDir(), "healthy")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	noteFile := filepath.Join(t.TempDir(), "notes")
	top := fmt.Sprintf("vrrp_script chk {\n  script \"/usr/bin/test -f %s\"\n  interval 0.1\n  weight -60\n  fall 2\n  rise 1\n}\n", flag)
	extra := fmt.Sprintf("  track_script {\n    chk\n  }\n  notify \"/bin/sh -c 'echo $0 $1 $2 $3 >> %s'\"\n", noteFile)
	a := l.nodes[0].startWarren(t, vrrpConf{Version: 3, AdvertInt: "0.2", Priority: 150, Top: top, Extra: extra}.String())
	l.nodes[1].startWarren(t, vrrpConf{Version: 3, AdvertInt: "0.2", Priority: 120}.String())
	l.waitHolder(vip, 0, 3*time.Second)

	os.Remove(flag) // 150 - 60 = 90 < 120
	l.waitHolder(vip, 1, 3*time.Second)
	if got := field(a.status(t), "instance VI_1", "effective_priority"); got != "90" {
		t.Fatalf("effective priority %s, want 90", got)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l.waitHolder(vip, 0, 3*time.Second)
	waitFor(t, 2*time.Second, 50*time.Millisecond, func() error {
		b, _ := os.ReadFile(noteFile)
		want := "INSTANCE VI_1 MASTER 150\nINSTANCE VI_1 BACKUP 90\nINSTANCE VI_1 MASTER 150\n"
		if !strings.HasSuffix(string(b), want) {
			return fmt.Errorf("notify calls:\n%s", b)
		}
		return nil
	})

	// A failing script without weight puts the instance in FAULT.
	l2 := newLab(t, 2)
	top0 := strings.Replace(top, "weight -60", "weight 0", 1)
	b := l2.nodes[0].startWarren(t, vrrpConf{Version: 3, AdvertInt: "0.2", Priority: 150, Top: top0,
		Extra: "  track_script {\n    chk\n  }\n"}.String())
	l2.nodes[1].startWarren(t, vrrpConf{Version: 3, AdvertInt: "0.2", Priority: 120}.String())
	l2.waitHolder(vip, 0, 3*time.Second)
	os.Remove(flag)
	l2.waitHolder(vip, 1, 3*time.Second)
	if got := field(b.status(t), "instance VI_1", "state"); got != "FAULT" {
		t.Fatalf("state %s, want FAULT", got)
	}
}

func TestGracefulStopHandsOver(t *testing.T) {
	l := newLab(t, 2)
	a := l.nodes[0].startWarren(t, vrrpConf{Priority: 150}.String())
	l.nodes[1].startWarren(t, vrrpConf{Priority: 100}.String())
	l.waitHolder(vip, 0, 6*time.Second)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	a.sigterm()
	l.waitHolder(vip, 1, 3*time.Second)
	took := time.Since(start)
	a.stop(t)
	t.Logf("graceful handover: %s (skew %s)", took.Round(time.Millisecond), skewFor(100))
	if took > skewFor(100)+time.Second {
		t.Fatalf("graceful stop took %s: priority 0 was not honoured", took)
	}
	if l.nodes[0].hasAddr(vip) {
		t.Fatal("stopped master left its VIP")
	}
}

// TestInterfaceDownFault takes the master's interface down: the instance
// enters FAULT and drops the VIP, the backup takes over; with the link back
// the old master returns through BACKUP and preempts.
func TestInterfaceDownFault(t *testing.T) {
	l := newLab(t, 2)
	a := l.nodes[0].startWarren(t, vrrpConf{Version: 3, AdvertInt: "0.2", Priority: 150}.String())
	l.nodes[1].startWarren(t, vrrpConf{Version: 3, AdvertInt: "0.2", Priority: 100}.String())
	l.waitHolder(vip, 0, 3*time.Second)
	run(t, "ip", "-n", l.nodes[0].ns, "link", "set", "eth0", "down")
	waitFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		if got := field(a.status(t), "instance VI_1", "state"); got != "FAULT" {
			return fmt.Errorf("state %s, want FAULT", got)
		}
		if l.nodes[0].hasAddr(vip) || !l.nodes[1].hasAddr(vip) {
			return fmt.Errorf("VIP on node 0: %t, node 1: %t", l.nodes[0].hasAddr(vip), l.nodes[1].hasAddr(vip))
		}
		return nil
	})
	run(t, "ip", "-n", l.nodes[0].ns, "link", "set", "eth0", "up")
	l.waitHolder(vip, 0, 5*time.Second)
}

// TestIPv6VIPMovesWithInstance gives an IPv4 instance an IPv6 address in
// virtual_ipaddress_excluded, keepalived's place for the other family: it
// moves with the master (added without duplicate detection, announced with
// unsolicited neighbour adverts) though only IPv4 goes in adverts.
func TestIPv6VIPMovesWithInstance(t *testing.T) {
	l := newLab(t, 2)
	has6 := func(n *labNode) bool {
		out, err := exec.Command("ip", "-n", n.ns, "-6", "-o", "addr", "show", "dev", "eth0").Output()
		return err == nil && strings.Contains(string(out), " fd00:77::100/64 ")
	}
	conf := func(p int) string {
		return vrrpConf{Version: 3, AdvertInt: "0.2", Priority: p, Excluded: []string{"fd00:77::100/64"}}.String()
	}
	a := l.nodes[0].startWarren(t, conf(150))
	l.nodes[1].startWarren(t, conf(100))
	l.waitHolder(vip, 0, 3*time.Second)
	waitFor(t, 2*time.Second, 20*time.Millisecond, func() error {
		if !has6(l.nodes[0]) || has6(l.nodes[1]) {
			return fmt.Errorf("IPv6 VIP on node 0: %t, node 1: %t", has6(l.nodes[0]), has6(l.nodes[1]))
		}
		return nil
	})
	if strings.Contains(a.log.String(), "failed") {
		t.Fatalf("announcing failed:\n%s", a.log.String())
	}
	a.stop(t)
	waitFor(t, 2*time.Second, 20*time.Millisecond, func() error {
		if has6(l.nodes[0]) || !has6(l.nodes[1]) {
			return fmt.Errorf("IPv6 VIP on node 0: %t, node 1: %t", has6(l.nodes[0]), has6(l.nodes[1]))
		}
		return nil
	})
}
