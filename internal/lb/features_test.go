package lb

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// retryStats returns the session, error, retry, redispatch and balancer
// columns of "show stat" for every server and the backend of proxy l.
func retryStats(t *testing.T, sock string) string {
	t.Helper()
	return statColumns(t, sock, "l", "stot", "econ", "wretr", "wredis", "lbtot")
}

// TestRetriesAndRedispatchMatchHAProxy sends the same clients through
// haproxy and warren-lb to a backend whose first server refuses
// connections, and compares which server each client reaches and the
// retry, redispatch, error, session and balancer counters of every
// server and of the backend. With "option redispatch", HAProxy goes back
// to the balancer at the first failure when more than one active server
// is usable and the algorithm does not hash, and only on the last retry
// otherwise.
func TestRetriesAndRedispatchMatchHAProxy(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	dead := freePort(t) // nothing listens here: connections are refused
	const defaults = `defaults
    mode tcp
    timeout connect 100ms
    timeout client 5s
    timeout server 5s`
	for _, tc := range []struct{ name, body string }{
		{"first", "    retries 2\n    balance first"},
		{"first with redispatch", "    retries 2\n    option redispatch\n    balance first"},
		{"roundrobin with redispatch", "    retries 1\n    option redispatch\n    balance roundrobin"},
		{"source with redispatch", "    retries 2\n    option redispatch\n    balance source"},
		{"first with redispatch and no retries", "    retries 0\n    option redispatch\n    balance first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// source hashes 127.0.0.1 onto the third of three servers:
			// put the dead one there too.
			servers := fmt.Sprintf("    server dead 127.0.0.1:%d\n    server a %s\n    server b %s\n", dead, a.addr, b.addr)
			if strings.Contains(tc.body, "source") {
				servers = fmt.Sprintf("    server a %s\n    server b %s\n    server dead 127.0.0.1:%d\n", a.addr, b.addr, dead)
			}
			tw := startTwins(t, defaults, tc.body+"\n"+servers)
			var hp, ours []string
			for i := 0; i < 3; i++ {
				hp = append(hp, hello(t, tw.hpAddr))
				ours = append(ours, hello(t, tw.ouAddr))
			}
			if !slices.Equal(hp, ours) {
				t.Fatalf("clients reached\n haproxy:   %q\n warren-lb: %q", hp, ours)
			}
			var hs, os string
			for try := 0; try < 20; try++ {
				hs, os = retryStats(t, tw.hpSock), retryStats(t, tw.ouSock)
				if hs == os {
					t.Logf("clients reached %q\n%s", ours, os)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Fatalf("counters differ\nhaproxy:\n%swarren-lb:\n%s", hs, os)
		})
	}
}

func TestMaxconnQueue(t *testing.T) {
	be := startBackend(t, "x")
	port := freePort(t)
	l, _ := startLB(t, testDefaults+fmt.Sprintf(`    timeout queue 300ms
listen l
    bind 127.0.0.1:%d
    server x %s maxconn 1
`, port, be.addr))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r1 := bufio.NewReader(first)
	if line, _ := r1.ReadString('\n'); line != "x\n" {
		t.Fatalf("first: %q", line)
	}
	// The second waits in the queue while the first holds the only slot.
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	got := make(chan string, 1)
	go func() {
		_ = second.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, _ := bufio.NewReader(second).ReadString('\n')
		got <- line
	}()
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if q := l.current().backends["l"].queueLen(); q != 1 {
			return fmt.Errorf("queue length %d", q)
		}
		return nil
	})
	select {
	case line := <-got:
		t.Fatalf("second connection served while the server is full: %q", line)
	case <-time.After(100 * time.Millisecond):
	}
	first.Close()
	if line := <-got; line != "x\n" {
		t.Fatalf("queued connection got %q", line)
	}
	// A third one times out in the queue (timeout queue 300ms).
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	start := time.Now()
	_ = third.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil {
		t.Fatal("third connection was served")
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 2*time.Second {
		t.Fatalf("queue timeout after %v", el)
	}
}

