package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// buildWarren compiles this command into a temporary directory, so the
// tests run the binary a user runs.
func buildWarren(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "warren")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestSIGTERMClosesConnectionsWithConnectionForced(t *testing.T) {
	bin := buildWarren(t)
	addr := freePort(t)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--data-dir", t.TempDir(), "--amqp-listen", addr)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var c *amqp091.Connection
	var err error
	for i := 0; i < 100; i++ {
		if c, err = amqp091.Dial("amqp://guest:guest@" + addr + "/"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("node did not start: %v\n%s", err, stderr.String())
	}
	closed := c.NotifyClose(make(chan *amqp091.Error, 1))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 || !strings.HasPrefix(e.Reason, "CONNECTION_FORCED") {
			t.Fatalf("closed with %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed after SIGTERM")
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node still running 10s after SIGTERM")
	}
	if !strings.Contains(stderr.String(), "node stopped") {
		t.Fatalf("log: %s", stderr.String())
	}
}

func TestBrokenConfigFileIsRefusedWithFileAndLine(t *testing.T) {
	bin := buildWarren(t)
	conf := filepath.Join(t.TempDir(), "rabbitmq.conf")
	os.WriteFile(conf, []byte("listeners.tcp.default = 5672\nheartbeat = often\nno_such_key = 1\n"), 0o644)
	out, err := exec.Command(bin, "--config", conf, "-t").CombinedOutput()
	if err == nil {
		t.Fatalf("accepted a broken config: %s", out)
	}
	for _, want := range []string{conf + ":2: heartbeat", conf + ":3: no_such_key: unknown setting"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
