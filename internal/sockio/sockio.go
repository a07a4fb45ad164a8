// Package sockio reads and writes non-blocking sockets with raw system
// calls, for use inside syscall.RawConn callbacks on hot paths.
//
// An ordinary system call through package syscall tells the Go runtime it
// may block; the first one after an idle spell wakes the runtime's monitor
// thread, which then polls every 20 µs until the process idles again. A
// server handling one small message at a time pays that wake-up and the
// monitor's context switches for every message. A read or write on a
// non-blocking socket cannot block, so it can skip that bookkeeping; the
// runtime's poller still does all the waiting, through the RawConn.
package sockio

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Read reads once from the non-blocking socket fd into p, which must not
// be empty. It returns unix.EAGAIN when there is nothing to read.
func Read(fd uintptr, p []byte) (int, syscall.Errno) {
	return rw(unix.SYS_READ, fd, p)
}

// Write writes once to the non-blocking socket fd from p, which must not
// be empty. It returns unix.EAGAIN when the socket's buffer is full.
func Write(fd uintptr, p []byte) (int, syscall.Errno) {
	return rw(unix.SYS_WRITE, fd, p)
}

func rw(trap, fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := unix.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), 0
	}
}
