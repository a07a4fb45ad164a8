package broker

import (
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/warren-mq/warren/internal/sockio"
)

// The hot path reads and writes a client's socket with package sockio's
// raw system calls inside syscall.RawConn callbacks: see sockio for why.

// socketReader reads a socket through its RawConn with sockio.Read: deadlines
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
	r.n, r.errno = sockio.Read(fd, r.p)
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
