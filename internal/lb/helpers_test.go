package lb

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warren-mq/warren/internal/lb/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// testBackend is a real TCP server: it writes its name and a newline, then
// echoes. kill closes it abruptly; restart listens again on the same port.
type testBackend struct {
	t     *testing.T
	name  string
	addr  string
	hits  atomic.Int64
	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
	// onConn, if set, replaces the name+echo behaviour.
	onConn func(net.Conn)
}

func startBackend(t *testing.T, name string) *testBackend {
	t.Helper()
	return startBackendFunc(t, name, nil)
}

// startBackendFunc starts a backend whose connections run onConn.
func startBackendFunc(t *testing.T, name string, onConn func(net.Conn)) *testBackend {
	t.Helper()
	b := &testBackend{t: t, name: name, conns: map[net.Conn]bool{}, onConn: onConn}
	b.listen("127.0.0.1:0")
	t.Cleanup(b.kill)
	return b
}

func (b *testBackend) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	b.ln = ln
	b.addr = ln.Addr().String()
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns[c] = true
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer func() {
					b.mu.Lock()
					delete(b.conns, c)
					b.mu.Unlock()
					c.Close()
				}()
				if b.onConn != nil {
					b.onConn(c)
					return
				}
				b.hits.Add(1)
				if _, err := io.WriteString(c, b.name+"\n"); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

// kill closes the listener and resets every connection, like a SIGKILL.
func (b *testBackend) kill() {
	b.mu.Lock()
	if b.ln != nil {
		b.ln.Close()
		b.ln = nil
	}
	for c := range b.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *testBackend) restart() { b.listen(b.addr) }

// closeListener stops accepting (checks fail) but keeps live connections.
func (b *testBackend) closeListener() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln != nil {
		b.ln.Close()
		b.ln = nil
	}
}

// logBuffer collects slog output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startLB parses cfg and starts an LB, closed at test end.
func startLB(t *testing.T, cfg string) (*LB, *logBuffer) {
	t.Helper()
	res, err := config.Parse("test.cfg", []byte(cfg))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, cfg)
	}
	logs := &logBuffer{}
	l, err := New(res.Config, Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l, logs
}

func mustConfigB(b *testing.B, cfg string) *config.Config {
	b.Helper()
	res, err := config.Parse("bench.cfg", []byte(cfg))
	if err != nil {
		b.Fatalf("config: %v", err)
	}
	return res.Config
}

func mustConfig(t *testing.T, cfg string) *config.Config {
	t.Helper()
	res, err := config.Parse("test.cfg", []byte(cfg))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return res.Config
}

// checkFor polls f until it returns nil or the time is up.
func checkFor(t *testing.T, total, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(interval)
	}
	t.Fatalf("condition not met after %v: %v", total, err)
}

// hello connects to addr and returns the first line the backend sends.
func hello(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return ""
	}
	return strings.TrimSpace(line)
}

// serverStatus reads one server's status from the stats rows.
func serverStatus(l *LB, backend, server string) map[string]string {
	for _, r := range l.statRows() {
		if r["pxname"] == backend && r["svname"] == server {
			return r
		}
	}
	return nil
}

const testDefaults = `
defaults
    mode tcp
    timeout connect 1s
    timeout client 10s
    timeout server 10s
`

func listenCfg(port int, body string) string {
	return testDefaults + fmt.Sprintf("listen l\n    bind 127.0.0.1:%d\n%s\n", port, body)
}

// probeClient is a client connection whose first line (the backend's
// name) is read in the background, to tell whether the proxy served it,
// closed it or keeps it waiting.
type probeClient struct {
	conn  net.Conn
	got   chan string
	state string // "served:NAME" or "closed" once known
}

func dialProbe(t *testing.T, addr string) *probeClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	qc := &probeClient{conn: c, got: make(chan string, 1)}
	t.Cleanup(func() { _ = c.Close() })
	go func() {
		// Ends when the proxy answers or closes, or the test closes c.
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			qc.got <- "closed"
			return
		}
		qc.got <- "served:" + strings.TrimSpace(line)
	}()
	return qc
}

// status returns "served:NAME", "closed", or "waiting" when nothing came
// within wait.
func (qc *probeClient) status(wait time.Duration) string {
	if qc.state != "" {
		return qc.state
	}
	select {
	case s := <-qc.got:
		qc.state = s
		return s
	case <-time.After(wait):
		return "waiting"
	}
}

// infoValue returns one line of "show info".
func infoValue(l *LB, name string) string {
	for _, kv := range l.infoLines() {
		if kv[0] == name {
			return kv[1]
		}
	}
	return ""
}

var _ = context.Background