// TestReloadAppliesGlobalMaxconn checks that a reload applies a new global
// maxconn to new connections, counted from zero as in the new process an
// HAProxy reload starts: connections accepted before the reload count
// against the limit they were accepted under.
func TestReloadAppliesGlobalMaxconn(t *testing.T) {
	be := startBackend(t, "x")
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := func(n int) string {
		return fmt.Sprintf("global\n    maxconn %d\n", n) + listenCfg(port, "    server x "+be.addr)
	}
	l, _ := startLB(t, cfg(1))
	old := dialProbe(t, addr)
	if st := old.status(2 * time.Second); st != "served:x" {
		t.Fatalf("first client: %s", st)
	}
	held := dialProbe(t, addr)
	if st := held.status(300 * time.Millisecond); st != "waiting" {
		t.Fatalf("client beyond maxconn 1: %s", st)
	}
	if err := l.Reload(mustConfig(t, cfg(2))); err != nil {
		t.Fatal(err)
	}
	if st := held.status(2 * time.Second); st != "served:x" {
		t.Fatalf("held client after the reload to maxconn 2: %s", st)
	}
	second := dialProbe(t, addr)
	if st := second.status(2 * time.Second); st != "served:x" {
		t.Fatalf("second client under maxconn 2: %s", st)
	}
	third := dialProbe(t, addr)
	if st := third.status(300 * time.Millisecond); st != "waiting" {
		t.Fatalf("third client under maxconn 2: %s", st)
	}
	if v := infoValue(l, "Maxconn"); v != "2" {
		t.Fatalf("show info Maxconn %s", v)
	}
	// The connection accepted before the reload frees no new slot...
	_ = old.conn.Close()
	if st := third.status(300 * time.Millisecond); st != "waiting" {
		t.Fatalf("third client after an old connection ended: %s", st)
	}
	// ...one accepted after it does.
	_ = second.conn.Close()
	if st := third.status(2 * time.Second); st != "served:x" {
		t.Fatalf("third client after a new connection ended: %s", st)
	}
}

func TestBackupActivation(t *testing.T) {
	a, b1, b2 := startBackend(t, "active"), startBackend(t, "bk1"), startBackend(t, "bk2")
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("allbackups=%v", all), func(t *testing.T) {
			opt := ""
			if all {
				opt = "    option allbackups\n"
			}
			port := freePort(t)
			l, logs := startLB(t, listenCfg(port, opt+fmt.Sprintf("    server active %s check inter 100ms\n    server bk1 %s backup\n    server bk2 %s backup\n", a.addr, b1.addr, b2.addr)))
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			for i := 0; i < 3; i++ {
				if got := hello(t, addr); got != "active" {
					t.Fatalf("with active up got %q", got)
				}
			}
			if err := l.SetAdminState("l/active", AdminMaint); err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for i := 0; i < 4; i++ {
				seen[hello(t, addr)]++
			}
			if all && (seen["bk1"] != 2 || seen["bk2"] != 2) || !all && seen["bk1"] != 4 {
				t.Fatalf("backups used %v", seen)
			}
			if !strings.Contains(logs.String(), "Server l/active is going DOWN for maintenance. 0 active and 2 backup servers left.") {
				t.Fatalf("log:\n%s", logs)
			}
			if err := l.SetAdminState("l/active", AdminReady); err != nil {
				t.Fatal(err)
			}
			if got := hello(t, addr); got != "active" {
				t.Fatalf("after maintenance got %q", got)
			}
		})
	}
}

