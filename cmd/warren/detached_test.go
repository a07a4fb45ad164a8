package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDetachedWritesPidFile starts a node as the runbooks start
// rabbitmq-server -detached: the command returns once the node runs in
// the background, with its pid in the pid file; warrenctl stop ends it
// and the pid file goes. A node that cannot start says why.
func TestDetachedWritesPidFile(t *testing.T) {
	dir := t.TempDir()
	cookie := filepath.Join(dir, "cookie")
	if err := os.WriteFile(cookie, []byte("DETACHEDCOOKIE"), 0o400); err != nil {
		t.Fatal(err)
	}
	cl := freePort(t)
	_, port, _ := strings.Cut(cl, ":")
	name := "d1@localhost:" + port
	amqpAddr := freePort(t)
	args := []string{"-detached", "--node-name", name, "--data-dir", filepath.Join(dir, "data"), "--amqp-listen", amqpAddr,
		"--mgmt-listen", freePort(t), "--prometheus-listen", "127.0.0.1:0", "--cookie-file", cookie}
	out, err := exec.Command(warrenBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("warren -detached: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "running in the background") {
		t.Errorf("warren -detached printed %q", out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "data.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file holds %q", b)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("process %d of the pid file: %v", pid, err)
	}
	st := runCtl(t, "-n", name, "--cookie-file", cookie, "status").ok(t)
	if !strings.Contains(st.stdout, "OS PID: "+strconv.Itoa(pid)) {
		t.Errorf("status does not show pid %d:\n%s", pid, st.stdout)
	}

	// A second node on the same AMQP port fails, and says so.
	cl2 := freePort(t)
	_, port2, _ := strings.Cut(cl2, ":")
	out, err = exec.Command(warrenBin, "-detached", "--node-name", "d2@localhost:"+port2, "--data-dir", filepath.Join(dir, "data2"),
		"--amqp-listen", amqpAddr, "--mgmt-listen", freePort(t), "--prometheus-listen", "127.0.0.1:0", "--cookie-file", cookie).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "address already in use") {
		t.Errorf("second node on a taken port: %v\n%s", err, out)
	}

	runCtl(t, "-n", name, "--cookie-file", cookie, "stop").ok(t)
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("node still runs after warrenctl stop")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data.pid")); !os.IsNotExist(err) {
		t.Errorf("pid file left after stop: %v", err)
	}
}
