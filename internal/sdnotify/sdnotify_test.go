package sdnotify

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNotify(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify("READY=1"); sent || err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v %v", sent, err)
	}
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@warren-sdnotify-test"} {
		addr := name
		if strings.HasPrefix(name, "@") {
			addr = "\x00" + name[1:]
		}
		l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", name)
		if sent, err := Notify("READY=1", "STATUS=serving"); !sent || err != nil {
			t.Fatalf("%s: %v %v", name, sent, err)
		}
		buf := make([]byte, 256)
		l.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := l.ReadFromUnix(buf)
		if err != nil || string(buf[:n]) != "READY=1\nSTATUS=serving" {
			t.Fatalf("%s: got %q %v", name, buf[:n], err)
		}
		l.Close()
	}
	st := Reloading()
	if st[0] != "RELOADING=1" || !strings.HasPrefix(st[1], "MONOTONIC_USEC=") || len(st[1]) < len("MONOTONIC_USEC=1") {
		t.Fatalf("Reloading() = %q", st)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	if _, err := Notify("READY=1"); err == nil {
		t.Fatal("a socket nobody listens on gave no error")
	}
}
