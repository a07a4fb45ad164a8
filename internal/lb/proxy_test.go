package lb

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runHAProxy starts Debian's haproxy on cfg in the foreground and stops it
// at test end.
func runHAProxy(t *testing.T, cfg string) {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatalf("haproxy is needed as the reference (scripts/deps/lb.txt): %v", err)
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-q", "-f", path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// waitListening waits until addr proxies a connection to a backend: the
// connection that proves it reads the backend's greeting, so the proxy has
// certainly picked a server for it before the next one arrives.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
}

// TestRoundRobinOrderMatchesHAProxy sends the same sequence of connections
// through haproxy and warren-lb with the same weights and compares the
// order in which servers are chosen.
func TestRoundRobinOrderMatchesHAProxy(t *testing.T) {
	for _, algo := range []string{"roundrobin", "static-rr", "source"} {
		for _, weights := range [][]int{{3, 1}, {1, 1, 1}, {5, 3, 2}, {2, 7, 4}} {
			testOrderMatches(t, algo, weights)
		}
	}
}

func testOrderMatches(t *testing.T, algo string, weights []int) {
	t.Run(fmt.Sprint(algo, weights), func(t *testing.T) {
		var servers strings.Builder
		total := 0
		for i, w := range weights {
			b := startBackend(t, fmt.Sprintf("s%d", i+1))
			fmt.Fprintf(&servers, "    server s%d %s weight %d\n", i+1, b.addr, w)
			total += w
		}
		hpPort, ourPort := freePort(t), freePort(t)
		runHAProxy(t, listenCfg(hpPort, "    balance "+algo+"\n"+servers.String()))
		startLB(t, listenCfg(ourPort, "    balance "+algo+"\n"+servers.String()))
		hpAddr, ourAddr := fmt.Sprintf("127.0.0.1:%d", hpPort), fmt.Sprintf("127.0.0.1:%d", ourPort)
		waitListening(t, hpAddr)
		// waitListening made one connection to haproxy: do the same to
		// warren-lb so both start the sequence at the same point.
		waitListening(t, ourAddr)
		n := 3*total + 1
		var hp, ours []string
		for i := 0; i < n; i++ {
			hp = append(hp, hello(t, hpAddr))
			ours = append(ours, hello(t, ourAddr))
		}
		if strings.Join(hp, " ") != strings.Join(ours, " ") {
			t.Fatalf("order differs\nhaproxy:   %v\nwarren-lb: %v", hp, ours)
		}
		t.Logf("order %v", ours)
	})
}

// TestRoundRobinAfterStateChangesMatchesHAProxy takes a server out and
// back in (through each proxy's runtime socket) in the middle of a
// sequence and compares the order with haproxy's.
func TestRoundRobinAfterStateChangesMatchesHAProxy(t *testing.T) {
	weights := []int{3, 2, 1, 2}
	var servers strings.Builder
	for i, w := range weights {
		b := startBackend(t, fmt.Sprintf("s%d", i+1))
		fmt.Fprintf(&servers, "    server s%d %s weight %d\n", i+1, b.addr, w)
	}
	dir := t.TempDir()
	hpSock, ourSock := filepath.Join(dir, "hp.sock"), filepath.Join(dir, "our.sock")
	hpPort, ourPort := freePort(t), freePort(t)
	runHAProxy(t, fmt.Sprintf("global\n    stats socket %s level admin\n", hpSock)+listenCfg(hpPort, servers.String()))
	startLB(t, fmt.Sprintf("global\n    stats socket %s level admin\n", ourSock)+listenCfg(ourPort, servers.String()))
	hpAddr, ourAddr := fmt.Sprintf("127.0.0.1:%d", hpPort), fmt.Sprintf("127.0.0.1:%d", ourPort)
	waitListening(t, hpAddr)
	waitListening(t, ourAddr)
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		_, err := net.Dial("unix", hpSock)
		return err
	})
	var hp, ours []string
	run := func(n int) {
		for i := 0; i < n; i++ {
			hp = append(hp, hello(t, hpAddr))
			ours = append(ours, hello(t, ourAddr))
		}
	}
	both := func(cmd string) {
		runtimeCmd(t, hpSock, cmd)
		runtimeCmd(t, ourSock, cmd)
	}
	run(5)
	both("disable server l/s2")
	run(7)
	both("set weight l/s1 1")
	run(6)
	both("enable server l/s2")
	run(12)
	both("set weight l/s3 5")
	run(9)
	both("disable server l/s1")
	both("set weight l/s2 0")
	run(8)
	both("enable server l/s1")
	both("set weight l/s2 4")
	both("disable server l/s4")
	run(15)
	if strings.Join(hp, " ") != strings.Join(ours, " ") {
		t.Fatalf("order differs\nhaproxy:   %v\nwarren-lb: %v", hp, ours)
	}
}

