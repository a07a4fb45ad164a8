package vrrp

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/seeds"
	"github.com/warren-mq/warren/internal/seeds/seedstest"
)

// readSeed returns a runbook's keepalived.conf as the runbook quotes it.
func readSeed(t *testing.T, name string) string {
	t.Helper()
	text, err := seeds.Config(name)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// TestSeedConfigsRun runs the runbooks' keepalived.conf files exactly as
// written, in namespaces whose interfaces and addresses are named as in the
// runbooks.
func TestSeedConfigsRun(t *testing.T) {
	seedstest.Need(t)
	t.Run("003 unicast", func(t *testing.T) {
		l := newLab(t, 2)
		l.nodes[0].addAddr(t, "192.168.0.12/24")
		l.nodes[1].addAddr(t, "192.168.0.14/24")
		l.nodes[0].startWarren(t, readSeed(t, "003_node1.conf"))
		l.nodes[1].startWarren(t, readSeed(t, "003_node2.conf"))
		l.waitHolder("192.168.0.200", 0, 8*time.Second)
	})
	t.Run("004 multicast", func(t *testing.T) {
		l := newLab(t, 2)
		for i, n := range l.nodes {
			n.rename(t, "enp0s8")
			n.addAddr(t, fmt.Sprintf("192.168.0.%d/24", 12+2*i))
		}
		l.nodes[0].startWarren(t, readSeed(t, "004_node1.conf"))
		l.nodes[1].startWarren(t, readSeed(t, "004_node2.conf"))
		l.waitHolder("192.168.0.200", 0, 8*time.Second)
	})
	t.Run("000 two instances with mismatched auth_pass", func(t *testing.T) {
		l := newLab(t, 2)
		for i, n := range l.nodes {
			n.rename(t, "em1")
			n.addAddr(t, fmt.Sprintf("192.168.1.%d/24", 43+i))
		}
		a := l.nodes[0].startWarren(t, readSeed(t, "000_haproxy01.conf"))
		b := l.nodes[1].startWarren(t, readSeed(t, "000_haproxy02.conf"))
		// The runbook's two hosts carry different auth_pass values for both
		// instances, so neither hears the other: both become master of both
		// VIPs, exactly as with keepalived, and warren-vrrp counts every
		// advert it refuses as bad_auth_pass on both sides.
		waitFor(t, 8*time.Second, 100*time.Millisecond, func() error {
			for _, vip := range []string{"192.168.1.45", "192.168.1.46"} {
				if h := l.holders(vip); len(h) != 2 {
					return fmt.Errorf("%s holders %v", vip, h)
				}
			}
			for _, s := range []*speaker{a, b} {
				st := s.status(t)
				for _, in := range []string{"KEVIN_GATEWAY", "kevin_rabbitMQ_GATEWAY"} {
					if counter(t, st, "instance "+in, "bad_auth_pass") == 0 {
						return fmt.Errorf("%s %s: no bad_auth_pass counted\n%s", s.node.ns, in, st)
					}
				}
			}
			return nil
		})
	})
}

// TestConfigTestFlag checks -t on the seeds and on a broken file.
func TestConfigTestFlag(t *testing.T) {
	if seedstest.Found(t) {
		for _, f := range []string{"000_haproxy01.conf", "003_node1.conf", "004_node2.conf"} {
			out, err := exec.Command(warrenBinary, "-t", "-f", seedFile(t, f)).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "is valid") {
				t.Fatalf("-t %s: %v\n%s", f, err, out)
			}
		}
	}
	bad := writeConf(t, map[string]string{"keepalived.conf": goodInstance + "vrrp_instance X {\n interface eth0\n advert 1\n}\n"})
	out, err := exec.Command(warrenBinary, "-t", "-f", bad).CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("-t on a broken config exited %d\n%s", code, out)
	}
	for _, want := range []string{"keepalived.conf:13: unknown keyword \"advert\"", "keepalived.conf:11: vrrp_instance X: virtual_router_id is not set"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("-t output lacks %q:\n%s", want, out)
		}
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
