package lb

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSeedConfigsRun starts warren-lb on every seed haproxy.cfg of the
// test corpus, changing only addresses: listeners move to free loopback
// ports and stats sockets into a temporary directory.
func TestSeedConfigsRun(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("config", "testdata", "oracle", "seed*.cfg"))
	if err != nil || len(files) < 5 {
		t.Fatalf("seed configs: %v %v", files, err)
	}
	bindRe := regexp.MustCompile(`(?m)^(\s*bind\s+)\S+`)
	listenRe := regexp.MustCompile(`(?m)^(listen\s+\S+\s+)\d+\.\d+\.\d+\.\d+:\d+`)
	sockRe := regexp.MustCompile(`(?m)^(\s*stats socket\s+)\S+`)
	for _, f := range files {
		if strings.Contains(f, "raw") {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var ports []int
			newPort := func(prefix string) string {
				p := freePort(t)
				ports = append(ports, p)
				return fmt.Sprintf("%s127.0.0.1:%d", prefix, p)
			}
			cfg := bindRe.ReplaceAllStringFunc(string(data), func(m string) string {
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
