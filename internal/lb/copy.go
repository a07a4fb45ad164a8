package lb

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/warren-mq/warren/internal/sockio"
)

// pipeTimeouts are the idle limits of a proxied connection. Zero means none.
type pipeTimeouts struct {
	// client applies while reading from the client, server while reading
	// from the server.
	client, server time.Duration
	// clientFin replaces server once the client has closed its side;
	// serverFin replaces client once the server has closed its side.
	clientFin, serverFin time.Duration
}

// pipeResult says how a proxied connection ended.
type pipeResult struct {
	toServer, toClient int64
	// term is the two-letter HAProxy termination state ("--", "cD", "sD", "SD", "CD").
	term string
	// splicedUp and splicedDown tell whether each direction moved to splice(2).
	splicedUp, splicedDown bool
}

// chunkSize is the buffer for small transfers, HAProxy's default bufsize.
// A read that fills it switches the direction to splice(2).
const chunkSize = 16 << 10

// halfPipe is one direction of a proxied connection.
type halfPipe struct {
	dst, src *net.TCPConn
	// bufs lends chunk buffers; spliced is set once the direction moved
	// to splice(2).
	bufs    *sync.Pool
	spliced bool
	// rawSrc and readFn are set up on the first chunk; buf, n and rerr
	// carry one read's result out of readFn.
	rawSrc syscall.RawConn
	readFn func(fd uintptr) bool
	buf    *[]byte
	n      int
	rerr   error
	// rawDst and writeFn are set up on the first chunk written; wbuf, wn
	// and werr carry one write's input and result through writeFn.
	rawDst  syscall.RawConn
	writeFn func(fd uintptr) bool
	wbuf    []byte
	wn      int
	werr    syscall.Errno
	// idle is the current idle limit in nanoseconds; the other direction
	// lowers it when its side half-closes.
	idle atomic.Int64
	// armedAt and armedIdle say when src's read deadline was last set and
	// for which limit (0: none).
	armedAt   time.Time
	armedIdle time.Duration
	bytes     int64
	err       error
	// done is set once this direction has finished.
	done atomic.Bool
}

// startPipe copies both directions between client and server, each in
// its own goroutine started by spawn, passing half-closes through, and
// calls done once with the result when both are over. Small transfers go
// through a buffer lent by bufs only for the time of one read and write,
// so an idle connection holds neither memory nor pipes; the first read
// that fills the buffer switches that direction to splice(2) (ReadFrom
// between raw *net.TCPConn values), like HAProxy's splice-auto. Idle
// timeouts are read deadlines that, when they fire, are checked against
// the kernel's TCP_INFO (time since data last moved on either socket) so a
// busy connection is never cut and splice is never given up.
func startPipe(client, server *net.TCPConn, t pipeTimeouts, bufs *sync.Pool, spawn func(func()), done func(pipeResult)) {
	up := &halfPipe{dst: server, src: client, bufs: bufs}
	down := &halfPipe{dst: client, src: server, bufs: bufs}
	up.idle.Store(int64(t.client))
	down.idle.Store(int64(t.server))
	var remaining atomic.Int32
	remaining.Store(2)
	finish := func() {
		if remaining.Add(-1) == 0 {
			done(pipeResult{toServer: up.bytes, toClient: down.bytes, term: termination(up, down),
				splicedUp: up.spliced, splicedDown: down.spliced})
		}
	}
	spawn(func() {
		defer finish()
		proxyCopy(up, down, client, server, t.clientFin) // the client closed: client-fin
	})
	spawn(func() {
		defer finish()
		proxyCopy(down, up, client, server, t.serverFin) // the server closed: server-fin
	})
}

// termination returns HAProxy's two-letter termination state.
func termination(up, down *halfPipe) string {
	switch {
	case isTimeout(up.err):
		return "cD"
	case isTimeout(down.err):
		return "sD"
	case down.err != nil && !errors.Is(down.err, net.ErrClosed):
		return "SD"
	case up.err != nil && !errors.Is(up.err, net.ErrClosed):
		return "CD"
	}
	return "--"
}

