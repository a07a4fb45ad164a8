package lb

import (
	"encoding/csv"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// queueStats returns, for every server and the backend of proxy px, the
// queue and session columns of "show stat".
func queueStats(t *testing.T, sock, px string) string {
	t.Helper()
	return statColumns(t, sock, px, "qcur", "qmax", "qlimit", "scur", "econ", "lbtot", "wredis")
}

// statColumns returns the named columns of "show stat" on the runtime
// socket sock, a line for every server and the backend of proxy px.
func statColumns(t *testing.T, sock, px string, cols ...string) string {
	t.Helper()
	out := runtimeCmd(t, sock, "show stat")
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("show stat: %v\n%s", err, out)
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	var sb strings.Builder
	for _, rec := range recs[1:] {
		if rec[0] != px || rec[1] == "FRONTEND" {
			continue
		}
		fmt.Fprintf(&sb, "%s:", rec[1])
		for _, c := range cols {
			fmt.Fprintf(&sb, " %s=%s", c, rec[col[c]])
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// twinProxies runs the same configuration on haproxy and on warren-lb,
// each with an admin stats socket, and drives both with the same clients.
type twinProxies struct {
	t              *testing.T
	hpAddr, ouAddr string
	hpSock, ouSock string
	hp, ours       []*probeClient
	// unordered compares which states the clients are in, not which
	// client is in which: haproxy wakes redistributed connections on
	// several threads, in no fixed order.
	unordered bool
}

func startTwins(t *testing.T, defaults, body string) *twinProxies {
	t.Helper()
	dir := t.TempDir()
	tw := &twinProxies{t: t, hpSock: filepath.Join(dir, "hp.sock"), ouSock: filepath.Join(dir, "our.sock")}
	hpPort, ouPort := freePort(t), freePort(t)
	cfg := func(sock string, port int) string {
		return fmt.Sprintf("global\n    stats socket %s level admin\n%s\nlisten l\n    bind 127.0.0.1:%d\n%s", sock, defaults, port, body)
	}
	runHAProxy(t, cfg(tw.hpSock, hpPort))
	startLB(t, cfg(tw.ouSock, ouPort))
	tw.hpAddr, tw.ouAddr = fmt.Sprintf("127.0.0.1:%d", hpPort), fmt.Sprintf("127.0.0.1:%d", ouPort)
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		c, err := net.Dial("unix", tw.hpSock)
		if err == nil {
			c.Close()
		}
		return err
	})
	return tw
}

// dial opens client i on both proxies and waits until each has decided
// what to do with it.
func (tw *twinProxies) dial() {
	tw.hp = append(tw.hp, dialProbe(tw.t, tw.hpAddr))
	tw.ours = append(tw.ours, dialProbe(tw.t, tw.ouAddr))
	tw.compare(fmt.Sprintf("after client %d connected", len(tw.hp)-1))
}

// close closes client i on both proxies. A client that a proxy still
// serves or queues must be gone from both before the next step: the
// proxies could otherwise agree on the moment before its session ends,
// and the next step's session race its end (and its log line).
func (tw *twinProxies) close(i int) {
	st := tw.ours[i].status(20 * time.Millisecond)
	live := strings.HasPrefix(st, "served") || st == "waiting"
	before := []int{backendSessions(tw.t, tw.hpSock), backendSessions(tw.t, tw.ouSock)}
	_ = tw.hp[i].conn.Close()
	_ = tw.ours[i].conn.Close()
	if live {
		checkFor(tw.t, 5*time.Second, 10*time.Millisecond, func() error {
			for j, sock := range []string{tw.hpSock, tw.ouSock} {
				if n := backendSessions(tw.t, sock); n >= before[j] {
					return fmt.Errorf("client %d closed: %s still has %d sessions", i, sock, n)
				}
			}
			return nil
		})
	}
	tw.compare(fmt.Sprintf("after client %d closed", i))
}

// backendSessions is the current session count (scur) of proxy l's
// backend, queued sessions included.
func backendSessions(t *testing.T, sock string) int {
	t.Helper()
	for _, line := range strings.Split(statColumns(t, sock, "l", "scur"), "\n") {
		if n, ok := strings.CutPrefix(line, "BACKEND: scur="); ok {
			v, err := strconv.Atoi(n)
			if err != nil {
				t.Fatalf("backend scur %q", n)
			}
			return v
		}
	}
	t.Fatalf("no backend line in show stat on %s", sock)
	return 0
}

// both sends a runtime command to both proxies.
func (tw *twinProxies) both(cmd string) {
	runtimeCmd(tw.t, tw.hpSock, cmd)
	runtimeCmd(tw.t, tw.ouSock, cmd)
	tw.compare("after " + cmd)
}

// compare checks that every open client is in the same state behind both
// proxies and that the queue statistics agree, allowing the proxies a
// moment to settle.
func (tw *twinProxies) compare(when string) {
	tw.t.Helper()
	var last string
	for try := 0; try < 20; try++ {
		var hp, ours []string
		for i := range tw.hp {
			hp = append(hp, tw.hp[i].status(20*time.Millisecond))
			ours = append(ours, tw.ours[i].status(20*time.Millisecond))
		}
		hs, os := queueStats(tw.t, tw.hpSock, "l"), queueStats(tw.t, tw.ouSock, "l")
		if tw.unordered {
			hp, ours = slices.Sorted(slices.Values(hp)), slices.Sorted(slices.Values(ours))
		}
		if strings.Join(hp, " ") == strings.Join(ours, " ") && hs == os {
			tw.t.Logf("%s: clients %v\n%s", when, ours, os)
			return
		}
		last = fmt.Sprintf("clients\n haproxy:   %v\n warren-lb: %v\nhaproxy stats:\n%swarren-lb stats:\n%s", hp, ours, hs, os)
		time.Sleep(50 * time.Millisecond)
	}
	tw.t.Fatalf("%s, warren-lb differs from haproxy:\n%s", when, last)
}

// served returns the server client i reached behind warren-lb.
func (tw *twinProxies) served(i int) string {
	return strings.TrimPrefix(tw.ours[i].status(time.Second), "served:")
}

const queueDefaults = `defaults
    mode tcp
    timeout connect 5s
    timeout queue 30s
    timeout client 30s
    timeout server 30s`

// TestServerQueuesMatchHAProxy drives haproxy and warren-lb with the same
// clients and compares, step by step, which clients are served, refused
// or waiting, and the queue columns of the stats (per server and for the
// backend).
func TestServerQueuesMatchHAProxy(t *testing.T) {
	servers := func(params string) string {
		a, b := startBackend(t, "s1"), startBackend(t, "s2")
		return fmt.Sprintf("    server s1 %s %s\n    server s2 %s %s\n", a.addr, params, b.addr, params)
	}
	t.Run("source queues on the hashed server up to maxqueue", func(t *testing.T) {
		tw := startTwins(t, queueDefaults, "    balance source\n    option redispatch\n"+servers("maxconn 1 maxqueue 1"))
		tw.dial() // served by the server 127.0.0.1 hashes to
		tw.dial() // waits in that server's queue, though the other is free
		tw.dial() // that queue is full: refused (SQ), even with redispatch
		tw.dial()
		tw.close(0) // the queued client gets the slot
		tw.dial()
	})
	t.Run("leastconn queues on servers up to maxqueue, then on the backend", func(t *testing.T) {
		tw := startTwins(t, queueDefaults, "    balance leastconn\n"+servers("maxconn 1 maxqueue 1"))
		for i := 0; i < 6; i++ {
			tw.dial()
		}
		// The slot of client 0 goes to the oldest of its server's queue
		// and the backend's: the server's.
		tw.close(0)
		tw.close(1)
		tw.close(2)
		tw.close(3)
		tw.dial()
	})
	t.Run("roundrobin queues on the backend", func(t *testing.T) {
		tw := startTwins(t, queueDefaults, "    balance roundrobin\n"+servers("maxconn 1"))
		for i := 0; i < 5; i++ {
			tw.dial()
		}
		tw.close(3) // leaves the queue
		tw.close(1)
		tw.dial()
		tw.close(0)
	})
	t.Run("maintenance redistributes a server queue with redispatch", func(t *testing.T) {
		tw := startTwins(t, queueDefaults, "    balance source\n    option redispatch\n"+servers("maxconn 1"))
		tw.dial()
		tw.dial()
		tw.dial()
		tw.unordered = true
		tw.both("disable server l/" + tw.served(0))
	})
	t.Run("maintenance keeps a server queue without redispatch", func(t *testing.T) {
		tw := startTwins(t, queueDefaults, "    balance source\n"+servers("maxconn 1"))
		tw.dial()
		tw.dial()
		s := tw.served(0)
		tw.both("disable server l/" + s)
		tw.close(0) // the queued client still gets its server's slot
		tw.both("enable server l/" + s)
	})
	t.Run("first backup queues on itself", func(t *testing.T) {
		a, b, c := startBackend(t, "s1"), startBackend(t, "b1"), startBackend(t, "b2")
		tw := startTwins(t, queueDefaults, fmt.Sprintf("    server s1 %s disabled\n    server b1 %s backup maxconn 1\n    server b2 %s backup maxconn 1\n", a.addr, b.addr, c.addr))
		tw.dial()
		tw.dial()
		tw.close(0)
		tw.both("enable server l/s1")
		tw.dial()
	})
}

// TestQueuedConnectionsAcrossReload checks that connections waiting in a
// server's queue and in the backend's queue keep waiting across a reload
// and are served when a slot frees, and that those of a backend the
// reload removes are closed.
func TestQueuedConnectionsAcrossReload(t *testing.T) {
	s1, s2 := startBackend(t, "s1"), startBackend(t, "s2")
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := func(balance string) string {
		return queueDefaults + fmt.Sprintf("\nlisten l\n    bind %s\n    balance %s\n    server s1 %s maxconn 1\n    server s2 %s maxconn 1\n", addr, balance, s1.addr, s2.addr)
	}
	l, _ := startLB(t, cfg("source"))
	held := dialProbe(t, addr)
	first := held.status(2 * time.Second)
	other := map[string]string{"served:s1": "s2", "served:s2": "s1"}[first]
	if other == "" {
		t.Fatalf("first client: %s", first)
	}
	serverQueue := func(n string) {
		checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
			if q := serverStatus(l, "l", strings.TrimPrefix(first, "served:"))["qcur"]; q != n {
				return fmt.Errorf("server qcur %s", q)
			}
			return nil
		})
	}
	// Both wait in the queue of the server the source hash gives.
	srvQueued := dialProbe(t, addr)
	serverQueue("1")
	busy := dialProbe(t, addr)
	serverQueue("2")
	// roundrobin after the reload: the next client takes the other
	// server, the one after it waits in the backend's queue.
	if err := l.Reload(mustConfig(t, cfg("roundrobin"))); err != nil {
		t.Fatal(err)
	}
	if got := dialProbe(t, addr).status(2 * time.Second); got != "served:"+other {
		t.Fatalf("after reload: %s", got)
	}
	beQueued := dialProbe(t, addr)
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if q := l.current().backends["l"].queueLen(); q != 1 {
			return fmt.Errorf("backend queue %d", q)
		}
		return nil
	})
	for _, c := range []*probeClient{srvQueued, busy, beQueued} {
		if st := c.status(50 * time.Millisecond); st != "waiting" {
			t.Fatalf("queued client: %s", st)
		}
	}
	// The slot of the first client goes to the oldest waiting one.
	_ = held.conn.Close()
	if st := srvQueued.status(2 * time.Second); st != first {
		t.Fatalf("oldest queued client after the slot freed: %s", st)
	}
	// A reload that removes the backend closes the rest.
	if err := l.Reload(mustConfig(t, queueDefaults+fmt.Sprintf("\nlisten other\n    bind 127.0.0.1:%d\n    server x %s\n", freePort(t), s1.addr))); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*probeClient{busy, beQueued} {
		if st := c.status(2 * time.Second); st != "closed" {
			t.Fatalf("client queued in a removed backend: %s", st)
		}
	}
}

