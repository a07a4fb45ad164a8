package lb

import (
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestUnsetTimeoutsAreInfinite checks that without "timeout connect" a
// connection to a server that does not answer keeps trying (HAProxy
// leaves it to the kernel), and that without "timeout queue" and
// "timeout connect" a queued connection waits until it is served.
func TestUnsetTimeoutsAreInfinite(t *testing.T) {
	const longer = 5500 * time.Millisecond // beyond the former 5s default
	t.Run("connect", func(t *testing.T) {
		t.Parallel()
		silent := silentServer(t)
		port := freePort(t)
		l, _ := startLB(t, fmt.Sprintf("defaults\n    mode tcp\nlisten l\n    bind 127.0.0.1:%d\n    server s %s\n", port, silent))
		c := dialProbe(t, fmt.Sprintf("127.0.0.1:%d", port))
		if st := c.status(longer); st != "waiting" {
			t.Fatalf("client: %s", st)
		}
		if s := serverStatus(l, "l", "s"); s["econ"] != "0" || s["wretr"] != "0" || s["scur"] != "1" {
			t.Fatalf("the connect attempt gave up: econ=%s wretr=%s scur=%s", s["econ"], s["wretr"], s["scur"])
		}
	})
	t.Run("queue", func(t *testing.T) {
		t.Parallel()
		be := startBackend(t, "x")
		port := freePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		l, _ := startLB(t, fmt.Sprintf("defaults\n    mode tcp\nlisten l\n    bind 127.0.0.1:%d\n    server x %s maxconn 1\n", port, be.addr))
		first := dialProbe(t, addr)
		if st := first.status(2 * time.Second); st != "served:x" {
			t.Fatalf("first: %s", st)
		}
		second := dialProbe(t, addr)
		if st := second.status(longer); st != "waiting" {
			t.Fatalf("queued client: %s", st)
		}
		if q := l.current().backends["l"].queueLen(); q != 1 {
			t.Fatalf("queue length %d", q)
		}
		_ = first.conn.Close()
		if st := second.status(2 * time.Second); st != "served:x" {
			t.Fatalf("queued client after the slot freed: %s", st)
		}
	})
}

// silentServer returns the address of a listener whose accept queue is
// full, so the kernel drops further SYNs: connecting to it neither
// succeeds nor fails until the connecting side gives up.
func silentServer(t *testing.T) string {
	t.Helper()
	lc := net.ListenConfig{}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	// Shrink the backlog to its minimum and fill it: nobody accepts.
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var lerr error
	if err := raw.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), 0) }); err != nil || lerr != nil {
		t.Fatal(err, lerr)
	}
	addr := ln.Addr().String()
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return addr // this one was dropped: the queue is full
		}
		t.Cleanup(func() { c.Close() })
		if i > 64 {
			t.Fatal("could not fill the listener's accept queue")
		}
	}
}

// TestQueueTimeoutFallsBackToConnect checks that without "timeout queue"
// a queued connection gives up after "timeout connect", as in HAProxy.
func TestQueueTimeoutFallsBackToConnect(t *testing.T) {
	be := startBackend(t, "x")
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	l, _ := startLB(t, fmt.Sprintf("defaults\n    mode tcp\n    timeout connect 300ms\nlisten l\n    bind 127.0.0.1:%d\n    server x %s maxconn 1\n", port, be.addr))
	first := dialProbe(t, addr)
	if st := first.status(2 * time.Second); st != "served:x" {
		t.Fatalf("first: %s", st)
	}
	start := time.Now()
	if st := dialProbe(t, addr).status(3 * time.Second); st != "closed" {
		t.Fatalf("queued client: %s", st)
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 2*time.Second {
		t.Fatalf("queue timeout after %v, want about 300ms", el)
	}
	if b := serverStatus(l, "l", "BACKEND"); b["econ"] != "1" || b["qmax"] != "1" {
		t.Fatalf("backend econ=%s qmax=%s", b["econ"], b["qmax"])
	}
}

// TestConnectTimeoutMatchesHAProxy sends a client through haproxy and
// warren-lb to a server that never completes the handshake: with
// "timeout connect 300ms" and one retry, both give up after two attempts,
// with the same counters.
func TestConnectTimeoutMatchesHAProxy(t *testing.T) {
	silent := silentServer(t)
	const defaults = `defaults
    mode tcp
    timeout connect 300ms
    timeout client 5s
    timeout server 5s`
	tw := startTwins(t, defaults, "    retries 1\n    server s "+silent+"\n")
	start := time.Now()
	ours := dialProbe(t, tw.ouAddr)
	hp := dialProbe(t, tw.hpAddr)
	if st := ours.status(3 * time.Second); st != "closed" {
		t.Fatalf("warren-lb client: %s", st)
	}
	if el := time.Since(start); el < 500*time.Millisecond || el > 2*time.Second {
		t.Fatalf("warren-lb gave up after %v, want about 2 x 300ms", el)
	}
	if st := hp.status(3 * time.Second); st != "closed" {
		t.Fatalf("haproxy client: %s", st)
	}
	if hs, os := retryStats(t, tw.hpSock), retryStats(t, tw.ouSock); hs != os {
		t.Fatalf("counters differ\nhaproxy:\n%swarren-lb:\n%s", hs, os)
	}
}

// TestCloseInterruptsConnect checks that closing the LB ends a connection
// attempt that has no time limit at once.
func TestCloseInterruptsConnect(t *testing.T) {
	silent := silentServer(t)
	port := freePort(t)
	l, _ := startLB(t, fmt.Sprintf("defaults\n    mode tcp\nlisten l\n    bind 127.0.0.1:%d\n    server s %s\n", port, silent))
	c := dialProbe(t, fmt.Sprintf("127.0.0.1:%d", port))
	if st := c.status(300 * time.Millisecond); st != "waiting" {
		t.Fatalf("client: %s", st)
	}
	start := time.Now()
	l.Close()
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Close took %v with a connection attempt under way", el)
	}
}
