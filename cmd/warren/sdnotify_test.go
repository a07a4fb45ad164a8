package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/sdnotify/sdnotifytest"
)

// TestReadinessToSystemd starts a node as systemd's Type=notify does,
// with NOTIFY_SOCKET set: READY=1 arrives once AMQP is served, and
// STOPPING=1 when the node is asked to stop.
func TestReadinessToSystemd(t *testing.T) {
	dir := t.TempDir()
	sd := sdnotifytest.Listen(t)
	cookie := filepath.Join(dir, "cookie")
	os.WriteFile(cookie, []byte("NOTIFYCOOKIE"), 0o400)
	amqpAddr, cl := freePort(t), freePort(t)
	_, port, _ := strings.Cut(cl, ":")
	cmd := exec.Command(warrenBin, "--node-name", "sd@localhost:"+port, "--data-dir", filepath.Join(dir, "data"), "--amqp-listen", amqpAddr,
		"--mgmt-listen", freePort(t), "--cluster-listen", cl, "--cookie-file", cookie, "--prometheus-listen", "127.0.0.1:0")
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("node log:\n%s", stderr.String())
		}
	}()

	read := func() string { return sd.Next(30 * time.Second) }
	if got := read(); !strings.HasPrefix(got, "READY=1") {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	// Ready means serving: AMQP answers at once.
	c, err := net.DialTimeout("tcp", amqpAddr, time.Second)
	if err != nil {
		t.Fatalf("AMQP after READY=1: %v", err)
	}
	c.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	if got := read(); got != "STOPPING=1" {
		t.Fatalf("notification after SIGTERM %q, want STOPPING=1", got)
	}
}
