package broker

import (
	"io"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The hot path reads and writes a client's socket with raw system calls
// inside syscall.RawConn callbacks. The socket is non-blocking, so neither
// call can block, and the runtime's poller still does all the waiting.
// Going around the runtime's system-call bookkeeping matters on a lightly
// loaded node: the first ordinary system call after an idle spell wakes the
// runtime's monitor thread, which then polls every 20 µs until the node is
// idle again. At a few thousand messages a second, every message paid for
// that wake-up and the monitor's context switches.

// sysRead reads once from the non-blocking socket fd into p.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), 0
	}
}

// sysWrite writes once to the non-blocking socket fd from p.
func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), 0
	}
}

// socketReader reads a socket through its RawConn with sysRead: deadlines
// and closing behave as for net.Conn's Read, which the poller enforces.
// It belongs to the connection's reader goroutine; the callback is bound
// once so that a read allocates nothing.
type socketReader struct {
	raw   syscall.RawConn
	read  func(fd uintptr) bool // r.readFD
	p     []byte
	n     int
	errno syscall.Errno
}

func (r *socketReader) readFD(fd uintptr) bool {
	r.n, r.errno = sysRead(fd, r.p)
	return r.errno != unix.EAGAIN
}

func (r *socketReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p = p
	err := r.raw.Read(r.read)
	r.p = nil
	switch {
	case err != nil:
		return 0, err
	case r.errno != 0:
		return 0, os.NewSyscallError("read", r.errno)
	case r.n == 0:
		return 0, io.EOF
	}
	return r.n, nil
}

// socketInput is what a connection's frames are read from: the socket
// itself through socketReader where it has a file descriptor, else nc.
func socketInput(nc io.Reader) io.Reader {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	r := &socketReader{raw: raw}
	r.read = r.readFD
	return r
}
