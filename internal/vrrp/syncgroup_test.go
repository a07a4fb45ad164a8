package vrrp

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSyncGroupFaultTogether runs two instances in one vrrp_sync_group: a
// failing script tracked by one puts both in FAULT, and the group's notify
// script hears GROUP transitions.
func TestSyncGroupFaultTogether(t *testing.T) {
	l := newLab(t, 1)
	flag := filepath.Join(t.TempDir(), "ok")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(t.TempDir(), "notes")
	conf := fmt.Sprintf(`global_defs {
  vrrp_version 3
}
vrrp_script chk {
  script "/usr/bin/test -f %s"
  interval 0.1
}
vrrp_sync_group G {
  group {
    A
    B
  }
  notify "/bin/sh -c 'echo $0 $1 $2 >> %s'"
}
vrrp_instance A {
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int 0.1
  track_script {
    chk
  }
  virtual_ipaddress {
    10.77.0.100/24
  }
}
vrrp_instance B {
  interface eth0
  virtual_router_id 52
  priority 100
  advert_int 0.1
  virtual_ipaddress {
    10.77.0.101/24
  }
}
`, flag, notes)
	s := l.nodes[0].startWarren(t, conf)
	waitFor(t, 3*time.Second, 50*time.Millisecond, func() error {
		st := s.status(t)
		if field(st, "instance A", "state") != "MASTER" || field(st, "instance B", "state") != "MASTER" {
			return fmt.Errorf("not both master:\n%s", st)
		}
		return nil
	})
	os.Remove(flag)
	waitFor(t, 3*time.Second, 50*time.Millisecond, func() error {
		st := s.status(t)
		if field(st, "instance A", "state") != "FAULT" || field(st, "instance B", "state") != "FAULT" {
			return fmt.Errorf("not both in FAULT:\n%s", st)
		}
		return nil
	})
	if l.nodes[0].hasAddr("10.77.0.100") || l.nodes[0].hasAddr("10.77.0.101") {
		t.Fatal("VIPs left in FAULT")
	}
	waitFor(t, 2*time.Second, 50*time.Millisecond, func() error {
		b, _ := os.ReadFile(notes)
		if !strings.Contains(string(b), "GROUP G MASTER\nGROUP G FAULT\n") {
			return fmt.Errorf("group notify calls:\n%s", b)
		}
		return nil
	})
}

// syncConf renders a speaker's keepalived.conf with two instances in one
// vrrp_sync_group G: A (VRID 51, 10.77.0.100) and B (VRID 52, 10.77.0.101),
// v3 at advert_int 0.2. With flag set, A tracks "test -f flag" without
// weight; with notes set, the group's notify script appends its arguments
// there. The same text runs under warren-vrrp and keepalived.
func syncConf(prioA, prioB int, flag, notes string) string {
	var sb strings.Builder
	sb.WriteString("global_defs {\n  router_id lab\n  vrrp_version 3\n  vrrp_garp_master_delay 1\n}\n")
	track := ""
	if flag != "" {
		fmt.Fprintf(&sb, "vrrp_script chk {\n  script \"/usr/bin/test -f %s\"\n  interval 1\n  fall 1\n  rise 1\n}\n", flag)
		track = "  track_script {\n    chk\n  }\n"
	}
	sb.WriteString("vrrp_sync_group G {\n  group {\n    A\n    B\n  }\n")
	if notes != "" {
		fmt.Fprintf(&sb, "  notify \"/bin/sh -c 'echo $0 $1 $2 $3 >> %s'\"\n", notes)
	}
	sb.WriteString("}\n")
	for _, in := range []struct {
		name       string
		vrid, prio int
		vip, extra string
	}{{"A", 51, prioA, "10.77.0.100", track}, {"B", 52, prioB, "10.77.0.101", ""}} {
		fmt.Fprintf(&sb, "vrrp_instance %s {\n  state BACKUP\n  interface eth0\n  virtual_router_id %d\n  priority %d\n  advert_int 0.2\n%s",
			in.name, in.vrid, in.prio, in.extra)
		fmt.Fprintf(&sb, "  virtual_ipaddress {\n    %s/24 dev eth0\n  }\n}\n", in.vip)
	}
	return sb.String()
}

