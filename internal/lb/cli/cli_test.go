package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warren-mq/warren/internal/sdnotify/sdnotifytest"
)

// binary is warren-lb built once for the process tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "warren-lb-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "warren-lb")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/warren-mq/warren/cmd/warren-lb").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building warren-lb: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines left behind: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestCheckFlag(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.cfg")
	bad := filepath.Join(dir, "bad.cfg")
	_ = os.WriteFile(good, []byte("defaults\n  mode tcp\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\nlisten l\n  bind 127.0.0.1:1\n  server s 127.0.0.1:2\n"), 0o644)
	_ = os.WriteFile(bad, []byte("listen l\n  bind 127.0.0.1:1\n  balanse roundrobin\n  server s 127.0.0.1:2 wieght 3\n"), 0o644)
	var out, errb bytes.Buffer
	if code := Main([]string{"-c", "-f", good}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Configuration file is valid") {
		t.Fatalf("good: code %d, %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	code := Main([]string{"-c", "-f", bad}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), bad+":3] : unknown keyword 'balanse'") || !strings.Contains(errb.String(), bad+":4]") {
		t.Fatalf("bad: code %d, %s", code, errb.String())
	}
	// Several -f files are read in order as one configuration.
	part1 := filepath.Join(dir, "p1.cfg")
	part2 := filepath.Join(dir, "p2.cfg")
	_ = os.WriteFile(part1, []byte("defaults\n  mode tcp\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\n"), 0o644)
	_ = os.WriteFile(part2, []byte("listen l\n  bind 127.0.0.1:1\n  server s 127.0.0.1:2\n"), 0o644)
	if code := Main([]string{"-c", "-f", part1, "-f", part2}, &out, &errb); code != 0 {
		t.Fatalf("two files: code %d %s", code, errb.String())
	}
	// A directory stands for its *.cfg files in lexical order.
	cfgDir := filepath.Join(dir, "conf.d")
	_ = os.Mkdir(cfgDir, 0o755)
	_ = os.WriteFile(filepath.Join(cfgDir, "10-defaults.cfg"), []byte("defaults\n  mode tcp\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\n"), 0o644)
	_ = os.WriteFile(filepath.Join(cfgDir, "20-listen.cfg"), []byte("listen l\n  bind 127.0.0.1:1\n  server s 127.0.0.1:2\n"), 0o644)
	_ = os.WriteFile(filepath.Join(cfgDir, "notes.txt"), []byte("not a config\n"), 0o644)
	if code := Main([]string{"-c", "-f", cfgDir}, &out, &errb); code != 0 {
		t.Fatalf("directory: code %d %s", code, errb.String())
	}
}

// lbProcess is a warren-lb process started from the built binary.
type lbProcess struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startProcess(t *testing.T, args ...string) *lbProcess {
	t.Helper()
	p := &lbProcess{cmd: exec.Command(binary, args...), stderr: &syncBuffer{}}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_, _ = p.cmd.Process.Wait()
	})
	return p
}

func waitFor(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out: %v", err)
}

