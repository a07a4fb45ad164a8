package main

import (
	"bytes"
	"context"
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

// node is a warren process started by a test.
type node struct {
	cmd    *exec.Cmd
	addr   string
	stderr *bytes.Buffer
}

// startNode runs the binary on dataDir and waits until it accepts a client.
func startNode(t *testing.T, bin, dataDir string) (*node, *amqp091.Connection) {
	t.Helper()
	n := &node{addr: freePort(t), stderr: &bytes.Buffer{}}
	n.cmd = exec.Command(bin, "--data-dir", dataDir, "--amqp-listen", n.addr)
	n.cmd.Stderr = n.stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.cmd.Process.Kill(); n.cmd.Wait() })
	var c *amqp091.Connection
	var err error
	for i := 0; i < 200; i++ {
		if c, err = amqp091.Dial("amqp://guest:guest@" + n.addr + "/"); err == nil {
			t.Cleanup(func() { c.Close() })
			return n, c
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node did not start: %v\n%s", err, n.stderr.String())
	return nil, nil
}

func TestSIGTERMClosesConnectionsWithConnectionForced(t *testing.T) {
	bin := buildWarren(t)
	n, c := startNode(t, bin, t.TempDir())
	cmd, stderr := n.cmd, n.stderr
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

// TestDefinitionsSurviveSIGKILL kills the node without warning and starts
// it again on the same data directory: durable definitions are back,
// transient and exclusive ones are gone, as with RabbitMQ.
func TestDefinitionsSurviveSIGKILL(t *testing.T) {
	bin := buildWarren(t)
	dir := t.TempDir()
	n, c := startNode(t, bin, dir)
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	args := amqp091.Table{"x-max-length": int32(10)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = ch.QueueDeclare("durable-q", true, false, false, false, args)
	must(err)
	must(ch.ExchangeDeclare("durable-x", "topic", true, false, false, false, nil))
	must(ch.QueueBind("durable-q", "a.#", "durable-x", false, nil))
	_, err = ch.QueueDeclare("transient-q", false, false, false, false, nil)
	must(err)
	_, err = ch.QueueDeclare("exclusive-q", true, false, true, false, nil)
	must(err)
	must(ch.ExchangeDeclare("transient-x", "fanout", false, false, false, false, nil))

	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n.cmd.Wait()

	_, c = startNode(t, bin, dir)
	ch, err = c.Channel()
	must(err)
	if _, err := ch.QueueDeclarePassive("durable-q", true, false, false, false, args); err != nil {
		t.Fatalf("durable queue after SIGKILL: %v", err)
	}
	// Redeclaring with other arguments is refused: the arguments came back.
	if _, err := ch.QueueDeclare("durable-q", true, false, false, false, nil); err == nil {
		t.Fatal("durable queue lost its arguments")
	}
	ch, err = c.Channel()
	must(err)
	must(ch.PublishWithContext(context.Background(), "durable-x", "a.b", false, false, amqp091.Publishing{Body: []byte("routed")}))
	if d, ok, err := ch.Get("durable-q", true); err != nil || !ok || string(d.Body) != "routed" {
		t.Fatalf("binding after SIGKILL: %v %v", ok, err)
	}
	for _, q := range []string{"transient-q", "exclusive-q"} {
		if _, err := ch.QueueDeclarePassive(q, false, false, false, false, nil); err == nil {
			t.Fatalf("%s survived a restart", q)
		}
		ch, err = c.Channel()
		must(err)
	}
	if err := ch.ExchangeDeclarePassive("transient-x", "fanout", false, false, false, false, nil); err == nil {
		t.Fatal("transient exchange survived a restart")
	}
}
