package broker

import (
	"io"
	"net"
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
// itself through socketReader where socketRaw gives its RawConn, else nc.
func socketInput(nc net.Conn) io.Reader {
	raw := socketRaw(nc)
	if raw == nil {
		return nc
	}
	r := &socketReader{raw: raw}
	r.read = r.readFD
	return r
}

// socketWriter writes all of each buffer to a socket through its RawConn
// with sockio.Write, waiting in the poller while the socket is full; like
// socketReader, deadlines and closing behave as for net.Conn's Write. It
// belongs to one writer goroutine.
type socketWriter struct {
	raw   syscall.RawConn
	write func(fd uintptr) bool // w.writeFD
	b     []byte
	n     int
	errno syscall.Errno
}

func (w *socketWriter) writeFD(fd uintptr) bool {
	for w.n < len(w.b) {
		n, errno := sockio.Write(fd, w.b[w.n:])
		if errno == unix.EAGAIN {
			return false
		}
		if errno != 0 {
			w.errno = errno
			return true
		}
		w.n += n
	}
	return true
}

func (w *socketWriter) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	w.b, w.n, w.errno = b, 0, 0
	err := w.raw.Write(w.write)
	n := w.n
	w.b = nil
	switch {
	case err != nil:
		return n, err
	case w.errno != 0:
		return n, os.NewSyscallError("write", w.errno)
	}
	return n, nil
}

// socketOutput is what a writer goroutine writes a connection's frames
// to: the socket itself through socketWriter where socketRaw gives its
// RawConn, else nc.
func socketOutput(nc net.Conn) io.Writer {
	raw := socketRaw(nc)
	if raw == nil {
		return nc
	}
	w := &socketWriter{raw: raw}
	w.write = w.writeFD
	return w
}

// socketRaw returns the RawConn of a TCP or Unix socket, or nil for any
// other net.Conn. Only those two concrete types qualify: a wrapper that
// embeds one may buffer input it has already read, or output it has not
// yet written, which going to the file descriptor would skip or reorder.
func socketRaw(nc net.Conn) syscall.RawConn {
	var sc syscall.Conn
	switch c := nc.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// tryWriter makes one write to a socket that never waits for it, for a
// goroutine that would rather leave what the socket does not take at once
// to a writer goroutine than block. Its callback is bound once, so that a
// write allocates nothing; its user serializes the calls.
type tryWriter struct {
	raw   syscall.RawConn // nil if the connection has no file descriptor
	write func(fd uintptr) bool
	b     []byte // the current call's input
	n     int    // and result
}

func newTryWriter(nc net.Conn) *tryWriter {
	w := &tryWriter{raw: socketRaw(nc)}
	w.write = w.writeFD
	return w
}

// ok reports whether the connection allows such writes.
func (w *tryWriter) ok() bool { return w.raw != nil }

// try writes what of b the socket takes at once, and returns how much.
func (w *tryWriter) try(b []byte) int {
	w.b, w.n = b, 0
	w.raw.Write(w.write)
	w.b = nil
	return w.n
}

func (w *tryWriter) writeFD(fd uintptr) bool {
	if n, errno := sockio.Write(fd, w.b); errno == 0 {
		w.n = n
	}
	return true
}

// putBack puts the tail of b that a write left, from n on, in front of
// newer, what was buffered meanwhile: it returns the buffer to write next
// and newer's array, emptied, for reuse.
func putBack(b []byte, n int, newer []byte) (buf, spare []byte) {
	rest := copy(b, b[n:])
	return append(b[:rest], newer...), newer[:0]
}