// echoServer names itself then echoes, until the test ends.
func echoServer(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	connc := make(chan net.Conn, 100)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connc <- c
			go func() {
				_, _ = io.WriteString(c, name+"\n")
				_, _ = io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(connc)
		for c := range connc {
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func greet(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func sendCmd(path, cmd string) (string, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = c.Write([]byte(cmd + "\n"))
	out, err := io.ReadAll(c)
	return string(out), err
}

// TestSignalsPidfileAndSoftReload runs the binary: -db -p writes the pid
// file, SIGUSR2 reloads the file, and a second process started with -sf
// takes over while the first finishes its established connection and
// keeps the servers' health (a DOWN server stays DOWN).
func TestSignalsPidfileAndSoftReload(t *testing.T) {
	dir := t.TempDir()
	a, b := echoServer(t, "a"), echoServer(t, "b")
	deadPort := freePort(t)
	port := freePort(t)
	sock := filepath.Join(dir, "lb.sock")
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	writeCfg := func(servers string) {
		cfg := fmt.Sprintf(`global
    stats socket %s level admin
    daemon
defaults
    mode tcp
    timeout connect 1s
    timeout client 30s
    timeout server 30s
listen l
    bind 127.0.0.1:%d
%s`, sock, port, servers)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(fmt.Sprintf("    server a %s\n    server dead 127.0.0.1:%d check inter 100ms rise 50\n", a, deadPort))
	pidFile := filepath.Join(dir, "lb.pid")
	p1 := startProcess(t, "-db", "-f", cfgPath, "-p", pidFile)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 5*time.Second, func() error {
		data, err := os.ReadFile(pidFile)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(data)) != strconv.Itoa(p1.cmd.Process.Pid) {
			return fmt.Errorf("pid file holds %q", data)
		}
		return nil
	})
	waitFor(t, 5*time.Second, func() error {
		out, err := sendCmd(sock, "show servers state l")
		if err != nil {
			cfgData, _ := os.ReadFile(cfgPath)
			return fmt.Errorf("%v: alive=%v %s\n%s", err, syscall.Kill(p1.cmd.Process.Pid, 0), p1.stderr, cfgData)
		}
		if !strings.Contains(out, " dead 127.0.0.1 0 ") {
			return fmt.Errorf("dead server not DOWN yet:\n%s\n%s", out, p1.stderr)
		}
		return nil
	})

	// SIGUSR2: reload the file in place, now with b.
	writeCfg(fmt.Sprintf("    server b %s\n    server dead 127.0.0.1:%d check inter 100ms rise 50\n", b, deadPort))
	if err := p1.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		got, err := greet(addr)
		if got != "b" {
			return fmt.Errorf("got %q %v", got, err)
		}
		return nil
	})

	// A broken file on SIGUSR2 is reported and the running configuration stays.
	good, _ := os.ReadFile(cfgPath)
	if err := os.WriteFile(cfgPath, append(append([]byte(nil), good...), []byte("    bogus_keyword 1\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = p1.cmd.Process.Signal(syscall.SIGUSR2)
	waitFor(t, 5*time.Second, func() error {
		if !strings.Contains(p1.stderr.String(), "reload failed") || !strings.Contains(p1.stderr.String(), "bogus_keyword") {
			return fmt.Errorf("no reload error yet: %s", p1.stderr)
		}
		return nil
	})
	if got, err := greet(addr); got != "b" {
		t.Fatalf("after a failed reload: %q %v", got, err)
	}
	_ = os.WriteFile(cfgPath, good, 0o644)

	// A long-lived connection on the first process.
	long, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	lr := bufio.NewReader(long)
	if line, _ := lr.ReadString('\n'); line != "b\n" {
		t.Fatalf("long connection greeted with %q", line)
	}

	// -sf: a new process takes over.
	p2 := startProcess(t, "-db", "-f", cfgPath, "-sf", strconv.Itoa(p1.cmd.Process.Pid))
	waitFor(t, 5*time.Second, func() error {
		out, err := sendCmd(sock, "show info")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "Pid: "+strconv.Itoa(p2.cmd.Process.Pid)) {
			return fmt.Errorf("socket still served by the old process")
		}
		return nil
	})
	// The new process learned that "dead" is DOWN instead of starting it UP.
	out, _ := sendCmd(sock, "show servers state l")
	if !strings.Contains(out, " dead 127.0.0.1 0 ") {
		t.Fatalf("health not carried over to the new process:\n%s\n%s", out, p2.stderr)
	}
	if got, err := greet(addr); got != "b" {
		t.Fatalf("new process: %q %v", got, err)
	}
	// The old process still serves the established connection...
	_ = long.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = long.Write([]byte("ping\n"))
	if line, err := lr.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("long connection after takeover: %q %v", line, err)
	}
	// ...and exits once it ends.
	long.Close()
	exited := make(chan error, 1)
	go func() { exited <- p1.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatalf("old process did not exit after its last connection:\n%s", p1.stderr)
	}
}

// TestDaemonize checks -D: the command returns, the daemon writes the
// pidfile and serves.
func TestDaemonize(t *testing.T) {
	dir := t.TempDir()
	a := echoServer(t, "a")
	port := freePort(t)
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	pidFile := filepath.Join(dir, "lb.pid")
	_ = os.WriteFile(cfgPath, []byte(fmt.Sprintf("defaults\n  mode tcp\n  timeout client 5s\n  timeout server 5s\n  timeout connect 1s\nlisten l\n  bind 127.0.0.1:%d\n  server a %s\n", port, a)), 0o644)
	out, err := exec.Command(binary, "-D", "-f", cfgPath, "-p", pidFile).CombinedOutput()
	if err != nil {
		t.Fatalf("-D: %v %s", err, out)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if pid <= 0 {
		t.Fatalf("pid file %q", data)
	}
	defer func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}()
	if got, err := greet(fmt.Sprintf("127.0.0.1:%d", port)); got != "a" {
		t.Fatalf("daemon: %q %v", got, err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("daemon %d still running", pid)
		}
		return nil
	})
}

// TestLogToStdout runs the binary with "log stdout format raw" and reads
// the tcplog line from its standard output.
func TestLogToStdout(t *testing.T) {
	dir := t.TempDir()
	a := echoServer(t, "a")
	port := freePort(t)
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	_ = os.WriteFile(cfgPath, []byte(fmt.Sprintf(`defaults
    mode tcp
    log stdout format raw local0 info
    option tcplog
    timeout client 5s
    timeout server 5s
    timeout connect 1s
listen rabbitmq_cluster
    bind 127.0.0.1:%d
    server rabbit_1 %s
`, port, a)), 0o644)
	out := &syncBuffer{}
	p := &lbProcess{cmd: exec.Command(binary, "-db", "-f", cfgPath), stderr: &syncBuffer{}}
	p.cmd.Stdout = out
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_, _ = p.cmd.Process.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 5*time.Second, func() error {
		_, err := greet(addr)
		return err
	})
	waitFor(t, 5*time.Second, func() error {
		if !strings.Contains(out.String(), " rabbitmq_cluster rabbitmq_cluster/rabbit_1 ") {
			return fmt.Errorf("stdout: %q", out.String())
		}
		return nil
	})
}

