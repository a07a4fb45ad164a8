// Package sdnotifytest stands in for systemd in tests of programs that
// notify it: a datagram socket that NOTIFY_SOCKET names, and the states
// sent to it, one datagram at a time.
package sdnotifytest

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Socket is systemd's end of NOTIFY_SOCKET.
type Socket struct {
	t *testing.T
	l *net.UnixConn
}

// Listen opens a socket in a temporary directory and sets NOTIFY_SOCKET
// to it for the rest of the test (child processes inherit it); the
// socket closes when the test ends.
func Listen(t *testing.T) *Socket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return &Socket{t: t, l: l}
}

// Next waits up to wait for the next datagram and returns it; the test
// fails if none comes.
func (s *Socket) Next(wait time.Duration) string {
	s.t.Helper()
	buf := make([]byte, 512)
	s.l.SetReadDeadline(time.Now().Add(wait))
	n, _, err := s.l.ReadFromUnix(buf)
	if err != nil {
		s.t.Fatalf("waiting for a notification to systemd: %v", err)
	}
	return string(buf[:n])
}

// Expect waits for the next datagram, as Next, and fails the test unless
// it starts with want; context names what the test did before, for the
// message.
func (s *Socket) Expect(wait time.Duration, want, context string) {
	s.t.Helper()
	if got := s.Next(wait); !strings.HasPrefix(got, want) {
		s.t.Fatalf("%s: notified %q, want %q", context, got, want)
	}
}
