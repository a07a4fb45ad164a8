package broker_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sys/unix"

	"github.com/warren-mq/warren/internal/broker"
)

// run runs a command and fails the test with its output if it fails.
func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// dialFromNamespace opens a TCP connection from inside the named network
// namespace: the socket is created on a thread that has joined it.
func dialFromNamespace(t *testing.T, ns, addr string) net.Conn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread is left in the namespace and so is never returned to
		// the scheduler: the goroutine exits still locked to it.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		done <- result{c, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

// TestLoopbackUsersFromAnotherHost logs in from a network namespace, a
// host of its own behind a veth pair: guest is refused there, as RabbitMQ
// refuses it, and another user is let in.
func TestLoopbackUsersFromAnotherHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test builds a network namespace and must run as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("this test needs iproute2 (Debian package iproute2)")
	}
	ns := fmt.Sprintf("warren-loop%d", os.Getpid())
	host, peer := fmt.Sprintf("wv%dh", os.Getpid()%100000), fmt.Sprintf("wv%dp", os.Getpid()%100000)
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { exec.Command("ip", "link", "del", host).Run() })
	run(t, "ip", "link", "set", peer, "netns", ns)
	run(t, "ip", "addr", "add", "198.51.100.1/30", "dev", host)
	run(t, "ip", "link", "set", host, "up")
	run(t, "ip", "-n", ns, "addr", "add", "198.51.100.2/30", "dev", peer)
	run(t, "ip", "-n", ns, "link", "set", peer, "up")
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")

	s, err := broker.New(context.Background(), broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "198.51.100.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() { s.Close(); <-served })
	addUser(t, s, "remote", "pw")
	if err := s.Meta().SetPermission(context.Background(), permAll("remote", "/")); err != nil {
		t.Fatal(err)
	}

	login := func(user, pass string) error {
		nc := dialFromNamespace(t, ns, l.Addr().String())
		c, err := amqp091.Open(nc, amqp091.Config{SASL: []amqp091.Authentication{&amqp091.PlainAuth{Username: user, Password: pass}}, Vhost: "/"})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := login("guest", "guest"); err != amqp091.ErrCredentials {
		t.Fatalf("guest from another host: %v, want refused", err)
	}
	if err := login("remote", "pw"); err != nil {
		t.Fatalf("remote user: %v", err)
	}
}