// TestMissingTimeoutsWarning checks that -c and the start print
// HAProxy's warning for a proxy without timeouts, and -q silences it.
func TestMissingTimeoutsWarning(t *testing.T) {
	dir := t.TempDir()
	a := echoServer(t, "a")
	port := freePort(t)
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	cfg := fmt.Sprintf("defaults\n    mode tcp\nlisten l\n    bind 127.0.0.1:%d\n    server a %s\n", port, a)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	const warning = "[WARNING] config : missing timeouts for proxy 'l'.\n" +
		"   | While not properly invalid, you will certainly encounter various problems\n" +
		"   | with such a configuration. To fix this, please ensure that all following\n" +
		"   | timeouts are set to a non-zero value: 'client', 'connect', 'server'.\n"
	var out, errb bytes.Buffer
	if code := Main([]string{"-c", "-f", cfgPath}, &out, &errb); code != 0 || out.String() != "Warnings were found.\nConfiguration file is valid\n" || errb.String() != warning {
		t.Fatalf("-c: code %d\nstdout %q\nstderr %q", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := Main([]string{"-c", "-q", "-f", cfgPath}, &out, &errb); code != 0 || out.Len()+errb.Len() != 0 {
		t.Fatalf("-c -q: code %d, %q %q", code, out.String(), errb.String())
	}
	p := startProcess(t, "-db", "-f", cfgPath)
	waitFor(t, 5*time.Second, func() error {
		if got, err := greet(fmt.Sprintf("127.0.0.1:%d", port)); got != "a" {
			return fmt.Errorf("greeting %q %v", got, err)
		}
		return nil
	})
	if !strings.Contains(p.stderr.String(), warning) {
		t.Fatalf("no warning at start:\n%s", p.stderr)
	}
}

// TestReloadAppliesGlobalMaxconn runs the binary with global maxconn 1: a
// second client waits, and a SIGUSR2 after raising maxconn to 2 lets it
// in.
func TestReloadAppliesGlobalMaxconn(t *testing.T) {
	dir := t.TempDir()
	a := echoServer(t, "a")
	port := freePort(t)
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	writeCfg := func(maxconn int) {
		cfg := fmt.Sprintf("global\n    maxconn %d\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\nlisten l\n    bind 127.0.0.1:%d\n    server a %s\n", maxconn, port, a)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(1)
	p := startProcess(t, "-db", "-f", cfgPath)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var first net.Conn
	waitFor(t, 5*time.Second, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); line != "a\n" {
			c.Close()
			return fmt.Errorf("greeting %q %v", line, err)
		}
		first = c
		return nil
	})
	defer first.Close()
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	sr := bufio.NewReader(second)
	_ = second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if line, err := sr.ReadString('\n'); err == nil {
		t.Fatalf("second client served beyond maxconn 1: %q", line)
	}
	writeCfg(2)
	if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	_ = second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := sr.ReadString('\n'); line != "a\n" {
		t.Fatalf("second client after the reload to maxconn 2: %q %v\n%s", line, err, p.stderr)
	}
}

// TestReadinessToSystemd runs warren-lb as systemd's Type=notify-reload
// does, with NOTIFY_SOCKET set: READY=1 once the listeners are bound,
// RELOADING=1 and READY=1 around a SIGUSR2 reload, STOPPING=1 at SIGTERM.
func TestReadinessToSystemd(t *testing.T) {
	dir := t.TempDir()
	sd := sdnotifytest.Listen(t)
	port := freePort(t)
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	cfg := fmt.Sprintf("defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\nlisten l\n    bind 127.0.0.1:%d\n    server a %s\n", port, echoServer(t, "a"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, "-db", "-f", cfgPath)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("warren-lb log:\n%s", p.stderr.String())
		}
	})
	sd.Expect(10*time.Second, "READY=1", "start")
	if got, err := greet(fmt.Sprintf("127.0.0.1:%d", port)); err != nil || got != "a" {
		t.Fatalf("through the listener after READY=1: %q %v", got, err)
	}
	p.cmd.Process.Signal(syscall.SIGUSR2)
	sd.Expect(10*time.Second, "RELOADING=1\nMONOTONIC_USEC=", "SIGUSR2")
	sd.Expect(10*time.Second, "READY=1", "after the reload")
	p.cmd.Process.Signal(syscall.SIGTERM)
	sd.Expect(10*time.Second, "STOPPING=1", "SIGTERM")
}
