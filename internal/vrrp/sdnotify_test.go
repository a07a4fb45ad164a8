package vrrp

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadinessToSystemd runs warren-vrrp as systemd's Type=notify-reload
// does, with NOTIFY_SOCKET set: READY=1 once it runs, RELOADING=1 and
// READY=1 around a SIGHUP reload, STOPPING=1 at SIGTERM.
func TestReadinessToSystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	lab := newLab(t, 1)
	sp := lab.nodes[0].startWarren(t, vrrpConf{Priority: 150}.String())
	read := func() string {
		t.Helper()
		buf := make([]byte, 512)
		l.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := l.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("waiting for a notification: %v", err)
		}
		return string(buf[:n])
	}
	if got := read(); got != "READY=1" {
		t.Fatalf("first notification %q", got)
	}
	sp.cmd.Process.Signal(syscall.SIGHUP)
	if got := read(); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("at SIGHUP: %q", got)
	}
	if got := read(); got != "READY=1" {
		t.Fatalf("after the reload: %q", got)
	}
	sp.cmd.Process.Signal(syscall.SIGTERM)
	if got := read(); got != "STOPPING=1" {
		t.Fatalf("at SIGTERM: %q", got)
	}
}
