package lb

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/seeds"
	"github.com/warren-mq/warren/internal/seeds/seedstest"
)

// TestSeedConfigsRun starts warren-lb on every runbook haproxy.cfg (as the
// seeds package quotes it, servers on loopback), changing only addresses:
// listeners move to free loopback ports and stats sockets into a temporary
// directory. The copy that keeps the runbook's no-break spaces is left out:
// HAProxy and warren-lb both reject it, which the oracle test checks.
func TestSeedConfigsRun(t *testing.T) {
	seedstest.Need(t)
	names := seeds.NamesWithSuffix(".cfg")
	if len(names) < 7 {
		t.Fatalf("runbook haproxy.cfg files: %v", names)
	}
	bindRe := regexp.MustCompile(`(?m)^(\s*bind\s+)\S+`)
	listenRe := regexp.MustCompile(`(?m)^(listen\s+\S+\s+)\d+\.\d+\.\d+\.\d+:\d+`)
	sockRe := regexp.MustCompile(`(?m)^(\s*stats socket\s+)\S+`)
	for _, name := range names {
		if strings.Contains(name, "raw") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			data, err := seeds.Config(name)
			if err != nil {
				t.Fatal(err)
			}
			var ports []int
			newPort := func(prefix string) string {
				p := freePort(t)
				ports = append(ports, p)
				return fmt.Sprintf("%s127.0.0.1:%d", prefix, p)
			}
			cfg := bindRe.ReplaceAllStringFunc(data, func(m string) string {
				return newPort(bindRe.FindStringSubmatch(m)[1])
			})
			cfg = listenRe.ReplaceAllStringFunc(cfg, func(m string) string {
				return newPort(listenRe.FindStringSubmatch(m)[1])
			})
			sock := filepath.Join(t.TempDir(), "stats.sock")
			cfg = sockRe.ReplaceAllString(cfg, "${1}"+sock)
			startLB(t, cfg)
			for _, p := range ports {
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
				if err != nil {
					t.Fatalf("port %d: %v", p, err)
				}
				c.Close()
			}
			if strings.Contains(cfg, "stats socket") {
				if out := runtimeCmd(t, sock, "show info"); !strings.Contains(out, "Name: warren-lb") {
					t.Fatalf("stats socket: %q", out)
				}
			}
		})
	}
}
