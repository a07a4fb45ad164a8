package lb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/broker"
)

// TestBackendKilledGoesDownAndComesBack kills a backend: it must go DOWN
// after fall checks and come back UP after rise checks once restarted, with
// HAProxy's log wording, while traffic avoids it.
func TestBackendKilledGoesDownAndComesBack(t *testing.T) {
	b1, b2 := startBackend(t, "a"), startBackend(t, "b")
	port := freePort(t)
	l, logs := startLB(t, listenCfg(port, fmt.Sprintf(
		"    server a %s check inter 100ms rise 2 fall 3\n    server b %s check inter 100ms rise 2 fall 3\n", b1.addr, b2.addr)))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	checkFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		if st := serverStatus(l, "l", "b")["check_status"]; st != "L4OK" {
			return fmt.Errorf("b check status %q", st)
		}
		return nil
	})

	// An established connection through b closes promptly when b dies.
	var conn net.Conn
	for conn == nil {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if string(buf) == "b\n" {
			conn = c
		} else {
			c.Close()
		}
	}
	defer conn.Close()

	killed := time.Now()
	b2.kill()
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection to a killed backend still delivers data")
	}
	if el := time.Since(killed); el > time.Second {
		t.Fatalf("in-flight connection took %v to close", el)
	}

	checkFor(t, 3*time.Second, 10*time.Millisecond, func() error {
		if st := serverStatus(l, "l", "b")["status"]; st != "DOWN" {
			return fmt.Errorf("status %q", st)
		}
		return nil
	})
	// fall 3 at inter 100ms: never before the third failed check.
	if el := time.Since(killed); el < 200*time.Millisecond {
		t.Fatalf("went DOWN after %v, before fall x inter", el)
	}
	if !strings.Contains(logs.String(), `Server l/b is DOWN, reason: Layer4 connection problem, info: \"Connection refused\"`) ||
		!strings.Contains(logs.String(), "1 active and 0 backup servers left.") {
		t.Fatalf("missing DOWN log line:\n%s", logs)
	}
	for i := 0; i < 5; i++ {
		if got := hello(t, addr); got != "a" {
			t.Fatalf("traffic went to %q while b is DOWN", got)
		}
	}

	restarted := time.Now()
	b2.restart()
	checkFor(t, 3*time.Second, 10*time.Millisecond, func() error {
		if st := serverStatus(l, "l", "b")["status"]; st != "UP" {
			return fmt.Errorf("status %q", st)
		}
		return nil
	})
	if el := time.Since(restarted); el < 100*time.Millisecond {
		t.Fatalf("came UP after %v, before rise x inter", el)
	}
	if !strings.Contains(logs.String(), "Server l/b is UP, reason: Layer4 check passed") {
		t.Fatalf("missing UP log line:\n%s", logs)
	}
}

// startWarrenNode runs a real warren broker node on a loopback port.
func startWarrenNode(t *testing.T) string {
	t.Helper()
	srv, err := broker.New(context.Background(), broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	return ln.Addr().String()
}

// TestAMQPCheck: a warren node, which answers with connection.start, is
// UP; a port that is open but closes without it (broker application
// stopped) is DOWN.
func TestAMQPCheck(t *testing.T) {
	good := struct{ addr string }{startWarrenNode(t)}
	stopped := startBackendFunc(t, "stopped", func(c net.Conn) {
		_, _ = c.Read(make([]byte, 8))
	})
	port := freePort(t)
	l, logs := startLB(t, listenCfg(port, fmt.Sprintf(
		"    option amqp-check\n    server good %s check inter 100ms\n    server stopped %s check inter 100ms\n", good.addr, stopped.addr)))
	checkFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		g, s := serverStatus(l, "l", "good"), serverStatus(l, "l", "stopped")
		if g["check_status"] != "L7OK" || g["status"] != "UP" || s["status"] != "DOWN" {
			return fmt.Errorf("good=%s/%s stopped=%s", g["status"], g["check_status"], s["status"])
		}
		return nil
	})
	if !strings.Contains(logs.String(), "Server l/stopped is DOWN, reason: Layer7 invalid response") {
		t.Fatalf("log:\n%s", logs)
	}
}

