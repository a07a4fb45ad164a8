// Package sdnotify tells systemd how a service started with Type=notify
// is doing, through the datagram socket systemd names in NOTIFY_SOCKET
// (sd_notify(3)): ready once it serves, reloading, stopping.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notify sends states ("READY=1", "STATUS=...") to the socket named by
// NOTIFY_SOCKET. It reports false, and does nothing, when the variable is
// not set: the program was not started by systemd with Type=notify.
func Notify(states ...string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:] // an abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("notify systemd: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(states, "\n"))); err != nil {
		return false, fmt.Errorf("notify systemd: %w", err)
	}
	return true, nil
}

// Reloading is the state a Type=notify-reload service sends when it
// begins to reload: RELOADING=1 with the monotonic time systemd asks for.
// READY=1 follows once the new configuration is in force.
func Reloading() []string {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return []string{"RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", time.Duration(ts.Nano())/time.Microsecond)}
}
