package sockio

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// RawConn returns the RawConn of a TCP or Unix socket, or nil for any
// other net.Conn. Only those two concrete types qualify: a wrapper that
// embeds one may buffer input it has already read, or output it has not
// yet written, which going to the file descriptor would skip or reorder.
func RawConn(nc net.Conn) syscall.RawConn {
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

// Reader reads a socket through its RawConn with Read: deadlines and
// closing behave as for net.Conn's Read, which the poller enforces. It
// belongs to one reading goroutine; the callback is bound once, so that a
// read allocates nothing.
type Reader struct {
	raw   syscall.RawConn
	read  func(fd uintptr) bool // r.readFD
	p     []byte
	n     int
	errno syscall.Errno
}

// NewReader returns a Reader of the socket raw.
func NewReader(raw syscall.RawConn) *Reader {
	r := &Reader{raw: raw}
	r.read = r.readFD
	return r
}

func (r *Reader) readFD(fd uintptr) bool {
	r.n, r.errno = Read(fd, r.p)
	return r.errno != unix.EAGAIN
}

func (r *Reader) Read(p []byte) (int, error) {
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

// Writer writes all of each buffer to a socket through its RawConn with
// Write, waiting in the poller while the socket is full; like Reader,
// deadlines and closing behave as for net.Conn's Write. It belongs to
// one writing goroutine.
type Writer struct {
	raw   syscall.RawConn
	write func(fd uintptr) bool // w.writeFD
	b     []byte
	n     int
	errno syscall.Errno
}

// NewWriter returns a Writer of the socket raw.
func NewWriter(raw syscall.RawConn) *Writer {
	w := &Writer{raw: raw}
	w.write = w.writeFD
	return w
}

func (w *Writer) writeFD(fd uintptr) bool {
	for w.n < len(w.b) {
		n, errno := Write(fd, w.b[w.n:])
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

func (w *Writer) Write(b []byte) (int, error) {
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

// conn is a socket read and written through a Reader and a Writer.
type conn struct {
	net.Conn
	r *Reader
	w *Writer
}

func (c *conn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *conn) Write(b []byte) (int, error) { return c.w.Write(b) }

// Wrap returns nc with Read and Write made by raw system calls, for a
// layer such as crypto/tls that reads and writes a net.Conn; nc itself
// if it is not a TCP or Unix socket. One goroutine may read while another
// writes, as with nc.
func Wrap(nc net.Conn) net.Conn {
	raw := RawConn(nc)
	if raw == nil {
		return nc
	}
	return &conn{Conn: nc, r: NewReader(raw), w: NewWriter(raw)}
}

// TLSListener is tls.NewListener whose connections read and write their
// sockets through Wrap.
func TLSListener(l net.Listener, cfg *tls.Config) net.Listener {
	return &tlsListener{Listener: l, cfg: cfg}
}

type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

func (l *tlsListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(Wrap(nc), l.cfg), nil
}
