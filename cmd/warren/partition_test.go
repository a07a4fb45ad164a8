package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPauseMinority freezes two nodes of three with SIGSTOP: the third,
// alone with cluster_partition_handling = pause_minority, closes its AMQP
// and HTTP listeners, and opens them again once the others answer.
func TestPauseMinority(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "warren.conf")
	if err := os.WriteFile(conf, []byte("cluster_partition_handling = pause_minority\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ms := newMembers(t, 3, "PAUSECOOKIE")
	for _, m := range ms {
		m.config = conf
		m.start(t)
		m.dial(t, "guest", "guest")
	}
	n1, n2, n3 := ms[0], ms[1], ms[2]
	n2.join(t, n1)
	n3.join(t, n1)
	listening := func(addr string) bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	until := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(limit); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v", what, limit)
			}
		}
	}
	for _, m := range []*member{n2, n3} {
		m.mu.Lock()
		m.cmd.Process.Signal(syscall.SIGSTOP)
		m.mu.Unlock()
	}
	frozen := time.Now()
	until("n1 closes AMQP and HTTP in a minority", 30*time.Second, func() bool {
		return !listening(n1.amqp) && !listening(n1.mgmt)
	})
	t.Logf("n1 paused %v after losing the majority", time.Since(frozen).Round(100*time.Millisecond))
	if !strings.Contains(n1.stderr.String(), "pause_minority: this node cannot reach a majority") {
		t.Error("n1 did not log why it paused")
	}
	for _, m := range []*member{n2, n3} {
		m.mu.Lock()
		m.cmd.Process.Signal(syscall.SIGCONT)
		m.mu.Unlock()
	}
	until("n1 serves again once the majority is back", 30*time.Second, func() bool {
		return listening(n1.amqp) && listening(n1.mgmt)
	})
	c := n1.dial(t, "guest", "guest")
	ch := channel(t, c)
	if _, err := ch.QueueDeclare("after-pause", true, false, false, false, nil); err != nil {
		t.Fatalf("n1 after resuming: %v", err)
	}
}