func TestDistributionFollowsWeights(t *testing.T) {
	b1, b2, b3 := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	port := freePort(t)
	startLB(t, listenCfg(port, fmt.Sprintf("    server a %s weight 1\n    server b %s weight 2\n    server c %s weight 3\n", b1.addr, b2.addr, b3.addr)))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	counts := map[string]int{}
	for i := 0; i < 60; i++ {
		counts[hello(t, addr)]++
	}
	if counts["a"] != 10 || counts["b"] != 20 || counts["c"] != 30 {
		t.Fatalf("distribution %v, want a=10 b=20 c=30", counts)
	}
}

func TestHalfClosePassesThrough(t *testing.T) {
	// This server reads until EOF, then answers with what it got.
	be := startBackendFunc(t, "x", func(c net.Conn) {
		data, _ := io.ReadAll(c)
		_, _ = c.Write([]byte("got:" + string(data)))
	})
	port := freePort(t)
	startLB(t, listenCfg(port, "    server x "+be.addr))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte("ping"))
	_ = c.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(c)
	if err != nil || string(reply) != "got:ping" {
		t.Fatalf("reply %q, %v", reply, err)
	}
}

func TestClientTimeoutClosesIdleButNotBusy(t *testing.T) {
	be := startBackend(t, "x")
	port := freePort(t)
	cfg := `
defaults
    mode tcp
    timeout connect 1s
    timeout client 800ms
    timeout server 800ms
listen l
    bind 127.0.0.1:` + fmt.Sprint(port) + `
    server x ` + be.addr
	startLB(t, cfg)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	// Idle connection: closed after about 800ms.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("idle connection got data")
	}
	if el := time.Since(start); el < 600*time.Millisecond || el > 4*time.Second {
		t.Fatalf("idle connection closed after %v, want about 800ms", el)
	}

	// Busy connection: data every 150ms for 2.4s (three times the
	// timeout) keeps it open.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
	r2 := bufio.NewReader(c2)
	if _, err := r2.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	var lastData time.Time
	for i := 0; i < 16; i++ {
		if _, err := c2.Write([]byte("tick\n")); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if line, err := r2.ReadString('\n'); err != nil || line != "tick\n" {
			t.Fatalf("echo %d: %q %v", i, line, err)
		}
		lastData = time.Now()
		time.Sleep(150 * time.Millisecond)
	}

	// Once the data stops, the timeout counts from the last data.
	if _, err := r2.ReadByte(); err == nil {
		t.Fatal("connection idle after the ticks got data")
	}
	if el := time.Since(lastData); el < 700*time.Millisecond || el > 1300*time.Millisecond {
		t.Fatalf("connection closed %v after its last data, want about 800ms", el)
	}
}

