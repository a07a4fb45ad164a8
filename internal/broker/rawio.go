package broker

import (
	"io"
	"net"
	"syscall"

	"github.com/warren-mq/warren/internal/sockio"
)

// The hot path reads and writes a client's socket with package sockio's
// raw system calls inside syscall.RawConn callbacks: see sockio for why.

// socketInput is what a connection's frames are read from: the socket
// itself through a sockio.Reader where it has a RawConn, else nc.
func socketInput(nc net.Conn) io.Reader {
	if raw := sockio.RawConn(nc); raw != nil {
		return sockio.NewReader(raw)
	}
	return nc
}

// socketOutput is what a writer goroutine writes a connection's frames
// to: the socket itself through a sockio.Writer where it has a RawConn,
// else nc.
func socketOutput(nc net.Conn) io.Writer {
	if raw := sockio.RawConn(nc); raw != nil {
		return sockio.NewWriter(raw)
	}
	return nc
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
	w := &tryWriter{raw: sockio.RawConn(nc)}
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