// TestStatsPage reads the CSV back with encoding/csv, compares its header
// with the one a running haproxy serves, and checks HTML, JSON and auth.
func TestStatsPage(t *testing.T) {
	be := startBackend(t, "x")
	port, statsPort, hpStats := freePort(t), freePort(t), freePort(t)
	statsSection := func(p int) string {
		return fmt.Sprintf(`listen stats
    bind 127.0.0.1:%d
    mode http
    stats enable
    stats uri /stats
    stats refresh 5s
    stats auth admin:secret
    stats admin if TRUE
`, p)
	}
	runHAProxy(t, testDefaults+statsSection(hpStats))
	l, _ := startLB(t, listenCfg(port, "    server x "+be.addr+" check inter 100ms")+statsSection(statsPort))
	checkFor(t, 3*time.Second, 10*time.Millisecond, func() error {
		if st := serverStatus(l, "l", "x")["status"]; st != "UP" {
			return fmt.Errorf("x is %s", st)
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		hello(t, fmt.Sprintf("127.0.0.1:%d", port))
	}
	get := func(p int, path string, auth bool) (*http.Response, string) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", p, path), nil)
		if auth {
			req.SetBasicAuth("admin", "secret")
		}
		var resp *http.Response
		checkFor(t, 3*time.Second, 20*time.Millisecond, func() error {
			var err error
			resp, err = http.DefaultClient.Do(req)
			return err
		})
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	if resp, _ := get(statsPort, "/stats", false); resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("no auth: %d", resp.StatusCode)
	}
	_, ours := get(statsPort, "/stats;csv", true)
	_, theirs := get(hpStats, "/stats;csv", true)
	if strings.SplitN(ours, "\n", 2)[0] != strings.SplitN(theirs, "\n", 2)[0] {
		t.Fatalf("CSV header differs from haproxy's:\nours:   %s\nhaproxy: %s", strings.SplitN(ours, "\n", 2)[0], strings.SplitN(theirs, "\n", 2)[0])
	}
	records, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(ours, "# "))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, name := range records[0] {
		col[name] = i
	}
	found := false
	for _, r := range records[1:] {
		if r[col["pxname"]] == "l" && r[col["svname"]] == "x" {
			found = true
			if r[col["stot"]] != "3" || r[col["status"]] != "UP" || r[col["act"]] != "1" || r[col["type"]] != "2" {
				t.Fatalf("server row: stot=%s status=%s act=%s type=%s", r[col["stot"]], r[col["status"]], r[col["act"]], r[col["type"]])
			}
		}
	}
	if !found {
		t.Fatalf("no l/x row in:\n%s", ours)
	}
	resp, page := get(statsPort, "/stats", true)
	if resp.Header.Get("Refresh") != "5" || !strings.Contains(page, `value="x"> x</td>`) || !strings.Contains(page, "#c0ffc0") {
		t.Fatalf("html page: refresh=%q\n%s", resp.Header.Get("Refresh"), page)
	}
	// The admin form puts a server in maintenance.
	form := strings.NewReader("b=l&s=x&action=maint")
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/stats", statsPort), form)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("admin", "secret")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), ";st=DONE") {
		t.Fatalf("admin post: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if st := serverStatus(l, "l", "x")["status"]; st != "MAINT" {
		t.Fatalf("after admin post x is %s", st)
	}
	_, page = get(statsPort, "/stats", true)
	if !strings.Contains(page, statusColours["MAINT"]) || !strings.Contains(page, `name="action"`) {
		t.Fatalf("maintenance not shown:\n%s", page)
	}
	_, js := get(statsPort, "/stats;json", true)
	if !strings.Contains(js, `"name": "svname"`) || !strings.Contains(js, `"objType": "Server"`) {
		t.Fatalf("json:\n%.500s", js)
	}
}

func runtimeCmd(t *testing.T, path, cmd string) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = c.Write([]byte(cmd + "\n"))
	out, _ := io.ReadAll(c)
	return string(out)
}

