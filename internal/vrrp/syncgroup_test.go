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
