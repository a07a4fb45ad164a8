package sockio

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestWrap reads and writes a loopback TCP connection through Wrap: data
// in both directions, a large write that waits for the reader, a read
// deadline, and end of file.
func TestWrap(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- nc
	}()
	dialled, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := Wrap(dialled)
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	b := Wrap(peer)
	if _, raw := a.(*conn); !raw {
		t.Fatalf("Wrap of a TCP connection gave %T", a)
	}

	// More than the sockets' buffers hold: the write waits in the poller.
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := a.Write(big)
		wrote <- err
	}()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != big[i] {
			t.Fatalf("octet %d: %d, want %d", i, got[i], big[i])
		}
	}

	b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := b.Read(got[:1]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	b.SetReadDeadline(time.Time{})

	if _, err := b.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(a, got[:4]); err != nil || string(got[:4]) != "back" {
		t.Fatalf("read back %q: %v", got[:4], err)
	}
	a.Close()
	if _, err := b.Read(got); err != io.EOF {
		t.Fatalf("read after the other end closed: %v", err)
	}
	b.Close()

	if c := Wrap(nil); c != nil {
		t.Fatalf("Wrap(nil) = %v", c)
	}
}