func TestRuntimeSocket(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	sock := filepath.Join(t.TempDir(), "lb.sock")
	userSock := filepath.Join(t.TempDir(), "user.sock")
	port := freePort(t)
	startLB(t, fmt.Sprintf("global\n    stats socket %s mode 600 level admin\n    stats socket %s\n", sock, userSock)+
		listenCfg(port, fmt.Sprintf("    server a %s\n    server b %s\n", a.addr, b.addr)))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if out := runtimeCmd(t, sock, "show info"); !strings.Contains(out, "Name: warren-lb") || !strings.Contains(out, "Pid: ") {
		t.Fatalf("show info: %s", out)
	}
	if out := runtimeCmd(t, sock, "show stat"); !strings.HasPrefix(out, "# pxname,svname,") {
		t.Fatalf("show stat: %s", out)
	}
	if out := runtimeCmd(t, userSock, "disable server l/b"); !strings.Contains(out, "Permission denied") {
		t.Fatalf("operator-level socket changed a server: %q", out)
	}
	if out := runtimeCmd(t, sock, "disable server l/b"); strings.TrimSpace(out) != "" {
		t.Fatalf("disable: %q", out)
	}
	for i := 0; i < 4; i++ {
		if got := hello(t, addr); got != "a" {
			t.Fatalf("disabled server got traffic: %q", got)
		}
	}
	if out := runtimeCmd(t, sock, "show servers state l"); !regexp.MustCompile(`(?m)^\d+ l 2 b 127\.0\.0\.1 2 1 `).MatchString(out) {
		t.Fatalf("show servers state: %s", out)
	}
	runtimeCmd(t, sock, "enable server l/b")
	runtimeCmd(t, sock, "set weight l/a 3")
	counts := map[string]int{}
	for i := 0; i < 8; i++ {
		counts[hello(t, addr)]++
	}
	if counts["a"] != 6 || counts["b"] != 2 {
		t.Fatalf("after set weight 3:1, got %v", counts)
	}
	runtimeCmd(t, sock, "set server l/a state drain")
	for i := 0; i < 3; i++ {
		if got := hello(t, addr); got != "b" {
			t.Fatalf("draining server got new traffic: %q", got)
		}
	}
	if out := runtimeCmd(t, sock, "set server l/zz state ready"); !strings.Contains(out, "No such server.") {
		t.Fatalf("unknown server: %q", out)
	}
	if out := runtimeCmd(t, sock, "help"); !strings.Contains(out, "show servers state") {
		t.Fatalf("help: %q", out)
	}
}

// TestRuntimeSocketTCP serves the runtime API on a TCP address.
func TestRuntimeSocketTCP(t *testing.T) {
	a := startBackend(t, "a")
	port, apiPort := freePort(t), freePort(t)
	startLB(t, fmt.Sprintf("global\n    stats socket ipv4@127.0.0.1:%d level admin\n", apiPort)+listenCfg(port, "    server a "+a.addr))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", apiPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = c.Write([]byte("show servers state\n"))
	out, _ := io.ReadAll(c)
	if !strings.Contains(string(out), " l 1 a 127.0.0.1 2 0 ") {
		t.Fatalf("show servers state over TCP: %q", out)
	}
}