func TestTCPCheckSendExpect(t *testing.T) {
	redis := func(reply string) func(net.Conn) {
		return func(c net.Conn) {
			buf := make([]byte, 64)
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, _ := c.Read(buf); string(buf[:n]) == "PING\r\n" {
				_, _ = c.Write([]byte(reply))
			}
		}
	}
	ok, bad := startBackendFunc(t, "ok", redis("+PONG\r\n")), startBackendFunc(t, "bad", redis("-ERR\r\n"))
	port := freePort(t)
	l, logs := startLB(t, listenCfg(port, fmt.Sprintf(`    option tcp-check
    tcp-check send PING\r\n
    tcp-check expect string +PONG
    server ok %s check inter 100ms
    server bad %s check inter 100ms
`, ok.addr, bad.addr)))
	checkFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		o, b := serverStatus(l, "l", "ok"), serverStatus(l, "l", "bad")
		if o["status"] != "UP" || o["check_status"] != "L7OK" || b["status"] != "DOWN" {
			return fmt.Errorf("ok=%s/%s bad=%s", o["status"], o["check_status"], b["status"])
		}
		return nil
	})
	if !strings.Contains(logs.String(), "TCPCHK did not match content '+PONG' at step 2") {
		t.Fatalf("log:\n%s", logs)
	}
}

// TestOnMarkedDownShutdownSessions: with "on-marked-down shutdown-sessions"
// the live connections of a server that fails its checks are closed; they
// stay open without it.
func TestOnMarkedDownShutdownSessions(t *testing.T) {
	for _, shutdown := range []bool{true, false} {
		t.Run(fmt.Sprintf("shutdown=%v", shutdown), func(t *testing.T) {
			be := startBackend(t, "x")
			opt := ""
			if shutdown {
				opt = " on-marked-down shutdown-sessions"
			}
			port := freePort(t)
			l, _ := startLB(t, listenCfg(port, "    server x "+be.addr+" check inter 100ms fall 1"+opt))
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 2)
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatal(err)
			}
			be.closeListener() // checks now fail; the open connection lives on
			checkFor(t, 3*time.Second, 10*time.Millisecond, func() error {
				if st := serverStatus(l, "l", "x")["status"]; st != "DOWN" {
					return fmt.Errorf("x is %s", st)
				}
				return nil
			})
			_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
			_, _ = c.Write([]byte("p"))
			_, err = io.ReadFull(c, buf[:1])
			if shutdown && err == nil {
				t.Fatal("session survived its server going DOWN")
			}
			if !shutdown && err != nil {
				t.Fatalf("session closed without on-marked-down: %v", err)
			}
		})
	}
}

// TestHTTPCheck: "option httpchk" passes on 2xx/3xx by default, and
// "http-check expect status" narrows it.
func TestHTTPCheck(t *testing.T) {
	serve := func(status string) func(net.Conn) {
		return func(c net.Conn) {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			req, _ := bufio.NewReader(c).ReadString('\n')
			if !strings.HasPrefix(req, "GET /api/health/checks/alarms HTTP/1.0") {
				_, _ = io.WriteString(c, "HTTP/1.0 400 Bad Request\r\n\r\n")
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.0 "+status+"\r\nContent-Length: 2\r\n\r\nok")
		}
	}
	good, bad, moved := startBackendFunc(t, "good", serve("200 OK")), startBackendFunc(t, "bad", serve("503 Service Unavailable")), startBackendFunc(t, "moved", serve("302 Found"))
	port := freePort(t)
	l, logs := startLB(t, listenCfg(port, fmt.Sprintf(`    option httpchk GET /api/health/checks/alarms
    server good %s check inter 100ms
    server bad %s check inter 100ms
    server moved %s check inter 100ms
`, good.addr, bad.addr, moved.addr)))
	checkFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		g, b, m := serverStatus(l, "l", "good"), serverStatus(l, "l", "bad"), serverStatus(l, "l", "moved")
		if g["status"] != "UP" || g["check_status"] != "L7OK" || b["status"] != "DOWN" || m["status"] != "UP" {
			return fmt.Errorf("good=%s/%s bad=%s moved=%s", g["status"], g["check_status"], b["status"], m["status"])
		}
		return nil
	})
	if !strings.Contains(logs.String(), `Server l/bad is DOWN, reason: Layer7 wrong status, code: 503, info: \"Service Unavailable\"`) {
		t.Fatalf("log:\n%s", logs)
	}

	port2 := freePort(t)
	l2, _ := startLB(t, listenCfg(port2, fmt.Sprintf(`    option httpchk GET /api/health/checks/alarms
    http-check expect status 200
    server good %s check inter 100ms
    server moved %s check inter 100ms
`, good.addr, moved.addr)))
	checkFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		g, m := serverStatus(l2, "l", "good"), serverStatus(l2, "l", "moved")
		if g["status"] != "UP" || m["status"] != "DOWN" {
			return fmt.Errorf("good=%s moved=%s", g["status"], m["status"])
		}
		return nil
	})
}