// waitBoth waits until node idx alone holds both of the group's addresses.
func (l *lab) waitBoth(idx int, total time.Duration) {
	l.t.Helper()
	waitFor(l.t, total, 20*time.Millisecond, func() error {
		for _, a := range []string{"10.77.0.100", "10.77.0.101"} {
			if h := l.holders(a); len(h) != 1 || h[0] != idx {
				return fmt.Errorf("%s held by nodes %v, want only %d", a, h, idx)
			}
		}
		return nil
	})
}

// TestSyncGroupMovesTogether runs two speakers with the same sync group of
// two instances. Failing A's tracked script on the master moves both
// addresses to the backup, recovery moves both back; the group's notify
// script hears "GROUP G <state> 0" on each side. Then, on the backup, A gets
// a priority above the master's while B stays below: without the group A
// would preempt alone; with it neither moves, as in keepalived.
func TestSyncGroupMovesTogether(t *testing.T) {
	l := newLab(t, 2)
	flag := filepath.Join(t.TempDir(), "ok")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	notes0, notes1 := filepath.Join(t.TempDir(), "notes0"), filepath.Join(t.TempDir(), "notes1")
	m := l.nodes[0].startWarren(t, syncConf(150, 150, flag, notes0))
	l.waitBoth(0, 5*time.Second)
	b := l.nodes[1].startWarren(t, syncConf(100, 100, "", notes1))
	time.Sleep(time.Second)
	l.waitBoth(0, time.Second)

	os.Remove(flag)
	l.waitBoth(1, 5*time.Second)
	st := m.status(t)
	if field(st, "instance A", "state") != "FAULT" || field(st, "instance B", "state") != "FAULT" {
		t.Fatalf("old master not in FAULT:\n%s", st)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l.waitBoth(0, 5*time.Second)
	waitFor(t, 3*time.Second, 50*time.Millisecond, func() error {
		st := b.status(t)
		if field(st, "instance A", "state") != "BACKUP" || field(st, "instance B", "state") != "BACKUP" {
			return fmt.Errorf("backup's instances not both BACKUP:\n%s", st)
		}
		return nil
	})
	for _, c := range []struct{ file, want string }{
		{notes0, "GROUP G BACKUP 0\nGROUP G MASTER 0\nGROUP G FAULT 0\nGROUP G BACKUP 0\nGROUP G MASTER 0\n"},
		{notes1, "GROUP G BACKUP 0\nGROUP G MASTER 0\nGROUP G BACKUP 0\n"},
	} {
		waitFor(t, 2*time.Second, 50*time.Millisecond, func() error {
			got, _ := os.ReadFile(c.file)
			if string(got) != c.want {
				return fmt.Errorf("group notify calls:\n%swant:\n%s", got, c.want)
			}
			return nil
		})
	}

	// A split election: the backup's A outranks the master's, its B does
	// not. The group stays whole on the master.
	b.stop(t)
	b = l.nodes[1].startWarren(t, syncConf(200, 100, "", ""))
	// Several master down intervals (0.6 s + skew): the addresses never
	// leave the master, and the backup's instances never leave BACKUP.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		for _, a := range []string{"10.77.0.100", "10.77.0.101"} {
			if h := l.holders(a); len(h) != 1 || h[0] != 0 {
				t.Fatalf("%s held by nodes %v, want only 0", a, h)
			}
		}
	}
	st = b.status(t)
	for _, in := range []string{"instance A", "instance B"} {
		if field(st, in, "state") != "BACKUP" || counter(t, st, in, "transitions") != 1 {
			t.Fatalf("%s of the backup left BACKUP:\n%s", in, st)
		}
	}
}