// TestReloadKeepsConnectionsAndHealth reloads with a changed config while a
// connection is open: the connection keeps working, a DOWN server stays
// DOWN (no new rise period) and new connections follow the new config.
func TestReloadKeepsConnectionsAndHealth(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	c := startBackend(t, "c")
	port := freePort(t)
	body := fmt.Sprintf("    server a %s check inter 100ms rise 20\n    server b %s check inter 100ms rise 20\n", a.addr, b.addr)
	l, _ := startLB(t, listenCfg(port, body))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	long, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	r := bufio.NewReader(long)
	first, _ := r.ReadString('\n')
	// Take b down for good: rise 20 at 100ms means it cannot come back
	// within this test unless its health is forgotten.
	b.kill()
	checkFor(t, 3*time.Second, 10*time.Millisecond, func() error {
		if st := serverStatus(l, "l", "b")["status"]; st != "DOWN" {
			return fmt.Errorf("b is %s", st)
		}
		return nil
	})
	b.restart()
	before := serverStatus(l, "l", "a")["stot"]

	newBody := body + fmt.Sprintf("    server c %s check inter 100ms\n", c.addr)
	if err := l.Reload(mustConfig(t, listenCfg(port, newBody))); err != nil {
		t.Fatal(err)
	}
	if st := serverStatus(l, "l", "b")["status"]; !strings.HasPrefix(st, "DOWN") {
		t.Fatalf("b forgot its health over reload: %s", st)
	}
	if got := serverStatus(l, "l", "a")["stot"]; got != before {
		t.Fatalf("a's counters reset: %s -> %s", before, got)
	}
	if first != "b\n" {
		// The long connection went to a: it must still echo.
		_, _ = long.Write([]byte("still\n"))
		_ = long.SetReadDeadline(time.Now().Add(2 * time.Second))
		if line, err := r.ReadString('\n'); err != nil || line != "still\n" {
			t.Fatalf("long-lived connection after reload: %q %v", line, err)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < 4; i++ {
		seen[hello(t, addr)] = true
	}
	if !seen["c"] || seen["b"] {
		t.Fatalf("after reload saw %v, want c and not b", seen)
	}
}

// TestReloadLongConnectionSurvives keeps one echo connection open through
// a reload that changes the backend's servers.
func TestReloadLongConnectionSurvives(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	port := freePort(t)
	l, _ := startLB(t, listenCfg(port, "    server a "+a.addr))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	long, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	r := bufio.NewReader(long)
	if line, _ := r.ReadString('\n'); line != "a\n" {
		t.Fatalf("got %q", line)
	}
	if err := l.Reload(mustConfig(t, listenCfg(port, "    server b "+b.addr))); err != nil {
		t.Fatal(err)
	}
	if got := hello(t, addr); got != "b" {
		t.Fatalf("new connection after reload went to %q", got)
	}
	_ = long.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = long.Write([]byte("hello\n"))
	if line, err := r.ReadString('\n'); err != nil || line != "hello\n" {
		t.Fatalf("long-lived connection after reload: %q %v", line, err)
	}
}

func TestTCPLogToSyslog(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	be := startBackend(t, "rabbit_2")
	port := freePort(t)
	startLB(t, fmt.Sprintf("global\n    log %s local0 info\n", pc.LocalAddr())+testDefaults+`    log global
    option tcplog
    option dontlognull
listen rabbitmq_cluster
    bind 127.0.0.1:`+fmt.Sprint(port)+`
    server rabbit_2 `+be.addr+"\n")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// A connection that sends nothing is not logged (dontlognull)...
	hello(t, addr)
	// ...one that sends data is.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("abc"))
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 12)
	_, _ = io.ReadFull(c, buf[:len("rabbit_2\nabc")])
	c.Close()
	_ = pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	msg := make([]byte, 2048)
	n, _, err := pc.ReadFrom(msg)
	if err != nil {
		t.Fatal(err)
	}
	line := string(msg[:n])
	re := regexp.MustCompile(`^<134>\w{3} [ \d]\d \d\d:\d\d:\d\d \S+\[\d+\]: 127\.0\.0\.1:\d+ \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\] rabbitmq_cluster rabbitmq_cluster/rabbit_2 0/\d+/\d+ 12 -- \d+/\d+/\d+/\d+/0 0/0$`)
	if !re.MatchString(line) {
		t.Fatalf("log line %q does not match the tcplog format", line)
	}
}

// TestManyShortConnectionsLeaveNothingBehind runs 10,000 short
// connections and checks that file descriptors and goroutines return to
// where they were.
func TestManyShortConnectionsLeaveNothingBehind(t *testing.T) {
	be := startBackend(t, "x")
	port := freePort(t)
	l, _ := startLB(t, listenCfg(port, "    server x "+be.addr))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	hello(t, addr)
	countFDs := func() int {
		ents, _ := os.ReadDir("/proc/self/fd")
		return len(ents)
	}
	fds, goroutines := countFDs(), runtime.NumGoroutine()
	const total, workers = 10000, 8
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			buf := make([]byte, 2)
			for i := 0; i < total/workers; i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					errc <- err
					return
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(c, buf); err != nil {
					c.Close()
					errc <- err
					return
				}
				c.Close()
			}
			errc <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		// Go keeps splice pipes in a pool that the GC empties (their
		// finalizer closes them): collect so only real leaks remain.
		runtime.GC()
		if n := l.ActiveConns(); n != 0 {
			return fmt.Errorf("%d connections still active", n)
		}
		if f := countFDs(); f > fds+2 {
			return fmt.Errorf("fds %d -> %d", fds, f)
		}
		if g := runtime.NumGoroutine(); g > goroutines+2 {
			return fmt.Errorf("goroutines %d -> %d", goroutines, g)
		}
		return nil
	})
	if s := serverStatus(l, "l", "x"); s["stot"] != fmt.Sprint(total+1) {
		t.Fatalf("server sessions %s, want %d", s["stot"], total+1)
	}
}

