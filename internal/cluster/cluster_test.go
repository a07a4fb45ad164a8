package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCookieFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "home", ".warren.cookie")
	if _, err := ReadCookie(path, false); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing cookie without create: %v", err)
	}
	c, err := ReadCookie(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != cookieLen || strings.Trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		t.Errorf("new cookie %q", c)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o400 {
		t.Errorf("cookie mode %04o, want 0400", st.Mode().Perm())
	}
	again, err := ReadCookie(path, true)
	if err != nil || again != c {
		t.Errorf("second read = %q, %v; want %q", again, err, c)
	}
	// What some runbooks suggest: it must fail, saying how to fix it.
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err = ReadCookie(path, true)
	if err == nil || !strings.Contains(err.Error(), "chmod 400 "+path) || !strings.Contains(err.Error(), "0777") {
		t.Errorf("world-readable cookie: %v", err)
	}
}

func startServer(t *testing.T, cookie string) (*Server, string) {
	t.Helper()
	s := NewServer(cookie, nil)
	s.Handle(ServiceCtl, func(nc net.Conn, _ string) {
		defer nc.Close()
		io.Copy(nc, nc)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s, l.Addr().String()
}

func TestHandshake(t *testing.T) {
	_, addr := startServer(t, "SECRETCOOKIE")
	nc, err := Dial(context.Background(), addr, "SECRETCOOKIE", "test@here", ServiceCtl)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != "ping" {
		t.Errorf("echo: %q %v", buf, err)
	}
	nc.Close()

	_, err = Dial(context.Background(), addr, "WRONG", "test@here", ServiceCtl)
	if !errors.Is(err, ErrBadCookie) || !strings.Contains(err.Error(), "--cookie-file") {
		t.Errorf("wrong cookie: %v", err)
	}
	if _, err = Dial(context.Background(), addr, "SECRETCOOKIE", "test@here", Service(99)); err == nil || !strings.Contains(err.Error(), "not offered") {
		t.Errorf("unknown service: %v", err)
	}
}

// TestServerProvesCookie: a listener that does not know the cookie cannot
// pass for the node, even if it echoes what the client sends.
func TestServerProvesCookie(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		hello := make([]byte, 4+1+nonceLen+1+len("test@here"))
		io.ReadFull(nc, hello)
		nc.Write(make([]byte, nonceLen))
		p := make([]byte, 32)
		io.ReadFull(nc, p)
		nc.Write(append([]byte{statusOK}, p...))
	}()
	if _, err := Dial(context.Background(), l.Addr().String(), "SECRETCOOKIE", "test@here", ServiceCtl); !errors.Is(err, ErrBadCookie) {
		t.Errorf("impostor accepted: %v", err)
	}
}