func TestSendProxyV1AndV2(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v2=%v", v2), func(t *testing.T) {
			got := make(chan []byte, 1)
			be := startBackendFunc(t, "x", func(c net.Conn) {
				buf := make([]byte, 256)
				_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
				n, _ := c.Read(buf)
				got <- buf[:n]
			})
			port := freePort(t)
			opt := "send-proxy"
			if v2 {
				opt = "send-proxy-v2"
			}
			startLB(t, listenCfg(port, "    server x "+be.addr+" "+opt))
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cport := c.LocalAddr().(*net.TCPAddr).Port
			var h []byte
			select {
			case h = <-got:
			case <-time.After(3 * time.Second):
				t.Fatal("no header")
			}
			if !v2 {
				want := fmt.Sprintf("PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n", cport, port)
				if string(h) != want {
					t.Fatalf("header %q, want %q", h, want)
				}
				return
			}
			if len(h) != 28 || string(h[:12]) != string(proxyV2Signature[:]) || h[12] != 0x21 || h[13] != 0x11 {
				t.Fatalf("v2 header % x", h)
			}
			if sp := int(h[24])<<8 | int(h[25]); sp != cport {
				t.Fatalf("v2 source port %d, want %d", sp, cport)
			}
		})
	}
}

// TestClientFinTimeout: once the client has closed its side, a server that
// stays silent is cut after "timeout client-fin", well before "timeout
// server".
func TestClientFinTimeout(t *testing.T) {
	stop := make(chan struct{})
	be := startBackendFunc(t, "silent", func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c) // reads to EOF, then neither answers nor closes
		<-stop
	})
	t.Cleanup(func() { close(stop) }) // runs before the backend's cleanup
	port := freePort(t)
	startLB(t, `
defaults
    mode tcp
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout client-fin 300ms
listen l
    bind 127.0.0.1:`+fmt.Sprint(port)+`
    server s `+be.addr+"\n")
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("bye"))
	_ = c.(*net.TCPConn).CloseWrite()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("got data from a silent server")
	}
	if el := time.Since(start); el < 200*time.Millisecond || el > 3*time.Second {
		t.Fatalf("closed after %v, want about 300ms (client-fin)", el)
	}
}

// keepaliveTimer reports whether the kernel runs a keepalive timer on the
// socket local->remote, from /proc/net/tcp's "tr" field (2 = keepalive).
func keepaliveTimer(t *testing.T, local, remote *net.TCPAddr) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	hexAddr := func(a *net.TCPAddr) string {
		ip := a.IP.To4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], a.Port)
	}
	l, r := hexAddr(local), hexAddr(remote)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[1] == l && f[2] == r {
			return strings.HasPrefix(f[5], "02:")
		}
	}
	t.Fatalf("socket %s -> %s not found in /proc/net/tcp", l, r)
	return false
}

// TestTCPKeepalive checks with the kernel that option clitcpka turns on
// keepalive on the client-side socket, and that it is off by default.
func TestTCPKeepalive(t *testing.T) {
	be := startBackend(t, "x")
	for _, opt := range []string{"", "    option clitcpka\n"} {
		port := freePort(t)
		startLB(t, listenCfg(port, opt+"    server x "+be.addr))
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		// The LB's socket is the peer of ours: local = LB port, remote = us.
		got := keepaliveTimer(t, c.RemoteAddr().(*net.TCPAddr), c.LocalAddr().(*net.TCPAddr))
		c.Close()
		if got != (opt != "") {
			t.Fatalf("option %q: keepalive timer running = %v", strings.TrimSpace(opt), got)
		}
	}
}

// TestTunnelTimeoutOverridesClientAndServer: once connected, "timeout
// tunnel" replaces the shorter client and server timeouts.
func TestTunnelTimeoutOverridesClientAndServer(t *testing.T) {
	be := startBackend(t, "x")
	port := freePort(t)
	startLB(t, `
defaults
    mode tcp
    timeout connect 1s
    timeout client 200ms
    timeout server 200ms
    timeout tunnel 1500ms
listen l
    bind 127.0.0.1:`+fmt.Sprint(port)+`
    server x `+be.addr+"\n")
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // idle for three client timeouts
	if _, err := c.Write([]byte("still\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "still\n" {
		t.Fatalf("tunnel connection cut before timeout tunnel: %q %v", line, err)
	}
	start := time.Now()
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("idle tunnel got data")
	}
	if el := time.Since(start); el < time.Second || el > 4*time.Second {
		t.Fatalf("tunnel closed after %v idle, want about 1.5s", el)
	}
}
