package lab

import (
	"net"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
)

// DialIn opens a connection from inside the named network namespace, as
// a program running there would.
func DialIn(ns, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	nc, err := net.DialTimeout(network, addr, 3*time.Second)
	if netns.Set(orig) == nil {
		// A thread left in the other namespace dies with its goroutine
		// rather than serve others.
		runtime.UnlockOSThread()
	}
	return nc, err
}