// proxyCopy runs one direction h. When the source ends cleanly it sends
// FIN to the destination and, if set, shortens the other direction's idle
// limit to fin (the client-fin or server-fin timeout). On an error it
// closes both sockets so the other direction stops too. It is a named
// function so goroutine dumps show it.
func proxyCopy(h, other *halfPipe, client, server *net.TCPConn, fin time.Duration) {
	var quiet time.Duration // how long the connection had been idle at the last check
	for {
		h.armDeadline(time.Duration(h.idle.Load()), quiet)
		var n int64
		var err error
		if h.spliced {
			n, err = h.dst.ReadFrom(h.src) // splice(2): both ends are raw *net.TCPConn
		} else {
			n, err = h.copyChunk()
			if err == nil {
				h.bytes += n
				quiet = 0
				continue
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		h.bytes += n
		if err == nil {
			break
		}
		quiet = 0
		if idle := time.Duration(h.idle.Load()); isTimeout(err) && idle > 0 {
			quiet = sinceLastData(client, server)
			if quiet < time.Duration(h.idle.Load()) {
				continue // data moved recently (maybe the other way): keep going
			}
		}
		h.err = err
		h.done.Store(true)
		_ = client.Close()
		_ = server.Close()
		return
	}
	h.done.Store(true)
	if other.done.Load() {
		// Both directions are over: the sockets are closed next, which
		// sends the FIN anyway; save the shutdown(2).
		return
	}
	if err := h.dst.CloseWrite(); err != nil && !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, net.ErrClosed) {
		_ = client.Close()
		_ = server.Close()
		return
	}
	if fin > 0 {
		if cur := time.Duration(other.idle.Load()); cur == 0 || fin < cur {
			other.idle.Store(int64(fin))
			_ = other.src.SetReadDeadline(time.Now()) // wake it to apply the new limit
		}
	}
}

// armDeadline sets src's read deadline to expire the idle limit after
// data last moved, quiet ago. Moving a deadline costs a timer update, so
// while data flows it moves at most every quarter of the limit: one that
// fires early is checked against TCP_INFO by proxyCopy and set again from
// when data last moved, so the limit holds all the same.
func (h *halfPipe) armDeadline(idle, quiet time.Duration) {
	if idle <= 0 {
		if h.armedIdle != 0 {
			_ = h.src.SetReadDeadline(time.Time{})
			h.armedIdle = 0
		}
		return
	}
	now := time.Now()
	if quiet == 0 && idle == h.armedIdle && now.Sub(h.armedAt) < idle/4 {
		return
	}
	_ = h.src.SetReadDeadline(now.Add(idle - quiet))
	h.armedAt, h.armedIdle = now, idle
}

// copyChunk moves what one read returns from src to dst. The buffer is
// taken from the pool only once src is readable and given back right
// after the write. It returns io.EOF at the end of src.
func (h *halfPipe) copyChunk() (int64, error) {
	if h.rawSrc == nil {
		rc, err := h.src.SyscallConn()
		if err != nil {
			return 0, err
		}
		h.rawSrc = rc
		h.readFn = h.readReady // one method value per direction, not per read
	}
	h.buf, h.n, h.rerr = nil, 0, nil
	if err := h.rawSrc.Read(h.readFn); err != nil {
		return 0, err
	}
	buf, n := h.buf, h.n
	h.buf = nil
	if h.rerr != nil {
		if buf != nil {
			h.bufs.Put(buf)
		}
		return 0, os.NewSyscallError("read", h.rerr)
	}
	defer h.bufs.Put(buf)
	if n <= 0 {
		return 0, io.EOF
	}
	if n == len(*buf) {
		h.spliced = true // a full buffer: bulk data follows, splice it
	}
	return h.write((*buf)[:n])
}

// write writes all of p to dst through its RawConn with sockio.Write,
// waiting for the socket when it is full; the write deadline applies as
// for net.Conn's Write.
func (h *halfPipe) write(p []byte) (int64, error) {
	if h.rawDst == nil {
		rc, err := h.dst.SyscallConn()
		if err != nil {
			return 0, err
		}
		h.rawDst = rc
		h.writeFn = h.writeReady
	}
	h.wbuf, h.wn, h.werr = p, 0, 0
	err := h.rawDst.Write(h.writeFn)
	n, werr := h.wn, h.werr
	h.wbuf = nil
	if err == nil && werr != 0 {
		err = &net.OpError{Op: "write", Net: "tcp", Source: h.dst.LocalAddr(), Addr: h.dst.RemoteAddr(), Err: os.NewSyscallError("write", werr)}
	}
	return int64(n), err
}

// writeReady is called by the runtime poller when dst may be writable: it
// writes what is left, or asks to wait.
func (h *halfPipe) writeReady(fd uintptr) bool {
	for len(h.wbuf) > 0 {
		n, errno := sockio.Write(fd, h.wbuf)
		if errno == syscall.EAGAIN {
			return false
		}
		if errno != 0 {
			h.werr = errno
			return true
		}
		h.wbuf = h.wbuf[n:]
		h.wn += n
	}
	return true
}

// readReady is called by the runtime poller when src may be readable: it
// borrows a buffer and reads, or gives the buffer back and asks to wait.
func (h *halfPipe) readReady(fd uintptr) bool {
	b := h.bufs.Get().(*[]byte)
	n, errno := sockio.Read(fd, *b)
	if errno == syscall.EAGAIN {
		h.bufs.Put(b)
		return false // wait for data without holding the buffer
	}
	h.buf, h.n, h.rerr = b, n, nil
	if errno != 0 {
		h.rerr = errno
	}
	return true
}

func isTimeout(err error) bool {
	return err != nil && errors.Is(err, os.ErrDeadlineExceeded)
}

// sinceLastData returns how long ago data last moved on either socket, in
// either direction, according to TCP_INFO. It returns 0 (busy) if the
// kernel cannot tell.
func sinceLastData(conns ...*net.TCPConn) time.Duration {
	best := time.Duration(-1)
	for _, c := range conns {
		sent, recv, ok := lastData(c)
		if !ok {
			return 0
		}
		for _, d := range []time.Duration{sent, recv} {
			if best < 0 || d < best {
				best = d
			}
		}
	}
	if best < 0 {
		return 0
	}
	return best
}

// lastData reads tcpi_last_data_sent and tcpi_last_data_recv (milliseconds
// since data was last sent / received) from struct tcp_info.
func lastData(c *net.TCPConn) (sent, recv time.Duration, ok bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, false
	}
	var info [232]byte
	var serr syscall.Errno
	cerr := raw.Control(func(fd uintptr) {
		size := uint32(len(info))
		_, _, serr = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	})
	if cerr != nil || serr != 0 {
		return 0, 0, false
	}
	// struct tcp_info: 8 bytes of u8 fields, 9 u32 (rto .. fackets), then
	// last_data_sent (offset 44), last_ack_sent (48), last_data_recv (52).
	le := func(off int) time.Duration {
		v := uint32(info[off]) | uint32(info[off+1])<<8 | uint32(info[off+2])<<16 | uint32(info[off+3])<<24
		return time.Duration(v) * time.Millisecond
	}
	return le(44), le(52), true
}