// TestFirstAndLeastConnWithLiveConnections holds connections open and
// checks where the next ones go.
func TestFirstAndLeastConnWithLiveConnections(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	open := func(t *testing.T, addr string) (net.Conn, string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return c, strings.TrimSpace(line)
	}
	t.Run("first", func(t *testing.T) {
		port := freePort(t)
		startLB(t, listenCfg(port, fmt.Sprintf("    balance first\n    server a %s maxconn 2\n    server b %s maxconn 2\n", a.addr, b.addr)))
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		var got []string
		for i := 0; i < 3; i++ {
			_, name := open(t, addr)
			got = append(got, name)
		}
		if strings.Join(got, " ") != "a a b" {
			t.Fatalf("first with maxconn 2: %v", got)
		}
	})
	t.Run("leastconn", func(t *testing.T) {
		port := freePort(t)
		l, _ := startLB(t, listenCfg(port, fmt.Sprintf("    balance leastconn\n    server a %s\n    server b %s\n", a.addr, b.addr)))
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		c1, first := open(t, addr)
		_, second := open(t, addr)
		if first == second {
			t.Fatalf("leastconn sent both open connections to %s", first)
		}
		// Close the first: the next connection goes where it was.
		c1.Close()
		checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
			if n := serverStatus(l, "l", first)["scur"]; n != "0" {
				return fmt.Errorf("%s still has %s sessions", first, n)
			}
			return nil
		})
		if _, third := open(t, addr); third != first {
			t.Fatalf("leastconn picked %s, want the idle %s", third, first)
		}
	})
}

// TestIdleConnectionsHoldNoPipes: connections that exchanged a little data
// and went idle hold no splice pipe (and no buffer), only their sockets.
func TestIdleConnectionsHoldNoPipes(t *testing.T) {
	// This backend echoes with read/write so that it holds no pipe itself
	// (io.Copy between sockets would splice).
	be := startBackendFunc(t, "x", func(c net.Conn) {
		if _, err := io.WriteString(c, "x\n"); err != nil {
			return
		}
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	port := freePort(t)
	startLB(t, listenCfg(port, "    server x "+be.addr))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	pipes := func() int {
		ents, _ := os.ReadDir("/proc/self/fd")
		n := 0
		for _, e := range ents {
			if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "pipe:") {
				n++
			}
		}
		return n
	}
	runtime.GC()
	before := pipes()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 50; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		r := bufio.NewReader(c)
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("ping\n"))
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	if after := pipes(); after-before > 8 {
		t.Fatalf("50 idle connections hold %d pipe fds (before %d)", after-before, before)
	}
}

// TestStatsPageOnWildcardBind serves the stats page of a section bound
// to every address (":PORT", as the examples' haproxy.cfg binds it) to
// a client that reaches it through one of them.
func TestStatsPageOnWildcardBind(t *testing.T) {
	be := startBackend(t, "x")
	port, statsPort := freePort(t), freePort(t)
	startLB(t, listenCfg(port, "    server x "+be.addr)+fmt.Sprintf(`listen stats
    bind :%d
    mode http
    stats enable
    stats uri /stats
`, statsPort))
	var resp *http.Response
	checkFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		var err error
		resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats;csv", statsPort))
		return err
	})
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "pxname") {
		t.Fatalf("stats on a wildcard bind: %d\n%s", resp.StatusCode, body)
	}
}