// TestQueueLogLinesMatchHAProxy compares the end of the tcplog lines of
// queued, refused and served connections: termination state, the
// connection counts and the server and backend queue positions.
func TestQueueLogLinesMatchHAProxy(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	a, b := startBackend(t, "s1"), startBackend(t, "s2")
	for _, algo := range []string{"source", "roundrobin"} {
		t.Run(algo, func(t *testing.T) {
			tw := startTwins(t, queueDefaults+fmt.Sprintf("\n    log %s local0\n    option tcplog", pc.LocalAddr()),
				fmt.Sprintf("    balance %s\n    server s1 %s maxconn 1 maxqueue 2\n    server s2 %s maxconn 1 maxqueue 2\n", algo, a.addr, b.addr))
			for i := 0; i < 5; i++ {
				tw.dial()
			}
			tw.close(3) // refused (source) or leaves the queue (roundrobin)
			for i := 0; i < 5; i++ {
				if i != 3 {
					tw.close(i)
				}
			}
			// Each proxy sent one line per connection; keep the fields
			// that do not depend on timing. The server count (%sc) does:
			// haproxy counts a slot handed to a queued connection once
			// that connection's thread gets to it, before or after the
			// line of the connection that freed it.
			tail := regexp.MustCompile(` l l/(\S+) \S+ \d+ (\S\S \d+/\d+/\d+)/\d+/(\d+ \d+/\d+)$`)
			// Lines are compared in order: each step waits for both
			// proxies to settle.
			lines := map[bool][]string{}
			buf := make([]byte, 2048)
			for len(lines[true])+len(lines[false]) < 10 {
				_ = pc.SetReadDeadline(time.Now().Add(3 * time.Second))
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					t.Fatalf("log lines so far %v: %v", lines, err)
				}
				line := strings.TrimSpace(string(buf[:n]))
				m := tail.FindStringSubmatch(line)
				if m == nil {
					t.Fatalf("log line %q", line)
				}
				hp := strings.Contains(line, " haproxy[")
				lines[hp] = append(lines[hp], m[1]+" "+m[2]+"/-/"+m[3])
			}
			if strings.Join(lines[true], "\n") != strings.Join(lines[false], "\n") {
				t.Fatalf("log lines differ\nhaproxy:\n%s\nwarren-lb:\n%s", strings.Join(lines[true], "\n"), strings.Join(lines[false], "\n"))
			}
			t.Logf("log lines:\n%s", strings.Join(lines[false], "\n"))
		})
	}
}
