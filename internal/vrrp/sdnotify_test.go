package vrrp

import (
	"syscall"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/sdnotify/sdnotifytest"
)

// TestReadinessToSystemd runs warren-vrrp as systemd's Type=notify-reload
// does, with NOTIFY_SOCKET set: READY=1 once it runs, RELOADING=1 and
// READY=1 around a SIGHUP reload, STOPPING=1 at SIGTERM.
func TestReadinessToSystemd(t *testing.T) {
	sd := sdnotifytest.Listen(t)
	lab := newLab(t, 1)
	sp := lab.nodes[0].startWarren(t, vrrpConf{Priority: 150}.String())
	sd.Expect(10*time.Second, "READY=1", "start")
	sp.cmd.Process.Signal(syscall.SIGHUP)
	sd.Expect(10*time.Second, "RELOADING=1\nMONOTONIC_USEC=", "SIGHUP")
	sd.Expect(10*time.Second, "READY=1", "after the reload")
	sp.cmd.Process.Signal(syscall.SIGTERM)
	sd.Expect(10*time.Second, "STOPPING=1", "SIGTERM")
}
